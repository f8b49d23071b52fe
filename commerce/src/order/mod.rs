//! An order and its life cycle.
//!
//! ```text
//! pending_payment -> paid -> shipped -> delivered -> returned -> refunded
//!        |            |
//!        v            v
//!    cancelled    cancelled -> refunded   (only an order that was paid is refunded)
//! ```
//! Every other transition is refused with `illegal_transition`.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod book;

use crate::money::Money;
use ecommesh_actors::{Entity, Rejection, RejectionKind};

pub const MAX_LINES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Not placed yet: the entity has no events.
    #[default]
    New,
    PendingPayment,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Returned,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "new",
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Returned => "returned",
            OrderStatus::Refunded => "refunded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: String,
    pub quantity: u32,
    pub unit_price: Money,
}

/// Where an order goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `US`.
    pub country: String,
}

/// What a checkout records with the order it places.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutDetails {
    pub shipping: Address,
    /// Hash of the checkout request, so that a retry with the same idempotency key but a
    /// different body is told apart from a true retry.
    pub request_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderState {
    pub status: OrderStatus,
    pub customer_id: String,
    pub lines: Vec<OrderLine>,
    pub total: Option<Money>,
    pub payment_ref: Option<String>,
    pub carrier: Option<String>,
    pub tracking: Option<String>,
    pub placed_at_ms: u64,
    /// True once payment was taken: decides whether a cancellation needs a refund.
    pub was_paid: bool,
    pub refunded: Option<Money>,
    /// (status, at) for every transition, oldest first.
    pub history: Vec<(OrderStatus, u64)>,
    pub checkout: Option<CheckoutDetails>,
    pub cancel_reason: Option<CancelReason>,
    /// The units of a partial return; `None` when nothing or everything was returned.
    pub returned_lines: Option<Vec<(String, u32)>>,
    /// Products whose units the checkout sold for this order (recorded after each sale,
    /// so a cancellation racing the checkout knows what to put back).
    pub sold_lines: std::collections::BTreeSet<String>,
    /// Products whose sale was reversed for this order: reversed once, however often a
    /// cancellation or refund is retried (the product's own memory of reversals is a
    /// bounded window).
    pub reversed_lines: std::collections::BTreeSet<String>,
}

impl OrderState {
    /// The (product, units) whose sale a cancellation or refund must still reverse: the
    /// returned units of a partial return; every line of an order that was paid; else
    /// the lines a checkout sold before it was cancelled. Lines reversed already are left
    /// out.
    pub fn to_reverse(&self) -> Vec<(String, u32)> {
        let all = self
            .lines
            .iter()
            .map(|l| (l.product_id.clone(), l.quantity));
        let due: Vec<(String, u32)> = match &self.returned_lines {
            Some(lines) => lines.clone(),
            None if self.was_paid => all.collect(),
            None => all.filter(|(p, _)| self.sold_lines.contains(p)).collect(),
        };
        due.into_iter()
            .filter(|(p, _)| !self.reversed_lines.contains(p))
            .collect()
    }

    /// What a refund gives back: the returned units' price for a partial return, else
    /// the whole total.
    pub fn refund_due(&self) -> Option<Money> {
        let total = self.total?;
        match &self.returned_lines {
            None => Some(total),
            Some(lines) => {
                lines
                    .iter()
                    .try_fold(Money::new(0, total.currency), |sum, (product, qty)| {
                        let line = self.lines.iter().find(|l| &l.product_id == product)?;
                        sum.checked_add(line.unit_price.checked_mul(*qty as u64)?)
                    })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommand {
    Place {
        customer_id: String,
        lines: Vec<OrderLine>,
        checkout: Option<CheckoutDetails>,
    },
    MarkPaid {
        payment_ref: String,
    },
    Ship {
        carrier: String,
        tracking: String,
    },
    Deliver,
    Cancel {
        reason: CancelReason,
    },
    /// Returns a delivered order: every line when `lines` is `None`, else those units.
    Return {
        reason: String,
        lines: Option<Vec<(String, u32)>>,
    },
    Refund,
    /// The checkout sold this line's units (idempotent).
    RecordSale {
        product_id: String,
    },
    /// This line's sale was reversed on its product (idempotent).
    RecordReversal {
        product_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    Placed {
        customer_id: String,
        lines: Vec<OrderLine>,
        total: Money,
        at_ms: u64,
    },
    Paid {
        payment_ref: String,
        at_ms: u64,
    },
    Shipped {
        carrier: String,
        tracking: String,
        at_ms: u64,
    },
    Delivered {
        at_ms: u64,
    },
    Cancelled {
        reason: String,
        at_ms: u64,
    },
    Returned {
        reason: String,
        at_ms: u64,
    },
    Refunded {
        amount: Money,
        at_ms: u64,
    },
    /// Added after schema v1; new variants go at the end so old events keep their tags.
    CheckoutRecorded(CheckoutDetails),
    /// Added after schema v1: the units a partial return gives back.
    ReturnedLines(Vec<(String, u32)>),
    /// Added after schema v1: a line's units were sold for this order.
    LineSold {
        product_id: String,
    },
    /// Added after schema v1: a line's sale was reversed.
    LineReversed {
        product_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum OrderRejection {
    #[error("order does not exist")]
    NotFound,
    #[error("order already placed")]
    AlreadyPlaced,
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: Cow<'static, str>,
        reason: String,
    },
    #[error("cannot go from {from} to {to}")]
    IllegalTransition {
        from: Cow<'static, str>,
        to: Cow<'static, str>,
    },
}

impl Rejection for OrderRejection {
    fn code(&self) -> &'static str {
        match self {
            OrderRejection::NotFound => "not_found",
            OrderRejection::AlreadyPlaced => "conflict",
            OrderRejection::Invalid { .. } => "validation_failed",
            OrderRejection::IllegalTransition { .. } => "illegal_transition",
        }
    }
    fn kind(&self) -> RejectionKind {
        match self {
            OrderRejection::NotFound => RejectionKind::NotFound,
            OrderRejection::Invalid { .. } => RejectionKind::Invalid,
            _ => RejectionKind::Conflict,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> OrderRejection {
    OrderRejection::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn check_returned_lines(state: &OrderState, lines: &[(String, u32)]) -> Result<(), OrderRejection> {
    if lines.is_empty() {
        return Err(invalid(
            "lines",
            "name at least one line, or omit lines to return everything",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (product, qty) in lines {
        let Some(line) = state.lines.iter().find(|l| &l.product_id == product) else {
            return Err(invalid("lines", format!("{product} is not in this order")));
        };
        if !seen.insert(product) {
            return Err(invalid("lines", format!("{product} is named twice")));
        }
        if *qty == 0 || *qty > line.quantity {
            return Err(invalid(
                "lines",
                format!("return 1 to {} units of {product}", line.quantity),
            ));
        }
    }
    Ok(())
}

fn check_address(a: &Address) -> Result<(), OrderRejection> {
    let text = |field: &'static str, v: &str, max: usize| {
        let n = v.trim().chars().count();
        if n == 0 || n > max {
            Err(invalid(field, format!("must be 1 to {max} characters")))
        } else {
            Ok(())
        }
    };
    text("shipping_address.name", &a.name, 100)?;
    text("shipping_address.line1", &a.line1, 200)?;
    if let Some(l2) = &a.line2 {
        if l2.chars().count() > 200 {
            return Err(invalid("shipping_address.line2", "at most 200 characters"));
        }
    }
    text("shipping_address.city", &a.city, 100)?;
    text("shipping_address.postal_code", &a.postal_code, 20)?;
    if a.country.len() != 2 || !a.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "shipping_address.country",
            "must be an ISO 3166-1 alpha-2 code such as US",
        ));
    }
    Ok(())
}

fn total_of(lines: &[OrderLine]) -> Result<Money, OrderRejection> {
    let first = lines
        .first()
        .ok_or_else(|| invalid("lines", "an order needs at least one line"))?;
    let mut total = Money::new(0, first.unit_price.currency);
    for l in lines {
        if l.quantity == 0 {
            return Err(invalid(
                "lines",
                format!("quantity of {} must be at least 1", l.product_id),
            ));
        }
        if l.unit_price.amount < 0 {
            return Err(invalid(
                "lines",
                format!("price of {} is negative", l.product_id),
            ));
        }
        let line = l
            .unit_price
            .checked_mul(l.quantity as u64)
            .ok_or_else(|| invalid("lines", "total overflows"))?;
        total = total
            .checked_add(line)
            .ok_or_else(|| invalid("lines", "lines must share one currency and not overflow"))?;
    }
    Ok(total)
}

/// Why an order was cancelled. The `Cancelled` event stores it as its text (what
/// [`fmt::Display`] writes), so journals written before it was typed read the same;
/// [`CancelReason::stored`] reads that text back, and nothing else parses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelReason {
    /// Some lines could not be held.
    OutOfStock,
    /// The provider refused the card; `code` is its decline code (`card_declined`, ...).
    PaymentDeclined {
        code: String,
    },
    /// The provider could not be asked, or refused the token.
    PaymentFailed(String),
    /// A hold was gone when the checkout came to sell it, after charging.
    HoldLost,
    /// The order was cancelled while its checkout was charging.
    CancelledWhilePaying,
    /// The reconciler found a charged order whose hold had expired.
    HoldExpired,
    /// The reconciler found an order whose checkout died before charging.
    Interrupted,
    ByCustomer,
    ByAdmin,
    /// A reason this build does not know (written by another build).
    Other(String),
}

/// The stored text of a decline, before its code.
const DECLINED: &str = "payment_declined: ";
/// The stored text of a failed payment, before the provider's words.
const FAILED: &str = "payment failed: ";

impl CancelReason {
    /// The reason a `Cancelled` event stored as `text`.
    pub fn stored(text: &str) -> CancelReason {
        use CancelReason::*;
        if let Some(code) = text.strip_prefix(DECLINED) {
            return PaymentDeclined {
                code: code.to_owned(),
            };
        }
        if let Some(why) = text.strip_prefix(FAILED) {
            return PaymentFailed(why.to_owned());
        }
        [
            OutOfStock,
            HoldLost,
            CancelledWhilePaying,
            HoldExpired,
            Interrupted,
            ByCustomer,
            ByAdmin,
        ]
        .into_iter()
        .find(|r| r.to_string() == text)
        .unwrap_or_else(|| Other(text.to_owned()))
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::OutOfStock => f.write_str("out_of_stock"),
            CancelReason::PaymentDeclined { code } => write!(f, "{DECLINED}{code}"),
            CancelReason::PaymentFailed(why) => write!(f, "{FAILED}{why}"),
            CancelReason::HoldLost => f.write_str("reservation lost before the payment completed"),
            CancelReason::CancelledWhilePaying => f.write_str("cancelled while paying"),
            CancelReason::HoldExpired => {
                f.write_str("reservation expired before the payment completed")
            }
            CancelReason::Interrupted => f.write_str("checkout interrupted before payment"),
            CancelReason::ByCustomer => f.write_str("cancelled by the customer"),
            CancelReason::ByAdmin => f.write_str("cancelled by an admin"),
            CancelReason::Other(text) => f.write_str(text),
        }
    }
}

pub struct Order;

impl Entity for Order {
    const KIND: &'static str = "order";
    /// 3: the state gained `checkout`, `cancel_reason` (2) and `returned_lines` (3);
    /// 4: `sold_lines` and `reversed_lines`; 5: `cancel_reason` typed. Older snapshots
    /// are rebuilt from the journal.
    const STATE_VERSION: u16 = 5;
    type State = OrderState;
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Rejection = OrderRejection;

    fn handle(
        state: &OrderState,
        command: &OrderCommand,
        now: u64,
    ) -> Result<Vec<OrderEvent>, OrderRejection> {
        use OrderCommand::*;
        use OrderStatus as S;
        let illegal = |to: OrderStatus| OrderRejection::IllegalTransition {
            from: state.status.as_str().into(),
            to: to.as_str().into(),
        };
        if state.status == S::New && !matches!(command, Place { .. }) {
            return Err(OrderRejection::NotFound);
        }
        let event = match command {
            Place {
                customer_id,
                lines,
                checkout,
            } => {
                if state.status != S::New {
                    return Err(OrderRejection::AlreadyPlaced);
                }
                if customer_id.is_empty() || customer_id.len() > 128 {
                    return Err(invalid("customer_id", "must be 1 to 128 characters"));
                }
                if lines.len() > MAX_LINES {
                    return Err(invalid("lines", format!("at most {MAX_LINES} lines")));
                }
                let total = total_of(lines)?;
                if let Some(c) = checkout {
                    check_address(&c.shipping)?;
                }
                let placed = OrderEvent::Placed {
                    customer_id: customer_id.clone(),
                    lines: lines.clone(),
                    total,
                    at_ms: now,
                };
                return Ok(match checkout {
                    Some(c) => vec![placed, OrderEvent::CheckoutRecorded(c.clone())],
                    None => vec![placed],
                });
            }
            MarkPaid { payment_ref } => match state.status {
                S::PendingPayment => OrderEvent::Paid {
                    payment_ref: payment_ref.clone(),
                    at_ms: now,
                },
                // A repeated confirmation of the same payment is not a new event.
                S::Paid if state.payment_ref.as_ref() == Some(payment_ref) => return Ok(vec![]),
                _ => return Err(illegal(S::Paid)),
            },
            Ship { carrier, tracking } => match state.status {
                S::Paid => OrderEvent::Shipped {
                    carrier: carrier.clone(),
                    tracking: tracking.clone(),
                    at_ms: now,
                },
                _ => return Err(illegal(S::Shipped)),
            },
            Deliver => match state.status {
                S::Shipped => OrderEvent::Delivered { at_ms: now },
                _ => return Err(illegal(S::Delivered)),
            },
            Cancel { reason } => match state.status {
                S::PendingPayment | S::Paid => OrderEvent::Cancelled {
                    reason: reason.to_string(),
                    at_ms: now,
                },
                S::Cancelled => return Ok(vec![]),
                _ => return Err(illegal(S::Cancelled)),
            },
            Return { reason, lines } => match state.status {
                S::Delivered => {
                    let returned = OrderEvent::Returned {
                        reason: reason.clone(),
                        at_ms: now,
                    };
                    let Some(lines) = lines else {
                        return Ok(vec![returned]);
                    };
                    check_returned_lines(state, lines)?;
                    return Ok(vec![returned, OrderEvent::ReturnedLines(lines.clone())]);
                }
                _ => return Err(illegal(S::Returned)),
            },
            RecordSale { product_id } | RecordReversal { product_id } => {
                if !state.lines.iter().any(|l| &l.product_id == product_id) {
                    return Err(invalid(
                        "product_id",
                        format!("{product_id} is not in this order"),
                    ));
                }
                let (done, event) = match command {
                    RecordSale { .. } => (
                        &state.sold_lines,
                        OrderEvent::LineSold {
                            product_id: product_id.clone(),
                        },
                    ),
                    _ => (
                        &state.reversed_lines,
                        OrderEvent::LineReversed {
                            product_id: product_id.clone(),
                        },
                    ),
                };
                if done.contains(product_id) {
                    return Ok(vec![]);
                }
                event
            }
            Refund => match (state.status, state.was_paid, state.refund_due()) {
                (S::Returned, _, Some(total)) | (S::Cancelled, true, Some(total)) => {
                    OrderEvent::Refunded {
                        amount: total,
                        at_ms: now,
                    }
                }
                _ => return Err(illegal(S::Refunded)),
            },
        };
        Ok(vec![event])
    }

    fn apply(state: &mut OrderState, event: &OrderEvent) {
        let (status, at) = match event {
            OrderEvent::CheckoutRecorded(details) => {
                state.checkout = Some(details.clone());
                return; // not a status change
            }
            OrderEvent::ReturnedLines(lines) => {
                state.returned_lines = Some(lines.clone());
                return;
            }
            OrderEvent::LineSold { product_id } => {
                state.sold_lines.insert(product_id.clone());
                return;
            }
            OrderEvent::LineReversed { product_id } => {
                state.reversed_lines.insert(product_id.clone());
                return;
            }
            OrderEvent::Placed {
                customer_id,
                lines,
                total,
                at_ms,
            } => {
                state.customer_id = customer_id.clone();
                state.lines = lines.clone();
                state.total = Some(*total);
                state.placed_at_ms = *at_ms;
                (OrderStatus::PendingPayment, *at_ms)
            }
            OrderEvent::Paid { payment_ref, at_ms } => {
                state.payment_ref = Some(payment_ref.clone());
                state.was_paid = true;
                (OrderStatus::Paid, *at_ms)
            }
            OrderEvent::Shipped {
                carrier,
                tracking,
                at_ms,
            } => {
                state.carrier = Some(carrier.clone());
                state.tracking = Some(tracking.clone());
                (OrderStatus::Shipped, *at_ms)
            }
            OrderEvent::Delivered { at_ms } => (OrderStatus::Delivered, *at_ms),
            OrderEvent::Cancelled { reason, at_ms } => {
                state.cancel_reason = Some(CancelReason::stored(reason));
                (OrderStatus::Cancelled, *at_ms)
            }
            OrderEvent::Returned { at_ms, .. } => (OrderStatus::Returned, *at_ms),
            OrderEvent::Refunded { amount, at_ms } => {
                state.refunded = Some(*amount);
                (OrderStatus::Refunded, *at_ms)
            }
        };
        state.status = status;
        state.history.push((status, at));
    }

    fn event_type(event: &OrderEvent) -> &'static str {
        match event {
            OrderEvent::Placed { .. } => "OrderPlaced",
            OrderEvent::Paid { .. } => "OrderPaid",
            OrderEvent::Shipped { .. } => "OrderShipped",
            OrderEvent::Delivered { .. } => "OrderDelivered",
            OrderEvent::Cancelled { .. } => "OrderCancelled",
            OrderEvent::Returned { .. } => "OrderReturned",
            OrderEvent::Refunded { .. } => "OrderRefunded",
            OrderEvent::CheckoutRecorded(_) => "OrderCheckoutRecorded",
            OrderEvent::ReturnedLines(_) => "OrderReturnedLines",
            OrderEvent::LineSold { .. } => "OrderLineSold",
            OrderEvent::LineReversed { .. } => "OrderLineReversed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::given::{state, when};
    use crate::money::Currency;
    use OrderCommand::*;

    fn line(p: &str, q: u32, cents: i64) -> OrderLine {
        OrderLine {
            product_id: p.into(),
            quantity: q,
            unit_price: Money::new(cents, Currency::USD),
        }
    }

    fn placed() -> OrderEvent {
        OrderEvent::Placed {
            customer_id: "c".into(),
            lines: vec![line("p", 2, 500)],
            total: Money::new(1000, Currency::USD),
            at_ms: 0,
        }
    }

    #[test]
    fn placing_computes_the_total() {
        let ev = when::<Order>(
            &[],
            Place {
                customer_id: "c".into(),
                lines: vec![line("a", 2, 250), line("b", 1, 99)],
                checkout: None,
            },
        )
        .unwrap();
        assert!(matches!(&ev[0], OrderEvent::Placed { total, .. } if total.amount == 599));
    }

    #[test]
    fn bad_lines_are_rejected() {
        for lines in [
            vec![],
            vec![line("a", 0, 1)],
            vec![line("a", 1, -1)],
            vec![line("a", 2, i64::MAX)],
        ] {
            let err = when::<Order>(
                &[],
                Place {
                    customer_id: "c".into(),
                    lines,
                    checkout: None,
                },
            )
            .unwrap_err();
            assert_eq!(err.kind(), RejectionKind::Invalid);
        }
        let mixed = vec![
            line("a", 1, 1),
            OrderLine {
                unit_price: Money::new(1, Currency::parse("EUR").unwrap()),
                ..line("b", 1, 1)
            },
        ];
        assert!(when::<Order>(
            &[],
            Place {
                customer_id: "c".into(),
                lines: mixed,
                checkout: None
            }
        )
        .is_err());
    }

    #[test]
    fn the_happy_path_and_a_return() {
        let mut h = vec![placed()];
        for cmd in [
            MarkPaid {
                payment_ref: "pay_1".into(),
            },
            Ship {
                carrier: "ups".into(),
                tracking: "1Z".into(),
            },
            Deliver,
            Return {
                reason: "size".into(),
                lines: None,
            },
            Refund,
        ] {
            h.extend(when::<Order>(&h, cmd).unwrap());
        }
        let s = state::<Order>(&h);
        assert_eq!(s.status, OrderStatus::Refunded);
        assert_eq!(s.refunded.unwrap().amount, 1000);
        assert_eq!(s.history.len(), 6);
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let h = [placed()];
        assert_eq!(
            when::<Order>(
                &h,
                Ship {
                    carrier: "x".into(),
                    tracking: "y".into()
                }
            )
            .unwrap_err(),
            OrderRejection::IllegalTransition {
                from: "pending_payment".into(),
                to: "shipped".into()
            }
        );
        assert!(
            when::<Order>(&h, Refund).is_err(),
            "an unpaid order has nothing to refund"
        );
        assert_eq!(
            when::<Order>(&[], Deliver).unwrap_err(),
            OrderRejection::NotFound
        );
        let shipped = [
            placed(),
            OrderEvent::Paid {
                payment_ref: "p".into(),
                at_ms: 1,
            },
            OrderEvent::Shipped {
                carrier: "c".into(),
                tracking: "t".into(),
                at_ms: 2,
            },
        ];
        assert!(when::<Order>(
            &shipped,
            Cancel {
                reason: CancelReason::ByCustomer
            }
        )
        .is_err());
    }

    #[test]
    fn every_cancel_reason_reads_back_from_its_stored_text() {
        use CancelReason::*;
        for reason in [
            OutOfStock,
            PaymentDeclined {
                code: "card_declined".into(),
            },
            PaymentFailed("unknown payment token \"tok_x\"".into()),
            HoldLost,
            CancelledWhilePaying,
            HoldExpired,
            Interrupted,
            ByCustomer,
            ByAdmin,
            Other("written by another build".into()),
        ] {
            assert_eq!(CancelReason::stored(&reason.to_string()), reason);
        }
        // The text journals written before the reason was typed hold.
        assert_eq!(
            CancelReason::stored("payment_declined: insufficient_funds"),
            PaymentDeclined {
                code: "insufficient_funds".into()
            }
        );
    }

    #[test]
    fn cancelling_a_paid_order_allows_a_refund() {
        let h = [
            placed(),
            OrderEvent::Paid {
                payment_ref: "p".into(),
                at_ms: 1,
            },
            OrderEvent::Cancelled {
                reason: "r".into(),
                at_ms: 2,
            },
        ];
        assert!(matches!(
            when::<Order>(&h, Refund).unwrap()[0],
            OrderEvent::Refunded { .. }
        ));
        assert!(when::<Order>(
            &h,
            Cancel {
                reason: CancelReason::ByAdmin
            }
        )
        .unwrap()
        .is_empty());
        assert!(when::<Order>(
            &h[..2],
            MarkPaid {
                payment_ref: "p".into()
            }
        )
        .unwrap()
        .is_empty());
        assert!(when::<Order>(
            &h[..2],
            MarkPaid {
                payment_ref: "other".into()
            }
        )
        .is_err());
    }

    #[test]
    fn a_cancelled_checkout_reverses_what_it_sold_once() {
        let h = vec![
            placed(),
            OrderEvent::LineSold {
                product_id: "p".into(),
            },
            OrderEvent::Cancelled {
                reason: "r".into(),
                at_ms: 1,
            },
        ];
        // Recording a sale again adds nothing; a product not in the order is refused.
        assert!(when::<Order>(
            &h,
            RecordSale {
                product_id: "p".into()
            }
        )
        .unwrap()
        .is_empty());
        assert!(when::<Order>(
            &h,
            RecordSale {
                product_id: "q".into()
            }
        )
        .is_err());
        assert_eq!(state::<Order>(&h).to_reverse(), vec![("p".to_string(), 2)]);
        let mut h = h;
        h.extend(
            when::<Order>(
                &h,
                RecordReversal {
                    product_id: "p".into(),
                },
            )
            .unwrap(),
        );
        assert!(
            state::<Order>(&h).to_reverse().is_empty(),
            "a reversed line is never reversed again"
        );
        assert!(when::<Order>(
            &h,
            RecordReversal {
                product_id: "p".into()
            }
        )
        .unwrap()
        .is_empty());
        // Nothing sold, nothing to reverse.
        let unsold = vec![
            placed(),
            OrderEvent::Cancelled {
                reason: "r".into(),
                at_ms: 1,
            },
        ];
        assert!(state::<Order>(&unsold).to_reverse().is_empty());
    }
}

#[cfg(test)]
mod partial_returns {
    use super::*;
    use crate::given::{state, when};
    use crate::money::Currency;

    fn delivered() -> Vec<OrderEvent> {
        let usd = |c| Money::new(c, Currency::USD);
        vec![
            OrderEvent::Placed {
                customer_id: "c".into(),
                lines: vec![
                    OrderLine {
                        product_id: "a".into(),
                        quantity: 3,
                        unit_price: usd(100),
                    },
                    OrderLine {
                        product_id: "b".into(),
                        quantity: 1,
                        unit_price: usd(50),
                    },
                ],
                total: usd(350),
                at_ms: 0,
            },
            OrderEvent::Paid {
                payment_ref: "p".into(),
                at_ms: 1,
            },
            OrderEvent::Shipped {
                carrier: "c".into(),
                tracking: "t".into(),
                at_ms: 2,
            },
            OrderEvent::Delivered { at_ms: 3 },
        ]
    }

    #[test]
    fn a_partial_return_refunds_only_its_units() {
        let mut h = delivered();
        h.extend(
            when::<Order>(
                &h,
                OrderCommand::Return {
                    reason: "r".into(),
                    lines: Some(vec![("a".into(), 2)]),
                },
            )
            .unwrap(),
        );
        assert_eq!(state::<Order>(&h).refund_due().unwrap().amount, 200);
        let refund = when::<Order>(&h, OrderCommand::Refund).unwrap();
        assert!(matches!(refund[0], OrderEvent::Refunded { amount, .. } if amount.amount == 200));
    }

    #[test]
    fn returned_lines_must_be_in_the_order() {
        let h = delivered();
        for lines in [
            vec![],
            vec![("z".to_string(), 1)],
            vec![("a".to_string(), 4)],
            vec![("a".to_string(), 1), ("a".to_string(), 1)],
        ] {
            let err = when::<Order>(
                &h,
                OrderCommand::Return {
                    reason: "r".into(),
                    lines: Some(lines.clone()),
                },
            )
            .unwrap_err();
            assert!(
                matches!(err, OrderRejection::Invalid { ref field, .. } if field == "lines"),
                "{lines:?}"
            );
        }
    }
}
