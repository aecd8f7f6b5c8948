//! Lien's protocol: the pure types and rules every Lien implementation shares.
//!
//! This crate does no I/O beyond reading from a caller's [`std::io::Read`], runs no async code
//! and knows nothing of libp2p or storage. It defines:
//!
//! - [`id`]: BLAKE3-256 content ids (a file's id is exactly what `b3sum` prints);
//! - [`keys`]: publisher signing keys and signatures (ed25519);
//! - [`cbor`]: the canonical CBOR encoding every signed or hashed structure uses, and a strict
//!   decoder that rejects any input that is not the one canonical encoding;
//! - [`chunk`]: chunking, one-pass hashing and the chunk lists that let any chunk be verified on
//!   its own, before it is stored;
//! - [`path`], [`slug`], [`metadata`], [`manifest`]: the signed description of a dataset;
//! - [`name`]: signed `publisher/slug → manifest` records kept in the DHT;
//! - [`wire`]: the messages of the transfer protocol, with their size limits.
//!
//! See `docs/wire.md` at the repository root for the byte-level contract.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bulk;
pub mod cbor;
pub mod chunk;
pub mod id;
pub mod keys;
pub mod manifest;
pub mod metadata;
pub mod name;
pub mod path;
pub mod slug;
pub mod trust;
pub mod wire;

pub use chunk::{ChunkList, ChunkSize, FileDigest};
pub use id::ContentId;
pub use keys::{PublisherKey, PublisherSecret, Signature};
pub use manifest::{FileEntry, FileList, Manifest, ManifestBody, ManifestError};
pub use metadata::Metadata;
pub use name::NameRecord;
pub use path::RelPath;
pub use slug::Slug;
