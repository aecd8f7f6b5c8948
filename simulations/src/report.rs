//! What a run of the real code measured, whoever ran it (real-code mode on the simulated
//! network, or Shadow: see [`crate::shadow::summary`]), and the outputs the model mode writes
//! for it too: `real_fetches.csv`, `real_announce.csv`, `real_node_load.csv`, the fetch and
//! announcement CDFs, upload per node and p2p against the central portal (plots from
//! [`crate::output`]), and the summary fields (fluid bound and the ratios to it, publisher
//! copies, the portal baseline from the model).

use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use crate::checks::{mean, quantile};
use crate::error::OutputError;
use crate::model::{ModelOutput, World};
use crate::output::{self, csv_field};
use crate::scenario::Scenario;
use crate::topology::Topology;

/// One fetch: the node, when it started and how long it took (seconds from the publish).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchMeasure {
    /// Node index.
    pub node: usize,
    /// Start, seconds after the publish (`None`: never started).
    pub start_s: Option<f64>,
    /// Duration, seconds (`None`: did not complete).
    pub duration_s: Option<f64>,
}

impl FetchMeasure {
    /// Completion, seconds after the publish.
    pub fn end_s(&self) -> Option<f64> {
        self.start_s.zip(self.duration_s).map(|(a, d)| a + d)
    }
}

/// What one run of real nodes measured. Times in seconds from the publish (time 0).
#[derive(Debug, Clone, Default)]
pub struct RunMeasures {
    /// Seed of the run.
    pub seed: u64,
    /// The publisher's node index.
    pub publisher: usize,
    /// Per node: when it held the announcement (empty when not measured, as under Shadow).
    pub announce_s: Vec<Option<f64>>,
    /// Per node: the lowest sum of link latencies from the publisher (empty when not computed).
    pub path_latency_s: Vec<f64>,
    /// The fetches.
    pub fetches: Vec<FetchMeasure>,
    /// Per node: chunk bytes served (the node's audit log), `None` when unknown.
    pub served_bytes: Vec<Option<u64>>,
    /// Per node: every byte sent on the network after time 0 (the simulated network's count;
    /// empty when not measured).
    pub sent_bytes: Vec<u64>,
}

impl RunMeasures {
    fn ends(&self) -> Vec<f64> {
        self.fetches.iter().filter_map(FetchMeasure::end_s).collect()
    }

    fn durations(&self) -> Vec<f64> {
        self.fetches.iter().filter_map(|f| f.duration_s).collect()
    }

    fn fetchers(&self) -> Vec<usize> {
        self.fetches.iter().map(|f| f.node).collect()
    }

    /// Per node: the upload the plot and the load CSV rank (bytes sent on the network when
    /// measured, else chunk bytes served).
    fn uploads(&self) -> Vec<(bool, u64)> {
        if self.sent_bytes.is_empty() {
            self.served_bytes.iter().enumerate().map(|(v, b)| (v == self.publisher, b.unwrap_or(0))).collect()
        } else {
            self.sent_bytes.iter().enumerate().map(|(v, &b)| (v == self.publisher, b)).collect()
        }
    }
}

/// One line of a node's audit log (`HOME/audit.log`): only the bytes are read.
#[derive(Debug, Deserialize)]
struct AuditBytes {
    bytes: u64,
}

/// Chunk bytes a node served: the sum of `bytes` over its audit log (0 when there is none).
pub fn audit_served_bytes(path: &Path) -> Result<u64, OutputError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(OutputError::Io { path: path.to_path_buf(), source: e }),
    };
    let mut total = 0u64;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let e: AuditBytes = serde_json::from_str(line).map_err(OutputError::json(path))?;
        total += e.bytes;
    }
    Ok(total)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b)
}

fn bytes_stats(values: &[u64], publisher: Option<u64>) -> serde_json::Value {
    let s: Vec<f64> = {
        let mut v: Vec<f64> = values.iter().map(|&b| b as f64).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    json!({"p50": quantile(&s, 0.5), "max": s.last(), "total": values.iter().sum::<u64>(), "publisher": publisher})
}

/// The summary of one run, with the model mode's field names where they exist: `fetch_p2p`,
/// `fluid_bound_s`, `fetch_median_vs_bound` (median fetch duration / bound),
/// `fetch_last_vs_bound` and `fetch_p2p_vs_bound` (last completion since the publish / bound),
/// `publisher_upload_copies` (chunk bytes served / dataset), `publisher_sent_copies` (all bytes
/// sent / dataset, when measured), `upload`, `announce` (when measured), `fetch_portal` (the
/// model's central-portal baseline, from `portal`, a model run of the same scenario with its
/// portal world) and `p2p_vs_portal`.
pub fn run_summary(
    scn: &Scenario,
    topo: &Topology,
    m: &RunMeasures,
    portal: Option<&ModelOutput>,
) -> serde_json::Value {
    let f = scn.dataset_bytes() as f64;
    let fetchers = m.fetchers();
    let p2p = output::fetch_summary(fetchers.len(), &m.ends(), &m.durations());
    let bound = output::fluid_bound(scn, topo, m.publisher, &fetchers);
    let served: Vec<u64> = m.served_bytes.iter().flatten().copied().collect();
    let publisher_served = m.served_bytes.get(m.publisher).copied().flatten();
    let publisher_sent = m.sent_bytes.get(m.publisher).copied();
    let portal_json = portal.and_then(|out| output::portal_summary(scn, topo, out, m.publisher, &fetchers));
    let p2p_at = |q: &str| p2p["completion_s"][q].as_f64();
    let portal_at = |q: &str| portal_json.as_ref().and_then(|p| p["completion_s"][q].as_f64());
    let announced: Vec<f64> = {
        let mut v: Vec<f64> =
            m.announce_s.iter().enumerate().filter(|(i, _)| *i != m.publisher).filter_map(|(_, a)| *a).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let announce = (!m.announce_s.is_empty()).then(|| {
        json!({
            "delivered": m.announce_s.iter().flatten().count(),
            "delivered_fraction": m.announce_s.iter().flatten().count() as f64 / m.announce_s.len().max(1) as f64,
            "latency_s": {"p50": quantile(&announced, 0.5), "p90": quantile(&announced, 0.9), "max": announced.last()},
        })
    });
    json!({
        "seed": m.seed,
        "publisher": topo.hosts[m.publisher].name,
        "fetch_p2p": p2p,
        "fluid_bound_s": bound,
        "fetch_median_vs_bound": ratio(p2p["duration_s"]["p50"].as_f64(), bound),
        "fetch_last_vs_bound": ratio(p2p_at("max"), bound),
        "fetch_p2p_vs_bound": ratio(p2p_at("max"), bound),
        "publisher_upload_copies": publisher_served.map(|b| b as f64 / f),
        "publisher_sent_copies": publisher_sent.map(|b| b as f64 / f),
        "upload": {
            "served_bytes": bytes_stats(&served, publisher_served),
            "sent_bytes": (!m.sent_bytes.is_empty()).then(|| bytes_stats(&m.sent_bytes, publisher_sent)),
        },
        "announce": announce,
        "fetch_portal": portal_json,
        "p2p_vs_portal": {
            "median": ratio(p2p_at("p50"), portal_at("p50")),
            "last": ratio(p2p_at("max"), portal_at("max")),
        },
    })
}

/// Per metric over the runs' summaries (see [`run_summary`]): mean, sd, min, max.
pub fn aggregate(runs: &[serde_json::Value]) -> serde_json::Map<String, serde_json::Value> {
    let metrics = [
        ("fluid_bound_s", "/fluid_bound_s"),
        ("fetch_median_s", "/fetch_p2p/duration_s/p50"),
        ("fetch_last_s", "/fetch_p2p/completion_s/max"),
        ("fetch_median_vs_bound", "/fetch_median_vs_bound"),
        ("fetch_last_vs_bound", "/fetch_last_vs_bound"),
        ("publisher_sent_copies", "/publisher_sent_copies"),
        ("portal_median_s", "/fetch_portal/completion_s/p50"),
        ("portal_last_s", "/fetch_portal/completion_s/max"),
        ("p2p_vs_portal_median", "/p2p_vs_portal/median"),
        ("p2p_vs_portal_last", "/p2p_vs_portal/last"),
    ];
    let mut out = serde_json::Map::new();
    for (name, pointer) in metrics {
        let xs: Vec<f64> = runs.iter().filter_map(|r| r.pointer(pointer).and_then(serde_json::Value::as_f64)).collect();
        out.insert(name.to_owned(), spread(&xs));
    }
    out
}

/// Mean, sample standard deviation, min, max and count of `xs`.
pub fn spread(xs: &[f64]) -> serde_json::Value {
    let m = mean(xs);
    let sd = m.map(|m| (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len().max(2) - 1) as f64).sqrt());
    json!({"mean": m, "sd": sd, "min": xs.iter().copied().reduce(f64::min), "max": xs.iter().copied().reduce(f64::max), "runs": xs.len()})
}

fn fmt(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.4}")).unwrap_or_default()
}

fn write_csvs(dir: &Path, topo: &Topology, runs: &[RunMeasures]) -> std::io::Result<()> {
    let name = |v: usize| csv_field(&topo.hosts[v].name);
    let mut w = BufWriter::new(std::fs::File::create(dir.join("real_fetches.csv"))?);
    writeln!(w, "seed,node,start_s,duration_s,end_s")?;
    for r in runs {
        for f in &r.fetches {
            writeln!(w, "{},{},{},{},{}", r.seed, name(f.node), fmt(f.start_s), fmt(f.duration_s), fmt(f.end_s()))?;
        }
    }
    w.flush()?;
    let mut w = BufWriter::new(std::fs::File::create(dir.join("real_announce.csv"))?);
    writeln!(w, "seed,node,latency_s,path_latency_s")?;
    for r in runs {
        for (v, a) in r.announce_s.iter().enumerate() {
            writeln!(w, "{},{},{},{}", r.seed, name(v), fmt(*a), fmt(r.path_latency_s.get(v).copied()))?;
        }
    }
    w.flush()?;
    let mut w = BufWriter::new(std::fs::File::create(dir.join("real_node_load.csv"))?);
    writeln!(w, "seed,node,kind,region,sent_bytes,served_bytes,is_publisher")?;
    for r in runs {
        for v in 0..topo.nodes() {
            let h = &topo.hosts[v];
            writeln!(
                w,
                "{},{},{},{},{},{},{}",
                r.seed,
                name(v),
                h.kind.as_str(),
                csv_field(&topo.regions[h.region]),
                r.sent_bytes.get(v).map(u64::to_string).unwrap_or_default(),
                r.served_bytes.get(v).copied().flatten().map(|b| b.to_string()).unwrap_or_default(),
                v == r.publisher
            )?;
        }
    }
    w.flush()
}

/// Writes `real_fetches.csv`, `real_announce.csv`, `real_node_load.csv` and (when the scenario
/// asks for plots) the model mode's plots, pooled over `runs`: `announce_delivery_cdf.svg`,
/// `nodes_reached_over_time.svg` (when announcements were measured), `fetch_completion_cdf.svg`,
/// `p2p_vs_portal.svg` (the portal curve from `portals`, one model run per real run) and
/// `upload_per_node.svg` (per node, the mean over runs). Returns the runs' summaries.
pub fn write_runs(
    dir: &Path,
    scn: &Scenario,
    topo: &Topology,
    runs: &[RunMeasures],
    portals: &[Option<ModelOutput>],
) -> Result<Vec<serde_json::Value>, OutputError> {
    std::fs::create_dir_all(dir).map_err(OutputError::io(dir))?;
    write_csvs(dir, topo, runs).map_err(OutputError::io(dir))?;
    let summaries: Vec<serde_json::Value> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| run_summary(scn, topo, r, portals.get(i).and_then(Option::as_ref)))
        .collect();
    if scn.output.plots {
        let reached: Vec<f64> = runs.iter().flat_map(|r| r.announce_s.iter().flatten().copied()).collect();
        let relayed: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.announce_s.iter().enumerate().filter(move |(v, _)| *v != r.publisher))
            .filter_map(|(_, a)| *a)
            .collect();
        if !reached.is_empty() {
            output::plot_announce(dir, topo.nodes() * runs.len(), &relayed, &reached)?;
        }
        let ends: Vec<f64> = runs.iter().flat_map(RunMeasures::ends).collect();
        let total: usize = runs.iter().map(|r| r.fetches.len()).sum();
        let mut portal_ends = Vec::new();
        let mut portal_total = 0;
        for out in portals.iter().flatten() {
            let (e, n) = output::model_ends(out, World::Portal, topo);
            portal_ends.extend(e);
            portal_total += n;
        }
        output::plot_fetches(dir, &ends, total, Some((&portal_ends, portal_total)))?;
        let mut uploads: Vec<(bool, u64)> = Vec::new();
        for v in 0..topo.nodes() {
            let per_run: Vec<u64> = runs.iter().filter_map(|r| r.uploads().get(v).map(|u| u.1)).collect();
            let mean = per_run.iter().sum::<u64>() / per_run.len().max(1) as u64;
            uploads.push((runs.first().is_some_and(|r| r.publisher == v), mean));
        }
        output::plot_upload(dir, &uploads)?;
    }
    Ok(summaries)
}

/// Writes `summary` as `summary.json` in `dir`.
pub fn write_summary(dir: &Path, summary: &serde_json::Value) -> Result<(), OutputError> {
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(summary).map_err(OutputError::json(&path))?;
    std::fs::write(&path, text).map_err(OutputError::io(&path))
}
