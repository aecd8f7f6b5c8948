//! `lien_bench`: the measurements behind `BENCHMARKS.md` (driven by `benches/run.sh`).
//!
//! ```text
//! lien_bench publish FILE                 publish FILE in place from a fresh home; time it
//! lien_bench serve FILE                   publish FILE, print {"addr","id"}, serve until stdin
//!                                         closes (or SIGTERM/SIGINT); then report to stderr
//! lien_bench fetch ADDR ID OUT_DIR        fetch ID from the node at ADDR into OUT_DIR
//! lien_bench swarm N SIZE_MIB             one publisher + N fetchers in this process, all
//!                                         fetching the same SIZE_MIB dataset at once
//! lien_bench hashcost FILE                where publish time goes: `hash_reader` (the publish
//!                                         path) on 1 and N threads, a plain sequential read,
//!                                         and N threads each reading (pread) and hashing its
//!                                         own chunks: a prototype of a parallel-read publish
//! options:
//!   --chunk-mib N            chunk size used when publishing (default 1)
//!   --requests-per-peer N    NodeConfig::fetch_requests_per_peer (default: the node's default)
//!   --hash-threads N         NodeConfig::hash_threads (default 2 = this machine's cores)
//!   --mesh                   swarm: each fetcher also bootstraps to every earlier fetcher
//!   --timeout-secs N         fetch timeout (default 300)
//!   --no-bulk                chunks over libp2p only (NodeConfig::bulk_transfer = false)
//! ```
//!
//! Every mode prints one JSON object per line on stdout (`serve` prints its final report on
//! stderr, so that stdout carries only the address line). Times are wall-clock seconds; CPU
//! times (user, sys) come from `/proc/self/stat`; peak RSS is `VmHWM` from `/proc/self/status`.

/// The same allocator as the `lien` binary (see cli/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lien_node::{FetchOptions, FetchProgress, Node, NodeConfig, PublishRequest};
use lien_protocol::{ChunkSize, Metadata};
use lien_tests::{test_config, wait_for, Multiaddr};
use rand::{RngCore, SeedableRng};

const USAGE: &str =
    "usage: lien_bench publish FILE | serve FILE | fetch ADDR ID OUT_DIR | swarm N SIZE_MIB | hashcost FILE \
                     [--chunk-mib N] [--requests-per-peer N] [--hash-threads N] [--mesh] [--timeout-secs N] [--no-bulk]";

/// Options shared by all modes.
#[derive(Debug, Clone)]
struct Opts {
    chunk_mib: u64,
    requests_per_peer: Option<usize>,
    hash_threads: usize,
    mesh: bool,
    timeout_secs: u64,
    no_bulk: bool,
}

fn parse_args() -> Result<(Vec<String>, Opts)> {
    let mut opts =
        Opts { chunk_mib: 1, requests_per_peer: None, hash_threads: 2, mesh: false, timeout_secs: 300, no_bulk: false };
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<String> { args.next().with_context(|| format!("{name} needs a value")) };
        match a.as_str() {
            "--chunk-mib" => opts.chunk_mib = value("--chunk-mib")?.parse()?,
            "--requests-per-peer" => opts.requests_per_peer = Some(value("--requests-per-peer")?.parse()?),
            "--hash-threads" => opts.hash_threads = value("--hash-threads")?.parse()?,
            "--timeout-secs" => opts.timeout_secs = value("--timeout-secs")?.parse()?,
            "--mesh" => opts.mesh = true,
            "--no-bulk" => opts.no_bulk = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with("--") => bail!("unknown option {s}\n{USAGE}"),
            _ => positional.push(a),
        }
    }
    Ok((positional, opts))
}

fn main() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let (pos, opts) = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let arg = |i: usize| pos.get(i).cloned().with_context(|| USAGE.to_string());
    match pos.first().map(String::as_str) {
        Some("publish") => rt.block_on(publish_mode(PathBuf::from(arg(1)?), &opts)),
        Some("serve") => rt.block_on(serve_mode(PathBuf::from(arg(1)?), &opts)),
        Some("fetch") => rt.block_on(fetch_mode(arg(1)?.parse()?, &arg(2)?, PathBuf::from(arg(3)?), &opts)),
        Some("swarm") => rt.block_on(swarm_mode(arg(1)?.parse()?, arg(2)?.parse()?, &opts)),
        Some("hashcost") => hashcost_mode(Path::new(&arg(1)?), &opts),
        _ => bail!("{USAGE}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Process measurements.

/// Peak resident set size (`VmHWM`) in KiB.
fn vm_hwm_kib() -> u64 {
    status_field("VmHWM:")
}

/// Current resident set size (`VmRSS`) in KiB.
fn vm_rss_kib() -> u64 {
    status_field("VmRSS:")
}

fn status_field(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User and system CPU seconds of the whole process (all threads, including exited ones).
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    user: f64,
    sys: f64,
}

impl Cpu {
    fn now() -> Cpu {
        // Clock ticks per second: 100 on every Linux this runs on (`getconf CLK_TCK`).
        let tck: f64 = std::env::var("LIEN_BENCH_CLK_TCK").ok().and_then(|v| v.parse().ok()).unwrap_or(100.0);
        let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which may contain spaces) start at field 3 (state).
        let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tck;
        Cpu { user: get(11), sys: get(12) }
    }

    fn since(self, earlier: Cpu) -> Cpu {
        Cpu { user: self.user - earlier.user, sys: self.sys - earlier.sys }
    }
}

fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs.max(1e-9) / 1e9
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Nodes.

fn config(home: &Path, bootstrap: Vec<Multiaddr>, opts: &Opts) -> NodeConfig {
    let mut c = test_config(home);
    c.bootstrap = bootstrap;
    // Loopback, but a busy 2-core box: do not let a slow moment fail a 1 GiB transfer.
    c.request_timeout_secs = 60;
    c.hash_threads = opts.hash_threads;
    c.bulk_transfer = !opts.no_bulk;
    if let Some(n) = opts.requests_per_peer {
        c.fetch_requests_per_peer = n;
    }
    c
}

async fn start(home: &Path, bootstrap: Vec<Multiaddr>, opts: &Opts) -> Result<(Node, Multiaddr)> {
    let node = Node::start(config(home, bootstrap, opts)).await?;
    let addr = node.listen_addrs().await?.into_iter().next().context("node has no listen address")?;
    Ok((node, addr))
}

fn publish_request(path: &Path, opts: &Opts) -> Result<PublishRequest> {
    let mut metadata = Metadata::titled("lien benchmark data");
    metadata.keywords = vec!["benchmark".into()];
    Ok(PublishRequest {
        path: path.to_path_buf(),
        slug: "bench".parse()?,
        metadata,
        in_place: true,
        chunk_size: ChunkSize::new(opts.chunk_mib << 20)?,
    })
}

async fn wait_connected(node: &Node, n: usize) -> Result<()> {
    wait_for(&format!("{n} peers"), Duration::from_secs(30), || async { Ok(node.peers().await?.len() >= n) }).await
}

fn fetch_options(opts: &Opts, progress: Option<Arc<dyn Fn(FetchProgress) + Send + Sync>>) -> FetchOptions {
    FetchOptions { timeout: Duration::from_secs(opts.timeout_secs), progress }
}

// ---------------------------------------------------------------------------------------------
// Modes.

async fn publish_mode(file: PathBuf, opts: &Opts) -> Result<()> {
    let home = tempfile::tempdir()?;
    let (node, _) = start(home.path(), Vec::new(), opts).await?;
    let size = std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?.len();
    let req = publish_request(&file, opts)?;
    let cpu0 = Cpu::now();
    let t0 = Instant::now();
    let manifest = node.publish(req, Arc::new(|_, _| {})).await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = Cpu::now().since(cpu0);
    println!(
        "{{\"mode\":\"publish\",\"bytes\":{size},\"secs\":{secs:.4},\"gbps\":{:.4},\"cpu_user\":{:.2},\"cpu_sys\":{:.2},\
         \"chunk_mib\":{},\"hash_threads\":{},\"id\":{},\"vm_hwm_kib\":{}}}",
        gbps(size, secs),
        cpu.user,
        cpu.sys,
        opts.chunk_mib,
        opts.hash_threads,
        json_str(&manifest.id().to_string()),
        vm_hwm_kib()
    );
    node.shutdown().await;
    Ok(())
}

async fn serve_mode(file: PathBuf, opts: &Opts) -> Result<()> {
    let home = tempfile::tempdir()?;
    let (node, addr) = start(home.path(), Vec::new(), opts).await?;
    let manifest = node.publish(publish_request(&file, opts)?, Arc::new(|_, _| {})).await?;
    let after_publish = vm_hwm_kib();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{{\"addr\":{},\"id\":{}}}", json_str(&addr.to_string()), json_str(&manifest.id().to_string()))?;
        out.flush()?;
    }
    let cpu0 = Cpu::now();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while std::io::Read::read(&mut stdin, &mut sink).map(|n| n > 0).unwrap_or(false) {}
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let cpu = Cpu::now().since(cpu0);
    let served: u64 = node.stats().served.values().sum();
    eprintln!(
        "{{\"mode\":\"serve\",\"served_bytes\":{served},\"cpu_user\":{:.2},\"cpu_sys\":{:.2},\
         \"vm_hwm_kib_after_publish\":{after_publish},\"vm_hwm_kib\":{},\"vm_rss_kib\":{}}}",
        cpu.user,
        cpu.sys,
        vm_hwm_kib(),
        vm_rss_kib()
    );
    node.shutdown().await;
    // Do not wait for the blocking stdin reader when we were signalled.
    std::process::exit(0)
}

/// When the first byte and the last byte of a fetch arrived (nanoseconds after `t0`; 0 = not yet).
#[derive(Debug, Default)]
struct Marks {
    first: AtomicU64,
    all: AtomicU64,
}

fn progress_marks(t0: Instant) -> (Arc<Marks>, Arc<dyn Fn(FetchProgress) + Send + Sync>) {
    let marks = Arc::new(Marks::default());
    let m = marks.clone();
    let cb: Arc<dyn Fn(FetchProgress) + Send + Sync> = Arc::new(move |p: FetchProgress| {
        let now = t0.elapsed().as_nanos() as u64;
        if p.done > 0 {
            let _ = m.first.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
        if p.total > 0 && p.done >= p.total {
            let _ = m.all.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    });
    (marks, cb)
}

async fn fetch_mode(addr: Multiaddr, id: &str, out: PathBuf, opts: &Opts) -> Result<()> {
    let home = tempfile::tempdir()?;
    let (node, _) = start(home.path(), vec![addr], opts).await?;
    wait_connected(&node, 1).await?;
    let cpu0 = Cpu::now();
    let t0 = Instant::now();
    let (marks, cb) = progress_marks(t0);
    let report = node.fetch(id, &out, fetch_options(opts, Some(cb))).await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = Cpu::now().since(cpu0);
    let first = marks.first.load(Ordering::Relaxed) as f64 / 1e9;
    let all = marks.all.load(Ordering::Relaxed) as f64 / 1e9;
    let bytes = report.total_bytes;
    println!(
        "{{\"mode\":\"fetch\",\"bytes\":{bytes},\"downloaded\":{},\"secs\":{secs:.4},\"gbps\":{:.4},\
         \"first_byte_secs\":{first:.4},\"last_byte_secs\":{all:.4},\"transfer_gbps\":{:.4},\"finish_secs\":{:.4},\
         \"cpu_user\":{:.2},\"cpu_sys\":{:.2},\"requests_per_peer\":{},\"vm_hwm_kib\":{},\"bulk_bytes\":{}}}",
        report.downloaded_bytes,
        gbps(bytes, secs),
        gbps(bytes, all - first),
        secs - all,
        cpu.user,
        cpu.sys,
        node.config().fetch_requests_per_peer,
        vm_hwm_kib(),
        node.stats().bulk_fetched
    );
    node.shutdown().await;
    Ok(())
}

fn write_random_file(path: &Path, mib: usize, seed: u64) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        rng.fill_bytes(&mut block);
        out.write_all(&block)?;
    }
    out.flush()?;
    Ok(())
}

async fn swarm_mode(n: usize, mib: usize, opts: &Opts) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("swarm.bin");
    write_random_file(&file, mib, 7)?;
    let size = (mib as u64) << 20;
    let pub_home = tempfile::tempdir()?;
    let (publisher, pub_addr) = start(pub_home.path(), Vec::new(), opts).await?;
    let manifest = publisher.publish(publish_request(&file, opts)?, Arc::new(|_, _| {})).await?;
    let id = manifest.id().to_string();
    let mut fetchers: Vec<(Node, Multiaddr, tempfile::TempDir)> = Vec::new();
    for _ in 0..n {
        let home = tempfile::tempdir()?;
        let mut boot = vec![pub_addr.clone()];
        if opts.mesh {
            boot.extend(fetchers.iter().map(|(_, a, _)| a.clone()));
        }
        let (node, addr) = start(home.path(), boot, opts).await?;
        fetchers.push((node, addr, home));
    }
    for (i, (node, _, _)) in fetchers.iter().enumerate() {
        wait_connected(node, if opts.mesh { i + 1 } else { 1 }).await?;
    }
    // Let identify/Kademlia settle so fetchers can find each other, as in a network at rest.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peers_before: Vec<usize> = {
        let mut v = Vec::new();
        for (node, _, _) in &fetchers {
            v.push(node.peers().await?.len());
        }
        v
    };
    let out_root = tempfile::tempdir()?;
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for (i, (node, _, _)) in fetchers.iter().enumerate() {
        let node = node.clone();
        let id = id.clone();
        let out = out_root.path().join(format!("f{i}"));
        let fo = fetch_options(opts, None);
        handles.push(tokio::spawn(async move {
            let r = node.fetch(&id, &out, fo).await;
            (r, t0.elapsed().as_secs_f64())
        }));
    }
    let pub_peer = publisher.peer_id().to_string();
    let mut times = Vec::new();
    let mut from_publisher = 0u64;
    let mut from_others = 0u64;
    for h in handles {
        let (r, secs) = h.await?;
        let report = r?;
        times.push(secs);
        for (peer, bytes) in &report.per_peer {
            if *peer == pub_peer {
                from_publisher += bytes;
            } else {
                from_others += bytes;
            }
        }
    }
    let total_secs = t0.elapsed().as_secs_f64();
    let uploaded: u64 = publisher.stats().served.values().sum();
    let fetcher_uploads: Vec<u64> = fetchers.iter().map(|(f, _, _)| f.stats().served.values().sum()).collect();
    let list = |v: &[String]| v.join(",");
    println!(
        "{{\"mode\":\"swarm\",\"fetchers\":{n},\"bytes\":{size},\"publisher_uploaded\":{uploaded},\
         \"upload_ratio\":{:.3},\"from_publisher\":{from_publisher},\"from_other_fetchers\":{from_others},\
         \"total_secs\":{total_secs:.3},\"aggregate_gbps\":{:.4},\"fetch_secs\":[{}],\"fetcher_uploaded\":[{}],\
         \"peers_at_start\":[{}],\"mesh\":{},\"chunk_mib\":{},\"requests_per_peer\":{}}}",
        uploaded as f64 / size as f64,
        gbps(size * n as u64, total_secs),
        list(&times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>()),
        list(&fetcher_uploads.iter().map(|b| b.to_string()).collect::<Vec<_>>()),
        list(&peers_before.iter().map(|b| b.to_string()).collect::<Vec<_>>()),
        opts.mesh,
        opts.chunk_mib,
        publisher.config().fetch_requests_per_peer
    );
    for (node, _, _) in &fetchers {
        node.shutdown().await;
    }
    publisher.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Where publish time goes.

fn hashcost_mode(file: &Path, opts: &Opts) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let size = std::fs::metadata(file)?.len();
    let chunk = ChunkSize::new(opts.chunk_mib << 20)?;
    let threads = opts.hash_threads.max(1);
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let t0 = Instant::now();
        f()?;
        Ok(t0.elapsed().as_secs_f64())
    };
    // The publish path: BufReader(1 MiB) -> hash_reader, which reads a batch, then hashes it.
    let hash_reader = |n: usize| {
        time(&mut || {
            let f = std::fs::File::open(file)?;
            lien_protocol::chunk::hash_reader(std::io::BufReader::with_capacity(1 << 20, f), chunk, n, |_| {})?;
            Ok(())
        })
    };
    let one = hash_reader(1)?;
    let many = hash_reader(threads)?;
    // Just the sequential read hash_reader does between hashing batches (same 8 MiB batches).
    let read_only = time(&mut || {
        let mut f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(file)?);
        let mut buf = vec![0u8; threads * (4 << 20)];
        while std::io::Read::read(&mut f, &mut buf)? > 0 {}
        Ok(())
    })?;
    // Prototype: every thread preads and hashes its own chunks (stripes of the file), so reading
    // (the page-cache copy) runs on all cores too. Same hashing work per chunk as a chunk CV.
    let parallel = time(&mut || {
        let f = std::fs::File::open(file)?;
        let cs = chunk.bytes();
        let count = chunk.count(size);
        std::thread::scope(|s| -> Result<()> {
            let mut handles = Vec::new();
            for t in 0..threads as u64 {
                let f = &f;
                handles.push(s.spawn(move || -> std::io::Result<u64> {
                    let mut buf = vec![0u8; cs as usize];
                    let mut acc = 0u64;
                    let mut i = t;
                    while i < count {
                        let (off, len) = chunk.range(size, i);
                        f.read_exact_at(&mut buf[..len as usize], off)?;
                        acc ^= u64::from(lien_protocol::ContentId::of(&buf[..len as usize]).as_bytes()[0]);
                        i += threads as u64;
                    }
                    Ok(acc)
                }));
            }
            for h in handles {
                h.join().map_err(|_| anyhow::anyhow!("hash thread panicked"))??;
            }
            Ok(())
        })
    })?;
    println!(
        "{{\"mode\":\"hashcost\",\"bytes\":{size},\"threads\":{threads},\"hash_reader_1_secs\":{one:.4},\
         \"hash_reader_n_secs\":{many:.4},\"read_only_secs\":{read_only:.4},\"parallel_pread_hash_secs\":{parallel:.4},\
         \"hash_reader_n_gbps\":{:.4},\"parallel_pread_hash_gbps\":{:.4}}}",
        gbps(size, many),
        gbps(size, parallel)
    );
    Ok(())
}
