//! The discrete-event model ("model" mode): Lien's protocols re-implemented as events on a
//! virtual clock, single-threaded, every random choice drawn from one seeded ChaCha8 stream, so
//! one seed gives one result, bit for bit.
//!
//! What is modelled (details and simplifications in `docs/simulation.md`):
//! - announcement gossip: gossipsub eager push over a mesh of degree D with flood publish,
//!   validation delay before forwarding, lazy IHAVE/IWANT for `history_gossip` heartbeats, catch-up
//!   from a neighbour's catalog when a node comes back or a cut heals; or classic push rumours;
//! - Kademlia (`kad.rs`): provider lookups before each fetch and each provide;
//! - chunked swarm download: each fetcher keeps up to `max_sources` sources with
//!   `requests_per_peer` requests each; sources are DHT providers and overlay neighbours holding
//!   chunks (their "have" bitmap assumed fresh); servers answer `busy` past `max_inflight_serve`.
//!   Every host has an upload pipe and a download pipe. With `sharing = "fair"` a host's upload is shared equally by the chunk responses it is sending (processor
//!   sharing, re-computed whenever one starts or ends), and the receiver's download pipe then
//!   takes each chunk in turn (from one latency after its first byte left, at the download
//!   rate); with `"fifo"` (the default, and always in the portal baseline, which has no
//!   upload cap) both
//!   pipes serialise whole chunks in request order. A chunk arrives
//!   when both are done and its last byte has crossed the link. Neither beats the fluid bound
//!   (tests check it);
//! - the central-portal baseline: the publisher uploads once to the portal and every fetcher
//!   downloads from the portal only;
//! - churn (on/off, crashes), link cuts between groups, adversaries that serve bad chunks (banned
//!   after the first) or never forward gossip.

// Node indices address several parallel arrays at once (alive, have, fetchers...), so index
// loops read better than zipped iterators here.
#![allow(clippy::needless_range_loop)]

pub mod kad;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::scenario::{ChunkOrder, FetchStart, GossipMode, Scenario, ScenarioError, Sharing};
use crate::topology::{Overlay, Topology};

/// Which world a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Lien: gossip, DHT, swarm.
    P2p,
    /// The central-portal baseline.
    Portal,
}

impl World {
    /// Text form.
    pub fn as_str(self) -> &'static str {
        match self {
            World::P2p => "p2p",
            World::Portal => "portal",
        }
    }
}

/// One node's announcement delivery.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Node index.
    pub node: u32,
    /// Time of delivery (validated), seconds; `None` if never delivered.
    pub t_s: Option<f64>,
    /// Overlay hops of the first copy.
    pub hops: u32,
    /// Copies received after the first.
    pub duplicates: u32,
    /// How it arrived: `mesh`, `ihave`, `catch-up`, `push` or `origin`.
    pub via: &'static str,
}

/// One Kademlia lookup.
#[derive(Debug, Clone, Serialize)]
pub struct LookupRec {
    /// Node that looked up.
    pub node: u32,
    /// `probe`, `provide` or `find-providers`.
    pub purpose: &'static str,
    /// When, seconds.
    pub t_s: f64,
    /// Path length in rounds.
    pub hops: u32,
    /// Rounds in all.
    pub rounds: u32,
    /// RPCs sent.
    pub rpcs: u32,
    /// Duration, seconds.
    pub latency_s: f64,
    /// Probe lookups: whether the closest alive node was reached.
    pub found: bool,
}

/// One fetch.
#[derive(Debug, Clone, Serialize)]
pub struct FetchRec {
    /// World.
    pub world: World,
    /// Node.
    pub node: u32,
    /// Start, seconds (`None`: never started).
    pub start_s: Option<f64>,
    /// Completion, seconds (`None`: never completed).
    pub end_s: Option<f64>,
    /// Bytes received (including rejected bad chunks).
    pub bytes: u64,
    /// Distinct peers that delivered a chunk.
    pub sources: u32,
    /// Bad chunks received.
    pub bad_chunks: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// `busy` answers.
    pub busy: u32,
}

/// Bytes moved by one host.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRec {
    /// World.
    pub world: World,
    /// Host index.
    pub node: u32,
    /// Chunk bytes uploaded.
    pub up_bytes: u64,
    /// Chunk bytes downloaded.
    pub down_bytes: u64,
    /// Gossip messages sent (whole messages, not IHAVE).
    pub gossip_sent: u64,
}

/// An event for `events.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    /// Time, seconds.
    pub t_s: f64,
    /// World.
    pub world: World,
    /// Host index.
    pub node: u32,
    /// What happened.
    pub kind: &'static str,
    /// The other host, if any.
    pub peer: Option<u32>,
    /// Bytes, if any.
    pub bytes: u64,
}

/// Everything one model run produced.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// Announcement deliveries, one per node.
    pub deliveries: Vec<Delivery>,
    /// Lookups.
    pub lookups: Vec<LookupRec>,
    /// Fetches in both worlds.
    pub fetches: Vec<FetchRec>,
    /// Load in both worlds.
    pub load: Vec<LoadRec>,
    /// Events.
    pub events: Vec<LogEvent>,
    /// The publisher.
    pub publisher: u32,
    /// Events processed.
    pub events_processed: u64,
    /// Virtual time at the end of the P2P world, seconds.
    pub end_s: f64,
    /// Push mode: the round in which the last node was informed.
    pub push_rounds: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Served,
    Busy,
    Failed,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    GossipArrive { to: u32, hops: u16, lazy: bool },
    GossipValid { node: u32, hops: u16, via: u8 },
    IHave { to: u32, from: u32 },
    Heartbeat { node: u32, left: u8 },
    PushRound { round: u32 },
    FetchStart { node: u32 },
    Refill { node: u32 },
    Refresh { node: u32 },
    ChunkDone { fetcher: u32, source: u32, chunk: u32, ef: u32, es: u32, outcome: Outcome },
    FlowStart { flow: u32 },
    FlowEnd { flow: u32, ver: u32 },
    ProviderReady { node: u32 },
    Down { node: u32, permanent: bool },
    Up { node: u32 },
    CutEnd,
}

#[derive(Debug)]
struct Entry {
    t: u64,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.t, self.seq).cmp(&(o.t, o.seq))
    }
}

/// One chunk response under fair sharing: from its arrival at the source until its last byte
/// left the source, it takes an equal share of the source's upload.
#[derive(Debug, Clone, Default)]
struct Flow {
    fetcher: u32,
    source: u32,
    chunk: u32,
    ef: u32,
    es: u32,
    /// Bytes still to send at `since`.
    left: f64,
    /// Current rate, bytes per second.
    rate: f64,
    since: f64,
    /// Bumped on every reschedule; `FlowEnd` events of older versions are stale.
    ver: u32,
    /// One-way latency source → fetcher, seconds.
    lat: f64,
    /// When it started sending.
    started: f64,
    /// Bytes in all.
    size: f64,
}

const VIA: [&str; 5] = ["origin", "mesh", "ihave", "catch-up", "push"];

#[derive(Debug, Default, Clone)]
struct Fetcher {
    fetching: bool,
    pending_start: bool,
    start: Option<f64>,
    done: Option<f64>,
    inflight: Vec<u64>,
    slots: Vec<(u32, u16)>,
    cands: Vec<u32>,
    cursor: usize,
    banned: Vec<u32>,
    /// Sources that answered `busy` or timed out, with the time before which they are not asked.
    backoff: Vec<(u32, f64)>,
    refill_pending: bool,
    bytes: u64,
    sources: Vec<u32>,
    bad: u32,
    timeouts: u32,
    busy: u32,
}

struct Cut {
    a: Vec<bool>,
    b: Vec<bool>,
    from: f64,
    to: f64,
}

/// Progress callback: (virtual seconds, events processed, fetches done, fetchers).
pub type Progress<'a> = &'a mut dyn FnMut(f64, u64, usize, usize);

struct Sim<'a> {
    scn: &'a Scenario,
    topo: &'a Topology,
    world: World,
    rng: ChaCha8Rng,
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    now: f64,
    n: usize,
    publisher: u32,
    chunks: usize,
    words: usize,
    chunk_bytes: f64,
    alive: Vec<bool>,
    epoch: Vec<u32>,
    bad_chunks: Vec<bool>,
    drop_gossip: Vec<bool>,
    cuts: Vec<Cut>,
    // gossip
    mesh: Vec<Vec<u32>>,
    got: Vec<bool>,
    valid: Vec<bool>,
    deliveries: Vec<Delivery>,
    gossip_pending: u64,
    push_last_round: u32,
    // dht
    dht: Option<kad::Dht>,
    providers: Vec<(f64, u32)>,
    lookups: Vec<LookupRec>,
    // transfer
    have: Vec<Vec<u64>>,
    have_n: Vec<u32>,
    up_free: Vec<f64>,
    down_free: Vec<f64>,
    flows: Vec<Flow>,
    free_flows: Vec<u32>,
    /// Per host: the flows using its upload / its download.
    up_flows: Vec<Vec<u32>>,
    down_flows: Vec<Vec<u32>>,
    serving: Vec<u32>,
    up_bytes: Vec<u64>,
    down_bytes: Vec<u64>,
    gossip_sent: Vec<u64>,
    fetchers: Vec<Option<Fetcher>>,
    fetch_open: usize,
    fetch_total: usize,
    events: Vec<LogEvent>,
    processed: u64,
}

fn secs_to_ns(t: f64) -> u64 {
    (t * 1e9).round().max(0.0) as u64
}

impl<'a> Sim<'a> {
    fn push(&mut self, at: f64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse(Entry { t: secs_to_ns(at.max(self.now)), seq: self.seq, ev }));
    }

    fn log(&mut self, node: u32, kind: &'static str, peer: Option<u32>, bytes: u64) {
        self.events.push(LogEvent { t_s: self.now, world: self.world, node, kind, peer, bytes });
    }

    /// One-way latency with jitter, seconds.
    fn lat(&mut self, a: u32, b: u32) -> f64 {
        let base = self.topo.latency_ms(a as usize, b as usize) / 1000.0;
        let j = self.scn.topology.jitter;
        if j > 0.0 {
            base * (1.0 + self.rng.gen_range(-j..=j))
        } else {
            base
        }
    }

    fn blocked(&self, a: u32, b: u32) -> bool {
        let (a, b) = (a as usize, b as usize);
        self.cuts.iter().any(|c| self.now >= c.from && self.now < c.to && ((c.a[a] && c.b[b]) || (c.a[b] && c.b[a])))
    }

    fn reachable(&self, a: u32, b: u32) -> bool {
        self.alive[b as usize] && !self.blocked(a, b)
    }

    // ---------------------------------------------------------------- gossip

    fn build_mesh(&mut self) {
        let d = self.scn.protocol.gossip.d;
        let d_hi = self.scn.protocol.gossip.d_hi;
        let n = self.n;
        let mut mesh: Vec<Vec<u32>> = vec![Vec::new(); n];
        for v in 0..n {
            let picks: Vec<u32> = match &self.topo.overlay {
                Overlay::Complete(_) => {
                    let mut p = Vec::new();
                    while p.len() < d.min(n - 1) {
                        if let Some(u) = self.topo.overlay.random_neighbour(v, &mut self.rng) {
                            if !p.contains(&u) {
                                p.push(u);
                            }
                        }
                    }
                    p
                }
                Overlay::Graph(g) => g[v].choose_multiple(&mut self.rng, d).copied().collect(),
            };
            for u in picks {
                // GRAFT is symmetric; a peer already at D_hi refuses.
                if mesh[v].len() < d_hi && mesh[u as usize].len() < d_hi && !mesh[v].contains(&u) {
                    mesh[v].push(u);
                    mesh[u as usize].push(v as u32);
                }
            }
        }
        self.mesh = mesh;
    }

    fn send_gossip(&mut self, from: u32, to: u32, hops: u16, order: usize, lazy: bool) {
        if !self.reachable(from, to) {
            return;
        }
        let tx = self.scn.protocol.gossip.message_bytes as f64 / self.topo.hosts[from as usize].up_bps;
        let at = self.now + tx * (order + 1) as f64 + self.lat(from, to);
        self.gossip_sent[from as usize] += 1;
        self.gossip_pending += 1;
        self.push(at, Ev::GossipArrive { to, hops, lazy });
    }

    fn on_gossip_arrive(&mut self, to: u32, hops: u16, lazy: bool) {
        self.gossip_pending -= 1;
        let v = to as usize;
        if !self.alive[v] {
            return;
        }
        if self.got[v] {
            self.deliveries[v].duplicates += 1;
            return;
        }
        self.got[v] = true;
        let at = self.now + self.scn.protocol.gossip.validation_ms / 1000.0;
        self.gossip_pending += 1;
        let via = if self.scn.protocol.gossip.mode == GossipMode::Push {
            4
        } else if lazy {
            2
        } else {
            1
        };
        self.push(at, Ev::GossipValid { node: to, hops, via });
    }

    fn on_gossip_valid(&mut self, node: u32, hops: u16, via: u8) {
        self.gossip_pending -= 1;
        let v = node as usize;
        if self.valid[v] {
            return;
        }
        if !self.alive[v] {
            // Went down while validating: it will catch up when it returns.
            self.got[v] = false;
            return;
        }
        self.valid[v] = true;
        let d = &mut self.deliveries[v];
        d.t_s = Some(self.now);
        d.hops = u32::from(hops);
        d.via = VIA[via as usize];
        self.log(node, "announce-delivered", None, self.scn.protocol.gossip.message_bytes);
        self.maybe_start_fetch(node);
        if self.drop_gossip[v] || self.scn.protocol.gossip.mode == GossipMode::Push {
            return;
        }
        // Flood publish from the origin to every connected peer; mesh push elsewhere.
        let targets: Vec<u32> = if via == 0 {
            match &self.topo.overlay {
                Overlay::Complete(_) if self.n > 1000 => self.mesh[v].clone(),
                o => o.neighbours(v),
            }
        } else {
            self.mesh[v].clone()
        };
        for (i, u) in targets.into_iter().enumerate() {
            if !self.got[u as usize] || self.rng.gen_bool(0.5) {
                // Peers that already forwarded to us do not get it back; others might
                // (they cannot know), counted as duplicates on arrival.
                self.send_gossip(node, u, hops + 1, i, false);
            }
        }
        let hb = self.scn.protocol.gossip.heartbeat_ms / 1000.0;
        let phase = self.rng.gen_range(0.0..hb);
        let left = self.scn.protocol.gossip.history_gossip.min(255) as u8;
        if left > 0 {
            self.gossip_pending += 1;
            self.push(self.now + phase, Ev::Heartbeat { node, left });
        }
    }

    fn on_heartbeat(&mut self, node: u32, left: u8) {
        self.gossip_pending -= 1;
        let v = node as usize;
        if !self.alive[v] {
            return;
        }
        let lazy = self.scn.protocol.gossip.d_lazy;
        let mut picked = Vec::with_capacity(lazy);
        for _ in 0..(4 * lazy) {
            if picked.len() >= lazy {
                break;
            }
            if let Some(u) = self.topo.overlay.random_neighbour(v, &mut self.rng) {
                if !self.mesh[v].contains(&u) && !picked.contains(&u) {
                    picked.push(u);
                }
            }
        }
        for u in picked {
            if self.reachable(node, u) {
                let at = self.now + self.lat(node, u);
                self.gossip_pending += 1;
                self.push(at, Ev::IHave { to: u, from: node });
            }
        }
        if left > 1 {
            self.gossip_pending += 1;
            self.push(
                self.now + self.scn.protocol.gossip.heartbeat_ms / 1000.0,
                Ev::Heartbeat { node, left: left - 1 },
            );
        }
    }

    fn on_ihave(&mut self, to: u32, from: u32) {
        self.gossip_pending -= 1;
        if !self.alive[to as usize] || self.got[to as usize] || !self.reachable(to, from) {
            return;
        }
        // IWANT goes back, the message comes forward.
        let back = self.lat(to, from);
        let hops = self.deliveries[from as usize].hops as u16 + 1;
        self.gossip_sent[from as usize] += 1;
        let tx = self.scn.protocol.gossip.message_bytes as f64 / self.topo.hosts[from as usize].up_bps;
        let fwd = self.lat(from, to);
        self.gossip_pending += 1;
        self.push(self.now + back + tx + fwd, Ev::GossipArrive { to, hops, lazy: true });
    }

    fn on_push_round(&mut self, round: u32) {
        let fanout = self.scn.protocol.gossip.fanout;
        let informed: Vec<u32> =
            (0..self.n as u32).filter(|&v| self.valid[v as usize] && self.alive[v as usize]).collect();
        let all = (0..self.n).all(|v| self.valid[v] || !self.alive[v]);
        if all {
            return;
        }
        self.push_last_round = round + 1;
        for v in informed {
            if self.drop_gossip[v as usize] {
                continue;
            }
            for _ in 0..fanout {
                if let Some(u) = self.topo.overlay.random_neighbour(v as usize, &mut self.rng) {
                    let hops = self.deliveries[v as usize].hops as u16 + 1;
                    self.send_gossip(v, u, hops, 0, false);
                }
            }
        }
        if self.now < self.scn.sim.duration_s {
            let hb = self.scn.protocol.gossip.heartbeat_ms / 1000.0;
            self.push(self.now + hb, Ev::PushRound { round: round + 1 });
        }
    }

    /// A node back from a crash or a cut pulls the catalog from a neighbour that has the manifest.
    fn catch_up(&mut self, node: u32) {
        let v = node as usize;
        if self.world != World::P2p || self.got[v] || !self.alive[v] {
            return;
        }
        let neigh = match &self.topo.overlay {
            Overlay::Complete(_) => self.mesh[v].clone(),
            o => o.neighbours(v),
        };
        if let Some(&u) = neigh.iter().find(|&&u| self.valid[u as usize] && self.reachable(node, u)) {
            self.got[v] = true;
            let at = self.now + 2.0 * self.lat(node, u) + self.scn.protocol.gossip.validation_ms / 1000.0;
            let hops = self.deliveries[u as usize].hops as u16 + 1;
            self.gossip_pending += 1;
            self.push(at, Ev::GossipValid { node, hops, via: 3 });
        }
    }

    // ---------------------------------------------------------------- dht

    fn key_of_dataset(&self) -> u64 {
        0x6c69_656e_6461_7461 ^ self.scn.sim.seed.rotate_left(17)
    }

    fn dht_lookup(&mut self, node: u32, purpose: &'static str) -> f64 {
        let Some(dht) = self.dht.take() else { return 0.0 };
        let key = self.key_of_dataset();
        let timeout = self.scn.protocol.transfer.request_timeout_ms / 1000.0;
        let rpc = self.scn.protocol.kad.rpc_ms / 1000.0;
        let res = {
            let this = &mut *self;
            let mut rng = ChaCha8Rng::seed_from_u64(this.rng.gen());
            let topo = this.topo;
            let jitter = this.scn.topology.jitter;
            let rtt = |a: u32, b: u32| {
                let base = topo.latency_ms(a as usize, b as usize) / 1000.0;
                let j = if jitter > 0.0 { 1.0 + rng.gen_range(-jitter..=jitter) } else { 1.0 };
                2.0 * base * j + rpc
            };
            let reach = |a: u32, b: u32| this.reachable(a, b);
            dht.lookup(node, key, timeout, rtt, reach, None)
        };
        self.dht = Some(dht);
        self.lookups.push(LookupRec {
            node,
            purpose,
            t_s: self.now,
            hops: res.hops,
            rounds: res.rounds,
            rpcs: res.rpcs,
            latency_s: res.latency_s,
            found: !res.closest.is_empty(),
        });
        if res.closest.is_empty() {
            return f64::INFINITY;
        }
        res.latency_s
    }

    fn probe_lookups(&mut self) {
        let Some(dht) = self.dht.take() else { return };
        let probes = self.scn.protocol.kad.probe_lookups;
        let timeout = self.scn.protocol.transfer.request_timeout_ms / 1000.0;
        let rpc = self.scn.protocol.kad.rpc_ms / 1000.0;
        for _ in 0..probes {
            let from = self.rng.gen_range(0..self.n) as u32;
            let key: u64 = self.rng.gen();
            let target = dht.true_closest(key, &self.alive);
            let topo = self.topo;
            let res = dht.lookup(
                from,
                key,
                timeout,
                |a, b| 2.0 * topo.latency_ms(a as usize, b as usize) / 1000.0 + rpc,
                |a, b| self.reachable(a, b),
                target,
            );
            self.lookups.push(LookupRec {
                node: from,
                purpose: "probe",
                t_s: self.now,
                hops: res.hops,
                rounds: res.rounds,
                rpcs: res.rpcs,
                latency_s: res.latency_s,
                found: res.found_closest,
            });
        }
        self.dht = Some(dht);
    }

    /// Up to k alive providers whose records were stored by `t`.
    fn providers_at(&mut self, t: f64) -> Vec<u32> {
        let ready = self.providers.partition_point(|&(r, _)| r <= t);
        let k = self.scn.protocol.kad.k;
        let mut out = Vec::new();
        if ready <= k {
            out.extend(self.providers[..ready].iter().map(|&(_, v)| v));
        } else {
            for _ in 0..(3 * k) {
                let i = self.rng.gen_range(0..ready);
                let v = self.providers[i].1;
                if !out.contains(&v) {
                    out.push(v);
                }
                if out.len() >= k {
                    break;
                }
            }
        }
        out.retain(|&v| self.alive[v as usize]);
        out
    }

    // ---------------------------------------------------------------- transfer

    fn has_chunk(&self, v: u32, c: usize) -> bool {
        self.have[v as usize].get(c / 64).is_some_and(|w| w >> (c % 64) & 1 == 1)
    }

    fn pick_chunk(&mut self, d: u32, s: u32) -> Option<usize> {
        let (dv, sv) = (d as usize, s as usize);
        if self.have_n[sv] == 0 {
            return None;
        }
        let words = self.words;
        let start = match self.scn.protocol.transfer.order {
            ChunkOrder::Sequential => 0,
            ChunkOrder::Random => self.rng.gen_range(0..words),
        };
        let f = self.fetchers[dv].as_ref()?;
        for i in 0..words {
            let w = (start + i) % words;
            let mut bits = self.have[sv][w] & !self.have[dv][w] & !f.inflight[w];
            if bits == 0 {
                continue;
            }
            let pick = match self.scn.protocol.transfer.order {
                ChunkOrder::Sequential => bits.trailing_zeros(),
                ChunkOrder::Random => {
                    let k = self.rng.gen_range(0..bits.count_ones());
                    for _ in 0..k {
                        bits &= bits - 1;
                    }
                    bits.trailing_zeros()
                }
            };
            let c = w * 64 + pick as usize;
            if c < self.chunks {
                return Some(c);
            }
        }
        None
    }

    fn maybe_start_fetch(&mut self, node: u32) {
        let v = node as usize;
        if self.world != World::P2p || self.scn.workload.fetch_start != FetchStart::OnAnnounce {
            return;
        }
        let Some(f) = self.fetchers[v].as_mut() else { return };
        if f.fetching || f.pending_start || f.done.is_some() {
            return;
        }
        f.pending_start = true;
        let delay = self.scn.workload.fetch_delay_ms / 1000.0;
        let at = self.now + if delay > 0.0 { self.rng.gen_range(0.0..delay) } else { 0.0 };
        self.push(at, Ev::FetchStart { node });
    }

    fn on_fetch_start(&mut self, node: u32) {
        let v = node as usize;
        if !self.alive[v] {
            // Starts when it comes back up.
            return;
        }
        let Some(f) = self.fetchers[v].as_ref() else { return };
        if f.fetching || f.done.is_some() {
            return;
        }
        let (cands, ready) = match self.world {
            World::Portal => {
                let src = if node as usize == self.topo.portal.unwrap_or(0) {
                    self.publisher
                } else {
                    self.topo.portal.unwrap_or(0) as u32
                };
                (vec![src], self.now)
            }
            World::P2p => {
                let l = self.dht_lookup(node, "find-providers");
                let l = if l.is_finite() { l } else { self.scn.protocol.transfer.request_timeout_ms / 1000.0 };
                let mut c = self.providers_at(self.now + l);
                if self.scn.protocol.transfer.ask_neighbours {
                    let neigh = match &self.topo.overlay {
                        Overlay::Complete(_) => self.mesh[v].clone(),
                        o => o.neighbours(v),
                    };
                    for u in neigh {
                        if !c.contains(&u) {
                            c.push(u);
                        }
                    }
                }
                c.shuffle(&mut self.rng);
                (c, self.now + l)
            }
        };
        let now = self.now;
        if let Some(f) = self.fetchers[v].as_mut() {
            f.fetching = true;
            f.pending_start = false;
            f.start.get_or_insert(now);
            f.cands = cands;
        }
        self.log(node, "fetch-started", None, 0);
        self.push(ready, Ev::Refill { node });
        if self.world == World::P2p {
            self.push(ready + self.scn.protocol.transfer.provider_refresh_ms / 1000.0, Ev::Refresh { node });
        }
    }

    fn on_refresh(&mut self, node: u32) {
        let v = node as usize;
        let active = self.fetchers[v].as_ref().is_some_and(|f| f.fetching && f.done.is_none());
        if !active {
            return;
        }
        if self.alive[v] {
            let l = self.dht_lookup(node, "find-providers");
            let l = if l.is_finite() { l } else { 0.0 };
            let fresh = self.providers_at(self.now + l);
            if let Some(f) = self.fetchers[v].as_mut() {
                for u in fresh {
                    if !f.cands.contains(&u) {
                        f.cands.push(u);
                    }
                }
            }
            self.refill(node);
        }
        self.push(self.now + self.scn.protocol.transfer.provider_refresh_ms / 1000.0, Ev::Refresh { node });
    }

    fn refill(&mut self, node: u32) {
        let v = node as usize;
        if !self.alive[v] {
            return;
        }
        let rpp = self.scn.protocol.transfer.requests_per_peer as u16;
        let max_sources = self.scn.protocol.transfer.max_sources;
        let Some(f) = self.fetchers[v].take() else { return };
        if !f.fetching || f.done.is_some() {
            self.fetchers[v] = Some(f);
            return;
        }
        // Fill existing slots; drop sources with nothing useful.
        let mut i = 0;
        let mut requests = Vec::new();
        self.fetchers[v] = Some(f);
        while let Some(f) = self.fetchers[v].as_ref() {
            if i >= f.slots.len() {
                // Add a source if there is room.
                if f.slots.len() >= max_sources || f.cands.is_empty() {
                    break;
                }
                let mut added = false;
                let tries = f.cands.len();
                for _ in 0..tries {
                    let Some(f) = self.fetchers[v].as_mut() else { break };
                    let s = f.cands[f.cursor % f.cands.len()];
                    f.cursor = (f.cursor + 1) % f.cands.len();
                    let now = self.now;
                    f.backoff.retain(|b| b.1 > now);
                    if s == node
                        || f.banned.contains(&s)
                        || f.slots.iter().any(|x| x.0 == s)
                        || f.backoff.iter().any(|b| b.0 == s)
                    {
                        continue;
                    }
                    if self.pick_chunk(node, s).is_some() {
                        if let Some(f) = self.fetchers[v].as_mut() {
                            f.slots.push((s, 0));
                        }
                        added = true;
                        break;
                    }
                }
                if !added {
                    break;
                }
                continue;
            }
            let (s, inflight) = f.slots[i];
            if inflight < rpp {
                if let Some(c) = self.pick_chunk(node, s) {
                    if let Some(f) = self.fetchers[v].as_mut() {
                        f.inflight[c / 64] |= 1 << (c % 64);
                        f.slots[i].1 += 1;
                    }
                    requests.push((s, c));
                    continue;
                }
                if inflight == 0 {
                    if let Some(f) = self.fetchers[v].as_mut() {
                        f.slots.swap_remove(i);
                    }
                    continue;
                }
            }
            i += 1;
        }
        for (s, c) in requests {
            self.request(node, s, c);
        }
        let idle = self.fetchers[v].as_ref().is_some_and(|f| f.slots.is_empty() && !f.refill_pending);
        if idle {
            if let Some(f) = self.fetchers[v].as_mut() {
                f.refill_pending = true;
            }
            let r = self.scn.protocol.transfer.retry_ms / 1000.0 * self.rng.gen_range(0.5..1.5);
            self.push(self.now + r, Ev::Refill { node });
        }
    }

    fn request(&mut self, d: u32, s: u32, c: usize) {
        let (ef, es) = (self.epoch[d as usize], self.epoch[s as usize]);
        let chunk = c as u32;
        if !self.reachable(d, s) {
            let at = self.now + self.scn.protocol.transfer.request_timeout_ms / 1000.0;
            self.push(at, Ev::ChunkDone { fetcher: d, source: s, chunk, ef, es, outcome: Outcome::Failed });
            return;
        }
        let l = self.lat(d, s);
        let is_portal = Some(s as usize) == self.topo.portal;
        if !is_portal && self.serving[s as usize] as usize >= self.scn.protocol.transfer.max_inflight_serve {
            self.push(
                self.now + 2.0 * l,
                Ev::ChunkDone { fetcher: d, source: s, chunk, ef, es, outcome: Outcome::Busy },
            );
            return;
        }
        self.serving[s as usize] += 1;
        let size = self.chunk_size(c);
        let arrive = self.now + l;
        // The portal baseline keeps FIFO pipes: it has no upload cap, so fair sharing would
        // re-rate every one of its N responses at every start and end (N² work).
        if self.scn.protocol.transfer.sharing == Sharing::Fair && self.world == World::P2p {
            let flow = Flow {
                fetcher: d,
                source: s,
                chunk,
                ef,
                es,
                left: size,
                rate: 0.0,
                since: arrive,
                ver: 0,
                lat: l,
                started: arrive,
                size,
            };
            let id = match self.free_flows.pop() {
                Some(id) => {
                    let ver = self.flows[id as usize].ver.wrapping_add(1);
                    self.flows[id as usize] = Flow { ver, ..flow };
                    id
                }
                None => {
                    self.flows.push(flow);
                    (self.flows.len() - 1) as u32
                }
            };
            self.push(arrive, Ev::FlowStart { flow: id });
            return;
        }
        let start_up = arrive.max(self.up_free[s as usize]);
        let up_end = start_up + size / self.topo.hosts[s as usize].up_bps;
        self.up_free[s as usize] = up_end;
        let down_end = self.down_free[d as usize].max(self.now) + size / self.topo.hosts[d as usize].down_bps;
        self.down_free[d as usize] = down_end;
        let finish = (up_end + l).max(down_end);
        self.push(finish, Ev::ChunkDone { fetcher: d, source: s, chunk, ef, es, outcome: Outcome::Served });
    }

    /// A response reaches its source: it starts taking its shares (or, if either end went down
    /// meanwhile, ends at once and `on_chunk_done` sorts out what that means).
    fn on_flow_start(&mut self, id: u32) {
        let f = &self.flows[id as usize];
        let (s, d) = (f.source as usize, f.fetcher as usize);
        if self.epoch[s] != f.es || self.epoch[d] != f.ef {
            self.finish_flow(id, 0.0);
            return;
        }
        let now = self.now;
        let f = &mut self.flows[id as usize];
        f.since = now;
        f.started = now;
        self.up_flows[s].push(id);
        self.down_flows[d].push(id);
        self.reshare(s);
    }

    /// Re-computes the rates of the flows through `s`'s upload (an equal share each) and
    /// reschedules the ends of those whose rate changed.
    fn reshare(&mut self, s: usize) {
        let rate = self.topo.hosts[s].up_bps / self.up_flows[s].len().max(1) as f64;
        let now = self.now;
        for i in 0..self.up_flows[s].len() {
            let id = self.up_flows[s][i];
            let f = &mut self.flows[id as usize];
            if (rate - f.rate).abs() <= 1e-9 * rate {
                continue;
            }
            f.left = (f.left - f.rate * (now - f.since)).max(0.0);
            f.since = now;
            f.rate = rate;
            f.ver = f.ver.wrapping_add(1);
            let (at, ver) = (now + f.left / rate, f.ver);
            self.push(at, Ev::FlowEnd { flow: id, ver });
        }
    }

    /// The last byte of a flow left its source (if `ver` is current): the fetcher's download
    /// pipe takes the chunk from one latency after its first byte left (or when the pipe is
    /// free), and it is complete when that is done and its last byte has crossed the link.
    fn on_flow_end(&mut self, id: u32, ver: u32) {
        if self.flows[id as usize].ver != ver {
            return;
        }
        let (s, d, lat, started, size) = {
            let f = &self.flows[id as usize];
            (f.source as usize, f.fetcher as usize, f.lat, f.started, f.size)
        };
        let down_end = self.down_free[d].max(started + lat) + size / self.topo.hosts[d].down_bps;
        self.down_free[d] = down_end;
        let done = (self.now + lat).max(down_end);
        self.detach_flow(id);
        self.finish_flow(id, done - self.now);
        self.reshare(s);
    }

    fn detach_flow(&mut self, id: u32) {
        let (s, d) = (self.flows[id as usize].source as usize, self.flows[id as usize].fetcher as usize);
        if let Some(i) = self.up_flows[s].iter().position(|&x| x == id) {
            self.up_flows[s].swap_remove(i);
        }
        if let Some(i) = self.down_flows[d].iter().position(|&x| x == id) {
            self.down_flows[d].swap_remove(i);
        }
    }

    /// Ends flow `id`: its chunk is done (or failed, by the epochs) `after` seconds from now.
    fn finish_flow(&mut self, id: u32, after: f64) {
        let f = &mut self.flows[id as usize];
        f.ver = f.ver.wrapping_add(1);
        let (fetcher, source, chunk, ef, es) = (f.fetcher, f.source, f.chunk, f.ef, f.es);
        self.free_flows.push(id);
        self.push(self.now + after, Ev::ChunkDone { fetcher, source, chunk, ef, es, outcome: Outcome::Served });
    }

    /// Host `v` went down: every flow through it ends now (failed for the fetcher when `v` was
    /// the source; ignored when `v` was the fetcher) and the other ends' shares grow.
    fn drop_flows_of(&mut self, v: usize) {
        let mut ids = std::mem::take(&mut self.up_flows[v]);
        ids.append(&mut std::mem::take(&mut self.down_flows[v]));
        for id in ids {
            self.detach_flow(id);
            let s = self.flows[id as usize].source as usize;
            self.finish_flow(id, 0.0);
            self.reshare(s);
        }
    }

    fn chunk_size(&self, c: usize) -> f64 {
        let total = self.scn.dataset_bytes() as f64;
        let start = c as f64 * self.chunk_bytes;
        (total - start).min(self.chunk_bytes)
    }

    fn on_chunk_done(&mut self, fetcher: u32, source: u32, chunk: u32, ef: u32, es: u32, outcome: Outcome) {
        let (dv, sv, c) = (fetcher as usize, source as usize, chunk as usize);
        let mut outcome = outcome;
        if matches!(outcome, Outcome::Served) {
            if self.epoch[sv] == es {
                self.serving[sv] = self.serving[sv].saturating_sub(1);
            }
            if self.epoch[sv] != es || self.blocked(fetcher, source) {
                outcome = Outcome::Failed;
            }
        }
        if self.epoch[dv] != ef {
            return;
        }
        let size = self.chunk_size(c);
        let bad = self.bad_chunks[sv];
        let retry = self.scn.protocol.transfer.retry_ms / 1000.0 * self.rng.gen_range(0.5..1.5);
        let until = self.now + retry;
        let Some(f) = self.fetchers[dv].as_mut() else { return };
        f.inflight[c / 64] &= !(1 << (c % 64));
        let slot = f.slots.iter().position(|x| x.0 == source);
        if let Some(i) = slot {
            f.slots[i].1 = f.slots[i].1.saturating_sub(1);
        }
        let drop_slot = |f: &mut Fetcher| {
            if let Some(i) = f.slots.iter().position(|x| x.0 == source) {
                f.slots.swap_remove(i);
            }
        };
        match outcome {
            Outcome::Busy => {
                f.busy += 1;
                f.backoff.push((source, until));
                drop_slot(f);
            }
            Outcome::Failed => {
                f.timeouts += 1;
                f.backoff.push((source, until));
                drop_slot(f);
            }
            Outcome::Served if bad => {
                f.bad += 1;
                f.bytes += size as u64;
                f.banned.push(source);
                drop_slot(f);
                self.up_bytes[sv] += size as u64;
                self.down_bytes[dv] += size as u64;
                self.log(fetcher, "bad-chunk", Some(source), size as u64);
            }
            Outcome::Served => {
                f.bytes += size as u64;
                if !f.sources.contains(&source) {
                    f.sources.push(source);
                }
                self.up_bytes[sv] += size as u64;
                self.down_bytes[dv] += size as u64;
                if !self.has_chunk(fetcher, c) {
                    self.have[dv][c / 64] |= 1 << (c % 64);
                    self.have_n[dv] += 1;
                }
                if self.scn.output.chunk_events {
                    self.log(fetcher, "chunk", Some(source), size as u64);
                }
                if self.have_n[dv] as usize == self.chunks {
                    self.complete(fetcher);
                    return;
                }
            }
        }
        self.refill(fetcher);
    }

    fn complete(&mut self, node: u32) {
        let v = node as usize;
        let now = self.now;
        if let Some(f) = self.fetchers[v].as_mut() {
            f.done = Some(now);
            f.slots.clear();
        }
        self.fetch_open = self.fetch_open.saturating_sub(1);
        let bytes = self.scn.dataset_bytes();
        self.log(node, "fetch-completed", None, bytes);
        if self.world == World::P2p {
            let l = self.dht_lookup(node, "provide");
            if l.is_finite() {
                self.push(self.now + l, Ev::ProviderReady { node });
            }
        } else if Some(v) == self.topo.portal {
            // The portal now has everything; waiting fetchers retry on their own.
        }
    }

    // ---------------------------------------------------------------- faults

    fn on_down(&mut self, node: u32, permanent: bool) {
        let v = node as usize;
        if !self.alive[v] {
            return;
        }
        self.alive[v] = false;
        self.epoch[v] += 1;
        self.serving[v] = 0;
        self.drop_flows_of(v);
        self.log(node, if permanent { "crash" } else { "down" }, None, 0);
        if let Some(f) = self.fetchers[v].as_mut() {
            f.slots.clear();
            f.inflight.iter_mut().for_each(|w| *w = 0);
            f.refill_pending = false;
        }
        if !permanent && self.scn.churn.mean_down_s > 0.0 {
            let d = exp(&mut self.rng, self.scn.churn.mean_down_s);
            if self.now + d < self.scn.sim.duration_s {
                self.push(self.now + d, Ev::Up { node });
            }
        }
    }

    fn on_up(&mut self, node: u32) {
        let v = node as usize;
        self.alive[v] = true;
        self.up_free[v] = self.now;
        self.down_free[v] = self.now;
        self.log(node, "up", None, 0);
        self.catch_up(node);
        let state = self.fetchers[v].as_ref().map(|f| (f.fetching, f.pending_start, f.done.is_some()));
        match state {
            Some((true, _, false)) => self.refill(node),
            Some((false, true, false)) => self.push(self.now, Ev::FetchStart { node }),
            _ => {}
        }
        let up = exp(&mut self.rng, self.scn.churn.mean_up_s);
        if self.now + up < self.scn.sim.duration_s {
            self.push(self.now + up, Ev::Down { node, permanent: false });
        }
    }

    fn on_cut_end(&mut self) {
        for v in 0..self.n as u32 {
            self.catch_up(v);
        }
        for v in 0..self.fetchers.len() as u32 {
            if self.fetchers[v as usize].as_ref().is_some_and(|f| f.fetching && f.done.is_none()) {
                self.refill(v);
            }
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::GossipArrive { to, hops, lazy } => self.on_gossip_arrive(to, hops, lazy),
            Ev::GossipValid { node, hops, via } => self.on_gossip_valid(node, hops, via),
            Ev::IHave { to, from } => self.on_ihave(to, from),
            Ev::Heartbeat { node, left } => self.on_heartbeat(node, left),
            Ev::PushRound { round } => self.on_push_round(round),
            Ev::FetchStart { node } => self.on_fetch_start(node),
            Ev::Refill { node } => {
                if let Some(f) = self.fetchers[node as usize].as_mut() {
                    f.refill_pending = false;
                }
                self.refill(node)
            }
            Ev::Refresh { node } => self.on_refresh(node),
            Ev::ChunkDone { fetcher, source, chunk, ef, es, outcome } => {
                self.on_chunk_done(fetcher, source, chunk, ef, es, outcome)
            }
            Ev::FlowStart { flow } => self.on_flow_start(flow),
            Ev::FlowEnd { flow, ver } => self.on_flow_end(flow, ver),
            Ev::ProviderReady { node } => {
                let t = self.now;
                self.providers.push((t, node));
            }
            Ev::Down { node, permanent } => self.on_down(node, permanent),
            Ev::Up { node } => self.on_up(node),
            Ev::CutEnd => self.on_cut_end(),
        }
    }
}

fn exp(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    -mean * u.ln()
}

fn select_set(topo: &Topology, selector: &str, n: usize) -> Result<Vec<bool>, ScenarioError> {
    let mut set = vec![false; topo.hosts.len()];
    for i in topo.select(selector)? {
        if i < n {
            set[i] = true;
        }
    }
    Ok(set)
}

fn pick_fraction(n: usize, frac: f64, exclude: u32, rng: &mut ChaCha8Rng) -> Vec<bool> {
    let mut set = vec![false; n];
    let count = ((n.saturating_sub(1)) as f64 * frac).round() as usize;
    let mut order: Vec<usize> = (0..n).filter(|&v| v as u32 != exclude).collect();
    order.shuffle(rng);
    for &v in order.iter().take(count) {
        set[v] = true;
    }
    set
}

/// Runs the scenario in the model: the P2P world, then the portal baseline if asked for.
pub fn run(scn: &Scenario, topo: &Topology, progress: Progress<'_>) -> Result<ModelOutput, ScenarioError> {
    let seed = scn.sim.seed;
    let n = topo.nodes();
    let publisher = topo.select(&scn.workload.publisher)?[0] as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0001);
    let fetch_sel = select_set(topo, &scn.workload.fetchers, n)?;
    let mut fetch_set = vec![false; n];
    for v in 0..n {
        if fetch_sel[v] && v as u32 != publisher && rng.gen_bool(scn.workload.fetch_fraction) {
            fetch_set[v] = true;
        }
    }
    let bad_chunks = pick_fraction(n, scn.adversary.bad_chunks, publisher, &mut rng);
    let drop_gossip = pick_fraction(n, scn.adversary.drop_gossip, publisher, &mut rng);
    let churners = pick_fraction(n, scn.churn.fraction, publisher, &mut rng);
    let mut cuts = Vec::new();
    for c in &scn.cut {
        let a = select_set(topo, &c.a, topo.hosts.len())?;
        let b = if c.b == "all" { a.iter().map(|x| !x).collect() } else { select_set(topo, &c.b, topo.hosts.len())? };
        cuts.push((a, b, c.from_s, c.to_s));
    }
    let mut crashes = Vec::new();
    for c in &scn.churn.crash {
        for v in topo.select(&c.nodes)? {
            if v < n && v as u32 != publisher {
                crashes.push((v as u32, c.at_s));
            }
        }
    }
    let dht = kad::Dht::build(n, scn.protocol.kad.k, scn.protocol.kad.alpha, &mut rng);

    let mut out = ModelOutput {
        deliveries: Vec::new(),
        lookups: Vec::new(),
        fetches: Vec::new(),
        load: Vec::new(),
        events: Vec::new(),
        publisher,
        events_processed: 0,
        end_s: 0.0,
        push_rounds: None,
    };
    let worlds: &[World] =
        if scn.baseline.central_portal && topo.portal.is_some() { &[World::P2p, World::Portal] } else { &[World::P2p] };
    let mut dht_slot = Some(dht);
    for &world in worlds {
        let hosts = topo.hosts.len();
        let chunks = scn.chunks();
        let words = chunks.div_ceil(64);
        let mut sim = Sim {
            scn,
            topo,
            world,
            rng: ChaCha8Rng::seed_from_u64(seed ^ if world == World::P2p { 0x11 } else { 0x22 }),
            heap: BinaryHeap::new(),
            seq: 0,
            now: 0.0,
            n,
            publisher,
            chunks,
            words,
            chunk_bytes: scn.chunk_bytes() as f64,
            alive: vec![true; hosts],
            epoch: vec![0; hosts],
            bad_chunks: {
                let mut b = bad_chunks.clone();
                b.resize(hosts, false);
                b
            },
            drop_gossip: {
                let mut b = drop_gossip.clone();
                b.resize(hosts, false);
                b
            },
            cuts: cuts.iter().map(|(a, b, f, t)| Cut { a: a.clone(), b: b.clone(), from: *f, to: *t }).collect(),
            mesh: Vec::new(),
            got: vec![false; hosts],
            valid: vec![false; hosts],
            deliveries: (0..n as u32)
                .map(|node| Delivery { node, t_s: None, hops: 0, duplicates: 0, via: "" })
                .collect(),
            gossip_pending: 0,
            push_last_round: 0,
            dht: None,
            providers: Vec::new(),
            lookups: Vec::new(),
            have: vec![Vec::new(); hosts],
            have_n: vec![0; hosts],
            up_free: vec![0.0; hosts],
            down_free: vec![0.0; hosts],
            flows: Vec::new(),
            free_flows: Vec::new(),
            up_flows: vec![Vec::new(); hosts],
            down_flows: vec![Vec::new(); hosts],
            serving: vec![0; hosts],
            up_bytes: vec![0; hosts],
            down_bytes: vec![0; hosts],
            gossip_sent: vec![0; hosts],
            fetchers: vec![None; hosts],
            fetch_open: 0,
            fetch_total: 0,
            events: Vec::new(),
            processed: 0,
        };
        let full: Vec<u64> = (0..words)
            .map(|w| {
                let bits = (chunks - w * 64).min(64);
                if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                }
            })
            .collect();
        sim.have[publisher as usize] = full;
        sim.have_n[publisher as usize] = chunks as u32;
        let new_fetcher = || Fetcher { inflight: vec![0; words], ..Fetcher::default() };
        for v in 0..n {
            if fetch_set[v] {
                sim.have[v] = vec![0; words];
                sim.fetchers[v] = Some(new_fetcher());
                sim.fetch_total += 1;
            }
        }
        let delay = scn.workload.fetch_delay_ms / 1000.0;
        match world {
            World::P2p => {
                sim.build_mesh();
                sim.valid[publisher as usize] = true;
                sim.got[publisher as usize] = true;
                sim.deliveries[publisher as usize] =
                    Delivery { node: publisher, t_s: Some(0.0), hops: 0, duplicates: 0, via: "origin" };
                for v in 0..n {
                    if churners[v] {
                        let at = exp(&mut sim.rng, scn.churn.mean_up_s);
                        if at < scn.sim.duration_s {
                            sim.push(at, Ev::Down { node: v as u32, permanent: false });
                        }
                    }
                }
                for &(v, at) in &crashes {
                    sim.push(at, Ev::Down { node: v, permanent: true });
                }
                for c in &sim.cuts {
                    if c.to.is_finite() {
                        let t = c.to;
                        sim.seq += 1;
                        let seq = sim.seq;
                        sim.heap.push(Reverse(Entry { t: secs_to_ns(t), seq, ev: Ev::CutEnd }));
                    }
                }
            }
            World::Portal => {
                let portal = topo.portal.unwrap_or(0);
                sim.have[portal] = vec![0; words];
                sim.fetchers[portal] = Some(new_fetcher());
                sim.fetch_total += 1;
                sim.push(0.0, Ev::FetchStart { node: portal as u32 });
            }
        }
        sim.fetch_open = sim.fetch_total;
        if world == World::P2p {
            sim.dht = dht_slot.take();
            sim.probe_lookups();
            // The publisher announces: gossip + provide.
            let l = sim.dht_lookup(publisher, "provide");
            sim.providers.push((if l.is_finite() { l } else { 0.0 }, publisher));
            match scn.protocol.gossip.mode {
                GossipMode::Mesh => sim.on_gossip_valid_origin(),
                GossipMode::Push => sim.push(0.0, Ev::PushRound { round: 0 }),
            }
        }
        let start_base =
            if scn.workload.fetch_start == FetchStart::At { scn.workload.fetch_at_ms / 1000.0 } else { 0.0 };
        if world == World::Portal || scn.workload.fetch_start == FetchStart::At {
            for v in 0..n {
                if fetch_set[v] {
                    let d = if delay > 0.0 { sim.rng.gen_range(0.0..delay) } else { 0.0 };
                    sim.push(start_base + d, Ev::FetchStart { node: v as u32 });
                }
            }
        }
        let limit = secs_to_ns(scn.sim.duration_s);
        let mut next_report = 0u64;
        while let Some(Reverse(e)) = sim.heap.pop() {
            if e.t > limit {
                break;
            }
            sim.now = e.t as f64 / 1e9;
            sim.processed += 1;
            sim.dispatch(e.ev);
            if sim.processed >= next_report {
                next_report = sim.processed + (1 << 16);
                progress(sim.now, sim.processed, sim.fetch_total - sim.fetch_open, sim.fetch_total);
            }
            if sim.fetch_open == 0 && sim.gossip_pending == 0 && sim.gossip_settled() {
                break;
            }
        }
        progress(sim.now, sim.processed, sim.fetch_total - sim.fetch_open, sim.fetch_total);
        out.events_processed += sim.processed;
        for v in 0..hosts {
            if let Some(f) = &sim.fetchers[v] {
                out.fetches.push(FetchRec {
                    world,
                    node: v as u32,
                    start_s: f.start,
                    end_s: f.done,
                    bytes: f.bytes,
                    sources: f.sources.len() as u32,
                    bad_chunks: f.bad,
                    timeouts: f.timeouts,
                    busy: f.busy,
                });
            }
            if sim.up_bytes[v] > 0 || sim.down_bytes[v] > 0 || sim.fetchers[v].is_some() || v as u32 == publisher {
                out.load.push(LoadRec {
                    world,
                    node: v as u32,
                    up_bytes: sim.up_bytes[v],
                    down_bytes: sim.down_bytes[v],
                    gossip_sent: sim.gossip_sent[v],
                });
            }
        }
        out.events.append(&mut sim.events);
        if world == World::P2p {
            out.end_s = sim.now;
            out.deliveries = std::mem::take(&mut sim.deliveries);
            out.lookups = std::mem::take(&mut sim.lookups);
            if scn.protocol.gossip.mode == GossipMode::Push {
                out.push_rounds = Some(sim.push_last_round);
            }
        }
    }
    Ok(out)
}

impl Sim<'_> {
    /// Mesh gossip settles when nothing is in flight; push rounds when every live node knows.
    fn gossip_settled(&self) -> bool {
        self.world == World::Portal
            || self.scn.protocol.gossip.mode == GossipMode::Mesh
            || (0..self.n).all(|v| self.valid[v] || !self.alive[v])
    }

    fn on_gossip_valid_origin(&mut self) {
        let p = self.publisher;
        self.valid[p as usize] = false;
        self.gossip_pending += 1;
        self.on_gossip_valid(p, 0, 0);
    }
}
