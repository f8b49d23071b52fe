//! `ecommesh bench ws`: websocket fan-out. For each subscriber count, a fresh node (this
//! binary, started as a child process on a temp dir) and N websocket clients subscribed
//! to one product; then stock changes one at a time. Measured: the time from each
//! change's HTTP acknowledgement to each client's receipt (p50, p99, max) and the
//! updates lost (must be 0). N = 1 is the baseline the others are compared with.
//!
//! Clients and node share this machine's cores, so the figures include the clients' own
//! scheduling; each change waits at most 10 s for its deliveries before the next.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::node::Node;
use super::{machine, now_utc, BenchArgs};

/// Handshakes in flight at once while the clients connect.
const CONNECTING: usize = 256;
/// How long one change may take to reach every client before the rest count as lost.
const DELIVERY_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct FanOut {
    pub subscribers: usize,
    pub connect_secs: f64,
    pub changes: usize,
    pub delivered: u64,
    pub lost: u64,
    /// Received before the writer saw its acknowledgement (counted as 0 ms).
    pub before_ack: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The write's own latency (request to acknowledgement), p50.
    pub write_p50_ms: f64,
    pub p99_vs_baseline: f64,
}

/// What the kernel alone needs for the same fan-out: one message written to each of
/// `sockets` loopback TCP connections from one thread per core, no node, readers idle.
#[derive(Debug, Serialize)]
pub struct Floor {
    pub sockets: usize,
    pub message_bytes: usize,
    pub threads: usize,
    /// Median over 5 rounds.
    pub ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    pub open_files_limit: u64,
    pub runs: Vec<FanOut>,
    pub loopback_floor: Option<Floor>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let limit =
        rlimit::increase_nofile_limit(u64::MAX).context("cannot raise the open-files limit")?;
    let date = now_utc();
    let machine = machine();
    println!("ecommesh bench ws - {date}\nmachine: {machine}\nopen files limit: {limit}\n");
    if let Some(&n) = args.subscribers.iter().max() {
        if n as u64 + 256 > limit {
            bail!(
                "{n} subscribers need {} open files; the limit here is {limit}",
                n + 256
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "{:>11} {:>9} {:>8} {:>10} {:>6} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "subscribers",
        "connect s",
        "changes",
        "delivered",
        "lost",
        "p50 ms",
        "p99 ms",
        "max ms",
        "write ms",
        "p99 x 1"
    );
    let mut runs: Vec<FanOut> = Vec::new();
    for &n in &args.subscribers {
        // One subscriber is the baseline: cheap, so measured over more changes to make
        // its p99 more than one sample.
        let changes = if n <= 1 {
            args.changes.max(1) * 5
        } else {
            args.changes.max(1)
        };
        let mut r = runtime.block_on(fan_out(n.max(1), changes))?;
        let baseline = runs.first().map_or(r.p99_ms, |b| b.p99_ms).max(0.001);
        r.p99_vs_baseline = r.p99_ms / baseline;
        println!(
            "{:>11} {:>9.1} {:>8} {:>10} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>9.1}",
            r.subscribers,
            r.connect_secs,
            r.changes,
            r.delivered,
            r.lost,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.write_p50_ms,
            r.p99_vs_baseline
        );
        runs.push(r);
    }
    let lost: u64 = runs.iter().map(|r| r.lost).sum();
    // Both ends of every connection are in this process: at most half the limit.
    let most = runs.iter().map(|r| r.subscribers).max().unwrap_or(0);
    let sockets = most.min((limit as usize).saturating_sub(512) / 2);
    let loopback_floor = if sockets >= 100 {
        let f = loopback_floor(sockets)?;
        println!(
            "\nloopback floor: {} messages of {} B written to {} sockets by {} threads (no node, readers idle): {:.1} ms",
            f.sockets, f.message_bytes, f.sockets, f.threads, f.ms
        );
        Some(f)
    } else {
        None
    };
    let report = Report {
        machine,
        date,
        open_files_limit: limit,
        runs,
        loopback_floor,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nresults written to {}", path.display());
    }
    if lost > 0 {
        bail!("{lost} updates were lost");
    }
    Ok(())
}

/// Receipts of updates, as the clients saw them. Clients append under a lock instead of
/// sending each receipt over a channel: a channel would wake the collector once per
/// message, and that cost is the benchmark's, not the node's.
#[derive(Default)]
struct Receipts {
    seen: parking_lot::Mutex<Vec<(u64, Instant)>>,
    count: AtomicUsize,
}

impl Receipts {
    fn record(&self, seq: u64, at: Instant) {
        self.seen.lock().push((seq, at));
        self.count.fetch_add(1, Ordering::Release);
    }

    /// Waits until `n` receipts are in or `until`, then takes them.
    async fn take(&self, n: usize, until: Instant) -> Vec<(u64, Instant)> {
        while self.count.load(Ordering::Acquire) < n && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let taken = std::mem::take(&mut *self.seen.lock());
        self.count.fetch_sub(taken.len(), Ordering::AcqRel);
        taken
    }
}

async fn fan_out(n: usize, changes: usize) -> anyhow::Result<FanOut> {
    // Every simulated client comes from 127.0.0.1: lift the per-address limits.
    let node = Node::start(&[
        "--no-demo",
        "--ws-max-connections-per-ip",
        "1000000",
        "--ws-max-subscriptions-per-ip",
        "100000000",
    ])?;
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/api/v1/auth/login", node.base))
        .json(&json!({"email": super::node::ADMIN_EMAIL, "password": super::node::ADMIN_PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .context("no token")?
        .to_owned();
    let product: Value = http
        .post(format!("{}/api/v1/products", node.base))
        .bearer_auth(&token)
        .json(
            &json!({"sku": "fan-out", "name": "Fan-out", "category": "bench", "brand": "Bench",
                       "price": {"amount": 100, "currency": "USD"}, "stock": 1}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = product["id"].as_str().context("no product id")?.to_owned();

    let ws_url = format!("{}/api/v1/ws", node.base.replacen("http://", "ws://", 1));
    let receipts = Arc::new(Receipts::default());
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let (url, topic, seen, ready, failed, gate) = (
            ws_url.clone(),
            format!("product:{id}"),
            receipts.clone(),
            ready.clone(),
            failed.clone(),
            gate.clone(),
        );
        clients.push(tokio::spawn(async move {
            if client(&url, &topic, seen, &ready, &gate).await.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} clients subscribed within 300 s",
                ready.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if failed.load(Ordering::Relaxed) > 0 {
        bail!(
            "{} of {n} clients could not connect and subscribe",
            failed.load(Ordering::Relaxed)
        );
    }
    let connect_secs = started.elapsed().as_secs_f64();

    let mut hist = Histogram::<u64>::new(3)?;
    let mut writes = Histogram::<u64>::new(3)?;
    let (mut delivered, mut lost, mut before_ack) = (0u64, 0u64, 0u64);
    for _ in 0..changes {
        let sent = Instant::now();
        http.post(format!("{}/api/v1/products/{id}/restock", node.base))
            .bearer_auth(&token)
            .json(&json!({"quantity": 1}))
            .send()
            .await?
            .error_for_status()?;
        let acked = Instant::now();
        writes.record((acked - sent).as_micros() as u64)?;
        let seen = receipts.take(n, acked + DELIVERY_LIMIT).await;
        let got = seen.len().min(n);
        if let Some(&(expected, _)) = seen.first() {
            if let Some((other, _)) = seen.iter().find(|(s, _)| *s != expected) {
                bail!("a client saw update {other} while {expected} was expected");
            }
        }
        for &(_, at) in &seen {
            if at < acked {
                before_ack += 1;
            }
            hist.record(at.saturating_duration_since(acked).as_micros() as u64)?;
        }
        delivered += got as u64;
        lost += (n - got) as u64;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in clients {
        c.abort();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(FanOut {
        subscribers: n,
        connect_secs,
        changes,
        delivered,
        lost,
        before_ack,
        p50_ms: ms(hist.value_at_quantile(0.5)),
        p99_ms: ms(hist.value_at_quantile(0.99)),
        max_ms: ms(hist.max()),
        write_p50_ms: ms(writes.value_at_quantile(0.5)),
        p99_vs_baseline: 1.0,
    })
}

/// The fields of a message the benchmark looks at; the rest is skipped unparsed.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    seq: Option<u64>,
    prev_seq: Option<u64>,
}

/// One subscriber: connects, subscribes, then reports every update it receives. An
/// update that does not continue from the last one it saw ends it (and so counts as lost).
async fn client(
    url: &str,
    topic: &str,
    seen: Arc<Receipts>,
    ready: &AtomicUsize,
    gate: &Semaphore,
) -> anyhow::Result<()> {
    let permit = gate.acquire().await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    ws.send(Message::Text(
        json!({"type": "subscribe", "topic": topic}).to_string(),
    ))
    .await?;
    let mut last = loop {
        let Some(msg) = ws.next().await else {
            bail!("closed before the snapshot")
        };
        if let Message::Text(t) = msg? {
            let v: Value = serde_json::from_str(&t)?;
            if v["type"] == "snapshot" {
                break v["seq"].as_u64().unwrap_or(0);
            }
            if v["type"] == "error" {
                bail!("subscribe failed: {t}");
            }
        }
    };
    drop(permit);
    ready.fetch_add(1, Ordering::Relaxed);
    while let Some(msg) = ws.next().await {
        let Message::Text(t) = msg? else { continue };
        let at = Instant::now();
        let head: Head = serde_json::from_str(&t)?;
        if head.kind != "update" {
            continue;
        }
        let (seq, prev) = (head.seq.unwrap_or(0), head.prev_seq);
        if prev != Some(last) {
            bail!("gap: update {seq} follows {prev:?}, last seen {last}");
        }
        last = seq;
        seen.record(seq, at);
    }
    Ok(())
}

/// Measures [`Floor`]: the cost of the writes alone, the part of a fan-out that no server
/// design avoids (each subscriber is its own TCP connection).
fn loopback_floor(sockets: usize) -> anyhow::Result<Floor> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(sockets);
    let mut writers = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        readers.push(std::net::TcpStream::connect(addr)?);
        let (w, _) = listener.accept()?;
        w.set_nodelay(true)?;
        writers.push(w);
    }
    for r in &readers {
        r.set_nonblocking(true)?;
    }
    let message = [b'x'; 330];
    let threads = std::thread::available_parallelism().map_or(2, |c| c.get());
    let chunk = sockets.div_ceil(threads);
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for part in writers.chunks_mut(chunk) {
                scope.spawn(move || {
                    for w in part {
                        let _ = w.write_all(&message);
                    }
                });
            }
        });
        rounds.push(started.elapsed().as_secs_f64() * 1000.0);
        let mut buf = [0u8; 4096];
        for r in &mut readers {
            while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    rounds.sort_by(f64::total_cmp);
    Ok(Floor {
        sockets,
        message_bytes: message.len(),
        threads,
        ms: rounds[rounds.len() / 2],
    })
}
