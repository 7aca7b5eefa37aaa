//! Discovery: the public keys (`/.well-known/jwks.json`), RFC 8414 metadata
//! (`/.well-known/oauth-authorization-server`) and the OpenAPI document (`/openapi.json`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::extract::{MoneyKitVersion, MoneyKitVersionHeader};
use super::response::json_bytes;
use super::state::AppState;
use moneykit_wire::{AuthorizationServerMetadata, ErrorBody, JwkSet};

/// How long receivers may cache the JWKS. A next key is published at least
/// `--key-activation-delay` (default 10 minutes) before it signs, so 5 minutes of caching
/// never makes a receiver meet an unknown `kid`.
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// `GET /.well-known/jwks.json`: every key that may have signed a token or webhook still
/// in force, and the next key. The SDKs send a bearer token or `X-Client-Id`; neither is
/// required, since public keys are public.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "Discovery",
    params(MoneyKitVersionHeader),
    responses(
        (status = 200, description = "Public ES256 keys: the signer, the next key, and retired keys whose tokens or webhooks may still be valid.", body = JwkSet),
        (status = 400, description = "Unsupported `MoneyKit-Version`.", body = ErrorBody),
    ),
    security((), ("OAuth2ClientCredentials" = [])),
)]
pub async fn jwks(
    State(state): State<AppState>,
    _version: MoneyKitVersion,
) -> Result<Response, ApiError> {
    let body = state.snapshot().jwks_json().clone();
    Ok(json_bytes(StatusCode::OK, body, JWKS_CACHE_CONTROL))
}

/// `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata, so OAuth 2.0
/// libraries can discover the endpoints.
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "Discovery",
    responses((status = 200, description = "RFC 8414 metadata.", body = AuthorizationServerMetadata)),
)]
pub async fn metadata(State(state): State<AppState>) -> Response {
    let body = state.snapshot().metadata_json().clone();
    json_bytes(StatusCode::OK, body, "public, max-age=300")
}

/// `GET /.well-known/oauth-authorization-server/{path}`: the same metadata where RFC 8414
/// §3.1 puts it for an issuer with a path (`https://host/mk` →
/// `https://host/.well-known/oauth-authorization-server/mk`); 404 for any other path.
pub async fn metadata_for_path(
    State(state): State<AppState>,
    Path(issuer_path): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = state.snapshot();
    let issuer = &snapshot.settings.issuer;
    let own_path = issuer
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or("", |(_, path)| path.trim_end_matches('/'));
    if own_path.is_empty() || own_path != issuer_path.trim_end_matches('/') {
        return Err(ApiError::NotFound);
    }
    Ok(json_bytes(
        StatusCode::OK,
        snapshot.metadata_json().clone(),
        "public, max-age=300",
    ))
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "Discovery",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json")),
)]
pub async fn openapi(State(state): State<AppState>) -> Response {
    json_bytes(
        StatusCode::OK,
        state.openapi_json.clone(),
        "public, max-age=300",
    )
}
