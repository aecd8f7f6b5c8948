//! Real-code mode: N real `lien-node` nodes in this process on 127.0.0.1 (TCP), wired along the
//! scenario's overlay, one publishes, the fetchers fetch at once; announcement and fetch times
//! are measured on the wall clock.
//!
//! What this is not (yet): there is no simulated transport, so there is no per-link latency or
//! per-host bandwidth shaping, and time is not virtual: rust-libp2p's timers (futures-timer,
//! web-time) follow the wall clock, not tokio's paused clock. Everything shares this machine's
//! cores, so the binding resource is CPU (hashing, verification, fsync), not links. The numbers
//! calibrate the model at small N under exactly that condition (see `calibrate` and
//! `docs/simulation.md`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libp2p::Multiaddr;
use lien_node::{FetchOptions, Node, NodeConfig, PublishRequest};
use lien_protocol::{ChunkSize, Metadata};
use rand::{RngCore, SeedableRng};
use serde::Serialize;

use crate::scenario::Scenario;
use crate::topology::Topology;

/// What one real run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RealRun {
    /// Nodes started.
    pub nodes: usize,
    /// Seed (dataset bytes and wiring order).
    pub seed: u64,
    /// Seconds to start and connect every node.
    pub startup_s: f64,
    /// Seconds the publisher spent hashing and signing.
    pub publish_s: f64,
    /// Per node: seconds from the end of `publish` until its catalog held the manifest.
    pub announce_s: Vec<Option<f64>>,
    /// Per fetcher: seconds the fetch took (all start together).
    pub fetch_s: Vec<Option<f64>>,
    /// Bytes the publisher served.
    pub publisher_served: u64,
    /// Dataset size, bytes.
    pub dataset_bytes: u64,
    /// Seconds for one fetcher alone against the publisher, before the swarm (the calibration
    /// probe), when measured.
    pub single_fetch_s: Option<f64>,
    /// Wall time of the whole run.
    pub wall_s: f64,
}

fn config(home: &Path, bootstrap: Vec<Multiaddr>) -> NodeConfig {
    let mut c = NodeConfig::for_home(home);
    c.network = "lien-sim".into();
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap_or_else(|_| Multiaddr::empty())];
    c.bootstrap = bootstrap;
    c.request_timeout_secs = 30;
    c.hash_threads = 1;
    c.reprovide_secs = 0;
    c
}

/// Runs the scenario with real nodes: N = the topology's nodes. `probe`: measure one fetcher
/// alone first (for calibration). `progress` gets one line per phase.
pub async fn run(
    scn: &Scenario,
    topo: &Topology,
    seed: u64,
    probe: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<RealRun> {
    let wall = Instant::now();
    let n = topo.nodes();
    let publisher = topo.select(&scn.workload.publisher)?[0];
    let fetchers: Vec<usize> = topo.select(&scn.workload.fetchers)?.into_iter().filter(|&v| v != publisher).collect();
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let mut nodes: Vec<Option<(Node, Multiaddr)>> = (0..n).map(|_| None).collect();
    // Start the publisher first, then the others in index order, each dialling the overlay
    // neighbours already up (or the publisher when none is).
    let mut order: Vec<usize> = vec![publisher];
    order.extend((0..n).filter(|&v| v != publisher));
    let t = Instant::now();
    for (i, &v) in order.iter().enumerate() {
        let mut boot: Vec<Multiaddr> = topo
            .overlay
            .neighbours(v)
            .into_iter()
            .filter_map(|u| nodes[u as usize].as_ref().map(|(_, a)| a.clone()))
            .take(8)
            .collect();
        if boot.is_empty() && i > 0 {
            if let Some((_, a)) = &nodes[publisher] {
                boot.push(a.clone());
            }
        }
        let home = tmp.path().join(format!("n{v}"));
        std::fs::create_dir_all(&home)?;
        let node = Node::start(config(&home, boot)).await.with_context(|| format!("cannot start node {v}"))?;
        let addr = node.listen_addrs().await?.into_iter().next().context("node has no listen address")?;
        nodes[v] = Some((node, addr));
        if (i + 1) % 25 == 0 {
            progress(&format!("started {}/{n} nodes", i + 1));
        }
    }
    let all: Vec<&Node> = nodes.iter().filter_map(|x| x.as_ref().map(|(n, _)| n)).collect();
    // Connected and past at least two gossipsub heartbeats so that meshes exist.
    let deadline = Instant::now() + Duration::from_secs(30 + n as u64 / 5);
    loop {
        let mut ok = 0;
        for node in &all {
            if !node.peers().await?.is_empty() {
                ok += 1;
            }
        }
        if ok == all.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {ok} of {} nodes connected within the deadline", all.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let startup_s = t.elapsed().as_secs_f64();
    progress(&format!("{n} nodes up and connected in {startup_s:.1} s"));

    // The dataset.
    let bytes = scn.dataset_bytes();
    let data_dir = tmp.path().join("dataset");
    std::fs::create_dir_all(&data_dir)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; bytes as usize];
    rng.fill_bytes(&mut buf);
    std::fs::write(data_dir.join("data.bin"), &buf)?;
    drop(buf);
    let chunk = ChunkSize::new(scn.chunk_bytes()).map_err(|e| anyhow::anyhow!("chunk size: {e}"))?;
    let req = PublishRequest {
        path: data_dir.clone(),
        slug: "sim-dataset".parse().map_err(|e| anyhow::anyhow!("slug: {e}"))?,
        metadata: Metadata::titled("lien-sim dataset"),
        in_place: true,
        chunk_size: chunk,
    };
    let pnode = &nodes[publisher].as_ref().context("publisher not started")?.0;
    // Announcement time runs from the end of hashing (the last progress callback), not from the
    // end of `publish`: the manifest is gossiped inside `publish`, so nodes may hold it before
    // `publish` returns. A poller that started before `publish` records when each node has it.
    let hashed_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::new(std::sync::Mutex::new(None));
    let mark = hashed_at.clone();
    let on_progress = Arc::new(move |done: u64, total: u64| {
        if done >= total {
            if let Ok(mut g) = mark.lock() {
                g.get_or_insert_with(Instant::now);
            }
        }
    });
    let watched: Vec<(usize, lien_node::Node)> =
        nodes.iter().enumerate().filter_map(|(v, s)| s.as_ref().map(|(node, _)| (v, node.clone()))).collect();
    let (publisher_key, slug) = (pnode.publisher(), req.slug.clone());
    let limit = Duration::from_secs(30);
    let poller = tokio::spawn(async move {
        let mut seen: Vec<Option<Instant>> = vec![None; n];
        let start = Instant::now();
        while start.elapsed() < limit && watched.iter().any(|(v, _)| seen[*v].is_none()) {
            for (v, node) in &watched {
                if seen[*v].is_none() && node.store().resolve(&publisher_key, &slug).ok().flatten().is_some() {
                    seen[*v] = Some(Instant::now());
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen
    });
    let t = Instant::now();
    let manifest = pnode.publish(req, on_progress).await.context("publish failed")?;
    let publish_s = t.elapsed().as_secs_f64();
    let id = manifest.id();
    let seen = poller.await.context("announcement poller failed")?;
    let base = hashed_at.lock().ok().and_then(|g| *g).unwrap_or(t);
    let mut announce_s: Vec<Option<f64>> =
        seen.iter().map(|s| s.map(|at| at.saturating_duration_since(base).as_secs_f64())).collect();
    announce_s[publisher] = Some(0.0);
    let got = announce_s.iter().filter(|x| x.is_some()).count();
    progress(&format!("announcement reached {got}/{n} nodes"));

    let target = id.to_string();
    let single_fetch_s = if probe {
        let probe_home = tmp.path().join("probe");
        std::fs::create_dir_all(&probe_home)?;
        let paddr = nodes[publisher].as_ref().map(|(_, a)| a.clone()).into_iter().collect();
        let probe = Node::start(config(&probe_home, paddr)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t = Instant::now();
        let r = probe.fetch(&target, &probe_home.join("out"), FetchOptions::default()).await;
        let s = t.elapsed().as_secs_f64();
        probe.shutdown().await;
        r.context("calibration probe fetch failed")?;
        progress(&format!("probe: one fetcher alone took {s:.2} s"));
        Some(s)
    } else {
        None
    };
    let served_before: u64 = pnode.stats().served.values().sum();

    let mut tasks = Vec::new();
    for &v in &fetchers {
        let Some((node, _)) = &nodes[v] else { continue };
        let node = node.clone();
        let target = target.clone();
        let out = tmp.path().join(format!("out{v}"));
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let opts = FetchOptions { timeout: Duration::from_secs(300), progress: None };
            let r = node.fetch(&target, &out, opts).await;
            (v, r.map(|_| t.elapsed().as_secs_f64()))
        }));
    }
    let mut fetch_s = vec![None; n];
    let mut failed = 0;
    for t in tasks {
        let (v, r) = t.await.context("fetch task panicked")?;
        match r {
            Ok(s) => fetch_s[v] = Some(s),
            Err(e) => {
                failed += 1;
                progress(&format!("fetch at node {v} failed: {e}"));
            }
        }
    }
    progress(&format!("{} fetches done, {failed} failed", fetchers.len() - failed));
    let publisher_served = pnode.stats().served.values().sum::<u64>() - served_before;
    for node in &all {
        node.shutdown().await;
    }
    let fetch_s = fetchers.iter().map(|&v| fetch_s[v]).collect();
    Ok(RealRun {
        nodes: n,
        seed,
        startup_s,
        publish_s,
        announce_s,
        fetch_s,
        publisher_served,
        dataset_bytes: bytes,
        single_fetch_s,
        wall_s: wall.elapsed().as_secs_f64(),
    })
}
