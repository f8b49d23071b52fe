//! Order routes. A customer sees only their own orders: someone else's order id answers
//! 404, exactly like an order that does not exist.

use actix_web::{web, HttpResponse};
use ecommesh_actors::entities::order::{Address, OrderState, OrderStatus};
use serde::Serialize;

use crate::auth::extract::Caller;
use crate::http::errors::ApiError;
use crate::http::products::{rfc3339, MoneyJson};
use crate::node::Node;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders/{id}", web::get().to(get));
}

#[derive(Debug, Serialize)]
pub struct OrderLineView {
    pub product_id: String,
    pub quantity: u32,
    pub unit_price: MoneyJson,
    pub line_total: MoneyJson,
}

#[derive(Debug, Serialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub at: String,
}

#[derive(Debug, Serialize)]
pub struct PaymentView {
    pub provider: String,
    pub status: &'static str,
    pub charge_id: Option<String>,
    pub refunded: MoneyJson,
}

#[derive(Debug, Serialize)]
pub struct OrderView {
    pub id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    pub lines: Vec<OrderLineView>,
    pub total: MoneyJson,
    pub shipping_address: Option<Address>,
    pub payment: Option<PaymentView>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
    pub created_at: String,
    pub history: Vec<StatusChange>,
    pub version: u64,
}

/// The order as its owner sees it, with its payment.
pub async fn order_view(node: &Node, id: &str, o: &OrderState) -> Result<OrderView, ApiError> {
    let total = o
        .total
        .unwrap_or(ecommesh_actors::Money::new(0, node.currency));
    let p = node.payments.read(id.to_owned()).await?.state;
    let payment = p.amount.map(|_| PaymentView {
        provider: p.provider.clone(),
        status: match (&p.outcome, p.refunded) {
            (Some(ecommesh_actors::entities::payment::Outcome::Declined { .. }), _) => "declined",
            (_, r) if r > 0 => "refunded",
            _ => "charged",
        },
        charge_id: p.charge_id().map(str::to_owned),
        refunded: MoneyJson::from_money(ecommesh_actors::Money::new(p.refunded, total.currency)),
    });
    Ok(OrderView {
        id: id.to_owned(),
        customer_id: o.customer_id.clone(),
        status: o.status,
        lines: o
            .lines
            .iter()
            .map(|l| OrderLineView {
                product_id: l.product_id.clone(),
                quantity: l.quantity,
                unit_price: MoneyJson::from_money(l.unit_price),
                line_total: MoneyJson::from_money(
                    l.unit_price
                        .checked_mul(l.quantity as u64)
                        .unwrap_or(l.unit_price),
                ),
            })
            .collect(),
        total: MoneyJson::from_money(total),
        shipping_address: o.checkout.as_ref().map(|c| c.shipping.clone()),
        payment,
        carrier: o.carrier.clone(),
        tracking_number: o.tracking.clone(),
        cancel_reason: o.cancel_reason.clone(),
        created_at: rfc3339(o.placed_at_ms),
        history: o
            .history
            .iter()
            .map(|(status, at)| StatusChange {
                status: *status,
                at: rfc3339(*at),
            })
            .collect(),
        version: 0,
    })
}

/// The order if the caller may see it; 404 otherwise (never 403: ids are not confirmed).
pub async fn visible(
    node: &Node,
    caller: &Caller,
    id: &str,
) -> Result<(OrderState, u64), ApiError> {
    super::carts::check_id("id", id)?;
    let reply = node.orders.read(id.to_owned()).await?;
    if reply.state.status == OrderStatus::New
        || (reply.state.customer_id != caller.id && !caller.is_admin())
    {
        return Err(ApiError::not_found("no such order"));
    }
    Ok((reply.state, reply.seq))
}

async fn get(
    node: web::Data<Node>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let (order, seq) = visible(&node, &caller, &id).await?;
    let mut view = order_view(&node, &id, &order).await?;
    view.version = seq;
    Ok(HttpResponse::Ok().json(view))
}
