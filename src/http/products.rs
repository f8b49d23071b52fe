//! Product routes: the catalog listing (from the catalog projection), one product with its
//! live stock (from its entity), and the admin's create, change, restock and archive.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use ecommesh_actors::EntityError;
use ecommesh_commerce::ids::product_id;
use ecommesh_commerce::product::{ProductCommand, ProductDetails, ProductPatch};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::extract::{Admin, Caller};
use crate::http::errors::ApiError;
use crate::http::json::Json;
use crate::views::product::{view, ProductView};
use crate::views::MoneyJson;
use ecommesh_commerce::catalog::{Query, Sort};

pub const MAX_PER_PAGE: u32 = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/products", web::get().to(list))
        .route("/products", web::post().to(create))
        .route("/products/{id}", web::get().to(get))
        .route("/products/{id}", web::patch().to(update))
        .route("/products/{id}", web::delete().to(archive))
        .route("/products/{id}/restock", web::post().to(restock));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    pub q: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
    pub sort: Option<Sort>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Facets {
    pub category: BTreeMap<String, usize>,
    pub brand: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListView {
    pub items: Vec<ProductView>,
    pub total: usize,
    pub page: u32,
    pub per_page: u32,
    pub facets: Facets,
}

fn check_query(p: &ListParams) -> Result<(), ApiError> {
    if p.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::invalid_field("q", "at most 200 characters"));
    }
    for (field, v) in [("min_price", p.min_price), ("max_price", p.max_price)] {
        if v.is_some_and(|v| v < 0) {
            return Err(ApiError::invalid_field(
                field,
                "must not be negative (minor units)",
            ));
        }
    }
    if let (Some(lo), Some(hi)) = (p.min_price, p.max_price) {
        if lo > hi {
            return Err(ApiError::invalid_field(
                "min_price",
                "must not exceed max_price",
            ));
        }
    }
    if p.page == Some(0) {
        return Err(ApiError::invalid_field("page", "pages start at 1"));
    }
    if p.per_page.is_some_and(|n| n == 0 || n > MAX_PER_PAGE) {
        return Err(ApiError::invalid_field(
            "per_page",
            format!("must be between 1 and {MAX_PER_PAGE}"),
        ));
    }
    if p.page.unwrap_or(1) > 1_000_000 {
        return Err(ApiError::invalid_field("page", "must be at most 1000000"));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ListParams), responses((status = 200, description = "A page of the catalog", body = ListView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn list(
    node: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    check_query(&p)?;
    let (page, per_page) = (p.page.unwrap_or(1), p.per_page.unwrap_or(20));
    let query = Query {
        q: p.q.filter(|q| !q.trim().is_empty()),
        category: p.category,
        brand: p.brand,
        min_price: p.min_price,
        max_price: p.max_price,
        in_stock: p.in_stock,
        sort: p.sort.unwrap_or_default(),
        page: page as usize,
        per_page: per_page as usize,
    };
    let now = ecommesh_persistence::now_ms();
    let index = node.catalog.read();
    let found = index.query(&query, now);
    let body = ListView {
        items: found
            .items
            .iter()
            .filter_map(|(id, s)| view(id, s, now))
            .collect(),
        total: found.total,
        page,
        per_page,
        facets: Facets {
            category: found.categories,
            brand: found.brands,
        },
    };
    drop(index);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog", params(("id" = String, Path, description = "Product id")), responses((status = 200, description = "The product with live stock", body = ProductView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn get(
    node: web::Data<AppState>,
    caller: Option<Caller>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    crate::views::check_id("id", &id)?;
    let reply = node.shop.product(&id).await?;
    let now = ecommesh_persistence::now_ms();
    let mut v =
        view(&id, &reply.state, now).ok_or_else(|| ApiError::not_found("no such product"))?;
    if caller.is_some_and(|c| c.is_admin()) {
        let s = &reply.state;
        v.stock.reserved = Some(s.on_hand - s.available_at(now));
        v.stock.sold = Some(s.sold);
        v.stock.received = Some(s.received);
    }
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price: MoneyJson,
    pub stock: u64,
    #[serde(default)]
    pub images: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/products", tag = "catalog", request_body = CreateProduct, security(("bearer" = [])), responses((status = 201, description = "Created", body = ProductView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn create(
    node: web::Data<AppState>,
    _: Admin,
    body: Json<CreateProduct>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let price = b.price.to_price("price", node.shop.currency)?;
    let id = product_id(&b.sku);
    let details = ProductDetails {
        sku: b.sku.trim().to_owned(),
        name: b.name,
        description: b.description,
        category: b.category,
        brand: b.brand,
        price,
        images: b.images,
    };
    let cmd = ProductCommand::Create {
        details,
        initial_stock: b.stock,
    };
    let reply = node
        .shop
        .products
        .execute(id.clone(), cmd, None)
        .await
        .map_err(|e| match e {
            EntityError::Rejected(ecommesh_commerce::product::ProductRejection::AlreadyExists) => {
                ApiError::conflict("conflict", "a product with this SKU exists already")
            }
            e => e.into(),
        })?;
    let v = view(&id, &reply.state, ecommesh_persistence::now_ms()).expect("created");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/products/{id}")))
        .json(v))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price: Option<MoneyJson>,
    pub images: Option<Vec<String>>,
}

async fn run(node: &AppState, id: String, cmd: ProductCommand) -> Result<HttpResponse, ApiError> {
    crate::views::check_id("id", &id)?;
    let reply = node.shop.products.execute(id.clone(), cmd, None).await?;
    let v = view(&id, &reply.state, ecommesh_persistence::now_ms())
        .ok_or_else(|| ApiError::not_found("no such product"))?;
    Ok(HttpResponse::Ok().json(v))
}

#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "catalog", params(("id" = String, Path, description = "Product id")), request_body = UpdateProduct, security(("bearer" = [])), responses((status = 200, description = "Changed", body = ProductView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn update(
    node: web::Data<AppState>,
    _: Admin,
    path: web::Path<String>,
    body: Json<UpdateProduct>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let price = b
        .price
        .map(|p| p.to_price("price", node.shop.currency))
        .transpose()?;
    let patch = ProductPatch {
        name: b.name,
        description: b.description,
        category: b.category,
        brand: b.brand,
        price,
        images: b.images,
    };
    run(&node, path.into_inner(), ProductCommand::Update(patch)).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    pub quantity: u64,
}

#[utoipa::path(post, path = "/api/v1/products/{id}/restock", tag = "catalog", params(("id" = String, Path, description = "Product id")), request_body = Restock, security(("bearer" = [])), responses((status = 200, description = "Restocked", body = ProductView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn restock(
    node: web::Data<AppState>,
    _: Admin,
    path: web::Path<String>,
    body: Json<Restock>,
) -> Result<HttpResponse, ApiError> {
    run(
        &node,
        path.into_inner(),
        ProductCommand::Restock {
            quantity: body.quantity,
        },
    )
    .await
}

#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "catalog", params(("id" = String, Path, description = "Product id")), security(("bearer" = [])), responses((status = 200, description = "Archived", body = ProductView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn archive(
    node: web::Data<AppState>,
    _: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    run(&node, path.into_inner(), ProductCommand::Archive).await
}
