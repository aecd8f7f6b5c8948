//! The catalog part of a node: which manifests it keeps (those of publishers it trusts, under
//! each publisher's cap), which new datasets it mirrors, the search index, and the queue of
//! peers to catch up with (`catch_up.rs` pulls their trust records and catalogs through it).
//! Gossip (`events.rs`) and catch-up both keep manifests here; mirroring is handed to the
//! fetcher through a narrow hook, so this part knows nothing of fetching.

use std::sync::{Arc, RwLockReadGuard};

use lien_protocol::trust::Admission;
use lien_protocol::{ContentId, Manifest};

use super::index::CatalogIndex;
use super::{Catalog, CatalogError};
use crate::catch_up::CatchUpQueue;
use crate::config::MirrorPolicy;
use crate::network::NetworkHandle;
use crate::store::Store;
use crate::tasks::Tasks;
use crate::trust::{SharedTrust, TrustStoreError};

/// Starts mirroring (fetching and pinning) a dataset, in the background.
pub(crate) type MirrorHook = Arc<dyn Fn(ContentId) + Send + Sync>;

/// The catalog part of a node. Built once by `Node::start`, shared behind an `Arc`.
pub(crate) struct CatalogKeeper {
    /// Where manifests and trust records are kept.
    store: Store,
    /// Which publishers this node trusts, and which trust records it admits.
    trust: SharedTrust,
    /// Catch-up's requests to peers.
    pub(crate) net: NetworkHandle,
    /// Where catch-up runs.
    pub(crate) tasks: Tasks,
    /// Peers waiting to be caught up with (trust records and catalog), a few per window.
    pub(crate) catch_up: CatchUpQueue,
    /// Most manifests kept per publisher key.
    cap: u64,
    /// Which new datasets are mirrored.
    mirror: MirrorPolicy,
    /// How a dataset is mirrored.
    start_mirror: MirrorHook,
    /// The in-memory index every search answers from (filled on the first search).
    index: Catalog,
}

impl CatalogKeeper {
    /// A catalog over `store` and `trust` (catch-up over `net`, under `tasks`) that keeps at
    /// most `cap` manifests per publisher and mirrors what `mirror` covers through
    /// `start_mirror`.
    pub(crate) fn new(
        store: Store,
        trust: SharedTrust,
        net: NetworkHandle,
        tasks: Tasks,
        cap: u64,
        mirror: MirrorPolicy,
        start_mirror: MirrorHook,
    ) -> CatalogKeeper {
        CatalogKeeper {
            store,
            trust,
            net,
            tasks,
            catch_up: CatchUpQueue::default(),
            cap,
            mirror,
            start_mirror,
            index: Catalog::default(),
        }
    }

    /// Keeps a verified manifest in the catalog if this node trusts its publisher and the
    /// publisher is under its cap; returns true if it was new (blocking: call off the async
    /// threads).
    pub(crate) fn keep_manifest(&self, m: &Manifest) -> bool {
        if let Err(e) = self.trust.check_manifest(m) {
            tracing::debug!(manifest = %m.id().short(), "not keeping an untrusted manifest: {e}");
            return false;
        }
        match self.store.put_manifest_capped(m, self.cap) {
            Ok(Some(new)) => new,
            Ok(None) => {
                tracing::warn!(publisher = %m.body().publisher.short(), "publisher is at its catalog cap; manifest dropped");
                false
            }
            Err(e) => {
                tracing::warn!("cannot store manifest: {e}");
                false
            }
        }
    }

    /// Fetches and pins a new dataset when the mirror policy asks for it.
    pub(crate) fn maybe_mirror(&self, m: &Manifest) {
        if self.mirror.covers(m.body()) {
            (self.start_mirror)(m.id());
        }
    }

    /// Verifies a trust record heard from the network and keeps it (stored when its issuer is
    /// trusted here, held in memory otherwise). Blocking.
    pub(crate) fn keep_trust_record(&self, bytes: &[u8]) -> Result<Admission, TrustStoreError> {
        self.trust.accept(&self.store, bytes)
    }

    /// Brings the index up to date with the store and returns it for reading. Blocking.
    pub(crate) fn index(&self) -> Result<RwLockReadGuard<'_, CatalogIndex>, CatalogError> {
        self.index.refresh(&self.store)?;
        self.index.read()
    }
}
