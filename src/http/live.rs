//! `GET /api/v1/ws`: the websocket upgrade. The connection itself (protocol,
//! subscriptions, buffers) is `crate::live::socket`'s.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::http::errors::ApiError;

/// Largest message a client may send; every valid one is far smaller.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// `GET /api/v1/ws`: upgrades to a websocket speaking the protocol in `docs/websocket.md`.
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    node: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let ip = node.client_ip.of(&req);
    let settings = node.live_settings;
    // Refused before the upgrade: no task, no buffer, no hub state for it.
    let Some(slot) = node
        .live
        .clients
        .connect(ip, settings.max_connections_per_ip)
    else {
        metrics::counter!("ecommesh_ws_refused_total", "reason" => "connections_per_ip")
            .increment(1);
        return Err(ApiError::rate_limited(
            format!(
                "at most {} websockets at once from one address",
                settings.max_connections_per_ip
            ),
            5,
        )
        .into());
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .aggregate_continuations()
        .max_continuation_size(MAX_CLIENT_MESSAGE);
    crate::live::socket::spawn(node, slot, session, stream);
    Ok(response)
}
