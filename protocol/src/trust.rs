//! Federated trust: delegations, revocations and the check that a publisher may publish a name.
//!
//! A node trusts some publisher keys directly and some **roots** (e.g. a national authority).
//! A root vouches for an agency's key with a signed [`Delegation`] (organisation name, allowed
//! dataset-name prefix, validity window, whether the agency may delegate further, e.g. a ministry
//! certifying its departments). Chains are followed up to a depth limit. A signed [`Revocation`]
//! from the key itself, a root, or one of the key's delegators withdraws a key: its manifests are
//! no longer accepted. With no roots and no direct keys the network is open: any validly signed
//! manifest is accepted.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError};
use crate::id::ContentId;
use crate::keys::{signing_message, PublisherKey, PublisherSecret, Signature};
use crate::slug::Slug;

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

/// Which keys this node trusts on its own authority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    /// Roots whose delegations are accepted.
    pub roots: BTreeSet<PublisherKey>,
    /// Publisher keys accepted directly.
    pub publishers: BTreeSet<PublisherKey>,
    /// Longest chain from a root to a publisher.
    pub max_depth: usize,
}

/// How a publisher came to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trusted {
    /// No roots or keys configured: an open network.
    Open,
    /// The key is trusted directly.
    Direct,
    /// Through delegations; the organisations from the publisher up to the root.
    Delegated {
        /// Organisation names, publisher first.
        organisations: Vec<String>,
    },
}

/// A node's trust policy plus every valid delegation and revocation it has seen.
#[derive(Debug, Clone, Default)]
pub struct TrustState {
    policy: TrustPolicy,
    delegations: HashMap<PublisherKey, Vec<Delegation>>,
    revocations: HashMap<PublisherKey, Vec<Revocation>>,
}

impl TrustState {
    /// A state with `policy` and no records.
    pub fn new(mut policy: TrustPolicy) -> Self {
        if policy.max_depth == 0 {
            policy.max_depth = DEFAULT_MAX_DEPTH;
        }
        Self { policy, delegations: HashMap::new(), revocations: HashMap::new() }
    }

    /// The policy.
    pub fn policy(&self) -> &TrustPolicy {
        &self.policy
    }

    /// True when no roots or keys are configured (any validly signed manifest is accepted).
    pub fn is_open(&self) -> bool {
        self.policy.roots.is_empty() && self.policy.publishers.is_empty()
    }

    /// Adds a verified record; returns false if it was already known.
    pub fn add(&mut self, record: TrustRecord) -> bool {
        match record {
            TrustRecord::Delegation(d) => {
                let list = self.delegations.entry(d.body.subject).or_default();
                if list.contains(&d) {
                    return false;
                }
                list.push(d);
            }
            TrustRecord::Revocation(r) => {
                let list = self.revocations.entry(r.body.subject).or_default();
                if list.contains(&r) {
                    return false;
                }
                list.push(r);
            }
        }
        true
    }

    /// Every record held, delegations first.
    pub fn records(&self) -> Vec<TrustRecord> {
        let d = self.delegations.values().flatten().cloned().map(TrustRecord::Delegation);
        let r = self.revocations.values().flatten().cloned().map(TrustRecord::Revocation);
        d.chain(r).collect()
    }

    /// Whether `key` is revoked by itself, a root, or one of its delegators.
    pub fn is_revoked(&self, key: &PublisherKey) -> bool {
        let Some(revs) = self.revocations.get(key) else { return false };
        revs.iter().any(|r| {
            let issuer = &r.body.issuer;
            issuer == key
                || self.policy.roots.contains(issuer)
                || self.delegations.get(key).is_some_and(|ds| ds.iter().any(|d| &d.body.issuer == issuer))
        })
    }

    /// Checks that `publisher` may publish `slug` at time `now` (Unix seconds).
    pub fn check(&self, publisher: &PublisherKey, slug: &Slug, now: u64) -> Result<Trusted, TrustError> {
        if self.is_revoked(publisher) {
            return Err(TrustError::Revoked(publisher.to_string()));
        }
        if self.is_open() {
            return Ok(Trusted::Open);
        }
        if self.policy.publishers.contains(publisher) {
            return Ok(Trusted::Direct);
        }
        let mut worst = TrustError::Untrusted(publisher.to_string());
        match self.chain(publisher, slug.as_str(), now, 1, false, &mut worst) {
            Some(organisations) => Ok(Trusted::Delegated { organisations }),
            None => Err(worst),
        }
    }

    /// The organisations `key` is validly delegated to (from a trusted root, at time `now`),
    /// whatever the dataset name: what a serving node checks before serving restricted data.
    pub fn organisations_of(&self, key: &PublisherKey, now: u64) -> Vec<String> {
        if self.is_revoked(key) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for d in self.delegations.get(key).map(Vec::as_slice).unwrap_or_default() {
            let b = &d.body;
            if now < b.not_before || now > b.not_after || self.is_revoked(&b.issuer) {
                continue;
            }
            let mut worst = TrustError::Untrusted(String::new());
            let vouched = self.policy.roots.contains(&b.issuer)
                || self.chain(&b.issuer, &b.prefix, now, 2, true, &mut worst).is_some();
            if vouched && !out.contains(&b.organisation) {
                out.push(b.organisation.clone());
            }
        }
        out
    }

    /// Depth-first search for a valid chain from `key` up to a root.
    fn chain(
        &self,
        key: &PublisherKey,
        slug: &str,
        now: u64,
        depth: usize,
        must_delegate: bool,
        worst: &mut TrustError,
    ) -> Option<Vec<String>> {
        if depth > self.policy.max_depth {
            *worst = TrustError::TooDeep(key.to_string());
            return None;
        }
        for d in self.delegations.get(key).map(Vec::as_slice).unwrap_or_default() {
            let b = &d.body;
            if must_delegate && !b.can_delegate {
                continue;
            }
            if now < b.not_before || now > b.not_after {
                *worst = TrustError::Expired(key.to_string());
                continue;
            }
            if !slug.starts_with(&b.prefix) {
                *worst = TrustError::WrongPrefix { prefix: b.prefix.clone(), slug: slug.to_owned() };
                continue;
            }
            if self.is_revoked(&b.issuer) {
                *worst = TrustError::Revoked(b.issuer.to_string());
                continue;
            }
            if self.policy.roots.contains(&b.issuer) {
                return Some(vec![b.organisation.clone()]);
            }
            if let Some(mut rest) = self.chain(&b.issuer, slug, now, depth + 1, true, worst) {
                rest.insert(0, b.organisation.clone());
                return Some(rest);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublisherSecret {
        PublisherSecret::from_seed(&[n; 32])
    }

    fn delegate(
        issuer: &PublisherSecret,
        subject: &PublisherSecret,
        prefix: &str,
        window: (u64, u64),
        can: bool,
    ) -> TrustRecord {
        let body = DelegationBody {
            issuer: issuer.public(),
            subject: subject.public(),
            organisation: format!("org-{}", subject.public().short()),
            prefix: prefix.into(),
            not_before: window.0,
            not_after: window.1,
            can_delegate: can,
        };
        TrustRecord::Delegation(Delegation::sign(issuer, body).unwrap())
    }

    fn state(roots: &[&PublisherSecret], records: Vec<TrustRecord>) -> TrustState {
        let mut s = TrustState::new(TrustPolicy {
            roots: roots.iter().map(|k| k.public()).collect(),
            publishers: BTreeSet::new(),
            max_depth: 3,
        });
        for r in records {
            let bytes = r.encode().unwrap();
            assert!(s.add(TrustRecord::decode(&bytes).unwrap()));
        }
        s
    }

    const NOW: u64 = 1_800_000_000;
    const VALID: (u64, u64) = (NOW - 100, NOW + 100);

    fn slug(s: &str) -> Slug {
        s.parse().unwrap()
    }

    #[test]
    fn open_network_accepts_anyone_until_a_root_is_set() {
        let s = TrustState::new(TrustPolicy::default());
        assert_eq!(s.check(&key(1).public(), &slug("x"), NOW), Ok(Trusted::Open));
        let s = state(&[&key(9)], vec![]);
        assert!(matches!(s.check(&key(1).public(), &slug("x"), NOW), Err(TrustError::Untrusted(_))));
    }

    #[test]
    fn chain_root_ministry_department() {
        let (root, ministry, dept) = (key(1), key(2), key(3));
        let s = state(
            &[&root],
            vec![delegate(&root, &ministry, "moh-", VALID, true), delegate(&ministry, &dept, "moh-hcm", VALID, false)],
        );
        let t = s.check(&dept.public(), &slug("moh-hcm-clinics"), NOW).unwrap();
        assert!(matches!(t, Trusted::Delegated { organisations } if organisations.len() == 2));
        assert!(matches!(s.check(&ministry.public(), &slug("moh-budget"), NOW), Ok(Trusted::Delegated { .. })));
    }

    #[test]
    fn wrong_prefix_expired_and_not_delegable_are_rejected() {
        let (root, ministry, dept) = (key(1), key(2), key(3));
        let s = state(
            &[&root],
            vec![delegate(&root, &ministry, "moh-", VALID, false), delegate(&ministry, &dept, "", VALID, false)],
        );
        assert!(matches!(s.check(&ministry.public(), &slug("mof-budget"), NOW), Err(TrustError::WrongPrefix { .. })));
        assert!(matches!(s.check(&ministry.public(), &slug("moh-x"), NOW + 1000), Err(TrustError::Expired(_))));
        assert!(matches!(s.check(&ministry.public(), &slug("moh-x"), NOW - 1000), Err(TrustError::Expired(_))));
        // the ministry may not delegate, so the department is not trusted
        assert!(s.check(&dept.public(), &slug("moh-x"), NOW).is_err());
    }

    #[test]
    fn too_deep_chains_are_rejected() {
        let keys: Vec<PublisherSecret> = (1..=6).map(key).collect();
        let mut records = Vec::new();
        for w in keys.windows(2) {
            records.push(delegate(&w[0], &w[1], "", VALID, true));
        }
        let s = state(&[&keys[0]], records);
        assert!(s.check(&keys[3].public(), &slug("x"), NOW).is_ok(), "depth 3 is within the limit");
        assert!(matches!(s.check(&keys[5].public(), &slug("x"), NOW), Err(TrustError::TooDeep(_))));
    }

    #[test]
    fn revocations_withdraw_keys_and_their_subtrees() {
        let (root, ministry, dept, stranger) = (key(1), key(2), key(3), key(4));
        let mut s = state(
            &[&root],
            vec![delegate(&root, &ministry, "", VALID, true), delegate(&ministry, &dept, "", VALID, false)],
        );
        // a stranger's revocation counts for nothing
        s.add(TrustRecord::Revocation(Revocation::sign(&stranger, dept.public(), NOW, "").unwrap()));
        assert!(s.check(&dept.public(), &slug("x"), NOW).is_ok());
        // the root revokes the ministry: the ministry and everything below it fall
        s.add(TrustRecord::Revocation(Revocation::sign(&root, ministry.public(), NOW, "key lost").unwrap()));
        assert!(matches!(s.check(&ministry.public(), &slug("x"), NOW), Err(TrustError::Revoked(_))));
        assert!(matches!(s.check(&dept.public(), &slug("x"), NOW), Err(TrustError::Revoked(_))));
        // self-revocation works even in an open network
        let mut open = TrustState::new(TrustPolicy::default());
        open.add(TrustRecord::Revocation(Revocation::sign(&stranger, stranger.public(), NOW, "").unwrap()));
        assert!(matches!(open.check(&stranger.public(), &slug("x"), NOW), Err(TrustError::Revoked(_))));
    }

    #[test]
    fn organisations_of_a_node_key() {
        let (root, ministry, node, other) = (key(1), key(2), key(3), key(4));
        let mut s = state(
            &[&root],
            vec![delegate(&root, &ministry, "", VALID, true), delegate(&ministry, &node, "", VALID, false)],
        );
        assert_eq!(s.organisations_of(&node.public(), NOW), vec![format!("org-{}", node.public().short())]);
        assert!(s.organisations_of(&other.public(), NOW).is_empty());
        assert!(s.organisations_of(&node.public(), NOW + 1000).is_empty(), "expired delegation counted");
        s.add(TrustRecord::Revocation(Revocation::sign(&root, ministry.public(), NOW, "").unwrap()));
        assert!(s.organisations_of(&node.public(), NOW).is_empty(), "delegation from a revoked issuer counted");
    }

    #[test]
    fn forged_records_are_rejected() {
        let r = delegate(&key(1), &key(2), "", VALID, false);
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
