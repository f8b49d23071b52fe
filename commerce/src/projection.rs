//! Read models built from the event stream (design rule 8): a [`Projection`] follows every
//! shard's log from its start and feeds one entity kind's events to a [`ReadModel`].
//!
//! It shows only durable events: after reading new events it waits for a group-commit
//! flush (which covers everything appended before it) and only then applies them. Read
//! models are held in memory and rebuilt from the journal at start, so no offsets need to
//! be stored; then the projection polls every [`CATCH_UP_EVERY`], so a change shows well
//! within a second.

use std::sync::Arc;
use std::time::Duration;

use ecommesh_persistence::{EventEnvelope, EventStore, GroupCommit, StoreError};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

/// How often a projection looks for new events.
pub const CATCH_UP_EVERY: Duration = Duration::from_millis(100);
const READ_BATCH: usize = 2048;

/// A read model of one entity kind.
pub trait ReadModel: Default + Send + Sync + 'static {
    /// The entity kind followed, e.g. `product`.
    const KIND: &'static str;

    /// Applies one durable event of entity `id` (without its kind prefix), in order.
    fn apply(&mut self, id: &str, event: &EventEnvelope);
}

pub struct Projection<M> {
    model: RwLock<M>,
    /// Per shard, the last offset applied.
    offsets: Mutex<Vec<u64>>,
}

impl<M: ReadModel> Projection<M> {
    pub fn new(shards: u32) -> Self {
        Projection {
            model: RwLock::new(M::default()),
            offsets: Mutex::new(vec![0; shards as usize]),
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, M> {
        self.model.read()
    }

    /// Applies every durable event not applied yet; returns how many of its kind it applied.
    pub async fn catch_up(
        &self,
        store: &dyn EventStore,
        commit: &GroupCommit,
    ) -> Result<usize, StoreError> {
        let prefix = format!("{}/", M::KIND);
        let before = self.offsets.lock().clone();
        let mut offsets = before.clone();
        let mut batch = Vec::new();
        for (shard, offset) in offsets.iter_mut().enumerate() {
            loop {
                let page = store.read_shard_of(shard as u32, *offset + 1, READ_BATCH, &prefix)?;
                if page.looked_at == 0 {
                    break;
                }
                *offset = page.last_offset;
                batch.extend(page.events.into_iter().map(|e| e.event));
                if page.looked_at < READ_BATCH {
                    break;
                }
            }
        }
        if offsets == before {
            return Ok(0);
        }
        if !batch.is_empty() {
            // Everything read was appended before this request: once flushed, it is durable.
            commit.request().await?;
            let mut model = self.model.write();
            for e in &batch {
                model.apply(&e.entity_id[prefix.len()..], e);
            }
        }
        *self.offsets.lock() = offsets;
        Ok(batch.len())
    }

    /// Follows the journal until the store shuts down (the caller spawns it).
    pub async fn follow(self: Arc<Self>, store: Arc<dyn EventStore>, commit: GroupCommit) {
        loop {
            if let Err(e) = self.catch_up(&*store, &commit).await {
                if matches!(e, StoreError::ShutDown) {
                    return;
                }
                tracing::error!(kind = M::KIND, error = %e, "projection could not catch up");
            }
            tokio::time::sleep(CATCH_UP_EVERY).await;
        }
    }
}
