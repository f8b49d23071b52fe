//! Checkouts under way on this node, per customer. Each holds stock while it runs, so a
//! customer may run only a few at once (`max_pending_checkouts`); a place is given back
//! when its guard drops, so a checkout task that dies cannot leak it.

use std::collections::HashMap;
use std::sync::Arc;

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
