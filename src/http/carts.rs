//! The caller's own cart: `/api/v1/cart`. Its id is the customer's id, so nobody can name
//! another customer's cart. Lines show the product's current price; the cart does not hold
//! stock (checkout reserves it), but it refuses more units than are available.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ecommesh_actors::{EntityError, Reply};
use ecommesh_commerce::cart::{CartCommand, CartRejection, CartState};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::extract::Caller;
use crate::http::errors::ApiError;
use crate::http::json::Json;
use crate::views::cart::{view, CartView};
use crate::views::check_id;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cart", web::get().to(get_cart))
        .route("/cart", web::delete().to(clear))
        .route("/cart/items", web::post().to(add_item))
        .route("/cart/items/{product_id}", web::patch().to(set_quantity))
        .route("/cart/items/{product_id}", web::delete().to(remove_item));
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    pub product_id: String,
    pub quantity: u32,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuantity {
    pub quantity: u32,
}

/// The units of a product on sale now; refuses one that does not exist or is archived.
async fn on_sale(node: &AppState, product_id: &str) -> Result<u64, ApiError> {
    check_id("product_id", product_id)?;
    let product = node.shop.product_view(product_id).await?.state;
    if product.details.is_none() {
        return Err(ApiError::not_found(format!(
            "product {product_id} does not exist"
        )));
    }
    if product.archived {
        return Err(ApiError::conflict(
            "product_archived",
            format!("product {product_id} is no longer sold"),
        ));
    }
    Ok(product.available_at(ecommesh_persistence::now_ms()))
}

/// Refuses `wanted` units of a product that does not exist, is archived, or has fewer
/// available.
async fn check_available(node: &AppState, product_id: &str, wanted: u64) -> Result<(), ApiError> {
    let available = on_sale(node, product_id).await?;
    if wanted > available {
        return Err(ApiError::out_of_stock(product_id, wanted, available));
    }
    Ok(())
}

async fn respond(node: &AppState, reply: Reply<Arc<CartState>>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(view(node, reply).await?))
}

#[utoipa::path(get, path = "/api/v1/cart", tag = "cart", security(("bearer" = [])), responses((status = 200, description = "The caller's cart", body = CartView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn get_cart(node: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let reply = node.shop.carts.read(caller.id).await?;
    respond(&node, reply).await
}

#[utoipa::path(post, path = "/api/v1/cart/items", tag = "cart", request_body = AddItem, security(("bearer" = [])), responses((status = 200, description = "Added", body = CartView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn add_item(
    node: web::Data<AppState>,
    caller: Caller,
    body: Json<AddItem>,
) -> Result<HttpResponse, ApiError> {
    let AddItem {
        product_id,
        quantity,
    } = body.into_inner();
    // One step: the cart refuses the add if its line would exceed what is on sale (an
    // advisory check: checkout holds stock for real).
    let available = on_sale(&node, &product_id).await?;
    let add = CartCommand::AddItem {
        product_id,
        quantity,
        available: Some(available),
    };
    match node.shop.carts.execute(caller.id, add, None).await {
        Ok(reply) => respond(&node, reply).await,
        Err(EntityError::Rejected(CartRejection::OutOfStock {
            product_id,
            requested,
            available,
        })) => Err(ApiError::out_of_stock(&product_id, requested, available)),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(patch, path = "/api/v1/cart/items/{product_id}", tag = "cart", params(("product_id" = String, Path, description = "Product id")), request_body = SetQuantity, security(("bearer" = [])), responses((status = 200, description = "Changed", body = CartView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn set_quantity(
    node: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: Json<SetQuantity>,
) -> Result<HttpResponse, ApiError> {
    let product_id = path.into_inner();
    if body.quantity == 0 {
        return Err(ApiError::invalid_field(
            "quantity",
            "must be at least 1; DELETE the line to remove it",
        ));
    }
    check_available(&node, &product_id, body.quantity as u64).await?;
    let cmd = CartCommand::SetQuantity {
        product_id,
        quantity: body.quantity,
    };
    let reply = node.shop.carts.execute(caller.id, cmd, None).await?;
    respond(&node, reply).await
}

#[utoipa::path(delete, path = "/api/v1/cart/items/{product_id}", tag = "cart", params(("product_id" = String, Path, description = "Product id")), security(("bearer" = [])), responses((status = 200, description = "Removed", body = CartView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn remove_item(
    node: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let product_id = path.into_inner();
    check_id("product_id", &product_id)?;
    let reply = node
        .shop
        .carts
        .execute(caller.id, CartCommand::RemoveItem { product_id }, None)
        .await?;
    respond(&node, reply).await
}

#[utoipa::path(delete, path = "/api/v1/cart", tag = "cart", security(("bearer" = [])), responses((status = 200, description = "Emptied", body = CartView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn clear(node: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let reply = node
        .shop
        .carts
        .execute(caller.id, CartCommand::Clear, None)
        .await?;
    respond(&node, reply).await
}
