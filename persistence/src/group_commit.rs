//! Group commit: one dedicated thread makes many writers' appends durable with one flush.
//!
//! A writer appends to the [`EventStore`] (visible, not yet durable), then calls
//! [`GroupCommit::request`] and awaits the returned [`FlushTicket`]. The flusher thread
//! takes every request queued so far as one batch, calls [`EventStore::flush`] once, and
//! wakes the whole batch. A request is queued after its append returned, and the flush
//! starts after the batch was taken, so the flush covers every append of the batch.
//!
//! Throughput therefore grows with concurrency: while one flush runs, the next batch
//! gathers. (sled's own `flush_async`, called from many tasks at once, stalled completely
//! at 8 or more concurrent callers on our machines; one flushing thread does not.)
//!
//! Under load the flusher also waits briefly for the batch to fill: when the previous
//! batch had at least `MIN_BATCH_TO_WAIT` requests, it waits until as many are queued
//! again or `commit_delay` has passed (PostgreSQL's `commit_delay` idea). On a 2-core
//! machine the CPU saved by fewer, larger flushes is worth more than the wait: measured
//! with 256 writers, 300 us raised durable writes from ~72k/s to ~85k/s and lowered p99.
//! A lone writer never waits.
//!
//! A failed flush is fatal: its batch and every later request get the error, because
//! after a failed fsync nothing written before it can be promised (the "fsyncgate" lesson).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::event_store::EventStore;

/// What to run once a batch is flushed (or failed).
type Waiter = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Queue {
    waiters: Vec<Waiter>,
    /// Size of the previous batch: while waiting for a batch to fill, the flusher is
    /// woken when the queue reaches it.
    target: usize,
    /// The number the next batch will get; batches are numbered from 1.
    next_batch: u64,
    shutdown: bool,
    failed: Option<StoreError>,
}

/// Below this previous batch size, flush at once: there is no concurrency to wait for.
const MIN_BATCH_TO_WAIT: usize = 8;

struct Inner {
    store: Arc<dyn EventStore>,
    commit_delay: Duration,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The highest batch number known to be on disk.
    flushed: AtomicU64,
}

/// The group-commit writer of one store. Cloning shares the same writer.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// A pending durability promise: resolves once the appends made before
/// [`GroupCommit::request`] are on disk.
pub struct FlushTicket {
    batch: u64,
    rx: Result<oneshot::Receiver<Result<(), StoreError>>, StoreError>,
}

impl FlushTicket {
    /// The batch this request belongs to, for [`GroupCommit::is_durable`].
    pub fn batch(&self) -> u64 {
        self.batch
    }
}

impl Future for FlushTicket {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.rx {
            Err(e) => Poll::Ready(Err(e.clone())),
            Ok(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(StoreError::ShutDown))),
        }
    }
}

impl GroupCommit {
    /// Starts the flusher thread for `store`, with no commit delay.
    pub fn start(store: Arc<dyn EventStore>) -> Self {
        Self::with_delay(store, Duration::ZERO)
    }

    /// Starts the flusher thread for `store`; under load a flush waits up to
    /// `commit_delay` for its batch to fill (see the module docs).
    pub fn with_delay(store: Arc<dyn EventStore>, commit_delay: Duration) -> Self {
        let inner = Arc::new(Inner {
            store,
            commit_delay,
            queue: Mutex::new(Queue {
                waiters: Vec::with_capacity(1024),
                target: 0,
                next_batch: 1,
                shutdown: false,
                failed: None,
            }),
            wake: Condvar::new(),
            flushed: AtomicU64::new(0),
        });
        let worker = inner.clone();
        let handle = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || worker.run())
            .expect("spawn the group-commit thread");
        GroupCommit {
            inner,
            thread: Arc::new(Mutex::new(Some(handle))),
        }
    }

    /// Asks for every append that has already returned to be made durable.
    pub fn request(&self) -> FlushTicket {
        let (tx, rx) = oneshot::channel();
        match self.enqueue(Box::new(move |r| {
            let _ = tx.send(r);
        })) {
            Ok(batch) => FlushTicket { batch, rx: Ok(rx) },
            Err((batch, e)) => FlushTicket { batch, rx: Err(e) },
        }
    }

    /// Runs `done` once every append that has already returned is durable (or the flush
    /// failed), on the flusher thread: keep it short. Returns the batch number. Waking a
    /// caller straight from here saves a thread hop over [`GroupCommit::request`].
    pub fn on_durable(&self, done: impl FnOnce(Result<(), StoreError>) + Send + 'static) -> u64 {
        match self.enqueue(Box::new(done)) {
            Ok(batch) => batch,
            Err((batch, _)) => batch,
        }
    }

    /// Queues `waiter`, or runs it at once with the error when no flush can happen.
    fn enqueue(&self, waiter: Waiter) -> Result<u64, (u64, StoreError)> {
        let mut q = self.inner.queue.lock();
        let batch = q.next_batch;
        let refused = match &q.failed {
            Some(e) => Some(e.clone()),
            None if q.shutdown => Some(StoreError::ShutDown),
            None => None,
        };
        if let Some(e) = refused {
            drop(q);
            waiter(Err(e.clone()));
            return Err((batch, e));
        }
        q.waiters.push(waiter);
        let len = q.waiters.len();
        let wake = len == 1 || len == q.target;
        drop(q);
        if wake {
            self.inner.wake.notify_one();
        }
        Ok(batch)
    }

    /// The batch of the latest request so far: once it is durable, so is every append
    /// that has returned.
    pub fn last_batch(&self) -> u64 {
        let q = self.inner.queue.lock();
        if q.waiters.is_empty() {
            q.next_batch - 1
        } else {
            q.next_batch
        }
    }

    /// True when batch `batch` (see [`FlushTicket::batch`]) is already on disk.
    pub fn is_durable(&self, batch: u64) -> bool {
        self.inner.flushed.load(Ordering::Acquire) >= batch
    }

    /// Flushes what is pending, then stops the thread. Later requests fail with
    /// [`StoreError::ShutDown`].
    pub fn shutdown(&self) {
        self.inner.queue.lock().shutdown = true;
        self.inner.wake.notify_one();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Inner {
    fn run(&self) {
        let mut batch: Vec<Waiter> = Vec::with_capacity(1024);
        loop {
            let number;
            {
                let mut q = self.queue.lock();
                while q.waiters.is_empty() && !q.shutdown {
                    self.wake.wait(&mut q);
                }
                if q.target >= MIN_BATCH_TO_WAIT && !self.commit_delay.is_zero() {
                    let deadline = Instant::now() + self.commit_delay;
                    while q.waiters.len() < q.target && !q.shutdown {
                        if self.wake.wait_until(&mut q, deadline).timed_out() {
                            break;
                        }
                    }
                }
                if q.waiters.is_empty() {
                    return; // shut down with nothing pending
                }
                std::mem::swap(&mut batch, &mut q.waiters);
                q.target = batch.len();
                number = q.next_batch;
                q.next_batch += 1;
            }
            let started = Instant::now();
            let result = self.store.flush();
            metrics::histogram!("ecommesh_group_commit_flush_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("ecommesh_group_commit_batch_size").record(batch.len() as f64);
            metrics::counter!("ecommesh_group_commit_flushes_total").increment(1);
            match &result {
                Ok(()) => self.flushed.store(number, Ordering::Release),
                Err(e) => {
                    tracing::error!(error = %e, batch = number, "flush failed; refusing further writes");
                    self.queue.lock().failed = Some(e.clone());
                }
            }
            for w in batch.drain(..) {
                w(result.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::testing::event;
    use crate::testing::FaultStore;

    fn probe() -> Arc<FaultStore> {
        let store = Arc::new(FaultStore::new(Arc::new(MemoryStore::new(1))));
        store.set_flush_delay(std::time::Duration::from_millis(2));
        store
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn many_concurrent_writers_share_few_flushes() {
        let store = probe();
        let gc = GroupCommit::start(store.clone());
        let threads: Vec<_> = (0..64)
            .map(|i| {
                let (gc, store) = (gc.clone(), store.clone());
                std::thread::spawn(move || {
                    for n in 0..20u64 {
                        store
                            .append(0, &format!("e{i}"), n, &[event("x", 1)])
                            .unwrap();
                        let t = gc.request();
                        let batch = t.batch();
                        block_on(t).unwrap();
                        assert!(gc.is_durable(batch));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let flushes = store.flushes();
        assert!(
            flushes < 64 * 20 / 4,
            "1280 requests took {flushes} flushes: no batching"
        );
        gc.shutdown();
    }

    #[test]
    fn a_failed_flush_fails_its_batch_and_every_later_request() {
        let store = probe();
        store.fail_flushes(true);
        let gc = GroupCommit::start(store.clone());
        assert!(matches!(
            block_on(gc.request()),
            Err(StoreError::Storage(_))
        ));
        store.fail_flushes(false);
        assert!(matches!(
            block_on(gc.request()),
            Err(StoreError::Storage(_))
        ));
        gc.shutdown();
    }

    #[test]
    fn shutdown_flushes_pending_requests_and_refuses_new_ones() {
        let store = probe();
        let gc = GroupCommit::start(store.clone());
        let pending: Vec<_> = (0..10).map(|_| gc.request()).collect();
        gc.shutdown();
        for t in pending {
            block_on(t).unwrap();
        }
        assert_eq!(block_on(gc.request()), Err(StoreError::ShutDown));
    }
}
