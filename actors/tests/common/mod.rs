//! Helpers shared by the runtime's integration tests.

use ecommesh_actors::{Rejection, RejectionKind};

/// The rejection of test entities that never reject.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("never")]
pub struct Never;

impl Rejection for Never {
    fn code(&self) -> &'static str {
        "never"
    }
    fn kind(&self) -> RejectionKind {
        RejectionKind::Invalid
    }
}
