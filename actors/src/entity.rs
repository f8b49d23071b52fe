//! The [`Entity`] trait: the pure, testable part of an event-sourced entity.

use std::fmt::Debug;

use ecommesh_persistence::{Codec, CodecError, DefaultCodec, EventEnvelope, NewEvent};
use serde::{de::DeserializeOwned, Serialize};

/// How a domain rejection should be reported to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The command is malformed (bad quantity, bad email): the caller must change it.
    Invalid,
    /// The entity does not exist (or no longer accepts this command because of it).
    NotFound,
    /// The command is valid but conflicts with the entity's state (out of stock, illegal
    /// order transition, duplicate registration).
    Conflict,
}

/// An expected, domain-level refusal of a command. Never a failure of the runtime.
/// Serializable because in a cluster it travels back from the node that leads the
/// entity's shard.
pub trait Rejection:
    std::error::Error + Clone + Send + Serialize + DeserializeOwned + 'static
{
    /// A stable machine-readable code, e.g. `out_of_stock`.
    fn code(&self) -> &'static str;
    fn kind(&self) -> RejectionKind;
}

/// An event-sourced entity type. Implementations hold no IO: the runtime feeds them.
pub trait Entity: Send + Unpin + 'static {
    /// The entity kind, part of every journal key (`cart/{id}`); never change it.
    const KIND: &'static str;
    /// The schema version stamped on newly written events; see [`Entity::upcast`].
    const EVENT_VERSION: u16 = 1;
    /// The schema version of snapshots; a snapshot of another version is ignored and
    /// the entity is rebuilt from its journal.
    const STATE_VERSION: u16 = 1;

    type State: Default
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + Unpin
        + 'static;
    /// Serializable: in a cluster a command travels to the node leading its shard.
    /// Clone: a command whose append met a newer journal is decided again (see
    /// [`crate::Registry::execute`]).
    type Command: Debug + Clone + Send + Serialize + DeserializeOwned + 'static;
    type Event: Debug + Clone + Serialize + DeserializeOwned + Send + 'static;
    type Rejection: Rejection;

    /// Decides which events `command` produces in `state` at time `now_ms`.
    fn handle(
        state: &Self::State,
        command: &Self::Command,
        now_ms: u64,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// Evolves `state` by one event. Must accept every event `handle` ever produced.
    fn apply(state: &mut Self::State, event: &Self::Event);

    /// The event's type name, stored in its envelope (past tense: `ItemAdded`).
    fn event_type(event: &Self::Event) -> &'static str;

    /// Reads an event written with an older schema version. The default knows none.
    fn upcast(
        schema_version: u16,
        event_type: &str,
        payload: &[u8],
    ) -> Result<Self::Event, CodecError> {
        let _ = payload;
        Err(CodecError(format!(
            "{} event {event_type} has schema version {schema_version}, this build reads {}",
            Self::KIND,
            Self::EVENT_VERSION
        )))
    }
}

/// Encodes an event for the journal with the current schema version.
pub fn encode_event<E: Entity>(event: &E::Event, now_ms: u64) -> Result<NewEvent, CodecError> {
    Ok(NewEvent {
        event_type: E::event_type(event).into(),
        schema_version: E::EVENT_VERSION,
        timestamp_ms: now_ms,
        payload: DefaultCodec::default().encode(event)?,
    })
}

/// Decodes a stored event, upcasting it when it was written by an older schema.
pub fn decode_event<E: Entity>(envelope: &EventEnvelope) -> Result<E::Event, CodecError> {
    if envelope.schema_version == E::EVENT_VERSION {
        DefaultCodec::default().decode(&envelope.payload)
    } else {
        E::upcast(
            envelope.schema_version,
            &envelope.event_type,
            &envelope.payload,
        )
    }
}
