//! The live sales board behind `admin:sales`: every paid, cancelled and refunded order as
//! it happens, and per-second aggregates with the top products of the last minute.
//!
//! It counts from the moment the node starts (history before that is in the order book's
//! summary, `GET /api/v1/admin/sales`); it is fed by durable order changes only.

use std::collections::{HashMap, VecDeque};

use ecommesh_commerce::{Currency, Money};
use serde::Serialize;

use crate::views::MoneyJson;

/// Seconds of aggregates kept, for the dashboard's chart and the top-products window.
pub const WINDOW_SECS: usize = 60;
/// Sales kept for a dashboard that opens now.
const RECENT_SALES: usize = 20;
const TOP_PRODUCTS: usize = 5;

/// One order that was paid, cancelled or refunded.
#[derive(Debug, Clone, Serialize)]
pub struct Sale {
    pub order_id: String,
    pub customer_id: String,
    /// `paid`, `cancelled` or `refunded`.
    pub kind: &'static str,
    /// The order total, or the refunded amount for `refunded`.
    pub amount: MoneyJson,
    pub items: u64,
    pub lines: Vec<SaleLine>,
    pub at: String,
    /// The order's sequence number after this change.
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SaleLine {
    pub product_id: String,
    pub name: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopProduct {
    pub product_id: String,
    pub name: String,
    pub units: u64,
}

/// The aggregates of one second.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    /// Counts ticks since the node started: a gap means a missed tick.
    pub seq: u64,
    /// The second, as Unix seconds and RFC 3339.
    pub second: u64,
    pub at: String,
    pub orders: u64,
    /// `null` if the second's revenue does not fit in 64-bit minor units (never a
    /// saturated or wrapped figure).
    pub revenue: Option<MoneyJson>,
    pub items: u64,
    pub cancelled: u64,
    /// As `revenue`.
    pub refunds: Option<MoneyJson>,
    /// Most units sold over the last minute.
    pub top_products: Vec<TopProduct>,
}

#[derive(Default)]
struct Bucket {
    orders: u64,
    /// Wide enough that no second's sales overflow it; narrowed when rendered.
    revenue: i128,
    items: u64,
    cancelled: u64,
    refunds: i128,
    units: HashMap<String, u64>,
}

/// What a dashboard that opens now is shown first.
#[derive(Debug, Clone, Serialize)]
pub struct BoardSnapshot {
    pub ticks: Vec<Tick>,
    pub recent: Vec<Sale>,
}

pub struct SalesBoard {
    currency: Currency,
    current: Bucket,
    /// The last `WINDOW_SECS` closed seconds, oldest first.
    closed: VecDeque<(Tick, HashMap<String, u64>)>,
    recent: VecDeque<Sale>,
    names: HashMap<String, String>,
    ticks: u64,
}

impl SalesBoard {
    pub fn new(currency: Currency) -> Self {
        SalesBoard {
            currency,
            current: Bucket::default(),
            closed: VecDeque::with_capacity(WINDOW_SECS + 1),
            recent: VecDeque::with_capacity(RECENT_SALES + 1),
            names: HashMap::new(),
            ticks: 0,
        }
    }

    fn money(&self, minor: i128) -> Option<MoneyJson> {
        let minor = i64::try_from(minor).ok()?;
        Some(MoneyJson::from_money(Money::new(minor, self.currency)))
    }

    /// Counts a sale in the current second and keeps it for new dashboards.
    pub fn record(&mut self, sale: &Sale) {
        let b = &mut self.current;
        match sale.kind {
            "paid" => {
                b.orders += 1;
                b.revenue += i128::from(sale.amount.amount);
                b.items += sale.items;
                for l in &sale.lines {
                    *b.units.entry(l.product_id.clone()).or_default() += l.quantity as u64;
                    self.names.insert(l.product_id.clone(), l.name.clone());
                }
            }
            "cancelled" => b.cancelled += 1,
            "refunded" => b.refunds += i128::from(sale.amount.amount),
            _ => {}
        }
        self.recent.push_back(sale.clone());
        if self.recent.len() > RECENT_SALES {
            self.recent.pop_front();
        }
    }

    /// Closes the current second (`second`, Unix seconds) and returns its aggregates.
    pub fn tick(&mut self, second: u64) -> Tick {
        let b = std::mem::take(&mut self.current);
        self.ticks += 1;
        let mut window: HashMap<&str, u64> = HashMap::new();
        for (_, units) in self
            .closed
            .iter()
            .skip(self.closed.len().saturating_sub(WINDOW_SECS - 1))
        {
            for (p, n) in units {
                *window.entry(p).or_default() += n;
            }
        }
        for (p, n) in &b.units {
            *window.entry(p).or_default() += n;
        }
        let mut top: Vec<(&str, u64)> = window.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let top_products = top
            .into_iter()
            .take(TOP_PRODUCTS)
            .map(|(p, units)| TopProduct {
                product_id: p.to_owned(),
                name: self.names.get(p).cloned().unwrap_or_default(),
                units,
            })
            .collect();
        let tick = Tick {
            seq: self.ticks,
            second,
            at: crate::views::rfc3339(second * 1000),
            orders: b.orders,
            revenue: self.money(b.revenue),
            items: b.items,
            cancelled: b.cancelled,
            refunds: self.money(b.refunds),
            top_products,
        };
        self.closed.push_back((tick.clone(), b.units));
        if self.closed.len() > WINDOW_SECS {
            self.closed.pop_front();
        }
        tick
    }

    pub fn snapshot(&self) -> BoardSnapshot {
        BoardSnapshot {
            ticks: self.closed.iter().map(|(t, _)| t.clone()).collect(),
            recent: self.recent.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(kind: &'static str, amount: i64, lines: &[(&str, u32)]) -> Sale {
        Sale {
            order_id: "o".into(),
            customer_id: "c".into(),
            kind,
            amount: MoneyJson::from_money(Money::new(amount, Currency::parse("USD").unwrap())),
            items: lines.iter().map(|l| l.1 as u64).sum(),
            lines: lines
                .iter()
                .map(|(p, q)| SaleLine {
                    product_id: (*p).into(),
                    name: format!("name of {p}"),
                    quantity: *q,
                })
                .collect(),
            at: String::new(),
            seq: 1,
        }
    }

    #[test]
    fn seconds_aggregate_and_top_products_cover_the_last_minute() {
        let mut board = SalesBoard::new(Currency::parse("USD").unwrap());
        board.record(&sale("paid", 1000, &[("a", 2), ("b", 1)]));
        board.record(&sale("paid", 500, &[("b", 3)]));
        board.record(&sale("refunded", 300, &[]));
        board.record(&sale("cancelled", 500, &[]));
        let t = board.tick(100);
        assert_eq!((t.seq, t.orders, t.items, t.cancelled), (1, 2, 6, 1));
        assert_eq!(
            (t.revenue.unwrap().amount, t.refunds.unwrap().amount),
            (1500, 300)
        );
        assert_eq!(t.top_products[0].product_id, "b");
        assert_eq!(t.top_products[0].units, 4);
        assert_eq!(t.top_products[0].name, "name of b");
        // An empty second still reports the minute's top products...
        let t = board.tick(101);
        assert_eq!((t.seq, t.orders, t.revenue.unwrap().amount), (2, 0, 0));
        assert_eq!(t.top_products.len(), 2);
        // ...until they fall out of the window.
        for s in 0..WINDOW_SECS as u64 {
            board.tick(102 + s);
        }
        assert!(board.tick(500).top_products.is_empty());
        let snap = board.snapshot();
        assert_eq!(snap.ticks.len(), WINDOW_SECS);
        assert_eq!(snap.recent.len(), 4);
    }
}
