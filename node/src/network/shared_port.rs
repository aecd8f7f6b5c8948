//! The fast data path shares the libp2p TCP port (docs/wire.md, "Bulk channel").
//!
//! Every inbound TCP connection is looked at before libp2p upgrades it: one whose first byte is
//! [`lien_protocol::bulk::TLS_HANDSHAKE_BYTE`] (a TLS ClientHello; multistream-select starts
//! with 0x13) is handed to the bulk server and ends there for libp2p
//! (the swarm sees a failed incoming connection, which it ignores); any other goes on to
//! libp2p's multistream-select, noise and yamux as before. So a daemon needs one TCP port (and
//! the same UDP port for QUIC), and any number of daemons on one host, each with its own
//! `--listen` port, never collide.

use std::time::Duration;

use libp2p::core::ConnectedPoint;
use libp2p::tcp::tokio::TcpStream;
use lien_protocol::bulk::TLS_HANDSHAKE_BYTE;
use tokio::sync::mpsc;

/// Where bulk-channel connections go: the bulk server's queue of accepted connections.
pub type BulkHandoff = mpsc::Sender<tokio::net::TcpStream>;

/// How long an inbound connection may take to send its first byte. libp2p dialers send
/// multistream-select's header at once, and TLS clients their ClientHello.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// Passes `stream` on to libp2p, or hands it to the bulk server if it is a bulk connection.
pub(crate) async fn demux(
    stream: TcpStream,
    endpoint: ConnectedPoint,
    handoff: Option<BulkHandoff>,
) -> Result<TcpStream, std::io::Error> {
    let Some(handoff) = handoff else { return Ok(stream) };
    if endpoint.is_dialer() {
        return Ok(stream);
    }
    let is_bulk = tokio::time::timeout(FIRST_BYTES_TIMEOUT, starts_with_tls(&stream.0))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no first bytes"))??;
    if !is_bulk {
        return Ok(stream);
    }
    match handoff.try_send(stream.0) {
        Ok(()) => Err(std::io::Error::other("handed to the fast data path")),
        Err(_) => Err(std::io::Error::other("fast data path busy; connection refused")),
    }
}

/// Whether the first byte waiting on `stream` starts a TLS handshake (read without consuming).
async fn starts_with_tls(stream: &tokio::net::TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok(n == 1 && first[0] == TLS_HANDSHAKE_BYTE)
}
