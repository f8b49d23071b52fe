//! The cluster as SREs see it: nodes, shards, leaders, terms and replication lag.

use actix_web::{web, HttpResponse};

use super::errors::ApiError;
use crate::auth::extract::Admin;
use crate::node::Node;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/cluster", web::get().to(status));
}

/// This node's view of the cluster. A single node answers 404 `not_clustered`.
#[utoipa::path(get, path = "/api/v1/admin/cluster", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Nodes, shards, leaders, terms and lag as this node sees them", body = crate::cluster::ClusterStatus), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn status(node: web::Data<Node>, _: Admin) -> Result<HttpResponse, ApiError> {
    match &node.cluster {
        Some(cluster) => Ok(HttpResponse::Ok().json(cluster.status())),
        None => Err(ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_clustered",
            "this node runs alone (node_id = 0): there is no cluster to show",
        )),
    }
}
