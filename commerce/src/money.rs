//! Money as integer minor units with an ISO 4217 currency: never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A three-letter upper-case ISO 4217 currency code such as `USD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a code, refusing anything but three ASCII upper-case letters.
    pub fn parse(code: &str) -> Option<Currency> {
        let b = code.as_bytes();
        (b.len() == 3 && b.iter().all(u8::is_ascii_uppercase)).then(|| Currency([b[0], b[1], b[2]]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in minor units (cents for USD) of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Money { amount, currency }
    }

    /// `self * n`, or `None` on overflow.
    pub fn checked_mul(self, n: u64) -> Option<Money> {
        let n = i64::try_from(n).ok()?;
        Some(Money {
            amount: self.amount.checked_mul(n)?,
            currency: self.currency,
        })
    }

    /// `self + other`, or `None` on overflow or when the currencies differ.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.amount.checked_add(other.amount))
            .flatten()
            .map(|amount| Money {
                amount,
                currency: self.currency,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_strict() {
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        for bad in ["eur", "EU", "EURO", "E1R", "", "ÉUR"] {
            assert!(Currency::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        let usd = Money::new(250, Currency::USD);
        assert_eq!(usd.checked_mul(4).unwrap().amount, 1000);
        assert!(Money::new(i64::MAX, Currency::USD).checked_mul(2).is_none());
        assert!(usd
            .checked_add(Money::new(1, Currency::parse("EUR").unwrap()))
            .is_none());
        assert_eq!(usd.checked_add(usd).unwrap().amount, 500);
    }
}
