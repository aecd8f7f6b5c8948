//! The CLI's side of the local HTTP API: finding the running daemon through `HOME/daemon.json`,
//! and JSON or streamed (NDJSON) calls with the bearer token from `HOME/api.token`.
//!
//! When no daemon runs, [`Api::open`] starts a temporary node on the home and serves the same
//! API from inside this process on an ephemeral loopback port, so read and housekeeping commands
//! (`search`, `show`, `ls`, `status`, `verify`, `pin`...) behave the same with or without a
//! daemon, through one code path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use lien_http::api::types::{ErrorBody, Progress, StreamLine};
use lien_node::home::{self, DaemonInfo};
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::host::{ApiPlan, Host, Settings};

/// A client of one running daemon.
pub struct Api {
    base: String,
    home: PathBuf,
    token: Option<Zeroizing<String>>,
    http: reqwest::Client,
    /// What the daemon wrote in `daemon.json`.
    pub info: DaemonInfo,
    /// The temporary in-process node and its API, when no daemon runs.
    local: Option<Host>,
}

impl Api {
    /// The daemon running for `home`, if one is: `daemon.json` exists and its API answers.
    pub async fn find(home: &Path) -> Result<Option<Api>> {
        let Some(info) = DaemonInfo::read(home)? else { return Ok(None) };
        let api = Api {
            base: format!("http://{}", info.api),
            home: home.to_path_buf(),
            token: home::read_token(home).ok(),
            http: http_client()?,
            info,
            local: None,
        };
        let probe = api.http.get(api.url("/v1/status")).timeout(Duration::from_secs(5)).send().await;
        match probe {
            Ok(_) => Ok(Some(api)),
            Err(e) => {
                tracing::debug!("daemon.json is stale ({}): {e}", api.info.api);
                Ok(None)
            }
        }
    }

    /// The daemon running for `home`, or an error saying how to start one.
    pub async fn require(home: &Path) -> Result<Api> {
        Self::find(home)
            .await?
            .ok_or_else(|| anyhow!("no lien daemon is running for {} (start one with `lien daemon`)", home.display()))
    }

    /// The running daemon, else a temporary in-process node serving the same API.
    pub async fn open(home: &Path) -> Result<Api> {
        if let Some(api) = Self::find(home).await? {
            return Ok(api);
        }
        if !home::is_initialised(home) {
            bail!("{} is not a lien home (create one with `lien init` or `lien daemon`)", home.display());
        }
        let token = home::ensure_token(home)?;
        let Settings { node: mut config, api: mut api_config } = Settings::load(home)?;
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().context("loopback multiaddr")?];
        config.bootstrap.clear();
        api_config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        api_config.portal_listen = None;
        tracing::info!("no daemon runs for {}: using a temporary node", home.display());
        let host = Host::start(home, config, Some(ApiPlan { config: api_config, token: token.clone() })).await?;
        let Some(addr) = host.api_addr else {
            host.stop().await;
            bail!("the temporary node's API is not served");
        };
        let node = &host.node;
        let info = DaemonInfo {
            peer_id: node.peer_id().to_string(),
            listen_addrs: Vec::new(),
            api: addr,
            pid: std::process::id(),
        };
        Ok(Api {
            base: format!("http://{addr}"),
            home: home.to_path_buf(),
            token: Some(token),
            http: http_client()?,
            info,
            local: Some(host),
        })
    }

    /// True when talking to a running daemon (not a temporary node).
    pub fn is_daemon(&self) -> bool {
        self.local.is_none()
    }

    /// Stops the temporary node, if any.
    pub async fn close(self) {
        if let Some(host) = self.local {
            host.stop().await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t.as_str()),
            None => rb,
        }
    }

    async fn check(&self, response: reqwest::Response) -> Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => body.error.message,
            Err(_) => text.trim().to_owned(),
        };
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "the daemon refused the request: {message} (HTTP 401; the token is read from {})",
                self.home.join(home::TOKEN_FILE).display()
            );
        }
        bail!("{message} (HTTP {})", status.as_u16())
    }

    fn send_error(&self, e: reqwest::Error) -> anyhow::Error {
        anyhow!("cannot reach the daemon at {}: {e}", self.info.api)
    }

    /// `GET path` with the token (`/v1/local`, `/v1/peers` and `/v1/audit` need it) → JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let r = self.authed(self.http.get(self.url(path))).send().await.map_err(|e| self.send_error(e))?;
        let r = self.check(r).await?;
        r.json().await.context("the daemon sent an answer that does not parse")
    }

    /// `GET path` with the token → text (e.g. `/metrics`).
    pub async fn text(&self, path: &str) -> Result<String> {
        let r = self.authed(self.http.get(self.url(path))).send().await.map_err(|e| self.send_error(e))?;
        let r = self.check(r).await?;
        r.text().await.context("the daemon's answer was cut off")
    }

    /// `method path` with an optional JSON body and the token → JSON.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let mut rb = self.authed(self.http.request(method, self.url(path)));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.map_err(|e| self.send_error(e))?;
        let r = self.check(r).await?;
        r.json().await.context("the daemon sent an answer that does not parse")
    }

    /// `POST path?progress=true` with a JSON body: calls `progress` for each progress line and
    /// returns the final result.
    pub async fn stream<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        mut progress: impl FnMut(Progress),
    ) -> Result<T> {
        let rb = self.authed(self.http.post(self.url(&format!("{path}?progress=true")))).json(body);
        let r = rb.send().await.map_err(|e| self.send_error(e))?;
        let mut r = self.check(r).await?;
        let mut buf = Vec::new();
        loop {
            let chunk = r.chunk().await.map_err(|e| anyhow!("lost the daemon's answer: {e}"))?;
            let Some(chunk) = chunk else { bail!("the daemon closed the answer before the result") };
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let parsed: StreamLine<T> =
                    serde_json::from_slice(&line).context("the daemon sent a progress line that does not parse")?;
                match parsed {
                    StreamLine::Progress(p) => progress(p),
                    StreamLine::Result(v) => return Ok(v),
                    StreamLine::Error { status, error } => bail!("{} (HTTP {status})", error.message),
                }
            }
        }
    }
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("cannot create an HTTP client")
}

/// Waits until the daemon of `home` answers (its `daemon.json` exists and its API responds), at
/// most `limit`.
pub async fn wait_for_daemon(home: &Path, limit: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    // Bounded by the deadline: one probe every 100 ms.
    loop {
        if Api::find(home).await?.is_some() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "no lien daemon answered for {} within {} s (is it running? see its log)",
                home.display(),
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `f` against the daemon, or a temporary node that is stopped afterwards.
pub async fn with_api<T>(home: &Path, f: impl AsyncFnOnce(&Api) -> Result<T>) -> Result<T> {
    let api = Api::open(home).await?;
    let result = f(&api).await;
    api.close().await;
    result
}
