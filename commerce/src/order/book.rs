//! The orders read model: every order's current state, indexed by customer, for order
//! history, the admin's order list and the sales summary. Built from order events only.

use std::collections::{BTreeMap, HashMap};

use super::{Order, OrderState, OrderStatus};
use crate::Money;
use ecommesh_actors::entity::decode_event;
use ecommesh_actors::Entity;
use ecommesh_persistence::EventEnvelope;

use crate::projection::ReadModel;

#[derive(Default)]
pub struct OrderBook {
    orders: HashMap<String, (OrderState, u64)>,
    by_customer: HashMap<String, Vec<String>>,
}

/// Sales over a window: paid orders only (cancelled, returned and refunded ones are not
/// sales).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub orders: u64,
    pub revenue: i64,
    pub items: u64,
    /// (product id, units), most sold first.
    pub top_products: Vec<(String, u64)>,
}

impl ReadModel for OrderBook {
    const KIND: &'static str = Order::KIND;

    fn apply(&mut self, id: &str, event: &EventEnvelope) {
        let Ok(e) = decode_event::<Order>(event) else {
            tracing::error!(
                order = id,
                seq = event.seq,
                "order book skipped an undecodable event"
            );
            return;
        };
        let (state, seq) = self.orders.entry(id.to_owned()).or_default();
        let was_new = state.status == OrderStatus::New;
        Order::apply(state, &e);
        *seq = event.seq;
        if was_new && state.status != OrderStatus::New {
            self.by_customer
                .entry(state.customer_id.clone())
                .or_default()
                .push(id.to_owned());
        }
    }
}

fn counts_as_sale(s: OrderStatus) -> bool {
    matches!(
        s,
        OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered
    )
}

impl OrderBook {
    fn newest_first<'a>(
        &'a self,
        ids: impl Iterator<Item = &'a String>,
    ) -> Vec<(&'a str, &'a OrderState)> {
        let mut out: Vec<_> = ids
            .filter_map(|id| self.orders.get(id).map(|(s, _)| (id.as_str(), s)))
            .collect();
        out.sort_by(|a, b| {
            b.1.placed_at_ms
                .cmp(&a.1.placed_at_ms)
                .then_with(|| a.0.cmp(b.0))
        });
        out
    }

    /// A customer's orders, newest first.
    pub fn for_customer(&self, customer: &str) -> Vec<(&str, &OrderState)> {
        self.newest_first(self.by_customer.get(customer).into_iter().flatten())
    }

    /// Every order, or those with `status`, newest first.
    pub fn all(&self, status: Option<OrderStatus>) -> Vec<(&str, &OrderState)> {
        let mut out = self.newest_first(self.orders.keys());
        out.retain(|(_, s)| {
            s.status != OrderStatus::New && status.is_none_or(|want| s.status == want)
        });
        out
    }

    /// Sales of orders placed at or after `since_ms`; an error rather than a wrong
    /// figure if their revenue does not fit in 64-bit minor units.
    pub fn summary(
        &self,
        since_ms: u64,
        top: usize,
        currency: crate::Currency,
    ) -> Result<(Summary, Money), RevenueOverflow> {
        let mut s = Summary::default();
        let mut units: BTreeMap<&str, u64> = BTreeMap::new();
        for (o, _) in self.orders.values() {
            if !counts_as_sale(o.status) || o.placed_at_ms < since_ms {
                continue;
            }
            s.orders += 1;
            s.revenue = s
                .revenue
                .checked_add(o.total.map_or(0, |t| t.amount))
                .ok_or(RevenueOverflow)?;
            for l in &o.lines {
                s.items += l.quantity as u64;
                *units.entry(&l.product_id).or_default() += l.quantity as u64;
            }
        }
        let mut ranked: Vec<(String, u64)> =
            units.into_iter().map(|(p, n)| (p.to_owned(), n)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(top);
        s.top_products = ranked;
        let revenue = Money::new(s.revenue, currency);
        Ok((s, revenue))
    }
}

/// The revenue of a period does not fit in 64-bit minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the revenue of this period does not fit in 64-bit minor units; ask for a shorter period")]
pub struct RevenueOverflow;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{OrderEvent, OrderLine};
    use crate::Currency;
    use ecommesh_actors::entity::encode_event;

    fn feed(book: &mut OrderBook, id: &str, seq: u64, e: OrderEvent) {
        let env = EventEnvelope::new(
            &format!("order/{id}"),
            seq,
            &encode_event::<Order>(&e, 0).unwrap(),
        );
        book.apply(id, &env);
    }

    fn placed(customer: &str, at: u64, product: &str, qty: u32, cents: i64) -> OrderEvent {
        OrderEvent::Placed {
            customer_id: customer.into(),
            lines: vec![OrderLine {
                product_id: product.into(),
                quantity: qty,
                unit_price: Money::new(cents, Currency::USD),
            }],
            total: Money::new(cents * qty as i64, Currency::USD),
            at_ms: at,
        }
    }

    #[test]
    fn history_per_customer_newest_first_and_sales_count_paid_orders() {
        let mut b = OrderBook::default();
        feed(&mut b, "o1", 1, placed("ada", 10, "mug", 2, 500));
        feed(
            &mut b,
            "o1",
            2,
            OrderEvent::Paid {
                payment_ref: "ch".into(),
                at_ms: 11,
            },
        );
        feed(&mut b, "o2", 1, placed("ada", 20, "lid", 1, 300));
        feed(&mut b, "o3", 1, placed("bob", 30, "mug", 5, 500));
        feed(
            &mut b,
            "o3",
            2,
            OrderEvent::Paid {
                payment_ref: "ch".into(),
                at_ms: 31,
            },
        );
        feed(
            &mut b,
            "o3",
            3,
            OrderEvent::Shipped {
                carrier: "ups".into(),
                tracking: "1Z".into(),
                at_ms: 32,
            },
        );
        let ada: Vec<&str> = b.for_customer("ada").iter().map(|(id, _)| *id).collect();
        assert_eq!(ada, vec!["o2", "o1"]);
        assert_eq!(b.all(Some(OrderStatus::PendingPayment)).len(), 1);
        let (s, revenue) = b.summary(0, 5, Currency::USD).unwrap();
        assert_eq!((s.orders, revenue.amount, s.items), (2, 3500, 7));
        assert_eq!(s.top_products, vec![("mug".to_string(), 7)]);
        assert_eq!(
            b.summary(25, 5, Currency::USD).unwrap().0.orders,
            1,
            "the window counts"
        );
    }

    #[test]
    fn a_revenue_that_does_not_fit_is_an_error_not_a_wrong_figure() {
        let mut b = OrderBook::default();
        let half = i64::MAX / 2 + 1;
        for id in ["o1", "o2"] {
            feed(&mut b, id, 1, placed("ada", 10, "gem", 1, half));
            feed(
                &mut b,
                id,
                2,
                OrderEvent::Paid {
                    payment_ref: "ch".into(),
                    at_ms: 11,
                },
            );
        }
        assert_eq!(b.summary(0, 5, Currency::USD), Err(RevenueOverflow));
    }
}
