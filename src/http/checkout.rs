//! `POST /checkout`: parses the request, admits it (checkouts under way per customer are
//! bounded), runs the checkout workflow (`ecommesh_commerce::workflow::checkout`) to its
//! end even if the client goes away, and answers the paid order or a problem.

use actix_web::{web, HttpRequest, HttpResponse};
use ecommesh_commerce::ids::order_id;
use ecommesh_commerce::workflow::checkout::{self as workflow, Paid};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::auth::extract::Caller;
use crate::http::errors::ApiError;
use crate::http::json::Json;
use crate::views::order::{order_view, order_view_with, AddressInput};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/checkout", web::post().to(checkout));
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub payment: PaymentInput,
    pub shipping_address: AddressInput,
}

fn idempotency_key(req: &HttpRequest) -> Result<String, ApiError> {
    let key = req
        .headers()
        .get("Idempotency-Key")
        .ok_or_else(|| {
            ApiError::invalid_field(
                "Idempotency-Key",
                "this header is required: a unique string per checkout attempt",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::invalid_field("Idempotency-Key", "must be visible ASCII"))?
        .trim()
        .to_owned();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            "must be 1 to 255 characters",
        ));
    }
    Ok(key)
}

#[utoipa::path(post, path = "/api/v1/checkout", tag = "checkout", params(("Idempotency-Key" = String, Header, description = "Unique per checkout attempt; a retry with the same key and body returns the same outcome")), request_body = CheckoutRequest, security(("bearer" = [])), responses((status = 201, description = "The paid order", body = crate::views::order::OrderView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn checkout(
    node: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<CheckoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request = body.into_inner();
    if request.payment.token.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "payment.token",
            "must not be empty",
        ));
    }
    let request_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&request).expect("serializable"),
    ));
    let id = order_id(&caller.id, &key);
    // Checkouts under way per customer are bounded: each holds stock while it runs.
    let Some(slot) = crate::checkouts::Checkouts::start(
        &node.checkouts,
        &caller.id,
        &id,
        node.max_pending_checkouts,
    ) else {
        return Err(ApiError::too_many_pending_checkouts(
            node.max_pending_checkouts,
        ));
    };
    let request = workflow::Request {
        order_id: id.clone(),
        customer: caller.id.clone(),
        payment_token: request.payment.token,
        shipping: request.shipping_address.into(),
        request_hash,
    };
    // The checkout runs to its end even if the client goes away: an abandoned connection
    // must not leave its holds and its order pending until the reconciler's timeout.
    let shop = node.shop.clone();
    let done = actix_web::rt::spawn(async move {
        let _slot = slot;
        workflow::checkout(&shop, request).await
    })
    .await
    .map_err(|_| ApiError::checkout_interrupted())?;
    let Paid { order, payment } = done?;
    let view = match payment {
        Some(payment) => order_view_with(&node, &id, &order, &payment).await?,
        None => order_view(&node, &id, &order).await?,
    };
    Ok(HttpResponse::Created().json(view))
}
