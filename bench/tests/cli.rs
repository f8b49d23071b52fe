//! The `ecommesh-bench` command line: its suites, and a clear error without a node. (The
//! suites themselves run end to end in the node's `tests/bench_smoke.rs`, through
//! `ecommesh bench`, which runs this binary.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ecommesh-bench");

#[test]
fn help_lists_every_suite() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for suite in ["journal", "ws", "load", "cluster"] {
        assert!(help.contains(suite), "{suite} missing from:\n{help}");
    }
}

#[test]
fn a_missing_node_binary_is_named_not_a_panic() {
    let out = Command::new(BIN)
        .args(["load", "--seconds", "0.1"])
        .env("ECOMMESH_NODE_BIN", "/nonexistent/ecommesh")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot start a node"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
