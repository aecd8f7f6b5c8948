//! Results on disk: `events.jsonl`, tidy CSVs, `summary.json`, `scenario.resolved.toml` and SVG
//! plots (plotters), for a model run; and the pieces every mode shares (fetch statistics, the
//! fluid bound, the portal baseline's summary, the plots), which [`crate::report`] uses for
//! real-code runs.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::json;

use crate::checks::{self, quantile};
use crate::error::OutputError;
use crate::model::{ModelOutput, World};
use crate::scenario::Scenario;
use crate::topology::Topology;

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    let p = dir.join(name);
    Ok(BufWriter::new(File::create(&p).with_context(|| format!("cannot create {}", p.display()))?))
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.6}")).unwrap_or_default()
}

/// Writes every output of a model run into `dir` and returns the summary.
pub fn write_model(
    dir: &Path,
    scn: &Scenario,
    topo: &Topology,
    out: &ModelOutput,
    wall_s: f64,
) -> Result<serde_json::Value> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = |v: u32| topo.hosts[v as usize].name.as_str();
    let resolved = toml::to_string_pretty(scn).context("cannot encode the resolved scenario")?;
    std::fs::write(dir.join("scenario.resolved.toml"), resolved).context("cannot write scenario.resolved.toml")?;

    let mut w = create(dir, "events.jsonl")?;
    for e in &out.events {
        let line = json!({
            "t_ms": (e.t_s * 1e6).round() / 1e3, "world": e.world.as_str(), "node": name(e.node),
            "kind": e.kind, "peer": e.peer.map(name), "bytes": e.bytes,
        });
        writeln!(w, "{line}")?;
    }
    w.flush()?;

    let mut w = create(dir, "deliveries.csv")?;
    writeln!(w, "node,kind,region,class,t_ms,hops,duplicates,via")?;
    for d in &out.deliveries {
        let h = &topo.hosts[d.node as usize];
        writeln!(
            w,
            "{},{},{},{},{},{},{},{}",
            csv_field(&h.name),
            h.kind.as_str(),
            csv_field(&topo.regions[h.region]),
            csv_field(&h.class),
            d.t_s.map(|t| format!("{:.3}", t * 1e3)).unwrap_or_default(),
            d.hops,
            d.duplicates,
            d.via
        )?;
    }
    w.flush()?;

    let mut w = create(dir, "lookups.csv")?;
    writeln!(w, "node,purpose,t_ms,hops,rounds,rpcs,latency_ms,found")?;
    for l in &out.lookups {
        writeln!(
            w,
            "{},{},{:.3},{},{},{},{:.3},{}",
            csv_field(name(l.node)),
            l.purpose,
            l.t_s * 1e3,
            l.hops,
            l.rounds,
            l.rpcs,
            l.latency_s * 1e3,
            l.found
        )?;
    }
    w.flush()?;

    let mut w = create(dir, "fetches.csv")?;
    writeln!(w, "world,node,kind,region,start_s,end_s,duration_s,bytes,sources,bad_chunks,timeouts,busy")?;
    for f in &out.fetches {
        let h = &topo.hosts[f.node as usize];
        let dur = f.start_s.zip(f.end_s).map(|(a, b)| b - a);
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            f.world.as_str(),
            csv_field(&h.name),
            h.kind.as_str(),
            csv_field(&topo.regions[h.region]),
            opt(f.start_s),
            opt(f.end_s),
            opt(dur),
            f.bytes,
            f.sources,
            f.bad_chunks,
            f.timeouts,
            f.busy
        )?;
    }
    w.flush()?;

    let mut w = create(dir, "node_load.csv")?;
    writeln!(w, "world,node,kind,region,up_bytes,down_bytes,gossip_sent,is_publisher")?;
    for l in &out.load {
        let h = &topo.hosts[l.node as usize];
        writeln!(
            w,
            "{},{},{},{},{},{},{},{}",
            l.world.as_str(),
            csv_field(&h.name),
            h.kind.as_str(),
            csv_field(&topo.regions[h.region]),
            l.up_bytes,
            l.down_bytes,
            l.gossip_sent,
            l.node == out.publisher
        )?;
    }
    w.flush()?;

    let summary = summarise(scn, topo, out, wall_s);
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary)?)
        .context("cannot write summary.json")?;
    if scn.output.plots {
        plots(dir, topo, out).context("cannot draw the plots")?;
    }
    Ok(summary)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Fetch statistics shared by every mode: how many fetchers, how many completed, completion
/// times since the publish (`ends`) and fetch durations, seconds.
pub fn fetch_summary(fetchers: usize, ends: &[f64], durations: &[f64]) -> serde_json::Value {
    let ends = sorted(ends.to_vec());
    let durs = sorted(durations.to_vec());
    json!({
        "fetchers": fetchers,
        "completed": ends.len(),
        "completion_s": {"p50": quantile(&ends, 0.5), "p90": quantile(&ends, 0.9), "p99": quantile(&ends, 0.99), "max": ends.last()},
        "duration_s": {"p50": quantile(&durs, 0.5), "p90": quantile(&durs, 0.9), "max": durs.last(), "mean": checks::mean(&durs)},
    })
}

/// A world's fetches of a model run other than the portal's own: (completion times, count).
pub fn model_ends(out: &ModelOutput, world: World, topo: &Topology) -> (Vec<f64>, usize) {
    let fs: Vec<_> = out.fetches.iter().filter(|f| f.world == world && Some(f.node as usize) != topo.portal).collect();
    (fs.iter().filter_map(|f| f.end_s).collect(), fs.len())
}

fn fetch_stats(out: &ModelOutput, world: World, topo: &Topology) -> serde_json::Value {
    let fs: Vec<_> = out.fetches.iter().filter(|f| f.world == world && Some(f.node as usize) != topo.portal).collect();
    let ends: Vec<f64> = fs.iter().filter_map(|f| f.end_s).collect();
    let durs: Vec<f64> = fs.iter().filter_map(|f| f.start_s.zip(f.end_s).map(|(a, b)| b - a)).collect();
    let mut s = fetch_summary(fs.len(), &ends, &durs);
    s["bad_chunks"] = json!(fs.iter().map(|f| f.bad_chunks as u64).sum::<u64>());
    s["timeouts"] = json!(fs.iter().map(|f| f.timeouts as u64).sum::<u64>());
    s["busy"] = json!(fs.iter().map(|f| f.busy as u64).sum::<u64>());
    s
}

/// The fluid lower bound (Kurose & Ross) on the time for `fetchers` to download the scenario's
/// dataset from `publisher`: `max(F/u_s, F/d_min, N·F/(u_s + Σu_i))` with the topology's rates;
/// `None` without fetchers.
pub fn fluid_bound(scn: &Scenario, topo: &Topology, publisher: usize, fetchers: &[usize]) -> Option<f64> {
    let f = scn.dataset_bytes() as f64;
    let u_s = topo.hosts[publisher].up_bps;
    let d_min = fetchers.iter().map(|&v| topo.hosts[v].down_bps).fold(f64::INFINITY, f64::min);
    let sum_u: f64 = fetchers.iter().map(|&v| topo.hosts[v].up_bps).sum();
    (!fetchers.is_empty()).then(|| checks::fluid_p2p_bound(f, u_s, d_min, fetchers.len(), sum_u))
}

/// The central-portal baseline of a model run that ran the portal world (`None` when the
/// scenario or the topology has no portal): its fetch statistics, the client–server fluid time
/// (the publisher's upload to the portal, then `N·F/u_portal`) and the portal's upload in copies.
pub fn portal_summary(
    scn: &Scenario,
    topo: &Topology,
    out: &ModelOutput,
    publisher: usize,
    fetchers: &[usize],
) -> Option<serde_json::Value> {
    let f = scn.dataset_bytes() as f64;
    topo.portal.filter(|_| scn.baseline.central_portal).map(|port| {
        let mut s = fetch_stats(out, World::Portal, topo);
        let u_s = topo.hosts[publisher].up_bps;
        let u_p = topo.hosts[port].up_bps;
        let d_min = fetchers.iter().map(|&v| topo.hosts[v].down_bps).fold(f64::INFINITY, f64::min);
        s["fluid_client_server_s"] =
            json!((!fetchers.is_empty()).then(|| f / u_s + checks::fluid_client_server(f, u_p, d_min, fetchers.len())));
        let up =
            out.load.iter().find(|l| l.world == World::Portal && l.node as usize == port).map_or(0, |l| l.up_bytes);
        s["portal_upload_copies"] = json!(up as f64 / f);
        s
    })
}

/// The summary of a model run.
pub fn summarise(scn: &Scenario, topo: &Topology, out: &ModelOutput, wall_s: f64) -> serde_json::Value {
    let n = topo.nodes();
    let times = sorted(out.deliveries.iter().filter_map(|d| d.t_s).collect());
    let reach = |q: f64| -> Option<f64> {
        let need = (q * n as f64).ceil() as usize;
        (need >= 1 && need <= times.len()).then(|| times[need - 1])
    };
    let dups: Vec<f64> = out.deliveries.iter().filter(|d| d.t_s.is_some()).map(|d| d.duplicates as f64).collect();
    let hops = sorted(out.deliveries.iter().filter(|d| d.t_s.is_some()).map(|d| d.hops as f64).collect());
    let probes: Vec<_> = out.lookups.iter().filter(|l| l.purpose == "probe").collect();
    let ph = sorted(probes.iter().map(|l| l.hops as f64).collect());
    let pl = sorted(out.lookups.iter().map(|l| l.latency_s).collect());
    let f = scn.dataset_bytes() as f64;
    let load_of = |world: World, v: usize| {
        out.load.iter().find(|l| l.world == world && l.node as usize == v).map_or(0, |l| l.up_bytes)
    };
    let fetchers: Vec<usize> = out.fetches.iter().filter(|x| x.world == World::P2p).map(|x| x.node as usize).collect();
    let p = out.publisher as usize;
    let bound = fluid_bound(scn, topo, p, &fetchers);
    let p2p = fetch_stats(out, World::P2p, topo);
    let portal = portal_summary(scn, topo, out, p, &fetchers);
    let ratio = |x: &serde_json::Value| bound.and_then(|b| x.as_f64().map(|m| m / b));
    json!({
        "scenario": scn.sim.name,
        "seed": scn.sim.seed,
        "git_commit": scn.sim.git_commit,
        "mode": "model",
        "topology": topo.name,
        "nodes": n,
        "overlay_edges": topo.overlay.edges(),
        "publisher": topo.hosts[p].name,
        "dataset_bytes": scn.dataset_bytes(),
        "chunks": scn.chunks(),
        "wall_s": wall_s,
        "events_processed": out.events_processed,
        "virtual_end_s": out.end_s,
        "announce": {
            "delivered": times.len(), "delivered_fraction": times.len() as f64 / n as f64,
            "latency_s": {"p50": quantile(&times, 0.5), "p90": quantile(&times, 0.9), "p99": quantile(&times, 0.99), "max": times.last()},
            "time_to_reach_s": {"50%": reach(0.5), "90%": reach(0.9), "95%": reach(0.95), "99%": reach(0.99), "100%": reach(1.0)},
            "hops": {"mean": checks::mean(&hops), "max": hops.last()},
            "duplicates_per_node": {"mean": checks::mean(&dups), "p95": quantile(&sorted(dups.clone()), 0.95)},
            "push_rounds": out.push_rounds,
        },
        "dht": {
            "probe_lookups": probes.len(),
            "probe_hops": {"mean": checks::mean(&ph), "median": quantile(&ph, 0.5), "max": ph.last()},
            "probe_found_fraction": probes.iter().filter(|l| l.found).count() as f64 / probes.len().max(1) as f64,
            "kad_rounds_estimate": checks::kad_rounds(n, scn.protocol.kad.k),
            "lookup_latency_s": {"p50": quantile(&pl, 0.5), "p90": quantile(&pl, 0.9)},
        },
        "fetch_p2p": p2p,
        "fluid_bound_s": bound,
        "fetch_p2p_vs_bound": ratio(&p2p["completion_s"]["max"]),
        "fetch_median_vs_bound": ratio(&p2p["duration_s"]["p50"]),
        "fetch_last_vs_bound": ratio(&p2p["completion_s"]["max"]),
        "publisher_upload_copies": load_of(World::P2p, p) as f64 / f,
        "fetch_portal": portal,
    })
}

type Series = (String, Vec<(f64, f64)>, RGBColor);

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Draws one SVG chart: lines, or points when `points`.
fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    points: bool,
) -> std::result::Result<(), OutputError> {
    draw(path, title, x_label, y_label, series, points)
        .map_err(|e| OutputError::Plot { path: path.to_path_buf(), message: e.to_string() })
}

fn draw(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series], points: bool) -> DrawResult {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    let (x0, x1) = if x0.is_finite() { (x0.min(0.0), if x1 > x0 { x1 * 1.02 } else { x0 + 1.0 }) } else { (0.0, 1.0) };
    let (y0, y1) = if y0.is_finite() { (y0.min(0.0), if y1 > y0 { y1 * 1.05 } else { y0 + 1.0 }) } else { (0.0, 1.0) };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
    for (name, pts, color) in series {
        let c = *color;
        if points {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled()));
        } else {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        }
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn cdf(values: &[f64], total: usize, scale: f64) -> Vec<(f64, f64)> {
    let v = sorted(values.to_vec());
    let mut pts = vec![(0.0, 0.0)];
    for (i, x) in v.iter().enumerate() {
        pts.push((x * scale, 100.0 * (i + 1) as f64 / total.max(1) as f64));
    }
    pts
}

/// `announce_delivery_cdf.svg` (the CDF of the delivery delays of the nodes that received the
/// announcement from others, `relayed`, seconds) and `nodes_reached_over_time.svg` (every
/// delivery time, the publisher's included, `reached`, as a share of `nodes`).
pub fn plot_announce(
    dir: &Path,
    nodes: usize,
    relayed: &[f64],
    reached: &[f64],
) -> std::result::Result<(), OutputError> {
    line_chart(
        &dir.join("announce_delivery_cdf.svg"),
        "Announcement delivery latency (CDF of delivered)",
        "latency (ms)",
        "% of delivered nodes",
        &[("announcement".into(), cdf(relayed, relayed.len().max(1), 1e3), BLUE)],
        false,
    )?;
    line_chart(
        &dir.join("nodes_reached_over_time.svg"),
        "Nodes reached by the announcement over time",
        "time (ms)",
        "% of all nodes",
        &[("reached".into(), cdf(reached, nodes, 1e3), RED)],
        false,
    )
}

/// `fetch_completion_cdf.svg` and `p2p_vs_portal.svg`: the CDFs of the completion times since
/// the publish of `p2p_total` p2p fetchers (`p2p` holds the completed ones) and, when given, of
/// the portal baseline's `(completed, total)`.
pub fn plot_fetches(
    dir: &Path,
    p2p: &[f64],
    p2p_total: usize,
    portal: Option<(&[f64], usize)>,
) -> std::result::Result<(), OutputError> {
    line_chart(
        &dir.join("fetch_completion_cdf.svg"),
        "Fetch completion (time since publish)",
        "time (s)",
        "% of fetchers complete",
        &[("p2p".into(), cdf(p2p, p2p_total, 1.0), BLUE)],
        false,
    )?;
    let mut both = vec![("Lien p2p".to_owned(), cdf(p2p, p2p_total, 1.0), BLUE)];
    if let Some((ends, total)) = portal.filter(|p| p.1 > 0) {
        both.push(("central portal".to_owned(), cdf(ends, total, 1.0), RED));
    }
    line_chart(
        &dir.join("p2p_vs_portal.svg"),
        "Fetch completion: Lien p2p vs central portal",
        "time (s)",
        "% of fetchers complete",
        &both,
        false,
    )
}

/// `upload_per_node.svg`: each node's upload in bytes (`is_publisher`, bytes), ranked, the
/// publisher in red.
pub fn plot_upload(dir: &Path, uploads: &[(bool, u64)]) -> std::result::Result<(), OutputError> {
    let mut ranked: Vec<(bool, f64)> = uploads.iter().map(|&(p, b)| (p, b as f64 / (1024.0 * 1024.0))).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut others = Vec::new();
    let mut publisher = Vec::new();
    for (rank, (is_publisher, mib)) in ranked.iter().enumerate() {
        if *is_publisher {
            publisher.push((rank as f64 + 1.0, *mib));
        } else {
            others.push((rank as f64 + 1.0, *mib));
        }
    }
    line_chart(
        &dir.join("upload_per_node.svg"),
        "Upload per node (p2p), ranked",
        "rank",
        "uploaded (MiB)",
        &[("other nodes".into(), others, BLUE), ("publisher".into(), publisher, RED)],
        true,
    )
}

fn plots(dir: &Path, topo: &Topology, out: &ModelOutput) -> std::result::Result<(), OutputError> {
    let reached: Vec<f64> = out.deliveries.iter().filter_map(|d| d.t_s).collect();
    let relayed: Vec<f64> = out.deliveries.iter().filter(|d| d.hops > 0).filter_map(|d| d.t_s).collect();
    plot_announce(dir, topo.nodes(), &relayed, &reached)?;
    let (p2p, total) = model_ends(out, World::P2p, topo);
    let (portal, ptotal) = model_ends(out, World::Portal, topo);
    plot_fetches(dir, &p2p, total, Some((&portal, ptotal)))?;
    let uploads: Vec<(bool, u64)> =
        out.load.iter().filter(|l| l.world == World::P2p).map(|l| (l.node == out.publisher, l.up_bytes)).collect();
    plot_upload(dir, &uploads)
}
