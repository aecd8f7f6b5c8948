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
//!
//! By phase: `locate` finds providers, the manifest, the file list and the chunk lists;
//! `plan` prepares the output folder and the queue of work; the download loop here does the
//! requests (`request`) that the pure `schedule` assigns and feeds it their outcomes;
//! `write` verifies, writes, syncs and marks chunks and finishes files. `fetcher` holds
//! `Fetcher`, the part of the node every phase uses (and nothing else of the node).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use lien_protocol::ContentId;
use tokio::time::Instant;

use crate::chunks::ChunkListError;
use crate::network::{Command, NetError};
use crate::output::{self, ReservedPath};
use crate::store::{Readers, StoreError};

mod fetcher;
mod locate;
mod plan;
mod request;
mod schedule;
mod write;

pub(crate) use fetcher::{FetchSettings, Fetcher};
use plan::FileJob;
use request::{request_unit, watch_peer, WriteTarget};
use schedule::{Outcome, Scheduler, Unit};

/// How often a running fetch looks for more providers (the DHT's, partial holders included, and
/// connected peers), in the background while chunks flow.
const DISCOVERY_REFRESH: Duration = Duration::from_secs(2);

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

/// Maps an I/O error on `path` to [`FetchError::Io`].
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io { path: path.to_path_buf(), source }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FetchError> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| FetchError::Task(e.to_string()))?
}

/// Fetches manifest `id` into `root`. See the module docs for the steps.
pub(crate) async fn fetch(
    fetcher: &Arc<Fetcher>,
    id: ContentId,
    root: &Path,
    opts: FetchOptions,
) -> Result<FetchReport, FetchError> {
    let lock = fetcher.dataset_lock(id)?;
    let result = {
        let _guard = lock.lock().await;
        fetch_locked(fetcher, id, root, opts, None).await
    };
    fetcher.release_dataset_lock(id, lock);
    result
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
    fetcher: &Arc<Fetcher>,
    id: ContentId,
    root: &Path,
    opts: FetchOptions,
    only: ChunkRange,
) -> Result<FetchReport, FetchError> {
    let lock = fetcher.dataset_lock(id)?;
    let result = {
        let _guard = lock.lock().await;
        fetch_locked(fetcher, id, root, opts, Some(only)).await
    };
    fetcher.release_dataset_lock(id, lock);
    result
}

/// The phases of a fetch, under the dataset's lock.
async fn fetch_locked(
    fetcher: &Arc<Fetcher>,
    id: ContentId,
    root: &Path,
    opts: FetchOptions,
    only: Option<ChunkRange>,
) -> Result<FetchReport, FetchError> {
    let store = fetcher.store.clone();
    let deadline = Instant::now() + opts.timeout;

    // 1. The manifest, 2. the file list.
    let manifest = locate::manifest(fetcher, id, deadline).await?;
    let entries = locate::file_list(fetcher, id, &manifest, deadline).await?;
    // Before anything is written: no path may take the name of another file's partial file.
    for e in &entries {
        output::check_not_reserved(&e.path)?;
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    plan::check_quota(fetcher, id, total)?;
    std::fs::create_dir_all(root).map_err(io(root))?;
    let root = root.canonicalize().map_err(io(root))?;
    plan::record_local(&store, id, &root, false)?;

    // 3. Chunk lists for multi-chunk files.
    locate::chunk_lists(fetcher, id, &entries, deadline).await?;

    // 4. Local preparation: skip what is present, reuse local copies, create part files.
    let prep_store = store.clone();
    let prep_root = root.clone();
    let readers = Readers::from_metadata(&manifest.body().metadata.readers);
    let threads = fetcher.settings.hash_threads;
    let (mut jobs, units) =
        blocking(move || plan::prepare(&prep_store, &prep_root, entries, &readers, threads)).await?;
    let queue = plan::work_queue(&jobs, units, only);
    let present: u64 = total - queue.iter().map(|u| plan::unit_bytes(&jobs, u)).sum::<u64>();

    // 5. Download.
    let mut run = Download { fetcher, id, only, total, done: present, per_peer: BTreeMap::new(), provided: false };
    let chunk_counts = jobs.iter().map(|j| j.entry.chunk_size.count(j.entry.size)).collect();
    let mut sched = Scheduler::new(queue, chunk_counts, fetcher.settings.requests_per_peer);
    run.report(&opts, 0);
    for job in &mut jobs {
        if job.missing == 0 && job.file.is_some() {
            write::finish_file(fetcher, job).await?;
        }
    }
    run.download(&opts, &mut jobs, &mut sched).await?;

    // 6. Finish: sync what is left, copy repeated files, record the dataset, provide it.
    let mut all_complete = true;
    for job in &mut jobs {
        if job.file.is_some() && job.missing == 0 {
            write::finish_file(fetcher, job).await?;
        } else if job.file.is_some() {
            // A partial fetch (`only`): keep what arrived, durable and marked.
            write::sync_and_mark(fetcher, job).await?;
            all_complete = false;
        }
    }
    if all_complete {
        write::copy_duplicates(fetcher, &jobs).await?;
        plan::record_local(&store, id, &root, true)?;
        fetcher.net.send(Command::Provide { key: id }).await?;
    }
    let bad_peers = sched.bad_peers().map(ToString::to_string).collect();
    Ok(FetchReport {
        manifest: id,
        name: manifest.name(),
        root,
        files: jobs.len(),
        total_bytes: total,
        downloaded_bytes: run.done - present,
        per_peer: run.per_peer,
        bad_peers,
    })
}

/// The download phase's own state: what arrived, from whom, and whether the dataset is
/// provided yet.
struct Download<'a> {
    fetcher: &'a Arc<Fetcher>,
    id: ContentId,
    only: Option<ChunkRange>,
    total: u64,
    /// Bytes present and verified.
    done: u64,
    per_peer: BTreeMap<String, u64>,
    provided: bool,
}

impl Download<'_> {
    /// Reports progress to the caller's callback.
    fn report(&self, opts: &FetchOptions, peers: usize) {
        if let Some(p) = &opts.progress {
            p(FetchProgress { done: self.done, total: self.total, peers });
        }
    }

    /// Requests what the scheduler assigns, feeds it the outcomes, writes and syncs what
    /// arrives, and looks for providers: when nobody can be asked, and every
    /// [`DISCOVERY_REFRESH`] in the background while chunks flow.
    async fn download(
        &mut self,
        opts: &FetchOptions,
        jobs: &mut [FileJob],
        sched: &mut Scheduler,
    ) -> Result<(), FetchError> {
        let (fetcher, id) = (self.fetcher, self.id);
        let mut inflight = FuturesUnordered::new();
        // Outstanding `Watch`es: partial holders tell us as they gain chunks.
        let mut watches = FuturesUnordered::new();
        // The stall timeout runs from the last chunk written: peers that keep answering that
        // they hold nothing must not keep a fetch alive for ever.
        let mut last_progress = Instant::now();
        let mut discovery: Option<tokio::task::JoinHandle<Vec<PeerId>>> = None;
        let mut next_discovery = Instant::now();
        let result = loop {
            if !sched.has_queued() && inflight.is_empty() {
                break Ok(());
            }
            if last_progress.elapsed() > opts.timeout {
                if sched.saw_refusal() {
                    // Whoever holds it refused us; the others hold nothing.
                    break Err(FetchError::Forbidden { id });
                }
                let path = sched.queued().next().and_then(|u| jobs.get(u.file));
                let path = path.map(|j| j.entry.path.to_string()).unwrap_or_default();
                break Err(FetchError::Stalled { path, missing: sched.queued().len() });
            }
            // Assign work to every peer with a free slot.
            for a in sched.assign(Instant::now()) {
                let Some(job) = jobs.get(a.unit.file) else { continue };
                let target = WriteTarget { list: job.list.clone(), file: job.file.clone(), entry: job.entry.clone() };
                inflight.push(request_unit(fetcher.clone(), a.peer, a.unit, target, a.ask_have));
            }
            for w in sched.watches(Instant::now()) {
                let Some(job) = jobs.get(w.file) else { continue };
                watches.push(watch_peer(fetcher.clone(), w.peer, w.file, job.entry.clone(), w.known));
            }
            if inflight.is_empty() && watches.is_empty() {
                // Everyone who could serve is only backing off after `Busy`: wait for the first of
                // them rather than search the DHT again.
                if let Some(until) = sched.backoff_ends(Instant::now()) {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                // Nobody usable holds what is left: look for (more) providers, within the timeout.
                if sched.refused() {
                    break Err(FetchError::Forbidden { id });
                }
                let found = locate::discover(&fetcher.net, id, Duration::from_secs(5)).await;
                if !sched.rediscovered(found, Instant::now()) {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                continue;
            }
            // Providers found in the background join as they turn up (partial holders advertise
            // themselves from their first chunk on), without holding up the transfers.
            let finished = discovery.take_if(|d| d.is_finished());
            if let Some(task) = finished {
                // Finished: this await returns at once.
                if let Ok(found) = task.await {
                    sched.join(found, Instant::now());
                }
            }
            if discovery.is_none() && Instant::now() >= next_discovery {
                let net = fetcher.net.clone();
                discovery = Some(tokio::spawn(async move { locate::discover(&net, id, Duration::from_secs(5)).await }));
                next_discovery = Instant::now() + DISCOVERY_REFRESH;
            }
            // Wake for the next discovery round (never sooner than 200 ms: one may still be running).
            let mut wake = next_discovery.max(Instant::now() + Duration::from_millis(200));
            if let Some(until) = sched.backoff_ends(Instant::now()) {
                // Nothing in flight, watches waiting: a peer backing off may be free sooner.
                wake = wake.min(until);
            }
            let next = tokio::select! {
                next = inflight.next(), if !inflight.is_empty() => next,
                Some((peer, file, answer)) = watches.next(), if !watches.is_empty() => {
                    sched.watched(peer, file, answer, Instant::now());
                    continue;
                }
                () = tokio::time::sleep_until(wake) => continue,
            };
            let Some((peer, unit, outcome)) = next else { continue };
            let progressed = matches!(outcome, Outcome::Written(..));
            if let Err(e) = self.answered(opts, jobs, sched, peer, unit, outcome).await {
                break Err(e);
            }
            if progressed {
                last_progress = Instant::now();
            }
        };
        if let Some(d) = discovery {
            d.abort();
        }
        result
    }

    /// One request came back: logs it, updates the scheduler, and for written chunks counts
    /// them, offers them, provides the dataset after the first, and syncs or finishes the file.
    async fn answered(
        &mut self,
        opts: &FetchOptions,
        jobs: &mut [FileJob],
        sched: &mut Scheduler,
        peer: PeerId,
        unit: Unit,
        outcome: Outcome,
    ) -> Result<(), FetchError> {
        let fetcher = self.fetcher;
        let path = jobs.get(unit.file).map(|j| j.entry.path.to_string()).unwrap_or_default();
        let written = match &outcome {
            Outcome::Misfit(reason) => {
                tracing::info!(%peer, file = %path, "not asking this peer for the file: {reason}");
                None
            }
            Outcome::Corrupt(_) => {
                tracing::warn!(%peer, file = %path, "peer sent a chunk that does not verify; dropping it");
                fetcher.stats.chunks_rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
            Outcome::Failed(reason) => {
                tracing::debug!(%peer, "request failed: {reason}");
                None
            }
            Outcome::Written(len, _) => Some(*len),
            Outcome::Forbidden | Outcome::NotHeld(_) | Outcome::Busy => None,
        };
        let jitter = match outcome {
            Outcome::Busy => rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..=1.0),
            _ => 1.0,
        };
        sched.complete(peer, unit, outcome, Instant::now(), jitter);
        let (Some(len), Some(job)) = (written, jobs.get_mut(unit.file)) else { return Ok(()) };
        fetcher.stats.fetched(&peer.to_string(), len, u64::from(unit.count));
        *self.per_peer.entry(peer.to_string()).or_default() += len;
        self.done += len;
        if job.file.is_some() {
            // Offered to peers at once; made durable (and marked) by the next sync.
            fetcher.store.note_written(&job.entry.id, unit.chunks());
        }
        if !self.provided && self.only.is_none() {
            // Findable as a (partial) source from the first chunk on, not only once
            // complete: in a flash crowd nobody completes early.
            self.provided = true;
            fetcher.net.send(Command::Provide { key: self.id }).await?;
        }
        job.missing -= unit.count as usize;
        job.unsynced.extend(unit.chunks());
        job.unsynced_bytes += len;
        if job.missing == 0 {
            write::finish_file(fetcher, job).await?;
        } else if job.unsynced_bytes >= write::sync_every(job.entry.size) {
            write::start_sync(fetcher, job).await?;
        }
        self.report(opts, sched.peer_count());
        Ok(())
    }
}
