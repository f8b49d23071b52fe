//! The commerce entities. Each module holds one entity's commands, events, state and
//! rules; none does IO.

pub mod cart;
pub mod customer;
pub mod order;
pub mod payment;
pub mod product;
pub mod session;

pub use cart::Cart;
pub use customer::Customer;
pub use order::Order;
pub use payment::Payment;
pub use product::Product;
pub use session::Session;

/// Given/when/then helpers for entity tests.
#[cfg(test)]
pub(crate) mod given {
    use crate::entity::Entity;

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
