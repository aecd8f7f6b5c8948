//! Node configuration: embedded defaults, then `lien.toml`, then flags; validated once.

use std::path::{Path, PathBuf};

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// The default configuration file, with comments; `lien init` writes it to `HOME/lien.toml`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default-config.toml");

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this structure.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A value out of range.
    #[error("invalid config value for {field}: {message}")]
    Invalid {
        /// The key.
        field: &'static str,
        /// Why.
        message: String,
    },
}

/// The settings of one node (the `[node]` table of `lien.toml` plus the home folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The node's home folder: keys, store, data, config.
    #[serde(skip)]
    pub home: PathBuf,
    /// Network name; nodes with different names never talk.
    pub network: String,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to at start (full multiaddrs ending in `/p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Peers always kept in the gossip mesh (fixed ministry ↔ province links).
    pub explicit_peers: Vec<Multiaddr>,
    /// Most established connections.
    pub max_connections: u32,
    /// Most connections to one peer.
    pub max_connections_per_peer: u32,
    /// Most inbound connections from one IP address.
    pub max_connections_per_ip: u32,
    /// Connections are trimmed once the node is connected to more peers than this: the least
    /// recently used idle ones are closed until `peer_low_water` remain. Idle means: not in the
    /// gossip mesh, not an explicit peer, no transfer request in flight either way, and none for
    /// `idle_peer_secs`. Kademlia dials whoever its lookups visit; without trimming every node
    /// would end up connected to every other (gossipsub's streams keep connections open).
    pub peer_high_water: u32,
    /// Peers kept after trimming (see `peer_high_water`).
    pub peer_low_water: u32,
    /// Seconds a connection is left alone after it opens or after its last transfer request.
    pub idle_peer_secs: u64,
    /// With fewer connected peers than this, the node redials its bootstrap peers and the peers
    /// it remembers (and refreshes its DHT routing) every `reconnect_secs`, e.g. after a
    /// partition heals.
    pub min_peers: u32,
    /// Seconds between reconnection checks (see `min_peers`).
    pub reconnect_secs: u64,
    /// Seconds between refreshes of the DHT routing table (a Kademlia bootstrap: a lookup of
    /// the node's own id and of a random id in every bucket, dialling every peer it visits;
    /// 0 = only at start-up and when the table is nearly empty). rust-libp2p's default is 300.
    pub dht_refresh_secs: u64,
    /// Kademlia's k: the size of each routing-table bucket, the number of nodes a provider or
    /// name record is stored on, and how many closest nodes a lookup must reach (so each
    /// lookup contacts a little over k peers). libp2p's default is 20.
    pub dht_k: usize,
    /// Most concurrent transfer streams.
    pub max_concurrent_streams: usize,
    /// Seconds before a transfer request times out.
    pub request_timeout_secs: u64,
    /// Requests in flight to one peer while fetching.
    pub fetch_requests_per_peer: usize,
    /// Chunk requests served at once (upload slots); more get `Busy` and go to other holders.
    pub max_concurrent_uploads: usize,
    /// Threads used to hash while publishing and verifying (0 = all cores).
    pub hash_threads: usize,
    /// Seconds between announcements of held datasets to the DHT (0 = never re-announce).
    pub reprovide_secs: u64,
    /// Trust roots (publisher keys in text form) whose delegations this node accepts. With no
    /// roots and no trusted publishers the network is open: any validly signed manifest counts.
    pub trust_roots: Vec<String>,
    /// Publisher keys (text form) accepted directly.
    pub trusted_publishers: Vec<String>,
    /// Longest delegation chain from a root to a publisher.
    pub trust_max_depth: usize,
    /// Most manifests kept in the catalog per publisher key.
    pub max_manifests_per_publisher: u64,
    /// Bytes of fetched and copied datasets this node may hold (0 = no limit); a fetch that
    /// would go over it is refused.
    pub storage_quota_bytes: u64,
    /// Mirror (fetch and pin) every new dataset of these publishers (keys in text form).
    pub mirror_publishers: Vec<String>,
    /// Mirror every new dataset with one of these themes (case-insensitive).
    pub mirror_themes: Vec<String>,
    /// Pre-shared key (64 hex digits) of a private network: only nodes holding it can even
    /// complete a connection (libp2p `pnet`, TCP only; QUIC listen addresses are skipped).
    pub private_network_key: Option<String>,
    /// Move chunk traffic to the bulk channel (a second TCP connection to the peer's libp2p TCP
    /// port, sealed with AES-GCM keys handed out over the libp2p connection; see
    /// `lien_protocol::bulk`) when the peer offers one. Off, or on a private network, every byte
    /// goes over libp2p.
    pub bulk_transfer: bool,
    /// Adversary mode for simulations and tests: serve corrupted chunk bytes. Set from code
    /// only (the simulator and the tests): `lien.toml` cannot set it (the key is refused as
    /// unknown), so no operator can turn a real node into an adversary by configuration.
    #[serde(skip)]
    pub adversary_corrupt_chunks: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            home: PathBuf::new(),
            network: "public".into(),
            listen: vec![
                "/ip4/0.0.0.0/tcp/4040".parse().unwrap_or_else(|_| Multiaddr::empty()),
                "/ip4/0.0.0.0/udp/4040/quic-v1".parse().unwrap_or_else(|_| Multiaddr::empty()),
            ],
            bootstrap: Vec::new(),
            explicit_peers: Vec::new(),
            max_connections: 512,
            max_connections_per_peer: 2,
            max_connections_per_ip: 32,
            peer_high_water: 48,
            peer_low_water: 24,
            idle_peer_secs: 30,
            min_peers: 4,
            reconnect_secs: 15,
            dht_refresh_secs: 1800,
            dht_k: 20,
            max_concurrent_streams: 256,
            request_timeout_secs: 30,
            fetch_requests_per_peer: 4,
            max_concurrent_uploads: 4,
            hash_threads: 0,
            reprovide_secs: 3600,
            trust_roots: Vec::new(),
            trusted_publishers: Vec::new(),
            trust_max_depth: lien_protocol::trust::DEFAULT_MAX_DEPTH,
            max_manifests_per_publisher: 100_000,
            storage_quota_bytes: 0,
            mirror_publishers: Vec::new(),
            mirror_themes: Vec::new(),
            private_network_key: None,
            bulk_transfer: true,
            adversary_corrupt_chunks: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    node: Option<NodeConfig>,
    #[serde(default)]
    api: Option<toml::Table>,
}

/// `HOME/lien.toml` read once: the node's settings, and the `[api]` table as it was written, for
/// the HTTP front end to type (this crate knows nothing of HTTP).
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    /// The file (it may not exist: then every setting is at its default).
    pub path: PathBuf,
    /// The `[node]` table with the home folder, validated.
    pub node: NodeConfig,
    /// The `[api]` table, untyped (empty when missing).
    pub api: toml::Table,
}

impl ConfigFile {
    /// Reads `HOME/lien.toml` when it exists (else the defaults) and validates the node's table.
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        let path = home.join("lien.toml");
        let mut file = if path.exists() {
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.clone(), message })?
        } else {
            Self::default()
        };
        file.path = path;
        file.node.home = home.to_path_buf();
        file.node.validate()?;
        Ok(file)
    }

    /// Parses the text of a `lien.toml` (not validated).
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(Self { path: PathBuf::new(), node: file.node.unwrap_or_default(), api: file.api.unwrap_or_default() })
    }
}

impl NodeConfig {
    /// A config for `home` with every other setting at its default (for tests and tools).
    pub fn for_home(home: &Path) -> Self {
        Self { home: home.to_path_buf(), ..Self::default() }
    }

    /// Loads `HOME/lien.toml` when it exists (else the defaults) and validates it (the node's
    /// table only: [`ConfigFile::load`] gives the `[api]` table too).
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        Ok(ConfigFile::load(home)?.node)
    }

    /// Parses the text of a `lien.toml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(ConfigFile::parse(text)?.node)
    }

    /// Checks every value once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: &str| Err(ConfigError::Invalid { field, message: message.into() });
        if self.network.is_empty()
            || self.network.len() > 32
            || !self.network.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("network", "must be 1 to 32 characters from a-z, 0-9 and '-'");
        }
        if self.max_connections == 0 || self.max_connections_per_peer == 0 || self.max_connections_per_ip == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.peer_low_water == 0 || self.peer_high_water < self.peer_low_water {
            return bad("peer_low_water", "must be at least 1 and at most peer_high_water");
        }
        if self.min_peers > self.peer_low_water {
            return bad("min_peers", "must be at most peer_low_water");
        }
        if self.dht_k == 0 || self.dht_k > 64 {
            return bad("dht_k", "must be 1 to 64");
        }
        if self.reconnect_secs == 0 {
            return bad("reconnect_secs", "must be at least 1");
        }
        if self.fetch_requests_per_peer == 0 || self.fetch_requests_per_peer > 64 {
            return bad("fetch_requests_per_peer", "must be 1 to 64");
        }
        if self.request_timeout_secs == 0 {
            return bad("request_timeout_secs", "must be at least 1");
        }
        if self.max_manifests_per_publisher == 0 {
            return bad("max_manifests_per_publisher", "must be at least 1");
        }
        for key in self.trust_roots.iter().chain(&self.trusted_publishers).chain(&self.mirror_publishers) {
            if let Err(e) = key.parse::<lien_protocol::PublisherKey>() {
                return Err(ConfigError::Invalid { field: "trust_roots", message: format!("{key:?}: {e}") });
            }
        }
        if self.trust_max_depth == 0 || self.trust_max_depth > 16 {
            return bad("trust_max_depth", "must be 1 to 16");
        }
        if let Some(key) = &self.private_network_key {
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad("private_network_key", "must be 64 hex digits (32 bytes)");
            }
        }
        for addr in self.bootstrap.iter().chain(&self.explicit_peers) {
            if crate::network::peer_id_of(addr).is_none() {
                return Err(ConfigError::Invalid {
                    field: "bootstrap",
                    message: format!("{addr} does not end in /p2p/<peer id>"),
                });
            }
        }
        Ok(())
    }

    /// The private network's pre-shared key, if one is configured and valid.
    pub fn psk(&self) -> Option<[u8; 32]> {
        let id: lien_protocol::ContentId = self.private_network_key.as_deref()?.parse().ok()?;
        Some(*id.as_bytes())
    }

    /// Whether the bulk channel is used: configured on, and not on a private network (whose
    /// point is that only pnet-protected connections exist).
    pub fn bulk_enabled(&self) -> bool {
        self.bulk_transfer && self.private_network_key.is_none()
    }

    /// Threads to hash with.
    pub fn hash_threads(&self) -> usize {
        if self.hash_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.hash_threads
        }
    }

    /// The redb store file.
    pub fn store_path(&self) -> PathBuf {
        self.home.join("store.redb")
    }

    /// Where published (copied) datasets live.
    pub fn data_dir(&self) -> PathBuf {
        self.home.join("data")
    }

    /// Whether the mirror policy (`mirror_publishers`, `mirror_themes`) covers this dataset.
    pub fn mirrors(&self, body: &lien_protocol::ManifestBody) -> bool {
        mirror_covers(&self.mirror_publishers, &self.mirror_themes, body)
    }

    /// The mirror policy on its own (what the catalog keeps of the config).
    pub fn mirror_policy(&self) -> MirrorPolicy {
        MirrorPolicy { publishers: self.mirror_publishers.clone(), themes: self.mirror_themes.clone() }
    }
}

/// Which new datasets a node mirrors (fetches and pins): `mirror_publishers`, `mirror_themes`.
#[derive(Debug, Clone, Default)]
pub struct MirrorPolicy {
    /// Every new dataset of these publishers (keys in text form).
    pub publishers: Vec<String>,
    /// Every new dataset with one of these themes (case-insensitive).
    pub themes: Vec<String>,
}

impl MirrorPolicy {
    /// Whether the policy covers this dataset.
    pub fn covers(&self, body: &lien_protocol::ManifestBody) -> bool {
        mirror_covers(&self.publishers, &self.themes, body)
    }
}

/// Whether a dataset is one of `publishers`' or has one of `themes`.
fn mirror_covers(publishers: &[String], themes: &[String], body: &lien_protocol::ManifestBody) -> bool {
    let publisher = body.publisher.to_string();
    publishers.contains(&publisher)
        || body.metadata.themes.iter().any(|t| themes.iter().any(|w| w.eq_ignore_ascii_case(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_to_the_defaults() {
        let c = NodeConfig::parse(DEFAULT_CONFIG_TOML).unwrap();
        let d = NodeConfig::default();
        assert_eq!(c.network, d.network);
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.max_connections, d.max_connections);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn the_hardened_deployment_config_parses_and_validates() {
        let c = NodeConfig::parse(include_str!("../../deploy/lien.toml")).unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.network, "vn-gov");
        assert!(c.bulk_enabled());
    }

    #[test]
    fn bad_values_are_named() {
        let e = NodeConfig::parse("[node]\nnetwork = \"Bad Name\"\n").unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("network"), "{e}");
        let e = NodeConfig::parse("[node]\nbootstrap = [\"/ip4/127.0.0.1/tcp/1\"]\n").unwrap().validate().unwrap_err();
        assert!(e.to_string().contains("/p2p/"), "{e}");
        assert!(NodeConfig::parse("[node]\nnetwrk = \"x\"\n").unwrap_err().contains("unknown field"));
    }

    #[test]
    fn test_switches_cannot_be_set_from_the_file() {
        let e = NodeConfig::parse("[node]\nadversary_corrupt_chunks = true\n").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        // From code (the simulator, the tests) it still is.
        let c = NodeConfig { adversary_corrupt_chunks: true, ..NodeConfig::default() };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn one_read_gives_both_tables() {
        let f = ConfigFile::parse("[node]\nnetwork = \"x\"\n[api]\nlisten = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!(f.node.network, "x");
        assert_eq!(f.api.get("listen").and_then(|v| v.as_str()), Some("127.0.0.1:1"));
        let dir = std::env::temp_dir().join(format!("lien-config-test-{}", std::process::id()));
        let f = ConfigFile::load(&dir).unwrap();
        assert!(f.api.is_empty(), "no file: an empty [api] table");
        assert_eq!(f.node.home, dir);
    }
}
