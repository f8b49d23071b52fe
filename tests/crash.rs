//! Crash durability through the real binary: concurrent writers, `kill -9` mid-stream,
//! restart, and every acknowledged write must be there, with nothing half-applied.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, temp, Node};
use serde_json::{json, Value};

const WRITERS: usize = 16;
const CARTS: usize = 8;

#[derive(Default)]
struct Log {
    /// (cart, product) answered 200.
    acked: Vec<(String, String)>,
    /// (cart, product) sent but not answered when the node died.
    in_flight: Vec<(String, String)>,
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let (_tmp, data) = temp();
    let node = Node::start(&data, &["--shards", "16"]);
    let base = node.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let acked_total = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (base, stop, acked_total) = (base.clone(), stop.clone(), acked_total.clone());
            std::thread::spawn(move || {
                let http = client();
                let mut log = Log::default();
                for n in 0..100_000 {
                    // Two writers share each cart, so commands to one entity interleave;
                    // 50 lines each keeps a cart within its 100-line limit.
                    let cart = format!("crash-{}-{}", w % CARTS, n / 50);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let product = format!("w{w}-{n}");
                    let res = http
                        .post(format!("{base}/api/v1/carts/{cart}/items"))
                        .json(&json!({"product_id": product, "quantity": 1}))
                        .send();
                    match res {
                        Ok(r) if r.status() == 200 => {
                            log.acked.push((cart.clone(), product));
                            acked_total.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => panic!("unexpected status {} before the crash", r.status()),
                        Err(_) => {
                            log.in_flight.push((cart.clone(), product));
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
    while acked_total.load(Ordering::Relaxed) < 3000 && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<Log> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let acked: BTreeSet<_> = logs.iter().flat_map(|l| l.acked.iter().cloned()).collect();
    let in_flight: BTreeSet<_> = logs
        .iter()
        .flat_map(|l| l.in_flight.iter().cloned())
        .collect();
    assert!(
        acked.len() >= 500,
        "too few writes before the crash to prove anything: {}",
        acked.len()
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
    let http = client();
    let mut found: BTreeMap<(String, String), u64> = BTreeMap::new();
    let carts: BTreeSet<&String> = acked
        .iter()
        .chain(in_flight.iter())
        .map(|(c, _)| c)
        .collect();
    for cart in carts {
        let body: Value = http
            .get(node.url(&format!("/api/v1/carts/{cart}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let items = body["items"].as_array().unwrap();
        // Every event added one new product: the version counts events, so a gap or a
        // half-applied command would show as a mismatch here.
        assert_eq!(
            body["version"].as_u64().unwrap(),
            items.len() as u64,
            "cart {cart}: {body}"
        );
        for item in items {
            let key = (
                cart.to_string(),
                item["product_id"].as_str().unwrap().to_string(),
            );
            found.insert(key, item["quantity"].as_u64().unwrap());
        }
    }
    let lost: Vec<_> = acked.iter().filter(|k| !found.contains_key(*k)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    for (key, qty) in &found {
        assert_eq!(*qty, 1, "{key:?} applied more than once");
        assert!(
            acked.contains(key) || in_flight.contains(key),
            "{key:?} was never sent"
        );
    }
    eprintln!(
        "crash test: {} acknowledged, {} in flight at the kill, {} recovered",
        acked.len(),
        in_flight.len(),
        found.len()
    );
    assert_eq!(node.terminate().code(), Some(0));
}
