//! `ecommesh-chaos`: a Jepsen-style test of an EcomMesh cluster. It starts the nodes in
//! containers on a network of their own, lets shoppers shop while a nemesis kills,
//! pauses and partitions nodes, records every operation, heals, reads everything back
//! from every node, and checks that nothing acknowledged was lost and nothing oversold.
//!
//! Exit status: 0 when every check passed, 1 when one was violated, 2 when the run
//! itself could not be made (no image, no docker, a cluster that never formed).

mod api;
mod checker;
mod docker;
mod finals;
mod history;
mod linear;
mod nemesis;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::api::{Answer, Api};
use crate::checker::{NodeFinal, Verdict};
use crate::docker::{wait_for, Cluster, Settings};
use crate::nemesis::{Fault, Nemesis, Schedule};
use crate::workload::{Ctx, Setup};

#[derive(Parser)]
#[command(name = "ecommesh-chaos", about = "Chaos tests for an EcomMesh cluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a cluster in containers under faults and checks what it acknowledged.
    Run(RunArgs),
    /// Checks a report folder again (history.jsonl, setup.json, final.json).
    Check { dir: PathBuf },
    /// Removes containers and networks that an interrupted run left behind.
    Clean,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Nodes in the cluster (3 to 9; every shard is replicated on 3 of them).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// How long shoppers shop and the nemesis strikes.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    time_limit: Duration,
    /// Fault kinds, taken in turn: kill, pause, partition, loss.
    #[arg(long, default_value = "kill,pause,partition", value_delimiter = ',')]
    nemesis: Vec<Fault>,
    /// How long each fault lasts.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    fault_for: Duration,
    /// Quiet time before each fault.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    quiet_for: Duration,
    /// Concurrent clients, one customer each, one operation in flight each.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Products in the catalog.
    #[arg(long, default_value_t = 6)]
    products: usize,
    /// Units each product starts with.
    #[arg(long, default_value_t = 20)]
    stock: u64,
    /// Longest wait, after healing, for the cluster to recover before the final reads.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    recovery_limit: Duration,
    #[arg(long, default_value = "ecommesh:latest")]
    image: String,
    /// Where the report folder is made.
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
    /// TEST ONLY: start the nodes with the flag that acknowledges writes before Raft
    /// commits them (a deliberately broken build); the checker must find the loss.
    #[arg(long)]
    broken_ack_before_commit: bool,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Clean => match docker::clean() {
            Ok(n) => {
                println!("removed {n} containers");
                0
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
        Command::Check { dir } => match recheck(&dir) {
            Ok(v) => verdict_code(&v),
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        },
        Command::Run(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            match rt.block_on(run(args)) {
                Ok(v) => verdict_code(&v),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    2
                }
            }
        }
    };
    std::process::exit(code);
}

fn verdict_code(v: &Verdict) -> i32 {
    println!("{}", report::headline(v));
    if v.valid {
        0
    } else {
        1
    }
}

fn recheck(dir: &Path) -> anyhow::Result<Verdict> {
    let setup: Setup = serde_json::from_slice(&std::fs::read(dir.join("setup.json"))?)
        .context("reading setup.json")?;
    let finals: Vec<NodeFinal> = serde_json::from_slice(&std::fs::read(dir.join("final.json"))?)
        .context("reading final.json")?;
    let ops = history::load(&dir.join("history.jsonl"))?;
    let v = checker::check(&setup, &ops, &finals);
    print_checks(&v);
    Ok(v)
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

async fn run(args: RunArgs) -> anyhow::Result<Verdict> {
    anyhow::ensure!(
        !args.nemesis.is_empty(),
        "--nemesis needs at least one fault kind"
    );
    anyhow::ensure!(
        (3..=9).contains(&args.nodes),
        "--nodes must be 3 to 9: a cut needs a majority and a minority"
    );
    anyhow::ensure!(
        args.clients >= 1 && args.products >= 1,
        "clients and products must be at least 1"
    );
    anyhow::ensure!(
        args.time_limit > args.quiet_for + args.fault_for,
        "--time-limit must leave room for at least one fault after --quiet-for"
    );
    let run_id = random_hex(3);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = args.out.join(format!("{stamp}-{run_id}"));
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let settings = Settings {
        image: args.image.clone(),
        nodes: args.nodes,
        jwt_secret: random_hex(32),
        cluster_secret: random_hex(32),
        admin_email: format!("admin-{run_id}@chaos.test"),
        admin_password: random_hex(16),
        broken_ack_before_commit: args.broken_ack_before_commit,
    };
    println!(
        "chaos run {run_id}: {} nodes, {} clients, {:?} of {:?}; report in {}",
        args.nodes,
        args.clients,
        args.time_limit,
        args.nemesis,
        dir.display()
    );
    if args.broken_ack_before_commit {
        println!("BROKEN BUILD: nodes acknowledge writes before Raft commits them; the checker must fail");
    }
    let cluster = Arc::new(Mutex::new(Cluster::start(&run_id, &settings)?));
    let outcome = tokio::select! {
        r = drive(&args, &settings, &run_id, &dir, cluster.clone()) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    {
        let mut c = cluster.lock().expect("cluster lock");
        for n in c.nodes.clone() {
            let _ = std::fs::write(
                dir.join("logs").join(format!("{}.log", n.name())),
                c.logs(n.id),
            );
        }
        c.teardown();
    }
    let verdict = outcome?;
    println!("report: {}", dir.join("report.md").display());
    Ok(verdict)
}

/// Every node ready, and every node knows a leader for every shard.
async fn healthy(api: &Api, cluster: &[docker::Node], admin: &str) -> bool {
    for n in cluster {
        if !api.ready(n).await {
            return false;
        }
        match api.get(n, "/admin/cluster", Some(admin)).await {
            Answer::Ok(v) => {
                let shards = v["shards"].as_array().cloned().unwrap_or_default();
                if shards.is_empty() || shards.iter().any(|s| !s["leader"].is_u64()) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

async fn drive(
    args: &RunArgs,
    settings: &Settings,
    run_id: &str,
    dir: &Path,
    cluster: Arc<Mutex<Cluster>>,
) -> anyhow::Result<Verdict> {
    let api = Api::new()?;
    let nodes = cluster.lock().expect("cluster lock").nodes.clone();
    wait_for(Duration::from_secs(90), "nodes ready", || async {
        for n in &nodes {
            if !api.ready(n).await {
                return false;
            }
        }
        true
    })
    .await?;
    let admin = workload::admin_token(
        &api,
        &nodes,
        &settings.admin_email,
        &settings.admin_password,
    )
    .await?;
    wait_for(Duration::from_secs(60), "every shard led", || {
        healthy(&api, &nodes, &admin)
    })
    .await?;
    let setup = workload::setup(
        &api,
        &nodes,
        &admin,
        run_id,
        args.products,
        args.stock,
        args.clients,
    )
    .await
    .context("setting up the catalog and the shoppers")?;
    std::fs::write(dir.join("setup.json"), serde_json::to_vec_pretty(&setup)?)?;
    println!(
        "cluster formed; {} products, {} shoppers; shopping for {:?}",
        setup.products.len(),
        setup.customers.len(),
        args.time_limit
    );

    let recorder = history::Recorder::create(&dir.join("history.jsonl"))?;
    let until = Instant::now() + args.time_limit;
    let nemesis = Nemesis {
        cluster: cluster.clone(),
        api: api.clone(),
        admin_token: admin.clone(),
        history: recorder.clone(),
    };
    let schedule = Schedule {
        faults: args.nemesis.clone(),
        fault_for: args.fault_for,
        quiet_for: args.quiet_for,
    };
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        nodes: nodes.clone(),
        admin_token: admin.clone(),
        setup: setup.clone(),
        history: recorder.clone(),
        clients: args.clients,
    });
    let (faults, ()) = tokio::join!(nemesis.run(&schedule, until), workload::run(ctx, until));
    let healed = tokio::task::block_in_place(|| cluster.lock().expect("cluster lock").heal_all());
    faults.context("the nemesis failed")?;
    healed.context("healing the cluster")?;
    recorder.record(history::Op {
        kind: history::Kind::Info,
        f: "heal-all".into(),
        value: serde_json::json!({}),
        process: history::Process::Named("nemesis".into()),
        time: 0,
        node: None,
        idempotency_key: None,
        error: None,
    });
    println!("workload done; healed; waiting for the cluster to recover");

    let recovered = Instant::now();
    wait_for(args.recovery_limit, "recovery after healing", || {
        healthy(&api, &nodes, &admin)
    })
    .await?;
    // Holds of checkouts cut off by a fault expire (10 s); sagas left pending finish.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let settle_deadline = recovered + args.recovery_limit;
    while Instant::now() < settle_deadline {
        match api
            .get(
                &nodes[0],
                "/admin/orders?status=pending_payment&per_page=1",
                Some(&admin),
            )
            .await
        {
            Answer::Ok(v) if v["total"].as_u64() == Some(0) => break,
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    let ops = recorder.finish()?;
    let mut finals = Vec::new();
    for n in &nodes {
        finals.push(finals::read_node(&api, n, &setup, &admin).await);
    }
    std::fs::write(dir.join("final.json"), serde_json::to_vec_pretty(&finals)?)?;
    let verdict = checker::check(&setup, &ops, &finals);
    std::fs::write(
        dir.join("verdict.json"),
        serde_json::to_vec_pretty(&verdict)?,
    )?;
    report::plot(&dir.join("timeline.svg"), &ops)?;
    let about = format!(
        "{} nodes, {} clients, {} products of {} units, {:?} of faults ({:?}, {:?} each after {:?} quiet){}.",
        args.nodes,
        args.clients,
        args.products,
        args.stock,
        args.time_limit,
        args.nemesis,
        args.fault_for,
        args.quiet_for,
        if args.broken_ack_before_commit { "; BROKEN BUILD (acknowledges before commit)" } else { "" }
    );
    std::fs::write(
        dir.join("report.md"),
        report::markdown(&verdict, &ops, &about),
    )?;
    print_checks(&verdict);
    Ok(verdict)
}

/// One line per check, and the first few problems of a violated one.
fn print_checks(v: &Verdict) {
    for c in &v.checks {
        println!(
            "  {:<45} {}  {}",
            c.name,
            if c.ok { "ok" } else { "VIOLATED" },
            c.summary
        );
        for problem in c.violations.iter().take(3) {
            println!("      {}", problem["problem"].as_str().unwrap_or(""));
        }
    }
}
