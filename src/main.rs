//! The `ecommesh` command: `serve` (the default) runs a node; `bench` measures it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecommesh::config::{Config, Overrides};

/// sled allocates on every insert (node copies). Measured with `ecommesh bench journal`
/// on our 2-core machines, jemalloc (as TiKV uses) gave ~20% more durable writes than
/// glibc's allocator at 64 writers, with a lower p99 and less memory than mimalloc.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "ecommesh",
    version,
    about = "Actor-based, event-sourced commerce runtime",
    after_help = "Every setting can also be given as an environment variable, ECOMMESH_ and its name in upper case (ECOMMESH_DATA_DIR), or in the --config file under its section; `ecommesh config` prints that file with every default. Flags beat the environment, which beats the file."
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
    /// Measure this machine: `journal` (durable writes, activation, memory), `ws`
    /// (websocket fan-out), `load` (HTTP scenarios against a node) or `cluster`. Runs
    /// `ecommesh-bench` (built next to this binary by `cargo build -p ecommesh-bench`),
    /// with this command's node settings; `ecommesh bench --help` lists its options.
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
    /// Check the journal of the data directory for consistency (the node must be stopped).
    Check,
    /// Print the documented configuration file with every default (config/ecommesh.toml
    /// is this output).
    Config,
    /// Create or promote an admin account (the node must be stopped); the password is read
    /// from standard input.
    CreateAdmin {
        #[arg(long)]
        email: String,
    },
    /// Look at a cluster: `status` shows its nodes, shards, leaders, terms and lag.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Nodes, shards, leaders, terms and replication lag, as one node sees them.
    Status(ecommesh::cluster::cli::StatusArgs),
    /// Add a node started with `--join true`; its replicas are placed shard by shard.
    Join(ecommesh::cluster::cli::ChangeArgs),
    /// Move a node's replicas to the other nodes and take it out of the cluster.
    Remove(ecommesh::cluster::cli::ChangeArgs),
}

/// `ecommesh bench ARGS`: runs `ecommesh-bench ARGS` from this binary's directory, with
/// this command's node settings as `ECOMMESH_*` variables, and this binary as the node.
fn bench(
    args: &[std::ffi::OsString],
    overrides: &Overrides,
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let me = std::env::current_exe()?;
    let bench = me.with_file_name("ecommesh-bench");
    let mut cmd = std::process::Command::new(&bench);
    cmd.args(args)
        .envs(overrides.to_env())
        .env("ECOMMESH_NODE_BIN", &me);
    if let Some(file) = config {
        cmd.env("ECOMMESH_CONFIG", file);
    }
    let status = cmd.status().with_context(|| {
        format!(
            "cannot run {}: build the benchmarks with `cargo build --release -p ecommesh-bench` (the container image ships without them)",
            bench.display()
        )
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("the benchmark failed ({status})"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Config::load(cli.config.as_deref(), &cli.overrides).and_then(|config| {
        ecommesh::telemetry::init_logs(&config.log.log_format, &config.log.log_level);
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => ecommesh::run(config),
            Command::Bench { args } => bench(&args, &cli.overrides, cli.config.as_deref()),
            Command::Check => ecommesh::server::check(&config),
            Command::Config => {
                print!("{}", ecommesh::config::template());
                Ok(())
            }
            Command::CreateAdmin { email } => ecommesh::server::create_admin(&config, &email),
            Command::Cluster(c) => {
                let (email, password) = (&config.auth.admin_email, &config.auth.admin_password);
                match c {
                    ClusterCommand::Status(a) => {
                        ecommesh::cluster::cli::status(&a, email, password)
                    }
                    ClusterCommand::Join(a) => ecommesh::cluster::cli::join(&a, email, password),
                    ClusterCommand::Remove(a) => {
                        ecommesh::cluster::cli::remove(&a, email, password)
                    }
                }
            }
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
