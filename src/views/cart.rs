//! A cart as its owner sees it, priced with each product's current price.

use std::sync::Arc;

use ecommesh_actors::Reply;
use ecommesh_commerce::cart::CartState;
use ecommesh_commerce::Money;
use serde::Serialize;

use super::MoneyJson;
use crate::app::AppState;
use crate::http::errors::ApiError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CartLine {
    pub product_id: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price: MoneyJson,
    pub line_total: MoneyJson,
    /// Units available right now (the cart holds none).
    pub available: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CartView {
    /// Grows by one with every change of the cart.
    pub version: u64,
    pub items: Vec<CartLine>,
    pub total_units: u64,
    pub total: MoneyJson,
}

/// Prices the cart's lines with each product's current price.
pub async fn view(node: &AppState, reply: Reply<Arc<CartState>>) -> Result<CartView, ApiError> {
    let now = ecommesh_persistence::now_ms();
    let mut total = Money::new(0, node.shop.currency);
    let mut items = Vec::with_capacity(reply.state.items.len());
    for (product_id, quantity) in &reply.state.items {
        let product = node.shop.product_view(product_id).await?.state;
        let Some(d) = &product.details else { continue };
        let line_total = d
            .price
            .checked_mul(*quantity as u64)
            .ok_or_else(|| ApiError::amount_overflow(format!("the line total of {product_id}")))?;
        total = total
            .checked_add(line_total)
            .ok_or_else(|| ApiError::amount_overflow("the cart's total"))?;
        items.push(CartLine {
            product_id: product_id.clone(),
            name: d.name.clone(),
            quantity: *quantity,
            unit_price: MoneyJson::from_money(d.price),
            line_total: MoneyJson::from_money(line_total),
            available: product.available_at(now),
        });
    }
    Ok(CartView {
        version: reply.seq,
        total_units: reply.state.total_units(),
        items,
        total: MoneyJson::from_money(total),
    })
}
