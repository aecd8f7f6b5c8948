//! Local preparation of a fetch: the storage quota, the dataset's local record, and per file
//! what is already here (complete, a copy held for another dataset, a partial file to resume)
//! and what must be downloaded, as a queue of units in a random order per fetcher.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lien_protocol::{ChunkList, ContentId, FileEntry};

use super::schedule::Unit;
use super::write::copy_verified;
use super::Fetcher;
use super::{io, ChunkRange, FetchError};
use crate::chunks::bit;
use crate::output::{self, Folder, Folders};
use crate::store::{FileRecord, LocalDataset, LocalKind, Readers, Store};

/// Bytes asked for in one request: one chunk of the default 1 MiB, four of 256 KiB. Smaller
/// requests pass a chunk on sooner in a swarm (a fetcher offers a chunk only once its whole
/// request has arrived): with 256 KiB chunks, 1 MiB requests took swarm-64 to 1.9 publisher
/// copies and 7.7 s, 256 KiB ones to 1.4 and 6.0 s (lien-sim real mode, docs/simulation.md).
const REQUEST_BYTES: u64 = 256 << 10;

/// One file being fetched.
pub(crate) struct FileJob {
    /// The file.
    pub(crate) entry: FileEntry,
    /// The folder the file goes to, opened without following links.
    pub(crate) folder: Folder,
    /// The file's name in `folder`.
    pub(crate) name: OsString,
    /// Its partial file's name in `folder`.
    pub(crate) part: OsString,
    /// Where the file ends up.
    pub(crate) final_path: PathBuf,
    /// Where its partial file is.
    pub(crate) part_path: PathBuf,
    /// Its chunk list, while it is downloaded.
    pub(crate) list: Option<Arc<ChunkList>>,
    /// The open partial file, while it is downloaded.
    pub(crate) file: Option<Arc<File>>,
    /// Chunks not yet written.
    pub(crate) missing: usize,
    /// Chunks written but not yet fsynced and marked.
    pub(crate) unsynced: Vec<u64>,
    /// Their bytes.
    pub(crate) unsynced_bytes: u64,
    /// The background fsync-and-mark of earlier chunks, if one is running (at most one per file,
    /// so marks land in order and each only after its own fsync).
    pub(crate) syncing: Option<tokio::task::JoinHandle<Result<(), FetchError>>>,
    /// Another file of this dataset with the same content, copied once that one is complete.
    pub(crate) copy_of: Option<usize>,
    /// Whether some of its chunks were on disk before this fetch (a resume): only then is the
    /// whole file hashed again before it is renamed into place. Chunks this fetch wrote were
    /// each verified in memory against the verified chunk list before they were written.
    pub(crate) resumed: bool,
}

/// Records the dataset as held here (complete or not), keeping the pin and the time it was first
/// added when it was already known: a resumed or repeated fetch must not unpin a mirror.
pub(crate) fn record_local(store: &Store, id: ContentId, root: &Path, complete: bool) -> Result<(), FetchError> {
    let previous = store.local(&id)?;
    store.put_local(&LocalDataset {
        manifest: id,
        root: root.to_path_buf(),
        kind: previous.as_ref().map_or(LocalKind::Fetched, |p| p.kind),
        pinned: previous.as_ref().is_some_and(|p| p.pinned),
        complete,
        added: previous.map_or_else(now_secs, |p| p.added),
    })?;
    Ok(())
}

/// Refuses a fetch that would take the node over its storage quota. Counted: every local dataset
/// except this one, but not datasets published in place (they live in the user's folders).
pub(crate) fn check_quota(fetcher: &Fetcher, id: ContentId, need: u64) -> Result<(), FetchError> {
    let quota = fetcher.settings.storage_quota_bytes;
    if quota == 0 {
        return Ok(());
    }
    let data_dir = &fetcher.settings.data_dir;
    let mut used = 0u64;
    for local in fetcher.store.locals()? {
        let copied = local.kind == LocalKind::Fetched || local.root.starts_with(data_dir);
        if local.manifest == id || !copied {
            continue;
        }
        if let Some(m) = fetcher.store.manifest(&local.manifest)? {
            used = used.saturating_add(m.body().files.total_size());
        }
    }
    if used.saturating_add(need) > quota {
        return Err(FetchError::QuotaExceeded { need, free: quota.saturating_sub(used) });
    }
    Ok(())
}

/// Bytes of `u`.
pub(crate) fn unit_bytes(jobs: &[FileJob], u: &Unit) -> u64 {
    let Some(job) = jobs.get(u.file) else { return 0 };
    let e = &job.entry;
    u.chunks().map(|i| e.chunk_size.range(e.size, i).1).sum()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The work queue: `units` in a random order per fetcher (as BitTorrent's random-first: nodes
/// fetching the same dataset at once hold different chunks early, so they can serve each other
/// instead of all asking the publisher for the same ones), only those overlapping `only` if set.
pub(crate) fn work_queue(jobs: &[FileJob], mut units: Vec<Unit>, only: Option<ChunkRange>) -> Vec<Unit> {
    {
        use rand::seq::SliceRandom;
        units.shuffle(&mut rand::thread_rng());
    }
    if let Some(r) = only {
        units.retain(|u| {
            jobs.get(u.file).is_some_and(|j| j.entry.id == r.file) && u.first <= r.last && u.chunks().end > r.first
        });
    }
    units
}

/// Decides, per file, what is already here and what must be downloaded.
///
/// Files are written below `root` through [`Folders`]: no link planted under `root` is followed
/// (see `output.rs`). Every file's record gets `readers` merged in (they only narrow), whether
/// the file is downloaded, resumed or copied from a copy held here.
pub(crate) fn prepare(
    store: &Store,
    root: &Path,
    entries: Vec<FileEntry>,
    readers: &Readers,
    threads: usize,
) -> Result<(Vec<FileJob>, Vec<Unit>), FetchError> {
    let mut folders = Folders::new(root).map_err(io(root))?;
    let mut jobs = Vec::new();
    let mut queue = Vec::new();
    for (idx, entry) in entries.into_iter().enumerate() {
        output::check_not_reserved(&entry.path)?;
        let (folder, name) = folders.parent_of(&entry.path).map_err(io(&root.join(entry.path.as_str())))?;
        let part = output::part_name(&name);
        let final_path = folder.path().join(&name);
        let part_path = folder.path().join(&part);
        let mut job = FileJob {
            entry,
            folder,
            name: OsString::from(name),
            part,
            final_path,
            part_path,
            list: None,
            file: None,
            missing: 0,
            unsynced: Vec::new(),
            unsynced_bytes: 0,
            syncing: None,
            copy_of: None,
            resumed: false,
        };
        // The same content twice in one dataset is downloaded once, then copied.
        if let Some(first) = jobs.iter().position(|j: &FileJob| j.entry.id == job.entry.id && j.entry.size > 0) {
            job.copy_of = Some(first);
            jobs.push(job);
            continue;
        }
        let existing = store.file(&job.entry.id)?;
        if existing.is_some() {
            // Held already (for another dataset, or partly): this dataset's readers apply too.
            store.narrow_readers(&job.entry.id, readers)?;
        }
        if let Some(rec) = existing.as_ref().filter(|r| r.complete) {
            let same_size = std::fs::metadata(&rec.path).map(|m| m.len() == rec.size).unwrap_or(false);
            if same_size
                && (rec.path == job.final_path
                    || copy_verified(&rec.path, &job.folder, &job.part, &job.name, &job.entry, threads)?)
            {
                jobs.push(job);
                continue;
            }
        }
        if job.entry.size == 0 {
            let f = job.folder.create(&job.part).map_err(io(&job.part_path))?;
            job.folder.rename_into_place(&job.part, &job.name, &f).map_err(io(&job.final_path))?;
            store.put_file(&FileRecord {
                id: job.entry.id,
                size: 0,
                chunk_size: job.entry.chunk_size.bytes(),
                path: job.final_path.clone(),
                complete: true,
                in_place: false,
                mtime_ns: None,
                readers: readers.clone(),
            })?;
            jobs.push(job);
            continue;
        }
        let rec = FileRecord {
            id: job.entry.id,
            size: job.entry.size,
            chunk_size: job.entry.chunk_size.bytes(),
            path: job.part_path.clone(),
            complete: false,
            in_place: false,
            mtime_ns: None,
            readers: readers.clone(),
        };
        // Resume the partial file this record names, if it is still a regular file (a link or
        // anything else planted under its name is replaced below, never written through).
        let resumed = existing
            .as_ref()
            .filter(|r| !r.complete && r.path == job.part_path)
            .and_then(|_| job.folder.open_existing(&job.part).ok());
        let file = match resumed {
            Some(f) => f,
            None => {
                let f = job.folder.create(&job.part).map_err(io(&job.part_path))?;
                f.set_len(job.entry.size).map_err(io(&job.part_path))?;
                // A new record starts with no chunk marked present.
                store.put_file(&rec)?;
                f
            }
        };
        job.list = Some(Arc::new(crate::chunks::load_chunk_list(store, &rec)?));
        job.file = Some(Arc::new(file));
        let bitmap = store.have(&job.entry.id)?.unwrap_or_default();
        let count = job.entry.chunk_size.count(job.entry.size);
        job.resumed = (0..count).any(|i| bit(&bitmap, i));
        let per_request = (REQUEST_BYTES / job.entry.chunk_size.bytes()).max(1) as u32;
        let mut run: Option<Unit> = None;
        for i in 0..count {
            if bit(&bitmap, i) {
                if let Some(u) = run.take() {
                    queue.push(u);
                }
                continue;
            }
            job.missing += 1;
            match &mut run {
                Some(u) if u.count < per_request => u.count += 1,
                _ => {
                    if let Some(u) = run.take() {
                        queue.push(u);
                    }
                    run = Some(Unit { file: idx, first: i, count: 1 });
                }
            }
        }
        if let Some(u) = run {
            queue.push(u);
        }
        jobs.push(job);
    }
    Ok((jobs, queue))
}
