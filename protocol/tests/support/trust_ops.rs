//! Trust-record sets built from arbitrary bytes, shared by the property test
//! (`protocol/tests/trust_sets.rs`) and the fuzz target (`fuzz/fuzz_targets/trust_set.rs`).
//!
//! Eight keys (key 0 is the only root); every 5 bytes make one delegation or revocation between
//! two of them, with one of a few organisations, prefixes and validity windows, so that chains,
//! sub-units, wrong prefixes, expiry, cycles and revocations by every kind of issuer all occur.

use lien_protocol::trust::{
    Delegation, DelegationBody, Revocation, TrustPolicy, TrustRecord, TrustState, DEFAULT_MAX_DEPTH,
};
use lien_protocol::{PublisherKey, PublisherSecret, Slug};

/// The time every check is made at.
pub const NOW: u64 = 1_800_000_000;
/// Keys in play.
pub const KEYS: usize = 8;
/// Dataset names checked.
pub const SLUGS: [&str; 3] = ["a1", "ab1", "b1"];

/// The keys: key 0 is the root.
pub fn keys() -> Vec<PublisherSecret> {
    (0..KEYS as u8).map(|i| PublisherSecret::from_seed(&[i + 1; 32])).collect()
}

/// The records described by `bytes` (at most `max` of them), signed with `keys`.
pub fn records(bytes: &[u8], keys: &[PublisherSecret], max: usize) -> Vec<TrustRecord> {
    let orgs = ["A", "A/x", "B", "A/x/y"];
    let prefixes = ["", "a", "ab", "b"];
    let windows = [(NOW - 100, NOW + 100), (NOW - 100, NOW - 50), (NOW + 50, NOW + 100)];
    let mut out = Vec::new();
    for op in bytes.chunks_exact(5).take(max) {
        let issuer = &keys[op[1] as usize % KEYS];
        let subject = &keys[op[2] as usize % KEYS];
        let record = if op[0] & 1 == 0 {
            let (not_before, not_after) = windows[op[4] as usize % windows.len()];
            let body = DelegationBody {
                issuer: issuer.public(),
                subject: subject.public(),
                organisation: orgs[op[3] as usize % orgs.len()].into(),
                prefix: prefixes[(op[3] >> 2) as usize % prefixes.len()].into(),
                not_before,
                not_after,
                can_delegate: op[0] & 2 != 0,
            };
            match Delegation::sign(issuer, body) {
                Ok(d) => TrustRecord::Delegation(d),
                Err(_) => continue, // e.g. a key delegating to itself
            }
        } else {
            match Revocation::sign(issuer, subject.public(), NOW, "") {
                Ok(r) => TrustRecord::Revocation(r),
                Err(_) => continue,
            }
        };
        out.push(record);
    }
    out
}

/// A node whose one root is key 0.
pub fn state(keys: &[PublisherSecret]) -> TrustState {
    TrustState::new(TrustPolicy {
        roots: [keys[0].public()].into(),
        max_depth: DEFAULT_MAX_DEPTH,
        ..TrustPolicy::default()
    })
}

/// Every answer a node gives about every key: (revoked, organisations, check per slug).
pub fn answers(s: &TrustState, keys: &[PublisherKey]) -> Vec<(bool, Vec<String>, Vec<String>)> {
    keys.iter()
        .map(|k| {
            let mut orgs = s.organisations_of(k, NOW);
            orgs.sort();
            let checks = SLUGS
                .iter()
                .map(|slug| match slug.parse::<Slug>() {
                    Ok(slug) => format!("{:?}", s.check(k, &slug, NOW).map_err(|e| std::mem::discriminant(&e))),
                    Err(_) => String::new(),
                })
                .collect();
            (s.is_revoked(k, NOW), orgs, checks)
        })
        .collect()
}
