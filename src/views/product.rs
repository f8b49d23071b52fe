//! A product as shoppers and admins see it.

use ecommesh_commerce::product::ProductState;
use serde::Serialize;

use super::{rfc3339, MoneyJson};
use crate::app::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stock {
    pub available: u64,
    /// The rest only for admins: held by checkouts, sold, and every unit ever added.
    /// `available + reserved + sold == received` always holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sold: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductView {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price: MoneyJson,
    pub images: Vec<String>,
    pub archived: bool,
    pub created_at: String,
    pub stock: Stock,
}

pub fn view(id: &str, s: &ProductState, now_ms: u64) -> Option<ProductView> {
    let d = s.details.as_ref()?;
    Some(ProductView {
        id: id.to_owned(),
        sku: d.sku.clone(),
        name: d.name.clone(),
        description: d.description.clone(),
        category: d.category.clone(),
        brand: d.brand.clone(),
        price: MoneyJson::from_money(d.price),
        images: d.images.clone(),
        archived: s.archived,
        created_at: rfc3339(s.created_at_ms),
        stock: Stock {
            available: s.available_at(now_ms),
            reserved: None,
            sold: None,
            received: None,
        },
    })
}

/// A product's name from the catalog, or from the product itself when the catalog has not
/// caught up with it yet.
pub async fn product_name(node: &AppState, id: &str) -> String {
    let known = node
        .catalog
        .read()
        .get(id)
        .and_then(|p| p.details.as_ref())
        .map(|d| d.name.clone());
    match known {
        Some(name) => name,
        None => node
            .shop
            .product_view(id)
            .await
            .ok()
            .and_then(|r| r.state.details.as_ref().map(|d| d.name.clone()))
            .unwrap_or_default(),
    }
}
