//! Every node is a portal: read-only catalog interfaces that existing tools already speak.
//!
//! - `ckan.rs`: a subset of the CKAN Action API (`/api/3/action/package_list`, `package_show`,
//!   `package_search` with `q`/`fq`/`rows`/`start`/`sort`/`facet.field`, `organization_list`,
//!   `organization_show`, `tag_list`, `status_show`), answers shaped as CKAN's, resources pointing
//!   at this node's gateway (`/d/{manifest}/{path}`) with size, format and BLAKE3 hash;
//! - `dcat.rs`: the catalog as DCAT-AP 3 in JSON-LD (`/catalog.jsonld`) and Turtle (`/catalog.ttl`);
//! - `web.rs`: server-rendered pages for people (`/` search with facets, `/dataset/{name}`,
//!   `/node`), readable without JavaScript and with no asset from outside the node;
//! - all three answer from the node's in-memory catalog index (`lien_node::catalog`: ranking,
//!   facets, filters), the same one `/v1/search` and `Node::search` use.
//!
//! **Invariant:** nothing here changes state: every route is a read, so the portal may be served
//! beyond loopback (`[api] portal_listen`) without the API token. The only side effect reachable
//! from it is the gateway's on-demand fetch, and on `portal_listen` only of a dataset this node
//! holds or its mirror policy covers.

pub(crate) mod ckan;
pub(crate) mod dcat;
pub(crate) mod web;

use axum::http::{header, HeaderMap};
use axum::routing::get;
use axum::Router;
use lien_node::catalog::index::CatalogIndex;
use lien_node::local::files_of;
use lien_node::store::{LocalDataset, Store};
use lien_protocol::{ContentId, FileEntry, Manifest};

use crate::error::ApiError;
use crate::extract::blocking;
use crate::state::ApiState;
use crate::text::percent_encode;

/// Portal settings (from the `[api]` table).
#[derive(Debug, Clone, Default)]
pub struct PortalSettings {
    /// Base URL for links in exports (`https://data.example.gov.vn`); else taken from `Host`.
    pub public_url: Option<String>,
    /// Title of the catalog.
    pub title: String,
}

/// Runs `f` on the node's catalog index (brought up to date first), off the async threads.
pub(crate) async fn with_index<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&CatalogIndex, &Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let node = state.node.clone();
    blocking(move || node.with_catalog(f)?).await
}

/// The read-only portal routes (merged into the API, and served alone on `portal_listen`).
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(web::search_page))
        .route("/dataset/{key}", get(web::dataset_page))
        .route("/node", get(web::node_page))
        .route("/static/portal.css", get(web::css))
        .route("/static/portal.js", get(web::js))
        .route("/catalog.jsonld", get(dcat::jsonld))
        .route("/catalog.ttl", get(dcat::turtle))
        .route("/api/3/action/{action}", get(ckan::action).post(ckan::action))
        .route("/api/action/{action}", get(ckan::action).post(ckan::action))
        .route("/api/3", get(ckan::version))
}

/// The base URL links are built on: the configured public URL, else `http://` + `Host`.
pub(crate) fn base_url(state: &ApiState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.portal.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The gateway URL of one file.
pub(crate) fn download_url(base: &str, manifest: &ContentId, path: &str) -> String {
    let encoded: Vec<String> = path.split('/').map(percent_encode).collect();
    format!("{base}/d/{manifest}/{}", encoded.join("/"))
}

/// A dataset version with everything the portal shows about it.
#[derive(Debug, Clone)]
pub(crate) struct Detail {
    pub manifest: Manifest,
    /// The files, when the list is known here.
    pub files: Option<Vec<FileEntry>>,
    /// Every version of the name known here: (version, manifest id), oldest first.
    pub versions: Vec<(u64, ContentId)>,
    /// This node's copy, if it holds one.
    pub local: Option<LocalDataset>,
}

impl Detail {
    /// Loads manifest `id` and what goes with it (blocking).
    pub(crate) fn load(store: &Store, id: &ContentId) -> Result<Option<Detail>, ApiError> {
        let Some(manifest) = store.manifest(id)? else { return Ok(None) };
        let files = files_of(store, &manifest)?;
        let b = manifest.body();
        let versions = store.versions(&b.publisher, &b.slug)?;
        let local = store.local(id)?;
        Ok(Some(Detail { manifest, files, versions, local }))
    }

    /// The files, or none.
    pub(crate) fn entries(&self) -> &[FileEntry] {
        self.files.as_deref().unwrap_or_default()
    }
}

/// Finds a dataset by CKAN name, `publisher/slug` or manifest id (any version) and loads it.
pub(crate) fn lookup(index: &CatalogIndex, store: &Store, key: &str) -> Result<Option<Detail>, ApiError> {
    if let Ok(id) = key.parse::<ContentId>() {
        return Detail::load(store, &id);
    }
    match index.find(key) {
        Some(doc) => Detail::load(store, &doc.id),
        None => Ok(None),
    }
}

/// RFC 3339 UTC time of unix seconds (`2024-05-01T12:00:00`), without a zone suffix as CKAN writes it.
pub(crate) fn iso_time(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_iso_time() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00");
        assert_eq!(iso_time(1_700_000_000), "2023-11-14T22:13:20");
        assert_eq!(iso_time(951_782_400), "2000-02-29T00:00:00");
    }
}
