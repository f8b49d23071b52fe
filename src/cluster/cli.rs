//! `ecommesh cluster status`: the cluster as one node sees it, as a table, read from that
//! node's `GET /api/v1/admin/cluster`.

use anyhow::{bail, Context};
use serde_json::json;

use super::ClusterStatus;

/// Where to ask, and as whom.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// A node's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An admin access token; without it, signs in with the configured admin_email and
    /// admin_password (ECOMMESH_ADMIN_EMAIL, ECOMMESH_ADMIN_PASSWORD).
    #[arg(long, env = "ECOMMESH_TOKEN")]
    pub token: Option<String>,
    /// Print the JSON the node answered instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// What to change.
#[derive(Debug, Clone, clap::Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub on: StatusArgs,
    /// The node to add or remove (its node_id).
    #[arg(long = "node")]
    pub node: u64,
    /// For `join`: where the new node's peers reach it (its rpc_listen).
    #[arg(long)]
    pub rpc: Option<String>,
}

/// Signs in (unless given a token) and sends one request to the node's cluster API.
fn call(
    args: &StatusArgs,
    email: &str,
    password: &str,
    request: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
) -> anyhow::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let base = args.url.trim_end_matches('/');
        let token = match &args.token {
            Some(t) => t.clone(),
            None => {
                if email.is_empty() {
                    bail!("give --token, or set ECOMMESH_ADMIN_EMAIL and ECOMMESH_ADMIN_PASSWORD to sign in");
                }
                let login: serde_json::Value = http
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"email": email, "password": password}))
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {base}"))?
                    .error_for_status()
                    .context("signing in as the admin failed")?
                    .json()
                    .await?;
                login["access_token"]
                    .as_str()
                    .context("no access token in the login answer")?
                    .to_owned()
            }
        };
        let answer = request(&http, base)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        let code = answer.status();
        let body: serde_json::Value = answer.json().await?;
        if !code.is_success() {
            bail!("{base} answered {code}: {}", body["detail"].as_str().unwrap_or(""));
        }
        Ok(body)
    })
}

pub fn status(args: &StatusArgs, email: &str, password: &str) -> anyhow::Result<()> {
    let status = call(args, email, password, |http, base| {
        http.get(format!("{base}/api/v1/admin/cluster"))
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    let status: ClusterStatus = serde_json::from_value(status)?;
    print!("{}", render(&status));
    Ok(())
}

/// `ecommesh cluster join`: adds a node started with `join = true`.
pub fn join(args: &ChangeArgs, email: &str, password: &str) -> anyhow::Result<()> {
    let rpc = args
        .rpc
        .clone()
        .context("--rpc is needed: the address the new node's peers reach it at")?;
    let id = args.node;
    call(&args.on, email, password, |http, base| {
        http.post(format!("{base}/api/v1/admin/cluster/nodes"))
            .json(&json!({"id": id, "rpc": rpc}))
    })?;
    println!("adding node {id}: follow it with `ecommesh cluster status`");
    Ok(())
}

/// `ecommesh cluster remove`: moves a node's replicas to the others and drops it.
pub fn remove(args: &ChangeArgs, email: &str, password: &str) -> anyhow::Result<()> {
    let id = args.node;
    call(&args.on, email, password, |http, base| {
        http.delete(format!("{base}/api/v1/admin/cluster/nodes/{id}"))
    })?;
    println!("removing node {id}: follow it with `ecommesh cluster status`; stop it once it is in no shard");
    Ok(())
}

/// The status as two tables: nodes, then shards.
pub fn render(s: &ClusterStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "as seen by node {} (replication factor {})\n",
        s.node_id, s.replication_factor
    );
    let _ = writeln!(
        out,
        "{:>5} {:<22} {:>9} {:>6}",
        "node", "rpc", "link", "leads"
    );
    for n in &s.nodes {
        let link = if n.id == s.node_id {
            "self"
        } else if n.connected {
            "up"
        } else {
            "DOWN"
        };
        let _ = writeln!(out, "{:>5} {:<22} {:>9} {:>6}", n.id, n.rpc, link, n.leads);
    }
    let leaderless = s.shards.iter().filter(|x| x.leader.is_none()).count();
    let _ = writeln!(
        out,
        "\n{:>5} {:>6} {:>6} {:<10} {:<10} {:>9} {:>9}  lag (leader only)",
        "shard", "leader", "term", "voters", "learners", "last log", "applied"
    );
    for x in &s.shards {
        let ids = |v: &[u64]| {
            v.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let lag = x.lag.as_ref().map_or(String::new(), |l| {
            l.iter()
                .map(|(n, behind)| format!("{n}:{behind}"))
                .collect::<Vec<_>>()
                .join(" ")
        });
        let _ = writeln!(
            out,
            "{:>5} {:>6} {:>6} {:<10} {:<10} {:>9} {:>9}  {}",
            x.shard,
            x.leader.map_or("-".into(), |l| l.to_string()),
            x.term,
            ids(&x.voters),
            ids(&x.learners),
            x.last_log_index,
            x.last_applied,
            lag
        );
    }
    let _ = writeln!(
        out,
        "\n{} shards, {} without a leader",
        s.shards.len(),
        leaderless
    );
    if let Some(c) = &s.change {
        let _ = writeln!(out, "change under way: {c}");
    }
    if let Some(c) = &s.last_change {
        let _ = writeln!(out, "last change: {c}");
    }
    out
}
