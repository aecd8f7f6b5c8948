//! The read-only gateway: `GET /d/{id}/` lists a dataset's files, `GET /d/{id}/{path}` serves one
//! file with `Range`, `ETag` (the file id), `Content-Type` and `Content-Length`, so `curl` or a
//! browser can download a dataset.
//!
//! A dataset (or file) not complete here is fetched first, into the folder of its partial copy
//! or into `HOME/data/<id>`, resuming whatever chunks are already present. Every chunk is
//! verified against the file's chunk list right before its bytes are sent; a chunk that does not
//! verify (the file was damaged or edited on disk) aborts the response, so a client never gets
//! unverified bytes as if they were whole.
//!
//! On a public listener (the portal's) only datasets this node holds (complete or partial) or
//! its mirror policy covers are fetched on demand: anyone can reach it, and an arbitrary id must
//! not make the node download (and keep) whatever it names. Restricted data
//! is never listed or served here (403), nor fetched on demand. That covers a file held here under restricted access, whichever dataset it is asked through
//! (a public manifest may list a restricted file's id; see `store::Readers`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use lien_protocol::{ChunkList, ChunkSize, ContentId, FileEntry, Manifest};
use serde::Serialize;

use lien_node::chunks::{load_chunk_list, mtime_ns, read_open_at};
use lien_node::fetch::FetchOptions;
use lien_node::local::files_of;
use lien_node::store::FileRecord;

use super::types::FileInfo;
use super::v1::{parse_id, ActiveFetch};
use crate::error::ApiError;
use crate::extract::blocking;
use crate::state::ApiState;
use crate::text::{escape, percent_encode};

/// How long an on-demand fetch may look for providers.
const GATEWAY_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// `GET /d/{id}` → `/d/{id}/`.
pub(crate) async fn redirect_to_listing(UrlPath(id): UrlPath<String>) -> Result<Redirect, ApiError> {
    let id = parse_id(&id)?;
    Ok(Redirect::permanent(&format!("/d/{id}/")))
}

/// The manifest and file list of `id`, fetching the dataset when they are not known here.
async fn dataset(state: &ApiState, id: ContentId) -> Result<(Manifest, Vec<FileEntry>), ApiError> {
    let store = state.node.store().clone();
    let load = move || -> Result<Option<(Manifest, Vec<FileEntry>)>, ApiError> {
        let Some(m) = store.manifest(&id)? else { return Ok(None) };
        Ok(files_of(&store, &m)?.map(|files| (m, files)))
    };
    let load_again = load.clone();
    if let Some(found) = blocking(load).await? {
        return Ok(found);
    }
    // A restricted dataset is not fetched here: the gateway never serves it, and holding it
    // would merge its readers into those of files held here that it lists (they only narrow).
    let store = state.node.store().clone();
    if let Some(m) = blocking(move || Ok(store.manifest(&id)?)).await? {
        refuse_restricted(&m)?;
    }
    ensure_local(state, id).await?;
    blocking(load_again).await?.ok_or_else(|| ApiError::not_found(format!("dataset {id} could not be found")))
}

/// Fetches dataset `id` unless it is complete here.
async fn ensure_local(state: &ApiState, id: ContentId) -> Result<(), ApiError> {
    fetch_on_demand(state, id, None).await
}

/// Refuses an on-demand fetch of `id` asked on a public listener unless this node holds the
/// dataset or its mirror policy covers it.
async fn may_fetch(state: &ApiState, id: ContentId) -> Result<(), ApiError> {
    if !state.public {
        return Ok(());
    }
    let store = state.node.store().clone();
    let (held, manifest) = blocking(move || Ok((store.local(&id)?.is_some(), store.manifest(&id)?))).await?;
    if held || manifest.is_some_and(|m| state.node.config().mirrors(m.body())) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "dataset {id} is not held by this node, and this portal fetches from peers only datasets the node \
             holds or mirrors; fetch it with `lien get {id}`"
        ),
    ))
}

/// Refuses a restricted dataset: the gateway answers anyone who can reach it (the portal may
/// listen beyond loopback); authorised nodes fetch restricted data peer to peer with `lien get`.
fn refuse_restricted(manifest: &Manifest) -> Result<(), ApiError> {
    let metadata = &manifest.body().metadata;
    if !metadata.is_restricted() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "dataset {} is restricted to {}; fetch it with `lien get` on an authorised node",
            manifest.id(),
            metadata.readers.join(", ")
        ),
    ))
}

/// Fetches what the gateway needs: the whole dataset, or only chunks `range` of one file.
async fn fetch_on_demand(
    state: &ApiState,
    id: ContentId,
    range: Option<lien_node::fetch::ChunkRange>,
) -> Result<(), ApiError> {
    may_fetch(state, id).await?;
    let _one_at_a_time = state.gateway_fetch.lock().await;
    let store = state.node.store().clone();
    let local = blocking(move || Ok(store.local(&id)?)).await?;
    let root = match local {
        Some(d) if d.complete => return Ok(()),
        Some(d) => d.root,
        None => state.node.config().data_dir().join(id.to_string()),
    };
    let _active = ActiveFetch::new(state.fetches_active.clone());
    let opts = FetchOptions { timeout: GATEWAY_FETCH_TIMEOUT, progress: None };
    match range {
        Some(r) => {
            tracing::info!(%id, first = r.first, last = r.last, "gateway: fetching chunks on demand");
            state.node.fetch_range(id, &root, opts, r).await?;
        }
        None => {
            tracing::info!(%id, "gateway: fetching on demand");
            state.node.fetch(&id.to_string(), &root, opts).await?;
        }
    }
    Ok(())
}

/// Whether every chunk of `first..=last` of `file` is held here.
async fn holds_chunks(state: &ApiState, file: ContentId, first: u64, last: u64) -> Result<bool, ApiError> {
    let store = state.node.store().clone();
    blocking(move || {
        Ok(match (store.file(&file)?, store.have(&file)?) {
            (Some(r), _) if r.complete => true,
            (Some(_), Some(bitmap)) => (first..=last).all(|i| lien_node::chunks::bit(&bitmap, i)),
            _ => false,
        })
    })
    .await
}

#[derive(Serialize)]
struct Listing {
    id: String,
    name: String,
    version: u64,
    title: String,
    files: Vec<FileInfo>,
}

/// `GET /d/{id}/`: JSON, or an HTML page when the client prefers `text/html`.
pub(crate) async fn listing(
    State(state): State<ApiState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (m, entries) = dataset(&state, id).await?;
    refuse_restricted(&m)?;
    let files: Vec<FileInfo> = entries.iter().map(FileInfo::from).collect();
    let wants_html = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    if !wants_html {
        let b = m.body();
        return Ok(Json(Listing {
            id: id.to_string(),
            name: m.name(),
            version: b.version,
            title: b.metadata.title.clone(),
            files,
        })
        .into_response());
    }
    let title = escape(&m.body().metadata.title);
    let mut html = format!(
        "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{} v{} · {id}</p><ul>",
        escape(&m.name()),
        m.body().version
    );
    for f in &files {
        let href: String = f.path.split('/').map(percent_encode).collect::<Vec<_>>().join("/");
        html.push_str(&format!("<li><a href=\"{href}\">{}</a> ({} bytes)</li>", escape(&f.path), f.size));
    }
    html.push_str("</ul>");
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], sandboxed(), html).into_response())
}

/// Headers that keep a served file from acting on the API's origin.
fn sandboxed() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox")),
    ]
}

/// A byte range `start..end` requested by a `Range` header.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No usable range: send the whole file.
    Whole,
    /// Send these bytes (end exclusive).
    Part(u64, u64),
    /// The range lies outside the file: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110 §14.1.2). Several ranges or other units are ignored
/// (a server may always answer with the whole file).
fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return RangeRequest::Whole };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else { return RangeRequest::Unsatisfiable };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return match b.parse::<u64>() {
            Ok(n) if n > 0 && size > 0 => RangeRequest::Part(size.saturating_sub(n), size),
            _ => RangeRequest::Unsatisfiable,
        };
    }
    let Ok(start) = a.parse::<u64>() else { return RangeRequest::Unsatisfiable };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    if b.is_empty() {
        return RangeRequest::Part(start, size);
    }
    match b.parse::<u64>() {
        Ok(last) if last >= start => RangeRequest::Part(start, last.saturating_add(1).min(size)),
        _ => RangeRequest::Unsatisfiable,
    }
}

/// `GET /d/{id}/{path}`
pub(crate) async fn file(
    State(state): State<ApiState>,
    UrlPath((id, path)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // The gateway answers anyone who can reach it (the portal may listen beyond loopback), so it
    // never serves restricted data; authorised nodes fetch it peer to peer with `lien get`.
    // A restricted dataset known here is refused before anything is fetched for it.
    let store = state.node.store().clone();
    if let Some(m) = blocking(move || Ok(store.manifest(&id)?)).await? {
        refuse_restricted(&m)?;
    }
    let (manifest, entries) = dataset(&state, id).await?;
    refuse_restricted(&manifest)?;
    let entry = entries
        .into_iter()
        .find(|e| e.path.as_str() == path)
        .ok_or_else(|| ApiError::not_found(format!("dataset {id} has no file {path:?}")))?;
    // Bytes are held per file, and a public manifest may name a restricted file's id (anyone can
    // sign one): what decides is the file's own readers, merged over every manifest listing it.
    let store = state.node.store().clone();
    let file_id = entry.id;
    if let Some(rec) = blocking(move || Ok(store.file(&file_id)?)).await? {
        refuse_restricted_file(id, &path, &rec)?;
    }
    let etag = format!("\"{}\"", entry.id);
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        if inm.split(',').any(|t| t.trim() == etag || t.trim() == "*") {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
        }
    }
    let size = entry.size;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let if_range_ok = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| v.trim() == etag);
    let (status, start, end) = match range_header.filter(|_| if_range_ok).map(|v| parse_range(v, size)) {
        None | Some(RangeRequest::Whole) => (StatusCode::OK, 0, size),
        Some(RangeRequest::Part(s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        Some(RangeRequest::Unsatisfiable) => {
            let mut r =
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, format!("range outside the file's {size} bytes"))
                    .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    // Only the chunks this answer needs are fetched when they are missing (a partial dataset is
    // served from its `.lien-part` files; every chunk is verified as it is read).
    let (first, last) = (start / entry.chunk_size.bytes(), end.saturating_sub(1) / entry.chunk_size.bytes());
    if size > 0 && !holds_chunks(&state, entry.id, first, last).await? {
        fetch_on_demand(&state, id, Some(lien_node::fetch::ChunkRange { file: entry.id, first, last })).await?;
    }
    let store = state.node.store().clone();
    let file_id = entry.id;
    let rec = match blocking(move || Ok(store.file(&file_id)?)).await? {
        Some(r) if size == 0 || r.complete || holds_chunks(&state, entry.id, first, last).await? => r,
        _ => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("file {path:?} of dataset {id} is not available yet"),
            ))
        }
    };
    refuse_restricted_file(id, &path, &rec)?;
    if rec.size != entry.size {
        return Err(ApiError::internal(format!("stored record of {path:?} disagrees with the manifest on its size")));
    }
    let store = state.node.store().clone();
    let prep_rec = rec.clone();
    let list = blocking(move || {
        if prep_rec.in_place {
            let meta = std::fs::metadata(&prep_rec.path);
            let unchanged =
                meta.is_ok_and(|m| m.len() == prep_rec.size) && mtime_ns(&prep_rec.path).ok() == prep_rec.mtime_ns;
            if !unchanged {
                return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the file changed at its source"));
            }
        }
        load_chunk_list(&store, &prep_rec).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    let chunk_size = ChunkSize::new(rec.chunk_size).map_err(|e| ApiError::internal(e.to_string()))?;
    let content_type =
        HeaderValue::from_str(if entry.media_type.is_empty() { "application/octet-stream" } else { &entry.media_type })
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ETAG, etag_value)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1));
    }
    for (k, v) in sandboxed() {
        response = response.header(k, v);
    }
    // Opened once, before the headers go out: a partial file that a fetch finishes meanwhile is
    // renamed into place, and a descriptor follows it where the recorded path would not.
    let path_of = rec.path.clone();
    let opened = blocking(move || {
        std::fs::File::open(&path_of).map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("cannot open {}: {e}", path_of.display()))
        })
    })
    .await?;
    let body = Body::from_stream(verified_bytes(rec, Arc::new(opened), Arc::new(list), chunk_size, start, end));
    response.body(body).map_err(|e| ApiError::internal(e.to_string()))
}

/// 403 for a file held here under restricted access (whichever dataset it is asked through).
fn refuse_restricted_file(id: ContentId, path: &str, rec: &FileRecord) -> Result<(), ApiError> {
    if !rec.readers.is_restricted() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "file {path:?} of dataset {id} is restricted to {} (another dataset lists the same file); \
             fetch it with `lien get` on an authorised node",
            rec.readers
        ),
    ))
}

/// The bytes `start..end` of a file, read chunk by chunk, each chunk verified before any of its
/// bytes are yielded.
fn verified_bytes(
    rec: FileRecord,
    file: Arc<std::fs::File>,
    list: Arc<ChunkList>,
    chunk_size: ChunkSize,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let rec = Arc::new(rec);
    futures::stream::try_unfold(start, move |offset| {
        let (rec, file, list) = (rec.clone(), file.clone(), list.clone());
        async move {
            if offset >= end {
                return Ok(None);
            }
            let index = offset / chunk_size.bytes();
            let (chunk_start, chunk_len) = chunk_size.range(rec.size, index);
            let data = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                let data = read_open_at(&file, chunk_start, chunk_len)?;
                list.verify_chunk(index, &data).map_err(|e| {
                    tracing::error!(path = %rec.path.display(), "gateway: stored data does not verify: {e}");
                    std::io::Error::other(format!("chunk {index} does not verify"))
                })?;
                Ok(data)
            })
            .await
            .map_err(std::io::Error::other)??;
            let from = usize::try_from(offset.saturating_sub(chunk_start)).unwrap_or(usize::MAX);
            let to = usize::try_from(end.min(chunk_start + chunk_len).saturating_sub(chunk_start)).unwrap_or(0);
            if from >= to || to > data.len() {
                return Err(std::io::Error::other(format!("range {offset}..{end} does not fit chunk {index}")));
            }
            let bytes = Bytes::from(data).slice(from..to);
            Ok(Some((bytes, chunk_start + chunk_len)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0, 10));
        assert_eq!(parse_range("bytes=90-", 100), Part(90, 100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90, 100));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0, 100));
        assert_eq!(parse_range("bytes=50-1000", 100), Part(50, 100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=9-3", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=x-3", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=0-0", 0), Unsatisfiable);
    }
}
