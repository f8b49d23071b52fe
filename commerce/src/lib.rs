//! The commerce domain of EcomMesh, apart from any transport: no HTTP, no actix-web.
//!
//! - The entities (cart, product with its stock, order, payment, customer, session):
//!   each module holds one entity's commands, events, state and rules, pure and tested
//!   given / when / then; the runtime (`ecommesh-actors`) hosts them.
//! - [`money`]: integer minor units with a currency, overflow-checked.
//! - [`ids`]: how ids are derived from what a caller knows (an email, an idempotency key),
//!   so that retries meet in one entity.
//! - [`payment::provider`]: the payment provider trait and the test provider.
//! - [`Shop`]: the entities wherever their shards are led, and what the workflows share.
//! - [`workflow`]: checkout, settle and cancel, the reconciler: steps with compensations.
//! - Read models, projections of the journal ([`projection`]): the catalog index and the
//!   current products ([`catalog`]), the order book ([`order::book`]).

pub mod cart;
pub mod catalog;
pub mod customer;
pub mod ids;
pub mod money;
pub mod order;
pub mod passwords;
pub mod payment;
pub mod product;
pub mod projection;
pub mod session;
pub mod shop;
pub mod workflow;

pub use cart::Cart;
pub use customer::Customer;
pub use money::{Currency, Money};
pub use order::Order;
pub use payment::Payment;
pub use product::Product;
pub use session::Session;
pub use shop::Shop;

/// Given/when/then helpers for entity tests.
#[cfg(test)]
pub(crate) mod given {
    use ecommesh_actors::Entity;

    /// The state after applying `events` to the default state.
    pub fn state<E: Entity>(events: &[E::Event]) -> E::State {
        let mut s = E::State::default();
        for e in events {
            E::apply(&mut s, e);
        }
        s
    }

    /// Runs `command` on the state built from `history`, returning the new events.
    pub fn when<E: Entity>(
        history: &[E::Event],
        command: E::Command,
    ) -> Result<Vec<E::Event>, E::Rejection> {
        E::handle(&state::<E>(history), &command, 1_000)
    }
}
