//! Starting a node in this process, with or without the HTTP API: what `lien daemon`, the
//! temporary node of the read commands (`client::Api::open`) and `lien get` without a daemon
//! share. `lien.toml` is read once ([`Settings::load`]); the node starts first (its store lock
//! refuses a second process on the same home before any port is touched), then the API and
//! portal listeners, whose shutdown is tied to the node's.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use lien_http::{self as api, ApiConfig};
use lien_node::store::StoreError;
use lien_node::{ConfigFile, Node, NodeConfig, NodeError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

/// How long in-flight API requests may take to finish after a stop.
const API_GRACE: Duration = Duration::from_secs(5);

/// The settings of `HOME/lien.toml`, read once: the node's and the API's.
#[derive(Debug)]
pub struct Settings {
    /// The `[node]` table (validated).
    pub node: NodeConfig,
    /// The `[api]` table (validated).
    pub api: ApiConfig,
}

impl Settings {
    /// Reads and validates `HOME/lien.toml` (defaults when it is missing).
    pub fn load(home: &Path) -> Result<Settings> {
        let file = ConfigFile::load(home)?;
        let api = ApiConfig::from_file(&file)?;
        Ok(Settings { node: file.node, api })
    }
}

/// The API a host serves: its settings (listen addresses included) and the bearer token (no
/// `Debug`: the token is never printed).
pub struct ApiPlan {
    /// Where and how to serve (`portal_listen` adds the portal's own listener).
    pub config: ApiConfig,
    /// The token mutating and private requests need.
    pub token: Zeroizing<String>,
}

/// A node running in this process, with its API listeners when asked for.
#[derive(Debug)]
pub struct Host {
    /// The node.
    pub node: Node,
    /// The address the API listens on, when it is served.
    pub api_addr: Option<SocketAddr>,
    /// Cancelled to stop the listeners; also cancelled when the node shuts down.
    stop: CancellationToken,
    /// The API server first, then the portal's, if any.
    servers: Vec<JoinHandle<std::io::Result<()>>>,
}

impl Host {
    /// Starts a node with `config` (validated here) and, with `api`, serves the API (and the
    /// portal when `portal_listen` is set). On any failure nothing is left running.
    pub async fn start(home: &Path, config: NodeConfig, api: Option<ApiPlan>) -> Result<Host> {
        config.validate()?;
        let node = Node::start(config).await.map_err(|e| start_error(home, e))?;
        let mut host = Host { stop: node.shutdown_token(), node, api_addr: None, servers: Vec::new() };
        if let Some(plan) = api {
            if let Err(e) = host.serve(plan).await {
                host.stop().await;
                return Err(e);
            }
        }
        Ok(host)
    }

    /// Binds the listeners and serves the routers on them until [`Host::stop`] or the node's
    /// shutdown.
    async fn serve(&mut self, plan: ApiPlan) -> Result<()> {
        let mut config = plan.config;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen for the API on {}", config.listen))?;
        let portal_listener = match config.portal_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for the portal on {addr}"))?,
            ),
            None => None,
        };
        let addr = listener.local_addr().context("the API listener has no address")?;
        config.listen = addr; // the address really served (the config may say port 0)
        let (api_router, portal_router) = api::routers(self.node.clone(), plan.token, &config);
        let stop = self.stop.clone();
        self.servers.push(tokio::spawn(api::serve_router(listener, api_router, config.timeouts(), async move {
            stop.cancelled().await
        })));
        if let Some(l) = portal_listener {
            let portal = l.local_addr().context("the portal listener has no address")?;
            tracing::info!(portal = %portal, "serving the read-only portal (web page, CKAN API, DCAT, gateway)");
            let stop = self.stop.clone();
            self.servers.push(tokio::spawn(api::serve_router(l, portal_router, config.timeouts(), async move {
                stop.cancelled().await
            })));
        }
        self.api_addr = Some(addr);
        Ok(())
    }

    /// Waits until the API server stops by itself (it should not: an error, or a panic); never
    /// returns when no API is served.
    pub async fn api_stopped(&mut self) -> Result<()> {
        let Some(server) = self.servers.first_mut() else { return std::future::pending().await };
        match server.await {
            Ok(Ok(())) => Err(anyhow!("the API server stopped unexpectedly")),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("the API server failed")),
            Err(e) => Err(anyhow!("the API server task failed: {e}")),
        }
    }

    /// Stops the listeners, letting requests in flight finish for a grace period.
    pub async fn stop_api(&mut self) {
        self.stop.cancel();
        for mut server in self.servers.drain(..) {
            if !server.is_finished() && tokio::time::timeout(API_GRACE, &mut server).await.is_err() {
                tracing::warn!("API requests still running after {API_GRACE:?}; stopping them");
                server.abort();
                let _ = server.await;
            }
        }
    }

    /// Stops the listeners, then the node and every task it runs.
    pub async fn stop(mut self) {
        self.stop_api().await;
        self.node.shutdown().await;
    }
}

/// Maps a start failure to a message that says what to do.
pub fn start_error(home: &Path, e: NodeError) -> anyhow::Error {
    match e {
        NodeError::Store(StoreError::AlreadyOpen) => {
            anyhow!("another lien process is using {} (a daemon already running for this home?)", home.display())
        }
        e => anyhow::Error::new(e).context(format!("cannot start the node in {}", home.display())),
    }
}
