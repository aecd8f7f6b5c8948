//! Manifest decoding: never panics; whatever is accepted re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lien_protocol::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.bytes(), data);
        let again = Manifest::decode(m.bytes()).expect("accepted bytes decode again");
        assert_eq!(again.id(), m.id());
    }
    // The file-list blob decoder too, against a reference taken from the input itself.
    if data.len() > 40 {
        let r = lien_protocol::manifest::FileListRef {
            id: lien_protocol::ContentId::of(&data[40..]),
            count: u64::from(data[0]),
            total_size: u64::from(data[1]),
        };
        let _ = lien_protocol::FileList::decode_blob(&r, &data[40..]);
    }
});
