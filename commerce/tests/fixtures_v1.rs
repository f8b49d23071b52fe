//! Events written by the first schema of every entity must stay readable forever.
//!
//! `fixtures/v1/journal.bin` was written by `regenerate_v1_fixtures` (run it with
//! `--ignored` only when adding a new fixture version, never to "fix" this test): a list
//! of `[len u32 BE][envelope]` records in envelope format 1, schema version 1. If this test
//! fails, a change broke the stored format: add an upcaster instead (`Entity::upcast`).

use std::collections::BTreeMap;

use ecommesh_actors::entity::{decode_event, encode_event};
use ecommesh_actors::Entity;
use ecommesh_commerce::cart::{Cart, CartEvent};
use ecommesh_commerce::customer::{Customer, CustomerEvent, Role};
use ecommesh_commerce::order::{Order, OrderEvent, OrderLine, OrderStatus};
use ecommesh_commerce::product::{Product, ProductDetails, ProductEvent, ProductPatch};
use ecommesh_commerce::{Currency, Money};
use ecommesh_persistence::EventEnvelope;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1/journal.bin");

fn usd(cents: i64) -> Money {
    Money::new(cents, Currency::USD)
}

fn envelopes<E: Entity>(id: &str, events: &[E::Event]) -> Vec<EventEnvelope> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let ne = encode_event::<E>(e, 1_700_000_000_000 + i as u64).unwrap();
            EventEnvelope::new(&format!("{}/{id}", E::KIND), i as u64 + 1, &ne)
        })
        .collect()
}

fn v1_history() -> Vec<EventEnvelope> {
    let details = ProductDetails {
        sku: "MUG-1".into(),
        name: "Mug".into(),
        description: "Stoneware".into(),
        category: "kitchen".into(),
        brand: "Clay".into(),
        price: usd(1250),
        images: vec!["/img/mug.png".into()],
    };
    let mut out = envelopes::<Product>(
        "mug",
        &[
            ProductEvent::Created {
                details,
                initial_stock: 10,
                at_ms: 1,
            },
            ProductEvent::Updated(ProductPatch {
                price: Some(usd(1100)),
                ..Default::default()
            }),
            ProductEvent::Restocked { quantity: 5 },
            ProductEvent::Reserved {
                reservation_id: "o1".into(),
                quantity: 3,
                expires_at_ms: 9,
            },
            ProductEvent::Sold {
                reservation_id: "o1".into(),
                quantity: 3,
            },
            ProductEvent::Reserved {
                reservation_id: "o2".into(),
                quantity: 1,
                expires_at_ms: 9,
            },
            ProductEvent::Released {
                reservation_id: "o2".into(),
            },
            ProductEvent::Reserved {
                reservation_id: "o3".into(),
                quantity: 2,
                expires_at_ms: 9,
            },
            ProductEvent::ReservationExpired {
                reservation_id: "o3".into(),
            },
            ProductEvent::Archived,
        ],
    );
    out.extend(envelopes::<Cart>(
        "c1",
        &[
            CartEvent::ItemAdded {
                product_id: "mug".into(),
                quantity: 2,
            },
            CartEvent::ItemAdded {
                product_id: "pot".into(),
                quantity: 1,
            },
            CartEvent::QuantityChanged {
                product_id: "mug".into(),
                quantity: 4,
            },
            CartEvent::ItemRemoved {
                product_id: "pot".into(),
            },
            CartEvent::Cleared,
            CartEvent::ItemAdded {
                product_id: "lid".into(),
                quantity: 7,
            },
        ],
    ));
    let lines = vec![OrderLine {
        product_id: "mug".into(),
        quantity: 3,
        unit_price: usd(1100),
    }];
    out.extend(envelopes::<Order>(
        "o1",
        &[
            OrderEvent::Placed {
                customer_id: "u1".into(),
                lines,
                total: usd(3300),
                at_ms: 2,
            },
            OrderEvent::Paid {
                payment_ref: "pay_1".into(),
                at_ms: 3,
            },
            OrderEvent::Shipped {
                carrier: "ups".into(),
                tracking: "1Z".into(),
                at_ms: 4,
            },
            OrderEvent::Delivered { at_ms: 5 },
            OrderEvent::Returned {
                reason: "chipped".into(),
                at_ms: 6,
            },
            OrderEvent::Refunded {
                amount: usd(3300),
                at_ms: 7,
            },
        ],
    ));
    out.extend(envelopes::<Order>(
        "o2",
        &[
            OrderEvent::Placed {
                customer_id: "u1".into(),
                lines: vec![],
                total: usd(0),
                at_ms: 2,
            },
            OrderEvent::Cancelled {
                reason: "changed mind".into(),
                at_ms: 3,
            },
        ],
    ));
    out.extend(envelopes::<Customer>(
        "u1",
        &[
            CustomerEvent::Registered {
                email: "ada@example.com".into(),
                name: "Ada".into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                role: Role::Customer,
                at_ms: 1,
            },
            CustomerEvent::Renamed {
                name: "Ada L.".into(),
            },
            CustomerEvent::PasswordChanged {
                password_hash: "$argon2id$new".into(),
            },
            CustomerEvent::RoleChanged { role: Role::Admin },
            CustomerEvent::Deactivated,
        ],
    ));
    out
}

fn read_fixture() -> Vec<EventEnvelope> {
    let bytes = std::fs::read(FIXTURE).expect("fixture file");
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(EventEnvelope::decode(&bytes[at + 4..at + 4 + len]).unwrap());
        at += 4 + len;
    }
    out
}

fn replay<E: Entity>(envs: &[EventEnvelope], id: &str) -> E::State {
    let key = format!("{}/{id}", E::KIND);
    let mut s = E::State::default();
    for env in envs.iter().filter(|e| e.entity_id == key) {
        assert_eq!(env.schema_version, 1);
        E::apply(
            &mut s,
            &decode_event::<E>(env).unwrap_or_else(|e| panic!("{key} seq {}: {e}", env.seq)),
        );
    }
    s
}

#[test]
fn v1_events_of_every_entity_still_load() {
    let envs = read_fixture();
    assert_eq!(envs.len(), 29);
    let mug = replay::<Product>(&envs, "mug");
    let d = mug.details.as_ref().unwrap();
    assert_eq!((d.name.as_str(), d.price), ("Mug", usd(1100)));
    assert_eq!(
        (
            mug.on_hand,
            mug.sold,
            mug.received,
            mug.reserved(),
            mug.archived
        ),
        (12, 3, 15, 0, true)
    );

    let cart = replay::<Cart>(&envs, "c1");
    assert_eq!(cart.items, BTreeMap::from([("lid".to_string(), 7)]));

    let o1 = replay::<Order>(&envs, "o1");
    assert_eq!(
        (o1.status, o1.refunded, o1.tracking.as_deref()),
        (OrderStatus::Refunded, Some(usd(3300)), Some("1Z"))
    );
    assert_eq!(replay::<Order>(&envs, "o2").status, OrderStatus::Cancelled);

    let u1 = replay::<Customer>(&envs, "u1");
    assert_eq!(
        (u1.name.as_str(), u1.role, u1.active),
        ("Ada L.", Role::Admin, false)
    );
    let types: Vec<&str> = envs.iter().map(|e| e.event_type.as_str()).collect();
    assert!(types.contains(&"StockSold") && types.contains(&"OrderRefunded"));
}

#[test]
fn the_fixture_matches_what_this_build_writes() {
    // Today's writer still produces the v1 bytes; when an event changes, bump its
    // EVENT_VERSION, add an upcaster, and keep this file as the v1 fixture.
    assert_eq!(encode_history(), std::fs::read(FIXTURE).unwrap());
}

#[test]
#[ignore = "writes the fixture file; run by hand only when creating a new fixture version"]
fn regenerate_v1_fixtures() {
    std::fs::create_dir_all(std::path::Path::new(FIXTURE).parent().unwrap()).unwrap();
    std::fs::write(FIXTURE, encode_history()).unwrap();
}

fn encode_history() -> Vec<u8> {
    let mut out = Vec::new();
    for env in v1_history() {
        let bytes = env.encode().unwrap();
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}
