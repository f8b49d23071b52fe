//! Upcasting: an entity whose event schema moved to version 2 still reads version-1
//! events from its journal, through `Entity::upcast`.

mod common;

use common::Never;
use ecommesh_actors::entity::{decode_event, encode_event};
use ecommesh_actors::recovery::recover;
use ecommesh_actors::shard::store_key;
use ecommesh_actors::Entity;
use ecommesh_persistence::{Codec, CodecError, DefaultCodec, EventStore, MemoryStore, NewEvent};
use serde::{Deserialize, Serialize};

/// Version 1 of the meter's only event: a reading in whole units.
#[derive(Serialize, Deserialize)]
enum MeterEventV1 {
    Read(u32),
}

/// Version 2: readings in milli-units, with a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum MeterEvent {
    Read { milli: u64, source: String },
}

struct Meter;

impl Entity for Meter {
    const KIND: &'static str = "meter";
    const EVENT_VERSION: u16 = 2;
    type State = u64;
    type Command = u64;
    type Event = MeterEvent;
    type Rejection = Never;

    fn handle(_: &u64, milli: &u64, _: u64) -> Result<Vec<MeterEvent>, Never> {
        Ok(vec![MeterEvent::Read {
            milli: *milli,
            source: "api".into(),
        }])
    }

    fn apply(state: &mut u64, MeterEvent::Read { milli, .. }: &MeterEvent) {
        *state += milli;
    }

    fn event_type(_: &MeterEvent) -> &'static str {
        "MeterRead"
    }

    fn upcast(version: u16, _: &str, payload: &[u8]) -> Result<MeterEvent, CodecError> {
        match version {
            1 => {
                let MeterEventV1::Read(units) = DefaultCodec::default().decode(payload)?;
                Ok(MeterEvent::Read {
                    milli: units as u64 * 1000,
                    source: "v1".into(),
                })
            }
            v => Err(CodecError(format!("unknown meter schema {v}"))),
        }
    }
}

#[test]
fn version_one_events_are_upcast_on_recovery() {
    let store = MemoryStore::new(1);
    let key = store_key::<Meter>("m");
    // Two events written by the old build...
    let old: Vec<NewEvent> = [3u32, 4]
        .iter()
        .map(|u| NewEvent {
            event_type: "MeterRead".into(),
            schema_version: 1,
            timestamp_ms: 0,
            payload: DefaultCodec::default()
                .encode(&MeterEventV1::Read(*u))
                .unwrap(),
        })
        .collect();
    store.append(0, &key, 0, &old).unwrap();
    // ...and one by the new build.
    let new = encode_event::<Meter>(
        &MeterEvent::Read {
            milli: 5,
            source: "api".into(),
        },
        0,
    )
    .unwrap();
    assert_eq!(new.schema_version, 2);
    store.append(0, &key, 2, &[new]).unwrap();

    let r = recover::<Meter>(&store, 0, &key).unwrap();
    assert_eq!((r.seq, r.state), (3, 7005));
    let first = &store.read_entity(0, &key, 0).unwrap()[0];
    assert_eq!(
        decode_event::<Meter>(first).unwrap(),
        MeterEvent::Read {
            milli: 3000,
            source: "v1".into()
        }
    );
}

#[test]
fn an_unknown_schema_version_is_an_error_not_a_guess() {
    let store = MemoryStore::new(1);
    let key = store_key::<Meter>("m");
    let future = NewEvent {
        event_type: "MeterRead".into(),
        schema_version: 9,
        timestamp_ms: 0,
        payload: vec![1, 2],
    };
    store.append(0, &key, 0, &[future]).unwrap();
    assert!(recover::<Meter>(&store, 0, &key).is_err());
}
