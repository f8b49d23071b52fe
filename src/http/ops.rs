//! Operability endpoints: liveness, readiness and Prometheus metrics.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::node::Node;

/// The process is alive and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The journal is open, recovery is done and the node is not shutting down.
pub async fn readyz(node: web::Data<Node>) -> HttpResponse {
    if node.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(json!({"status": "ready", "shards": node.shards}))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({"status": "not_ready"}))
    }
}

pub async fn metrics(node: web::Data<Node>) -> HttpResponse {
    let body = node
        .metrics
        .as_ref()
        .map(|m| m.render())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
