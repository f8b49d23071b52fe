//! An order as its owner (and admins) see it, with its payment.

use ecommesh_commerce::order::{Address, OrderState, OrderStatus};
use ecommesh_commerce::payment::PaymentState;
use serde::{Deserialize, Serialize};

use super::{rfc3339, MoneyJson};
use crate::app::AppState;
use crate::http::errors::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub name: String,
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

impl From<AddressInput> for Address {
    fn from(a: AddressInput) -> Self {
        Address {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<Address> for AddressInput {
    fn from(a: Address) -> Self {
        AddressInput {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderLineView {
    pub product_id: String,
    /// The product's current name.
    pub name: String,
    pub quantity: u32,
    pub unit_price: MoneyJson,
    pub line_total: MoneyJson,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusChange {
    /// `pending_payment`, `paid`, `shipped`, `delivered`, `cancelled`, `returned` or `refunded`.
    #[schema(value_type = String)]
    pub status: OrderStatus,
    pub at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub provider: String,
    pub status: &'static str,
    pub charge_id: Option<String>,
    pub refunded: MoneyJson,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: String,
    pub customer_id: String,
    /// `pending_payment`, `paid`, `shipped`, `delivered`, `cancelled`, `returned` or `refunded`.
    #[schema(value_type = String)]
    pub status: OrderStatus,
    pub lines: Vec<OrderLineView>,
    pub total: MoneyJson,
    pub shipping_address: Option<crate::views::order::AddressInput>,
    pub payment: Option<PaymentView>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub cancel_reason: Option<String>,
    pub created_at: String,
    pub history: Vec<StatusChange>,
    pub version: u64,
}

/// The order as its owner sees it, with its payment.
pub async fn order_view(node: &AppState, id: &str, o: &OrderState) -> Result<OrderView, ApiError> {
    let p = node.shop.payments.read(id.to_owned()).await?.state;
    order_view_with(node, id, o, &p).await
}

/// [`order_view`] with the order's payment known already (the checkout that recorded it).
pub async fn order_view_with(
    node: &AppState,
    id: &str,
    o: &OrderState,
    p: &PaymentState,
) -> Result<OrderView, ApiError> {
    let total = o
        .total
        .unwrap_or(ecommesh_commerce::Money::new(0, node.shop.currency));
    let payment = p.amount.map(|_| PaymentView {
        provider: p.provider.clone(),
        status: match (&p.outcome, p.refunded) {
            (Some(ecommesh_commerce::payment::Outcome::Declined { .. }), _) => "declined",
            (_, r) if r > 0 => "refunded",
            _ => "charged",
        },
        charge_id: p.charge_id().map(str::to_owned),
        refunded: MoneyJson::from_money(ecommesh_commerce::Money::new(p.refunded, total.currency)),
    });
    let mut lines = Vec::with_capacity(o.lines.len());
    for l in &o.lines {
        lines.push(OrderLineView {
            product_id: l.product_id.clone(),
            name: crate::views::product::product_name(node, &l.product_id).await,
            quantity: l.quantity,
            unit_price: MoneyJson::from_money(l.unit_price),
            line_total: MoneyJson::from_money(
                l.unit_price.checked_mul(l.quantity as u64).ok_or_else(|| {
                    ApiError::amount_overflow(format!("the line total of {}", l.product_id))
                })?,
            ),
        });
    }
    Ok(OrderView {
        id: id.to_owned(),
        customer_id: o.customer_id.clone(),
        status: o.status,
        lines,
        total: MoneyJson::from_money(total),
        shipping_address: o.checkout.as_ref().map(|c| c.shipping.clone().into()),
        payment,
        carrier: o.carrier.clone(),
        tracking_number: o.tracking.clone(),
        cancel_reason: o.cancel_reason.as_ref().map(|r| r.to_string()),
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
