//! `lien`: the command-line front end of a Lien node.
//!
//! It parses and prints; it holds no protocol logic. `lien daemon` runs a node with its HTTP API
//! in the foreground; every other command is a client of that API (found through
//! `HOME/daemon.json`), except `init`, and `get` when no daemon runs (then a temporary node is
//! started in-process for the one fetch).
//!
//! Exit codes: 0 success, 1 failure, 2 usage error. Errors are printed as one line,
//! `error: ...` with the cause chain.

/// mimalloc instead of glibc malloc: chunk buffers of 1 MiB fall above glibc's mmap threshold, so
/// every chunk cost an mmap, page faults and an munmap (≈ 200k faults per GiB fetched, see
/// BENCHMARKS.md); mimalloc reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod client;
mod commands;
mod daemon;
mod host;
mod imports;
mod output;
mod trust;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use libp2p::Multiaddr;

/// Lien: share datasets between agencies, peer to peer, verified end to end.
#[derive(Debug, Parser)]
#[command(
    name = "lien",
    version,
    after_help = "Examples:\n  lien init\n  lien daemon\n  lien publish ./census --name census-2024 --title \"Census 2024\"\n  lien search census\n  lien get PUBLISHER/census-2024 -o ./census"
)]
pub struct Cli {
    /// Home folder of the node [default: $LIEN_HOME, else ~/.lien].
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr (the level comes from RUST_LOG).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node home: node key, publisher key, API token (0600) and a commented lien.toml.
    #[command(after_help = "Example:\n  lien --home /srv/lien init")]
    Init,
    /// Run the node in the foreground until SIGINT or SIGTERM.
    #[command(
        after_help = "Example:\n  lien daemon --listen /ip4/0.0.0.0/tcp/4040 \\\n    --bootstrap /ip4/203.0.113.5/tcp/4040/p2p/12D3KooW... --api 127.0.0.1:4041"
    )]
    Daemon(DaemonArgs),
    /// Publish a file or folder through the running daemon; prints the manifest id last.
    ///
    /// Metadata missing from the flags is taken from a Frictionless `datapackage.json` in the
    /// folder, when there is one (name, title, description, keywords, licenses, contributors).
    #[command(
        after_help = "Example:\n  lien publish ./census --name census-2024 --title \"Census 2024\" --license CC-BY-4.0 \\\n    --keyword population --keyword census --organisation \"General Statistics Office\"\n  lien publish ./gdp    # name, title, ... from ./gdp/datapackage.json"
    )]
    Publish(Box<PublishArgs>),
    /// Publish a dataset described in another catalog's format.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Fetch and verify a dataset by manifest id or PUBLISHER/NAME into a folder.
    #[command(
        after_help = "Example:\n  lien get 5c1f...e9 -o ./data\n  lien get PUBLISHER/census-2024 -o ./census --timeout 120"
    )]
    Get(GetArgs),
    /// Search the catalog of datasets this node knows.
    #[command(after_help = "Example:\n  lien search population 2024")]
    Search(SearchArgs),
    /// Show a manifest: metadata, files, versions.
    #[command(after_help = "Example:\n  lien show PUBLISHER/census-2024")]
    Show(TargetArg),
    /// List the datasets held locally (published, fetched, pinned).
    #[command(after_help = "Example:\n  lien ls --json")]
    Ls,
    /// List connected peers.
    #[command(after_help = "Example:\n  lien peers")]
    Peers,
    /// Show the node's peer id, publisher key, addresses, peers and storage.
    #[command(
        after_help = "Example:\n  lien status --json\n  lien status --watch --interval 5\n  lien daemon & lien status --wait 30   # in a script: wait for the daemon to answer"
    )]
    Status(StatusArgs),
    /// Keep a local dataset.
    #[command(after_help = "Example:\n  lien pin 5c1f...e9")]
    Pin(IdArg),
    /// Release a pinned local dataset.
    #[command(after_help = "Example:\n  lien unpin 5c1f...e9")]
    Unpin(IdArg),
    /// Remove a local dataset: stop serving it, delete the copies in the node's data folder.
    #[command(after_help = "Example:\n  lien rm 5c1f...e9")]
    Rm(IdArg),
    /// Re-hash the local copy of a dataset and report any damage.
    #[command(after_help = "Example:\n  lien verify 5c1f...e9")]
    Verify(IdArg),
    /// The trust store: which roots and publishers this node accepts.
    #[command(subcommand, after_help = "Example:\n  lien trust add 7xq4...kq --root\n  lien trust ls")]
    Trust(trust::TrustCommand),
    /// Sign a delegation from this node's publisher key and spread it; prints the record (hex).
    #[command(
        after_help = "Example:\n  lien delegate --to 7xq4...kq --org \"Ministry of Health\" --prefix moh- --days 365\n  (give the printed record to other nodes with `lien trust import`)"
    )]
    Delegate(trust::DelegateArgs),
    /// Sign a revocation of a key with this node's publisher key and spread it.
    #[command(after_help = "Example:\n  lien revoke 7xq4...kq --reason \"key lost\"")]
    Revoke(trust::RevokeArgs),
    /// Verify the audit log of served data and show its newest entries (exit 1 if tampered with).
    #[command(after_help = "Example:\n  lien audit --limit 20")]
    Audit(trust::AuditArgs),
}

/// `lien daemon`
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Address to listen on for peers (repeatable; replaces [node] listen).
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    /// Peer to join through, ending in /p2p/<peer id> (repeatable; added to [node] bootstrap).
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Address of the HTTP API (replaces [api] listen).
    #[arg(long, value_name = "ADDR")]
    pub api: Option<std::net::SocketAddr>,
}

/// `lien publish`
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// File or folder to publish.
    pub path: PathBuf,
    /// Dataset name: lowercase letters, digits and '-' [default: from datapackage.json].
    #[arg(long, value_name = "SLUG", value_parser = parse_slug)]
    pub name: Option<String>,
    /// Title [default: from datapackage.json].
    #[arg(long)]
    pub title: Option<String>,
    /// Description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// License name or URL.
    #[arg(long, default_value = "")]
    pub license: String,
    /// Keyword (repeatable).
    #[arg(long = "keyword", value_name = "WORD")]
    pub keywords: Vec<String>,
    /// Publishing organisation's name.
    #[arg(long, default_value = "")]
    pub organisation: String,
    /// Theme (repeatable).
    #[arg(long = "theme", value_name = "THEME")]
    pub themes: Vec<String>,
    /// Spatial coverage, e.g. a province.
    #[arg(long, default_value = "")]
    pub spatial: String,
    /// Temporal coverage, e.g. 2020/2025.
    #[arg(long, default_value = "")]
    pub temporal: String,
    /// Contact point (e-mail address or name).
    #[arg(long, default_value = "")]
    pub contact: String,
    /// Language code, e.g. vi (repeatable).
    #[arg(long = "language", value_name = "CODE")]
    pub languages: Vec<String>,
    /// Restrict reading to this organisation (repeatable): only nodes whose key a trusted root
    /// delegated to one of them are served the data.
    #[arg(long = "reader", value_name = "ORG")]
    pub readers: Vec<String>,
    /// Serve the files where they are instead of copying them into the node's data folder.
    #[arg(long)]
    pub in_place: bool,
    /// Chunk size in bytes (a power of two from 64 KiB to 16 MiB; default 1 MiB).
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<u64>,
}

/// `lien import ...`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Publish a CKAN package (as `package_show` returns it) with its downloaded resources.
    #[command(
        after_help = "Example:\n  curl -s 'https://portal.example/api/3/action/package_show?id=gdp' > gdp.json\n  lien import ckan gdp.json --data ./gdp-files"
    )]
    Ckan(ImportCkanArgs),
}

/// `lien import ckan`
#[derive(Debug, Args)]
pub struct ImportCkanArgs {
    /// The package: a JSON file with `package_show`'s answer or its `result`.
    #[arg(value_name = "PACKAGE.json")]
    pub package: PathBuf,
    /// Folder with the downloaded resources (found by the file name in each resource's URL,
    /// else by its name or id).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Dataset name [default: the package's CKAN name].
    #[arg(long, value_name = "SLUG", value_parser = parse_slug)]
    pub name: Option<String>,
}

/// `lien status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Keep showing status and transfer rates, refreshed every --interval seconds.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, value_name = "SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// With --watch: stop after this many refreshes [default: until interrupted].
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Wait up to SECS for this home's daemon to answer, then show its status (fails if it does
    /// not answer in time; never starts a temporary node). For scripts that start a daemon.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub wait: Option<u64>,
}

/// `lien get`
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Manifest id (64 hex) or PUBLISHER/NAME.
    #[arg(value_name = "ID|PUBLISHER/NAME", value_parser = parse_target)]
    pub target: lien_node::Target,
    /// Folder to put the files in (created if missing).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// Seconds to look for providers before giving up.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Peer to join through, ending in /p2p/<peer id> (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Without a daemon: address the temporary node listens on [default: the configured
    /// addresses on port 0].
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
}

/// `lien search`
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to look for in titles, descriptions, keywords and names.
    #[arg(required = true)]
    pub words: Vec<String>,
    /// Most results.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// A manifest id or a name.
#[derive(Debug, Args)]
pub struct TargetArg {
    /// Manifest id (64 hex) or PUBLISHER/NAME.
    #[arg(value_name = "ID|PUBLISHER/NAME", value_parser = parse_target)]
    pub target: lien_node::Target,
}

/// A manifest id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// Manifest id (64 hex).
    #[arg(value_name = "ID", value_parser = parse_id)]
    pub id: String,
}

fn parse_slug(s: &str) -> Result<String, String> {
    s.parse::<lien_protocol::Slug>().map(|slug| slug.to_string()).map_err(|e| e.to_string())
}

fn parse_id(s: &str) -> Result<String, String> {
    s.parse::<lien_protocol::ContentId>()
        .map(|id| id.to_string())
        .map_err(|e| format!("not a manifest id (64 hex digits): {e}"))
}

/// Parses a dataset target once, where it comes in; commands get the typed value.
fn parse_target(s: &str) -> Result<lien_node::Target, String> {
    s.parse().map_err(|e: lien_node::target::TargetError| e.to_string())
}

/// The home folder: `--home`, else `$LIEN_HOME`, else `~/.lien`.
fn resolve_home(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let home = match (flag, std::env::var_os("LIEN_HOME").filter(|h| !h.is_empty())) {
        (Some(h), _) => h,
        (None, Some(h)) => PathBuf::from(h),
        (None, None) => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(h) => PathBuf::from(h).join(".lien"),
            None => anyhow::bail!("no home folder: pass --home DIR or set LIEN_HOME"),
        },
    };
    // Absolute, so paths recorded in the store and in daemon.json do not depend on the cwd.
    std::path::absolute(&home).with_context(|| format!("bad home folder {}", home.display()))
}

fn init_logging(cli: &Cli) {
    let default = if matches!(cli.command, Command::Daemon(_)) { "info,libp2p=warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if cli.log_format == "json" { builder.json().try_init() } else { builder.try_init() };
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli));
    // Don't wait for stray blocking tasks (e.g. a hashing pass of a cancelled operation).
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let home = resolve_home(cli.home)?;
    let out = output::Out::new(cli.json);
    match cli.command {
        Command::Init => commands::init(&home, &out),
        Command::Daemon(args) => daemon::run(&home, args).await,
        Command::Publish(args) => commands::publish(&home, *args, &out).await,
        Command::Get(args) => commands::get(&home, args, &out).await,
        Command::Search(args) => commands::search(&home, args, &out).await,
        Command::Show(arg) => commands::show(&home, &arg.target, &out).await,
        Command::Ls => commands::ls(&home, &out).await,
        Command::Peers => commands::peers(&home, &out).await,
        Command::Status(args) if args.watch => commands::watch(&home, &args, &out).await,
        Command::Status(args) => {
            if let Some(secs) = args.wait {
                client::wait_for_daemon(&home, Duration::from_secs(secs)).await?;
            }
            commands::status(&home, &out).await
        }
        Command::Import(ImportCommand::Ckan(args)) => commands::import_ckan(&home, args, &out).await,
        Command::Pin(arg) => commands::local_change(&home, &arg.id, "pin", &out).await,
        Command::Unpin(arg) => commands::local_change(&home, &arg.id, "unpin", &out).await,
        Command::Rm(arg) => commands::local_change(&home, &arg.id, "rm", &out).await,
        Command::Verify(arg) => commands::verify(&home, &arg.id, &out).await,
        Command::Trust(cmd) => trust::trust(&home, cmd, &out).await,
        Command::Delegate(args) => trust::delegate(&home, args, &out).await,
        Command::Revoke(args) => trust::revoke(&home, args, &out).await,
        Command::Audit(args) => trust::audit(&home, args, &out).await,
    }
}
