//! Publishing: a file or folder → one hashing pass per file → a signed manifest, stored with its
//! chunk lists and file records. Announcing it to the network is the node's next step.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use lien_protocol::manifest::FileList;
use lien_protocol::{ChunkSize, FileEntry, Manifest, ManifestBody, Metadata, PublisherSecret, RelPath, Slug};

use crate::chunks::{chunk_list_key, mtime_ns};
use crate::store::{FileRecord, LocalDataset, LocalKind, Readers, Store, StoreError};

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// A file or a folder.
    pub path: PathBuf,
    /// The dataset's name.
    pub slug: Slug,
    /// Its metadata.
    pub metadata: Metadata,
    /// Serve the files where they are instead of copying them into the node's data folder.
    pub in_place: bool,
    /// Chunk size for transfers.
    pub chunk_size: ChunkSize,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The path is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file name cannot go into a manifest.
    #[error("cannot publish {path}: {reason}")]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The folder holds no regular files.
    #[error("{0} holds no files to publish")]
    Empty(PathBuf),
    /// The manifest could not be built.
    #[error("invalid dataset: {0}")]
    Manifest(#[from] lien_protocol::ManifestError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io { path: path.to_path_buf(), source }
}

/// Regular files under `root` (or `root` itself), with their relative paths, sorted.
fn collect_files(root: &Path) -> Result<Vec<(RelPath, PathBuf)>, PublishError> {
    let meta = std::fs::metadata(root).map_err(io(root))?;
    if meta.is_file() {
        let name = root
            .file_name()
            .ok_or_else(|| PublishError::BadPath { path: root.into(), reason: "no file name".into() })?;
        let rel = RelPath::from_path(Path::new(name))
            .map_err(|e| PublishError::BadPath { path: root.into(), reason: e.to_string() })?;
        crate::output::check_not_reserved(&rel)
            .map_err(|e| PublishError::BadPath { path: root.into(), reason: e.to_string() })?;
        return Ok(vec![(rel, root.to_path_buf())]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let rel_fs = path
                    .strip_prefix(root)
                    .map_err(|e| PublishError::BadPath { path: path.clone(), reason: e.to_string() })?;
                let rel = RelPath::from_path(rel_fs)
                    .map_err(|e| PublishError::BadPath { path: path.clone(), reason: e.to_string() })?;
                out.push((rel, path));
            } else {
                tracing::warn!(path = %path.display(), "skipping: not a regular file");
            }
        }
    }
    if out.is_empty() {
        return Err(PublishError::Empty(root.to_path_buf()));
    }
    // A dataset no node could fetch (the suffix names partial files, see `output.rs`); often
    // the leftover of an interrupted download in the folder.
    for (rel, path) in &out {
        crate::output::check_not_reserved(rel)
            .map_err(|e| PublishError::BadPath { path: path.clone(), reason: e.to_string() })?;
    }
    out.sort();
    Ok(out)
}

/// A media type guessed from the file extension.
pub fn media_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "txt" | "md" => "text/plain",
        "json" => "application/json",
        "geojson" => "application/geo+json",
        "jsonld" => "application/ld+json",
        "xml" => "application/xml",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "parquet" => "application/vnd.apache.parquet",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xls" => "application/vnd.ms-excel",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// Hashes, signs and stores a dataset (blocking). `progress(done, total)` reports bytes hashed.
pub fn prepare(
    store: &Store,
    data_dir: &Path,
    secret: &PublisherSecret,
    req: &PublishRequest,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Manifest, PublishError> {
    let files = collect_files(&req.path)?;
    let mut total = 0;
    for (_, p) in &files {
        total += std::fs::metadata(p).map_err(io(p))?.len();
    }
    // Copies go to a staging folder first, renamed to data/<manifest id> once the id is known.
    let staging = data_dir.join(format!(".staging-{}-{}", std::process::id(), now_nanos()));
    let mut done_before = 0;
    let mut entries = Vec::new();
    let mut records = Vec::new();
    for (rel, src) in &files {
        let source = if req.in_place {
            src.canonicalize().map_err(io(src))?
        } else {
            let dst = staging.join(rel.as_str());
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::copy(src, &dst).map_err(io(src))?;
            dst
        };
        let mtime = mtime_ns(&source).map_err(io(&source))?;
        let base = done_before;
        let digest = crate::hashing::hash_file(&source, req.chunk_size, threads, &|d, _| progress(base + d, total))
            .map_err(io(&source))?;
        done_before += digest.size;
        entries.push(FileEntry {
            path: rel.clone(),
            size: digest.size,
            id: digest.id,
            chunk_size: req.chunk_size,
            media_type: media_type(rel.as_str()).to_owned(),
        });
        records.push((rel.clone(), source, mtime, digest));
    }
    let (file_list, blob) = FileList::build(entries)?;
    let (version, previous) = match store.resolve(&secret.public(), &req.slug)? {
        Some((v, id)) => (v + 1, Some(id)),
        None => (1, None),
    };
    let body = ManifestBody {
        publisher: secret.public(),
        slug: req.slug.clone(),
        version,
        previous,
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        metadata: req.metadata.clone(),
        files: file_list.clone(),
    };
    let manifest = Manifest::sign(body, secret)?;
    let root = if req.in_place {
        req.path.canonicalize().map_err(io(&req.path))?
    } else {
        let dest = data_dir.join(manifest.id().to_string());
        if dest.exists() {
            std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
        } else {
            std::fs::rename(&staging, &dest).map_err(io(&staging))?;
        }
        dest
    };
    if let (Some(bytes), FileList::Blob(r)) = (blob, &file_list) {
        store.put_blob(&r.id, &bytes)?;
    }
    for (rel, source, mtime, digest) in records {
        let path = if req.in_place { source } else { root.join(rel.as_str()) };
        let list = digest.chunks.to_bytes();
        if !list.is_empty() {
            store.put_blob(&chunk_list_key(&digest.id), &list)?;
        }
        store.put_file(&FileRecord {
            id: digest.id,
            size: digest.size,
            chunk_size: req.chunk_size.bytes(),
            path,
            complete: true,
            in_place: req.in_place,
            mtime_ns: if req.in_place { Some(mtime) } else { None },
            readers: Readers::from_metadata(&req.metadata.readers),
        })?;
    }
    store.put_manifest(&manifest)?;
    store.put_local(&LocalDataset {
        manifest: manifest.id(),
        root,
        kind: LocalKind::Published,
        pinned: true,
        complete: true,
        added: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    })?;
    Ok(manifest)
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
