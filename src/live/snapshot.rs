//! What a new subscriber is sent first: the topic's current state, with the sequence
//! numbers that later updates continue from.

use std::collections::HashMap;

use ecommesh_persistence::now_ms;
use serde_json::{json, Value};

use super::protocol::Topic;
use crate::app::AppState;
use crate::http::errors::ApiError;
use crate::views::product;

/// A customer's most recent orders shown on subscribe; older ones are in the REST API.
const ORDERS_SHOWN: usize = 50;

pub struct Snapshot {
    pub seq: u64,
    pub data: Value,
    /// Per entity, the sequence number shown.
    pub shown: HashMap<Box<str>, u64>,
}

fn json_of(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).expect("views always serialize")
}

/// The current state of `topic` for `customer` (who may subscribe was checked before).
pub async fn of(
    node: &AppState,
    topic: &Topic,
    customer: Option<&str>,
) -> Result<Snapshot, ApiError> {
    let customer = customer.unwrap_or_default();
    Ok(match topic {
        Topic::Product(id) => {
            let reply = node.shop.products.read(id.clone()).await?;
            let view = product::view(id, &reply.state, now_ms())
                .ok_or_else(|| ApiError::not_found(format!("product {id} does not exist")))?;
            Snapshot {
                seq: reply.seq,
                data: json_of(&view),
                shown: HashMap::from([(id.as_str().into(), reply.seq)]),
            }
        }
        Topic::Catalog => Snapshot {
            seq: 0,
            data: json!({ "products": node.catalog.read().len() }),
            shown: HashMap::new(),
        },
        Topic::Cart => {
            let reply = node.shop.carts.read(customer.to_owned()).await?;
            let seq = reply.seq;
            let view = crate::views::cart::view(node, reply).await?;
            Snapshot {
                seq,
                data: json_of(&view),
                shown: HashMap::from([(customer.into(), seq)]),
            }
        }
        Topic::Orders => {
            let ids: Vec<String> = node
                .order_book
                .read()
                .for_customer(customer)
                .into_iter()
                .take(ORDERS_SHOWN)
                .map(|(id, _)| id.to_owned())
                .collect();
            let mut orders = Vec::with_capacity(ids.len());
            let mut shown = HashMap::new();
            for id in ids {
                let reply = node.shop.orders.read(id.clone()).await?;
                orders.push(json_of(
                    &crate::views::order::order_view(node, &id, &reply.state).await?,
                ));
                shown.insert(id.into_boxed_str(), reply.seq);
            }
            Snapshot {
                seq: 0,
                data: json!({ "orders": orders }),
                shown,
            }
        }
        Topic::AdminSales => {
            let board = node.live.sales.lock().snapshot();
            Snapshot {
                seq: board.ticks.last().map_or(0, |t| t.seq),
                data: json_of(&board),
                shown: HashMap::new(),
            }
        }
        Topic::AdminStock => {
            let list = node.live.low_stock.lock();
            Snapshot {
                seq: 0,
                data: json!({
                    "threshold": node.live_settings.low_stock_threshold,
                    "products": list.values().collect::<Vec<_>>(),
                }),
                shown: list
                    .values()
                    .map(|l| (l.product_id.as_str().into(), l.seq))
                    .collect(),
            }
        }
    })
}
