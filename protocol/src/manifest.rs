//! Manifests: the signed, content-addressed description of one version of a dataset.
//!
//! A [`Manifest`] is a [`ManifestBody`] (publisher key, slug, version, previous version's id,
//! creation time, metadata, files) plus the publisher's ed25519 signature over
//! `"lien/manifest/v1" 0x00 canonical(body)`. Its id is the BLAKE3 hash of its canonical
//! encoding (body and signature together). A gossiped manifest is at most
//! [`MAX_MANIFEST_LEN`] bytes: when the file list would not fit, it moves into its own
//! content-addressed blob (a [`FileList::Blob`] reference) that is fetched like any other.

use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError};
use crate::chunk::ChunkSize;
use crate::id::ContentId;
use crate::keys::{signing_message, KeyError, PublisherKey, PublisherSecret, Signature};
use crate::metadata::{Metadata, MetadataError};
use crate::path::RelPath;
use crate::slug::Slug;

/// Largest encoded manifest, in bytes (it must fit in one gossip message).
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;
/// Largest inline file list, in encoded bytes; bigger lists go into a blob.
pub const MAX_INLINE_FILES_LEN: usize = 48 * 1024;
/// Largest file-list blob, in bytes.
pub const MAX_FILE_LIST_LEN: usize = 64 * 1024 * 1024;
/// Domain-separation tag of manifest signatures.
pub const MANIFEST_DOMAIN: &str = "lien/manifest/v1";

/// Why a manifest or file list was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The bytes are not a canonical encoding of a manifest.
    #[error("manifest encoding: {0}")]
    Encoding(#[from] CborError),
    /// The signature does not verify with the publisher key.
    #[error("manifest signature does not verify")]
    BadSignature,
    /// Signing with a key that is not the body's publisher.
    #[error("signing key {signer} is not the manifest's publisher {publisher}")]
    WrongSigner {
        /// The body's publisher (text form).
        publisher: String,
        /// The key used (text form).
        signer: String,
    },
    /// Version numbers start at 1.
    #[error("version must be at least 1")]
    ZeroVersion,
    /// A first version cannot have a previous version.
    #[error("version 1 cannot name a previous version")]
    PreviousOnFirstVersion,
    /// Invalid metadata.
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    /// A dataset without files.
    #[error("a dataset must hold at least one file")]
    NoFiles,
    /// The same path twice, or paths out of order.
    #[error("file list is not sorted or has a duplicate path at {0:?}")]
    UnsortedOrDuplicatePath(String),
    /// A file path that is also a directory of another file.
    #[error("path {0:?} is both a file and a directory")]
    PathConflict(String),
    /// The encoded manifest would exceed [`MAX_MANIFEST_LEN`].
    #[error("manifest is {0} bytes, over the limit of {MAX_MANIFEST_LEN}")]
    TooLarge(usize),
    /// A file-list blob that does not match its reference.
    #[error("file list blob does not match the manifest: {0}")]
    FileListMismatch(&'static str),
}

/// One file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Where the file goes, relative to the dataset's folder.
    pub path: RelPath,
    /// Size in bytes.
    pub size: u64,
    /// The file's id: its plain BLAKE3 hash.
    pub id: ContentId,
    /// The chunk size used to transfer it.
    pub chunk_size: ChunkSize,
    /// Media type (`text/csv`), if known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
}

/// Where a manifest's file list lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FileList {
    /// The files, sorted by path, inside the manifest.
    Inline(Vec<FileEntry>),
    /// A separate blob with the files (for datasets with very many files).
    Blob(FileListRef),
}

/// A reference to a file-list blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListRef {
    /// Id of the blob (BLAKE3 of its canonical encoding).
    pub id: ContentId,
    /// How many files it lists.
    pub count: u64,
    /// Sum of the files' sizes.
    pub total_size: u64,
}

impl FileList {
    /// Puts `files` inline when they fit, else into a blob; returns the list and the blob bytes.
    pub fn build(mut files: Vec<FileEntry>) -> Result<(FileList, Option<Vec<u8>>), ManifestError> {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        check_files(&files)?;
        let encoded = cbor::to_canonical_vec(&files)?;
        if encoded.len() <= MAX_INLINE_FILES_LEN {
            return Ok((FileList::Inline(files), None));
        }
        let reference = FileListRef {
            id: ContentId::of(&encoded),
            count: files.len() as u64,
            total_size: files.iter().map(|f| f.size).sum(),
        };
        Ok((FileList::Blob(reference), Some(encoded)))
    }

    /// Decodes and checks a file-list blob fetched for `reference`.
    pub fn decode_blob(reference: &FileListRef, bytes: &[u8]) -> Result<Vec<FileEntry>, ManifestError> {
        if ContentId::of(bytes) != reference.id {
            return Err(ManifestError::FileListMismatch("id"));
        }
        let files: Vec<FileEntry> = cbor::from_canonical_slice(bytes, MAX_FILE_LIST_LEN)?;
        check_files(&files)?;
        if files.len() as u64 != reference.count {
            return Err(ManifestError::FileListMismatch("count"));
        }
        if files.iter().map(|f| f.size).sum::<u64>() != reference.total_size {
            return Err(ManifestError::FileListMismatch("total size"));
        }
        Ok(files)
    }

    /// The inline files, if the list is inline.
    pub fn inline(&self) -> Option<&[FileEntry]> {
        match self {
            FileList::Inline(f) => Some(f),
            FileList::Blob(_) => None,
        }
    }

    /// Number of files.
    pub fn count(&self) -> u64 {
        match self {
            FileList::Inline(f) => f.len() as u64,
            FileList::Blob(r) => r.count,
        }
    }

    /// Total bytes of all files.
    pub fn total_size(&self) -> u64 {
        match self {
            FileList::Inline(f) => f.iter().map(|f| f.size).sum(),
            FileList::Blob(r) => r.total_size,
        }
    }
}

/// Files must be strictly sorted by path, and no path may be a directory of another.
fn check_files(files: &[FileEntry]) -> Result<(), ManifestError> {
    if files.is_empty() {
        return Err(ManifestError::NoFiles);
    }
    for w in files.windows(2) {
        if w[0].path >= w[1].path {
            return Err(ManifestError::UnsortedOrDuplicatePath(w[1].path.to_string()));
        }
    }
    // In sorted order, a directory prefix `a` is followed (not necessarily directly) by `a/...`,
    // but anything between them also starts with `a` (e.g. `a-b` sorts between `a` and `a/c`).
    // Checking every path against a stack of its predecessors' prefixes is linear enough here.
    let mut set = std::collections::BTreeSet::new();
    for f in files {
        set.insert(f.path.as_str());
    }
    for f in files {
        let s = f.path.as_str();
        for (i, _) in s.match_indices('/') {
            if set.contains(&s[..i]) {
                return Err(ManifestError::PathConflict(s[..i].to_owned()));
            }
        }
    }
    Ok(())
}

/// Everything a publisher signs about one version of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestBody {
    /// Who publishes it.
    pub publisher: PublisherKey,
    /// The dataset's name under that publisher.
    pub slug: Slug,
    /// Version number, from 1; a higher version replaces a lower one.
    pub version: u64,
    /// Id of the previous version's manifest, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ContentId>,
    /// Creation time, seconds since the Unix epoch (UTC).
    pub created: u64,
    /// Descriptive metadata.
    pub metadata: Metadata,
    /// The files.
    pub files: FileList,
}

impl ManifestBody {
    /// Checks every rule that does not need the signature.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.version == 0 {
            return Err(ManifestError::ZeroVersion);
        }
        if self.version == 1 && self.previous.is_some() {
            return Err(ManifestError::PreviousOnFirstVersion);
        }
        self.metadata.validate()?;
        match &self.files {
            FileList::Inline(files) => check_files(files),
            FileList::Blob(r) if r.count == 0 => Err(ManifestError::NoFiles),
            FileList::Blob(_) => Ok(()),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedManifest {
    body: ManifestBody,
    signature: Signature,
}

/// A verified, signed manifest with its canonical bytes and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    body: ManifestBody,
    signature: Signature,
    bytes: Vec<u8>,
    id: ContentId,
}

impl Manifest {
    /// Validates `body` and signs it with `secret`, which must be the body's publisher.
    pub fn sign(body: ManifestBody, secret: &PublisherSecret) -> Result<Self, ManifestError> {
        body.validate()?;
        if secret.public() != body.publisher {
            return Err(ManifestError::WrongSigner {
                publisher: body.publisher.to_string(),
                signer: secret.public().to_string(),
            });
        }
        let body_bytes = cbor::to_canonical_vec(&body)?;
        let signature = secret.sign(&signing_message(MANIFEST_DOMAIN, &body_bytes));
        let signed = SignedManifest { body, signature };
        let bytes = cbor::to_canonical_vec(&signed)?;
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let id = ContentId::of(&bytes);
        Ok(Self { body: signed.body, signature, bytes, id })
    }

    /// Decodes bytes received from anywhere: canonical form, structure and signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let signed: SignedManifest = cbor::from_canonical_slice(bytes, MAX_MANIFEST_LEN)?;
        signed.body.validate()?;
        let body_bytes = cbor::to_canonical_vec(&signed.body)?;
        signed
            .body
            .publisher
            .verify(&signing_message(MANIFEST_DOMAIN, &body_bytes), &signed.signature)
            .map_err(|_: KeyError| ManifestError::BadSignature)?;
        Ok(Self { body: signed.body, signature: signed.signature, bytes: bytes.to_vec(), id: ContentId::of(bytes) })
    }

    /// The manifest id: BLAKE3 of [`Manifest::bytes`].
    pub fn id(&self) -> ContentId {
        self.id
    }

    /// The canonical signed encoding (what is gossiped and stored).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signed content.
    pub fn body(&self) -> &ManifestBody {
        &self.body
    }

    /// The publisher's signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// `publisher/slug`, the dataset's name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.body.publisher, self.body.slug)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, seed: u8) -> FileEntry {
        FileEntry {
            path: RelPath::new(path).unwrap(),
            size: 10,
            id: ContentId::of(&[seed]),
            chunk_size: ChunkSize::DEFAULT,
            media_type: String::new(),
        }
    }

    fn body(secret: &PublisherSecret, files: Vec<FileEntry>) -> ManifestBody {
        ManifestBody {
            publisher: secret.public(),
            slug: "census".parse().unwrap(),
            version: 1,
            previous: None,
            created: 1_700_000_000,
            metadata: Metadata::titled("Census"),
            files: FileList::build(files).unwrap().0,
        }
    }

    #[test]
    fn sign_decode_round_trip() {
        let secret = PublisherSecret::from_seed(&[3; 32]);
        let m = Manifest::sign(body(&secret, vec![entry("b.csv", 1), entry("a.csv", 2)]), &secret).unwrap();
        let d = Manifest::decode(m.bytes()).unwrap();
        assert_eq!(d, m);
        assert_eq!(d.id(), ContentId::of(m.bytes()));
        assert_eq!(d.body().files.inline().unwrap()[0].path.as_str(), "a.csv");
    }

    #[test]
    fn wrong_signer_rejected() {
        let secret = PublisherSecret::from_seed(&[3; 32]);
        let other = PublisherSecret::from_seed(&[4; 32]);
        assert!(matches!(
            Manifest::sign(body(&secret, vec![entry("a", 1)]), &other),
            Err(ManifestError::WrongSigner { .. })
        ));
    }

    #[test]
    fn structure_rules() {
        let secret = PublisherSecret::from_seed(&[3; 32]);
        assert_eq!(FileList::build(vec![]).unwrap_err(), ManifestError::NoFiles);
        assert!(matches!(
            FileList::build(vec![entry("a", 1), entry("a", 2)]),
            Err(ManifestError::UnsortedOrDuplicatePath(_))
        ));
        assert_eq!(
            FileList::build(vec![entry("a", 1), entry("a-b", 3), entry("a/c", 2)]).unwrap_err(),
            ManifestError::PathConflict("a".into())
        );
        let mut b = body(&secret, vec![entry("a", 1)]);
        b.version = 0;
        assert_eq!(Manifest::sign(b.clone(), &secret).unwrap_err(), ManifestError::ZeroVersion);
        b.version = 1;
        b.previous = Some(ContentId::of(b"x"));
        assert_eq!(Manifest::sign(b, &secret).unwrap_err(), ManifestError::PreviousOnFirstVersion);
    }

    #[test]
    fn many_files_move_into_a_blob() {
        let secret = PublisherSecret::from_seed(&[3; 32]);
        let files: Vec<FileEntry> = (0..5000).map(|i| entry(&format!("dir/file-{i:05}.csv"), i as u8)).collect();
        let (list, blob) = FileList::build(files.clone()).unwrap();
        let blob = blob.unwrap();
        let FileList::Blob(r) = list.clone() else { panic!("expected a blob") };
        assert_eq!(r.count, 5000);
        let m = Manifest::sign(ManifestBody { files: list, ..body(&secret, vec![entry("a", 1)]) }, &secret).unwrap();
        assert!(m.bytes().len() < MAX_MANIFEST_LEN);
        assert_eq!(FileList::decode_blob(&r, &blob).unwrap().len(), 5000);
        let mut bad = blob.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(FileList::decode_blob(&r, &bad).unwrap_err(), ManifestError::FileListMismatch("id"));
    }
}
