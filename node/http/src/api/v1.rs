//! The JSON endpoints under `/v1`: one per CLI command.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lien_node::fetch::{FetchOptions, FetchProgress};
use lien_node::local::{files_of, summary as local_summary, FileState};
use lien_node::publish::PublishRequest;
use lien_protocol::{ChunkSize, ContentId, Manifest, Metadata, Slug};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::types::{
    ConnectBody, ConnectResult, DatasetSummary, FileInfo, GetBody, LocalChange, LocalInfo, ManifestInfo, Progress,
    PublishBody, PublishResult, ResolveResult, StatusInfo, StreamLine, VerifyReport,
};
use crate::error::ApiError;
use crate::extract::{blocking, ApiJson, ApiQuery};
use crate::state::ApiState;

/// Most search results returned at once.
const MAX_SEARCH_LIMIT: usize = 1000;
/// How long name resolution may look in the DHT.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);
/// Interval between progress lines of a streamed operation.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Parses a manifest id from a URL or body.
pub(crate) fn parse_id(text: &str) -> Result<ContentId, ApiError> {
    text.parse().map_err(|e| ApiError::bad_request(format!("invalid manifest id {text:?}: {e}")))
}

fn summary(m: &Manifest) -> DatasetSummary {
    let b = m.body();
    DatasetSummary {
        id: m.id().to_string(),
        name: m.name(),
        version: b.version,
        title: b.metadata.title.clone(),
        files: b.files.count(),
        size: b.files.total_size(),
    }
}

/// `GET /v1/status`
pub(crate) async fn status(State(state): State<ApiState>) -> Result<Json<StatusInfo>, ApiError> {
    let node = &state.node;
    let peers = node.peers().await?.len();
    let listen_addrs = node.listen_addrs().await?.iter().map(ToString::to_string).collect();
    let usage = node.usage().await?;
    Ok(Json(StatusInfo {
        peer_id: node.peer_id().to_string(),
        publisher: node.publisher().to_string(),
        network: node.config().network.clone(),
        listen_addrs,
        peers,
        datasets: usage.datasets,
        catalog: usage.catalog,
        store_bytes: usage.store_bytes,
        data_bytes: usage.data_bytes,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }))
}

/// `GET /v1/peers`
pub(crate) async fn peers(State(state): State<ApiState>) -> Result<Json<Vec<super::types::PeerInfo>>, ApiError> {
    Ok(Json(state.node.peers().await?.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
    limit: Option<usize>,
}

/// `GET /v1/search?q=WORDS&limit=N`
pub(crate) async fn search(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<Vec<DatasetSummary>>, ApiError> {
    let limit = query.limit.unwrap_or(20).clamp(1, MAX_SEARCH_LIMIT);
    // The node's in-memory catalog index (newest version of each name, ranked), as the portal's
    // searches: 22 ms for broad words at 100k manifests (BENCHMARKS.md).
    let node = state.node.clone();
    let text = query.q;
    let found = blocking(move || Ok(node.search(&text, limit)?.iter().map(summary).collect())).await?;
    Ok(Json(found))
}

/// `GET /v1/datasets/{id}`
pub(crate) async fn show(
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<ManifestInfo>, ApiError> {
    let id = parse_id(&id)?;
    let store = state.node.store().clone();
    let node = state.node.clone();
    let info = blocking(move || {
        let m = store.manifest(&id)?.ok_or_else(|| ApiError::not_found(format!("no manifest {id} is known here")))?;
        let organisation = node.organisation_of(&m);
        let trust = match node.check_trust(&m) {
            Ok(lien_protocol::trust::Trusted::Open) => "open network (no trust roots configured)".to_owned(),
            Ok(lien_protocol::trust::Trusted::Direct) => "trusted directly".to_owned(),
            Ok(lien_protocol::trust::Trusted::Delegated { organisations }) => {
                format!("delegated: {}", organisations.join(" <- "))
            }
            Err(e @ lien_protocol::trust::TrustError::Revoked(_)) => format!("REVOKED: {e}"),
            Err(e) => format!("untrusted: {e}"),
        };
        let b = m.body();
        let files = files_of(&store, &m)?.map(|entries| entries.iter().map(FileInfo::from).collect());
        let versions = store.versions(&b.publisher, &b.slug)?.into_iter().map(|(v, id)| (v, id.to_string())).collect();
        let local = match store.local(&id)? {
            Some(d) => Some(LocalInfo::from(local_summary(&store, &d)?)),
            None => None,
        };
        Ok(ManifestInfo {
            id: id.to_string(),
            name: m.name(),
            publisher: b.publisher.to_string(),
            slug: b.slug.to_string(),
            version: b.version,
            previous: b.previous.map(|p| p.to_string()),
            created: b.created,
            metadata: b.metadata.clone(),
            file_count: b.files.count(),
            size: b.files.total_size(),
            files,
            signature: "valid".into(),
            trust,
            organisation,
            versions,
            local,
        })
    })
    .await?;
    Ok(Json(info))
}

/// `GET /v1/names/{publisher}/{slug}`
pub(crate) async fn resolve(
    State(state): State<ApiState>,
    UrlPath((publisher, slug)): UrlPath<(String, String)>,
) -> Result<Json<ResolveResult>, ApiError> {
    let name = format!("{publisher}/{slug}");
    let (publisher, slug) = lien_node::node::parse_name(&name)?;
    let target = lien_node::Target::Name { publisher, slug };
    match tokio::time::timeout(RESOLVE_TIMEOUT, state.node.resolve_target(&target)).await {
        Ok(id) => Ok(Json(ResolveResult { id: id?.to_string() })),
        Err(_) => Err(ApiError::not_found(format!("timed out resolving {name}"))),
    }
}

/// `GET /v1/local`
pub(crate) async fn local(State(state): State<ApiState>) -> Result<Json<Vec<LocalInfo>>, ApiError> {
    Ok(Json(state.node.local_datasets().await?.into_iter().map(LocalInfo::from).collect()))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProgressQuery {
    #[serde(default)]
    progress: bool,
}

/// Runs a long operation. With `?progress=true` the answer is NDJSON: [`StreamLine::Progress`]
/// lines, then one `result` or `error` line (the status is then 200, the error's own status is in
/// the line); if the client goes away, the operation is cancelled. Without it, the answer is the
/// plain JSON result or error.
async fn run<T, F, Fut>(stream: bool, op: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(watch::Sender<Progress>) -> Fut,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
{
    let (progress_tx, mut progress_rx) = watch::channel(Progress::default());
    let fut = op(progress_tx);
    if !stream {
        return match fut.await {
            Ok(v) => Json(v).into_response(),
            Err(e) => e.into_response(),
        };
    }
    let (lines_tx, lines_rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        tokio::pin!(fut);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        let mut last = None;
        let result = loop {
            tokio::select! {
                r = &mut fut => break r,
                _ = tick.tick() => {
                    let p = *progress_rx.borrow_and_update();
                    if last != Some(p) {
                        last = Some(p);
                        if lines_tx.send(ndjson(&StreamLine::<T>::Progress(p))).await.is_err() {
                            return; // the client went away: drop (cancel) the operation
                        }
                    }
                }
            }
        };
        let last_line = match result {
            Ok(v) => StreamLine::Result(v),
            Err(e) => StreamLine::Error { status: e.status.as_u16(), error: e.detail() },
        };
        let _ = lines_tx.send(ndjson(&last_line)).await;
    });
    let body = futures::stream::unfold(lines_rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response()
}

fn ndjson<T: Serialize>(line: &T) -> Bytes {
    let mut v = serde_json::to_vec(line).unwrap_or_else(|e| {
        format!(r#"{{"error":{{"status":500,"error":{{"code":"internal","message":"cannot encode: {e}"}}}}}}"#)
            .into_bytes()
    });
    v.push(b'\n');
    Bytes::from(v)
}

/// `POST /v1/publish[?progress=true]`
pub(crate) async fn publish(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<ProgressQuery>,
    ApiJson(body): ApiJson<PublishBody>,
) -> Result<Response, ApiError> {
    let slug: Slug =
        body.name.parse().map_err(|e| ApiError::bad_request(format!("invalid dataset name {:?}: {e}", body.name)))?;
    if !body.path.is_absolute() {
        return Err(ApiError::bad_request(format!("path {} must be absolute", body.path.display())));
    }
    let metadata = Metadata {
        title: body.title,
        description: body.description,
        keywords: body.keywords,
        license: body.license,
        themes: body.themes,
        spatial: body.spatial,
        temporal: body.temporal,
        organisation: body.organisation,
        contact: body.contact,
        languages: body.languages,
        readers: body.readers,
    };
    metadata.validate().map_err(|e| ApiError::bad_request(format!("invalid metadata: {e}")))?;
    let chunk_size = match body.chunk_size {
        Some(n) => ChunkSize::new(n).map_err(|e| ApiError::bad_request(format!("invalid chunk size {n}: {e}")))?,
        None => ChunkSize::DEFAULT,
    };
    let req = PublishRequest { path: body.path, slug, metadata, in_place: body.in_place, chunk_size };
    let node = state.node.clone();
    Ok(run(q.progress, move |progress| async move {
        let report = Arc::new(move |done, total| {
            progress.send_replace(Progress { done, total, peers: 0 });
        });
        let m = node.publish(req, report).await?;
        tracing::info!(id = %m.id(), name = %m.name(), version = m.body().version, "published");
        Ok(PublishResult {
            id: m.id().to_string(),
            name: m.name(),
            version: m.body().version,
            files: m.body().files.count(),
            size: m.body().files.total_size(),
        })
    })
    .await)
}

/// Counts a fetch as active while it lives.
pub(crate) struct ActiveFetch(Arc<AtomicU64>);

impl ActiveFetch {
    pub(crate) fn new(counter: Arc<AtomicU64>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for ActiveFetch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `POST /v1/get[?progress=true]`
pub(crate) async fn get(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<ProgressQuery>,
    ApiJson(body): ApiJson<GetBody>,
) -> Result<Response, ApiError> {
    if !body.dir.is_absolute() {
        return Err(ApiError::bad_request(format!("dir {} must be absolute", body.dir.display())));
    }
    let target = lien_node::node::parse_target(&body.target)?;
    let timeout = Duration::from_secs(body.timeout_secs.unwrap_or(60).max(1));
    let node = state.node.clone();
    let active = state.fetches_active.clone();
    Ok(run(q.progress, move |progress| async move {
        let _active = ActiveFetch::new(active);
        let report = Arc::new(move |p: FetchProgress| {
            progress.send_replace(Progress { done: p.done, total: p.total, peers: p.peers });
        });
        let opts = FetchOptions { timeout, progress: Some(report) };
        let r = node.fetch_target(&target, &body.dir, opts).await?;
        tracing::info!(id = %r.manifest, name = %r.name, bytes = r.downloaded_bytes, "fetched");
        Ok(super::types::GetResult::from(r))
    })
    .await)
}

/// `POST /v1/connect`
pub(crate) async fn connect(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<ConnectBody>,
) -> Result<Json<ConnectResult>, ApiError> {
    let addr: libp2p::Multiaddr =
        body.addr.parse().map_err(|e| ApiError::bad_request(format!("invalid multiaddr {:?}: {e}", body.addr)))?;
    if lien_node::network::peer_id_of(&addr).is_none() {
        return Err(ApiError::bad_request(format!("{addr} does not end in /p2p/<peer id>")));
    }
    let peer = state.node.connect(addr).await.map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(Json(ConnectResult { peer_id: peer.to_string() }))
}

async fn set_pinned(state: ApiState, id: String, pinned: bool) -> Result<Json<LocalChange>, ApiError> {
    let id = parse_id(&id)?;
    let d = state.node.set_pinned(id, pinned).await?;
    Ok(Json(LocalChange {
        id: id.to_string(),
        action: if pinned { "pinned" } else { "unpinned" }.into(),
        detail: d.root.display().to_string(),
    }))
}

/// `POST /v1/local/{id}/pin`
pub(crate) async fn pin(
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<LocalChange>, ApiError> {
    set_pinned(state, id, true).await
}

/// `POST /v1/local/{id}/unpin`
pub(crate) async fn unpin(
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<LocalChange>, ApiError> {
    set_pinned(state, id, false).await
}

/// `DELETE /v1/local/{id}`: forgets the dataset and stops serving its files (`Node::remove_local`:
/// files in the node's data folder are deleted, those in a folder of the user's left in place,
/// files another local dataset lists kept).
pub(crate) async fn remove(
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<LocalChange>, ApiError> {
    let id = parse_id(&id)?;
    let r = state.node.remove_local(id).await?;
    Ok(Json(LocalChange {
        id: id.to_string(),
        action: "removed".into(),
        detail: format!("{} files deleted, {} left in place under {}", r.deleted, r.left, r.root.display()),
    }))
}

/// `POST /v1/local/{id}/verify`: re-hashes every file of a local dataset (`Node::verify_local`).
pub(crate) async fn verify(
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<VerifyReport>, ApiError> {
    let id = parse_id(&id)?;
    let checks = state.node.verify_local(id).await?;
    let ok = checks.iter().all(|f| f.state == FileState::Ok);
    Ok(Json(VerifyReport { id: id.to_string(), ok, files: checks.into_iter().map(Into::into).collect() }))
}
