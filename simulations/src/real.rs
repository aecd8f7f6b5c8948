//! Real-code mode: N real `lien-node` nodes in this process on the simulated network
//! ([`crate::simnet`]: per-link latency, per-host bandwidth, cuts, churn), in virtual time.
//!
//! [`run_virtual`] builds a current-thread tokio runtime whose clock is paused and auto-advances
//! to the next timer whenever every task waits. The simulator's own workspace patches
//! `futures-timer` and `web-time` with shims over tokio's clock (`simulations/shims/`), so
//! rust-libp2p's timers and instants follow that clock too, and Lien's node code uses
//! `tokio::time`. Computation (hashing, verification, store writes) takes no virtual time:
//! `spawn_blocking` work keeps the clock from advancing while it runs.
//!
//! One run: the nodes start one after another, each bootstrapping to up to eight overlay
//! neighbours already up; when all are connected and the connections Kademlia's start-up
//! lookups opened have gone idle and been trimmed (twice `idle_peer_secs` plus 5 s), the
//! publisher publishes a random dataset (time 0). Each node's catalog is watched; a fetcher
//! starts its fetch when its catalog holds the manifest (`fetch_start = "on-announce"`, plus
//! its random delay) or at `fetch_at_ms`. Cuts and churn follow the scenario's clock from time
//! 0. The run lasts `[sim] duration_s` of virtual time; afterwards every fetched file is compared
//! byte for byte with the published one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use lien_node::{FetchOptions, Node, NodeConfig, PublishRequest};
use lien_protocol::{ChunkSize, ContentId, Metadata};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::dataset;
use crate::report::{self, FetchMeasure, RunMeasures};
use crate::scenario::{FetchStart, Scenario};
use crate::simnet::{host_addr, SimNet};
use crate::topology::{Topology, TopologyError};

/// What one real run measured. Times are virtual seconds unless named `wall`.
#[derive(Debug, Clone, Serialize)]
pub struct RealRun {
    /// Nodes started.
    pub nodes: usize,
    /// Seed (dataset bytes, jitter, fetch delays, churn).
    pub seed: u64,
    /// Virtual seconds to start and connect every node (before time 0).
    pub startup_s: f64,
    /// Wall seconds the start-up took.
    pub startup_wall_s: f64,
    /// Per node: virtual seconds from time 0 (publish) until its catalog held the manifest.
    pub announce_s: Vec<Option<f64>>,
    /// Per node: the lowest sum of one-way link latencies from the publisher over any route (no
    /// announcement can arrive earlier), seconds.
    pub path_latency_s: Vec<f64>,
    /// Who was connected to whom at time 0 (symmetric adjacency lists): the overlay the model is
    /// given when it is calibrated against this run.
    pub connections: Vec<Vec<u32>>,
    /// Who was connected to whom when the run ended (after the nodes trimmed idle connections;
    /// nodes down at the end have none).
    pub connections_end: Vec<Vec<u32>>,
    /// Per fetcher (node index): when its fetch started, seconds from time 0.
    pub fetch_start_s: Vec<(usize, Option<f64>)>,
    /// Per fetcher: seconds the fetch took (start to completion), `None` if it did not complete.
    pub fetch_s: Vec<Option<f64>>,
    /// Fetched files identical to the published bytes.
    pub verified: usize,
    /// Bytes the publisher served.
    pub publisher_served: u64,
    /// The publisher's node index.
    pub publisher: usize,
    /// Per node: bytes it sent on the simulated network from time 0 to the end (chunks,
    /// gossip, DHT and protocol overhead; `SimNet::sent`).
    pub sent_bytes: Vec<u64>,
    /// Per node: chunk bytes it served from time 0 to the end (its audit log).
    pub served_bytes: Vec<u64>,
    /// Dataset size, bytes.
    pub dataset_bytes: u64,
    /// Virtual seconds simulated after time 0.
    pub virtual_s: f64,
    /// Wall seconds of the whole run (start-up included).
    pub wall_s: f64,
}

impl RealRun {
    /// What the run measured, in the form every real-code run shares ([`crate::report`]).
    pub fn measures(&self) -> RunMeasures {
        RunMeasures {
            seed: self.seed,
            publisher: self.publisher,
            announce_s: self.announce_s.clone(),
            path_latency_s: self.path_latency_s.clone(),
            fetches: self
                .fetch_start_s
                .iter()
                .zip(&self.fetch_s)
                .map(|(&(node, start_s), &duration_s)| FetchMeasure { node, start_s, duration_s })
                .collect(),
            served_bytes: self.served_bytes.iter().map(|&b| Some(b)).collect(),
            sent_bytes: self.sent_bytes.clone(),
        }
    }
}

/// One node's place: the running node (None while down) and its fetch task.
#[derive(Default)]
struct Slot {
    node: Option<Node>,
    fetch: Option<JoinHandle<()>>,
}

type Slots = Arc<Vec<Mutex<Slot>>>;

fn slot_node(slots: &Slots, v: usize) -> Option<Node> {
    slots[v].lock().ok().and_then(|s| s.node.clone())
}

/// The node's config: the scenario's transfer parameters where the node has them, on the
/// simulated network (listening on `v`'s in-memory address, every byte over libp2p).
fn config(scn: &Scenario, home: &Path, v: usize, bootstrap: Vec<Multiaddr>) -> NodeConfig {
    let mut c = scenario_config(scn, home);
    c.listen = vec![host_addr(v)];
    c.bootstrap = bootstrap;
    // All traffic on the simulated network: no side channel over real TCP.
    c.bulk_transfer = false;
    c
}

/// A node's config for `scn` wherever it runs (here, or in a Shadow export's `lien.toml`): the
/// scenario's transfer parameters (`requests_per_peer`, `max_inflight_serve`,
/// `request_timeout_ms`), `[protocol.kad] k`, `[protocol.connections]`, network `lien-sim`, one
/// hashing thread, no re-provide; listen addresses, bootstrap peers and the bulk channel are the
/// caller's.
pub fn scenario_config(scn: &Scenario, home: &Path) -> NodeConfig {
    let mut c = NodeConfig::for_home(home);
    let t = &scn.protocol.transfer;
    c.fetch_requests_per_peer = t.requests_per_peer.max(1);
    c.max_concurrent_uploads = t.max_inflight_serve.max(1);
    c.request_timeout_secs = ((t.request_timeout_ms / 1000.0).ceil() as u64).max(1);
    c.network = "lien-sim".into();
    c.hash_threads = 1;
    c.reprovide_secs = 0;
    c.dht_k = scn.protocol.kad.k.clamp(1, 64);
    let cn = &scn.protocol.connections;
    c.peer_high_water = cn.high_water.unwrap_or(c.peer_high_water);
    c.peer_low_water = cn.low_water.unwrap_or(c.peer_low_water).min(c.peer_high_water);
    c.idle_peer_secs = cn.idle_s.unwrap_or(c.idle_peer_secs);
    c.min_peers = cn.min_peers.unwrap_or(c.min_peers).min(c.peer_low_water);
    c.reconnect_secs = cn.reconnect_s.unwrap_or(c.reconnect_secs);
    c.dht_refresh_secs = cn.dht_refresh_s.unwrap_or(c.dht_refresh_secs);
    c
}

/// Virtual seconds the network settles between the last node's start and the publish: twice
/// the nodes' `idle_peer_secs` plus 5 s, so that the connections Kademlia's start-up lookups
/// opened have gone idle and been trimmed.
pub fn settle_secs(scn: &Scenario) -> u64 {
    (scenario_config(scn, Path::new("")).idle_peer_secs * 2 + 5).max(5)
}

/// The fetchers of a run: the scenario's `fetchers` selection without the publisher, each kept
/// with probability `fetch_fraction` (drawn from `rng` in node order).
pub fn pick_fetchers(
    scn: &Scenario,
    topo: &Topology,
    publisher: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<usize>, TopologyError> {
    let mut selected = vec![false; topo.hosts.len()];
    for v in topo.select(&scn.workload.fetchers)? {
        selected[v] = true;
    }
    Ok((0..topo.nodes())
        .filter(|&v| selected[v] && v != publisher && rng.gen_bool(scn.workload.fetch_fraction))
        .collect())
}

/// Builds the paused, auto-advancing runtime and runs one replicate in it.
pub fn run_virtual(scn: &Scenario, topo: &Topology, seed: u64, progress: &(dyn Fn(&str) + Sync)) -> Result<RealRun> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .context("cannot start the virtual-time runtime")?;
    rt.block_on(run(scn, topo, seed, progress))
}

/// Where the node homes go: tmpfs when there is one (fsync and file I/O take no virtual time,
/// so disk speed would only slow the wall clock), else the system's temporary folder.
fn scratch() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    dir.context("cannot create a temporary folder")
}

/// Lowest sum of one-way link latencies from `src` to every node over any route (any two nodes
/// may connect): no byte from `src` can arrive earlier. Dijkstra on the complete graph.
fn path_latencies(n: usize, net: &SimNet, src: usize) -> Vec<f64> {
    let mut dist = vec![f64::INFINITY; n];
    let mut done = vec![false; n];
    dist[src] = 0.0;
    for _ in 0..n {
        let Some(u) = (0..n).filter(|&v| !done[v]).min_by(|&a, &b| dist[a].total_cmp(&dist[b])) else { break };
        done[u] = true;
        for w in 0..n {
            let d = dist[u] + net.latency(u, w).as_secs_f64();
            if !done[w] && d < dist[w] {
                dist[w] = d;
            }
        }
    }
    dist
}

/// The nodes' connections as symmetric adjacency lists of node indices.
async fn connection_graph(slots: &Slots, peer_ids: &[Option<libp2p::PeerId>]) -> Result<Vec<Vec<u32>>> {
    let index: std::collections::HashMap<libp2p::PeerId, usize> =
        peer_ids.iter().enumerate().filter_map(|(v, p)| p.map(|p| (p, v))).collect();
    let n = peer_ids.len();
    let mut adj = vec![std::collections::BTreeSet::new(); n];
    for v in 0..n {
        let Some(node) = slot_node(slots, v) else { continue };
        for p in node.peers().await? {
            if let Some(&u) = p.peer_id.parse().ok().and_then(|id: libp2p::PeerId| index.get(&id)) {
                if u != v {
                    adj[v].insert(u as u32);
                    adj[u].insert(v as u32);
                }
            }
        }
    }
    Ok(adj.into_iter().map(|s| s.into_iter().collect()).collect())
}

fn selection(topo: &Topology, selector: &str) -> Result<Vec<bool>> {
    let mut set = vec![false; topo.hosts.len()];
    for i in topo.select(selector)? {
        set[i] = true;
    }
    Ok(set)
}

/// Starts node `v` (again) from its home.
async fn start_node(scn: &Scenario, net: &Arc<SimNet>, home: &Path, v: usize, boot: Vec<Multiaddr>) -> Result<Node> {
    std::fs::create_dir_all(home)?;
    Node::start_with_transport(config(scn, home, v, boot), Some(net.factory(v)))
        .await
        .with_context(|| format!("cannot start node {v}"))
}

/// Runs one replicate. Must run inside [`run_virtual`]'s runtime for virtual time (it also runs
/// on any tokio runtime, then on the wall clock).
pub async fn run(scn: &Scenario, topo: &Topology, seed: u64, progress: &(dyn Fn(&str) + Sync)) -> Result<RealRun> {
    let wall = std::time::Instant::now();
    let n = topo.nodes();
    let publisher = topo.select(&scn.workload.publisher)?[0];
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7ea1);
    let fetchers = pick_fetchers(scn, topo, publisher, &mut rng)?;
    let net = SimNet::new(topo, scn.topology.jitter, seed);
    let tmp = scratch()?;
    let homes: Vec<PathBuf> = (0..n).map(|v| tmp.path().join(format!("n{v}"))).collect();
    let slots: Slots = Arc::new((0..n).map(|_| Mutex::new(Slot::default())).collect());
    let mut peer_ids = vec![None; n];
    let mut boots: Vec<Vec<Multiaddr>> = vec![Vec::new(); n];

    // Start the publisher first, then the others in index order, each dialling the overlay
    // neighbours already up (or the publisher when none is).
    let t = Instant::now();
    let mut order: Vec<usize> = vec![publisher];
    order.extend((0..n).filter(|&v| v != publisher));
    for (i, &v) in order.iter().enumerate() {
        let with_peer = |u: usize| peer_ids[u].map(|p| host_addr(u).with(Protocol::P2p(p)));
        let mut boot: Vec<Multiaddr> =
            topo.overlay.neighbours(v).into_iter().filter_map(|u| with_peer(u as usize)).take(8).collect();
        if boot.is_empty() && i > 0 {
            boot.extend(with_peer(publisher));
        }
        let node = start_node(scn, &net, &homes[v], v, boot.clone()).await?;
        peer_ids[v] = Some(node.peer_id());
        boots[v] = boot;
        if let Ok(mut s) = slots[v].lock() {
            s.node = Some(node);
        }
        if (i + 1) % 100 == 0 {
            progress(&format!("started {}/{n} nodes ({:.1} s wall)", i + 1, wall.elapsed().as_secs_f64()));
        }
    }
    // Connected, then a few gossipsub heartbeats so that meshes exist.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut connected = vec![false; n];
    loop {
        let mut alone = 0;
        for (v, done) in connected.iter_mut().enumerate() {
            if *done {
                continue;
            }
            if let Some(node) = slot_node(&slots, v) {
                if node.peers().await?.is_empty() {
                    alone += 1;
                } else {
                    *done = true;
                }
            }
        }
        if alone == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{alone} of {n} nodes had no peer after 120 virtual seconds");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    progress(&format!(
        "{n} nodes connected: {:.1} s virtual, {:.1} s wall; settling",
        t.elapsed().as_secs_f64(),
        wall.elapsed().as_secs_f64()
    ));
    // Then let the network settle: Kademlia's start-up lookups connect nodes to many others;
    // those connections go idle and are trimmed (`idle_peer_secs`, checked every third of it)
    // before anything is published, as in a network that has been running for a while.
    let settle_end = Instant::now() + Duration::from_secs(settle_secs(scn));
    // Every 5 virtual seconds, report the connections; the last report's graph is time 0's.
    let connections = loop {
        tokio::time::sleep(Duration::from_secs(5).min(settle_end.saturating_duration_since(Instant::now()))).await;
        let g = connection_graph(&slots, &peer_ids).await?;
        progress(&format!(
            "settling: {:.1} s virtual, {:.1} s wall, {:.1} connections per node",
            t.elapsed().as_secs_f64(),
            wall.elapsed().as_secs_f64(),
            g.iter().map(Vec::len).sum::<usize>() as f64 / n as f64
        ));
        if Instant::now() >= settle_end {
            break g;
        }
    };
    let startup_s = t.elapsed().as_secs_f64();
    let startup_wall_s = wall.elapsed().as_secs_f64();
    progress(&format!("{n} nodes up and connected: {startup_s:.1} s virtual, {startup_wall_s:.1} s wall"));

    // The dataset.
    let bytes = scn.dataset_bytes();
    let data_dir = tmp.path().join("dataset");
    std::fs::create_dir_all(&data_dir)?;
    let data = dataset::generate(bytes, seed)?;
    std::fs::write(data_dir.join(dataset::FILE), &data)?;
    let chunk = ChunkSize::new(scn.chunk_bytes()).map_err(|e| anyhow::anyhow!("chunk size: {e}"))?;
    let req = PublishRequest {
        path: data_dir.clone(),
        slug: dataset::SLUG.parse().map_err(|e| anyhow::anyhow!("slug: {e}"))?,
        metadata: Metadata::titled(dataset::TITLE),
        in_place: true,
        chunk_size: chunk,
    };
    let pnode = slot_node(&slots, publisher).context("publisher not started")?;
    let (publisher_key, slug) = (pnode.publisher(), req.slug.clone());
    let served_before: u64 = pnode.stats().served.values().sum();

    // Time 0. Cuts and churn are scheduled from here.
    let t0 = Instant::now();
    let sent_before = net.sent();
    let end = t0 + Duration::from_secs_f64(scn.sim.duration_s);
    let mut drivers: Vec<JoinHandle<()>> = Vec::new();
    for c in &scn.cut {
        let a = selection(topo, &c.a)?;
        let b = if c.b == "all" { a.iter().map(|x| !x).collect() } else { selection(topo, &c.b)? };
        let (from, to) = (c.from_s, c.to_s);
        let net = net.clone();
        drivers.push(tokio::spawn(async move {
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(from)).await;
            let id = net.cut(a, b);
            if to.is_finite() {
                tokio::time::sleep_until(t0 + Duration::from_secs_f64(to)).await;
                net.heal(id);
            }
        }));
    }
    let started: Arc<Mutex<Vec<Option<f64>>>> = Arc::new(Mutex::new(vec![None; n]));
    let finished: Arc<Mutex<Vec<Option<f64>>>> = Arc::new(Mutex::new(vec![None; n]));
    let target: Arc<Mutex<Option<ContentId>>> = Arc::new(Mutex::new(None));
    let shared = Arc::new(scn.clone());
    let mk_ctx = |v: usize| Ctx {
        scn: shared.clone(),
        slots: slots.clone(),
        net: net.clone(),
        homes: homes[v].clone(),
        boot: boots[v].clone(),
        out: tmp.path().join(format!("out{v}")),
        target: target.clone(),
        started: started.clone(),
        finished: finished.clone(),
        t0,
        end,
    };
    let churn = churn_plan(scn, topo, publisher, n, &mut rng)?;
    for (v, events) in churn.into_iter().enumerate().filter(|(_, e)| !e.is_empty()) {
        let ctx = mk_ctx(v);
        drivers.push(tokio::spawn(async move {
            for (at, down_for) in events {
                tokio::time::sleep_until(t0 + Duration::from_secs_f64(at)).await;
                ctx.stop(v).await;
                let Some(d) = down_for else { return };
                tokio::time::sleep(Duration::from_secs_f64(d)).await;
                ctx.restart(v).await;
            }
        }));
    }

    // Publish, and watch every catalog for the manifest; start fetches as it arrives.
    let manifest = pnode.publish(req, Arc::new(|_, _| {})).await.context("publish failed")?;
    drop(pnode);
    let id = manifest.id();
    if let Ok(mut g) = target.lock() {
        *g = Some(id);
    }
    let mut delays = vec![0.0; n];
    for &v in &fetchers {
        if scn.workload.fetch_delay_ms > 0.0 {
            delays[v] = rng.gen_range(0.0..scn.workload.fetch_delay_ms) / 1000.0;
        }
    }
    let is_fetcher: Vec<bool> = (0..n).map(|v| fetchers.contains(&v)).collect();
    let mut announce: Vec<Option<f64>> = vec![None; n];
    announce[publisher] = Some(0.0);
    if scn.workload.fetch_start == FetchStart::At {
        for &v in &fetchers {
            let ctx = mk_ctx(v);
            let at = scn.workload.fetch_at_ms / 1000.0 + delays[v];
            ctx.start_fetch_at(v, at);
        }
    }
    let mut last_report = Instant::now();
    let debug = std::env::var_os("LIEN_SIM_DEBUG").is_some();
    let mut last_debug = Instant::now();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let elapsed = now.duration_since(t0).as_secs_f64();
        for v in 0..n {
            if announce[v].is_some() {
                continue;
            }
            let Some(node) = slot_node(&slots, v) else { continue };
            if node.store().resolve(&publisher_key, &slug).ok().flatten().is_some() {
                announce[v] = Some(elapsed);
                if is_fetcher[v] && scn.workload.fetch_start == FetchStart::OnAnnounce {
                    mk_ctx(v).start_fetch_at(v, elapsed + delays[v]);
                }
            }
        }
        let done = finished.lock().map(|f| f.iter().flatten().count()).unwrap_or(0);
        if debug && now.duration_since(last_debug) >= Duration::from_millis(500) {
            // Where the swarm's time goes: bytes every node sent so far (the publisher's
            // apart), against what all the uplinks could have sent since the announcement.
            last_debug = now;
            let sent = net.sent();
            let publisher_sent = sent.get(publisher).copied().unwrap_or(0);
            let all: u64 = sent.iter().sum();
            let served = slot_node(&slots, publisher).map(|n| n.stats().chunks_served).unwrap_or(0);
            eprintln!(
                "debug t={elapsed:.1}s: sent {:.1} MiB (publisher {:.1} MiB, {served} chunks served), fetches done {done}",
                all as f64 / 1048576.0,
                publisher_sent as f64 / 1048576.0,
            );
        }
        if now.duration_since(last_report) >= Duration::from_secs(30) {
            last_report = now;
            let got = announce.iter().flatten().count();
            progress(&format!(
                "t = {elapsed:.0} s virtual, {:.1} s wall: announcement {got}/{n}, fetches {done}/{}",
                wall.elapsed().as_secs_f64(),
                fetchers.len()
            ));
        }
        // Watch closely while the announcement spreads, then less often.
        let step = if announce.iter().all(Option::is_some) {
            Duration::from_secs(1)
        } else if elapsed < 2.0 {
            Duration::from_millis(1)
        } else if elapsed < 30.0 {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(100)
        };
        tokio::time::sleep(step.min(end.saturating_duration_since(now))).await;
    }
    let virtual_s = t0.elapsed().as_secs_f64();
    let sent_bytes: Vec<u64> =
        net.sent().iter().zip(sent_before.iter().chain(std::iter::repeat(&0))).take(n).map(|(a, b)| a - b).collect();
    let connections_end = connection_graph(&slots, &peer_ids).await?;
    let publisher_served =
        slot_node(&slots, publisher).map_or(0, |p| p.stats().served.values().sum::<u64>() - served_before);
    for d in drivers {
        d.abort();
    }
    for v in 0..n {
        let (node, fetch) = match slots[v].lock() {
            Ok(mut s) => (s.node.take(), s.fetch.take()),
            Err(_) => (None, None),
        };
        if let Some(f) = fetch {
            f.abort();
        }
        if let Some(node) = node {
            node.shutdown().await;
        }
    }
    let started = started.lock().map(|s| s.clone()).unwrap_or_default();
    let finished = finished.lock().map(|s| s.clone()).unwrap_or_default();
    let mut verified = 0;
    for &v in &fetchers {
        if finished[v].is_some() {
            let got = std::fs::read(tmp.path().join(format!("out{v}")).join(dataset::FILE)).unwrap_or_default();
            if got == data {
                verified += 1;
            }
        }
    }
    // Every chunk a node served is in its audit log (kept across restarts).
    let served_bytes: Vec<u64> = homes
        .iter()
        .map(|h| report::audit_served_bytes(&h.join(lien_node::audit::AUDIT_FILE)))
        .collect::<Result<_, _>>()?;
    let done = finished.iter().flatten().count();
    progress(&format!("{done} of {} fetches done, {verified} verified byte for byte", fetchers.len()));
    Ok(RealRun {
        nodes: n,
        seed,
        startup_s,
        startup_wall_s,
        path_latency_s: path_latencies(n, &net, publisher),
        connections,
        connections_end,
        announce_s: announce,
        fetch_start_s: fetchers.iter().map(|&v| (v, started[v])).collect(),
        fetch_s: fetchers.iter().map(|&v| started[v].zip(finished[v]).map(|(a, b)| b - a)).collect(),
        verified,
        publisher_served,
        publisher,
        sent_bytes,
        served_bytes,
        dataset_bytes: bytes,
        virtual_s,
        wall_s: wall.elapsed().as_secs_f64(),
    })
}

/// One node's churn: (stop at, seconds from time 0; down for `Some(seconds)` or for good `None`).
type ChurnEvents = Vec<(f64, Option<f64>)>;

/// Per node: its churn events.
fn churn_plan(
    scn: &Scenario,
    topo: &Topology,
    publisher: usize,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<ChurnEvents>> {
    let mut plan = vec![Vec::new(); n];
    let exp = |rng: &mut ChaCha8Rng, mean: f64| -mean * (1.0 - rng.gen::<f64>()).ln();
    if scn.churn.fraction > 0.0 && scn.churn.mean_up_s > 0.0 {
        let mut order: Vec<usize> = (0..n).filter(|&v| v != publisher).collect();
        order.shuffle(rng);
        let count = ((n.saturating_sub(1)) as f64 * scn.churn.fraction).round() as usize;
        for &v in order.iter().take(count) {
            let mut t = 0.0;
            loop {
                t += exp(rng, scn.churn.mean_up_s);
                if t >= scn.sim.duration_s {
                    break;
                }
                let down = exp(rng, scn.churn.mean_down_s.max(0.001));
                plan[v].push((t, Some(down)));
                t += down;
            }
        }
    }
    for c in &scn.churn.crash {
        for v in topo.select(&c.nodes)? {
            if v < n && v != publisher {
                plan[v].retain(|(at, _)| *at < c.at_s);
                plan[v].push((c.at_s, None));
            }
        }
    }
    Ok(plan)
}

/// What a fetch or churn task needs.
struct Ctx {
    scn: Arc<Scenario>,
    slots: Slots,
    net: Arc<SimNet>,
    homes: PathBuf,
    boot: Vec<Multiaddr>,
    out: PathBuf,
    target: Arc<Mutex<Option<ContentId>>>,
    started: Arc<Mutex<Vec<Option<f64>>>>,
    finished: Arc<Mutex<Vec<Option<f64>>>>,
    t0: Instant,
    end: Instant,
}

impl Ctx {
    fn since_t0(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Starts (once) node `v`'s fetch at `at` seconds from time 0.
    fn start_fetch_at(self, v: usize, at: f64) {
        let slots = self.slots.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep_until(self.t0 + Duration::from_secs_f64(at)).await;
            if let Ok(mut s) = self.started.lock() {
                s[v].get_or_insert(self.t0.elapsed().as_secs_f64());
            }
            self.fetch(v).await;
        });
        let old = slots[v].lock().ok().and_then(|mut s| s.fetch.replace(handle));
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Fetches until done or the run ends; a stopped node's fetch is restarted by `restart`.
    async fn fetch(&self, v: usize) {
        let Some(id) = self.target.lock().ok().and_then(|t| *t) else { return };
        let Some(node) = slot_node(&self.slots, v) else { return };
        let left = self.end.saturating_duration_since(Instant::now());
        let progress: Option<Arc<dyn Fn(lien_node::fetch::FetchProgress) + Send + Sync>> =
            if std::env::var_os("LIEN_SIM_DEBUG").is_some() {
                // When each fetch passes each eighth of the dataset.
                let (t0, last) = (self.t0, Arc::new(std::sync::atomic::AtomicU64::new(0)));
                Some(Arc::new(move |p: lien_node::fetch::FetchProgress| {
                    let eighth = (p.done * 8).checked_div(p.total).unwrap_or(0);
                    if eighth > last.swap(eighth, std::sync::atomic::Ordering::Relaxed) {
                        eprintln!("progress {v} {eighth}/8 {:.2} s peers {}", t0.elapsed().as_secs_f64(), p.peers);
                    }
                }))
            } else {
                None
            };
        let opts = FetchOptions { timeout: left.max(Duration::from_secs(1)), progress };
        if let Ok(report) = node.fetch(&id.to_string(), &self.out, opts).await {
            if std::env::var_os("LIEN_SIM_DEBUG").is_some() {
                let mut from: Vec<(u64, String)> =
                    report.per_peer.iter().map(|(p, b)| (*b, p[p.len() - 6..].to_owned())).collect();
                from.sort_unstable_by(|a, b| b.cmp(a));
                eprintln!(
                    "fetch {v}: {:.2} s, from {} peers: {:?}",
                    self.since_t0(),
                    from.len(),
                    &from[..from.len().min(6)]
                );
            }
            let t = self.since_t0();
            if let Ok(mut f) = self.finished.lock() {
                f[v].get_or_insert(t);
            }
        }
    }

    /// Stops node `v`: its fetch task first (it holds the node), then the node.
    async fn stop(&self, v: usize) {
        let (node, fetch) = match self.slots[v].lock() {
            Ok(mut s) => (s.node.take(), s.fetch.take()),
            Err(_) => return,
        };
        if let Some(f) = fetch {
            f.abort();
            let _ = f.await;
        }
        if let Some(node) = node {
            node.shutdown().await;
        }
    }

    /// Restarts node `v` from its home (retrying while its store is still held by work the old
    /// node left running) and resumes its fetch if it had started one.
    async fn restart(&self, v: usize) {
        for _ in 0..50 {
            match start_node(&self.scn, &self.net, &self.homes, v, self.boot.clone()).await {
                Ok(node) => {
                    if let Ok(mut s) = self.slots[v].lock() {
                        s.node = Some(node);
                    }
                    let was_fetching = self.started.lock().map(|s| s[v].is_some()).unwrap_or(false);
                    let done = self.finished.lock().map(|f| f[v].is_some()).unwrap_or(true);
                    if was_fetching && !done {
                        let ctx = Ctx {
                            scn: self.scn.clone(),
                            slots: self.slots.clone(),
                            net: self.net.clone(),
                            homes: self.homes.clone(),
                            boot: self.boot.clone(),
                            out: self.out.clone(),
                            target: self.target.clone(),
                            started: self.started.clone(),
                            finished: self.finished.clone(),
                            t0: self.t0,
                            end: self.end,
                        };
                        ctx.start_fetch_at(v, self.since_t0());
                    }
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}
