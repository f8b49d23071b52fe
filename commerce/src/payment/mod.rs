//! The payment of one order (entity id = order id): what was charged, declined and
//! refunded, through which provider. One entity per order makes charging idempotent: a
//! retried checkout asks the same entity, which charges at most once.
//!
//! A refund is recorded as intended (`BeginRefund`, with the idempotency key the provider
//! gets) before the provider is asked, and as done (`Refund`) after: of two callers
//! racing to refund, one records the intent and the other is told a refund is under way,
//! so the provider is asked once; a caller that died between the two is finished by
//! asking the provider again with the same key, which moves the money at most once.

pub mod provider;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::money::Money;
use ecommesh_actors::{Entity, Rejection, RejectionKind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Charged { charge_id: String },
    Declined { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PaymentState {
    pub provider: String,
    pub amount: Option<Money>,
    pub outcome: Option<Outcome>,
    pub refunded: i64,
    /// A refund asked of the provider and not yet confirmed.
    pub refund_pending: Option<PendingRefund>,
}

/// A refund recorded as intended, not yet confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRefund {
    pub amount: Money,
    /// The provider's idempotency key: asking again with it moves no more money.
    pub key: String,
    pub at_ms: u64,
}

impl PaymentState {
    pub fn charge_id(&self) -> Option<&str> {
        match &self.outcome {
            Some(Outcome::Charged { charge_id }) => Some(charge_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommand {
    /// Records the provider's answer to a charge. Ignored when an outcome is recorded
    /// already: the first answer stands.
    Record {
        provider: String,
        amount: Money,
        outcome: Outcome,
    },
    /// Confirms a refund the provider made.
    Refund { amount: Money },
    /// Records the intent to refund `amount` under the provider idempotency key `key`.
    /// Repeating the pending intent adds nothing.
    BeginRefund { amount: Money, key: String },
    /// Confirms the pending refund of key `key` (the provider made it). Confirming it
    /// again, once it is no longer pending, adds nothing.
    ConfirmRefund { key: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentEvent {
    Charged {
        provider: String,
        amount: Money,
        charge_id: String,
        at_ms: u64,
    },
    Declined {
        provider: String,
        amount: Money,
        reason: String,
        at_ms: u64,
    },
    Refunded {
        amount: Money,
        at_ms: u64,
    },
    /// Added after schema v1 (new variants go at the end).
    RefundRequested {
        amount: Money,
        key: String,
        at_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum PaymentRejection {
    #[error("nothing was charged")]
    NotCharged,
    #[error("refund of {requested} exceeds the {left} left to refund")]
    RefundTooLarge { requested: i64, left: i64 },
    #[error("another refund is under way")]
    RefundPending,
}

impl Rejection for PaymentRejection {
    fn code(&self) -> &'static str {
        match self {
            PaymentRejection::NotCharged => "not_charged",
            PaymentRejection::RefundTooLarge { .. } => "refund_too_large",
            PaymentRejection::RefundPending => "refund_pending",
        }
    }
    fn kind(&self) -> RejectionKind {
        RejectionKind::Conflict
    }
}

pub struct Payment;

impl Entity for Payment {
    const KIND: &'static str = "payment";
    /// 2: the state gained `refund_pending`; older snapshots are rebuilt from the journal.
    const STATE_VERSION: u16 = 2;
    type State = PaymentState;
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Rejection = PaymentRejection;

    fn handle(
        state: &PaymentState,
        command: &PaymentCommand,
        now: u64,
    ) -> Result<Vec<PaymentEvent>, PaymentRejection> {
        match command {
            PaymentCommand::Record { .. } if state.outcome.is_some() => Ok(vec![]),
            PaymentCommand::Record {
                provider,
                amount,
                outcome,
            } => Ok(vec![match outcome {
                Outcome::Charged { charge_id } => PaymentEvent::Charged {
                    provider: provider.clone(),
                    amount: *amount,
                    charge_id: charge_id.clone(),
                    at_ms: now,
                },
                Outcome::Declined { reason } => PaymentEvent::Declined {
                    provider: provider.clone(),
                    amount: *amount,
                    reason: reason.clone(),
                    at_ms: now,
                },
            }]),
            PaymentCommand::Refund { amount } => {
                let (Some(charged), Some(_)) = (state.amount, state.charge_id()) else {
                    return Err(PaymentRejection::NotCharged);
                };
                let left = charged.amount - state.refunded;
                if amount.amount <= 0 || amount.amount > left {
                    return Err(PaymentRejection::RefundTooLarge {
                        requested: amount.amount,
                        left,
                    });
                }
                Ok(vec![PaymentEvent::Refunded {
                    amount: *amount,
                    at_ms: now,
                }])
            }
            PaymentCommand::ConfirmRefund { key } => match &state.refund_pending {
                Some(p) if &p.key == key => Ok(vec![PaymentEvent::Refunded {
                    amount: p.amount,
                    at_ms: now,
                }]),
                Some(_) => Err(PaymentRejection::RefundPending),
                None => Ok(vec![]),
            },
            PaymentCommand::BeginRefund { amount, key } => {
                let (Some(charged), Some(_)) = (state.amount, state.charge_id()) else {
                    return Err(PaymentRejection::NotCharged);
                };
                if let Some(pending) = &state.refund_pending {
                    return if &pending.amount == amount && &pending.key == key {
                        Ok(vec![])
                    } else {
                        Err(PaymentRejection::RefundPending)
                    };
                }
                let left = charged.amount - state.refunded;
                if amount.amount <= 0 || amount.amount > left || amount.currency != charged.currency
                {
                    return Err(PaymentRejection::RefundTooLarge {
                        requested: amount.amount,
                        left,
                    });
                }
                Ok(vec![PaymentEvent::RefundRequested {
                    amount: *amount,
                    key: key.clone(),
                    at_ms: now,
                }])
            }
        }
    }

    fn apply(state: &mut PaymentState, event: &PaymentEvent) {
        match event {
            PaymentEvent::Charged {
                provider,
                amount,
                charge_id,
                ..
            } => {
                state.provider = provider.clone();
                state.amount = Some(*amount);
                state.outcome = Some(Outcome::Charged {
                    charge_id: charge_id.clone(),
                });
            }
            PaymentEvent::Declined {
                provider,
                amount,
                reason,
                ..
            } => {
                state.provider = provider.clone();
                state.amount = Some(*amount);
                state.outcome = Some(Outcome::Declined {
                    reason: reason.clone(),
                });
            }
            PaymentEvent::Refunded { amount, .. } => {
                // Checked against the charge when decided; saturating keeps a corrupt
                // journal from panicking the entity.
                state.refunded = state.refunded.saturating_add(amount.amount);
                state.refund_pending = None;
            }
            PaymentEvent::RefundRequested { amount, key, at_ms } => {
                state.refund_pending = Some(PendingRefund {
                    amount: *amount,
                    key: key.clone(),
                    at_ms: *at_ms,
                });
            }
        }
    }

    fn event_type(event: &PaymentEvent) -> &'static str {
        match event {
            PaymentEvent::Charged { .. } => "PaymentCharged",
            PaymentEvent::Declined { .. } => "PaymentDeclined",
            PaymentEvent::Refunded { .. } => "PaymentRefunded",
            PaymentEvent::RefundRequested { .. } => "PaymentRefundRequested",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::given::{state, when};
    use crate::money::Currency;

    fn usd(c: i64) -> Money {
        Money::new(c, Currency::USD)
    }

    fn charged() -> PaymentEvent {
        PaymentEvent::Charged {
            provider: "test".into(),
            amount: usd(1000),
            charge_id: "ch_1".into(),
            at_ms: 0,
        }
    }

    #[test]
    fn the_first_outcome_stands() {
        let again = PaymentCommand::Record {
            provider: "test".into(),
            amount: usd(1000),
            outcome: Outcome::Declined { reason: "x".into() },
        };
        assert!(when::<Payment>(&[charged()], again).unwrap().is_empty());
    }

    #[test]
    fn refunds_never_exceed_the_charge() {
        let h = [
            charged(),
            PaymentEvent::Refunded {
                amount: usd(600),
                at_ms: 1,
            },
        ];
        assert!(when::<Payment>(&h, PaymentCommand::Refund { amount: usd(400) }).is_ok());
        assert_eq!(
            when::<Payment>(&h, PaymentCommand::Refund { amount: usd(401) }).unwrap_err(),
            PaymentRejection::RefundTooLarge {
                requested: 401,
                left: 400
            }
        );
        assert_eq!(state::<Payment>(&h).refunded, 600);
        assert_eq!(
            when::<Payment>(&[], PaymentCommand::Refund { amount: usd(1) }).unwrap_err(),
            PaymentRejection::NotCharged
        );
    }

    #[test]
    fn a_refund_is_intended_once_then_confirmed() {
        let begin = |amount, key: &str| PaymentCommand::BeginRefund {
            amount: usd(amount),
            key: key.into(),
        };
        let mut h = vec![charged()];
        let ev = when::<Payment>(&h, begin(1000, "o1:refund")).unwrap();
        assert_eq!(ev.len(), 1);
        h.extend(ev);
        // The same intent again adds nothing; another one is refused while it is pending.
        assert!(when::<Payment>(&h, begin(1000, "o1:refund"))
            .unwrap()
            .is_empty());
        assert_eq!(
            when::<Payment>(&h, begin(500, "other")).unwrap_err(),
            PaymentRejection::RefundPending
        );
        let confirm = |key: &str| PaymentCommand::ConfirmRefund { key: key.into() };
        assert_eq!(
            when::<Payment>(&h, confirm("other")).unwrap_err(),
            PaymentRejection::RefundPending
        );
        h.extend(when::<Payment>(&h, confirm("o1:refund")).unwrap());
        // A second confirmation (a caller whose first answer was lost) adds nothing.
        assert!(when::<Payment>(&h, confirm("o1:refund"))
            .unwrap()
            .is_empty());
        let s = state::<Payment>(&h);
        assert_eq!((s.refunded, s.refund_pending.is_none()), (1000, true));
        // Nothing is left to refund.
        assert!(matches!(
            when::<Payment>(&h, begin(1, "again")).unwrap_err(),
            PaymentRejection::RefundTooLarge { .. }
        ));
    }
}
