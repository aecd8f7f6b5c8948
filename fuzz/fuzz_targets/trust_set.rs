//! Whole trust-record sets (issue 12): arbitrary delegations and revocations among eight keys,
//! added one by one and all at once, never panic and give the same answers; only the root
//! revokes the root.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lien_protocol::trust::TrustRecord;

#[path = "../../protocol/tests/support/trust_ops.rs"]
mod trust_ops;

fuzz_target!(|data: &[u8]| {
    let keys = trust_ops::keys();
    let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
    let records = trust_ops::records(data, &keys, 24);
    let mut at_once = trust_ops::state(&keys);
    at_once.add_all(records.clone(), trust_ops::NOW);
    let mut reversed = trust_ops::state(&keys);
    for r in records.iter().rev().cloned() {
        reversed.add(r, trust_ops::NOW);
    }
    assert_eq!(trust_ops::answers(&at_once, &publics), trust_ops::answers(&reversed, &publics));
    let root_self_revoked = records.iter().any(|r| {
        matches!(r, TrustRecord::Revocation(v) if v.body.issuer == publics[0] && v.body.subject == publics[0])
    });
    assert_eq!(at_once.is_revoked(&publics[0], trust_ops::NOW), root_self_revoked);
});
