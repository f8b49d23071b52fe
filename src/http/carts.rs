//! Cart routes: read a cart, add a line, remove a line. Every write is acknowledged only
//! once its event is on disk.
//!
//! These routes do not authenticate yet: authentication and object-level authorization
//! come with the commerce API (issue 4), which puts them behind the caller's identity.

use actix_web::{web, HttpResponse};
use ecommesh_actors::entities::cart::{CartCommand, CartState};
use ecommesh_actors::Reply;
use serde::{Deserialize, Serialize};

use crate::http::errors::ApiError;
use crate::http::json::Json;
use crate::node::Node;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/carts/{cart_id}", web::get().to(get_cart))
        .route("/carts/{cart_id}/items", web::post().to(add_item))
        .route(
            "/carts/{cart_id}/items/{product_id}",
            web::delete().to(remove_item),
        );
}

/// Ids in paths: 1 to 128 characters of letters, digits, `-`, `_` and `.`.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            field,
            "must be 1 to 128 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    pub product_id: String,
    pub quantity: u32,
}

#[derive(Debug, Serialize)]
pub struct CartLine {
    pub product_id: String,
    pub quantity: u32,
}

#[derive(Debug, Serialize)]
pub struct CartView {
    pub cart_id: String,
    /// The cart's sequence number: it grows by one with every change.
    pub version: u64,
    pub items: Vec<CartLine>,
    pub total_units: u64,
}

fn view(cart_id: String, reply: Reply<CartState>) -> CartView {
    CartView {
        cart_id,
        version: reply.seq,
        total_units: reply.state.total_units(),
        items: reply
            .state
            .items
            .into_iter()
            .map(|(product_id, quantity)| CartLine {
                product_id,
                quantity,
            })
            .collect(),
    }
}

async fn get_cart(
    node: web::Data<Node>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cart_id = path.into_inner();
    check_id("cart_id", &cart_id)?;
    let reply = node.carts.read(cart_id.clone()).await?;
    Ok(HttpResponse::Ok().json(view(cart_id, reply)))
}

async fn add_item(
    node: web::Data<Node>,
    path: web::Path<String>,
    body: Json<AddItem>,
) -> Result<HttpResponse, ApiError> {
    let cart_id = path.into_inner();
    check_id("cart_id", &cart_id)?;
    let AddItem {
        product_id,
        quantity,
    } = body.into_inner();
    check_id("product_id", &product_id)?;
    let reply = node
        .carts
        .execute(
            cart_id.clone(),
            CartCommand::AddItem {
                product_id,
                quantity,
            },
            None,
        )
        .await?;
    Ok(HttpResponse::Ok().json(view(cart_id, reply)))
}

async fn remove_item(
    node: web::Data<Node>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (cart_id, product_id) = path.into_inner();
    check_id("cart_id", &cart_id)?;
    check_id("product_id", &product_id)?;
    let reply = node
        .carts
        .execute(
            cart_id.clone(),
            CartCommand::RemoveItem { product_id },
            None,
        )
        .await?;
    Ok(HttpResponse::Ok().json(view(cart_id, reply)))
}

#[cfg(test)]
mod tests {
    use actix_web::{test, App};
    use ecommesh_actors::{Runtime, RuntimeConfig};
    use ecommesh_persistence::{open_store, StoreOptions};
    use serde_json::{json, Value};

    use super::*;

    /// Each route once, in-process, on a real journal in a temp dir.
    #[actix_web::test]
    async fn every_cart_route_answers() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&StoreOptions::new(dir.path().join("j"), 4)).unwrap();
        let rt = Runtime::start(store, RuntimeConfig::default());
        let auth = crate::node::auth(&crate::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        let node = web::Data::new(Node::new(&rt, auth, ecommesh_actors::Currency::USD, None));
        let app =
            test::init_service(App::new().configure(crate::http::configure(node, 4096))).await;

        let req = test::TestRequest::post()
            .uri("/api/v1/carts/c1/items")
            .set_json(json!({"product_id": "mug", "quantity": 2}))
            .to_request();
        let body: Value = test::call_and_read_body_json(&app, req).await;
        assert_eq!(body["items"], json!([{"product_id": "mug", "quantity": 2}]));

        let req = test::TestRequest::get()
            .uri("/api/v1/carts/c1")
            .to_request();
        let body: Value = test::call_and_read_body_json(&app, req).await;
        assert_eq!(
            (body["version"].as_u64(), body["total_units"].as_u64()),
            (Some(1), Some(2))
        );

        let req = test::TestRequest::delete()
            .uri("/api/v1/carts/c1/items/mug")
            .to_request();
        let body: Value = test::call_and_read_body_json(&app, req).await;
        assert_eq!(
            (
                body["version"].as_u64(),
                body["items"].as_array().map(Vec::len)
            ),
            (Some(2), Some(0))
        );

        let req = test::TestRequest::delete()
            .uri("/api/v1/carts/c1/items/mug")
            .to_request();
        assert_eq!(test::call_service(&app, req).await.status(), 404);
        rt.shutdown().unwrap();
    }
}
