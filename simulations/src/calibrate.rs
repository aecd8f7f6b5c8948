//! Real-mode results and the calibration of the model against them.
//!
//! The real nodes share this machine's cores over loopback, so what limits a transfer is CPU
//! (hashing, verifying, fsync), not links. The calibration therefore fits one number, the rate
//! `B1` of one fetcher alone against the publisher (the probe, measured before the swarm), and
//! predicts the swarm with the model on the same overlay with loopback latency (0.05 ms), the
//! publisher's upload at `B1` and every other capacity at `B1 · cores / fetchers` (the cores divided
//! among concurrent fetchers), fetching from providers only (as the real code does when all start
//! together: partial holders are not providers yet).
//! Agreement is reported as the relative difference of median and maximum fetch times and the
//! two-sample KS statistic; the stated tolerance is ±25% on the median.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::checks::{ks_statistic, mean, quantile};
use crate::model::{self, World};
use crate::real::RealRun;
use crate::scenario::Scenario;
use crate::topology::Topology;

/// Relative tolerance on the median fetch time for calibration to count as agreeing.
pub const TOLERANCE: f64 = 0.25;

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn spread(xs: &[f64]) -> serde_json::Value {
    let m = mean(xs);
    let sd = m.map(|m| (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len().max(2) - 1) as f64).sqrt());
    json!({"mean": m, "sd": sd, "min": xs.iter().copied().reduce(f64::min), "max": xs.iter().copied().reduce(f64::max), "runs": xs.len()})
}

/// The model's prediction of a real run: (announcement times, fetch durations).
pub fn predict(scn: &Scenario, topo: &Topology, b1: f64, cores: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut s = scn.clone();
    s.baseline.central_portal = false;
    s.churn = Default::default();
    s.cut.clear();
    s.adversary = Default::default();
    s.output.plots = false;
    s.protocol.kad.probe_lookups = 0;
    s.topology.jitter = 0.0;
    let mut t = topo.clone();
    let fetchers = t.select(&s.workload.fetchers)?.len().max(1);
    // Observed in the real runs: fetchers started together take every chunk from the
    // publisher (partial holders are not providers yet), so the model may not use neighbours.
    s.protocol.transfer.ask_neighbours = false;
    let rate = b1 * cores as f64 / fetchers as f64;
    let publisher = t.select(&s.workload.publisher)?[0];
    for (i, h) in t.hosts.iter_mut().enumerate() {
        h.up_bps = if i == publisher { b1 } else { rate };
        h.down_bps = rate;
        h.access_ms = 0.0;
    }
    for row in &mut t.region_latency_ms {
        row.iter_mut().for_each(|x| *x = 0.05);
    }
    let out = model::run(&s, &t, &mut |_, _, _, _| {})?;
    let ann = out.deliveries.iter().filter(|d| d.hops > 0).filter_map(|d| d.t_s).collect();
    let fetch = out
        .fetches
        .iter()
        .filter(|f| f.world == World::P2p)
        .filter_map(|f| f.start_s.zip(f.end_s).map(|(a, b)| b - a))
        .collect();
    Ok((ann, fetch))
}

/// Writes `real_runs.json`, `real_fetches.csv`, `real_announce.csv` and `summary.json` with the
/// calibration, and returns the summary.
pub fn write_real(dir: &Path, scn: &Scenario, topo: &Topology, runs: &[RealRun]) -> Result<serde_json::Value> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("scenario.resolved.toml"), toml::to_string_pretty(scn)?)?;
    std::fs::write(dir.join("real_runs.json"), serde_json::to_string_pretty(runs)?)?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("real_fetches.csv"))?);
    writeln!(w, "seed,fetcher,duration_s")?;
    for r in runs {
        for (i, d) in r.fetch_s.iter().enumerate() {
            writeln!(w, "{},{i},{}", r.seed, d.map(|x| format!("{x:.4}")).unwrap_or_default())?;
        }
    }
    w.flush()?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("real_announce.csv"))?);
    writeln!(w, "seed,node,latency_s")?;
    for r in runs {
        for (i, d) in r.announce_s.iter().enumerate() {
            writeln!(w, "{},{},{}", r.seed, topo.hosts[i].name, d.map(|x| format!("{x:.4}")).unwrap_or_default())?;
        }
    }
    w.flush()?;
    let p50s: Vec<f64> =
        runs.iter().filter_map(|r| quantile(&sorted(r.fetch_s.iter().flatten().copied().collect()), 0.5)).collect();
    let maxs: Vec<f64> = runs.iter().filter_map(|r| r.fetch_s.iter().flatten().copied().reduce(f64::max)).collect();
    let ann_max: Vec<f64> =
        runs.iter().filter_map(|r| r.announce_s.iter().flatten().copied().reduce(f64::max)).collect();
    let copies: Vec<f64> = runs.iter().map(|r| r.publisher_served as f64 / r.dataset_bytes as f64).collect();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let calibration = match runs.first().and_then(|r| r.single_fetch_s.map(|s| (r, s))) {
        Some((r, single)) => {
            let b1 = r.dataset_bytes as f64 / single;
            let (m_ann, m_fetch) = predict(scn, topo, b1, cores)?;
            let real_fetch: Vec<f64> = r.fetch_s.iter().flatten().copied().collect();
            let real_ann: Vec<f64> = r.announce_s.iter().flatten().copied().filter(|&x| x > 0.0).collect();
            let (mp, rp) = (quantile(&sorted(m_fetch.clone()), 0.5), quantile(&sorted(real_fetch.clone()), 0.5));
            let rel = mp.zip(rp).map(|(m, r)| (m - r) / r);
            let (mx, rx) = (m_fetch.iter().copied().reduce(f64::max), real_fetch.iter().copied().reduce(f64::max));
            json!({
                "method": "B1 = dataset / (one fetcher alone); model: publisher up B1, others B1*cores/fetchers, providers only, 0.05 ms links",
                "b1_mbit_s": b1 * 8.0 / 1e6,
                "cores": cores,
                "fetch_p50_s": {"real": rp, "model": mp, "relative_difference": rel},
                "fetch_max_s": {"real": rx, "model": mx, "relative_difference": mx.zip(rx).map(|(m, r)| (m - r) / r)},
                "fetch_ks": ks_statistic(&m_fetch, &real_fetch),
                "announce_p50_s": {"real": quantile(&sorted(real_ann.clone()), 0.5), "model": quantile(&sorted(m_ann.clone()), 0.5)},
                "announce_max_s": {"real": real_ann.iter().copied().reduce(f64::max), "model": m_ann.iter().copied().reduce(f64::max)},
                "tolerance": TOLERANCE,
                "agrees": rel.is_some_and(|x| x.abs() <= TOLERANCE),
            })
        }
        None => serde_json::Value::Null,
    };
    let summary = json!({
        "scenario": scn.sim.name,
        "mode": "real",
        "git_commit": scn.sim.git_commit,
        "nodes": topo.nodes(),
        "dataset_bytes": scn.dataset_bytes(),
        "replicates": runs.len(),
        "wall_s": spread(&runs.iter().map(|r| r.wall_s).collect::<Vec<_>>()),
        "startup_s": spread(&runs.iter().map(|r| r.startup_s).collect::<Vec<_>>()),
        "announce_max_s": spread(&ann_max),
        "announce_delivered_fraction": spread(&runs.iter().map(|r| r.announce_s.iter().flatten().count() as f64 / r.nodes as f64).collect::<Vec<_>>()),
        "fetch_p50_s": spread(&p50s),
        "fetch_max_s": spread(&maxs),
        "publisher_upload_copies": spread(&copies),
        "calibration": calibration,
    });
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    Ok(summary)
}
