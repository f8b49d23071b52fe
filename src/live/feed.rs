//! The feed: turns each durable change into the messages of the topics it concerns, in
//! the order the changes became durable, rendering each message once for all sockets.

use std::time::Duration;

use actix_web::web;
use ecommesh_actors::{Committed, Entity, Reply};
use ecommesh_commerce::order::{OrderEvent, OrderState};
use ecommesh_commerce::product::ProductEvent;
use ecommesh_commerce::Money;
use ecommesh_commerce::{Cart, Order, Product};
use ecommesh_persistence::now_ms;
use tokio::sync::mpsc;

use super::hub::Frame;
use super::protocol::{cart_channel, orders_channel, product_channel, Update};
use super::sales::{Sale, SaleLine};
use super::{Change, LowStock};
use crate::app::AppState;
use crate::views::{self, MoneyJson};

/// Starts the feed and the per-second sales ticker on their own thread. Call once, after
/// the catalog projection has caught up (it seeds the low-stock list).
pub fn spawn(node: web::Data<AppState>) {
    let Some(changes) = node.live.take_changes() else {
        return;
    };
    seed_low_stock(&node);
    // A thread of its own: the projections' catch-up reads the journal on the main
    // thread, and a live update must not wait behind it (measured: 20 ms stalls).
    let feed = actix_rt::Arbiter::new();
    feed.spawn(run(node.clone(), changes));
    feed.spawn(tick(node));
}

fn seed_low_stock(node: &AppState) {
    let threshold = node.live_settings.low_stock_threshold;
    let now = now_ms();
    let catalog = node.catalog.read();
    let mut low = node.live.low_stock.lock();
    for (id, state) in catalog.products() {
        let (Some(d), false) = (&state.details, state.archived) else {
            continue;
        };
        let available = state.available_at(now);
        if available <= threshold {
            low.insert(
                id.to_owned(),
                LowStock {
                    product_id: id.to_owned(),
                    name: d.name.clone(),
                    available,
                    threshold,
                    seq: 0,
                },
            );
        }
    }
}

/// Changes taken from the queue at a time.
const BATCH: usize = 256;

/// How long the feed lets changes gather after a busy batch. Each change queued while the
/// feed waits for one wakes its thread from the group-commit thread (a syscall on the
/// path of every acknowledgement: ~1% of a checkout's CPU); under load, a short pause
/// turns thousands of those into hundreds. A lone change is still sent at once.
const GATHER: Duration = Duration::from_millis(1);

async fn run(node: web::Data<AppState>, mut changes: mpsc::UnboundedReceiver<Change>) {
    let mut batch = Vec::with_capacity(BATCH);
    while changes.recv_many(&mut batch, BATCH).await > 0 {
        let busy = batch.len() > 1;
        for change in batch.drain(..) {
            match change {
                Change::Product(c) => product(&node, &c),
                Change::Cart(c) => cart(&node, c).await,
                Change::Order(c) => order(&node, &c).await,
            }
        }
        if busy {
            actix_web::rt::time::sleep(GATHER).await;
        }
    }
}

/// Closes a second of sales every second and tells the dashboards.
async fn tick(node: web::Data<AppState>) {
    let mut every = actix_web::rt::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let mut board = node.live.sales.lock();
        let tick = board.tick(now_ms() / 1000);
        let text = Update {
            kind: "update",
            topic: "admin:sales",
            event: "tick",
            id: None,
            seq: tick.seq,
            prev_seq: None,
            data: &tick,
        }
        .render();
        node.live.hub.publish(
            "admin:sales",
            Frame {
                entity: None,
                seq: tick.seq,
                text,
            },
        );
        drop(board);
        if tick.seq.is_multiple_of(30) {
            node.live.hub.prune();
        }
    }
}

fn event_names<E: Entity>(events: &[E::Event]) -> String {
    let names: Vec<&str> = events.iter().map(E::event_type).collect();
    names.join(",")
}

/// Renders change `c` as an `update` of `topic` (its new state: `data`) and publishes it
/// on `channel`, with the entity's sequence numbers; nothing is rendered for a channel
/// nobody listens to.
fn publish_change<E: Entity>(
    node: &AppState,
    channel: &str,
    topic: &str,
    event: &str,
    id: Option<&str>,
    c: &Committed<E>,
    data: &impl serde::Serialize,
) {
    if !node.live.hub.has_subscribers(channel) {
        return;
    }
    let text = Update {
        kind: "update",
        topic,
        event,
        id,
        seq: c.seq,
        prev_seq: Some(c.prev_seq),
        data,
    }
    .render();
    let frame = Frame {
        entity: Some(c.id.as_ref().into()),
        seq: c.seq,
        text,
    };
    node.live.hub.publish(channel, frame);
}

fn product(node: &AppState, c: &Committed<Product>) {
    let id: &str = &c.id;
    let now = now_ms();
    let hub = &node.live.hub;
    let channel = product_channel(id);
    let listed = c.events.iter().any(|e| {
        matches!(
            e,
            ProductEvent::Created { .. } | ProductEvent::Updated(_) | ProductEvent::Archived
        )
    });
    // The view is made only for someone: most stock changes (every sale) have no watcher.
    if hub.has_subscribers(&channel) || (listed && hub.has_subscribers("catalog")) {
        let view = views::product::view(id, &c.state, now);
        let event = event_names::<Product>(&c.events);
        publish_change(node, &channel, &channel, &event, Some(id), c, &view);
        if listed {
            publish_change(node, "catalog", "catalog", &event, Some(id), c, &view);
        }
    }
    low_stock(node, c, now);
}

/// Reports a product that falls to the threshold or below (and each change while it is
/// there), and once more when it leaves the list (restocked or archived).
fn low_stock(node: &AppState, c: &Committed<Product>, now: u64) {
    let Some(d) = &c.state.details else { return };
    let threshold = node.live_settings.low_stock_threshold;
    let available = c.state.available_at(now);
    let low = !c.state.archived && available <= threshold;
    let mut list = node.live.low_stock.lock();
    let known = list.get(c.id.as_ref()).map(|l| l.available);
    let entry = LowStock {
        product_id: c.id.to_string(),
        name: d.name.clone(),
        available,
        threshold,
        seq: c.seq,
    };
    let event = match (low, known) {
        (true, Some(before)) if before == available => return,
        (true, _) => {
            list.insert(entry.product_id.clone(), entry.clone());
            "low_stock"
        }
        (false, Some(_)) => {
            list.remove(c.id.as_ref());
            "stock_ok"
        }
        (false, None) => return,
    };
    drop(list);
    publish_change(
        node,
        "admin:stock",
        "admin:stock",
        event,
        Some(&c.id),
        c,
        &entry,
    );
}

/// Tells a channel's subscribers to subscribe again because an update could not be
/// rendered: a client is never left silently behind.
fn resync(node: &AppState, channel: &str, topic: &str, why: &str) {
    tracing::warn!(
        channel,
        why,
        "live update not rendered; subscribers told to resync"
    );
    let text = serde_json::json!({
        "type": "resync",
        "topic": topic,
        "message": format!("an update could not be sent ({why}); subscribe again"),
    })
    .to_string();
    node.live.hub.publish(
        channel,
        Frame {
            entity: None,
            seq: 0,
            text: text.into(),
        },
    );
}

async fn cart(node: &AppState, c: Committed<Cart>) {
    let channel = cart_channel(&c.id);
    if !node.live.hub.has_subscribers(&channel) {
        return;
    }
    let event = event_names::<Cart>(&c.events);
    let reply = Reply {
        seq: c.seq,
        state: c.state.clone(),
    };
    match crate::views::cart::view(node, reply).await {
        Ok(view) => {
            publish_change(node, &channel, "cart", &event, None, &c, &view);
        }
        Err(e) => resync(node, &channel, "cart", &e.detail),
    }
}

async fn order(node: &AppState, c: &Committed<Order>) {
    let id: &str = &c.id;
    let event = event_names::<Order>(&c.events);
    let channel = orders_channel(&c.state.customer_id);
    if node.live.hub.has_subscribers(&channel) {
        match crate::views::order::order_view(node, id, &c.state).await {
            Ok(view) => {
                publish_change(node, &channel, "orders", &event, Some(id), c, &view);
            }
            Err(e) => resync(node, &channel, "orders", &e.detail),
        }
    }
    for e in &c.events {
        let (kind, amount) = match e {
            OrderEvent::Paid { .. } => ("paid", c.state.total),
            OrderEvent::Cancelled { .. } => ("cancelled", c.state.total),
            OrderEvent::Refunded { amount, .. } => ("refunded", Some(*amount)),
            _ => continue,
        };
        let sale = sale(node, id, &c.state, kind, amount, c.seq, c.at_ms).await;
        // Recorded and published under one lock, as ticks are: a sale's message always
        // comes before the first tick that counts it.
        let mut board = node.live.sales.lock();
        board.record(&sale);
        // Under the lock: a dashboard that subscribes after the publish (and so is not
        // sent it) reads a board that already counts this sale.
        publish_change(node, "admin:sales", "admin:sales", kind, Some(id), c, &sale);
        drop(board);
    }
}

async fn sale(
    node: &AppState,
    id: &str,
    o: &OrderState,
    kind: &'static str,
    amount: Option<Money>,
    seq: u64,
    at_ms: u64,
) -> Sale {
    let mut lines = Vec::with_capacity(o.lines.len());
    for l in &o.lines {
        lines.push(SaleLine {
            product_id: l.product_id.clone(),
            name: crate::views::product::product_name(node, &l.product_id).await,
            quantity: l.quantity,
        });
    }
    Sale {
        order_id: id.to_owned(),
        customer_id: o.customer_id.clone(),
        kind,
        amount: MoneyJson::from_money(amount.unwrap_or(Money::new(0, node.shop.currency))),
        items: lines.iter().map(|l| l.quantity as u64).sum(),
        lines,
        at: views::rfc3339(at_ms),
        seq,
    }
}
