//! Fetching a dataset: find providers → get and check the manifest → file list → chunk lists →
//! pull chunk ranges from several providers at once, with a bounded number of requests in flight
//! per peer → verify every chunk before writing it → persist progress → verify each whole file →
//! rename it into place → provide the dataset.
//!
//! Files are written below the output folder without following links planted there, and a
//! dataset path may not end in `.lien-part` (`output.rs`).
//!
//! Progress survives crashes: chunks are written into `<path>.lien-part` files, and a chunk's bit
//! is set in the store only after its bytes are fsynced, so a restarted fetch downloads only
//! what was not yet durable. A peer that sends bad data is never asked again; a peer that fails
//! or vanishes costs a retry elsewhere.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use lien_protocol::manifest::FileList;
use lien_protocol::wire::{ErrorCode, Request, Response};
use lien_protocol::{ChunkList, ContentId, FileEntry, Manifest};
use tokio::time::Instant;

use crate::chunks::{bit, chunk_list_key, write_at, ChunkListError};
use crate::network::{NetError, NetworkHandle};
use crate::node::Inner;
use crate::output::{self, Folder, Folders, ReservedPath};
use crate::store::{FileRecord, LocalDataset, LocalKind, Readers, StoreError};

/// Bytes written before they are fsynced and marked present (and so offered to other peers).
const SYNC_EVERY_BYTES: u64 = 8 << 20;

/// Unsynced bytes of a file of `size` bytes after which its chunks are fsynced and marked
/// present: [`SYNC_EVERY_BYTES`], but at least four times per file. Only marked chunks are
/// served to others, so a file smaller than `SYNC_EVERY_BYTES` would otherwise be offered to
/// nobody until it is complete, and every fetcher of it would take it all from the publisher.
fn sync_every(size: u64) -> u64 {
    SYNC_EVERY_BYTES.min(size / 4).max(1)
}

/// Age after which a peer's `Have` answer is asked again (partial holders gain chunks).
const HAVE_REFRESH: Duration = Duration::from_millis(250);
/// How long a peer that answered `Busy` is left alone, at first; it doubles with each `Busy` in a
/// row up to [`MAX_BUSY_BACKOFF`]. A thousand fetchers retrying a busy publisher every 50 ms would
/// send it 20,000 requests a second that it can only refuse.
const BUSY_BACKOFF: Duration = Duration::from_millis(50);
/// The longest `Busy` back-off.
const MAX_BUSY_BACKOFF: Duration = Duration::from_secs(1);
/// Failures in a row after which a peer is dropped (until [`FAILED_PEER_RETRY`] has passed).
const MAX_PEER_FAILURES: u32 = 3;
/// How long a peer dropped after [`MAX_PEER_FAILURES`] failures is left out.
const FAILED_PEER_RETRY: Duration = Duration::from_secs(10);
/// How far into the work queue a peer looks for a range it holds.
const QUEUE_SCAN: usize = 256;
/// How often a running fetch looks for more providers (the DHT's, partial holders included, and
/// connected peers), in the background while chunks flow.
const DISCOVERY_REFRESH: Duration = Duration::from_secs(2);
/// Bytes asked for in one request.
const REQUEST_BYTES: u64 = 1 << 20;

/// Progress of a fetch, reported to a callback.
#[derive(Debug, Clone, Copy)]
pub struct FetchProgress {
    /// Bytes present and verified.
    pub done: u64,
    /// Bytes in the dataset.
    pub total: u64,
    /// Peers currently serving.
    pub peers: usize,
}

/// How to fetch.
#[derive(Clone)]
pub struct FetchOptions {
    /// How long to look for providers before giving up, and the longest stretch without any
    /// usable provider during the transfer.
    pub timeout: Duration,
    /// Called as bytes arrive.
    pub progress: Option<Arc<dyn Fn(FetchProgress) + Send + Sync>>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(60), progress: None }
    }
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions").field("timeout", &self.timeout).finish()
    }
}

/// What a finished fetch did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FetchReport {
    /// The manifest fetched.
    pub manifest: ContentId,
    /// `publisher/slug`.
    pub name: String,
    /// Folder the files are in.
    pub root: PathBuf,
    /// Files in the dataset.
    pub files: usize,
    /// Bytes in the dataset.
    pub total_bytes: u64,
    /// Bytes downloaded in this run (the rest was already present).
    pub downloaded_bytes: u64,
    /// Bytes received from each peer.
    pub per_peer: BTreeMap<String, u64>,
    /// Peers dropped for sending bad data.
    pub bad_peers: Vec<String>,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nobody could be found who serves the dataset.
    #[error("no reachable peer provides {what} {id} (searched for {secs} s)")]
    NoProviders {
        /// What was looked for.
        what: &'static str,
        /// Its id.
        id: ContentId,
        /// How long.
        secs: u64,
    },
    /// The transfer stalled: no usable peer holds the remaining chunks.
    #[error("no reachable peer holds the rest of {path} ({missing} chunks missing)")]
    Stalled {
        /// The file.
        path: String,
        /// Chunks missing.
        missing: usize,
    },
    /// Received data could not be verified.
    #[error("invalid data from peers: {0}")]
    Invalid(String),
    /// A downloaded file does not match its id.
    #[error("{0} does not match its id after download")]
    FileMismatch(PathBuf),
    /// Disk I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A chunk list could not be loaded.
    #[error(transparent)]
    ChunkList(#[from] ChunkListError),
    /// The network task stopped.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The providers refuse this node: the dataset is restricted to other organisations.
    #[error("access to dataset {id} refused: this node's key is not delegated to an organisation allowed to read it")]
    Forbidden {
        /// The manifest.
        id: ContentId,
    },
    /// Holding the dataset would exceed the node's storage quota.
    #[error(
        "dataset needs {need} bytes but only {free} of the storage quota are free (storage_quota_bytes in lien.toml)"
    )]
    QuotaExceeded {
        /// Bytes of the dataset.
        need: u64,
        /// Bytes left under the quota.
        free: u64,
    },
    /// The dataset's publisher is not trusted by this node.
    #[error("refusing dataset {id}: {reason}")]
    Untrusted {
        /// The manifest.
        id: ContentId,
        /// Why.
        reason: String,
    },
    /// A path of the dataset takes the name reserved for partial files.
    #[error(transparent)]
    ReservedPath(#[from] ReservedPath),
    /// A background task failed.
    #[error("internal task failed: {0}")]
    Task(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io { path: path.to_path_buf(), source }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FetchError> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| FetchError::Task(e.to_string()))?
}

/// Candidate providers of `key`: the DHT's answer plus every connected peer.
async fn discover(net: &NetworkHandle, key: ContentId, wait: Duration) -> Vec<PeerId> {
    let mut out = Vec::new();
    if let Ok(Ok(found)) = tokio::time::timeout(wait, net.find_providers(key)).await {
        out.extend(found);
    }
    if let Ok(peers) = net.peers().await {
        for p in peers {
            if let Ok(id) = p.peer_id.parse::<PeerId>() {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    }
    out.retain(|p| *p != net.peer_id());
    out
}

/// Asks candidates in turn until one answers `request` with something `accept` takes.
async fn ask_any<T>(
    net: &NetworkHandle,
    key: ContentId,
    what: &'static str,
    request: Request,
    deadline: Instant,
    accept: impl Fn(Response) -> Option<T>,
) -> Result<T, FetchError> {
    let start = Instant::now();
    let mut forbidden = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        for peer in discover(net, key, left.min(Duration::from_secs(10))).await {
            if let Ok(r) = net.request(peer, request.clone()).await {
                if let Response::Error { code: ErrorCode::Forbidden, .. } = r.header {
                    forbidden = true;
                    continue;
                }
                if let Some(v) = accept(r.header) {
                    return Ok(v);
                }
            }
        }
        if forbidden {
            return Err(FetchError::Forbidden { id: key });
        }
        if Instant::now() >= deadline {
            return Err(FetchError::NoProviders { what, id: key, secs: start.elapsed().as_secs() });
        }
        tokio::time::sleep(Duration::from_millis(300).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// One file being fetched.
struct FileJob {
    entry: FileEntry,
    /// The folder the file goes to, opened without following links.
    folder: Folder,
    /// The file's name in `folder`.
    name: OsString,
    /// Its partial file's name in `folder`.
    part: OsString,
    final_path: PathBuf,
    part_path: PathBuf,
    list: Option<Arc<ChunkList>>,
    file: Option<Arc<File>>,
    missing: usize,
    unsynced: Vec<u64>,
    unsynced_bytes: u64,
    /// The background fsync-and-mark of earlier chunks, if one is running (at most one per file,
    /// so marks land in order and each only after its own fsync).
    syncing: Option<tokio::task::JoinHandle<Result<(), FetchError>>>,
    /// Another file of this dataset with the same content, copied once that one is complete.
    copy_of: Option<usize>,
}

/// A range of consecutive chunks of one file.
#[derive(Debug, Clone, Copy)]
struct Unit {
    file: usize,
    first: u64,
    count: u32,
}

#[derive(Default)]
struct PeerState {
    in_flight: usize,
    failures: u32,
    bad: bool,
    have: HashMap<usize, (Vec<u8>, Instant)>,
    busy_until: Option<Instant>,
    /// Requests this peer takes at once. It starts at one and grows by one per answer up to the
    /// configured number (a slow start: a thousand nodes that hear of a dataset at once each ask
    /// the publisher for one piece, not for the whole dataset); after a `Busy` it is what the
    /// peer was serving us (a server with fewer upload slots than our requests in flight would
    /// otherwise answer `Busy` to the surplus again and again) and grows back slowly.
    window: usize,
    /// Whether the peer has answered `Busy` (the window then grows only slowly).
    saw_busy: bool,
    /// `Busy` answers in a row (reset by any other answer): the back-off doubles with each.
    busy_streak: u32,
    /// When its latest request failed.
    failed_at: Option<Instant>,
    /// Answers since the window last changed; the window grows by one every
    /// [`WINDOW_GROWTH_EVERY`] of them, back up to the configured number.
    since_window_change: usize,
    /// Files this peer holds whole (per its last `Have`): a seed for them.
    seed_of: std::collections::HashSet<usize>,
    /// Files whose `Have` from this peer did not fit (another chunk count): never asked again.
    misfits: std::collections::HashSet<usize>,
}

/// Successful answers after which a peer's request window grows by one (a probe: if the peer
/// still has no more slots, it costs one `Busy` answer).
const WINDOW_GROWTH_EVERY: usize = 64;

impl PeerState {
    /// Requests this peer may have in flight now.
    fn limit(&self, configured: usize) -> usize {
        self.window.clamp(1, configured.max(1))
    }

    /// How long to leave the peer alone after its latest `Busy`: [`BUSY_BACKOFF`] doubled for
    /// each earlier one in a row, at most [`MAX_BUSY_BACKOFF`], times `jitter` (0.5–1, so that
    /// fetchers refused together do not all come back together).
    fn busy_backoff(&self, jitter: f64) -> Duration {
        let doublings = self.busy_streak.saturating_sub(1).min(16);
        BUSY_BACKOFF.saturating_mul(1 << doublings).min(MAX_BUSY_BACKOFF).mul_f64(jitter.clamp(0.5, 1.0))
    }

    /// The peer answered `Busy`: shrink its window to what it is serving now.
    fn shrink_window(&mut self) {
        self.busy_streak = self.busy_streak.saturating_add(1);
        self.window = self.in_flight.max(1);
        self.saw_busy = true;
        self.since_window_change = 0;
    }

    /// The peer served a request: grow the window, by one per answer until the first `Busy`,
    /// then by one per [`WINDOW_GROWTH_EVERY`] answers.
    fn grow_window(&mut self, configured: usize) {
        if self.window >= configured {
            return;
        }
        if !self.saw_busy {
            self.window = self.window.max(1) + 1;
            return;
        }
        self.since_window_change += 1;
        if self.since_window_change >= WINDOW_GROWTH_EVERY {
            self.window += 1;
            self.since_window_change = 0;
        }
    }

    /// Records the peer's `Have` bitmap for `file` (of `count` chunks).
    fn record_have(&mut self, file: usize, bitmap: Vec<u8>, count: u64) {
        if (0..count).all(|i| bit(&bitmap, i)) {
            self.seed_of.insert(file);
        } else {
            self.seed_of.remove(&file);
        }
        self.have.insert(file, (bitmap, Instant::now()));
    }

    /// Whether this peer may be asked at all: it sent no bad data and has not failed
    /// [`MAX_PEER_FAILURES`] times in a row.
    fn usable(&self) -> bool {
        !self.bad && self.failures < MAX_PEER_FAILURES
    }

    /// Whether a seed of `unit`'s file should leave `unit` to others now: when a partial holder is
    /// known to have it (`held_elsewhere`), or when it already serves us a request while other
    /// fetchers hold parts of the file (`swarm`), so its upload reaches many fetchers.
    /// (Both are asked only for a seed, and only as far as needed: they scan the other peers.)
    fn leaves_to_others(
        &self,
        unit: &Unit,
        held_elsewhere: impl FnOnce() -> bool,
        swarm: impl FnOnce() -> bool,
    ) -> bool {
        self.seed_of.contains(&unit.file) && (held_elsewhere() || (self.in_flight > 0 && swarm()))
    }

    /// Whether this peer is usable and known (from its `Have`) to hold `unit` without being a
    /// seed of the file.
    fn partial_holder_of(&self, unit: &Unit, now: Instant) -> bool {
        self.usable()
            && self.busy_until.is_none_or(|t| t <= now)
            && !self.seed_of.contains(&unit.file)
            && self.may_hold(unit) == Some(false)
    }

    /// Whether this peer may be asked again when it turns up among the candidates: never after
    /// bad data; after [`MAX_PEER_FAILURES`] failures only once [`FAILED_PEER_RETRY`] has passed
    /// since the last (a cut that healed, a restarted node), with its failures forgiven.
    fn usable_again(&mut self, now: Instant) -> bool {
        if self.bad {
            return false;
        }
        if self.failures >= MAX_PEER_FAILURES {
            if self.failed_at.is_none_or(|t| now.duration_since(t) < FAILED_PEER_RETRY) {
                return false;
            }
            self.failures = 0;
        }
        true
    }

    /// Whether this peer is usable and known to hold some chunk of `file` without being a seed
    /// of it: a fetcher like us, so there is a swarm to trade with.
    fn trades(&self, file: usize) -> bool {
        self.usable()
            && !self.seed_of.contains(&file)
            && self.have.get(&file).is_some_and(|(bitmap, _)| bitmap.iter().any(|b| *b != 0))
    }

    /// Whether this peer may hold `unit`, and whether to ask it `Have` first.
    fn may_hold(&self, unit: &Unit) -> Option<bool> {
        if self.misfits.contains(&unit.file) {
            return None;
        }
        match self.have.get(&unit.file) {
            None => Some(true),
            Some((bitmap, _)) if (unit.first..unit.first + u64::from(unit.count)).all(|i| bit(bitmap, i)) => {
                Some(false)
            }
            Some((_, at)) if at.elapsed() > HAVE_REFRESH => Some(true),
            Some(_) => None,
        }
    }
}

enum Outcome {
    /// The peer's `Have` does not fit the file (another chunk count): it holds the file cut
    /// into other chunks, or it misbehaves. Either way its chunk indices are not ours.
    Misfit(String),
    Written(u64, Option<Vec<u8>>),
    Corrupt(Option<Vec<u8>>),
    Forbidden,
    NotHeld(Vec<u8>),
    Busy,
    Failed(String),
}

/// Checks a peer's `Have` answer against the file's chunk count: a bitmap for another count
/// (too short or too long) is the peer's error, never read as if it were about our chunks.
fn check_have(count: u64, bitmap: &[u8], expected: u64) -> Result<(), String> {
    if count != expected {
        return Err(format!("its Have counts {count} chunks, the file has {expected}"));
    }
    if bitmap.len() as u64 != expected.div_ceil(8) {
        return Err(format!("its Have bitmap has {} bytes for {expected} chunks", bitmap.len()));
    }
    Ok(())
}

/// Fetches manifest `id` into `root`. See the module docs for the steps.
pub(crate) async fn fetch(
    inner: &Arc<Inner>,
    id: ContentId,
    root: &Path,
    opts: FetchOptions,
) -> Result<FetchReport, FetchError> {
    let lock = dataset_lock(inner, id)?;
    let result = {
        let _guard = lock.lock().await;
        fetch_locked(inner, id, root, opts, None).await
    };
    release_dataset_lock(inner, id, lock);
    result
}

/// The lock that keeps fetches of one dataset from interleaving.
fn dataset_lock(inner: &Arc<Inner>, id: ContentId) -> Result<Arc<tokio::sync::Mutex<()>>, FetchError> {
    let mut locks = inner.fetch_locks.lock().map_err(|_| FetchError::Task("fetch lock poisoned".into()))?;
    Ok(locks.entry(id).or_default().clone())
}

/// Drops the dataset's lock from the map when nobody else holds or waits for it, so a
/// long-running daemon does not keep one entry per dataset it ever fetched.
fn release_dataset_lock(inner: &Arc<Inner>, id: ContentId, lock: Arc<tokio::sync::Mutex<()>>) {
    if let Ok(mut locks) = inner.fetch_locks.lock() {
        drop(lock);
        // The map's own reference is the only one left: no fetch of this dataset runs or waits.
        if locks.get(&id).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(&id);
        }
    }
}

/// Chunks `first..=last` of one file of a dataset: what the HTTP gateway needs to answer a Range
/// request without waiting for the whole dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    /// The file.
    pub file: ContentId,
    /// First chunk index.
    pub first: u64,
    /// Last chunk index (inclusive).
    pub last: u64,
}

/// Fetches only the chunks of `only` (plus the manifest, file list and chunk lists), verified
/// and marked present like any other; the dataset stays incomplete unless they were all it
/// lacked. Files left incomplete stay as `.lien-part` files.
pub(crate) async fn fetch_range(
    inner: &Arc<Inner>,
    id: ContentId,
    root: &Path,
    opts: FetchOptions,
    only: ChunkRange,
) -> Result<FetchReport, FetchError> {
    let lock = dataset_lock(inner, id)?;
    let result = {
        let _guard = lock.lock().await;
        fetch_locked(inner, id, root, opts, Some(only)).await
    };
    release_dataset_lock(inner, id, lock);
    result
}

async fn fetch_locked(
    inner: &Arc<Inner>,
    id: ContentId,
    root: &Path,
    opts: FetchOptions,
    only: Option<ChunkRange>,
) -> Result<FetchReport, FetchError> {
    let net = &inner.net;
    let store = inner.store.clone();
    let deadline = Instant::now() + opts.timeout;

    // 1. The manifest: from the catalog, or from a provider (checked against the id).
    let manifest = match store.manifest(&id)? {
        Some(m) => m,
        None => {
            let m = ask_any(net, id, "manifest", Request::Manifest { id }, deadline, |r| match r {
                Response::Manifest { bytes } if ContentId::of(&bytes) == id => Manifest::decode(&bytes).ok(),
                _ => None,
            })
            .await?;
            if let Err(e) = inner.trust.check_manifest(&m) {
                return Err(FetchError::Untrusted { id, reason: e.to_string() });
            }
            store.put_manifest(&m)?;
            m
        }
    };
    if let Err(e) = inner.trust.check_manifest(&manifest) {
        return Err(FetchError::Untrusted { id, reason: e.to_string() });
    }
    // 2. The file list.
    let entries: Vec<FileEntry> = match &manifest.body().files {
        FileList::Inline(files) => files.clone(),
        FileList::Blob(r) => {
            let r = *r;
            match store.blob(&r.id)? {
                Some(bytes) => FileList::decode_blob(&r, &bytes).map_err(|e| FetchError::Invalid(e.to_string()))?,
                None => {
                    let (files, bytes) =
                        ask_any(net, id, "file list", Request::FileList { id: r.id }, deadline, |resp| match resp {
                            Response::FileList { bytes } => FileList::decode_blob(&r, &bytes).ok().map(|f| (f, bytes)),
                            _ => None,
                        })
                        .await?;
                    store.put_blob(&r.id, &bytes)?;
                    files
                }
            }
        }
    };
    // Before anything is written: no path may take the name of another file's partial file.
    for e in &entries {
        output::check_not_reserved(&e.path)?;
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    check_quota(inner, id, total)?;
    std::fs::create_dir_all(root).map_err(io(root))?;
    let root = root.canonicalize().map_err(io(root))?;
    record_local(&store, id, &root, false)?;

    // 3. Chunk lists for multi-chunk files.
    for e in &entries {
        if e.chunk_size.count(e.size) > 1 && store.blob(&chunk_list_key(&e.id))?.is_none() {
            let (size, cs, fid) = (e.size, e.chunk_size, e.id);
            let bytes = ask_any(net, id, "chunk list", Request::ChunkList { file: fid }, deadline, |r| match r {
                Response::ChunkList { bytes } if ChunkList::from_bytes(fid, size, cs, &bytes).is_ok() => Some(bytes),
                _ => None,
            })
            .await?;
            store.put_blob(&chunk_list_key(&fid), &bytes)?;
        }
    }

    // 4. Local preparation: skip what is present, reuse local copies, create part files.
    let prep_store = store.clone();
    let prep_root = root.clone();
    let readers = Readers::from_metadata(&manifest.body().metadata.readers);
    let threads = inner.config.hash_threads();
    let (mut jobs, queue) = blocking(move || prepare(&prep_store, &prep_root, entries, &readers, threads)).await?;
    // A random order per fetcher (as BitTorrent's random-first): nodes fetching the same
    // dataset at once hold different chunks early, so they can serve each other instead of all
    // asking the publisher for the same ones.
    let mut queue = queue;
    {
        use rand::seq::SliceRandom;
        queue.shuffle(&mut rand::thread_rng());
    }
    let mut queue: VecDeque<Unit> = queue.into();
    if let Some(r) = only {
        queue
            .retain(|u| jobs[u.file].entry.id == r.file && u.first <= r.last && u.first + u64::from(u.count) > r.first);
    }
    let present: u64 = total - queue.iter().map(|u| unit_bytes(&jobs, u)).sum::<u64>();

    // 5. Download.
    let mut done = present;
    let mut per_peer: BTreeMap<String, u64> = BTreeMap::new();
    let mut peers: HashMap<PeerId, PeerState> = HashMap::new();
    let mut order: Vec<PeerId> = Vec::new();
    let mut inflight = FuturesUnordered::new();
    let mut last_usable = Instant::now();
    let mut saw_forbidden = false;
    let per_peer_limit = inner.config.fetch_requests_per_peer;
    let report = |done: u64, n: usize| {
        if let Some(p) = &opts.progress {
            p(FetchProgress { done, total, peers: n });
        }
    };
    let mut provided = false;
    let mut discovery: Option<tokio::task::JoinHandle<Vec<PeerId>>> = None;
    let mut next_discovery = Instant::now();
    report(done, 0);
    for job in &mut jobs {
        if job.missing == 0 && job.file.is_some() {
            finish_file(inner, job).await?;
        }
    }
    while !queue.is_empty() || !inflight.is_empty() {
        // Assign work to every peer with a free slot.
        let mut assigned = true;
        while assigned {
            assigned = false;
            let now = Instant::now();
            for peer in &order {
                let Some(state) = peers.get(peer) else { continue };
                if state.bad
                    || state.in_flight >= state.limit(per_peer_limit)
                    || state.busy_until.is_some_and(|t| t > now)
                {
                    continue;
                }
                // A seed (it holds the whole file) is asked only for chunks no partial holder is
                // known to have: its upload goes to what is rare, and the fetchers of a swarm
                // trade the rest among themselves (BitTorrent's super-seeding, roughly).
                // While there is a swarm (others hold parts of the file), a seed gets one
                // request at a time from us, so its upload reaches many fetchers.
                let held_elsewhere = |u: &Unit| {
                    order.iter().any(|p| p != peer && peers.get(p).is_some_and(|s| s.partial_holder_of(u, now)))
                };
                let swarm =
                    |file: usize| order.iter().any(|p| p != peer && peers.get(p).is_some_and(|s| s.trades(file)));
                // Rarest first: of the ranges this peer may hold, the one fewest known peers hold
                // (ties keep the queue's random order), so what is scarce spreads first.
                let holders = |u: &Unit| {
                    order
                        .iter()
                        .filter(|p| peers.get(*p).is_some_and(|s| s.usable() && s.may_hold(u) == Some(false)))
                        .count()
                };
                let pick = queue
                    .iter()
                    .take(QUEUE_SCAN)
                    .enumerate()
                    .filter_map(|(i, u)| {
                        let ask = state.may_hold(u)?;
                        if state.leaves_to_others(u, || held_elsewhere(u), || swarm(u.file)) {
                            return None;
                        }
                        Some((holders(u), i, ask))
                    })
                    .min_by_key(|(n, i, _)| (*n, *i))
                    .map(|(_, i, ask)| (i, ask));
                if let Some((pos, ask)) = pick {
                    let Some(unit) = queue.remove(pos) else { continue };
                    let job = &jobs[unit.file];
                    let ask_have = ask && job.list.as_ref().is_some_and(|l| l.chunk_count() > 1);
                    let Some(state) = peers.get_mut(peer) else { continue };
                    state.in_flight += 1;
                    assigned = true;
                    let target =
                        WriteTarget { list: job.list.clone(), file: job.file.clone(), entry: job.entry.clone() };
                    inflight.push(request_unit(inner.clone(), *peer, unit, target, ask_have));
                }
            }
        }
        if inflight.is_empty() {
            // Everyone who could serve is only backing off after `Busy`: wait for the first of
            // them rather than search the DHT again.
            let now = Instant::now();
            let backing_off = order
                .iter()
                .filter_map(|p| peers.get(p))
                .filter(|s| s.usable())
                .filter_map(|s| s.busy_until.filter(|t| *t > now))
                .min();
            if let Some(until) = backing_off {
                tokio::time::sleep_until(until).await;
                continue;
            }
            // Nobody usable holds what is left: look for (more) providers, within the timeout.
            if last_usable.elapsed() > opts.timeout {
                let u = queue.front().copied();
                let path = u.map(|u| jobs[u.file].entry.path.to_string()).unwrap_or_default();
                return Err(FetchError::Stalled { path, missing: queue.len() });
            }
            if saw_forbidden && order.is_empty() {
                return Err(FetchError::Forbidden { id });
            }
            let found = discover(net, id, Duration::from_secs(5)).await;
            let mut added = false;
            let now = Instant::now();
            for p in found {
                let state = peers.entry(p).or_default();
                // Only usable peers count: re-adding one that failed (and was dropped again
                // below) used to loop straight back to the DHT with no pause, lookup after
                // lookup, until the fetch timed out.
                if !state.usable_again(now) {
                    continue;
                }
                if !order.contains(&p) {
                    order.push(p);
                } else {
                    // A partial holder may have more by now.
                    state.have.clear();
                }
                added = true;
            }
            order.retain(|p| peers.get(p).is_some_and(PeerState::usable));
            if !added || order.is_empty() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            continue;
        }
        last_usable = Instant::now();
        // Providers found in the background join as they turn up (partial holders advertise
        // themselves from their first chunk on), without holding up the transfers.
        let finished = discovery.take_if(|d| d.is_finished());
        if let Some(task) = finished {
            // Finished: this await returns at once.
            if let Ok(found) = task.await {
                let now = Instant::now();
                for p in found {
                    if !order.contains(&p) && peers.entry(p).or_default().usable_again(now) {
                        order.push(p);
                    }
                }
            }
        }
        if discovery.is_none() && Instant::now() >= next_discovery {
            let net = net.clone();
            discovery = Some(tokio::spawn(async move { discover(&net, id, Duration::from_secs(5)).await }));
            next_discovery = Instant::now() + DISCOVERY_REFRESH;
        }
        // Wake for the next discovery round (never sooner than 200 ms: one may still be running).
        let wake = next_discovery.max(Instant::now() + Duration::from_millis(200));
        let Ok(next) = tokio::time::timeout_at(wake, inflight.next()).await else { continue };
        let Some((peer, unit, outcome)) = next else { continue };
        // Whether someone else could take this peer's work now (asked only after `Busy`).
        let others_usable = matches!(outcome, Outcome::Busy) && {
            let now = Instant::now();
            order.iter().any(|p| {
                *p != peer && peers.get(p).is_some_and(|s| s.usable() && s.busy_until.is_none_or(|t| t <= now))
            })
        };
        let chunk_count = jobs[unit.file].entry.chunk_size.count(jobs[unit.file].entry.size);
        let state = peers.entry(peer).or_default();
        state.in_flight = state.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Misfit(reason) => {
                tracing::info!(%peer, file = %jobs[unit.file].entry.path, "not asking this peer for the file: {reason}");
                state.misfits.insert(unit.file);
                queue.push_front(unit);
            }
            Outcome::Corrupt(have) => {
                if let Some(h) = have {
                    state.record_have(unit.file, h, chunk_count);
                }
                tracing::warn!(%peer, file = %jobs[unit.file].entry.path, "peer sent a chunk that does not verify; dropping it");
                inner.stats.chunks_rejected.fetch_add(1, Ordering::Relaxed);
                state.bad = true;
                queue.push_front(unit);
            }
            Outcome::Written(len, have) => {
                if let Some(h) = have {
                    state.record_have(unit.file, h, chunk_count);
                }
                state.failures = 0;
                state.busy_streak = 0;
                state.grow_window(per_peer_limit);
                inner.stats.fetched(&peer.to_string(), len, u64::from(unit.count));
                *per_peer.entry(peer.to_string()).or_default() += len;
                done += len;
                let job = &mut jobs[unit.file];
                if job.file.is_some() {
                    // Offered to peers at once; made durable (and marked) by the next sync.
                    inner.store.note_written(&job.entry.id, unit.first..unit.first + u64::from(unit.count));
                }
                if !provided && only.is_none() {
                    // Findable as a (partial) source from the first chunk on, not only once
                    // complete: in a flash crowd nobody completes early.
                    provided = true;
                    net.send(crate::network::Command::Provide { key: id }).await?;
                }
                job.missing -= unit.count as usize;
                job.unsynced.extend(unit.first..unit.first + u64::from(unit.count));
                job.unsynced_bytes += len;
                if job.missing == 0 {
                    finish_file(inner, job).await?;
                } else if job.unsynced_bytes >= sync_every(job.entry.size) {
                    start_sync(inner, job).await?;
                }
                report(done, order.len());
            }
            Outcome::NotHeld(bitmap) => {
                state.busy_streak = 0;
                state.record_have(unit.file, bitmap, chunk_count);
                queue.push_front(unit);
            }
            Outcome::Forbidden => {
                saw_forbidden = true;
                state.failures = MAX_PEER_FAILURES;
                order.retain(|p| *p != peer);
                queue.push_front(unit);
            }
            Outcome::Busy => {
                // Its upload slots are full. Send it no more at once than it is serving us now.
                // If others could serve (a swarm: spread the load, BitTorrent's choking) or it
                // serves us nothing, leave it alone briefly; if it is our only source, keep
                // its remaining slots busy.
                state.shrink_window();
                if state.in_flight == 0 || others_usable {
                    let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..=1.0);
                    state.busy_until = Some(Instant::now() + state.busy_backoff(jitter));
                }
                queue.push_back(unit);
            }
            Outcome::Failed(reason) => {
                tracing::debug!(%peer, "request failed: {reason}");
                state.failures += 1;
                state.failed_at = Some(Instant::now());
                if state.failures >= MAX_PEER_FAILURES {
                    order.retain(|p| *p != peer);
                }
                queue.push_front(unit);
            }
        }
    }
    let mut all_complete = true;
    for job in &mut jobs {
        if job.file.is_some() && job.missing == 0 {
            finish_file(inner, job).await?;
        } else if job.file.is_some() {
            // A partial fetch (`only`): keep what arrived, durable and marked.
            sync_and_mark(inner, job).await?;
            all_complete = false;
        }
    }
    if all_complete {
        let copies: Vec<(PathBuf, Folder, OsString, OsString, FileEntry)> = jobs
            .iter()
            .filter_map(|j| {
                let k = j.copy_of?;
                Some((jobs[k].final_path.clone(), j.folder.clone(), j.part.clone(), j.name.clone(), j.entry.clone()))
            })
            .collect();
        let threads = inner.config.hash_threads();
        blocking(move || {
            for (from, folder, part, name, entry) in copies {
                if !copy_verified(&from, &folder, &part, &name, &entry, threads)? {
                    return Err(FetchError::FileMismatch(folder.path().join(name)));
                }
            }
            Ok(())
        })
        .await?;
        record_local(&store, id, &root, true)?;
        net.send(crate::network::Command::Provide { key: id }).await?;
    }
    if let Some(d) = discovery {
        d.abort();
    }
    let bad_peers = peers.iter().filter(|(_, s)| s.bad).map(|(p, _)| p.to_string()).collect();
    Ok(FetchReport {
        manifest: id,
        name: manifest.name(),
        root,
        files: jobs.len(),
        total_bytes: total,
        downloaded_bytes: done - present,
        per_peer,
        bad_peers,
    })
}

/// Records the dataset as held here (complete or not), keeping the pin and the time it was first
/// added when it was already known: a resumed or repeated fetch must not unpin a mirror.
fn record_local(store: &crate::store::Store, id: ContentId, root: &Path, complete: bool) -> Result<(), FetchError> {
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
fn check_quota(inner: &Inner, id: ContentId, need: u64) -> Result<(), FetchError> {
    let quota = inner.config.storage_quota_bytes;
    if quota == 0 {
        return Ok(());
    }
    let data_dir = inner.config.data_dir();
    let mut used = 0u64;
    for local in inner.store.locals()? {
        let copied = local.kind == LocalKind::Fetched || local.root.starts_with(&data_dir);
        if local.manifest == id || !copied {
            continue;
        }
        if let Some(m) = inner.store.manifest(&local.manifest)? {
            used = used.saturating_add(m.body().files.total_size());
        }
    }
    if used.saturating_add(need) > quota {
        return Err(FetchError::QuotaExceeded { need, free: quota.saturating_sub(used) });
    }
    Ok(())
}

fn unit_bytes(jobs: &[FileJob], u: &Unit) -> u64 {
    let e = &jobs[u.file].entry;
    (u.first..u.first + u64::from(u.count)).map(|i| e.chunk_size.range(e.size, i).1).sum()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Where a unit's verified bytes go.
struct WriteTarget {
    list: Option<Arc<ChunkList>>,
    file: Option<Arc<File>>,
    entry: FileEntry,
}

/// Sends a `Have` (when the peer's holdings are unknown or stale), then a `Chunks` request, and
/// verifies and writes what arrives, so verification and disk writes of one response overlap
/// with the transfers of others.
async fn request_unit(
    inner: Arc<Inner>,
    peer: PeerId,
    unit: Unit,
    target: WriteTarget,
    ask_have: bool,
) -> (PeerId, Unit, Outcome) {
    let file = target.entry.id;
    let range = unit.first..unit.first + u64::from(unit.count);
    let mut have = None;
    if ask_have {
        match inner.net.request(peer, Request::Have { file }).await {
            Ok(r) => match r.header {
                Response::Have { count, bitmap } => {
                    let expected = target.entry.chunk_size.count(target.entry.size);
                    if let Err(reason) = check_have(count, &bitmap, expected) {
                        return (peer, unit, Outcome::Misfit(reason));
                    }
                    if !range.clone().all(|i| bit(&bitmap, i)) {
                        return (peer, unit, Outcome::NotHeld(bitmap));
                    }
                    have = Some(bitmap);
                }
                Response::Error { code: ErrorCode::Busy, .. } => return (peer, unit, Outcome::Busy),
                Response::Error { code: ErrorCode::Forbidden, .. } => return (peer, unit, Outcome::Forbidden),
                Response::Error { .. } => return (peer, unit, Outcome::NotHeld(Vec::new())),
                other => return (peer, unit, Outcome::Failed(format!("unexpected answer {other:?}"))),
            },
            Err(e) => return (peer, unit, Outcome::Failed(e.to_string())),
        }
    }
    let request = Request::Chunks { file, first: unit.first, count: unit.count };
    let outcome = match crate::bulk::request_chunks(&inner, peer, request).await {
        Ok(r) => match r.header {
            Response::Chunks { first, count, len }
                if first == unit.first && count == unit.count && len == r.payload.len() as u64 =>
            {
                let payload = r.payload;
                let written = tokio::task::spawn_blocking(move || {
                    let result =
                        verify_and_write(target.list.as_deref(), target.file.as_deref(), &target.entry, unit, &payload);
                    (result, payload)
                })
                .await
                .map(|(result, payload)| {
                    inner.bulk_clients.pool.give(payload);
                    result
                });
                match written {
                    Ok(Ok(true)) => Outcome::Written(len, have),
                    Ok(Ok(false)) => Outcome::Corrupt(have),
                    Ok(Err(e)) => Outcome::Failed(format!("cannot write: {e}")),
                    Err(e) => Outcome::Failed(format!("write task failed: {e}")),
                }
            }
            Response::Error { code: ErrorCode::Busy, .. } => Outcome::Busy,
            Response::Error { code: ErrorCode::Forbidden, .. } => Outcome::Forbidden,
            Response::Error { code: ErrorCode::NotFound, .. } => Outcome::NotHeld(have.unwrap_or_default()),
            other => Outcome::Failed(format!("unexpected answer {other:?}")),
        },
        Err(e) => Outcome::Failed(e.to_string()),
    };
    (peer, unit, outcome)
}

/// Verifies every chunk of `payload` and writes it at its offset. Returns false if any chunk
/// does not verify (nothing is written then).
fn verify_and_write(
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
    for i in unit.first..unit.first + u64::from(unit.count) {
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
async fn sync_and_mark(inner: &Arc<Inner>, job: &mut FileJob) -> Result<(), FetchError> {
    start_sync(inner, job).await?;
    wait_sync(job).await
}

/// Starts an fsync-and-mark of the chunks written so far in the background, after waiting for
/// the previous one of this file; the download goes on meanwhile.
async fn start_sync(inner: &Arc<Inner>, job: &mut FileJob) -> Result<(), FetchError> {
    wait_sync(job).await?;
    let (Some(file), indices) = (job.file.clone(), std::mem::take(&mut job.unsynced)) else { return Ok(()) };
    job.unsynced_bytes = 0;
    let store = inner.store.clone();
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
async fn finish_file(inner: &Arc<Inner>, job: &mut FileJob) -> Result<(), FetchError> {
    sync_and_mark(inner, job).await?;
    let Some(file) = job.file.take() else { return Ok(()) };
    let store = inner.store.clone();
    let entry = job.entry.clone();
    let (folder, part, name) = (job.folder.clone(), job.part.clone(), job.name.clone());
    let (part_path, final_path) = (job.part_path.clone(), job.final_path.clone());
    let threads = inner.config.hash_threads();
    blocking(move || {
        // The bytes behind the descriptor written to, whatever the partial file's name holds now.
        let digest =
            crate::hashing::hash_open_file(&file, entry.chunk_size, threads, &|_, _| {}).map_err(io(&part_path))?;
        if digest.id != entry.id {
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

/// Copies `from` (a complete copy of `entry` held here) to `name` in `folder`: into the partial
/// file `part` first, verified against the file's id there, then renamed into place. Returns
/// false (and leaves nothing behind) if the bytes read do not make up the file.
fn copy_verified(
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

/// Decides, per file, what is already here and what must be downloaded.
///
/// Files are written below `root` through [`Folders`]: no link planted under `root` is followed
/// (see `output.rs`). Every file's record gets `readers` merged in (they only narrow), whether
/// the file is downloaded, resumed or copied from a copy held here.
fn prepare(
    store: &crate::store::Store,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_peer_gets_a_smaller_window_that_grows_back_slowly() {
        let mut peer = PeerState::default();
        assert_eq!(peer.limit(8), 1, "a slow start: one request first");
        for expected in 2..=8 {
            peer.grow_window(8);
            assert_eq!(peer.limit(8), expected, "one more per answer until the first Busy");
        }
        peer.grow_window(8);
        assert_eq!(peer.limit(8), 8, "never above the configured number");
        // Busy while serving us 3 requests: at most 3 at once from now on.
        peer.in_flight = 3;
        peer.shrink_window();
        assert_eq!(peer.limit(8), 3);
        // Busy while serving us nothing: still one request allowed (after the back-off).
        peer.in_flight = 0;
        peer.shrink_window();
        assert_eq!(peer.limit(8), 1);
        for _ in 0..WINDOW_GROWTH_EVERY - 1 {
            peer.grow_window(8);
        }
        assert_eq!(peer.limit(8), 1, "grew too early");
        peer.grow_window(8);
        assert_eq!(peer.limit(8), 2);
        for _ in 0..100 * WINDOW_GROWTH_EVERY {
            peer.grow_window(8);
        }
        assert_eq!(peer.limit(8), 8, "never above the configured number");
        assert_eq!(peer.limit(4), 4);
    }

    #[test]
    fn a_seed_is_known_from_its_have_and_partial_holders_are_preferred_for_what_they_hold() {
        let unit = Unit { file: 0, first: 3, count: 1 };
        let now = Instant::now();
        let mut seed = PeerState::default();
        seed.record_have(0, vec![0xff, 0x03], 10);
        assert!(seed.seed_of.contains(&0), "10 of 10 chunks: a seed");
        assert!(!seed.partial_holder_of(&unit, now), "a seed is not a partial holder");
        let mut partial = PeerState::default();
        partial.record_have(0, vec![0b0000_1000, 0], 10);
        assert!(!partial.seed_of.contains(&0));
        assert!(partial.partial_holder_of(&unit, now), "it holds chunk 3");
        assert!(!partial.partial_holder_of(&Unit { file: 0, first: 4, count: 1 }, now), "not chunk 4");
        partial.busy_until = Some(now + Duration::from_secs(1));
        assert!(!partial.partial_holder_of(&unit, now), "a peer backing off after Busy does not count");
        // A seed that loses a chunk (its Have no longer full) is no longer one.
        seed.record_have(0, vec![0xff, 0x01], 10);
        assert!(!seed.seed_of.contains(&0));
    }

    #[test]
    fn busy_back_off_doubles_for_each_busy_in_a_row_up_to_a_second() {
        let mut peer = PeerState::default();
        let mut seen = Vec::new();
        for _ in 0..7 {
            peer.shrink_window();
            seen.push(peer.busy_backoff(1.0).as_millis());
        }
        assert_eq!(seen, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(peer.busy_backoff(0.5).as_millis(), 500, "jitter shortens it, at most by half");
        assert_eq!(peer.busy_backoff(0.0).as_millis(), 500);
    }

    #[test]
    fn a_failed_peer_is_asked_again_only_after_a_pause_and_a_bad_one_never() {
        let start = Instant::now();
        let mut peer = PeerState::default();
        assert!(peer.usable_again(start));
        peer.failures = MAX_PEER_FAILURES;
        peer.failed_at = Some(start);
        assert!(!peer.usable_again(start + FAILED_PEER_RETRY / 2), "too soon");
        assert!(peer.usable_again(start + FAILED_PEER_RETRY), "forgiven after the pause");
        assert_eq!(peer.failures, 0);
        peer.bad = true;
        assert!(!peer.usable_again(start + FAILED_PEER_RETRY * 10), "bad data is never forgiven");
    }

    #[test]
    fn a_have_that_does_not_fit_the_file_is_the_peers_error_and_it_is_not_asked_again() {
        assert_eq!(check_have(10, &[0xff, 0x03], 10), Ok(()));
        assert!(check_have(5, &[0x1f], 10).is_err(), "too short: the file cut into other chunks");
        assert!(check_have(20, &[0xff, 0xff, 0x0f], 10).is_err(), "too long");
        assert!(check_have(10, &[0xff], 10).is_err(), "bitmap too short for its count");
        assert!(check_have(10, &[0xff, 0x03, 0], 10).is_err(), "bitmap too long for its count");
        assert!(check_have(0, &[], 0).is_ok());
        let unit = Unit { file: 0, first: 3, count: 1 };
        let mut peer = PeerState::default();
        assert_eq!(peer.may_hold(&unit), Some(true));
        peer.misfits.insert(0);
        assert_eq!(peer.may_hold(&unit), None, "asked again for a file its chunks do not fit");
        assert_eq!(peer.may_hold(&Unit { file: 1, first: 0, count: 1 }), Some(true), "other files are fine");
    }

    #[test]
    fn small_files_are_marked_present_in_quarters_large_ones_every_8_mib() {
        assert_eq!(sync_every(4 << 20), 1 << 20, "a 4 MiB file: offered to others per MiB");
        assert_eq!(sync_every(1 << 30), SYNC_EVERY_BYTES);
        assert_eq!(sync_every(0), 1);
    }

    #[test]
    fn a_seed_leaves_what_others_hold_and_takes_one_request_at_a_time_while_they_trade() {
        let unit = Unit { file: 0, first: 3, count: 1 };
        let mut seed = PeerState::default();
        seed.record_have(0, vec![0xff, 0x03], 10);
        assert!(!seed.leaves_to_others(&unit, || false, || true), "first request: taken even in a swarm");
        assert!(seed.leaves_to_others(&unit, || true, || false), "a partial holder has it");
        seed.in_flight = 1;
        assert!(seed.leaves_to_others(&unit, || false, || true), "one at a time while others trade");
        assert!(!seed.leaves_to_others(&unit, || false, || false), "alone: as many as the window allows");
        let mut partial = PeerState::default();
        partial.record_have(0, vec![0b0000_1000, 0], 10);
        partial.in_flight = 1;
        assert!(!partial.leaves_to_others(&unit, || true, || true), "only seeds leave work to others");
    }

    #[test]
    fn a_fetcher_holding_part_of_a_file_trades_it_and_a_seed_or_an_idle_peer_does_not() {
        let mut idle = PeerState::default();
        idle.record_have(0, vec![0, 0], 10);
        assert!(!idle.trades(0), "holds nothing of the file: no swarm");
        let mut fetcher = PeerState::default();
        fetcher.record_have(0, vec![0b0100_0000, 0], 10);
        assert!(fetcher.trades(0), "holds chunk 6");
        assert!(!fetcher.trades(1), "nothing known of another file");
        let mut seed = PeerState::default();
        seed.record_have(0, vec![0xff, 0x03], 10);
        assert!(!seed.trades(0), "a seed is not one of the swarm");
        fetcher.bad = true;
        assert!(!fetcher.trades(0), "a peer that sent bad data does not count");
    }
}
