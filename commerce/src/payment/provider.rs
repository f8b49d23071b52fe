//! Payment providers. Checkout charges through the [`PaymentProvider`] trait and records
//! every answer in the order's `Payment` entity, whichever provider gave it.
//!
//! [`TestPaymentProvider`] is the only provider so far, and says so in its name: it moves
//! no money. It behaves like Stripe's test mode, deciding by the card token:
//! `tok_visa` (and `tok_mastercard`) succeed, `tok_chargeDeclined` is declined
//! (`card_declined`), `tok_chargeDeclinedInsufficientFunds` is declined
//! (`insufficient_funds`); any other token is refused as invalid. A test build (the
//! `test-hooks` feature) also knows `tok_slow`, which succeeds after 3 seconds, to test
//! what happens while a charge is in flight, and `tok_pause_in_sale`, which succeeds and
//! makes the checkout pause 2 s after selling its first line (to race a cancel against
//! the sale); the shipped binary refuses both.

use std::future::Future;
use std::pin::Pin;

use super::Outcome;
use crate::Money;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ProviderError {
    /// The token is not one the provider knows: the caller's mistake.
    #[error("unknown payment token {0:?}")]
    InvalidToken(String),
    /// The provider could not be reached or failed: try again later.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

/// Something that can take and give back money.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Recorded with every payment.
    fn name(&self) -> &'static str;

    /// Charges `amount` to `token`. `key` (the order id) makes it idempotent at the
    /// provider: the same key never charges twice.
    fn charge<'a>(
        &'a self,
        key: &'a str,
        amount: Money,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Outcome, ProviderError>>;

    /// What the provider knows of the charge made with idempotency key `key`, if any:
    /// recovery asks this when a checkout died between charging and recording.
    fn find_charge<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Outcome>, ProviderError>>;

    /// Gives back `amount` of a charge. `key` makes it idempotent at the provider: asked
    /// again with the same key (a retry after a crash), it moves no more money.
    fn refund<'a>(
        &'a self,
        charge_id: &'a str,
        amount: Money,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// A provider for development and tests that moves no money (see the module docs). Like
/// a real provider, it answers a refund asked again with the same idempotency key without
/// refunding twice; `ecommesh_test_provider_refunds_total` counts the refunds it made.
#[derive(Default)]
pub struct TestPaymentProvider {
    refund_keys: parking_lot::Mutex<std::collections::HashSet<String>>,
}

impl PaymentProvider for TestPaymentProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    fn charge<'a>(
        &'a self,
        key: &'a str,
        _amount: Money,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Outcome, ProviderError>> {
        Box::pin(async move {
            match token {
                #[cfg(feature = "test-hooks")]
                "tok_slow" => {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    let id = hex::encode(Sha256::digest(format!("test-charge:{key}")));
                    Ok(Outcome::Charged {
                        charge_id: format!("ch_test_{}", &id[..24]),
                    })
                }
                #[cfg(feature = "test-hooks")]
                "tok_pause_in_sale" => {
                    let id = hex::encode(Sha256::digest(format!("test-charge:{key}")));
                    Ok(Outcome::Charged {
                        charge_id: format!("ch_test_{}", &id[..24]),
                    })
                }
                "tok_visa" | "tok_mastercard" => {
                    let id = hex::encode(Sha256::digest(format!("test-charge:{key}")));
                    Ok(Outcome::Charged {
                        charge_id: format!("ch_test_{}", &id[..24]),
                    })
                }
                "tok_chargeDeclined" => Ok(Outcome::Declined {
                    reason: "card_declined".into(),
                }),
                "tok_chargeDeclinedInsufficientFunds" => Ok(Outcome::Declined {
                    reason: "insufficient_funds".into(),
                }),
                other => Err(ProviderError::InvalidToken(other.to_owned())),
            }
        })
    }

    fn find_charge<'a>(
        &'a self,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Outcome>, ProviderError>> {
        // The test provider keeps no state outside our own journal: an answer that was
        // not recorded there moved no money.
        Box::pin(async { Ok(None) })
    }

    fn refund<'a>(
        &'a self,
        _charge_id: &'a str,
        _amount: Money,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        let mut keys = self.refund_keys.lock();
        // Bounded: a real provider's idempotency keys expire too (Stripe's after 24 h).
        if keys.len() >= 100_000 && !keys.contains(key) {
            keys.clear();
        }
        if keys.insert(key.to_owned()) {
            metrics::counter!("ecommesh_test_provider_refunds_total").increment(1);
        }
        Box::pin(async { Ok(()) })
    }
}
