//! The cluster under test: one container per node on a bridge network made for the run,
//! with fixed addresses so a restarted node keeps its identity, and the faults the
//! nemesis injects. Everything is done through the `docker` CLI and, for partitions,
//! `iptables` run inside a node's network namespace (`nsenter`), so rules die with the
//! container and never touch the host's own firewall.
//!
//! [`Cluster`] removes its containers, volumes and network when dropped, so a failed or
//! interrupted run cleans up after itself; `ecommesh-chaos clean` removes what a killed
//! suite left behind (everything carries the `ecommesh-chaos` label).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub const LABEL: &str = "ecommesh-chaos";

#[derive(Debug, Clone)]
pub struct Node {
    pub id: u64,
    pub container: String,
    pub ip: String,
}

impl Node {
    pub fn name(&self) -> String {
        format!("n{}", self.id)
    }

    pub fn url(&self) -> String {
        format!("http://{}:8080", self.ip)
    }
}

pub struct Settings {
    pub image: String,
    pub nodes: u64,
    pub jwt_secret: String,
    pub cluster_secret: String,
    pub admin_email: String,
    pub admin_password: String,
    /// Starts every node with the test-only flag that acknowledges writes before Raft
    /// commits them: a deliberately broken build, for proving the checker catches loss.
    pub broken_ack_before_commit: bool,
}

pub struct Cluster {
    pub network: String,
    pub nodes: Vec<Node>,
    torn_down: bool,
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    run("docker", args)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Cluster {
    /// Creates the network and starts every node (not yet waiting for them).
    pub fn start(run_id: &str, s: &Settings) -> anyhow::Result<Self> {
        docker(&["image", "inspect", "--format", "{{.Id}}", &s.image]).with_context(|| {
            format!(
                "image {} not found: build it first with docker/build.sh",
                s.image
            )
        })?;
        let network = format!("{LABEL}-{run_id}");
        // A /24 nobody uses yet: try a few random ones from a private range.
        let mut prefix = None;
        let mut last_err = None;
        for _ in 0..8 {
            let p = format!(
                "10.{}.{}",
                rand::random::<u8>() % 50 + 200,
                rand::random::<u8>()
            );
            match docker(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                &format!("{p}.0/24"),
                "--label",
                LABEL,
                &network,
            ]) {
                Ok(_) => {
                    prefix = Some(p);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some(prefix) = prefix else {
            return Err(last_err.expect("tried at least once"))
                .context("cannot create the chaos network");
        };
        let nodes: Vec<Node> = (1..=s.nodes)
            .map(|id| Node {
                id,
                container: format!("{network}-n{id}"),
                ip: format!("{prefix}.{}", 10 + id),
            })
            .collect();
        let cluster = Cluster {
            network,
            nodes,
            torn_down: false,
        };
        let peers = cluster
            .nodes
            .iter()
            .map(|n| format!("{}={}:7100", n.id, n.ip))
            .collect::<Vec<_>>()
            .join(",");
        for node in cluster.nodes.clone() {
            let env = [
                format!("ECOMMESH_NODE_ID={}", node.id),
                format!("ECOMMESH_PEERS={peers}"),
                format!("ECOMMESH_REPLICATION_FACTOR={}", s.nodes.min(3)),
                format!("ECOMMESH_JWT_SECRET={}", s.jwt_secret),
                format!("ECOMMESH_CLUSTER_SECRET={}", s.cluster_secret),
                // Every workload client comes from the host's address on the network.
                "ECOMMESH_AUTH_RATE_PER_MINUTE=1000000".to_owned(),
                "ECOMMESH_AUTH_BURST=1000000".to_owned(),
                format!("ECOMMESH_ADMIN_EMAIL={}", s.admin_email),
                format!("ECOMMESH_ADMIN_PASSWORD={}", s.admin_password),
                "ECOMMESH_DEMO_CATALOG=false".to_owned(),
                // Short holds: a checkout cut off by a fault frees its stock soon.
                "ECOMMESH_RESERVATION_TTL_SECS=10".to_owned(),
                // Checkouts left pending by a fault are finished or undone soon after.
                "ECOMMESH_CHECKOUT_TIMEOUT_SECS=10".to_owned(),
                // Tokens outlive the longest run.
                "ECOMMESH_ACCESS_TOKEN_TTL_SECS=86400".to_owned(),
                "ECOMMESH_LOG_LEVEL=warn".to_owned(),
                format!(
                    "ECOMMESH_TEST_ACK_BEFORE_COMMIT={}",
                    s.broken_ack_before_commit
                ),
            ];
            let mut args = vec![
                "run".to_owned(),
                "-d".to_owned(),
                "--name".to_owned(),
                node.container.clone(),
                "--hostname".to_owned(),
                node.name(),
                "--network".to_owned(),
                cluster.network.clone(),
                "--ip".to_owned(),
                node.ip.clone(),
                "--label".to_owned(),
                LABEL.to_owned(),
            ];
            for e in env {
                args.push("-e".to_owned());
                args.push(e);
            }
            args.push(s.image.clone());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            docker(&args).with_context(|| format!("cannot start node {}", node.id))?;
        }
        Ok(cluster)
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    /// `kill -9` of the node's process (the container stops with it; its volume stays).
    pub fn kill(&self, id: u64) -> anyhow::Result<()> {
        docker(&["kill", "--signal", "KILL", &self.node(id).container]).map(drop)
    }

    /// Starts a killed node again on the same volume and address.
    pub fn restart(&self, id: u64) -> anyhow::Result<()> {
        docker(&["start", &self.node(id).container]).map(drop)
    }

    /// SIGSTOP of every process in the container (cgroup freezer).
    pub fn pause(&self, id: u64) -> anyhow::Result<()> {
        docker(&["pause", &self.node(id).container]).map(drop)
    }

    pub fn resume(&self, id: u64) -> anyhow::Result<()> {
        docker(&["unpause", &self.node(id).container]).map(drop)
    }

    fn pid(&self, id: u64) -> anyhow::Result<String> {
        docker(&[
            "inspect",
            "--format",
            "{{.State.Pid}}",
            &self.node(id).container,
        ])
    }

    fn iptables(&self, id: u64, rule: &[&str]) -> anyhow::Result<()> {
        let pid = self.pid(id)?;
        let mut args = vec!["-t", pid.as_str(), "-n", "iptables"];
        args.extend_from_slice(rule);
        run("nsenter", &args).map(drop)
    }

    /// Drops every packet between the two sides (clients on the host still reach both):
    /// each node drops what arrives from a node on the other side.
    pub fn partition(&self, side: &[u64]) -> anyhow::Result<()> {
        for a in &self.nodes {
            for b in &self.nodes {
                if side.contains(&a.id) != side.contains(&b.id) {
                    self.iptables(a.id, &["-A", "INPUT", "-s", &b.ip, "-j", "DROP"])?;
                }
            }
        }
        Ok(())
    }

    /// Drops `percent` of the packets between every pair of nodes, at random.
    pub fn lossy(&self, percent: u32) -> anyhow::Result<()> {
        let p = format!("{:.2}", percent as f64 / 100.0);
        for a in &self.nodes {
            for b in &self.nodes {
                if a.id != b.id {
                    self.iptables(
                        a.id,
                        &[
                            "-A",
                            "INPUT",
                            "-s",
                            &b.ip,
                            "-m",
                            "statistic",
                            "--mode",
                            "random",
                            "--probability",
                            &p,
                            "-j",
                            "DROP",
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Removes every rule the nemesis added.
    pub fn heal(&self) -> anyhow::Result<()> {
        for n in &self.nodes {
            self.iptables(n.id, &["-F", "INPUT"])?;
        }
        Ok(())
    }

    /// Undoes every fault: resumes paused nodes, starts stopped ones, heals the network.
    pub fn heal_all(&self) -> anyhow::Result<()> {
        for n in &self.nodes {
            let state = docker(&["inspect", "--format", "{{.State.Status}}", &n.container])?;
            match state.as_str() {
                "paused" => self.resume(n.id)?,
                "exited" | "created" => self.restart(n.id)?,
                _ => {}
            }
        }
        self.heal()
    }

    /// The node's log (its stderr and stdout), for the report.
    pub fn logs(&self, id: u64) -> String {
        Command::new("docker")
            .args(["logs", "--tail", "2000", &self.node(id).container])
            .output()
            .map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.push_str(&String::from_utf8_lossy(&o.stderr));
                s
            })
            .unwrap_or_default()
    }

    /// Removes the containers, their volumes and the network.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        for n in &self.nodes {
            let _ = docker(&["rm", "--force", "--volumes", &n.container]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Removes everything earlier runs left behind (they carry the label).
pub fn clean() -> anyhow::Result<usize> {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label={LABEL}")])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "--force", "--volumes"];
        args.extend(&ids);
        docker(&args)?;
    }
    let nets = docker(&["network", "ls", "-q", "--filter", &format!("label={LABEL}")])?;
    for net in nets.split_whitespace() {
        let _ = docker(&["network", "rm", net]);
    }
    Ok(ids.len())
}

/// Waits until `check` passes or `limit` runs out.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("{what}: not within {limit:?}")
}
