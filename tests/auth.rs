//! Accounts, tokens and sessions through the real binary.

mod common;

use common::{client, temp, Node};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::blocking::Client;
use serde_json::{json, Value};

const SECRET: &str = "test-secret-test-secret-test-secret!";

fn start(data: &std::path::Path, extra: &[&str]) -> Node {
    let mut args = vec!["--jwt-secret", SECRET, "--login-max-failures", "3"];
    args.extend_from_slice(extra);
    Node::start(data, &args)
}

fn post(http: &Client, node: &Node, path: &str, body: Value) -> reqwest::blocking::Response {
    http.post(node.url(path)).json(&body).send().unwrap()
}

/// Trades `token` at /auth/refresh.
fn refresh(
    http: &Client,
    node: &Node,
    token: impl serde::Serialize,
) -> reqwest::blocking::Response {
    post(
        http,
        node,
        "/api/v1/auth/refresh",
        json!({ "refresh_token": token }),
    )
}

fn register(http: &Client, node: &Node, email: &str) -> Value {
    let r = post(
        http,
        node,
        "/api/v1/auth/register",
        json!({"email": email, "password": "s3cret-pass", "name": "Ada"}),
    );
    assert_eq!(r.status(), 201);
    r.json().unwrap()
}

fn me(http: &Client, node: &Node, token: &str) -> reqwest::blocking::Response {
    http.get(node.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .unwrap()
}

#[test]
fn register_then_me_and_emails_are_unique() {
    let (_tmp, data) = temp();
    let node = start(&data, &[]);
    let http = client();
    let s = register(&http, &node, "ada@example.com");
    assert_eq!(s["user"]["email"], "ada@example.com");
    assert_eq!(s["user"]["role"], "customer");
    assert_eq!(s["token_type"], "Bearer");
    let body: Value = me(&http, &node, s["access_token"].as_str().unwrap())
        .json()
        .unwrap();
    assert_eq!(body["id"], s["user"]["id"]);

    let again = post(
        &http,
        &node,
        "/api/v1/auth/register",
        json!({"email": "ADA@example.com", "password": "another-pass", "name": "Eve"}),
    );
    assert_eq!(again.status(), 409);
    let cases = [
        (
            json!({"email": "x@y.io", "password": "short", "name": "A"}),
            "password",
        ),
        (
            json!({"email": "not-an-email", "password": "long enough", "name": "A"}),
            "email",
        ),
        (
            json!({"email": "x@y.io", "password": "long enough"}),
            "name",
        ),
        (
            json!({"email": "x@y.io", "password": "long enough", "name": "A", "role": "admin"}),
            "role",
        ),
    ];
    for (body, word) in cases {
        let r = post(&http, &node, "/api/v1/auth/register", body);
        assert_eq!(r.status(), 422);
        let p: Value = r.json().unwrap();
        assert!(p["detail"].as_str().unwrap().contains(word), "{p}");
    }
    assert_eq!(me(&http, &node, "").status(), 401);
    assert_eq!(
        http.get(node.url("/api/v1/me")).send().unwrap().status(),
        401
    );
}

#[test]
fn wrong_passwords_are_throttled_per_account() {
    let (_tmp, data) = temp();
    let node = start(&data, &[]);
    let http = client();
    register(&http, &node, "bob@example.com");
    let login = |pw: &str| {
        post(
            &http,
            &node,
            "/api/v1/auth/login",
            json!({"email": "bob@example.com", "password": pw}),
        )
    };
    let unknown = post(
        &http,
        &node,
        "/api/v1/auth/login",
        json!({"email": "nobody@example.com", "password": "whatever1"}),
    );
    assert_eq!(unknown.status(), 401);
    let unknown: Value = unknown.json().unwrap();
    for _ in 0..3 {
        let r = login("wrong-password");
        assert_eq!(r.status(), 401);
        let body: Value = r.json().unwrap();
        assert_eq!(
            body["detail"], unknown["detail"],
            "unknown email and wrong password look the same"
        );
    }
    let locked = login("s3cret-pass");
    assert_eq!(
        locked.status(),
        429,
        "even the right password waits out the lockout"
    );
    assert!(locked.headers().get("retry-after").is_some());
    let other = post(
        &http,
        &node,
        "/api/v1/auth/login",
        json!({"email": "nobody@example.com", "password": "whatever1"}),
    );
    assert_eq!(other.status(), 401, "other accounts are not locked");
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_session() {
    let (_tmp, data) = temp();
    let node = start(&data, &[]);
    let http = client();
    register(&http, &node, "cy@example.com");
    let s: Value = post(
        &http,
        &node,
        "/api/v1/auth/login",
        json!({"email": "cy@example.com", "password": "s3cret-pass"}),
    )
    .json()
    .unwrap();
    let first = s["refresh_token"].as_str().unwrap().to_string();
    let r = refresh(&http, &node, &first);
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().unwrap();
    let second = rotated["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        me(&http, &node, rotated["access_token"].as_str().unwrap()).status(),
        200
    );
    // An access token is not a refresh token.
    assert_eq!(
        refresh(&http, &node, &rotated["access_token"]).status(),
        401
    );

    // Replaying the rotated-away token (a thief) kills the whole family, the thief's and ours.
    assert_eq!(refresh(&http, &node, &first).status(), 401);
    assert_eq!(refresh(&http, &node, &second).status(), 401);

    // Logout ends a session: its refresh token stops working.
    let s: Value = post(
        &http,
        &node,
        "/api/v1/auth/login",
        json!({"email": "cy@example.com", "password": "s3cret-pass"}),
    )
    .json()
    .unwrap();
    let r = http
        .post(node.url("/api/v1/auth/logout"))
        .bearer_auth(s["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(refresh(&http, &node, &s["refresh_token"]).status(), 401);
}

#[test]
fn forged_tampered_expired_and_none_tokens_are_refused() {
    let (_tmp, data) = temp();
    let node = start(&data, &[]);
    let http = client();
    let s = register(&http, &node, "dee@example.com");
    let good = s["access_token"].as_str().unwrap();
    assert_eq!(me(&http, &node, good).status(), 200);
    let id = s["user"]["id"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |exp: u64| json!({"sub": id, "role": "admin", "typ": "access", "fam": "f", "jti": "j", "iat": now, "exp": exp});
    let key = EncodingKey::from_secret(SECRET.as_bytes());

    let expired = encode(&Header::new(Algorithm::HS256), &claims(now - 5), &key).unwrap();
    let hs512 = encode(&Header::new(Algorithm::HS512), &claims(now + 60), &key).unwrap();
    let foreign = encode(
        &Header::new(Algorithm::HS256),
        &claims(now + 60),
        &EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .unwrap();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(now + 60))
    );
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[1] = b64(&claims(now + 60));
    let tampered = parts.join(".");
    for (what, token) in [
        ("expired", expired),
        ("HS512", hs512),
        ("foreign key", foreign),
        ("alg none", none),
        ("tampered", tampered),
    ] {
        let r = me(&http, &node, &token);
        assert_eq!(r.status(), 401, "{what} token accepted");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
}

#[test]
fn admins_come_from_the_environment_or_the_cli_and_tokens_survive_restarts() {
    let (_tmp, data) = temp();
    let mut cmd = common::command(&data, &[]);
    cmd.env("ECOMMESH_ADMIN_EMAIL", "root@example.com")
        .env("ECOMMESH_ADMIN_PASSWORD", "admin-pass-1");
    let node = Node::spawn(cmd);
    let http = client();
    let login = |node: &Node, email: &str, pw: &str| -> Value {
        let r = post(
            &http,
            node,
            "/api/v1/auth/login",
            json!({"email": email, "password": pw}),
        );
        assert_eq!(r.status(), 200, "{email}");
        r.json().unwrap()
    };
    let s = login(&node, "root@example.com", "admin-pass-1");
    assert_eq!(s["user"]["role"], "admin");
    let token = s["access_token"].as_str().unwrap().to_string();
    assert_eq!(node.terminate().code(), Some(0));

    // The node's generated signing secret is kept: the token still works after a restart.
    let node = Node::start(&data, &[]);
    assert_eq!(me(&http, &node, &token).status(), 200);
    assert_eq!(node.terminate().code(), Some(0));

    // With the node stopped, the CLI creates another admin; the password comes on stdin.
    use std::io::Write;
    let mut child = std::process::Command::new(common::BIN)
        .args(["create-admin", "--email", "ops@example.com", "--data-dir"])
        .arg(&data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ops-pass-123\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("created"));
    let node = Node::start(&data, &[]);
    assert_eq!(
        login(&node, "ops@example.com", "ops-pass-123")["user"]["role"],
        "admin"
    );
}
