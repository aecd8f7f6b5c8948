//! The node's local HTTP API (axum): JSON under `/v1`, a read-only gateway under `/d`, and
//! Prometheus metrics at `/metrics`. The `lien` CLI is a client of this API when a daemon runs.
//!
//! - Bound to loopback by default (`[api] listen` in `lien.toml`, or `lien daemon --api`).
//! - Every mutating endpoint (`POST`, `DELETE`) needs `Authorization: Bearer <HOME/api.token>`,
//!   and so do the reads that show more than the catalog: `/v1/local` (file-system paths),
//!   `/v1/peers` (peers' addresses) and `/v1/audit` (who was served what).
//! - Only its own names (against DNS rebinding, [`host`]): the API listener answers a `Host` of
//!   `localhost`, a loopback IP, its listen address or the host of `public_url`; any other gets
//!   421 Misdirected Request. The portal listener (`portal_listen`) is public by design: it
//!   answers any `Host` unless `public_url` is set, and then the same names as the API (with the
//!   public URL's host first among them).
//! - Two listeners, two sets of limits: the API and the portal each serve at most their own
//!   number of requests at once (`max_concurrent_requests`, `portal_max_concurrent_requests`;
//!   more get 503 at once rather than queueing without bound), so busy portal downloads never lock
//!   the operator out of the API. Request bodies are capped at `max_body_bytes`. Both listeners
//!   close connections whose request head does not arrive within `header_read_timeout_secs`, or
//!   that wait on the client for `idle_timeout_secs` without a byte moving (`listen.rs`).
//! - The portal listener is anonymous: its gateway fetches from peers on demand only datasets
//!   this node holds or its mirror policy covers (`mirror_publishers`, `mirror_themes`; by
//!   default held datasets only), so nobody can fill the disk by asking for arbitrary ids; its
//!   `/node` page shows no peer addresses and no titles of restricted datasets held; `/metrics`
//!   is not served there. The API listener, when it is bound beyond loopback, is treated the same
//!   way for these three.
//! - Every error is a 4xx/5xx with a JSON body `{"error": {"code", "message"}}`.
//! - [`serve`] takes a bound listener and a shutdown future, so tests bind `127.0.0.1:0` and
//!   stop it cleanly.
//!
//! Files: [`home`] (token, `daemon.json`, `init`), [`types`] (JSON bodies), `v1.rs` (handlers),
//! `gateway.rs` (`/d/...`), `metrics.rs`, `openapi.rs`, [`error`], `host.rs` (the `Host`
//! check), `listen.rs` (connections and their timeouts).

mod gateway;
mod host;
mod listen;
#[cfg(test)]
mod listener_tests;
mod metrics;
mod openapi;
pub mod trust;
pub(crate) mod v1;

pub mod error;
pub mod home;
pub mod types;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

pub use error::ApiError;
pub(crate) use gateway::{escape, percent_encode};
pub use listen::Timeouts;
pub(crate) use v1::files_of;

use crate::node::Node;
use crate::portal::{Portal, PortalSettings};

/// The `[api]` table of `lien.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on (loopback by default).
    pub listen: SocketAddr,
    /// Requests served at once on `listen`; more are answered 503 at once.
    pub max_concurrent_requests: usize,
    /// Requests served at once on `portal_listen` (a limit of its own, so portal users never
    /// take the API's slots); more are answered 503 at once.
    pub portal_max_concurrent_requests: usize,
    /// Seconds from the first byte of a request to the end of its head (both listeners).
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may wait on its client with no byte moving (between requests, while
    /// a request body comes in, while the client does not read the response) before it is
    /// closed (both listeners).
    pub idle_timeout_secs: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Where to serve the read-only portal alone (web pages, CKAN API, DCAT, gateway), e.g.
    /// `0.0.0.0:8080`; none by default. The portal is always served on `listen` as well.
    pub portal_listen: Option<SocketAddr>,
    /// Public base URL of the portal (`https://data.example.gov.vn`), used in exported links;
    /// by default links are built from the request's `Host`.
    pub public_url: Option<String>,
    /// Title of the catalog shown on the web page and in exports.
    pub portal_title: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4041)),
            max_concurrent_requests: 64,
            portal_max_concurrent_requests: 64,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_body_bytes: 64 * 1024,
            portal_listen: None,
            public_url: None,
            portal_title: None,
        }
    }
}

/// Why the `[api]` table was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ApiConfigError {
    /// The config file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `[api]` table does not parse.
    #[error("invalid [api] table in {path}: {message}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// A value out of range.
    #[error("invalid config value for api.{0}: must be at least 1")]
    Invalid(&'static str),
    /// `public_url` is not a plain http(s) URL.
    #[error("invalid config value for api.public_url: {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
}

impl ApiConfig {
    /// Reads the `[api]` table of `HOME/lien.toml` (defaults when the file or table is missing).
    pub fn load(home: &Path) -> Result<Self, ApiConfigError> {
        let path = home.join(home::CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ApiConfigError::Read { path, source }),
        };
        let config = Self::parse(&text).map_err(|message| ApiConfigError::Parse { path, message })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses the `[api]` table out of the text of a `lien.toml` (other tables are the node's).
    pub fn parse(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            api: ApiConfig,
        }
        toml::from_str::<File>(text).map(|f| f.api).map_err(|e| e.to_string())
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), ApiConfigError> {
        if self.max_concurrent_requests == 0 {
            return Err(ApiConfigError::Invalid("max_concurrent_requests"));
        }
        if self.portal_max_concurrent_requests == 0 {
            return Err(ApiConfigError::Invalid("portal_max_concurrent_requests"));
        }
        if self.header_read_timeout_secs == 0 {
            return Err(ApiConfigError::Invalid("header_read_timeout_secs"));
        }
        if self.idle_timeout_secs == 0 {
            return Err(ApiConfigError::Invalid("idle_timeout_secs"));
        }
        if self.max_body_bytes == 0 {
            return Err(ApiConfigError::Invalid("max_body_bytes"));
        }
        if let Some(url) = &self.public_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && !url.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"'{}|^`\\".contains(c));
            if !ok {
                return Err(ApiConfigError::BadUrl(url.clone()));
            }
        }
        Ok(())
    }

    /// The connection timeouts of both listeners.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header_read: std::time::Duration::from_secs(self.header_read_timeout_secs),
            idle: std::time::Duration::from_secs(self.idle_timeout_secs),
        }
    }
}

/// Shared state of the API handlers.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) node: Node,
    token: Arc<Zeroizing<String>>,
    /// This listener's request slots.
    permits: Arc<Semaphore>,
    /// The `Host` names this listener answers.
    hosts: Arc<host::HostPolicy>,
    /// Anyone may reach this listener (the portal listener, or an API bound beyond loopback):
    /// on-demand fetches only for held or mirrored datasets, `/node` without addresses and
    /// restricted titles.
    pub(crate) public: bool,
    /// Fetches running on behalf of API clients (`get` and the gateway).
    pub(crate) fetches_active: Arc<AtomicU64>,
    /// One on-demand gateway fetch at a time, so two requests never fill the same folder at once.
    pub(crate) gateway_fetch: Arc<tokio::sync::Mutex<()>>,
    /// The portal's settings and catalog index (shared by the API and the portal listener).
    pub(crate) portal: Arc<Portal>,
}

/// Builds the API's router for `node`, accepting `token` on mutating endpoints.
pub fn router(node: Node, token: Zeroizing<String>, config: &ApiConfig) -> Router {
    routers(node, token, config).0
}

/// Builds the API's router and the read-only portal router (web pages, CKAN API, DCAT export,
/// gateway) for `portal_listen`. They share the node, the catalog index and the fetch lock;
/// each has its own request slots and `Host` names, and the portal's is public (see the module
/// documentation).
pub fn routers(node: Node, token: Zeroizing<String>, config: &ApiConfig) -> (Router, Router) {
    let settings = PortalSettings {
        public_url: config.public_url.clone(),
        title: config.portal_title.clone().unwrap_or_else(|| format!("Lien node {}", short_peer(&node))),
    };
    let api_state = ApiState {
        node,
        token: Arc::new(token),
        permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        hosts: Arc::new(host::HostPolicy::strict(config.listen, config.public_url.as_deref())),
        public: !config.listen.ip().is_loopback(),
        fetches_active: Arc::new(AtomicU64::new(0)),
        gateway_fetch: Arc::new(tokio::sync::Mutex::new(())),
        portal: Arc::new(Portal::new(settings)),
    };
    let portal_addr = config.portal_listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let portal_state = ApiState {
        permits: Arc::new(Semaphore::new(config.portal_max_concurrent_requests)),
        hosts: Arc::new(match &config.public_url {
            Some(url) => host::HostPolicy::strict(portal_addr, Some(url)),
            None => host::HostPolicy::any(portal_addr),
        }),
        public: true,
        ..api_state.clone()
    };
    let private = Router::new()
        .route("/v1/publish", post(v1::publish))
        .route("/v1/get", post(v1::get))
        .route("/v1/connect", post(v1::connect))
        .route("/v1/peers", get(v1::peers))
        .route("/v1/local", get(v1::local))
        .route("/v1/local/{id}/pin", post(v1::pin))
        .route("/v1/local/{id}/unpin", post(v1::unpin))
        .route("/v1/local/{id}", delete(v1::remove))
        .route("/v1/local/{id}/verify", post(v1::verify))
        .route("/v1/trust", post(trust::add))
        .route("/v1/trust/{key}", delete(trust::remove))
        .route("/v1/trust/records", post(trust::import))
        .route("/v1/delegate", post(trust::delegate))
        .route("/v1/revoke", post(trust::revoke))
        .route("/v1/audit", get(trust::audit))
        .route_layer(middleware::from_fn_with_state(api_state.clone(), require_token));
    let gateway = Router::new()
        .route("/d/{id}", get(gateway::redirect_to_listing))
        .route("/d/{id}/", get(gateway::listing))
        .route("/d/{id}/{*path}", get(gateway::file));
    let api = Router::new()
        .route("/v1/status", get(v1::status))
        .route("/v1/search", get(v1::search))
        .route("/v1/datasets/{id}", get(v1::show))
        .route("/v1/names/{publisher}/{slug}", get(v1::resolve))
        .route("/v1/trust", get(trust::list))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics::metrics))
        .merge(gateway.clone())
        .merge(crate::portal::routes())
        .merge(private);
    // No `/v1`, no `/metrics`: only what an anonymous visitor may read.
    let portal = gateway.merge(crate::portal::routes());
    let finish = |r: Router<ApiState>, state: ApiState| {
        r.fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(config.max_body_bytes))
            .layer(middleware::from_fn_with_state(state.clone(), limit_concurrency))
            .layer(middleware::from_fn_with_state(state.clone(), host::check_host))
            .with_state(state)
    };
    (finish(api, api_state), finish(portal, portal_state))
}

fn short_peer(node: &Node) -> String {
    let id = node.peer_id().to_string();
    id.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect()
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in flight.
pub fn serve(
    listener: tokio::net::TcpListener,
    node: Node,
    token: Zeroizing<String>,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let mut config = config.clone();
    if let Ok(addr) = listener.local_addr() {
        config.listen = addr; // the address really served (the config may say another)
    }
    let app = router(node, token, &config);
    listen::serve(listener, app, config.timeouts(), shutdown)
}

/// Serves `app` (a router of [`routers`]) on `listener` with `timeouts` until `shutdown`.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, app, timeouts, shutdown).await
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}

/// Answers 401 unless the request carries the bearer token.
async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), state.token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong API token (see HOME/api.token)").into_response(),
        None => {
            ApiError::new(StatusCode::UNAUTHORIZED, "missing API token: send Authorization: Bearer <HOME/api.token>")
                .into_response()
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves at most this listener's number of requests at once (`max_concurrent_requests` or
/// `portal_max_concurrent_requests`); the permit lives until the response body has been sent,
/// so slow downloads count too.
async fn limit_concurrency(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Ok(permit) = state.permits.clone().try_acquire_owned() else {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too many requests in flight; try again")
            .into_response();
    };
    let response = next.run(request).await;
    if axum::body::HttpBody::size_hint(response.body()).exact().is_some() {
        return response; // fully built already (JSON, errors): nothing left to hold the permit for
    }
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, axum::body::Body::from_stream(stream))
}

/// `Json` whose rejections are JSON [`ApiError`]s with the same status.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// `Query` whose rejections are JSON [`ApiError`]s.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("internal task failed: {e}")))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn api_table_of_the_embedded_default_parses() {
        let c = ApiConfig::parse(crate::config::DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 4041)));
        assert!(c.validate().is_ok());
        assert!(ApiConfig::parse("[api]\nlisten = \"nope\"\n").is_err());
        assert!(ApiConfig::parse("[api]\nlistne = \"127.0.0.1:1\"\n").unwrap_err().contains("unknown field"));
        assert!(ApiConfig::parse("[node]\nnetwork = \"x\"\n").is_ok());
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
