//! Trust and audit endpoints: the trust store (`/v1/trust`), signing delegations and revocations
//! (`/v1/delegate`, `/v1/revoke`), importing records (`/v1/trust/records`) and the audit log
//! (`/v1/audit`). Trust records travel as lowercase hex of their canonical CBOR bytes.

use axum::extract::{Path as UrlPath, State};
use axum::Json;
use lien_protocol::trust::{Admission, TrustRecord};
use lien_protocol::PublisherKey;
use serde::{Deserialize, Serialize};

use lien_node::audit::AuditEntry;
use lien_node::store::TrustKind;

use crate::error::ApiError;
use crate::extract::{blocking, ApiJson, ApiQuery};
use crate::state::ApiState;

/// The trust store as `lien trust ls` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustView {
    /// This node's own key (what a root delegates to give the node read access).
    pub node_key: String,
    /// This node's publisher key (what a root delegates to let it publish).
    pub publisher: String,
    /// Roots whose delegations are accepted.
    pub roots: Vec<String>,
    /// Publishers accepted directly.
    pub publishers: Vec<String>,
    /// Longest delegation chain accepted.
    pub max_depth: usize,
    /// True when nothing is configured: any validly signed manifest is accepted.
    pub open: bool,
}

/// `POST /v1/trust` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustKeyBody {
    /// The key (52-character form).
    pub key: String,
    /// `root` or `publisher`.
    pub kind: String,
}

/// A trust record, as returned by delegate, revoke and import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordView {
    /// The record's id.
    pub id: String,
    /// `delegation` or `revocation`.
    pub kind: String,
    /// One line for people.
    pub summary: String,
    /// The record: hex of its canonical bytes (give it to `lien trust import`).
    pub record: String,
    /// What this node did with it: `admitted` (stored, gossiped, served), `known`, or
    /// `not-trusted` (its issuer is not trusted here to sign it: held in memory only, used if the
    /// issuer becomes trusted), or `refused: REASON` (over a per-key bound).
    #[serde(default)]
    pub status: String,
}

/// `POST /v1/trust/records` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportBody {
    /// Hex of a record's canonical bytes.
    pub record: String,
}

/// `POST /v1/delegate` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DelegateBody {
    /// The key vouched for.
    pub to: String,
    /// Its organisation.
    pub organisation: String,
    /// Allowed dataset-name prefix (empty: any).
    #[serde(default)]
    pub prefix: String,
    /// Days of validity from now.
    #[serde(default = "default_days")]
    pub days: u64,
    /// Whether the subject may delegate further.
    #[serde(default)]
    pub can_delegate: bool,
}

fn default_days() -> u64 {
    365
}

/// `POST /v1/revoke` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeBody {
    /// The key withdrawn.
    pub key: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `GET /v1/audit` query.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditQuery {
    /// How many of the newest entries to return.
    #[serde(default = "default_audit_limit")]
    pub limit: usize,
}

fn default_audit_limit() -> usize {
    50
}

/// The audit log's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditView {
    /// The log file.
    pub path: String,
    /// Entries in the log.
    pub entries: u64,
    /// Whether the hash chain verifies.
    pub intact: bool,
    /// Where and why it does not, when it does not.
    pub error: Option<String>,
    /// The newest entries, oldest first.
    pub last: Vec<AuditEntry>,
}

fn parse_key(text: &str) -> Result<PublisherKey, ApiError> {
    text.parse().map_err(|e| ApiError::bad_request(format!("invalid key {text:?}: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>, ApiError> {
    let t = text.trim();
    if t.len() % 2 != 0 || t.len() > 2 * lien_protocol::trust::MAX_TRUST_RECORD_LEN {
        return Err(ApiError::bad_request("record must be an even number of hex digits, at most 4096"));
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::bad_request("record is not hex"))
}

fn view(bytes: &[u8]) -> Result<RecordView, ApiError> {
    let record = TrustRecord::decode(bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let id = record.id().map_err(|e| ApiError::internal(e.to_string()))?.to_string();
    let (kind, summary) = match &record {
        TrustRecord::Delegation(d) => {
            let b = &d.body;
            let prefix = if b.prefix.is_empty() { "any name".to_owned() } else { format!("names {}*", b.prefix) };
            (
                "delegation",
                format!("{} vouches for {} ({}), {prefix}, until {}", b.issuer, b.subject, b.organisation, b.not_after),
            )
        }
        TrustRecord::Revocation(r) => {
            ("revocation", format!("{} revokes {}: {}", r.body.issuer, r.body.subject, r.body.reason))
        }
    };
    Ok(RecordView { id, kind: kind.into(), summary, record: hex(bytes), status: "admitted".to_owned() })
}

fn trust_view(state: &ApiState) -> TrustView {
    let node = &state.node;
    let policy = node.trust_policy();
    TrustView {
        node_key: node.node_key().map(|k| k.to_string()).unwrap_or_default(),
        publisher: node.publisher().to_string(),
        open: policy.roots.is_empty() && policy.publishers.is_empty(),
        roots: policy.roots.iter().map(|k| k.to_string()).collect(),
        publishers: policy.publishers.iter().map(|k| k.to_string()).collect(),
        max_depth: policy.max_depth,
    }
}

/// `GET /v1/trust`
pub(crate) async fn list(State(state): State<ApiState>) -> Json<TrustView> {
    Json(trust_view(&state))
}

/// `POST /v1/trust`
pub(crate) async fn add(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<TrustKeyBody>,
) -> Result<Json<TrustView>, ApiError> {
    let key = parse_key(&body.key)?;
    let kind = match body.kind.as_str() {
        "root" => TrustKind::Root,
        "publisher" => TrustKind::Publisher,
        other => return Err(ApiError::bad_request(format!("kind must be root or publisher, not {other:?}"))),
    };
    state.node.trust_add(key, kind).await?;
    Ok(Json(trust_view(&state)))
}

/// `DELETE /v1/trust/{key}`
pub(crate) async fn remove(
    State(state): State<ApiState>,
    UrlPath(key): UrlPath<String>,
) -> Result<Json<TrustView>, ApiError> {
    let key = parse_key(&key)?;
    if !state.node.trust_remove(key).await? {
        return Err(ApiError::not_found(format!(
            "{key} was not added with `lien trust add` (keys in lien.toml are removed there)"
        )));
    }
    Ok(Json(trust_view(&state)))
}

/// `POST /v1/trust/records`
pub(crate) async fn import(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<Json<RecordView>, ApiError> {
    let bytes = unhex(&body.record)?;
    let mut shown = view(&bytes)?;
    let (_, admission) = state.node.import_trust_record(bytes).await?;
    shown.status = match admission {
        Admission::Admitted => "admitted".to_owned(),
        Admission::Known => "known".to_owned(),
        Admission::Pending => "not-trusted".to_owned(),
        Admission::Refused(why) => format!("refused: {why}"),
    };
    Ok(Json(shown))
}

/// `POST /v1/delegate`
pub(crate) async fn delegate(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<DelegateBody>,
) -> Result<Json<RecordView>, ApiError> {
    let to = parse_key(&body.to)?;
    let bytes = state.node.delegate(to, &body.organisation, &body.prefix, body.days, body.can_delegate).await?;
    Ok(Json(view(&bytes)?))
}

/// `POST /v1/revoke`
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<RevokeBody>,
) -> Result<Json<RecordView>, ApiError> {
    let key = parse_key(&body.key)?;
    let bytes = state.node.revoke(key, &body.reason).await?;
    Ok(Json(view(&bytes)?))
}

/// `GET /v1/audit`
pub(crate) async fn audit(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditView>, ApiError> {
    let node = state.node.clone();
    let limit = q.limit.min(10_000);
    blocking(move || {
        let path = node.audit_path();
        let (mut intact, mut error) = match node.audit_verify() {
            Ok(_) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        };
        // A log that failed verification at start was set aside as evidence: keep reporting it
        // until the operator has dealt with it (moved it out of the home).
        let home = node.config().home.clone();
        if let Ok(dir) = std::fs::read_dir(&home) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("audit.broken-") {
                    intact = false;
                    error = Some(format!(
                        "an earlier audit log failed verification and was set aside as {}",
                        entry.path().display()
                    ));
                }
            }
        }
        let mut last = std::collections::VecDeque::new();
        let mut entries = 0;
        if path.exists() {
            for item in lien_node::audit::read(&path).map_err(|e| ApiError::internal(e.to_string()))? {
                entries += 1;
                if let Ok((_, e)) = item {
                    last.push_back(e);
                    if last.len() > limit {
                        last.pop_front();
                    }
                }
            }
        }
        Ok(Json(AuditView { path: path.display().to_string(), entries, intact, error, last: last.into() }))
    })
    .await
}
