//! Logs (tracing, text or JSON on stderr) and metrics (Prometheus text via the `metrics`
//! facade).

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. Call once, before anything logs.
pub fn init_logs(format: &str, level: &str) {
    // openraft narrates every vote at info and every unreachable peer (per group, twice
    // a second) at warn and error: silent unless the filter names it. Our own logs say
    // when links go down and leadership moves.
    let level = if level.contains("openraft") {
        level.to_owned()
    } else {
        format!("{level},openraft=off")
    };
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // A second install (tests running two nodes in one process) keeps the first.
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Latency buckets in seconds, from 50 us to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Installs the global Prometheus recorder and returns the handle that renders it.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("ecommesh_group_commit_batch_size".into()),
            BATCH_BUCKETS,
        )?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "ecommesh_http_requests_total",
        "HTTP requests by method, route and status"
    );
    describe_histogram!(
        "ecommesh_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route"
    );
    describe_counter!(
        "ecommesh_journal_appends_total",
        "Journal appends (one per command that produced events)"
    );
    describe_counter!(
        "ecommesh_journal_events_total",
        "Events written to the journal"
    );
    describe_histogram!(
        "ecommesh_group_commit_batch_size",
        "Durability requests served by one flush"
    );
    describe_histogram!(
        "ecommesh_group_commit_flush_seconds",
        Unit::Seconds,
        "Time of one journal flush (fsync)"
    );
    describe_counter!("ecommesh_group_commit_flushes_total", "Journal flushes");
    describe_gauge!(
        "ecommesh_entities_live",
        "Entities hosted in memory, by kind"
    );
    describe_counter!(
        "ecommesh_entity_activations_total",
        "Entities activated from snapshot + journal"
    );
    describe_histogram!(
        "ecommesh_entity_activation_seconds",
        Unit::Seconds,
        "Time to activate an entity"
    );
    describe_counter!(
        "ecommesh_entity_passivations_total",
        "Entities passivated after their idle timeout"
    );
    describe_counter!(
        "ecommesh_entity_restarts_total",
        "Entities restarted after a crash"
    );
    describe_counter!(
        "ecommesh_entity_quarantines_total",
        "Entities quarantined after repeated crashes"
    );
    describe_counter!(
        "ecommesh_entity_conflicts_retried_total",
        "Commands without a precondition decided again because their append met a newer journal"
    );
    describe_counter!(
        "ecommesh_shard_overloads_total",
        "Commands refused because a shard's mailbox was full"
    );
}
