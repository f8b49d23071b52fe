//! [`Shop`]: what the workflows and read paths share. The commerce entities wherever their
//! shards are led, the payment provider, the products as this node knows them, and the
//! settings the workflows keep. Built once, by the node, from its configuration.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ecommesh_actors::{Entities, EntityError, Reply};
use parking_lot::Mutex;

use crate::catalog::CurrentProducts;
use crate::payment::provider::PaymentProvider;
use crate::product::{ProductRejection, ProductState};
use crate::{Cart, Currency, Customer, Order, Payment, Product, Session};

pub struct Shop {
    pub carts: Entities<Cart>,
    pub products: Entities<Product>,
    pub orders: Entities<Order>,
    pub customers: Entities<Customer>,
    pub sessions: Entities<Session>,
    pub payments: Entities<Payment>,
    pub provider: Box<dyn PaymentProvider>,
    /// Every product's latest durable state, for reads that need no shard round trip.
    /// Written only by this node's own product shards (and its reads of them): checkout
    /// prices from it, so nothing a peer says goes in.
    pub current_products: Arc<CurrentProducts>,
    /// In a cluster, what the leaders of shards this node does not lead told it of their
    /// products: for views only ([`Shop::product_view`]), never for a price or a stock
    /// decision.
    pub heard_products: Arc<CurrentProducts>,
    pub currency: Currency,
    /// How long checkout holds stock; an unfinished checkout's holds expire after it.
    pub reservation_ttl: Duration,
    /// Work a workflow could not finish, for the reconciler.
    pub unfinished: Unfinished,
}

/// What workflows left for the reconciler to finish, on this node.
#[derive(Default)]
pub struct Unfinished {
    /// Orders whose refund was recorded but not confirmed (the provider failed).
    pub refunds: Mutex<BTreeSet<String>>,
    /// Sales a checkout made but could not record on its order (its shard between
    /// leaders): (order, product).
    pub sales: Mutex<BTreeSet<(String, String)>>,
}

/// A product's state as a read of it answers.
pub type ProductRead = Result<Reply<Arc<ProductState>>, EntityError<ProductRejection>>;

/// How long a node that does not lead a product's shard shows what it last heard of the
/// product (its leader tells every node of each change) before asking the leader again.
const PRODUCT_VIEW_AGE: Duration = Duration::from_secs(5);

impl Shop {
    /// A product as this node knows it, for views and hints that may trail the leader by
    /// the time a change takes to reach this node (cart lines, availability hints, names):
    /// on a single node, or on the shard's leader, the latest durable state; elsewhere
    /// the last state the leader told this node of, if recent, else the leader's answer.
    /// Decisions that must be exact (checkout prices, stock) use [`Shop::product`] or the
    /// product entity itself.
    pub async fn product_view(&self, id: &str) -> ProductRead {
        let remote = self.products.led_elsewhere(id);
        if remote {
            if let Some(known) = self.heard_products.get_within(id, PRODUCT_VIEW_AGE) {
                return Ok(known);
            }
        }
        let reply = self.product(id).await?;
        // `product` keeps what a leader reads; a node that does not lead keeps it apart.
        if remote && reply.state.details.is_some() {
            self.heard_products
                .update(id, reply.seq, reply.state.clone());
        }
        Ok(reply)
    }

    /// A product's latest durable state: from memory, or read from its shard (once).
    pub async fn product(&self, id: &str) -> ProductRead {
        // In a cluster, only the shard's leader sees every change as it is made.
        let leads = self.products.confirmed_lead_of(id).await;
        if leads {
            if let Some(known) = self.current_products.get(id) {
                return Ok(known);
            }
        }
        let reply = self.products.read(id.to_owned()).await?;
        // Only products that exist: reads of made-up ids must not fill memory.
        if leads && reply.state.details.is_some() {
            self.current_products
                .update(id, reply.seq, reply.state.clone());
        }
        Ok(reply)
    }
}
