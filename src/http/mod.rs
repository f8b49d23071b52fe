//! The HTTP surface: operability endpoints, the cart routes, error mapping and the
//! request-metrics middleware.

pub mod auth;
pub mod carts;
pub mod checkout;
pub mod client_ip;
pub mod cluster;
pub mod errors;
pub mod json;
pub mod live;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod products;
pub mod ui;

use std::time::Instant;

use actix_web::dev::Service;
use actix_web::{web, HttpResponse};

use crate::app::AppState;
use errors::ApiError;

/// Registers every route on an actix-web app; used by the server and by request tests.
pub fn configure(
    node: web::Data<AppState>,
    max_body_bytes: usize,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(node)
            .app_data(web::PayloadConfig::new(max_body_bytes))
            .app_data(web::PathConfig::default().error_handler(errors::path_error))
            .app_data(web::QueryConfig::default().error_handler(errors::query_error))
            .route("/healthz", web::get().to(ops::healthz))
            .route("/readyz", web::get().to(ops::readyz))
            .route("/metrics", web::get().to(ops::metrics))
            .route("/api/v1/openapi.json", web::get().to(openapi::serve))
            .route("/api/v1/ws", web::get().to(live::connect))
            // Routes are tried in order, a pattern with a `{param}` by a regex: the busiest
            // come first (the UI's `/assets/{path}` after the API, which it cannot match).
            .service(
                web::scope("/api/v1")
                    .configure(carts::routes)
                    .configure(products::routes)
                    .configure(crate::http::checkout::routes)
                    .configure(orders::routes)
                    .configure(crate::http::auth::routes)
                    .configure(cluster::routes),
            )
            .configure(ui::routes)
            .default_service(web::to(not_found));
    }
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Counts requests and times them, labelled by route pattern (not raw path, which would
/// make one series per id) and by method (one outside the standard set counts as `OTHER`:
/// a client must not be able to make new series).
pub fn request_metrics<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>
where
    S: Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    let started = Instant::now();
    let method = method_label(req.method());
    let fut = srv.call(req);
    async move {
        let res = fut.await?;
        // Asked after routing: the router's match is reused (asked before, it matched the
        // path against every route's regex again: ~1.5% of the CPU of a durable write).
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let code = res.status().as_u16();
        let elapsed = started.elapsed();
        // The one place requests are logged: server errors loudly, the rest at debug.
        let elapsed_us = elapsed.as_micros() as u64;
        if code >= 500 {
            tracing::warn!(method, route, status = code, elapsed_us, "request failed");
        } else {
            tracing::debug!(method, route, status = code, elapsed_us, "request");
        }
        RequestMetrics::with(method, route, code, |m| {
            m.requests.increment(1);
            m.duration.record(elapsed.as_secs_f64());
        });
        Ok(res)
    }
}

fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The handles of one method, route and status, kept per worker thread: looking them up
/// in the recorder by name and labels took ~1 us a request (labels built and hashed).
struct RequestMetrics {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

type RequestKey = (&'static str, String, u16);

impl RequestMetrics {
    fn with(method: &'static str, route: String, status: u16, f: impl FnOnce(&RequestMetrics)) {
        thread_local! {
            static KNOWN: std::cell::RefCell<std::collections::HashMap<RequestKey, RequestMetrics>> =
                Default::default();
        }
        KNOWN.with_borrow_mut(|known| {
            let key = (method, route, status);
            if let Some(m) = known.get(&key) {
                return f(m);
            }
            let (method, route, status) = key;
            let m = RequestMetrics {
                requests: metrics::counter!("ecommesh_http_requests_total", "method" => method, "route" => route.clone(), "status" => status.to_string()),
                duration: metrics::histogram!("ecommesh_http_request_duration_seconds", "route" => route.clone()),
            };
            f(&m);
            known.insert((method, route, status), m);
        })
    }
}
