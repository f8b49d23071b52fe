//! Request-level behaviour of the cart routes through the real server: bad input always
//! gets a 4xx problem document that says what was wrong, never a 5xx.

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
fn cart_lines_accumulate_and_can_be_removed() {
    let (_tmp, data) = temp();
    let node = Node::start(&data, &[]);
    let http = client();
    let add = |p: &str, q: u32| {
        http.post(node.url("/api/v1/carts/c1/items"))
            .json(&json!({"product_id": p, "quantity": q}))
            .send()
            .unwrap()
    };
    assert_eq!(add("mug", 2).status(), 200);
    let body: Value = add("mug", 3).json().unwrap();
    assert_eq!(body["items"], json!([{"product_id": "mug", "quantity": 5}]));
    assert_eq!(body["version"], 2);
    let body: Value = add("lid", 1).json().unwrap();
    assert_eq!(body["total_units"], 6);
    let r = http
        .delete(node.url("/api/v1/carts/c1/items/mug"))
        .send()
        .unwrap();
    let body: Value = r.json().unwrap();
    assert_eq!(body["items"], json!([{"product_id": "lid", "quantity": 1}]));
    let empty: Value = http
        .get(node.url("/api/v1/carts/never-used"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (
            empty["version"].as_u64(),
            empty["items"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
}

#[test]
fn bad_input_gets_a_precise_4xx() {
    let (_tmp, data) = temp();
    let node = Node::start(&data, &["--max-body-bytes", "1024"]);
    let http = client();
    let url = node.url("/api/v1/carts/c1/items");
    let post = |body: &str| {
        http.post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };

    assert_eq!(
        problem(post("{\"product_id\": \"p\""), 400)["code"],
        "malformed_json"
    );
    let b = problem(post(r#"{"product_id": "p", "quantity": -1}"#), 422);
    assert!(b["detail"].as_str().unwrap().contains("-1"), "{b}");
    assert_eq!(
        problem(post(r#"{"product_id": "p", "quantity": "two"}"#), 422)["code"],
        "validation_failed"
    );
    let b = problem(
        post(r#"{"product_id": "p", "quantity": 1, "price": 5}"#),
        422,
    );
    assert!(
        b["detail"].as_str().unwrap().contains("price"),
        "unknown field not named: {b}"
    );
    let b = problem(post(r#"{"product_id": "p", "quantity": 0}"#), 422);
    assert!(b["detail"].as_str().unwrap().contains("quantity"), "{b}");
    problem(post(r#"{"product_id": "p", "quantity": 100000}"#), 422);
    problem(
        post(r#"{"product_id": "p", "quantity": 99999999999999999999}"#),
        422,
    );
    let b = problem(post(r#"{"product_id": "has space", "quantity": 1}"#), 422);
    assert_eq!(b["errors"][0]["field"], "product_id");
    let big = format!(r#"{{"product_id": "{}", "quantity": 1}}"#, "x".repeat(4096));
    assert_eq!(problem(post(&big), 413)["code"], "payload_too_large");
    let r = http
        .post(&url)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .unwrap();
    assert_eq!(problem(r, 415)["code"], "unsupported_media_type");
    problem(
        http.get(node.url(&format!("/api/v1/carts/{}", "x".repeat(200))))
            .send()
            .unwrap(),
        422,
    );
    problem(
        http.delete(node.url("/api/v1/carts/c1/items/absent"))
            .send()
            .unwrap(),
        404,
    );
    problem(
        http.get(node.url("/api/v1/nothing-here")).send().unwrap(),
        404,
    );

    // None of that reached the journal.
    let cart: Value = http
        .get(node.url("/api/v1/carts/c1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(cart["version"], 0);
}
