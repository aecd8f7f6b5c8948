//! Trust data in the store: delegations and revocations heard (in arrival order, for late
//! joiners), and the roots and publisher keys the operator trusts.

use lien_protocol::{ContentId, PublisherKey};
use redb::ReadableTable;

use super::tables::{TRUST_IDS, TRUST_KEYS, TRUST_RECORDS};
use super::{DbResult, Store, StoreError};

/// How the operator trusts a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustKind {
    /// A root whose delegations are accepted.
    Root,
    /// A publisher accepted directly.
    Publisher,
}

impl Store {
    /// Stores a verified trust record; returns true if it was new.
    pub fn put_trust_record(&self, id: &ContentId, bytes: &[u8]) -> Result<bool, StoreError> {
        let txn = self.write()?;
        {
            let mut ids = txn.open_table(TRUST_IDS).db()?;
            if ids.get(id.as_bytes()).db()?.is_some() {
                return Ok(false);
            }
            let mut records = txn.open_table(TRUST_RECORDS).db()?;
            let next = records.last().db()?.map_or(0, |(k, _)| k.value()) + 1;
            records.insert(next, bytes).db()?;
            ids.insert(id.as_bytes(), next).db()?;
        }
        txn.commit().db()?;
        Ok(true)
    }

    /// Trust records with sequence > `after`, at most `limit`: (bytes, next cursor, more follow).
    pub fn trust_page(&self, after: u64, limit: u32) -> Result<(Vec<Vec<u8>>, u64, bool), StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let txn = self.read()?;
        let records = txn.open_table(TRUST_RECORDS).db()?;
        let (mut out, mut cursor, mut more) = (Vec::new(), after, false);
        for entry in records.range::<u64>((Excluded(after), Unbounded)).db()? {
            let (seq, bytes) = entry.db()?;
            if out.len() >= limit as usize {
                more = true;
                break;
            }
            out.push(bytes.value().to_vec());
            cursor = seq.value();
        }
        Ok((out, cursor, more))
    }

    /// Records `key` as trusted by the operator (replacing its previous kind).
    pub fn set_trusted_key(&self, key: &PublisherKey, kind: TrustKind) -> Result<(), StoreError> {
        let txn = self.write()?;
        let code = match kind {
            TrustKind::Root => 0,
            TrustKind::Publisher => 1,
        };
        txn.open_table(TRUST_KEYS).db()?.insert(key.as_bytes(), code).db()?;
        txn.commit().db()
    }

    /// Forgets an operator-trusted key; returns true if it was there.
    pub fn remove_trusted_key(&self, key: &PublisherKey) -> Result<bool, StoreError> {
        let txn = self.write()?;
        let removed = txn.open_table(TRUST_KEYS).db()?.remove(key.as_bytes()).db()?.is_some();
        txn.commit().db()?;
        Ok(removed)
    }

    /// Every operator-trusted key.
    pub fn trusted_keys(&self) -> Result<Vec<(PublisherKey, TrustKind)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(TRUST_KEYS).db()?;
        let mut out = Vec::new();
        for entry in table.iter().db()? {
            let (k, v) = entry.db()?;
            let key = PublisherKey::from_bytes(k.value())
                .map_err(|e| StoreError::Corrupt { table: "trust-keys-v1", detail: e.to_string() })?;
            out.push((key, if v.value() == 0 { TrustKind::Root } else { TrustKind::Publisher }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lien_protocol::PublisherSecret;

    #[test]
    fn trust_records_and_keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let id = ContentId::of(b"r1");
        assert!(store.put_trust_record(&id, b"r1").unwrap());
        assert!(!store.put_trust_record(&id, b"r1").unwrap());
        store.put_trust_record(&ContentId::of(b"r2"), b"r2").unwrap();
        let (page, next, more) = store.trust_page(0, 1).unwrap();
        assert_eq!((page, next, more), (vec![b"r1".to_vec()], 1, true));
        let (page, _, more) = store.trust_page(1, 10).unwrap();
        assert_eq!((page, more), (vec![b"r2".to_vec()], false));
        let k = PublisherSecret::from_seed(&[1; 32]).public();
        store.set_trusted_key(&k, TrustKind::Root).unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert_eq!(store.trusted_keys().unwrap(), vec![(k, TrustKind::Root)]);
        assert!(store.remove_trusted_key(&k).unwrap());
        assert!(store.trusted_keys().unwrap().is_empty());
    }
}
