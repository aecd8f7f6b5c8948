//! The serving side of the bulk channel: accepts TLS connections on the libp2p TCP port,
//! learns the peer from its certificate, and answers its chunk requests through the node's
//! serving part (`server::Serving`): the same admission, checks, slots and audit as libp2p
//! requests.
//!
//! Denial-of-service bounds: at most [`MAX_CONNECTIONS`] connections, at most the config's
//! `max_connections_per_ip` from one IP address and [`MAX_PER_PEER`] per authenticated peer.
//! A handshake must finish within [`HANDSHAKE_TIMEOUT`], and a connection still in its
//! handshake gives way to a newcomer when a cap is reached (the oldest one from that address,
//! or overall), so silent connections cannot lock peers out. A request holds an upload slot
//! (fairly shared, `slots.rs`) and an inbound in-flight permit only from when its answer is
//! prepared until it is written, at most two per connection, and a fetcher that accepts no
//! bytes for [`STALL_TIMEOUT`] loses its connection and its slots.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use lien_protocol::bulk::{self, ALPN};
use lien_protocol::wire::{ErrorCode, Request, Response, MAX_REQUEST_LEN};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use super::frames::{read_message, write_message, FrameError};
use crate::network::TransferResponse;
use crate::server::{Answer, Serving};

/// Most bulk connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Most authenticated connections of one peer (a fetcher keeps one per peer).
pub const MAX_PER_PEER: usize = 4;
/// A new connection must finish its TLS handshake within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no request for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A fetcher that accepts no bytes of a response for this long loses the connection.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Encrypted bytes rustls may hold for the socket (its default is 64 KiB): a whole write piece
/// of a response (`frames.rs`) is sealed and handed to the kernel in one `writev` of 16 records
/// instead of four of four. Only connections writing a response (at most the upload slots) fill
/// it. Measured in BENCHMARKS.md ("Profile of a bulk fetch").
const SEND_BUFFER: usize = 256 * 1024;

/// Accepted bulk connections waiting for the server (the TCP listener hands them over).
pub(crate) const HANDOFF_QUEUE: usize = 64;

/// One connection counted against the caps.
#[derive(Debug)]
struct Live {
    ip: IpAddr,
    /// Set once the handshake named the peer.
    peer: Option<PeerId>,
    /// Told when a newcomer takes this connection's place during its handshake.
    evict: Arc<Notify>,
}

/// The connections being served, by id.
#[derive(Debug, Default)]
struct Conns {
    next_id: u64,
    live: HashMap<u64, Live>,
    per_ip: HashMap<IpAddr, usize>,
    per_peer: HashMap<PeerId, usize>,
}

impl Conns {
    fn remove(&mut self, id: u64) -> Option<Live> {
        let live = self.live.remove(&id)?;
        decrement(&mut self.per_ip, &live.ip);
        if let Some(peer) = &live.peer {
            decrement(&mut self.per_peer, peer);
        }
        Some(live)
    }

    /// Closes the oldest connection still in its handshake (from `ip`, if given).
    fn evict_oldest_pending(&mut self, ip: Option<IpAddr>) -> bool {
        let oldest = self
            .live
            .iter()
            .filter(|(_, l)| l.peer.is_none() && ip.is_none_or(|ip| l.ip == ip))
            .map(|(id, _)| *id)
            .min();
        match oldest.and_then(|id| self.remove(id)) {
            Some(live) => {
                live.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// The bulk channel's state: the port it shares, its TLS configuration and its connections.
pub(crate) struct BulkServer {
    /// The libp2p TCP listen port the channel shares (0 until known).
    port: AtomicU16,
    tls: tokio_rustls::TlsAcceptor,
    per_ip: usize,
    conns: Mutex<Conns>,
}

impl std::fmt::Debug for BulkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkServer").field("port", &self.port()).finish_non_exhaustive()
    }
}

/// A connection's place under the caps, given back when dropped.
struct Admission {
    server: Arc<BulkServer>,
    id: u64,
    evict: Arc<Notify>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut conns) = self.server.conns.lock() {
            conns.remove(self.id);
        }
    }
}

impl BulkServer {
    /// A server answering TLS with `identity`, at most `per_ip` connections from one address;
    /// its port is set once the libp2p TCP listener has one.
    pub(crate) fn new(
        identity: &super::tls::Identity,
        per_ip: usize,
    ) -> Result<Arc<BulkServer>, super::tls::TlsSetupError> {
        Ok(Arc::new(BulkServer {
            port: AtomicU16::new(0),
            tls: tokio_rustls::TlsAcceptor::from(identity.server_config()?),
            per_ip: per_ip.max(1),
            conns: Mutex::new(Conns::default()),
        }))
    }

    /// The port the channel is offered on (0: not known yet).
    pub(crate) fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// Records the libp2p TCP listen port.
    pub(crate) fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    /// Counts a new connection from `ip`, making room by closing a connection still in its
    /// handshake if a cap is reached; `None`: refused.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admission> {
        let mut conns = self.conns.lock().ok()?;
        if conns.per_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip && !conns.evict_oldest_pending(Some(ip)) {
            return None;
        }
        if conns.live.len() >= MAX_CONNECTIONS && !conns.evict_oldest_pending(None) {
            return None;
        }
        let id = conns.next_id;
        conns.next_id += 1;
        let evict = Arc::new(Notify::new());
        conns.live.insert(id, Live { ip, peer: None, evict: evict.clone() });
        *conns.per_ip.entry(ip).or_default() += 1;
        Some(Admission { server: self.clone(), id, evict })
    }

    /// Records that connection `id` is `peer`'s; false if it was evicted meanwhile or the peer
    /// has its most connections.
    fn authenticated(&self, id: u64, peer: PeerId) -> bool {
        let Ok(mut conns) = self.conns.lock() else { return false };
        if conns.per_peer.get(&peer).copied().unwrap_or(0) >= MAX_PER_PEER {
            return false;
        }
        let Some(live) = conns.live.get_mut(&id) else { return false };
        live.peer = Some(peer);
        *conns.per_peer.entry(peer).or_default() += 1;
        true
    }

    /// Connections counted now (in their handshake or serving).
    #[cfg(test)]
    pub(crate) fn connections(&self) -> usize {
        self.conns.lock().map(|c| c.live.len()).unwrap_or(0)
    }
}

/// Serves the bulk connections the libp2p TCP listener hands over, until the node stops,
/// answering through `serving` as libp2p requests are.
pub(crate) async fn accept_loop(
    serving: Arc<Serving>,
    server: Arc<BulkServer>,
    mut accepted: mpsc::Receiver<TcpStream>,
) {
    while let Some(stream) = accepted.recv().await {
        let Ok(addr) = stream.peer_addr() else { continue };
        let Some(admission) = server.admit(addr.ip()) else {
            tracing::debug!(%addr, "bulk channel: too many connections; refusing one");
            continue;
        };
        let task_serving = serving.clone();
        serving.tasks.spawn(async move {
            if let Err(e) = serve_connection(task_serving, admission, stream).await {
                tracing::debug!(%addr, "bulk connection ended: {e}");
            }
        });
    }
}

/// Serves one connection: TLS handshake, then requests answered in order.
async fn serve_connection(serving: Arc<Serving>, admission: Admission, stream: TcpStream) -> Result<(), FrameError> {
    stream.set_nodelay(true)?;
    let server = admission.server.clone();
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, server.tls.accept(stream));
    let tls = tokio::select! {
        done = handshake => done.map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??,
        _ = admission.evict.notified() => {
            return Err(std::io::Error::other("closed during its handshake to make room").into());
        }
    };
    let (_, session) = tls.get_ref();
    if session.alpn_protocol() != Some(ALPN) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not the bulk channel's ALPN").into());
    }
    let Some(peer) = super::tls::peer_of(session) else {
        return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no peer certificate").into());
    };
    if !server.authenticated(admission.id, peer) {
        return Err(std::io::Error::other(format!("{peer} holds its most bulk connections")).into());
    }
    let mut tls = tls;
    tls.get_mut().1.set_buffer_limit(Some(SEND_BUFFER));
    let (mut reader, mut writer) = tokio::io::split(tls);
    // One response waits while another is written: at most two slots per connection.
    let (tx, mut rx) = mpsc::channel::<Answer>(1);
    let write_serving = serving.clone();
    let write_task = serving.tasks.spawn_to_end(async move {
        while let Some(answer) = rx.recv().await {
            let (response, admitted) = answer.response().await;
            let sent = response.payload.len() as u64;
            let mut trailer = Vec::new();
            bulk::append_response_header(&mut trailer, &response.header)?;
            write_message(&mut writer, &[&response.payload, &trailer], Some(STALL_TIMEOUT)).await?;
            write_serving.stats.bulk_served.fetch_add(sent, Ordering::Relaxed);
            drop(admitted);
        }
        Ok::<(), FrameError>(())
    });
    let read_serving = serving.clone();
    let read = async move {
        let result = loop {
            let message =
                match tokio::time::timeout(IDLE_TIMEOUT, read_message(&mut reader, MAX_REQUEST_LEN, None)).await {
                    Ok(Ok(Some(message))) => message,
                    Ok(Ok(None)) | Err(_) => break Ok(()),
                    Ok(Err(e)) => break Err(e),
                };
            // Wait for room before taking a slot, so queued requests hold none.
            let Ok(room) = tx.reserve().await else { break Ok(()) };
            let pending = match Request::decode(&message) {
                Ok(request @ (Request::Chunks { .. } | Request::Have { .. })) => read_serving.serve(peer, request),
                Ok(_) => Answer::Ready(TransferResponse::plain(Response::error(
                    ErrorCode::BadRequest,
                    "only Chunks and Have requests go on the bulk channel",
                ))),
                Err(e) => Answer::Ready(TransferResponse::plain(Response::error(ErrorCode::BadRequest, e.to_string()))),
            };
            room.send(pending);
        };
        drop(tx);
        result
    };
    tokio::pin!(read);
    let mut write_task = write_task;
    // A writer that fails (a stalled fetcher) ends the connection at once, reader and all.
    let (read_result, write_result) = tokio::select! {
        r = &mut read => (r, (&mut write_task).await.unwrap_or(Ok(()))),
        w = &mut write_task => (Ok(()), w.unwrap_or(Ok(()))),
    };
    drop(admission);
    read_result.and(write_result)
}
