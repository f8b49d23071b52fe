//! The catalog through the real binary: demo seed, admin writes, the listing projection
//! following them, search and bad queries.

mod common;

use std::time::{Duration, Instant};

use common::{client, temp, Node};
use reqwest::blocking::Client;
use serde_json::{json, Value};

fn admin_node(data: &std::path::Path, extra: &[&str]) -> (Node, String) {
    let node = common::start_with_admin(data, extra);
    let token = common::login(
        &client(),
        &node,
        common::ADMIN_EMAIL,
        common::ADMIN_PASSWORD,
    );
    (node, token)
}

fn list(http: &Client, node: &Node, query: &str) -> Value {
    let r = http
        .get(node.url(&format!("/api/v1/products?{query}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{query}");
    r.json().unwrap()
}

/// Polls the listing until `check` holds; the projection follows within a second.
fn eventually(http: &Client, node: &Node, query: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body = list(http, node, query);
        if check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "listing never showed the change: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_demo_catalog_is_listed_searched_and_faceted() {
    let (_tmp, data) = temp();
    let node = Node::start(&data, &[]);
    let http = client();
    let all = list(&http, &node, "per_page=100");
    assert_eq!(all["total"], 300);
    assert_eq!(all["items"].as_array().unwrap().len(), 100);
    assert_eq!(all["facets"]["category"]["shoes"], 60);
    let brands = all["facets"]["brand"].as_object().unwrap();
    assert_eq!(brands.len(), 10);

    let found = list(&http, &node, "q=camping+tent&sort=price_asc");
    assert!(found["total"].as_u64().unwrap() >= 10);
    let prices: Vec<i64> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price"]["amount"].as_i64().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    for p in found["items"].as_array().unwrap() {
        assert!(p["name"].as_str().unwrap().contains("Camping Tent"), "{p}");
    }
    let filtered = list(
        &http,
        &node,
        "category=kitchen&in_stock=true&min_price=1000&max_price=5000",
    );
    for p in filtered["items"].as_array().unwrap() {
        assert_eq!(p["category"], "kitchen");
        assert!(p["stock"]["available"].as_u64().unwrap() > 0);
        let amount = p["price"]["amount"].as_i64().unwrap();
        assert!((1000..=5000).contains(&amount), "{p}");
    }
    // Pages do not overlap and cover everything.
    let mut seen = std::collections::BTreeSet::new();
    for page in 1..=4 {
        for p in list(&http, &node, &format!("sort=name&per_page=100&page={page}"))["items"]
            .as_array()
            .unwrap()
        {
            assert!(
                seen.insert(p["id"].as_str().unwrap().to_string()),
                "duplicate across pages"
            );
        }
    }
    assert_eq!(seen.len(), 300);

    // The listing is rebuilt from the journal after a restart, without seeding again.
    assert_eq!(node.terminate().code(), Some(0));
    let node = Node::start(&data, &[]);
    assert_eq!(list(&http, &node, "per_page=1")["total"], 300);

    let (_tmp2, empty) = temp();
    let bare = Node::start(&empty, &["--no-demo"]);
    assert_eq!(list(&http, &bare, "")["total"], 0);
}

#[test]
fn admin_writes_reach_the_listing_and_others_may_not_write() {
    let (_tmp, data) = temp();
    let (node, admin) = admin_node(&data, &["--no-demo"]);
    let http = client();
    let product = json!({
        "sku": "LAMP-1", "name": "Desk lamp", "description": "Warm light", "category": "home",
        "brand": "Lux", "price": {"amount": 4999, "currency": "USD"}, "stock": 3
    });
    assert_eq!(
        http.post(node.url("/api/v1/products"))
            .json(&product)
            .send()
            .unwrap()
            .status(),
        401
    );
    let s: Value = http
        .post(node.url("/api/v1/auth/register"))
        .json(&json!({"email": "c@shop.test", "password": "customer-1", "name": "C"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let customer = s["access_token"].as_str().unwrap();
    let r = http
        .post(node.url("/api/v1/products"))
        .bearer_auth(customer)
        .json(&product)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    let r = http
        .post(node.url("/api/v1/products"))
        .bearer_auth(&admin)
        .json(&product)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let created: Value = r.json().unwrap();
    assert_eq!(created["stock"]["available"], 3);
    assert!(
        created["created_at"].as_str().unwrap().ends_with('Z'),
        "{created}"
    );
    let mut dup = product.clone();
    dup["sku"] = json!("lamp-1");
    assert_eq!(
        http.post(node.url("/api/v1/products"))
            .bearer_auth(&admin)
            .json(&dup)
            .send()
            .unwrap()
            .status(),
        409
    );

    eventually(&http, &node, "q=lamp", |b| b["total"] == 1);
    let r = http
        .post(node.url(&format!("{location}/restock")))
        .bearer_auth(&admin)
        .json(&json!({"quantity": 7}))
        .send()
        .unwrap();
    assert_eq!(r.json::<Value>().unwrap()["stock"]["available"], 10);
    let patch = json!({"price": {"amount": 3999, "currency": "USD"}, "name": "Desk lamp XL"});
    assert_eq!(
        http.patch(node.url(&location))
            .bearer_auth(&admin)
            .json(&patch)
            .send()
            .unwrap()
            .status(),
        200
    );
    eventually(&http, &node, "q=lamp", |b| {
        b["items"][0]["price"]["amount"] == 3999 && b["items"][0]["stock"]["available"] == 10
    });
    assert_eq!(
        http.patch(node.url(&location))
            .bearer_auth(customer)
            .json(&patch)
            .send()
            .unwrap()
            .status(),
        403
    );

    assert_eq!(
        http.delete(node.url(&location))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .status(),
        200
    );
    eventually(&http, &node, "q=lamp", |b| b["total"] == 0);
    let archived: Value = common::get_json(&http, &node, &location);
    assert_eq!(archived["archived"], true, "orders keep referring to it");
    assert_eq!(
        http.get(node.url("/api/v1/products/p_nope"))
            .send()
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn bad_product_input_and_queries_get_a_4xx() {
    let (_tmp, data) = temp();
    let (node, admin) = admin_node(&data, &["--no-demo"]);
    let http = client();
    let base = json!({
        "sku": "X-1", "name": "X", "category": "c", "brand": "b",
        "price": {"amount": 100, "currency": "USD"}, "stock": 1
    });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, word) in [
        (
            with("price", json!({"amount": -1, "currency": "USD"})),
            "price.amount",
        ),
        (
            with("price", json!({"amount": 100, "currency": "EUR"})),
            "price.currency",
        ),
        (
            with("price", json!({"amount": 1.5, "currency": "USD"})),
            "amount",
        ),
        (with("stock", json!(-3)), "stock"),
        (with("stock", json!(5_000_000_000u64)), "stock"),
        (with("name", json!("")), "name"),
        (with("colour", json!("red")), "colour"),
    ] {
        let r = http
            .post(node.url("/api/v1/products"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 422, "{body}");
        let p: Value = r.json().unwrap();
        assert!(p.to_string().contains(word), "{word} not named in {p}");
    }
    for query in [
        "per_page=0",
        "per_page=101",
        "page=0",
        "page=abc",
        "min_price=10&max_price=5",
        "min_price=-1",
        "sort=cheapest",
        "colour=red",
        "in_stock=maybe",
    ] {
        let r = http
            .get(node.url(&format!("/api/v1/products?{query}")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
    }
    assert_eq!(http.get(node.url("/healthz")).send().unwrap().status(), 200);
}
