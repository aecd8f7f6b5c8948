//! The catalog as users search it: [`index::CatalogIndex`] (ranked, faceted, newest version per
//! name) kept in memory and brought up to date from the store's catalog sequence before each
//! query ([`Catalog::refresh`]). The node's one search engine: `Node::search`, the HTTP API's
//! `/v1/search` and the portal all answer from it. `keeper.rs` is the node's catalog part:
//! what is kept, mirrored and caught up with, and the index.

pub mod index;
pub(crate) mod keeper;

use std::sync::{RwLock, RwLockReadGuard};

use lien_protocol::Manifest;

use crate::local::files_of;
use crate::store::{Store, StoreError};
use index::CatalogIndex;

/// Manifests read from the store per refresh step.
const REFRESH_PAGE: u32 = 1000;

/// Why the catalog index could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A thread panicked while holding the index.
    #[error("the catalog index lock is poisoned")]
    Poisoned,
}

/// The in-memory catalog index behind a lock, filled lazily from the store.
#[derive(Debug, Default)]
pub struct Catalog {
    index: RwLock<CatalogIndex>,
}

impl Catalog {
    /// Takes every manifest heard since the last refresh into the index (blocking).
    pub fn refresh(&self, store: &Store) -> Result<(), CatalogError> {
        let after = self.read()?.after;
        let (first, _, _) = store.catalog_page(after, 1)?;
        if first.is_empty() {
            return Ok(());
        }
        let mut index = self.index.write().map_err(|_| CatalogError::Poisoned)?;
        loop {
            let (page, cursor, more) = store.catalog_page(index.after, REFRESH_PAGE)?;
            // Catalog sequences are consecutive from 1, so the n-th manifest after `after` has
            // sequence `after + n`.
            let mut seq = index.after;
            for bytes in &page {
                seq += 1;
                let Ok(m) = Manifest::decode(bytes) else {
                    tracing::warn!("catalog: a stored manifest does not decode; skipped");
                    continue;
                };
                let files = files_of(store, &m)?;
                index.add(&m, seq, files.as_deref());
            }
            index.after = cursor;
            if !more || page.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// The index as it is, for reading (call [`Catalog::refresh`] first to see the newest).
    pub fn read(&self) -> Result<RwLockReadGuard<'_, CatalogIndex>, CatalogError> {
        self.index.read().map_err(|_| CatalogError::Poisoned)
    }
}
