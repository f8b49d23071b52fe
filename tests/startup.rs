//! Start-up and shutdown of the real binary: clear one-line errors that overwrite
//! nothing, graceful SIGTERM, and the operability endpoints.

mod common;

use common::{client, command, run_to_exit, temp, Node};

fn one_line_error(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0]
}

#[test]
fn port_in_use_is_a_clear_error() {
    let (_tmp, data) = temp();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let (status, err) = run_to_exit(command(&data, &["--listen", &listen]));
    assert!(!status.success());
    let line = one_line_error(&err);
    assert!(
        line.contains("already in use") && line.contains("--listen"),
        "{line}"
    );
    assert!(
        !data.exists(),
        "a failed start must not create the data directory"
    );
}

#[test]
fn shard_count_mismatch_is_refused_and_overwrites_nothing() {
    let (_tmp, data) = temp();
    let node = Node::start(&data, &["--shards", "8"]);
    let http = client();
    let token = common::register(&http, &node, "keep@shard.test");
    let product = common::first_in_stock(&http, &node);
    let r = http
        .post(node.url("/api/v1/cart/items"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"product_id": product, "quantity": 2}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(node.terminate().code(), Some(0));

    let (status, err) = run_to_exit(command(&data, &["--shards", "16"]));
    assert!(!status.success());
    let line = one_line_error(&err);
    assert!(
        line.contains("created with 8 shards") && line.contains("--shards 8"),
        "{line}"
    );

    let node = Node::start(&data, &["--shards", "8"]);
    let cart: serde_json::Value = common::get_json_as(&http, &node, "/api/v1/cart", &token);
    assert_eq!(cart["items"][0]["quantity"], 2);
}

#[test]
fn unusable_data_directory_is_a_clear_error() {
    let (tmp, _) = temp();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let (status, err) = run_to_exit(command(&file.join("data"), &[]));
    assert!(!status.success());
    let line = one_line_error(&err);
    assert!(
        line.contains("data directory") && line.contains("--data-dir"),
        "{line}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn a_data_directory_in_use_is_refused() {
    let (_tmp, data) = temp();
    let _first = Node::start(&data, &[]);
    let (status, err) = run_to_exit(command(&data, &[]));
    assert!(!status.success());
    let line = one_line_error(&err);
    assert!(line.contains("in use by another"), "{line}");
}

#[test]
fn invalid_configuration_names_the_key() {
    let (_tmp, data) = temp();
    let (status, err) = run_to_exit(command(&data, &["--shards", "0"]));
    assert!(!status.success());
    assert!(one_line_error(&err).contains("`shards`"), "{err}");

    let mut cmd = command(&data, &[]);
    cmd.env("ECOMMESH_SNAPSHOT_EVERY", "0");
    let (status, err) = run_to_exit(cmd);
    assert!(!status.success());
    assert!(one_line_error(&err).contains("`snapshot_every`"), "{err}");
}

#[test]
fn environment_and_config_file_are_honoured() {
    let (tmp, data) = temp();
    let cfg = tmp.path().join("node.toml");
    std::fs::write(&cfg, "shards = 4\nsnapshot_every = 7\n").unwrap();
    let node = Node::start(&data, &["--config", cfg.to_str().unwrap()]);
    let ready: serde_json::Value = client()
        .get(node.url("/readyz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ready["shards"], 4);
    drop(node);

    // The directory now has 4 shards; an environment variable asking for 5 is refused.
    let mut cmd = command(&data, &[]);
    cmd.env("ECOMMESH_SHARDS", "5");
    let (status, err) = run_to_exit(cmd);
    assert!(
        !status.success() && err.contains("created with 4 shards"),
        "{err}"
    );
}

#[test]
fn sigterm_drains_flushes_and_exits_zero() {
    let (_tmp, data) = temp();
    let node = Node::start(&data, &[]);
    let http = client();
    let token = common::register(&http, &node, "term@shard.test");
    let product = common::first_in_stock(&http, &node);
    for _ in 0..3 {
        let r = http
            .post(node.url("/api/v1/cart/items"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"product_id": product, "quantity": 1}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(node.terminate().code(), Some(0));
    let node = Node::start(&data, &[]);
    let cart: serde_json::Value = common::get_json_as(&http, &node, "/api/v1/cart", &token);
    assert_eq!(
        (cart["total_units"].as_u64(), cart["version"].as_u64()),
        (Some(3), Some(3))
    );
}

#[test]
fn health_readiness_and_metrics() {
    let (_tmp, data) = temp();
    let node = Node::start(&data, &[]);
    let http = client();
    assert_eq!(http.get(node.url("/healthz")).send().unwrap().status(), 200);
    let ready = http.get(node.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    let token = common::register(&http, &node, "m@shard.test");
    let product = common::first_in_stock(&http, &node);
    http.post(node.url("/api/v1/cart/items"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"product_id": product, "quantity": 1}))
        .send()
        .unwrap();
    let metrics = http
        .get(node.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "ecommesh_http_requests_total",
        "ecommesh_http_request_duration_seconds_bucket",
        "ecommesh_journal_appends_total",
        "ecommesh_journal_events_total",
        "ecommesh_group_commit_batch_size_bucket",
        "ecommesh_group_commit_flush_seconds_bucket",
        "ecommesh_entities_live",
        "ecommesh_entity_activations_total",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }
    assert!(
        metrics.contains(r#"route="/api/v1/cart/items",status="200""#),
        "{metrics}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (_tmp, data) = temp();
    let node = Node::start(&data, &["--log-format", "json", "--log-level", "info"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ready = loop {
        let line = node
            .stderr
            .lock()
            .unwrap()
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a log line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["fields"]["message"] == "ecommesh ready" {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no ready line");
    };
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["fields"]["shards"], 64);
}

#[test]
fn sigint_stops_cleanly_too() {
    let (_tmp, data) = temp();
    let mut node = Node::start(&data, &[]);
    let pid = node.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = common::wait_timeout(&mut node.child, std::time::Duration::from_secs(30))
        .expect("exit after SIGINT");
    assert_eq!(status.code(), Some(0));
}
