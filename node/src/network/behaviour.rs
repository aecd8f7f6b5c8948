//! The composed libp2p behaviour of a Lien node, and the wire names that keep networks apart.

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{connection_limits, gossipsub, identify, identity, kad, ping, request_response, StreamProtocol};

use super::codec::TransferCodec;
use crate::config::NodeConfig;

/// Everything a Lien node speaks, in one behaviour.
#[allow(missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Caps on connections in total and per peer.
    pub limits: connection_limits::Behaviour,
    /// Cap on inbound connections per remote IP.
    pub ip_limits: super::ip_limits::Behaviour,
    /// Exchanges listen addresses and protocols.
    pub identify: identify::Behaviour,
    /// Keeps connections alive and measures round trips.
    pub ping: ping::Behaviour,
    /// Provider records (per dataset) and signed name records.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Carries signed manifests, validated before they are forwarded.
    pub gossip: gossipsub::Behaviour,
    /// Manifests, chunk lists, chunk ranges and catalog pages.
    pub transfer: request_response::Behaviour<TransferCodec>,
}

/// Wire names for one network (`public`, `vn-gov`, ...): part of the contract with other peers.
#[derive(Debug, Clone)]
pub struct WireNames {
    /// Gossip topic for manifests.
    pub topic: String,
    /// Gossip topic for trust records.
    pub trust_topic: String,
    /// Kademlia protocol id.
    pub kad: StreamProtocol,
    /// Transfer protocol id.
    pub transfer: StreamProtocol,
    /// Identify protocol version string.
    pub identify: String,
}

impl WireNames {
    /// Names for network `network` (validated by the config to `[a-z0-9-]`).
    pub fn new(network: &str) -> Result<Self, String> {
        let p = |s: String| StreamProtocol::try_from_owned(s).map_err(|e| e.to_string());
        Ok(Self {
            topic: format!("/lien/{network}/manifests/1"),
            trust_topic: format!("/lien/{network}/trust/1"),
            kad: p(format!("/lien/{network}/kad/1.0.0"))?,
            transfer: p(format!("/lien/{network}/transfer/1"))?,
            identify: format!("/lien/{network}/1"),
        })
    }
}

impl Behaviour {
    /// Builds the behaviour for `key` with the limits from `config`.
    pub fn new(key: &identity::Keypair, config: &NodeConfig, names: &WireNames) -> Result<Self, String> {
        let peer_id = key.public().to_peer_id();
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(config.max_connections))
                .with_max_established_per_peer(Some(config.max_connections_per_peer))
                .with_max_pending_incoming(Some(config.max_connections / 2 + 1)),
        );
        let identify = identify::Behaviour::new(
            identify::Config::new(names.identify.clone(), key.public())
                .with_agent_version(format!("lien/{}", env!("CARGO_PKG_VERSION"))),
        );
        let ping = ping::Behaviour::new(ping::Config::new());

        let mut kad_config = kad::Config::new(names.kad.clone());
        kad_config.set_query_timeout(Duration::from_secs(30));
        kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
        kad_config.set_max_packet_size(64 * 1024);
        kad_config.set_parallelism(NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN));
        let reprovide = (config.reprovide_secs > 0).then(|| Duration::from_secs(config.reprovide_secs));
        kad_config.set_provider_publication_interval(reprovide);
        let k = NonZeroUsize::new(config.dht_k).unwrap_or(NonZeroUsize::MIN);
        kad_config.set_replication_factor(k);
        kad_config.set_kbucket_size(k);
        kad_config.set_periodic_bootstrap_interval(
            (config.dht_refresh_secs > 0).then(|| Duration::from_secs(config.dht_refresh_secs)),
        );
        let store = kad::store::MemoryStore::with_config(
            peer_id,
            kad::store::MemoryStoreConfig {
                max_records: 100_000,
                max_provided_keys: 200_000,
                max_providers_per_key: 64,
                ..Default::default()
            },
        );
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        // Loopback and private networks never confirm an external address, which would leave the
        // node in client mode answering nobody: a Lien node always serves the DHT.
        kad.set_mode(Some(kad::Mode::Server));

        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(lien_protocol::manifest::MAX_MANIFEST_LEN + 1024)
            .message_id_fn(|m: &gossipsub::Message| {
                gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
            })
            .heartbeat_interval(Duration::from_millis(700))
            .build()
            .map_err(|e| e.to_string())?;
        let mut gossip = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)?;
        gossip
            .with_peer_score(gossip_score_params(&[&names.topic, &names.trust_topic]), gossip_thresholds())
            .map_err(|e| e.to_string())?;

        let transfer = request_response::Behaviour::with_codec(
            TransferCodec,
            [(names.transfer.clone(), request_response::ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(config.request_timeout_secs))
                .with_max_concurrent_streams(config.max_concurrent_streams),
        );
        Ok(Self {
            limits,
            ip_limits: super::ip_limits::Behaviour::new(config.max_connections_per_ip),
            identify,
            ping,
            kad,
            gossip,
            transfer,
        })
    }
}

/// Peer scoring: invalid manifests cost a sender dearly; the rest stays near the defaults.
fn gossip_score_params(topics: &[&str]) -> gossipsub::PeerScoreParams {
    let mut params = gossipsub::PeerScoreParams::default();
    for topic in topics {
        let topic = gossipsub::IdentTopic::new(*topic);
        // Manifests are rare, so silence is normal: no mesh-delivery penalties. Time in the mesh
        // and first deliveries earn a little; every invalid message costs -100 × count², and
        // that memory fades slowly (half-life about 11 minutes), so a flood sinks its sender
        // below the graylist threshold and keeps it there.
        let topic_params = gossipsub::TopicScoreParams {
            topic_weight: 1.0,
            time_in_mesh_weight: 0.01,
            time_in_mesh_quantum: Duration::from_secs(1),
            time_in_mesh_cap: 100.0,
            first_message_deliveries_weight: 1.0,
            first_message_deliveries_decay: 0.9,
            first_message_deliveries_cap: 50.0,
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.999,
            ..Default::default()
        };
        params.topics.insert(topic.hash(), topic_params);
    }
    params
}

fn gossip_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -500.0,
        graylist_threshold: -1000.0,
        ..Default::default()
    }
}
