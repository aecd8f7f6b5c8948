//! Kademlia model: 64-bit node ids, k-buckets filled with a random sample of the nodes in each
//! bucket's id range (what a table converges to), and iterative α-parallel lookups in rounds.
//!
//! A round queries the α closest known, not yet queried, alive nodes; each answers with the k
//! closest it knows. When a round finds no closer node, one last round queries the rest of the k
//! closest at once (as rust-libp2p's closest-peers iterator does when it stalls). A round lasts
//! the slowest round trip in it; a dead contact costs the RPC timeout only if every contact of
//! the round is dead. `hops` is the round in which the closest alive node to the key answered:
//! the length of the lookup path.

use rand::seq::index::sample;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The DHT: ids and routing tables.
#[derive(Debug)]
pub struct Dht {
    /// Node id of each node.
    pub ids: Vec<u64>,
    /// `(id, node)` sorted by id.
    sorted: Vec<(u64, u32)>,
    /// Routing table of each node (all buckets flattened).
    tables: Vec<Vec<u32>>,
    /// Bucket size and answer size.
    pub k: usize,
    /// Parallelism.
    pub alpha: usize,
}

/// The outcome of one lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Rounds until the closest alive node answered (or all rounds if it never did).
    pub hops: u32,
    /// Rounds in all.
    pub rounds: u32,
    /// RPCs sent.
    pub rpcs: u32,
    /// Virtual duration, seconds.
    pub latency_s: f64,
    /// Whether the closest alive node to the key was reached.
    pub found_closest: bool,
    /// The k closest alive nodes found, closest first.
    pub closest: Vec<u32>,
}

impl Dht {
    /// Random ids and tables for `n` nodes.
    pub fn build(n: usize, k: usize, alpha: usize, rng: &mut ChaCha8Rng) -> Dht {
        let ids: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
        let mut sorted: Vec<(u64, u32)> = ids.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect();
        sorted.sort_unstable();
        let mut tables = Vec::with_capacity(n);
        for &x in &ids {
            let mut table = Vec::new();
            for p in 0..64u32 {
                // Ids sharing the first p bits with x and differing at bit p.
                let shift = 63 - p;
                let prefix = ((x >> shift) ^ 1) << shift;
                let hi = if shift == 63 { u64::MAX >> 1 } else { (1u64 << shift) - 1 };
                let (lo_id, hi_id) = (prefix, prefix | hi);
                let a = sorted.partition_point(|&(id, _)| id < lo_id);
                let b = sorted.partition_point(|&(id, _)| id <= hi_id);
                let count = b - a;
                if count > 0 {
                    if count <= k {
                        table.extend(sorted[a..b].iter().map(|&(_, v)| v));
                    } else {
                        table.extend(sample(rng, count, k).into_iter().map(|i| sorted[a + i].1));
                    }
                }
                // Once x's own prefix of length p+1 holds x alone, deeper buckets are empty.
                let own = (x >> shift) << shift;
                let own_hi = own | hi;
                let c = sorted.partition_point(|&(id, _)| id < own);
                let d = sorted.partition_point(|&(id, _)| id <= own_hi);
                if d - c <= 1 {
                    break;
                }
            }
            tables.push(table);
        }
        Dht { ids, sorted, tables, k, alpha }
    }

    /// The closest alive node to `key` (ground truth, a full scan: use for probes only).
    pub fn true_closest(&self, key: u64, alive: &[bool]) -> Option<u32> {
        self.sorted.iter().filter(|&&(_, v)| alive[v as usize]).min_by_key(|&&(id, _)| id ^ key).map(|&(_, v)| v)
    }

    /// Runs a lookup for `key` from `from`. `rtt(a, b)` gives a round trip in seconds,
    /// `reachable(a, b)` whether a query from a can reach b.
    pub fn lookup(
        &self,
        from: u32,
        key: u64,
        timeout_s: f64,
        mut rtt: impl FnMut(u32, u32) -> f64,
        reachable: impl Fn(u32, u32) -> bool,
        target: Option<u32>,
    ) -> Lookup {
        let dist = |v: u32| self.ids[v as usize] ^ key;
        // Candidates: (distance, node, queried, failed).
        let mut cands: Vec<(u64, u32, bool, bool)> = Vec::with_capacity(4 * self.k);
        let add = |cands: &mut Vec<(u64, u32, bool, bool)>, v: u32| {
            if v != from && !cands.iter().any(|c| c.1 == v) {
                cands.push((dist(v), v, false, false));
            }
        };
        for &v in &self.tables[from as usize] {
            add(&mut cands, v);
        }
        cands.sort_unstable_by_key(|c| c.0);
        cands.truncate(4 * self.k);
        let mut out = Lookup { hops: 0, rounds: 0, rpcs: 0, latency_s: 0.0, found_closest: false, closest: Vec::new() };
        if Some(from) == target {
            out.found_closest = true;
            out.closest.push(from);
            return out;
        }
        let mut best = u64::MAX;
        let mut stalled = false;
        for _round in 0..64 {
            let width = if stalled { self.k } else { self.alpha };
            let picks: Vec<usize> = cands
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.3)
                .take(self.k)
                .filter(|(_, c)| !c.2)
                .map(|(i, _)| i)
                .take(width)
                .collect();
            if picks.is_empty() {
                break;
            }
            out.rounds += 1;
            let mut round_time: f64 = 0.0;
            let mut any_ok = false;
            let mut learned = Vec::new();
            for &i in &picks {
                let v = cands[i].1;
                cands[i].2 = true;
                out.rpcs += 1;
                if !reachable(from, v) {
                    cands[i].3 = true;
                    continue;
                }
                any_ok = true;
                round_time = round_time.max(rtt(from, v));
                if Some(v) == target && !out.found_closest {
                    out.found_closest = true;
                    out.hops = out.rounds;
                }
                let mut answer: Vec<u32> = self.tables[v as usize].clone();
                answer.sort_unstable_by_key(|&u| dist(u));
                answer.truncate(self.k);
                learned.extend(answer);
            }
            out.latency_s += if any_ok { round_time } else { timeout_s };
            for v in learned {
                add(&mut cands, v);
            }
            cands.sort_unstable_by_key(|c| c.0);
            cands.truncate(8 * self.k);
            let now_best = cands.iter().find(|c| !c.3).map_or(u64::MAX, |c| c.0);
            if stalled {
                // The final wide round is done; stop unless it found something closer.
                if now_best >= best {
                    break;
                }
                stalled = false;
            } else if now_best >= best {
                stalled = true;
            }
            best = best.min(now_best);
        }
        if !out.found_closest {
            out.hops = out.rounds;
        }
        out.closest = cands.iter().filter(|c| c.2 && !c.3).take(self.k).map(|c| c.1).collect();
        out
    }
}
