//! The libp2p side of a node: one task owns the Swarm; everyone else holds a [`NetworkHandle`]
//! and sends it [`Command`]s over a bounded channel, with oneshot replies.

pub mod behaviour;
pub mod codec;
mod event_loop;
pub mod ip_limits;
mod shared_port;

pub use shared_port::BulkHandoff;

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{identity, Multiaddr, PeerId};
use lien_protocol::wire::Request;
use lien_protocol::ContentId;
use tokio::sync::{mpsc, oneshot};

pub use codec::TransferResponse;
pub use event_loop::spawn;

/// Why a network operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Stopped,
    /// A request to a peer failed.
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A dial failed.
    #[error("cannot connect to {addr}: {reason}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The swarm could not be built or could not listen.
    #[error("network setup: {0}")]
    Setup(String),
}

/// A connected peer, as shown by `lien peers`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerInfo {
    /// Peer id.
    pub peer_id: String,
    /// Addresses of open connections.
    pub addrs: Vec<String>,
    /// Agent version reported by identify, if known.
    pub agent: Option<String>,
}

/// Something the network task reports to the node.
#[derive(Debug)]
pub enum NetEvent {
    /// A manifest arrived over gossip and passed validation.
    Manifest {
        /// Its canonical bytes.
        bytes: Vec<u8>,
        /// The peer that forwarded it.
        source: PeerId,
    },
    /// A peer asks for something over the transfer protocol; answer with [`Command::Respond`].
    Inbound {
        /// Who asks.
        peer: PeerId,
        /// What.
        request: Request,
        /// Where the answer goes.
        channel: ResponseSlot,
    },
    /// A trust record arrived over gossip and passed validation.
    TrustRecord {
        /// Its canonical bytes.
        bytes: Vec<u8>,
    },
    /// A new peer connected (first connection).
    Connected {
        /// The peer.
        peer: PeerId,
        /// The address of the connection.
        addr: Multiaddr,
    },
    /// A name record arrived through the DHT and passed validation.
    NameRecord {
        /// The record's bytes.
        bytes: Vec<u8>,
    },
}

/// The reply slot of an inbound request.
pub struct ResponseSlot(
    pub(crate) libp2p::request_response::ResponseChannel<TransferResponse>,
    pub(crate) libp2p::request_response::InboundRequestId,
);

impl std::fmt::Debug for ResponseSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseSlot")
    }
}

/// What a gossip validator decided about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: keep and forward.
    Accept,
    /// Valid but unwanted here (e.g. an untrusted publisher): drop without blaming the sender.
    Ignore,
    /// Invalid: drop and lower the sender's score.
    Reject,
}

/// Validates a gossiped message before it is forwarded.
pub type GossipValidator = std::sync::Arc<dyn Fn(&[u8]) -> Verdict + Send + Sync>;
/// Validates a DHT name record (key, new value, value already stored) before it is stored.
/// Returns true to accept.
pub type RecordValidator = std::sync::Arc<dyn Fn(&[u8], &[u8], Option<&[u8]>) -> bool + Send + Sync>;

/// Work for the network task.
#[derive(Debug)]
pub enum Command {
    /// Dial an address ending in `/p2p/<peer>`; replies when connected.
    Dial { addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, NetError>> },
    /// Send a transfer request.
    Request { peer: PeerId, request: Request, reply: oneshot::Sender<Result<TransferResponse, NetError>> },
    /// Answer an inbound request; `sent`, if given, is told when the whole response has been
    /// written to the stream (dropped if it could not be), so that an upload slot is held
    /// while its bytes leave, not only while they are read from disk.
    Respond { slot: ResponseSlot, response: TransferResponse, sent: Option<oneshot::Sender<()>> },
    /// Gossip a manifest.
    Announce { bytes: Vec<u8> },
    /// Gossip a trust record (delegation or revocation).
    AnnounceTrust { bytes: Vec<u8> },
    /// Provide a key (manifest id) in the DHT.
    Provide { key: ContentId },
    /// Stop providing a key.
    StopProviding { key: ContentId },
    /// Find providers of a key.
    FindProviders { key: ContentId, reply: oneshot::Sender<Vec<PeerId>> },
    /// Store a name record in the DHT.
    PutRecord { key: ContentId, value: Vec<u8> },
    /// Look a name record up in the DHT.
    GetRecord { key: ContentId, reply: oneshot::Sender<Vec<Vec<u8>>> },
    /// Connected peers.
    Peers { reply: oneshot::Sender<Vec<PeerInfo>> },
    /// The addresses of one peer's open connections (none when it is not connected).
    PeerAddrs { peer: PeerId, reply: oneshot::Sender<Vec<Multiaddr>> },
    /// This node's gossip score of a peer, and whether the peer is in its manifest mesh.
    GossipStanding { peer: PeerId, reply: oneshot::Sender<(Option<f64>, bool)> },
    /// Current listen addresses (with `/p2p/<self>`).
    ListenAddrs { reply: oneshot::Sender<Vec<Multiaddr>> },
    /// Refresh the DHT routing table (a Kademlia bootstrap), e.g. after a partition healed.
    Bootstrap,
    /// Stop the task.
    Shutdown,
}

/// A cloneable handle to the network task.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
}

impl NetworkHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Sends a command without waiting for an answer.
    pub async fn send(&self, cmd: Command) -> Result<(), NetError> {
        self.tx.send(cmd).await.map_err(|_| NetError::Stopped)
    }

    /// Connects to `addr` (which must end in `/p2p/<peer id>`), waiting at most `timeout`.
    pub async fn dial(&self, addr: Multiaddr, timeout: Duration) -> Result<PeerId, NetError> {
        let shown = addr.to_string();
        match tokio::time::timeout(timeout, self.ask(|reply| Command::Dial { addr, reply })).await {
            Ok(r) => r?,
            Err(_) => Err(NetError::Dial { addr: shown, reason: "timed out".into() }),
        }
    }

    /// Sends `request` to `peer` and waits for the response (the behaviour enforces a timeout).
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<TransferResponse, NetError> {
        self.ask(|reply| Command::Request { peer, request, reply }).await?
    }

    /// Providers of `key` found in the DHT.
    pub async fn find_providers(&self, key: ContentId) -> Result<Vec<PeerId>, NetError> {
        self.ask(|reply| Command::FindProviders { key, reply }).await
    }

    /// Values stored under `key` in the DHT.
    pub async fn get_record(&self, key: ContentId) -> Result<Vec<Vec<u8>>, NetError> {
        self.ask(|reply| Command::GetRecord { key, reply }).await
    }

    /// This node's gossip score of `peer` (None if unknown) and whether `peer` is in its mesh.
    pub async fn gossip_standing(&self, peer: PeerId) -> Result<(Option<f64>, bool), NetError> {
        self.ask(|reply| Command::GossipStanding { peer, reply }).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// The remote addresses of `peer`'s open connections; empty when it is not connected.
    pub async fn peer_addrs(&self, peer: PeerId) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::PeerAddrs { peer, reply }).await
    }

    /// Listen addresses, each ending in `/p2p/<this peer>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }
}

/// The peer id at the end of a `/p2p/...` multiaddr.
pub fn peer_id_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// Settings the network task needs beyond the node config.
pub struct NetworkSetup {
    /// The node's libp2p identity.
    pub keypair: identity::Keypair,
    /// Validator for gossiped manifests.
    pub validate_manifest: GossipValidator,
    /// Validator for gossiped trust records.
    pub validate_trust: GossipValidator,
    /// Validator for DHT name records.
    pub validate_record: RecordValidator,
    /// A transport to run on instead of TCP and QUIC (lien-sim's simulated network); `None` in
    /// every real deployment.
    pub transport: Option<TransportFactory>,
    /// Where inbound bulk-channel connections on the libp2p TCP port go (`None`: no bulk
    /// channel; every TCP connection is libp2p's).
    pub bulk_handoff: Option<BulkHandoff>,
}

/// A fully upgraded libp2p transport (authenticated and multiplexed), boxed.
pub type BoxedTransport = libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>;

/// Builds the transport a node runs on from its identity key. Used by the simulator to run real
/// nodes over a simulated network; listen addresses in the config must suit that transport.
pub type TransportFactory = std::sync::Arc<dyn Fn(&identity::Keypair) -> BoxedTransport + Send + Sync>;

impl std::fmt::Debug for NetworkSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkSetup").field("peer_id", &self.keypair.public().to_peer_id()).finish()
    }
}
