//! The benchmark command runs end to end and reports consistent figures. This checks the
//! report, never the speed: speed is measured by running the benchmark, not by tests.

mod common;

use std::path::Path;
use std::process::Command;

/// Runs `ecommesh bench ARGS` to success; its output, and the JSON file at `json`.
fn bench(args: &[&str], json: &Path) -> (String, serde_json::Value) {
    let out = Command::new(common::BIN)
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    (stdout, report)
}

#[test]
fn bench_journal_produces_a_consistent_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let store = dir.path().join("b");
    let (stdout, r) = bench(
        &[
            "journal",
            "--seconds",
            "0.2",
            "--entities",
            "2000",
            "--writers",
            "1,8",
            "--dir",
            store.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
        &json,
    );
    assert!(
        stdout.contains("machine:") && stdout.contains("raw fsync"),
        "{stdout}"
    );
    assert!(r["fsync_per_sec"].as_f64().unwrap() > 0.0);
    let rates = r["durable_writes"].as_array().unwrap();
    assert_eq!(
        rates
            .iter()
            .map(|w| w["writers"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 8]
    );
    for w in rates {
        assert!(w["ops"].as_u64().unwrap() > 0, "{w}");
        assert!(
            w["p50_us"].as_u64().unwrap() <= w["p99_us"].as_u64().unwrap(),
            "{w}"
        );
        assert!(
            w["p99_us"].as_u64().unwrap() <= w["max_us"].as_u64().unwrap(),
            "{w}"
        );
    }
    assert_eq!(r["idle_entities"], 2000);
    assert!(
        r["activation_1000_events_with_snapshot_us"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(r["state_bytes_per_entity"].as_u64().unwrap() > 0);
}

#[test]
fn bench_ws_delivers_every_update_to_every_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ws.json");
    let (stdout, r) = bench(
        &[
            "ws",
            "--subscribers",
            "1,50",
            "--changes",
            "3",
            "--json",
            json.to_str().unwrap(),
        ],
        &json,
    );
    assert!(stdout.contains("machine:"), "{stdout}");
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["subscribers"], 50);
    assert_eq!(runs[1]["delivered"], 150, "{r}");
    assert_eq!(
        runs[0]["delivered"], 15,
        "the baseline is measured over 5x the changes"
    );
    assert_eq!(runs[1]["lost"], 0);
    assert!(runs[1]["p99_ms"].as_f64().unwrap() >= runs[1]["p50_ms"].as_f64().unwrap());
}

#[test]
fn bench_load_runs_every_scenario_and_checks_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let (_, r) = bench(
        &[
            "load",
            "--seconds",
            "0.5",
            "--connections",
            "4",
            "--checkout-carts",
            "40",
            "--report",
            report.to_str().unwrap(),
        ],
        &report.join("load.json"),
    );
    let phases = r["phases"].as_array().unwrap();
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ping",
            "product_get",
            "catalog_search",
            "add_to_cart",
            "checkout",
            "mix"
        ]
    );
    for p in phases {
        assert!(p["requests"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p["errors"], serde_json::json!({}), "no errors: {p}");
        assert!(p["p50_ms"].as_f64().unwrap() <= p["p99_ms"].as_f64().unwrap());
        assert!(p["p99_ms"].as_f64().unwrap() <= p["max_ms"].as_f64().unwrap());
    }
    assert_eq!(phases[0]["vs_ping"], 1.0);
    let checkout = &phases[4];
    assert!(
        checkout["requests"].as_u64().unwrap() <= 40,
        "at most one per prepared cart"
    );
    let checks = r["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    assert!(checks.iter().all(|c| c["passed"] == true), "{checks:?}");
    let md = std::fs::read_to_string(report.join("load.md")).unwrap();
    assert!(md.contains("| checkout |") && md.contains("x ping"), "{md}");
    let svg = std::fs::read_to_string(report.join("load.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("requests per second"));
}

#[test]
fn bench_cluster_measures_both_replication_factors_and_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("cluster.json");
    let (stdout, r) = bench(
        &[
            "cluster",
            "--seconds",
            "0.5",
            "--connections",
            "4",
            "--kills",
            "1",
            "--json",
            json.to_str().unwrap(),
        ],
        &json,
    );
    let rfs: Vec<u64> = r["replication"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["replication_factor"].as_u64().unwrap())
        .collect();
    assert_eq!(rfs, [1, 3]);
    for x in r["replication"].as_array().unwrap() {
        assert!(x["add_to_cart_per_sec"].as_f64().unwrap() > 0.0, "{x}");
        assert_eq!(x["errors"], 0, "{x}");
        assert!(
            x["add_to_cart_p50_ms"].as_f64().unwrap() <= x["add_to_cart_p99_ms"].as_f64().unwrap()
        );
    }
    let f = &r["failover"];
    assert_eq!(f["kills"], 1);
    let took = f["seconds"][0].as_f64().unwrap();
    assert!(took > 0.0 && took < 30.0, "{f}");
    assert!(stdout.contains("failover over 1 kills"), "{stdout}");
}
