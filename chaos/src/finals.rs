//! The final reads: after the faults are healed and the cluster has recovered, every
//! node is asked for everything the checker compares.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::api::{Answer, Api};
use crate::checker::{NodeFinal, Order, Stock};
use crate::docker::Node;
use crate::workload::Setup;

/// A read retried a few times: the cluster should answer, but a request may still land
/// on a leader that is catching up.
async fn read(api: &Api, node: &Node, path: &str, token: &str) -> Result<Value, String> {
    let mut last = String::new();
    for _ in 0..5 {
        match api.get(node, path, Some(token)).await {
            Answer::Ok(v) => return Ok(v),
            other => last = format!("GET {path}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last)
}

pub async fn read_node(api: &Api, node: &Node, setup: &Setup, admin: &str) -> NodeFinal {
    let mut f = NodeFinal {
        node: node.name(),
        ..NodeFinal::default()
    };
    for p in &setup.products {
        match read(api, node, &format!("/products/{}", p.id), admin).await {
            Ok(v) => {
                let st = &v["stock"];
                f.stock.insert(
                    p.id.clone(),
                    Stock {
                        available: st["available"].as_u64().unwrap_or(0),
                        reserved: st["reserved"].as_u64().unwrap_or(0),
                        sold: st["sold"].as_u64().unwrap_or(0),
                        received: st["received"].as_u64().unwrap_or(0),
                    },
                );
            }
            Err(e) => f.errors.push(e),
        }
    }
    match read(api, node, "/products?category=chaos&per_page=100", admin).await {
        Ok(v) => {
            for item in v["items"].as_array().into_iter().flatten() {
                if let (Some(id), Some(a)) =
                    (item["id"].as_str(), item["stock"]["available"].as_u64())
                {
                    f.catalog.insert(id.to_owned(), a);
                }
            }
        }
        Err(e) => f.errors.push(e),
    }
    // This node's own order list, page by page, then each order in full.
    let mut ids = Vec::new();
    for page in 1..=1000 {
        match read(
            api,
            node,
            &format!("/admin/orders?per_page=100&page={page}"),
            admin,
        )
        .await
        {
            Ok(v) => {
                let items = v["items"].as_array().cloned().unwrap_or_default();
                ids.extend(items.iter().filter_map(|o| {
                    Some((
                        o["id"].as_str()?.to_owned(),
                        o["status"].as_str()?.to_owned(),
                    ))
                }));
                if items.len() < 100 {
                    break;
                }
            }
            Err(e) => {
                f.errors.push(e);
                break;
            }
        }
    }
    for (id, listed_status) in ids {
        match read(api, node, &format!("/orders/{id}"), admin).await {
            Ok(v) => {
                let status = v["status"].as_str().unwrap_or_default().to_owned();
                if status != listed_status {
                    f.errors.push(format!(
                        "order {id}: listed as {listed_status}, the order itself says {status}"
                    ));
                }
                let mut lines = BTreeMap::new();
                for l in v["lines"].as_array().into_iter().flatten() {
                    if let (Some(p), Some(q)) = (l["product_id"].as_str(), l["quantity"].as_u64()) {
                        *lines.entry(p.to_owned()).or_insert(0) += q;
                    }
                }
                f.orders.insert(
                    id,
                    Order {
                        customer: v["customer_id"].as_str().unwrap_or_default().to_owned(),
                        status,
                        lines,
                        charge: v["payment"]["charge_id"].as_str().map(str::to_owned),
                    },
                );
            }
            Err(e) => f.errors.push(e),
        }
    }
    for c in &setup.customers {
        match read(api, node, "/cart", &c.token).await {
            Ok(v) => {
                let mut lines = BTreeMap::new();
                for l in v["items"].as_array().into_iter().flatten() {
                    if let (Some(p), Some(q)) = (l["product_id"].as_str(), l["quantity"].as_u64()) {
                        lines.insert(p.to_owned(), q);
                    }
                }
                f.carts.insert(c.id.clone(), lines);
            }
            Err(e) => f.errors.push(e),
        }
    }
    match read(api, node, "/admin/cluster", admin).await {
        Ok(v) => {
            for s in v["shards"].as_array().into_iter().flatten() {
                if let Some(shard) = s["shard"].as_u64() {
                    f.leaders.insert(shard as u32, s["leader"].as_u64());
                }
            }
        }
        Err(e) => f.errors.push(e),
    }
    f
}
