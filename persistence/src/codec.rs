//! Serialization of event payloads and snapshot states.
//!
//! The [`Codec`] trait is the seam that keeps bincode (unmaintained upstream, pinned to
//! 1.3.x) replaceable. Stored bytes are only ever read back through the same codec.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::CodecError;

/// Turns serde values into bytes and back.
pub trait Codec: Copy + Default + Send + Sync + 'static {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError>;
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// bincode 1.3 with its default options: compact, fast, not self-describing, so every
/// payload also carries a schema version in its envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct BincodeCodec;

impl Codec for BincodeCodec {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        bincode::serialize(value).map_err(|e| CodecError(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        bincode::deserialize(bytes).map_err(|e| CodecError(e.to_string()))
    }
}

/// The codec the rest of EcomMesh uses; change it here and nowhere else.
pub type DefaultCodec = BincodeCodec;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        id: String,
        qty: u32,
        price: i64,
    }

    #[test]
    fn round_trips_a_value() {
        let c = DefaultCodec::default();
        let v = Sample {
            id: "p-1".into(),
            qty: 3,
            price: -5,
        };
        let bytes = c.encode(&v).unwrap();
        assert_eq!(c.decode::<Sample>(&bytes).unwrap(), v);
    }

    #[test]
    fn truncated_bytes_are_an_error_not_a_panic() {
        let c = DefaultCodec::default();
        let bytes = c
            .encode(&Sample {
                id: "abc".into(),
                qty: 1,
                price: 2,
            })
            .unwrap();
        assert!(c.decode::<Sample>(&bytes[..bytes.len() - 3]).is_err());
    }
}
