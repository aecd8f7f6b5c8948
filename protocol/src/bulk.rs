//! The bulk data channel's rules: chunk traffic on a TLS 1.3 connection of its own.
//!
//! Why it exists: the libp2p connection (noise, yamux) carries every protocol, but noise only
//! offers ChaCha20-Poly1305, which costs about 4× AES-128-GCM on CPUs with AES instructions, and
//! yamux adds copies and wake-ups per frame; together they bound a fetch to roughly a third of
//! what the disk and loopback can do (BENCHMARKS.md). So chunk requests may move to a second
//! connection: the fetcher asks over the libp2p connection whether and where the peer offers the
//! channel ([`crate::wire::Request::OpenBulk`], answered with [`crate::wire::Response::BulkPort`]),
//! then opens a TLS 1.3 connection to that port (the server's libp2p TCP listen port: the server
//! tells the two apart by the first byte, [`TLS_HANDSHAKE_BYTE`] for TLS, 0x13 for libp2p's
//! multistream-select). Both ends present a certificate as libp2p-tls builds it (self-signed,
//! carrying the node's libp2p public key and that key's signature over the certificate key), so
//! each end learns the other's peer id from the handshake: the fetcher checks it is the peer it
//! meant, the server treats the peer exactly as on libp2p. The ALPN protocol is [`ALPN`].
//!
//! ```text
//! connection := TLS 1.3 (mutual certificates, ALPN "lien-bulk/3"), then messages both ways
//! message    := u32-be n, then n bytes
//! request    := canonical CBOR wire::Request (Chunks or Have)           (n ≤ MAX_REQUEST_LEN)
//! response   := payload ‖ canonical CBOR wire::Response ‖ u32-be header length  (n ≤ MAX_FRAME_LEN)
//! ```
//! Responses come in the order of the requests. The payload comes first so that the receiver
//! can cut the header off without moving the chunk bytes.

use crate::wire::{Response, WireError, MAX_CHUNKS_PAYLOAD};

/// Version of the bulk channel, sent in [`crate::wire::Request::OpenBulk`]. Version 3 is TLS 1.3
/// with libp2p-identity certificates; version 2 was our own AES-GCM framing after a ticket and
/// an 8-byte preamble, version 1 the same on a port of its own.
pub const VERSION: u32 = 3;
/// First byte of a bulk connection: a TLS record of type handshake (the ClientHello). A libp2p
/// TCP connection starts with multistream-select's length byte 0x13 instead.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;
/// The ALPN protocol name of the channel (its version is in the name).
pub const ALPN: &[u8] = b"lien-bulk/3";
/// Largest response header on the channel (a `Have` bitmap of a file of 512 Ki chunks fits).
pub const MAX_HEADER_LEN: usize = 128 * 1024;
/// Largest response message: a full chunk payload, its header and the header length.
pub const MAX_FRAME_LEN: usize = MAX_CHUNKS_PAYLOAD as usize + MAX_HEADER_LEN + 4;

/// Why a message of the channel was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    /// A message or field is over its limit or too short.
    #[error("bulk message: {0}")]
    Malformed(&'static str),
    /// The response header inside the message is not a valid wire response.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Appends `header` and its length after the payload already in `buf`: a response's plaintext.
pub fn append_response_header(buf: &mut Vec<u8>, header: &Response) -> Result<(), BulkError> {
    let encoded = header.encode()?;
    if encoded.len() > MAX_HEADER_LEN {
        return Err(BulkError::Malformed("response header over the limit"));
    }
    buf.extend_from_slice(&encoded);
    buf.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    Ok(())
}

/// Splits a response's plaintext: decodes the header and leaves only the payload in `buf`.
/// A `Chunks` header must announce exactly the payload's length; other responses carry none.
pub fn split_response(buf: &mut Vec<u8>) -> Result<Response, BulkError> {
    let total = buf.len();
    let len_at = total.checked_sub(4).ok_or(BulkError::Malformed("response shorter than its header length"))?;
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&buf[len_at..]);
    let header_len = u32::from_be_bytes(len_bytes) as usize;
    if header_len > MAX_HEADER_LEN {
        return Err(BulkError::Malformed("response header over the limit"));
    }
    let header_at = len_at.checked_sub(header_len).ok_or(BulkError::Malformed("response header length"))?;
    let header = Response::decode(&buf[header_at..len_at])?;
    let payload_ok = match &header {
        Response::Chunks { len, .. } => *len == header_at as u64,
        _ => header_at == 0,
    };
    if !payload_ok {
        return Err(BulkError::Malformed("payload length does not match the header"));
    }
    buf.truncate(header_at);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_split_into_header_and_payload() {
        let payload = vec![5u8; 300];
        let mut buf = payload.clone();
        append_response_header(&mut buf, &Response::Chunks { first: 2, count: 1, len: 300 }).unwrap();
        assert_eq!(split_response(&mut buf).unwrap(), Response::Chunks { first: 2, count: 1, len: 300 });
        assert_eq!(buf, payload);

        let mut busy = Vec::new();
        append_response_header(&mut busy, &Response::error(crate::wire::ErrorCode::Busy, "busy")).unwrap();
        assert!(matches!(split_response(&mut busy).unwrap(), Response::Error { .. }));
        assert!(busy.is_empty());

        // A header announcing another length than the payload's, and bytes before a non-chunk
        // response, are refused; so are truncated frames.
        let mut wrong = vec![1u8; 10];
        append_response_header(&mut wrong, &Response::Chunks { first: 0, count: 1, len: 11 }).unwrap();
        assert!(matches!(split_response(&mut wrong), Err(BulkError::Malformed(_))));
        let mut extra = vec![1u8; 10];
        append_response_header(&mut extra, &Response::error(crate::wire::ErrorCode::Busy, "busy")).unwrap();
        assert!(matches!(split_response(&mut extra), Err(BulkError::Malformed(_))));
        assert!(matches!(split_response(&mut vec![0, 0]), Err(BulkError::Malformed(_))));
        assert!(matches!(split_response(&mut vec![0, 0, 0, 200]), Err(BulkError::Malformed(_))));
    }
}
