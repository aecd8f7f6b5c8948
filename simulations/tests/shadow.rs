//! The Shadow export carries the scenario's workload (checked on the generated files: Shadow is
//! not run here), and `shadow-summary` turns hand-made host outputs into the real mode's summary.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use lien_sim::dataset;
use lien_sim::scenario::Scenario;
use lien_sim::shadow::config::{FinalState, ShadowConfig};
use lien_sim::shadow::{self, summary, workload, ExportOptions};
use lien_sim::topology::Topology;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn build(text: &str) -> Result<(Scenario, Topology)> {
    let scn = Scenario::parse(text)?;
    let topo = scn.build_topology(&mut ChaCha8Rng::seed_from_u64(scn.sim.seed))?;
    Ok((scn, topo))
}

/// Six nodes in a ring, 1 MiB in 256 KiB chunks, everyone fetches; `extra` is appended to
/// `[workload]`.
fn scenario(extra: &str) -> String {
    format!(
        r##"
[sim]
name = "shadow-test"
mode = "real"
seed = 3
duration_s = 60
[topology]
builtin = "ring"
nodes = 6
degree = 2
latency_ms = 10
up_mbps = 100
down_mbps = 100
[protocol.transfer]
chunk_kib = 256
max_inflight_serve = 4
request_timeout_ms = 30000
[workload]
publisher = "#0"
fetchers = "all"
dataset_mib = 1
{extra}
"##
    )
}

const LIEN: &str = "/opt/lien/bin/lien";

fn export(text: &str, dir: &Path) -> Result<(Scenario, Topology, shadow::Exported, ShadowConfig)> {
    let (scn, topo) = build(text)?;
    let opts = ExportOptions { lien: LIEN.into(), announce_delay_ms: 5000 };
    let done = shadow::export(&scn, &topo, dir, &opts)?;
    let cfg: ShadowConfig = serde_yaml::from_str(&std::fs::read_to_string(dir.join("shadow.yaml"))?)?;
    Ok((scn, topo, done, cfg))
}

#[test]
fn every_host_runs_its_daemon_and_its_part_of_the_workload_at_its_time() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (scn, _, done, cfg) = export(&scenario("fetch_delay_ms = 1000"), dir.path())?;
    let plan = &done.plan;
    let params: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("params.json"))?)?;
    let peer = |i: usize| params["hosts"][i]["peer_id"].as_str().unwrap_or_default().to_owned();
    // Daemons from 1 s, 10 ms apart; the publish after the real mode's settling (2 × 30 s + 5 s)
    // past the last start, on a whole second; the run lasts duration_s after the publish.
    ensure!(plan.publish_ms == 67_000, "publish at {} ms", plan.publish_ms);
    ensure!(cfg.general.stop_time == "127000ms", "stop_time {}", cfg.general.stop_time);
    ensure!(cfg.general.template_directory == shadow::TEMPLATE, "template {}", cfg.general.template_directory);
    ensure!(cfg.hosts.len() == 6, "{} hosts", cfg.hosts.len());
    ensure!(plan.fetches.len() == 5 && plan.fetches.iter().all(|f| f.node != 0), "fetchers {:?}", plan.fetches);
    for i in 0..6 {
        let host = cfg.hosts.get(&format!("h{i}")).context("missing host")?;
        ensure!(host.ip_addr == shadow::host_ip(i), "h{i} ip {}", host.ip_addr);
        let daemon = &host.processes[0];
        let ip = shadow::host_ip(i);
        ensure!(daemon.path == LIEN, "h{i} daemon path {}", daemon.path);
        ensure!(
            daemon.args[..7]
                == ["--home", "home", "daemon", "--listen", &format!("/ip4/{ip}/tcp/4040"), "--api", "127.0.0.1:5050"],
            "h{i} daemon args {:?}",
            daemon.args
        );
        ensure!(daemon.start_ms() == Some(1000 + 10 * i as u64), "h{i} daemon at {}", daemon.start_time);
        ensure!(daemon.expected_final_state == FinalState::Named("running".into()), "h{i} daemon end state");
        // Bootstrap peers: ring neighbours started before it, by address and peer id.
        let boots: Vec<&String> = daemon.args.iter().skip_while(|a| *a != "--bootstrap").skip(1).step_by(2).collect();
        if i == 0 {
            ensure!(boots.is_empty(), "h0 bootstraps to {boots:?}");
        } else {
            ensure!(
                boots.iter().any(|b| **b == format!("/ip4/{}/tcp/4040/p2p/{}", shadow::host_ip(i - 1), peer(i - 1))),
                "h{i} does not bootstrap to h{}: {boots:?}",
                i - 1
            );
        }
        let scripts: Vec<_> = host.processes[1..].iter().collect();
        ensure!(scripts.len() == 1, "h{i} runs {} workload processes", scripts.len());
        let p = scripts[0];
        ensure!(p.path == "/bin/sh" && p.args.len() == 2 && p.args[0] == "-c", "h{i}: {:?}", p);
        ensure!(p.expected_final_state == FinalState::Exited { exited: 0 }, "h{i} script end state");
        let script = &p.args[1];
        if i == 0 {
            ensure!(p.start_ms() == Some(plan.publish_ms), "publish at {}", p.start_time);
            ensure!(
                script.contains(&format!(
                    "'{LIEN}' --home home --json publish dataset --name sim-dataset --title 'lien-sim dataset' --in-place --chunk-size 262144"
                )),
                "publish script: {script}"
            );
            ensure!(script.contains("publish_start") && script.contains("publish_end"), "no times logged: {script}");
        } else {
            let at = p.start_ms().context("start time")?;
            ensure!((72_000..=73_000).contains(&at), "h{i} fetches at {at} ms, not 5-6 s after the publish");
            ensure!(plan.fetches.iter().any(|f| f.node == i && f.at_ms == at), "h{i} not in the plan at {at}");
            let target = format!("{}/sim-dataset", plan.publisher_key);
            ensure!(
                script.contains(&format!("'{LIEN}' --home home --json get '{target}' --output fetched --timeout ")),
                "get script: {script}"
            );
            ensure!(script.contains("get_start") && script.contains("get_end"), "no times logged: {script}");
        }
    }
    // Each home's lien.toml holds the scenario's node settings.
    let toml_text = std::fs::read_to_string(dir.path().join("shadow.data.template/hosts/h2/home/lien.toml"))?;
    let node = lien_node::NodeConfig::parse(&toml_text).map_err(anyhow::Error::msg)?;
    ensure!(node.max_concurrent_uploads == 4 && node.request_timeout_secs == 30, "{toml_text}");
    ensure!(node.network == "lien-sim", "network {}", node.network);
    ensure!(node.listen.iter().any(|a| a.to_string() == "/ip4/11.0.0.3/tcp/4040"), "listen {:?}", node.listen);
    // The publisher's dataset: the scenario's size and seed.
    let data = std::fs::read(dir.path().join("shadow.data.template/hosts/h0/dataset/data.bin"))?;
    ensure!(data.len() as u64 == scn.dataset_bytes(), "dataset of {} bytes", data.len());
    ensure!(data == dataset::generate(scn.dataset_bytes(), 3)?, "dataset bytes differ from the seed's");
    Ok(())
}

#[test]
fn fetch_start_at_puts_every_get_at_the_publish_plus_fetch_at_ms() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_, _, done, cfg) = export(&scenario("fetch_start = \"at\"\nfetch_at_ms = 2500"), dir.path())?;
    for f in &done.plan.fetches {
        ensure!(f.at_ms == done.plan.publish_ms + 2500, "{f:?}");
        let p = &cfg.hosts[&format!("h{}", f.node)].processes[1];
        ensure!(p.start_ms() == Some(f.at_ms), "h{} get at {}", f.node, p.start_time);
    }
    Ok(())
}

/// Writes `text` at `path`, creating its folder.
fn put(path: &Path, text: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

fn audit_line(seq: u64, bytes: u64) -> String {
    format!(
        "{{\"seq\":{seq},\"time\":946684900,\"requester\":\"x\",\"file\":\"{z}\",\"first\":0,\"count\":1,\"bytes\":{bytes},\"prev\":\"{z}\",\"hash\":\"{z}\"}}\n",
        z = "0".repeat(64)
    )
}

#[test]
fn shadow_summary_turns_host_outputs_into_the_real_mode_summary() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (scn, _, done, _) = export(&scenario(""), dir.path())?;
    let plan = &done.plan;
    let hosts = dir.path().join("shadow.data/hosts");
    let mib = 1024 * 1024;
    let t0 = 946_684_800.0 + plan.publish_ms as f64 / 1000.0;
    put(
        &hosts.join("h0").join(workload::LOG),
        format!("publish_start {t0:.9}\npublish_end {:.9} 0\n", t0 + 0.01).as_bytes(),
    )?;
    // The publisher served 1.5 copies in two audit entries.
    put(&hosts.join("h0/home/audit.log"), (audit_line(1, mib) + &audit_line(2, mib / 2)).as_bytes())?;
    let data = dataset::generate(scn.dataset_bytes(), plan.seed)?;
    // h1..h4 fetch in 1, 2, 3, 4 s from 5 s after the publish; h2 first fails once (name not
    // known yet) and retries a second later; h4's copy is damaged; h5 never completes.
    for (v, secs) in [(1usize, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)] {
        let start = t0 + 5.0;
        let log = if v == 2 {
            format!(
                "get_start {start}\nget_end {} 1\nget_start {}\nget_end {} 0\n",
                start + 0.1,
                start + 1.1,
                start + secs
            )
        } else {
            format!("get_start {start}\nget_end {} 0\n", start + secs)
        };
        put(&hosts.join(format!("h{v}")).join(workload::LOG), log.as_bytes())?;
        let mut copy = data.clone();
        if v == 4 {
            copy[7] ^= 1;
        }
        put(&hosts.join(format!("h{v}/fetched/data.bin")), &copy)?;
        put(&hosts.join(format!("h{v}/home/audit.log")), audit_line(1, mib / 4).as_bytes())?;
    }
    put(
        &hosts.join("h5").join(workload::LOG),
        format!("get_start {}\nget_end {} 1\n", t0 + 5.0, t0 + 65.0).as_bytes(),
    )?;
    let out = dir.path().join("summary");
    let s = summary::summarise(dir.path(), None, &out)?;
    let num = |p: &str| s.pointer(p).and_then(serde_json::Value::as_f64);
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
    ensure!(s["mode"] == "shadow", "{s:#}");
    ensure!(close(num("/fetches_completed_fraction/mean"), 0.8), "completed: {s:#}");
    ensure!(close(num("/fetches_verified/mean"), 3.0), "verified: {s:#}");
    ensure!(close(num("/publisher_upload_copies/mean"), 1.5), "publisher copies: {s:#}");
    // Durations 1, 2, 3, 4 s (the nearest-rank median of four is the second); completions 6-9 s.
    ensure!(close(num("/runs/0/fetch_p2p/duration_s/p50"), 2.0), "median: {s:#}");
    ensure!(close(num("/runs/0/fetch_p2p/completion_s/max"), 9.0), "last: {s:#}");
    let bound = num("/fluid_bound_s/mean").context("no fluid bound")?;
    // 5 fetchers, 100 Mbit/s everywhere: max(F/u, F/d, 5F/6u) = F/u.
    ensure!(close(Some(bound), scn.dataset_bytes() as f64 / 12.5e6), "bound {bound}");
    ensure!(close(num("/fetch_median_vs_bound/mean"), 2.0 / bound), "median / bound: {s:#}");
    ensure!(close(num("/fetch_last_vs_bound/mean"), 9.0 / bound), "last / bound: {s:#}");
    ensure!(num("/runs/0/fetch_portal/completed") == Some(5.0), "portal baseline: {s:#}");
    ensure!(num("/p2p_vs_portal_last/mean").is_some_and(|r| r > 0.0), "p2p vs portal: {s:#}");
    for f in [
        "summary.json",
        "real_fetches.csv",
        "real_announce.csv",
        "real_node_load.csv",
        "fetch_completion_cdf.svg",
        "p2p_vs_portal.svg",
        "upload_per_node.svg",
    ] {
        ensure!(std::fs::metadata(out.join(f)).is_ok_and(|m| m.len() > 0), "{f} missing or empty");
    }
    let load = std::fs::read_to_string(out.join("real_node_load.csv"))?;
    ensure!(load.lines().any(|l| l.starts_with("3,n0,") && l.contains(",1572864,true")), "{load}");
    Ok(())
}

#[test]
fn a_missing_publish_or_a_garbled_log_is_an_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    export(&scenario(""), dir.path())?;
    let err = summary::summarise(dir.path(), None, &dir.path().join("s")).err().map(|e| e.to_string());
    ensure!(err.as_deref().is_some_and(|e| e.contains("publish_start")), "{err:?}");
    for bad in ["publish_start", "get_end 5 0", "fetch 1", "get_start 1\nget_end 2"] {
        ensure!(workload::parse_log(bad, "x").is_err(), "{bad:?} was accepted");
    }
    Ok(())
}

#[test]
fn the_workload_scripts_run_under_sh_and_log_what_shadow_summary_reads() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir()?;
    let (_, _, done, _) = export(&scenario(""), dir.path())?;
    // A stand-in for `lien`: fails its first call, succeeds after.
    let stub = dir.path().join("lien-stub");
    put(&stub, b"#!/bin/sh\nn=$(cat calls 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > calls\n[ $n -ge 2 ]\n")?;
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755))?;
    let stub = stub.to_string_lossy().into_owned();
    let host = dir.path().join("host");
    std::fs::create_dir_all(&host)?;
    let run = |script: String| -> Result<()> {
        let status = std::process::Command::new("/bin/sh").arg("-c").arg(script).current_dir(&host).status()?;
        ensure!(status.success(), "the script exited with {status}");
        Ok(())
    };
    run(workload::get_script(&stub, &done.plan, done.plan.publish_ms + 5000))?;
    let log = workload::parse_log(&std::fs::read_to_string(host.join(workload::LOG))?, "workload.log")?;
    ensure!(log.gets.len() == 2, "attempts: {log:?}");
    ensure!(log.gets[0].1.is_some_and(|(_, rc)| rc == 1) && log.gets[1].1.is_some_and(|(_, rc)| rc == 0), "{log:?}");
    let (first, done_at) = log.fetch().context("no fetch")?;
    ensure!(done_at.is_some_and(|d| d - first >= 1.0), "the retry came less than a second later: {log:?}");
    run(workload::publish_script(&stub, &done.plan))?;
    let log = workload::parse_log(&std::fs::read_to_string(host.join(workload::LOG))?, "workload.log")?;
    ensure!(log.publish_start.is_some() && log.publish_end.is_some_and(|(_, rc)| rc == 0), "{log:?}");
    Ok(())
}
