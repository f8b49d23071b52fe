//! Starting the real `ecommesh` binary for integration tests: port 0, a temp data dir,
//! readiness taken from the "listening on" line (no sleeps), killed on drop.

#![allow(dead_code)]

pub mod ws;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_ecommesh");

/// A running node.
pub struct Node {
    pub child: Child,
    pub base: String,
    pub stderr: std::sync::Mutex<mpsc::Receiver<String>>,
}

pub fn command(data_dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(data_dir);
    if !extra.contains(&"--log-level") {
        cmd.args(["--log-level", "warn"]);
    }
    if !extra.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.args(extra);
    // Keep the environment from leaking settings into tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("ECOMMESH_") {
            cmd.env_remove(k);
        }
    }
    // Every test client is 127.0.0.1, and most tests sign in many customers at once: lift
    // the per-address sign-in rate (a flag, as tests/hostile.rs gives, overrides this).
    cmd.env("ECOMMESH_AUTH_RATE_PER_MINUTE", "10000000")
        .env("ECOMMESH_AUTH_BURST", "10000000");
    cmd
}

impl Node {
    /// Starts a node and waits until it serves HTTP.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Node {
        Node::spawn(command(data_dir, extra))
    }

    /// Starts a node from a prepared command and waits until it serves HTTP.
    pub fn spawn(mut cmd: Command) -> Node {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ecommesh");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let (etx, erx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = etx.send(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => Node {
                child,
                base,
                stderr: std::sync::Mutex::new(erx),
            },
            Err(_) => {
                let _ = child.kill();
                let lines: Vec<String> = erx.try_iter().collect();
                panic!("node did not start: {}", lines.join("\n"));
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        wait_timeout(&mut self.child, Duration::from_secs(30))
            .expect("node did not exit after SIGTERM")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

/// Runs the binary to completion (it is expected to fail at start) and returns its exit
/// status and stderr.
pub fn run_to_exit(mut cmd: Command) -> (ExitStatus, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    let mut stderr = child.stderr.take().unwrap();
    let status =
        wait_timeout(&mut child, Duration::from_secs(30)).expect("start-up error took too long");
    stderr.read_to_string(&mut err).unwrap();
    (status, err)
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

/// Registers a customer and returns its access token.
pub fn register(http: &reqwest::blocking::Client, node: &Node, email: &str) -> String {
    let r = http
        .post(node.url("/api/v1/auth/register"))
        .json(&serde_json::json!({"email": email, "password": "password-1", "name": "Test"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "register {email}");
    r.json::<serde_json::Value>().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

pub const ADMIN_EMAIL: &str = "admin@shop.test";
pub const ADMIN_PASSWORD: &str = "admin-pass-1";

/// Starts a node whose admin account comes from the environment.
pub fn start_with_admin(data_dir: &Path, extra: &[&str]) -> Node {
    let mut cmd = command(data_dir, extra);
    cmd.env("ECOMMESH_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ECOMMESH_ADMIN_PASSWORD", ADMIN_PASSWORD);
    Node::spawn(cmd)
}

/// Logs in and returns the access token.
pub fn login(http: &reqwest::blocking::Client, node: &Node, email: &str, password: &str) -> String {
    let r = http
        .post(node.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "login {email}");
    r.json::<serde_json::Value>().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Creates a product as the admin and returns its id.
pub fn create_product(
    http: &reqwest::blocking::Client,
    node: &Node,
    admin: &str,
    sku: &str,
    cents: i64,
    stock: u64,
) -> String {
    let r = http
        .post(node.url("/api/v1/products"))
        .bearer_auth(admin)
        .json(&serde_json::json!({
            "sku": sku, "name": format!("Product {sku}"), "category": "test", "brand": "Test",
            "price": {"amount": cents, "currency": "USD"}, "stock": stock
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "create {sku}");
    r.json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The id of some demo product with stock.
pub fn first_in_stock(http: &reqwest::blocking::Client, node: &Node) -> String {
    let list: serde_json::Value = http
        .get(node.url("/api/v1/products?in_stock=true&sort=name&per_page=1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    list["items"][0]["id"]
        .as_str()
        .expect("a product in stock")
        .to_string()
}

/// A product's stock as an admin sees it: `available`, `reserved`, `sold`, `received`.
pub fn admin_stock(
    http: &reqwest::blocking::Client,
    node: &Node,
    admin: &str,
    product: &str,
) -> serde_json::Value {
    let v: serde_json::Value = http
        .get(node.url(&format!("/api/v1/products/{product}")))
        .bearer_auth(admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["stock"].clone()
}

/// Adds `quantity` units of `product` to the cart of `token`'s customer; must succeed.
pub fn add_to_cart(
    http: &reqwest::blocking::Client,
    node: &Node,
    token: &str,
    product: &str,
    quantity: u32,
) {
    let r = http
        .post(node.url("/api/v1/cart/items"))
        .bearer_auth(token)
        .json(&serde_json::json!({"product_id": product, "quantity": quantity}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}

/// The resident memory of process `pid`, in MiB (from /proc).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib / 1024.0
}

/// The value of metric `name` (a line `name value` or `name{labels} value`) on /metrics.
pub fn metric(http: &reqwest::blocking::Client, node: &Node, name: &str) -> Option<f64> {
    let text = http.get(node.url("/metrics")).send().ok()?.text().ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
}

/// A shipping address every checkout in the tests may use.
pub fn address() -> serde_json::Value {
    serde_json::json!({"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"})
}

/// Checks out `token`'s cart with Idempotency-Key `key`, paying with test card `card`.
pub fn checkout(
    http: &reqwest::blocking::Client,
    node: &Node,
    token: &str,
    key: &str,
    card: &str,
) -> reqwest::blocking::Response {
    http.post(node.url("/api/v1/checkout"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&serde_json::json!({"payment": {"token": card}, "shipping_address": address()}))
        .send()
        .unwrap()
}

/// GETs `path` anonymously and reads its JSON body.
pub fn get_json(http: &reqwest::blocking::Client, node: &Node, path: &str) -> serde_json::Value {
    http.get(node.url(path)).send().unwrap().json().unwrap()
}

/// GETs `path` with `token` and reads its JSON body.
pub fn get_json_as(
    http: &reqwest::blocking::Client,
    node: &Node,
    path: &str,
    token: impl std::fmt::Display,
) -> serde_json::Value {
    http.get(node.url(path))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// The units of `product` a shopper can buy now.
pub fn available(http: &reqwest::blocking::Client, node: &Node, product: &str) -> u64 {
    let p: serde_json::Value = http
        .get(node.url(&format!("/api/v1/products/{product}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    p["stock"]["available"].as_u64().unwrap()
}

/// A node (no demo catalog, `extra` flags) with the test admin, and the admin's token.
pub fn shop_with_admin(extra: &[&str]) -> (tempfile::TempDir, PathBuf, Node, String) {
    let (tmp, data) = temp();
    let mut args = vec!["--no-demo"];
    args.extend_from_slice(extra);
    let node = start_with_admin(&data, &args);
    let admin = login(&client(), &node, ADMIN_EMAIL, ADMIN_PASSWORD);
    (tmp, data, node, admin)
}
