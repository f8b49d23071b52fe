//! The one place that turns failures into HTTP responses: RFC 9457 problem details
//! (`application/problem+json`) with a stable machine-readable `code`. Nothing here logs
//! and nothing internal leaks into a response body.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use ecommesh_actors::{EntityError, Rejection, RejectionKind};
use ecommesh_commerce::order::OrderRejection;
use ecommesh_commerce::payment::provider::ProviderError;
use ecommesh_commerce::workflow::checkout::CheckoutError;
use ecommesh_commerce::workflow::settle::{CancelError, SettleError};
use ecommesh_commerce::workflow::StepError;
use ecommesh_persistence::StoreError;
use serde::Serialize;
use serde_json::json;

/// A field that failed validation, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after_secs: Option<u64>,
    /// Members added to the problem document (RFC 9457 extensions), e.g. `available`.
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
            extensions: serde_json::Map::new(),
        }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            errors: vec![FieldError {
                field: field.into(),
                message: message.clone(),
            }],
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!("{field}: {message}"),
            )
        }
    }

    /// Adds a member to the problem document.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn too_many_attempts(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", detail)
        }
    }

    /// The same error, telling the client when to try again.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// 422 `amount_overflow`: a sum of money does not fit in 64-bit minor units. Never
    /// saturated or wrapped: a wrong figure is worse than none.
    pub fn amount_overflow(what: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_overflow",
            format!("{what} does not fit in 64-bit minor units"),
        )
    }

    /// [`ApiError::amount_overflow`] from a typed overflow, with its own words.
    pub fn amount_overflow_of(e: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_overflow",
            e.to_string(),
        )
    }

    /// 429 `rate_limited`: one client address asked too often or holds too much.
    pub fn rate_limited(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail)
        }
    }

    /// 503 `busy`: a bounded resource of the node (password hashing) is all in use.
    pub fn busy(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError::unavailable("busy", detail.into(), retry_after_secs)
    }

    /// 409: the request conflicts with the state of what it names (`code` says how).
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, detail)
    }

    /// 409 `out_of_stock` for one product, with the figures a client shows.
    pub fn out_of_stock(product_id: &str, requested: u64, available: u64) -> Self {
        ApiError::conflict(
            "out_of_stock",
            format!("only {available} of {product_id} available, {requested} wanted"),
        )
        .with("product_id", json!(product_id))
        .with("requested", json!(requested))
        .with("available", json!(available))
    }

    /// 404 `not_clustered`: a cluster route on a node that runs alone.
    pub fn not_clustered(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_clustered", detail)
    }

    /// 401 `invalid_credentials`: the email or the password is wrong (never which).
    pub fn invalid_credentials() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "email or password is wrong",
        )
    }

    /// 429 `too_many_pending_checkouts`: the customer already runs `max` checkouts.
    pub fn too_many_pending_checkouts(max: usize) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_pending_checkouts",
            format!(
                "at most {max} checkouts of one customer may run at once; wait for one to finish"
            ),
        )
        .retry_after(1)
    }

    /// 503 `checkout_interrupted`: the checkout's task ended before it answered.
    pub fn checkout_interrupted() -> Self {
        ApiError::unavailable(
            "checkout_interrupted",
            "the checkout stopped before it answered; retry with the same Idempotency-Key".into(),
            1,
        )
    }

    /// 400 `malformed_json` (and `bad_request` for a body that could not be read).
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 415 `unsupported_media_type`: a body that is not `application/json`.
    pub fn not_json() -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        )
    }

    /// 413 `payload_too_large`.
    pub fn too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body exceeds the size limit",
        )
    }

    /// 422 `validation_failed` at `field` (a path into the body), with serde's words.
    pub fn invalid_body(field: String, message: String) -> Self {
        ApiError {
            errors: vec![FieldError {
                field: field.clone(),
                message: message.clone(),
            }],
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!("{field}: {message}"),
            )
        }
    }

    /// 409 `illegal_transition`: an order in status `from` cannot become `to`.
    pub fn illegal_transition(from: &str, to: &str) -> Self {
        ApiError::new(
            StatusCode::CONFLICT,
            "illegal_transition",
            format!("a {from} order cannot become {to}"),
        )
        .with("status", json!(from))
    }

    fn unavailable(code: &'static str, detail: String, retry_after: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after.max(1)),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.detail
        )
    }
}

/// The shape of every error response (RFC 9457), for the API document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ProblemSchema {
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// Stable and machine-readable, e.g. `out_of_stock`.
    code: String,
    errors: Option<Vec<FieldError>>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = Problem {
            kind: format!(
                "https://ecommesh.dev/problems/{}",
                self.code.replace('_', "-")
            ),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
            extensions: &self.extensions,
        };
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(secs) = self.retry_after_secs {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

impl<R: Rejection> From<EntityError<R>> for ApiError {
    fn from(e: EntityError<R>) -> Self {
        match e {
            EntityError::Rejected(r) => {
                let status = match r.kind() {
                    RejectionKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                    RejectionKind::NotFound => StatusCode::NOT_FOUND,
                    RejectionKind::Conflict => StatusCode::CONFLICT,
                };
                ApiError::new(status, r.code(), r.to_string())
            }
            EntityError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            EntityError::Crashed { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "entity_crashed",
                e.to_string(),
            ),
            EntityError::Quarantined { retry_after, .. } => ApiError::unavailable(
                "entity_quarantined",
                e.to_string(),
                retry_after.as_secs_f64().ceil() as u64,
            ),
            EntityError::Overloaded { retry_after, .. } => {
                ApiError::unavailable("overloaded", e.to_string(), retry_after.as_secs())
            }
            EntityError::Unavailable => ApiError::unavailable("unavailable", e.to_string(), 1),
            // A shard without a leader (or one that lost it mid-write): retry shortly; a
            // write that got this may or may not have been made, so retry idempotently.
            EntityError::Storage(StoreError::Unavailable { .. }) => ApiError::unavailable(
                "shard_unavailable",
                format!("{e}; retry shortly (a write that got this may or may not have been made)"),
                1,
            ),
            EntityError::Storage(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_error",
                "the write could not be made durable",
            ),
        }
    }
}

impl From<StepError> for ApiError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::Cart(e) => e.into(),
            StepError::Product(e) => e.into(),
            StepError::Order(e) => e.into(),
            StepError::Payment(e) => e.into(),
            StepError::Storage(e) => EntityError::<OrderRejection>::Storage(e).into(),
        }
    }
}

impl From<SettleError> for ApiError {
    fn from(e: SettleError) -> Self {
        match e {
            SettleError::Step(e) => e.into(),
            SettleError::Refund(e) => {
                ApiError::unavailable("payment_unavailable", e.to_string(), 5)
            }
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::Illegal { from } => ApiError::illegal_transition(&from, "cancelled"),
            CancelError::Step(e) => e.into(),
            CancelError::Settle(e) => e.into(),
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        let detail = e.to_string();
        match e {
            CheckoutError::CartEmpty => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "cart_empty", detail)
            }
            CheckoutError::OutOfStock { lines } => {
                ApiError::new(StatusCode::CONFLICT, "out_of_stock", detail).with(
                    "lines",
                    json!(lines
                        .iter()
                        .map(|l| json!({"product_id": l.product_id, "requested": l.requested, "available": l.available}))
                        .collect::<Vec<_>>()),
                )
            }
            CheckoutError::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different checkout request",
            ),
            CheckoutError::InProgress { order_id } => ApiError::new(
                StatusCode::CONFLICT,
                "checkout_in_progress",
                "a checkout with this Idempotency-Key is still running; retry shortly",
            )
            .with("order_id", json!(order_id)),
            CheckoutError::PaymentDeclined { order_id, code } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "payment_declined", detail)
                    .with("decline_code", json!(code))
                    .with("order_id", json!(order_id))
            }
            CheckoutError::Cancelled { order_id, .. } => {
                ApiError::new(StatusCode::CONFLICT, "order_cancelled", detail)
                    .with("order_id", json!(order_id))
            }
            CheckoutError::Charge(ProviderError::InvalidToken(_)) => {
                ApiError::invalid_field("payment.token", detail)
            }
            CheckoutError::Charge(ProviderError::Unavailable(_)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "payment_unavailable",
                detail,
            ),
            CheckoutError::Step(e) => e.into(),
            CheckoutError::Settle(e) => e.into(),
        }
    }
}

/// Turns query parameters that do not parse into a 422 problem naming the parameter.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    let detail = format!("invalid query parameters: {err}");
    ApiError {
        errors: vec![FieldError {
            field: "query".into(),
            message: err.to_string(),
        }],
        ..ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        )
    }
    .into()
}

/// Turns a path that does not parse into a 404 problem.
pub fn path_error(
    err: actix_web::error::PathError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::not_found(err.to_string()).into()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::body::MessageBody;
    use ecommesh_commerce::cart::CartRejection;
    use ecommesh_persistence::StoreError;

    use super::*;

    fn render(e: EntityError<CartRejection>) -> (u16, Option<String>, serde_json::Value) {
        let res = ApiError::from(e).error_response();
        let retry = res
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
        let status = res.status().as_u16();
        let body = res.into_body().try_into_bytes().unwrap();
        (status, retry, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn overload_and_quarantine_say_when_to_retry() {
        let (s, retry, body) = render(EntityError::Overloaded {
            shard: 3,
            retry_after: Duration::from_secs(1),
        });
        assert_eq!(
            (s, retry.as_deref(), body["code"].as_str()),
            (503, Some("1"), Some("overloaded"))
        );
        let q = EntityError::Quarantined {
            entity: "cart/x".into(),
            retry_after: Duration::from_millis(2500),
        };
        let (s, retry, body) = render(q);
        assert_eq!(
            (s, retry.as_deref(), body["code"].as_str()),
            (503, Some("3"), Some("entity_quarantined"))
        );
    }

    #[test]
    fn rejections_map_by_kind() {
        let invalid = CartRejection::InvalidQuantity {
            quantity: 0,
            max: 999,
        };
        assert_eq!(render(EntityError::Rejected(invalid)).0, 422);
        assert_eq!(
            render(EntityError::Rejected(CartRejection::NotInCart {
                product_id: "p".into()
            }))
            .0,
            404
        );
        let (s, _, body) = render(EntityError::Rejected(CartRejection::TooManyLines));
        assert_eq!((s, body["code"].as_str()), (409, Some("cart_limit")));
        let conflict = EntityError::Conflict {
            entity: "cart/x".into(),
            expected: 1,
            actual: 2,
        };
        assert_eq!(render(conflict).2["code"], "conflict");
    }

    #[test]
    fn server_failures_do_not_leak_internals() {
        let (s, _, body) = render(EntityError::Storage(StoreError::Storage(
            "/var/lib/secret: EIO".into(),
        )));
        assert_eq!((s, body["code"].as_str()), (500, Some("storage_error")));
        assert!(!body.to_string().contains("secret"), "{body}");
        let (s, _, body) = render(EntityError::Crashed {
            entity: "cart/x".into(),
        });
        assert_eq!((s, body["code"].as_str()), (500, Some("entity_crashed")));
        assert_eq!(render(EntityError::Unavailable).0, 503);
    }
}
