//! Health checks for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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

/// `GET /healthz/ready`: the server has its state, its last check of the database worked,
/// and it is not shutting down. Tokens keep being issued from memory while the database
/// is down; this tells a load balancer that changes are not arriving, or to move traffic
/// away before the process stops.
#[utoipa::path(get, path = "/healthz/ready", tag = "Health",
    responses(
        (status = 200, description = "Ready.", body = HealthStatus),
        (status = 503, description = "Not ready: shutting down, or the database is unreachable (serving the last known state).", body = HealthStatus),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.health.readiness() {
        Ok(()) => json_bytes(
            StatusCode::OK,
            Bytes::from_static(br#"{"status":"ready"}"#),
            "no-store",
        ),
        Err(reason) => unavailable(reason),
    }
}

/// The 503 readiness answer.
fn unavailable(reason: &str) -> Response {
    let body = serde_json::to_vec(&HealthStatus {
        status: "unavailable".into(),
        reason: Some(reason.into()),
    })
    .expect("serializable");
    json_bytes(
        StatusCode::SERVICE_UNAVAILABLE,
        Bytes::from(body),
        "no-store",
    )
}

/// What a server still waiting for its database at start answers: alive, not ready, and
/// 503 for everything else, so an orchestrator neither kills it nor sends it traffic.
pub fn starting_router() -> axum::Router {
    const REASON: &str = "starting: waiting for the database";
    axum::Router::new()
        .route("/healthz/live", axum::routing::get(live))
        .route(
            "/healthz/ready",
            axum::routing::get(|| async { unavailable(REASON) }),
        )
        .fallback(|| async { super::error::ApiError::Unavailable(REASON).into_response() })
}
