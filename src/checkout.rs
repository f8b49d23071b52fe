//! Checkout: a saga over the cart, the products, the order and the payment.
//!
//! 1. Read the cart once: everything below works on that one version of it.
//! 2. Price every line and place the order (`pending_payment`) before holding any stock,
//!    so every hold belongs to an order that recovery can find.
//! 3. Reserve every line on its product (reservation id = order id); a short line
//!    releases the others, cancels the order and answers 409 `out_of_stock`.
//! 4. Charge through the payment provider and record the answer in the order's payment;
//!    a decline releases the stock, cancels the order and answers 402.
//! 5. Commit the reservations (stock sold), mark the order paid, clear the cart if it is
//!    still the version that was bought.
//!
//! The steps up to the charge, and those after it, are only written, not waited for one
//! by one (on a single node's log-file journal, whose writes survive a crash in the order
//! they were made): the saga waits for them to be durable twice, before it charges and
//! before it answers. Nothing leaves the node that a crash could take back, and a crash
//! midway leaves a prefix of the saga, as if it had stopped there. Everyone else reading
//! these entities still sees only what is durable.
//!
//! The order id is derived from the customer and the `Idempotency-Key`, so retries and
//! concurrent duplicates meet in one order entity: one of them places it and runs the
//! saga, the others wait for its outcome and answer the same. The same key with another
//! body is refused (422). A saga that dies midway leaves reservations that expire on
//! their own (`reservation_ttl_secs`), so no stock is held forever, and no order is marked
//! paid without a recorded charge.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use ecommesh_actors::EntityError;
use ecommesh_commerce::order::{
    Address, CheckoutDetails, OrderCommand, OrderLine, OrderState, OrderStatus,
};
use ecommesh_commerce::payment::{Outcome, PaymentCommand};
use ecommesh_commerce::product::{ProductCommand, ProductRejection};
use ecommesh_commerce::Money;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::extract::Caller;
use crate::http::errors::ApiError;
use crate::http::json::Json;
use crate::http::orders::{order_view, order_view_with};
use crate::node::Node;
use ecommesh_commerce::payment::provider::ProviderError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/checkout", web::post().to(checkout));
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub name: String,
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

impl From<AddressInput> for Address {
    fn from(a: AddressInput) -> Self {
        Address {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<Address> for AddressInput {
    fn from(a: Address) -> Self {
        AddressInput {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub payment: PaymentInput,
    pub shipping_address: AddressInput,
}

use ecommesh_commerce::ids::order_id;

fn idempotency_key(req: &HttpRequest) -> Result<String, ApiError> {
    let key = req
        .headers()
        .get("Idempotency-Key")
        .ok_or_else(|| {
            ApiError::invalid_field(
                "Idempotency-Key",
                "this header is required: a unique string per checkout attempt",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::invalid_field("Idempotency-Key", "must be visible ASCII"))?
        .trim()
        .to_owned();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            "must be 1 to 255 characters",
        ));
    }
    Ok(key)
}

#[utoipa::path(post, path = "/api/v1/checkout", tag = "checkout", params(("Idempotency-Key" = String, Header, description = "Unique per checkout attempt; a retry with the same key and body returns the same outcome")), request_body = CheckoutRequest, security(("bearer" = [])), responses((status = 201, description = "The paid order", body = crate::http::orders::OrderView), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn checkout(
    node: web::Data<Node>,
    caller: Caller,
    req: HttpRequest,
    body: Json<CheckoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let request = body.into_inner();
    if request.payment.token.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "payment.token",
            "must not be empty",
        ));
    }
    let request_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&request).expect("serializable"),
    ));
    let id = order_id(&caller.id, &key);
    // Checkouts under way per customer are bounded: each holds stock while it runs.
    let Some(slot) = Checkouts::start(&node.checkouts, &caller.id, &id, node.max_pending_checkouts)
    else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_pending_checkouts",
            format!(
                "at most {} checkouts of one customer may run at once; wait for one to finish",
                node.max_pending_checkouts
            ),
        )
        .retry_after(1));
    };
    // The saga runs to its end even if the client goes away: an abandoned connection
    // must not leave its holds and its order pending until the reconciler's timeout.
    let saga = {
        let node = node.clone();
        actix_web::rt::spawn(async move {
            let _slot = slot;
            // A retry is recognised by its order, which the saga finds already placed
            // (or, if the cart was emptied by the first attempt, looks up before
            // answering).
            let answer = Saga {
                node: &node,
                id: &id,
                customer: &caller.id,
            }
            .run(request, request_hash)
            .await;
            if answer.is_err() {
                // Whatever the saga wrote on its way to this error is durable before it
                // is told.
                node.orders.sync().await.map_err(storage)?;
            }
            answer
        })
    };
    saga.await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "checkout_interrupted",
            "the checkout stopped before it answered; retry with the same Idempotency-Key",
        )
        .retry_after(1)
    })?
}

/// Checkouts under way on this node, per customer: by order, since retries of one
/// checkout (one Idempotency-Key, one order) meet in one order and hold nothing more.
#[derive(Default)]
pub struct Checkouts {
    running: parking_lot::Mutex<HashMap<String, HashMap<String, usize>>>,
}

/// One request of a checkout under way; its place is given back when it is dropped.
pub struct CheckoutSlot {
    owner: Arc<Checkouts>,
    customer: String,
    order: String,
}

impl Checkouts {
    /// A place for a request of `customer`'s checkout `order`, unless `max` other
    /// checkouts of the customer run already.
    pub fn start(
        this: &Arc<Checkouts>,
        customer: &str,
        order: &str,
        max: usize,
    ) -> Option<CheckoutSlot> {
        let mut running = this.running.lock();
        let orders = running.entry(customer.to_owned()).or_default();
        if !orders.contains_key(order) && orders.len() >= max {
            if orders.is_empty() {
                running.remove(customer);
            }
            return None;
        }
        *orders.entry(order.to_owned()).or_default() += 1;
        Some(CheckoutSlot {
            owner: this.clone(),
            customer: customer.to_owned(),
            order: order.to_owned(),
        })
    }
}

impl Drop for CheckoutSlot {
    fn drop(&mut self) {
        let mut running = self.owner.running.lock();
        let Some(orders) = running.get_mut(&self.customer) else {
            return;
        };
        if let Some(n) = orders.get_mut(&self.order) {
            *n -= 1;
            if *n == 0 {
                orders.remove(&self.order);
            }
        }
        if orders.is_empty() {
            running.remove(&self.customer);
        }
    }
}

fn storage(e: ecommesh_persistence::StoreError) -> ApiError {
    EntityError::<ecommesh_commerce::order::OrderRejection>::Storage(e).into()
}

/// Answers a retry: the same key with the same body gets the first attempt's outcome.
async fn replay(
    node: &Node,
    id: &str,
    order: Arc<OrderState>,
    request_hash: &str,
) -> Result<HttpResponse, ApiError> {
    if order.checkout.as_ref().map(|c| c.request_hash.as_str()) != Some(request_hash) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different checkout request",
        ));
    }
    let order = wait_settled(node, id, order).await?;
    match order.status {
        OrderStatus::PendingPayment => Err(ApiError::new(
            StatusCode::CONFLICT,
            "checkout_in_progress",
            "a checkout with this Idempotency-Key is still running; retry shortly",
        )
        .with("order_id", json!(id))),
        OrderStatus::Cancelled => Err(cancelled(id, &order)),
        _ => Ok(HttpResponse::Created().json(order_view(node, id, &order).await?)),
    }
}

/// Waits (bounded) for a concurrent attempt to finish the saga.
async fn wait_settled(
    node: &Node,
    id: &str,
    mut order: Arc<OrderState>,
) -> Result<Arc<OrderState>, ApiError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while order.status == OrderStatus::PendingPayment && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        order = node.orders.read(id.to_owned()).await?.state;
    }
    Ok(order)
}

fn out_of_stock(lines: Vec<serde_json::Value>) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "out_of_stock",
        "some lines of the cart are not available in the quantity asked",
    )
    .with("lines", json!(lines))
}

fn cancelled(id: &str, order: &OrderState) -> ApiError {
    let reason = order.cancel_reason.clone().unwrap_or_default();
    match reason.strip_prefix("payment_declined: ") {
        Some(why) => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment_declined",
            format!("the payment was declined: {why}"),
        )
        .with("decline_code", json!(why))
        .with("order_id", json!(id)),
        None => ApiError::new(
            StatusCode::CONFLICT,
            "order_cancelled",
            format!("the checkout was cancelled: {reason}"),
        )
        .with("order_id", json!(id)),
    }
}

struct Saga<'a> {
    node: &'a Node,
    id: &'a str,
    customer: &'a str,
}

struct Reserved {
    product_id: String,
    quantity: u32,
    unit_price: Money,
}

impl Saga<'_> {
    async fn run(
        &self,
        request: CheckoutRequest,
        request_hash: String,
    ) -> Result<HttpResponse, ApiError> {
        let node = self.node;
        let (cart, priced) = match self.cart_and_prices().await {
            Ok(found) => found,
            Err(e) => return self.unless_retried(e, &request_hash).await,
        };
        let shipping = Address::from(request.shipping_address);
        let order_lines: Vec<OrderLine> = priced
            .iter()
            .map(|r| OrderLine {
                product_id: r.product_id.clone(),
                quantity: r.quantity,
                unit_price: r.unit_price,
            })
            .collect();
        let place = OrderCommand::Place {
            customer_id: self.customer.to_owned(),
            lines: order_lines,
            checkout: Some(CheckoutDetails {
                shipping,
                request_hash: request_hash.clone(),
            }),
        };
        let placed = match node
            .orders
            .execute_unsynced(self.id.to_owned(), place, None)
            .await
        {
            Ok(reply) => reply.state,
            Err(EntityError::Rejected(ecommesh_commerce::order::OrderRejection::AlreadyPlaced)) => {
                // An earlier attempt, or a concurrent duplicate that runs the saga now,
                // placed it first: answer what it ends with. We hold nothing.
                let order = node.orders.read(self.id.to_owned()).await?.state;
                return replay(node, self.id, order, &request_hash).await;
            }
            Err(e) => return Err(e.into()),
        };

        // 3. Hold the stock of every line.
        let reserved = match self.reserve(priced).await {
            Ok(reserved) => reserved,
            Err((held, e)) => {
                self.abandon(&held, "out_of_stock").await;
                return Err(e);
            }
        };
        let total = placed.total.expect("a placed order has a total");
        // The order and its holds are durable before any money moves.
        node.orders.sync().await.map_err(storage)?;

        // 4. Charge, and record the answer before acting on it.
        let provider = &node.payment_provider;
        let outcome = match provider
            .charge(self.id, total, request.payment.token.trim())
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => {
                self.abandon(&reserved, &format!("payment failed: {e}"))
                    .await;
                return Err(match e {
                    ProviderError::InvalidToken(_) => {
                        ApiError::invalid_field("payment.token", e.to_string())
                    }
                    ProviderError::Unavailable(_) => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "payment_unavailable",
                        e.to_string(),
                    ),
                });
            }
        };
        let record = PaymentCommand::Record {
            provider: provider.name().to_owned(),
            amount: total,
            outcome,
        };
        let payment = node
            .payments
            .execute_unsynced(self.id.to_owned(), record, None)
            .await?
            .state;
        let charge_id = match &payment.outcome {
            Some(Outcome::Charged { charge_id }) => charge_id.clone(),
            Some(Outcome::Declined { reason }) => {
                let order = self
                    .abandon(&reserved, &format!("payment_declined: {reason}"))
                    .await;
                return Err(cancelled(self.id, &order));
            }
            None => unreachable!("recorded above"),
        };

        // 5. Sell the reserved stock, recording each sale on the order, then mark the
        // order paid. A cancel may race this loop: whatever was sold by then is put back.
        for (i, r) in reserved.iter().enumerate() {
            // TEST ONLY: a pause after the first sale, so a test can cancel mid-loop.
            #[cfg(feature = "test-hooks")]
            if i == 1 && request.payment.token.trim() == "tok_pause_in_sale" {
                actix_web::rt::time::sleep(Duration::from_secs(2)).await;
            }
            #[cfg(not(feature = "test-hooks"))]
            let _ = i;
            let sold = self.sell(&r.product_id).await;
            if let Err(EntityError::Storage(e)) = &sold {
                // Whether it sold is unknown (a shard between leaders): leave the order
                // pending; a retry, or the reconciler, finishes it (selling is idempotent).
                tracing::warn!(order = self.id, product = %r.product_id, error = %e, "sale unconfirmed; the order stays pending");
                return Err(EntityError::<ProductRejection>::Storage(e.clone()).into());
            }
            let lost = match sold {
                Err(e) => {
                    // The hold expired or was released by a cancel: undo and refund.
                    tracing::warn!(order = self.id, product = %r.product_id, error = %e, "reservation lost after charging; refunding");
                    true
                }
                Ok(()) => {
                    let record = OrderCommand::RecordSale {
                        product_id: r.product_id.clone(),
                    };
                    let order = match node
                        .orders
                        .execute_unsynced(self.id.to_owned(), record, None)
                        .await
                    {
                        Ok(order) => order,
                        Err(e) => {
                            // Sold, but not recorded on the order: the reconciler records
                            // it (and settles, if the order was cancelled meanwhile).
                            node.unrecorded_sales
                                .lock()
                                .insert((self.id.to_owned(), r.product_id.clone()));
                            return Err(e.into());
                        }
                    };
                    order.state.status == OrderStatus::Cancelled
                }
            };
            if lost {
                let order = self
                    .undo_after_charge(&reserved, "reservation lost before the payment completed")
                    .await?;
                return Err(cancelled(self.id, &order));
            }
        }
        let mark_paid = OrderCommand::MarkPaid {
            payment_ref: charge_id,
        };
        let paid = match node
            .orders
            .execute_unsynced(self.id.to_owned(), mark_paid, None)
            .await
        {
            Ok(paid) => paid,
            Err(EntityError::Rejected(
                ecommesh_commerce::order::OrderRejection::IllegalTransition { .. },
            )) => {
                // Cancelled while we were charging: undo the sale and the charge.
                let order = self
                    .undo_after_charge(&reserved, "cancelled while paying")
                    .await?;
                return Err(cancelled(self.id, &order));
            }
            Err(e) => return Err(e.into()),
        };
        // Clear the cart only if it is still the version that was bought; retried while
        // the cart's shard has no leader (a clear that did land turns a retry into a
        // harmless conflict). The order is paid either way.
        for _ in 0..3 {
            let clear = node
                .carts
                .execute_unsynced(
                    self.customer.to_owned(),
                    ecommesh_commerce::cart::CartCommand::Clear,
                    Some(cart.seq),
                )
                .await;
            if !matches!(clear, Err(EntityError::Storage(_))) {
                break;
            }
        }
        // The steps since the charge were only written: answer once they are durable (and
        // the view's reads need not wait each for a flush of their own).
        node.orders.sync().await.map_err(storage)?;
        metrics::counter!("ecommesh_checkouts_total", "outcome" => "paid").increment(1);
        let view = order_view_with(node, self.id, &paid.state, &payment).await?;
        Ok(HttpResponse::Created().json(view))
    }

    /// Steps 1 and 2: one version of the cart, and every line priced now.
    async fn cart_and_prices(
        &self,
    ) -> Result<
        (
            ecommesh_actors::Reply<Arc<ecommesh_commerce::cart::CartState>>,
            Vec<Reserved>,
        ),
        ApiError,
    > {
        let node = self.node;
        // 1. One version of the cart.
        let cart = node.carts.read_unsynced(self.customer.to_owned()).await?;
        if cart.state.items.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cart_empty",
                "the cart is empty",
            ));
        }
        let lines: Vec<(String, u32)> = cart
            .state
            .items
            .iter()
            .map(|(p, q)| (p.clone(), *q))
            .collect();

        // 2. Price every line now, and place the order before holding any stock, so
        //    that every hold belongs to an order the reconciler can find.
        let mut priced = Vec::with_capacity(lines.len());
        let mut unavailable = Vec::new();
        for (product_id, quantity) in &lines {
            let product = node.product(product_id).await?.state;
            match &product.details {
                Some(d) if !product.archived => priced.push(Reserved {
                    product_id: product_id.clone(),
                    quantity: *quantity,
                    unit_price: d.price,
                }),
                _ => unavailable
                    .push(json!({"product_id": product_id, "requested": quantity, "available": 0})),
            }
        }
        if !unavailable.is_empty() {
            return Err(out_of_stock(unavailable));
        }
        Ok((cart, priced))
    }

    /// Answers `e`, unless this checkout is a retry of one that placed its order (whose
    /// cart is empty now): then the outcome of the first attempt.
    async fn unless_retried(
        &self,
        e: ApiError,
        request_hash: &str,
    ) -> Result<HttpResponse, ApiError> {
        let order = self.node.orders.read(self.id.to_owned()).await?.state;
        if order.status == OrderStatus::New {
            return Err(e);
        }
        replay(self.node, self.id, order, request_hash).await
    }

    /// Sells this order's hold on `product`; retried while the product's shard has no
    /// leader, and after a conflict (the product's state here was stale: an earlier
    /// attempt whose answer was lost may have sold it). Selling twice is recognised and
    /// does nothing, so a retry is always safe.
    async fn sell(&self, product: &str) -> Result<(), EntityError<ProductRejection>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let commit = ProductCommand::Commit {
                reservation_id: self.id.to_owned(),
            };
            match self
                .node
                .products
                .execute_unsynced(product.to_owned(), commit, None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(EntityError::Storage(_) | EntityError::Conflict { .. }) if attempt < 3 => {}
                // Still unsure whether it sold: the caller leaves the order pending.
                Err(EntityError::Conflict { entity, .. }) => {
                    return Err(EntityError::Storage(
                        ecommesh_persistence::StoreError::Unavailable {
                            shard: self.node.products.shard_of(product),
                            reason: format!("{entity} kept changing under the sale"),
                        },
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Holds every line concurrently. On any failure returns what it did hold (for the
    /// caller to release) and the error to answer.
    async fn reserve(
        &self,
        lines: Vec<Reserved>,
    ) -> Result<Vec<Reserved>, (Vec<Reserved>, ApiError)> {
        let ttl_ms = self.node.reservation_ttl.as_millis() as u64;
        let tasks: Vec<_> = lines
            .iter()
            .map(|l| {
                let products = self.node.products.clone();
                let cmd = ProductCommand::Reserve {
                    reservation_id: self.id.to_owned(),
                    quantity: l.quantity as u64,
                    ttl_ms,
                };
                let product_id = l.product_id.clone();
                actix_web::rt::spawn(async move {
                    products.execute_unsynced(product_id, cmd, None).await
                })
            })
            .collect();
        let mut held = Vec::new();
        let mut short = Vec::new();
        let mut other: Option<ApiError> = None;
        for (line, task) in lines.into_iter().zip(tasks) {
            match task.await {
                Ok(Ok(_)) => held.push(line),
                Ok(Err(EntityError::Rejected(ProductRejection::OutOfStock {
                    requested,
                    available,
                }))) => {
                    short.push(json!({"product_id": line.product_id, "requested": requested, "available": available}));
                }
                Ok(Err(EntityError::Rejected(
                    ProductRejection::NotFound | ProductRejection::Archived,
                ))) => {
                    short.push(json!({"product_id": line.product_id, "requested": line.quantity, "available": 0}));
                }
                Ok(Err(e)) => {
                    // A storage error may leave the hold made (a write whose commit was
                    // not confirmed): release it too, which is harmless if it was not.
                    if matches!(e, EntityError::Storage(_)) {
                        held.push(line);
                    }
                    other = Some(e.into())
                }
                Err(_) => {
                    other = Some(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "shutting down",
                    ))
                }
            }
        }
        match (short.is_empty(), other) {
            (true, None) => Ok(held),
            (_, Some(e)) => Err((held, e)),
            (false, None) => {
                metrics::counter!("ecommesh_checkouts_total", "outcome" => "out_of_stock")
                    .increment(1);
                Err((held, out_of_stock(short)))
            }
        }
    }

    /// Gives the reserved stock back. Best effort: reservations also expire on their own.
    async fn release(&self, reserved: &[Reserved]) {
        crate::http::orders::release(
            self.node,
            self.id,
            reserved.iter().map(|r| r.product_id.clone()),
        )
        .await;
    }

    /// Releases the stock and cancels the order with `reason`; returns the order.
    async fn abandon(&self, reserved: &[Reserved], reason: &str) -> Arc<OrderState> {
        self.release(reserved).await;
        metrics::counter!("ecommesh_checkouts_total", "outcome" => "cancelled").increment(1);
        let cancel = OrderCommand::Cancel {
            reason: reason.to_owned(),
        };
        match self
            .node
            .orders
            .execute(self.id.to_owned(), cancel, None)
            .await
        {
            Ok(reply) => reply.state,
            Err(e) => {
                tracing::error!(order = self.id, error = %e, "cancel failed");
                self.node
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
        reserved: &[Reserved],
        reason: &str,
    ) -> Result<Arc<OrderState>, ApiError> {
        let node = self.node;
        node.orders.sync().await.map_err(storage)?;
        self.abandon(reserved, reason).await;
        crate::http::orders::settle(node, self.id).await?;
        Ok(node.orders.read(self.id.to_owned()).await?.state)
    }
}
