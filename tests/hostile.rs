//! Attacks on a public shop, each against the real binary, each named for the attack it
//! tries (issue 19). Every one of them succeeded against the build before the hardening.

mod common;

use std::time::Duration;

use common::ws::Ws;
use common::{client, temp, Node};
use serde_json::json;
use tungstenite::Message;

/// Sends `n` subscriptions to made-up products on a fresh socket and returns the close
/// code the node ends it with (None: still open after the last refusal).
fn subscribe_to_made_up_products(base: &str, tag: &str, n: usize) -> Option<u16> {
    let mut ws = Ws::connect_to(base);
    for i in 0..n {
        let topic = format!("product:made-up-{tag}-{i}");
        if ws
            .ws
            .send(Message::text(
                json!({"type": "subscribe", "topic": topic}).to_string(),
            ))
            .is_err()
        {
            break;
        }
    }
    ws.set_timeout(Some(Duration::from_secs(10)));
    loop {
        match ws.ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[test]
fn websocket_flood_of_made_up_topics_is_cut_off_and_memory_stays_flat() {
    let (_dir, data) = temp();
    let node = Node::start(&data, &["--no-demo"]);
    let http = client();
    let pid = node.child.id();
    // Warm up the paths the attack takes, then measure.
    assert_eq!(
        subscribe_to_made_up_products(&node.base, "warm", 33),
        Some(1008)
    );
    let before = common::rss_mib(pid);

    // 8 attackers at once, each reconnecting 25 times and asking for 33 made-up topics
    // each time (32 refusals are allowed, the 33rd closes the socket): 6,600 topics. The
    // build before this one made a 128 KiB channel for each (~825 MiB).
    let attackers: Vec<_> = (0..8)
        .map(|a| {
            let base = node.base.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|round| subscribe_to_made_up_products(&base, &format!("{a}-{round}"), 33))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for a in attackers {
        for code in a.join().unwrap() {
            assert_eq!(
                code,
                Some(1008),
                "a socket asking for made-up topics is closed with 1008"
            );
        }
    }
    let after = common::rss_mib(pid);
    eprintln!(
        "websocket flood: rss {before:.1} MiB before, {after:.1} MiB after 6,600 made-up topics"
    );
    assert!(
        after - before < 48.0,
        "memory grew from {before:.1} MiB to {after:.1} MiB under the flood"
    );
    assert_eq!(
        common::metric(&http, &node, "ecommesh_ws_topics").unwrap_or(0.0),
        0.0,
        "no channel exists for a topic that does not exist"
    );

    // A real product still subscribes, and the socket that does so is not hurt by
    // a few refusals.
    let mut ws = Ws::connect(&node);
    let refused = ws.subscribe("product:nope");
    assert_eq!(refused["code"], "not_found");
    ws.send(json!({"type": "subscribe", "topic": "catalog"}));
    ws.expect(|m| m["type"] == "snapshot" && m["topic"] == "catalog");
}

#[test]
fn websocket_connection_flood_from_one_address_is_refused() {
    let (_dir, data) = temp();
    let node = Node::start(&data, &["--no-demo", "--ws-max-connections-per-ip", "4"]);
    let open: Vec<Ws> = (0..4).map(|_| Ws::connect(&node)).collect();
    let url = node.url("/api/v1/ws").replacen("http://", "ws://", 1);
    match tungstenite::connect(&url) {
        Err(tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 429);
            let body: serde_json::Value =
                serde_json::from_slice(r.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["code"], "rate_limited");
        }
        other => panic!("a fifth socket from one address must get 429, got {other:?}"),
    }
    // Closing one gives its place back.
    drop(open);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(ws) = tungstenite::connect(&url) {
            again = Some(ws);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(again.is_some(), "a closed socket's place is given back");
}

/// Peak resident memory of `pid` while `during` runs, sampled every 10 ms.
fn peak_rss_during<T>(pid: u32, during: impl FnOnce() -> T) -> (T, f64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(common::rss_mib(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak.max(common::rss_mib(pid))
        })
    };
    let out = during();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (out, sampler.join().unwrap())
}

fn login_from(http: &reqwest::blocking::Client, base: &str, from: &str, password: &str) -> u16 {
    http.post(format!("{base}/api/v1/auth/login"))
        .header("x-forwarded-for", from)
        .json(&json!({"email": common::ADMIN_EMAIL, "password": password}))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn login_flood_is_bounded_in_memory_and_the_owner_still_signs_in() {
    let (_dir, data) = temp();
    // Behind a proxy at 127.0.0.1, as a shop would be: X-Forwarded-For names the client.
    let mut cmd = common::command(
        &data,
        &[
            "--no-demo",
            "--trusted-proxies",
            "127.0.0.1",
            "--auth-rate-per-minute",
            "30",
            "--auth-burst",
            "10",
        ],
    );
    cmd.env("ECOMMESH_ADMIN_EMAIL", common::ADMIN_EMAIL)
        .env("ECOMMESH_ADMIN_PASSWORD", common::ADMIN_PASSWORD);
    let node = Node::spawn(cmd);
    let http = client();
    let pid = node.child.id();
    // One honest sign-in first, so the node's steady memory includes a hash.
    assert_eq!(
        login_from(&http, &node.base, "198.51.100.2", common::ADMIN_PASSWORD),
        200
    );
    let before = common::rss_mib(pid);

    // 200 wrong passwords at once from 200 addresses (each passes its address's limits:
    // only the hashing bound holds them), then 200 more from one address.
    let flood = |addresses: Vec<String>| {
        let handles: Vec<_> = addresses
            .into_iter()
            .map(|from| {
                let base = node.base.clone();
                std::thread::spawn(move || login_from(&client(), &base, &from, "wrong-guess-1"))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<u16>>()
    };
    let (spread, peak) = peak_rss_during(pid, || {
        flood(
            (0..200)
                .map(|i| format!("10.{}.{}.1", i / 250, i % 250))
                .collect(),
        )
    });
    let one_address = flood(vec!["203.0.113.7".to_owned(); 200]);
    let count = |codes: &[u16], c: u16| codes.iter().filter(|&&s| s == c).count();
    eprintln!(
        "login flood: rss {before:.1} MiB before, peak {peak:.1} MiB; 200 addresses: {} x 401, {} x 503; one address: {} x 401, {} x 429",
        count(&spread, 401),
        count(&spread, 503),
        count(&one_address, 401),
        count(&one_address, 429)
    );
    assert!(
        spread.iter().all(|s| [401, 503].contains(s)),
        "wrong passwords get 401, or 503 while hashing is busy: {spread:?}"
    );
    assert!(
        count(&spread, 503) > 0,
        "the hashing bound turned some away"
    );
    assert!(
        one_address.iter().all(|s| [401, 429].contains(s)),
        "one address gets 401 or 429: {one_address:?}"
    );
    assert!(
        count(&one_address, 401) <= 10,
        "one address gets at most its burst of guesses: {}",
        count(&one_address, 401)
    );
    // Two argon2id hashes at once (19 MiB each) plus their threads, not 200.
    assert!(
        peak - before < 150.0,
        "memory grew from {before:.1} MiB to a peak of {peak:.1} MiB under the flood"
    );

    // The owner, from their own address, signs in at once: the guesses did not lock the
    // account.
    assert_eq!(
        login_from(&http, &node.base, "198.51.100.2", common::ADMIN_PASSWORD),
        200,
        "the owner is not locked out by someone else's guesses"
    );
}

fn role_after_login(http: &reqwest::blocking::Client, base: &str, email: &str, pw: &str) -> String {
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": pw}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "login {email}");
    r.json::<serde_json::Value>().unwrap()["user"]["role"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn pre_registered_admin_email_is_not_promoted() {
    let (_dir, data) = temp();
    let http = client();
    // An attacker registers the email the operator will configure as the admin's.
    let node = Node::start(&data, &["--no-demo"]);
    let r = http
        .post(node.url("/api/v1/auth/register"))
        .json(&json!({"email": common::ADMIN_EMAIL, "password": "attacker-pass-1", "name": "Mallory"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(node.terminate().code(), Some(0));

    // The operator then starts the node with that email: it refuses, saying why, and
    // the attacker's account stays a customer.
    let mut cmd = common::command(&data, &["--no-demo"]);
    cmd.env("ECOMMESH_ADMIN_EMAIL", common::ADMIN_EMAIL)
        .env("ECOMMESH_ADMIN_PASSWORD", common::ADMIN_PASSWORD);
    let (status, stderr) = common::run_to_exit(cmd);
    assert!(!status.success());
    assert!(
        stderr.contains("was not made an admin"),
        "the error says why: {stderr}"
    );
    let node = Node::start(&data, &["--no-demo"]);
    assert_eq!(
        role_after_login(&http, &node.base, common::ADMIN_EMAIL, "attacker-pass-1"),
        "customer"
    );
    // An account its owner registered with the configured password is promoted.
    let r = http
        .post(node.url("/api/v1/auth/register"))
        .json(&json!({"email": "owner@shop.test", "password": "owner-pass-1", "name": "Owner"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(node.terminate().code(), Some(0));
    let mut cmd = common::command(&data, &["--no-demo"]);
    cmd.env("ECOMMESH_ADMIN_EMAIL", "owner@shop.test")
        .env("ECOMMESH_ADMIN_PASSWORD", "owner-pass-1");
    let node = Node::spawn(cmd);
    assert_eq!(
        role_after_login(&http, &node.base, "owner@shop.test", "owner-pass-1"),
        "admin"
    );
}

#[test]
fn pre_registered_admin_email_races_a_cluster_start_and_loses() {
    // Node 1 of two starts alone: it has no quorum, so it cannot write the admin yet.
    // The build before this one served HTTP meanwhile, and an attacker's registration of
    // the admin email, queued first, was then promoted by the bootstrap.
    let tmp = tempfile::tempdir().unwrap();
    let ports = ecommesh::cluster::ports::peer_ports(3).unwrap();
    let base = format!("http://127.0.0.1:{}", ports[2]);
    let peers = format!("1=127.0.0.1:{},2=127.0.0.1:{}", ports[0], ports[1]);
    let command = |id: usize, listen: &str| {
        let mut cmd = common::command(
            &tmp.path().join(format!("n{id}")),
            &[
                "--no-demo",
                "--listen",
                listen,
                "--node-id",
                &id.to_string(),
                "--rpc-listen",
                &format!("127.0.0.1:{}", ports[id - 1]),
                "--peers",
                &peers,
                "--shards",
                "4",
            ],
        );
        cmd.env(
            "ECOMMESH_JWT_SECRET",
            "race-test-jwt-secret-0123456789abcdef",
        )
        .env(
            "ECOMMESH_CLUSTER_SECRET",
            "race-test-cluster-secret-0123456789ab",
        )
        .env("ECOMMESH_ADMIN_EMAIL", common::ADMIN_EMAIL)
        .env("ECOMMESH_ADMIN_PASSWORD", common::ADMIN_PASSWORD);
        cmd
    };
    let first = {
        let cmd = command(1, &format!("127.0.0.1:{}", ports[2]));
        std::thread::spawn(move || Node::spawn(cmd))
    };
    // The attacker knocks as soon as the port takes connections.
    let attacker = {
        let base = base.clone();
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            for _ in 0..200 {
                if let Ok(r) = http
                    .post(format!("{base}/api/v1/auth/register"))
                    .json(&json!({"email": common::ADMIN_EMAIL, "password": "attacker-pass-1", "name": "Mallory"}))
                    .send()
                {
                    return r.status().as_u16();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            0
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let second = Node::spawn(command(2, "127.0.0.1:0"));
    let first = first.join().unwrap();
    assert_eq!(
        attacker.join().unwrap(),
        409,
        "the admin email was taken before HTTP answered anyone"
    );
    let http = client();
    assert_eq!(
        role_after_login(
            &http,
            &first.base,
            common::ADMIN_EMAIL,
            common::ADMIN_PASSWORD
        ),
        "admin"
    );
    drop(second);
}

#[test]
fn revoked_access_token_is_refused_at_once() {
    let (_dir, data) = temp();
    let node = Node::start(&data, &["--no-demo"]);
    let http = client();
    let me = |token: &str| {
        http.get(node.url("/api/v1/me"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let r: serde_json::Value = http
        .post(node.url("/api/v1/auth/register"))
        .json(&json!({"email": "eve@shop.test", "password": "eve-pass-123", "name": "Eve"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let access = r["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&access), 200);
    let out = http
        .post(node.url("/api/v1/auth/logout"))
        .bearer_auth(&access)
        .send()
        .unwrap();
    assert_eq!(out.status(), 204);
    // The token has not expired, but its session has ended: refused on every route.
    assert_eq!(me(&access), 401, "a logged-out access token is refused");
    let cart = http
        .post(node.url("/api/v1/cart/items"))
        .bearer_auth(&access)
        .json(&json!({"product_id": "p", "quantity": 1}))
        .send()
        .unwrap();
    assert_eq!(cart.status(), 401);
    let mut ws = Ws::connect(&node);
    ws.send(json!({"type": "auth", "token": access}));
    let refused = ws.expect(|m| m["type"] == "error");
    assert_eq!(refused["code"], "unauthorized");

    // A refresh token used twice (stolen) revokes its session: both the access token
    // issued with it and the one issued by the first refresh stop working.
    let login = |pw: &str| -> serde_json::Value {
        http.post(node.url("/api/v1/auth/login"))
            .json(&json!({"email": "eve@shop.test", "password": pw}))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let s = login("eve-pass-123");
    let (first_access, refresh) = (
        s["access_token"].as_str().unwrap().to_owned(),
        s["refresh_token"].as_str().unwrap().to_owned(),
    );
    let refreshed = |token: &str| {
        http.post(node.url("/api/v1/auth/refresh"))
            .json(&json!({"refresh_token": token}))
            .send()
            .unwrap()
    };
    let next = refreshed(&refresh);
    assert_eq!(next.status(), 200);
    let next: serde_json::Value = next.json().unwrap();
    let second_access = next["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&second_access), 200);
    assert_eq!(refreshed(&refresh).status(), 401, "reuse is refused");
    assert_eq!(me(&first_access), 401, "reuse revokes the session's tokens");
    assert_eq!(me(&second_access), 401, "including the newest");
    // Another session of the same customer is not touched.
    let other = login("eve-pass-123");
    assert_eq!(me(other["access_token"].as_str().unwrap()), 200);
}

/// A node with an admin, and the admin's token.
fn shop(extra: &[&str]) -> (tempfile::TempDir, Node, String) {
    let (dir, _data, node, admin) = common::shop_with_admin(extra);
    (dir, node, admin)
}

/// The id of the order `token`'s customer gets for Idempotency-Key `key` (the API's
/// contract: derived from the customer and the key).
fn order_id_of(http: &reqwest::blocking::Client, node: &Node, token: &str, key: &str) -> String {
    let me: serde_json::Value = common::get_json_as(http, node, "/api/v1/me", token);
    ecommesh_commerce::ids::order_id(me["id"].as_str().unwrap(), key)
}

fn cancel(http: &reqwest::blocking::Client, node: &Node, token: &str, id: &str) -> u16 {
    http.post(node.url(&format!("/api/v1/orders/{id}/cancel")))
        .bearer_auth(token)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn cancel_racing_the_sale_puts_back_what_was_sold() {
    let (_dir, node, admin) = shop(&[]);
    let http = client();
    let a = common::create_product(&http, &node, &admin, "RACE-A", 1000, 5);
    let b = common::create_product(&http, &node, &admin, "RACE-B", 1000, 5);
    let shopper = common::register(&http, &node, "racer@shop.test");
    common::add_to_cart(&http, &node, &shopper, &a, 2);
    common::add_to_cart(&http, &node, &shopper, &b, 3);
    let id = order_id_of(&http, &node, &shopper, "race-1");
    // The test card pauses the checkout for 2 s after it sold its first line: the
    // cancel lands in the middle of the sale.
    let (status, body) = std::thread::scope(|s| {
        let paying = s.spawn(|| {
            let r = common::checkout(&client(), &node, &shopper, "race-1", "tok_pause_in_sale");
            (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let sold_one = || {
            let a = common::admin_stock(&http, &node, &admin, &a);
            let b = common::admin_stock(&http, &node, &admin, &b);
            a["sold"].as_u64().unwrap() + b["sold"].as_u64().unwrap() > 0
        };
        while !sold_one() {
            assert!(std::time::Instant::now() < deadline, "the first line sells");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(cancel(&http, &node, &shopper, &id), 200);
        paying.join().unwrap()
    });
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "order_cancelled");
    // Nothing stays sold, nothing stays held, and the charge went back.
    for p in [&a, &b] {
        let stock = common::admin_stock(&http, &node, &admin, p);
        assert_eq!(
            (
                stock["sold"].as_u64(),
                stock["reserved"].as_u64(),
                stock["available"].as_u64()
            ),
            (Some(0), Some(0), Some(5)),
            "{p}: {stock}"
        );
    }
    let order: serde_json::Value =
        common::get_json_as(&http, &node, &format!("/api/v1/orders/{id}"), &shopper);
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["payment"]["status"], "refunded", "{order}");
}

#[test]
fn zero_price_order_cancelled_twice_puts_its_units_back_once() {
    let (_dir, node, admin) = shop(&[]);
    let http = client();
    let free = common::create_product(&http, &node, &admin, "FREE", 0, 300);
    let shopper = common::register(&http, &node, "free@shop.test");
    common::add_to_cart(&http, &node, &shopper, &free, 2);
    let first = common::checkout(&http, &node, &shopper, "free-0", "tok_visa");
    assert_eq!(first.status(), 201);
    let first = first.json::<serde_json::Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(cancel(&http, &node, &shopper, &first), 200);
    // 257 other paid-then-cancelled orders push the first one's reversal out of the
    // product's memory of recent reversals (256).
    for i in 1..=257 {
        common::add_to_cart(&http, &node, &shopper, &free, 1);
        let r = common::checkout(&http, &node, &shopper, &format!("free-{i}"), "tok_visa");
        assert_eq!(r.status(), 201);
        let id = r.json::<serde_json::Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(cancel(&http, &node, &shopper, &id), 200);
    }
    // Cancelling the first order again must not put its 2 units on sale a second time.
    let again = cancel(&http, &node, &shopper, &first);
    assert!([200, 409].contains(&again), "{again}");
    let stock = common::admin_stock(&http, &node, &admin, &free);
    assert_eq!(
        (
            stock["sold"].as_u64(),
            stock["available"].as_u64(),
            stock["received"].as_u64()
        ),
        (Some(0), Some(300), Some(300)),
        "no phantom units: {stock}"
    );
}

#[test]
fn double_refund_by_two_concurrent_cancels_asks_the_provider_once() {
    let (_dir, node, admin) = shop(&[]);
    let http = client();
    let item = common::create_product(&http, &node, &admin, "TWICE", 1500, 100);
    let shopper = common::register(&http, &node, "twice@shop.test");
    const ORDERS: usize = 12;
    for i in 0..ORDERS {
        common::add_to_cart(&http, &node, &shopper, &item, 1);
        let r = common::checkout(&http, &node, &shopper, &format!("twice-{i}"), "tok_visa");
        assert_eq!(r.status(), 201);
        let id = r.json::<serde_json::Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let barrier = std::sync::Barrier::new(2);
        let codes: Vec<u16> = std::thread::scope(|s| {
            let both: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let http = client();
                        barrier.wait();
                        cancel(&http, &node, &shopper, &id)
                    })
                })
                .collect();
            both.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // One cancels; the other answers 200 too, or 409 if it came after the order was
        // refunded already (a refunded order stays refunded).
        assert!(codes.contains(&200), "{codes:?}");
        assert!(codes.iter().all(|c| [200, 409].contains(c)), "{codes:?}");
    }
    let asked = common::metric(&http, &node, "ecommesh_payment_refund_requests_total");
    let made = common::metric(&http, &node, "ecommesh_test_provider_refunds_total");
    assert_eq!(
        (asked, made),
        (Some(ORDERS as f64), Some(ORDERS as f64)),
        "one refund asked of the provider per order"
    );
    let stock = common::admin_stock(&http, &node, &admin, &item);
    assert_eq!(stock["available"].as_u64(), Some(100), "{stock}");
}

#[test]
fn hold_limit_bounds_checkouts_per_customer_and_abandoned_ones_finish() {
    let (_dir, node, admin) = shop(&["--max-pending-checkouts", "2"]);
    let http = client();
    let item = common::create_product(&http, &node, &admin, "HOLD", 700, 50);
    let shopper = common::register(&http, &node, "holder@shop.test");
    common::add_to_cart(&http, &node, &shopper, &item, 5);
    // Two slow checkouts run (each holds the cart's 5 units); the third is refused
    // without holding anything.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let slow: Vec<_> = (0..2)
            .map(|i| {
                let (node, shopper) = (&node, &shopper);
                s.spawn(move || {
                    common::checkout(&client(), node, shopper, &format!("hold-{i}"), "tok_slow")
                        .status()
                        .as_u16()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(
            common::available(&http, &node, &item),
            40,
            "two checkouts hold 10"
        );
        let third = common::checkout(&http, &node, &shopper, "hold-2", "tok_visa");
        assert_eq!(third.status(), 429);
        assert_eq!(
            third.json::<serde_json::Value>().unwrap()["code"],
            "too_many_pending_checkouts"
        );
        assert_eq!(
            common::available(&http, &node, &item),
            40,
            "the third held nothing"
        );
        slow.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Both finish: the first empties the cart, the second finds it empty.
    assert!(statuses.contains(&201), "{statuses:?}");

    // A shopper who walks away mid-checkout: the checkout still finishes at once, rather
    // than holding the stock until the reconciler's timeout.
    common::add_to_cart(&http, &node, &shopper, &item, 2);
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gone = impatient
        .post(node.url("/api/v1/checkout"))
        .bearer_auth(&shopper)
        .header("Idempotency-Key", "walked-away")
        .json(&json!({"payment": {"token": "tok_slow"}, "shipping_address": common::address()}))
        .send();
    assert!(gone.is_err(), "the client gave up before the answer");
    let id = order_id_of(&http, &node, &shopper, "walked-away");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let order: serde_json::Value =
            common::get_json_as(&http, &node, &format!("/api/v1/orders/{id}"), &shopper);
        if order["status"] == "paid" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned checkout finished: {order}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stock = common::admin_stock(&http, &node, &admin, &item);
    assert_eq!(
        stock["reserved"].as_u64(),
        Some(0),
        "nothing left held: {stock}"
    );
}

#[test]
fn metrics_and_data_files_are_not_public() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, data) = temp();
    let port = ecommesh::cluster::ports::peer_ports(1).unwrap()[0];
    let metrics_at = format!("127.0.0.1:{port}");
    let node = Node::start(&data, &["--metrics-listen", &metrics_at]);
    let http = client();
    // The shop's port does not publish the node's internals...
    let shop = http.get(node.url("/metrics")).send().unwrap();
    assert_eq!(shop.status(), 404);
    // ...the metrics address does.
    let apart = http
        .get(format!("http://{metrics_at}/metrics"))
        .send()
        .unwrap();
    assert_eq!(apart.status(), 200);
    assert!(apart.text().unwrap().contains("ecommesh_"));

    // Journal, secrets and read models are the node's alone.
    let mut stack = vec![data.clone()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        }
    }
    assert!(files > 0, "the node wrote its files");
}
