//! The stored form of events and snapshots.
//!
//! An envelope is written in a small fixed binary layout (not through the codec) so that
//! the envelope itself can be read whatever codec encoded the payload. The first byte is
//! the envelope format; format 1 is:
//!
//! ```text
//! [1u8][schema_version u16][seq u64][timestamp_ms u64][len u16][entity id][len u16][event type][payload ..]
//! ```
//! (integers big-endian). `schema_version` is the version of the payload's own schema,
//! which the entity uses to upcast old events when it reads them.

use std::borrow::Cow;

use crate::error::StoreError;

const ENVELOPE_FORMAT_V1: u8 = 1;
const SNAPSHOT_FORMAT_V1: u8 = 1;

/// An event about to be appended; the store assigns its sequence number. Serializable
/// because in a cluster it travels in a replicated log entry before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewEvent {
    pub event_type: Cow<'static, str>,
    pub schema_version: u16,
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}

/// An event as stored in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    pub entity_id: String,
    pub seq: u64,
    pub schema_version: u16,
    pub event_type: String,
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}

/// The state of an entity as of `seq`, so that recovery replays only the tail after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: u64,
    pub schema_version: u16,
    pub payload: Vec<u8>,
}

impl EventEnvelope {
    /// Builds the stored envelope of `event` at `seq`.
    pub fn new(entity_id: &str, seq: u64, event: &NewEvent) -> Self {
        EventEnvelope {
            entity_id: entity_id.to_owned(),
            seq,
            schema_version: event.schema_version,
            event_type: event.event_type.to_string(),
            timestamp_ms: event.timestamp_ms,
            payload: event.payload.clone(),
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        encode_parts(
            &self.entity_id,
            self.seq,
            self.schema_version,
            &self.event_type,
            self.timestamp_ms,
            &self.payload,
        )
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader { bytes, at: 0 };
        match r.u8()? {
            ENVELOPE_FORMAT_V1 => {}
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown envelope format {other}"
                )))
            }
        }
        let schema_version = r.u16()?;
        let seq = r.u64()?;
        let timestamp_ms = r.u64()?;
        let entity_id = r.str()?;
        let event_type = r.str()?;
        Ok(EventEnvelope {
            entity_id,
            seq,
            schema_version,
            event_type,
            timestamp_ms,
            payload: r.rest().to_vec(),
        })
    }
}

/// Encodes an envelope straight from its parts, without building an [`EventEnvelope`].
pub(crate) fn encode_parts(
    entity_id: &str,
    seq: u64,
    schema_version: u16,
    event_type: &str,
    timestamp_ms: u64,
    payload: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(23 + entity_id.len() + event_type.len() + payload.len());
    out.push(ENVELOPE_FORMAT_V1);
    out.extend_from_slice(&schema_version.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    put_str(&mut out, entity_id)?;
    put_str(&mut out, event_type)?;
    out.extend_from_slice(payload);
    Ok(out)
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(11 + self.payload.len());
        out.push(SNAPSHOT_FORMAT_V1);
        out.extend_from_slice(&self.schema_version.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader { bytes, at: 0 };
        match r.u8()? {
            SNAPSHOT_FORMAT_V1 => {}
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown snapshot format {other}"
                )))
            }
        }
        let schema_version = r.u16()?;
        let seq = r.u64()?;
        Ok(Snapshot {
            seq,
            schema_version,
            payload: r.rest().to_vec(),
        })
    }
}

/// Appends the record of one append of `events` to `entity` after `expected_seq` to
/// `out`: `count u32 | (len u32 | envelope)*`. Returns the last sequence number.
pub(crate) fn encode_events(
    out: &mut Vec<u8>,
    entity: &str,
    expected_seq: u64,
    events: &[NewEvent],
) -> Result<u64, StoreError> {
    out.reserve(
        4 + events
            .iter()
            .map(|e| 40 + entity.len() + e.event_type.len() + e.payload.len())
            .sum::<usize>(),
    );
    out.extend_from_slice(&(events.len() as u32).to_be_bytes());
    let mut seq = expected_seq;
    for ev in events {
        seq += 1;
        let env = encode_parts(
            entity,
            seq,
            ev.schema_version,
            &ev.event_type,
            ev.timestamp_ms,
            &ev.payload,
        )?;
        out.extend_from_slice(&(env.len() as u32).to_be_bytes());
        out.extend_from_slice(&env);
    }
    Ok(seq)
}

/// Decodes the events of one append record (see [`encode_events`]).
pub(crate) fn decode_events(raw: &[u8]) -> Result<Vec<EventEnvelope>, StoreError> {
    let mut r = Reader::new(raw);
    let count = r.u32()? as usize;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = r.u32()? as usize;
        out.push(EventEnvelope::decode(r.take(len)?)?);
    }
    Ok(out)
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), StoreError> {
    let len = u16::try_from(s.len())
        .map_err(|_| StoreError::Invalid(format!("string of {} bytes is too long", s.len())))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Reads the big-endian fields of a stored record, front to back; running out of bytes is a
/// [`StoreError::Corrupt`].
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "record truncated at byte {} (wanted {n} more)",
                    self.at
                ))
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn str(&mut self) -> Result<String, StoreError> {
        self.str_ref().map(str::to_owned)
    }
    /// A `len u16 | utf-8` string, borrowed.
    pub(crate) fn str_ref(&mut self) -> Result<&'a str, StoreError> {
        let len = self.u16()? as usize;
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| StoreError::Corrupt("string is not utf-8".into()))
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.at..];
        self.at = self.bytes.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EventEnvelope {
        EventEnvelope {
            entity_id: "cart/c-1".into(),
            seq: 7,
            schema_version: 2,
            event_type: "ItemAdded".into(),
            timestamp_ms: 1_700_000_000_000,
            payload: vec![1, 2, 3],
        }
    }

    #[test]
    fn envelope_round_trips() {
        let e = sample();
        assert_eq!(EventEnvelope::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn every_truncation_is_a_corrupt_error() {
        let bytes = sample().encode().unwrap();
        // Every cut inside the header must be detected; cuts in the payload are the
        // codec's to detect.
        for cut in 0..(bytes.len() - 3) {
            assert!(
                EventEnvelope::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn unknown_format_is_rejected() {
        let mut bytes = sample().encode().unwrap();
        bytes[0] = 99;
        assert!(matches!(
            EventEnvelope::decode(&bytes),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn snapshot_round_trips() {
        let s = Snapshot {
            seq: 1000,
            schema_version: 1,
            payload: vec![9; 40],
        };
        assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
    }
}
