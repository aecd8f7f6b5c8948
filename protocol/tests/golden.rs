//! Golden vectors: fixed key, fixed files, expected bytes and ids under `tests/data/`.
//!
//! Another implementation of Lien can check itself against these files. Run with
//! `LIEN_BLESS=1` to rewrite them after an intended format change (and say so in the commit).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use lien_protocol::chunk::hash_reader;
use lien_protocol::manifest::FileList;
use lien_protocol::name::NameRecord;
use lien_protocol::{
    ChunkList, ChunkSize, ContentId, FileEntry, Manifest, ManifestBody, Metadata, PublisherSecret, RelPath,
};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The BLAKE3 test-vector input: bytes 0, 1, ..., 250, 0, 1, ... repeated.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = i as u8;
    }
    s
}

const CHUNK: u64 = 1 << 16;

fn golden_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("README.txt", b"Lien golden vector dataset\n".to_vec()),
        ("data/pattern-102400.bin", pattern(102_400)),
        ("data/pattern-200000.bin", pattern(200_000)),
    ]
}

fn golden_manifest() -> (Manifest, Vec<(FileEntry, ChunkList)>) {
    let secret = PublisherSecret::from_seed(&seed());
    let cs = ChunkSize::new(CHUNK).unwrap();
    let mut entries = Vec::new();
    for (path, bytes) in golden_files() {
        let d = hash_reader(&bytes[..], cs, 2, |_| {}).unwrap();
        let entry = FileEntry {
            path: RelPath::new(path).unwrap(),
            size: d.size,
            id: d.id,
            chunk_size: cs,
            media_type: if path.ends_with(".txt") { "text/plain".into() } else { String::new() },
        };
        entries.push((entry, d.chunks));
    }
    let mut metadata = Metadata::titled("Dân số Việt Nam 2025 (golden vector)");
    metadata.description = "Fixed dataset for checking Lien implementations.".into();
    metadata.keywords = vec!["golden".into(), "dân số".into()];
    metadata.license = "CC-BY-4.0".into();
    metadata.organisation = "Lien test authority".into();
    metadata.languages = vec!["vi".into(), "en".into()];
    let files = FileList::build(entries.iter().map(|(e, _)| e.clone()).collect()).unwrap().0;
    let body = ManifestBody {
        publisher: secret.public(),
        slug: "golden-census".parse().unwrap(),
        version: 1,
        previous: None,
        created: 1_767_225_600, // 2026-01-01T00:00:00Z
        metadata,
        files,
    };
    (Manifest::sign(body, &secret).unwrap(), entries)
}

/// Compares `actual` with the stored file, or writes it when blessing.
fn check(name: &str, actual: &[u8]) {
    let path = data_dir().join(name);
    if std::env::var_os("LIEN_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run with LIEN_BLESS=1)", path.display()));
    assert!(expected == actual, "{name} differs from the golden vector");
}

#[test]
fn input_files_match_stored_copies() {
    for (path, bytes) in golden_files() {
        check(&format!("files/{path}"), &bytes);
    }
}

#[test]
fn file_ids_match_official_blake3_vectors_and_b3sum() {
    // From BLAKE3's test_vectors.json (input_len 102400, first 32 bytes of "hash"); `b3sum` prints
    // the same for the same input. With 64 KiB chunks this file has two chunks, so the id is
    // merged from chunk chaining values, not hashed in one go.
    let d = hash_reader(&pattern(102_400)[..], ChunkSize::new(CHUNK).unwrap(), 2, |_| {}).unwrap();
    assert_eq!(d.id.to_string(), "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085");
    let d = hash_reader(&pattern(31_744)[..], ChunkSize::new(CHUNK).unwrap(), 1, |_| {}).unwrap();
    assert_eq!(d.id.to_string(), "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47");
}

#[test]
fn manifest_bytes_and_ids_match() {
    let (m, entries) = golden_manifest();
    check("golden-census.manifest.cbor", m.bytes());
    let mut summary = format!(
        "seed {}\npublisher {}\nmanifest {}\n",
        seed().iter().map(|b| format!("{b:02x}")).collect::<String>(),
        m.body().publisher,
        m.id()
    );
    for (e, chunks) in &entries {
        let list = chunks.to_bytes();
        summary += &format!("file {} {} {} chunk-list {}\n", e.path, e.size, e.id, ContentId::of(&list));
        check(&format!("{}.chunks", e.path.as_str().replace('/', "_")), &list);
    }
    let name =
        NameRecord::sign(&PublisherSecret::from_seed(&seed()), "golden-census".parse().unwrap(), 1, m.id()).unwrap();
    let name_bytes = name.encode().unwrap();
    check("golden-census.name.cbor", &name_bytes);
    summary += &format!("name-key {}\nname-record {}\n", name.key(), ContentId::of(&name_bytes));
    check("vectors.txt", summary.as_bytes());
}

#[test]
fn stored_manifest_decodes_and_verifies() {
    let bytes = std::fs::read(data_dir().join("golden-census.manifest.cbor")).unwrap();
    let m = Manifest::decode(&bytes).unwrap();
    assert_eq!(m.body().slug.as_str(), "golden-census");
    assert_eq!(m.id(), ContentId::of(&bytes));
}

#[test]
fn every_flipped_bit_is_rejected() {
    let (m, _) = golden_manifest();
    let bytes = m.bytes().to_vec();
    for bit in 0..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(Manifest::decode(&bad).is_err(), "flipping bit {bit} was accepted");
    }
}

#[test]
fn chunks_from_another_file_or_offset_are_rejected() {
    let (_, entries) = golden_manifest();
    let (a, a_chunks) = &entries[1];
    let (b, _) = &entries[2];
    let files = golden_files();
    let a_bytes = &files[1].1;
    let b_bytes = &files[2].1;
    let list = ChunkList::from_bytes(a.id, a.size, a.chunk_size, &a_chunks.to_bytes()).unwrap();
    let c0 = &a_bytes[..CHUNK as usize];
    list.verify_chunk(0, c0).unwrap();
    // same bytes, other file: pattern files share their first chunk, but b's list differs after
    assert_eq!(&b_bytes[..CHUNK as usize], c0);
    let b_list = ChunkList::from_bytes(b.id, b.size, b.chunk_size, &entries[2].1.to_bytes()).unwrap();
    // chunk 1 of b (a full chunk) is not chunk 1 of a (a partial chunk)
    let b1 = &b_bytes[CHUNK as usize..2 * CHUNK as usize];
    assert!(list.verify_chunk(1, b1).is_err());
    // chunk 1 of a presented at offset 0
    assert!(list.verify_chunk(0, &a_bytes[CHUNK as usize..]).is_err());
    // chunk 2 of b presented as chunk 1 of b
    let b2 = &b_bytes[2 * CHUNK as usize..3 * CHUNK as usize];
    assert!(b_list.verify_chunk(1, b2).is_err());
    b_list.verify_chunk(1, b1).unwrap();
}
