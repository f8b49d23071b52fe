//! The catalog read model: every product's listing fields, searchable and filterable,
//! with facet counts. Built from product events only (see `catalog::Catalog`), never by
//! asking product actors. Queries scan all listings: fine for the thousands of products of
//! a shop; an inverted index is the next step if catalogs grow to millions.

use std::collections::{BTreeMap, HashMap};

use crate::product::{Product, ProductEvent, ProductState};
use ecommesh_actors::entity::decode_event;
use ecommesh_actors::Entity;
use ecommesh_persistence::EventEnvelope;

use crate::projection::ReadModel;

/// How to order results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Best text match first (newest first without `q`).
    #[default]
    Relevance,
    PriceAsc,
    PriceDesc,
    Name,
    Newest,
}

/// A catalog query, already validated.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub q: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
    pub sort: Sort,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
}

/// One page of results with facet counts over every match (not only this page).
#[derive(Debug, Clone, Default)]
pub struct Page<'a> {
    pub items: Vec<(&'a str, &'a ProductState)>,
    pub total: usize,
    pub categories: BTreeMap<String, usize>,
    pub brands: BTreeMap<String, usize>,
}

#[derive(Default)]
struct Entry {
    state: ProductState,
    /// Lower-case words of name, brand and description, for matching.
    name: Vec<String>,
    brand: Vec<String>,
    description: Vec<String>,
}

/// Lower-case alphanumeric words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// How well `term` matches `field`: 2 for a whole word, 1 for a word prefix.
fn hit(field: &[String], term: &str) -> u32 {
    field
        .iter()
        .map(|w| {
            if w == term {
                2
            } else {
                u32::from(w.starts_with(term))
            }
        })
        .max()
        .unwrap_or(0)
}

/// Every product's state as of the events applied so far.
#[derive(Default)]
pub struct CatalogIndex {
    products: HashMap<String, Entry>,
}

impl ReadModel for CatalogIndex {
    const KIND: &'static str = Product::KIND;

    fn apply(&mut self, id: &str, event: &EventEnvelope) {
        match decode_event::<Product>(event) {
            Ok(e) => self.apply_event(id, &e),
            Err(err) => {
                tracing::error!(product = id, seq = event.seq, error = %err, "catalog skipped an undecodable event")
            }
        }
    }
}

impl CatalogIndex {
    /// Applies one product event (`id` without the `product/` prefix).
    pub fn apply_event(&mut self, id: &str, event: &ProductEvent) {
        let entry = self.products.entry(id.to_owned()).or_default();
        Product::apply(&mut entry.state, event);
        if matches!(
            event,
            ProductEvent::Created { .. } | ProductEvent::Updated(_)
        ) {
            if let Some(d) = &entry.state.details {
                entry.name = words(&d.name);
                entry.brand = words(&d.brand);
                entry.description = words(&d.description);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&ProductState> {
        self.products
            .get(id)
            .map(|e| &e.state)
            .filter(|s| s.details.is_some())
    }

    /// Every created product, in no particular order.
    pub fn products(&self) -> impl Iterator<Item = (&str, &ProductState)> {
        self.products
            .iter()
            .filter(|(_, e)| e.state.details.is_some())
            .map(|(id, e)| (id.as_str(), &e.state))
    }

    pub fn len(&self) -> usize {
        self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// Runs `query` at time `now_ms` (for stock held by live reservations).
    pub fn query(&self, query: &Query, now_ms: u64) -> Page<'_> {
        let terms = query.q.as_deref().map(words).unwrap_or_default();
        let mut hits: Vec<(u32, &str, &ProductState)> = Vec::new();
        let mut page = Page::default();
        for (id, e) in &self.products {
            let Some(d) = &e.state.details else { continue };
            if e.state.archived
                || query
                    .category
                    .as_ref()
                    .is_some_and(|c| !c.eq_ignore_ascii_case(&d.category))
                || query
                    .brand
                    .as_ref()
                    .is_some_and(|b| !b.eq_ignore_ascii_case(&d.brand))
                || query.min_price.is_some_and(|m| d.price.amount < m)
                || query.max_price.is_some_and(|m| d.price.amount > m)
                || query
                    .in_stock
                    .is_some_and(|want| (e.state.available_at(now_ms) > 0) != want)
            {
                continue;
            }
            let mut score = 0;
            let mut all = true;
            for t in &terms {
                let s = 3 * hit(&e.name, t) + 2 * hit(&e.brand, t) + hit(&e.description, t);
                all &= s > 0;
                score += s;
            }
            if !all {
                continue;
            }
            *page.categories.entry(d.category.clone()).or_default() += 1;
            *page.brands.entry(d.brand.clone()).or_default() += 1;
            hits.push((score, id.as_str(), &e.state));
        }
        fn details(s: &ProductState) -> &crate::product::ProductDetails {
            s.details.as_ref().expect("filtered above")
        }
        let newest = |a: &ProductState, b: &ProductState| b.created_at_ms.cmp(&a.created_at_ms);
        hits.sort_by(|(sa, ia, a), (sb, ib, b)| {
            let order = match query.sort {
                Sort::Relevance if terms.is_empty() => newest(a, b),
                Sort::Relevance => sb.cmp(sa).then_with(|| newest(a, b)),
                Sort::PriceAsc => details(a).price.amount.cmp(&details(b).price.amount),
                Sort::PriceDesc => details(b).price.amount.cmp(&details(a).price.amount),
                Sort::Name => details(a)
                    .name
                    .to_lowercase()
                    .cmp(&details(b).name.to_lowercase()),
                Sort::Newest => newest(a, b),
            };
            order.then_with(|| ia.cmp(ib)) // a total order: pages never overlap
        });
        page.total = hits.len();
        let start = (query.page.max(1) - 1).saturating_mul(query.per_page);
        page.items = hits
            .into_iter()
            .skip(start)
            .take(query.per_page)
            .map(|(_, id, s)| (id, s))
            .collect();
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::product::{ProductDetails, ProductPatch};
    use crate::{Currency, Money};

    /// (name, brand, category, price in cents, stock, created at)
    type Spec<'a> = (&'a str, &'a str, &'a str, i64, u64, u64);

    fn create(
        ix: &mut CatalogIndex,
        id: &str,
        (name, brand, category, cents, stock, at): Spec<'_>,
    ) {
        let details = ProductDetails {
            sku: id.to_uppercase(),
            name: name.into(),
            description: format!("{name} for every day"),
            category: category.into(),
            brand: brand.into(),
            price: Money::new(cents, Currency::USD),
            images: vec![],
        };
        ix.apply_event(
            id,
            &ProductEvent::Created {
                details,
                initial_stock: stock,
                at_ms: at,
            },
        );
    }

    fn sample() -> CatalogIndex {
        let mut ix = CatalogIndex::default();
        create(
            &mut ix,
            "p1",
            ("Trail running shoe", "Acme", "shoes", 8999, 3, 1),
        );
        create(&mut ix, "p2", ("Road shoe", "Zoom", "shoes", 12000, 0, 2));
        create(
            &mut ix,
            "p3",
            ("Running socks", "Acme", "apparel", 1500, 10, 3),
        );
        create(
            &mut ix,
            "p4",
            ("Rain jacket", "Nimbus", "apparel", 15000, 5, 4),
        );
        ix
    }

    fn ids(p: &Page<'_>) -> Vec<String> {
        p.items.iter().map(|(id, _)| id.to_string()).collect()
    }

    fn q() -> Query {
        Query {
            page: 1,
            per_page: 10,
            ..Query::default()
        }
    }

    #[test]
    fn text_search_matches_words_and_prefixes_ranking_names_first() {
        let ix = sample();
        let p = ix.query(
            &Query {
                q: Some("run".into()),
                ..q()
            },
            0,
        );
        assert_eq!(
            ids(&p),
            vec!["p3", "p1"],
            "both names match by prefix; newest first on a tie"
        );
        let p = ix.query(
            &Query {
                q: Some("acme shoe".into()),
                ..q()
            },
            0,
        );
        assert_eq!(ids(&p), vec!["p1"], "every term must match");
        assert_eq!(
            ix.query(
                &Query {
                    q: Some("zzz".into()),
                    ..q()
                },
                0
            )
            .total,
            0
        );
    }

    #[test]
    fn filters_facets_and_paging() {
        let ix = sample();
        let p = ix.query(
            &Query {
                category: Some("Shoes".into()),
                ..q()
            },
            0,
        );
        assert_eq!(p.total, 2);
        assert_eq!(
            p.brands,
            BTreeMap::from([("Acme".into(), 1), ("Zoom".into(), 1)])
        );
        let p = ix.query(
            &Query {
                in_stock: Some(true),
                min_price: Some(2000),
                ..q()
            },
            0,
        );
        assert_eq!(ids(&p), vec!["p4", "p1"]);
        let p = ix.query(
            &Query {
                sort: Sort::PriceAsc,
                per_page: 2,
                page: 2,
                ..q()
            },
            0,
        );
        assert_eq!(
            (ids(&p), p.total),
            (vec!["p2".to_string(), "p4".to_string()], 4)
        );
        assert_eq!(
            p.categories.values().sum::<usize>(),
            4,
            "facets count every match, not the page"
        );
        let p = ix.query(
            &Query {
                sort: Sort::Name,
                ..q()
            },
            0,
        );
        assert_eq!(ids(&p), vec!["p4", "p2", "p3", "p1"]);
    }

    #[test]
    fn changes_archives_and_stock_are_followed() {
        let mut ix = sample();
        let patch = ProductPatch {
            name: Some("Mountain boot".into()),
            ..Default::default()
        };
        ix.apply_event("p1", &ProductEvent::Updated(patch));
        assert_eq!(
            ix.query(
                &Query {
                    q: Some("boot".into()),
                    ..q()
                },
                0
            )
            .total,
            1
        );
        let renamed = ix.get("p1").unwrap().details.as_ref().unwrap();
        assert_eq!(renamed.name, "Mountain boot");
        ix.apply_event("p4", &ProductEvent::Archived);
        assert!(!ids(&ix.query(&q(), 0)).contains(&"p4".to_string()));
        ix.apply_event(
            "p3",
            &ProductEvent::Reserved {
                reservation_id: "o".into(),
                quantity: 10,
                expires_at_ms: 100,
            },
        );
        assert_eq!(
            ix.query(
                &Query {
                    in_stock: Some(true),
                    ..q()
                },
                50
            )
            .total,
            1,
            "held stock is not available"
        );
        assert_eq!(
            ix.query(
                &Query {
                    in_stock: Some(true),
                    ..q()
                },
                100
            )
            .total,
            2,
            "an expired hold is"
        );
    }
}
