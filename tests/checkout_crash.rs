//! Kill -9 during a stream of checkouts, restart: every order that got a 201 exists and is
//! paid, interrupted checkouts are resumed or compensated, and every product's stock adds
//! up (available + reserved + sold == every unit ever added) with nothing oversold.
//! On the single node's log-file journal the saga's steps are only written between its two
//! flushes (before the charge, before the answer), so this is also the test that a crash
//! between them leaves a prefix of the saga that recovery can settle.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, temp};
use serde_json::{json, Value};

const SHOPPERS: usize = 12;
const PRODUCTS: usize = 4;
const STOCK: u64 = 100_000;

#[test]
fn checkouts_survive_kill_9_and_interrupted_ones_are_settled() {
    let (_tmp, data) = temp();
    let args = [
        "--no-demo",
        "--checkout-timeout-secs",
        "1",
        "--reservation-ttl-secs",
        "600",
    ];
    let node = common::start_with_admin(&data, &args);
    let http = client();
    let admin = common::login(&http, &node, common::ADMIN_EMAIL, common::ADMIN_PASSWORD);
    let products: Vec<String> = (0..PRODUCTS)
        .map(|i| common::create_product(&http, &node, &admin, &format!("KILL-{i}"), 250, STOCK))
        .collect();
    let tokens: Vec<String> = (0..SHOPPERS)
        .map(|i| common::register(&http, &node, &format!("k{i}@kill.test")))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let paid_count = Arc::new(AtomicUsize::new(0));
    let base = node.base.clone();
    let shoppers: Vec<_> = tokens
        .iter()
        .cloned()
        .enumerate()
        .map(|(s, token)| {
            let (base, stop, paid_count, products) = (base.clone(), stop.clone(), paid_count.clone(), products.clone());
            std::thread::spawn(move || {
                let http = client();
                let mut paid = Vec::new();
                for n in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let product = &products[(s + n) % PRODUCTS];
                    let add = http
                        .post(format!("{base}/api/v1/cart/items"))
                        .bearer_auth(&token)
                        .json(&json!({"product_id": product, "quantity": 1 + (n % 3)}))
                        .send();
                    if !matches!(&add, Ok(r) if r.status() == 200) {
                        break;
                    }
                    let r = http
                        .post(format!("{base}/api/v1/checkout"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", format!("s{s}-n{n}"))
                        .json(&json!({"payment": {"token": "tok_visa"}, "shipping_address": {
                            "name": "K", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}}))
                        .send();
                    match r {
                        Ok(r) if r.status() == 201 => {
                            paid.push(r.json::<Value>().unwrap()["id"].as_str().unwrap().to_string());
                            paid_count.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => panic!("checkout answered {} before the crash: {}", r.status(), r.text().unwrap_or_default()),
                        Err(_) => break,
                    }
                }
                paid
            })
        })
        .collect();

    let started = Instant::now();
    while paid_count.load(Ordering::Relaxed) < 150 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<(usize, String)> = shoppers
        .into_iter()
        .enumerate()
        .flat_map(|(s, h)| h.join().unwrap().into_iter().map(move |id| (s, id)))
        .collect();
    assert!(
        acknowledged.len() >= 50,
        "too few checkouts before the crash: {}",
        acknowledged.len()
    );

    let node = common::start_with_admin(&data, &args);
    let admin = common::login(&http, &node, common::ADMIN_EMAIL, common::ADMIN_PASSWORD);
    // Interrupted checkouts are settled by the reconciler within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending: Value = common::get_json_as(
            &http,
            &node,
            "/api/v1/admin/orders?status=pending_payment",
            &admin,
        );
        if pending["total"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "checkouts still pending: {pending}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (s, id) in &acknowledged {
        let order: Value =
            common::get_json_as(&http, &node, &format!("/api/v1/orders/{id}"), &tokens[*s]);
        assert_eq!(order["status"], "paid", "acknowledged order {id}: {order}");
    }
    // Stock adds up on every product, and what was sold is exactly what paid orders hold.
    let mut sold_total = 0;
    for p in &products {
        let stock = common::admin_stock(&http, &node, &admin, p);
        let st = &stock;
        let (available, reserved, sold, received) = (
            st["available"].as_u64().unwrap(),
            st["reserved"].as_u64().unwrap(),
            st["sold"].as_u64().unwrap(),
            st["received"].as_u64().unwrap(),
        );
        assert_eq!(available + reserved + sold, received, "{p}: {st}");
        assert_eq!(received, STOCK);
        assert_eq!(reserved, 0, "no stock held by a settled checkout: {st}");
        sold_total += sold;
    }
    let mut paid_units = 0;
    let mut page = 1;
    loop {
        let list: Value = http
            .get(node.url(&format!(
                "/api/v1/admin/orders?status=paid&per_page=100&page={page}"
            )))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let items = list["items"].as_array().unwrap();
        paid_units += items
            .iter()
            .map(|o| o["items"].as_u64().unwrap())
            .sum::<u64>();
        if items.len() < 100 {
            break;
        }
        page += 1;
    }
    assert_eq!(sold_total, paid_units, "units sold == units in paid orders");
    eprintln!(
        "checkout crash test: {} acknowledged, {paid_units} units in paid orders",
        acknowledged.len()
    );
}
