//! Every redb table of the node's store, in one place.
//!
//! Table names carry a version suffix (`-v1`): a change to a key or value layout gets a new name
//! and a migration, never a silent reinterpretation of old bytes. Ids are the 32 raw bytes of a
//! [`lien_protocol::ContentId`]; a *name key* is the publisher's 32 key bytes followed by the
//! slug's UTF-8 bytes. See `docs/storage.md` for the invariants each table keeps.

use redb::TableDefinition;

/// Raw bytes of a content id.
pub(crate) type Id<'a> = &'a [u8; 32];

/// `"schema"` → store layout version (u64); written once when the store is created.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta-v1");

/// A `manifests-v1` value: (catalog sequence, version, name key, canonical signed manifest bytes).
pub(crate) type ManifestRow<'a> = (u64, u64, &'a [u8], &'a [u8]);

/// manifest id → (catalog sequence, version, name key, canonical signed manifest bytes).
pub(crate) const MANIFESTS: TableDefinition<Id, ManifestRow> = TableDefinition::new("manifests-v1");

/// catalog sequence (u64, from 1, in the order manifests were first heard) → manifest id.
pub(crate) const CATALOG: TableDefinition<u64, Id> = TableDefinition::new("catalog-v1");

/// name key (publisher bytes ++ slug bytes) → (highest version heard, its manifest id).
pub(crate) const NAMES: TableDefinition<&[u8], (u64, Id)> = TableDefinition::new("names-v1");

/// (name key, version) → manifest id of that version (the first one heard, if several).
pub(crate) const VERSIONS: TableDefinition<(&[u8], u64), Id> = TableDefinition::new("versions-v1");

/// The word index stores kept until search moved to the in-memory catalog index: (lowercased
/// word, manifest id) → (). Only named to delete it.
pub(crate) const WORDS_RETIRED: TableDefinition<(&str, Id), ()> = TableDefinition::new("words-v1");

/// blob id → blob bytes (file-list blobs, chunk lists).
pub(crate) const BLOBS: TableDefinition<Id, &[u8]> = TableDefinition::new("blobs-v1");

/// file id → CBOR-encoded `FileRecord` of a file whose bytes this node holds, fully or partly.
pub(crate) const FILES: TableDefinition<Id, &[u8]> = TableDefinition::new("files-v1");

/// file id → bitmap of verified, durable chunks (bit i LSB-first = chunk i); partial files only.
pub(crate) const HAVE: TableDefinition<Id, &[u8]> = TableDefinition::new("have-v1");

/// manifest id → CBOR-encoded `LocalDataset` (a dataset published or fetched to this machine).
pub(crate) const LOCALS: TableDefinition<Id, &[u8]> = TableDefinition::new("locals-v1");

/// peer id text → CBOR-encoded peer row (last-seen unix seconds, seen serial, addresses).
pub(crate) const PEERS: TableDefinition<&str, &[u8]> = TableDefinition::new("peers-v1");

/// seen serial (u64, increasing with every sighting) → peer id text; newest sighting last.
pub(crate) const PEERS_SEEN: TableDefinition<u64, &str> = TableDefinition::new("peers-seen-v1");

/// trust-record sequence (u64, from 1, in the order first heard) → canonical trust-record bytes.
pub(crate) const TRUST_RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("trust-records-v1");

/// trust-record id → its sequence number (so a record is stored once).
pub(crate) const TRUST_IDS: TableDefinition<Id, u64> = TableDefinition::new("trust-ids-v1");

/// publisher key bytes → 0 (a trust root) or 1 (a directly trusted publisher), set by the operator.
pub(crate) const TRUST_KEYS: TableDefinition<Id, u8> = TableDefinition::new("trust-keys-v1");

/// publisher key bytes → how many manifests of that publisher the catalog holds (for the cap).
pub(crate) const PUBLISHER_COUNTS: TableDefinition<Id, u64> = TableDefinition::new("publisher-counts-v1");
