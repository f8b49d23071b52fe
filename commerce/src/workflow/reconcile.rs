//! Finishing workflows that died: a checkout interrupted by a crash (or a lost worker)
//! leaves an order in `pending_payment`. Every few seconds the reconciler looks for such
//! orders older than the checkout timeout and resumes or compensates them, with the
//! checkout's own steps:
//!
//! - charged (recorded, or known to the provider): sell the holds and mark the order paid
//!   ([`steps::complete_sale`]); if a hold is gone and its stock may be someone else's,
//!   refund instead (a hold found gone while it cannot have expired yet was sold by the
//!   saga before it died; past that point it is taken as expired, the side that never
//!   oversells);
//! - declined: cancel and release;
//! - never charged: cancel and release (the holds would also expire on their own).
//!
//! It also finishes what workflows left it ([`crate::shop::Unfinished`]): sales a checkout
//! made but could not record, and refunds the provider did not confirm. Every step is
//! idempotent, so a reconciler that dies itself is simply run again.

use std::sync::Arc;
use std::time::Duration;

use super::settle::{resume_refund, settle, SettleError};
use super::steps::{self, cancel_order, complete_sale, Completion, FailedSale, SaleEnd, Write};
use super::StepError;
use crate::order::book::OrderBook;
use crate::order::{CancelReason, OrderCommand, OrderStatus};
use crate::payment::provider::ProviderError;
use crate::payment::{Outcome, PaymentCommand};
use crate::projection::Projection;
use crate::shop::Shop;

/// How often the reconciler looks.
pub const EVERY: Duration = Duration::from_secs(2);

/// Slack between an order's placement and its holds' expiry, for clock steps and the
/// time between holding and placing.
const HOLD_MARGIN_MS: u64 = 60_000;

/// What the reconciler did with an interrupted checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// Someone else finished it first.
    AlreadySettled,
    /// Charged: its holds sold and the order marked paid.
    Paid,
    /// Charged, but a hold was gone: cancelled, sales reversed, refunded.
    Refunded,
    /// Cancelled while this round sold its holds: what was sold is put back.
    CancelledMeanwhile,
    /// Declined: cancelled and its holds released.
    Declined,
    /// Never charged: cancelled and its holds released.
    NeverCharged,
}

impl Reconciled {
    pub fn as_str(self) -> &'static str {
        match self {
            Reconciled::AlreadySettled => "already settled",
            Reconciled::Paid => "resumed: paid",
            Reconciled::Refunded => "refunded: stock no longer reserved",
            Reconciled::CancelledMeanwhile => "cancelled meanwhile: settled",
            Reconciled::Declined => "compensated: declined",
            Reconciled::NeverCharged => "compensated: never charged",
        }
    }
}

/// Why an interrupted checkout could not be finished yet (it is tried again next round).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Step(#[from] StepError),
    #[error("asking the provider for the charge: {0}")]
    FindCharge(ProviderError),
    #[error(transparent)]
    Settle(#[from] SettleError),
}

/// Runs the reconciler until the node stops: a round every [`EVERY`], finishing
/// checkouts older than `timeout`.
pub async fn run(shop: Arc<Shop>, order_book: Arc<Projection<OrderBook>>, timeout: Duration) {
    loop {
        tokio::time::sleep(EVERY).await;
        round(&shop, &order_book, timeout).await;
    }
}

/// One round: the sales and refunds left unfinished, then every checkout pending for
/// longer than `timeout` whose order's shard this node leads.
pub async fn round(shop: &Shop, order_book: &Projection<OrderBook>, timeout: Duration) {
    let cutoff = ecommesh_persistence::now_ms().saturating_sub(timeout.as_millis() as u64);
    let stuck: Vec<String> = {
        let book = order_book.read();
        book.all(Some(OrderStatus::PendingPayment))
            .into_iter()
            .filter(|(_, o)| o.placed_at_ms <= cutoff)
            // In a cluster, the node leading the order's shard finishes it.
            .filter(|(id, _)| shop.orders.leads(shop.orders.shard_of(id)))
            .map(|(id, _)| id.to_owned())
            .collect()
    };
    // Sales a checkout could not record: record them, and settle an order that was
    // cancelled meanwhile (its cancel could not know of them).
    let sales: Vec<(String, String)> = shop.unfinished.sales.lock().iter().cloned().collect();
    for (id, product_id) in sales {
        let record = OrderCommand::RecordSale {
            product_id: product_id.clone(),
        };
        let Ok(after) = shop.orders.execute(id.clone(), record, None).await else {
            continue; // tried again next round
        };
        let settled =
            after.state.status != OrderStatus::Cancelled || settle(shop, &id).await.is_ok();
        if settled {
            shop.unfinished.sales.lock().remove(&(id, product_id));
        }
    }
    // Refunds recorded but not confirmed (the provider failed): ask again.
    let refunds: Vec<String> = shop.unfinished.refunds.lock().iter().cloned().collect();
    for id in refunds {
        match resume_refund(shop, &id).await {
            Ok(()) => {
                shop.unfinished.refunds.lock().remove(&id);
                tracing::info!(order = %id, "finished a refund the provider had failed");
            }
            Err(e) => tracing::warn!(order = %id, error = %e, "a refund is still unfinished"),
        }
    }
    for id in stuck {
        match reconcile(shop, &id).await {
            Ok(outcome) => {
                tracing::info!(order = %id, outcome = outcome.as_str(), "reconciled an interrupted checkout")
            }
            Err(e) => {
                tracing::warn!(order = %id, error = %e, "could not reconcile an interrupted checkout yet")
            }
        }
    }
}

/// Resumes or compensates one interrupted checkout.
pub async fn reconcile(shop: &Shop, id: &str) -> Result<Reconciled, ReconcileError> {
    let read = shop
        .orders
        .read(id.to_owned())
        .await
        .map_err(StepError::Order)?;
    // Every change below is made only if the order is still at this version: a saga
    // that is slow, not dead, may settle it meanwhile, and a paid order must never be
    // cancelled from under the customer it was acknowledged to.
    let (order, seen) = (read.state, read.seq);
    if order.status != OrderStatus::PendingPayment {
        return Ok(Reconciled::AlreadySettled);
    }
    let total = order.total.expect("a placed order has a total");
    let mut payment = shop
        .payments
        .read(id.to_owned())
        .await
        .map_err(StepError::Payment)?
        .state;
    if payment.outcome.is_none() {
        let found = shop
            .provider
            .find_charge(id)
            .await
            .map_err(ReconcileError::FindCharge)?;
        if let Some(outcome) = found {
            let record = PaymentCommand::Record {
                provider: shop.provider.name().to_owned(),
                amount: total,
                outcome,
            };
            payment = shop
                .payments
                .execute(id.to_owned(), record, None)
                .await
                .map_err(StepError::Payment)?
                .state;
        }
    }
    let products = || order.lines.iter().map(|l| l.product_id.clone());
    match &payment.outcome {
        Some(Outcome::Charged { charge_id }) => {
            // While the hold cannot have expired yet, a hold found gone was sold (by the
            // saga before it died).
            let hold_ends = order.placed_at_ms + shop.reservation_ttl.as_millis() as u64;
            let how = Completion {
                write: Write::Durable,
                gone_hold_was_sold: ecommesh_persistence::now_ms() + HOLD_MARGIN_MS < hold_ends,
                failed_sale: FailedSale::Retry,
                seen: Some(seen),
                #[cfg(feature = "test-hooks")]
                pause_after_first_sale: false,
            };
            let all: Vec<String> = products().collect();
            match complete_sale(shop, id, &all, charge_id, &how).await? {
                SaleEnd::Paid(_) => Ok(Reconciled::Paid),
                SaleEnd::HoldLost { seen } => {
                    cancel_order(shop, id, CancelReason::HoldExpired, seen)
                        .await
                        .map_err(StepError::Order)?;
                    // The holds of the lines not sold yet go back now, not at their expiry.
                    steps::release_stock(shop, id, products()).await;
                    // Puts back every line recorded as sold (by the dead saga or here)
                    // and refunds the charge.
                    settle(shop, id).await?;
                    Ok(Reconciled::Refunded)
                }
                SaleEnd::CancelledMeanwhile => {
                    // The cancel may have read the order before these sales were recorded.
                    settle(shop, id).await?;
                    Ok(Reconciled::CancelledMeanwhile)
                }
                SaleEnd::SettledMeanwhile => Ok(Reconciled::AlreadySettled),
            }
        }
        Some(Outcome::Declined { reason }) => {
            let code = reason.clone();
            cancel_order(shop, id, CancelReason::PaymentDeclined { code }, Some(seen))
                .await
                .map_err(StepError::Order)?;
            steps::release_stock(shop, id, products()).await;
            Ok(Reconciled::Declined)
        }
        None => {
            cancel_order(shop, id, CancelReason::Interrupted, Some(seen))
                .await
                .map_err(StepError::Order)?;
            steps::release_stock(shop, id, products()).await;
            Ok(Reconciled::NeverCharged)
        }
    }
}
