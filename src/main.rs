//! The `ecommesh` command: `serve` (the default) runs a node; `bench` measures it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecommesh::bench::BenchArgs;
use ecommesh::config::{Config, Overrides};

/// sled allocates on every insert (node copies); mimalloc made durable writes faster
/// than glibc's allocator on our 2-core machines (see README, Benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ecommesh",
    version,
    about = "Actor-based, event-sourced commerce runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A TOML configuration file (see config/ecommesh.toml).
    #[arg(long, global = true, env = "ECOMMESH_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (the default when no subcommand is given).
    Serve,
    /// Measure this machine: journal, group commit, activation and memory.
    Bench(BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Config::load(cli.config.as_deref(), &cli.overrides).and_then(|config| {
        ecommesh::telemetry::init_logs(&config.log_format, &config.log_level);
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => ecommesh::run(config),
            Command::Bench(args) => ecommesh::bench::run(&args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
