//! `lien daemon`: the node and its HTTP API in the foreground until SIGINT or SIGTERM.
//!
//! Start-up order matters: the node is started first because opening its store takes the
//! store's exclusive lock, so a second daemon on the same home stops there with a clear message
//! before it touches any port; `daemon.json` is written only once both the node and the API
//! listen, and removed on the way out (only by the daemon that wrote it).

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use lien_http::{self as api, ApiConfig};
use lien_node::home::{self, DaemonInfo};
use lien_node::store::StoreError;
use lien_node::{Node, NodeConfig, NodeError};
use tokio::sync::oneshot;

use crate::client::Api;
use crate::DaemonArgs;

/// How long in-flight API requests may take to finish after a stop signal.
const API_GRACE: Duration = Duration::from_secs(5);

/// Removes `daemon.json` when dropped, whatever way the daemon leaves.
struct DaemonNote<'a>(&'a Path);

impl Drop for DaemonNote<'_> {
    fn drop(&mut self) {
        if let Err(e) = DaemonInfo::remove_own(self.0) {
            tracing::warn!("cannot remove daemon.json: {e}");
        }
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

/// Runs the daemon.
pub async fn run(home: &Path, args: DaemonArgs) -> Result<()> {
    if !home::is_initialised(home) {
        let report = home::init(home).with_context(|| format!("cannot initialise {}", home.display()))?;
        tracing::info!(home = %home.display(), publisher = %report.publisher, "initialised a new home");
    }
    let token = home::ensure_token(home)?;
    if let Some(running) = Api::find(home).await? {
        bail!(
            "a lien daemon is already running for {} (pid {}, API on {})",
            home.display(),
            running.info.pid,
            running.info.api
        );
    }
    let mut config = NodeConfig::load(home)?;
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    config.bootstrap.extend(args.bootstrap);
    config.validate()?;
    let mut api_config = ApiConfig::load(home)?;
    if let Some(addr) = args.api {
        api_config.listen = addr;
    }

    if !api_config.listen.ip().is_loopback() {
        tracing::warn!(api = %api_config.listen, "the API listens beyond loopback: anyone who can reach it can read the catalog and the gateway");
    }
    let node = Node::start(config).await.map_err(|e| start_error(home, e))?;
    let listener = match tokio::net::TcpListener::bind(api_config.listen).await {
        Ok(l) => l,
        Err(e) => {
            node.shutdown().await;
            return Err(e).with_context(|| format!("cannot listen for the API on {}", api_config.listen));
        }
    };
    let portal_listener = match api_config.portal_listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                node.shutdown().await;
                return Err(e).with_context(|| format!("cannot listen for the portal on {addr}"));
            }
        },
        None => None,
    };
    let result = serve(home, &node, listener, portal_listener, token, &api_config).await;
    node.shutdown().await;
    tracing::info!("stopped");
    result
}

async fn serve(
    home: &Path,
    node: &Node,
    listener: tokio::net::TcpListener,
    portal_listener: Option<tokio::net::TcpListener>,
    token: zeroize::Zeroizing<String>,
    api_config: &ApiConfig,
) -> Result<()> {
    let api_addr = listener.local_addr().context("the API listener has no address")?;
    let listen_addrs = node.listen_addrs().await?;
    if listen_addrs.is_empty() {
        bail!("the node is not listening on any address");
    }
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (api_router, portal_router) = api::routers(node.clone(), token, api_config);
    let (portal_stop_tx, portal_stop_rx) = oneshot::channel::<()>();
    let portal_server = match portal_listener {
        Some(l) => {
            let addr = l.local_addr().context("the portal listener has no address")?;
            tracing::info!(portal = %addr, "serving the read-only portal (web page, CKAN API, DCAT, gateway)");
            Some(tokio::spawn(api::serve_router(l, portal_router, api_config.timeouts(), async {
                let _ = portal_stop_rx.await;
            })))
        }
        None => None,
    };
    let mut server = tokio::spawn(api::serve_router(listener, api_router, api_config.timeouts(), async {
        let _ = stop_rx.await;
    }));
    let info = DaemonInfo {
        peer_id: node.peer_id().to_string(),
        listen_addrs: listen_addrs.iter().map(ToString::to_string).collect(),
        api: api_addr,
        pid: std::process::id(),
    };
    info.write(home)?;
    let _note = DaemonNote(home);
    tracing::info!(
        peer_id = %info.peer_id,
        publisher = %node.publisher(),
        api = %api_addr,
        listen = ?info.listen_addrs,
        "ready"
    );

    let outcome = tokio::select! {
        signal = stop_signal() => {
            tracing::info!("{}, shutting down", signal?);
            Ok(())
        }
        r = &mut server => match r {
            Ok(Ok(())) => Err(anyhow!("the API server stopped unexpectedly")),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("the API server failed")),
            Err(e) => Err(anyhow!("the API server task failed: {e}")),
        },
    };
    let _ = stop_tx.send(());
    let _ = portal_stop_tx.send(());
    if let Some(mut portal) = portal_server {
        if tokio::time::timeout(API_GRACE, &mut portal).await.is_err() {
            portal.abort();
        }
    }
    if !server.is_finished() && tokio::time::timeout(API_GRACE, &mut server).await.is_err() {
        tracing::warn!("API requests still running after {API_GRACE:?}; stopping them");
        server.abort();
    }
    outcome
}

/// Waits for SIGINT or SIGTERM; returns its name.
async fn stop_signal() -> Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("cannot watch Ctrl-C")?;
        Ok("Ctrl-C")
    }
}
