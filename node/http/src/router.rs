//! The two routers (API and portal) over one node, the middleware around them (token, request
//! slots, `Host` check, JSON fallbacks) and `serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use futures::StreamExt;
use lien_node::Node;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::api::{gateway, metrics, openapi, trust, v1};
use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::listen::{self, Timeouts};
use crate::portal::PortalSettings;
use crate::state::ApiState;
use crate::{host, portal};

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
        portal: Arc::new(settings),
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
        .merge(portal::routes())
        .merge(private);
    // No `/v1`, no `/metrics`: only what an anonymous visitor may read.
    let portal = gateway.merge(portal::routes());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
