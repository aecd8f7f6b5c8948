//! Federated trust: delegations, revocations and the check that a publisher may publish a name.
//!
//! A node trusts some publisher keys directly and some **roots** (e.g. a national authority).
//! A root vouches for an agency's key with a signed [`Delegation`] (organisation name, allowed
//! dataset-name prefix, validity window, whether the agency may delegate further, e.g. a ministry
//! certifying its departments). Chains are followed up to a depth limit. A delegate names
//! organisations only inside its own: `Bo Y te` may certify `Bo Y te` or `Bo Y te/Cuc CNTT`, never
//! `Bo Cong an`; only roots name organisations freely ([`org_within`]).
//!
//! A signed [`Revocation`] withdraws a key when its issuer is the key itself, a root, or a key
//! whose own delegation to the revoked key is valid and chains to a root at that time. Anything
//! else is ignored: a stranger's revocation counts for nothing, and neither does a delegation the
//! stranger signed to the key it wants to revoke.
//!
//! [`TrustState`] (in `state.rs`) computes the trusted set breadth-first from the roots whenever
//! records change or a validity window opens or closes, so a check is a lookup, whatever records
//! an attacker sends. With no roots and no direct keys the network is open: any validly signed
//! manifest is accepted.

use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError};
use crate::id::ContentId;
use crate::keys::{signing_message, PublisherKey, PublisherSecret, Signature};

mod state;

pub use state::{
    org_within, Admission, TrustPolicy, TrustState, Trusted, MAX_PENDING, MAX_RECORDS_PER_ISSUER,
    MAX_RECORDS_PER_SUBJECT,
};

/// Domain-separation tag of delegation signatures.
pub const DELEGATION_DOMAIN: &str = "lien/delegation/v1";
/// Domain-separation tag of revocation signatures.
pub const REVOCATION_DOMAIN: &str = "lien/revocation/v1";
/// Largest encoded trust record.
pub const MAX_TRUST_RECORD_LEN: usize = 2048;
/// Default longest chain from a root to a publisher (root → ministry → department → unit).
pub const DEFAULT_MAX_DEPTH: usize = 4;
/// Longest organisation name.
pub const MAX_ORG_LEN: usize = 200;

/// Why a trust record was rejected, or a publisher is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Not a canonical encoding of a trust record.
    #[error("trust record encoding: {0}")]
    Encoding(#[from] CborError),
    /// The signature does not verify.
    #[error("trust record signature does not verify")]
    BadSignature,
    /// A malformed field.
    #[error("invalid trust record: {0}")]
    Invalid(&'static str),
    /// No root or direct key vouches for the publisher.
    #[error("publisher {0} is not trusted by this node")]
    Untrusted(String),
    /// The only chains found have a link outside its validity window.
    #[error("delegation of {0} is expired or not yet valid")]
    Expired(String),
    /// A key on every chain is revoked.
    #[error("key {0} is revoked")]
    Revoked(String),
    /// The dataset name is outside the delegated prefix.
    #[error("dataset name {slug:?} is outside the delegated prefix {prefix:?}")]
    WrongPrefix {
        /// The prefix allowed.
        prefix: String,
        /// The dataset name.
        slug: String,
    },
    /// The only chains found are longer than the depth limit.
    #[error("delegation chain for {0} is longer than the limit")]
    TooDeep(String),
}

/// What a delegation says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationBody {
    /// Who vouches (a root or a key that may delegate).
    pub issuer: PublisherKey,
    /// The key vouched for (a publisher key, or a node key for read access).
    pub subject: PublisherKey,
    /// The subject's organisation.
    pub organisation: String,
    /// Dataset names the subject may publish must start with this (empty: any name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Valid from (Unix seconds).
    pub not_before: u64,
    /// Valid until (Unix seconds).
    pub not_after: u64,
    /// Whether the subject may delegate further.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub can_delegate: bool,
}

/// A signed delegation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// What was signed.
    pub body: DelegationBody,
    /// The issuer's signature.
    pub signature: Signature,
}

/// What a revocation says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationBody {
    /// Who revokes.
    pub issuer: PublisherKey,
    /// The key withdrawn.
    pub subject: PublisherKey,
    /// When (Unix seconds).
    pub created: u64,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A signed revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// What was signed.
    pub body: RevocationBody,
    /// The issuer's signature.
    pub signature: Signature,
}

/// A delegation or a revocation, as gossiped and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TrustRecord {
    /// A delegation.
    Delegation(Delegation),
    /// A revocation.
    Revocation(Revocation),
}

impl Delegation {
    /// Signs a delegation with the issuer's key.
    pub fn sign(issuer: &PublisherSecret, mut body: DelegationBody) -> Result<Self, TrustError> {
        body.issuer = issuer.public();
        check_delegation(&body)?;
        let signature = issuer.sign(&signing_message(DELEGATION_DOMAIN, &cbor::to_canonical_vec(&body)?));
        Ok(Self { body, signature })
    }

    fn verify(&self) -> Result<(), TrustError> {
        check_delegation(&self.body)?;
        let msg = signing_message(DELEGATION_DOMAIN, &cbor::to_canonical_vec(&self.body)?);
        self.body.issuer.verify(&msg, &self.signature).map_err(|_| TrustError::BadSignature)
    }
}

fn check_delegation(body: &DelegationBody) -> Result<(), TrustError> {
    if body.organisation.trim().is_empty() || body.organisation.chars().count() > MAX_ORG_LEN {
        return Err(TrustError::Invalid("organisation must be 1 to 200 characters"));
    }
    if body.organisation.chars().any(char::is_control) {
        return Err(TrustError::Invalid("organisation holds control characters"));
    }
    if body.prefix.len() > crate::slug::MAX_SLUG_LEN
        || !body.prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    {
        return Err(TrustError::Invalid("prefix must be the start of a valid dataset name"));
    }
    if body.not_after < body.not_before {
        return Err(TrustError::Invalid("validity window ends before it starts"));
    }
    if body.issuer == body.subject {
        return Err(TrustError::Invalid("a key cannot delegate to itself"));
    }
    Ok(())
}

impl Revocation {
    /// Signs a revocation of `subject` with `issuer`'s key.
    pub fn sign(
        issuer: &PublisherSecret,
        subject: PublisherKey,
        created: u64,
        reason: &str,
    ) -> Result<Self, TrustError> {
        let body = RevocationBody { issuer: issuer.public(), subject, created, reason: reason.to_owned() };
        let signature = issuer.sign(&signing_message(REVOCATION_DOMAIN, &cbor::to_canonical_vec(&body)?));
        Ok(Self { body, signature })
    }

    fn verify(&self) -> Result<(), TrustError> {
        if self.body.reason.chars().count() > MAX_ORG_LEN {
            return Err(TrustError::Invalid("reason longer than 200 characters"));
        }
        let msg = signing_message(REVOCATION_DOMAIN, &cbor::to_canonical_vec(&self.body)?);
        self.body.issuer.verify(&msg, &self.signature).map_err(|_| TrustError::BadSignature)
    }
}

impl TrustRecord {
    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, TrustError> {
        Ok(cbor::to_canonical_vec(self)?)
    }

    /// Decodes and verifies a record received from anywhere.
    pub fn decode(bytes: &[u8]) -> Result<Self, TrustError> {
        let r: TrustRecord = cbor::from_canonical_slice(bytes, MAX_TRUST_RECORD_LEN)?;
        match &r {
            TrustRecord::Delegation(d) => d.verify()?,
            TrustRecord::Revocation(v) => v.verify()?,
        }
        Ok(r)
    }

    /// The record's id: BLAKE3 of its canonical encoding.
    pub fn id(&self) -> Result<ContentId, TrustError> {
        Ok(ContentId::of(&self.encode()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublisherSecret {
        PublisherSecret::from_seed(&[n; 32])
    }

    fn delegate(issuer: &PublisherSecret, subject: &PublisherSecret) -> TrustRecord {
        let body = DelegationBody {
            issuer: issuer.public(),
            subject: subject.public(),
            organisation: format!("org-{}", subject.public().short()),
            prefix: String::new(),
            not_before: 0,
            not_after: 1,
            can_delegate: false,
        };
        TrustRecord::Delegation(Delegation::sign(issuer, body).unwrap())
    }

    #[test]
    fn forged_records_are_rejected() {
        let r = delegate(&key(1), &key(2));
        let mut bytes = r.encode().unwrap();
        let pos = bytes.windows(4).position(|w| w == b"org-").unwrap();
        bytes[pos] = b'x';
        assert_eq!(TrustRecord::decode(&bytes), Err(TrustError::BadSignature));
        let bad = DelegationBody {
            issuer: key(1).public(),
            subject: key(2).public(),
            organisation: String::new(),
            prefix: String::new(),
            not_before: 0,
            not_after: 1,
            can_delegate: false,
        };
        assert!(matches!(Delegation::sign(&key(1), bad), Err(TrustError::Invalid(_))));
    }
}
