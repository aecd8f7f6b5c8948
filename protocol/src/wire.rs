//! Messages of the transfer protocol (`/lien/<network>/transfer/1`).
//!
//! One request and one response per stream. Both are canonical CBOR. A response to
//! [`Request::Chunks`] is followed on the stream by the raw bytes of the chunks it announces
//! (they are verified against the chunk list, so they need no envelope). Framing on the stream:
//!
//! ```text
//! request  := u32-be length, canonical CBOR Request        (length ≤ MAX_REQUEST_LEN)
//! response := u32-be length, canonical CBOR Response       (length ≤ MAX_RESPONSE_LEN)
//!             then, for Response::Chunks, exactly `len` raw bytes (≤ MAX_CHUNKS_PAYLOAD)
//! ```

use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError};
use crate::id::ContentId;

/// Largest encoded request.
pub const MAX_REQUEST_LEN: usize = 1024;
/// Largest encoded response header (a chunk list of 512 Ki chunks, or a catalog page).
pub const MAX_RESPONSE_LEN: usize = 17 * 1024 * 1024;
/// Largest chunk payload following one [`Response::Chunks`].
pub const MAX_CHUNKS_PAYLOAD: u64 = 16 * 1024 * 1024;
/// Longest wait a [`Request::Watch`] may ask for.
pub const MAX_WATCH_WAIT_MS: u32 = 10_000;
/// Most manifests in one catalog page.
pub const MAX_CATALOG_PAGE: u32 = 256;

/// A request from a fetching node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The signed manifest with this id.
    Manifest {
        /// Manifest id.
        id: ContentId,
    },
    /// The file-list blob with this id.
    FileList {
        /// Blob id.
        id: ContentId,
    },
    /// The chunk list of a file.
    ChunkList {
        /// File id.
        file: ContentId,
    },
    /// Which chunks of a file the responder holds.
    Have {
        /// File id.
        file: ContentId,
    },
    /// Pushed availability (a long poll): which chunks of a file the responder holds, answered
    /// with [`Response::Have`] as soon as it holds a number of them other than `known` (or the
    /// file whole), else after `wait_ms`. A fetcher keeps one outstanding per partial holder and
    /// file, so it learns of each chunk its peers gain within one trip. A responder that predates
    /// it answers `BadRequest` (an unknown variant), and the fetcher polls `Have` instead.
    Watch {
        /// File id.
        file: ContentId,
        /// Chunks the requester last saw the responder hold.
        known: u64,
        /// Longest wait for a change, in milliseconds (at most [`MAX_WATCH_WAIT_MS`]).
        wait_ms: u32,
    },
    /// `count` consecutive chunks of a file starting at `first`.
    Chunks {
        /// File id.
        file: ContentId,
        /// First chunk index.
        first: u64,
        /// Number of chunks.
        count: u32,
    },
    /// A page of the responder's catalog: manifests it stored after position `after`.
    Catalog {
        /// Position to continue from (0 for the start).
        after: u64,
        /// Most manifests wanted (at most [`MAX_CATALOG_PAGE`]).
        limit: u32,
    },
    /// A page of the responder's trust records (delegations, revocations) after position `after`.
    TrustRecords {
        /// Position to continue from (0 for the start).
        after: u64,
        /// Most records wanted (at most [`MAX_CATALOG_PAGE`]).
        limit: u32,
    },
    /// Whether and where the responder offers its bulk data channel (see [`crate::bulk`]): a
    /// responder without one, or of another version, answers with an error, and the requester
    /// keeps using this protocol.
    OpenBulk {
        /// Bulk channel version the requester speaks ([`crate::bulk::VERSION`]).
        version: u32,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The responder does not hold it.
    NotFound,
    /// The request is malformed or over a limit.
    BadRequest,
    /// The requester is not allowed to read it.
    Forbidden,
    /// Too many requests in flight; try later or elsewhere.
    Busy,
    /// The responder failed.
    Internal,
}

/// A response; for `Chunks`, raw bytes follow on the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// A signed manifest's bytes.
    Manifest {
        /// Canonical manifest bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A file-list blob's bytes.
    FileList {
        /// Canonical file-list bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A chunk list's bytes.
    ChunkList {
        /// Concatenated chaining values.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Which chunks are held: bit `i` (LSB first within each byte) is chunk `i`.
    Have {
        /// Chunks in the file.
        count: u64,
        /// The bitmap, `ceil(count / 8)` bytes.
        #[serde(with = "serde_bytes")]
        bitmap: Vec<u8>,
    },
    /// Chunks `first .. first + count`, `len` raw bytes following.
    Chunks {
        /// First chunk index.
        first: u64,
        /// Number of chunks.
        count: u32,
        /// Payload length in bytes.
        len: u64,
    },
    /// A catalog page.
    Catalog {
        /// Signed manifests' bytes.
        manifests: Vec<serde_bytes::ByteBuf>,
        /// Position to ask from next.
        next: u64,
        /// True if more pages follow.
        more: bool,
    },
    /// A page of trust records.
    TrustRecords {
        /// Canonical trust-record bytes.
        records: Vec<serde_bytes::ByteBuf>,
        /// Position to ask from next.
        next: u64,
        /// True if more pages follow.
        more: bool,
    },
    /// The bulk data channel is offered (see [`crate::bulk`]): open TLS 1.3 to `port` on the
    /// address this connection reached, with this node's libp2p identity as client certificate.
    BulkPort {
        /// TCP port of the bulk channel: the server's libp2p TCP listen port.
        port: u16,
    },
    /// A refusal.
    Error {
        /// Why.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
}

/// Why a wire message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a canonical encoding of the message.
    #[error("wire message encoding: {0}")]
    Encoding(#[from] CborError),
    /// A field over its limit.
    #[error("wire message over a limit: {0}")]
    OverLimit(&'static str),
}

impl Request {
    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        Ok(cbor::to_canonical_vec(self)?)
    }

    /// Decodes and checks limits.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let r: Request = cbor::from_canonical_slice(bytes, MAX_REQUEST_LEN)?;
        match &r {
            Request::Catalog { limit, .. } | Request::TrustRecords { limit, .. } if *limit > MAX_CATALOG_PAGE => {
                Err(WireError::OverLimit("page limit"))
            }
            Request::Chunks { count: 0, .. } => Err(WireError::OverLimit("chunk count is zero")),
            Request::Watch { wait_ms, .. } if *wait_ms > MAX_WATCH_WAIT_MS => Err(WireError::OverLimit("watch wait")),
            _ => Ok(r),
        }
    }
}

impl Response {
    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        Ok(cbor::to_canonical_vec(self)?)
    }

    /// Decodes and checks limits.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let r: Response = cbor::from_canonical_slice(bytes, MAX_RESPONSE_LEN)?;
        match &r {
            Response::Chunks { len, .. } if *len > MAX_CHUNKS_PAYLOAD => Err(WireError::OverLimit("chunk payload")),
            Response::Have { count, bitmap } if bitmap.len() as u64 != count.div_ceil(8) => {
                Err(WireError::OverLimit("bitmap length"))
            }
            Response::Catalog { manifests: items, .. } | Response::TrustRecords { records: items, .. }
                if items.len() > MAX_CATALOG_PAGE as usize =>
            {
                Err(WireError::OverLimit("page"))
            }
            _ => Ok(r),
        }
    }

    /// A refusal.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Error { code, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let reqs = [
            Request::Manifest { id: ContentId::of(b"m") },
            Request::Chunks { file: ContentId::of(b"f"), first: 3, count: 4 },
            Request::Catalog { after: 0, limit: 10 },
            Request::OpenBulk { version: 3 },
            Request::Watch { file: ContentId::of(b"f"), known: 7, wait_ms: 2_000 },
        ];
        for r in reqs {
            assert_eq!(Request::decode(&r.encode().unwrap()).unwrap(), r);
        }
        let resps = [
            Response::Have { count: 9, bitmap: vec![0xff, 1] },
            Response::Chunks { first: 0, count: 1, len: 100 },
            Response::error(ErrorCode::NotFound, "no such manifest"),
            Response::Catalog { manifests: vec![serde_bytes::ByteBuf::from(vec![1, 2])], next: 5, more: false },
            Response::BulkPort { port: 4001 },
        ];
        for r in resps {
            assert_eq!(Response::decode(&r.encode().unwrap()).unwrap(), r);
        }
    }

    #[test]
    fn limits_enforced() {
        let big = Request::Catalog { after: 0, limit: 10_000 }.encode().unwrap();
        assert_eq!(Request::decode(&big), Err(WireError::OverLimit("page limit")));
        let zero = Request::Chunks { file: ContentId::of(b"f"), first: 0, count: 0 }.encode().unwrap();
        assert!(Request::decode(&zero).is_err());
        let huge = Response::Chunks { first: 0, count: 1, len: MAX_CHUNKS_PAYLOAD + 1 }.encode().unwrap();
        assert_eq!(Response::decode(&huge), Err(WireError::OverLimit("chunk payload")));
        let bitmap = Response::Have { count: 9, bitmap: vec![1] }.encode().unwrap();
        assert_eq!(Response::decode(&bitmap), Err(WireError::OverLimit("bitmap length")));
        let patient = Request::Watch { file: ContentId::of(b"f"), known: 0, wait_ms: MAX_WATCH_WAIT_MS + 1 };
        assert_eq!(Request::decode(&patient.encode().unwrap()), Err(WireError::OverLimit("watch wait")));
        let long = vec![0u8; MAX_REQUEST_LEN + 1];
        assert!(matches!(Request::decode(&long), Err(WireError::Encoding(CborError::TooLarge { .. }))));
    }

    #[test]
    fn unknown_variant_rejected() {
        let v = ciborium::Value::Map(vec![(ciborium::Value::Text("format_disk".into()), ciborium::Value::Map(vec![]))]);
        let bytes = cbor::to_canonical_vec(&v).unwrap();
        assert!(matches!(Request::decode(&bytes), Err(WireError::Encoding(CborError::UnknownField(_)))));
    }
}
