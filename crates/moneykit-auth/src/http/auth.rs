//! The MoneyKit-compatible token surface: `POST /auth/token` and `GET /auth/introspect`
//! (PRODUCT.md §2). Thin: parse, call the grant engine, shape the response.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moneykit_wire::{AppClientResponse, ErrorBody, GenerateAccessTokenResponse, TokenForm};
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::{AuthenticatedForm, Bearer, FormRequest, MoneyKitVersion, TOKEN_FIELDS};
use super::openapi::MoneyKitVersionHeader;
use crate::domain::grant::IssuedToken;
use crate::json::push_str;
use crate::state::AppState;

/// Headers RFC 6749 §5.1 requires on every response that carries a token.
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Runs the client-credentials grant for a parsed request and counts the token: what
/// both token endpoints share before shaping their own response.
pub fn issue_token(
    state: &AppState,
    form: &AuthenticatedForm<'_>,
    source: Option<std::net::IpAddr>,
) -> Result<IssuedToken, ApiError> {
    let snapshot = state.snapshot();
    let issued = state
        .engine(&snapshot)
        .from_source(source)
        .client_credentials(&form.as_grant_request(), OffsetDateTime::now_utc())
        .map_err(|e| ApiError::from_grant(e, form.used_basic()))?;
    state.metrics.tokens_issued.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(client_id = %issued.claims.client_id, "issued token");
    Ok(issued)
}

/// The token response body (`GenerateAccessTokenResponse`), written directly: the same
/// bytes serde writes, without its cost on every issued token.
pub fn token_response(status: StatusCode, issued: &IssuedToken, token_type: &str) -> Response {
    let mut body = String::with_capacity(issued.access_token.len() + issued.scope.len() + 80);
    body.push_str("{\"access_token\":");
    push_str(&mut body, &issued.access_token);
    body.push_str(",\"token_type\":");
    push_str(&mut body, token_type);
    body.push_str(&format!(",\"expires_in\":{},\"scope\":", issued.expires_in));
    push_str(&mut body, &issued.scope);
    body.push('}');
    let mut response = json_bytes(status, Bytes::from(body), "no-store");
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /auth/token`: client credentials in, a bearer token out, with **201 Created**
/// because that is the only status the official MoneyKit SDKs deserialize.
#[utoipa::path(
    post, path = "/auth/token", tag = "MoneyKit",
    params(MoneyKitVersionHeader),
    request_body(content = Option<TokenForm>, content_type = "application/x-www-form-urlencoded",
        description = "Client credentials in the body or as HTTP Basic (form-urlencoded first, RFC 6749 §2.3.1); a Basic header with an empty id and secret (`Basic Og==`, which generated SDKs send when unset) counts as none. Absent `grant_type` means `client_credentials`; absent or empty `scope` means everything the client is allowed. `resource` (repeatable, RFC 8707) or `audience` (space-separated) picks the token's `aud` among the client's audiences; absent means the client's default."),
    responses(
        (status = 201, description = "A new access token. 201, not 200: the official MoneyKit SDKs only accept 201.", body = GenerateAccessTokenResponse),
        (status = 400, description = "`unsupported_grant_type`, `invalid_scope`, `invalid_target` (a `resource` or `audience` the client may not ask for, RFC 8707), or an unsupported `MoneyKit-Version`.", body = ErrorBody),
        (status = 401, description = "`invalid_client`: missing, unknown or disabled client, wrong secret, or conflicting credentials.", body = ErrorBody),
        (status = 429, description = "`api_error.rate_limit_exceeded`: too many tokens for this client, or too many failed authentications from this address or for this client id; `Retry-After` says when to try again.", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 422, description = "Malformed body, wrong content type, repeated parameter.", body = ErrorBody),
    ),
    security((), ("HTTPBasic" = [])),
)]
#[tracing::instrument(name = "auth.token", level = "debug", skip_all)]
pub async fn token(
    State(state): State<AppState>,
    _version: MoneyKitVersion,
    request: FormRequest,
) -> Result<Response, ApiError> {
    let form = AuthenticatedForm::parse(&request.headers, &request.body, TOKEN_FIELDS)?;
    let issued = issue_token(&state, &form, request.source)?;
    Ok(token_response(StatusCode::CREATED, &issued, "bearer"))
}

/// `GET /auth/introspect`: the client and app behind the bearer token.
#[utoipa::path(
    get, path = "/auth/introspect", tag = "MoneyKit",
    params(MoneyKitVersionHeader),
    responses(
        (status = 200, description = "The client the token was issued to, and its app.", body = AppClientResponse),
        (status = 400, description = "Unsupported `MoneyKit-Version`.", body = ErrorBody),
        (status = 401, description = "`api_error.auth.expired_access_token` for an expired token; `api_error.auth.unauthorized` for a missing, malformed, forged or revoked token, or one of a disabled client.", body = ErrorBody),
    ),
    security(("OAuth2ClientCredentials" = [])),
)]
#[tracing::instrument(name = "auth.introspect", level = "debug", skip_all)]
pub async fn introspect(
    State(state): State<AppState>,
    _version: MoneyKitVersion,
    Bearer(token): Bearer,
) -> Result<Response, ApiError> {
    let snapshot = state.snapshot();
    let authorized = state
        .engine(&snapshot)
        .authorize_bearer(&token, OffsetDateTime::now_utc())?;
    Ok(json_bytes(
        StatusCode::OK,
        authorized.client.introspection_json().clone(),
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
