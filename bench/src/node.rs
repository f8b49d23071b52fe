//! A node for a benchmark to measure: the `ecommesh` binary, started as a child process
//! on a fresh temporary data directory and a free loopback port, with a known admin
//! account and token secret; stopped on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context};

pub const ADMIN_EMAIL: &str = "bench@ecommesh.local";
pub const ADMIN_PASSWORD: &str = "bench-password-1";

/// The node binary: `ECOMMESH_NODE_BIN` (which `ecommesh bench` sets to itself), else
/// the `ecommesh` next to this binary (cargo builds both into one directory).
pub fn binary() -> anyhow::Result<std::path::PathBuf> {
    if let Some(bin) = std::env::var_os("ECOMMESH_NODE_BIN") {
        return Ok(bin.into());
    }
    let me = std::env::current_exe()?;
    let node = me.with_file_name("ecommesh");
    if node.is_file() {
        Ok(node)
    } else {
        Err(anyhow!(
            "no node binary at {}: build it (cargo build --release), or set ECOMMESH_NODE_BIN",
            node.display()
        ))
    }
}

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
    /// Starts a node with `extra` flags (and the `ECOMMESH_*` settings this process was
    /// given, which it inherits) and waits until it serves HTTP.
    pub fn start(extra: &[&str]) -> anyhow::Result<Node> {
        let dir = tempfile::tempdir()?;
        let secret = ecommesh::auth::tokens::random_id() + &ecommesh::auth::tokens::random_id();
        let mut cmd = Command::new(binary()?);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
            .args(extra)
            .env("ECOMMESH_JWT_SECRET", &secret);
        let (child, base) = spawn(cmd)?;
        Ok(Node {
            child,
            base,
            secret,
            _dir: dir,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use ecommesh::cluster::ports::peer_ports;
