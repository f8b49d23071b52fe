//! `ecommesh bench journal` measures, on this machine and in one run, what the durable
//! write path costs and what the entity runtime holds in memory.
//!
//! 1. raw fsync rate of one writer (200-byte appends + `fdatasync`), the baseline;
//! 2. durable cart writes through the full path (registry -> shard actor -> journal ->
//!    group commit -> reply) with 1, 8, 64 and 256 concurrent writers;
//! 3. activation time of an entity with 1,000 events, without and with a snapshot;
//! 4. resident memory per live idle entity (activate N carts, RSS difference).
//!
//! Loops are bounded by time; nothing here touches the network.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use ecommesh_actors::entity::encode_event;
use ecommesh_actors::recovery::{recover, snapshot};
use ecommesh_actors::registry::shard_for;
use ecommesh_actors::shard::store_key;
use ecommesh_actors::{Entity, Runtime, RuntimeConfig};
use ecommesh_commerce::cart::{Cart, CartCommand, CartEvent};
use ecommesh_persistence::{open_store, Engine, EventStore, StoreOptions};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::{machine, now_utc, BenchArgs};

#[derive(Debug, Serialize)]
pub struct Rate {
    pub writers: usize,
    pub ops: u64,
    pub per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub vs_fsync: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    pub fsync_per_sec: f64,
    pub fsync_p50_us: u64,
    pub durable_writes: Vec<Rate>,
    pub activation_1000_events_no_snapshot_us: f64,
    pub activation_1000_events_with_snapshot_us: f64,
    pub idle_entities: usize,
    pub rss_bytes_per_idle_entity: f64,
    pub state_bytes_per_entity: usize,
    /// Reopening the journal written above: bytes on disk and milliseconds to open
    /// (recovery reads the whole journal).
    pub reopen_bytes: u64,
    pub reopen_ms: f64,
    /// Growth of the process's resident memory while reopening: the journal's index.
    pub reopen_rss_bytes: u64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let phase = Duration::from_secs_f64(args.seconds.clamp(0.1, 600.0));
    let machine = machine();
    let date = now_utc();
    println!("ecommesh bench journal - {date}\nmachine: {machine}\n");

    let (fsync_per_sec, fsync_p50_us) = fsync_rate(&dir, phase)?;
    println!(
        "raw fsync, 1 writer (200 B + fdatasync): {fsync_per_sec:>10.0} /s   p50 {fsync_p50_us} us"
    );

    let mut opts = StoreOptions::new(dir.join("journal"), 64);
    if args.journal_engine == "sled" {
        opts.engine = Engine::Sled;
    }
    println!(
        "journal engine: {:?}",
        Engine::found_in(&opts.path).unwrap_or(opts.engine)
    );
    let store = open_store(&opts)?;
    let mut report = actix_rt::System::new().block_on(async {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let cfg = RuntimeConfig {
            arbiters: cores,
            idle_timeout: Duration::from_secs(3600),
            mailbox_capacity: 1 << 16,
            commit_delay: Duration::from_micros(args.commit_delay_us),
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::start(store.clone(), cfg);
        let carts = runtime.registry::<Cart>();

        // Measured first, on a quiet heap: later phases free memory that the allocator
        // would reuse for entities, hiding their cost. A warm-up wave first touches every
        // shard's journal tree, so that one-time growth is not counted per entity.
        activate_many(&carts, "warm", 2_000).await?;
        let before = rss_bytes();
        activate_many(&carts, "idle", args.entities).await?;
        let after = rss_bytes();
        let live = carts.live_entities().await;
        anyhow::ensure!(live >= args.entities + 2_000, "only {live} of {} entities are live", args.entities);
        let per = (after.saturating_sub(before)) as f64 / args.entities as f64;
        let state = std::mem::size_of::<<Cart as Entity>::State>();
        println!(
            "memory: {} idle carts live, RSS +{:.1} MiB = {per:.0} B per entity (its state: {state} B)",
            args.entities,
            (after.saturating_sub(before)) as f64 / (1 << 20) as f64
        );

        println!("\ndurable cart writes through registry -> shard -> journal -> group commit:");
        println!("{:>8} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9}", "writers", "ops", "ops/s", "p50 us", "p99 us", "max us", "x fsync");
        let mut rates = Vec::new();
        for &w in &args.writers {
            let r = durable_writes(&carts, w, phase, fsync_per_sec).await;
            println!(
                "{:>8} {:>10} {:>12.0} {:>9} {:>9} {:>9} {:>9.1}",
                r.writers, r.ops, r.per_sec, r.p50_us, r.p99_us, r.max_us, r.vs_fsync
            );
            rates.push(r);
        }

        let (cold, warm) = activation(&*store)?;
        println!("\nactivation of a cart with 1,000 events: {cold:.1} us without snapshot, {warm:.1} us from a snapshot");

        runtime.shutdown()?;
        anyhow::Ok(Report {
            machine,
            date,
            fsync_per_sec,
            fsync_p50_us,
            durable_writes: rates,
            activation_1000_events_no_snapshot_us: cold,
            activation_1000_events_with_snapshot_us: warm,
            idle_entities: args.entities,
            rss_bytes_per_idle_entity: per,
            state_bytes_per_entity: state,
            reopen_bytes: 0,
            reopen_ms: 0.0,
            reopen_rss_bytes: 0,
        })
    })?;
    // Everything the runtime held is gone with its system: the directory is free again.
    drop(store);
    report.reopen_bytes = dir_bytes(&dir.join("journal"));
    let (rss, started) = (rss_bytes(), std::time::Instant::now());
    let reopened = open_store(&opts)?;
    report.reopen_ms = started.elapsed().as_secs_f64() * 1e3;
    report.reopen_rss_bytes = rss_bytes().saturating_sub(rss);
    drop(reopened);
    println!(
        "reopen: {:.1} MiB of journal opened (recovery reads it all) in {:.0} ms; RSS +{:.1} MiB (its index)",
        report.reopen_bytes as f64 / (1 << 20) as f64,
        report.reopen_ms,
        report.reopen_rss_bytes as f64 / (1 << 20) as f64
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        println!("\nresults written to {}", path.display());
    }
    Ok(())
}

/// Bytes of the files in `dir` and below.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn fsync_rate(dir: &std::path::Path, phase: Duration) -> anyhow::Result<(f64, u64)> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let record = [7u8; 200];
    let mut hist = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < phase {
        let t = Instant::now();
        f.write_all(&record)?;
        f.sync_data()?;
        hist.record(t.elapsed().as_micros() as u64)?;
        n += 1;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((rate, hist.value_at_quantile(0.5)))
}

async fn durable_writes(
    carts: &ecommesh_actors::Registry<Cart>,
    writers: usize,
    phase: Duration,
    fsync_per_sec: f64,
) -> Rate {
    let started = Instant::now();
    let deadline = started + phase;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let carts = carts.clone();
            actix_rt::spawn(async move {
                let mut hist = Histogram::<u64>::new(3).expect("histogram");
                let id = format!("bench-w{writers}-{w}");
                let mut i = 0u32;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    // Alternate 1 and 2 so that every command writes one event.
                    let cmd = CartCommand::SetQuantity {
                        product_id: "p".into(),
                        quantity: 1 + (i % 2),
                    };
                    if carts.execute(id.clone(), cmd, None).await.is_ok() {
                        let _ = hist.record(t.elapsed().as_micros() as u64);
                    }
                    i += 1;
                }
                hist
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        if let Ok(h) = t.await {
            let _ = all.add(h);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_sec = all.len() as f64 / elapsed;
    Rate {
        writers,
        ops: all.len(),
        per_sec,
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
        max_us: all.max(),
        vs_fsync: per_sec / fsync_per_sec,
    }
}

/// Mean time to rebuild a 1,000-event cart, from its journal alone and from a snapshot.
fn activation(store: &dyn EventStore) -> anyhow::Result<(f64, f64)> {
    let events: Vec<_> = (0..1000u32)
        .map(|i| {
            let e = CartEvent::QuantityChanged {
                product_id: format!("p{}", i % 10),
                quantity: 1 + i % 7,
            };
            encode_event::<Cart>(&e, 0)
        })
        .collect::<Result<_, _>>()?;
    let time = |id: &str, with_snapshot: bool| -> anyhow::Result<f64> {
        let key = store_key::<Cart>(id);
        let shard = shard_for(Cart::KIND, id, store.shard_count());
        store.append(shard, &key, 0, &events)?;
        if with_snapshot {
            let full = recover::<Cart>(store, shard, &key)?;
            snapshot::<Cart>(store, shard, &key, &full.state, full.seq)?;
        }
        store.flush()?;
        recover::<Cart>(store, shard, &key)?; // warm the cache: we measure CPU, not disk
        let runs = 200;
        let t = Instant::now();
        for _ in 0..runs {
            let r = recover::<Cart>(store, shard, &key)?;
            anyhow::ensure!(r.seq == 1000, "recovered seq {}", r.seq);
        }
        Ok(t.elapsed().as_secs_f64() * 1e6 / runs as f64)
    };
    Ok((
        time("activation-journal", false)?,
        time("activation-snapshot", true)?,
    ))
}

async fn activate_many(
    carts: &ecommesh_actors::Registry<Cart>,
    prefix: &str,
    n: usize,
) -> anyhow::Result<()> {
    const WAVE: usize = 2000;
    for start in (0..n).step_by(WAVE) {
        let wave: Vec<_> = (start..(start + WAVE).min(n))
            .map(|i| {
                let carts = carts.clone();
                let id = format!("{prefix}-{i:07}");
                actix_rt::spawn(async move { carts.read(id).await.map(|_| ()) })
            })
            .collect();
        for t in wave {
            t.await?
                .map_err(|e| anyhow::anyhow!("activation failed: {e}"))?;
        }
    }
    Ok(())
}

/// Resident set size of this process, from /proc.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
