//! Live updates: durable changes of products, carts and orders, streamed to websocket
//! clients as they happen.
//!
//! The path of a change: the shard's observer hands it, once durable, to one channel;
//! the [`feed`] renders it once per topic and publishes it on the [`hub`]; every
//! [`socket`] subscribed to that topic forwards the same bytes to its client. Producers
//! never wait for clients: a socket that cannot keep up is closed, never waited for.

pub mod feed;
pub mod hub;
pub mod limits;
pub mod protocol;
pub mod sales;
pub mod snapshot;
pub mod socket;

use std::collections::BTreeMap;
use std::time::Duration;

use ecommesh_actors::{Committed, Entity, Observer};
use ecommesh_commerce::Currency;
use ecommesh_commerce::{Cart, Order, Product};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use hub::Hub;
use sales::SalesBoard;

/// A durable change of an entity kind that clients watch.
#[derive(serde::Serialize, serde::Deserialize)]
pub enum Change {
    Product(Committed<Product>),
    Cart(Committed<Cart>),
    Order(Committed<Order>),
}

/// Websocket and live-update settings (see `config/ecommesh.toml`).
#[derive(Debug, Clone, Copy)]
pub struct LiveSettings {
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
    pub send_buffer: usize,
    pub max_subscriptions: usize,
    /// Refused subscribe attempts after which a socket is closed (1008).
    pub max_failed_subscriptions: usize,
    pub max_connections_per_ip: usize,
    pub max_subscriptions_per_ip: usize,
    pub low_stock_threshold: u64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings {
            heartbeat: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            send_buffer: 1024,
            max_subscriptions: 256,
            max_failed_subscriptions: 32,
            max_connections_per_ip: 64,
            max_subscriptions_per_ip: 4096,
            low_stock_threshold: 5,
        }
    }
}

/// A product low on stock, as `admin:stock` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LowStock {
    pub product_id: String,
    pub name: String,
    pub available: u64,
    pub threshold: u64,
    /// The product's sequence number when this was last reported.
    pub seq: u64,
}

/// The live-update state of a node.
pub struct Live {
    pub hub: Hub,
    /// What each client address holds: sockets and subscriptions.
    pub clients: std::sync::Arc<limits::PerClient>,
    pub sales: Mutex<SalesBoard>,
    pub low_stock: Mutex<BTreeMap<String, LowStock>>,
    changes: mpsc::UnboundedSender<Change>,
    /// Taken by the feed when it starts.
    pending: Mutex<Option<mpsc::UnboundedReceiver<Change>>>,
    /// In a cluster: tells the other nodes of each change made here.
    relay: std::sync::OnceLock<Relay>,
}

/// Hands a change made on this node to the other nodes of the cluster.
pub type Relay = Box<dyn Fn(&Change) + Send + Sync>;

impl Live {
    pub fn new(currency: Currency) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Live {
            hub: Hub::default(),
            clients: Default::default(),
            sales: Mutex::new(SalesBoard::new(currency)),
            low_stock: Mutex::new(BTreeMap::new()),
            changes: tx,
            pending: Mutex::new(Some(rx)),
            relay: std::sync::OnceLock::new(),
        }
    }

    /// An observer that hands every durable change of `E` to the feed. It only queues,
    /// so the group-commit thread it runs on is never held up. Changes made before the
    /// feed starts (seeding, recovery) wait for it in the queue.
    pub fn observer<E: Entity>(
        self: &std::sync::Arc<Self>,
        wrap: fn(Committed<E>) -> Change,
    ) -> Observer<E> {
        let live = self.clone();
        std::sync::Arc::new(move |c| {
            let change = wrap(c);
            if let Some(relay) = live.relay.get() {
                relay(&change);
            }
            if live.wants(&change) {
                let _ = live.changes.send(change);
            }
        })
    }

    /// Whether the feed has anything to do with `change`. A cart's only readers are its
    /// owner's sockets, so the change of a cart nobody here watches is not queued: that
    /// woke the feed's thread for every add to cart. No update is lost to a subscriber
    /// that comes a moment later: it subscribes before it reads the cart, and the cart it
    /// reads already holds the change.
    fn wants(&self, change: &Change) -> bool {
        match change {
            Change::Cart(c) => self.hub.has_subscribers(&protocol::cart_channel(&c.id)),
            Change::Product(_) | Change::Order(_) => true,
        }
    }

    /// Sends every change made on this node to `relay` as well (once, at start).
    pub fn relay_to(&self, relay: Relay) {
        let _ = self.relay.set(relay);
    }

    /// Takes a change made on another node, as if it had been made here.
    pub fn inject(&self, change: Change) {
        if self.wants(&change) {
            let _ = self.changes.send(change);
        }
    }

    fn take_changes(&self) -> Option<mpsc::UnboundedReceiver<Change>> {
        self.pending.lock().take()
    }
}
