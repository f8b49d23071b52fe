//! Crash durability through the real binary: concurrent shoppers adding to their carts,
//! `kill -9` mid-stream, restart, and every acknowledged write must be there, exactly
//! once, with nothing half-applied; the journal must check out clean.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, temp, Node};
use serde_json::{json, Value};

const WRITERS: usize = 16;
const PRODUCTS: usize = 8;

#[derive(Default)]
struct Log {
    /// product -> adds of one unit answered 200
    acked: BTreeMap<String, u64>,
    /// the add in flight when the node died, if any
    in_flight: Option<String>,
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let (_tmp, data) = temp();
    let node = common::start_with_admin(&data, &["--shards", "16", "--no-demo"]);
    let http = client();
    let admin = common::login(&http, &node, common::ADMIN_EMAIL, common::ADMIN_PASSWORD);
    let products: Vec<String> = (0..PRODUCTS)
        .map(|i| {
            common::create_product(&http, &node, &admin, &format!("CRASH-{i}"), 100, 1_000_000)
        })
        .collect();
    let tokens: Vec<String> = (0..WRITERS)
        .map(|w| common::register(&http, &node, &format!("w{w}@crash.test")))
        .collect();

    let base = node.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let acked_total = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = tokens
        .iter()
        .cloned()
        .enumerate()
        .map(|(w, token)| {
            let (base, stop, acked_total, products) = (
                base.clone(),
                stop.clone(),
                acked_total.clone(),
                products.clone(),
            );
            std::thread::spawn(move || {
                let http = client();
                let mut log = Log::default();
                for n in 0..50_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let product = products[(w + n) % PRODUCTS].clone();
                    let res = http
                        .post(format!("{base}/api/v1/cart/items"))
                        .bearer_auth(&token)
                        .json(&json!({"product_id": product, "quantity": 1}))
                        .send();
                    match res {
                        Ok(r) if r.status() == 200 => {
                            *log.acked.entry(product).or_default() += 1;
                            acked_total.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => panic!(
                            "unexpected status {} before the crash: {}",
                            r.status(),
                            r.text().unwrap_or_default()
                        ),
                        Err(_) => {
                            log.in_flight = Some(product);
                            break;
                        }
                    }
                }
                log
            })
        })
        .collect();

    // Kill in the middle of the stream: after enough acknowledgements, or a time bound.
    let started = Instant::now();
    while acked_total.load(Ordering::Relaxed) < 2000 && started.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<Log> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let acked: u64 = logs.iter().flat_map(|l| l.acked.values()).sum();
    assert!(
        acked >= 300,
        "too few writes before the crash to prove anything: {acked}"
    );

    // The default engine is what was crashed: one append-only file.
    assert!(
        data.join("journal").join("events.log").exists(),
        "the single node's journal should be the log file"
    );

    // The journal the crash left is consistent (after dropping a torn tail, if any).
    let check = std::process::Command::new(common::BIN)
        .args(["check", "--shards", "16", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(report.contains(": 0 problems"), "{report}");

    let node = Node::start(&data, &["--shards", "16"]);
    let mut recovered = 0;
    for (w, log) in logs.iter().enumerate() {
        // Tokens survive the restart: the signing secret is kept in the data directory.
        let cart: Value = common::get_json_as(&http, &node, "/api/v1/cart", &tokens[w]);
        let mut units = 0;
        for line in cart["items"].as_array().unwrap() {
            let product = line["product_id"].as_str().unwrap();
            let qty = line["quantity"].as_u64().unwrap();
            let acked = log.acked.get(product).copied().unwrap_or(0);
            let maybe = u64::from(log.in_flight.as_deref() == Some(product));
            assert!(
                qty >= acked,
                "writer {w}: {product} has {qty} units but {acked} adds were acknowledged"
            );
            assert!(
                qty <= acked + maybe,
                "writer {w}: {product} has {qty} units, more than was ever sent"
            );
            units += qty;
        }
        // Every event added one unit: the version counts events, so a gap or a half-applied
        // command would show as a mismatch.
        assert_eq!(
            cart["version"].as_u64().unwrap(),
            units,
            "writer {w}: {cart}"
        );
        recovered += units;
    }
    eprintln!("crash test: {acked} acknowledged, {recovered} recovered");
    assert_eq!(node.terminate().code(), Some(0));
}
