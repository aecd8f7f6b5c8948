//! Real-mode results and the calibration of the model against them.
//!
//! Both engines run the same scenario on the same topology, with the same link model (the model
//! is given the real run's connection graph at time 0 as its overlay: the real nodes connect to
//! more peers than their bootstrap neighbours, through Kademlia): the
//! model's per-host FIFO upload and download pipes and one-way latencies are what
//! [`crate::simnet`] imposes on the real nodes' bytes. Computation takes no virtual time in
//! either. The comparison is per metric, the real side averaged over the replicates (seeds
//! `seed ..= seed + replicates - 1`) and the model over the same seeds:
//! - announcement: the median and 90th percentile of the delivery delay over nodes;
//! - fetch: the maximum fetch duration over fetchers (when the swarm is done) and the median.
//!
//! The model agrees when all four are within [`TOLERANCE`] of the real values. The model runs
//! with `sharing = "fair"` here (whatever the scenario says): the real connections interleave
//! 16 KiB segments of concurrent responses, close to processor sharing, so under contention
//! the real fetchers finish together near the end; the model's FIFO pipes (whole chunks first
//! come first served) finish some fetchers early and put the median a third too low.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::checks::{ks_statistic, mean, quantile};
use crate::model::{self, ModelOutput, World};
use crate::real::RealRun;
use crate::report;
use crate::scenario::{Scenario, ScenarioError};
use crate::topology::{Overlay, Topology};

/// Relative tolerance on each compared metric for calibration to count as agreeing.
pub const TOLERANCE: f64 = 0.25;

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

pub use crate::report::spread;

/// Announcement delays (nodes other than the publisher) and fetch durations of one run.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Delivery delays, seconds.
    pub announce: Vec<f64>,
    /// Fetch durations, seconds.
    pub fetch: Vec<f64>,
}

impl Sample {
    /// The compared metrics: announcement p50 and p90, fetch p50 and max.
    pub fn metrics(&self) -> [(&'static str, Option<f64>); 4] {
        let a = sorted(self.announce.clone());
        let f = sorted(self.fetch.clone());
        [
            ("announce_p50_s", quantile(&a, 0.5)),
            ("announce_p90_s", quantile(&a, 0.9)),
            ("fetch_p50_s", quantile(&f, 0.5)),
            ("fetch_max_s", f.last().copied()),
        ]
    }
}

/// The real run as a sample.
pub fn real_sample(r: &RealRun) -> Sample {
    Sample {
        announce: r.announce_s.iter().flatten().copied().filter(|&x| x > 0.0).collect(),
        fetch: r.fetch_s.iter().flatten().copied().collect(),
    }
}

/// The model's run of the same scenario and topology with `seed`; with `connections` (a real
/// run's connection graph at time 0, see [`RealRun::connections`]) as the overlay, so that the
/// model's gossip mesh and neighbours are drawn from the connections the real nodes had; with
/// fair sharing of uploads (the calibrated link model, see the module documentation). The
/// portal world runs too when the scenario asks for the central-portal baseline (it does not
/// depend on the overlay or the sharing: the portal's pipes are always FIFO).
pub fn model_output(
    scn: &Scenario,
    topo: &Topology,
    seed: u64,
    connections: Option<&[Vec<u32>]>,
) -> Result<ModelOutput, ScenarioError> {
    let mut topo = topo.clone();
    if let Some(c) = connections {
        topo.overlay = Overlay::Graph(c.to_vec());
    }
    let topo = &topo;
    let mut s = scn.clone();
    s.sim.seed = seed;
    s.output.plots = false;
    s.protocol.kad.probe_lookups = 0;
    s.protocol.transfer.sharing = crate::scenario::Sharing::Fair;
    model::run(&s, topo, &mut |_, _, _, _| {})
}

impl Sample {
    /// The P2P world of a model run as a sample.
    pub fn from_model(out: &ModelOutput) -> Sample {
        let announce = out.deliveries.iter().filter(|d| d.via != "origin").filter_map(|d| d.t_s).collect();
        let fetch = out
            .fetches
            .iter()
            .filter(|f| f.world == World::P2p)
            .filter_map(|f| f.start_s.zip(f.end_s).map(|(a, b)| b - a))
            .collect();
        Sample { announce, fetch }
    }
}

/// [`model_output`] as a sample, without the portal world.
pub fn model_sample(scn: &Scenario, topo: &Topology, seed: u64, connections: Option<&[Vec<u32>]>) -> Result<Sample> {
    let mut s = scn.clone();
    s.baseline.central_portal = false;
    Ok(Sample::from_model(&model_output(&s, topo, seed, connections)?))
}

/// Compares the mean over runs of each metric; returns the JSON report and whether every metric
/// agrees within [`TOLERANCE`].
pub fn compare(real: &[Sample], model: &[Sample]) -> (serde_json::Value, bool) {
    let mut report = serde_json::Map::new();
    let mut all = true;
    for i in 0..4 {
        let name = real.first().or(model.first()).map_or("", |s| s.metrics()[i].0);
        let r: Vec<f64> = real.iter().filter_map(|s| s.metrics()[i].1).collect();
        let m: Vec<f64> = model.iter().filter_map(|s| s.metrics()[i].1).collect();
        let (rm, mm) = (mean(&r), mean(&m));
        let rel = rm.zip(mm).map(|(r, m)| if r > 0.0 { (m - r) / r } else { 0.0 });
        let ok = rel.is_some_and(|x| x.abs() <= TOLERANCE);
        all &= ok;
        report.insert(
            name.to_owned(),
            json!({"real": spread(&r), "model": spread(&m), "relative_difference": rel, "within_tolerance": ok}),
        );
    }
    let ra: Vec<f64> = real.iter().flat_map(|s| s.announce.iter().copied()).collect();
    let ma: Vec<f64> = model.iter().flat_map(|s| s.announce.iter().copied()).collect();
    let rf: Vec<f64> = real.iter().flat_map(|s| s.fetch.iter().copied()).collect();
    let mf: Vec<f64> = model.iter().flat_map(|s| s.fetch.iter().copied()).collect();
    report.insert("announce_ks".into(), json!(ks_statistic(&ma, &ra)));
    report.insert("fetch_ks".into(), json!(ks_statistic(&mf, &rf)));
    report.insert("tolerance".into(), json!(TOLERANCE));
    report.insert("model_sharing".into(), json!("fair"));
    report.insert("agrees".into(), json!(all));
    (serde_json::Value::Object(report), all)
}

/// Writes `real_runs.json`, `scenario.resolved.toml`, the outputs of [`report::write_runs`]
/// (CSVs, plots) and `summary.json` with the calibration against the model and the
/// central-portal baseline (the model's portal world, one per seed), and returns the summary.
pub fn write_real(dir: &Path, scn: &Scenario, topo: &Topology, runs: &[RealRun]) -> Result<serde_json::Value> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("scenario.resolved.toml"), toml::to_string_pretty(scn)?)?;
    std::fs::write(dir.join("real_runs.json"), serde_json::to_string_pretty(runs)?)?;
    let outputs: Vec<ModelOutput> =
        runs.iter().map(|r| model_output(scn, topo, r.seed, Some(&r.connections))).collect::<Result<_, _>>()?;
    let portals: Vec<Option<ModelOutput>> = outputs.iter().map(|o| Some(o.clone())).collect();
    let measures: Vec<report::RunMeasures> = runs.iter().map(RealRun::measures).collect();
    let per_run = report::write_runs(dir, scn, topo, &measures, &portals)?;
    let real: Vec<Sample> = runs.iter().map(real_sample).collect();
    let model: Vec<Sample> = outputs.iter().map(Sample::from_model).collect();
    let (calibration, _) = compare(&real, &model);
    let spread_of = |f: &dyn Fn(&RealRun) -> f64| spread(&runs.iter().map(f).collect::<Vec<_>>());
    let mut summary = json!({
        "scenario": scn.sim.name,
        "mode": "real",
        "git_commit": scn.sim.git_commit,
        "topology": topo.name,
        "nodes": topo.nodes(),
        "dataset_bytes": scn.dataset_bytes(),
        "chunks": scn.chunks(),
        "replicates": runs.len(),
        "virtual_s": spread_of(&|r| r.virtual_s),
        "wall_s": spread_of(&|r| r.wall_s),
        "startup_wall_s": spread_of(&|r| r.startup_wall_s),
        "startup_virtual_s": spread_of(&|r| r.startup_s),
        "announce_delivered_fraction": spread_of(&|r| r.announce_s.iter().flatten().count() as f64 / r.nodes as f64),
        "fetches_completed_fraction": spread_of(&|r| r.fetch_s.iter().flatten().count() as f64 / r.fetch_s.len().max(1) as f64),
        "fetches_verified": spread_of(&|r| r.verified as f64),
        "publisher_upload_copies": spread_of(&|r| r.publisher_served as f64 / r.dataset_bytes as f64),
    });
    if let Some(obj) = summary.as_object_mut() {
        obj.extend(report::aggregate(&per_run));
        obj.insert("calibration".into(), calibration);
        obj.insert("runs".into(), serde_json::Value::Array(per_run));
    }
    report::write_summary(dir, &summary)?;
    Ok(summary)
}
