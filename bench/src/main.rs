//! `ecommesh-bench`, also run as `ecommesh bench ...`: figures measured on the machine it
//! runs on, printed with that machine's description. Every loop is bounded; nothing
//! leaves the machine.
//!
//! - `journal`: the durable write path, activation and memory per entity;
//! - `ws`: websocket fan-out, from a write's acknowledgement to each subscriber;
//! - `load`: HTTP load scenarios against a node, each compared with `ping` in the same run;
//! - `cluster`: three nodes, replication factors 1 and 3, failover times.
//!
//! A crate of its own so that the benchmarks' dependencies (HTTP and websocket clients,
//! plotting, progress bars) stay out of the node's release binary. The nodes it measures
//! are the `ecommesh` binary (`ECOMMESH_NODE_BIN`, set by `ecommesh bench`, or the one
//! next to this binary), started as processes with the node settings this command was
//! given (`ECOMMESH_*` variables and `ECOMMESH_CONFIG`).

mod cluster;
mod journal;
mod load;
mod node;
mod report;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, ValueEnum};
use ecommesh::config::{Config, Overrides};

/// Measured like the node: `ecommesh bench journal` runs the entity runtime in this
/// process, and the node allocates with jemalloc.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "ecommesh-bench",
    version,
    about = "Benchmarks of EcomMesh (also run as `ecommesh bench`)"
)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

/// The node settings given to this command: `ECOMMESH_CONFIG` and `ECOMMESH_*` variables
/// only (`ecommesh bench` turns its own flags into them), so that they cannot clash with
/// the benchmark's flags. The nodes it starts inherit them.
#[derive(Parser)]
struct NodeSettings {
    #[arg(long, env = "ECOMMESH_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let node = NodeSettings::parse_from(["ecommesh-bench"]);
    let result = Config::load(node.config.as_deref(), &Overrides::default()).and_then(|config| {
        ecommesh::telemetry::init_logs(&config.log.log_format, &config.log.log_level);
        let mut args = cli.bench;
        args.journal_engine = config.storage.journal_engine.clone();
        run(&args)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Suite {
    /// Journal, group commit, activation and memory.
    Journal,
    /// Websocket fan-out: time from a write's acknowledgement to every subscriber.
    Ws,
    /// HTTP load: ping, product_get, catalog_search, add_to_cart, checkout and mix.
    Load,
    /// Three nodes: add-to-cart at replication factor 1 and 3, and failover times.
    Cluster,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[arg(value_enum, default_value = "journal")]
    pub suite: Suite,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Entities to activate for the memory figure.
    #[arg(long, default_value_t = 100_000)]
    pub entities: usize,
    /// Concurrency levels for durable writes.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64,256")]
    pub writers: Vec<usize>,
    /// Group-commit delay under load, in microseconds (as `commit_delay_us`).
    #[arg(long, default_value_t = 300)]
    pub commit_delay_us: u64,
    /// Directory for the benchmark's journal (default: a fresh temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// journal: the engine to measure (the configuration's `journal_engine`).
    #[arg(skip)]
    pub journal_engine: String,
    /// ws: subscriber counts to measure, each on a fresh node (1 is the baseline).
    #[arg(long, value_delimiter = ',', default_value = "1,1000,10000")]
    pub subscribers: Vec<usize>,
    /// ws: stock changes made per subscriber count.
    #[arg(long, default_value_t = 20)]
    pub changes: usize,
    /// load: the scenarios to run, in order (`ping` always runs first: it is the baseline).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ping,product_get,catalog_search,add_to_cart,checkout,mix"
    )]
    pub scenarios: Vec<String>,
    /// load: concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// load: requests per second in total (open loop, latency from the scheduled send);
    /// 0 runs closed loop (every connection as fast as it can).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// load: carts prepared for the `checkout` scenario (it ends early when they run out).
    #[arg(long, default_value_t = 80_000)]
    pub checkout_carts: usize,
    /// load: measure a running node at this URL instead of starting one (with
    /// `--target-secret`, its `jwt_secret`, to act as its admin and customers).
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long)]
    pub target_secret: Option<String>,
    /// load: write load.json, load.md and load.svg into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// cluster: leaders to kill (-9) for the failover times (0: none).
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match args.suite {
        Suite::Journal => journal::run(args),
        Suite::Ws => ws::run(args),
        Suite::Load => load::run(args),
        Suite::Cluster => cluster::run(args),
    }
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

pub fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
