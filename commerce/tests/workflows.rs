//! The workflows given / when / then, on the real entity runtime over the in-memory
//! store: checkout and each of its compensations, cancel and settle, and every decision
//! of the reconciler. The payment provider is scripted here (charges by token, refunds
//! that can be made to fail, charges it knows of), as a real provider's test mode would
//! answer; the integration tests run the same workflows through the real binary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ecommesh_actors::{Entities, Runtime, RuntimeConfig};
use ecommesh_commerce::cart::CartCommand;
use ecommesh_commerce::ids::order_id;
use ecommesh_commerce::order::book::OrderBook;
use ecommesh_commerce::order::{
    Address, CancelReason, CheckoutDetails, OrderCommand, OrderLine, OrderState, OrderStatus,
};
use ecommesh_commerce::payment::provider::{
    BoxFuture, PaymentProvider, ProviderError, TestPaymentProvider,
};
use ecommesh_commerce::payment::{Outcome, PaymentCommand};
use ecommesh_commerce::product::{ProductCommand, ProductDetails, ProductState};
use ecommesh_commerce::projection::Projection;
use ecommesh_commerce::workflow::checkout::{checkout, CheckoutError, Request};
use ecommesh_commerce::workflow::reconcile::{self, Reconciled};
use ecommesh_commerce::workflow::settle::{self, SettleError};
use ecommesh_commerce::workflow::steps::{hold_stock, Line};
use ecommesh_commerce::{Currency, Money, Shop};
use ecommesh_persistence::MemoryStore;
use parking_lot::Mutex;

/// The test provider's charges (`tok_visa` is charged, `tok_chargeDeclined` declined,
/// other tokens refused), after `charge_delay`; refunds recorded (and failing while
/// `refunds_fail` is set); the charges in `known` are what it answers when asked for one.
#[derive(Default)]
struct Script {
    charge_delay: Mutex<Duration>,
    refunds: Mutex<Vec<(String, Money, String)>>,
    refunds_fail: AtomicBool,
    known: Mutex<HashMap<String, Outcome>>,
}

struct Scripted(Arc<Script>);

impl PaymentProvider for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn charge<'a>(
        &'a self,
        key: &'a str,
        amount: Money,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Outcome, ProviderError>> {
        Box::pin(async move {
            let delay = *self.0.charge_delay.lock();
            tokio::time::sleep(delay).await;
            TestPaymentProvider::default()
                .charge(key, amount, token)
                .await
        })
    }

    fn find_charge<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Outcome>, ProviderError>> {
        Box::pin(async move { Ok(self.0.known.lock().get(key).cloned()) })
    }

    fn refund<'a>(
        &'a self,
        charge_id: &'a str,
        amount: Money,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            if self.0.refunds_fail.load(Ordering::SeqCst) {
                return Err(ProviderError::Unavailable("scripted outage".into()));
            }
            let mut refunds = self.0.refunds.lock();
            if !refunds.iter().any(|(_, _, k)| k == key) {
                refunds.push((charge_id.into(), amount, key.into()));
            }
            Ok(())
        })
    }
}

struct World {
    runtime: Option<Runtime>,
    shop: Shop,
    script: Arc<Script>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            let _ = rt.shutdown();
        }
    }
}

const CUSTOMER: &str = "u_ada";

fn usd(cents: i64) -> Money {
    Money::new(cents, Currency::USD)
}

/// A shop on a fresh in-memory journal whose holds last `ttl`.
fn world(ttl: Duration) -> World {
    let runtime = Runtime::start(
        Arc::new(MemoryStore::new(4)),
        RuntimeConfig {
            arbiters: 2,
            ..RuntimeConfig::default()
        },
    );
    let script = Arc::new(Script::default());
    let shop = Shop {
        carts: Entities::new(runtime.registry(), None),
        products: Entities::new(runtime.registry(), None),
        orders: Entities::new(runtime.registry(), None),
        customers: Entities::new(runtime.registry(), None),
        sessions: Entities::new(runtime.registry(), None),
        payments: Entities::new(runtime.registry(), None),
        provider: Box::new(Scripted(script.clone())),
        current_products: Arc::default(),
        heard_products: Arc::default(),
        currency: Currency::USD,
        reservation_ttl: ttl,
        unfinished: Default::default(),
    };
    World {
        runtime: Some(runtime),
        shop,
        script,
    }
}

impl World {
    /// Given: product `id` at `price` cents with `stock` units.
    async fn product(&self, id: &str, price: i64, stock: u64) {
        let details = ProductDetails {
            sku: id.into(),
            name: id.into(),
            description: String::new(),
            category: "c".into(),
            brand: "b".into(),
            price: usd(price),
            images: vec![],
        };
        let create = ProductCommand::Create {
            details,
            initial_stock: stock,
        };
        self.shop.products.execute(id, create, None).await.unwrap();
    }

    /// Given: `quantity` of `product` in the customer's cart.
    async fn in_cart(&self, product: &str, quantity: u32) {
        let add = CartCommand::AddItem {
            product_id: product.into(),
            quantity,
            available: None,
        };
        self.shop.carts.execute(CUSTOMER, add, None).await.unwrap();
    }

    fn request(&self, key: &str, token: &str) -> Request {
        Request {
            order_id: order_id(CUSTOMER, key),
            customer: CUSTOMER.into(),
            payment_token: token.into(),
            shipping: address(),
            request_hash: format!("hash-{key}-{token}"),
        }
    }

    async fn stock(&self, id: &str) -> Arc<ProductState> {
        self.shop.products.read(id).await.unwrap().state
    }

    async fn order(&self, id: &str) -> Arc<OrderState> {
        self.shop.orders.read(id).await.unwrap().state
    }

    fn refunds(&self) -> Vec<(String, Money, String)> {
        self.script.refunds.lock().clone()
    }

    /// Given: an order placed for `lines` (product, quantity) at 10.00 each, its stock
    /// held, and nothing else: a checkout that died before charging.
    async fn placed_and_held(&self, key: &str, lines: &[(&str, u32)]) -> String {
        let id = order_id(CUSTOMER, key);
        let place = OrderCommand::Place {
            customer_id: CUSTOMER.into(),
            lines: lines
                .iter()
                .map(|(p, q)| OrderLine {
                    product_id: (*p).into(),
                    quantity: *q,
                    unit_price: usd(1000),
                })
                .collect(),
            checkout: Some(CheckoutDetails {
                shipping: address(),
                request_hash: "h".into(),
            }),
        };
        self.shop.orders.execute(&id, place, None).await.unwrap();
        let held = lines
            .iter()
            .map(|(p, q)| Line {
                product_id: (*p).into(),
                quantity: *q,
                unit_price: usd(1000),
            })
            .collect();
        assert!(hold_stock(&self.shop, &id, held).await.is_ok());
        self.shop.orders.sync().await.unwrap();
        id
    }

    /// Given: order `id` charged `cents` (recorded on its payment).
    async fn charged(&self, id: &str, cents: i64) {
        let charged = Outcome::Charged {
            charge_id: format!("ch_{id}"),
        };
        self.payment(id, usd(cents), charged).await;
    }

    /// When: the reconciler finds order `id` interrupted.
    async fn reconcile(&self, id: &str) -> Reconciled {
        reconcile::reconcile(&self.shop, id).await.unwrap()
    }

    /// Given: order `id`'s payment recorded as `outcome`.
    async fn payment(&self, id: &str, amount: Money, outcome: Outcome) {
        let record = PaymentCommand::Record {
            provider: "scripted".into(),
            amount,
            outcome,
        };
        self.shop.payments.execute(id, record, None).await.unwrap();
    }
}

fn address() -> Address {
    Address {
        name: "Ada".into(),
        line1: "1 Main St".into(),
        line2: None,
        city: "Springfield".into(),
        postal_code: "12345".into(),
        country: "US".into(),
    }
}

#[actix_rt::test]
async fn a_checkout_sells_the_cart_charges_it_and_clears_it() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    w.product("mug", 1200, 2).await;
    w.in_cart("tee", 2).await;
    w.in_cart("mug", 1).await;

    let paid = checkout(&w.shop, w.request("k1", "tok_visa"))
        .await
        .unwrap();

    assert_eq!(paid.order.status, OrderStatus::Paid);
    assert_eq!(paid.order.total, Some(usd(6200)));
    assert_eq!(paid.order.sold_lines.len(), 2);
    let tee = w.stock("tee").await;
    assert_eq!((tee.on_hand, tee.sold, tee.reserved()), (3, 2, 0));
    assert_eq!(w.stock("mug").await.on_hand, 1);
    let payment = paid.payment.unwrap();
    assert_eq!(payment.amount, Some(usd(6200)));
    assert!(w
        .shop
        .carts
        .read(CUSTOMER)
        .await
        .unwrap()
        .state
        .items
        .is_empty());
}

#[actix_rt::test]
async fn a_retry_gets_the_first_outcome_and_another_request_with_the_key_is_refused() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    w.in_cart("tee", 1).await;
    let first = checkout(&w.shop, w.request("k1", "tok_visa"))
        .await
        .unwrap();

    let again = checkout(&w.shop, w.request("k1", "tok_visa"))
        .await
        .unwrap();
    assert_eq!(again.order, first.order);
    assert_eq!(w.stock("tee").await.sold, 1, "sold once");

    let mut other = w.request("k1", "tok_visa");
    other.request_hash = "another body".into();
    assert!(matches!(
        checkout(&w.shop, other).await,
        Err(CheckoutError::KeyReused)
    ));
}

#[actix_rt::test]
async fn an_empty_cart_places_nothing() {
    let w = world(Duration::from_secs(900));
    let r = w.request("k1", "tok_visa");
    let id = r.order_id.clone();
    assert!(matches!(
        checkout(&w.shop, r).await,
        Err(CheckoutError::CartEmpty)
    ));
    assert_eq!(w.order(&id).await.status, OrderStatus::New);
}

#[actix_rt::test]
async fn a_short_line_releases_the_held_ones_and_cancels_the_order() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    w.product("mug", 1200, 1).await;
    w.in_cart("tee", 2).await;
    w.in_cart("mug", 3).await;
    let r = w.request("k1", "tok_visa");
    let id = r.order_id.clone();

    match checkout(&w.shop, r).await {
        Err(CheckoutError::OutOfStock { lines }) => {
            assert_eq!(lines.len(), 1);
            assert_eq!(
                (
                    lines[0].product_id.as_str(),
                    lines[0].requested,
                    lines[0].available
                ),
                ("mug", 3, 1)
            );
        }
        other => panic!("expected out of stock, got {other:?}"),
    }
    // Compensations: the tee's hold released, the order cancelled, nothing charged.
    assert_eq!(w.stock("tee").await.reserved(), 0);
    let order = w.order(&id).await;
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.cancel_reason, Some(CancelReason::OutOfStock));
    assert!(w
        .shop
        .payments
        .read(&id)
        .await
        .unwrap()
        .state
        .amount
        .is_none());
}

#[actix_rt::test]
async fn a_declined_card_releases_the_stock_and_says_why() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    w.in_cart("tee", 2).await;
    let r = w.request("k1", "tok_chargeDeclined");
    let id = r.order_id.clone();

    match checkout(&w.shop, r).await {
        Err(CheckoutError::PaymentDeclined { order_id, code }) => {
            assert_eq!(
                (order_id.as_str(), code.as_str()),
                (id.as_str(), "card_declined")
            )
        }
        other => panic!("expected a decline, got {other:?}"),
    }
    let tee = w.stock("tee").await;
    assert_eq!((tee.on_hand, tee.reserved()), (5, 0));
    assert_eq!(
        w.order(&id).await.cancel_reason,
        Some(CancelReason::PaymentDeclined {
            code: "card_declined".into()
        })
    );
    // The cart is kept for another card.
    assert_eq!(
        w.shop.carts.read(CUSTOMER).await.unwrap().state.items.len(),
        1
    );
}

#[actix_rt::test]
async fn an_unknown_token_is_the_callers_mistake_and_holds_nothing() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    w.in_cart("tee", 1).await;
    let r = w.request("k1", "tok_nope");
    let id = r.order_id.clone();
    assert!(matches!(
        checkout(&w.shop, r).await,
        Err(CheckoutError::Charge(ProviderError::InvalidToken(_)))
    ));
    assert_eq!(w.stock("tee").await.reserved(), 0);
    assert!(matches!(
        w.order(&id).await.cancel_reason,
        Some(CancelReason::PaymentFailed(_))
    ));
}

#[actix_rt::test]
async fn a_hold_lost_while_charging_is_refunded_not_oversold() {
    // Holds last 1 ms and the charge takes 50: the hold is gone when the sale comes.
    let w = world(Duration::from_millis(1));
    *w.script.charge_delay.lock() = Duration::from_millis(50);
    w.product("tee", 2500, 5).await;
    w.in_cart("tee", 2).await;
    let r = w.request("k1", "tok_visa");
    let id = r.order_id.clone();

    match checkout(&w.shop, r).await {
        Err(CheckoutError::Cancelled { order_id, reason }) => {
            assert_eq!(order_id, id);
            assert_eq!(reason, CancelReason::HoldLost.to_string());
        }
        other => panic!("expected a cancelled checkout, got {other:?}"),
    }
    let tee = w.stock("tee").await;
    assert_eq!((tee.on_hand, tee.sold), (5, 0), "nothing sold");
    let payment = w.shop.payments.read(&id).await.unwrap().state;
    let charge = payment.charge_id().unwrap().to_owned();
    assert_eq!(
        w.refunds(),
        vec![(charge, usd(5000), format!("{id}:refund"))]
    );
    assert_eq!(payment.refunded, 5000);
}

#[actix_rt::test]
async fn cancelling_a_paid_order_puts_its_stock_back_and_refunds_it_once() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    w.in_cart("tee", 2).await;
    let r = w.request("k1", "tok_visa");
    let id = r.order_id.clone();
    checkout(&w.shop, r).await.unwrap();

    settle::cancel(&w.shop, &id, OrderStatus::Paid, CancelReason::ByCustomer)
        .await
        .unwrap();
    // Again: finishes nothing more.
    settle::cancel(
        &w.shop,
        &id,
        OrderStatus::Cancelled,
        CancelReason::ByCustomer,
    )
    .await
    .unwrap();

    let tee = w.stock("tee").await;
    assert_eq!((tee.on_hand, tee.sold), (5, 0));
    assert_eq!(w.refunds().len(), 1);
    let order = w.order(&id).await;
    assert_eq!(order.refunded, Some(usd(5000)));
    assert_eq!(order.cancel_reason, Some(CancelReason::ByCustomer));
    assert!(matches!(
        settle::cancel(&w.shop, &id, OrderStatus::Shipped, CancelReason::ByAdmin).await,
        Err(settle::CancelError::Illegal { .. })
    ));
}

#[actix_rt::test]
async fn a_refund_the_provider_failed_is_finished_by_the_reconciler() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    w.in_cart("tee", 1).await;
    let r = w.request("k1", "tok_visa");
    let id = r.order_id.clone();
    checkout(&w.shop, r).await.unwrap();
    w.script.refunds_fail.store(true, Ordering::SeqCst);

    let failed = settle::cancel(&w.shop, &id, OrderStatus::Paid, CancelReason::ByAdmin).await;
    assert!(matches!(
        failed,
        Err(settle::CancelError::Settle(SettleError::Refund(_)))
    ));
    assert!(w.shop.unfinished.refunds.lock().contains(&id));
    assert_eq!(w.stock("tee").await.on_hand, 5, "the stock is back already");

    w.script.refunds_fail.store(false, Ordering::SeqCst);
    let book = Projection::<OrderBook>::new(4);
    reconcile::round(&w.shop, &book, Duration::from_secs(60)).await;

    assert!(w.shop.unfinished.refunds.lock().is_empty());
    assert_eq!(w.refunds().len(), 1);
    assert_eq!(w.order(&id).await.refunded, Some(usd(2500)));
}

#[actix_rt::test]
async fn the_reconciler_cancels_a_checkout_that_died_before_charging() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    let id = w.placed_and_held("k1", &[("tee", 2)]).await;
    assert_eq!(w.stock("tee").await.reserved(), 2);

    assert_eq!(w.reconcile(&id).await, Reconciled::NeverCharged);
    assert_eq!(w.stock("tee").await.reserved(), 0);
    assert_eq!(
        w.order(&id).await.cancel_reason,
        Some(CancelReason::Interrupted)
    );
    assert!(w.refunds().is_empty());
}

#[actix_rt::test]
async fn the_reconciler_cancels_a_declined_checkout() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    let id = w.placed_and_held("k1", &[("tee", 1)]).await;
    let declined = Outcome::Declined {
        reason: "insufficient_funds".into(),
    };
    w.payment(&id, usd(1000), declined).await;

    assert_eq!(w.reconcile(&id).await, Reconciled::Declined);
    assert_eq!(w.stock("tee").await.reserved(), 0);
    assert_eq!(
        w.order(&id).await.cancel_reason,
        Some(CancelReason::PaymentDeclined {
            code: "insufficient_funds".into()
        })
    );
}

#[actix_rt::test]
async fn the_reconciler_finishes_a_charged_checkout_with_the_same_steps() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    w.product("mug", 1200, 5).await;
    let id = w.placed_and_held("k1", &[("tee", 2), ("mug", 1)]).await;
    // The saga sold the tee and died before recording it.
    let commit = ProductCommand::Commit {
        reservation_id: id.clone(),
    };
    w.shop.products.execute("tee", commit, None).await.unwrap();
    w.charged(&id, 3000).await;

    assert_eq!(w.reconcile(&id).await, Reconciled::Paid);
    let order = w.order(&id).await;
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.sold_lines.len(), 2);
    assert_eq!(w.stock("tee").await.sold, 2, "sold once, not twice");
    assert_eq!(w.stock("mug").await.sold, 1);
    // Asked again: nothing more to do.
    assert_eq!(w.reconcile(&id).await, Reconciled::AlreadySettled);
}

#[actix_rt::test]
async fn the_reconciler_asks_the_provider_for_a_charge_it_never_recorded() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    let id = w.placed_and_held("k1", &[("tee", 1)]).await;
    w.script.known.lock().insert(
        id.clone(),
        Outcome::Charged {
            charge_id: "ch_found".into(),
        },
    );

    assert_eq!(w.reconcile(&id).await, Reconciled::Paid);
    assert_eq!(w.order(&id).await.payment_ref.as_deref(), Some("ch_found"));
}

#[actix_rt::test]
async fn a_charged_checkout_whose_hold_expired_is_refunded_not_oversold() {
    // Holds of 1 ms: past the margin, a hold found gone may have gone to someone else.
    let w = world(Duration::from_millis(1));
    w.product("tee", 2500, 5).await;
    let id = w.placed_and_held("k1", &[("tee", 2)]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    w.charged(&id, 2000).await;

    assert_eq!(w.reconcile(&id).await, Reconciled::Refunded);
    let order = w.order(&id).await;
    assert_eq!(order.cancel_reason, Some(CancelReason::HoldExpired));
    assert_eq!(w.stock("tee").await.sold, 0);
    assert_eq!(w.refunds().len(), 1);
}

#[actix_rt::test]
async fn a_sale_a_checkout_could_not_record_is_recorded_and_put_back_if_cancelled() {
    let w = world(Duration::from_secs(900));
    w.product("tee", 2500, 5).await;
    let id = w.placed_and_held("k1", &[("tee", 2)]).await;
    // The saga sold the hold, could not record it, and the customer cancelled.
    let commit = ProductCommand::Commit {
        reservation_id: id.clone(),
    };
    w.shop.products.execute("tee", commit, None).await.unwrap();
    let cancel = OrderCommand::Cancel {
        reason: CancelReason::ByCustomer,
    };
    w.shop.orders.execute(&id, cancel, None).await.unwrap();
    w.shop
        .unfinished
        .sales
        .lock()
        .insert((id.clone(), "tee".into()));
    assert_eq!(w.stock("tee").await.on_hand, 3);

    let book = Projection::<OrderBook>::new(4);
    reconcile::round(&w.shop, &book, Duration::from_secs(60)).await;

    assert!(w.shop.unfinished.sales.lock().is_empty());
    let order = w.order(&id).await;
    assert!(order.sold_lines.contains("tee") && order.reversed_lines.contains("tee"));
    assert_eq!(w.stock("tee").await.on_hand, 5, "put back");
}

#[actix_rt::test]
async fn a_slow_checkout_the_reconciler_finished_meanwhile_answers_paid_and_clears_the_cart() {
    let w = Arc::new(world(Duration::from_secs(900)));
    *w.script.charge_delay.lock() = Duration::from_millis(300);
    w.product("tee", 2500, 5).await;
    w.in_cart("tee", 2).await;
    let r = w.request("k1", "tok_visa");
    let id = r.order_id.clone();
    // The provider charged, and the reconciler, taking the checkout for dead while the
    // charge's answer is on its way, finds the charge there and finishes the order.
    w.script.known.lock().insert(
        id.clone(),
        Outcome::Charged {
            charge_id: "ch_known".into(),
        },
    );
    let reconciler = {
        let (w, id) = (w.clone(), id.clone());
        actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            w.reconcile(&id).await
        })
    };

    let paid = checkout(&w.shop, r).await.unwrap();

    assert_eq!(reconciler.await.unwrap(), Reconciled::Paid);
    assert_eq!(paid.order.status, OrderStatus::Paid);
    assert_eq!(w.stock("tee").await.sold, 2, "sold once");
    assert!(w
        .shop
        .carts
        .read(CUSTOMER)
        .await
        .unwrap()
        .state
        .items
        .is_empty());
}
