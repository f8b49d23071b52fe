//! Extractors that turn the `Authorization: Bearer` header into a caller, or refuse.

use std::time::Instant;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use ecommesh_commerce::customer::Role;
use futures_util::future::LocalBoxFuture;

use super::revocation::Standing;
use super::tokens::Claims;

use crate::app::AppState;
use crate::http::errors::ApiError;

/// A signed-in caller, from a valid access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub role: Role,
    /// The session the token belongs to (for logout).
    pub session: String,
}

impl Caller {
    /// The caller a verified token names; None for a role this build does not know.
    pub fn of(claims: Claims) -> Option<Caller> {
        Some(Caller {
            role: Role::parse(&claims.role)?,
            id: claims.sub,
            session: claims.fam,
        })
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The caller of a bearer token: signature, expiry and type checked, then its session,
/// so that a token of a session that was logged out or revoked is refused at once.
async fn caller(node: web::Data<AppState>, header: Option<String>) -> Result<Caller, ApiError> {
    let header = header
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <access token>"))?;
    let token = header.strip_prefix("Bearer ").ok_or_else(|| {
        ApiError::unauthorized("the Authorization header must be: Bearer <access token>")
    })?;
    let claims = node
        .auth
        .tokens
        .verify(token.trim(), "access")
        .map_err(|e| ApiError::unauthorized(format!("invalid access token: {e}")))?;
    if !session_stands(&node, &claims.fam, &claims.sub).await? {
        return Err(ApiError::unauthorized(
            "this access token's session was ended (logout or revocation); sign in again",
        ));
    }
    Caller::of(claims)
        .ok_or_else(|| ApiError::unauthorized("this access token names an unknown role"))
}

/// How long a session's last "active" verdict stands while the session cannot be read.
const STALE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether session `fam` still stands for `customer`: from the gate's cache, or read.
///
/// A verdict past its freshness but recent (`STALE_GRACE`) is used at once while the
/// session is read again in the background: a request never waits on the session's
/// shard for a session this node knows, even while that shard elects a leader.
pub async fn session_stands(
    node: &web::Data<AppState>,
    fam: &str,
    customer: &str,
) -> Result<bool, ApiError> {
    let gate = &node.auth.sessions;
    let now = Instant::now();
    match gate.check(fam, customer, now) {
        Standing::Active => Ok(true),
        Standing::Revoked => Ok(false),
        Standing::Unknown if gate.check_stale(fam, customer, now, STALE_GRACE) => {
            if gate.begin_refresh(fam) {
                let (node, fam) = (node.clone(), fam.to_owned());
                actix_web::rt::spawn(async move {
                    let _ = read_session(&node, &fam).await;
                    node.auth.sessions.end_refresh(&fam);
                });
            }
            Ok(true)
        }
        Standing::Unknown => {
            let (state, standing) = read_session(node, fam).await?;
            Ok(standing == Standing::Active && (!state.started || state.customer_id == customer))
        }
    }
}

/// Reads session `fam` from its entity and tells the gate; returns what it read and the
/// standing it gives.
async fn read_session(
    node: &AppState,
    fam: &str,
) -> Result<
    (
        std::sync::Arc<ecommesh_commerce::session::SessionState>,
        Standing,
    ),
    ApiError,
> {
    let read = node.shop.sessions.read(fam.to_owned()).await?;
    let standing = node.auth.sessions.learn(
        fam,
        &read.state,
        ecommesh_persistence::now_ms(),
        Instant::now(),
    );
    Ok((read.state, standing))
}

fn parts(req: &HttpRequest) -> (web::Data<AppState>, Option<String>) {
    let node = req
        .app_data::<web::Data<AppState>>()
        .expect("node data is registered")
        .clone();
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|h| h.to_str().unwrap_or_default().to_owned());
    (node, header)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (node, header) = parts(req);
        Box::pin(caller(node, header))
    }
}

/// A caller with the `admin` role; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (node, header) = parts(req);
        Box::pin(async move {
            let c = caller(node, header).await?;
            if c.is_admin() {
                Ok(Admin(c))
            } else {
                Err(ApiError::forbidden("this needs the admin role"))
            }
        })
    }
}
