//! `lien-sim`: run Lien topology scenarios, list built-in topologies, export to Shadow.
//!
//! ```text
//! lien-sim topologies
//! lien-sim run SCENARIO.toml [--out DIR] [--seed N]
//! lien-sim export-shadow SCENARIO.toml DIR [--lien PATH] [--announce-delay-ms MS]
//! lien-sim shadow-summary DIR [--data DIR] [--out DIR]
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::{Parser, Subcommand};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use lien_sim::scenario::{Mode, Scenario};
use lien_sim::{calibrate, model, output, real, shadow, topology};

#[derive(Debug, Parser)]
#[command(name = "lien-sim", version, about = "Topology simulations of Lien networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the built-in topologies.
    #[command(after_help = "Example:\n  lien-sim topologies")]
    Topologies,
    /// Run a scenario and write events, CSVs, summary.json and plots.
    #[command(after_help = "Example:\n  lien-sim run simulations/scenarios/vietnam.toml --out results/vn --seed 7")]
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Output folder [default: sim-out/<scenario name>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed, replacing [sim] seed.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Write a Shadow configuration (shadow.yaml, graph.gml, per-host lien homes, the dataset)
    /// whose hosts run `lien daemon`, the publisher `lien publish` and the fetchers `lien get`.
    #[command(
        after_help = "Example:\n  lien-sim export-shadow simulations/scenarios/swarm-64.toml shadow-64 --lien /usr/local/bin/lien\n  cd shadow-64 && shadow shadow.yaml > shadow.log\n  lien-sim shadow-summary shadow-64"
    )]
    ExportShadow {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Output folder.
        dir: PathBuf,
        /// Path of the `lien` binary as Shadow will run it.
        #[arg(long, default_value = "lien")]
        lien: String,
        /// With `fetch_start = "on-announce"`, fetchers start this long after the publish.
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        announce_delay_ms: u64,
    },
    /// Summarise a Shadow run of an export: summary.json, CSVs and plots as the real-code mode's.
    #[command(after_help = "Example:\n  lien-sim shadow-summary shadow-64 --out shadow-64/summary")]
    ShadowSummary {
        /// The export folder (with params.json and scenario.resolved.toml).
        dir: PathBuf,
        /// Shadow's data folder [default: DIR/shadow.data].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output folder [default: DIR/summary].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// mimalloc, as in lien's own binaries: the real-code mode allocates per message in every
/// libp2p connection, and glibc malloc took a sixth of its time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Topologies => {
            let mut o = std::io::stdout().lock();
            for b in topology::BUILTINS {
                writeln!(o, "{:<16} {}", b.name, b.about)?;
            }
            Ok(())
        }
        Command::Run { scenario, out, seed } => run_scenario(&scenario, out, seed),
        Command::ExportShadow { scenario, dir, lien, announce_delay_ms } => {
            let scn = Scenario::load(&scenario)?;
            let mut rng = ChaCha8Rng::seed_from_u64(scn.sim.seed);
            let topo = scn.build_topology(&mut rng)?;
            let opts = shadow::ExportOptions { lien, announce_delay_ms };
            let done = shadow::export(&scn, &topo, &dir, &opts)?;
            eprintln!(
                "wrote {} hosts to {}: publish at {:.1} s, {} fetches, stop at {:.1} s",
                done.hosts,
                dir.display(),
                done.plan.publish_ms as f64 / 1e3,
                done.plan.fetches.len(),
                done.plan.stop_ms as f64 / 1e3
            );
            println!("{}", dir.join("shadow.yaml").display());
            Ok(())
        }
        Command::ShadowSummary { dir, data, out } => {
            let out = out.unwrap_or_else(|| dir.join("summary"));
            let summary = shadow::summary::summarise(&dir, data.as_deref(), &out)?;
            eprintln!("results in {}", out.display());
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
    }
}

fn run_scenario(path: &Path, out: Option<PathBuf>, seed: Option<u64>) -> Result<()> {
    let mut scn = Scenario::load(path)?;
    if let Some(s) = seed {
        scn.sim.seed = s;
    }
    scn.sim.git_commit = git_commit();
    let dir = out.unwrap_or_else(|| PathBuf::from("sim-out").join(&scn.sim.name));
    let mut rng = ChaCha8Rng::seed_from_u64(scn.sim.seed);
    let topo = scn.build_topology(&mut rng)?;
    eprintln!(
        "lien-sim: {} ({} nodes, {} overlay edges, {:?} mode, seed {})",
        topo.name,
        topo.nodes(),
        topo.overlay.edges(),
        scn.sim.mode,
        scn.sim.seed
    );
    match scn.sim.mode {
        Mode::Model => {
            let wall = Instant::now();
            let mut progress = |t: f64, ev: u64, done: usize, total: usize| {
                eprint!("\r  t = {t:>10.3} s   events {ev:>10}   fetches {done}/{total}   ");
            };
            let res = model::run(&scn, &topo, &mut progress)?;
            eprintln!();
            let wall_s = wall.elapsed().as_secs_f64();
            let summary = output::write_model(&dir, &scn, &topo, &res, wall_s)?;
            eprintln!("model run took {wall_s:.2} s wall; results in {}", dir.display());
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Mode::Real => {
            let mut runs = Vec::new();
            for r in 0..scn.sim.replicates {
                let s = scn.sim.seed + u64::from(r);
                eprintln!("replicate {}/{} (seed {s})", r + 1, scn.sim.replicates);
                let progress = |m: &str| eprintln!("  {m}");
                let run = real::run_virtual(&scn, &topo, s, &progress)?;
                eprintln!("  {:.0} s virtual in {:.1} s wall", run.virtual_s, run.wall_s);
                runs.push(run);
            }
            let summary = calibrate::write_real(&dir, &scn, &topo, &runs)?;
            eprintln!("results in {}", dir.display());
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
    }
    Ok(())
}
