//! Operability endpoints: liveness, readiness and Prometheus metrics.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::AppState;
use crate::http::errors::ApiError;

/// The process is alive and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process serves HTTP"), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The journal is open, recovery is done and the node is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready to serve"), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn readyz(node: web::Data<AppState>) -> HttpResponse {
    if node.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(json!({"status": "ready", "shards": node.shards}))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({"status": "not_ready"}))
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn metrics(node: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if node.metrics_apart {
        return Err(ApiError::not_found(
            "metrics are served on the node's metrics address, not here",
        ));
    }
    Ok(metrics_apart(node).await)
}

/// /metrics on the `metrics_listen` address.
pub async fn metrics_apart(node: web::Data<AppState>) -> HttpResponse {
    let body = node
        .metrics
        .as_ref()
        .map(|m| m.render())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
