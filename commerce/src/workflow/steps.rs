//! The steps workflows are made of, each beside its compensation. Every step is
//! idempotent (its entity recognises it asked again), so a retry or the reconciler can run
//! it again without doing its work twice.

use std::sync::Arc;
#[cfg(feature = "test-hooks")]
use std::time::Duration;

use ecommesh_actors::shard::CommandResult;
use ecommesh_actors::{Entities, Entity, EntityError, Reply};
use ecommesh_persistence::StoreError;

use super::StepError;
use crate::order::{CancelReason, OrderCommand, OrderRejection, OrderState, OrderStatus};
use crate::product::{ProductCommand, ProductRejection};
use crate::shop::Shop;

/// How a step's write is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Answered once written; the workflow waits for durability itself, once, before
    /// anything leaves the node (checkout: see [`super::checkout`]).
    Unsynced,
    /// Answered once durable.
    Durable,
}

async fn run<E: Entity>(
    entities: &Entities<E>,
    write: Write,
    id: &str,
    command: E::Command,
    expected_seq: Option<u64>,
) -> CommandResult<E> {
    match write {
        Write::Unsynced => {
            entities
                .execute_unsynced(id.to_owned(), command, expected_seq)
                .await
        }
        Write::Durable => entities.execute(id.to_owned(), command, expected_seq).await,
    }
}

/// One line of an order: a product, how many, at what unit price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub product_id: String,
    pub quantity: u32,
    pub unit_price: crate::Money,
}

/// A line that could not be held in the quantity asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub product_id: String,
    pub requested: u64,
    pub available: u64,
}

/// Why [`hold_stock`] did not hold every line.
#[derive(Debug, Clone)]
pub enum HoldFailure {
    /// Some lines are not available in the quantity asked.
    Short(Vec<Shortfall>),
    /// A hold was not carried out (its shard was busy, between leaders, ...).
    Failed(StepError),
}

/// Step: holds every line's stock for order `id` (the reservation id is the order id),
/// all lines at once. On failure, returns the lines it did hold, for [`release_stock`],
/// and why. A hold whose write was not confirmed is counted as held (releasing a hold
/// that was not made does nothing).
pub async fn hold_stock(
    shop: &Shop,
    id: &str,
    lines: Vec<Line>,
) -> Result<Vec<Line>, (Vec<Line>, HoldFailure)> {
    let ttl_ms = shop.reservation_ttl.as_millis() as u64;
    let holds = lines.iter().map(|l| {
        let cmd = ProductCommand::Reserve {
            reservation_id: id.to_owned(),
            quantity: l.quantity as u64,
            ttl_ms,
        };
        shop.products
            .execute_unsynced(l.product_id.clone(), cmd, None)
    });
    let answers = futures_util::future::join_all(holds).await;
    let (mut held, mut short, mut failed) = (Vec::new(), Vec::new(), None);
    for (line, answer) in lines.into_iter().zip(answers) {
        match answer {
            Ok(_) => held.push(line),
            Err(EntityError::Rejected(ProductRejection::OutOfStock {
                requested,
                available,
            })) => short.push(Shortfall {
                product_id: line.product_id,
                requested,
                available,
            }),
            Err(EntityError::Rejected(ProductRejection::NotFound | ProductRejection::Archived)) => {
                short.push(Shortfall {
                    product_id: line.product_id,
                    requested: line.quantity as u64,
                    available: 0,
                })
            }
            Err(e) => {
                if matches!(e, EntityError::Storage(_)) {
                    held.push(line);
                }
                failed = Some(StepError::Product(e));
            }
        }
    }
    match (short.is_empty(), failed) {
        (true, None) => Ok(held),
        (_, Some(e)) => Err((held, HoldFailure::Failed(e))),
        (false, None) => Err((held, HoldFailure::Short(short))),
    }
}

/// Compensation of [`hold_stock`]: gives back the stock order `id` holds on each of
/// `products`. Best effort: holds also expire on their own.
pub async fn release_stock(shop: &Shop, id: &str, products: impl IntoIterator<Item = String>) {
    for product in products {
        // A shard between leaders answers "unavailable" after a wait: try again, since a
        // hold left behind keeps its stock from other shoppers until it expires.
        for attempt in 1..=3 {
            let release = ProductCommand::Release {
                reservation_id: id.to_owned(),
            };
            match shop.products.execute(product.clone(), release, None).await {
                Ok(_) => break,
                Err(EntityError::Storage(e)) if attempt < 3 => {
                    tracing::info!(order = id, product = %product, error = %e, "release failed; retrying");
                }
                Err(e) => {
                    tracing::warn!(order = id, product = %product, error = %e, "release failed; the reservation will expire");
                    break;
                }
            }
        }
    }
}

/// Step: cancels order `id` for `reason`, if it is still at version `seen` when given
/// (the compensation of placing it; cancelling a cancelled order does nothing).
pub async fn cancel_order(
    shop: &Shop,
    id: &str,
    reason: CancelReason,
    seen: Option<u64>,
) -> CommandResult<crate::Order> {
    let cancel = OrderCommand::Cancel { reason };
    shop.orders.execute(id.to_owned(), cancel, seen).await
}

/// What [`sell`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sale {
    /// The hold is sold (now, or by an earlier attempt).
    Sold,
    /// The order holds nothing on the product: the hold expired or was released, or an
    /// earlier attempt sold it longer ago than the product remembers.
    HoldGone,
}

/// Step: sells order `id`'s hold on `product`. Retried while the product's shard has no
/// leader, and after a conflict (an earlier attempt whose answer was lost may have sold
/// it); selling twice is recognised and does nothing. Its compensation is reversing the
/// sale, which [`super::settle`] does for every sale recorded on the order.
pub async fn sell(
    shop: &Shop,
    id: &str,
    product: &str,
    write: Write,
) -> Result<Sale, EntityError<ProductRejection>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let commit = ProductCommand::Commit {
            reservation_id: id.to_owned(),
        };
        match run(&shop.products, write, product, commit, None).await {
            Ok(_) => return Ok(Sale::Sold),
            Err(EntityError::Rejected(ProductRejection::NoReservation { .. })) => {
                return Ok(Sale::HoldGone)
            }
            Err(EntityError::Storage(_) | EntityError::Conflict { .. }) if attempt < 3 => {}
            // Still unsure whether it sold: the caller leaves the order pending.
            Err(EntityError::Conflict { entity, .. }) => {
                return Err(EntityError::Storage(StoreError::Unavailable {
                    shard: shop.products.shard_of(product),
                    reason: format!("{entity} kept changing under the sale"),
                }))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Step: records on order `id` that its line of `product` is sold, so that a cancel or
/// a refund puts it back. A sale that could not be recorded is left to the reconciler
/// (which records it, and settles the order if it was cancelled meanwhile).
pub async fn record_sale(
    shop: &Shop,
    id: &str,
    product: &str,
    write: Write,
) -> CommandResult<crate::Order> {
    let record = OrderCommand::RecordSale {
        product_id: product.to_owned(),
    };
    let recorded = run(&shop.orders, write, id, record, None).await;
    if recorded.is_err() {
        shop.unfinished
            .sales
            .lock()
            .insert((id.to_owned(), product.to_owned()));
    }
    recorded
}

/// How [`complete_sale`] runs for its caller.
#[derive(Debug, Clone)]
pub struct Completion {
    pub write: Write,
    /// True when a hold found gone can only have been sold (by an earlier attempt): the
    /// reconciler knows it while the hold cannot have expired yet.
    pub gone_hold_was_sold: bool,
    /// What a sale that failed for another reason than a gone hold or an unsure write
    /// (a refusal, a crashed or overloaded shard) means.
    pub failed_sale: FailedSale,
    /// The order's version when the caller read it: marking it paid is refused if
    /// anything but this completion changed it meanwhile.
    pub seen: Option<u64>,
    /// TEST ONLY: pause after the first sale, so a test can cancel mid-way.
    #[cfg(feature = "test-hooks")]
    pub pause_after_first_sale: bool,
}

/// See [`Completion::failed_sale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedSale {
    /// The sale cannot be made: undo the checkout (the shopper is answered now).
    Undo,
    /// Try again later (the reconciler's next round).
    Retry,
}

/// How [`complete_sale`] ended.
#[derive(Debug, Clone)]
pub enum SaleEnd {
    /// Every hold sold and recorded, the order marked paid.
    Paid(Reply<Arc<OrderState>>),
    /// A hold was gone before it was sold: the stock may be someone else's now. `seen`:
    /// the order's version after the sales recorded so far (when the caller gave one).
    HoldLost { seen: Option<u64> },
    /// The order was cancelled while its sales were being made.
    CancelledMeanwhile,
    /// Someone else finished the order (paid, or further) meanwhile.
    SettledMeanwhile,
}

/// Steps: "sell the holds, then mark paid". Sells each of `products`' holds of order
/// `id` and records each sale on the order, then marks the order paid by `charge_id`.
/// The checkout and the reconciler both finish a charged order with it. An unsure write
/// is an error (the order stays pending: the reconciler finishes it); the caller
/// compensates a hold lost or a cancel met.
pub async fn complete_sale(
    shop: &Shop,
    id: &str,
    products: &[String],
    charge_id: &str,
    how: &Completion,
) -> Result<SaleEnd, StepError> {
    let mut seen = how.seen;
    for (i, product) in products.iter().enumerate() {
        #[cfg(feature = "test-hooks")]
        if i == 1 && how.pause_after_first_sale {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        #[cfg(not(feature = "test-hooks"))]
        let _ = i;
        match sell(shop, id, product, how.write).await {
            Ok(Sale::Sold) => {}
            Ok(Sale::HoldGone) if how.gone_hold_was_sold => {}
            Ok(Sale::HoldGone) => {
                tracing::warn!(order = id, product = %product, "stock no longer held after charging");
                return Ok(SaleEnd::HoldLost { seen });
            }
            Err(EntityError::Storage(e)) => {
                // Whether it sold is unknown (a shard between leaders): leave the order
                // pending; a retry, or the reconciler, finishes it (selling is idempotent).
                tracing::warn!(order = id, product = %product, error = %e, "sale unconfirmed; the order stays pending");
                return Err(StepError::Product(EntityError::Storage(e)));
            }
            Err(e) if how.failed_sale == FailedSale::Undo => {
                tracing::warn!(order = id, product = %product, error = %e, "sale failed after charging");
                return Ok(SaleEnd::HoldLost { seen });
            }
            Err(e) => return Err(StepError::Product(e)),
        }
        let after = record_sale(shop, id, product, how.write).await?;
        match after.state.status {
            OrderStatus::PendingPayment => seen = seen.map(|_| after.seq),
            OrderStatus::Cancelled => return Ok(SaleEnd::CancelledMeanwhile),
            _ => return Ok(SaleEnd::SettledMeanwhile),
        }
    }
    let paid = OrderCommand::MarkPaid {
        payment_ref: charge_id.to_owned(),
    };
    match run(&shop.orders, how.write, id, paid, seen).await {
        Ok(paid) => Ok(SaleEnd::Paid(paid)),
        // Cancelled while its sales were made.
        Err(EntityError::Rejected(OrderRejection::IllegalTransition { .. })) => {
            Ok(SaleEnd::CancelledMeanwhile)
        }
        Err(e) => Err(StepError::Order(e)),
    }
}
