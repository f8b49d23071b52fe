//! Workflows: operations that span several entities, written as sequences of named,
//! idempotent steps, each with its compensation beside it ([`steps`]). Medusa's workflows
//! and Temporal's sagas are the models; unlike theirs, our steps keep no log of their own:
//! every step's effect is recorded on the entities themselves (a hold on the product, a
//! sale on the order, a refund intent on the payment), so whoever finds a workflow
//! interrupted (a retry, the reconciler) reads where it stopped from the entities, and
//! runs the same steps from there.
//!
//! | workflow | steps | compensations |
//! |---|---|---|
//! | [`checkout`] | price the cart, place the order, hold the stock, charge, record the payment, sell each hold and record the sale, mark paid, clear the cart | cancel the order, release the holds, reverse the sales and refund ([`settle`]) |
//! | [`settle`] | reverse each recorded sale, refund the charge (intent first), mark refunded | none: a step that fails is tried again (three times, then a refund left unconfirmed goes to the reconciler, which asks again until it is done) |
//! | [`settle::cancel`] | cancel the order, release its holds, settle | |
//! | [`reconcile`] | for an order left pending: find the charge, then sell and mark paid, or cancel and release, or refund | as checkout's |
//!
//! "Sell each hold and record the sale, then mark paid" is one function,
//! [`steps::complete_sale`], that the checkout and the reconciler both run. Errors are
//! typed: a workflow never answers HTTP, the node maps its errors in one place.

pub mod account;
pub mod checkout;
pub mod reconcile;
pub mod settle;
pub mod steps;

use ecommesh_actors::EntityError;
use ecommesh_persistence::StoreError;

use crate::cart::CartRejection;
use crate::order::OrderRejection;
use crate::payment::PaymentRejection;
use crate::product::ProductRejection;

/// A step's command to one entity failed (refused, or not carried out).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Cart(EntityError<CartRejection>),
    #[error(transparent)]
    Product(EntityError<ProductRejection>),
    #[error(transparent)]
    Order(EntityError<OrderRejection>),
    #[error(transparent)]
    Payment(EntityError<PaymentRejection>),
    /// Waiting for written steps to be durable failed.
    #[error(transparent)]
    Storage(StoreError),
}

impl StepError {
    /// True when asking again soon may succeed: the entity moved on under the step (it
    /// is read afresh), or its shard is busy, between leaders or restarting.
    pub fn transient(&self) -> bool {
        fn transient<R>(e: &EntityError<R>) -> bool {
            matches!(
                e,
                EntityError::Conflict { .. }
                    | EntityError::Overloaded { .. }
                    | EntityError::Quarantined { .. }
                    | EntityError::Unavailable
                    | EntityError::Storage(StoreError::Unavailable { .. })
            )
        }
        match self {
            StepError::Cart(e) => transient(e),
            StepError::Product(e) => transient(e),
            StepError::Order(e) => transient(e),
            StepError::Payment(e) => transient(e),
            StepError::Storage(e) => matches!(e, StoreError::Unavailable { .. }),
        }
    }
}

impl From<EntityError<CartRejection>> for StepError {
    fn from(e: EntityError<CartRejection>) -> Self {
        StepError::Cart(e)
    }
}

impl From<EntityError<ProductRejection>> for StepError {
    fn from(e: EntityError<ProductRejection>) -> Self {
        StepError::Product(e)
    }
}

impl From<EntityError<OrderRejection>> for StepError {
    fn from(e: EntityError<OrderRejection>) -> Self {
        StepError::Order(e)
    }
}

impl From<EntityError<PaymentRejection>> for StepError {
    fn from(e: EntityError<PaymentRejection>) -> Self {
        StepError::Payment(e)
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        StepError::Storage(e)
    }
}
