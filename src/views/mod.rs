//! The JSON the API speaks, shared by the HTTP routes and the websockets: money, times,
//! ids as clients send them, and the views of products, carts and orders built from the
//! entities' states.

pub mod cart;
pub mod order;
pub mod product;

use ecommesh_commerce::{Currency, Money};
use serde::{Deserialize, Serialize};

use crate::http::errors::ApiError;

/// Money on the wire: integer minor units and an ISO 4217 code.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyJson {
    pub amount: i64,
    pub currency: String,
}

impl MoneyJson {
    pub fn from_money(m: Money) -> Self {
        MoneyJson {
            amount: m.amount,
            currency: m.currency.to_string(),
        }
    }

    /// The price, if it is a valid one in the shop's currency.
    pub fn to_price(&self, field: &str, shop: Currency) -> Result<Money, ApiError> {
        let currency = Currency::parse(&self.currency).ok_or_else(|| {
            ApiError::invalid_field(
                &format!("{field}.currency"),
                "must be a 3-letter ISO 4217 code such as USD",
            )
        })?;
        if currency != shop {
            return Err(ApiError::invalid_field(
                &format!("{field}.currency"),
                format!("this shop sells in {shop}"),
            ));
        }
        if self.amount < 0 {
            return Err(ApiError::invalid_field(
                &format!("{field}.amount"),
                "must not be negative (minor units, e.g. cents)",
            ));
        }
        Ok(Money::new(self.amount, currency))
    }
}

/// RFC 3339 UTC of a millisecond timestamp.
pub fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Ids in paths: 1 to 128 characters of letters, digits, `-`, `_` and `.`.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            field,
            "must be 1 to 128 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}
