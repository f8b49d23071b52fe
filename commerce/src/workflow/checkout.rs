//! Checkout: a saga over the cart, the products, the order and the payment.
//!
//! 1. Read the cart once: everything below works on that one version of it.
//! 2. Price every line and place the order (`pending_payment`) before holding any stock,
//!    so every hold belongs to an order the reconciler can find.
//!    Compensation: cancel the order.
//! 3. Hold every line on its product (reservation id = order id); a short line releases
//!    the others and cancels the order ([`CheckoutError::OutOfStock`]).
//!    Compensation: release the holds.
//! 4. Charge through the payment provider and record the answer in the order's payment;
//!    a decline releases the stock and cancels the order
//!    ([`CheckoutError::PaymentDeclined`]). Compensation: refund ([`super::settle`]).
//! 5. Sell the holds, recording each sale on the order, then mark the order paid
//!    ([`steps::complete_sale`], which the reconciler runs too). Compensation: reverse the
//!    sales ([`super::settle`]).
//! 6. Clear the cart if it is still the version that was bought.
//!
//! The steps up to the charge, and those after it, are only written, not waited for one
//! by one (on a single node's log-file journal, whose writes survive a crash in the order
//! they were made): the saga waits for them to be durable twice, before it charges and
//! before it answers. Nothing leaves the node that a crash could take back, and a crash
//! midway leaves a prefix of the saga, as if it had stopped there. Everyone else reading
//! these entities still sees only what is durable.
//!
//! The order id is derived from the customer and the idempotency key
//! ([`crate::ids::order_id`]), so retries and concurrent duplicates meet in one order
//! entity: one of them places it and runs the saga, the others wait for its outcome and
//! answer the same. The same key with another request is refused. A saga that dies
//! midway leaves holds that expire on their own (`reservation_ttl`), so no stock is held
//! forever, and no order is marked paid without a recorded charge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ecommesh_actors::{EntityError, Reply};

use super::settle::{settle, SettleError};
use super::steps::{
    cancel_order, complete_sale, hold_stock, release_stock, Completion, FailedSale, HoldFailure,
    Line, SaleEnd, Shortfall, Write,
};
use super::StepError;
use crate::cart::{CartCommand, CartState};
use crate::order::{
    Address, CancelReason, CheckoutDetails, OrderCommand, OrderLine, OrderRejection, OrderState,
    OrderStatus,
};
use crate::payment::provider::ProviderError;
use crate::payment::{Outcome, PaymentCommand, PaymentState};
use crate::shop::Shop;

/// A checkout asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// Derived from the customer and the idempotency key.
    pub order_id: String,
    pub customer: String,
    /// The card token the payment provider charges.
    pub payment_token: String,
    pub shipping: Address,
    /// A digest of the whole request: a retry with the same key must ask the same.
    pub request_hash: String,
}

/// A paid order, and its payment when the checkout has it at hand.
#[derive(Debug, Clone)]
pub struct Paid {
    pub order: Arc<OrderState>,
    pub payment: Option<Arc<PaymentState>>,
}

/// Why a checkout did not end in a paid order.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckoutError {
    #[error("the cart is empty")]
    CartEmpty,
    #[error("some lines of the cart are not available in the quantity asked")]
    OutOfStock { lines: Vec<Shortfall> },
    #[error("this idempotency key was used for a different checkout request")]
    KeyReused,
    #[error("a checkout with this idempotency key is still running")]
    InProgress { order_id: String },
    #[error("the payment was declined: {code}")]
    PaymentDeclined { order_id: String, code: String },
    #[error("the checkout was cancelled: {reason}")]
    Cancelled { order_id: String, reason: String },
    /// The charge could not be made (an unknown token, an unreachable provider).
    #[error(transparent)]
    Charge(ProviderError),
    #[error(transparent)]
    Step(#[from] StepError),
    /// Undoing a checkout that could not finish after charging did not finish either.
    #[error(transparent)]
    Settle(#[from] SettleError),
}

impl CheckoutError {
    /// How a checkout that ended in order `id`, cancelled, is answered.
    fn ended(id: &str, order: &OrderState) -> CheckoutError {
        match &order.cancel_reason {
            Some(CancelReason::PaymentDeclined { code }) => CheckoutError::PaymentDeclined {
                order_id: id.to_owned(),
                code: code.clone(),
            },
            other => CheckoutError::Cancelled {
                order_id: id.to_owned(),
                reason: other.as_ref().map(|r| r.to_string()).unwrap_or_default(),
            },
        }
    }
}

/// Runs the checkout `request` to its end. Whatever it wrote on its way to an error is
/// durable before the error is returned.
pub async fn checkout(shop: &Shop, request: Request) -> Result<Paid, CheckoutError> {
    let answer = Saga {
        shop,
        id: &request.order_id,
        customer: &request.customer,
    }
    .run(&request)
    .await;
    if answer.is_err() {
        shop.orders.sync().await.map_err(StepError::Storage)?;
    }
    answer
}

struct Saga<'a> {
    shop: &'a Shop,
    id: &'a str,
    customer: &'a str,
}

impl Saga<'_> {
    async fn run(&self, request: &Request) -> Result<Paid, CheckoutError> {
        let shop = self.shop;
        let (cart, priced) = match self.cart_and_prices().await {
            Ok(found) => found,
            Err(e) => return self.unless_retried(e, &request.request_hash).await,
        };
        // 2. Place the order.
        let place = OrderCommand::Place {
            customer_id: self.customer.to_owned(),
            lines: priced
                .iter()
                .map(|l| OrderLine {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                })
                .collect(),
            checkout: Some(CheckoutDetails {
                shipping: request.shipping.clone(),
                request_hash: request.request_hash.clone(),
            }),
        };
        let placed = match shop
            .orders
            .execute_unsynced(self.id.to_owned(), place, None)
            .await
        {
            Ok(reply) => reply.state,
            Err(EntityError::Rejected(OrderRejection::AlreadyPlaced)) => {
                // An earlier attempt, or a concurrent duplicate that runs the saga now,
                // placed it first: answer what it ends with. We hold nothing.
                let order = self.read_order().await?;
                return self.replay(order, &request.request_hash).await;
            }
            Err(e) => return Err(StepError::Order(e).into()),
        };

        // 3. Hold the stock of every line.
        let held = match hold_stock(shop, self.id, priced).await {
            Ok(held) => held,
            Err((held, why)) => {
                self.abandon(&held, CancelReason::OutOfStock).await;
                return Err(match why {
                    HoldFailure::Short(lines) => {
                        metrics::counter!("ecommesh_checkouts_total", "outcome" => "out_of_stock")
                            .increment(1);
                        CheckoutError::OutOfStock { lines }
                    }
                    HoldFailure::Failed(e) => e.into(),
                });
            }
        };
        let total = placed.total.expect("a placed order has a total");
        // The order and its holds are durable before any money moves.
        shop.orders.sync().await.map_err(StepError::Storage)?;

        // 4. Charge, and record the answer before acting on it.
        let token = request.payment_token.trim();
        let outcome = match shop.provider.charge(self.id, total, token).await {
            Ok(outcome) => outcome,
            Err(e) => {
                self.abandon(&held, CancelReason::PaymentFailed(e.to_string()))
                    .await;
                return Err(CheckoutError::Charge(e));
            }
        };
        let record = PaymentCommand::Record {
            provider: shop.provider.name().to_owned(),
            amount: total,
            outcome,
        };
        let payment = shop
            .payments
            .execute_unsynced(self.id.to_owned(), record, None)
            .await
            .map_err(StepError::Payment)?
            .state;
        let charge_id = match &payment.outcome {
            Some(Outcome::Charged { charge_id }) => charge_id.clone(),
            Some(Outcome::Declined { reason }) => {
                let code = reason.clone();
                let order = self
                    .abandon(&held, CancelReason::PaymentDeclined { code })
                    .await;
                return Err(CheckoutError::ended(self.id, &order));
            }
            None => unreachable!("recorded above"),
        };

        // 5. Sell the holds, recording each sale on the order, then mark it paid. A
        // cancel may race this: whatever was sold by then is put back.
        let products: Vec<String> = held.iter().map(|l| l.product_id.clone()).collect();
        let how = Completion {
            write: Write::Unsynced,
            gone_hold_was_sold: false,
            failed_sale: FailedSale::Undo,
            seen: None,
            #[cfg(feature = "test-hooks")]
            pause_after_first_sale: token == "tok_pause_in_sale",
        };
        let paid = match complete_sale(shop, self.id, &products, &charge_id, &how).await? {
            SaleEnd::Paid(paid) => paid.state,
            SaleEnd::HoldLost { .. } => {
                let order = self
                    .undo_after_charge(&held, CancelReason::HoldLost)
                    .await?;
                return Err(CheckoutError::ended(self.id, &order));
            }
            SaleEnd::CancelledMeanwhile => {
                let order = self
                    .undo_after_charge(&held, CancelReason::CancelledWhilePaying)
                    .await?;
                return Err(CheckoutError::ended(self.id, &order));
            }
            // The reconciler finished it (this checkout was slow, not dead): it is paid
            // (or further), and what this checkout bought is its own to finish.
            SaleEnd::SettledMeanwhile => {
                let order = self.read_order().await?;
                if order.status == OrderStatus::Cancelled {
                    return Err(CheckoutError::ended(self.id, &order));
                }
                order
            }
        };
        // 6. Clear the cart if it is still the version bought.
        self.clear_cart(&cart).await;
        // The steps since the charge were only written: answer once they are durable (and
        // the view's reads need not wait each for a flush of their own).
        shop.orders.sync().await.map_err(StepError::Storage)?;
        metrics::counter!("ecommesh_checkouts_total", "outcome" => "paid").increment(1);
        Ok(Paid {
            order: paid,
            payment: Some(payment),
        })
    }

    async fn read_order(&self) -> Result<Arc<OrderState>, CheckoutError> {
        Ok(self
            .shop
            .orders
            .read(self.id.to_owned())
            .await
            .map_err(StepError::Order)?
            .state)
    }

    /// Steps 1 and 2: one version of the cart, and every line priced now.
    async fn cart_and_prices(&self) -> Result<(Reply<Arc<CartState>>, Vec<Line>), CheckoutError> {
        let shop = self.shop;
        // 1. One version of the cart.
        let cart = shop
            .carts
            .read_unsynced(self.customer.to_owned())
            .await
            .map_err(StepError::Cart)?;
        if cart.state.items.is_empty() {
            return Err(CheckoutError::CartEmpty);
        }
        // 2. Price every line now.
        let mut priced = Vec::with_capacity(cart.state.items.len());
        let mut unavailable = Vec::new();
        for (product_id, quantity) in &cart.state.items {
            let product = shop
                .product(product_id)
                .await
                .map_err(StepError::Product)?
                .state;
            match &product.details {
                Some(d) if !product.archived => priced.push(Line {
                    product_id: product_id.clone(),
                    quantity: *quantity,
                    unit_price: d.price,
                }),
                _ => unavailable.push(Shortfall {
                    product_id: product_id.clone(),
                    requested: *quantity as u64,
                    available: 0,
                }),
            }
        }
        if !unavailable.is_empty() {
            return Err(CheckoutError::OutOfStock { lines: unavailable });
        }
        Ok((cart, priced))
    }

    /// Answers `e`, unless this checkout is a retry of one that placed its order (whose
    /// cart is empty now): then the outcome of the first attempt.
    async fn unless_retried(
        &self,
        e: CheckoutError,
        request_hash: &str,
    ) -> Result<Paid, CheckoutError> {
        let order = self.read_order().await?;
        if order.status == OrderStatus::New {
            return Err(e);
        }
        self.replay(order, request_hash).await
    }

    /// Answers a retry: the same key with the same request gets the first attempt's
    /// outcome.
    async fn replay(
        &self,
        order: Arc<OrderState>,
        request_hash: &str,
    ) -> Result<Paid, CheckoutError> {
        if order.checkout.as_ref().map(|c| c.request_hash.as_str()) != Some(request_hash) {
            return Err(CheckoutError::KeyReused);
        }
        let order = self.wait_settled(order).await?;
        match order.status {
            OrderStatus::PendingPayment => Err(CheckoutError::InProgress {
                order_id: self.id.to_owned(),
            }),
            OrderStatus::Cancelled => Err(CheckoutError::ended(self.id, &order)),
            _ => Ok(Paid {
                order,
                payment: None,
            }),
        }
    }

    /// Waits (bounded) for a concurrent attempt to finish the saga.
    async fn wait_settled(
        &self,
        mut order: Arc<OrderState>,
    ) -> Result<Arc<OrderState>, CheckoutError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while order.status == OrderStatus::PendingPayment && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            order = self.read_order().await?;
        }
        Ok(order)
    }

    /// Compensations of steps 2 and 3: releases the holds and cancels the order for
    /// `reason`; returns the order.
    async fn abandon(&self, held: &[Line], reason: CancelReason) -> Arc<OrderState> {
        release_stock(
            self.shop,
            self.id,
            held.iter().map(|l| l.product_id.clone()),
        )
        .await;
        metrics::counter!("ecommesh_checkouts_total", "outcome" => "cancelled").increment(1);
        match cancel_order(self.shop, self.id, reason, None).await {
            Ok(reply) => reply.state,
            Err(e) => {
                tracing::error!(order = self.id, error = %e, "cancel failed");
                self.shop
                    .orders
                    .read(self.id.to_owned())
                    .await
                    .map(|r| r.state)
                    .unwrap_or_default()
            }
        }
    }

    /// After the charge, the checkout cannot finish (a hold was lost, or the order was
    /// cancelled meanwhile): cancels the order, releases what is still held, puts back
    /// what was sold and refunds the charge. Returns the order as it ends.
    async fn undo_after_charge(
        &self,
        held: &[Line],
        reason: CancelReason,
    ) -> Result<Arc<OrderState>, CheckoutError> {
        self.shop.orders.sync().await.map_err(StepError::Storage)?;
        self.abandon(held, reason).await;
        settle(self.shop, self.id).await?;
        self.read_order().await
    }

    /// Step 6: clears the cart only if it is still the version that was bought; retried
    /// while the cart's shard has no leader (a clear that did land turns a retry into a
    /// harmless conflict). The order is paid either way.
    async fn clear_cart(&self, cart: &Reply<Arc<CartState>>) {
        for _ in 0..3 {
            let clear = self
                .shop
                .carts
                .execute_unsynced(self.customer.to_owned(), CartCommand::Clear, Some(cart.seq))
                .await;
            if !matches!(clear, Err(EntityError::Storage(_))) {
                break;
            }
        }
    }
}
