//! A JSON body extractor whose errors name the offending field by its path
//! (`price.amount`), which actix-web's own `Json` cannot: it reports only a line and column.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::errors::ApiError;

/// A request body parsed as `T`. The size limit is the app's `web::PayloadConfig`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses `bytes` as `T`, or says what is wrong and where.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            ApiError::invalid_body(field, inner.to_string())
        } else {
            ApiError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
            )
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("trailing data after the JSON value: {e}"),
        )
    })?;
    Ok(value)
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json {
                return Err(ApiError::not_json());
            }
            let bytes = body.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large()
                } else {
                    ApiError::bad_request("bad_request", format!("cannot read the body: {e}"))
                }
            })?;
            parse(&bytes).map(Json)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        price: Price,
        lines: Vec<Line>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Price {
        amount: i64,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Line {
        quantity: u32,
    }

    #[test]
    fn errors_name_the_path_of_the_field() {
        let e = parse::<Body>(br#"{"price": {"amount": 1.5}, "lines": []}"#).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.errors[0].field.as_str()),
            (422, "price.amount")
        );
        let e = parse::<Body>(
            br#"{"price": {"amount": 1}, "lines": [{"quantity": 1}, {"quantity": -2}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.errors[0].field, "lines[1].quantity");
        let e = parse::<Body>(br#"{"price": {"amount": 1, "cents": 2}, "lines": []}"#).unwrap_err();
        assert!(e.detail.contains("cents"), "{}", e.detail);
        assert_eq!(
            parse::<Body>(br#"{"price": {"amount": 1}"#)
                .unwrap_err()
                .code,
            "malformed_json"
        );
        assert_eq!(
            parse::<Body>(br#"{"price": {"amount": 1}, "lines": []} x"#)
                .unwrap_err()
                .code,
            "malformed_json"
        );
        assert!(parse::<Body>(br#"{"price": {"amount": 1}, "lines": []}"#).is_ok());
    }
}
