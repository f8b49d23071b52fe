//! The application state: what request handlers, websockets and background tasks share
//! (the shop and its read models, auth, the live feed, the node's status), built once
//! from the configuration.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::anyhow;
use ecommesh_actors::{Entities, Router, Runtime};
use ecommesh_commerce::catalog::{Catalog, CurrentProducts};
use ecommesh_commerce::order::book::OrderBook;
use ecommesh_commerce::payment::provider::TestPaymentProvider;
use ecommesh_commerce::projection::Projection;
use ecommesh_commerce::{Product, Session, Shop};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::limiter::LoginLimiter;
use crate::auth::tokens::{load_secret, Tokens};
use crate::auth::Auth;
use crate::cluster::Cluster;
use crate::config::Config;

/// What request handlers share: the shop (entities, workflows' settings), the read
/// models, auth, the live feed and the node's status. Built once, from the configuration.
pub struct AppState {
    pub shop: Arc<Shop>,
    /// This node's part of the cluster; None on a single node.
    pub cluster: Option<Arc<Cluster>>,
    pub auth: Auth,
    pub catalog: Arc<Catalog>,
    pub order_book: Arc<Projection<OrderBook>>,
    pub live: Arc<crate::live::Live>,
    pub live_settings: crate::live::LiveSettings,
    /// Checkouts under way per customer, and how many one customer may run at once.
    pub checkouts: Arc<crate::checkouts::Checkouts>,
    pub max_pending_checkouts: usize,
    /// /metrics is served on `metrics_listen`, not on the shop's port.
    pub metrics_apart: bool,
    /// The customer id of the configured admin email: registration refuses it, so only
    /// the admin bootstrap can create that account.
    pub reserved_admin: Option<String>,
    /// Tells a request's client address (for the limits kept per client).
    pub client_ip: crate::http::client_ip::ClientIp,
    pub shards: u32,
    /// False until recovery is done, and again once shutdown has begun.
    pub ready: AtomicBool,
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// Starts one registry per entity kind on `runtime`; in a cluster, commands for shards
    /// this node does not lead go to their leaders.
    pub fn new(
        runtime: &Runtime,
        config: &Config,
        auth: Auth,
        metrics: Option<PrometheusHandle>,
        cluster: Option<Arc<Cluster>>,
    ) -> anyhow::Result<Self> {
        use crate::live::Change;
        let currency = config.shop_currency()?;
        let router = cluster.clone().map(|c| c as Arc<dyn Router>);
        let live = Arc::new(crate::live::Live::new(currency));
        let current_products = Arc::new(CurrentProducts::default());
        let (current, to_live) = (current_products.clone(), live.observer(Change::Product));
        let product_observer: ecommesh_actors::Observer<Product> = Arc::new(move |c| {
            current.update(&c.id, c.seq, c.state.clone());
            to_live(c);
        });
        let gate = auth.sessions.clone();
        let session_observer: ecommesh_actors::Observer<Session> =
            Arc::new(move |c: ecommesh_actors::Committed<Session>| {
                gate.learn(
                    &c.id,
                    &c.state,
                    ecommesh_persistence::now_ms(),
                    std::time::Instant::now(),
                );
            });
        let shop = Arc::new(Shop {
            carts: Entities::new(
                runtime.observed_registry(Some(live.observer(Change::Cart))),
                router.clone(),
            ),
            products: Entities::new(
                runtime.observed_registry(Some(product_observer)),
                router.clone(),
            ),
            orders: Entities::new(
                runtime.observed_registry(Some(live.observer(Change::Order))),
                router.clone(),
            ),
            customers: Entities::new(runtime.registry(), router.clone()),
            sessions: Entities::new(
                runtime.observed_registry(Some(session_observer)),
                router.clone(),
            ),
            payments: Entities::new(runtime.registry(), router.clone()),
            provider: Box::new(TestPaymentProvider::default()),
            current_products,
            heard_products: Arc::default(),
            currency,
            reservation_ttl: std::time::Duration::from_secs(config.shop.reservation_ttl_secs),
            unfinished: Default::default(),
        });
        let node = AppState {
            shop,
            auth,
            catalog: Arc::new(Catalog::new(runtime.store().shard_count())),
            order_book: Arc::new(Projection::new(runtime.store().shard_count())),
            live,
            live_settings: config.live(),
            client_ip: crate::http::client_ip::ClientIp::parse(&config.http.trusted_proxies)
                .map_err(|e| anyhow!("invalid configuration: {e}"))?,
            checkouts: Arc::default(),
            max_pending_checkouts: config.shop.max_pending_checkouts,
            metrics_apart: !config.http.metrics_listen.is_empty(),
            reserved_admin: (!config.auth.admin_email.is_empty())
                .then(|| ecommesh_commerce::ids::customer_id(&config.auth.admin_email)),
            shards: runtime.store().shard_count(),
            ready: AtomicBool::new(false),
            metrics,
            cluster: cluster.clone(),
        };
        if let Some(cluster) = &cluster {
            node.join(cluster);
        }
        Ok(node)
    }

    /// Answers commands other nodes forward here, and drops cached entities of a shard
    /// whenever its lead moves.
    fn join(&self, cluster: &Cluster) {
        let shop = &self.shop;
        let handlers: std::collections::HashMap<
            &'static str,
            ecommesh_actors::routing::ForwardedCalls,
        > = [
            shop.carts.handler(),
            shop.products.handler(),
            shop.orders.handler(),
            shop.customers.handler(),
            shop.sessions.handler(),
            shop.payments.handler(),
        ]
        .into_iter()
        .collect();
        cluster.serve_entities(Arc::new(move |kind, payload| {
            match handlers.get(kind.as_str()) {
                Some(h) => h(payload),
                None => Box::pin(async { Vec::new() }),
            }
        }));
        // Live updates cross nodes: changes made here go to the others, theirs come here.
        let to_peers = self.cluster.clone().expect("a cluster node");
        self.live.relay_to(Box::new(move |change| {
            to_peers.tell_changes(crate::cluster::network::encode(change))
        }));
        let live = self.live.clone();
        let heard = shop.heard_products.clone();
        cluster.on_changes(Arc::new(
            move |payload| match crate::cluster::network::decode(&payload) {
                Ok(change) => {
                    if let crate::live::Change::Product(c) = &change {
                        heard.update(&c.id, c.seq, c.state.clone());
                    }
                    live.inject(change)
                }
                Err(e) => tracing::warn!(error = %e, "a live change from a peer could not be read"),
            },
        ));
        let current = shop.current_products.clone();
        let shards = self.shards;
        let (carts, products, orders, customers, sessions, payments) = (
            shop.carts.local().clone(),
            shop.products.local().clone(),
            shop.orders.local().clone(),
            shop.customers.local().clone(),
            shop.sessions.local().clone(),
            shop.payments.local().clone(),
        );
        cluster.on_lead_change(Arc::new(move |shard, _leads| {
            // Another node may have changed them meanwhile: forget, read afresh.
            current.forget_shard(shard, shards);
            carts.reset(shard);
            products.reset(shard);
            orders.reset(shard);
            customers.reset(shard);
            sessions.reset(shard);
            payments.reset(shard);
        }));
    }
}

/// The auth settings of `config`, with the signing secret loaded or generated.
pub fn auth(config: &Config) -> anyhow::Result<Auth> {
    let secret = load_secret(&config.auth.jwt_secret, &config.storage.data_dir)?;
    Ok(Auth {
        tokens: Tokens::new(
            &secret,
            std::time::Duration::from_secs(config.auth.access_token_ttl_secs),
            std::time::Duration::from_secs(config.auth.refresh_token_ttl_secs),
        ),
        limiter: LoginLimiter::new(
            config.auth.login_max_failures,
            std::time::Duration::from_secs(config.auth.login_lockout_secs),
        ),
        buckets: crate::auth::limiter::AddressBuckets::new(
            config.auth.auth_rate_per_minute,
            config.auth.auth_burst,
        ),
        hasher: ecommesh_commerce::passwords::Hasher::new(
            match config.auth.password_hash_concurrency {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            },
            std::time::Duration::from_millis(config.auth.password_hash_wait_ms),
        ),
        // A single node hears every change of every session at once; a cluster node only
        // those of the shards it leads, so it trusts an "active" verdict for 2 s.
        sessions: Arc::new(crate::auth::revocation::SessionGate::new(
            if config.cluster.node_id == 0 {
                std::time::Duration::from_secs(config.auth.access_token_ttl_secs)
            } else {
                std::time::Duration::from_secs(2)
            },
        )),
    })
}
