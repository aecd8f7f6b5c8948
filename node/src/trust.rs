//! The node's trust state: the operator's policy (config plus keys added with `lien trust add`)
//! and every valid delegation and revocation heard, shared by the gossip validators, the catalog
//! sync and the fetcher.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use lien_protocol::trust::{Admission, TrustError, TrustPolicy, TrustRecord, TrustState, Trusted};
use lien_protocol::{ContentId, Manifest, PublisherKey};

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
///
/// Checks take the read lock and answer from the trusted set computed in advance; the write lock
/// is taken to add a record (an incremental update) or when a validity window opened or closed
/// (a recomputation), never for a check otherwise.
#[derive(Debug, Clone)]
pub struct SharedTrust(Arc<RwLock<TrustState>>);

impl SharedTrust {
    /// Builds the state from the config, the operator's keys and the records in the store.
    /// Stored records whose issuer is not trusted (any more) are kept in the store but neither
    /// used nor served.
    pub fn load(config: &NodeConfig, store: &Store, own: PublisherKey) -> Result<Self, TrustStoreError> {
        let mut state = TrustState::new(TrustPolicy { own: Some(own), ..policy(config, store)? });
        let mut records = Vec::new();
        let mut after = 0;
        loop {
            let (page, next, more) = store.trust_page(after, LOAD_PAGE)?;
            for bytes in page {
                match TrustRecord::decode(&bytes) {
                    Ok(r) => records.push(r),
                    Err(e) => tracing::warn!("stored trust record no longer decodes: {e}"),
                }
            }
            if !more || next <= after {
                break;
            }
            after = next;
        }
        let held = records.len();
        let admitted = state.add_all(records, now_secs());
        state.drain_admitted();
        if admitted < held {
            tracing::info!("{} stored trust records are not used: their issuers are not trusted", held - admitted);
        }
        Ok(Self(Arc::new(RwLock::new(state))))
    }

    /// Re-reads the policy (after the operator added or removed a key), keeping the records;
    /// stores records the new policy admits.
    pub fn reload_policy(&self, config: &NodeConfig, store: &Store) -> Result<(), TrustStoreError> {
        let policy = policy(config, store)?;
        let admitted = self.with_mut(|s| {
            let policy = TrustPolicy { own: s.policy().own, ..policy };
            *s = s.with_policy(policy, now_secs());
            s.drain_admitted()
        });
        store_records(store, &admitted)
    }

    fn with_mut<T>(&self, f: impl FnOnce(&mut TrustState) -> T) -> T {
        match self.0.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Runs `f` on the state as it is (for what does not depend on the time).
    fn read<T>(&self, f: impl FnOnce(&TrustState) -> T) -> T {
        match self.0.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Runs `f` on a state whose trusted set holds for `now`.
    fn with<T>(&self, now: u64, f: impl FnOnce(&TrustState) -> T) -> T {
        if self.read(|s| s.is_stale(now)) {
            self.with_mut(|s| s.refresh(now));
        }
        self.read(f)
    }

    /// Whether the manifest's publisher may publish its name now.
    pub fn check_manifest(&self, m: &Manifest) -> Result<Trusted, TrustError> {
        let b = m.body();
        let now = now_secs();
        self.with(now, |s| s.check(&b.publisher, &b.slug, now))
    }

    /// Whether `key` is revoked.
    pub fn is_revoked(&self, key: &PublisherKey) -> bool {
        let now = now_secs();
        self.with(now, |s| s.is_revoked(key, now))
    }

    /// The gossip validator's question: is this record's issuer trusted now to sign it? Either
    /// way the record is added: kept (and later stored by [`Self::accept`]) when its issuer is
    /// within reach of a root, else held in memory only, in case the delegation that makes its
    /// issuer trusted arrives later. Only records whose issuer is trusted now are forwarded.
    pub fn admits_or_holds(&self, record: TrustRecord) -> bool {
        let now = now_secs();
        if self.with(now, |s| s.admits(&record, now)) {
            return true;
        }
        self.with_mut(|s| {
            let admission = s.add(record.clone(), now);
            // The set may have changed between the two locks.
            admission == Admission::Admitted && s.admits(&record, now)
        })
    }

    /// Decodes, verifies and adds a record; stores it (and any waiting record it made
    /// admissible) if its issuer is trusted. Returns what happened to it.
    pub fn accept(&self, store: &Store, bytes: &[u8]) -> Result<Admission, TrustStoreError> {
        let record = TrustRecord::decode(bytes)?;
        let id = record.id()?;
        let (admission, admitted) = self.with_mut(|s| {
            let a = s.add(record, now_secs());
            (a, s.drain_admitted())
        });
        store_records(store, &admitted)?;
        // Known here but maybe not yet in the store (held by the gossip validator first).
        let admission = match admission {
            Admission::Known if self.serves(&id) => {
                if store.put_trust_record(&id, bytes)? {
                    Admission::Admitted
                } else {
                    Admission::Known
                }
            }
            other => other,
        };
        Ok(admission)
    }

    /// Whether catch-up may serve these stored record bytes: admitted, and the issuer is
    /// still trusted to sign it.
    pub fn serves_bytes(&self, bytes: &[u8]) -> bool {
        self.serves(&ContentId::of(bytes))
    }

    fn serves(&self, id: &ContentId) -> bool {
        self.with(now_secs(), |s| s.serves(id))
    }

    /// The organisations `key` is validly delegated to now.
    pub fn organisations_of(&self, key: &PublisherKey) -> Vec<String> {
        let now = now_secs();
        self.with(now, |s| s.organisations_of(key, now))
    }

    /// Records held in memory until their issuer is trusted.
    pub fn waiting(&self) -> usize {
        self.read(|s| s.pending_len())
    }

    /// The current policy.
    pub fn policy(&self) -> TrustPolicy {
        self.read(|s| s.policy().clone())
    }
}

/// Who published a dataset, as a node can tell it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Organisation {
    /// Verified: a chain of delegations from a trusted root names it.
    Verified {
        /// The publisher's organisation, as its delegation names it.
        name: String,
        /// The organisations on the chain, publisher first, up to the root's delegation.
        chain: Vec<String>,
    },
    /// Only what the publisher wrote in the manifest's metadata (nobody vouches for it).
    Declared {
        /// The organisation as written.
        name: String,
    },
    /// Neither verified nor declared.
    Unknown,
}

impl Organisation {
    /// From a trust check's outcome and the manifest's self-declared organisation.
    pub fn of(trusted: Option<Trusted>, declared: &str) -> Organisation {
        match trusted {
            Some(Trusted::Delegated { organisations }) if !organisations.is_empty() => {
                Organisation::Verified { name: organisations[0].clone(), chain: organisations }
            }
            _ if !declared.trim().is_empty() => Organisation::Declared { name: declared.to_owned() },
            _ => Organisation::Unknown,
        }
    }

    /// One line for people: `NAME (verified: A <- B)`, `NAME (declared by the publisher)`.
    pub fn describe(&self) -> String {
        match self {
            Organisation::Verified { name, chain } => format!("{name} (verified: {})", chain.join(" <- ")),
            Organisation::Declared { name } => format!("{name} (declared by the publisher, not verified)"),
            Organisation::Unknown => String::new(),
        }
    }
}

/// Stores admitted records (idempotent: a record already stored is skipped by id).
fn store_records(store: &Store, records: &[TrustRecord]) -> Result<(), TrustStoreError> {
    for r in records {
        let bytes = r.encode()?;
        store.put_trust_record(&ContentId::of(&bytes), &bytes)?;
    }
    Ok(())
}

fn policy(config: &NodeConfig, store: &Store) -> Result<TrustPolicy, TrustStoreError> {
    let parse = |k: &String| k.parse::<PublisherKey>().map_err(|e| TrustStoreError::Config(format!("{k}: {e}")));
    let mut p = TrustPolicy {
        roots: config.trust_roots.iter().map(parse).collect::<Result<_, _>>()?,
        publishers: config.trusted_publishers.iter().map(parse).collect::<Result<_, _>>()?,
        max_depth: config.trust_max_depth,
        own: None,
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
