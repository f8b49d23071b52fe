//! A shopper's cart: product lines with quantities. Prices are not kept here; they are
//! read from the products at checkout, so a cart never shows a stale price as final.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use ecommesh_actors::{Entity, Rejection, RejectionKind};

/// The most units of one product in a cart.
pub const MAX_LINE_QUANTITY: u32 = 999;
/// The most distinct products in a cart.
pub const MAX_LINES: usize = 100;
/// The longest product id a cart accepts.
pub const MAX_PRODUCT_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CartState {
    /// product id -> quantity (always 1..=MAX_LINE_QUANTITY)
    pub items: BTreeMap<String, u32>,
}

impl CartState {
    pub fn total_units(&self) -> u64 {
        self.items.values().map(|&q| q as u64).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartCommand {
    AddItem {
        product_id: String,
        quantity: u32,
        /// The units on sale, as the caller last saw them: the add is refused if the line
        /// would hold more. Advisory (checkout holds stock for real), but it lets the cart
        /// check in one step what would otherwise need a read of the cart first.
        available: Option<u64>,
    },
    /// Sets a line's quantity; 0 removes the line.
    SetQuantity {
        product_id: String,
        quantity: u32,
    },
    RemoveItem {
        product_id: String,
    },
    Clear,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartEvent {
    ItemAdded { product_id: String, quantity: u32 },
    QuantityChanged { product_id: String, quantity: u32 },
    ItemRemoved { product_id: String },
    Cleared,
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum CartRejection {
    #[error("quantity must be between 1 and {max}, got {quantity}")]
    InvalidQuantity { quantity: u32, max: u32 },
    #[error("product id must be 1 to {MAX_PRODUCT_ID_LEN} characters")]
    InvalidProductId,
    #[error("a cart holds at most {MAX_LINES} different products")]
    TooManyLines,
    #[error("at most {max} units of {product_id} fit in a cart; it already holds {current}")]
    LineLimit {
        product_id: String,
        current: u32,
        max: u32,
    },
    #[error("product {product_id} is not in the cart")]
    NotInCart { product_id: String },
    #[error("only {available} of {product_id} available, {requested} wanted")]
    OutOfStock {
        product_id: String,
        requested: u64,
        available: u64,
    },
}

impl Rejection for CartRejection {
    fn code(&self) -> &'static str {
        match self {
            CartRejection::InvalidQuantity { .. } | CartRejection::InvalidProductId => {
                "validation_failed"
            }
            CartRejection::TooManyLines | CartRejection::LineLimit { .. } => "cart_limit",
            CartRejection::NotInCart { .. } => "not_found",
            CartRejection::OutOfStock { .. } => "out_of_stock",
        }
    }
    fn kind(&self) -> RejectionKind {
        match self {
            CartRejection::InvalidQuantity { .. } | CartRejection::InvalidProductId => {
                RejectionKind::Invalid
            }
            CartRejection::TooManyLines | CartRejection::LineLimit { .. } => {
                RejectionKind::Conflict
            }
            CartRejection::NotInCart { .. } => RejectionKind::NotFound,
            CartRejection::OutOfStock { .. } => RejectionKind::Conflict,
        }
    }
}

pub struct Cart;

fn check_product_id(id: &str) -> Result<(), CartRejection> {
    if id.is_empty() || id.len() > MAX_PRODUCT_ID_LEN {
        Err(CartRejection::InvalidProductId)
    } else {
        Ok(())
    }
}

impl Entity for Cart {
    const KIND: &'static str = "cart";
    type State = CartState;
    type Command = CartCommand;
    type Event = CartEvent;
    type Rejection = CartRejection;

    fn handle(
        state: &CartState,
        command: &CartCommand,
        _now_ms: u64,
    ) -> Result<Vec<CartEvent>, CartRejection> {
        use CartCommand::*;
        match command {
            AddItem {
                product_id,
                quantity,
                available,
            } => {
                check_product_id(product_id)?;
                if *quantity == 0 || *quantity > MAX_LINE_QUANTITY {
                    return Err(CartRejection::InvalidQuantity {
                        quantity: *quantity,
                        max: MAX_LINE_QUANTITY,
                    });
                }
                let current = state.items.get(product_id).copied().unwrap_or(0);
                if current == 0 && state.items.len() >= MAX_LINES {
                    return Err(CartRejection::TooManyLines);
                }
                if current + quantity > MAX_LINE_QUANTITY {
                    return Err(CartRejection::LineLimit {
                        product_id: product_id.clone(),
                        current,
                        max: MAX_LINE_QUANTITY,
                    });
                }
                let requested = (current + quantity) as u64;
                if let Some(available) = *available {
                    if requested > available {
                        return Err(CartRejection::OutOfStock {
                            product_id: product_id.clone(),
                            requested,
                            available,
                        });
                    }
                }
                Ok(vec![CartEvent::ItemAdded {
                    product_id: product_id.clone(),
                    quantity: *quantity,
                }])
            }
            SetQuantity {
                product_id,
                quantity,
            } => {
                check_product_id(product_id)?;
                if *quantity > MAX_LINE_QUANTITY {
                    return Err(CartRejection::InvalidQuantity {
                        quantity: *quantity,
                        max: MAX_LINE_QUANTITY,
                    });
                }
                let current = state.items.get(product_id).copied();
                match (current, *quantity) {
                    (None, 0) => Err(CartRejection::NotInCart {
                        product_id: product_id.clone(),
                    }),
                    (Some(_), 0) => Ok(vec![CartEvent::ItemRemoved {
                        product_id: product_id.clone(),
                    }]),
                    (Some(c), q) if c == q => Ok(vec![]),
                    (None, _) if state.items.len() >= MAX_LINES => Err(CartRejection::TooManyLines),
                    (_, q) => Ok(vec![CartEvent::QuantityChanged {
                        product_id: product_id.clone(),
                        quantity: q,
                    }]),
                }
            }
            RemoveItem { product_id } => {
                if state.items.contains_key(product_id) {
                    Ok(vec![CartEvent::ItemRemoved {
                        product_id: product_id.clone(),
                    }])
                } else {
                    Err(CartRejection::NotInCart {
                        product_id: product_id.clone(),
                    })
                }
            }
            Clear if state.items.is_empty() => Ok(vec![]),
            Clear => Ok(vec![CartEvent::Cleared]),
        }
    }

    fn apply(state: &mut CartState, event: &CartEvent) {
        match event {
            CartEvent::ItemAdded {
                product_id,
                quantity,
            } => {
                *state.items.entry(product_id.clone()).or_insert(0) += quantity;
            }
            CartEvent::QuantityChanged {
                product_id,
                quantity,
            } => {
                state.items.insert(product_id.clone(), *quantity);
            }
            CartEvent::ItemRemoved { product_id } => {
                state.items.remove(product_id);
            }
            CartEvent::Cleared => state.items.clear(),
        }
    }

    fn event_type(event: &CartEvent) -> &'static str {
        match event {
            CartEvent::ItemAdded { .. } => "ItemAdded",
            CartEvent::QuantityChanged { .. } => "QuantityChanged",
            CartEvent::ItemRemoved { .. } => "ItemRemoved",
            CartEvent::Cleared => "Cleared",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::given::{state, when};
    use CartCommand::*;

    fn added(p: &str, q: u32) -> CartEvent {
        CartEvent::ItemAdded {
            product_id: p.into(),
            quantity: q,
        }
    }

    #[test]
    fn adding_the_same_product_accumulates() {
        let s = state::<Cart>(&[added("p1", 2), added("p1", 3), added("p2", 1)]);
        assert_eq!(s.items["p1"], 5);
        assert_eq!(s.total_units(), 6);
    }

    #[test]
    fn zero_and_absurd_quantities_are_rejected() {
        for q in [0, MAX_LINE_QUANTITY + 1, u32::MAX] {
            let err = when::<Cart>(
                &[],
                AddItem {
                    product_id: "p".into(),
                    quantity: q,
                    available: None,
                },
            )
            .unwrap_err();
            assert_eq!(err.kind(), RejectionKind::Invalid, "{q}");
        }
        assert_eq!(
            when::<Cart>(
                &[],
                AddItem {
                    product_id: "".into(),
                    quantity: 1,
                    available: None,
                }
            )
            .unwrap_err(),
            CartRejection::InvalidProductId
        );
    }

    #[test]
    fn an_add_beyond_the_stock_seen_is_refused() {
        let add = |quantity, available| AddItem {
            product_id: "p".into(),
            quantity,
            available: Some(available),
        };
        assert!(when::<Cart>(&[added("p", 2)], add(3, 5)).is_ok());
        assert_eq!(
            when::<Cart>(&[added("p", 2)], add(4, 5)).unwrap_err(),
            CartRejection::OutOfStock {
                product_id: "p".into(),
                requested: 6,
                available: 5
            }
        );
    }

    #[test]
    fn a_line_cannot_exceed_its_limit() {
        let err = when::<Cart>(
            &[added("p", 990)],
            AddItem {
                product_id: "p".into(),
                quantity: 10,
                available: None,
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            CartRejection::LineLimit {
                product_id: "p".into(),
                current: 990,
                max: 999
            }
        );
    }

    #[test]
    fn a_cart_holds_a_bounded_number_of_lines() {
        let history: Vec<_> = (0..MAX_LINES).map(|i| added(&format!("p{i}"), 1)).collect();
        assert_eq!(
            when::<Cart>(
                &history,
                AddItem {
                    product_id: "new".into(),
                    quantity: 1,
                    available: None,
                }
            )
            .unwrap_err(),
            CartRejection::TooManyLines
        );
        // An existing line can still grow.
        assert!(when::<Cart>(
            &history,
            AddItem {
                product_id: "p0".into(),
                quantity: 1,
                available: None,
            }
        )
        .is_ok());
    }

    #[test]
    fn setting_zero_removes_and_same_quantity_is_a_no_op() {
        let h = [added("p", 2)];
        assert_eq!(
            when::<Cart>(
                &h,
                SetQuantity {
                    product_id: "p".into(),
                    quantity: 0
                }
            )
            .unwrap(),
            vec![CartEvent::ItemRemoved {
                product_id: "p".into()
            }]
        );
        assert!(when::<Cart>(
            &h,
            SetQuantity {
                product_id: "p".into(),
                quantity: 2
            }
        )
        .unwrap()
        .is_empty());
        let s = state::<Cart>(&[
            added("p", 2),
            CartEvent::QuantityChanged {
                product_id: "p".into(),
                quantity: 7,
            },
        ]);
        assert_eq!(s.items["p"], 7);
    }

    #[test]
    fn removing_a_missing_line_is_not_found() {
        assert_eq!(
            when::<Cart>(
                &[],
                RemoveItem {
                    product_id: "p".into()
                }
            )
            .unwrap_err()
            .kind(),
            RejectionKind::NotFound
        );
        assert!(state::<Cart>(&[added("p", 1), CartEvent::Cleared])
            .items
            .is_empty());
        assert!(when::<Cart>(&[], Clear).unwrap().is_empty());
    }
}
