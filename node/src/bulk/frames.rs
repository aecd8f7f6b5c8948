//! Reading and writing sealed frames (`u32-be length ‖ ciphertext ‖ tag`) on a byte stream.

use lien_protocol::bulk::{BulkError, Opener, Sealer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The connection failed or closed.
    #[error("bulk connection: {0}")]
    Io(#[from] std::io::Error),
    /// The frame was refused.
    #[error(transparent)]
    Bulk(#[from] BulkError),
    /// The length prefix is over the limit for this direction.
    #[error("bulk frame of {0} bytes is over the limit")]
    TooLong(usize),
}

/// Seals `buf` (the plaintext, consumed) and writes it as one frame.
pub(crate) async fn write_sealed<W: AsyncWrite + Unpin>(
    io: &mut W,
    sealer: &mut Sealer,
    mut buf: Vec<u8>,
) -> Result<(), FrameError> {
    sealer.seal(&mut buf)?;
    let len = u32::try_from(buf.len()).map_err(|_| FrameError::TooLong(buf.len()))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&buf).await?;
    Ok(())
}

/// Reads one frame of at most `limit` bytes and opens it; returns the plaintext, or `None` at a
/// clean end of stream before a frame starts.
pub(crate) async fn read_opened<R: AsyncRead + Unpin>(
    io: &mut R,
    opener: &mut Opener,
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
    opener.open(&mut buf)?;
    Ok(Some(buf))
}
