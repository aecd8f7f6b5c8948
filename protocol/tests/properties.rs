//! Property tests: canonical encoding round-trips, and the decoder accepts only canonical bytes.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use ciborium::Value;
use lien_protocol::cbor::{from_canonical_slice, to_canonical_vec, validate};
use lien_protocol::manifest::FileList;
use lien_protocol::{ChunkSize, ContentId, FileEntry, Manifest, ManifestBody, Metadata, PublisherSecret, RelPath};
use proptest::prelude::*;

fn arb_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9àáạảãđêệưữ][a-zA-Z0-9 àáạảãđêệưữ.,-]{0,39}"
}

fn arb_path() -> impl Strategy<Value = RelPath> {
    prop::collection::vec("[a-z0-9_.-]{1,12}", 1..4)
        .prop_filter_map("valid path", |parts| RelPath::new(&parts.join("/")).ok())
}

fn arb_body() -> impl Strategy<Value = (ManifestBody, PublisherSecret)> {
    (
        any::<[u8; 32]>(),
        "[a-z0-9][a-z0-9-]{0,20}",
        1u64..1_000_000,
        any::<u64>(),
        arb_text(),
        prop::option::of(arb_text()),
        prop::collection::vec(arb_text(), 0..4),
        prop::collection::btree_map(arb_path(), (any::<u64>(), any::<[u8; 32]>(), 16u32..=24), 1..12),
    )
        .prop_filter_map("valid body", |(seed, slug, version, created, title, desc, keywords, files)| {
            let secret = PublisherSecret::from_seed(&seed);
            let entries = files
                .into_iter()
                .map(|(path, (size, id, shift))| FileEntry {
                    path,
                    size,
                    id: ContentId::from_bytes(id),
                    chunk_size: ChunkSize::new(1 << shift).expect("in range"),
                    media_type: String::new(),
                })
                .collect();
            let files = FileList::build(entries).ok()?.0;
            let mut metadata = Metadata::titled(title);
            metadata.description = desc.unwrap_or_default();
            metadata.keywords = keywords;
            let previous = (version > 1).then(|| ContentId::of(&version.to_be_bytes()));
            let body = ManifestBody {
                publisher: secret.public(),
                slug: slug.parse().ok()?,
                version,
                previous,
                created,
                metadata,
                files,
            };
            Some((body, secret))
        })
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<u64>().prop_map(|n| Value::Integer(n.into())),
        any::<i64>().prop_map(|n| Value::Integer(n.into())),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        ".{0,8}".prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn manifest_round_trips((body, secret) in arb_body()) {
        let m = Manifest::sign(body.clone(), &secret).unwrap();
        let d = Manifest::decode(m.bytes()).unwrap();
        prop_assert_eq!(d.body(), &body);
        prop_assert_eq!(d.bytes(), m.bytes());
        prop_assert_eq!(to_canonical_vec(d.body()).unwrap(), to_canonical_vec(&body).unwrap());
    }

    /// The validator alone (without the re-encode safety net) admits only canonical bytes.
    #[test]
    fn validated_values_re_encode_identically(v in arb_value()) {
        let mut raw = Vec::new();
        ciborium::into_writer(&v, &mut raw).unwrap();
        if validate(&raw, 1 << 20).is_ok() {
            let back: Value = ciborium::from_reader(&raw[..]).unwrap();
            prop_assert_eq!(to_canonical_vec(&back).unwrap(), raw);
        }
        if let Ok(canon) = to_canonical_vec(&v) {
            prop_assert!(validate(&canon, 1 << 20).is_ok());
            let back: Value = from_canonical_slice(&canon, 1 << 20).unwrap();
            prop_assert_eq!(to_canonical_vec(&back).unwrap(), canon);
        }
    }

    /// Random mutations of a valid manifest are either rejected or are exactly canonical.
    #[test]
    fn mutated_manifests_are_rejected_or_canonical((body, secret) in arb_body(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let m = Manifest::sign(body, &secret).unwrap();
        let mut bytes = m.bytes().to_vec();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Ok(d) = Manifest::decode(&bytes) {
            prop_assert_eq!(d.bytes(), &bytes[..]);
            prop_assert_eq!(bytes, m.bytes().to_vec());
        }
    }
}
