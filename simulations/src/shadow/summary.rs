//! `lien-sim shadow-summary`: the hosts' outputs of a Shadow run of an export turned into the
//! real-code mode's results (`summary.json` with the same fields, the CSVs and plots of
//! [`crate::report`]).
//!
//! Read per node from `shadow.data/hosts/h<i>/`: `workload.log` (the publisher's publish start
//! is time 0; a fetch starts with its first `lien get` attempt and ends with the first attempt
//! that exits 0), `home/audit.log` (chunk bytes served) and `fetched/data.bin` (compared byte
//! for byte with the dataset). Announcement times are not measured under Shadow.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::workload::{self, Plan};
use crate::error::OutputError;
use crate::report::{self, FetchMeasure, RunMeasures};
use crate::scenario::Scenario;
use crate::{calibrate, dataset};

/// A Shadow run's measures and how many fetched copies equal the dataset.
#[derive(Debug, Clone)]
pub struct ShadowRun {
    /// The measures.
    pub measures: RunMeasures,
    /// Fetched files identical to the published bytes.
    pub verified: usize,
}

fn read(path: &Path) -> Result<String, OutputError> {
    std::fs::read_to_string(path).map_err(OutputError::io(path))
}

/// The plan an export wrote into its `params.json`.
pub fn read_plan(export_dir: &Path) -> Result<Plan, OutputError> {
    let path = export_dir.join("params.json");
    let mut params: serde_json::Value = serde_json::from_str(&read(&path)?).map_err(OutputError::json(&path))?;
    serde_json::from_value(params["plan"].take()).map_err(OutputError::json(&path))
}

/// Reads the hosts' outputs under `hosts_dir` (`shadow.data/hosts`) for `plan` on `nodes` nodes.
pub fn measure(plan: &Plan, hosts_dir: &Path, nodes: usize) -> Result<ShadowRun, OutputError> {
    let host = |v: usize| hosts_dir.join(super::host_name(v));
    let log_of = |v: usize| -> Result<Option<workload::HostLog>, OutputError> {
        let path = host(v).join(workload::LOG);
        if !path.exists() {
            return Ok(None);
        }
        workload::parse_log(&read(&path)?, &path.display().to_string()).map(Some)
    };
    let publisher_log = log_of(plan.publisher)?.unwrap_or_default();
    let t0 = publisher_log.publish_start.ok_or_else(|| {
        OutputError::Invalid(format!(
            "{} has no publish_start: did the Shadow run reach the publish at {} ms?",
            host(plan.publisher).join(workload::LOG).display(),
            plan.publish_ms
        ))
    })?;
    let data = dataset::generate(plan.dataset_bytes, plan.seed)?;
    let mut fetches = Vec::new();
    let mut verified = 0;
    for f in &plan.fetches {
        let (start_s, duration_s) = match log_of(f.node)?.and_then(|l| l.fetch()) {
            Some((first, done)) => (Some(first - t0), done.map(|d| d - first)),
            None => (None, None),
        };
        if duration_s.is_some() {
            let got = std::fs::read(host(f.node).join(workload::FETCHED_DIR).join(dataset::FILE)).unwrap_or_default();
            verified += usize::from(got == data);
        }
        fetches.push(FetchMeasure { node: f.node, start_s, duration_s });
    }
    let served_bytes = (0..nodes)
        .map(|v| {
            let dir = host(v);
            if dir.is_dir() {
                report::audit_served_bytes(&dir.join(workload::HOME).join(lien_node::audit::AUDIT_FILE)).map(Some)
            } else {
                Ok(None)
            }
        })
        .collect::<Result<_, _>>()?;
    let measures = RunMeasures {
        seed: plan.seed,
        publisher: plan.publisher,
        announce_s: Vec::new(),
        path_latency_s: Vec::new(),
        fetches,
        served_bytes,
        sent_bytes: Vec::new(),
    };
    Ok(ShadowRun { measures, verified })
}

/// Summarises the Shadow run of the export in `export_dir` whose data folder is `data_dir`
/// (default `export_dir/shadow.data`): writes `summary.json`, the CSVs and the plots into
/// `out_dir` and returns the summary.
pub fn summarise(export_dir: &Path, data_dir: Option<&Path>, out_dir: &Path) -> Result<serde_json::Value, OutputError> {
    let scn = Scenario::parse(&read(&export_dir.join("scenario.resolved.toml"))?)?;
    let topo = scn.build_topology(&mut ChaCha8Rng::seed_from_u64(scn.sim.seed))?;
    let plan = read_plan(export_dir)?;
    let hosts_dir: PathBuf = data_dir.map_or_else(|| export_dir.join("shadow.data"), Path::to_path_buf).join("hosts");
    let run = measure(&plan, &hosts_dir, topo.nodes())?;
    let portal = if scn.baseline.central_portal && topo.portal.is_some() {
        Some(calibrate::model_output(&scn, &topo, scn.sim.seed, None)?)
    } else {
        None
    };
    let per_run = report::write_runs(out_dir, &scn, &topo, std::slice::from_ref(&run.measures), &[portal])?;
    let f = scn.dataset_bytes() as f64;
    let completed = run.measures.fetches.iter().filter(|x| x.duration_s.is_some()).count();
    let publisher_served = run.measures.served_bytes.get(plan.publisher).copied().flatten();
    let mut summary = json!({
        "scenario": scn.sim.name,
        "mode": "shadow",
        "git_commit": scn.sim.git_commit,
        "topology": topo.name,
        "nodes": topo.nodes(),
        "dataset_bytes": scn.dataset_bytes(),
        "chunks": scn.chunks(),
        "replicates": 1,
        "publish_at_s": plan.publish_ms as f64 / 1000.0,
        "announce_delay_s": plan.announce_delay_ms as f64 / 1000.0,
        "fetches_completed_fraction": report::spread(&[completed as f64 / run.measures.fetches.len().max(1) as f64]),
        "fetches_verified": report::spread(&[run.verified as f64]),
        "publisher_upload_copies": report::spread(&publisher_served.map(|b| b as f64 / f).into_iter().collect::<Vec<_>>()),
    });
    if let Some(obj) = summary.as_object_mut() {
        obj.extend(report::aggregate(&per_run));
        obj.insert("runs".into(), serde_json::Value::Array(per_run));
    }
    report::write_summary(out_dir, &summary)?;
    Ok(summary)
}
