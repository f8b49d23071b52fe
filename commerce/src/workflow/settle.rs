//! Settling an order: undoing its sale. [`settle`] puts the sold units back and refunds
//! what was charged; [`cancel`] cancels an order before it ships and settles it.
//!
//! Settling works from the order's current state (read afresh), so it reverses what was
//! sold even when a cancel raced the checkout that sold it. Every step is idempotent and
//! recorded: a line is reversed once (recorded on the order), a refund is asked of the
//! provider once (its intent recorded on the payment first, with the idempotency key the
//! provider gets), an order is refunded once; so a retry after a crash finishes the job.

use ecommesh_actors::EntityError;

use super::steps::{cancel_order, release_stock};
use super::StepError;
use crate::order::{CancelReason, OrderCommand, OrderRejection, OrderState, OrderStatus};
use crate::payment::provider::ProviderError;
use crate::payment::PaymentCommand;
use crate::product::ProductCommand;
use crate::shop::Shop;

/// Why an order could not be settled (yet).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Step(#[from] StepError),
    /// The provider did not confirm the refund; it is recorded as intended and asked again
    /// (same idempotency key) until it is.
    #[error("payment provider: {0}")]
    Refund(ProviderError),
}

impl SettleError {
    fn transient(&self) -> bool {
        match self {
            SettleError::Step(e) => e.transient(),
            SettleError::Refund(_) => true,
        }
    }
}

/// How long a refund intent recorded by another caller is left to it before anyone else
/// finishes it (it died between recording the intent and the provider's answer).
const REFUND_IN_FLIGHT_MS: u64 = 30_000;

/// Undoes order `id`'s sale: puts the sold units back and refunds what was charged (a
/// partial return: its units). A step that met a stale state or a shard between leaders
/// is tried again (every step is idempotent, and a cancel must not stop halfway with its
/// stock still sold); a refund left unconfirmed is handed to the reconciler.
pub async fn settle(shop: &Shop, id: &str) -> Result<(), SettleError> {
    settle_as(shop, id, Intent { ours: false }).await
}

/// [`settle`] of an order whose refund this node recorded as intended and the provider
/// did not confirm ([`crate::shop::Unfinished::refunds`]): the intent is this node's to
/// finish, however recent it is. (Taken as someone else's, it was left alone for
/// `REFUND_IN_FLIGHT_MS` and then dropped from the list, unrefunded.)
pub async fn resume_refund(shop: &Shop, id: &str) -> Result<(), SettleError> {
    settle_as(shop, id, Intent { ours: true }).await
}

async fn settle_as(shop: &Shop, id: &str, mut intent: Intent) -> Result<(), SettleError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match settle_once(shop, id, &mut intent).await {
            Err(e) if attempt < 3 && e.transient() => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => {
                if intent.ours {
                    // A refund recorded and not confirmed (the provider failed): the
                    // reconciler asks again, with the same key, until it is done.
                    shop.unfinished.refunds.lock().insert(id.to_owned());
                }
                return Err(e);
            }
            ok => return ok,
        }
    }
}

/// Whether this settle recorded the refund intent it is finishing.
struct Intent {
    ours: bool,
}

async fn settle_once(shop: &Shop, id: &str, intent: &mut Intent) -> Result<(), SettleError> {
    let order = shop
        .orders
        .read(id.to_owned())
        .await
        .map_err(StepError::Order)?
        .state;
    for (product_id, quantity) in order.to_reverse() {
        // Step: reverse the line's sale on its product, then record it on the order.
        let reverse = ProductCommand::ReverseSale {
            order_id: id.to_owned(),
            quantity: quantity as u64,
        };
        shop.products
            .execute(product_id.clone(), reverse, None)
            .await
            .map_err(StepError::Product)?;
        let done = OrderCommand::RecordReversal { product_id };
        shop.orders
            .execute(id.to_owned(), done, None)
            .await
            .map_err(StepError::Order)?;
    }
    if !refund_charge(shop, id, &order, intent).await? {
        // Another caller is refunding right now; it finishes the order too.
        return Ok(());
    }
    if order.was_paid {
        match shop
            .orders
            .execute(id.to_owned(), OrderCommand::Refund, None)
            .await
        {
            Ok(_) | Err(EntityError::Rejected(OrderRejection::IllegalTransition { .. })) => {}
            Err(e) => return Err(StepError::Order(e).into()),
        }
    }
    Ok(())
}

/// Step: refunds what order `id`'s payment charged (a partial return: its units), once.
/// False when another caller's refund is under way.
async fn refund_charge(
    shop: &Shop,
    id: &str,
    order: &OrderState,
    intent: &mut Intent,
) -> Result<bool, SettleError> {
    let read = shop
        .payments
        .read(id.to_owned())
        .await
        .map_err(StepError::Payment)?;
    let payment = &read.state;
    let (Some(charge_id), Some(charged)) = (payment.charge_id(), payment.amount) else {
        return Ok(true); // nothing was charged
    };
    let (amount, key) = match &payment.refund_pending {
        // Recorded by this settle on an earlier attempt, or by a caller that died
        // before confirming: ask again with its key (the provider refunds it once).
        Some(p)
            if intent.ours || ecommesh_persistence::now_ms() >= p.at_ms + REFUND_IN_FLIGHT_MS =>
        {
            (p.amount, p.key.clone())
        }
        // Another caller's, just recorded: it asks the provider.
        Some(_) => return Ok(false),
        None if payment.refunded > 0 => return Ok(true), // refunded already
        None => {
            // A partial return refunds its units; anything else refunds the whole charge.
            let amount = order
                .refund_due()
                .filter(|due| due.amount <= charged.amount)
                .unwrap_or(charged);
            if amount.amount == 0 {
                return Ok(true); // nothing to give back: done, not an error
            }
            let key = format!("{id}:refund");
            let begin = PaymentCommand::BeginRefund {
                amount,
                key: key.clone(),
            };
            // Only if nobody changed the payment since it was read: of two racing
            // callers, one records the intent and asks the provider; the other's
            // conflict is retried by `settle`, which then finds the intent recorded.
            shop.payments
                .execute(id.to_owned(), begin, Some(read.seq))
                .await
                .map_err(StepError::Payment)?;
            intent.ours = true;
            (amount, key)
        }
    };
    metrics::counter!("ecommesh_payment_refund_requests_total").increment(1);
    shop.provider
        .refund(charge_id, amount, &key)
        .await
        .map_err(SettleError::Refund)?;
    shop.payments
        .execute(id.to_owned(), PaymentCommand::ConfirmRefund { key }, None)
        .await
        .map_err(StepError::Payment)?;
    Ok(true)
}

/// Why an order could not be cancelled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CancelError {
    /// Shipped, delivered, returned or refunded orders are not cancelled.
    #[error("a {from} order cannot become cancelled")]
    Illegal { from: String },
    #[error(transparent)]
    Step(#[from] StepError),
    #[error(transparent)]
    Settle(#[from] SettleError),
}

/// Cancels order `id`, found in `status`, before it ships: a pending one releases its
/// stock; a paid one puts its stock back and is refunded. Cancelling again finishes an
/// interrupted cancellation.
pub async fn cancel(
    shop: &Shop,
    id: &str,
    status: OrderStatus,
    reason: CancelReason,
) -> Result<(), CancelError> {
    match status {
        OrderStatus::PendingPayment | OrderStatus::Paid => {
            let order = match cancel_order(shop, id, reason, None).await {
                Ok(reply) => reply.state,
                Err(EntityError::Rejected(OrderRejection::IllegalTransition { from, .. })) => {
                    return Err(CancelError::Illegal {
                        from: from.into_owned(),
                    });
                }
                Err(e) => return Err(StepError::Order(e).into()),
            };
            // Holds not sold yet are released; whatever a checkout racing this cancel
            // sold already (recorded on the order) is put back, and a charge refunded.
            release_stock(shop, id, order.lines.iter().map(|l| l.product_id.clone())).await;
            settle(shop, id).await?;
        }
        OrderStatus::Cancelled => settle(shop, id).await?,
        other => {
            return Err(CancelError::Illegal {
                from: other.as_str().to_owned(),
            })
        }
    }
    Ok(())
}
