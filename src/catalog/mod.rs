//! The catalog: its read model (search, filters, facets) and the demo data set.

pub mod current;
pub mod demo;
pub mod index;

pub use index::{CatalogIndex, Query, Sort};

/// The catalog projection, as the node holds it.
pub type Catalog = crate::projection::Projection<CatalogIndex>;

/// A product's name from the catalog, or from the product itself when the catalog has not
/// caught up with it yet.
pub async fn product_name(node: &crate::node::Node, id: &str) -> String {
    let known = node
        .catalog
        .read()
        .get(id)
        .and_then(|p| p.details.as_ref())
        .map(|d| d.name.clone());
    match known {
        Some(name) => name,
        None => node
            .product_view(id)
            .await
            .ok()
            .and_then(|r| r.state.details.as_ref().map(|d| d.name.clone()))
            .unwrap_or_default(),
    }
}
