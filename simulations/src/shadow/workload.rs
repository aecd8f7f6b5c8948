//! The workload of a Shadow export: when the publisher publishes and when each fetcher runs
//! `lien get`, and the shell scripts that do it with the real `lien` CLI and log their times.
//!
//! Every script appends to `workload.log` in its host's folder (`shadow.data/hosts/<host>/`,
//! each process's working folder under Shadow) one line per step, with Shadow's simulated
//! clock (`date +%s.%N`): `publish_start T`, `publish_end T RC`, `get_start T`,
//! `get_end T RC`. [`parse_log`] reads them back.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset;
use crate::error::OutputError;
use crate::scenario::{FetchStart, Scenario};
use crate::topology::Topology;

/// The log each script appends to, in its host's folder.
pub const LOG: &str = "workload.log";
/// The node's home, in its host's folder.
pub const HOME: &str = "home";
/// The folder holding the publisher's dataset, in its host's folder.
pub const DATASET_DIR: &str = "dataset";
/// The folder a fetcher fetches into, in its host's folder.
pub const FETCHED_DIR: &str = "fetched";
/// Port every node listens on.
pub const PORT: u16 = 4040;
/// Address of every node's HTTP API (each host has its own loopback).
pub const API: &str = "127.0.0.1:5050";
/// Most `lien get` attempts per fetcher (one second apart), for a name not resolvable yet.
pub const GET_ATTEMPTS: u32 = 60;

/// When daemon `i` starts, milliseconds of simulated time (one every 10 ms from 1 s).
pub fn daemon_start_ms(i: usize) -> u64 {
    1000 + 10 * i as u64
}

/// One planned fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedFetch {
    /// Node index (host `h<node>`).
    pub node: usize,
    /// When its `lien get` starts, milliseconds of simulated time.
    pub at_ms: u64,
}

/// The workload: who publishes and fetches, when. Simulated milliseconds from Shadow's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The publisher's node index.
    pub publisher: usize,
    /// The publisher's key (text form): fetchers get `KEY/sim-dataset`.
    pub publisher_key: String,
    /// When the publish starts (time 0 of the results): the last daemon's start plus the real
    /// mode's settling time, rounded up to a second.
    pub publish_ms: u64,
    /// `fetch_start = "on-announce"` is approximated by this fixed delay after the publish.
    pub announce_delay_ms: u64,
    /// The fetches.
    pub fetches: Vec<PlannedFetch>,
    /// Shadow's stop time: the publish plus the scenario's `duration_s`.
    pub stop_ms: u64,
    /// Dataset size, bytes.
    pub dataset_bytes: u64,
    /// Chunk size, bytes.
    pub chunk_bytes: u64,
    /// Seed of the dataset's bytes.
    pub seed: u64,
}

/// Plans the scenario's workload: the same publisher and fetchers as a real-mode run with the
/// scenario's seed; each fetch at the publish plus `fetch_at_ms` (`fetch_start = "at"`) or plus
/// `announce_delay_ms` (`"on-announce"`), plus its uniform `fetch_delay_ms` draw.
pub fn plan(scn: &Scenario, topo: &Topology, publisher_key: &str, announce_delay_ms: u64) -> Result<Plan, OutputError> {
    let n = topo.nodes();
    let publisher = topo.select(&scn.workload.publisher)?[0];
    let mut rng = ChaCha8Rng::seed_from_u64(scn.sim.seed ^ 0x7ea1);
    let fetchers = crate::real::pick_fetchers(scn, topo, publisher, &mut rng)?;
    let settle_ms = crate::real::settle_secs(scn) * 1000;
    let publish_ms = (daemon_start_ms(n.saturating_sub(1)) + settle_ms).div_ceil(1000) * 1000;
    let base = match scn.workload.fetch_start {
        FetchStart::At => scn.workload.fetch_at_ms.max(0.0).round() as u64,
        FetchStart::OnAnnounce => announce_delay_ms,
    };
    let fetches = fetchers
        .into_iter()
        .map(|node| {
            let d =
                if scn.workload.fetch_delay_ms > 0.0 { rng.gen_range(0.0..scn.workload.fetch_delay_ms) } else { 0.0 };
            PlannedFetch { node, at_ms: publish_ms + base + d.round() as u64 }
        })
        .collect();
    Ok(Plan {
        publisher,
        publisher_key: publisher_key.to_owned(),
        publish_ms,
        announce_delay_ms,
        fetches,
        stop_ms: publish_ms + (scn.sim.duration_s * 1000.0).ceil() as u64,
        dataset_bytes: scn.dataset_bytes(),
        chunk_bytes: scn.chunk_bytes(),
        seed: scn.sim.seed,
    })
}

/// `s` in single quotes for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The publisher's script: `lien publish` of the dataset folder through its daemon.
pub fn publish_script(lien: &str, plan: &Plan) -> String {
    [
        format!("echo \"publish_start $(date +%s.%N)\" >> {LOG}"),
        format!(
            "{} --home {HOME} --json publish {DATASET_DIR} --name {} --title {} --in-place --chunk-size {} > publish.json 2> publish.err",
            sh_quote(lien),
            dataset::SLUG,
            sh_quote(dataset::TITLE),
            plan.chunk_bytes
        ),
        "rc=$?".into(),
        format!("echo \"publish_end $(date +%s.%N) $rc\" >> {LOG}"),
        "exit 0".into(),
    ]
    .join("; ")
}

/// A fetcher's script: `lien get KEY/sim-dataset` through its daemon, again a second later
/// while it fails (the name may not have reached the node yet), at most [`GET_ATTEMPTS`] times.
pub fn get_script(lien: &str, plan: &Plan, at_ms: u64) -> String {
    let timeout = plan.stop_ms.saturating_sub(at_ms).div_ceil(1000).max(1);
    let target = format!("{}/{}", plan.publisher_key, dataset::SLUG);
    [
        "i=0".to_owned(),
        "while :".into(),
        format!("do echo \"get_start $(date +%s.%N)\" >> {LOG}"),
        format!(
            "{} --home {HOME} --json get {} --output {FETCHED_DIR} --timeout {timeout} > get.json 2>> get.err",
            sh_quote(lien),
            sh_quote(&target)
        ),
        "rc=$?".into(),
        format!("echo \"get_end $(date +%s.%N) $rc\" >> {LOG}"),
        "[ \"$rc\" -eq 0 ] && break".into(),
        "i=$((i + 1))".into(),
        format!("[ \"$i\" -ge {GET_ATTEMPTS} ] && break"),
        "sleep 1".into(),
        "done".into(),
        "exit 0".into(),
    ]
    .join("; ")
}

/// One host's `workload.log`, times in simulated Unix seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostLog {
    /// When the publish started.
    pub publish_start: Option<f64>,
    /// When it ended, and `lien publish`'s exit code.
    pub publish_end: Option<(f64, i32)>,
    /// Each `lien get` attempt: start, and end with exit code once it ended.
    pub gets: Vec<(f64, Option<(f64, i32)>)>,
}

impl HostLog {
    /// The fetch: (first attempt's start, end of the first attempt that succeeded).
    pub fn fetch(&self) -> Option<(f64, Option<f64>)> {
        let first = self.gets.first()?.0;
        let done = self.gets.iter().find_map(|(_, e)| e.filter(|(_, rc)| *rc == 0).map(|(t, _)| t));
        Some((first, done))
    }
}

/// Parses a `workload.log` (see the module documentation); `what` names it in errors.
pub fn parse_log(text: &str, what: &str) -> Result<HostLog, OutputError> {
    let bad = |line: usize, why: &str| OutputError::Invalid(format!("{what} line {line}: {why}"));
    let mut log = HostLog::default();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let t: f64 = words.get(1).and_then(|w| w.parse().ok()).ok_or_else(|| bad(i + 1, "no time"))?;
        let rc = || -> Result<i32, OutputError> {
            words.get(2).and_then(|w| w.parse().ok()).ok_or_else(|| bad(i + 1, "no exit code"))
        };
        match words[0] {
            "publish_start" => log.publish_start = Some(t),
            "publish_end" => log.publish_end = Some((t, rc()?)),
            "get_start" => log.gets.push((t, None)),
            "get_end" => match log.gets.last_mut() {
                Some((_, end @ None)) => *end = Some((t, rc()?)),
                _ => return Err(bad(i + 1, "get_end without get_start")),
            },
            other => return Err(bad(i + 1, &format!("unknown step {other:?}"))),
        }
    }
    Ok(log)
}
