//! Property test of whole trust-record sets (issue 12): whatever records arrive, in whatever
//! order, one at a time or all at once, a node gives the same answers; no record signed by a key
//! outside the root's reach changes anything; the root is never revoked by anyone but itself.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "support/trust_ops.rs"]
mod trust_ops;

use lien_protocol::trust::{Delegation, DelegationBody, Revocation, TrustRecord};
use proptest::prelude::*;
use trust_ops::{answers, keys, records, state, NOW};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn answers_do_not_depend_on_arrival_order(bytes in prop::collection::vec(any::<u8>(), 0..120), seed in any::<u64>()) {
        let keys = keys();
        let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
        let recs = records(&bytes, &keys, 24);

        let mut all_at_once = state(&keys);
        all_at_once.add_all(recs.clone(), NOW);
        let mut one_by_one = state(&keys);
        // A deterministic shuffle of the same records.
        let mut shuffled = recs.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for r in shuffled {
            one_by_one.add(r, NOW);
        }
        prop_assert_eq!(answers(&all_at_once, &publics), answers(&one_by_one, &publics));
        prop_assert_eq!(all_at_once.records().len(), one_by_one.records().len());
        // Only the root itself can revoke the root.
        let root_revoked_by_itself = recs.iter().any(|r| matches!(r,
            TrustRecord::Revocation(v) if v.body.issuer == publics[0] && v.body.subject == publics[0]));
        prop_assert_eq!(all_at_once.is_revoked(&publics[0], NOW), root_revoked_by_itself);
    }

    #[test]
    fn records_of_keys_out_of_reach_change_nothing(bytes in prop::collection::vec(any::<u8>(), 0..120), attack in prop::collection::vec(any::<u8>(), 5..60)) {
        let keys = keys();
        let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
        let mut honest = state(&keys);
        honest.add_all(records(&bytes, &keys, 24), NOW);
        // A stranger (a ninth key, outside every chain) signs whatever it likes about anyone.
        let stranger = lien_protocol::PublisherSecret::from_seed(&[99; 32]);
        let mut attacked = honest.clone();
        for (i, b) in attack.iter().enumerate() {
            let target = &publics[*b as usize % publics.len()];
            let r = if i % 2 == 0 {
                TrustRecord::Revocation(Revocation::sign(&stranger, *target, NOW, "").unwrap())
            } else {
                let body = DelegationBody {
                    issuer: stranger.public(),
                    subject: *target,
                    organisation: "A".into(),
                    prefix: String::new(),
                    not_before: NOW - 100,
                    not_after: NOW + 100,
                    can_delegate: true,
                };
                TrustRecord::Delegation(Delegation::sign(&stranger, body).unwrap())
            };
            attacked.add(r, NOW);
        }
        prop_assert_eq!(answers(&honest, &publics), answers(&attacked, &publics));
        prop_assert_eq!(honest.records().len(), attacked.records().len(), "a stranger's record was admitted");
    }
}
