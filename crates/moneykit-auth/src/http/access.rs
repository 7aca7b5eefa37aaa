//! `serve --access-log`: one info line per request, target `access`, for deployments
//! without a proxy that logs requests. Installed only when asked for, so a server without
//! it pays nothing.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use super::extract::ClientAddr;
use super::hygiene::REQUEST_ID;

/// Logs the request once its response is ready: method, path (never the query string,
/// which may carry a token), status, time taken in milliseconds, the client's address
/// and the request id.
pub async fn log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // Cloning a `Uri` shares its bytes; no copy of the path.
    let uri = req.uri().clone();
    let client = req.extensions().get::<ClientAddr>().and_then(|c| c.0);
    let response = next.run(req).await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let request_id = response
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok());
    tracing::info!(
        target: "access",
        method = %method,
        path = %uri.path(),
        status = response.status().as_u16(),
        duration_ms = micros as f64 / 1000.0,
        client = client.map(tracing::field::display),
        request_id = request_id.map(tracing::field::display),
        "access"
    );
    response
}
