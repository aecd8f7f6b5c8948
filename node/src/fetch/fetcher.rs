//! The fetching part of a node: what a download uses (the store, the network handle, the bulk
//! channel's clients, the trust check, the counters and the few config values a fetch reads)
//! and the per-dataset locks that keep two fetches of one dataset from interleaving.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lien_protocol::ContentId;

use super::{FetchError, FetchOptions};
use crate::bulk::BulkClients;
use crate::config::NodeConfig;
use crate::network::NetworkHandle;
use crate::stats::Stats;
use crate::store::Store;
use crate::tasks::Tasks;
use crate::trust::SharedTrust;

/// The config values a fetch reads, taken from the node's config once.
#[derive(Debug, Clone)]
pub(crate) struct FetchSettings {
    /// Threads to hash whole files and local copies with.
    pub(super) hash_threads: usize,
    /// Requests in flight to one peer (`fetch_requests_per_peer`).
    pub(super) requests_per_peer: usize,
    /// Bytes of fetched and copied datasets this node may hold (0 = no limit).
    pub(super) storage_quota_bytes: u64,
    /// Where published (copied) datasets live: counted in the quota; mirrors go below it.
    pub(super) data_dir: PathBuf,
}

impl FetchSettings {
    /// The fetch settings of `config`.
    pub(crate) fn of(config: &NodeConfig) -> FetchSettings {
        FetchSettings {
            hash_threads: config.hash_threads(),
            requests_per_peer: config.fetch_requests_per_peer,
            storage_quota_bytes: config.storage_quota_bytes,
            data_dir: config.data_dir(),
        }
    }
}

/// The fetching part of a node. Built once by `Node::start`, shared behind an `Arc` by every
/// fetch, resumed fetch and mirror.
pub(crate) struct Fetcher {
    /// Where manifests, lists, file records and marks go.
    pub(super) store: Store,
    /// Provider lookups, requests and `Provide`.
    pub(super) net: NetworkHandle,
    /// Whether this node trusts a manifest's publisher.
    pub(super) trust: SharedTrust,
    /// Transfer counters.
    pub(super) stats: Arc<Stats>,
    /// The data path: bulk channels to peers, libp2p as the fallback.
    pub(super) bulk: BulkClients,
    /// The config values a fetch reads.
    pub(super) settings: FetchSettings,
    /// Where mirrors run.
    tasks: Tasks,
    /// One lock per dataset being fetched, so a resumed fetch and a new `get` never interleave.
    locks: Mutex<HashMap<ContentId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Fetcher {
    /// A fetcher over the node's `store`, `net`, `trust` and `stats`, with `bulk` as its data
    /// path, running mirrors under `tasks` and reading `settings`.
    pub(crate) fn new(
        store: Store,
        net: NetworkHandle,
        trust: SharedTrust,
        stats: Arc<Stats>,
        bulk: BulkClients,
        tasks: Tasks,
        settings: FetchSettings,
    ) -> Fetcher {
        Fetcher { store, net, trust, stats, bulk, settings, tasks, locks: Mutex::default() }
    }

    /// The lock that keeps fetches of dataset `id` from interleaving.
    pub(super) fn dataset_lock(&self, id: ContentId) -> Result<Arc<tokio::sync::Mutex<()>>, FetchError> {
        let mut locks = self.locks.lock().map_err(|_| FetchError::Task("fetch lock poisoned".into()))?;
        Ok(locks.entry(id).or_default().clone())
    }

    /// Drops the dataset's lock from the map when nobody else holds or waits for it, so a
    /// long-running daemon does not keep one entry per dataset it ever fetched.
    pub(super) fn release_dataset_lock(&self, id: ContentId, lock: Arc<tokio::sync::Mutex<()>>) {
        if let Ok(mut locks) = self.locks.lock() {
            drop(lock);
            // The map's own reference is the only one left: no fetch of this dataset runs or waits.
            if locks.get(&id).is_some_and(|l| Arc::strong_count(l) == 1) {
                locks.remove(&id);
            }
        }
    }

    /// Fetches dataset `id` into `DATA/mirror/<id>` and pins it, in a task of its own: what the
    /// catalog's mirror policy asks for.
    pub(crate) fn mirror(self: &Arc<Self>, id: ContentId) {
        let fetcher = self.clone();
        self.tasks.spawn(async move {
            let root = fetcher.settings.data_dir.join("mirror").join(id.to_string());
            tracing::info!(manifest = %id.short(), "mirroring a dataset by policy");
            match super::fetch(&fetcher, id, &root, FetchOptions::default()).await {
                Ok(_) => {
                    let store = fetcher.store.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Ok(Some(mut local)) = store.local(&id) {
                            local.pinned = true;
                            let _ = store.put_local(&local);
                        }
                    })
                    .await;
                }
                Err(e) => tracing::warn!(manifest = %id.short(), "mirroring failed: {e}"),
            }
        });
    }
}
