//! The latest durable state of each product, kept in memory for the reads that do not
//! change it (product pages, cart views, availability checks, checkout pricing).
//!
//! Reading a product through its shard costs two cross-thread hops (HTTP worker to shard
//! thread and back); measured, that was most of `GET /products/{id}`. The runtime's
//! observer updates this map after each change is durable and before it is acknowledged,
//! so a reader never sees less than what was acknowledged to anyone, and never more than
//! what is on disk. Products read but not changed since start are filled on first read.

use std::collections::HashMap;
use std::sync::Arc;

use crate::product::ProductState;
use ecommesh_actors::Reply;
use parking_lot::RwLock;

/// A product's state, and when this node last heard of it.
type Known = (Reply<Arc<ProductState>>, std::time::Instant);

#[derive(Default)]
pub struct CurrentProducts {
    map: RwLock<HashMap<Arc<str>, Known>>,
}

impl CurrentProducts {
    /// Keeps `state` at `seq` unless a newer state is already known (a read that started
    /// before a change may finish after it).
    pub fn update(&self, id: &str, seq: u64, state: Arc<ProductState>) {
        let now = std::time::Instant::now();
        let mut map = self.map.write();
        match map.get_mut(id) {
            Some((known, at)) if known.seq >= seq => *at = now,
            Some(known) => *known = (Reply { seq, state }, now),
            None => {
                map.insert(id.into(), (Reply { seq, state }, now));
            }
        }
    }

    /// Forgets the products of `shard` (of `shards`): the shard's lead moved, so changes
    /// may have been made elsewhere.
    pub fn forget_shard(&self, shard: u32, shards: u32) {
        use crate::Product;
        use ecommesh_actors::Entity;
        self.map.write().retain(|id, _| {
            ecommesh_actors::registry::shard_for(Product::KIND, id, shards) != shard
        });
    }

    pub fn get(&self, id: &str) -> Option<Reply<Arc<ProductState>>> {
        self.map.read().get(id).map(|(r, _)| r.clone())
    }

    /// The state if this node heard of it within `max_age`.
    pub fn get_within(
        &self,
        id: &str,
        max_age: std::time::Duration,
    ) -> Option<Reply<Arc<ProductState>>> {
        self.map
            .read()
            .get(id)
            .filter(|(_, at)| at.elapsed() <= max_age)
            .map(|(r, _)| r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_state_never_replaces_a_newer_one() {
        let c = CurrentProducts::default();
        let state = |n| {
            Arc::new(ProductState {
                on_hand: n,
                ..ProductState::default()
            })
        };
        c.update("p", 5, state(5));
        c.update("p", 3, state(3));
        assert_eq!(c.get("p").unwrap().state.on_hand, 5);
        c.update("p", 6, state(6));
        assert_eq!(
            (c.get("p").unwrap().seq, c.get("p").unwrap().state.on_hand),
            (6, 6)
        );
        assert!(c.get("q").is_none());
    }
}
