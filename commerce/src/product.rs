//! A catalog product and its stock.
//!
//! Stock model: `on_hand` units are in the warehouse and not yet sold; some of them are
//! held by reservations (a checkout in progress). Invariant, after every event:
//! `sum(reservations) <= on_hand`, so available stock (`on_hand - reserved`) is never
//! negative and nothing is sold twice. Reservations expire: a command that finds expired
//! ones first emits `ReservationExpired` for them, so expiry is in the journal too.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::money::Money;
use ecommesh_actors::{Entity, Rejection, RejectionKind};

/// Largest quantity one restock or one reservation may move.
pub const MAX_QUANTITY: u64 = 1_000_000_000;
/// Longest a reservation may be held.
pub const MAX_RESERVATION_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub quantity: u64,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetails {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price: Money,
    pub images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProductState {
    /// None until the product is created.
    pub details: Option<ProductDetails>,
    pub archived: bool,
    pub created_at_ms: u64,
    pub on_hand: u64,
    pub sold: u64,
    /// Every unit ever added (initial stock plus restocks): `sold + on_hand` equals it.
    pub received: u64,
    pub reservations: BTreeMap<String, Reservation>,
    /// Orders whose sale was recently reversed (cancel, return), newest last, at most
    /// `RECENT_REVERSALS`: a retried reversal is recognised and does nothing.
    /// (A persistent vector: the state is copied on every change that someone still
    /// reads, and copying 2 x 256 ids was ~3% of the CPU of a checkout benchmark even as
    /// `Arc<str>`; this shares all but the chunk that changes. Encoded as a sequence of
    /// strings, as the `VecDeque<String>` it replaces.)
    pub recent_reversals: imbl::Vector<Arc<str>>,
    /// Reservations recently sold, newest last, at most `RECENT_SALES`: a retried commit
    /// (its first answer was lost to a failover) is recognised and does nothing.
    pub recent_sales: imbl::Vector<Arc<str>>,
}

/// How many sold reservations a product remembers for deduplication.
pub const RECENT_SALES: usize = 256;

/// How many reversed orders a product remembers for deduplication.
pub const RECENT_REVERSALS: usize = 256;

impl ProductState {
    pub fn reserved(&self) -> u64 {
        self.reservations.values().map(|r| r.quantity).sum()
    }

    /// Units that can still be reserved, counting reservations expired by `now_ms` as free.
    pub fn available_at(&self, now_ms: u64) -> u64 {
        let live: u64 = self
            .reservations
            .values()
            .filter(|r| r.expires_at_ms > now_ms)
            .map(|r| r.quantity)
            .sum();
        self.on_hand - live
    }
}

/// Changes to a product's catalog fields; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price: Option<Money>,
    pub images: Option<Vec<String>>,
}

impl ProductPatch {
    /// Overwrites the fields this patch sets.
    pub fn apply_to(&self, d: &mut ProductDetails) {
        if let Some(v) = &self.name {
            d.name = v.clone();
        }
        if let Some(v) = &self.description {
            d.description = v.clone();
        }
        if let Some(v) = &self.category {
            d.category = v.clone();
        }
        if let Some(v) = &self.brand {
            d.brand = v.clone();
        }
        if let Some(v) = &self.price {
            d.price = *v;
        }
        if let Some(v) = &self.images {
            d.images = v.clone();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductCommand {
    Create {
        details: ProductDetails,
        initial_stock: u64,
    },
    Update(ProductPatch),
    Restock {
        quantity: u64,
    },
    /// Holds `quantity` units for `reservation_id` until `ttl_ms` from now. Repeating the
    /// same reservation is a no-op, so a retried checkout does not hold stock twice.
    Reserve {
        reservation_id: String,
        quantity: u64,
        ttl_ms: u64,
    },
    /// Gives a reservation's units back. Unknown ids are a no-op (compensation is retried).
    Release {
        reservation_id: String,
    },
    /// Turns a reservation into a sale.
    Commit {
        reservation_id: String,
    },
    /// Emits expiry events for every reservation past its time.
    ExpireReservations,
    Archive,
    /// Puts back `quantity` units sold to `order_id` (a cancelled or returned order).
    /// Repeating it for the same order does nothing.
    ReverseSale {
        order_id: String,
        quantity: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductEvent {
    Created {
        details: ProductDetails,
        initial_stock: u64,
        at_ms: u64,
    },
    Updated(ProductPatch),
    Restocked {
        quantity: u64,
    },
    Reserved {
        reservation_id: String,
        quantity: u64,
        expires_at_ms: u64,
    },
    Released {
        reservation_id: String,
    },
    ReservationExpired {
        reservation_id: String,
    },
    Sold {
        reservation_id: String,
        quantity: u64,
    },
    Archived,
    /// Added after schema v1 (new variants go at the end so old events keep their tags).
    SaleReversed {
        order_id: String,
        quantity: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ProductRejection {
    #[error("product does not exist")]
    NotFound,
    #[error("product already exists")]
    AlreadyExists,
    #[error("product is archived")]
    Archived,
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: Cow<'static, str>,
        reason: String,
    },
    #[error("only {available} left, {requested} requested")]
    OutOfStock { requested: u64, available: u64 },
    #[error("reservation {reservation_id} does not exist or has expired")]
    NoReservation { reservation_id: String },
    #[error("reservation {reservation_id} already holds {held} units, not {requested}")]
    ReservationMismatch {
        reservation_id: String,
        held: u64,
        requested: u64,
    },
    #[error("restocking {quantity} would overflow the stock counter")]
    StockOverflow { quantity: u64 },
}

impl Rejection for ProductRejection {
    fn code(&self) -> &'static str {
        match self {
            ProductRejection::NotFound => "not_found",
            ProductRejection::AlreadyExists => "conflict",
            ProductRejection::Archived => "product_archived",
            ProductRejection::Invalid { .. } => "validation_failed",
            ProductRejection::OutOfStock { .. } => "out_of_stock",
            ProductRejection::NoReservation { .. } => "reservation_not_found",
            ProductRejection::ReservationMismatch { .. }
            | ProductRejection::StockOverflow { .. } => "conflict",
        }
    }
    fn kind(&self) -> RejectionKind {
        match self {
            ProductRejection::NotFound | ProductRejection::NoReservation { .. } => {
                RejectionKind::NotFound
            }
            ProductRejection::Invalid { .. } => RejectionKind::Invalid,
            _ => RejectionKind::Conflict,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ProductRejection {
    ProductRejection::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn check_text(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), ProductRejection> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(invalid(
            field,
            format!("must be {min} to {max} characters, got {n}"),
        ));
    }
    Ok(())
}

/// The highest price a product may have, in minor units (10 billion in major units):
/// with at most 999 units a line and 100 lines an order, every order total, and the sum
/// of over 9,000 such orders, fits in 64-bit minor units.
pub const MAX_PRICE: i64 = 1_000_000_000_000;

fn check_price(price: &Money) -> Result<(), ProductRejection> {
    if price.amount < 0 {
        return Err(invalid("price", "must not be negative"));
    }
    if price.amount > MAX_PRICE {
        return Err(invalid(
            "price",
            format!("must be at most {MAX_PRICE} minor units"),
        ));
    }
    Ok(())
}

fn check_images(images: &[String]) -> Result<(), ProductRejection> {
    if images.len() > 20 {
        return Err(invalid("images", "at most 20 images"));
    }
    images
        .iter()
        .try_for_each(|i| check_text("images", i, 1, 2048))
}

fn check_quantity(quantity: u64) -> Result<(), ProductRejection> {
    if quantity == 0 || quantity > MAX_QUANTITY {
        return Err(invalid(
            "quantity",
            format!("must be between 1 and {MAX_QUANTITY}, got {quantity}"),
        ));
    }
    Ok(())
}

fn check_details(d: &ProductDetails) -> Result<(), ProductRejection> {
    check_text("sku", &d.sku, 1, 64)?;
    check_text("name", &d.name, 1, 200)?;
    check_text("description", &d.description, 0, 10_000)?;
    check_text("category", &d.category, 1, 100)?;
    check_text("brand", &d.brand, 1, 100)?;
    check_price(&d.price)?;
    check_images(&d.images)
}

pub struct Product;

impl Entity for Product {
    const KIND: &'static str = "product";
    /// 2: the state gained `recent_reversals`; 3: `recent_sales`. Snapshots of an older
    /// version are rebuilt from the journal.
    const STATE_VERSION: u16 = 3;
    type State = ProductState;
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Rejection = ProductRejection;

    fn handle(
        state: &ProductState,
        command: &ProductCommand,
        now_ms: u64,
    ) -> Result<Vec<ProductEvent>, ProductRejection> {
        use ProductCommand::*;
        if let Create {
            details,
            initial_stock,
        } = command
        {
            if state.details.is_some() {
                return Err(ProductRejection::AlreadyExists);
            }
            check_details(details)?;
            if *initial_stock > MAX_QUANTITY {
                return Err(invalid("stock", format!("must be at most {MAX_QUANTITY}")));
            }
            return Ok(vec![ProductEvent::Created {
                details: details.clone(),
                initial_stock: *initial_stock,
                at_ms: now_ms,
            }]);
        }
        let Some(details) = &state.details else {
            return Err(ProductRejection::NotFound);
        };
        // Expiry first, so that what follows sees the stock expired holds gave back.
        let mut events: Vec<ProductEvent> = state
            .reservations
            .iter()
            .filter(|(_, r)| r.expires_at_ms <= now_ms)
            .map(|(id, _)| ProductEvent::ReservationExpired {
                reservation_id: id.clone(),
            })
            .collect();
        let live = |id: &str| {
            state
                .reservations
                .get(id)
                .filter(|r| r.expires_at_ms > now_ms)
        };
        match command {
            Create { .. } => unreachable!("handled above"),
            ExpireReservations => {}
            Update(patch) => {
                if state.archived {
                    return Err(ProductRejection::Archived);
                }
                let mut merged = details.clone();
                patch.apply_to(&mut merged);
                check_details(&merged)?;
                if merged != *details {
                    events.push(ProductEvent::Updated(patch.clone()));
                }
            }
            Restock { quantity } => {
                check_quantity(*quantity)?;
                if state
                    .received
                    .checked_add(*quantity)
                    .is_none_or(|r| r > u64::MAX / 2)
                {
                    return Err(ProductRejection::StockOverflow {
                        quantity: *quantity,
                    });
                }
                events.push(ProductEvent::Restocked {
                    quantity: *quantity,
                });
            }
            Reserve {
                reservation_id,
                quantity,
                ttl_ms,
            } => {
                check_text("reservation_id", reservation_id, 1, 128)?;
                check_quantity(*quantity)?;
                if *ttl_ms == 0 || *ttl_ms > MAX_RESERVATION_MS {
                    return Err(invalid(
                        "ttl_ms",
                        format!("must be between 1 and {MAX_RESERVATION_MS}"),
                    ));
                }
                if let Some(held) = live(reservation_id) {
                    if held.quantity == *quantity {
                        return Ok(events);
                    }
                    return Err(ProductRejection::ReservationMismatch {
                        reservation_id: reservation_id.clone(),
                        held: held.quantity,
                        requested: *quantity,
                    });
                }
                if state.archived {
                    return Err(ProductRejection::Archived);
                }
                let available = state.available_at(now_ms);
                if *quantity > available {
                    return Err(ProductRejection::OutOfStock {
                        requested: *quantity,
                        available,
                    });
                }
                events.push(ProductEvent::Reserved {
                    reservation_id: reservation_id.clone(),
                    quantity: *quantity,
                    expires_at_ms: now_ms + ttl_ms,
                });
            }
            Release { reservation_id } => {
                if live(reservation_id).is_some() {
                    events.push(ProductEvent::Released {
                        reservation_id: reservation_id.clone(),
                    });
                }
            }
            Commit { reservation_id } => match live(reservation_id) {
                Some(r) => events.push(ProductEvent::Sold {
                    reservation_id: reservation_id.clone(),
                    quantity: r.quantity,
                }),
                None if state
                    .recent_sales
                    .iter()
                    .any(|sold| **sold == **reservation_id) => {}
                None => {
                    return Err(ProductRejection::NoReservation {
                        reservation_id: reservation_id.clone(),
                    })
                }
            },
            Archive => {
                if !state.archived {
                    events.push(ProductEvent::Archived);
                }
            }
            ReverseSale { order_id, quantity } => {
                if !state
                    .recent_reversals
                    .iter()
                    .any(|reversed| **reversed == **order_id)
                {
                    check_quantity(*quantity)?;
                    if *quantity > state.sold {
                        return Err(invalid(
                            "quantity",
                            format!("only {} units were sold", state.sold),
                        ));
                    }
                    events.push(ProductEvent::SaleReversed {
                        order_id: order_id.clone(),
                        quantity: *quantity,
                    });
                }
            }
        }
        Ok(events)
    }

    fn apply(state: &mut ProductState, event: &ProductEvent) {
        match event {
            ProductEvent::Created {
                details,
                initial_stock,
                at_ms,
            } => {
                state.details = Some(details.clone());
                state.created_at_ms = *at_ms;
                state.on_hand = *initial_stock;
                state.received = *initial_stock;
            }
            ProductEvent::Updated(patch) => {
                if let Some(d) = state.details.as_mut() {
                    patch.apply_to(d);
                }
            }
            ProductEvent::Restocked { quantity } => {
                state.on_hand += quantity;
                state.received += quantity;
            }
            ProductEvent::Reserved {
                reservation_id,
                quantity,
                expires_at_ms,
            } => {
                state.reservations.insert(
                    reservation_id.clone(),
                    Reservation {
                        quantity: *quantity,
                        expires_at_ms: *expires_at_ms,
                    },
                );
            }
            ProductEvent::Released { reservation_id }
            | ProductEvent::ReservationExpired { reservation_id } => {
                state.reservations.remove(reservation_id);
            }
            ProductEvent::Sold {
                reservation_id,
                quantity,
            } => {
                state.reservations.remove(reservation_id);
                state.on_hand -= quantity;
                state.sold += quantity;
                state.recent_sales.push_back(reservation_id.as_str().into());
                if state.recent_sales.len() > RECENT_SALES {
                    state.recent_sales.pop_front();
                }
            }
            ProductEvent::Archived => state.archived = true,
            ProductEvent::SaleReversed { order_id, quantity } => {
                state.sold -= quantity;
                state.on_hand += quantity;
                state.recent_reversals.push_back(order_id.as_str().into());
                if state.recent_reversals.len() > RECENT_REVERSALS {
                    state.recent_reversals.pop_front();
                }
            }
        }
    }

    fn event_type(event: &ProductEvent) -> &'static str {
        match event {
            ProductEvent::Created { .. } => "ProductCreated",
            ProductEvent::Updated(_) => "ProductUpdated",
            ProductEvent::Restocked { .. } => "Restocked",
            ProductEvent::Reserved { .. } => "StockReserved",
            ProductEvent::Released { .. } => "ReservationReleased",
            ProductEvent::ReservationExpired { .. } => "ReservationExpired",
            ProductEvent::Sold { .. } => "StockSold",
            ProductEvent::Archived => "ProductArchived",
            ProductEvent::SaleReversed { .. } => "SaleReversed",
        }
    }
}

#[cfg(test)]
pub(crate) fn sample_details(sku: &str) -> ProductDetails {
    ProductDetails {
        sku: sku.into(),
        name: "Trail shoe".into(),
        description: "Light and grippy".into(),
        category: "shoes".into(),
        brand: "Acme".into(),
        price: Money::new(8999, crate::money::Currency::USD),
        images: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::given::{state, when};
    use ProductCommand::*;

    fn created(stock: u64) -> ProductEvent {
        ProductEvent::Created {
            details: sample_details("SKU-1"),
            initial_stock: stock,
            at_ms: 0,
        }
    }

    fn reserve(id: &str, q: u64) -> ProductCommand {
        Reserve {
            reservation_id: id.into(),
            quantity: q,
            ttl_ms: 60_000,
        }
    }

    fn reserved(id: &str, q: u64, exp: u64) -> ProductEvent {
        ProductEvent::Reserved {
            reservation_id: id.into(),
            quantity: q,
            expires_at_ms: exp,
        }
    }

    #[test]
    fn commands_before_creation_are_not_found() {
        assert_eq!(
            when::<Product>(&[], Restock { quantity: 1 }).unwrap_err(),
            ProductRejection::NotFound
        );
        assert_eq!(
            when::<Product>(
                &[created(1)],
                Create {
                    details: sample_details("x"),
                    initial_stock: 0
                }
            )
            .unwrap_err(),
            ProductRejection::AlreadyExists
        );
    }

    #[test]
    fn invalid_details_name_the_field() {
        let mut d = sample_details("");
        let err = when::<Product>(
            &[],
            Create {
                details: d.clone(),
                initial_stock: 1,
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ProductRejection::Invalid { field, .. } if field == "sku"
        ));
        d.sku = "ok".into();
        for bad in [-1, MAX_PRICE + 1] {
            d.price.amount = bad;
            assert!(matches!(
                when::<Product>(
                    &[],
                    Create {
                        details: d.clone(),
                        initial_stock: 1
                    }
                )
                .unwrap_err(),
                ProductRejection::Invalid { field, .. } if field == "price"
            ));
        }
        d.price.amount = MAX_PRICE;
        assert!(when::<Product>(
            &[],
            Create {
                details: d,
                initial_stock: 1
            }
        )
        .is_ok());
    }

    #[test]
    fn selling_a_hold_again_does_nothing() {
        let sold = ProductEvent::Sold {
            reservation_id: "o1".into(),
            quantity: 3,
        };
        let h = [created(5), reserved("o1", 3, 10_000), sold];
        let commit = Commit {
            reservation_id: "o1".into(),
        };
        assert_eq!(when::<Product>(&h, commit).unwrap(), vec![]);
        assert!(matches!(
            when::<Product>(
                &h,
                Commit {
                    reservation_id: "o2".into()
                }
            )
            .unwrap_err(),
            ProductRejection::NoReservation { .. }
        ));
    }

    #[test]
    fn cannot_reserve_more_than_available() {
        let h = [created(5), reserved("o1", 3, 10_000)];
        assert_eq!(
            when::<Product>(&h, reserve("o2", 3)).unwrap_err(),
            ProductRejection::OutOfStock {
                requested: 3,
                available: 2
            }
        );
        assert!(when::<Product>(&h, reserve("o2", 2)).is_ok());
    }

    #[test]
    fn expired_reservations_free_their_stock_in_the_journal() {
        // now is 1_000 in `when`; the hold expired at 500.
        let h = [created(5), reserved("o1", 5, 500)];
        let events = when::<Product>(&h, reserve("o2", 4)).unwrap();
        assert_eq!(
            events[0],
            ProductEvent::ReservationExpired {
                reservation_id: "o1".into()
            }
        );
        assert!(matches!(
            events[1],
            ProductEvent::Reserved { quantity: 4, .. }
        ));
        assert_eq!(
            when::<Product>(
                &h,
                Commit {
                    reservation_id: "o1".into()
                }
            )
            .unwrap_err()
            .kind(),
            RejectionKind::NotFound
        );
    }

    #[test]
    fn repeated_reservation_is_idempotent() {
        let h = [created(5), reserved("o1", 2, 10_000)];
        assert!(when::<Product>(&h, reserve("o1", 2)).unwrap().is_empty());
        assert!(matches!(
            when::<Product>(&h, reserve("o1", 3)).unwrap_err(),
            ProductRejection::ReservationMismatch { .. }
        ));
    }

    #[test]
    fn commit_sells_and_release_returns() {
        let h = [
            created(5),
            reserved("o1", 2, 10_000),
            reserved("o2", 1, 10_000),
        ];
        let sold = when::<Product>(
            &h,
            Commit {
                reservation_id: "o1".into(),
            },
        )
        .unwrap();
        let mut all = h.to_vec();
        all.extend(sold);
        all.push(ProductEvent::Released {
            reservation_id: "o2".into(),
        });
        let s = state::<Product>(&all);
        assert_eq!((s.on_hand, s.sold, s.reserved(), s.received), (3, 2, 0, 5));
        assert!(when::<Product>(
            &all,
            Release {
                reservation_id: "nope".into()
            }
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn archived_products_take_no_new_reservations_but_settle_old_ones() {
        let h = [
            created(5),
            reserved("o1", 2, 10_000),
            ProductEvent::Archived,
        ];
        assert_eq!(
            when::<Product>(&h, reserve("o2", 1)).unwrap_err(),
            ProductRejection::Archived
        );
        assert!(when::<Product>(
            &h,
            Commit {
                reservation_id: "o1".into()
            }
        )
        .is_ok());
        assert!(when::<Product>(&h, Archive).unwrap().is_empty());
    }

    #[test]
    fn a_reversed_sale_returns_stock_once() {
        let h = [
            created(5),
            reserved("o1", 2, 10_000),
            ProductEvent::Sold {
                reservation_id: "o1".into(),
                quantity: 2,
            },
        ];
        let ev = when::<Product>(
            &h,
            ReverseSale {
                order_id: "o1".into(),
                quantity: 2,
            },
        )
        .unwrap();
        let mut all = h.to_vec();
        all.extend(ev);
        let s = state::<Product>(&all);
        assert_eq!((s.on_hand, s.sold, s.received), (5, 0, 5));
        assert!(
            when::<Product>(
                &all,
                ReverseSale {
                    order_id: "o1".into(),
                    quantity: 2
                }
            )
            .unwrap()
            .is_empty(),
            "retried: no-op"
        );
        assert!(
            when::<Product>(
                &all,
                ReverseSale {
                    order_id: "o2".into(),
                    quantity: 1
                }
            )
            .is_err(),
            "nothing left sold"
        );
    }

    #[test]
    fn zero_and_absurd_quantities_are_rejected() {
        for q in [0, MAX_QUANTITY + 1] {
            assert_eq!(
                when::<Product>(&[created(1)], Restock { quantity: q })
                    .unwrap_err()
                    .kind(),
                RejectionKind::Invalid
            );
            assert_eq!(
                when::<Product>(&[created(1)], reserve("o", q))
                    .unwrap_err()
                    .kind(),
                RejectionKind::Invalid
            );
        }
    }

    #[test]
    fn update_merges_and_skips_no_change() {
        let patch = ProductPatch {
            name: Some("New".into()),
            ..Default::default()
        };
        let ev = when::<Product>(&[created(1)], Update(patch.clone())).unwrap();
        let s = state::<Product>(&[created(1), ev[0].clone()]);
        assert_eq!(s.details.unwrap().name, "New");
        let same = ProductPatch {
            name: Some("Trail shoe".into()),
            ..Default::default()
        };
        assert!(when::<Product>(&[created(1)], Update(same))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_recent_ids_encode_as_the_strings_they_replaced() {
        use ecommesh_persistence::{Codec, DefaultCodec};
        let ids = ["r-1", "r-22", "r-333"];
        let now: imbl::Vector<Arc<str>> = ids.iter().map(|&i| i.into()).collect();
        let before: std::collections::VecDeque<String> = ids.iter().map(|&i| i.into()).collect();
        let codec = DefaultCodec::default();
        let bytes = codec.encode(&now).unwrap();
        assert_eq!(bytes, codec.encode(&before).unwrap());
        assert_eq!(codec.decode::<imbl::Vector<Arc<str>>>(&bytes).unwrap(), now);
    }

    #[test]
    fn a_sale_seen_long_ago_is_forgotten_and_a_recent_one_is_not() {
        let mut events = vec![created(10_000)];
        for i in 0..=RECENT_SALES {
            let id = format!("r-{i}");
            events.push(ProductEvent::Reserved {
                reservation_id: id.clone(),
                quantity: 1,
                expires_at_ms: u64::MAX,
            });
            events.push(ProductEvent::Sold {
                reservation_id: id,
                quantity: 1,
            });
        }
        let s = state::<Product>(&events);
        assert_eq!(s.recent_sales.len(), RECENT_SALES);
        let commit = |id: &str| Commit {
            reservation_id: id.into(),
        };
        let retried = when::<Product>(&events, commit(&format!("r-{RECENT_SALES}")));
        assert!(
            retried.unwrap().is_empty(),
            "a retried recent commit does nothing"
        );
        let forgotten = when::<Product>(&events, commit("r-0"));
        assert!(matches!(
            forgotten,
            Err(ProductRejection::NoReservation { .. })
        ));
    }
}
