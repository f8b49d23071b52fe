//! The catalog's read side: the latest state of each product ([`current`], for reads
//! that must not wait for a shard) and the catalog index ([`index`], search, filters and
//! facets), a projection of the product events.

pub mod current;
pub mod index;

pub use current::CurrentProducts;
pub use index::{CatalogIndex, Query, Sort};

/// The catalog projection.
pub type Catalog = crate::projection::Projection<CatalogIndex>;
