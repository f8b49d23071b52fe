//! The API document describes the API: schemathesis (PyPI) generates requests from
//! `/api/v1/openapi.json` against the real server and checks that none gets a 5xx and
//! every response matches its documented status, content type and schema.

mod common;

use std::process::Command;

use common::{client, temp};

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let version = Command::new("schemathesis").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "schemathesis is not installed: `pip install schemathesis` (.ci/run installs it)"
    );
    let (tmp, data) = temp();
    let node = common::start_with_admin(&data, &[]);
    let http = client();
    let token = common::register(&http, &node, "fuzz@openapi.test");
    let doc: serde_json::Value = common::get_json(&http, &node, "/api/v1/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    let out = Command::new("schemathesis")
        .args(["run", &node.url("/api/v1/openapi.json")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", "25", "--seed", "7", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(tmp.path()) // its example cache stays out of the source tree
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    // The server is still healthy after the barrage.
    assert_eq!(http.get(node.url("/healthz")).send().unwrap().status(), 200);
}
