//! A sign-in session: one family of refresh tokens, rotated on every use.
//!
//! Each refresh replaces the family's current token id. Presenting any other id of the
//! family (a token that was already rotated away, so probably stolen) revokes the whole
//! family: reuse detection as OAuth 2.0 security best practice describes. A revoked or
//! expired family refreshes nothing.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use ecommesh_actors::{Entity, Rejection, RejectionKind};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionState {
    pub started: bool,
    pub customer_id: String,
    /// The id of the only refresh token of this family that may be used next.
    pub current_token: String,
    pub expires_at_ms: u64,
    pub revoked: Option<String>,
}

impl SessionState {
    /// True when `token` may be exchanged now.
    pub fn accepts(&self, token: &str, now_ms: u64) -> bool {
        self.started
            && self.revoked.is_none()
            && now_ms < self.expires_at_ms
            && self.current_token == token
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionCommand {
    Start {
        customer_id: String,
        token: String,
        expires_at_ms: u64,
    },
    /// Exchanges `presented` for `next`. A stale `presented` revokes the family instead;
    /// the caller tells the outcomes apart by the resulting state.
    Rotate {
        presented: String,
        next: String,
        expires_at_ms: u64,
    },
    Revoke {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionEvent {
    Started {
        customer_id: String,
        token: String,
        expires_at_ms: u64,
    },
    Rotated {
        token: String,
        expires_at_ms: u64,
    },
    Revoked {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum SessionRejection {
    #[error("session does not exist")]
    NotFound,
    #[error("session already started")]
    AlreadyStarted,
}

impl Rejection for SessionRejection {
    fn code(&self) -> &'static str {
        match self {
            SessionRejection::NotFound => "not_found",
            SessionRejection::AlreadyStarted => "conflict",
        }
    }
    fn kind(&self) -> RejectionKind {
        match self {
            SessionRejection::NotFound => RejectionKind::NotFound,
            SessionRejection::AlreadyStarted => RejectionKind::Conflict,
        }
    }
}

pub struct Session;

impl Entity for Session {
    const KIND: &'static str = "session";
    type State = SessionState;
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Rejection = SessionRejection;

    fn handle(
        state: &SessionState,
        command: &SessionCommand,
        now_ms: u64,
    ) -> Result<Vec<SessionEvent>, SessionRejection> {
        match command {
            SessionCommand::Start {
                customer_id,
                token,
                expires_at_ms,
            } => {
                if state.started {
                    return Err(SessionRejection::AlreadyStarted);
                }
                Ok(vec![SessionEvent::Started {
                    customer_id: customer_id.clone(),
                    token: token.clone(),
                    expires_at_ms: *expires_at_ms,
                }])
            }
            _ if !state.started => Err(SessionRejection::NotFound),
            SessionCommand::Rotate {
                presented,
                next,
                expires_at_ms,
            } => {
                if state.revoked.is_some() {
                    Ok(vec![])
                } else if state.accepts(presented, now_ms) {
                    Ok(vec![SessionEvent::Rotated {
                        token: next.clone(),
                        expires_at_ms: *expires_at_ms,
                    }])
                } else if now_ms >= state.expires_at_ms {
                    Ok(vec![SessionEvent::Revoked {
                        reason: "expired".into(),
                    }])
                } else {
                    Ok(vec![SessionEvent::Revoked {
                        reason: "refresh token reused".into(),
                    }])
                }
            }
            SessionCommand::Revoke { reason } => {
                if state.revoked.is_some() {
                    Ok(vec![])
                } else {
                    Ok(vec![SessionEvent::Revoked {
                        reason: reason.clone(),
                    }])
                }
            }
        }
    }

    fn apply(state: &mut SessionState, event: &SessionEvent) {
        match event {
            SessionEvent::Started {
                customer_id,
                token,
                expires_at_ms,
            } => {
                state.started = true;
                state.customer_id = customer_id.clone();
                state.current_token = token.clone();
                state.expires_at_ms = *expires_at_ms;
            }
            SessionEvent::Rotated {
                token,
                expires_at_ms,
            } => {
                state.current_token = token.clone();
                state.expires_at_ms = *expires_at_ms;
            }
            SessionEvent::Revoked { reason } => state.revoked = Some(reason.clone()),
        }
    }

    fn event_type(event: &SessionEvent) -> &'static str {
        match event {
            SessionEvent::Started { .. } => "SessionStarted",
            SessionEvent::Rotated { .. } => "SessionRotated",
            SessionEvent::Revoked { .. } => "SessionRevoked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::given::{state, when};
    use SessionCommand::*;

    fn started() -> SessionEvent {
        SessionEvent::Started {
            customer_id: "u1".into(),
            token: "t1".into(),
            expires_at_ms: 10_000,
        }
    }

    fn rotate(presented: &str, next: &str) -> SessionCommand {
        Rotate {
            presented: presented.into(),
            next: next.into(),
            expires_at_ms: 20_000,
        }
    }

    #[test]
    fn the_current_token_rotates() {
        let ev = when::<Session>(&[started()], rotate("t1", "t2")).unwrap();
        let s = state::<Session>(&[started(), ev[0].clone()]);
        assert!(s.accepts("t2", 1_000) && !s.accepts("t1", 1_000));
    }

    #[test]
    fn reusing_a_rotated_token_revokes_the_family() {
        let h = [
            started(),
            SessionEvent::Rotated {
                token: "t2".into(),
                expires_at_ms: 20_000,
            },
        ];
        let ev = when::<Session>(&h, rotate("t1", "t3")).unwrap();
        assert_eq!(
            ev,
            vec![SessionEvent::Revoked {
                reason: "refresh token reused".into()
            }]
        );
        let mut all = h.to_vec();
        all.extend(ev);
        let s = state::<Session>(&all);
        assert!(
            !s.accepts("t2", 1_000),
            "the legitimate token dies with the family"
        );
        assert!(when::<Session>(&all, rotate("t2", "t4"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn an_expired_family_refreshes_nothing() {
        let h = [SessionEvent::Started {
            customer_id: "u".into(),
            token: "t1".into(),
            expires_at_ms: 500,
        }];
        assert!(matches!(
            when::<Session>(&h, rotate("t1", "t2")).unwrap()[0],
            SessionEvent::Revoked { .. }
        ));
        assert_eq!(
            when::<Session>(&[], rotate("t1", "t2")).unwrap_err(),
            SessionRejection::NotFound
        );
    }
}
