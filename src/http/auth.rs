//! `/api/v1/auth/*` and `/api/v1/me`.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use ecommesh_actors::EntityError;
use ecommesh_commerce::customer::{CustomerCommand, CustomerRejection, CustomerState, Role};
use ecommesh_commerce::session::SessionCommand;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::extract::Caller;
use crate::auth::tokens::random_id;
use crate::http::errors::ApiError;
use crate::http::json::Json;
use ecommesh_commerce::ids::customer_id;
use ecommesh_commerce::passwords;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/me", web::get().to(me));
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub email: String,
    pub password: String,
    pub name: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    /// `customer` or `admin`.
    #[schema(value_type = String)]
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub user: User,
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

fn user(id: String, c: &CustomerState) -> User {
    User {
        id,
        email: c.email.clone(),
        name: c.name.clone(),
        role: c.role,
    }
}

/// Runs password work through the node's bounded hasher: 503 `busy` when every slot
/// stayed taken for the whole wait.
async fn hashed<T: Send + 'static>(
    node: &AppState,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    node.auth.hasher.run(f).await.map_err(|_| {
        metrics::counter!("ecommesh_auth_refused_total", "reason" => "hashing_busy").increment(1);
        ApiError::busy("password checks are all busy; retry shortly", 1)
    })
}

/// Takes a token from the client address's `/auth/*` bucket: 429 when it has none.
fn throttle(node: &AppState, ip: std::net::IpAddr) -> Result<(), ApiError> {
    node.auth.buckets.take(ip, Instant::now()).map_err(|wait| {
        metrics::counter!("ecommesh_auth_refused_total", "reason" => "address_rate").increment(1);
        ApiError::rate_limited(
            "too many sign-in requests from this address; slow down",
            wait.as_secs_f64().ceil() as u64,
        )
    })
}

/// Tells this node's session gate what a session's entity just answered.
fn learn_session(node: &AppState, family: &str, state: &ecommesh_commerce::session::SessionState) {
    node.auth.sessions.learn(
        family,
        state,
        ecommesh_persistence::now_ms(),
        Instant::now(),
    );
}

/// Starts a refresh-token family for the customer and issues its first tokens.
async fn start_session(
    node: &AppState,
    id: String,
    customer: &CustomerState,
) -> Result<Session, ApiError> {
    let (family, jti) = (random_id(), random_id());
    let tokens = &node.auth.tokens;
    let expires_at_ms = ecommesh_persistence::now_ms() + tokens.refresh_ttl.as_millis() as u64;
    let start = SessionCommand::Start {
        customer_id: id.clone(),
        token: jti.clone(),
        expires_at_ms,
    };
    let started = node
        .shop
        .sessions
        .execute(family.clone(), start, None)
        .await?;
    // This node knows the session stands: its tokens need no read of it here.
    learn_session(node, &family, &started.state);
    Ok(issue(node, id, customer, &family, &jti))
}

fn issue(
    node: &AppState,
    id: String,
    customer: &CustomerState,
    family: &str,
    refresh_jti: &str,
) -> Session {
    let tokens = &node.auth.tokens;
    let role = customer.role.as_str();
    Session {
        access_token: tokens.issue("access", &id, role, family, &random_id()),
        refresh_token: tokens.issue("refresh", &id, role, family, refresh_jti),
        token_type: "Bearer",
        expires_in: tokens.access_ttl.as_secs(),
        user: user(id, customer),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = Register, responses((status = 201, description = "Account created and signed in", body = Session), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn register(
    req: HttpRequest,
    node: web::Data<AppState>,
    body: Json<Register>,
) -> Result<HttpResponse, ApiError> {
    throttle(&node, node.client_ip.of(&req))?;
    let Register {
        email,
        password,
        name,
    } = body.into_inner();
    if let Some(why) = passwords::weakness(&password) {
        return Err(ApiError::invalid_field("password", why));
    }
    let id = customer_id(&email);
    let taken = || ApiError::conflict("conflict", "an account with this email already exists");
    // The admin's email belongs to the admin bootstrap alone.
    if node.reserved_admin.as_deref() == Some(id.as_str()) {
        return Err(taken());
    }
    let password_hash = hashed(&node, move || passwords::hash(&password)).await?;
    let cmd = CustomerCommand::Register {
        email,
        name,
        password_hash,
        role: Role::Customer,
    };
    let reply = node
        .shop
        .customers
        .execute(id.clone(), cmd, None)
        .await
        .map_err(|e| match e {
            EntityError::Rejected(CustomerRejection::AlreadyRegistered) => taken(),
            e => e.into(),
        })?;
    let session = start_session(&node, id, &reply.state).await?;
    Ok(HttpResponse::Created().json(session))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login, responses((status = 200, description = "Signed in", body = Session), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn login(
    req: HttpRequest,
    node: web::Data<AppState>,
    body: Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let ip = node.client_ip.of(&req);
    throttle(&node, ip)?;
    let Login { email, password } = body.into_inner();
    let id = customer_id(&email);
    let limiter = &node.auth.limiter;
    // Counted before the hash, under one lock: concurrent guesses cannot all pass.
    if let Err(wait) = limiter.attempt(&id, ip, Instant::now()) {
        metrics::counter!("ecommesh_auth_refused_total", "reason" => "account_backoff")
            .increment(1);
        return Err(ApiError::too_many_attempts(
            "too many failed logins for this account from this address; try again later",
            wait.as_secs_f64().ceil() as u64,
        ));
    }
    let customer = node.shop.customers.read(id.clone()).await?.state;
    // Unknown accounts cost the same hash check as wrong passwords: no user enumeration.
    let hash = if customer.registered {
        customer.password_hash.clone()
    } else {
        passwords::decoy().to_string()
    };
    let matches = match hashed(&node, move || passwords::verify(&password, &hash)).await {
        Ok(matches) => matches,
        Err(busy) => {
            // Not checked, so not counted against the account.
            limiter.uncount(&id, ip);
            return Err(busy);
        }
    };
    if !(customer.registered && matches) {
        return Err(ApiError::invalid_credentials());
    }
    if !customer.active {
        return Err(ApiError::forbidden("this account is deactivated"));
    }
    limiter.succeeded(&id, ip);
    Ok(HttpResponse::Ok().json(start_session(&node, id, &customer).await?))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = Refresh, responses((status = 200, description = "A new token pair; the old refresh token is spent", body = Session), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn refresh(
    req: HttpRequest,
    node: web::Data<AppState>,
    body: Json<Refresh>,
) -> Result<HttpResponse, ApiError> {
    throttle(&node, node.client_ip.of(&req))?;
    let invalid = || {
        ApiError::unauthorized("the refresh token is invalid, expired, revoked or was already used")
    };
    let claims = node
        .auth
        .tokens
        .verify(body.refresh_token.trim(), "refresh")
        .map_err(|_| invalid())?;
    let next = random_id();
    let now = ecommesh_persistence::now_ms();
    let rotate = SessionCommand::Rotate {
        presented: claims.jti.clone(),
        next: next.clone(),
        expires_at_ms: now + node.auth.tokens.refresh_ttl.as_millis() as u64,
    };
    let session = node
        .shop
        .sessions
        .execute(claims.fam.clone(), rotate, None)
        .await
        .map_err(|_| invalid())?;
    learn_session(&node, &claims.fam, &session.state);
    if !session.state.accepts(&next, now) || session.state.customer_id != claims.sub {
        return Err(invalid());
    }
    let customer = node.shop.customers.read(claims.sub.clone()).await?.state;
    if !customer.registered || !customer.active {
        return Err(invalid());
    }
    Ok(HttpResponse::Ok().json(issue(&node, claims.sub, &customer, &claims.fam, &next)))
}

/// Ends the caller's session: its refresh tokens stop working at once. Access tokens
/// already issued expire on their own (they are short-lived).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])), responses((status = 204, description = "The session is ended"), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn logout(node: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let revoke = SessionCommand::Revoke {
        reason: "logout".into(),
    };
    node.shop
        .sessions
        .execute(caller.session, revoke, None)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])), responses((status = 200, description = "The caller's account", body = User), (status = "4XX", description = "A problem document saying what was wrong", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "Overloaded or shutting down: retry after Retry-After", body = crate::http::errors::ProblemSchema, content_type = "application/problem+json")))]
pub async fn me(node: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let customer = node.shop.customers.read(caller.id.clone()).await?.state;
    if !customer.registered {
        return Err(ApiError::unauthorized(
            "the account of this token no longer exists",
        ));
    }
    Ok(HttpResponse::Ok().json(user(caller.id, &customer)))
}
