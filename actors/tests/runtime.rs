//! The entity runtime end to end: real shard actors, a real sled journal in a temp dir.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Never;
use ecommesh_actors::{Entity, EntityError, Runtime, RuntimeConfig};
use ecommesh_persistence::testing::FaultStore;
use ecommesh_persistence::{open_store, EventStore, StoreOptions};
use serde::{Deserialize, Serialize};

/// Set once a `Block` command has started: its shard's thread is busy from then on.
static BLOCKING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A test-only entity whose commands can panic or block its shard.
struct Counter;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CounterCmd {
    Add(u64),
    /// Panics while deciding: nothing is written.
    Panic,
    /// Blocks the shard's thread, so that its mailbox fills up.
    Block(Duration),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CounterEvent {
    Added(u64),
}

impl Entity for Counter {
    const KIND: &'static str = "counter";
    type State = u64;
    type Command = CounterCmd;
    type Event = CounterEvent;
    type Rejection = Never;

    fn handle(_: &u64, cmd: &CounterCmd, _: u64) -> Result<Vec<CounterEvent>, Never> {
        match cmd {
            CounterCmd::Add(n) => Ok(vec![CounterEvent::Added(*n)]),
            CounterCmd::Panic => panic!("test-only panic"),
            CounterCmd::Block(d) => {
                BLOCKING.store(true, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(*d);
                Ok(vec![])
            }
        }
    }

    fn apply(state: &mut u64, e: &CounterEvent) {
        let CounterEvent::Added(n) = e;
        *state += n;
    }

    fn event_type(_: &CounterEvent) -> &'static str {
        "Added"
    }
}

fn open(dir: &tempfile::TempDir, shards: u32) -> Arc<dyn EventStore> {
    open_store(&StoreOptions::new(dir.path().join("db"), shards)).unwrap()
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        arbiters: 2,
        ..RuntimeConfig::default()
    }
}

#[actix_rt::test]
async fn a_panicking_command_fails_alone_and_the_entity_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::start(open(&dir, 4), config());
    let counters = rt.registry::<Counter>();
    counters
        .execute("victim", CounterCmd::Add(5), None)
        .await
        .unwrap();
    for i in 0..16 {
        counters
            .execute(format!("other-{i}"), CounterCmd::Add(1), None)
            .await
            .unwrap();
    }

    // The panic and a burst of commands to other entities, some on the same shard.
    let victim_shard = counters.shard_of("victim");
    let crash = counters.execute("victim", CounterCmd::Panic, None);
    let others = futures_join(&counters, 16);
    let (crash, others) = tokio::join!(crash, others);
    assert!(
        matches!(crash, Err(EntityError::Crashed { .. })),
        "{crash:?}"
    );
    for (i, r) in others.into_iter().enumerate() {
        assert_eq!(*r.unwrap().state, 2, "other-{i} noticed the crash");
    }
    assert!((0..16).any(|i| counters.shard_of(&format!("other-{i}")) == victim_shard));

    // The victim restarts from its journal with its state, and keeps working.
    assert_eq!(*counters.read("victim").await.unwrap().state, 5);
    let r = counters
        .execute("victim", CounterCmd::Add(1), None)
        .await
        .unwrap();
    assert_eq!((r.seq, *r.state), (2, 6));
    rt.shutdown().unwrap();
}

async fn futures_join(
    counters: &ecommesh_actors::Registry<Counter>,
    n: usize,
) -> Vec<Result<ecommesh_actors::Reply<std::sync::Arc<u64>>, EntityError<Never>>> {
    let mut handles = Vec::new();
    for i in 0..n {
        let c = counters.clone();
        handles.push(actix_rt::spawn(async move {
            c.execute(format!("other-{i}"), CounterCmd::Add(1), None)
                .await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[actix_rt::test]
async fn an_entity_that_keeps_crashing_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        crash_limit: 3,
        quarantine: Duration::from_millis(300),
        ..config()
    };
    let rt = Runtime::start(open(&dir, 4), cfg);
    let counters = rt.registry::<Counter>();
    counters
        .execute("c", CounterCmd::Add(1), None)
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(
            counters.execute("c", CounterCmd::Panic, None).await,
            Err(EntityError::Crashed { .. })
        ));
    }
    match counters.execute("c", CounterCmd::Add(1), None).await {
        Err(EntityError::Quarantined { retry_after, .. }) => {
            assert!(retry_after <= Duration::from_millis(300))
        }
        other => panic!("expected quarantine, got {other:?}"),
    }
    assert!(
        counters
            .execute("d", CounterCmd::Add(1), None)
            .await
            .is_ok(),
        "other entities are untouched"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        counters
            .execute("c", CounterCmd::Add(1), None)
            .await
            .unwrap()
            .state,
        2.into()
    );
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn passivated_entities_come_back_with_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        idle_timeout: Duration::from_millis(100),
        snapshot_every: 3,
        ..config()
    };
    let rt = Runtime::start(open(&dir, 4), cfg);
    let carts = rt.registry::<Counter>();
    for i in 0..10u64 {
        carts
            .execute("c1", CounterCmd::Add(i + 1), None)
            .await
            .unwrap();
    }
    let before = carts.read("c1").await.unwrap();
    assert_eq!(carts.live_entities().await, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while carts.live_entities().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "entity was never passivated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Re-activation from snapshot (at seq 9) + tail (seq 10).
    let after = carts.read("c1").await.unwrap();
    assert_eq!(after, before);
    assert_eq!((*after.state, after.seq), (55, 10));
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn stale_expected_sequence_numbers_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::start(open(&dir, 4), config());
    let counters = rt.registry::<Counter>();
    counters
        .execute("c", CounterCmd::Add(1), Some(0))
        .await
        .unwrap();
    counters
        .execute("c", CounterCmd::Add(1), Some(1))
        .await
        .unwrap();
    match counters.execute("c", CounterCmd::Add(1), Some(1)).await {
        Err(EntityError::Conflict {
            expected: 1,
            actual: 2,
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        *counters.read("c").await.unwrap().state,
        2,
        "the stale command wrote nothing"
    );
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn a_command_without_precondition_is_decided_again_when_the_journal_moved_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 4);
    let rt = Runtime::start(store.clone(), config());
    let counters = rt.registry::<Counter>();
    counters
        .execute("c", CounterCmd::Add(1), None)
        .await
        .unwrap();
    // Another writer appends behind the live entity's back (in a cluster: an earlier
    // attempt whose answer was lost, or an earlier leader's write, applied since).
    let shard = counters.shard_of("c");
    let added = |n| ecommesh_actors::entity::encode_event::<Counter>(&CounterEvent::Added(n), 0);
    store
        .append(shard, "counter/c", 1, &[added(10).unwrap()])
        .unwrap();
    let r = counters
        .execute("c", CounterCmd::Add(1), None)
        .await
        .unwrap();
    assert_eq!(
        (r.seq, *r.state),
        (3, 12),
        "decided again on the journal's state, not refused"
    );
    // A caller that named the version it saw still hears of the conflict.
    store
        .append(shard, "counter/c", 3, &[added(100).unwrap()])
        .unwrap();
    match counters.execute("c", CounterCmd::Add(1), Some(3)).await {
        Err(EntityError::Conflict { expected: 3, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(*counters.read("c").await.unwrap().state, 112);
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn a_full_shard_answers_overloaded_instead_of_queueing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        mailbox_capacity: 4,
        ..config()
    };
    let rt = Runtime::start(open(&dir, 1), cfg);
    let counters = rt.registry::<Counter>();
    let blocker = {
        let c = counters.clone();
        actix_rt::spawn(async move {
            c.execute("a", CounterCmd::Block(Duration::from_millis(300)), None)
                .await
        })
    };
    // Wait until the shard is busy with the blocker (it has left the mailbox).
    while !BLOCKING.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut queued = Vec::new();
    for i in 0..20 {
        let c = counters.clone();
        queued.push(actix_rt::spawn(async move {
            c.execute(format!("q{i}"), CounterCmd::Add(1), None).await
        }));
    }
    let mut overloaded = 0;
    let mut ok = 0;
    for q in queued {
        match q.await.unwrap() {
            Ok(_) => ok += 1,
            Err(EntityError::Overloaded { .. }) => overloaded += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    blocker.await.unwrap().unwrap();
    assert_eq!(ok, 4, "the mailbox holds exactly its capacity");
    assert_eq!(overloaded, 16);
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn acknowledged_writes_survive_a_restart_of_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = Runtime::start(open(&dir, 8), config());
        let counters = rt.registry::<Counter>();
        let mut handles = Vec::new();
        for i in 0..200u64 {
            let c = counters.clone();
            handles.push(actix_rt::spawn(async move {
                c.execute(format!("n{}", i % 20), CounterCmd::Add(i), None)
                    .await
            }));
        }
        for h in handles {
            h.await.unwrap().unwrap();
        }
        rt.shutdown().unwrap();
    }
    let rt = Runtime::start(open(&dir, 8), config());
    let counters = rt.registry::<Counter>();
    let mut total = 0;
    for k in 0..20 {
        let r = counters.read(format!("n{k}")).await.unwrap();
        assert_eq!(r.seq, 10);
        total += *r.state;
    }
    assert_eq!(total, (0..200).sum::<u64>());
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn a_panic_inside_the_storage_engine_fails_one_command_only() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FaultStore::new(open(&dir, 1)));
    let rt = Runtime::start(faults.clone(), config());
    let counters = rt.registry::<Counter>();
    counters
        .execute("boom", CounterCmd::Add(1), None)
        .await
        .unwrap();
    faults.panic_on_append_to(Some("counter/boom"));
    let r = counters.execute("boom", CounterCmd::Add(10), None).await;
    assert!(matches!(r, Err(EntityError::Crashed { .. })), "{r:?}");
    // One shard only: every entity shares the arbiter thread that saw the panic.
    assert_eq!(
        counters
            .execute("calm", CounterCmd::Add(2), None)
            .await
            .unwrap()
            .state,
        2.into()
    );
    faults.panic_on_append_to(None);
    let r = counters
        .execute("boom", CounterCmd::Add(1), None)
        .await
        .unwrap();
    assert_eq!(
        (r.seq, *r.state),
        (2, 2),
        "nothing of the failed command was kept"
    );
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn a_failed_flush_is_never_acknowledged_nor_shown() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FaultStore::new(open(&dir, 2)));
    let rt = Runtime::start(faults.clone(), config());
    let counters = rt.registry::<Counter>();
    counters
        .execute("c", CounterCmd::Add(1), None)
        .await
        .unwrap();
    faults.fail_flushes(true);
    assert!(matches!(
        counters.execute("c", CounterCmd::Add(5), None).await,
        Err(EntityError::Storage(_))
    ));
    // The unflushed state is not shown either, and the store refuses further writes.
    assert!(matches!(
        counters.read("c").await,
        Err(EntityError::Storage(_))
    ));
    assert!(matches!(
        counters.execute("d", CounterCmd::Add(1), None).await,
        Err(EntityError::Storage(_))
    ));
    assert!(rt.shutdown().is_err(), "the final flush fails too");
}

#[actix_rt::test]
async fn live_entities_stay_under_the_limit_and_come_back_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        max_live_entities: 40,
        ..config()
    };
    let rt = Runtime::start(open(&dir, 4), cfg);
    let counters = rt.registry::<Counter>();
    for i in 0..300u64 {
        counters
            .execute(format!("n{i}"), CounterCmd::Add(i), None)
            .await
            .unwrap();
        // Each of the 4 shards hosts at most 10, plus the one just activated.
        assert!(
            counters.live_entities().await <= 44,
            "limit exceeded after {i} entities"
        );
    }
    // The first entities were passivated long ago; they come back with their state.
    for i in [0u64, 1, 7, 150, 299] {
        assert_eq!(*counters.read(format!("n{i}")).await.unwrap().state, i);
    }
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn the_observer_hears_every_durable_change_in_order_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FaultStore::new(open(&dir, 4)));
    let rt = Runtime::start(faults.clone(), config());
    let heard = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = heard.clone();
    let observer: ecommesh_actors::Observer<Counter> = Arc::new(move |c| {
        sink.lock().push((
            c.id.to_string(),
            c.prev_seq,
            c.seq,
            *c.state,
            c.events.len(),
        ))
    });
    let counters = rt.observed_registry::<Counter>(Some(observer));
    let mut handles = Vec::new();
    for i in 1..=100u64 {
        let c = counters.clone();
        handles.push(actix_rt::spawn(async move {
            c.execute(format!("n{}", i % 5), CounterCmd::Add(i), None)
                .await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    // A command without events and a read are not changes.
    counters
        .execute("n1", CounterCmd::Block(Duration::ZERO), None)
        .await
        .unwrap();
    counters.read("n2").await.unwrap();
    {
        let heard = heard.lock();
        assert_eq!(heard.len(), 100);
        for k in 0..5 {
            let mine: Vec<_> = heard.iter().filter(|h| h.0 == format!("n{k}")).collect();
            assert_eq!(mine.len(), 20);
            for (i, h) in mine.iter().enumerate() {
                assert_eq!((h.1, h.2, h.4), (i as u64, i as u64 + 1, 1), "{h:?}");
            }
            let sum: u64 = (1..=100u64).filter(|i| i % 5 == k).sum();
            assert_eq!(mine.last().unwrap().3, sum);
        }
    }
    // A change whose flush fails is never heard.
    faults.fail_flushes(true);
    assert!(counters
        .execute("n1", CounterCmd::Add(1), None)
        .await
        .is_err());
    assert_eq!(heard.lock().len(), 100);
    assert!(rt.shutdown().is_err());
}

/// Waits (bounded) for a spawned step, failing the test if it never ends.
async fn finished<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the step never finished")
        .expect("the step panicked")
}

#[actix_rt::test]
async fn an_unsynced_step_answers_once_written_and_everyone_else_waits_for_the_flush() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FaultStore::new(open(&dir, 2)));
    assert!(faults.keeps_write_order(), "a new journal is the log file");
    let rt = Runtime::start(faults.clone(), config());
    let counters = rt.registry::<Counter>();
    faults.hold_flushes(true);

    let written = counters.clone();
    let step = actix_rt::spawn(async move {
        written
            .execute_unsynced("c", CounterCmd::Add(2), None)
            .await
    });
    let reply = finished(step).await.unwrap();
    assert_eq!((reply.seq, *reply.state), (1, 2));
    let shown = counters.clone();
    let sees_it = counters.clone();
    let synced = counters.clone();
    let read = actix_rt::spawn(async move { shown.read("c").await });
    // A rejection decided on the unsynced state is one more reader of it.
    let conflict =
        actix_rt::spawn(async move { sees_it.execute("c", CounterCmd::Add(1), Some(0)).await });
    let sync = actix_rt::spawn(async move { synced.sync().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !read.is_finished(),
        "a read showed a write before it was durable"
    );
    assert!(
        !conflict.is_finished(),
        "a conflict told of a write before it was durable"
    );
    assert!(!sync.is_finished(), "sync returned before the flush");

    faults.hold_flushes(false);
    finished(sync).await.unwrap();
    assert_eq!(*finished(read).await.unwrap().state, 2);
    assert!(matches!(
        finished(conflict).await,
        Err(EntityError::Conflict { actual: 1, .. })
    ));
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn unsynced_steps_are_durable_steps_where_the_journal_cannot_keep_write_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path().join("db"), 2);
    opts.engine = ecommesh_persistence::Engine::Sled;
    let faults = Arc::new(FaultStore::new(open_store(&opts).unwrap()));
    assert!(!faults.keeps_write_order());
    let rt = Runtime::start(faults.clone(), config());
    let counters = rt.registry::<Counter>();
    faults.hold_flushes(true);
    let written = counters.clone();
    let step = actix_rt::spawn(async move {
        written
            .execute_unsynced("c", CounterCmd::Add(2), None)
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!step.is_finished(), "answered before its write was durable");
    faults.hold_flushes(false);
    assert_eq!(finished(step).await.unwrap().seq, 1);
    rt.shutdown().unwrap();
}

#[actix_rt::test]
async fn a_failed_flush_after_unsynced_steps_fails_their_sync() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FaultStore::new(open(&dir, 2)));
    let rt = Runtime::start(faults.clone(), config());
    let counters = rt.registry::<Counter>();
    counters
        .execute("c", CounterCmd::Add(1), None)
        .await
        .unwrap();
    faults.fail_flushes(true);
    // Written, so answered; the flush that would make it durable fails. (That flush may
    // fail before the shard hands out the early answer: then the step gets the error.)
    match counters
        .execute_unsynced("c", CounterCmd::Add(5), None)
        .await
    {
        Ok(step) => assert_eq!(step.seq, 2),
        Err(EntityError::Storage(_)) => {}
        Err(e) => panic!("unexpected outcome of the unsynced step: {e:?}"),
    }
    assert!(counters.sync().await.is_err(), "sync hid a failed flush");
    assert!(matches!(
        counters.read("c").await,
        Err(EntityError::Storage(_))
    ));
    assert!(rt.shutdown().is_err());
}
