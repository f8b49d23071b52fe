//! The cluster as SREs see it: nodes, shards, leaders, terms and replication lag.

use actix_web::{web, HttpResponse};

use super::errors::ApiError;
use crate::app::AppState;
use crate::auth::extract::Admin;
use crate::cluster::membership::NodeChange;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/cluster", web::get().to(status))
        .route("/admin/cluster/nodes", web::post().to(join))
        .route("/admin/cluster/nodes/{id}", web::delete().to(remove));
}

fn cluster(node: &AppState) -> Result<&std::sync::Arc<crate::cluster::Cluster>, ApiError> {
    node.cluster.as_ref().ok_or_else(|| {
        ApiError::not_clustered("this node runs alone (node_id = 0): there is no cluster to change")
    })
}

fn start(node: &AppState, change: NodeChange) -> Result<HttpResponse, ApiError> {
    match cluster(node)?.change_nodes(change.clone()) {
        Ok(()) => Ok(HttpResponse::Accepted().json(serde_json::json!({
            "accepted": change,
            "progress": "GET /api/v1/admin/cluster shows it under `change`, then `last_change`",
        }))),
        Err(busy) => Err(ApiError::conflict("change_in_progress", busy)),
    }
}

/// The node to add.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Its `node_id` (above 0, not in the cluster yet).
    pub id: u64,
    /// Where its peers reach it (its `rpc_listen`).
    pub rpc: String,
}

/// Adds a node (started with `join = true`): shard by shard it becomes a learner, catches
/// up, and takes the voter places its placement gives it. Runs in the background.
#[utoipa::path(post, path = "/api/v1/admin/cluster/nodes", tag = "admin", security(("bearer" = [])), request_body = JoinRequest, responses((status = 202, description = "The change started"), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn join(
    node: web::Data<AppState>,
    _: Admin,
    body: crate::http::json::Json<JoinRequest>,
) -> Result<HttpResponse, ApiError> {
    let JoinRequest { id, rpc } = body.into_inner();
    if id == 0 {
        return Err(ApiError::invalid_field("id", "must be above 0"));
    }
    if rpc.parse::<std::net::SocketAddr>().is_err() && !rpc.contains(':') {
        return Err(ApiError::invalid_field("rpc", "must be host:port"));
    }
    start(&node, NodeChange::Join { id, rpc })
}

/// Takes a node out of every shard (its replicas move to the others), after which it can
/// be stopped. Runs in the background.
#[utoipa::path(delete, path = "/api/v1/admin/cluster/nodes/{id}", tag = "admin", security(("bearer" = [])), params(("id" = u64, Path, description = "The node to remove")), responses((status = 202, description = "The change started"), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn remove(
    node: web::Data<AppState>,
    _: Admin,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    start(
        &node,
        NodeChange::Leave {
            id: id.into_inner(),
        },
    )
}

/// This node's view of the cluster. A single node answers 404 `not_clustered`.
#[utoipa::path(get, path = "/api/v1/admin/cluster", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Nodes, shards, leaders, terms and lag as this node sees them", body = crate::cluster::ClusterStatus), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn status(node: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    match &node.cluster {
        Some(cluster) => Ok(HttpResponse::Ok().json(cluster.status())),
        None => Err(ApiError::not_clustered(
            "this node runs alone (node_id = 0): there is no cluster to show",
        )),
    }
}
