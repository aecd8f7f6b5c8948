//! The node's metadata store: one redb database file holding everything the node remembers.
//!
//! Tables (all defined in `tables.rs`, names versioned `-v1`; see `docs/storage.md`):
//!
//! | table           | key                               | value                                        |
//! |-----------------|-----------------------------------|----------------------------------------------|
//! | `meta-v1`       | `"schema"`                        | store layout version                         |
//! | `manifests-v1`  | manifest id                       | (catalog seq, version, name key, bytes)      |
//! | `catalog-v1`    | catalog seq (from 1)              | manifest id                                  |
//! | `names-v1`      | publisher bytes ++ slug bytes     | (highest version heard, manifest id)         |
//! | `versions-v1`   | (name key, version)               | manifest id                                  |
//! | `blobs-v1`      | blob id                           | bytes (file-list blobs, chunk lists)         |
//! | `files-v1`      | file id                           | CBOR [`FileRecord`]                          |
//! | `have-v1`       | file id                           | chunk bitmap (partial files only)            |
//! | `locals-v1`     | manifest id                       | CBOR [`LocalDataset`]                        |
//! | `peers-v1`      | peer id text                      | CBOR (last seen, seen serial, addresses)     |
//! | `peers-seen-v1` | seen serial                       | peer id text                                 |
//!
//! Invariants: the catalog only holds manifests the caller verified; a name's recorded version
//! never goes down; a chunk bit is set only after the chunk's bytes were verified and made
//! durable by the caller. Every write is one redb transaction committed with
//! `Durability::Immediate` (redb's default, never lowered here), so after a crash the store holds
//! exactly the transactions whose commit returned, plus possibly the one in flight.
//!
//! All methods block on disk I/O; call them from blocking contexts (e.g. `spawn_blocking`).

mod readers;
mod trust;
pub use readers::Readers;
pub use trust::TrustKind;
mod tables;
mod written;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lien_protocol::{ChunkSize, ContentId, Manifest, PublisherKey, Slug};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use tables::{
    BLOBS, CATALOG, FILES, HAVE, LOCALS, MANIFESTS, META, NAMES, PEERS, PEERS_SEEN, PUBLISHER_COUNTS, TRUST_IDS,
    TRUST_KEYS, TRUST_RECORDS, VERSIONS, WORDS_RETIRED,
};

/// Layout version of a store created by this code (kept in `meta-v1` under `"schema"`).
///
/// 2: a `files-v1` record's `readers` may be an empty list, meaning nobody may read the file
/// ([`Readers`]); a layout-1 node would read that as public, so it must refuse the file. A
/// layout-1 store is upgraded in place when opened (its records mean the same under 2).
pub const SCHEMA_VERSION: u64 = 2;

/// Most peers remembered; the least recently seen are forgotten beyond this.
pub const MAX_PEERS: u64 = 4096;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another `Store` in this process) has the database open.
    #[error("the store is already open elsewhere (is another node running?)")]
    AlreadyOpen,
    /// An I/O error reading or writing the database file.
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Any other failure of the database engine.
    #[error("store database: {0}")]
    Database(#[from] DatabaseError),
    /// The file was written by a newer version of the node.
    #[error("store layout version {found} is newer than this node understands ({SCHEMA_VERSION})")]
    UnsupportedSchema {
        /// The version found in the file.
        found: u64,
    },
    /// A stored value that does not decode.
    #[error("corrupt entry in store table {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A value that could not be encoded.
    #[error("cannot encode a store value: {0}")]
    Encode(String),
    /// A record the store refuses to keep.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// An operation on a file the store has no record of.
    #[error("unknown file {0}")]
    UnknownFile(ContentId),
    /// A chunk index past the end of the file.
    #[error("chunk {index} of file {file} is out of range: the file has {count} chunks")]
    ChunkOutOfRange {
        /// The file.
        file: ContentId,
        /// The index given.
        index: u64,
        /// How many chunks the file has.
        count: u64,
    },
}

/// A failure inside the database engine (opaque: the engine's own types are not part of this API).
#[derive(Debug)]
pub struct DatabaseError(redb::Error);

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DatabaseError {}

impl StoreError {
    /// Sorts an engine error into the matching variant.
    fn from_redb(e: redb::Error) -> Self {
        match e {
            redb::Error::DatabaseAlreadyOpen => StoreError::AlreadyOpen,
            redb::Error::Io(io) => StoreError::Io(io),
            other => StoreError::Database(DatabaseError(other)),
        }
    }
}

/// Converts engine results into store results without exposing `From<redb::…>` impls publicly.
pub(crate) trait DbResult<T> {
    /// Maps the error into a [`StoreError`].
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbResult<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::from_redb(e.into()))
    }
}

/// A file whose bytes this node holds, completely or in part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The file's id (BLAKE3 of its bytes).
    pub id: ContentId,
    /// Size in bytes.
    pub size: u64,
    /// Chunk size in bytes (a valid protocol chunk size).
    pub chunk_size: u64,
    /// Where the bytes are (the final path when complete, else the partial file).
    #[serde(with = "path_serde")]
    pub path: PathBuf,
    /// Whether every chunk is present and the whole file verified.
    pub complete: bool,
    /// Whether the file is served from where the user keeps it (published in place, not copied).
    pub in_place: bool,
    /// mtime (unix nanos) of an in-place published file at publish time, to detect edits.
    pub mtime_ns: Option<i128>,
    /// Who may read the file: the access rights of every manifest that listed it, merged
    /// ([`Readers::narrowed`]; [`Store::put_file`] and [`Store::narrow_readers`] do the merge).
    #[serde(default, skip_serializing_if = "Readers::is_anyone")]
    pub readers: Readers,
}

impl FileRecord {
    /// How many chunks the file has.
    pub fn chunk_count(&self) -> u64 {
        if self.chunk_size == 0 {
            0
        } else {
            self.size.div_ceil(self.chunk_size)
        }
    }
}

/// How a local dataset came to be on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalKind {
    /// Published from this machine.
    Published,
    /// Fetched from the network.
    Fetched,
}

/// A dataset (one manifest) held on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalDataset {
    /// The manifest's id.
    pub manifest: ContentId,
    /// The folder holding the dataset's files.
    #[serde(with = "path_serde")]
    pub root: PathBuf,
    /// Published here or fetched.
    pub kind: LocalKind,
    /// Kept even when space runs short.
    pub pinned: bool,
    /// Whether every file is complete.
    pub complete: bool,
    /// When it was added, unix seconds.
    pub added: u64,
}

/// What `peers-v1` keeps about a peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeerRow {
    /// Last seen, unix seconds.
    last_seen: u64,
    /// Key of the peer's entry in `peers-seen-v1`.
    serial: u64,
    /// Its addresses (multiaddr text).
    addrs: Vec<String>,
}

/// The node's metadata store; cheap to clone (all clones share one open database).
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Database>,
    path: Arc<PathBuf>,
    /// Chunks of partial files written and verified but not yet fsynced and marked (in memory
    /// only): offered to peers at once (`have` includes them, and the server verifies every
    /// chunk again before sending it), never trusted for a resume after a crash.
    written: Arc<std::sync::Mutex<HashMap<ContentId, std::collections::BTreeSet<u64>>>>,
    /// Who waits to hear that a partial file gained chunks (pushed availability, `Watch`).
    gained: Arc<std::sync::Mutex<HashMap<ContentId, tokio::sync::watch::Sender<()>>>>,
}

impl Store {
    /// How many handles (clones) of this store exist: the database closes when the last one
    /// is dropped.
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.db)
    }

    /// Opens the store at `path`, creating the file, its folder and all tables if missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let db = Database::create(path).db()?;
        let txn = db.begin_write().db()?;
        {
            let mut meta = txn.open_table(META).db()?;
            let found = meta.get("schema").db()?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema", SCHEMA_VERSION).db()?;
                }
                Some(v) if v > SCHEMA_VERSION => return Err(StoreError::UnsupportedSchema { found: v }),
                Some(v) if v < SCHEMA_VERSION => {
                    meta.insert("schema", SCHEMA_VERSION).db()?;
                }
                Some(_) => {}
            }
            txn.open_table(MANIFESTS).db()?;
            txn.open_table(CATALOG).db()?;
            txn.open_table(NAMES).db()?;
            txn.open_table(VERSIONS).db()?;
            // The word index this store kept until search moved to the in-memory catalog index
            // (`crate::catalog`): dropped, with its pages, from stores that still have it.
            txn.delete_table(WORDS_RETIRED).db()?;
            txn.open_table(BLOBS).db()?;
            txn.open_table(FILES).db()?;
            txn.open_table(HAVE).db()?;
            txn.open_table(LOCALS).db()?;
            txn.open_table(PEERS).db()?;
            txn.open_table(PEERS_SEEN).db()?;
            txn.open_table(TRUST_RECORDS).db()?;
            txn.open_table(TRUST_IDS).db()?;
            txn.open_table(TRUST_KEYS).db()?;
            txn.open_table(PUBLISHER_COUNTS).db()?;
        }
        txn.commit().db()?;
        Ok(Store { db: Arc::new(db), path: Arc::new(path.to_owned()), written: Arc::default(), gained: Arc::default() })
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().db()
    }

    /// Starts a write transaction. redb's default durability (`Immediate`: the commit returns
    /// only once the data is on disk) is kept for every write.
    fn write(&self) -> Result<WriteTransaction, StoreError> {
        self.db.begin_write().db()
    }

    // ---- catalog ----

    /// Stores a manifest the caller has already verified; returns true if it was new.
    ///
    /// In one write transaction: assigns the next catalog sequence number (from 1), records it
    /// under its version, and
    /// updates the name table if its version is higher than the one recorded (never lower, and
    /// an equal version keeps the first manifest heard).
    pub fn put_manifest(&self, m: &Manifest) -> Result<bool, StoreError> {
        Ok(self.put_manifest_capped(m, u64::MAX)?.unwrap_or(false))
    }

    /// Like [`Store::put_manifest`], but refuses (returns `None`) a new manifest whose publisher
    /// already has `cap` manifests in the catalog, so one key cannot flood the store.
    pub fn put_manifest_capped(&self, m: &Manifest, cap: u64) -> Result<Option<bool>, StoreError> {
        let id = m.id();
        let body = m.body();
        let name = name_key(&body.publisher, &body.slug);
        let txn = self.write()?;
        {
            let mut manifests = txn.open_table(MANIFESTS).db()?;
            if manifests.get(id.as_bytes()).db()?.is_some() {
                drop(manifests);
                txn.abort().db()?;
                return Ok(Some(false));
            }
            let mut per_publisher = txn.open_table(PUBLISHER_COUNTS).db()?;
            let count = per_publisher.get(body.publisher.as_bytes()).db()?.map_or(0, |v| v.value());
            if count >= cap {
                drop(per_publisher);
                drop(manifests);
                txn.abort().db()?;
                return Ok(None);
            }
            per_publisher.insert(body.publisher.as_bytes(), count + 1).db()?;
            let mut catalog = txn.open_table(CATALOG).db()?;
            let seq = match catalog.last().db()? {
                Some((k, _)) => k.value().saturating_add(1),
                None => 1,
            };
            manifests.insert(id.as_bytes(), (seq, body.version, name.as_slice(), m.bytes())).db()?;
            catalog.insert(seq, id.as_bytes()).db()?;

            let mut versions = txn.open_table(VERSIONS).db()?;
            let vkey = (name.as_slice(), body.version);
            if versions.get(vkey).db()?.is_none() {
                versions.insert(vkey, id.as_bytes()).db()?;
            }

            let mut names = txn.open_table(NAMES).db()?;
            let current = names.get(name.as_slice()).db()?.map(|v| v.value().0);
            if current.is_none_or(|v| body.version > v) {
                names.insert(name.as_slice(), (body.version, id.as_bytes())).db()?;
            }
        }
        txn.commit().db()?;
        Ok(Some(true))
    }

    /// The stored manifest with this id.
    pub fn manifest(&self, id: &ContentId) -> Result<Option<Manifest>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(MANIFESTS).db()?;
        let Some(row) = table.get(id.as_bytes()).db()? else {
            return Ok(None);
        };
        decode_manifest(row.value().3).map(Some)
    }

    /// Whether a manifest with this id is stored.
    pub fn has_manifest(&self, id: &ContentId) -> Result<bool, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(MANIFESTS).db()?;
        Ok(table.get(id.as_bytes()).db()?.is_some())
    }

    /// Manifests with sequence > `after`, ascending, at most `limit`: (their bytes, next cursor =
    /// last sequence returned or `after`, whether more follow).
    pub fn catalog_page(&self, after: u64, limit: u32) -> Result<(Vec<Vec<u8>>, u64, bool), StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let txn = self.read()?;
        let catalog = txn.open_table(CATALOG).db()?;
        let manifests = txn.open_table(MANIFESTS).db()?;
        let mut out = Vec::new();
        let mut cursor = after;
        let mut more = false;
        for entry in catalog.range::<u64>((Excluded(after), Unbounded)).db()? {
            let (seq, id) = entry.db()?;
            if out.len() >= limit as usize {
                more = true;
                break;
            }
            let row = manifests.get(id.value()).db()?.ok_or_else(|| StoreError::Corrupt {
                table: "catalog-v1",
                detail: format!("sequence {} names a missing manifest", seq.value()),
            })?;
            out.push(row.value().3.to_vec());
            cursor = seq.value();
        }
        Ok((out, cursor, more))
    }

    /// How many manifests the catalog holds.
    pub fn manifest_count(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        txn.open_table(MANIFESTS).db()?.len().db()
    }

    /// Newest (version, manifest id) recorded for publisher/slug.
    pub fn resolve(&self, publisher: &PublisherKey, slug: &Slug) -> Result<Option<(u64, ContentId)>, StoreError> {
        let name = name_key(publisher, slug);
        let txn = self.read()?;
        let names = txn.open_table(NAMES).db()?;
        let found = names.get(name.as_slice()).db()?;
        Ok(found.map(|row| {
            let (version, id) = row.value();
            (version, ContentId::from_bytes(*id))
        }))
    }

    /// All known versions of publisher/slug, ascending by version.
    pub fn versions(&self, publisher: &PublisherKey, slug: &Slug) -> Result<Vec<(u64, ContentId)>, StoreError> {
        let name = name_key(publisher, slug);
        let txn = self.read()?;
        let versions = txn.open_table(VERSIONS).db()?;
        let mut out = Vec::new();
        for entry in versions.range((name.as_slice(), 0u64)..=(name.as_slice(), u64::MAX)).db()? {
            let (key, id) = entry.db()?;
            out.push((key.value().1, ContentId::from_bytes(*id.value())));
        }
        Ok(out)
    }

    // ---- blobs ----

    /// Stores a blob (a file-list blob or a chunk list) under its id; replaces any previous one.
    pub fn put_blob(&self, id: &ContentId, bytes: &[u8]) -> Result<(), StoreError> {
        let txn = self.write()?;
        txn.open_table(BLOBS).db()?.insert(id.as_bytes(), bytes).db()?;
        txn.commit().db()
    }

    /// The blob stored under this id.
    pub fn blob(&self, id: &ContentId) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(BLOBS).db()?;
        let found = table.get(id.as_bytes()).db()?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    // ---- files ----

    /// Inserts or replaces the record of a file (by `rec.id`); returns the readers recorded.
    ///
    /// The readers are not replaced but merged: a file that already has a record keeps only the
    /// readers both the old record and `rec` allow ([`Readers::narrowed`]), since bytes are
    /// served by file id whichever manifest listed them. A file listed by a restricted manifest
    /// stays restricted when a public one (anyone can sign one naming its id) lists it too.
    ///
    /// Any chunk bitmap of a previous record is dropped: the bytes behind a new record (often a
    /// freshly created partial file) are not known to hold any chunk, so a partial record starts
    /// with no chunk marked. Resuming a download means keeping the record, not putting it again.
    pub fn put_file(&self, rec: &FileRecord) -> Result<Readers, StoreError> {
        ChunkSize::new(rec.chunk_size).map_err(|e| StoreError::InvalidRecord(format!("file {}: {e}", rec.id)))?;
        let txn = self.write()?;
        let readers = {
            let mut files = txn.open_table(FILES).db()?;
            let old: Option<FileRecord> = match files.get(rec.id.as_bytes()).db()? {
                Some(v) => Some(from_cbor("files-v1", v.value())?),
                None => None,
            };
            let mut rec = rec.clone();
            if let Some(old) = old {
                rec.readers = old.readers.narrowed(&rec.readers);
            }
            txn.open_table(HAVE).db()?.remove(rec.id.as_bytes()).db()?;
            files.insert(rec.id.as_bytes(), to_cbor(&rec)?.as_slice()).db()?;
            rec.readers
        };
        txn.commit().db()?;
        Ok(readers)
    }

    /// Merges `readers` (those of another manifest listing the file) into the file's record,
    /// as [`Store::put_file`] does; returns the readers now recorded, `None` if the file is
    /// unknown (nothing is recorded then).
    pub fn narrow_readers(&self, file: &ContentId, readers: &Readers) -> Result<Option<Readers>, StoreError> {
        let txn = self.write()?;
        let merged = {
            let mut files = txn.open_table(FILES).db()?;
            let mut rec: FileRecord = match files.get(file.as_bytes()).db()? {
                Some(v) => from_cbor("files-v1", v.value())?,
                None => return Ok(None),
            };
            let merged = rec.readers.narrowed(readers);
            if merged == rec.readers {
                drop(files);
                txn.abort().db()?;
                return Ok(Some(merged));
            }
            rec.readers = merged.clone();
            files.insert(file.as_bytes(), to_cbor(&rec)?.as_slice()).db()?;
            merged
        };
        txn.commit().db()?;
        Ok(Some(merged))
    }

    /// The record of a file.
    pub fn file(&self, id: &ContentId) -> Result<Option<FileRecord>, StoreError> {
        let txn = self.read()?;
        let files = txn.open_table(FILES).db()?;
        let found = files.get(id.as_bytes()).db()?;
        found.map(|v| from_cbor("files-v1", v.value())).transpose()
    }

    /// Marks chunks present, in one transaction. The caller guarantees their bytes are verified
    /// and durable on disk. Marking a chunk of a complete file changes nothing.
    pub fn mark_chunks(&self, file: &ContentId, indices: &[u64]) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            let files = txn.open_table(FILES).db()?;
            let rec: FileRecord = match files.get(file.as_bytes()).db()? {
                Some(v) => from_cbor("files-v1", v.value())?,
                None => return Err(StoreError::UnknownFile(*file)),
            };
            let count = rec.chunk_count();
            if let Some(&index) = indices.iter().find(|&&i| i >= count) {
                return Err(StoreError::ChunkOutOfRange { file: *file, index, count });
            }
            if rec.complete || indices.is_empty() {
                drop(files);
                txn.abort().db()?;
                return Ok(());
            }
            let mut have = txn.open_table(HAVE).db()?;
            let mut bitmap = match have.get(file.as_bytes()).db()? {
                Some(v) => v.value().to_vec(),
                None => Vec::new(),
            };
            bitmap.resize(bitmap_len(count)?, 0);
            for &i in indices {
                // i < count, so i / 8 < bitmap.len().
                if let Some(byte) = bitmap.get_mut((i / 8) as usize) {
                    *byte |= 1 << (i % 8);
                }
            }
            have.insert(file.as_bytes(), bitmap.as_slice()).db()?;
        }
        txn.commit().db()?;
        self.forget_written(file, Some(indices));
        Ok(())
    }

    /// Bitmap of present chunks (bit i, LSB-first within each byte, = chunk i), `ceil(count/8)`
    /// bytes; every chunk's bit is set for a complete file. `None` if the file is unknown.
    /// Which chunks of `file` this node can serve: all of a complete file; of a partial one,
    /// those marked present plus those written and verified since the last mark.
    pub fn have(&self, file: &ContentId) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let files = txn.open_table(FILES).db()?;
        let rec: FileRecord = match files.get(file.as_bytes()).db()? {
            Some(v) => from_cbor("files-v1", v.value())?,
            None => return Ok(None),
        };
        let count = rec.chunk_count();
        let len = bitmap_len(count)?;
        if rec.complete {
            return Ok(Some(full_bitmap(count, len)));
        }
        let have = txn.open_table(HAVE).db()?;
        let mut bitmap = match have.get(file.as_bytes()).db()? {
            Some(v) => v.value().to_vec(),
            None => Vec::new(),
        };
        bitmap.resize(len, 0);
        self.add_written(file, count, &mut bitmap);
        Ok(Some(bitmap))
    }

    /// Records that a file is complete at `path`, and drops its chunk bitmap.
    pub fn set_file_complete(&self, file: &ContentId, path: &Path) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            let mut files = txn.open_table(FILES).db()?;
            let mut rec: FileRecord = match files.get(file.as_bytes()).db()? {
                Some(v) => from_cbor("files-v1", v.value())?,
                None => return Err(StoreError::UnknownFile(*file)),
            };
            rec.complete = true;
            rec.path = path.to_owned();
            let bytes = to_cbor(&rec)?;
            files.insert(file.as_bytes(), bytes.as_slice()).db()?;
            txn.open_table(HAVE).db()?.remove(file.as_bytes()).db()?;
        }
        txn.commit().db()?;
        self.forget_written(file, None);
        Ok(())
    }

    /// Forgets a file and its chunk bitmap (nothing happens if it is unknown).
    pub fn remove_file(&self, file: &ContentId) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            txn.open_table(FILES).db()?.remove(file.as_bytes()).db()?;
            txn.open_table(HAVE).db()?.remove(file.as_bytes()).db()?;
        }
        txn.commit().db()?;
        self.forget_written(file, None);
        Ok(())
    }

    // ---- local datasets ----

    /// Inserts or replaces a local dataset (by `d.manifest`).
    pub fn put_local(&self, d: &LocalDataset) -> Result<(), StoreError> {
        let bytes = to_cbor(d)?;
        let txn = self.write()?;
        txn.open_table(LOCALS).db()?.insert(d.manifest.as_bytes(), bytes.as_slice()).db()?;
        txn.commit().db()
    }

    /// The local dataset of this manifest.
    pub fn local(&self, manifest: &ContentId) -> Result<Option<LocalDataset>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(LOCALS).db()?;
        let found = table.get(manifest.as_bytes()).db()?;
        found.map(|v| from_cbor("locals-v1", v.value())).transpose()
    }

    /// Every local dataset, oldest `added` first.
    pub fn locals(&self) -> Result<Vec<LocalDataset>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(LOCALS).db()?;
        let mut out = Vec::new();
        for entry in table.iter().db()? {
            let (_, v) = entry.db()?;
            out.push(from_cbor::<LocalDataset>("locals-v1", v.value())?);
        }
        out.sort_by_key(|d| (d.added, d.manifest));
        Ok(out)
    }

    /// Forgets a local dataset (nothing happens if it is unknown).
    pub fn remove_local(&self, manifest: &ContentId) -> Result<(), StoreError> {
        let txn = self.write()?;
        txn.open_table(LOCALS).db()?.remove(manifest.as_bytes()).db()?;
        txn.commit().db()
    }

    // ---- peers ----

    /// Remembers a peer seen now with these addresses (replacing the ones recorded). Beyond
    /// [`MAX_PEERS`], the least recently seen peers are forgotten.
    pub fn remember_peer(&self, peer: &str, addrs: &[String]) -> Result<(), StoreError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let txn = self.write()?;
        {
            let mut peers = txn.open_table(PEERS).db()?;
            let mut seen = txn.open_table(PEERS_SEEN).db()?;
            let old = match peers.get(peer).db()? {
                Some(v) => Some(from_cbor::<PeerRow>("peers-v1", v.value())?),
                None => None,
            };
            if let Some(old) = old {
                seen.remove(old.serial).db()?;
            }
            let serial = match seen.last().db()? {
                Some((k, _)) => k.value().saturating_add(1),
                None => 1,
            };
            let row = PeerRow { last_seen: now, serial, addrs: addrs.to_vec() };
            peers.insert(peer, to_cbor(&row)?.as_slice()).db()?;
            seen.insert(serial, peer).db()?;
            // Bounded: each pass removes one entry and the table exceeds the cap by at most one
            // (unless the cap was lowered since).
            while seen.len().db()? > MAX_PEERS {
                let Some((_, gone)) = seen.pop_first().db()? else {
                    break;
                };
                let gone = gone.value().to_owned();
                peers.remove(gone.as_str()).db()?;
            }
        }
        txn.commit().db()
    }

    /// Up to `limit` remembered peers with their addresses, most recently seen first.
    pub fn known_peers(&self, limit: usize) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let txn = self.read()?;
        let peers = txn.open_table(PEERS).db()?;
        let seen = txn.open_table(PEERS_SEEN).db()?;
        let mut out = Vec::new();
        for entry in seen.iter().db()?.rev() {
            if out.len() >= limit {
                break;
            }
            let (_, peer) = entry.db()?;
            let peer = peer.value();
            if let Some(v) = peers.get(peer).db()? {
                let row: PeerRow = from_cbor("peers-v1", v.value())?;
                out.push((peer.to_owned(), row.addrs));
            }
        }
        Ok(out)
    }
}

/// The names-table key of publisher/slug: 32 key bytes then the slug's bytes.
fn name_key(publisher: &PublisherKey, slug: &Slug) -> Vec<u8> {
    let mut key = Vec::with_capacity(32 + slug.as_str().len());
    key.extend_from_slice(publisher.as_bytes());
    key.extend_from_slice(slug.as_str().as_bytes());
    key
}

fn decode_manifest(bytes: &[u8]) -> Result<Manifest, StoreError> {
    Manifest::decode(bytes).map_err(|e| StoreError::Corrupt { table: "manifests-v1", detail: e.to_string() })
}

fn to_cbor<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(out)
}

fn from_cbor<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    ciborium::from_reader(bytes).map_err(|e| StoreError::Corrupt { table, detail: e.to_string() })
}

/// Bytes in the bitmap of `count` chunks.
fn bitmap_len(count: u64) -> Result<usize, StoreError> {
    usize::try_from(count.div_ceil(8))
        .map_err(|_| StoreError::InvalidRecord(format!("{count} chunks do not fit a bitmap in memory")))
}

/// A bitmap of `len` bytes with the first `count` bits set.
fn full_bitmap(count: u64, len: usize) -> Vec<u8> {
    let mut bitmap = vec![0xff; len];
    let rem = count % 8;
    if rem != 0 {
        if let Some(last) = bitmap.last_mut() {
            *last = (1u8 << rem) - 1;
        }
    }
    bitmap
}

/// Paths as raw OS bytes in binary formats (so non-UTF-8 names survive), as text otherwise.
mod path_serde {
    use std::fmt;
    use std::path::{Path, PathBuf};

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            #[cfg(unix)]
            {
                use std::os::unix::ffi::OsStrExt;
                return s.serialize_bytes(path.as_os_str().as_bytes());
            }
        }
        match path.to_str() {
            Some(text) => s.serialize_str(text),
            None => Err(serde::ser::Error::custom(format!("path {} is not valid UTF-8", path.display()))),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        d.deserialize_any(PathVisitor)
    }

    struct PathVisitor;

    impl<'de> Visitor<'de> for PathVisitor {
        type Value = PathBuf;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a path as text or bytes")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<PathBuf, E> {
            Ok(PathBuf::from(v))
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<PathBuf, E> {
            bytes_to_path(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<PathBuf, E> {
            bytes_to_path(v)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<PathBuf, A::Error> {
            let mut bytes = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                bytes.push(b);
            }
            bytes_to_path(bytes)
        }
    }

    fn bytes_to_path<E: de::Error>(bytes: Vec<u8>) -> Result<PathBuf, E> {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
        }
        #[cfg(not(unix))]
        {
            String::from_utf8(bytes).map(PathBuf::from).map_err(|_| E::custom("path is not valid UTF-8"))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn store_bitmap_helpers() {
        assert_eq!(full_bitmap(0, 0), Vec::<u8>::new());
        assert_eq!(full_bitmap(8, 1), vec![0xff]);
        assert_eq!(full_bitmap(10, 2), vec![0xff, 0b11]);
        assert_eq!(bitmap_len(17).unwrap(), 3);
    }

    #[test]
    fn store_error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<StoreError>();
    }

    #[cfg(unix)]
    #[test]
    fn store_non_utf8_paths_round_trip() {
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(b"/data/\xff\xfe.csv"));
        let rec = FileRecord {
            id: ContentId::of(b"x"),
            size: 1,
            chunk_size: 1 << 16,
            path,
            complete: false,
            in_place: true,
            mtime_ns: Some(-1_700_000_000_123_456_789_i128 * 1000),
            readers: Readers::Anyone,
        };
        let back: FileRecord = from_cbor("files-v1", &to_cbor(&rec).unwrap()).unwrap();
        assert_eq!(back, rec);
        // Text formats use the UTF-8 form.
        let mut utf8 = rec.clone();
        utf8.path = PathBuf::from("/data/a.csv");
        let json = serde_json::to_string(&utf8).unwrap();
        assert_eq!(serde_json::from_str::<FileRecord>(&json).unwrap(), utf8);
        // Readers: nobody (an empty list) survives both forms and is not read back as public.
        let mut nobody = rec.clone();
        nobody.readers = Readers::Only(Default::default());
        let back: FileRecord = from_cbor("files-v1", &to_cbor(&nobody).unwrap()).unwrap();
        assert_eq!(back.readers, nobody.readers);
        utf8.readers = Readers::Only(Default::default());
        let json = serde_json::to_string(&utf8).unwrap();
        assert_eq!(serde_json::from_str::<FileRecord>(&json).unwrap(), utf8);
    }

    /// A layout-1 record (`readers` a non-empty list, or absent) means the same under layout 2.
    #[test]
    fn store_layout_1_file_records_keep_their_readers() {
        #[derive(Serialize)]
        struct V1 {
            id: ContentId,
            size: u64,
            chunk_size: u64,
            path: String,
            complete: bool,
            in_place: bool,
            mtime_ns: Option<i128>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            readers: Vec<String>,
        }
        let mut v1 = V1 {
            id: ContentId::of(b"x"),
            size: 1,
            chunk_size: 1 << 16,
            path: "/data/a.csv".into(),
            complete: true,
            in_place: false,
            mtime_ns: None,
            readers: vec!["X".into()],
        };
        let back: FileRecord = from_cbor("files-v1", &to_cbor(&v1).unwrap()).unwrap();
        assert_eq!(back.readers, Readers::from_metadata(&["X".into()]));
        v1.readers.clear();
        let back: FileRecord = from_cbor("files-v1", &to_cbor(&v1).unwrap()).unwrap();
        assert_eq!(back.readers, Readers::Anyone);
    }
}
