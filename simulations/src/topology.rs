//! Topologies: the hosts (region, bandwidth class, access delay), the underlay latency between
//! them, and the overlay (who is connected to whom).
//!
//! Built-ins are the Vietnam 2025 government network (`vietnam-2025`, from
//! `shared/research/simulation.md` §3) and uniform synthetic host sets wired as `complete`,
//! `random-regular`, `scale-free`, `hub-and-spoke` or `ring`. Users can describe their own in a
//! topology file (see `docs/simulation.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Why a topology could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A topology file could not be read.
    #[error("cannot read topology file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A topology file is not valid TOML of the expected shape.
    #[error("invalid topology file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The topology is inconsistent.
    #[error("invalid topology: {0}")]
    Invalid(String),
}

/// What an organisation is; used to pick publishers and fetchers (`kind:ministry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum HostKind {
    /// A ministry or ministerial-level agency.
    Ministry,
    /// A province.
    Province,
    /// A centrally-run city.
    City,
    /// A department or district node below a province.
    District,
    /// The central portal of the baseline.
    Portal,
    /// A host of a synthetic topology.
    Peer,
}

impl HostKind {
    /// The kind's text form.
    pub fn as_str(self) -> &'static str {
        match self {
            HostKind::Ministry => "ministry",
            HostKind::Province => "province",
            HostKind::City => "city",
            HostKind::District => "district",
            HostKind::Portal => "portal",
            HostKind::Peer => "peer",
        }
    }
}

/// A bandwidth class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    /// Upload capacity, Mbit/s.
    pub up_mbps: f64,
    /// Download capacity, Mbit/s.
    pub down_mbps: f64,
    /// One-way access delay added at each end, ms.
    #[serde(default)]
    pub access_ms: f64,
}

/// One simulated host (one Lien node).
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// Unique name, e.g. `min-finance` or `prov-nghe-an`.
    pub name: String,
    /// What it is.
    pub kind: HostKind,
    /// Index into [`Topology::regions`].
    pub region: usize,
    /// Name of its bandwidth class.
    pub class: String,
    /// Upload capacity, bytes per second.
    pub up_bps: f64,
    /// Download capacity, bytes per second.
    pub down_bps: f64,
    /// One-way access delay, ms.
    pub access_ms: f64,
}

/// Who is connected to whom.
#[derive(Debug, Clone)]
pub enum Overlay {
    /// Everyone with everyone (kept implicit so that N = 10,000 costs nothing).
    Complete(usize),
    /// Symmetric adjacency lists.
    Graph(Vec<Vec<u32>>),
}

impl Overlay {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        match self {
            Overlay::Complete(n) => *n,
            Overlay::Graph(g) => g.len(),
        }
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Degree of `v`.
    pub fn degree(&self, v: usize) -> usize {
        match self {
            Overlay::Complete(n) => n.saturating_sub(1),
            Overlay::Graph(g) => g[v].len(),
        }
    }

    /// The neighbours of `v` (materialised; avoid on large complete graphs).
    pub fn neighbours(&self, v: usize) -> Vec<u32> {
        match self {
            Overlay::Complete(n) => (0..*n as u32).filter(|&u| u as usize != v).collect(),
            Overlay::Graph(g) => g[v].clone(),
        }
    }

    /// A uniformly random neighbour of `v`, if it has one.
    pub fn random_neighbour(&self, v: usize, rng: &mut ChaCha8Rng) -> Option<u32> {
        match self {
            Overlay::Complete(n) if *n > 1 => {
                let u = rng.gen_range(0..n - 1);
                Some(if u >= v { u + 1 } else { u } as u32)
            }
            Overlay::Complete(_) => None,
            Overlay::Graph(g) => g[v].choose(rng).copied(),
        }
    }

    /// Number of undirected edges.
    pub fn edges(&self) -> usize {
        match self {
            Overlay::Complete(n) => n * n.saturating_sub(1) / 2,
            Overlay::Graph(g) => g.iter().map(Vec::len).sum::<usize>() / 2,
        }
    }
}

/// A resolved topology.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Its name.
    pub name: String,
    /// Region names.
    pub regions: Vec<String>,
    /// One-way latency between regions, ms (symmetric).
    pub region_latency_ms: Vec<Vec<f64>>,
    /// The hosts; the central portal (if any) is the last one.
    pub hosts: Vec<Host>,
    /// The central portal, used only by the baseline.
    pub portal: Option<usize>,
    /// Connections between the Lien nodes (the portal is in no overlay).
    pub overlay: Overlay,
}

impl Topology {
    /// Base one-way latency between two hosts, ms (without jitter).
    pub fn latency_ms(&self, a: usize, b: usize) -> f64 {
        let (ha, hb) = (&self.hosts[a], &self.hosts[b]);
        if a == b {
            return 0.0;
        }
        self.region_latency_ms[ha.region][hb.region] + ha.access_ms + hb.access_ms
    }

    /// Hosts matching a selector: `all`, `kind:K`, `region:R`, `class:C`, a host name or `#index`.
    pub fn select(&self, selector: &str) -> Result<Vec<usize>, TopologyError> {
        let hosts = self.hosts.iter().enumerate().filter(|(i, _)| Some(*i) != self.portal);
        let picked: Vec<usize> = if selector == "all" {
            hosts.map(|(i, _)| i).collect()
        } else if let Some(k) = selector.strip_prefix("kind:") {
            hosts.filter(|(_, h)| h.kind.as_str() == k).map(|(i, _)| i).collect()
        } else if let Some(r) = selector.strip_prefix("region:") {
            hosts.filter(|(_, h)| self.regions[h.region] == r).map(|(i, _)| i).collect()
        } else if let Some(c) = selector.strip_prefix("class:") {
            hosts.filter(|(_, h)| h.class == c).map(|(i, _)| i).collect()
        } else if let Some(n) = selector.strip_prefix('#') {
            let i: usize = n.parse().map_err(|_| TopologyError::Invalid(format!("bad host index in {selector:?}")))?;
            hosts.filter(|(j, _)| *j == i).map(|(i, _)| i).collect()
        } else {
            hosts.filter(|(_, h)| h.name == selector).map(|(i, _)| i).collect()
        };
        if picked.is_empty() {
            return Err(TopologyError::Invalid(format!(
                "selector {selector:?} matches no host (use all, kind:K, region:R, class:C, #INDEX or a host name)"
            )));
        }
        Ok(picked)
    }

    /// Number of Lien nodes (hosts other than the portal).
    pub fn nodes(&self) -> usize {
        self.hosts.len() - usize::from(self.portal.is_some())
    }
}

/// The overlay shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverlayKind {
    /// Everyone connected to everyone.
    Complete,
    /// Every node has the same degree, edges random.
    RandomRegular,
    /// Barabási–Albert preferential attachment, `degree / 2` edges per new node.
    ScaleFree,
    /// `hubs` hubs in a full mesh; every other node connects to `degree` hubs.
    HubAndSpoke,
    /// A ring, each node connected to its `degree / 2` nearest on each side.
    Ring,
    /// Random-regular inside each region plus `degree / 2` random links out of it.
    RegionClustered,
}

impl OverlayKind {
    /// Text form.
    pub fn as_str(self) -> &'static str {
        match self {
            OverlayKind::Complete => "complete",
            OverlayKind::RandomRegular => "random-regular",
            OverlayKind::ScaleFree => "scale-free",
            OverlayKind::HubAndSpoke => "hub-and-spoke",
            OverlayKind::Ring => "ring",
            OverlayKind::RegionClustered => "region-clustered",
        }
    }
}

/// A built-in topology for `lien-sim topologies`.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Name used in `[topology] builtin`.
    pub name: &'static str,
    /// One-line description.
    pub about: &'static str,
}

/// The built-in topologies.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "vietnam-2025",
        about:
            "17 ministries/agencies in Ha Noi + 34 provinces and cities (2 nodes for Ha Noi and HCMC) in 6 regions, \
                classes A 1 Gbit/s, B 200 Mbit/s, C 50 Mbit/s (northern mountains), central portal 10 Gbit/s; \
                per_province = k adds k-1 district nodes per province; overlay random-regular 8 by default",
    },
    Builtin { name: "complete", about: "N uniform hosts, everyone connected to everyone" },
    Builtin { name: "random-regular", about: "N uniform hosts, random d-regular overlay (degree, default 8)" },
    Builtin { name: "scale-free", about: "N uniform hosts, Barabasi-Albert overlay with degree/2 links per new node" },
    Builtin {
        name: "hub-and-spoke",
        about: "N uniform hosts, `hubs` hubs in a full mesh, each spoke linked to `degree` hubs",
    },
    Builtin { name: "ring", about: "N uniform hosts on a ring, each linked to its degree/2 nearest on each side" },
];

/// The six socio-economic regions.
pub const VN_REGIONS: [&str; 6] = ["NMM", "RRD", "NCC", "CH", "SE", "MD"];

/// One-way inter-region latency, ms (research notes §3, derived; intra-region 3 ms).
const VN_LATENCY: [[f64; 6]; 6] = [
    // NMM  RRD   NCC   CH    SE    MD
    [3.0, 4.0, 11.0, 15.0, 15.0, 17.0],
    [4.0, 3.0, 8.0, 12.0, 12.0, 14.0],
    [11.0, 8.0, 3.0, 5.0, 7.0, 9.0],
    [15.0, 12.0, 5.0, 3.0, 4.0, 6.0],
    [15.0, 12.0, 7.0, 4.0, 3.0, 3.0],
    [17.0, 14.0, 9.0, 6.0, 3.0, 3.0],
];

/// The 17 ministries and ministerial-level agencies (Resolution 176/2025/QH15).
pub const VN_MINISTRIES: [&str; 17] = [
    "defence",
    "public-security",
    "foreign-affairs",
    "home-affairs",
    "justice",
    "finance",
    "industry-trade",
    "agriculture-environment",
    "construction",
    "culture-sports-tourism",
    "science-technology",
    "education-training",
    "health",
    "ethnic-minorities-religions",
    "state-bank",
    "government-inspectorate",
    "government-office",
];

/// The 34 provinces and centrally-run cities (Resolution 202/2025/QH15): name, region index,
/// centrally-run city.
pub const VN_PROVINCES: [(&str, usize, bool); 34] = [
    ("lai-chau", 0, false),
    ("dien-bien", 0, false),
    ("son-la", 0, false),
    ("lang-son", 0, false),
    ("cao-bang", 0, false),
    ("tuyen-quang", 0, false),
    ("lao-cai", 0, false),
    ("thai-nguyen", 0, false),
    ("phu-tho", 0, false),
    ("ha-noi", 1, true),
    ("hai-phong", 1, true),
    ("quang-ninh", 1, false),
    ("bac-ninh", 1, false),
    ("hung-yen", 1, false),
    ("ninh-binh", 1, false),
    ("thanh-hoa", 2, false),
    ("nghe-an", 2, false),
    ("ha-tinh", 2, false),
    ("quang-tri", 2, false),
    ("hue", 2, true),
    ("da-nang", 2, true),
    ("quang-ngai", 2, false),
    ("khanh-hoa", 2, false),
    ("gia-lai", 3, false),
    ("dak-lak", 3, false),
    ("lam-dong", 3, false),
    ("ho-chi-minh", 4, true),
    ("dong-nai", 4, false),
    ("tay-ninh", 4, false),
    ("can-tho", 5, true),
    ("vinh-long", 5, false),
    ("dong-thap", 5, false),
    ("an-giang", 5, false),
    ("ca-mau", 5, false),
];

fn mbps(x: f64) -> f64 {
    x * 1e6 / 8.0
}

fn host(name: String, kind: HostKind, region: usize, class: &str, c: &Class) -> Host {
    Host {
        name,
        kind,
        region,
        class: class.to_owned(),
        up_bps: mbps(c.up_mbps),
        down_bps: mbps(c.down_mbps),
        access_ms: c.access_ms,
    }
}

/// The Vietnam one-way latency matrix between the six regions, ms.
pub fn vn_latency() -> Vec<Vec<f64>> {
    VN_LATENCY.iter().map(|r| r.to_vec()).collect()
}

/// A host of a synthetic topology (one region, region 0).
pub fn synthetic_host(name: String, class: &str, c: &Class) -> Host {
    host(name, HostKind::Peer, 0, class, c)
}

/// The Vietnam classes (research notes §3).
pub fn vn_classes() -> BTreeMap<String, Class> {
    BTreeMap::from([
        ("A".to_owned(), Class { up_mbps: 1000.0, down_mbps: 1000.0, access_ms: 0.5 }),
        ("B".to_owned(), Class { up_mbps: 200.0, down_mbps: 200.0, access_ms: 1.0 }),
        ("C".to_owned(), Class { up_mbps: 50.0, down_mbps: 50.0, access_ms: 3.0 }),
        ("portal".to_owned(), Class { up_mbps: 10_000.0, down_mbps: 10_000.0, access_ms: 0.5 }),
    ])
}

/// The Vietnam 2025 hosts: 17 ministries, 36 province/city nodes (`per_province` nodes per
/// province, twice that for Ha Noi and HCMC) and the central portal last.
pub fn vietnam_hosts(per_province: usize) -> Vec<Host> {
    let classes = vn_classes();
    let mut hosts = Vec::new();
    for m in VN_MINISTRIES {
        hosts.push(host(format!("min-{m}"), HostKind::Ministry, 1, "A", &classes["A"]));
    }
    for (name, region, city) in VN_PROVINCES {
        let big = name == "ha-noi" || name == "ho-chi-minh";
        let class = if big {
            "A"
        } else if region == 0 {
            "C"
        } else {
            "B"
        };
        let kind = if city { HostKind::City } else { HostKind::Province };
        let seats = if big { 2 } else { 1 };
        for s in 0..seats {
            let n = if seats > 1 {
                format!("{}-{}-{}", kind.as_str(), name, s + 1)
            } else {
                format!("{}-{name}", kind.as_str())
            };
            hosts.push(host(n, kind, region, class, &classes[class]));
        }
        for d in 1..per_province.max(1) {
            let dclass = if region == 0 { "C" } else { "B" };
            hosts.push(host(format!("dist-{name}-{d}"), HostKind::District, region, dclass, &classes[dclass]));
        }
    }
    hosts.push(host("portal".into(), HostKind::Portal, 1, "portal", &classes["portal"]));
    hosts
}

/// Builds an overlay over `n` nodes. `regions[i]` is used by `region-clustered` only.
pub fn build_overlay(
    kind: OverlayKind,
    n: usize,
    degree: usize,
    hubs: usize,
    regions: &[usize],
    rng: &mut ChaCha8Rng,
) -> Result<Overlay, TopologyError> {
    if n < 2 {
        return Err(TopologyError::Invalid(format!("an overlay needs at least 2 nodes, got {n}")));
    }
    let mut adj: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
    let link = |adj: &mut Vec<BTreeSet<u32>>, a: usize, b: usize| {
        if a != b {
            adj[a].insert(b as u32);
            adj[b].insert(a as u32);
        }
    };
    match kind {
        OverlayKind::Complete => return Ok(Overlay::Complete(n)),
        OverlayKind::RandomRegular => random_regular(&mut adj, n, degree.min(n - 1), rng),
        OverlayKind::ScaleFree => {
            let m = (degree / 2).max(1);
            // Preferential attachment: a list in which every node appears once per link end.
            let seed = (m + 1).min(n);
            let mut ends: Vec<usize> = Vec::new();
            for a in 0..seed {
                for b in (a + 1)..seed {
                    link(&mut adj, a, b);
                    ends.extend([a, b]);
                }
            }
            for v in seed..n {
                let mut chosen = BTreeSet::new();
                let mut tries = 0;
                while chosen.len() < m.min(v) && tries < 50 * m {
                    tries += 1;
                    if let Some(&u) = ends.choose(rng) {
                        chosen.insert(u);
                    }
                }
                for u in chosen {
                    link(&mut adj, v, u);
                    ends.extend([v, u]);
                }
            }
        }
        OverlayKind::HubAndSpoke => {
            let h = hubs.clamp(1, n);
            for a in 0..h {
                for b in (a + 1)..h {
                    link(&mut adj, a, b);
                }
            }
            let per = degree.clamp(1, h);
            for v in h..n {
                let mut order: Vec<usize> = (0..h).collect();
                order.shuffle(rng);
                for &hub in order.iter().take(per) {
                    link(&mut adj, v, hub);
                }
            }
        }
        OverlayKind::Ring => {
            let half = (degree / 2).max(1);
            for v in 0..n {
                for s in 1..=half {
                    link(&mut adj, v, (v + s) % n);
                }
            }
        }
        OverlayKind::RegionClustered => {
            let mut by_region: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (v, &r) in regions.iter().enumerate().take(n) {
                by_region.entry(r).or_default().push(v);
            }
            for members in by_region.values() {
                if members.len() < 2 {
                    continue;
                }
                let mut local: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); members.len()];
                random_regular(&mut local, members.len(), (degree / 2).max(1).min(members.len() - 1), rng);
                for (i, set) in local.iter().enumerate() {
                    for &j in set {
                        link(&mut adj, members[i], members[j as usize]);
                    }
                }
            }
            for v in 0..n {
                for _ in 0..(degree / 2).max(1) {
                    let u = rng.gen_range(0..n);
                    link(&mut adj, v, u);
                }
            }
        }
    }
    // Keep the overlay connected: join every component to the first one.
    connect_components(&mut adj, rng);
    Ok(Overlay::Graph(
        adj.into_iter()
            .map(|s| {
                let mut v: Vec<u32> = s.into_iter().collect();
                v.sort_unstable();
                v
            })
            .collect(),
    ))
}

/// A random d-regular-ish graph: d/2 random perfect matchings of a shuffled ring (pairing
/// model without rejection; rare duplicate edges make a few degrees one short).
fn random_regular(adj: &mut [BTreeSet<u32>], n: usize, degree: usize, rng: &mut ChaCha8Rng) {
    let rounds = degree.div_ceil(2).max(1);
    for _ in 0..rounds {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        // A Hamiltonian cycle through a random order adds 2 to every degree.
        for i in 0..n {
            let (a, b) = (order[i], order[(i + 1) % n]);
            if a != b {
                adj[a].insert(b as u32);
                adj[b].insert(a as u32);
            }
        }
    }
}

fn connect_components(adj: &mut [BTreeSet<u32>], rng: &mut ChaCha8Rng) {
    let n = adj.len();
    let mut comp = vec![usize::MAX; n];
    let mut reps = Vec::new();
    for s in 0..n {
        if comp[s] != usize::MAX {
            continue;
        }
        let id = reps.len();
        reps.push(s);
        let mut stack = vec![s];
        comp[s] = id;
        while let Some(v) = stack.pop() {
            let next: Vec<u32> = adj[v].iter().copied().collect();
            for u in next {
                if comp[u as usize] == usize::MAX {
                    comp[u as usize] = id;
                    stack.push(u as usize);
                }
            }
        }
    }
    for &r in reps.iter().skip(1) {
        let target = rng.gen_range(0..reps.len());
        let t = reps[target.min(reps.len() - 1)];
        let t = if comp[t] == comp[r] { reps[0] } else { t };
        adj[r].insert(t as u32);
        adj[t].insert(r as u32);
    }
}

/// A user topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyFile {
    /// Regions.
    pub region: Vec<RegionDef>,
    /// One-way latencies between regions (missing pairs: `default_latency_ms`).
    #[serde(default)]
    pub latency: Vec<LatencyDef>,
    /// Latency within a region and between unlisted pairs, ms.
    #[serde(default = "default_latency")]
    pub default_latency_ms: f64,
    /// Bandwidth classes by name.
    pub class: BTreeMap<String, Class>,
    /// Organisations, each one or more nodes.
    pub org: Vec<OrgDef>,
    /// Optional explicit overlay edges between org ids (all nodes of each).
    #[serde(default)]
    pub edge: Vec<EdgeDef>,
}

fn default_latency() -> f64 {
    3.0
}

/// `[[region]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionDef {
    /// Name.
    pub name: String,
}

/// `[[latency]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyDef {
    /// Region.
    pub a: String,
    /// Region.
    pub b: String,
    /// One-way latency, ms.
    pub one_way_ms: f64,
}

/// `[[org]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgDef {
    /// Unique id (node names are `id` or `id-1`, `id-2`...).
    pub id: String,
    /// Kind.
    pub kind: HostKind,
    /// Region name.
    pub region: String,
    /// Class name.
    pub class: String,
    /// Number of nodes.
    #[serde(default = "one")]
    pub nodes: usize,
}

fn one() -> usize {
    1
}

/// `[[edge]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeDef {
    /// Org id.
    pub a: String,
    /// Org id.
    pub b: String,
}

/// The hosts, regions and latency matrix of a user topology file, plus explicit edges.
pub struct LoadedFile {
    /// Regions.
    pub regions: Vec<String>,
    /// Latency matrix.
    pub latency: Vec<Vec<f64>>,
    /// Hosts (a `kind = "portal"` org, if any, becomes the portal).
    pub hosts: Vec<Host>,
    /// Explicit overlay edges, if any were given.
    pub edges: Vec<(usize, usize)>,
}

impl std::fmt::Debug for LoadedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedFile").field("hosts", &self.hosts.len()).finish()
    }
}

/// Reads and checks a topology file.
pub fn load_file(path: &Path) -> Result<LoadedFile, TopologyError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read { path: p.clone(), source })?;
    let file: TopologyFile =
        toml::from_str(&text).map_err(|e| TopologyError::Parse { path: p.clone(), message: e.to_string() })?;
    resolve_file(&file).map_err(|e| TopologyError::Parse { path: p, message: e.to_string() })
}

/// Checks a parsed topology file and resolves names to indices.
pub fn resolve_file(file: &TopologyFile) -> Result<LoadedFile, TopologyError> {
    let bad = |m: String| TopologyError::Invalid(m);
    let regions: Vec<String> = file.region.iter().map(|r| r.name.clone()).collect();
    if regions.is_empty() {
        return Err(bad("no [[region]] given".into()));
    }
    let idx = |name: &str| regions.iter().position(|r| r == name);
    let n = regions.len();
    let mut latency = vec![vec![file.default_latency_ms; n]; n];
    for l in &file.latency {
        let a = idx(&l.a).ok_or_else(|| bad(format!("latency names unknown region {:?}", l.a)))?;
        let b = idx(&l.b).ok_or_else(|| bad(format!("latency names unknown region {:?}", l.b)))?;
        if !(l.one_way_ms.is_finite() && l.one_way_ms >= 0.0) {
            return Err(bad(format!("latency {}-{} must be a non-negative number of ms", l.a, l.b)));
        }
        latency[a][b] = l.one_way_ms;
        latency[b][a] = l.one_way_ms;
    }
    for (name, c) in &file.class {
        if !(c.up_mbps > 0.0 && c.down_mbps > 0.0 && c.access_ms >= 0.0) {
            return Err(bad(format!("class {name}: up_mbps and down_mbps must be > 0, access_ms >= 0")));
        }
    }
    let mut hosts = Vec::new();
    let mut org_nodes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut portal = None;
    for o in &file.org {
        let r = idx(&o.region).ok_or_else(|| bad(format!("org {} names unknown region {:?}", o.id, o.region)))?;
        let c =
            file.class.get(&o.class).ok_or_else(|| bad(format!("org {} names unknown class {:?}", o.id, o.class)))?;
        if o.nodes == 0 || o.nodes > 100_000 {
            return Err(bad(format!("org {}: nodes must be 1..=100000", o.id)));
        }
        if org_nodes.contains_key(o.id.as_str()) {
            return Err(bad(format!("org id {:?} appears twice", o.id)));
        }
        if o.kind == HostKind::Portal {
            if portal.is_some() || o.nodes != 1 {
                return Err(bad("at most one portal org, with one node".into()));
            }
            portal = Some(host(o.id.clone(), o.kind, r, &o.class, c));
            org_nodes.insert(&o.id, Vec::new());
            continue;
        }
        let mut ids = Vec::new();
        for k in 0..o.nodes {
            let name = if o.nodes == 1 { o.id.clone() } else { format!("{}-{}", o.id, k + 1) };
            ids.push(hosts.len());
            hosts.push(host(name, o.kind, r, &o.class, c));
        }
        org_nodes.insert(&o.id, ids);
    }
    if hosts.len() < 2 {
        return Err(bad("a topology needs at least 2 nodes besides the portal".into()));
    }
    let mut edges = Vec::new();
    for e in &file.edge {
        let a = org_nodes.get(e.a.as_str()).ok_or_else(|| bad(format!("edge names unknown org {:?}", e.a)))?;
        let b = org_nodes.get(e.b.as_str()).ok_or_else(|| bad(format!("edge names unknown org {:?}", e.b)))?;
        for &x in a {
            for &y in b {
                if x != y {
                    edges.push((x, y));
                }
            }
        }
    }
    hosts.extend(portal);
    Ok(LoadedFile { regions, latency, hosts, edges })
}

/// Adjacency lists from explicit edges over `n` nodes.
pub fn overlay_from_edges(n: usize, edges: &[(usize, usize)], rng: &mut ChaCha8Rng) -> Overlay {
    let mut adj: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
    for &(a, b) in edges {
        adj[a].insert(b as u32);
        adj[b].insert(a as u32);
    }
    connect_components(&mut adj, rng);
    Overlay::Graph(
        adj.into_iter()
            .map(|s| {
                let mut v: Vec<u32> = s.into_iter().collect();
                v.sort_unstable();
                v
            })
            .collect(),
    )
}
