//! Name records: `publisher/slug → manifest id` at a version, signed by the publisher.
//!
//! They live in the DHT under [`name_key`] so a node that never heard the gossip can still
//! resolve a name. A node keeps the record with the highest version it has seen; a record with
//! a lower or equal version never replaces it, so replaying an old record cannot roll a name back.

use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError};
use crate::id::ContentId;
use crate::keys::{signing_message, PublisherKey, PublisherSecret, Signature};
use crate::slug::Slug;

/// Domain-separation tag of name-record signatures.
pub const NAME_DOMAIN: &str = "lien/name/v1";
/// Largest encoded name record.
pub const MAX_NAME_RECORD_LEN: usize = 1024;

/// Why a name record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a canonical encoding of a name record.
    #[error("name record encoding: {0}")]
    Encoding(#[from] CborError),
    /// The signature does not verify.
    #[error("name record signature does not verify")]
    BadSignature,
    /// Stored under the wrong key.
    #[error("name record is for another name")]
    WrongName,
}

/// The signed content of a name record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    /// The publisher.
    pub publisher: PublisherKey,
    /// The dataset name.
    pub slug: Slug,
    /// The version the record points at.
    pub version: u64,
    /// The manifest of that version.
    pub manifest: ContentId,
}

/// A verified name record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRecord {
    /// What was signed.
    pub body: NameBody,
    /// The publisher's signature over `"lien/name/v1" 0x00 canonical(body)`.
    pub signature: Signature,
}

impl NameRecord {
    /// Signs a record pointing `publisher/slug` at `manifest`.
    pub fn sign(secret: &PublisherSecret, slug: Slug, version: u64, manifest: ContentId) -> Result<Self, NameError> {
        let body = NameBody { publisher: secret.public(), slug, version, manifest };
        let signature = secret.sign(&signing_message(NAME_DOMAIN, &cbor::to_canonical_vec(&body)?));
        Ok(Self { body, signature })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, NameError> {
        Ok(cbor::to_canonical_vec(self)?)
    }

    /// Decodes and verifies a record.
    pub fn decode(bytes: &[u8]) -> Result<Self, NameError> {
        let rec: NameRecord = cbor::from_canonical_slice(bytes, MAX_NAME_RECORD_LEN)?;
        let msg = signing_message(NAME_DOMAIN, &cbor::to_canonical_vec(&rec.body)?);
        rec.body.publisher.verify(&msg, &rec.signature).map_err(|_| NameError::BadSignature)?;
        Ok(rec)
    }

    /// The DHT key this record belongs under.
    pub fn key(&self) -> ContentId {
        name_key(&self.body.publisher, &self.body.slug)
    }
}

/// The DHT key of `publisher/slug`: BLAKE3 of `"lien/name/v1" 0x00 publisher-bytes slug`.
pub fn name_key(publisher: &PublisherKey, slug: &Slug) -> ContentId {
    let mut h = blake3::Hasher::new();
    h.update(NAME_DOMAIN.as_bytes());
    h.update(&[0]);
    h.update(publisher.as_bytes());
    h.update(slug.as_str().as_bytes());
    ContentId::from(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let s = PublisherSecret::from_seed(&[9; 32]);
        let r = NameRecord::sign(&s, "x".parse().unwrap(), 2, ContentId::of(b"m")).unwrap();
        let bytes = r.encode().unwrap();
        assert_eq!(NameRecord::decode(&bytes).unwrap(), r);
        let mut bad = bytes.clone();
        // the version field's value is a small integer near the end of the body
        let pos = bytes.len() - 70;
        bad[pos] ^= 1;
        assert!(NameRecord::decode(&bad).is_err());
    }
}
