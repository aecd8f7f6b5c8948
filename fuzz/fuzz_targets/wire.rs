//! Every transfer-protocol message: never panics; accepted messages re-encode identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lien_protocol::wire::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::decode(data) {
        assert_eq!(r.encode().expect("re-encodes"), data);
    }
    if let Ok(r) = Response::decode(data) {
        assert_eq!(r.encode().expect("re-encodes"), data);
    }
});
