//! Export of a scenario to the Shadow simulator: `shadow.yaml`, `graph.gml`, one initialised
//! `lien` home per host (so peer ids, and hence bootstrap addresses, are known in advance) and
//! `params.json`. Each host runs the unmodified `lien daemon`.
//!
//! The GML graph has one vertex per (region, bandwidth class) with that class's
//! `host_bandwidth_up/down`, and an edge (self-loops included, as Shadow needs) between every
//! pair with the scenario's one-way latency between them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::scenario::Scenario;
use crate::topology::Topology;

/// The IP address of host `i` (Shadow's simulated internet; never used on a real network).
pub fn host_ip(i: usize) -> String {
    // Avoid .0 and .255 in the last octet.
    let (hi, lo) = (i / 250, i % 250 + 1);
    format!("11.{}.{}.{lo}", (hi >> 8) & 0xff, hi & 0xff)
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Writes the export into `dir`; `lien_bin` is the path of the `lien` binary inside Shadow.
/// Returns the number of hosts written.
pub fn export(scn: &Scenario, topo: &Topology, dir: &Path, lien_bin: &str) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let n = topo.nodes();
    // Vertices: one per (region, class) used by Lien nodes.
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
    std::fs::write(dir.join("graph.gml"), gml).context("cannot write graph.gml")?;

    // Homes and peer ids.
    let homes = dir.join("homes");
    let mut peer_ids = Vec::with_capacity(n);
    for h in topo.hosts.iter().take(n) {
        let home = homes.join(&h.name);
        if home.exists() {
            std::fs::remove_dir_all(&home).with_context(|| format!("cannot clear {}", home.display()))?;
        }
        let report = lien_node::home::init(&home).with_context(|| format!("cannot initialise {}", home.display()))?;
        peer_ids.push(report.peer_id);
    }

    let stop = scn.sim.duration_s.ceil() as u64;
    let mut y = String::new();
    let _ = writeln!(y, "# Written by `lien-sim export-shadow` for scenario {}.", yaml_str(&scn.sim.name));
    let _ = writeln!(
        y,
        "general:\n  stop_time: {stop}s\n  seed: {}\n  model_unblocked_syscall_latency: true",
        scn.sim.seed
    );
    let _ = writeln!(y, "network:\n  graph:\n    type: gml\n    file:\n      path: graph.gml");
    let _ = writeln!(y, "experimental:\n  socket_send_buffer: 4 MiB\n  socket_recv_buffer: 4 MiB");
    let _ = writeln!(y, "hosts:");
    for (i, h) in topo.hosts.iter().enumerate().take(n) {
        let v = vertex[&(h.region, h.class.clone())];
        let ip = host_ip(i);
        let mut args: Vec<String> = vec![
            "--home".into(),
            format!("homes/{}", h.name),
            "daemon".into(),
            "--listen".into(),
            format!("/ip4/{ip}/tcp/4040"),
            "--api".into(),
            "127.0.0.1:5050".into(),
        ];
        let mut neigh = topo.overlay.neighbours(i);
        neigh.retain(|&u| (u as usize) < i);
        neigh.truncate(8);
        for u in neigh {
            args.push("--bootstrap".into());
            args.push(format!("/ip4/{}/tcp/4040/p2p/{}", host_ip(u as usize), peer_ids[u as usize]));
        }
        let host_name = format!("h{i}");
        let _ = writeln!(y, "  {host_name}:\n    network_node_id: {v}\n    ip_addr: {ip}\n    processes:");
        let quoted: Vec<String> = args.iter().map(|a| yaml_str(a)).collect();
        let _ = writeln!(
            y,
            "    - path: {}\n      args: [{}]\n      start_time: {}ms\n      expected_final_state: running",
            yaml_str(lien_bin),
            quoted.join(", "),
            1000 + 10 * i
        );
    }
    std::fs::write(dir.join("shadow.yaml"), y).context("cannot write shadow.yaml")?;
    let hosts: Vec<_> = topo
        .hosts
        .iter()
        .enumerate()
        .take(n)
        .map(|(i, h)| {
            serde_json::json!({"host": format!("h{i}"), "name": h.name, "kind": h.kind.as_str(),
                "region": topo.regions[h.region], "class": h.class, "ip": host_ip(i), "peer_id": peer_ids[i]})
        })
        .collect();
    let params = serde_json::json!({"scenario": scn, "hosts": hosts});
    std::fs::write(dir.join("params.json"), serde_json::to_string_pretty(&params)?)
        .context("cannot write params.json")?;
    Ok(n)
}
