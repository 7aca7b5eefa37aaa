//! Health checks for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;

use super::response::json_bytes;
use super::state::AppState;

/// The body of the health checks.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HealthStatus {
    /// `ok` (live), `ready` or `unavailable` (ready).
    pub status: String,
    /// Why the server is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /healthz/live`: the process serves HTTP. Also the benchmark baseline: the cheapest
/// request this binary answers.
#[utoipa::path(get, path = "/healthz/live", tag = "Health",
    responses((status = 200, description = "The process serves HTTP.", body = HealthStatus)))]
pub async fn live() -> Response {
    json_bytes(
        StatusCode::OK,
        Bytes::from_static(br#"{"status":"ok"}"#),
        "no-store",
    )
}

/// `GET /healthz/ready`: the last background refresh worked. The hot path keeps working
/// without it; this tells a load balancer that changes are not arriving.
#[utoipa::path(get, path = "/healthz/ready", tag = "Health",
    responses(
        (status = 200, description = "Ready: the last background refresh worked.", body = HealthStatus),
        (status = 503, description = "Not ready: serving the last known state.", body = HealthStatus),
    ))]
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
