//! Discovery: the public keys at `GET /.well-known/jwks.json`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::json_bytes;
use super::error::ApiError;
use super::extract::MoneyKitVersion;
use crate::state::AppState;

/// How long receivers may cache the JWKS. A next key is published at least
/// `--key-activation-delay` (default 10 minutes) before it signs, so 5 minutes of caching
/// never makes a receiver meet an unknown `kid`.
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// `GET /.well-known/jwks.json`: every key that may have signed a token or webhook still
/// in force, and the next key. The SDKs send a bearer token or `X-Client-Id`; neither is
/// required, since public keys are public.
pub async fn jwks(
    State(state): State<AppState>,
    _version: MoneyKitVersion,
) -> Result<Response, ApiError> {
    let body = state.snapshot().jwks_json().clone();
    Ok(json_bytes(StatusCode::OK, body, JWKS_CACHE_CONTROL))
}
