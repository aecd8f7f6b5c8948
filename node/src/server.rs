//! Answers other peers' transfer requests from the store and from ordinary files on disk, and
//! `Serving`, the part of the node that does it: what answering needs, and the one admission
//! path every transport (libp2p requests in `events.rs`, the bulk channel's server) goes through.
//!
//! Every chunk is verified against its chunk list right before it is sent, so a file edited
//! after it was published in place (or damaged on disk) is never served as if it were whole.

use std::sync::Arc;

use libp2p::PeerId;
use lien_protocol::wire::{ErrorCode, Request, Response, MAX_CATALOG_PAGE, MAX_CHUNKS_PAYLOAD};
use lien_protocol::{ChunkSize, ContentId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::audit::AuditLog;
use crate::bulk::slots::{UploadSlot, UploadSlots};
use crate::bulk::BulkServer;
use crate::chunks::{bit, chunk_list_key, load_chunk_list, mtime_ns, read_at};
use crate::network::TransferResponse;
use crate::seeding::SeedLedger;
use crate::stats::Stats;
use crate::store::Store;
use crate::tasks::Tasks;
use crate::trust::SharedTrust;
use crate::watch::{WatchSlot, WatchSlots};

/// Inbound requests answered at once (libp2p and the bulk channel together); more get `Busy`.
pub(crate) const MAX_INBOUND_IN_FLIGHT: usize = 64;

/// The serving part of a node: everything answering other peers' requests uses, whichever
/// transport brought them. Built once by `Node::start`, shared behind an `Arc`.
pub(crate) struct Serving {
    /// Where manifests, lists, file records and marks are read.
    store: Store,
    /// Counters of what was served.
    pub(crate) stats: Arc<Stats>,
    /// The log every chunk range served goes into before it is sent.
    audit: Arc<AuditLog>,
    /// Who may read restricted files, which trust records are passed on.
    trust: SharedTrust,
    /// What this node handed out of the files it seeds (super-seeding, `seeding.rs`).
    seeding: SeedLedger,
    /// Upload slots, as BitTorrent's unchoke slots: beyond them chunk requests (on libp2p or the
    /// bulk channel) get `Busy`, so fetchers spread over other holders instead of all queueing
    /// at the publisher.
    uploads: Arc<UploadSlots>,
    /// Inbound requests being answered; beyond [`MAX_INBOUND_IN_FLIGHT`] requests get `Busy`.
    pub(crate) inbound: Arc<Semaphore>,
    /// This node's bulk channel listener, when it has one.
    pub(crate) bulk: Option<Arc<BulkServer>>,
    /// Adversary mode (simulations and tests only): corrupt every chunk sent.
    corrupt: bool,
    /// Where answers are computed (the blocking pool, tracked so shutdown waits for them).
    pub(crate) tasks: Tasks,
    /// `Watch` requests waiting for chunks (pushed availability), bounded apart (`watch.rs`).
    watches: Arc<WatchSlots>,
}

/// What an admitted request holds until its answer is written: an in-flight permit and, for
/// chunks, an upload slot. Dropping it gives both back.
#[derive(Debug)]
#[allow(dead_code)] // held for their drop, never read
pub(crate) enum Admitted {
    /// An ordinary request: an in-flight permit and, for chunks, an upload slot.
    Request(OwnedSemaphorePermit, Option<UploadSlot>),
    /// A `Watch` waiting idle: a watch slot only.
    Watch(WatchSlot),
}

/// An answer on its way to the transport that asked.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Known at once (`Busy`, a bad request): holds nothing.
    Ready(TransferResponse),
    /// Being computed off the async threads, holding its admission until written.
    Pending(JoinHandle<TransferResponse>, Admitted),
    /// A chunk request: an upload slot (at once, or after waiting in the queue), then the answer
    /// computed; holds its permit, and its slot once it has one.
    Queued(JoinHandle<(TransferResponse, Option<UploadSlot>)>, OwnedSemaphorePermit),
}

impl Answer {
    /// Waits for the response. Returns it with the admission it holds: drop that once the
    /// response is written.
    pub(crate) async fn response(self) -> (TransferResponse, Option<Admitted>) {
        match self {
            Answer::Ready(response) => (response, None),
            Answer::Pending(handle, admitted) => {
                (handle.await.unwrap_or_else(|_| err(ErrorCode::Internal, "internal error")), Some(admitted))
            }
            Answer::Queued(handle, permit) => match handle.await {
                Ok((response, slot)) => (response, Some(Admitted::Request(permit, slot))),
                Err(_) => (err(ErrorCode::Internal, "internal error"), None),
            },
        }
    }
}

/// The config values serving reads, taken from the node's config once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServingSettings {
    /// Chunk requests served at once (`max_concurrent_uploads`).
    pub(crate) uploads: usize,
    /// Adversary mode (`adversary_corrupt_chunks`, set from code only).
    pub(crate) corrupt: bool,
}

impl ServingSettings {
    /// The serving settings of `config`.
    pub(crate) fn of(config: &crate::config::NodeConfig) -> ServingSettings {
        ServingSettings { uploads: config.max_concurrent_uploads, corrupt: config.adversary_corrupt_chunks }
    }
}

impl Serving {
    /// Serving over the node's `store`, `stats`, `audit` log and `trust`, answering under
    /// `tasks`, with the bulk channel's listener `bulk` if there is one.
    pub(crate) fn new(
        store: Store,
        stats: Arc<Stats>,
        audit: Arc<AuditLog>,
        trust: SharedTrust,
        tasks: Tasks,
        bulk: Option<Arc<BulkServer>>,
        settings: ServingSettings,
    ) -> Serving {
        Serving {
            store,
            stats,
            audit,
            trust,
            seeding: SeedLedger::default(),
            uploads: UploadSlots::new(settings.uploads),
            inbound: Arc::new(Semaphore::new(MAX_INBOUND_IN_FLIGHT)),
            bulk,
            corrupt: settings.corrupt,
            tasks,
            watches: Arc::default(),
        }
    }

    /// The one admission path of every transport: admits `request` from `peer` and starts
    /// answering it off the async threads. Every request but a `Watch` takes an inbound
    /// in-flight permit (else `Busy` at once); a chunk request also a fair upload slot, waiting
    /// for one in the short queue when all are taken (`slots.rs`; `Busy` if the queue is full or
    /// none frees in time). A `Watch` takes a watch slot instead.
    pub(crate) fn serve(self: &Arc<Self>, peer: PeerId, request: Request) -> Answer {
        if let Request::Watch { file, known, wait_ms } = request {
            return self.watch(peer, file, known, wait_ms);
        }
        let Ok(permit) = self.inbound.clone().try_acquire_owned() else {
            return Answer::Ready(err(ErrorCode::Busy, "busy"));
        };
        let serving = self.clone();
        if !matches!(request, Request::Chunks { .. }) {
            let handle = self.tasks.spawn_blocking(move || serving.answer(&peer, request));
            return Answer::Pending(handle, Admitted::Request(permit, None));
        }
        let handle = self.tasks.spawn_to_end(async move {
            let Some(slot) = serving.uploads.acquire_queued(peer).await else {
                return (err(ErrorCode::Busy, "busy"), None);
            };
            let answering = serving.clone();
            let response = serving
                .tasks
                .spawn_blocking(move || answering.answer(&peer, request))
                .await
                .unwrap_or_else(|_| err(ErrorCode::Internal, "internal error"));
            (response, Some(slot))
        });
        Answer::Queued(handle, permit)
    }

    /// Computes the answer to an admitted `request` (blocking).
    fn answer(&self, peer: &PeerId, request: Request) -> TransferResponse {
        answer(self, peer, request)
    }
}

impl Serving {
    /// A `Watch` (a long poll, `watch.rs`): it waits idle, so it takes a watch slot, not an
    /// inbound permit or an upload slot; it ends early when the node stops.
    fn watch(self: &Arc<Self>, peer: PeerId, file: ContentId, known: u64, wait_ms: u32) -> Answer {
        let Some(slot) = self.watches.try_acquire(peer) else {
            return Answer::Ready(err(ErrorCode::Busy, "busy"));
        };
        let serving = self.clone();
        let gains = self.store.watch_gains(&file);
        let stop = self.tasks.stop_token().clone();
        let handle = self.tasks.spawn_to_end(async move {
            let have = move || serving.answer(&peer, Request::Have { file });
            tokio::select! {
                response = crate::watch::answer_watch(have, gains, known, wait_ms) => response,
                () = stop.cancelled() => err(ErrorCode::Busy, "the node is stopping"),
            }
        });
        Answer::Pending(handle, Admitted::Watch(slot))
    }
}

fn err(code: ErrorCode, message: impl Into<String>) -> TransferResponse {
    TransferResponse::plain(Response::error(code, message))
}

/// Computes the answer to `request` from `peer` (blocking: run it off the async threads).
/// `seeding` rations what a seed of a file hands out while several peers fetch it
/// ([`crate::seeding`]).
fn answer(serving: &Serving, peer: &PeerId, request: Request) -> TransferResponse {
    let Serving { store, stats, audit, trust, seeding, corrupt, .. } = serving;
    let file = match &request {
        Request::ChunkList { file }
        | Request::Have { file }
        | Request::Watch { file, .. }
        | Request::Chunks { file, .. } => Some(*file),
        _ => None,
    };
    if let Some(file) = file {
        match may_read(store, trust, peer, &file) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(%peer, file = %file.short(), "refused a restricted file to an unauthorised node");
                return err(ErrorCode::Forbidden, "this node is not authorised to read this dataset");
            }
            Err(e) => {
                tracing::warn!(%peer, "failed to check access: {e}");
                return err(ErrorCode::Internal, "internal error");
            }
        }
    }
    match answer_inner(store, stats, audit, trust, seeding, peer, request) {
        Ok(mut r) => {
            if *corrupt {
                // Adversary mode (simulations and tests only): flip a bit of every chunk sent.
                if let Some(b) = r.payload.first_mut() {
                    *b ^= 1;
                }
            }
            r
        }
        Err(e) => {
            tracing::warn!(%peer, "failed to answer a request: {e}");
            err(ErrorCode::Internal, "internal error")
        }
    }
}

/// Whether `peer` may read `file`: public files yes; restricted ones only if the peer's node key
/// is delegated (through a trusted root) to one of the organisations allowed to read it.
///
/// The readers are the file's own (merged over every manifest that listed it, see
/// [`crate::store::Readers`]), not those of the manifest a fetcher is after: requests name only
/// the file, and anyone can sign a public manifest that names a restricted file's id.
fn may_read(
    store: &Store,
    trust: &SharedTrust,
    peer: &PeerId,
    file: &lien_protocol::ContentId,
) -> Result<bool, Box<dyn std::error::Error>> {
    let Some(rec) = store.file(file)? else { return Ok(true) };
    if !rec.readers.is_restricted() {
        return Ok(true);
    }
    let Some(key) = crate::trust::peer_key(peer) else { return Ok(false) };
    Ok(rec.readers.allows(&trust.organisations_of(&key)))
}

fn answer_inner(
    store: &Store,
    stats: &Stats,
    audit: &AuditLog,
    trust: &SharedTrust,
    seeding: &SeedLedger,
    peer: &PeerId,
    request: Request,
) -> Result<TransferResponse, Box<dyn std::error::Error>> {
    Ok(match request {
        // Tickets are the node's business (it owns the bulk listener); never answered here.
        Request::OpenBulk { .. } => err(ErrorCode::NotFound, "this node has no bulk channel"),
        Request::Manifest { id } => match store.manifest(&id)? {
            Some(m) => TransferResponse::plain(Response::Manifest { bytes: m.bytes().to_vec() }),
            None => err(ErrorCode::NotFound, format!("no manifest {id}")),
        },
        Request::FileList { id } => match store.blob(&id)? {
            Some(bytes) => TransferResponse::plain(Response::FileList { bytes }),
            None => err(ErrorCode::NotFound, format!("no file list {id}")),
        },
        Request::ChunkList { file } => match store.blob(&chunk_list_key(&file))? {
            Some(bytes) => TransferResponse::plain(Response::ChunkList { bytes }),
            None => err(ErrorCode::NotFound, format!("no chunk list for {file}")),
        },
        // A `Watch` waits in `watch.rs`; here (never reached from the network) it is a `Have`.
        Request::Have { file } | Request::Watch { file, .. } => match (store.file(&file)?, store.have(&file)?) {
            (Some(rec), Some(bitmap)) => {
                let count = ChunkSize::new(rec.chunk_size)?.count(rec.size);
                let bitmap = if rec.complete { seeding.advertise(*peer, &file, count, bitmap) } else { bitmap };
                TransferResponse::plain(Response::Have { count, bitmap })
            }
            _ => err(ErrorCode::NotFound, format!("no file {file}")),
        },
        Request::Chunks { file, first, count } => {
            let Some(rec) = store.file(&file)? else {
                return Ok(err(ErrorCode::NotFound, format!("no file {file}")));
            };
            let chunk_size = ChunkSize::new(rec.chunk_size)?;
            let total = chunk_size.count(rec.size);
            let end = first.saturating_add(u64::from(count));
            if end > total || u64::from(count) * chunk_size.bytes() > MAX_CHUNKS_PAYLOAD {
                return Ok(err(ErrorCode::BadRequest, "chunk range out of bounds or too large"));
            }
            if rec.complete && !seeding.admit(*peer, &file, total, first, count) {
                // Super-seeding: others got these chunks from us already; ask them (or ask
                // again: a second request is served).
                return Ok(err(ErrorCode::NotFound, "chunks handed out already; ask other holders first"));
            }
            if !rec.complete {
                let bitmap = store.have(&file)?.unwrap_or_default();
                if !(first..end).all(|i| bit(&bitmap, i)) {
                    return Ok(err(ErrorCode::NotFound, "chunks not held"));
                }
            }
            if rec.in_place {
                let meta = std::fs::metadata(&rec.path)?;
                if meta.len() != rec.size || Some(mtime_ns(&rec.path)?) != rec.mtime_ns {
                    tracing::warn!(path = %rec.path.display(), "published file changed on disk; not serving it");
                    return Ok(err(ErrorCode::NotFound, "file changed at its source"));
                }
            }
            let list = load_chunk_list(store, &rec)?;
            let (offset, _) = chunk_size.range(rec.size, first);
            let (last_off, last_len) = chunk_size.range(rec.size, end - 1);
            let payload = read_at(&rec.path, offset, last_off + last_len - offset)?;
            for i in first..end {
                let (o, l) = chunk_size.range(rec.size, i);
                let start = (o - offset) as usize;
                if let Err(e) = list.verify_chunk(i, &payload[start..start + l as usize]) {
                    tracing::error!(path = %rec.path.display(), "stored data does not verify, not serving it: {e}");
                    return Ok(err(ErrorCode::NotFound, "stored data failed verification"));
                }
            }
            stats.served(&peer.to_string(), payload.len() as u64, u64::from(count));
            audit.record(&peer.to_string(), file, first, count, payload.len() as u64)?;
            let len = payload.len() as u64;
            TransferResponse { header: Response::Chunks { first, count, len }, payload }
        }
        Request::TrustRecords { after, limit } => {
            let (records, next, more) = store.trust_page(after, limit.min(MAX_CATALOG_PAGE))?;
            // Only records whose issuer this node trusts to sign them (issue 12: a stranger's
            // records, or those of a key revoked since, are not passed on).
            TransferResponse::plain(Response::TrustRecords {
                records: records
                    .into_iter()
                    .filter(|r| trust.serves_bytes(r))
                    .map(serde_bytes::ByteBuf::from)
                    .collect(),
                next,
                more,
            })
        }
        Request::Catalog { after, limit } => {
            let (manifests, next, more) = store.catalog_page(after, limit.min(MAX_CATALOG_PAGE))?;
            TransferResponse::plain(Response::Catalog {
                manifests: manifests.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                next,
                more,
            })
        }
    })
}
