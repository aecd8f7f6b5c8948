//! Delegation and revocation decoding: never panics; accepted records re-encode identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lien_protocol::trust::TrustRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = TrustRecord::decode(data) {
        assert_eq!(r.encode().expect("re-encodes"), data);
    }
});
