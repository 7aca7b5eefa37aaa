//! Health checks for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;

use super::auth::json_bytes;
use crate::state::AppState;

/// `GET /healthz/live`: the process serves HTTP. Also the benchmark baseline: the cheapest
/// request this binary answers.
pub async fn live() -> Response {
    json_bytes(
        StatusCode::OK,
        Bytes::from_static(br#"{"status":"ok"}"#),
        "no-store",
    )
}

/// `GET /healthz/ready`: the last background refresh worked. The hot path keeps working
/// without it; this tells a load balancer that changes are not arriving.
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.health.store_reachable() {
        json_bytes(
            StatusCode::OK,
            Bytes::from_static(br#"{"status":"ready"}"#),
            "no-store",
        )
    } else {
        json_bytes(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(br#"{"status":"unavailable","reason":"state refresh failing; serving the last known state"}"#),
            "no-store",
        )
    }
}
