//! The serving side of the bulk channel: issues tickets, accepts connections that present one,
//! and answers their chunk requests with the same code, checks and audit as libp2p requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::PeerId;
use lien_protocol::bulk::{self, Role, PREAMBLE, SECRET_LEN, TOKEN_LEN};
use lien_protocol::wire::{ErrorCode, Request, Response, MAX_REQUEST_LEN};
use rand::RngCore;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::frames::{read_opened, write_sealed, FrameError};
use crate::network::TransferResponse;
use crate::node::Inner;

/// How long an issued ticket may wait for its connection.
const TICKET_LIFETIME: Duration = Duration::from_secs(30);
/// Most tickets outstanding at once (each is a few dozen bytes; older ones are dropped first).
const MAX_TICKETS: usize = 4096;
/// Most bulk connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// A new connection must present its token within this time.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Responses being prepared per connection, ahead of the one being written.
const PIPELINE: usize = 8;

/// A ticket waiting for its connection.
struct Ticket {
    peer: PeerId,
    secret: [u8; SECRET_LEN],
    expires: Instant,
}

/// Accepted bulk connections waiting for the server (the TCP listener hands them over).
pub(crate) const HANDOFF_QUEUE: usize = 64;

/// The bulk channel's state: the port tickets point to and the tickets issued.
pub(crate) struct BulkServer {
    /// The libp2p TCP listen port the channel shares (0 until known).
    port: AtomicU16,
    tickets: Mutex<HashMap<[u8; TOKEN_LEN], Ticket>>,
    connections: Arc<Semaphore>,
}

impl std::fmt::Debug for BulkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkServer").field("port", &self.port()).finish_non_exhaustive()
    }
}

impl BulkServer {
    /// A server with no tickets; its port is set once the libp2p TCP listener has one.
    pub(crate) fn new() -> Arc<BulkServer> {
        Arc::new(BulkServer {
            port: AtomicU16::new(0),
            tickets: Mutex::new(HashMap::new()),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        })
    }

    /// The port tickets point to (0: not known yet).
    pub(crate) fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// Records the libp2p TCP listen port.
    pub(crate) fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    /// Issues a single-use ticket for `peer`.
    pub(crate) fn issue(&self, peer: PeerId) -> Response {
        let mut token = [0u8; TOKEN_LEN];
        let mut secret = [0u8; SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut token);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let now = Instant::now();
        if let Ok(mut tickets) = self.tickets.lock() {
            tickets.retain(|_, t| t.expires > now);
            if tickets.len() >= MAX_TICKETS {
                if let Some(oldest) = tickets.iter().min_by_key(|(_, t)| t.expires).map(|(k, _)| *k) {
                    tickets.remove(&oldest);
                }
            }
            tickets.insert(token, Ticket { peer, secret, expires: now + TICKET_LIFETIME });
        }
        Response::BulkTicket { port: self.port(), token: token.to_vec(), secret: secret.to_vec() }
    }

    /// Takes the ticket for `token` if it exists and has not expired.
    fn redeem(&self, token: &[u8; TOKEN_LEN]) -> Option<Ticket> {
        let ticket = self.tickets.lock().ok()?.remove(token)?;
        (ticket.expires > Instant::now()).then_some(ticket)
    }
}

/// Serves the bulk connections the libp2p TCP listener hands over, until the node stops.
pub(crate) async fn accept_loop(inner: Arc<Inner>, server: Arc<BulkServer>, mut accepted: mpsc::Receiver<TcpStream>) {
    while let Some(stream) = accepted.recv().await {
        let addr = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let Ok(permit) = server.connections.clone().try_acquire_owned() else {
            tracing::debug!(%addr, "bulk channel: too many connections; refusing one");
            continue;
        };
        let (inner, server) = (inner.clone(), server.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_connection(inner, server, stream).await {
                tracing::debug!(%addr, "bulk connection ended: {e}");
            }
            drop(permit);
        });
    }
}

/// A response on its way to the writer, with the upload slot it holds until written.
type Pending = (tokio::task::JoinHandle<TransferResponse>, Option<OwnedSemaphorePermit>);

/// Serves one connection: token, then requests answered in order.
async fn serve_connection(inner: Arc<Inner>, server: Arc<BulkServer>, mut stream: TcpStream) -> Result<(), FrameError> {
    stream.set_nodelay(true)?;
    let mut opening = [0u8; PREAMBLE.len() + TOKEN_LEN];
    tokio::time::timeout(TOKEN_TIMEOUT, stream.read_exact(&mut opening))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no token"))??;
    let (preamble, token) = opening.split_at(PREAMBLE.len());
    let token: [u8; TOKEN_LEN] = token.try_into().map_err(|_| std::io::Error::other("token length"))?;
    if preamble != PREAMBLE {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a bulk connection").into());
    }
    let Some(ticket) = server.redeem(&token) else {
        return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "unknown or expired ticket").into());
    };
    let (mut sealer, mut opener) = bulk::channel(Role::Server, &ticket.secret)?;
    let peer = ticket.peer;
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Pending>(PIPELINE);
    let write_inner = inner.clone();
    // A fetcher that asks and never reads would otherwise hold upload slots for ever.
    let write_timeout = Duration::from_secs(inner.config.request_timeout_secs.max(1));
    let write_task = tokio::spawn(async move {
        while let Some((handle, slot)) = rx.recv().await {
            let response = handle.await.unwrap_or_else(|_| internal());
            let sent = response.payload.len() as u64;
            let mut plaintext = response.payload;
            bulk::append_response_header(&mut plaintext, &response.header)?;
            tokio::time::timeout(write_timeout, write_sealed(&mut writer, &mut sealer, plaintext))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the fetcher stopped reading"))??;
            write_inner.stats.bulk_served.fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
            drop(slot);
        }
        Ok::<(), FrameError>(())
    });
    let limit = MAX_REQUEST_LEN + bulk::TAG_LEN;
    let read_result = loop {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, read_opened(&mut reader, &mut opener, limit, None)).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) | Err(_) => break Ok(()),
            Ok(Err(e)) => break Err(e),
        };
        let pending = match Request::decode(&frame) {
            Ok(request @ (Request::Chunks { .. } | Request::Have { .. })) => answer(&inner, peer, request),
            Ok(_) => ready(TransferResponse::plain(Response::error(
                ErrorCode::BadRequest,
                "only Chunks and Have requests go on the bulk channel",
            ))),
            Err(e) => ready(TransferResponse::plain(Response::error(ErrorCode::BadRequest, e.to_string()))),
        };
        if tx.send(pending).await.is_err() {
            break Ok(());
        }
    };
    drop(tx);
    let write_result = write_task.await.unwrap_or(Ok(()));
    read_result.and(write_result)
}

/// Starts answering `request` from `peer` off the async threads, with an upload slot for chunks
/// (none free: `Busy` at once, as on libp2p).
fn answer(inner: &Arc<Inner>, peer: PeerId, request: Request) -> Pending {
    let slot = match request {
        Request::Chunks { .. } => match inner.uploads.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => return ready(TransferResponse::plain(Response::error(ErrorCode::Busy, "busy"))),
        },
        _ => None,
    };
    let inner = inner.clone();
    let handle = tokio::task::spawn_blocking(move || {
        crate::server::answer(
            &inner.store,
            &inner.stats,
            &inner.audit,
            &inner.trust,
            &peer,
            request,
            inner.config.adversary_corrupt_chunks,
        )
    });
    (handle, slot)
}

/// A response that is already known.
fn ready(response: TransferResponse) -> Pending {
    (tokio::spawn(async move { response }), None)
}

fn internal() -> TransferResponse {
    TransferResponse::plain(Response::error(ErrorCode::Internal, "internal error"))
}
