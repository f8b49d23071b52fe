//! Extractors that turn the `Authorization: Bearer` header into a caller, or refuse.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

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

fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let node = req
        .app_data::<web::Data<Node>>()
        .expect("node data is registered");
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <access token>"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be: Bearer <access token>")
        })?;
    let claims = node
        .auth
        .tokens
        .verify(token.trim(), "access")
        .map_err(|e| ApiError::unauthorized(format!("invalid access token: {e}")))?;
    Ok(Caller {
        id: claims.sub,
        role: claims.role,
        session: claims.fam,
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller(req))
    }
}

/// A caller with the `admin` role; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller(req).and_then(|c| {
            if c.is_admin() {
                Ok(Admin(c))
            } else {
                Err(ApiError::forbidden("this needs the admin role"))
            }
        }))
    }
}
