//! Extractors that turn the `Authorization: Bearer` header into a caller, or refuse.

use std::time::Instant;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::revocation::Standing;

use crate::http::errors::ApiError;
use crate::node::Node;

/// A signed-in caller, from a valid access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub role: String,
    /// The session the token belongs to (for logout).
    pub session: String,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

/// The caller of a bearer token: signature, expiry and type checked, then its session,
/// so that a token of a session that was logged out or revoked is refused at once.
async fn caller(node: web::Data<Node>, header: Option<String>) -> Result<Caller, ApiError> {
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
    Ok(Caller {
        id: claims.sub,
        role: claims.role,
        session: claims.fam,
    })
}

/// How long a session's last "active" verdict stands while the session cannot be read.
const STALE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether session `fam` still stands for `customer`: from the gate's cache, or read.
pub async fn session_stands(node: &Node, fam: &str, customer: &str) -> Result<bool, ApiError> {
    let gate = &node.auth.sessions;
    match gate.check(fam, customer, Instant::now()) {
        Standing::Active => Ok(true),
        Standing::Revoked => Ok(false),
        Standing::Unknown => {
            let read = match node.sessions.read(fam.to_owned()).await {
                Ok(read) => read,
                // The session's shard is between leaders: a recent "active" verdict
                // stands a little longer rather than signing everyone out.
                Err(e) if gate.check_stale(fam, customer, Instant::now(), STALE_GRACE) => {
                    tracing::debug!(error = %e, "session unreadable; its recent verdict stands");
                    return Ok(true);
                }
                Err(e) => return Err(e.into()),
            };
            let standing = gate.learn(
                fam,
                &read.state,
                ecommesh_persistence::now_ms(),
                Instant::now(),
            );
            Ok(standing == Standing::Active
                && (!read.state.started || read.state.customer_id == customer))
        }
    }
}

fn parts(req: &HttpRequest) -> (web::Data<Node>, Option<String>) {
    let node = req
        .app_data::<web::Data<Node>>()
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
