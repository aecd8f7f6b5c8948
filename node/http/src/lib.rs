//! `lien-http`: a Lien node's HTTP face (axum), a client of `lien-node`'s public API: the local
//! JSON API under `/v1`, a read-only gateway under `/d`, Prometheus metrics at `/metrics`, and
//! the read-only portal (web pages, CKAN Action API, DCAT). The `lien` CLI is a client of this
//! API when a daemon runs. Handlers parse, call the node, and map the answer (or the node's typed
//! error, [`error`]) to HTTP; the domain logic lives in `lien-node`.
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
//! Files: [`config`] (the `[api]` table), `router.rs` (both routers and their middleware),
//! `state.rs` (what handlers share), `extract.rs` (JSON extractors, `blocking`), `text.rs`
//! (HTML and URL escaping), [`error`] (statuses), `host.rs` (the `Host` check), `listen.rs`
//! (connections and their timeouts); [`api`] (`/v1`, `/d`, `/metrics`, the JSON bodies in
//! [`api::types`]) and `portal/` (CKAN, DCAT, web pages) both build on those shared modules and
//! not on each other. The home folder's files (token, `daemon.json`, `init`) are
//! `lien_node::home`.

pub mod api;
pub mod config;
pub mod error;
mod extract;
mod host;
mod listen;
#[cfg(test)]
mod listener_tests;
mod portal;
mod router;
mod state;
mod text;

pub use config::{ApiConfig, ApiConfigError};
pub use error::ApiError;
pub use listen::Timeouts;
pub use router::{router, routers, serve, serve_router};
