//! Reading and writing the channel's messages (`u32-be length ‖ bytes`) on the TLS stream.

use std::time::Duration;

use lien_protocol::bulk::BulkError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("bulk connection: {0}")]
    Io(#[from] std::io::Error),
    /// The message was refused.
    #[error(transparent)]
    Bulk(#[from] BulkError),
    /// The length prefix is over the limit for this direction.
    #[error("bulk message of {0} bytes is over the limit")]
    TooLong(usize),
    /// The other end accepted no bytes for too long.
    #[error("the other end stopped reading")]
    Stalled,
}

/// Bytes handed to TLS at a time when writing a response: each piece must be taken within the
/// stall timeout, so a reader that stops reading is noticed within that time.
const WRITE_PIECE: usize = 256 * 1024;

/// Writes one message: `parts` one after the other, after their total length. Every piece must
/// be accepted within `stall` (None: no bound).
pub async fn write_message<W: AsyncWrite + Unpin>(
    io: &mut W,
    parts: &[&[u8]],
    stall: Option<Duration>,
) -> Result<(), FrameError> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(total).map_err(|_| FrameError::TooLong(total))?;
    let prefix = len.to_be_bytes();
    for part in std::iter::once(&prefix[..]).chain(parts.iter().copied()) {
        for piece in part.chunks(WRITE_PIECE) {
            bounded(stall, io.write_all(piece)).await??;
        }
    }
    bounded(stall, io.flush()).await??;
    Ok(())
}

async fn bounded<F: std::future::Future>(stall: Option<Duration>, f: F) -> Result<F::Output, FrameError> {
    match stall {
        Some(limit) => tokio::time::timeout(limit, f).await.map_err(|_| FrameError::Stalled),
        None => Ok(f.await),
    }
}

/// Reads one message of at most `limit` bytes; `None` at a clean end of stream before a
/// message starts.
pub async fn read_message<R: AsyncRead + Unpin>(
    io: &mut R,
    limit: usize,
    pool: Option<&super::BufferPool>,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match io.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(FrameError::TooLong(len));
    }
    let mut buf = match pool {
        Some(pool) => pool.take(len),
        None => vec![0u8; len],
    };
    io.read_exact(&mut buf).await?;
    Ok(Some(buf))
}
