//! Finishing checkouts that died: a checkout saga interrupted by a crash (or a lost
//! worker) leaves an order in `pending_payment`. Every few seconds the reconciler looks
//! for such orders older than `checkout_timeout_secs` and resumes or compensates them:
//!
//! - charged (recorded, or known to the provider): sell the reserved stock and mark the
//!   order paid; if a reservation expired and its stock is gone, refund instead (a
//!   reservation found gone while it cannot have expired yet was sold by the saga before
//!   it died; past that point it is taken as expired, the side that never oversells);
//! - declined: cancel and release;
//! - never charged: cancel and release (the holds would also expire on their own).
//!
//! Every step is idempotent, so a reconciler that dies itself is simply run again.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use ecommesh_actors::EntityError;
use ecommesh_commerce::order::{OrderCommand, OrderStatus};
use ecommesh_commerce::payment::{Outcome, PaymentCommand};
use ecommesh_commerce::product::{ProductCommand, ProductRejection};

use crate::node::Node;

const EVERY: Duration = Duration::from_secs(2);
/// Slack between an order's placement and its reservations' expiry, for clock steps and
/// the time between reserving and placing.
const HOLD_MARGIN_MS: u64 = 60_000;

/// Runs the reconciler until the node stops.
pub fn spawn(node: web::Data<Node>, timeout: Duration) {
    actix_web::rt::spawn(async move {
        loop {
            actix_web::rt::time::sleep(EVERY).await;
            let cutoff = ecommesh_persistence::now_ms().saturating_sub(timeout.as_millis() as u64);
            let stuck: Vec<String> = {
                let book = node.order_book.read();
                book.all(Some(OrderStatus::PendingPayment))
                    .into_iter()
                    .filter(|(_, o)| o.placed_at_ms <= cutoff)
                    // In a cluster, the node leading the order's shard finishes it.
                    .filter(|(id, _)| node.leads(node.orders.shard_of(id)))
                    .map(|(id, _)| id.to_owned())
                    .collect()
            };
            // Sales a checkout could not record: record them, and settle an order that
            // was cancelled meanwhile (its cancel could not know of them).
            let sales: Vec<(String, String)> =
                node.unrecorded_sales.lock().iter().cloned().collect();
            for (id, product_id) in sales {
                let record = OrderCommand::RecordSale {
                    product_id: product_id.clone(),
                };
                let Ok(after) = node.orders.execute(id.clone(), record, None).await else {
                    continue; // tried again next round
                };
                let settled = after.state.status != OrderStatus::Cancelled
                    || crate::http::orders::settle(&node, &id).await.is_ok();
                if settled {
                    node.unrecorded_sales.lock().remove(&(id, product_id));
                }
            }
            // Refunds recorded but not confirmed (the provider failed): ask again.
            let refunds: Vec<String> = node.unfinished_refunds.lock().iter().cloned().collect();
            for id in refunds {
                match crate::http::orders::settle(&node, &id).await {
                    Ok(()) => {
                        node.unfinished_refunds.lock().remove(&id);
                        tracing::info!(order = %id, "finished a refund the provider had failed");
                    }
                    Err(e) => {
                        tracing::warn!(order = %id, error = %e, "a refund is still unfinished")
                    }
                }
            }
            for id in stuck {
                match reconcile(&node, &id).await {
                    Ok(outcome) => {
                        tracing::info!(order = %id, outcome, "reconciled an interrupted checkout")
                    }
                    Err(e) => {
                        tracing::warn!(order = %id, error = %e, "could not reconcile an interrupted checkout yet")
                    }
                }
            }
        }
    });
}

/// Resumes or compensates one interrupted checkout.
pub async fn reconcile(node: &Arc<Node>, id: &str) -> anyhow::Result<&'static str> {
    let err = |e: ecommesh_actors::EntityError<_>| anyhow::anyhow!("{e}");
    let read = node.orders.read(id.to_owned()).await.map_err(err)?;
    // Every change below is made only if the order is still at this version: a saga
    // that is slow, not dead, may settle it meanwhile, and a paid order must never be
    // cancelled from under the customer it was acknowledged to.
    let (order, seen) = (read.state, read.seq);
    if order.status != OrderStatus::PendingPayment {
        return Ok("already settled");
    }
    let total = order.total.expect("a placed order has a total");
    let mut payment = node
        .payments
        .read(id.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .state;
    if payment.outcome.is_none() {
        if let Some(outcome) = node.payment_provider.find_charge(id).await? {
            let record = PaymentCommand::Record {
                provider: node.payment_provider.name().to_owned(),
                amount: total,
                outcome,
            };
            payment = node
                .payments
                .execute(id.to_owned(), record, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .state;
        }
    }
    match &payment.outcome {
        Some(Outcome::Charged { charge_id }) => {
            // A reservation that is gone was either sold by the saga before it died, or
            // expired. While the hold cannot have expired yet, gone means sold. After
            // that we cannot tell, and choose the side that never oversells: refund, and
            // undo only the sales made here.
            let hold_ends = order.placed_at_ms + node.reservation_ttl.as_millis() as u64;
            let surely_held = ecommesh_persistence::now_ms() + HOLD_MARGIN_MS < hold_ends;
            let mut seen = seen;
            for l in &order.lines {
                let commit = ProductCommand::Commit {
                    reservation_id: id.to_owned(),
                };
                match node
                    .products
                    .execute(l.product_id.clone(), commit, None)
                    .await
                {
                    Ok(_) => {}
                    Err(EntityError::Rejected(ProductRejection::NoReservation { .. }))
                        if surely_held => {}
                    // Only a hold that is gone means refunding; anything else (a shard
                    // without a leader, a timeout) is tried again next round.
                    Err(e @ EntityError::Rejected(ProductRejection::NoReservation { .. })) => {
                        tracing::warn!(order = id, product = %l.product_id, error = %e, "stock no longer held; refunding");
                        cancel(
                            node,
                            id,
                            seen,
                            "reservation expired before the payment completed",
                        )
                        .await?;
                        // Puts back every line recorded as sold (by the dead saga or
                        // above) and refunds the charge.
                        crate::http::orders::settle(node, id)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        return Ok("refunded: stock no longer reserved");
                    }
                    Err(e) => return Err(anyhow::anyhow!("selling the held stock: {e}")),
                }
                // Sold, here or by the saga before it died: recorded on the order, so
                // that a refund puts it back.
                let record = OrderCommand::RecordSale {
                    product_id: l.product_id.clone(),
                };
                let after = node
                    .orders
                    .execute(id.to_owned(), record, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if after.state.status == OrderStatus::Cancelled {
                    // Cancelled while this round sold: put back what was sold (the
                    // cancel may have read the order before this sale was recorded).
                    crate::http::orders::settle(node, id)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    return Ok("cancelled meanwhile: settled");
                }
                if after.state.status != OrderStatus::PendingPayment {
                    return Ok("already settled");
                }
                seen = after.seq;
            }
            let paid = OrderCommand::MarkPaid {
                payment_ref: charge_id.clone(),
            };
            node.orders
                .execute(id.to_owned(), paid, Some(seen))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok("resumed: paid")
        }
        Some(Outcome::Declined { reason }) => {
            cancel(node, id, seen, &format!("payment_declined: {reason}")).await?;
            crate::http::orders::release(
                node,
                id,
                order.lines.iter().map(|l| l.product_id.clone()),
            )
            .await;
            Ok("compensated: declined")
        }
        None => {
            cancel(node, id, seen, "checkout interrupted before payment").await?;
            crate::http::orders::release(
                node,
                id,
                order.lines.iter().map(|l| l.product_id.clone()),
            )
            .await;
            Ok("compensated: never charged")
        }
    }
}

/// Cancels the order if it is still at version `seen` (still pending, untouched since).
async fn cancel(node: &Node, id: &str, seen: u64, reason: &str) -> anyhow::Result<()> {
    let cmd = OrderCommand::Cancel {
        reason: reason.to_owned(),
    };
    node.orders
        .execute(id.to_owned(), cmd, Some(seen))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
