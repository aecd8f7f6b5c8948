//! The JSON bodies of the `/v1` API, shared by the server and its clients (the `lien` CLI).

use std::path::PathBuf;

use lien_node::local::{FileCheck, LocalSummary};
use lien_node::store::LocalKind;
use serde::{Deserialize, Serialize};

/// The body of every 4xx/5xx answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`bad_request`, `not_found`, `unauthorized`, ...).
    pub code: String,
    /// One human line naming what was wrong.
    pub message: String,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The node's peer id.
    pub peer_id: String,
    /// This node's publisher key (text form).
    pub publisher: String,
    /// Network name.
    pub network: String,
    /// Full listen multiaddrs.
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Datasets held locally (published or fetched).
    pub datasets: usize,
    /// Manifests in the catalog (datasets known on the network).
    pub catalog: u64,
    /// Size of the store file in bytes.
    pub store_bytes: u64,
    /// Bytes of dataset files held locally.
    pub data_bytes: u64,
    /// Version of the node software.
    pub version: String,
}

/// One connected peer (`GET /v1/peers`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Peer id.
    pub peer_id: String,
    /// Addresses of open connections.
    pub addrs: Vec<String>,
    /// Agent version reported by identify, if known.
    pub agent: Option<String>,
}

impl From<lien_node::network::PeerInfo> for PeerInfo {
    fn from(p: lien_node::network::PeerInfo) -> Self {
        Self { peer_id: p.peer_id, addrs: p.addrs, agent: p.agent }
    }
}

/// A dataset as listed by search (`GET /v1/search`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// Manifest id (64 hex).
    pub id: String,
    /// `publisher/slug`.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Title.
    pub title: String,
    /// Number of files.
    pub files: u64,
    /// Total bytes.
    pub size: u64,
}

/// One file of a manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileInfo {
    /// Relative path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// File id (BLAKE3, 64 hex).
    pub id: String,
    /// Media type.
    pub media_type: String,
    /// Chunk size in bytes.
    pub chunk_size: u64,
}

impl From<&lien_protocol::FileEntry> for FileInfo {
    fn from(e: &lien_protocol::FileEntry) -> Self {
        Self {
            path: e.path.to_string(),
            size: e.size,
            id: e.id.to_string(),
            media_type: e.media_type.clone(),
            chunk_size: e.chunk_size.bytes(),
        }
    }
}

/// A manifest in full (`GET /v1/datasets/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestInfo {
    /// Manifest id.
    pub id: String,
    /// `publisher/slug`.
    pub name: String,
    /// Publisher key.
    pub publisher: String,
    /// Dataset name.
    pub slug: String,
    /// Version number.
    pub version: u64,
    /// Previous version's manifest id.
    pub previous: Option<String>,
    /// Creation time, unix seconds.
    pub created: u64,
    /// Descriptive metadata.
    pub metadata: lien_protocol::Metadata,
    /// Number of files.
    pub file_count: u64,
    /// Total bytes.
    pub size: u64,
    /// The files, when the list is known here (inline, or its blob is stored).
    pub files: Option<Vec<FileInfo>>,
    /// Signature status: always `"valid"` (the catalog only holds verified manifests).
    pub signature: String,
    /// Whether this node trusts the publisher for this name now: `open network`, `trusted
    /// directly`, `delegated by ...`, or `REVOKED: ...` / `untrusted: ...` (e.g. a key revoked
    /// after the manifest was stored).
    #[serde(default)]
    pub trust: String,
    /// Who published it: verified through the trust chain, or only declared in the metadata.
    #[serde(default = "unknown_organisation")]
    pub organisation: lien_node::trust::Organisation,
    /// Every version of this name known here: (version, manifest id), oldest first.
    pub versions: Vec<(u64, String)>,
    /// Whether this node holds the dataset, and how completely.
    pub local: Option<LocalInfo>,
}

/// A dataset held on this machine (`GET /v1/local`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalInfo {
    /// Manifest id.
    pub id: String,
    /// `publisher/slug`, when the manifest is known.
    pub name: Option<String>,
    /// Version, when the manifest is known.
    pub version: Option<u64>,
    /// Title, when the manifest is known.
    pub title: Option<String>,
    /// `published` or `fetched`.
    pub kind: String,
    /// Kept even when space runs short.
    pub pinned: bool,
    /// Whether every file is present and verified.
    pub complete: bool,
    /// Folder holding the files.
    pub root: PathBuf,
    /// Total bytes of the dataset.
    pub size: u64,
    /// Bytes present.
    pub present: u64,
}

impl From<LocalSummary> for LocalInfo {
    fn from(l: LocalSummary) -> Self {
        LocalInfo {
            id: l.id.to_string(),
            name: l.name,
            version: l.version,
            title: l.title,
            kind: match l.kind {
                LocalKind::Published => "published".into(),
                LocalKind::Fetched => "fetched".into(),
            },
            pinned: l.pinned,
            complete: l.complete,
            root: l.root,
            size: l.size,
            present: l.present,
        }
    }
}

/// `POST /v1/publish`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    /// Absolute path of a file or folder on the daemon's machine.
    pub path: PathBuf,
    /// Dataset name (slug).
    pub name: String,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// License.
    #[serde(default)]
    pub license: String,
    /// Keywords.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Themes (`dcat:theme`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub themes: Vec<String>,
    /// Publishing organisation's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub organisation: String,
    /// Spatial coverage.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spatial: String,
    /// Temporal coverage, e.g. `2020/2025`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub temporal: String,
    /// Contact point (an e-mail address or a name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub contact: String,
    /// Languages (`vi`, `en`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// Organisations allowed to read the data (restricted dataset); empty = public.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<String>,
    /// Serve the files where they are instead of copying them.
    #[serde(default)]
    pub in_place: bool,
    /// Chunk size in bytes (default 1 MiB).
    #[serde(default)]
    pub chunk_size: Option<u64>,
}

/// The answer to a publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishResult {
    /// Manifest id.
    pub id: String,
    /// `publisher/slug`.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Number of files.
    pub files: u64,
    /// Total bytes.
    pub size: u64,
}

/// `POST /v1/get`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetBody {
    /// Manifest id or `publisher/slug`.
    pub target: String,
    /// Absolute folder to put the files in.
    pub dir: PathBuf,
    /// Seconds to look for providers before giving up (default 60).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// The answer to a get.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetResult {
    /// The manifest fetched.
    pub manifest: String,
    /// `publisher/slug`.
    pub name: String,
    /// Folder the files are in.
    pub root: PathBuf,
    /// Files in the dataset.
    pub files: usize,
    /// Bytes in the dataset.
    pub total_bytes: u64,
    /// Bytes downloaded in this run (the rest was already present).
    pub downloaded_bytes: u64,
    /// Bytes received from each peer.
    pub per_peer: std::collections::BTreeMap<String, u64>,
    /// Peers dropped for sending bad data.
    pub bad_peers: Vec<String>,
}

impl From<lien_node::fetch::FetchReport> for GetResult {
    fn from(r: lien_node::fetch::FetchReport) -> Self {
        Self {
            manifest: r.manifest.to_string(),
            name: r.name,
            root: r.root,
            files: r.files,
            total_bytes: r.total_bytes,
            downloaded_bytes: r.downloaded_bytes,
            per_peer: r.per_peer,
            bad_peers: r.bad_peers,
        }
    }
}

/// `POST /v1/connect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    /// Full multiaddr ending in `/p2p/<peer id>`.
    pub addr: String,
}

/// The answer to a connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectResult {
    /// The peer connected to.
    pub peer_id: String,
}

/// `GET /v1/names/{publisher}/{slug}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolveResult {
    /// The newest manifest id known for the name.
    pub id: String,
}

/// Progress of a long operation, streamed as NDJSON lines when `?progress=true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Bytes done (hashed, or present and verified).
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
    /// Peers serving (fetches only).
    pub peers: usize,
}

/// One NDJSON line of a streamed operation: progress lines, then one `result` or `error` line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamLine<T> {
    /// Progress so far.
    Progress(Progress),
    /// The operation's answer (the last line).
    Result(T),
    /// The operation's failure (the last line), with the HTTP status it would have had.
    Error {
        /// HTTP status code.
        status: u16,
        /// The error.
        error: ErrorDetail,
    },
}

/// `POST /v1/verify/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Manifest id.
    pub id: String,
    /// True if every file is present and matches its id.
    pub ok: bool,
    /// Each file's state.
    pub files: Vec<VerifyFile>,
}

/// One file checked by verify.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyFile {
    /// Relative path.
    pub path: String,
    /// `ok`, `missing`, `partial` or `damaged`.
    pub status: String,
    /// Details (the path on disk, or what was wrong).
    pub detail: String,
}

impl From<FileCheck> for VerifyFile {
    fn from(f: FileCheck) -> Self {
        VerifyFile { path: f.path, status: f.state.as_str().into(), detail: f.detail }
    }
}

/// The answer to pin, unpin and rm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalChange {
    /// Manifest id.
    pub id: String,
    /// What was done.
    pub action: String,
    /// Details (e.g. files removed, or left in place).
    pub detail: String,
}

fn unknown_organisation() -> lien_node::trust::Organisation {
    lien_node::trust::Organisation::Unknown
}
