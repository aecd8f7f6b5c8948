//! The datasets this node holds (published here or fetched): their files, sizes and presence,
//! pinning, removal with shared-file accounting, and re-verification on disk.
//!
//! Everything here blocks on the store and the disk: call it off the async threads (the
//! `Node` methods of the same names do).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use lien_protocol::chunk::hash_reader;
use lien_protocol::{ContentId, FileEntry, FileList, Manifest};

use crate::store::{LocalDataset, LocalKind, Store, StoreError};

/// Why an operation on a local dataset failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The dataset is not held here.
    #[error("dataset {0} is not held here")]
    NotHeld(ContentId),
    /// The manifest is not in the catalog.
    #[error("no manifest {0} is known here")]
    NoManifest(ContentId),
    /// The manifest's file list blob is not stored here.
    #[error("the file list of {0} is not stored here")]
    NoFileList(ContentId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The files of `manifest`, if its list is inline or its blob is stored here.
pub fn files_of(store: &Store, manifest: &Manifest) -> Result<Option<Vec<FileEntry>>, StoreError> {
    match &manifest.body().files {
        FileList::Inline(files) => Ok(Some(files.clone())),
        FileList::Blob(r) => match store.blob(&r.id)? {
            Some(bytes) => Ok(FileList::decode_blob(r, &bytes).ok()),
            None => Ok(None),
        },
    }
}

/// A local dataset with what its manifest says and how much of it is here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSummary {
    /// The manifest id.
    pub id: ContentId,
    /// `publisher/slug`, when the manifest is known.
    pub name: Option<String>,
    /// Version, when the manifest is known.
    pub version: Option<u64>,
    /// Title, when the manifest is known.
    pub title: Option<String>,
    /// Published here or fetched.
    pub kind: LocalKind,
    /// Kept even when space runs short.
    pub pinned: bool,
    /// Every file complete.
    pub complete: bool,
    /// The folder holding its files.
    pub root: PathBuf,
    /// Bytes of the whole dataset.
    pub size: u64,
    /// Bytes of it present here.
    pub present: u64,
}

/// Bytes of `entries` present here.
fn present_bytes(store: &Store, entries: &[FileEntry]) -> Result<u64, StoreError> {
    let mut present = 0;
    for e in entries {
        match store.file(&e.id)? {
            Some(rec) if rec.complete => present += e.size,
            Some(rec) => {
                let bitmap = store.have(&e.id)?.unwrap_or_default();
                let chunks = crate::chunks::count_held(&bitmap);
                present += chunks.saturating_mul(rec.chunk_size).min(e.size);
            }
            None => {}
        }
    }
    Ok(present)
}

/// The summary of local dataset `d`.
pub fn summary(store: &Store, d: &LocalDataset) -> Result<LocalSummary, StoreError> {
    let manifest = store.manifest(&d.manifest)?;
    let (size, present) = match &manifest {
        Some(m) => {
            let size = m.body().files.total_size();
            let present = if d.complete {
                size
            } else {
                match files_of(store, m)? {
                    Some(entries) => present_bytes(store, &entries)?,
                    None => 0,
                }
            };
            (size, present)
        }
        None => (0, 0),
    };
    Ok(LocalSummary {
        id: d.manifest,
        name: manifest.as_ref().map(Manifest::name),
        version: manifest.as_ref().map(|m| m.body().version),
        title: manifest.as_ref().map(|m| m.body().metadata.title.clone()),
        kind: d.kind,
        pinned: d.pinned,
        complete: d.complete,
        root: d.root.clone(),
        size,
        present,
    })
}

/// Every local dataset with its sizes, oldest first.
pub fn summaries(store: &Store) -> Result<Vec<LocalSummary>, StoreError> {
    store.locals()?.iter().map(|d| summary(store, d)).collect()
}

/// How much this node holds: datasets, their bytes, the catalog and the store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Local datasets (published or fetched).
    pub datasets: usize,
    /// Bytes of them present here.
    pub data_bytes: u64,
    /// Manifests in the catalog.
    pub catalog: u64,
    /// Size of the store file.
    pub store_bytes: u64,
}

/// What this node holds, in numbers.
pub fn usage(store: &Store) -> Result<Usage, StoreError> {
    let locals = summaries(store)?;
    Ok(Usage {
        datasets: locals.len(),
        data_bytes: locals.iter().map(|l| l.present).sum(),
        catalog: store.manifest_count()?,
        store_bytes: std::fs::metadata(store.path()).map(|m| m.len()).unwrap_or(0),
    })
}

/// The local dataset `id`, or [`LocalError::NotHeld`].
pub fn held(store: &Store, id: &ContentId) -> Result<LocalDataset, LocalError> {
    store.local(id)?.ok_or(LocalError::NotHeld(*id))
}

/// Pins or unpins local dataset `id`; returns it as it now is.
pub fn set_pinned(store: &Store, id: &ContentId, pinned: bool) -> Result<LocalDataset, LocalError> {
    let mut d = held(store, id)?;
    d.pinned = pinned;
    store.put_local(&d)?;
    Ok(d)
}

/// What [`remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Files deleted from the node's data folder.
    pub deleted: usize,
    /// Files forgotten but left where they are (in a folder of the user's).
    pub left: usize,
    /// The dataset's folder.
    pub root: PathBuf,
}

/// Forgets local dataset `id` and stops serving its files. Files inside `data_dir` (the node's
/// data folder) are deleted; files fetched to or published from a folder of the user's are left
/// where they are. A file that another local dataset also lists is kept, and so is the folder.
pub fn remove(store: &Store, data_dir: &Path, id: &ContentId) -> Result<Removal, LocalError> {
    let d = held(store, id)?;
    let mut shared = HashSet::new();
    for other in store.locals()? {
        if other.manifest == *id {
            continue;
        }
        if let Some(m) = store.manifest(&other.manifest)? {
            shared.extend(files_of(store, &m)?.unwrap_or_default().into_iter().map(|e| e.id));
        }
    }
    let entries = match store.manifest(id)? {
        Some(m) => files_of(store, &m)?.unwrap_or_default(),
        None => Vec::new(),
    };
    store.remove_local(id)?;
    let (mut deleted, mut left) = (0, 0);
    for e in entries.iter().filter(|e| !shared.contains(&e.id)) {
        let Some(rec) = store.file(&e.id)? else { continue };
        store.remove_file(&e.id)?;
        if is_inside(&rec.path, data_dir) {
            match std::fs::remove_file(&rec.path) {
                Ok(()) => deleted += 1,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => tracing::warn!(path = %rec.path.display(), "cannot delete: {err}"),
            }
        } else {
            left += 1;
        }
    }
    if is_inside(&d.root, data_dir) && shared.is_empty() {
        let _ = std::fs::remove_dir_all(&d.root);
    }
    Ok(Removal { deleted, left, root: d.root })
}

fn is_inside(path: &Path, dir: &Path) -> bool {
    match (path.canonicalize(), dir.canonicalize()) {
        (Ok(p), Ok(d)) => p.starts_with(d),
        _ => path.starts_with(dir),
    }
}

/// The state of one file found by [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Complete, and its bytes hash to its id.
    Ok,
    /// Still being fetched.
    Partial,
    /// Not held, or not readable.
    Missing,
    /// Its bytes hash to something else.
    Damaged,
}

impl FileState {
    /// The lower-case name (`ok`, `partial`, `missing`, `damaged`).
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Ok => "ok",
            FileState::Partial => "partial",
            FileState::Missing => "missing",
            FileState::Damaged => "damaged",
        }
    }
}

/// One file of a dataset as [`verify`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// The path in the dataset.
    pub path: String,
    /// What was found.
    pub state: FileState,
    /// Where it is, or what is wrong.
    pub detail: String,
}

/// Re-hashes every complete file of local dataset `id` (on `threads` cores) and reports each file.
pub fn verify(store: &Store, id: &ContentId, threads: usize) -> Result<Vec<FileCheck>, LocalError> {
    held(store, id)?;
    let m = store.manifest(id)?.ok_or(LocalError::NoManifest(*id))?;
    let entries = files_of(store, &m)?.ok_or(LocalError::NoFileList(*id))?;
    let mut files = Vec::with_capacity(entries.len());
    for e in &entries {
        let (state, detail) = match store.file(&e.id)? {
            None => (FileState::Missing, "not held".to_owned()),
            Some(rec) if !rec.complete => (FileState::Partial, rec.path.display().to_string()),
            Some(rec) => match std::fs::File::open(&rec.path)
                .and_then(|f| hash_reader(std::io::BufReader::with_capacity(1 << 20, f), e.chunk_size, threads, |_| {}))
            {
                Ok(d) if d.id == e.id && d.size == e.size => (FileState::Ok, rec.path.display().to_string()),
                Ok(d) => (
                    FileState::Damaged,
                    format!("{}: content hashes to {} ({} bytes)", rec.path.display(), d.id, d.size),
                ),
                Err(err) => (FileState::Missing, format!("{}: {err}", rec.path.display())),
            },
        };
        files.push(FileCheck { path: e.path.to_string(), state, detail });
    }
    Ok(files)
}
