//! Name records and chunk lists: never panic; accepted name records re-encode identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lien_protocol::name::NameRecord;
use lien_protocol::{ChunkList, ChunkSize, ContentId};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = NameRecord::decode(data) {
        assert_eq!(r.encode().expect("re-encodes"), data);
    }
    if data.len() >= 8 {
        let size = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let list = &data[8..];
        if let Ok(l) = ChunkList::from_bytes(ContentId::of(list), size, ChunkSize::new(1 << 16).expect("valid"), list) {
            let _ = l.verify_chunk(0, list);
        }
    }
});
