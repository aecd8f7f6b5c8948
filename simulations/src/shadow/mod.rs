//! Export of a scenario to the Shadow simulator, with its workload, and the summary of a Shadow
//! run's host outputs.
//!
//! [`export`] writes into a folder:
//! - `shadow.yaml` ([`config::ShadowConfig`]): one host `h<i>` per node with a fixed IP
//!   `11.x.y.z`; each runs the unmodified `lien daemon`, the publisher also a `/bin/sh` script
//!   that runs `lien publish` at the publish time, and each fetcher one that runs `lien get` at
//!   its fetch time ([`workload`]); `general.template_directory` points at the template below;
//! - `graph.gml`: one vertex per (region, bandwidth class) with that class's
//!   `host_bandwidth_up/down`, an edge (self-loops included, as Shadow needs) between every pair
//!   with the scenario's one-way latency between them;
//! - `shadow.data.template/hosts/h<i>/home`: an initialised `lien` home per host (so peer ids,
//!   hence bootstrap addresses, and the publisher's key are known in advance) whose `lien.toml`
//!   holds the scenario's node settings (the real-code mode's, [`crate::real::scenario_config`]);
//!   the publisher's `dataset/data.bin` ([`crate::dataset`], the scenario's size and seed);
//! - `scenario.resolved.toml` and `params.json` (hosts, peer ids, the workload plan).
//!
//! [`summary::summarise`] reads `shadow.data/hosts/h<i>/` after the run (the scripts'
//! `workload.log`, each home's audit log, the fetched files) into the real mode's summary.

pub mod config;
pub mod summary;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::dataset;
use crate::error::OutputError;
use crate::scenario::Scenario;
use crate::topology::Topology;
use config::{Experimental, FinalState, General, Graph, GraphFile, HostConfig, Network, Process, ShadowConfig};
use workload::Plan;

/// The template folder Shadow copies into `shadow.data` before the run.
pub const TEMPLATE: &str = "shadow.data.template";

/// The IP address of host `i` (Shadow's simulated internet; never used on a real network).
pub fn host_ip(i: usize) -> String {
    // Avoid .0 and .255 in the last octet.
    let (hi, lo) = (i / 250, i % 250 + 1);
    format!("11.{}.{}.{lo}", (hi >> 8) & 0xff, hi & 0xff)
}

/// The Shadow host name of node `i`.
pub fn host_name(i: usize) -> String {
    format!("h{i}")
}

/// What [`export`] may be told besides the scenario.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Path of the `lien` binary as Shadow will run it.
    pub lien: String,
    /// `fetch_start = "on-announce"` becomes a fetch this long after the publish, ms.
    pub announce_delay_ms: u64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self { lien: "lien".into(), announce_delay_ms: 5000 }
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// Hosts written.
    pub hosts: usize,
    /// The workload.
    pub plan: Plan,
}

fn write(path: &Path, text: &str) -> Result<(), OutputError> {
    std::fs::write(path, text).map_err(OutputError::io(path))
}

/// `graph.gml` and, per node, its vertex.
fn graph(topo: &Topology) -> (String, Vec<usize>) {
    let n = topo.nodes();
    let mut vertex: BTreeMap<(usize, String), usize> = BTreeMap::new();
    let mut rep: Vec<usize> = Vec::new();
    for (i, h) in topo.hosts.iter().enumerate().take(n) {
        let key = (h.region, h.class.clone());
        if let std::collections::btree_map::Entry::Vacant(e) = vertex.entry(key) {
            e.insert(rep.len());
            rep.push(i);
        }
    }
    let mut gml = String::from("graph [\n  directed 0\n");
    for (v, &i) in rep.iter().enumerate() {
        let h = &topo.hosts[i];
        let _ = writeln!(
            gml,
            "  node [\n    id {v}\n    label \"{}-{}\"\n    host_bandwidth_up \"{} Kibit\"\n    host_bandwidth_down \"{} Kibit\"\n  ]",
            topo.regions[h.region],
            h.class,
            (h.up_bps * 8.0 / 1024.0).round() as u64,
            (h.down_bps * 8.0 / 1024.0).round() as u64
        );
    }
    for (a, &i) in rep.iter().enumerate() {
        for (b, &j) in rep.iter().enumerate().skip(a) {
            // Between two different hosts of the same vertex, the access delay counts twice.
            let lat = if a == b {
                topo.region_latency_ms[topo.hosts[i].region][topo.hosts[i].region] + 2.0 * topo.hosts[i].access_ms
            } else {
                topo.latency_ms(i, j)
            };
            let _ = writeln!(
                gml,
                "  edge [\n    source {a}\n    target {b}\n    latency \"{} us\"\n    packet_loss 0.0\n  ]",
                (lat * 1000.0).round() as u64
            );
        }
    }
    gml.push_str("]\n");
    let of_node = topo.hosts.iter().take(n).map(|h| vertex[&(h.region, h.class.clone())]).collect();
    (gml, of_node)
}

/// `lien.toml` of node `i`: the scenario's node settings, listening on its Shadow address, the
/// API on [`workload::API`]. The bulk channel stays on (its default): Shadow simulates TCP.
fn lien_toml(scn: &Scenario, home: &Path, i: usize) -> Result<String, OutputError> {
    #[derive(Serialize)]
    struct Api {
        listen: String,
    }
    #[derive(Serialize)]
    struct File {
        node: lien_node::NodeConfig,
        api: Api,
    }
    let mut node = crate::real::scenario_config(scn, home);
    let listen = format!("/ip4/{}/tcp/{}", host_ip(i), workload::PORT);
    node.listen = vec![listen.parse().map_err(|e| OutputError::Invalid(format!("{listen}: {e}")))?];
    node.bootstrap = Vec::new();
    node.bulk_transfer = lien_node::NodeConfig::default().bulk_transfer;
    let file = File { node, api: Api { listen: workload::API.into() } };
    toml::to_string(&file).map_err(|e| OutputError::Invalid(format!("cannot encode lien.toml: {e}")))
}

/// Initialises node `i`'s home in the template; returns (peer id, publisher key).
fn init_home(scn: &Scenario, template: &Path, i: usize) -> Result<(String, String), OutputError> {
    let home = template.join("hosts").join(host_name(i)).join(workload::HOME);
    if home.exists() {
        std::fs::remove_dir_all(&home).map_err(OutputError::io(&home))?;
    }
    let report = lien_node::home::init(&home)
        .map_err(|e| OutputError::Invalid(format!("cannot initialise {}: {e}", home.display())))?;
    write(&home.join("lien.toml"), &lien_toml(scn, &home, i)?)?;
    Ok((report.peer_id, report.publisher))
}

fn process(path: &str, args: Vec<String>, start_ms: u64, end: FinalState) -> Process {
    Process { path: path.to_owned(), args, start_time: format!("{start_ms}ms"), expected_final_state: end }
}

/// Writes the export into `dir` (see the module documentation).
pub fn export(scn: &Scenario, topo: &Topology, dir: &Path, opts: &ExportOptions) -> Result<Exported, OutputError> {
    std::fs::create_dir_all(dir).map_err(OutputError::io(dir))?;
    let n = topo.nodes();
    let (gml, vertex) = graph(topo);
    write(&dir.join("graph.gml"), &gml)?;

    let template = dir.join(TEMPLATE);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(init_home(scn, &template, i)?);
    }
    let publisher = topo.select(&scn.workload.publisher)?[0];
    let plan = workload::plan(scn, topo, &ids[publisher].1, opts.announce_delay_ms)?;
    lien_protocol::ChunkSize::new(plan.chunk_bytes)
        .map_err(|e| OutputError::Invalid(format!("chunk size {}: {e}", plan.chunk_bytes)))?;
    let data_dir = template.join("hosts").join(host_name(publisher)).join(workload::DATASET_DIR);
    std::fs::create_dir_all(&data_dir).map_err(OutputError::io(&data_dir))?;
    dataset::write(&data_dir.join(dataset::FILE), plan.dataset_bytes, plan.seed)?;

    let mut hosts = BTreeMap::new();
    for (i, &node_vertex) in vertex.iter().enumerate() {
        let ip = host_ip(i);
        let mut args: Vec<String> = vec![
            "--home".into(),
            workload::HOME.into(),
            "daemon".into(),
            "--listen".into(),
            format!("/ip4/{ip}/tcp/{}", workload::PORT),
            "--api".into(),
            workload::API.into(),
        ];
        let mut neigh = topo.overlay.neighbours(i);
        neigh.retain(|&u| (u as usize) < i);
        neigh.truncate(8);
        for u in neigh {
            let u = u as usize;
            args.push("--bootstrap".into());
            args.push(format!("/ip4/{}/tcp/{}/p2p/{}", host_ip(u), workload::PORT, ids[u].0));
        }
        let mut processes =
            vec![process(&opts.lien, args, workload::daemon_start_ms(i), FinalState::Named("running".into()))];
        let exited = FinalState::Exited { exited: 0 };
        if i == publisher {
            let script = workload::publish_script(&opts.lien, &plan);
            processes.push(process("/bin/sh", vec!["-c".into(), script], plan.publish_ms, exited.clone()));
        }
        if let Some(f) = plan.fetches.iter().find(|f| f.node == i) {
            let script = workload::get_script(&opts.lien, &plan, f.at_ms);
            processes.push(process("/bin/sh", vec!["-c".into(), script], f.at_ms, exited));
        }
        hosts.insert(host_name(i), HostConfig { network_node_id: node_vertex, ip_addr: ip, processes });
    }
    let cfg = ShadowConfig {
        general: General {
            stop_time: format!("{}ms", plan.stop_ms),
            seed: scn.sim.seed,
            model_unblocked_syscall_latency: true,
            template_directory: TEMPLATE.into(),
        },
        network: Network { graph: Graph { kind: "gml".into(), file: GraphFile { path: "graph.gml".into() } } },
        experimental: Experimental { socket_send_buffer: "4 MiB".into(), socket_recv_buffer: "4 MiB".into() },
        hosts,
    };
    let path = dir.join("shadow.yaml");
    let yaml = serde_yaml::to_string(&cfg).map_err(|source| OutputError::Yaml { path: path.clone(), source })?;
    write(&path, &format!("# Written by `lien-sim export-shadow` for scenario {:?}.\n{yaml}", scn.sim.name))?;

    let resolved = toml::to_string_pretty(scn).map_err(|e| OutputError::Invalid(format!("scenario: {e}")))?;
    write(&dir.join("scenario.resolved.toml"), &resolved)?;
    let host_list: Vec<_> = topo
        .hosts
        .iter()
        .enumerate()
        .take(n)
        .map(|(i, h)| {
            serde_json::json!({"host": host_name(i), "name": h.name, "kind": h.kind.as_str(),
                "region": topo.regions[h.region], "class": h.class, "ip": host_ip(i), "peer_id": ids[i].0})
        })
        .collect();
    let params = serde_json::json!({"scenario": scn, "hosts": host_list, "plan": plan});
    let path = dir.join("params.json");
    let text = serde_json::to_string_pretty(&params).map_err(OutputError::json(&path))?;
    write(&path, &text)?;
    Ok(Exported { hosts: n, plan })
}
