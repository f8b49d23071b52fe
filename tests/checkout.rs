//! Checkout through the real binary: no overselling under contention, idempotent retries,
//! declines that give the stock back.

mod common;

use std::sync::{Arc, Barrier};

use common::{client, Node};
use serde_json::{json, Value};

use common::{address, available, checkout};

fn setup(extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, Node, String) {
    common::shop_with_admin(extra)
}

#[test]
fn a_paid_order_sells_the_stock_and_clears_the_cart() {
    let (_tmp, _data, node, admin) = setup(&[]);
    let http = client();
    let mug = common::create_product(&http, &node, &admin, "MUG", 1250, 5);
    let lid = common::create_product(&http, &node, &admin, "LID", 300, 5);
    let ada = common::register(&http, &node, "ada@checkout.test");
    common::add_to_cart(&http, &node, &ada, &mug, 2);
    common::add_to_cart(&http, &node, &ada, &lid, 1);

    let r = http
        .post(node.url("/api/v1/checkout"))
        .bearer_auth(&ada)
        .json(&json!({"payment": {"token": "tok_visa"}, "shipping_address": address()}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 422, "the Idempotency-Key header is required");

    let r = checkout(&http, &node, &ada, "k1", "tok_visa");
    assert_eq!(r.status(), 201);
    let order: Value = r.json().unwrap();
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total"], json!({"amount": 2800, "currency": "USD"}));
    assert_eq!(order["payment"]["status"], "charged");
    assert!(order["payment"]["charge_id"]
        .as_str()
        .unwrap()
        .starts_with("ch_test_"));
    assert_eq!(order["shipping_address"]["country"], "GB");
    assert_eq!(
        (available(&http, &node, &mug), available(&http, &node, &lid)),
        (3, 4)
    );
    let cart: Value = common::get_json_as(&http, &node, "/api/v1/cart", &ada);
    assert_eq!(cart["items"], json!([]));

    let id = order["id"].as_str().unwrap();
    let mine = http
        .get(node.url(&format!("/api/v1/orders/{id}")))
        .bearer_auth(&ada)
        .send()
        .unwrap();
    assert_eq!(mine.status(), 200);
    let bob = common::register(&http, &node, "bob@checkout.test");
    assert_eq!(
        http.get(node.url(&format!("/api/v1/orders/{id}")))
            .bearer_auth(&bob)
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        checkout(&http, &node, &bob, "k1", "tok_visa").status(),
        422,
        "an empty cart cannot be bought"
    );
}

#[test]
fn two_hundred_shoppers_ten_units_exactly_ten_orders() {
    let (_tmp, data, node, admin) = setup(&[]);
    let http = client();
    let item = common::create_product(&http, &node, &admin, "HOT-1", 999, 10);
    let shoppers: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (node, item) = (&node, &item);
                s.spawn(move || {
                    let http = client();
                    (0..25)
                        .map(|i| {
                            let token =
                                common::register(&http, node, &format!("s{t}-{i}@rush.test"));
                            common::add_to_cart(&http, node, &token, item, 1);
                            token
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(shoppers.len(), 200);

    let start = Arc::new(Barrier::new(shoppers.len()));
    let statuses: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = shoppers
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let (node, start) = (&node, start.clone());
                s.spawn(move || {
                    let http = client();
                    start.wait();
                    let r = checkout(&http, node, token, &format!("rush-{i}"), "tok_visa");
                    (r.status().as_u16(), r.json::<Value>().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let paid = statuses.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(
        paid,
        10,
        "{:?}",
        statuses.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 190);
    for (_, body) in &refused {
        assert_eq!(body["code"], "out_of_stock");
        assert_eq!(body["lines"][0]["available"], 0, "{body}");
    }
    assert_eq!(available(&http, &node, &item), 0);

    // Restart: the figures are unchanged.
    assert_eq!(node.terminate().code(), Some(0));
    let node = Node::start(&data, &[]);
    assert_eq!(available(&http, &node, &item), 0);
    for ((status, body), token) in statuses.iter().zip(&shoppers) {
        if *status == 201 {
            let id = body["id"].as_str().unwrap();
            let order: Value =
                common::get_json_as(&http, &node, &format!("/api/v1/orders/{id}"), token);
            assert_eq!(order["status"], "paid");
        }
    }
}

#[test]
fn retries_with_one_key_make_one_order_and_one_charge() {
    let (_tmp, _data, node, admin) = setup(&[]);
    let http = client();
    let item = common::create_product(&http, &node, &admin, "ONCE", 500, 10);
    let ada = common::register(&http, &node, "once@checkout.test");
    common::add_to_cart(&http, &node, &ada, &item, 3);
    let results: Vec<(u16, Value)> = std::thread::scope(|s| {
        let start = Arc::new(Barrier::new(5));
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let (node, ada, start) = (&node, &ada, start.clone());
                s.spawn(move || {
                    let http = client();
                    start.wait();
                    let r = checkout(&http, node, ada, "same-key", "tok_visa");
                    (r.status().as_u16(), r.json::<Value>().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ids: std::collections::BTreeSet<_> = results
        .iter()
        .map(|(_, b)| b["id"].as_str().unwrap_or("none").to_string())
        .collect();
    assert!(results.iter().all(|(s, _)| *s == 201), "{results:?}");
    assert_eq!(ids.len(), 1, "one order: {ids:?}");
    assert_eq!(available(&http, &node, &item), 7, "stock taken once");
    let charges: std::collections::BTreeSet<_> = results
        .iter()
        .map(|(_, b)| b["payment"]["charge_id"].to_string())
        .collect();
    assert_eq!(charges.len(), 1, "one charge");

    // A later retry answers the same; the same key with another body is refused.
    let again: Value = checkout(&http, &node, &ada, "same-key", "tok_visa")
        .json()
        .unwrap();
    assert_eq!(again["id"].as_str(), ids.iter().next().map(String::as_str));
    assert_eq!(again["payment"], results[0].1["payment"]);
    // So does one made once the cart holds something again: nothing more is bought.
    common::add_to_cart(&http, &node, &ada, &item, 2);
    let later: Value = checkout(&http, &node, &ada, "same-key", "tok_visa")
        .json()
        .unwrap();
    assert_eq!(later["id"], again["id"], "{later}");
    assert_eq!(available(&http, &node, &item), 7, "nothing more sold");
    assert_eq!(
        checkout(&http, &node, &ada, "same-key", "tok_mastercard").status(),
        422
    );
}

#[test]
fn a_declined_payment_cancels_the_order_and_gives_the_stock_back() {
    let (_tmp, _data, node, admin) = setup(&[]);
    let http = client();
    let item = common::create_product(&http, &node, &admin, "DECL", 500, 4);
    let ada = common::register(&http, &node, "decline@checkout.test");
    common::add_to_cart(&http, &node, &ada, &item, 3);
    for (key, card, reason) in [
        ("d1", "tok_chargeDeclined", "card_declined"),
        (
            "d2",
            "tok_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
        ),
    ] {
        let r = checkout(&http, &node, &ada, key, card);
        assert_eq!(r.status(), 402);
        let p: Value = r.json().unwrap();
        assert_eq!(
            (p["code"].as_str(), p["decline_code"].as_str()),
            (Some("payment_declined"), Some(reason))
        );
        assert_eq!(available(&http, &node, &item), 4, "the held stock is back");
        let order: Value = http
            .get(node.url(&format!(
                "/api/v1/orders/{}",
                p["order_id"].as_str().unwrap()
            )))
            .bearer_auth(&ada)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            (
                order["status"].as_str(),
                order["payment"]["status"].as_str()
            ),
            (Some("cancelled"), Some("declined"))
        );
        // Retrying the declined attempt answers the same decline.
        assert_eq!(checkout(&http, &node, &ada, key, card).status(), 402);
    }
    let r = checkout(&http, &node, &ada, "d3", "tok_unknown");
    assert_eq!(r.status(), 422);
    assert_eq!(available(&http, &node, &item), 4);
    // The cart survived the failed attempts and now goes through.
    assert_eq!(checkout(&http, &node, &ada, "d4", "tok_visa").status(), 201);
    assert_eq!(available(&http, &node, &item), 1);
}

#[test]
fn order_history_admin_fulfilment_and_sales_summary() {
    let (_tmp, _data, node, admin) = setup(&[]);
    let http = client();
    let mug = common::create_product(&http, &node, &admin, "SUM-MUG", 1000, 50);
    let ada = common::register(&http, &node, "hist@checkout.test");
    let mut ids = Vec::new();
    for (i, qty) in [2u32, 3].into_iter().enumerate() {
        common::add_to_cart(&http, &node, &ada, &mug, qty);
        let order: Value = checkout(&http, &node, &ada, &format!("h{i}"), "tok_visa")
            .json()
            .unwrap();
        ids.push(order["id"].as_str().unwrap().to_string());
    }
    // The order book is a projection: it follows within a second. Wait until it shows
    // both orders paid: it may have applied an order's placement but not yet its payment
    // (seeing two orders is not enough, as CI found once).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mine = loop {
        let mine: Value = common::get_json_as(&http, &node, "/api/v1/orders", &ada);
        let all_paid = mine["items"]
            .as_array()
            .is_some_and(|o| o.iter().all(|o| o["status"] == "paid"));
        if (mine["total"] == 2 && all_paid) || std::time::Instant::now() > deadline {
            break mine;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(mine["total"], 2, "{mine}");
    assert_eq!(
        mine["items"][0]["id"].as_str(),
        Some(ids[1].as_str()),
        "newest first"
    );
    let bob = common::register(&http, &node, "nohist@checkout.test");
    let theirs: Value = common::get_json_as(&http, &node, "/api/v1/orders", &bob);
    assert_eq!(theirs["total"], 0);

    let ship = |token: &str, id: &str| {
        http.post(node.url(&format!("/api/v1/admin/orders/{id}/ship")))
            .bearer_auth(token)
            .json(&json!({"carrier": "UPS", "tracking_number": "1Z999"}))
            .send()
            .unwrap()
    };
    assert_eq!(
        ship(&ada, &ids[0]).status(),
        403,
        "customers cannot call admin endpoints"
    );
    let shipped: Value = ship(&admin, &ids[0]).json().unwrap();
    assert_eq!(
        (
            shipped["status"].as_str(),
            shipped["tracking_number"].as_str()
        ),
        (Some("shipped"), Some("1Z999"))
    );
    let again = ship(&admin, &ids[0]);
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().unwrap()["status"], "shipped");
    let r = http
        .post(node.url(&format!("/api/v1/admin/orders/{}/deliver", ids[0])))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.json::<Value>().unwrap()["status"], "delivered");
    let listed: Value =
        common::get_json_as(&http, &node, "/api/v1/admin/orders?status=paid", &admin);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "paid"),
        "{listed}"
    );
    assert_eq!(
        http.get(node.url("/api/v1/admin/orders"))
            .bearer_auth(&ada)
            .send()
            .unwrap()
            .status(),
        403
    );

    let summary: Value = common::get_json_as(
        &http,
        &node,
        "/api/v1/admin/sales/summary?window_minutes=60",
        &admin,
    );
    assert_eq!(
        (summary["orders"].as_u64(), summary["items_sold"].as_u64()),
        (Some(2), Some(5)),
        "{summary}"
    );
    assert_eq!(
        summary["revenue"],
        json!({"amount": 5000, "currency": "USD"})
    );
    assert_eq!(
        summary["top_products"][0]["product_id"].as_str(),
        Some(mug.as_str())
    );
}

#[test]
fn cancel_before_shipping_and_returns_after_delivery_refund_and_restock() {
    let (_tmp, _data, node, admin) = setup(&[]);
    let http = client();
    let item = common::create_product(&http, &node, &admin, "CANCEL-1", 700, 10);
    let ada = common::register(&http, &node, "cancel@checkout.test");
    let buy = |key: &str, qty: u32| -> String {
        common::add_to_cart(&http, &node, &ada, &item, qty);
        let order: Value = checkout(&http, &node, &ada, key, "tok_visa")
            .json()
            .unwrap();
        order["id"].as_str().unwrap().to_string()
    };
    let first = buy("c1", 3);
    assert_eq!(available(&http, &node, &item), 7);
    let bob = common::register(&http, &node, "notmine@checkout.test");
    let cancel = |token: &str, id: &str| {
        http.post(node.url(&format!("/api/v1/orders/{id}/cancel")))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    assert_eq!(
        cancel(&bob, &first).status(),
        404,
        "someone else's order is not found"
    );
    let r = cancel(&ada, &first);
    assert_eq!(r.status(), 200);
    let order: Value = r.json().unwrap();
    assert_eq!(
        (
            order["status"].as_str(),
            order["payment"]["status"].as_str()
        ),
        (Some("refunded"), Some("refunded"))
    );
    assert_eq!(order["payment"]["refunded"]["amount"], 2100);
    assert_eq!(available(&http, &node, &item), 10, "stock is back");
    assert_eq!(
        cancel(&ada, &first).status(),
        409,
        "a refunded order stays refunded"
    );
    assert_eq!(
        available(&http, &node, &item),
        10,
        "and is not restocked twice"
    );

    let second = buy("c2", 2);
    let ship = http
        .post(node.url(&format!("/api/v1/admin/orders/{second}/ship")))
        .bearer_auth(&admin)
        .json(&json!({"carrier": "DHL", "tracking_number": "JD01"}))
        .send()
        .unwrap();
    assert_eq!(ship.status(), 200);
    let late = cancel(&ada, &second);
    assert_eq!(late.status(), 409);
    assert_eq!(late.json::<Value>().unwrap()["status"], "shipped");
    http.post(node.url(&format!("/api/v1/admin/orders/{second}/deliver")))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    let ret = |body: Value| {
        http.post(node.url(&format!("/api/v1/orders/{second}/return")))
            .bearer_auth(&ada)
            .json(&body)
            .send()
            .unwrap()
    };
    assert_eq!(
        ret(json!({"reason": "too big", "lines": [{"product_id": item, "quantity": 3}]})).status(),
        422,
        "only 2 were bought"
    );
    assert_eq!(
        ret(json!({"reason": "too big", "lines": [{"product_id": "p_other", "quantity": 1}]}))
            .status(),
        422
    );
    // A partial return: one of the two units.
    let r = ret(json!({"reason": "too big", "lines": [{"product_id": item, "quantity": 1}]}));
    assert_eq!(r.json::<Value>().unwrap()["status"], "returned");
    assert_eq!(
        available(&http, &node, &item),
        8,
        "not restocked before approval"
    );
    let approve = |token: &str| {
        http.post(node.url(&format!("/api/v1/admin/orders/{second}/approve-return")))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    assert_eq!(approve(&ada).status(), 403);
    let order: Value = approve(&admin).json().unwrap();
    assert_eq!(order["status"], "refunded");
    assert_eq!(
        order["payment"]["refunded"]["amount"], 700,
        "the returned unit's price, not the whole order"
    );
    assert_eq!(
        available(&http, &node, &item),
        9,
        "the returned unit is back on sale"
    );
}

/// ACIDRain (SIGMOD 2017): change the cart while its checkout runs. Every paid order must
/// charge exactly its lines, and stock must be taken exactly for what was charged.
#[test]
fn a_cart_changed_during_checkout_never_splits_charge_from_stock() {
    let (_tmp, _data, node, admin) = setup(&[]);
    let http = client();
    let a = common::create_product(&http, &node, &admin, "RAIN-A", 300, 100_000);
    let b = common::create_product(&http, &node, &admin, "RAIN-B", 700, 100_000);
    let shopper = common::register(&http, &node, "rain@checkout.test");
    let mut paid_orders = Vec::new();
    for round in 0..25 {
        common::add_to_cart(&http, &node, &shopper, &a, 1 + round % 3);
        let (order, _) = std::thread::scope(|s| {
            let buyer = s.spawn(|| {
                let r = checkout(&http, &node, &shopper, &format!("rain-{round}"), "tok_visa");
                (r.status().as_u16(), r.json::<Value>().unwrap())
            });
            let meddler = s.spawn(|| {
                let http = client();
                for i in 0..6 {
                    let (p, q) = if i % 2 == 0 { (&b, 2) } else { (&a, 1) };
                    let _ = http
                        .post(node.url("/api/v1/cart/items"))
                        .bearer_auth(&shopper)
                        .json(&json!({"product_id": p, "quantity": q}))
                        .send();
                }
            });
            (buyer.join().unwrap(), meddler.join().unwrap())
        });
        if order.0 == 201 {
            paid_orders.push(order.1);
        }
        let _ = http
            .delete(node.url("/api/v1/cart"))
            .bearer_auth(&shopper)
            .send();
    }
    assert!(
        paid_orders.len() >= 20,
        "most checkouts went through: {}",
        paid_orders.len()
    );
    let mut units = std::collections::BTreeMap::new();
    for o in &paid_orders {
        let lines = o["lines"].as_array().unwrap();
        let sum: i64 = lines
            .iter()
            .map(|l| l["line_total"]["amount"].as_i64().unwrap())
            .sum();
        assert_eq!(
            o["total"]["amount"].as_i64().unwrap(),
            sum,
            "charged total == its lines: {o}"
        );
        let id = o["id"].as_str().unwrap();
        let full: Value =
            common::get_json_as(&http, &node, &format!("/api/v1/orders/{id}"), &shopper);
        assert_eq!(full["payment"]["status"], "charged");
        for l in lines {
            *units
                .entry(l["product_id"].as_str().unwrap().to_string())
                .or_insert(0u64) += l["quantity"].as_u64().unwrap();
        }
    }
    for p in [&a, &b] {
        let stock = common::admin_stock(&http, &node, &admin, p);
        assert_eq!(
            stock["sold"].as_u64().unwrap(),
            units.get(p.as_str()).copied().unwrap_or(0),
            "{p}: stock taken == units charged"
        );
        assert_eq!(stock["reserved"], 0);
    }
}

/// A hold expires: while one checkout's charge hangs past the reservation's TTL, another
/// shopper can buy the unit; the slow checkout then finds its hold gone, refunds and
/// cancels instead of overselling.
#[test]
fn an_expired_hold_frees_the_stock_and_the_late_checkout_refunds() {
    let (_tmp, _data, node, admin) = setup(&["--reservation-ttl-secs", "1"]);
    let http = client();
    let item = common::create_product(&http, &node, &admin, "LAST-ONE", 900, 1);
    let slow = common::register(&http, &node, "slow@checkout.test");
    let fast = common::register(&http, &node, "fast@checkout.test");
    common::add_to_cart(&http, &node, &slow, &item, 1);
    common::add_to_cart(&http, &node, &fast, &item, 1);
    std::thread::scope(|s| {
        let late = s.spawn(|| {
            let r = checkout(&http, &node, &slow, "slow-1", "tok_slow");
            (r.status().as_u16(), r.json::<Value>().unwrap())
        });
        // While the slow charge runs, its hold exists, then expires.
        let wait_for = |want: u64, what: &str| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(2500);
            while available(&http, &node, &item) != want {
                assert!(std::time::Instant::now() < deadline, "{what}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        };
        wait_for(0, "the slow checkout holds the unit");
        wait_for(1, "the expired hold frees the unit");
        assert_eq!(
            checkout(&http, &node, &fast, "fast-1", "tok_visa").status(),
            201
        );
        let (status, body) = late.join().unwrap();
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "order_cancelled");
        let id = body["order_id"].as_str().unwrap();
        let order: Value =
            common::get_json_as(&http, &node, &format!("/api/v1/orders/{id}"), &slow);
        assert_eq!(
            (
                order["status"].as_str(),
                order["payment"]["status"].as_str()
            ),
            (Some("cancelled"), Some("refunded"))
        );
    });
    let stock = common::admin_stock(&http, &node, &admin, &item);
    assert_eq!(
        (stock["sold"].as_u64(), stock["available"].as_u64()),
        (Some(1), Some(0)),
        "sold once, never oversold"
    );
}

#[test]
fn bad_checkout_requests_get_a_4xx_and_hold_nothing() {
    let (_tmp, _data, node, admin) = setup(&[]);
    let http = client();
    let item = common::create_product(&http, &node, &admin, "BAD-CO", 100, 5);
    let ada = common::register(&http, &node, "badco@checkout.test");
    common::add_to_cart(&http, &node, &ada, &item, 2);
    let post = |key: &str, body: Value| {
        http.post(node.url("/api/v1/checkout"))
            .bearer_auth(&ada)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .unwrap()
    };
    let with_address = |field: &str, value: Value| {
        let mut a = address();
        a[field] = value;
        json!({"payment": {"token": "tok_visa"}, "shipping_address": a})
    };
    for (i, (body, word)) in [
        (
            json!({"payment": {"token": "tok_visa"}}),
            "shipping_address",
        ),
        (
            json!({"payment": {"token": ""}, "shipping_address": address()}),
            "payment.token",
        ),
        (
            json!({"payment": {"token": "tok_visa", "cvc": "123"}, "shipping_address": address()}),
            "cvc",
        ),
        (with_address("country", json!("gb")), "country"),
        (with_address("postal_code", json!("")), "postal_code"),
        (with_address("city", json!(7)), "shipping_address.city"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = post(&format!("bad-{i}"), body.clone());
        assert_eq!(r.status(), 422, "{body}");
        let p: Value = r.json().unwrap();
        assert!(p.to_string().contains(word), "{word} not named in {p}");
    }
    let r = http
        .post(node.url("/api/v1/checkout"))
        .bearer_auth(&ada)
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({"payment": {"token": "tok_visa"}, "shipping_address": address()}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        available(&http, &node, &item),
        5,
        "nothing is held by refused checkouts"
    );
    assert_eq!(
        post(
            "good",
            json!({"payment": {"token": "tok_visa"}, "shipping_address": address()})
        )
        .status(),
        201
    );
}
