//! Writing a file being fetched: verify a unit's chunks and write them at their offset, make
//! them durable and mark them present (in the background, every [`sync_every`] bytes), finish a
//! file (whole-file check, rename into place) and copy a verified file held here.

use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use lien_protocol::{ChunkList, FileEntry};

use super::plan::FileJob;
use super::schedule::Unit;
use super::Fetcher;
use super::{blocking, io, FetchError};
use crate::chunks::write_at;
use crate::output::Folder;

/// Bytes written before they are fsynced and marked present (and so offered to other peers).
const SYNC_EVERY_BYTES: u64 = 8 << 20;

/// Unsynced bytes of a file of `size` bytes after which its chunks are fsynced and marked
/// present: [`SYNC_EVERY_BYTES`], but at least four times per file. Only marked chunks are
/// served to others, so a file smaller than `SYNC_EVERY_BYTES` would otherwise be offered to
/// nobody until it is complete, and every fetcher of it would take it all from the publisher.
pub(crate) fn sync_every(size: u64) -> u64 {
    SYNC_EVERY_BYTES.min(size / 4).max(1)
}

/// Verifies every chunk of `payload` and writes it at its offset. Returns false if any chunk
/// does not verify (nothing is written then).
pub(crate) fn verify_and_write(
    list: Option<&ChunkList>,
    file: Option<&File>,
    entry: &FileEntry,
    unit: Unit,
    payload: &[u8],
) -> Result<bool, FetchError> {
    let (Some(list), Some(file)) = (list, file) else { return Ok(false) };
    let cs = entry.chunk_size;
    let (start, _) = cs.range(entry.size, unit.first);
    let mut pos = 0usize;
    for i in unit.chunks() {
        let (_, len) = cs.range(entry.size, i);
        let Some(chunk) = payload.get(pos..pos + len as usize) else { return Ok(false) };
        if list.verify_chunk(i, chunk).is_err() {
            return Ok(false);
        }
        pos += len as usize;
    }
    if pos != payload.len() {
        return Ok(false);
    }
    write_at(file, start, payload).map_err(|source| FetchError::Io { path: entry.path.as_str().into(), source })?;
    Ok(true)
}

/// Makes written chunks durable, then records them as present.
pub(crate) async fn sync_and_mark(fetcher: &Arc<Fetcher>, job: &mut FileJob) -> Result<(), FetchError> {
    start_sync(fetcher, job).await?;
    wait_sync(job).await
}

/// Starts an fsync-and-mark of the chunks written so far in the background, after waiting for
/// the previous one of this file; the download goes on meanwhile.
pub(crate) async fn start_sync(fetcher: &Arc<Fetcher>, job: &mut FileJob) -> Result<(), FetchError> {
    wait_sync(job).await?;
    let (Some(file), indices) = (job.file.clone(), std::mem::take(&mut job.unsynced)) else { return Ok(()) };
    job.unsynced_bytes = 0;
    let store = fetcher.store.clone();
    let id = job.entry.id;
    let path = job.part_path.clone();
    job.syncing = Some(tokio::task::spawn_blocking(move || {
        file.sync_data().map_err(io(&path))?;
        store.mark_chunks(&id, &indices)?;
        Ok(())
    }));
    Ok(())
}

/// Waits for the file's background fsync-and-mark, if any.
async fn wait_sync(job: &mut FileJob) -> Result<(), FetchError> {
    match job.syncing.take() {
        Some(task) => task.await.map_err(|e| FetchError::Task(e.to_string()))?,
        None => Ok(()),
    }
}

/// Syncs, verifies the whole file against its id, and renames it into place.
pub(crate) async fn finish_file(fetcher: &Arc<Fetcher>, job: &mut FileJob) -> Result<(), FetchError> {
    sync_and_mark(fetcher, job).await?;
    let Some(file) = job.file.take() else { return Ok(()) };
    let store = fetcher.store.clone();
    let entry = job.entry.clone();
    let (folder, part, name) = (job.folder.clone(), job.part.clone(), job.name.clone());
    let (part_path, final_path) = (job.part_path.clone(), job.final_path.clone());
    let threads = fetcher.settings.hash_threads;
    let resumed = job.resumed;
    blocking(move || {
        // Every chunk this fetch wrote was verified before it was written, so a file fetched
        // in one go is not read back (that re-hash was a third of a fetcher's CPU). A resumed
        // one is: its earlier chunks have been on disk, out of this process's sight. The
        // length is checked either way.
        let len = file.metadata().map_err(io(&part_path))?.len();
        let whole = if resumed {
            let digest =
                crate::hashing::hash_open_file(&file, entry.chunk_size, threads, &|_, _| {}).map_err(io(&part_path))?;
            digest.id == entry.id
        } else {
            true
        };
        if len != entry.size || !whole {
            // Start this file over rather than ever exposing it.
            store.remove_file(&entry.id)?;
            let _ = folder.remove(&part);
            return Err(FetchError::FileMismatch(final_path));
        }
        folder.rename_into_place(&part, &name, &file).map_err(io(&final_path))?;
        let _ = folder.sync();
        store.set_file_complete(&entry.id, &final_path)?;
        Ok(())
    })
    .await
}

/// Copies each file that repeats another file's content in the dataset from that (now
/// complete) file, verified.
pub(crate) async fn copy_duplicates(fetcher: &Arc<Fetcher>, jobs: &[FileJob]) -> Result<(), FetchError> {
    let copies: Vec<_> = jobs
        .iter()
        .filter_map(|j| {
            let k = j.copy_of?;
            let from = jobs.get(k)?.final_path.clone();
            Some((from, j.folder.clone(), j.part.clone(), j.name.clone(), j.entry.clone()))
        })
        .collect();
    let threads = fetcher.settings.hash_threads;
    blocking(move || {
        for (from, folder, part, name, entry) in copies {
            if !copy_verified(&from, &folder, &part, &name, &entry, threads)? {
                return Err(FetchError::FileMismatch(folder.path().join(name)));
            }
        }
        Ok(())
    })
    .await
}

/// Copies `from` (a complete copy of `entry` held here) to `name` in `folder`: into the partial
/// file `part` first, verified against the file's id there, then renamed into place. Returns
/// false (and leaves nothing behind) if the bytes read do not make up the file.
pub(crate) fn copy_verified(
    from: &Path,
    folder: &Folder,
    part: &OsStr,
    name: &OsStr,
    entry: &FileEntry,
    threads: usize,
) -> Result<bool, FetchError> {
    let to = folder.path().join(name);
    let mut src = File::open(from).map_err(io(from))?;
    let mut dst = folder.create(part).map_err(io(&to))?;
    std::io::copy(&mut src, &mut dst).map_err(io(&to))?;
    dst.sync_data().map_err(io(&to))?;
    let digest = crate::hashing::hash_open_file(&dst, entry.chunk_size, threads, &|_, _| {}).map_err(io(&to))?;
    if digest.id != entry.id {
        tracing::warn!(path = %from.display(), "a local copy does not match its id; downloading the file instead");
        folder.remove(part).map_err(io(&to))?;
        return Ok(false);
    }
    folder.rename_into_place(part, name, &dst).map_err(io(&to))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_are_marked_present_in_quarters_large_ones_every_8_mib() {
        assert_eq!(sync_every(4 << 20), 1 << 20, "a 4 MiB file: offered to others per MiB");
        assert_eq!(sync_every(1 << 30), SYNC_EVERY_BYTES);
        assert_eq!(sync_every(0), 1);
    }
}
