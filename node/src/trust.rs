//! The node's trust state: the operator's policy (config plus keys added with `lien trust add`)
//! and every valid delegation and revocation heard, shared by the gossip validators, the catalog
//! sync and the fetcher.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use lien_protocol::trust::{TrustError, TrustPolicy, TrustRecord, TrustState, Trusted};
use lien_protocol::{Manifest, PublisherKey};

use crate::config::NodeConfig;
use crate::store::{Store, StoreError, TrustKind};

/// Records read per page when loading the trust state from the store.
const LOAD_PAGE: u32 = 1024;

/// Why trust data could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record or key is invalid.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// A key in the configuration is invalid.
    #[error("invalid key in config: {0}")]
    Config(String),
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The trust state behind a lock, cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedTrust(Arc<RwLock<TrustState>>);

impl SharedTrust {
    /// Builds the state from the config, the operator's keys and the records in the store.
    pub fn load(config: &NodeConfig, store: &Store) -> Result<Self, TrustStoreError> {
        let shared = Self(Arc::new(RwLock::new(TrustState::new(policy(config, store)?))));
        let mut after = 0;
        loop {
            let (records, next, more) = store.trust_page(after, LOAD_PAGE)?;
            for bytes in records {
                match TrustRecord::decode(&bytes) {
                    Ok(r) => {
                        shared.with_mut(|s| s.add(r));
                    }
                    Err(e) => tracing::warn!("stored trust record no longer decodes: {e}"),
                }
            }
            if !more || next <= after {
                break;
            }
            after = next;
        }
        Ok(shared)
    }

    /// Re-reads the policy (after the operator added or removed a key), keeping the records.
    pub fn reload_policy(&self, config: &NodeConfig, store: &Store) -> Result<(), TrustStoreError> {
        let policy = policy(config, store)?;
        self.with_mut(|s| {
            let mut fresh = TrustState::new(policy);
            for r in s.records() {
                fresh.add(r);
            }
            *s = fresh;
        });
        Ok(())
    }

    fn with_mut<T>(&self, f: impl FnOnce(&mut TrustState) -> T) -> T {
        match self.0.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&TrustState) -> T) -> T {
        match self.0.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Whether the manifest's publisher may publish its name now.
    pub fn check_manifest(&self, m: &Manifest) -> Result<Trusted, TrustError> {
        let b = m.body();
        self.with(|s| s.check(&b.publisher, &b.slug, now_secs()))
    }

    /// Whether `key` is revoked.
    pub fn is_revoked(&self, key: &PublisherKey) -> bool {
        self.with(|s| s.is_revoked(key))
    }

    /// Decodes, verifies, remembers and stores a record; returns true if it was new.
    pub fn accept(&self, store: &Store, bytes: &[u8]) -> Result<bool, TrustStoreError> {
        let record = TrustRecord::decode(bytes)?;
        let id = record.id()?;
        let new_here = self.with_mut(|s| s.add(record));
        let new_in_store = store.put_trust_record(&id, bytes)?;
        Ok(new_here || new_in_store)
    }

    /// The organisations `key` is validly delegated to now.
    pub fn organisations_of(&self, key: &PublisherKey) -> Vec<String> {
        self.with(|s| s.organisations_of(key, now_secs()))
    }

    /// The current policy.
    pub fn policy(&self) -> TrustPolicy {
        self.with(|s| s.policy().clone())
    }
}

fn policy(config: &NodeConfig, store: &Store) -> Result<TrustPolicy, TrustStoreError> {
    let parse = |k: &String| k.parse::<PublisherKey>().map_err(|e| TrustStoreError::Config(format!("{k}: {e}")));
    let mut p = TrustPolicy {
        roots: config.trust_roots.iter().map(parse).collect::<Result<_, _>>()?,
        publishers: config.trusted_publishers.iter().map(parse).collect::<Result<_, _>>()?,
        max_depth: config.trust_max_depth,
    };
    for (key, kind) in store.trusted_keys()? {
        match kind {
            TrustKind::Root => p.roots.insert(key),
            TrustKind::Publisher => p.publishers.insert(key),
        };
    }
    Ok(p)
}

/// The ed25519 key behind a peer id, in publisher-key form (node keys are delegated like
/// publisher keys to give a node read access to restricted datasets).
pub fn peer_key(peer: &libp2p::PeerId) -> Option<PublisherKey> {
    let mh: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    let public = libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    let ed = public.try_into_ed25519().ok()?;
    PublisherKey::from_bytes(&ed.to_bytes()).ok()
}
