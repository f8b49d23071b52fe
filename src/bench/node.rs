//! A node for a benchmark to measure: this binary, started as a child process on a fresh
//! temporary data directory and a free loopback port, with a known admin account and
//! token secret; stopped on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context};

pub const ADMIN_EMAIL: &str = "bench@ecommesh.local";
pub const ADMIN_PASSWORD: &str = "bench-password-1";

pub struct Node {
    child: Child,
    pub base: String,
    /// Signs the node's tokens: a benchmark mints its customers' tokens with it instead
    /// of registering thousands of accounts (each a deliberately slow password hash).
    pub secret: String,
    _dir: tempfile::TempDir,
}

/// Starts `cmd` (this binary serving) with the benchmark's admin account, and waits
/// until it prints the address it serves HTTP on.
pub fn spawn(mut cmd: Command) -> anyhow::Result<(Child, String)> {
    let mut child = cmd
        .env("ECOMMESH_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ECOMMESH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start a node")?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(base) => Ok((child, base)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(anyhow!("the node did not start within 120 s"))
        }
    }
}

impl Node {
    /// Starts a node with `extra` flags and `env` (the settings given to the benchmark)
    /// and waits until it serves HTTP.
    pub fn start(extra: &[&str], env: &[(String, String)]) -> anyhow::Result<Node> {
        let dir = tempfile::tempdir()?;
        let secret = crate::auth::tokens::random_id() + &crate::auth::tokens::random_id();
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("ECOMMESH_JWT_SECRET", &secret);
        let (child, base) = spawn(cmd)?;
        Ok(Node {
            child,
            base,
            secret,
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Loopback ports for nodes' peer links that stay free while a node is down: taken below
/// the kernel's ephemeral range (where outgoing connections get their local ports, and
/// one could take a killed node's port before it restarts), and never handed out twice
/// in one process (parallel tests each start clusters).
pub fn peer_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN
        .lock()
        .map_err(|_| anyhow!("port registry poisoned"))?;
    let mut ports = Vec::with_capacity(n);
    let mut rng = rand::thread_rng();
    for _ in 0..10_000 {
        if ports.len() == n {
            return Ok(ports);
        }
        let port = rng.gen_range(20_000..32_000);
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            ports.push(port);
        }
    }
    Err(anyhow!("no {n} free loopback ports in 20000..32000"))
}
