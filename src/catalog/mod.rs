//! The catalog projection: follows every shard's event log from its start, applies product
//! events to an in-memory [`CatalogIndex`], and serves listing and search from it.
//!
//! It shows only durable events: after reading new events it waits for a group-commit
//! flush (which covers everything appended before it) and only then applies them. It is
//! rebuilt from the journal at start (held in memory, so no offsets are stored) and then
//! polls every `CATCH_UP_EVERY`, so a change is listed well within a second.

pub mod demo;
pub mod index;

use std::sync::Arc;
use std::time::Duration;

use ecommesh_actors::entities::product::Product;
use ecommesh_actors::entity::decode_event;
use ecommesh_persistence::{EventStore, GroupCommit, StoreError};
use parking_lot::{Mutex, RwLock};

pub use index::{CatalogIndex, Query, Sort};

/// How often the projection looks for new events.
pub const CATCH_UP_EVERY: Duration = Duration::from_millis(100);
const READ_BATCH: usize = 2048;
const PREFIX: &str = "product/";

pub struct Catalog {
    index: RwLock<CatalogIndex>,
    /// Per shard, the last offset applied.
    offsets: Mutex<Vec<u64>>,
}

impl Catalog {
    pub fn new(shards: u32) -> Self {
        Catalog {
            index: RwLock::new(CatalogIndex::default()),
            offsets: Mutex::new(vec![0; shards as usize]),
        }
    }

    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, CatalogIndex> {
        self.index.read()
    }

    /// Applies every durable product event not applied yet; returns how many events it read.
    pub async fn catch_up(
        &self,
        store: &dyn EventStore,
        commit: &GroupCommit,
    ) -> Result<usize, StoreError> {
        let mut offsets = self.offsets.lock().clone();
        let mut batch = Vec::new();
        for (shard, offset) in offsets.iter_mut().enumerate() {
            loop {
                let events = store.read_shard(shard as u32, *offset + 1, READ_BATCH)?;
                let Some(last) = events.last() else { break };
                *offset = last.offset;
                let full = events.len() == READ_BATCH;
                batch.extend(
                    events
                        .into_iter()
                        .filter(|e| e.event.entity_id.starts_with(PREFIX)),
                );
                if !full {
                    break;
                }
            }
        }
        let read = batch.len();
        if batch.is_empty() && *self.offsets.lock() == offsets {
            return Ok(0);
        }
        // Everything read was appended before this request: once it is flushed, it is durable.
        commit.request().await?;
        let mut index = self.index.write();
        for e in &batch {
            match decode_event::<Product>(&e.event) {
                Ok(ev) => index.apply(&e.event.entity_id[PREFIX.len()..], &ev),
                Err(err) => {
                    tracing::error!(entity = %e.event.entity_id, seq = e.event.seq, error = %err, "catalog skipped an undecodable event")
                }
            }
        }
        *self.offsets.lock() = offsets;
        Ok(read)
    }

    /// Follows the journal until the node stops.
    pub fn spawn(self: &Arc<Self>, store: Arc<dyn EventStore>, commit: GroupCommit) {
        let catalog = self.clone();
        actix_web::rt::spawn(async move {
            loop {
                if let Err(e) = catalog.catch_up(&*store, &commit).await {
                    if matches!(e, StoreError::ShutDown) {
                        return;
                    }
                    tracing::error!(error = %e, "catalog projection could not catch up");
                }
                actix_web::rt::time::sleep(CATCH_UP_EVERY).await;
            }
        });
    }
}
