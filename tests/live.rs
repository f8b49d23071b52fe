//! Live updates over the websocket at /api/v1/ws, against the real binary: snapshots then
//! updates with chained sequence numbers, private and admin topics, errors that leave the
//! connection usable, slow consumers and idle clients closed without holding anyone up.

mod common;

use std::time::{Duration, Instant};

use common::ws::Ws;
use common::{client, temp, Node};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

fn admin_token(http: &Client, node: &Node) -> String {
    common::login(http, node, common::ADMIN_EMAIL, common::ADMIN_PASSWORD)
}

fn patch(http: &Client, node: &Node, admin: &str, product: &str, body: Value) {
    let r = http
        .patch(node.url(&format!("/api/v1/products/{product}")))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}

fn restock(http: &Client, node: &Node, admin: &str, product: &str, quantity: u64) {
    let r = http
        .post(node.url(&format!("/api/v1/products/{product}/restock")))
        .bearer_auth(admin)
        .json(&json!({ "quantity": quantity }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}

fn checkout(http: &Client, node: &Node, token: &str, card: &str) -> reqwest::blocking::Response {
    common::checkout(http, node, token, &format!("k-{card}-{}", nanos()), card)
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Reads updates until one whose `event` contains `event`, checking that each continues
/// exactly from the one before (`prev_seq` == the last `seq`).
fn chain_until(ws: &mut Ws, last: &mut u64, event: &str) -> Value {
    loop {
        let u = ws.expect(|m| m["type"] == "update");
        assert_eq!(u["prev_seq"].as_u64().unwrap(), *last, "gap before {u}");
        *last = u["seq"].as_u64().unwrap();
        if u["event"].as_str().unwrap().contains(event) {
            return u;
        }
    }
}

#[test]
fn a_product_subscriber_gets_its_state_then_every_change_in_order() {
    let (_dir, data) = temp();
    let node = common::start_with_admin(&data, &["--no-demo"]);
    let http = client();
    let admin = admin_token(&http, &node);
    let p = common::create_product(&http, &node, &admin, "live-1", 1999, 3);

    let mut ws = Ws::connect(&node);
    let snap = ws.subscribe(&format!("product:{p}"));
    assert_eq!(snap["type"], "snapshot", "{snap}");
    assert_eq!(snap["data"]["stock"]["available"], 3);
    let mut last = snap["seq"].as_u64().unwrap();

    restock(&http, &node, &admin, &p, 4);
    patch(
        &http,
        &node,
        &admin,
        &p,
        json!({"price": {"amount": 2499, "currency": "USD"}}),
    );
    let shopper = common::register(&http, &node, "live@shop.test");
    common::add_to_cart(&http, &node, &shopper, &p, 2);
    assert_eq!(checkout(&http, &node, &shopper, "tok_visa").status(), 201);

    let u = chain_until(&mut ws, &mut last, "Restocked");
    assert_eq!(u["data"]["stock"]["available"], 7);
    let u = chain_until(&mut ws, &mut last, "Updated");
    assert_eq!(u["data"]["price"]["amount"], 2499);
    let u = chain_until(&mut ws, &mut last, "Reserved");
    assert_eq!(u["data"]["stock"]["available"], 5);
    let u = chain_until(&mut ws, &mut last, "Sold");
    assert_eq!(u["data"]["stock"]["available"], 5);
    assert!(u["data"]["stock"].get("sold").is_none(), "public view only");

    // Another subscriber now starts from the current state, not from history.
    let mut late = Ws::connect(&node);
    let snap = late.subscribe(&format!("product:{p}"));
    assert_eq!(snap["seq"].as_u64().unwrap(), last);
    restock(&http, &node, &admin, &p, 1);
    let u = late.expect(|m| m["type"] == "update");
    assert_eq!(u["prev_seq"].as_u64().unwrap(), last);
    assert_eq!(u["data"]["stock"]["available"], 6);
}

#[test]
fn bad_requests_get_errors_and_the_connection_stays_usable() {
    let (_dir, data) = temp();
    let node = common::start_with_admin(&data, &["--no-demo"]);
    let http = client();
    let mut ws = Ws::connect(&node);

    ws.send(json!({"type": "subscribe", "topic": "prices"}));
    let e = ws.expect(|m| m["type"] == "error");
    assert_eq!(e["code"], "unknown_topic", "{e}");
    ws.ws.send(Message::text("{not json")).unwrap();
    let e = ws.expect(|m| m["type"] == "error");
    assert_eq!(e["code"], "malformed", "{e}");
    ws.send(json!({"type": "subscribe"}));
    assert_eq!(ws.expect(|m| m["type"] == "error")["code"], "malformed");
    let e = ws.subscribe("cart");
    assert_eq!(e["code"], "unauthorized", "anonymous: {e}");
    let e = ws.subscribe("product:no-such");
    assert_eq!(e["code"], "not_found", "{e}");
    ws.send(json!({"type": "auth", "token": "forged.token.here"}));
    assert_eq!(ws.expect(|m| m["type"] == "error")["code"], "unauthorized");

    let shopper = common::register(&http, &node, "curious@shop.test");
    ws.send(json!({"type": "auth", "token": shopper}));
    let a = ws.expect(|m| m["type"] == "authenticated");
    assert_eq!(a["role"], "customer", "{a}");
    let e = ws.subscribe("admin:sales");
    assert_eq!(e["code"], "forbidden", "a customer: {e}");
    // Still usable after every error above.
    assert_eq!(ws.subscribe("catalog")["type"], "snapshot");
    assert_eq!(ws.subscribe("cart")["type"], "snapshot");
    ws.send(json!({"type": "ping"}));
    ws.expect(|m| m["type"] == "pong");
    ws.send(json!({"type": "unsubscribe", "topic": "catalog"}));
    ws.expect(|m| m["type"] == "unsubscribed");
}

#[test]
fn a_cart_change_reaches_every_tab_of_its_owner_and_nobody_else() {
    let (_dir, data) = temp();
    let node = common::start_with_admin(&data, &["--no-demo"]);
    let http = client();
    let admin = admin_token(&http, &node);
    let p = common::create_product(&http, &node, &admin, "cart-1", 500, 10);
    let ada = common::register(&http, &node, "ada@tabs.test");
    let bob = common::register(&http, &node, "bob@tabs.test");

    let mut tabs: Vec<Ws> = (0..2).map(|_| Ws::connect(&node)).collect();
    for tab in &mut tabs {
        tab.send(json!({"type": "auth", "token": ada}));
        let snap = tab.subscribe("cart");
        assert_eq!(snap["data"]["total_units"], 0, "{snap}");
    }
    let mut other = Ws::connect(&node);
    other.send(json!({"type": "auth", "token": bob}));
    other.subscribe("cart");

    common::add_to_cart(&http, &node, &ada, &p, 3);
    for tab in &mut tabs {
        let u = tab.expect(|m| m["type"] == "update" && m["topic"] == "cart");
        assert_eq!(u["data"]["total_units"], 3, "{u}");
        assert_eq!(u["data"]["total"]["amount"], 1500);
        assert_eq!(
            u["prev_seq"].as_u64().unwrap() + 1,
            u["seq"].as_u64().unwrap()
        );
    }
    common::add_to_cart(&http, &node, &bob, &p, 1);
    let u = other.expect(|m| m["type"] == "update");
    assert_eq!(
        u["data"]["total_units"], 1,
        "bob sees only his own cart: {u}"
    );
    std::thread::sleep(Duration::from_millis(300));
    while let Some(Message::Text(t)) = tabs[0].poll() {
        tabs[0].seen.push(serde_json::from_str(&t).unwrap());
    }
    assert!(
        !tabs[0].seen.iter().any(|m| m["type"] == "update"),
        "ada does not see bob's cart: {:?}",
        tabs[0].seen
    );
}

#[test]
fn admins_watch_sales_orders_and_low_stock_as_they_happen() {
    let (_dir, data) = temp();
    let node = common::start_with_admin(&data, &["--no-demo", "--low-stock-threshold", "2"]);
    let http = client();
    let admin = admin_token(&http, &node);
    let p = common::create_product(&http, &node, &admin, "sale-1", 1250, 4);
    let mut dash = Ws::connect(&node);
    dash.send(json!({"type": "auth", "token": admin}));
    let sales = dash.subscribe("admin:sales");
    assert!(sales["data"]["ticks"].is_array(), "{sales}");
    let stock = dash.subscribe("admin:stock");
    assert_eq!(stock["data"]["products"], json!([]), "{stock}");

    let shopper = common::register(&http, &node, "buyer@shop.test");
    let mut mine = Ws::connect(&node);
    mine.send(json!({"type": "auth", "token": shopper}));
    assert_eq!(mine.subscribe("orders")["data"]["orders"], json!([]));

    common::add_to_cart(&http, &node, &shopper, &p, 3);
    let started = Instant::now();
    let r = checkout(&http, &node, &shopper, "tok_visa");
    assert_eq!(r.status(), 201);
    let order = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let sale = dash.expect(|m| m["event"] == "paid");
    assert_eq!(sale["data"]["order_id"], order.as_str());
    assert_eq!(sale["data"]["amount"]["amount"], 3750);
    assert_eq!(sale["data"]["lines"][0]["name"], "Product sale-1");
    let tick = dash.expect(|m| m["event"] == "tick" && m["data"]["orders"] == 1);
    assert_eq!(tick["data"]["revenue"]["amount"], 3750);
    assert_eq!(tick["data"]["top_products"][0]["product_id"], p.as_str());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let low = dash.expect(|m| m["topic"] == "admin:stock" && m["event"] == "low_stock");
    assert_eq!(low["data"]["available"], 1, "{low}");
    restock(&http, &node, &admin, &p, 10);
    dash.expect(|m| m["topic"] == "admin:stock" && m["event"] == "stock_ok");

    let placed = mine.expect(|m| m["type"] == "update" && m["topic"] == "orders");
    assert_eq!(placed["id"], order.as_str());
    let paid = mine.expect(|m| m["type"] == "update" && m["data"]["status"] == "paid");
    assert_eq!(paid["id"], order.as_str());
    // A new dashboard sees the sale in its snapshot.
    let mut late = Ws::connect(&node);
    late.send(json!({"type": "auth", "token": admin}));
    let snap = late.subscribe("admin:sales");
    assert_eq!(
        snap["data"]["recent"][0]["order_id"],
        order.as_str(),
        "{snap}"
    );
}

fn metric(http: &Client, node: &Node, name: &str) -> f64 {
    let text = http
        .get(node.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_slow_consumer_is_closed_and_nobody_else_is_held_up() {
    let (_dir, data) = temp();
    let node = common::start_with_admin(&data, &["--no-demo", "--ws-send-buffer", "16"]);
    let http = client();
    let admin = admin_token(&http, &node);
    let p = common::create_product(&http, &node, &admin, "slow-1", 100, 1);

    let mut slow = Ws::connect(&node);
    assert_eq!(slow.subscribe("catalog")["type"], "snapshot");
    let mut healthy = Ws::connect(&node);
    assert_eq!(healthy.subscribe("catalog")["type"], "snapshot");

    // Big updates fill the slow client's socket buffers, then its send buffer. The slow
    // client reads nothing meanwhile; the healthy one reads everything.
    let filler = "x".repeat(9_000);
    let mut made = 0u64;
    let mut received = Vec::new();
    while metric(&http, &node, "ecommesh_ws_slow_consumer_closes_total") < 1.0 {
        assert!(made < 3000, "the slow consumer was never closed");
        patch(
            &http,
            &node,
            &admin,
            &p,
            json!({"description": format!("{made} {filler}")}),
        );
        made += 1;
        while let Some(Message::Text(t)) = healthy.poll_now() {
            received.push(serde_json::from_str::<Value>(&t).unwrap());
        }
    }
    // The healthy client got every update, in order.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.len() < made as usize && Instant::now() < deadline {
        if let Some(Message::Text(t)) = healthy.poll() {
            received.push(serde_json::from_str::<Value>(&t).unwrap());
        }
    }
    assert_eq!(received.len() as u64, made);
    for (i, u) in received.iter().enumerate() {
        assert!(u["data"]["description"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{i} ")));
    }
    // The slow one finds a close frame with the reason after what was already sent.
    let (code, reason) = slow.close_frame();
    assert_eq!(code, u16::from(CloseCode::Policy));
    assert!(reason.contains("slow consumer"), "{reason}");
}

#[test]
fn an_idle_client_is_closed_after_the_timeout() {
    let (_dir, data) = temp();
    let node = common::start_with_admin(
        &data,
        &[
            "--no-demo",
            "--ws-heartbeat-secs",
            "1",
            "--ws-idle-timeout-secs",
            "2",
        ],
    );
    let mut ws = Ws::connect(&node);
    // A client that does not read cannot answer pings.
    std::thread::sleep(Duration::from_secs(4));
    let (code, reason) = ws.close_frame();
    assert_eq!(code, u16::from(CloseCode::Normal));
    assert!(reason.contains("idle timeout"), "{reason}");
    // One that answers pings (by reading) stays open past the timeout.
    let mut live = Ws::connect(&node);
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        live.poll();
    }
    live.send(json!({"type": "ping"}));
    live.expect(|m| m["type"] == "pong");
}
