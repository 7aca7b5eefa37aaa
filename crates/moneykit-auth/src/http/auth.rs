//! The MoneyKit-compatible token surface: `POST /auth/token` and `GET /auth/introspect`
//! (PRODUCT.md §2). Thin: parse, call the grant engine, shape the response.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moneykit_wire::GenerateAccessTokenResponse;
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::{MoneyKitVersion, ParsedTokenRequest, bearer_token};
use crate::domain::grant;
use crate::state::AppState;

/// Headers RFC 6749 §5.1 requires on every response that carries a token.
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `POST /auth/token`: client credentials in, a bearer token out, with **201 Created**
/// because that is the only status the official MoneyKit SDKs deserialize.
#[tracing::instrument(name = "auth.token", skip_all)]
pub async fn token(
    State(state): State<AppState>,
    _version: MoneyKitVersion,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = ParsedTokenRequest::parse(&headers, &body)?;
    let snapshot = state.snapshot();
    let issued = grant::client_credentials(
        &snapshot,
        &request.as_grant_request(),
        OffsetDateTime::now_utc(),
    )
    .map_err(|e| ApiError::from_grant(e, request.used_basic()))?;
    state.metrics.tokens_issued.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(client_id = %issued.claims.client_id, "issued token");
    let body = GenerateAccessTokenResponse {
        access_token: issued.access_token,
        token_type: "bearer".into(),
        expires_in: u64::from(issued.expires_in),
        scope: issued.scope.to_string(),
    };
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    no_store(&mut response);
    Ok(response)
}

/// `GET /auth/introspect`: the client and app behind the bearer token.
#[tracing::instrument(name = "auth.introspect", skip_all)]
pub async fn introspect(
    State(state): State<AppState>,
    _version: MoneyKitVersion,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = bearer_token(&headers)?;
    let snapshot = state.snapshot();
    let authorized = grant::authorize_bearer(&snapshot, token, OffsetDateTime::now_utc())?;
    Ok(json_bytes(
        StatusCode::OK,
        authorized.client.introspection_json.clone(),
        "no-store",
    ))
}

/// A response from a body that is already JSON.
pub fn json_bytes(status: StatusCode, body: Bytes, cache_control: &'static str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}
