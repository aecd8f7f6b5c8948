//! `lien daemon`: the node and its HTTP API in the foreground until SIGINT or SIGTERM.
//!
//! The node and its listeners are started by [`crate::host`] (node first, so a second daemon
//! on the same home stops at the store's lock before it touches any port); `daemon.json` is
//! written only once both the node and the API listen, and removed on the way out (only by the
//! daemon that wrote it).

use std::path::Path;

use anyhow::{bail, Context, Result};
use lien_node::home::{self, DaemonInfo};

use crate::client::Api;
use crate::host::{ApiPlan, Host, Settings};
use crate::DaemonArgs;

/// Removes `daemon.json` when dropped, whatever way the daemon leaves.
struct DaemonNote<'a>(&'a Path);

impl Drop for DaemonNote<'_> {
    fn drop(&mut self) {
        if let Err(e) = DaemonInfo::remove_own(self.0) {
            tracing::warn!("cannot remove daemon.json: {e}");
        }
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
    let Settings { node: mut config, api: mut api_config } = Settings::load(home)?;
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    config.bootstrap.extend(args.bootstrap);
    if let Some(addr) = args.api {
        api_config.listen = addr;
    }
    if !api_config.listen.ip().is_loopback() {
        tracing::warn!(api = %api_config.listen, "the API listens beyond loopback: anyone who can reach it can read the catalog and the gateway");
    }
    let mut host = Host::start(home, config, Some(ApiPlan { config: api_config, token })).await?;
    let result = serve(home, &mut host).await;
    host.stop().await;
    tracing::info!("stopped");
    result
}

/// Announces the daemon in `daemon.json` and serves until a stop signal (or the API fails);
/// the API is stopped before `daemon.json` is removed.
async fn serve(home: &Path, host: &mut Host) -> Result<()> {
    let api_addr = host.api_addr.context("the API is not served")?;
    let listen_addrs = host.node.listen_addrs().await?;
    if listen_addrs.is_empty() {
        bail!("the node is not listening on any address");
    }
    let info = DaemonInfo {
        peer_id: host.node.peer_id().to_string(),
        listen_addrs: listen_addrs.iter().map(ToString::to_string).collect(),
        api: api_addr,
        pid: std::process::id(),
    };
    info.write(home)?;
    let _note = DaemonNote(home);
    tracing::info!(
        peer_id = %info.peer_id,
        publisher = %host.node.publisher(),
        api = %api_addr,
        listen = ?info.listen_addrs,
        "ready"
    );
    let outcome = tokio::select! {
        signal = stop_signal() => {
            tracing::info!("{}, shutting down", signal?);
            Ok(())
        }
        failed = host.api_stopped() => failed,
    };
    host.stop_api().await;
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
