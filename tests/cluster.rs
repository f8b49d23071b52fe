//! A real 3-node cluster: three `ecommesh` processes on loopback, each with its own data
//! directory, linked over TCP. Nodes are killed with SIGKILL and partitioned with
//! iptables, never simulated.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, Node, ADMIN_EMAIL, ADMIN_PASSWORD};
use ecommesh_actors::registry::shard_for;
use serde_json::{json, Value};

const SECRET: &str = "cluster-test-secret-0123456789abcdef";
const CLUSTER_SECRET: &str = "peer-link-test-secret-0123456789abcdef";
const SHARDS: u32 = 16;

struct TestCluster {
    _tmp: tempfile::TempDir,
    extra: Vec<String>,
    dirs: Vec<PathBuf>,
    rpc: Vec<u16>,
    nodes: Vec<Option<Node>>,
}

impl TestCluster {
    fn start(n: usize) -> TestCluster {
        Self::start_with(n, &[])
    }

    /// Starts `n` nodes, each with the flags `extra` as well.
    fn start_with(n: usize, extra: &[&str]) -> TestCluster {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = (1..=n).map(|i| tmp.path().join(format!("n{i}"))).collect();
        let mut c = TestCluster {
            _tmp: tmp,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dirs,
            // One spare, for a node that joins later.
            rpc: ecommesh::cluster::ports::peer_ports(n + 1).unwrap(),
            nodes: (0..n).map(|_| None).collect(),
        };
        // All at once: the groups form when their first node starts.
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let cmd = c.command(i);
                std::thread::spawn(move || Node::spawn(cmd))
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            c.nodes[i] = Some(h.join().unwrap());
        }
        c.wait_formed();
        c
    }

    /// The initial nodes' peer addresses, and the joiner's if `with_joiner`.
    fn peer_list(&self, with_joiner: bool) -> String {
        let n = if with_joiner {
            self.rpc.len()
        } else {
            self.rpc.len() - 1
        };
        self.rpc[..n]
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn command(&self, i: usize) -> Command {
        let rpc = format!("127.0.0.1:{}", self.rpc[i]);
        let joiner = i == self.rpc.len() - 1;
        let (id, peers, shards) = (
            (i + 1).to_string(),
            self.peer_list(joiner),
            SHARDS.to_string(),
        );
        let mut cmd = common::command(
            &self.dirs[i],
            &[
                "--no-demo",
                "--node-id",
                &id,
                "--rpc-listen",
                &rpc,
                "--peers",
                &peers,
                "--shards",
                &shards,
            ],
        );
        if joiner {
            cmd.args(["--join", "true"]);
        }
        cmd.args(&self.extra);
        cmd.env("ECOMMESH_JWT_SECRET", SECRET)
            .env("ECOMMESH_CLUSTER_SECRET", CLUSTER_SECRET)
            .env("ECOMMESH_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ECOMMESH_ADMIN_PASSWORD", ADMIN_PASSWORD);
        cmd
    }

    /// Starts the spare node, which waits to be added.
    fn start_joiner(&mut self) -> usize {
        let i = self.rpc.len() - 1;
        self.dirs.push(self._tmp.path().join(format!("n{}", i + 1)));
        self.nodes.push(Some(Node::spawn(self.command(i))));
        i
    }

    /// Waits until node `asking` reports the last node change done.
    fn wait_change_done(&self, asking: usize) {
        eventually(
            Duration::from_secs(120),
            "the node change to finish",
            || {
                // A status needs a sign-in, which is a write: it may meet a shard that is
                // moving right now (503), and is asked again.
                let Some(s) = self.try_status(asking) else {
                    return false;
                };
                if let Some(last) = s["last_change"].as_str() {
                    assert!(last.ends_with("done"), "{last}");
                    return s["change"].is_null();
                }
                false
            },
        );
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    fn kill9(&mut self, i: usize) {
        self.nodes[i].take().expect("node is running").kill9();
    }

    fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none());
        self.nodes[i] = Some(Node::spawn(self.command(i)));
    }

    /// Waits until the admin can sign in through every node and every shard has a leader.
    fn wait_formed(&self) {
        eventually(Duration::from_secs(60), "the cluster to form", || {
            (0..self.nodes.len())
                .filter(|i| self.nodes[*i].is_some())
                .all(|i| {
                    self.try_status(i).is_some_and(|s| {
                        s["shards"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|x| !x["leader"].is_null())
                    })
                })
        });
    }

    fn admin(&self, i: usize) -> Option<String> {
        let r = client()
            .post(self.node(i).url("/api/v1/auth/login"))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .ok()?;
        if r.status() != 200 {
            eprintln!(
                "admin login: {} {}",
                r.status(),
                r.text().unwrap_or_default()
            );
            return None;
        }
        r.json::<Value>().ok()?["access_token"]
            .as_str()
            .map(str::to_owned)
    }

    fn try_status(&self, i: usize) -> Option<Value> {
        let Some(token) = self.admin(i) else {
            eprintln!("cluster status: the admin login failed on node {i}");
            return None;
        };
        let r = client()
            .get(self.node(i).url("/api/v1/admin/cluster"))
            .bearer_auth(token)
            .send()
            .ok()?;
        if r.status() != 200 {
            eprintln!(
                "cluster status: {} {}",
                r.status(),
                r.text().unwrap_or_default()
            );
            return None;
        }
        Some(r.json().unwrap())
    }

    /// The node (0-based) leading the shard of `product`, as node `asking` sees it.
    fn leader_of_product(&self, asking: usize, product: &str) -> usize {
        let shard = shard_for("product", product, SHARDS);
        let s = self.try_status(asking).expect("cluster status");
        s["shards"][shard as usize]["leader"]
            .as_u64()
            .expect("the shard has a leader") as usize
            - 1
    }
}

fn create_product(node: &Node, admin: &str, sku: &str, stock: u64) -> String {
    let r = client()
        .post(node.url("/api/v1/products"))
        .bearer_auth(admin)
        .json(
            &json!({"sku": sku, "name": format!("Product {sku}"), "category": "test",
            "brand": "Test", "price": {"amount": 500, "currency": "USD"}, "stock": stock}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "create {sku}: {}", r.text().unwrap());
    r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn stock(node: &Node, admin: &str, product: &str) -> Value {
    let r = client()
        .get(node.url(&format!("/api/v1/products/{product}")))
        .bearer_auth(admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().unwrap()["stock"].clone()
}

/// What a restocking writer saw: the product, restocks acknowledged, restocks whose
/// outcome is unknown (503 or no answer), and when each acknowledgement came.
type Restocks = (String, u64, u64, Vec<Instant>);

/// Restocks `product` by one through `base`, again and again until `stop`.
fn restocker(
    base: &str,
    admin: &str,
    product: String,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<Restocks> {
    let (stop, base, admin) = (stop.clone(), base.to_owned(), admin.to_owned());
    std::thread::spawn(move || {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let (mut acked, mut unknown) = (0u64, 0u64);
        let mut successes: Vec<Instant> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let r = http
                .post(format!("{base}/api/v1/products/{product}/restock"))
                .bearer_auth(&admin)
                .json(&json!({"quantity": 1}))
                .send();
            match r {
                Ok(r) if r.status().is_success() => {
                    acked += 1;
                    successes.push(Instant::now());
                }
                Ok(r) if r.status() == 503 => unknown += 1,
                Ok(r) => panic!("restock answered {}: {}", r.status(), r.text().unwrap()),
                Err(_) => unknown += 1,
            }
        }
        (product, acked, unknown, successes)
    })
}

/// Polls `f` for up to `limit`.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_write_through_one_node_is_read_through_the_others() {
    let c = TestCluster::start(3);
    let admin = c.admin(0).unwrap();
    let product = create_product(c.node(0), &admin, "everywhere", 7);
    // Entity reads go to the shard's leader, wherever the request lands.
    for i in 0..3 {
        assert_eq!(
            stock(c.node(i), &admin, &product)["available"],
            7,
            "node {i}"
        );
    }
    // A customer registered through node 2 signs in through node 3 and fills a cart
    // through node 1; every node shows the same cart.
    let http = client();
    let token = common::register(&http, c.node(1), "shopper@cluster.test");
    let again = common::login(&http, c.node(2), "shopper@cluster.test", "password-1");
    assert!(!again.is_empty());
    common::add_to_cart(&http, c.node(0), &token, &product, 2);
    for i in 0..3 {
        let cart: Value = http
            .get(c.node(i).url("/api/v1/cart"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            cart["items"][0]["quantity"], 2,
            "cart through node {i}: {cart}"
        );
    }
    // Live updates cross nodes: a subscriber on every node sees a restock made through
    // node 1 and committed by the shard's leader, wherever that is.
    let mut sockets: Vec<common::ws::Ws> =
        (0..3).map(|i| common::ws::Ws::connect(c.node(i))).collect();
    for ws in &mut sockets {
        let snap = ws.subscribe(&format!("product:{product}"));
        assert_eq!(snap["data"]["stock"]["available"], 7, "{snap}");
    }
    let r = client()
        .post(
            c.node(0)
                .url(&format!("/api/v1/products/{product}/restock")),
        )
        .bearer_auth(&admin)
        .json(&json!({"quantity": 3}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    for (i, ws) in sockets.iter_mut().enumerate() {
        let u = ws.expect_within(Duration::from_secs(2), |m| m["type"] == "update");
        assert_eq!(u["data"]["stock"]["available"], 10, "node {i}: {u}");
    }
    // Read models are built on every node from the committed events.
    for i in 0..3 {
        eventually(Duration::from_secs(5), "the catalog of every node", || {
            let list: Value = http
                .get(c.node(i).url("/api/v1/products?q=everywhere"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            list["total"] == 1
        });
    }
    let status = c.try_status(1).unwrap();
    let leads: Vec<u64> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["leads"].as_u64().unwrap())
        .collect();
    assert!(
        leads.iter().all(|&l| l >= 3),
        "leaders spread over the nodes: {leads:?}"
    );
}

#[test]
fn killing_a_leader_moves_its_shards_within_seconds_and_loses_nothing() {
    let mut c = TestCluster::start(3);
    let admin = c.admin(0).unwrap();
    // Products until each node leads at least one of them.
    let mut by_leader: BTreeMap<usize, String> = BTreeMap::new();
    for i in 0..200 {
        if by_leader.len() == 3 {
            break;
        }
        let p = create_product(c.node(0), &admin, &format!("fo-{i}"), 0);
        by_leader.entry(c.leader_of_product(0, &p)).or_insert(p);
    }
    assert_eq!(by_leader.len(), 3, "every node leads some shard");
    let victim = 0;
    let doomed = by_leader[&victim].clone();
    let (survivor, other) = (by_leader[&1].clone(), by_leader[&2].clone());

    // One writer per product, through node 2 (never the victim): restock by 1, again and
    // again, counting what was acknowledged and what may or may not have happened.
    let stop = Arc::new(AtomicBool::new(false));
    let base = c.node(1).base.clone();
    let writers: Vec<_> = [doomed.clone(), survivor.clone(), other.clone()]
        .into_iter()
        .map(|p| restocker(&base, &admin, p, &stop))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    c.kill9(victim);
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();

    for (p, acked, unknown, successes) in &results {
        assert!(*acked > 0, "{p}: some restocks went through");
        if *p == doomed {
            let back = successes
                .iter()
                .find(|t| **t > killed_at)
                .map(|t| t.duration_since(killed_at))
                .expect("the dead leader's shard serves writes again");
            println!("failover: the killed leader's shard served writes again after {back:?}");
            assert!(back < Duration::from_secs(3), "failover took {back:?}");
        } else {
            // Shards led by live nodes never stop: no gap of a second between writes.
            let gap = successes
                .windows(2)
                .map(|w| w[1].duration_since(w[0]))
                .max()
                .unwrap_or_default();
            println!("{p}: longest pause between acknowledged writes {gap:?}");
            assert!(gap < Duration::from_secs(1), "{p} stalled for {gap:?}");
        }
        // Every acknowledged restock is there; one that got no answer may be too.
        let received = stock(c.node(2), &admin, p)["received"].as_u64().unwrap();
        assert!(
            received >= *acked && received <= acked + unknown,
            "{p}: received {received}, acknowledged {acked}, unknown {unknown}"
        );
    }

    // The killed node comes back, catches up, and shows the same.
    c.restart(victim);
    for (p, acked, unknown, _) in &results {
        let admin0 = c.admin(victim).unwrap();
        let received = stock(c.node(victim), &admin0, p)["received"]
            .as_u64()
            .unwrap();
        assert!(received >= *acked && received <= acked + unknown);
    }
}

#[test]
fn a_restarted_cluster_has_everything_it_acknowledged() {
    let mut c = TestCluster::start(3);
    let admin = c.admin(0).unwrap();
    let http = client();
    let mut products = Vec::new();
    for i in 0..12 {
        let p = create_product(c.node(i % 3), &admin, &format!("keep-{i}"), 3);
        products.push(p);
    }
    let token = common::register(&http, c.node(2), "keeper@cluster.test");
    for p in &products[..4] {
        common::add_to_cart(&http, c.node(1), &token, p, 1);
    }
    let written = Arc::new(AtomicU64::new(0));
    for (i, p) in products.iter().enumerate() {
        let r = http
            .post(c.node(i % 3).url(&format!("/api/v1/products/{p}/restock")))
            .bearer_auth(&admin)
            .json(&json!({"quantity": 5}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        written.fetch_add(1, Ordering::Relaxed);
    }
    for i in 0..3 {
        c.kill9(i);
    }
    for i in 0..3 {
        let cmd = c.command(i);
        c.nodes[i] = Some(std::thread::spawn(move || Node::spawn(cmd)).join().unwrap());
    }
    c.wait_formed();
    let admin = c.admin(1).unwrap();
    for (i, p) in products.iter().enumerate() {
        let s = stock(c.node(i % 3), &admin, p);
        assert_eq!(s["received"], 8, "{p}: {s}");
    }
    let token = common::login(&http, c.node(0), "keeper@cluster.test", "password-1");
    let cart: Value = http
        .get(c.node(0).url("/api/v1/cart"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(cart["items"].as_array().unwrap().len(), 4, "{cart}");
}

/// Drops every packet to and from `port` on loopback while alive.
struct Partition {
    port: u16,
}

impl Partition {
    fn isolate(port: u16) -> Partition {
        for rule in Self::rules(port) {
            let ok = Command::new("iptables")
                .args(["-I"])
                .args(&rule)
                .status()
                .unwrap()
                .success();
            assert!(ok, "iptables refused {rule:?} (the test needs root)");
        }
        Partition { port }
    }

    fn rules(port: u16) -> Vec<Vec<String>> {
        let p = port.to_string();
        vec![
            [
                "INPUT", "-i", "lo", "-p", "tcp", "--dport", &p, "-j", "DROP",
            ]
            .map(String::from)
            .to_vec(),
            [
                "INPUT", "-i", "lo", "-p", "tcp", "--sport", &p, "-j", "DROP",
            ]
            .map(String::from)
            .to_vec(),
        ]
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        for rule in Self::rules(self.port) {
            let _ = Command::new("iptables").args(["-D"]).args(&rule).status();
        }
    }
}

#[test]
fn a_partitioned_minority_refuses_writes_and_catches_up_after_healing() {
    let c = TestCluster::start(3);
    let admin = c.admin(0).unwrap();
    // A product whose shard node 3 leads: cut off, it must not accept writes to it.
    let mut mine = None;
    for i in 0..200 {
        let p = create_product(c.node(0), &admin, &format!("part-{i}"), 10);
        if c.leader_of_product(0, &p) == 2 {
            mine = Some(p);
            break;
        }
    }
    let product = mine.expect("node 3 leads some shard");
    // Node 3 (the highest id) only accepts links: dropping its peer port cuts it off.
    let partition = Partition::isolate(c.rpc[2]);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let restock = |node: usize| {
        http.post(
            c.node(node)
                .url(&format!("/api/v1/products/{product}/restock")),
        )
        .bearer_auth(&admin)
        .json(&json!({"quantity": 1}))
        .send()
        .unwrap()
        .status()
        .as_u16()
    };
    // The majority elects a new leader and takes writes; the minority refuses them.
    eventually(Duration::from_secs(10), "the majority takes writes", || {
        restock(0) == 200
    });
    let majority_writes = 1 + (0..5).filter(|_| restock(1) == 200).count() as u64;
    assert_eq!(majority_writes, 6);
    for _ in 0..2 {
        assert_eq!(
            restock(2),
            503,
            "a cut-off node must not acknowledge a write"
        );
    }
    // Nor does it serve a read it cannot prove current.
    let r = http
        .get(c.node(2).url(&format!("/api/v1/products/{product}")))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 503, "stale read served: {}", r.text().unwrap());
    drop(partition);
    // Healed, it catches up and serves what the majority wrote.
    eventually(Duration::from_secs(15), "node 3 catches up", || {
        let r = http
            .get(c.node(2).url(&format!("/api/v1/products/{product}")))
            .bearer_auth(&admin)
            .send()
            .unwrap();
        r.status() == 200 && r.json::<Value>().unwrap()["stock"]["received"] == 10 + majority_writes
    });
    assert_eq!(restock(2), 200);
}

#[test]
fn a_node_joins_and_another_leaves_while_writes_go_on() {
    // Snapshots every 20 entries: the shards written to purge their logs, so the joining
    // node must install snapshots (whole-shard exports) to catch up.
    let mut c = TestCluster::start_with(3, &["--raft-snapshot-every", "20"]);
    let admin = c.admin(1).unwrap();
    let products: Vec<String> = (0..4)
        .map(|i| create_product(c.node(1), &admin, &format!("move-{i}"), 0))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = products
        .iter()
        .map(|p| restocker(&c.node(1).base.clone(), &admin, p.clone(), &stop))
        .collect();

    // Node 4 joins: it becomes a replica (voter or learner) of every shard.
    let four = c.start_joiner();
    let r = client()
        .post(c.node(1).url("/api/v1/admin/cluster/nodes"))
        .bearer_auth(&admin)
        .json(&json!({"id": four + 1, "rpc": format!("127.0.0.1:{}", c.rpc[four])}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    c.wait_change_done(1);
    let s = c.try_status(1).unwrap();
    let voter_in = s["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["voters"].as_array().unwrap().contains(&json!(four + 1)))
        .count();
    assert!(
        voter_in >= SHARDS as usize / 2,
        "node 4 holds voting replicas: {voter_in}"
    );
    for x in s["shards"].as_array().unwrap() {
        let members: Vec<&Value> = x["voters"]
            .as_array()
            .unwrap()
            .iter()
            .chain(x["learners"].as_array().unwrap())
            .collect();
        assert_eq!(members.len(), 4, "every node follows every shard: {x}");
    }
    // Its own replicas, installed from snapshots, hold the shards: its catalog, built
    // locally from them, shows the products and their restocks.
    eventually(
        Duration::from_secs(10),
        "node 4's catalog from its replicas",
        || {
            let list: Value = client()
                .get(c.node(four).url("/api/v1/products?q=move&per_page=10"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            // Created with no stock: what it shows was restocked before it joined.
            list["total"] == 4
                && list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|p| p["stock"]["available"].as_u64().unwrap() > 0)
        },
    );
    let metrics = client()
        .get(c.node(four).url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let installed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ecommesh_cluster_snapshots_installed_total "))
        .map_or(0.0, |v| v.trim().parse().unwrap());
    assert!(
        installed >= 1.0,
        "node 4 caught up from snapshots: {installed}"
    );
    // Node 1 leaves: its replicas move to the others, then it is stopped.
    let r = client()
        .delete(c.node(1).url("/api/v1/admin/cluster/nodes/1"))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    c.wait_change_done(1);
    let s = c.try_status(1).unwrap();
    for x in s["shards"].as_array().unwrap() {
        assert!(!x["voters"].as_array().unwrap().contains(&json!(1)), "{x}");
        assert!(
            !x["learners"].as_array().unwrap().contains(&json!(1)),
            "{x}"
        );
    }
    c.kill9(0);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<Restocks> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    c.wait_formed();
    let admin4 = c.admin(four).unwrap();
    for (p, acked, unknown, _) in &results {
        assert!(*acked > 0, "{p}: writes went on");
        let received = stock(c.node(four), &admin4, p)["received"]
            .as_u64()
            .unwrap();
        assert!(
            received >= *acked && received <= acked + unknown,
            "{p}: received {received}, acknowledged {acked}, unknown {unknown}"
        );
    }
}

/// Checks out with `key` through `base` until the answer is definite (201, 402, 409),
/// retrying the same key on 503s and lost answers for up to 40 s. Returns the status
/// and the order id of a 201.
fn checkout_until_definite(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    key: &str,
) -> (u16, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = http
            .post(format!("{base}/api/v1/checkout"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({"payment": {"token": "tok_visa"}, "shipping_address": common::address()}))
            .send();
        match r {
            Ok(r) if r.status() == 201 => {
                let id = r.json::<Value>().unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                return (201, Some(id));
            }
            Ok(r) if matches!(r.status().as_u16(), 402 | 409 | 422) => {
                let code = r.status().as_u16();
                let body: Value = r.json().unwrap();
                // Another attempt with this key (or the reconciler) is finishing it.
                if body["code"] != "checkout_in_progress" {
                    return (code, None);
                }
            }
            Ok(r) if r.status() == 503 => {}
            Ok(r) => panic!("checkout answered {}: {}", r.status(), r.text().unwrap()),
            Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "checkout {key} never got a definite answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn checkouts_across_nodes_survive_a_leader_kill_without_oversell_or_loss() {
    const STOCK: u64 = 40;
    let mut c = TestCluster::start_with(3, &["--checkout-timeout-secs", "2"]);
    let http = client();
    let admin = c.admin(0).unwrap();
    let products: Vec<String> = (0..3)
        .map(|i| create_product(c.node(0), &admin, &format!("buy-{i}"), STOCK))
        .collect();
    let shoppers: Vec<(String, String)> = (0..9)
        .map(|i| {
            let email = format!("buyer{i}@cluster.test");
            let token = common::register(&http, c.node(i % 3), &email);
            let me: Value = http
                .get(c.node(0).url("/api/v1/me"))
                .bearer_auth(&token)
                .send()
                .unwrap()
                .json()
                .unwrap();
            (token, me["id"].as_str().unwrap().to_owned())
        })
        .collect();

    // One checkout whose cart and product live on shards led by different nodes, placed
    // through the third node.
    let status = c.try_status(0).unwrap();
    let leader = |kind: &str, id: &str| {
        status["shards"][shard_for(kind, id, SHARDS) as usize]["leader"]
            .as_u64()
            .unwrap()
    };
    let (p, (token, _)) = products
        .iter()
        .flat_map(|p| shoppers.iter().map(move |s| (p, s)))
        .find(|(p, (_, id))| leader("product", p) != leader("cart", id))
        .expect("some cart and product led by different nodes");
    let third = (1..=3u64)
        .find(|n| {
            *n != leader("product", p)
                && *n != leader("cart", &shoppers.iter().find(|s| &s.0 == token).unwrap().1)
        })
        .unwrap_or(1);
    common::add_to_cart(&http, c.node(0), token, p, 1);
    let (code, order) =
        checkout_until_definite(&http, &c.node(third as usize - 1).base, token, "cross-0");
    assert_eq!(code, 201);
    let order = order.unwrap();
    let seen: Value = http
        .get(c.node(0).url(&format!("/api/v1/orders/{order}")))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(seen["status"], "paid", "{seen}");

    // Many shoppers check out through nodes 2 and 3 while node 1, which leads a third of
    // the shards, is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let paid = Arc::new(AtomicU64::new(0));
    let bases = [c.node(1).base.clone(), c.node(2).base.clone()];
    let workers: Vec<_> = shoppers
        .iter()
        .cloned()
        .enumerate()
        .map(|(s, (token, _))| {
            let (stop, paid, products) = (stop.clone(), paid.clone(), products.clone());
            let base = bases[s % 2].clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .build()
                    .unwrap();
                let mut acked = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let product = &products[(s + n) % products.len()];
                    let add = http
                        .post(format!("{base}/api/v1/cart/items"))
                        .bearer_auth(&token)
                        .json(&json!({"product_id": product, "quantity": 1 + (n % 2)}))
                        .send();
                    match add {
                        Ok(r) if r.status() == 200 => {}
                        // Sold out, a shard between leaders, or the answer lost: next one.
                        _ => {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    }
                    let (code, order) =
                        checkout_until_definite(&http, &base, &token, &format!("s{s}-{n}"));
                    if code == 201 {
                        acked.push(order.unwrap());
                        paid.fetch_add(1, Ordering::Relaxed);
                    }
                }
                (token, acked)
            })
        })
        .collect();
    let started = Instant::now();
    while paid.load(Ordering::Relaxed) < 15 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    c.kill9(0);
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<(String, Vec<String>)> =
        workers.into_iter().map(|w| w.join().unwrap()).collect();
    let after_kill = paid.load(Ordering::Relaxed);
    c.restart(0);
    c.wait_formed();
    let admin = c.admin(1).unwrap();

    // Interrupted checkouts are settled by the leaders of their orders' shards.
    eventually(Duration::from_secs(30), "no checkout left pending", || {
        let pending: Value = http
            .get(c.node(1).url("/api/v1/admin/orders?status=pending_payment"))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .json()
            .unwrap();
        pending["total"] == 0
    });
    for (token, orders) in &acknowledged {
        for id in orders {
            let o: Value = http
                .get(c.node(2).url(&format!("/api/v1/orders/{id}")))
                .bearer_auth(token)
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(o["status"], "paid", "acknowledged order {id}: {o}");
        }
    }
    let mut sold_total = 0;
    for p in &products {
        let st = stock(c.node(1), &admin, p);
        let n = |k: &str| st[k].as_u64().unwrap();
        assert_eq!(
            n("available") + n("reserved") + n("sold"),
            n("received"),
            "{p}: {st}"
        );
        assert_eq!(n("received"), STOCK, "{p}: {st}");
        assert_eq!(n("reserved"), 0, "nothing held by a settled checkout: {st}");
        sold_total += n("sold");
    }
    // Units sold are exactly the units of paid orders: no charge kept without its sale,
    // no sale without its charge (read models converge on every node).
    for node in 0..3 {
        eventually(Duration::from_secs(10), "paid units == sold units", || {
            let list: Value = http
                .get(
                    c.node(node)
                        .url("/api/v1/admin/orders?status=paid&per_page=100"),
                )
                .bearer_auth(&admin)
                .send()
                .unwrap()
                .json()
                .unwrap();
            let units: u64 = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["items"].as_u64().unwrap())
                .sum();
            units == sold_total
        });
    }
    println!("cluster checkout: {after_kill} paid orders acknowledged, {sold_total} units sold");
}
