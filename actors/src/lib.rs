//! The entity runtime of EcomMesh, generic over what the entities are (the commerce
//! entities live in `ecommesh-commerce`): every entity is event-sourced with a single
//! writer, hosted by the actor of its shard.
//!
//! - [`entity::Entity`] is the pure part of an entity: `handle` (decide which events a
//!   command produces) and `apply` (evolve the state by one event). No IO.
//! - [`registry::Runtime`] owns the store, the group-commit writer and the arbiters;
//!   [`registry::Registry`] routes a command to the shard that owns its entity.
//! - [`shard::Shard`] is the actor of one shard. It hosts its entities as state machines
//!   (not one actor each: an idle actix actor costs ~850 B, a hosted entity ~100 B),
//!   activates them on demand from snapshot + tail, passivates them when idle, and
//!   isolates panics so that one entity's failure is invisible to the others.
//!
//! The write path: validate against the state, apply the events, append them to the
//! [`journal::Journal`] (the local store and group commit, or a cluster's consensus group),
//! wait until they are durable, reply. Nothing is acknowledged before it is durable.

pub mod entity;
pub mod error;
pub mod journal;
pub mod recovery;
pub mod registry;
pub mod routing;
pub mod shard;
pub mod supervisor;

pub use entity::{Entity, Rejection, RejectionKind};
pub use error::EntityError;
pub use journal::{AppendDone, Flushed, Journal, LocalJournal, Ticket};
pub use registry::{Registry, Runtime, RuntimeConfig};
pub use routing::{Entities, Router};
pub use shard::{Committed, Observer, Reply};
