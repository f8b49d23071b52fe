//! Recovery: snapshot + tail must give exactly the state of a full replay, whatever the
//! command sequence and snapshot interval (property test), and old events stay readable.

use ecommesh_actors::entity::{decode_event, encode_event};
use ecommesh_actors::recovery::{recover, snapshot};
use ecommesh_actors::shard::store_key;
use ecommesh_actors::Entity;
use ecommesh_commerce::cart::{Cart, CartCommand};
use ecommesh_commerce::product::{Product, ProductCommand, ProductDetails, ProductState};
use ecommesh_commerce::{Currency, Money};
use ecommesh_persistence::{open_store, EventStore, MemoryStore, StoreOptions};
use proptest::prelude::*;

/// Drives `commands` through `handle`/`apply` as the shard does, appending to `store` and
/// snapshotting every `every` events. Returns the live state the shard would hold.
fn drive<E: Entity>(
    store: &dyn EventStore,
    id: &str,
    commands: &[(E::Command, u64)],
    every: u32,
) -> (E::State, u64) {
    let key = store_key::<E>(id);
    let (mut state, mut seq, mut since) = (E::State::default(), 0u64, 0u32);
    for (cmd, now) in commands {
        let Ok(events) = E::handle(&state, cmd, *now) else {
            continue;
        };
        if events.is_empty() {
            continue;
        }
        for e in &events {
            E::apply(&mut state, e);
        }
        let new: Vec<_> = events
            .iter()
            .map(|e| encode_event::<E>(e, *now).unwrap())
            .collect();
        seq = store.append(0, &key, seq, &new).unwrap();
        since += events.len() as u32;
        if since >= every {
            snapshot::<E>(store, 0, &key, &state, seq).unwrap();
            since = 0;
        }
    }
    (state, seq)
}

fn full_replay<E: Entity>(store: &dyn EventStore, id: &str) -> E::State {
    let mut s = E::State::default();
    for env in store.read_entity(0, &store_key::<E>(id), 0).unwrap() {
        E::apply(&mut s, &decode_event::<E>(&env).unwrap());
    }
    s
}

fn details() -> ProductDetails {
    ProductDetails {
        sku: "SKU".into(),
        name: "Lamp".into(),
        description: "".into(),
        category: "home".into(),
        brand: "Lux".into(),
        price: Money::new(1999, Currency::USD),
        images: vec![],
    }
}

fn product_command() -> impl Strategy<Value = ProductCommand> {
    let rid = (0u8..5).prop_map(|i| format!("r{i}"));
    prop_oneof![
        (1u64..6).prop_map(|quantity| ProductCommand::Restock { quantity }),
        (rid.clone(), 1u64..5, 1u64..50).prop_map(|(reservation_id, quantity, ttl_ms)| {
            ProductCommand::Reserve {
                reservation_id,
                quantity,
                ttl_ms,
            }
        }),
        rid.clone()
            .prop_map(|reservation_id| ProductCommand::Release { reservation_id }),
        rid.prop_map(|reservation_id| ProductCommand::Commit { reservation_id }),
        Just(ProductCommand::ExpireReservations),
    ]
}

fn cart_command() -> impl Strategy<Value = CartCommand> {
    let pid = (0u8..6).prop_map(|i| format!("p{i}"));
    prop_oneof![
        (pid.clone(), 0u32..400).prop_map(|(product_id, quantity)| CartCommand::AddItem {
            product_id,
            quantity,
            available: None,
        }),
        (pid.clone(), 0u32..400).prop_map(|(product_id, quantity)| CartCommand::SetQuantity {
            product_id,
            quantity
        }),
        pid.prop_map(|product_id| CartCommand::RemoveItem { product_id }),
        Just(CartCommand::Clear),
    ]
}

fn check_stock_invariants(s: &ProductState) {
    assert!(
        s.reserved() <= s.on_hand,
        "reserved {} > on hand {}",
        s.reserved(),
        s.on_hand
    );
    assert_eq!(s.sold + s.on_hand, s.received, "units appeared or vanished");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn product_snapshot_plus_tail_equals_full_replay(
        cmds in prop::collection::vec((product_command(), 0u64..5), 1..80),
        every in 1u32..8,
    ) {
        let store = MemoryStore::new(1);
        let mut timed = vec![(ProductCommand::Create { details: details(), initial_stock: 3 }, 0)];
        let mut now = 0;
        for (c, dt) in cmds {
            now += dt;
            timed.push((c, now));
        }
        let (live, seq) = drive::<Product>(&store, "p", &timed, every);
        let recovered = recover::<Product>(&store, 0, &store_key::<Product>("p")).unwrap();
        prop_assert_eq!(recovered.seq, seq);
        prop_assert_eq!(&recovered.state, &live);
        prop_assert_eq!(&full_replay::<Product>(&store, "p"), &live);
        check_stock_invariants(&live);
    }

    #[test]
    fn cart_snapshot_plus_tail_equals_full_replay(
        cmds in prop::collection::vec(cart_command(), 1..80),
        every in 1u32..8,
    ) {
        let store = MemoryStore::new(1);
        let timed: Vec<_> = cmds.into_iter().map(|c| (c, 0)).collect();
        let (live, seq) = drive::<Cart>(&store, "c", &timed, every);
        let recovered = recover::<Cart>(&store, 0, &store_key::<Cart>("c")).unwrap();
        prop_assert_eq!(recovered.seq, seq);
        prop_assert_eq!(&recovered.state, &live);
        prop_assert_eq!(&full_replay::<Cart>(&store, "c"), &live);
        prop_assert!(live.items.values().all(|&q| (1..=999).contains(&q)));
    }
}

#[test]
fn recovery_replays_only_the_tail_after_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&StoreOptions::new(dir.path().join("db"), 1)).unwrap();
    let cmds: Vec<_> = (0..25)
        .map(|i| {
            (
                CartCommand::AddItem {
                    product_id: format!("p{}", i % 3),
                    quantity: 1,
                    available: None,
                },
                0,
            )
        })
        .collect();
    let (live, _) = drive::<Cart>(&*store, "c", &cmds, 10);
    let r = recover::<Cart>(&*store, 0, &store_key::<Cart>("c")).unwrap();
    assert_eq!((r.seq, r.replayed), (25, 5));
    assert_eq!(r.state, live);
}

#[test]
fn a_snapshot_of_another_state_version_is_ignored() {
    let store = MemoryStore::new(1);
    let cmds = vec![(
        CartCommand::AddItem {
            product_id: "p".into(),
            quantity: 2,
            available: None,
        },
        0,
    )];
    drive::<Cart>(&store, "c", &cmds, 100);
    let key = store_key::<Cart>("c");
    // A snapshot from a future state layout, claiming a different state.
    let bogus = ecommesh_persistence::Snapshot {
        seq: 1,
        schema_version: 99,
        payload: vec![0xff; 8],
    };
    store.save_snapshot(0, &key, &bogus).unwrap();
    let r = recover::<Cart>(&store, 0, &key).unwrap();
    assert_eq!((r.replayed, r.state.items["p"]), (1, 2));
}
