//! The catalog: its read model (search, filters, facets) and the demo data set.

pub mod demo;
pub mod index;

pub use index::{CatalogIndex, Query, Sort};

/// The catalog projection, as the node holds it.
pub type Catalog = crate::projection::Projection<CatalogIndex>;
