//! Chunk plumbing shared by the publisher, the server and the fetcher: where chunk lists are
//! stored, and positioned reads and writes of chunk bytes in ordinary files.

use std::fs::File;
use std::io;
use std::path::Path;

use lien_protocol::{ChunkList, ChunkSize, ContentId};

use crate::store::{FileRecord, Store, StoreError};

/// The blob key under which the chunk list of file `file` is stored.
pub fn chunk_list_key(file: &ContentId) -> ContentId {
    let mut h = blake3::Hasher::new();
    h.update(b"lien/chunk-list/v1\0");
    h.update(file.as_bytes());
    ContentId::from(h.finalize())
}

/// Why a chunk list could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ChunkListError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store lacks it.
    #[error("no chunk list for file {0}")]
    Missing(ContentId),
    /// The stored bytes do not verify.
    #[error("stored chunk list is invalid: {0}")]
    Invalid(#[from] lien_protocol::chunk::ChunkError),
}

/// The verified chunk list of a file record (empty for single-chunk files).
pub fn load_chunk_list(store: &Store, rec: &FileRecord) -> Result<ChunkList, ChunkListError> {
    let chunk_size = ChunkSize::new(rec.chunk_size)?;
    if chunk_size.count(rec.size) <= 1 {
        return Ok(ChunkList::from_bytes(rec.id, rec.size, chunk_size, &[])?);
    }
    let bytes = store.blob(&chunk_list_key(&rec.id))?.ok_or(ChunkListError::Missing(rec.id))?;
    Ok(ChunkList::from_bytes(rec.id, rec.size, chunk_size, &bytes)?)
}

/// Reads exactly `len` bytes at `offset` of `path`.
///
/// The buffer is filled straight from the file, never zeroed first: zeroing 1 MiB per chunk
/// response was 3% of the serving side's CPU time (BENCHMARKS.md, "Profile of a bulk fetch").
pub fn read_at(path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    read_open_at(&File::open(path)?, offset, len)
}

/// Reads exactly `len` bytes at `offset` of the open `file` (as [`read_at`]). It moves the
/// descriptor's offset, so one descriptor serves one reader at a time. A descriptor outlives a
/// rename: a partial file read this way can be renamed into place meanwhile.
pub fn read_open_at(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let want = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "read too large"))?;
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    // `read_to_end` reads into the spare capacity without initialising it (at the end it probes
    // with a small stack buffer, which `take` answers without a system call).
    let mut buf = Vec::with_capacity(want);
    f.take(len).read_to_end(&mut buf)?;
    if buf.len() != want {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than its record"));
    }
    Ok(buf)
}

/// Largest single write into the page cache. The kernel sizes page-cache folios after the write:
/// a 1 MiB write asks for 1 MiB folios, which come from the buddy allocator's big free blocks,
/// on a VM often memory the host has reclaimed (free page reporting) and must fault in again.
/// Measured here, 1 GiB written in 1 MiB pieces cost 0.2–2.0 s of system time from run to run;
/// in 64 KiB pieces 0.21–0.22 s every time (BENCHMARKS.md).
const WRITE_PIECE: usize = 64 * 1024;

/// Writes `data` at `offset` of the open file, in pieces of at most [`WRITE_PIECE`] bytes.
pub fn write_at(file: &File, offset: u64, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut at = offset;
    for piece in data.chunks(WRITE_PIECE) {
        file.write_all_at(piece, at)?;
        at += piece.len() as u64;
    }
    Ok(())
}

/// Modification time of `path` in nanoseconds since the epoch.
pub fn mtime_ns(path: &Path) -> io::Result<i128> {
    let modified = std::fs::metadata(path)?.modified()?;
    Ok(match modified.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    })
}

/// True if bit `i` is set in an LSB-first bitmap.
pub fn bit(bitmap: &[u8], i: u64) -> bool {
    bitmap.get((i / 8) as usize).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// How many chunks a `Have` bitmap lists.
pub fn count_held(bitmap: &[u8]) -> u64 {
    bitmap.iter().map(|b| u64::from(b.count_ones())).sum()
}
