//! The MoneyKit-compatible token surface: `POST /auth/token` and `GET /auth/introspect`.
//! Thin: parse, call the grant engine, shape the response.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use moneykit_wire::{AppClientResponse, ErrorBody, GenerateAccessTokenResponse, TokenForm};

use super::error::ApiError;
use super::extract::{
    AuthenticatedForm, DpopProofHeader, FormRequest, MoneyKitVersion, MoneyKitVersionHeader,
    PresentedToken, Source,
};
use super::response::{json_bytes, token_response};
use super::state::AppState;
use crate::engine::client_auth::{self, Failure};

/// `POST /auth/token`: client credentials (a secret or a client assertion) or a federated
/// workload's platform token in, a bearer token out, with **201 Created** because that is
/// the only status the official MoneyKit SDKs deserialize.
#[utoipa::path(
    post, path = "/auth/token", tag = "MoneyKit",
    params(MoneyKitVersionHeader, DpopProofHeader),
    request_body(content = Option<TokenForm>, content_type = "application/x-www-form-urlencoded",
        description = "Client credentials in the body or as HTTP Basic (form-urlencoded first, RFC 6749 §2.3.1); a Basic header with an empty id and secret (`Basic Og==`, which generated SDKs send when unset) counts as none. A `private_key_jwt` client sends `client_assertion_type` and `client_assertion` instead (RFC 7523 §2.2). A federated workload sends `grant_type` `urn:ietf:params:oauth:grant-type:jwt-bearer` with `assertion`, or `urn:ietf:params:oauth:grant-type:token-exchange` with `subject_token` and `subject_token_type` `urn:ietf:params:oauth:token-type:jwt` (RFC 8693; the answer then has `issued_token_type`). Absent `grant_type` means `client_credentials`; absent or empty `scope` means everything the client is allowed. `resource` (repeatable, RFC 8707) or `audience` (space-separated) picks the token's `aud` among the client's audiences; absent means the client's default."),
    responses(
        (status = 201, description = "A new access token. 201, not 200: the official MoneyKit SDKs only accept 201. `token_type` is `bearer`, or `DPoP` for a token bound to the key of the request's DPoP proof (claim `cnf.jkt`); a token requested over a connection with a client certificate is bound to it (claim `cnf.x5t#S256`, RFC 8705).", body = GenerateAccessTokenResponse),
        (status = 400, description = "`unsupported_grant_type`, `invalid_scope`, `invalid_target` (a `resource` or `audience` the client may not ask for, RFC 8707), an unsupported `MoneyKit-Version`; for a federated grant `invalid_grant` (no trust rule accepts the platform token; the description names the check) or `invalid_request` (a malformed federated request); `invalid_dpop_proof` (a DPoP proof refused — the description names the check — or missing for a client that requires one) or `use_dpop_nonce` (with `--dpop-nonce`: retry with the nonce of the `DPoP-Nonce` header).", body = ErrorBody),
        (status = 401, description = "`invalid_client`: missing, unknown or disabled client, wrong secret, conflicting credentials, a refused client assertion (the description names the check), or a client certificate that does not authenticate the client (`tls_client_auth`, `self_signed_tls_client_auth`).", body = ErrorBody),
        (status = 503, description = "A client assertion's use could not be recorded (PostgreSQL unreachable); retry.", body = ErrorBody),
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
    let form = AuthenticatedForm::parse_from(
        &request.headers,
        &request.body,
        TokenForm::FIELDS,
        false,
        request.source,
    )?
    .with_certificate(request.certificate.as_ref().map(|c| c.0.as_ref()));
    let (issued, nonce) = state
        .issue_token(&form, &request.headers, request.source, "/auth/token")
        .await?;
    Ok(token_response(
        StatusCode::CREATED,
        &issued,
        "bearer",
        nonce,
    ))
}

/// `GET /auth/introspect`: the client and app behind the bearer token.
#[utoipa::path(
    get, path = "/auth/introspect", tag = "MoneyKit",
    params(MoneyKitVersionHeader, DpopProofHeader),
    responses(
        (status = 200, description = "The client the token was issued to, and its app.", body = AppClientResponse),
        (status = 400, description = "Unsupported `MoneyKit-Version`.", body = ErrorBody),
        (status = 401, description = "`api_error.auth.expired_access_token` for an expired token; `api_error.auth.unauthorized` for a missing, malformed, forged or revoked token, or one of a disabled client. A DPoP-bound token must come as `Authorization: DPoP <token>` with a proof of its key carrying `ath`; otherwise 401 with `WWW-Authenticate: DPoP` and `error` `invalid_token` (as a bearer token, or an unbound token under the DPoP scheme) or `invalid_dpop_proof`. A certificate-bound token must come over a connection presenting its certificate.", body = ErrorBody),
    ),
    security(("OAuth2ClientCredentials" = [])),
)]
#[tracing::instrument(name = "auth.introspect", level = "debug", skip_all)]
pub async fn introspect(
    State(state): State<AppState>,
    _version: MoneyKitVersion,
    Source(source): Source,
    presented: Result<PresentedToken, ApiError>,
) -> Result<Response, ApiError> {
    let refused = |failure| client_auth::log_failure(None, failure, source, false);
    let presented = match presented {
        Ok(presented) => presented,
        Err(error) => {
            refused(match error {
                ApiError::MissingToken => Failure::MissingToken,
                _ => Failure::Malformed,
            });
            return Err(error);
        }
    };
    let body = state
        .authorize_presented(
            &presented,
            "GET",
            "/auth/introspect",
            source,
            |authorized| authorized.client.introspection_json().clone(),
        )
        .await?;
    Ok(json_bytes(StatusCode::OK, body, "no-store"))
}
