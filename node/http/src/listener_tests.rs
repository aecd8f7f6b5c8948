//! The two listeners end to end: real nodes on 127.0.0.1, the API and portal routers served by
//! [`serve_router`] on ports chosen by the system, raw HTTP/1 over TCP. Every wait is bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use lien_protocol::{ChunkSize, ContentId, Manifest, Metadata, Slug};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use lien_node::{Node, NodeConfig, PublishRequest};

use crate::{routers, serve_router, ApiConfig};

const TOKEN: &str = "listener-test-token";
/// Longest any one exchange may take.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(60);

/// The API and the portal of one node, stopped when dropped.
struct Served {
    api: SocketAddr,
    portal: SocketAddr,
    _stop: (oneshot::Sender<()>, oneshot::Sender<()>),
}

/// Serves both routers of `node` on 127.0.0.1 with the config `tweak` leaves.
async fn serve_both(node: &Node, tweak: impl FnOnce(&mut ApiConfig)) -> Result<Served> {
    let api_listener = TcpListener::bind("127.0.0.1:0").await?;
    let portal_listener = TcpListener::bind("127.0.0.1:0").await?;
    let (api, portal) = (api_listener.local_addr()?, portal_listener.local_addr()?);
    let mut config = ApiConfig { listen: api, portal_listen: Some(portal), ..ApiConfig::default() };
    tweak(&mut config);
    config.validate()?;
    let (api_router, portal_router) = routers(node.clone(), Zeroizing::new(TOKEN.to_owned()), &config);
    let (api_stop, api_stopped) = oneshot::channel::<()>();
    let (portal_stop, portal_stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_router(api_listener, api_router, config.timeouts(), async {
        let _ = api_stopped.await;
    }));
    tokio::spawn(serve_router(portal_listener, portal_router, config.timeouts(), async {
        let _ = portal_stopped.await;
    }));
    Ok(Served { api, portal, _stop: (api_stop, portal_stop) })
}

/// A node on 127.0.0.1 in `home`, joining through `bootstrap`.
async fn start_node(home: &Path, bootstrap: Option<&Node>) -> Result<Node> {
    let mut c = NodeConfig::for_home(home);
    c.network = "test".into();
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    c.hash_threads = 2;
    c.request_timeout_secs = 10;
    if let Some(b) = bootstrap {
        c.bootstrap = b.listen_addrs().await?.into_iter().take(1).collect();
    }
    Ok(Node::start(c).await?)
}

/// Deterministic bytes (xorshift).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Publishes one file `name` of `bytes` as dataset `slug`.
async fn publish(
    node: &Node,
    dir: &Path,
    slug: &str,
    metadata: Metadata,
    name: &str,
    bytes: &[u8],
) -> Result<Manifest> {
    let folder = dir.join(format!("src-{slug}"));
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join(name), bytes)?;
    let req = PublishRequest {
        path: folder,
        slug: slug.parse::<Slug>()?,
        metadata,
        in_place: false,
        chunk_size: ChunkSize::new(1 << 16)?,
    };
    Ok(node.publish(req, Arc::new(|_, _| {})).await?)
}

/// One HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// `GET path` as HTTP/1.0 (the server closes after the answer), with `Host: host` if given.
async fn get(addr: SocketAddr, host: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Result<Reply> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut request = format!("GET {path} HTTP/1.0\r\n");
        if let Some(h) = host {
            request.push_str(&format!("Host: {h}\r\n"));
        }
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of the head")?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).context("no status")?;
        Ok::<_, anyhow::Error>(Reply { status, head, body: raw[split + 4..].to_vec() })
    };
    tokio::time::timeout(EXCHANGE_LIMIT, exchange).await.context("no answer in time")?
}

/// `GET path` on the loopback name the CLI uses.
async fn local_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Reply> {
    get(addr, Some(&addr.to_string()), path, headers).await
}

/// Starts a download of `path` that reads only the head of the answer and then nothing more,
/// on a socket with a small receive buffer: the server soon cannot write, and its request slot
/// stays taken.
async fn stalled_download(addr: SocketAddr, path: &str) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut stream = tokio::time::timeout(EXCHANGE_LIMIT, socket.connect(addr)).await??;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut first = [0u8; 64];
    let n = tokio::time::timeout(EXCHANGE_LIMIT, stream.read(&mut first)).await??;
    ensure!(first[..n].starts_with(b"HTTP/1.1 200"), "download answered {:?}", String::from_utf8_lossy(&first[..n]));
    Ok(stream)
}

/// Polls `check` every 100 ms until it holds, failing after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = Instant::now();
    for _ in 0..=limit.as_millis() / 100 {
        if check().await? {
            return Ok(());
        }
        if start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out after {limit:?} waiting for {what}")
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_only_its_own_host_names() -> Result<()> {
    let home = tempfile::tempdir()?;
    let node = start_node(home.path(), None).await?;
    let plain = serve_both(&node, |_| {}).await?;
    let port = plain.api.port();

    for host in ["evil.example", &format!("evil.example:{port}"), "localhost.evil.example", "10.9.8.7"] {
        let r = get(plain.api, Some(host), "/v1/status", &[]).await?;
        ensure!(r.status == 421, "Host {host}: status {}", r.status);
        ensure!(r.json()?["error"]["code"] == "misdirected_request", "Host {host}: {}", r.json()?);
        ensure!(r.head.to_ascii_lowercase().contains("content-type: application/json"), "{}", r.head);
        let r = get(plain.api, Some(host), "/d/00/", &[]).await?;
        ensure!(r.status == 421, "Host {host} on the gateway: status {}", r.status);
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
        "127.0.0.1".to_owned(),
    ] {
        let r = get(plain.api, Some(&host), "/v1/status", &[]).await?;
        ensure!(r.status == 200, "Host {host}: status {}", r.status);
    }
    // A tool that sends no Host at all (HTTP/1.0) is not a browser: answered.
    ensure!(get(plain.api, None, "/v1/status", &[]).await?.status == 200);
    // The portal listener is public: without a public URL it answers any name.
    let r = get(plain.portal, Some("evil.example"), "/api/3", &[]).await?;
    ensure!(r.status == 200, "portal, Host evil.example: status {}", r.status);

    // With a public URL, the API also answers that name, and the portal only that and its own.
    let named = serve_both(&node, |c| c.public_url = Some("https://Data.Example.gov.vn/".into())).await?;
    for (addr, host, want) in [
        (named.api, "data.example.gov.vn", 200),
        (named.api, "evil.example", 421),
        (named.portal, "data.example.gov.vn:443", 200),
        (named.portal, "evil.example", 421),
        (named.portal, "localhost", 200),
    ] {
        let r = get(addr, Some(host), "/api/3", &[]).await?;
        ensure!(r.status == want, "{addr}, Host {host}: status {} (wanted {want})", r.status);
    }
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_private_reads_need_the_token_and_metrics_stay_off_the_portal() -> Result<()> {
    let home = tempfile::tempdir()?;
    let node = start_node(home.path(), None).await?;
    let s = serve_both(&node, |_| {}).await?;
    let auth = format!("Bearer {TOKEN}");
    for path in ["/v1/local", "/v1/peers", "/v1/audit"] {
        let r = local_get(s.api, path, &[]).await?;
        ensure!(r.status == 401 && r.json()?["error"]["code"] == "unauthorized", "{path} without token: {}", r.status);
        let r = local_get(s.api, path, &[("Authorization", "Bearer wrong")]).await?;
        ensure!(r.status == 401, "{path} with a wrong token: {}", r.status);
        let r = local_get(s.api, path, &[("Authorization", &auth)]).await?;
        ensure!(r.status == 200, "{path} with the token: {} {}", r.status, String::from_utf8_lossy(&r.body));
        ensure!(local_get(s.portal, path, &[("Authorization", &auth)]).await?.status == 404, "{path} on the portal");
    }
    ensure!(local_get(s.api, "/v1/status", &[]).await?.status == 200, "status needs no token");
    let metrics = local_get(s.api, "/metrics", &[]).await?;
    ensure!(metrics.status == 200 && String::from_utf8_lossy(&metrics.body).contains("lien_peers "));
    let r = local_get(s.portal, "/metrics", &[]).await?;
    ensure!(r.status == 404, "/metrics on the portal listener: {}", r.status);
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keeps_its_slots_while_portal_downloads_stall() -> Result<()> {
    let home = tempfile::tempdir()?;
    let node = start_node(home.path(), None).await?;
    let big = pattern(7, 16 << 20);
    let m = publish(&node, home.path(), "big", Metadata::titled("Big"), "big.bin", &big).await?;
    let path = format!("/d/{}/big.bin", m.id());
    let s = serve_both(&node, |c| {
        c.max_concurrent_requests = 2;
        c.portal_max_concurrent_requests = 2;
        c.idle_timeout_secs = 600; // this test is about the limits, not the timeouts
    })
    .await?;
    // Two portal downloads whose clients stopped reading take the portal's two slots...
    let _held = (stalled_download(s.portal, &path).await?, stalled_download(s.portal, &path).await?);
    let r = local_get(s.portal, "/api/3", &[]).await?;
    ensure!(r.status == 503, "a third portal request: status {}", r.status);
    // ...and the operator still has the API, the gateway included.
    let r = local_get(s.api, "/v1/status", &[]).await?;
    ensure!(r.status == 200, "the API answered {} while the portal was full", r.status);
    let r = local_get(s.api, &path, &[("Range", "bytes=100-199")]).await?;
    ensure!(r.status == 206 && r.body == big[100..200], "API range: status {}", r.status);
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_portal_close_connections_that_keep_them_waiting() -> Result<()> {
    let home = tempfile::tempdir()?;
    let node = start_node(home.path(), None).await?;
    let big = pattern(8, 16 << 20);
    let m = publish(&node, home.path(), "big", Metadata::titled("Big"), "big.bin", &big).await?;
    let s = serve_both(&node, |c| {
        c.header_read_timeout_secs = 1;
        c.idle_timeout_secs = 3;
        c.portal_max_concurrent_requests = 1;
    })
    .await?;

    // Closed: how long after `start` the server ended the connection (bounded by 15 s).
    async fn closed_after(stream: &mut TcpStream, start: Instant) -> Result<Duration> {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buf)).await {
                Err(_) => bail!("the server kept the connection open for 15 s"),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(start.elapsed()),
                Ok(Ok(_)) => {}
            }
        }
    }
    // A request head that never ends: cut after the 1 s header timeout, not the 3 s idle one.
    let mut slow = TcpStream::connect(s.api).await?;
    let start = Instant::now();
    slow.write_all(format!("GET /v1/status HTTP/1.1\r\nHost: {}\r\nX-Slow: ", s.api).as_bytes()).await?;
    let took = closed_after(&mut slow, start).await?;
    ensure!(took >= Duration::from_millis(900) && took < Duration::from_millis(2800), "slow head cut after {took:?}");
    // A connection that sends nothing, on either listener.
    for addr in [s.api, s.portal] {
        let mut silent = TcpStream::connect(addr).await?;
        let took = closed_after(&mut silent, Instant::now()).await?;
        ensure!(took >= Duration::from_millis(2900) && took < Duration::from_secs(7), "silent cut after {took:?}");
    }
    // A kept-alive connection, idle after its answer.
    let mut kept = TcpStream::connect(s.api).await?;
    kept.write_all(format!("GET /v1/status HTTP/1.1\r\nHost: {}\r\n\r\n", s.api).as_bytes()).await?;
    let mut first = [0u8; 16];
    tokio::time::timeout(EXCHANGE_LIMIT, kept.read_exact(&mut first)).await??;
    ensure!(first.starts_with(b"HTTP/1.1 200"), "keep-alive request: {:?}", String::from_utf8_lossy(&first));
    let took = closed_after(&mut kept, Instant::now()).await?;
    ensure!(took < Duration::from_secs(7), "idle keep-alive connection cut after {took:?}");

    // The server's own work does not count: a `get` that looks for providers for 4 s, well
    // past the idle timeout, still gets its answer (once its request body is in).
    let mut long = TcpStream::connect(s.api).await?;
    let body =
        format!(r#"{{"target":"{}","dir":"{}","timeout_secs":4}}"#, "0".repeat(64), home.path().join("out").display());
    let request = format!(
        "POST /v1/get HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        s.api,
        body.len()
    );
    let start = Instant::now();
    long.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(EXCHANGE_LIMIT, long.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer);
    ensure!(answer.starts_with("HTTP/1.0 404") && answer.contains("no reachable peer"), "long get: {answer}");
    ensure!(start.elapsed() >= Duration::from_secs(4), "the get gave up after {:?}", start.elapsed());

    // A download whose client stopped reading holds the portal's only slot until the idle
    // timeout frees it.
    let stalled = stalled_download(s.portal, &format!("/d/{}/big.bin", m.id())).await?;
    let start = Instant::now();
    ensure!(local_get(s.portal, "/api/3", &[]).await?.status == 503, "the slot was not taken");
    wait_until("the stalled download's slot", Duration::from_secs(10), || async {
        Ok(local_get(s.portal, "/api/3", &[]).await?.status == 200)
    })
    .await?;
    ensure!(start.elapsed() >= Duration::from_millis(2500), "freed after {:?}", start.elapsed());
    drop(stalled);
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_fetches_on_demand_only_datasets_held_here() -> Result<()> {
    let (home_a, home_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = start_node(home_a.path(), None).await?;
    let bytes = pattern(9, 4_000_000);
    let m = publish(&a, home_a.path(), "open", Metadata::titled("Open data"), "data.bin", &bytes).await?;
    let id = m.id();
    let b = start_node(home_b.path(), Some(&a)).await?;
    wait_until("B to learn the manifest", Duration::from_secs(30), || async { Ok(b.store().manifest(&id)?.is_some()) })
        .await?;
    let s = serve_both(&b, |_| {}).await?;
    let path = format!("/d/{id}/data.bin");

    // Anonymous: B holds nothing of it, so its portal does not fetch it...
    let r = local_get(s.portal, &path, &[("Range", "bytes=0-99")]).await?;
    ensure!(r.status == 403, "portal, dataset not held: status {}", r.status);
    ensure!(r.json()?["error"]["message"].as_str().is_some_and(|m| m.contains("not held")), "{}", r.json()?);
    ensure!(b.store().local(&id)?.is_none(), "the refused request still made B fetch the dataset");
    // ...nor any id someone makes up, and it says so at once.
    let start = Instant::now();
    let made_up = ContentId::of(b"no such dataset");
    let r = local_get(s.portal, &format!("/d/{made_up}/x.csv"), &[]).await?;
    ensure!(
        r.status == 403 && start.elapsed() < Duration::from_secs(5),
        "made-up id: {} after {:?}",
        r.status,
        start.elapsed()
    );
    ensure!(local_get(s.portal, &format!("/d/{made_up}/"), &[]).await?.status == 403, "made-up listing");

    // The operator's loopback API fetches on demand as before: only the chunk asked for.
    let r = local_get(s.api, &path, &[("Range", "bytes=0-99")]).await?;
    ensure!(r.status == 206 && r.body == bytes[..100], "API, on demand: status {}", r.status);
    let held = b.store().local(&id)?;
    ensure!(held.as_ref().is_some_and(|d| !d.complete), "B should now hold part of the dataset: {held:?}");
    // Held (in part) now: the portal fetches the chunks it lacks.
    let r = local_get(s.portal, &path, &[("Range", "bytes=3900000-3900099")]).await?;
    ensure!(r.status == 206 && r.body == bytes[3_900_000..3_900_100], "portal, held dataset: status {}", r.status);
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_shows_no_peer_addresses_and_no_restricted_dataset() -> Result<()> {
    let (home_a, home_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = start_node(home_a.path(), None).await?;
    let open = publish(&a, home_a.path(), "beds", Metadata::titled("Hospital beds"), "beds.csv", b"a,b\n1,2\n").await?;
    let secret_meta = Metadata { readers: vec!["Ministry of Health".into()], ..Metadata::titled("Patient records") };
    let secret = publish(&a, home_a.path(), "patients", secret_meta, "patients.csv", b"x\n").await?;
    let b = start_node(home_b.path(), Some(&a)).await?;
    wait_until("A and B to connect", Duration::from_secs(20), || async { Ok(!a.peers().await?.is_empty()) }).await?;
    let s = serve_both(&a, |_| {}).await?;
    let b_id = b.peer_id().to_string();
    let peers_of = |html: &str| -> String {
        let from = html.find("<ul id=peers>").unwrap_or(0);
        let to = html[from..].find("</ul>").map_or(html.len(), |e| from + e);
        html[from..to].to_owned()
    };

    let public = String::from_utf8(local_get(s.portal, "/node", &[]).await?.body)?;
    let peers = peers_of(&public);
    ensure!(peers.contains(&b_id), "the portal's /node does not list peer B: {peers}");
    ensure!(!peers.contains("/ip4/") && !peers.contains("127.0.0.1"), "the portal shows peers' addresses: {peers}");
    ensure!(public.contains("Hospital beds"), "the open dataset is missing from the portal's /node");
    ensure!(!public.contains("Patient records") && !public.contains("patients"), "a restricted title on the portal");
    ensure!(public.contains("1 restricted dataset"), "the restricted dataset is not counted");

    let page = String::from_utf8(local_get(s.portal, &format!("/dataset/{}", secret.id()), &[]).await?.body)?;
    ensure!(page.contains("Patient records") && !page.contains("complete copy"), "the portal tells it holds it");
    let page = String::from_utf8(local_get(s.portal, &format!("/dataset/{}", open.id()), &[]).await?.body)?;
    ensure!(page.contains("complete copy"), "the open dataset's page lost this node's copy");

    // The operator's own page still shows everything.
    let private = String::from_utf8(local_get(s.api, "/node", &[]).await?.body)?;
    ensure!(peers_of(&private).contains("/ip4/127.0.0.1/"), "the API's /node lost the peers' addresses");
    ensure!(private.contains("Patient records"), "the API's /node lost the restricted dataset");

    // A restricted dataset's listing is refused like its files, on both listeners.
    for addr in [s.api, s.portal] {
        for path in [format!("/d/{}/", secret.id()), format!("/d/{}/patients.csv", secret.id())] {
            let r = local_get(addr, &path, &[]).await?;
            ensure!(r.status == 403, "{addr}{path}: status {}", r.status);
            ensure!(!String::from_utf8_lossy(&r.body).contains("patients.csv\""), "{path} listed the files");
        }
        let r = local_get(addr, &format!("/d/{}/", open.id()), &[]).await?;
        ensure!(r.status == 200 && r.json()?["files"][0]["path"] == "beds.csv", "open listing: {}", r.status);
    }
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}
