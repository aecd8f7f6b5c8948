//! The bulk data channel's rules: sealed frames for chunk traffic on a plain TCP connection.
//!
//! Why it exists: the libp2p connection (noise, yamux) carries every protocol, but noise only
//! offers ChaCha20-Poly1305, which costs about 4× AES-128-GCM on CPUs with AES instructions, and
//! yamux adds copies and wake-ups per frame; together they bound a fetch to roughly a third of
//! what the disk and loopback can do (BENCHMARKS.md). So chunk requests may move to a second
//! connection: the fetcher asks over the authenticated libp2p connection for a ticket
//! ([`crate::wire::Request::OpenBulk`]); the server answers with a port, a single-use token and a
//! fresh random secret ([`crate::wire::Response::BulkTicket`]). The fetcher connects to the
//! port of the server's libp2p TCP listener (the channel shares it: the server tells the two
//! apart by the [`PREAMBLE`], which no libp2p connection starts with), sends the preamble and the
//! token, and from then on every message in either direction is one AES-128-GCM frame keyed from
//! the secret. Only the two ends of the noise session know the secret, so the channel has the
//! same confidentiality, integrity and peer identity as the connection that issued it.
//!
//! ```text
//! connection := PREAMBLE (8 bytes), token (TOKEN_LEN bytes), then frames in both directions
//! frame      := u32-be n, then n bytes of AES-128-GCM ciphertext with its 16-byte tag
//! nonce      := 4 zero bytes ‖ u64-be frame counter of that direction (0, 1, 2, ...)
//! key        := first 16 bytes of BLAKE3 derive_key(context of the direction, secret)
//! request    := plaintext = canonical CBOR wire::Request (Chunks or Have)
//! response   := plaintext = payload ‖ canonical CBOR wire::Response ‖ u32-be header length
//! ```
//! Responses come in the order of the requests. A frame that fails to open ends the connection.
//! The payload comes first so that the receiver can cut the header off without moving the
//! chunk bytes.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, NONCE_LEN};

use crate::wire::{Response, WireError, MAX_CHUNKS_PAYLOAD};

/// Version of the bulk channel, sent in [`crate::wire::Request::OpenBulk`]. Version 2 shares
/// the libp2p TCP port and starts with [`PREAMBLE`]; version 1 had a port of its own.
pub const VERSION: u32 = 2;
/// First bytes of a bulk connection. A libp2p TCP connection starts with multistream-select's
/// length byte 0x13 (or, on a private network, a random pnet nonce), never with these.
pub const PREAMBLE: &[u8; 8] = b"LIEN-BK2";
/// Length of a ticket's token.
pub const TOKEN_LEN: usize = 16;
/// Length of a ticket's secret.
pub const SECRET_LEN: usize = 32;
/// Length of the authentication tag at the end of every frame.
pub const TAG_LEN: usize = 16;
/// Largest response header on the channel (a `Have` bitmap of a file of 512 Ki chunks fits).
pub const MAX_HEADER_LEN: usize = 128 * 1024;
/// Largest sealed frame: a full chunk payload, its header, the header length and the tag.
pub const MAX_FRAME_LEN: usize = MAX_CHUNKS_PAYLOAD as usize + MAX_HEADER_LEN + 4 + TAG_LEN;

const CONTEXT_FETCHER_TO_SERVER: &str = "lien bulk channel v1 fetcher to server";
const CONTEXT_SERVER_TO_FETCHER: &str = "lien bulk channel v1 server to fetcher";

/// Why a frame could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    /// The frame was not sealed with this direction's key and counter: altered, replayed,
    /// reordered or from someone else.
    #[error("a bulk frame failed authentication")]
    Unauthentic,
    /// A frame or field is over its limit or too short.
    #[error("bulk frame: {0}")]
    Malformed(&'static str),
    /// The frame counter is exhausted (2^64 frames): the connection must end.
    #[error("bulk frame counter exhausted")]
    CounterExhausted,
    /// The secret has the wrong length.
    #[error("bulk secret must be {SECRET_LEN} bytes")]
    BadSecret,
    /// The response header inside the frame is not a valid wire response.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Which end of the channel this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The node that asked for the ticket and sends requests.
    Fetcher,
    /// The node that issued the ticket and sends chunks.
    Server,
}

/// One direction's key and frame counter.
struct Direction {
    key: LessSafeKey,
    counter: u64,
}

impl std::fmt::Debug for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direction").field("counter", &self.counter).finish_non_exhaustive()
    }
}

impl Direction {
    fn new(context: &str, secret: &[u8]) -> Result<Self, BulkError> {
        let derived = blake3::derive_key(context, secret);
        let unbound = UnboundKey::new(&AES_128_GCM, &derived[..16]).map_err(|_| BulkError::BadSecret)?;
        Ok(Direction { key: LessSafeKey::new(unbound), counter: 0 })
    }

    fn next_nonce(&mut self) -> Result<Nonce, BulkError> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[4..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self.counter.checked_add(1).ok_or(BulkError::CounterExhausted)?;
        Ok(Nonce::assume_unique_for_key(nonce))
    }
}

/// Seals outgoing frames of one end of a channel.
#[derive(Debug)]
pub struct Sealer(Direction);

/// Opens incoming frames of one end of a channel.
#[derive(Debug)]
pub struct Opener(Direction);

/// The sealer and opener for `role`'s end of the channel keyed by `secret`.
pub fn channel(role: Role, secret: &[u8]) -> Result<(Sealer, Opener), BulkError> {
    if secret.len() != SECRET_LEN {
        return Err(BulkError::BadSecret);
    }
    let to_server = Direction::new(CONTEXT_FETCHER_TO_SERVER, secret)?;
    let to_fetcher = Direction::new(CONTEXT_SERVER_TO_FETCHER, secret)?;
    Ok(match role {
        Role::Fetcher => (Sealer(to_server), Opener(to_fetcher)),
        Role::Server => (Sealer(to_fetcher), Opener(to_server)),
    })
}

impl Sealer {
    /// Encrypts `plaintext` in place and appends the tag: the buffer becomes the frame body.
    pub fn seal(&mut self, buf: &mut Vec<u8>) -> Result<(), BulkError> {
        if buf.len() + TAG_LEN > MAX_FRAME_LEN {
            return Err(BulkError::Malformed("frame over the limit"));
        }
        let nonce = self.0.next_nonce()?;
        let tag =
            self.0.key.seal_in_place_separate_tag(nonce, Aad::empty(), buf).map_err(|_| BulkError::Unauthentic)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }
}

impl Opener {
    /// Checks and decrypts a frame body in place; on success the buffer holds the plaintext.
    pub fn open(&mut self, buf: &mut Vec<u8>) -> Result<(), BulkError> {
        if buf.len() < TAG_LEN {
            return Err(BulkError::Malformed("frame shorter than its tag"));
        }
        let nonce = self.0.next_nonce()?;
        let len = self.0.key.open_in_place(nonce, Aad::empty(), buf).map_err(|_| BulkError::Unauthentic)?.len();
        buf.truncate(len);
        Ok(())
    }
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

    fn pair() -> ((Sealer, Opener), (Sealer, Opener)) {
        let secret = [42u8; SECRET_LEN];
        (channel(Role::Fetcher, &secret).unwrap(), channel(Role::Server, &secret).unwrap())
    }

    #[test]
    fn frames_cross_in_both_directions() {
        let ((mut f_seal, mut f_open), (mut s_seal, mut s_open)) = pair();
        for i in 0..3u8 {
            let mut buf = vec![i; 1000];
            f_seal.seal(&mut buf).unwrap();
            assert_ne!(&buf[..1000], &[i; 1000][..], "the frame is encrypted");
            s_open.open(&mut buf).unwrap();
            assert_eq!(buf, vec![i; 1000]);
            let mut back = b"chunk bytes".to_vec();
            s_seal.seal(&mut back).unwrap();
            f_open.open(&mut back).unwrap();
            assert_eq!(back, b"chunk bytes");
        }
    }

    #[test]
    fn altered_replayed_reflected_and_foreign_frames_are_refused() {
        let ((mut f_seal, _), (_, mut s_open)) = pair();
        // Altered: one flipped bit anywhere.
        let mut a = b"request one".to_vec();
        f_seal.seal(&mut a).unwrap();
        a[3] ^= 1;
        assert_eq!(s_open.open(&mut a), Err(BulkError::Unauthentic));
        // After a failure the counters disagree: the connection is over, as the server does.
        let ((mut f_seal, mut f_open), (mut s_seal, mut s_open)) = pair();
        let mut first = b"first".to_vec();
        f_seal.seal(&mut first).unwrap();
        let replay = first.clone();
        s_open.open(&mut first).unwrap();
        // Replayed: the same frame again does not open under the next counter.
        assert_eq!(s_open.open(&mut replay.clone()), Err(BulkError::Unauthentic));
        // Reflected: a fetcher's frame sent back to the fetcher does not open (other key).
        let mut mine = b"mine".to_vec();
        f_seal.seal(&mut mine).unwrap();
        assert_eq!(f_open.open(&mut mine), Err(BulkError::Unauthentic));
        // Foreign: a frame from another channel's secret.
        let (mut other_seal, _) = channel(Role::Server, &[1u8; SECRET_LEN]).unwrap();
        let mut foreign = b"chunk".to_vec();
        other_seal.seal(&mut foreign).unwrap();
        assert_eq!(f_open.open(&mut foreign), Err(BulkError::Unauthentic));
        let _ = s_seal.seal(&mut Vec::new());
        assert!(matches!(f_open.open(&mut vec![0u8; 3]), Err(BulkError::Malformed(_))));
        assert_eq!(channel(Role::Fetcher, &[0u8; 31]).err(), Some(BulkError::BadSecret));
    }

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
