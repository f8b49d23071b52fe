//! Order routes. A customer sees only their own orders: someone else's order id answers
//! 404, exactly like an order that does not exist.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ecommesh_actors::EntityError;
use ecommesh_commerce::order::{
    CancelReason, OrderCommand, OrderRejection, OrderState, OrderStatus,
};
use ecommesh_commerce::workflow::settle;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::extract::{Admin, Caller};
use crate::http::errors::ApiError;
use crate::http::json::Json;
use crate::views::order::{order_view, OrderView};
use crate::views::{rfc3339, MoneyJson};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders", web::get().to(list_own))
        .route("/orders/{id}", web::get().to(get))
        .route("/orders/{id}/cancel", web::post().to(cancel))
        .route("/orders/{id}/return", web::post().to(request_return))
        .route("/admin/orders", web::get().to(list_all))
        .route(
            "/admin/orders/{id}/approve-return",
            web::post().to(approve_return),
        )
        .route("/admin/orders/{id}/ship", web::post().to(ship))
        .route("/admin/orders/{id}/deliver", web::post().to(deliver))
        .route("/admin/sales/summary", web::get().to(sales_summary));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    pub page: Option<u32>,
    pub per_page: Option<u32>,
    /// `pending_payment`, `paid`, `shipped`, `delivered`, `cancelled`, `returned` or `refunded`.
    #[param(value_type = Option<String>)]
    pub status: Option<OrderStatus>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderSummary {
    pub id: String,
    pub customer_id: String,
    /// `pending_payment`, `paid`, `shipped`, `delivered`, `cancelled`, `returned` or `refunded`.
    #[schema(value_type = String)]
    pub status: OrderStatus,
    pub total: MoneyJson,
    pub items: u64,
    pub created_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderList {
    pub items: Vec<OrderSummary>,
    pub total: usize,
    pub page: u32,
    pub per_page: u32,
}

fn page_of(
    node: &AppState,
    found: Vec<(&str, &OrderState)>,
    p: &Paging,
) -> Result<OrderList, ApiError> {
    let (page, per_page) = (p.page.unwrap_or(1), p.per_page.unwrap_or(20));
    if page == 0 || page > 1_000_000 {
        return Err(ApiError::invalid_field(
            "page",
            "must be between 1 and 1000000",
        ));
    }
    if per_page == 0 || per_page > 100 {
        return Err(ApiError::invalid_field(
            "per_page",
            "must be between 1 and 100",
        ));
    }
    let total = found.len();
    let items = found
        .into_iter()
        .skip((page as usize - 1) * per_page as usize)
        .take(per_page as usize)
        .map(|(id, o)| OrderSummary {
            id: id.to_owned(),
            customer_id: o.customer_id.clone(),
            status: o.status,
            total: MoneyJson::from_money(
                o.total
                    .unwrap_or(ecommesh_commerce::Money::new(0, node.shop.currency)),
            ),
            items: o.lines.iter().map(|l| l.quantity as u64).sum(),
            created_at: rfc3339(o.placed_at_ms),
        })
        .collect();
    Ok(OrderList {
        items,
        total,
        page,
        per_page,
    })
}

#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(Paging), security(("bearer" = [])), responses((status = 200, description = "The caller's orders, newest first", body = OrderList), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn list_own(
    node: web::Data<AppState>,
    caller: Caller,
    q: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let book = node.order_book.read();
    let mut found = book.for_customer(&caller.id);
    if let Some(status) = q.status {
        found.retain(|(_, o)| o.status == status);
    }
    let body = page_of(&node, found, &q)?;
    drop(book);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(get, path = "/api/v1/admin/orders", tag = "admin", params(Paging), security(("bearer" = [])), responses((status = 200, description = "Every order, newest first", body = OrderList), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn list_all(
    node: web::Data<AppState>,
    _: Admin,
    q: web::Query<Paging>,
) -> Result<HttpResponse, ApiError> {
    let book = node.order_book.read();
    let body = page_of(&node, book.all(q.status), &q)?;
    drop(book);
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipRequest {
    pub carrier: String,
    pub tracking_number: String,
}

/// Runs a state transition; an illegal one answers 409 with the order's current status.
async fn transition(
    node: &AppState,
    id: &str,
    cmd: OrderCommand,
) -> Result<HttpResponse, ApiError> {
    crate::views::check_id("id", id)?;
    match node.shop.orders.execute(id.to_owned(), cmd, None).await {
        Ok(reply) => {
            let mut view = order_view(node, id, &reply.state).await?;
            view.version = reply.seq;
            Ok(HttpResponse::Ok().json(view))
        }
        Err(EntityError::Rejected(OrderRejection::IllegalTransition { from, to })) => {
            Err(ApiError::illegal_transition(&from, &to))
        }
        Err(EntityError::Rejected(OrderRejection::NotFound)) => {
            Err(ApiError::not_found("no such order"))
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(post, path = "/api/v1/admin/orders/{id}/ship", tag = "admin", params(("id" = String, Path, description = "Order id")), request_body = ShipRequest, security(("bearer" = [])), responses((status = 200, description = "Shipped", body = OrderView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn ship(
    node: web::Data<AppState>,
    _: Admin,
    path: web::Path<String>,
    body: Json<ShipRequest>,
) -> Result<HttpResponse, ApiError> {
    let ShipRequest {
        carrier,
        tracking_number,
    } = body.into_inner();
    for (field, v) in [("carrier", &carrier), ("tracking_number", &tracking_number)] {
        if v.trim().is_empty() || v.chars().count() > 100 {
            return Err(ApiError::invalid_field(
                field,
                "must be 1 to 100 characters",
            ));
        }
    }
    transition(
        &node,
        &path.into_inner(),
        OrderCommand::Ship {
            carrier,
            tracking: tracking_number,
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/admin/orders/{id}/deliver", tag = "admin", params(("id" = String, Path, description = "Order id")), security(("bearer" = [])), responses((status = 200, description = "Delivered", body = OrderView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn deliver(
    node: web::Data<AppState>,
    _: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    transition(&node, &path.into_inner(), OrderCommand::Deliver).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// The window, in minutes back from now (default 60, at most 30 days).
    pub window_minutes: Option<u64>,
    pub top: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopProduct {
    pub product_id: String,
    pub units: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SalesSummary {
    pub since: String,
    pub orders: u64,
    pub revenue: MoneyJson,
    pub items_sold: u64,
    pub top_products: Vec<TopProduct>,
}

#[utoipa::path(get, path = "/api/v1/admin/sales/summary", tag = "admin", params(SummaryParams), security(("bearer" = [])), responses((status = 200, description = "Sales over the window", body = SalesSummary), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn sales_summary(
    node: web::Data<AppState>,
    _: Admin,
    q: web::Query<SummaryParams>,
) -> Result<HttpResponse, ApiError> {
    let minutes = q.window_minutes.unwrap_or(60);
    if minutes == 0 || minutes > 30 * 24 * 60 {
        return Err(ApiError::invalid_field(
            "window_minutes",
            "must be between 1 and 43200",
        ));
    }
    let top = q.top.unwrap_or(5);
    if top == 0 || top > 100 {
        return Err(ApiError::invalid_field("top", "must be between 1 and 100"));
    }
    let since = ecommesh_persistence::now_ms().saturating_sub(minutes * 60_000);
    let (s, revenue) = node
        .order_book
        .read()
        .summary(since, top, node.shop.currency)
        .map_err(ApiError::amount_overflow_of)?;
    Ok(HttpResponse::Ok().json(SalesSummary {
        since: rfc3339(since),
        orders: s.orders,
        revenue: MoneyJson::from_money(revenue),
        items_sold: s.items,
        top_products: s
            .top_products
            .into_iter()
            .map(|(product_id, units)| TopProduct { product_id, units })
            .collect(),
    }))
}

/// The order if the caller may see it; 404 otherwise (never 403: ids are not confirmed).
pub async fn visible(
    node: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Arc<OrderState>, u64), ApiError> {
    crate::views::check_id("id", id)?;
    let reply = node.shop.orders.read(id.to_owned()).await?;
    if reply.state.status == OrderStatus::New
        || (reply.state.customer_id != caller.id && !caller.is_admin())
    {
        return Err(ApiError::not_found("no such order"));
    }
    Ok((reply.state, reply.seq))
}

#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = String, Path, description = "Order id")), security(("bearer" = [])), responses((status = 200, description = "The order", body = OrderView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn get(
    node: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let (order, seq) = visible(&node, &caller, &id).await?;
    let mut view = order_view(&node, &id, &order).await?;
    view.version = seq;
    Ok(HttpResponse::Ok().json(view))
}

async fn respond(node: &AppState, id: &str) -> Result<HttpResponse, ApiError> {
    let reply = node.shop.orders.read(id.to_owned()).await?;
    let mut view = order_view(node, id, &reply.state).await?;
    view.version = reply.seq;
    Ok(HttpResponse::Ok().json(view))
}

/// Cancels an order before it ships: a pending one releases its stock; a paid one puts its
/// stock back and is refunded. Cancelling again finishes an interrupted cancellation.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", params(("id" = String, Path, description = "Order id")), security(("bearer" = [])), responses((status = 200, description = "Cancelled (and refunded if it was paid)", body = OrderView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn cancel(
    node: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let (order, _) = visible(&node, &caller, &id).await?;
    let reason = if caller.is_admin() {
        CancelReason::ByAdmin
    } else {
        CancelReason::ByCustomer
    };
    settle::cancel(&node.shop, &id, order.status, reason).await?;
    respond(&node, &id).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    pub reason: String,
    /// The units returned; every line of the order when omitted.
    pub lines: Option<Vec<ReturnLine>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    pub product_id: String,
    pub quantity: u32,
}

/// Asks to return a delivered order; an admin approves it (`approve-return`).
#[utoipa::path(post, path = "/api/v1/orders/{id}/return", tag = "orders", params(("id" = String, Path, description = "Order id")), request_body = ReturnRequest, security(("bearer" = [])), responses((status = 200, description = "Returned, awaiting approval", body = OrderView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn request_return(
    node: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: Json<ReturnRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    visible(&node, &caller, &id).await?;
    let ReturnRequest { reason, lines } = body.into_inner();
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid_field(
            "reason",
            "must be 1 to 500 characters",
        ));
    }
    let lines = lines.map(|ls| ls.into_iter().map(|l| (l.product_id, l.quantity)).collect());
    transition(&node, &id, OrderCommand::Return { reason, lines }).await
}

/// Accepts a returned order: its stock goes back on sale and it is refunded.
#[utoipa::path(post, path = "/api/v1/admin/orders/{id}/approve-return", tag = "admin", params(("id" = String, Path, description = "Order id")), security(("bearer" = [])), responses((status = 200, description = "Restocked and refunded", body = OrderView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn approve_return(
    node: web::Data<AppState>,
    _: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    crate::views::check_id("id", &id)?;
    let order = node.shop.orders.read(id.clone()).await?.state;
    match order.status {
        OrderStatus::Returned => settle::settle(&node.shop, &id).await?,
        OrderStatus::New => return Err(ApiError::not_found("no such order")),
        other => return Err(ApiError::illegal_transition(other.as_str(), "refunded")),
    }
    respond(&node, &id).await
}
