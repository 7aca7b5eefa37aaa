//! The standard OAuth 2.0 surface, on the same engine as the MoneyKit
//! paths: `POST /oauth2/token` (RFC 6749 §4.4), `POST /oauth2/introspect` (RFC 7662),
//! `POST /oauth2/revoke` (RFC 7009). Errors follow RFC 6749 §5.2: malformed requests are
//! 400 `invalid_request`, failed client authentication 401 `invalid_client` with a
//! `WWW-Authenticate` challenge.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use moneykit_wire::{
    ClientCredentialsForm, ErrorBody, GenerateAccessTokenResponse, IntrospectionResponse,
    TokenHintForm,
};
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::{AuthenticatedForm, DpopProofHeader, FormRequest, PresentedCertificate};
use super::hygiene::request_id;
use super::response::{no_store, token_response};
use super::state::AppState;
use crate::engine::Engine;
use crate::engine::client_auth::Authenticated;
use crate::engine::revocation;

/// `POST /oauth2/token`: the client-credentials grant for any OAuth 2.0 client library,
/// and the federated grants (jwt-bearer, token exchange) for workloads.
#[utoipa::path(
    post, path = "/oauth2/token", tag = "OAuth 2.0", operation_id = "oauth2_token",
    params(DpopProofHeader),
    request_body(content = ClientCredentialsForm, content_type = "application/x-www-form-urlencoded",
        description = "RFC 6749 §4.4.2. Credentials as HTTP Basic (client_secret_basic), in the body (client_secret_post), or a client assertion (private_key_jwt, RFC 7523 §2.2), one method only (RFC 6749 §2.3); a Basic header with an empty id and secret (`Basic Og==`) counts as none. Federated workloads use `grant_type` `urn:ietf:params:oauth:grant-type:jwt-bearer` (`assertion`, RFC 7523 §2.1) or `urn:ietf:params:oauth:grant-type:token-exchange` (`subject_token`, `subject_token_type` `urn:ietf:params:oauth:token-type:jwt`, RFC 8693; the answer has `issued_token_type`). `resource` (repeatable, RFC 8707) or `audience` (space-separated) picks the token's `aud` among the client's audiences."),
    responses(
        (status = 200, description = "An access token (RFC 6749 §5.1); `token_type` is `Bearer`, or `DPoP` for a token bound to the key of the request's DPoP proof (RFC 9449 §5); a token requested over a connection with a client certificate is bound to it (`cnf.x5t#S256`, RFC 8705 §3).", body = GenerateAccessTokenResponse),
        (status = 400, description = "`invalid_request` (malformed, `grant_type` missing, two authentication methods, or a malformed federated request), `unsupported_grant_type`, `invalid_scope`, `invalid_target` (a `resource` or `audience` the client may not ask for, RFC 8707), or `invalid_grant` (no trust rule accepts the platform token); `invalid_dpop_proof` (a DPoP proof refused — the description names the check — or missing for a client that requires one) or `use_dpop_nonce` (with `--dpop-nonce`: retry with the nonce of the `DPoP-Nonce` header).", body = ErrorBody),
        (status = 401, description = "`invalid_client`, with the failed check named for a refused client assertion; also a client certificate that does not authenticate the client.", body = ErrorBody),
        (status = 503, description = "A client assertion's use could not be recorded (PostgreSQL unreachable); retry.", body = ErrorBody),
        (status = 429, description = "`api_error.rate_limit_exceeded`: too many tokens for this client, or too many failed authentications from this address or for this client id; `Retry-After` says when to try again.", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 413, description = "Body too large.", body = ErrorBody),
    ),
    security((), ("HTTPBasic" = [])),
)]
pub async fn token(
    State(state): State<AppState>,
    FormRequest {
        headers,
        body,
        source,
        certificate,
    }: FormRequest,
) -> Result<Response, ApiError> {
    let form =
        AuthenticatedForm::parse_from(&headers, &body, ClientCredentialsForm::FIELDS, true, source)
            .map_err(ApiError::for_oauth2)?
            .with_certificate(certificate.as_ref().map(|c| c.0.as_ref()));
    if form.field("grant_type").is_none() {
        return Err(ApiError::missing_parameter("grant_type"));
    }
    let (issued, nonce) = state
        .issue_token(&form, &headers, source, "/oauth2/token")
        .await
        .map_err(ApiError::for_oauth2)?;
    Ok(token_response(StatusCode::OK, &issued, "Bearer", nonce))
}

/// Parses a token-hint form and authenticates its caller: the shared first half of
/// introspection and revocation. The `token` parameter is checked by the caller, after
/// the caller's assertion (if it used one) is recorded as used.
fn authenticated_caller<'s, 'b>(
    engine: &Engine<'s>,
    headers: &HeaderMap,
    body: &'b [u8],
    certificate: Option<&'b PresentedCertificate>,
    now: OffsetDateTime,
) -> Result<(Authenticated<'s>, AuthenticatedForm<'b>), ApiError> {
    let form =
        AuthenticatedForm::parse_from(headers, body, TokenHintForm::FIELDS, true, engine.source)
            .map_err(ApiError::for_oauth2)?
            .with_certificate(certificate.map(|c| c.0.as_ref()));
    let caller = engine
        .authenticate(form.credentials().as_ref(), now)
        .map_err(|e| ApiError::from_grant(e, true))?;
    Ok((caller, form))
}

/// The `token` parameter of a token-hint form.
fn token_parameter<'f>(form: &'f AuthenticatedForm<'_>) -> Result<&'f str, ApiError> {
    form.field("token")
        .ok_or_else(|| ApiError::missing_parameter("token"))
}

/// `POST /oauth2/introspect`: RFC 7662 introspection. The caller authenticates as any
/// enabled client (resource servers hold their own) and may introspect any token.
#[utoipa::path(
    post, path = "/oauth2/introspect", tag = "OAuth 2.0", operation_id = "oauth2_introspect",
    request_body(content = TokenHintForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`{\"active\": false}` for anything not currently valid; the token's claims otherwise, with `token_type` `DPoP` and `cnf` for a sender-constrained token.", body = IntrospectionResponse),
        (status = 400, description = "`invalid_request` (no `token`).", body = ErrorBody),
        (status = 401, description = "`invalid_client`: the caller did not authenticate (with a secret or a client assertion; a refused assertion's description names the check).", body = ErrorBody),
        (status = 503, description = "The caller's client assertion could not be recorded as used (PostgreSQL unreachable); retry.", body = ErrorBody),
        (status = 429, description = "`api_error.rate_limit_exceeded`: too many failed authentications from this address or for this client id; `Retry-After` says when to try again.", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 413, description = "Body too large.", body = ErrorBody),
    ),
    security((), ("HTTPBasic" = [])),
)]
pub async fn introspect(
    State(state): State<AppState>,
    FormRequest {
        headers,
        body,
        source,
        certificate,
    }: FormRequest,
) -> Result<Response, ApiError> {
    let now = OffsetDateTime::now_utc();
    let (body, used) = {
        let snapshot = state.snapshot();
        let engine = state.engine(&snapshot).from_source(source);
        let (caller, form) =
            authenticated_caller(&engine, &headers, &body, certificate.as_ref(), now)?;
        let body = token_parameter(&form).map(|token| introspection(&engine, token, now));
        (body, caller.assertion)
    };
    if let Some(used) = &used {
        state
            .record_assertion(used)
            .await
            .map_err(ApiError::for_oauth2)?;
    }
    let body = body?;
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    no_store(&mut response);
    Ok(response)
}

/// The RFC 7662 answer for `token`.
fn introspection(engine: &Engine<'_>, token: &str, now: OffsetDateTime) -> IntrospectionResponse {
    match engine.authorize_bearer(token, now) {
        Ok(authorized) => {
            let claims = authorized.claims;
            let dpop_bound = claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some());
            IntrospectionResponse {
                active: true,
                scope: Some(claims.scope),
                client_id: Some(claims.client_id),
                token_type: Some(if dpop_bound { "DPoP" } else { "Bearer" }.into()),
                exp: Some(claims.exp),
                iat: Some(claims.iat),
                sub: Some(claims.sub),
                iss: Some(claims.iss),
                aud: (!claims.aud.is_empty()).then_some(claims.aud),
                jti: Some(claims.jti),
                app_id: Some(claims.app_id),
                cnf: claims.cnf,
            }
        }
        Err(_) => IntrospectionResponse::default(),
    }
}

/// `POST /oauth2/revoke`: RFC 7009 revocation of one of the caller's own tokens. The
/// revocation is recorded durably before the answer, applied here at once and picked up
/// by every other server within a second.
#[utoipa::path(
    post, path = "/oauth2/revoke", tag = "OAuth 2.0",
    request_body(content = TokenHintForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke (an invalid or expired token: RFC 7009 §2.2). Empty body."),
        (status = 400, description = "`invalid_request` (no `token`) or `unauthorized_client` (the token belongs to another client).", body = ErrorBody),
        (status = 401, description = "`invalid_client` (a secret or a client assertion; a refused assertion's description names the check).", body = ErrorBody),
        (status = 429, description = "`api_error.rate_limit_exceeded`: too many failed authentications from this address or for this client id; `Retry-After` says when to try again.", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 413, description = "Body too large.", body = ErrorBody),
        (status = 503, description = "The revocation could not be recorded; retry.", body = ErrorBody),
    ),
    security((), ("HTTPBasic" = [])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    FormRequest {
        headers,
        body,
        source,
        certificate,
    }: FormRequest,
) -> Result<Response, ApiError> {
    let now = OffsetDateTime::now_utc();
    let (revocation, used) = {
        let snapshot = state.snapshot();
        let engine = state.engine(&snapshot).from_source(source);
        let (caller, form) =
            authenticated_caller(&engine, &headers, &body, certificate.as_ref(), now)?;
        let revocation = token_parameter(&form).and_then(|token| {
            engine
                .revocation_for(caller.entry, token, now)
                .map_err(|e| ApiError::from_grant(e, true))
        });
        (revocation, caller.assertion)
    };
    if let Some(used) = &used {
        state
            .record_assertion(used)
            .await
            .map_err(ApiError::for_oauth2)?;
    }
    let revocation = revocation?;
    if let Some(revoked) = revocation {
        let revoked = revocation::record(state.store.as_ref(), &state.revocations, revoked)
            .await
            .map_err(|error| state.write_failed(&error, "the revocation could not be recorded"))?;
        state.metrics.tokens_revoked.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            request_id = %request_id(&headers),
            client_id = %revoked.client_id,
            jti = %revoked.jti,
            "token revoked"
        );
    }
    let mut response = StatusCode::OK.into_response();
    no_store(&mut response);
    Ok(response)
}
