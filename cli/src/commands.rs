//! The client commands: each one calls the daemon's API (or, for `get` without a daemon, a
//! temporary in-process node) and prints the answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use lien_http::api::types::{
    ConnectBody, ConnectResult, DatasetSummary, GetBody, GetResult, LocalChange, LocalInfo, ManifestInfo, PeerInfo,
    Progress, PublishBody, PublishResult, ResolveResult, StatusInfo, VerifyReport,
};
use lien_node::home;
use lien_node::{FetchOptions, FetchProgress, Node, Target};
use reqwest::Method;

use crate::client::{with_api, Api};
use crate::host::{Host, Settings};
use crate::output::{bytes, Bar, Out};
use crate::{GetArgs, ImportCkanArgs, PublishArgs, SearchArgs, StatusArgs};

/// `lien init`
pub fn init(home: &Path, out: &Out) -> Result<()> {
    let report = home::init(home)?;
    if out.json {
        return out.json(&report);
    }
    out.line(format!("initialised {}", report.home.display()));
    out.line(format!("peer id:   {}", report.peer_id));
    out.line(format!("publisher: {}", report.publisher));
    Ok(())
}

/// `lien publish`
pub async fn publish(home: &Path, args: PublishArgs, out: &Out) -> Result<()> {
    let path = std::fs::canonicalize(&args.path).with_context(|| format!("cannot read {}", args.path.display()))?;
    let mut body = PublishBody {
        path: path.clone(),
        name: args.name.unwrap_or_default(),
        title: args.title.unwrap_or_default(),
        description: args.description,
        license: args.license,
        keywords: args.keywords,
        themes: args.themes,
        organisation: args.organisation,
        spatial: args.spatial,
        temporal: args.temporal,
        contact: args.contact,
        languages: args.languages,
        readers: args.readers,
        in_place: args.in_place,
        chunk_size: args.chunk_size,
    };
    if let Some(dp) = crate::imports::read_datapackage(&path)? {
        dp.fill(&mut body);
    }
    if body.name.is_empty() {
        bail!("no dataset name: pass --name SLUG (or put \"name\" in {})", crate::imports::DATAPACKAGE);
    }
    body.name =
        crate::parse_slug(&body.name).map_err(|e| anyhow::anyhow!("invalid dataset name {:?}: {e}", body.name))?;
    if body.title.trim().is_empty() {
        bail!("no title: pass --title TEXT (or put \"title\" in {})", crate::imports::DATAPACKAGE);
    }
    publish_body(home, body, out).await
}

async fn publish_body(home: &Path, body: PublishBody, out: &Out) -> Result<()> {
    let api = Api::require(home).await?;
    let bar = Bar::new(false);
    let result = api.stream::<PublishResult>("/v1/publish", &body, |p| bar.update(p)).await;
    bar.finish();
    let r = result.context("publish failed")?;
    if out.json {
        return out.json(&r);
    }
    eprintln!("published {} version {}: {} files, {}", r.name, r.version, r.files, bytes(r.size));
    out.line(&r.id);
    Ok(())
}

/// `lien get`
pub async fn get(home: &Path, args: GetArgs, out: &Out) -> Result<()> {
    let dir =
        std::path::absolute(&args.output).with_context(|| format!("bad output folder {}", args.output.display()))?;
    let r = match Api::find(home).await? {
        Some(api) => get_through_daemon(&api, &args, dir).await?,
        None => get_without_daemon(home, &args, &dir).await?,
    };
    if out.json {
        return out.json(&r);
    }
    out.line(format!(
        "fetched {} ({}) into {}: {} files, {} ({} downloaded from {} peers)",
        r.name,
        r.manifest,
        r.root.display(),
        r.files,
        bytes(r.total_bytes),
        bytes(r.downloaded_bytes),
        r.per_peer.len()
    ));
    Ok(())
}

async fn get_through_daemon(api: &Api, args: &GetArgs, dir: PathBuf) -> Result<GetResult> {
    for addr in &args.bootstrap {
        let body = ConnectBody { addr: addr.to_string() };
        api.call::<ConnectResult>(Method::POST, "/v1/connect", Some(&body))
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
    }
    let body = GetBody { target: args.target.to_string(), dir, timeout_secs: Some(args.timeout) };
    let bar = Bar::new(true);
    let result = api.stream::<GetResult>("/v1/get", &body, |p| bar.update(p)).await;
    bar.finish();
    result.with_context(|| format!("cannot get {}", args.target))
}

/// The same address on port 0 (a temporary node must not take the daemon's configured port).
fn any_port(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(0),
            Protocol::Udp(_) => Protocol::Udp(0),
            p => p,
        })
        .collect()
}

async fn get_without_daemon(home: &Path, args: &GetArgs, dir: &Path) -> Result<GetResult> {
    let Settings { node: mut config, .. } = Settings::load(home)?;
    config.listen =
        if args.listen.is_empty() { config.listen.iter().map(any_port).collect() } else { args.listen.clone() };
    config.bootstrap.extend(args.bootstrap.iter().cloned());
    let wants_peers = !config.bootstrap.is_empty();
    tracing::info!("no daemon runs for {}: starting a temporary node", home.display());
    let host = Host::start(home, config, None).await?;
    let result = fetch_with(&host.node, args, dir, wants_peers).await;
    host.stop().await;
    result
}

async fn fetch_with(node: &Node, args: &GetArgs, dir: &Path, wants_peers: bool) -> Result<GetResult> {
    let timeout = Duration::from_secs(args.timeout);
    let started = Instant::now();
    if wants_peers {
        // Give the bootstrap dials a moment, within the overall timeout.
        let limit = timeout.min(Duration::from_secs(10));
        while node.peers().await.map(|p| p.is_empty()).unwrap_or(true) && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let bar = Arc::new(Bar::new(true));
    let progress_bar = bar.clone();
    let opts = FetchOptions {
        timeout: timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(1)),
        progress: Some(Arc::new(move |p: FetchProgress| {
            progress_bar.update(Progress { done: p.done, total: p.total, peers: p.peers })
        })),
    };
    let result = node.fetch_target(&args.target, dir, opts).await;
    bar.finish();
    Ok(result.with_context(|| format!("cannot get {}", args.target))?.into())
}

/// Percent-encodes a query value.
fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `lien search`
pub async fn search(home: &Path, args: SearchArgs, out: &Out) -> Result<()> {
    let q = query_value(&args.words.join(" "));
    let path = format!("/v1/search?q={q}&limit={}", args.limit);
    let found: Vec<DatasetSummary> = with_api(home, async |api| api.get(&path).await).await?;
    if out.json {
        return out.json(&found);
    }
    for d in &found {
        out.line(format!("{}  {}  v{}  {}", d.id, d.name, d.version, d.title));
    }
    if found.is_empty() {
        eprintln!("no dataset matches {:?}", args.words.join(" "));
    }
    Ok(())
}

async fn resolve(api: &Api, target: &Target) -> Result<String> {
    match target {
        Target::Id(id) => Ok(id.to_string()),
        Target::Name { publisher, slug } => {
            let r: ResolveResult = api
                .get(&format!("/v1/names/{}/{}", query_value(&publisher.to_string()), query_value(slug.as_str())))
                .await
                .with_context(|| format!("cannot resolve {target}"))?;
            Ok(r.id)
        }
    }
}

/// `lien show`
pub async fn show(home: &Path, target: &Target, out: &Out) -> Result<()> {
    let m: ManifestInfo = with_api(home, async |api| {
        let id = resolve(api, target).await?;
        api.get(&format!("/v1/datasets/{id}")).await
    })
    .await?;
    if out.json {
        return out.json(&m);
    }
    out.line(format!("id:          {}", m.id));
    out.line(format!("name:        {}", m.name));
    out.line(format!("version:     {}", m.version));
    if let Some(p) = &m.previous {
        out.line(format!("previous:    {p}"));
    }
    out.line(format!("title:       {}", m.metadata.title));
    for (label, value) in [
        ("description", &m.metadata.description),
        ("license", &m.metadata.license),
        ("spatial", &m.metadata.spatial),
        ("temporal", &m.metadata.temporal),
        ("contact", &m.metadata.contact),
    ] {
        if !value.is_empty() {
            out.line(format!("{:<12} {value}", format!("{label}:")));
        }
    }
    if !m.metadata.keywords.is_empty() {
        out.line(format!("keywords:    {}", m.metadata.keywords.join(", ")));
    }
    out.line(format!("created:     {} (unix seconds)", m.created));
    out.line(format!("signature:   {}", m.signature));
    out.line(format!("trust:       {}", m.trust));
    let organisation = m.organisation.describe();
    if !organisation.is_empty() {
        out.line(format!("organisation: {organisation}"));
    }
    out.line(format!("size:        {} in {} files", bytes(m.size), m.file_count));
    match &m.files {
        Some(files) => {
            out.line("files:");
            for f in files {
                out.line(format!("  {}  {:>10}  {}  {}", f.id, f.size, f.media_type, f.path));
            }
        }
        None => out.line("files:       (list not stored here)"),
    }
    out.line("versions:");
    for (v, id) in &m.versions {
        out.line(format!("  v{v}  {id}"));
    }
    match &m.local {
        Some(l) => out.line(format!(
            "local:       {} at {} ({} of {})",
            if l.complete { "complete" } else { "partial" },
            l.root.display(),
            bytes(l.present),
            bytes(l.size)
        )),
        None => out.line("local:       not held"),
    }
    Ok(())
}

/// `lien ls`
pub async fn ls(home: &Path, out: &Out) -> Result<()> {
    let locals: Vec<LocalInfo> = with_api(home, async |api| api.get("/v1/local").await).await?;
    if out.json {
        return out.json(&locals);
    }
    for l in &locals {
        out.line(format!(
            "{}  {}  v{}  {}{}  {}/{}  {}",
            l.id,
            l.name.as_deref().unwrap_or("?"),
            l.version.map_or("?".into(), |v| v.to_string()),
            l.kind,
            if l.pinned { ",pinned" } else { "" },
            bytes(l.present),
            bytes(l.size),
            l.root.display()
        ));
    }
    Ok(())
}

/// `lien peers`
pub async fn peers(home: &Path, out: &Out) -> Result<()> {
    let api = Api::require(home).await?;
    let peers: Vec<PeerInfo> = api.get("/v1/peers").await?;
    if out.json {
        return out.json(&peers);
    }
    for p in &peers {
        out.line(format!("{}  {}  {}", p.peer_id, p.addrs.join(","), p.agent.as_deref().unwrap_or("-")));
    }
    Ok(())
}

/// `lien status`
pub async fn status(home: &Path, out: &Out) -> Result<()> {
    let (s, api_addr): (StatusInfo, _) = with_api(home, async |api| {
        let addr = if api.is_daemon() { api.info.api.to_string() } else { "none (no daemon is running)".into() };
        let mut s: StatusInfo = api.get("/v1/status").await?;
        if !api.is_daemon() {
            s.listen_addrs.clear(); // the temporary node's own ports mean nothing to the user
        }
        Ok((s, addr))
    })
    .await?;
    if out.json {
        return out.json(&s);
    }
    out.line(format!("peer_id:      {}", s.peer_id));
    out.line(format!("publisher:    {}", s.publisher));
    out.line(format!("network:      {}", s.network));
    for a in &s.listen_addrs {
        out.line(format!("listen:       {a}"));
    }
    out.line(format!("api:          {api_addr}"));
    out.line(format!("peers:        {}", s.peers));
    out.line(format!("datasets:     {} held, {} in the catalog", s.datasets, s.catalog));
    out.line(format!("store:        {} metadata, {} data", bytes(s.store_bytes), bytes(s.data_bytes)));
    Ok(())
}

/// `lien import ckan`
pub async fn import_ckan(home: &Path, args: ImportCkanArgs, out: &Out) -> Result<()> {
    let package = crate::imports::read_ckan_package(&args.package)?;
    let data = std::fs::canonicalize(&args.data).with_context(|| format!("cannot read {}", args.data.display()))?;
    let files = package.resource_files(&data)?;
    // The daemon publishes a folder: the resources are gathered (hard-linked) into one under the
    // home, which the daemon copies into its data folder; the staging folder is removed after.
    let staging = std::path::absolute(home.join("import"))?.join(format!("ckan-{}", std::process::id()));
    crate::imports::stage(&files, &staging)?;
    let mut body = package.to_body(staging.clone());
    if let Some(name) = args.name {
        body.name = name;
    }
    body.name = crate::parse_slug(&body.name)
        .map_err(|e| anyhow::anyhow!("the CKAN name {:?} is not a valid dataset name ({e}); pass --name", body.name))?;
    let result = publish_body(home, body, out).await;
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Reads the value of one unlabelled Prometheus sample.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `lien status --watch`: status and transfer rates, refreshed until interrupted (or `--count`).
pub async fn watch(home: &Path, args: &StatusArgs, out: &Out) -> Result<()> {
    let api = Api::require(home).await?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout()) && !out.json;
    let interval = Duration::from_secs(args.interval);
    let mut last: Option<(Instant, u64, u64)> = None;
    let mut n = 0u64;
    loop {
        let s: StatusInfo = api.get("/v1/status").await?;
        let m = api.text("/metrics").await?;
        let now = Instant::now();
        let (bytes_in, bytes_out) =
            (metric(&m, "lien_bytes_in_total").unwrap_or(0), metric(&m, "lien_bytes_out_total").unwrap_or(0));
        let rate = |now_v: u64, then_v: u64, then: Instant| {
            let secs = now.duration_since(then).as_secs_f64().max(0.001);
            (now_v.saturating_sub(then_v) as f64 / secs) as u64
        };
        let (rate_in, rate_out) = match last {
            Some((t, i, o)) => (rate(bytes_in, i, t), rate(bytes_out, o, t)),
            None => (0, 0),
        };
        last = Some((now, bytes_in, bytes_out));
        let fetches = metric(&m, "lien_fetches_active").unwrap_or(0);
        if out.json {
            out.json(&serde_json::json!({
                "peers": s.peers, "catalog": s.catalog, "datasets": s.datasets,
                "bytes_in": bytes_in, "bytes_out": bytes_out, "rate_in": rate_in, "rate_out": rate_out,
                "fetches_active": fetches, "store_bytes": s.store_bytes, "data_bytes": s.data_bytes,
            }))?;
        } else {
            if tty {
                print!("\x1b[2J\x1b[H"); // clear the screen, cursor home
                out.line(format!("lien {} · {} · network {} (Ctrl-C to stop)", s.version, s.peer_id, s.network));
            }
            out.line(format!(
                "peers {:>4}  catalog {:>7}  held {:>4}  fetching {:>2}  in {:>10}/s  out {:>10}/s  total in {}  out {}  data {}",
                s.peers,
                s.catalog,
                s.datasets,
                fetches,
                bytes(rate_in),
                bytes(rate_out),
                bytes(bytes_in),
                bytes(bytes_out),
                bytes(s.data_bytes)
            ));
        }
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}

/// `lien pin`, `lien unpin`, `lien rm`
pub async fn local_change(home: &Path, id: &str, action: &str, out: &Out) -> Result<()> {
    let (method, path) = match action {
        "pin" => (Method::POST, format!("/v1/local/{id}/pin")),
        "unpin" => (Method::POST, format!("/v1/local/{id}/unpin")),
        _ => (Method::DELETE, format!("/v1/local/{id}")),
    };
    let r: LocalChange = with_api(home, async |api| api.call(method, &path, None::<&()>).await)
        .await
        .with_context(|| format!("cannot {action} {id}"))?;
    if out.json {
        return out.json(&r);
    }
    out.line(format!("{} {}: {}", r.action, r.id, r.detail));
    Ok(())
}

/// `lien verify`
pub async fn verify(home: &Path, id: &str, out: &Out) -> Result<()> {
    let path = format!("/v1/local/{id}/verify");
    let r: VerifyReport = with_api(home, async |api| api.call(Method::POST, &path, None::<&()>).await)
        .await
        .with_context(|| format!("cannot verify {id}"))?;
    if out.json {
        out.json(&r)?;
    } else {
        for f in &r.files {
            out.line(format!("{:<8} {}  ({})", f.status, f.path, f.detail));
        }
    }
    if !r.ok {
        let bad = r.files.iter().filter(|f| f.status != "ok").count();
        bail!("dataset {id} is damaged or incomplete: {bad} of {} files are not intact", r.files.len());
    }
    if !out.json {
        out.line(format!("ok: all {} files of {id} match their ids", r.files.len()));
    }
    Ok(())
}
