//! Request-level behaviour of the caller's cart through the real server: authenticated,
//! priced, stock-checked, and bad input always gets a 4xx problem document that says what
//! was wrong, never a 5xx.

mod common;

use common::{client, temp, Node};
use serde_json::{json, Value};

fn problem(r: reqwest::blocking::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().unwrap();
    assert_eq!(body["status"], status);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

#[test]
fn the_cart_is_the_callers_own_priced_and_stock_checked() {
    let (_tmp, data) = temp();
    let node = common::start_with_admin(&data, &["--no-demo"]);
    let http = client();
    let admin = common::login(&http, &node, common::ADMIN_EMAIL, common::ADMIN_PASSWORD);
    let mug = common::create_product(&http, &node, &admin, "MUG", 1250, 5);
    let lid = common::create_product(&http, &node, &admin, "LID", 300, 100);
    let ada = common::register(&http, &node, "ada@cart.test");
    let bob = common::register(&http, &node, "bob@cart.test");
    let add = |token: &str, p: &str, q: u32| {
        http.post(node.url("/api/v1/cart/items"))
            .bearer_auth(token)
            .json(&json!({"product_id": p, "quantity": q}))
            .send()
            .unwrap()
    };
    assert_eq!(add(&ada, &mug, 2).status(), 200);
    let body: Value = add(&ada, &mug, 1).json().unwrap();
    assert_eq!(body["items"][0]["quantity"], 3);
    assert_eq!(
        body["items"][0]["unit_price"],
        json!({"amount": 1250, "currency": "USD"})
    );
    assert_eq!(body["items"][0]["line_total"]["amount"], 3750);
    let body: Value = add(&ada, &lid, 4).json().unwrap();
    assert_eq!(
        (
            body["total"]["amount"].as_i64(),
            body["total_units"].as_u64(),
            body["version"].as_u64()
        ),
        (Some(4950), Some(7), Some(3))
    );

    // More than is available is refused, with the figure.
    let p = problem(add(&ada, &mug, 3), 409);
    assert_eq!(
        (
            p["code"].as_str(),
            p["available"].as_u64(),
            p["requested"].as_u64()
        ),
        (Some("out_of_stock"), Some(5), Some(6))
    );
    let r = http
        .patch(node.url(&format!("/api/v1/cart/items/{mug}")))
        .bearer_auth(&ada)
        .json(&json!({"quantity": 5}))
        .send()
        .unwrap();
    let body: Value = r.json().unwrap();
    let line = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["product_id"] == mug.as_str())
        .unwrap()
        .clone();
    assert_eq!(line["quantity"], 5);

    // Bob's cart is his own: he sees nothing of Ada's, and cannot name hers.
    let bobs: Value = common::get_json_as(&http, &node, "/api/v1/cart", &bob);
    assert_eq!(bobs["items"], json!([]));
    assert_eq!(
        http.get(node.url("/api/v1/cart")).send().unwrap().status(),
        401
    );

    let r = http
        .delete(node.url(&format!("/api/v1/cart/items/{lid}")))
        .bearer_auth(&ada)
        .send()
        .unwrap();
    assert_eq!(
        r.json::<Value>().unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = http
        .delete(node.url("/api/v1/cart"))
        .bearer_auth(&ada)
        .send()
        .unwrap();
    assert_eq!(r.json::<Value>().unwrap()["items"], json!([]));
    problem(
        http.delete(node.url(&format!("/api/v1/cart/items/{lid}")))
            .bearer_auth(&ada)
            .send()
            .unwrap(),
        404,
    );
}

#[test]
fn bad_input_gets_a_precise_4xx() {
    let (_tmp, data) = temp();
    let node = Node::start(&data, &["--max-body-bytes", "1024"]);
    let http = client();
    let token = common::register(&http, &node, "bad@cart.test");
    let product = common::first_in_stock(&http, &node);
    let url = node.url("/api/v1/cart/items");
    let post = |body: &str| {
        http.post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };

    assert_eq!(
        problem(post("{\"product_id\": \"p\""), 400)["code"],
        "malformed_json"
    );
    let b = problem(
        post(&format!(r#"{{"product_id": "{product}", "quantity": -1}}"#)),
        422,
    );
    assert_eq!(b["errors"][0]["field"], "quantity", "{b}");
    assert_eq!(
        problem(post(r#"{"product_id": "p", "quantity": "two"}"#), 422)["errors"][0]["field"],
        "quantity"
    );
    let b = problem(
        post(r#"{"product_id": "p", "quantity": 1, "price": 5}"#),
        422,
    );
    assert!(
        b["detail"].as_str().unwrap().contains("price"),
        "unknown field not named: {b}"
    );
    let b = problem(
        post(&format!(r#"{{"product_id": "{product}", "quantity": 0}}"#)),
        422,
    );
    assert!(b["detail"].as_str().unwrap().contains("quantity"), "{b}");
    // More than a line may hold is invalid whatever the stock.
    let b = problem(
        post(&format!(
            r#"{{"product_id": "{product}", "quantity": 100000}}"#
        )),
        422,
    );
    assert!(
        b["detail"].as_str().unwrap().contains("between 1 and 999"),
        "{b}"
    );
    problem(
        post(r#"{"product_id": "p", "quantity": 99999999999999999999}"#),
        422,
    );
    let b = problem(post(r#"{"product_id": "has space", "quantity": 1}"#), 422);
    assert_eq!(b["errors"][0]["field"], "product_id");
    problem(
        post(r#"{"product_id": "no-such-product", "quantity": 1}"#),
        404,
    );
    let big = format!(r#"{{"product_id": "{}", "quantity": 1}}"#, "x".repeat(4096));
    assert_eq!(problem(post(&big), 413)["code"], "payload_too_large");
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .unwrap();
    assert_eq!(problem(r, 415)["code"], "unsupported_media_type");
    problem(
        http.get(node.url("/api/v1/nothing-here")).send().unwrap(),
        404,
    );

    // None of that reached the journal.
    let cart: Value = common::get_json_as(&http, &node, "/api/v1/cart", &token);
    assert_eq!(cart["version"], 0);
    assert_eq!(http.get(node.url("/healthz")).send().unwrap().status(), 200);
}

#[test]
fn every_read_after_an_acknowledged_write_shows_it() {
    // Product reads are served from memory, updated before each write is acknowledged:
    // a reader that heard of a write must never see the product without it.
    let (_dir, data) = temp();
    let node = common::start_with_admin(&data, &["--no-demo"]);
    let http = client();
    let admin = common::login(&http, &node, common::ADMIN_EMAIL, common::ADMIN_PASSWORD);
    let p = common::create_product(&http, &node, &admin, "ryw-1", 100, 0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let http = client();
                for _ in 0..50 {
                    let acked: Value = http
                        .post(node.url(&format!("/api/v1/products/{p}/restock")))
                        .bearer_auth(&admin)
                        .json(&json!({"quantity": 1}))
                        .send()
                        .unwrap()
                        .json()
                        .unwrap();
                    let seen: Value =
                        common::get_json(&http, &node, &format!("/api/v1/products/{p}"));
                    let (a, b) = (&acked["stock"]["available"], &seen["stock"]["available"]);
                    assert!(b.as_u64() >= a.as_u64(), "acknowledged {a}, then read {b}");
                }
            });
        }
    });
    assert_eq!(
        common::admin_stock(&http, &node, &admin, &p)["received"],
        200
    );
}
