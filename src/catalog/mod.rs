//! The catalog as the node shows it: product names for views, and the demo data set.
//! (The catalog's read models live in `ecommesh_commerce::catalog`.)

pub mod demo;

/// A product's name from the catalog, or from the product itself when the catalog has not
/// caught up with it yet.
pub async fn product_name(node: &crate::app::AppState, id: &str) -> String {
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
