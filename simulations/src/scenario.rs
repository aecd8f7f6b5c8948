//! The scenario file (TOML): what to simulate, on which topology, with which protocol settings,
//! workload, faults and outputs. Parsed with unknown fields denied, then validated once into a
//! [`Scenario`] whose every field has a value, so the resolved file written next to the results
//! says exactly what ran.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::topology::{self, Overlay, OverlayKind, Topology, TopologyError};

/// Why a scenario is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("invalid scenario {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid scenario: {0}")]
    Invalid(String),
    /// The topology could not be built.
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// Which engine runs the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The discrete-event model (deterministic, 10,000+ nodes).
    Model,
    /// Real `lien-node` nodes in this process on 127.0.0.1 (no shaping, wall-clock time).
    Real,
}

/// A whole scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Run settings.
    #[serde(default)]
    pub sim: SimSection,
    /// Hosts and overlay.
    #[serde(default)]
    pub topology: TopologySection,
    /// Protocol parameters.
    #[serde(default)]
    pub protocol: ProtocolSection,
    /// What happens.
    #[serde(default)]
    pub workload: WorkloadSection,
    /// The central-portal baseline.
    #[serde(default)]
    pub baseline: BaselineSection,
    /// Nodes going down and up.
    #[serde(default)]
    pub churn: ChurnSection,
    /// Link cuts between groups of hosts.
    #[serde(default)]
    pub cut: Vec<CutSection>,
    /// Misbehaving nodes.
    #[serde(default)]
    pub adversary: AdversarySection,
    /// What to write.
    #[serde(default)]
    pub output: OutputSection,
}

/// `[sim]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSection {
    /// Name used in outputs.
    pub name: String,
    /// RNG seed; every random choice of the model derives from it.
    pub seed: u64,
    /// Engine.
    pub mode: Mode,
    /// Virtual time limit, seconds; the run stops when everything is done or at this time.
    pub duration_s: f64,
    /// Real mode: how many runs (seeds seed, seed+1, ...) to report mean and spread over.
    pub replicates: u32,
    /// Git commit of the code that ran (filled in by `run`).
    pub git_commit: Option<String>,
}

impl Default for SimSection {
    fn default() -> Self {
        Self {
            name: "scenario".into(),
            seed: 1,
            mode: Mode::Model,
            duration_s: 3600.0,
            replicates: 1,
            git_commit: None,
        }
    }
}

/// `[topology]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologySection {
    /// A built-in (`lien-sim topologies`); ignored when `file` is set.
    pub builtin: String,
    /// A user topology file, relative to the scenario file.
    pub file: Option<PathBuf>,
    /// Overlay shape; default: the built-in's own, `random-regular` for Vietnam and files without edges.
    pub overlay: Option<OverlayKind>,
    /// Overlay degree (per-node links).
    pub degree: usize,
    /// Hubs of `hub-and-spoke`.
    pub hubs: usize,
    /// Synthetic built-ins: number of nodes.
    pub nodes: usize,
    /// Vietnam: nodes per province (extra ones are district nodes).
    pub per_province: usize,
    /// Synthetic built-ins: upload Mbit/s of every host.
    pub up_mbps: f64,
    /// Synthetic built-ins: download Mbit/s of every host.
    pub down_mbps: f64,
    /// Synthetic built-ins: one-way latency between any two hosts, ms.
    pub latency_ms: f64,
    /// Latency jitter, as a fraction (0.1 = ±10%).
    pub jitter: f64,
    /// Synthetic built-ins: add a central portal host with this upload/download, Mbit/s.
    pub portal_mbps: f64,
}

impl Default for TopologySection {
    fn default() -> Self {
        Self {
            builtin: "vietnam-2025".into(),
            file: None,
            overlay: None,
            degree: 8,
            hubs: 4,
            nodes: 100,
            per_province: 1,
            up_mbps: 200.0,
            down_mbps: 200.0,
            latency_ms: 10.0,
            jitter: 0.1,
            portal_mbps: 10_000.0,
        }
    }
}

/// `[protocol]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolSection {
    /// Announcement gossip.
    pub gossip: GossipSection,
    /// Kademlia.
    pub kad: KadSection,
    /// Chunk transfer.
    pub transfer: TransferSection,
    /// The real nodes' connection management (real-code mode only; unset keys keep the node's
    /// defaults from `lien.toml`).
    pub connections: ConnectionsSection,
}

/// `[protocol.connections]`: `lien-node`'s connection settings for real-code runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsSection {
    /// `peer_high_water`: above this many peers, idle connections are closed.
    pub high_water: Option<u32>,
    /// `peer_low_water`: peers kept after trimming.
    pub low_water: Option<u32>,
    /// `idle_peer_secs`: seconds without transfer before a connection counts as idle.
    pub idle_s: Option<u64>,
    /// `min_peers`: below this many peers the node redials bootstrap and remembered peers.
    pub min_peers: Option<u32>,
    /// `reconnect_secs`: seconds between those checks.
    pub reconnect_s: Option<u64>,
    /// `dht_refresh_secs`: seconds between Kademlia routing-table refreshes (0 = never).
    pub dht_refresh_s: Option<u64>,
}

/// How announcements spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GossipMode {
    /// Gossipsub: eager push over a mesh of degree D, lazy IHAVE/IWANT every heartbeat.
    Mesh,
    /// Classic push rumour spreading in synchronous rounds (one round = one heartbeat): every
    /// informed node sends to `fanout` random neighbours each round.
    Push,
}

/// `[protocol.gossip]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipSection {
    /// Mesh or push.
    pub mode: GossipMode,
    /// Mesh degree D.
    pub d: usize,
    /// Lowest mesh degree D_lo.
    pub d_lo: usize,
    /// Highest mesh degree D_hi.
    pub d_hi: usize,
    /// Peers that get IHAVE each heartbeat (D_lazy).
    pub d_lazy: usize,
    /// Heartbeat (and push round), ms.
    pub heartbeat_ms: f64,
    /// Heartbeats a message id is advertised in IHAVE (mcache gossip window).
    pub history_gossip: u32,
    /// Validation cost per received message, ms (signature + canonical checks).
    pub validation_ms: f64,
    /// Announcement (manifest) size, bytes.
    pub message_bytes: u64,
    /// Push mode: targets per round.
    pub fanout: usize,
}

impl Default for GossipSection {
    fn default() -> Self {
        Self {
            mode: GossipMode::Mesh,
            d: 6,
            d_lo: 4,
            d_hi: 12,
            d_lazy: 6,
            heartbeat_ms: 1000.0,
            history_gossip: 3,
            validation_ms: 1.0,
            message_bytes: 2048,
            fanout: 1,
        }
    }
}

/// `[protocol.kad]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KadSection {
    /// Bucket size and replication factor k.
    pub k: usize,
    /// Lookup parallelism α.
    pub alpha: usize,
    /// Per-RPC processing time, ms.
    pub rpc_ms: f64,
    /// Extra random lookups to measure (per run), on top of the ones the workload makes.
    pub probe_lookups: usize,
}

impl Default for KadSection {
    fn default() -> Self {
        Self { k: 20, alpha: 3, rpc_ms: 0.5, probe_lookups: 200 }
    }
}

/// How a fetcher picks the next chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChunkOrder {
    /// A random missing chunk the source holds (good diversity, close to rarest-first).
    Random,
    /// The lowest missing chunk the source holds (Lien's current queue order).
    Sequential,
}

/// `[protocol.transfer]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferSection {
    /// Chunk size, KiB (a power of two, 64 KiB–16 MiB in Lien; any ≥ 1 here).
    pub chunk_kib: u64,
    /// Requests in flight to one source (`fetch_requests_per_peer`).
    pub requests_per_peer: usize,
    /// Sources used at once by one fetcher.
    pub max_sources: usize,
    /// Chunk requests a server serves at once before answering `busy` (Lien's
    /// `max_concurrent_uploads`). The default here, 64, is what the model's checks against
    /// published results use; a Lien node's own default is 4.
    pub max_inflight_serve: usize,
    /// Request timeout, ms (requests to a dead or cut-off peer fail after this; Lien's
    /// `request_timeout_secs`, whose own default is 30 s).
    pub request_timeout_ms: f64,
    /// Wait before retrying after `busy` or no usable source, ms.
    pub retry_ms: f64,
    /// How often a fetcher refreshes its provider list from the DHT, ms.
    pub provider_refresh_ms: f64,
    /// Chunk choice.
    pub order: ChunkOrder,
    /// Whether a fetcher also asks its overlay neighbours (partial holders serve).
    pub ask_neighbours: bool,
    /// How the model shares a host's upload and download among concurrent chunk responses.
    pub sharing: Sharing,
}

/// How the model shares a pipe among the chunk responses crossing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sharing {
    /// Processor sharing of each upload among the responses it is sending, as interleaved TCP
    /// streams and the simulated network's segments do; what the calibration against the real
    /// code uses (`docs/simulation.md`).
    Fair,
    /// Whole chunks one after another in request order (the default: it keeps the swarm within
    /// the published 2× of the fluid bound at N = 1,000, which fair sharing does not).
    Fifo,
}

impl Default for TransferSection {
    fn default() -> Self {
        Self {
            chunk_kib: 1024,
            requests_per_peer: 4,
            max_sources: 8,
            max_inflight_serve: 64,
            request_timeout_ms: 10_000.0,
            retry_ms: 500.0,
            provider_refresh_ms: 5_000.0,
            order: ChunkOrder::Random,
            ask_neighbours: true,
            sharing: Sharing::Fifo,
        }
    }
}

/// When fetchers start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FetchStart {
    /// As soon as the announcement arrives (plus `fetch_delay_ms`).
    OnAnnounce,
    /// At `fetch_at_ms` (plus `fetch_delay_ms`) whether announced or not (they resolve via the DHT).
    At,
}

/// `[workload]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSection {
    /// Who publishes (a selector; the first match).
    pub publisher: String,
    /// Publisher upload override, Mbit/s (0 = its class).
    pub publisher_up_mbps: f64,
    /// Dataset size, MiB (fractions allowed).
    pub dataset_mib: f64,
    /// Who fetches (a selector).
    pub fetchers: String,
    /// Fraction of the selected fetchers that actually fetch.
    pub fetch_fraction: f64,
    /// When fetches start.
    pub fetch_start: FetchStart,
    /// With `fetch_start = "at"`: when, ms.
    pub fetch_at_ms: f64,
    /// Each fetcher waits a uniform random 0..this, ms, before starting.
    pub fetch_delay_ms: f64,
}

impl Default for WorkloadSection {
    fn default() -> Self {
        Self {
            publisher: "kind:ministry".into(),
            publisher_up_mbps: 0.0,
            dataset_mib: 64.0,
            fetchers: "all".into(),
            fetch_fraction: 1.0,
            fetch_start: FetchStart::OnAnnounce,
            fetch_at_ms: 0.0,
            fetch_delay_ms: 0.0,
        }
    }
}

/// `[baseline]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineSection {
    /// Also run the central-portal baseline: the publisher uploads once to the portal, every
    /// fetcher downloads from the portal only.
    pub central_portal: bool,
}

impl Default for BaselineSection {
    fn default() -> Self {
        Self { central_portal: true }
    }
}

/// `[churn]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnSection {
    /// Fraction of nodes (never the publisher) that go on and off.
    pub fraction: f64,
    /// Mean up time, s (exponential).
    pub mean_up_s: f64,
    /// Mean down time, s (exponential).
    pub mean_down_s: f64,
    /// Nodes that crash for good.
    pub crash: Vec<CrashSection>,
}

/// `[[churn.crash]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashSection {
    /// Selector.
    pub nodes: String,
    /// When, s.
    pub at_s: f64,
}

/// `[[cut]]`: no traffic between group `a` and group `b` from `from_s` to `to_s`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutSection {
    /// Selector.
    pub a: String,
    /// Selector (`all` = everyone not in `a`).
    pub b: String,
    /// Start, s.
    #[serde(default)]
    pub from_s: f64,
    /// End, s.
    #[serde(default = "forever")]
    pub to_s: f64,
}

fn forever() -> f64 {
    f64::INFINITY
}

/// `[adversary]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdversarySection {
    /// Fraction of nodes (never the publisher) that serve corrupted chunks.
    pub bad_chunks: f64,
    /// Fraction of nodes (never the publisher) that accept gossip but never forward it.
    pub drop_gossip: f64,
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Write one JSONL event per chunk transfer too (large).
    pub chunk_events: bool,
    /// Write SVG plots.
    pub plots: bool,
}

impl Default for OutputSection {
    fn default() -> Self {
        Self { chunk_events: false, plots: true }
    }
}

impl Scenario {
    /// Reads, parses and validates a scenario file; a relative topology file is resolved against
    /// the scenario's folder.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: p.clone(), source })?;
        let mut s: Scenario =
            toml::from_str(&text).map_err(|e| ScenarioError::Parse { path: p.clone(), message: e.to_string() })?;
        if let Some(f) = &s.topology.file {
            if f.is_relative() {
                let base = path.parent().unwrap_or(Path::new("."));
                s.topology.file = Some(base.join(f));
            }
        }
        s.validate().map_err(|e| ScenarioError::Parse { path: p, message: e.to_string() })?;
        Ok(s)
    }

    /// Parses and validates scenario text (topology files relative to the current folder).
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError::Parse { path: "<text>".into(), message: e.to_string() })?;
        s.validate()?;
        Ok(s)
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_owned()));
        let pos = |x: f64| x.is_finite() && x > 0.0;
        let nonneg = |x: f64| x.is_finite() && x >= 0.0;
        let frac = |x: f64| (0.0..=1.0).contains(&x);
        let t = &self.topology;
        if !pos(self.sim.duration_s) {
            return bad("sim.duration_s must be > 0");
        }
        if self.sim.replicates == 0 || self.sim.replicates > 100 {
            return bad("sim.replicates must be 1..=100");
        }
        if t.file.is_none() && !topology::BUILTINS.iter().any(|b| b.name == t.builtin) {
            return Err(ScenarioError::Invalid(format!(
                "topology.builtin {:?} is unknown; `lien-sim topologies` lists the built-ins",
                t.builtin
            )));
        }
        if t.builtin != "vietnam-2025" && t.file.is_none() && !(2..=1_000_000).contains(&t.nodes) {
            return bad("topology.nodes must be 2..=1000000");
        }
        if t.degree == 0 || t.degree > 1000 {
            return bad("topology.degree must be 1..=1000");
        }
        if t.hubs == 0 {
            return bad("topology.hubs must be >= 1");
        }
        if t.per_province == 0 || t.per_province > 1000 {
            return bad("topology.per_province must be 1..=1000");
        }
        if !(pos(t.up_mbps) && pos(t.down_mbps) && nonneg(t.latency_ms) && pos(t.portal_mbps)) {
            return bad("topology.up_mbps, down_mbps and portal_mbps must be > 0, latency_ms >= 0");
        }
        if !(0.0..1.0).contains(&t.jitter) {
            return bad("topology.jitter must be in [0, 1)");
        }
        let g = &self.protocol.gossip;
        if g.d == 0 || g.d_lo > g.d || g.d > g.d_hi {
            return bad("protocol.gossip needs 0 < d_lo <= d <= d_hi");
        }
        if !pos(g.heartbeat_ms) || !nonneg(g.validation_ms) || g.fanout == 0 || g.message_bytes == 0 {
            return bad("protocol.gossip: heartbeat_ms > 0, validation_ms >= 0, fanout >= 1, message_bytes >= 1");
        }
        let k = &self.protocol.kad;
        if k.k == 0 || k.alpha == 0 || !nonneg(k.rpc_ms) {
            return bad("protocol.kad: k >= 1, alpha >= 1, rpc_ms >= 0");
        }
        let tr = &self.protocol.transfer;
        if tr.chunk_kib == 0 || tr.chunk_kib > 1 << 20 {
            return bad("protocol.transfer.chunk_kib must be 1..=1048576");
        }
        if tr.requests_per_peer == 0 || tr.max_sources == 0 || tr.max_inflight_serve == 0 {
            return bad("protocol.transfer: requests_per_peer, max_sources, max_inflight_serve must be >= 1");
        }
        if !(pos(tr.request_timeout_ms) && pos(tr.retry_ms) && pos(tr.provider_refresh_ms)) {
            return bad("protocol.transfer: request_timeout_ms, retry_ms, provider_refresh_ms must be > 0");
        }
        let cn = &self.protocol.connections;
        if cn.low_water == Some(0) || cn.high_water == Some(0) || cn.reconnect_s == Some(0) {
            return bad("protocol.connections: low_water, high_water, reconnect_s must be >= 1");
        }
        if let (Some(lo), Some(hi)) = (cn.low_water, cn.high_water) {
            if lo > hi {
                return bad("protocol.connections: low_water must be <= high_water");
            }
        }
        let w = &self.workload;
        if !pos(w.dataset_mib) || w.dataset_mib > 1e7 {
            return bad("workload.dataset_mib must be > 0 (and at most 10 TiB)");
        }
        let chunks = (w.dataset_mib * 1024.0 / tr.chunk_kib as f64).ceil();
        if chunks > 1e6 {
            return bad("workload.dataset_mib / chunk size gives more than 1,000,000 chunks; use larger chunks");
        }
        if !frac(w.fetch_fraction)
            || !nonneg(w.fetch_at_ms)
            || !nonneg(w.fetch_delay_ms)
            || !nonneg(w.publisher_up_mbps)
        {
            return bad("workload: fetch_fraction in [0, 1], fetch_at_ms, fetch_delay_ms, publisher_up_mbps >= 0");
        }
        let c = &self.churn;
        if !frac(c.fraction) {
            return bad("churn.fraction must be in [0, 1]");
        }
        if c.fraction > 0.0 && !(pos(c.mean_up_s) && pos(c.mean_down_s)) {
            return bad("churn: mean_up_s and mean_down_s must be > 0 when fraction > 0");
        }
        if c.crash.iter().any(|x| !nonneg(x.at_s)) {
            return bad("churn.crash.at_s must be >= 0");
        }
        if self.cut.iter().any(|x| !nonneg(x.from_s) || x.to_s.is_nan() || x.to_s < x.from_s) {
            return bad("cut: 0 <= from_s <= to_s");
        }
        if !frac(self.adversary.bad_chunks) || !frac(self.adversary.drop_gossip) {
            return bad("adversary fractions must be in [0, 1]");
        }
        Ok(())
    }

    /// Chunk size in bytes.
    pub fn chunk_bytes(&self) -> u64 {
        self.protocol.transfer.chunk_kib * 1024
    }

    /// Number of chunks of the dataset.
    pub fn chunks(&self) -> usize {
        let total = self.dataset_bytes();
        total.div_ceil(self.chunk_bytes()).max(1) as usize
    }

    /// Dataset size in bytes.
    pub fn dataset_bytes(&self) -> u64 {
        (self.workload.dataset_mib * 1024.0 * 1024.0).round().max(1.0) as u64
    }

    /// Builds the topology (hosts, latencies, overlay) for this scenario with `rng`.
    pub fn build_topology(&self, rng: &mut ChaCha8Rng) -> Result<Topology, ScenarioError> {
        let t = &self.topology;
        let (name, regions, latency, mut hosts, edges, natural) = if let Some(file) = &t.file {
            let f = topology::load_file(file)?;
            let natural = if f.edges.is_empty() { OverlayKind::RandomRegular } else { OverlayKind::Complete };
            (file.display().to_string(), f.regions, f.latency, f.hosts, f.edges, natural)
        } else if t.builtin == "vietnam-2025" {
            let regions = topology::VN_REGIONS.iter().map(|s| s.to_string()).collect();
            let latency = topology::vn_latency();
            (
                t.builtin.clone(),
                regions,
                latency,
                topology::vietnam_hosts(t.per_province),
                Vec::new(),
                OverlayKind::RandomRegular,
            )
        } else {
            let kind: OverlayKind = serde_json::from_value(serde_json::Value::String(t.builtin.clone()))
                .map_err(|_| ScenarioError::Invalid(format!("unknown builtin {:?}", t.builtin)))?;
            let class = topology::Class { up_mbps: t.up_mbps, down_mbps: t.down_mbps, access_ms: 0.0 };
            let mut hosts: Vec<_> =
                (0..t.nodes).map(|i| topology::synthetic_host(format!("n{i}"), "uniform", &class)).collect();
            let portal = topology::Class { up_mbps: t.portal_mbps, down_mbps: t.portal_mbps, access_ms: 0.0 };
            let mut p = topology::synthetic_host("portal".into(), "portal", &portal);
            p.kind = topology::HostKind::Portal;
            hosts.push(p);
            (t.builtin.clone(), vec!["all".into()], vec![vec![t.latency_ms]], hosts, Vec::new(), kind)
        };
        let portal = hosts.iter().position(|h| h.kind == topology::HostKind::Portal);
        // The portal, when there is one, must be last so that node indices are 0..nodes.
        if let Some(p) = portal {
            let h = hosts.remove(p);
            hosts.push(h);
        }
        let portal = portal.map(|_| hosts.len() - 1);
        let n = hosts.len() - usize::from(portal.is_some());
        let overlay = match (t.overlay, edges.is_empty()) {
            (None, false) => topology::overlay_from_edges(n, &edges, rng),
            (kind, _) => {
                let regions_of: Vec<usize> = hosts.iter().map(|h| h.region).collect();
                topology::build_overlay(kind.unwrap_or(natural), n, t.degree, t.hubs, &regions_of, rng)?
            }
        };
        if let Overlay::Graph(g) = &overlay {
            debug_assert_eq!(g.len(), n);
        }
        if self.workload.publisher_up_mbps > 0.0 {
            let pubs = self.resolve_publisher(&hosts, &regions, portal)?;
            hosts[pubs].up_bps = self.workload.publisher_up_mbps * 1e6 / 8.0;
        }
        Ok(Topology { name, regions, region_latency_ms: latency, hosts, portal, overlay })
    }

    fn resolve_publisher(
        &self,
        hosts: &[topology::Host],
        regions: &[String],
        portal: Option<usize>,
    ) -> Result<usize, ScenarioError> {
        let tmp = Topology {
            name: String::new(),
            regions: regions.to_vec(),
            region_latency_ms: Vec::new(),
            hosts: hosts.to_vec(),
            portal,
            overlay: Overlay::Complete(0),
        };
        Ok(tmp.select(&self.workload.publisher)?[0])
    }
}
