//! The fetching side of the bulk channel: one TLS connection per peer, opened on first use
//! (the peer's certificate must name the peer id we meant), pipelining requests and matching
//! responses in order; [`BulkClients::request_chunks`] routes a chunk request to it or to
//! libp2p. `BulkClients` holds what it uses (the network handle, the identity, the node's
//! tasks and counters), so the fetcher hands it a peer and a request, nothing more.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use lien_protocol::bulk::{self, MAX_FRAME_LEN};
use lien_protocol::wire::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::frames::{read_message, write_message, FrameError};
use super::tls::Identity;
use crate::network::ip_limits::ip_of;
use crate::network::{NetError, NetworkHandle, TransferResponse};
use crate::stats::Stats;
use crate::tasks::Tasks;

/// After a peer offered no channel or its channel failed, use libp2p for this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Time to connect to a peer's bulk port and finish the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests queued for one channel's writer.
const QUEUE: usize = 64;

/// Why a request on the bulk channel failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChannelError {
    /// The channel is closed (its connection failed earlier).
    #[error("bulk channel closed")]
    Closed,
    /// A frame failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The request could not be encoded.
    #[error("cannot encode request: {0}")]
    Encode(String),
}

/// What a reply slot receives.
type Reply = oneshot::Sender<Result<TransferResponse, String>>;

/// An open channel to one peer. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Channel {
    requests: mpsc::Sender<(Vec<u8>, Reply)>,
}

impl Channel {
    /// Sends `request` and waits for its response.
    pub(crate) async fn request(&self, request: &Request) -> Result<TransferResponse, ChannelError> {
        let encoded = request.encode().map_err(|e| ChannelError::Encode(e.to_string()))?;
        let (reply, answer) = oneshot::channel();
        self.requests.send((encoded, reply)).await.map_err(|_| ChannelError::Closed)?;
        match answer.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(message)) => Err(FrameError::Io(std::io::Error::other(message)).into()),
            Err(_) => Err(ChannelError::Closed),
        }
    }

    fn is_open(&self) -> bool {
        !self.requests.is_closed()
    }
}

/// A peer's bulk channel state.
#[derive(Debug, Default)]
enum PeerChannel {
    /// Not tried yet.
    #[default]
    Untried,
    /// Open.
    Open(Channel),
    /// Unavailable until then: use libp2p.
    Unavailable(Instant),
}

/// Every peer's bulk channel, and what opening and using one takes.
pub(crate) struct BulkClients {
    peers: std::sync::Mutex<HashMap<PeerId, Arc<tokio::sync::Mutex<PeerChannel>>>>,
    /// Receive buffers shared by every channel; the fetcher gives them back after writing.
    pub(crate) pool: Arc<super::BufferPool>,
    /// Whether chunk requests try the channel at all (`NodeConfig::bulk_enabled`).
    enabled: bool,
    /// How long one request on the channel may take before libp2p is used.
    timeout: Duration,
    /// This node's certificate, when it has the channel.
    identity: Option<Arc<Identity>>,
    /// The control plane: the channel offer, the peer's address, and the fallback.
    net: NetworkHandle,
    /// Where each channel's connection runs.
    tasks: Tasks,
    /// Counts bytes received on the channel.
    stats: Arc<Stats>,
}

impl std::fmt::Debug for BulkClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkClients").field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

impl BulkClients {
    /// Clients that use the channel when `enabled` and `identity` allow it, with `timeout` per
    /// request, over `net`'s connections; connections run under `tasks`.
    pub(crate) fn new(
        enabled: bool,
        timeout: Duration,
        identity: Option<Arc<Identity>>,
        net: NetworkHandle,
        tasks: Tasks,
        stats: Arc<Stats>,
    ) -> BulkClients {
        BulkClients {
            peers: Default::default(),
            pool: Default::default(),
            enabled,
            timeout,
            identity,
            net,
            tasks,
            stats,
        }
    }

    /// Sends a chunk request to `peer`: over its bulk channel when there is one (opening it on
    /// first use), over libp2p otherwise or when the channel fails.
    pub(crate) async fn request_chunks(&self, peer: PeerId, request: Request) -> Result<TransferResponse, NetError> {
        if self.enabled {
            if let Some(channel) = self.channel(peer).await {
                match tokio::time::timeout(self.timeout, channel.request(&request)).await {
                    Ok(Ok(response)) => {
                        self.stats
                            .bulk_fetched
                            .fetch_add(response.payload.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        return Ok(response);
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "bulk channel failed, using libp2p: {e}");
                        self.failed(peer).await;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "bulk request timed out, using libp2p");
                        self.failed(peer).await;
                    }
                }
            }
        }
        self.net.request(peer, request).await
    }

    fn slot(&self, peer: PeerId) -> Option<Arc<tokio::sync::Mutex<PeerChannel>>> {
        let mut peers = self.peers.lock().ok()?;
        Some(peers.entry(peer).or_default().clone())
    }

    /// The open channel to `peer`, opening it if it was never tried or its pause is over.
    /// `None` means: use libp2p.
    pub(crate) async fn channel(&self, peer: PeerId) -> Option<Channel> {
        let slot = self.slot(peer)?;
        let mut state = slot.lock().await;
        match &*state {
            PeerChannel::Open(channel) if channel.is_open() => return Some(channel.clone()),
            PeerChannel::Unavailable(until) if Instant::now() < *until => return None,
            _ => {}
        }
        match self.open(peer).await {
            Ok(channel) => {
                tracing::debug!(%peer, "bulk channel open");
                *state = PeerChannel::Open(channel.clone());
                Some(channel)
            }
            Err(reason) => {
                tracing::debug!(%peer, "no bulk channel, using libp2p: {reason}");
                *state = PeerChannel::Unavailable(Instant::now() + RETRY_AFTER);
                None
            }
        }
    }

    /// Marks `peer`'s channel as failed: libp2p for a while.
    pub(crate) async fn failed(&self, peer: PeerId) {
        if let Some(slot) = self.slot(peer) {
            *slot.lock().await = PeerChannel::Unavailable(Instant::now() + RETRY_AFTER);
        }
    }

    /// Asks `peer` whether and where it offers the channel, and opens TLS to it.
    async fn open(&self, peer: PeerId) -> Result<Channel, String> {
        let identity = self.identity.as_ref().ok_or("this node has no bulk channel identity")?;
        let offer = self
            .net
            .request(peer, Request::OpenBulk { version: bulk::VERSION })
            .await
            .map_err(|e| format!("bulk channel request failed: {e}"))?;
        let Response::BulkPort { port } = offer.header else {
            return Err(format!("the peer offers no bulk channel ({:?})", offer.header));
        };
        let ip = self.peer_ip(peer).await.ok_or("no IP address for the peer's connection")?;
        let config = identity.client_config(peer).map_err(|e| e.to_string())?;
        let stream = connect(config, ip, port).await?;
        let (requests, queue) = mpsc::channel(QUEUE);
        self.tasks.spawn(run(stream, queue, self.pool.clone()));
        Ok(Channel { requests })
    }

    /// The IP address of an open libp2p connection to `peer` (a DNS name it was dialled by is
    /// resolved again, as the dial did).
    async fn peer_ip(&self, peer: PeerId) -> Option<IpAddr> {
        let addrs = self.net.peer_addrs(peer).await.ok()?;
        if let Some(ip) = addrs.iter().find_map(ip_of) {
            return Some(ip);
        }
        for addr in &addrs {
            if let Some(ip) = resolve(addr).await {
                return Some(ip);
            }
        }
        None
    }
}

/// The first address a `/dns`, `/dns4` or `/dns6` name in `addr` resolves to (of the family
/// asked for).
async fn resolve(addr: &libp2p::Multiaddr) -> Option<IpAddr> {
    use libp2p::multiaddr::Protocol;
    let (name, want_v4, want_v6) = addr.iter().find_map(|p| match p {
        Protocol::Dns(n) => Some((n.to_string(), true, true)),
        Protocol::Dns4(n) => Some((n.to_string(), true, false)),
        Protocol::Dns6(n) => Some((n.to_string(), false, true)),
        _ => None,
    })?;
    let lookup = tokio::net::lookup_host(format!("{name}:0"));
    let mut found = tokio::time::timeout(CONNECT_TIMEOUT, lookup).await.ok()?.ok()?;
    found.find(|a| (a.is_ipv4() && want_v4) || (a.is_ipv6() && want_v6)).map(|a| a.ip())
}

/// The fetcher's end of a bulk connection: TLS over TCP.
pub type BulkStream = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to `ip:port` whose server proves the identity `config` expects.
pub async fn connect(config: Arc<rustls::ClientConfig>, ip: IpAddr, port: u16) -> Result<BulkStream, String> {
    let connecting = async {
        let stream = TcpStream::connect((ip, port)).await.map_err(|e| format!("cannot connect to {ip}:{port}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(config)
            .connect(super::tls::server_name(ip), stream)
            .await
            .map_err(|e| format!("TLS with {ip}:{port} failed: {e}"))
    };
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("connecting to {ip}:{port} timed out"))??;
    if tls.get_ref().1.alpn_protocol() != Some(bulk::ALPN) {
        return Err("the peer did not agree on the bulk channel's ALPN".into());
    }
    Ok(tls)
}

/// Drives one channel: the writer sends requests, the reader reads responses and
/// hands each to the oldest waiting request. Any failure fails every waiting request and
/// closes the channel.
async fn run<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    mut queue: mpsc::Receiver<(Vec<u8>, Reply)>,
    pool: Arc<super::BufferPool>,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let waiting: Arc<std::sync::Mutex<VecDeque<Reply>>> = Arc::default();
    let writer_waiting = waiting.clone();
    let write = async move {
        while let Some((request, reply)) = queue.recv().await {
            if let Ok(mut w) = writer_waiting.lock() {
                w.push_back(reply);
            }
            write_message(&mut writer, &[&request], None).await?;
        }
        Ok::<(), FrameError>(())
    };
    // The reader reads all the time, so a connection the server closed (idle) is noticed at
    // once and the next request opens a new channel.
    let reader_waiting = waiting.clone();
    let read = async move {
        while let Some(mut frame) = read_message(&mut reader, MAX_FRAME_LEN, Some(&pool)).await? {
            let header = bulk::split_response(&mut frame)?;
            let reply = reader_waiting.lock().ok().and_then(|mut w| w.pop_front());
            let Some(reply) = reply else {
                return Err(FrameError::Io(std::io::Error::other("a response nobody asked for")));
            };
            let _ = reply.send(Ok(TransferResponse { header, payload: frame }));
        }
        Ok::<(), FrameError>(())
    };
    let result = tokio::select! {
        r = write => r,
        r = read => r,
    };
    let message = match result {
        Ok(()) => "bulk channel closed".to_owned(),
        Err(e) => e.to_string(),
    };
    let stranded: Vec<Reply> = waiting.lock().map(|mut w| w.drain(..).collect()).unwrap_or_default();
    for reply in stranded {
        let _ = reply.send(Err(message.clone()));
    }
}
