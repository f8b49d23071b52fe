//! `ecommesh bench cluster`: three nodes of this binary on loopback (child processes, temp
//! data directories). Measures durable add-to-cart through one node at replication
//! factor 1 and 3 (the `load` generator's `add_to_cart` scenario, with `ping` of the same
//! node as the baseline), then, at replication factor 3, how long a shard whose leader is
//! killed (-9) takes to serve writes again, over `--kills` kills (each node restarted
//! after its kill).
//!
//! All three nodes and the generator share this machine's cores, so replication costs
//! CPU here that separate machines would not share.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use super::node::{ADMIN_EMAIL, ADMIN_PASSWORD};
use super::{machine, now_utc, BenchArgs};

const SHARDS: u32 = 64;

struct Member {
    child: Option<Child>,
    base: String,
}

struct Cluster {
    dir: tempfile::TempDir,
    rpc: Vec<u16>,
    rf: usize,
    secret: String,
    cluster_secret: String,
    members: Vec<Member>,
    http: reqwest::blocking::Client,
}

impl Cluster {
    fn start(n: usize, rf: usize) -> anyhow::Result<Cluster> {
        let mut c = Cluster {
            dir: tempfile::tempdir()?,
            rpc: super::node::peer_ports(n)?,
            rf,
            secret: ecommesh::auth::tokens::random_id() + &ecommesh::auth::tokens::random_id(),
            cluster_secret: ecommesh::auth::tokens::random_id()
                + &ecommesh::auth::tokens::random_id(),
            members: Vec::new(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        // All at once: a fresh cluster's nodes serve HTTP only once a quorum wrote the
        // admin account, so none of them can start alone.
        let children = std::thread::scope(|s| {
            let spawning: Vec<_> = (0..n)
                .map(|i| {
                    let c = &c;
                    s.spawn(move || c.spawn(i))
                })
                .collect();
            spawning
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a node's start panicked")))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        for (child, base) in children {
            c.members.push(Member {
                child: Some(child),
                base,
            });
        }
        c.wait_formed(Duration::from_secs(120))?;
        Ok(c)
    }

    /// Starts node `i` (again, on the same data directory) and waits for its HTTP port.
    fn spawn(&self, i: usize) -> anyhow::Result<(Child, String)> {
        let peers = self
            .rpc
            .iter()
            .enumerate()
            .map(|(k, p)| format!("{}=127.0.0.1:{p}", k + 1))
            .collect::<Vec<_>>()
            .join(",");
        let listen = self
            .members
            .get(i)
            .map(|m| m.base.trim_start_matches("http://").to_owned())
            .unwrap_or_else(|| "127.0.0.1:0".into());
        let mut cmd = Command::new(super::node::binary()?);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("n{}", i + 1)))
            .args(["--listen", &listen, "--log-level", "error", "--no-demo"])
            .args(["--node-id", &(i + 1).to_string()])
            .args(["--rpc-listen", &format!("127.0.0.1:{}", self.rpc[i])])
            .args(["--peers", &peers, "--shards", &SHARDS.to_string()])
            .args(["--replication-factor", &self.rf.to_string()])
            .env("ECOMMESH_JWT_SECRET", &self.secret)
            .env("ECOMMESH_CLUSTER_SECRET", &self.cluster_secret);
        super::node::spawn(cmd).with_context(|| format!("node {}", i + 1))
    }

    fn admin(&self, i: usize) -> anyhow::Result<String> {
        let login: Value = self
            .http
            .post(format!("{}/api/v1/auth/login", self.members[i].base))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()?
            .error_for_status()?
            .json()?;
        Ok(login["access_token"]
            .as_str()
            .context("no token")?
            .to_owned())
    }

    fn status(&self, i: usize) -> anyhow::Result<Value> {
        let token = self.admin(i)?;
        Ok(self
            .http
            .get(format!("{}/api/v1/admin/cluster", self.members[i].base))
            .bearer_auth(token)
            .send()?
            .error_for_status()?
            .json()?)
    }

    /// Waits until every running node sees a leader for every shard and links to all.
    fn wait_formed(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let ready = (0..self.members.len())
                .filter(|i| self.members[*i].child.is_some())
                .all(|i| {
                    self.status(i).is_ok_and(|s| {
                        s["shards"]
                            .as_array()
                            .is_some_and(|a| a.iter().all(|x| !x["leader"].is_null()))
                            && s["nodes"]
                                .as_array()
                                .is_some_and(|a| a.iter().all(|n| n["connected"] == true))
                    })
                });
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the cluster did not form within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let (child, base) = self.spawn(i)?;
        self.members[i] = Member {
            child: Some(child),
            base,
        };
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
    }
}

/// Durable add-to-cart through node 1 at one replication factor.
#[derive(Debug, Serialize)]
pub struct Replicated {
    pub replication_factor: usize,
    pub ping_per_sec: f64,
    pub add_to_cart_per_sec: f64,
    pub add_to_cart_p50_ms: f64,
    pub add_to_cart_p99_ms: f64,
    pub errors: u64,
}

#[derive(Debug, Serialize)]
pub struct Failovers {
    pub kills: usize,
    /// Seconds from the kill to the first acknowledged write on a shard the killed node
    /// led, in kill order.
    pub seconds: Vec<f64>,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    pub nodes: usize,
    pub shards: u32,
    pub replication: Vec<Replicated>,
    pub failover: Option<Failovers>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let date = now_utc();
    let machine = machine();
    println!("ecommesh bench cluster - {date}\nmachine: {machine}\n3 nodes on loopback, {SHARDS} shards, {} connections, {:.0} s per scenario\n", args.connections, args.seconds);
    let mut replication = Vec::new();
    for rf in [1, 3] {
        let cluster = Cluster::start(3, rf)?;
        let out = tempfile::NamedTempFile::new()?;
        let mut load = args.clone();
        load.scenarios = vec!["add_to_cart".into()];
        load.target = Some(cluster.members[0].base.clone());
        load.target_secret = Some(cluster.secret.clone());
        load.json = Some(out.path().to_path_buf());
        load.report = None;
        println!("-- replication factor {rf}");
        super::load::run(&load)?;
        let report: Value = serde_json::from_slice(&std::fs::read(out.path())?)?;
        let phase = |name: &str| {
            report["phases"]
                .as_array()
                .and_then(|p| p.iter().find(|x| x["scenario"] == name).cloned())
                .unwrap_or(Value::Null)
        };
        let (ping, add) = (phase("ping"), phase("add_to_cart"));
        replication.push(Replicated {
            replication_factor: rf,
            ping_per_sec: ping["per_sec"].as_f64().unwrap_or(0.0),
            add_to_cart_per_sec: add["per_sec"].as_f64().unwrap_or(0.0),
            add_to_cart_p50_ms: add["p50_ms"].as_f64().unwrap_or(0.0),
            add_to_cart_p99_ms: add["p99_ms"].as_f64().unwrap_or(0.0),
            errors: add["errors"]
                .as_object()
                .map_or(0, |e| e.values().filter_map(Value::as_u64).sum()),
        });
    }
    println!(
        "\n{:>3} {:>10} {:>14} {:>10} {:>10} {:>7}",
        "rf", "ping/s", "add_to_cart/s", "p50 ms", "p99 ms", "errors"
    );
    for r in &replication {
        println!(
            "{:>3} {:>10.0} {:>14.0} {:>10.2} {:>10.2} {:>7}",
            r.replication_factor,
            r.ping_per_sec,
            r.add_to_cart_per_sec,
            r.add_to_cart_p50_ms,
            r.add_to_cart_p99_ms,
            r.errors
        );
    }
    let failover = if args.kills > 0 {
        Some(failovers(args.kills)?)
    } else {
        None
    };
    if let Some(f) = &failover {
        println!(
            "\nfailover over {} kills: min {:.2} s, p50 {:.2} s, p90 {:.2} s, max {:.2} s",
            f.kills, f.min, f.p50, f.p90, f.max
        );
    }
    let report = Report {
        machine,
        date,
        nodes: 3,
        shards: SHARDS,
        replication,
        failover,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Kills, `kills` times, a node that leads shards, under a stream of writes to one of its
/// shards made through another node, and times until that shard takes writes again.
fn failovers(kills: usize) -> anyhow::Result<Failovers> {
    let mut cluster = Cluster::start(3, 3)?;
    let admin = cluster.admin(0)?;
    // Products spread over the shards, to find one led by any node.
    let mut products = Vec::new();
    for i in 0..48 {
        let p: Value = cluster
            .http
            .post(format!("{}/api/v1/products", cluster.members[0].base))
            .bearer_auth(&admin)
            .json(
                &json!({"sku": format!("failover-{i}"), "name": "Failover", "category": "bench",
                "brand": "Bench", "price": {"amount": 100, "currency": "USD"}, "stock": 0}),
            )
            .send()?
            .error_for_status()?
            .json()?;
        products.push(p["id"].as_str().context("no id")?.to_owned());
    }
    let mut seconds = Vec::new();
    for k in 0..kills {
        let asking = (k + 1) % 3;
        let status = cluster.status(asking)?;
        let leader_of = |p: &str| {
            let shard = ecommesh_actors::registry::shard_for("product", p, SHARDS);
            status["shards"][shard as usize]["leader"].as_u64()
        };
        // The victim: the node leading the most of our products, never the one we ask.
        let mut led: std::collections::BTreeMap<u64, Vec<&String>> = Default::default();
        for p in &products {
            if let Some(l) = leader_of(p) {
                led.entry(l).or_default().push(p);
            }
        }
        let (victim, target) = led
            .iter()
            .filter(|(l, _)| **l as usize - 1 != asking)
            .max_by_key(|(_, ps)| ps.len())
            .map(|(l, ps)| (*l as usize - 1, ps[0].clone()))
            .context("no product led by another node")?;
        let stop = Arc::new(AtomicBool::new(false));
        let first_success = Arc::new(parking_lot::Mutex::new(None::<Instant>));
        let killed_at = Arc::new(parking_lot::Mutex::new(None::<Instant>));
        let writer = {
            let (stop, first, killed) = (stop.clone(), first_success.clone(), killed_at.clone());
            let url = format!(
                "{}/api/v1/products/{target}/restock",
                cluster.members[asking].base
            );
            let admin = admin.clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client");
                while !stop.load(Ordering::Relaxed) {
                    // Counted from its send: a write already in flight at the kill, and
                    // answered just after it, says nothing about the failover.
                    let sent = Instant::now();
                    let ok = http
                        .post(&url)
                        .bearer_auth(&admin)
                        .json(&json!({"quantity": 1}))
                        .send()
                        .is_ok_and(|r| r.status().is_success());
                    let now = Instant::now();
                    if ok {
                        if let Some(k) = *killed.lock() {
                            let mut f = first.lock();
                            if f.is_none() && sent > k {
                                *f = Some(now);
                            }
                        }
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        *killed_at.lock() = Some(Instant::now());
        cluster.kill9(victim);
        let deadline = Instant::now() + Duration::from_secs(30);
        while first_success.lock().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let _ = writer.join();
        let took = match (*first_success.lock(), *killed_at.lock()) {
            (Some(f), Some(k)) => f.duration_since(k).as_secs_f64(),
            _ => bail!("kill {}: the shard took no write within 30 s", k + 1),
        };
        println!(
            "kill {:>2}: node {} killed, its shard took writes again after {took:.2} s",
            k + 1,
            victim + 1
        );
        seconds.push(took);
        cluster.restart(victim)?;
        cluster.wait_formed(Duration::from_secs(60))?;
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |f: f64| sorted[((sorted.len() - 1) as f64 * f).round() as usize];
    Ok(Failovers {
        kills,
        min: sorted[0],
        p50: q(0.5),
        p90: q(0.9),
        max: sorted[sorted.len() - 1],
        seconds,
    })
}
