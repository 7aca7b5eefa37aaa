//! `ApiError`: every way a request can fail, and the one place that turns a failure into
//! a status, headers and a body.
//!
//! Every error body carries the MoneyKit fields (`error_code`, `error_message`,
//! `documentation_url`) and, where RFC 6749 / RFC 6750 define one, the standard `error` /
//! `error_description`, so both the official SDKs and generic OAuth 2.0 clients can read
//! it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moneykit_wire::{ErrorBody, ValidationError};

use crate::engine::GrantError;
use crate::engine::grant::BearerError;
use crate::operations::AdminError;
use crate::store::StoreError;

/// Where error codes are documented; each code's anchor is appended.
pub const ERRORS_DOC: &str =
    "https://github.com/moneykit-auth/moneykit-auth/blob/main/docs/ERRORS.md";

/// How long a client refused for its app's webhook backlog is told to wait: events leave
/// the backlog as the endpoint takes them, which no one can predict.
pub const WEBHOOK_BACKLOG_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A failed request.
#[derive(Debug)]
pub enum ApiError {
    /// Client authentication failed (401 `invalid_client`); `basic` when the client used
    /// HTTP Basic, which earns a `WWW-Authenticate: Basic` challenge.
    InvalidClient {
        /// Whether HTTP Basic was used.
        basic: bool,
    },
    /// A client assertion that was refused (401 `invalid_client`), with the check that
    /// failed.
    InvalidClientAssertion(String),
    /// A federated grant no trust rule accepts (400 `invalid_grant`), with why.
    InvalidGrant(String),
    /// A grant type this server does not support (400).
    UnsupportedGrantType(String),
    /// A scope that is malformed or not allowed (400).
    InvalidScope(String),
    /// An audience (`resource`, `audience`) the client may not ask for (400, RFC 8707).
    InvalidTarget(String),
    /// A malformed request (422 on the MoneyKit surface).
    Validation(Vec<ValidationError>),
    /// A malformed request on the standard OAuth 2.0 surface (400 `invalid_request`,
    /// RFC 6749 §5.2).
    InvalidRequest(Vec<ValidationError>),
    /// The client may not do this (400 `unauthorized_client`), e.g. revoke another
    /// client's token.
    UnauthorizedClient(&'static str),
    /// A `MoneyKit-Version` this server does not speak (400).
    UnsupportedVersion(String),
    /// No bearer token was sent (401).
    MissingToken,
    /// The bearer token is malformed, forged, revoked or its client is disabled (401).
    InvalidToken,
    /// The bearer token expired (401 `api_error.auth.expired_access_token`).
    ExpiredToken,
    /// No route for the path (404).
    NotFound,
    /// The path exists but not with this method (405; the router adds `Allow`).
    MethodNotAllowed,
    /// The body is larger than the limit (413).
    PayloadTooLarge,
    /// Headers larger than the limit (431).
    HeadersTooLarge,
    /// The request took longer than the limit (408).
    RequestTimeout,
    /// The app has no webhook URL, so there is nowhere to send an event (400).
    WebhookNotConfigured,
    /// The app has as many pending webhook events as it may have (429, with
    /// `Retry-After` of a minute).
    TooManyPendingWebhooks,
    /// Over a rate limit (429), with when to try again.
    RateLimited(std::time::Duration),
    /// An admin request named an app, client or event that does not exist (404).
    UnknownObject(String),
    /// The admin API caller's token lacks the scope this needs, or it may not give or
    /// take over a scope it lacks (403 `insufficient_scope`, RFC 6750 §3.1), with what
    /// is missing.
    InsufficientScope(String),
    /// The service cannot serve this now (503), with the reason.
    Unavailable(&'static str),
    /// A bug or an unexpected failure (500); the cause is logged, never sent.
    Internal,
    /// A token request's DPoP proof was refused, or missing where required (400
    /// `invalid_dpop_proof`, RFC 9449 §5), with the check that failed.
    InvalidDpopProof(String),
    /// A token request's DPoP proof lacks the server's nonce (400 `use_dpop_nonce`,
    /// RFC 9449 §8), sent in the `DPoP-Nonce` header.
    UseDpopNonce(String),
    /// At a protected resource, a token refused under the DPoP scheme (RFC 9449 §7.1):
    /// 401 with a `WWW-Authenticate: DPoP` challenge naming `error` (`invalid_token` or
    /// `invalid_dpop_proof`), with why.
    DpopUnauthorized {
        /// The challenge's `error`.
        error: &'static str,
        /// What failed.
        why: String,
    },
}

/// The response header that carries a DPoP nonce (RFC 9449 §8).
pub const DPOP_NONCE: header::HeaderName = header::HeaderName::from_static("dpop-nonce");

/// The `algs` of a `WWW-Authenticate: DPoP` challenge: what proofs may be signed with
/// (`Ed25519` is RFC 9864's name for EdDSA with that curve).
const DPOP_ALGS: &str = "ES256 ES384 EdDSA Ed25519 RS256 PS256";

struct Row {
    status: StatusCode,
    code: &'static str,
    rfc: Option<&'static str>,
}

impl ApiError {
    fn row(&self) -> Row {
        use ApiError::*;
        let (status, code, rfc) = match self {
            InvalidClient { .. } => (
                StatusCode::UNAUTHORIZED,
                "api_error.auth.unauthorized",
                Some("invalid_client"),
            ),
            InvalidClientAssertion(_) => (
                StatusCode::UNAUTHORIZED,
                "api_error.auth.unauthorized",
                Some("invalid_client"),
            ),
            InvalidGrant(_) => (
                StatusCode::BAD_REQUEST,
                "api_error.auth.invalid_grant",
                Some("invalid_grant"),
            ),
            UnsupportedGrantType(_) => (
                StatusCode::BAD_REQUEST,
                "api_error.auth.unsupported_grant_type",
                Some("unsupported_grant_type"),
            ),
            InvalidScope(_) => (
                StatusCode::BAD_REQUEST,
                "api_error.auth.invalid_scope",
                Some("invalid_scope"),
            ),
            InvalidTarget(_) => (
                StatusCode::BAD_REQUEST,
                "api_error.auth.invalid_target",
                Some("invalid_target"),
            ),
            Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "api_error.request.validation_failed",
                Some("invalid_request"),
            ),
            InvalidRequest(_) => (
                StatusCode::BAD_REQUEST,
                "api_error.request.validation_failed",
                Some("invalid_request"),
            ),
            UnauthorizedClient(_) => (
                StatusCode::BAD_REQUEST,
                "api_error.auth.unauthorized_client",
                Some("unauthorized_client"),
            ),
            UnsupportedVersion(_) => (
                StatusCode::BAD_REQUEST,
                "api_error.request.unsupported_version",
                Some("invalid_request"),
            ),
            MissingToken | InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "api_error.auth.unauthorized",
                Some("invalid_token"),
            ),
            ExpiredToken => (
                StatusCode::UNAUTHORIZED,
                "api_error.auth.expired_access_token",
                Some("invalid_token"),
            ),
            NotFound => (StatusCode::NOT_FOUND, "api_error.request.not_found", None),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "api_error.request.method_not_allowed",
                None,
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "api_error.request.body_too_large",
                Some("invalid_request"),
            ),
            HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "api_error.request.headers_too_large",
                Some("invalid_request"),
            ),
            RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "api_error.request.timeout",
                Some("invalid_request"),
            ),
            UnknownObject(_) => (StatusCode::NOT_FOUND, "api_error.admin.not_found", None),
            InsufficientScope(_) => (
                StatusCode::FORBIDDEN,
                "api_error.admin.insufficient_scope",
                Some("insufficient_scope"),
            ),
            RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "api_error.rate_limit_exceeded",
                None,
            ),
            WebhookNotConfigured => (
                StatusCode::BAD_REQUEST,
                "api_error.webhooks.not_configured",
                None,
            ),
            TooManyPendingWebhooks => (
                StatusCode::TOO_MANY_REQUESTS,
                "api_error.webhooks.too_many_pending",
                None,
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error.service_unavailable",
                Some("temporarily_unavailable"),
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error.internal_server_error",
                Some("server_error"),
            ),
            InvalidDpopProof(_) => (
                StatusCode::BAD_REQUEST,
                "api_error.auth.invalid_dpop_proof",
                Some("invalid_dpop_proof"),
            ),
            UseDpopNonce(_) => (
                StatusCode::BAD_REQUEST,
                "api_error.auth.use_dpop_nonce",
                Some("use_dpop_nonce"),
            ),
            DpopUnauthorized { error, .. } => (
                StatusCode::UNAUTHORIZED,
                "api_error.auth.unauthorized",
                Some(*error),
            ),
        };
        Row { status, code, rfc }
    }

    fn message(&self) -> String {
        use ApiError::*;
        match self {
            InvalidClient { .. } => "Client authentication failed: unknown or disabled client, \
                                     wrong secret, or conflicting credentials"
                .into(),
            InvalidClientAssertion(why) => format!("Client authentication failed: {why}"),
            InvalidGrant(why) => format!("Invalid grant: {why}"),
            UnsupportedGrantType(g) => format!(
                "Unsupported grant_type {g:?}: use client_credentials, or for a federated \
                 workload urn:ietf:params:oauth:grant-type:jwt-bearer or \
                 urn:ietf:params:oauth:grant-type:token-exchange"
            ),
            InvalidScope(why) => format!("Invalid scope: {why}"),
            InvalidTarget(why) => format!("Invalid target: {why}"),
            Validation(errors) | InvalidRequest(errors) => match errors.as_slice() {
                [one] => format!(
                    "The request is malformed: {} ({})",
                    one.message,
                    one.location.join(".")
                ),
                _ => "The request is malformed; see validation_errors".into(),
            },
            UnauthorizedClient(why) => format!("Unauthorized client: {why}"),
            UnsupportedVersion(v) => format!(
                "Unsupported MoneyKit-Version {v:?}; supported versions: {}",
                moneykit_wire::headers::SUPPORTED_VERSIONS.join(", ")
            ),
            MissingToken => "No access token: send Authorization: Bearer <access_token>".into(),
            InvalidToken => "Invalid access token".into(),
            ExpiredToken => "Access token expired".into(),
            NotFound => "No such endpoint".into(),
            MethodNotAllowed => "Method not allowed on this endpoint".into(),
            PayloadTooLarge => "Request body too large".into(),
            HeadersTooLarge => "Request headers too large".into(),
            RequestTimeout => "Request took too long".into(),
            UnknownObject(what) => format!("Not found: {what}"),
            InsufficientScope(what) => what.clone(),
            RateLimited(wait) => format!(
                "Too many requests; try again in {} s",
                retry_after_secs(*wait)
            ),
            WebhookNotConfigured => "The app has no webhook URL; an operator sets one with \
                                     `moneykit-auth apps set-webhook`"
                .into(),
            TooManyPendingWebhooks => format!(
                "The app has too many webhook events waiting for delivery; try again in {} s, \
                 when its endpoint has taken some",
                WEBHOOK_BACKLOG_RETRY_AFTER.as_secs()
            ),
            Unavailable(why) => format!("Service unavailable: {why}"),
            Internal => "Internal server error".into(),
            InvalidDpopProof(why) => why.clone(),
            UseDpopNonce(_) => {
                "The DPoP proof must carry the nonce in the DPoP-Nonce header; retry with it".into()
            }
            DpopUnauthorized { why, .. } => format!("Invalid access token: {why}"),
        }
    }

    /// The error a framework-generated status stands for, used to give responses that
    /// axum or tower-http produced (405, 413, 408 …) the documented JSON body.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadersTooLarge,
            StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable("try again later"),
            s if s.is_client_error() => ApiError::Validation(vec![ValidationError::new(
                &["request"],
                s.canonical_reason().unwrap_or("bad request"),
                "value_error",
            )]),
            _ => ApiError::Internal,
        }
    }

    /// The body this error is sent with.
    pub fn body(&self) -> ErrorBody {
        let row = self.row();
        let message = self.message();
        ErrorBody {
            error_code: row.code.to_owned(),
            documentation_url: Some(format!("{ERRORS_DOC}#{}", row.code.replace('.', ""))),
            error: row.rfc.map(str::to_owned),
            error_description: row.rfc.map(|_| message.clone()),
            validation_errors: match self {
                ApiError::Validation(errors) | ApiError::InvalidRequest(errors) => {
                    Some(errors.clone())
                }
                _ => None,
            },
            error_message: message,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.row().status
    }
}

/// Whole seconds to wait, at least 1 (`Retry-After` has no fractions).
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).expect("serializable");
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let challenge = match &self {
            ApiError::InvalidClient { basic: true } => Some(r#"Basic realm="moneykit-auth""#),
            ApiError::MissingToken => Some(r#"Bearer realm="moneykit-auth""#),
            ApiError::InvalidToken => {
                Some(r#"Bearer realm="moneykit-auth", error="invalid_token""#)
            }
            ApiError::ExpiredToken => Some(
                r#"Bearer realm="moneykit-auth", error="invalid_token", error_description="The access token expired""#,
            ),
            _ => None,
        };
        if let Some(challenge) = challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        match &self {
            ApiError::DpopUnauthorized { error, .. } => {
                let challenge = format!(r#"DPoP algs="{DPOP_ALGS}", error="{error}""#);
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ApiError::InsufficientScope(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer realm="moneykit-auth", error="insufficient_scope""#,
                    ),
                );
            }
            ApiError::UseDpopNonce(nonce) => {
                if let Ok(value) = HeaderValue::from_str(nonce) {
                    headers.insert(DPOP_NONCE, value);
                }
            }
            _ => {}
        }
        let retry_after = match &self {
            ApiError::RateLimited(wait) => Some(*wait),
            ApiError::TooManyPendingWebhooks => Some(WEBHOOK_BACKLOG_RETRY_AFTER),
            _ => None,
        };
        if let Some(wait) = retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
        }
        response
    }
}

impl ApiError {
    /// The same failure as the standard OAuth 2.0 surface reports it: malformed requests
    /// are 400 `invalid_request` (RFC 6749 §5.2) rather than MoneyKit's 422, and a failed
    /// client authentication always carries the `WWW-Authenticate` challenge.
    pub fn for_oauth2(self) -> Self {
        match self {
            ApiError::Validation(errors) => ApiError::InvalidRequest(errors),
            ApiError::InvalidClient { .. } => ApiError::InvalidClient { basic: true },
            other => other,
        }
    }

    /// A required form parameter is missing (standard surface).
    pub fn missing_parameter(name: &str) -> Self {
        ApiError::InvalidRequest(vec![ValidationError::new(
            &["body", name],
            format!("{name} is required"),
            "value_error.missing",
        )])
    }

    /// A malformed request on the MoneyKit surface (422), with one validation error at
    /// `location`: the one constructor, so every 422 body is built the same way.
    pub(crate) fn validation(location: &[&str], message: impl Into<String>, kind: &str) -> Self {
        ApiError::Validation(vec![ValidationError::new(location, message, kind)])
    }

    /// Maps a grant failure; `basic` says whether the client used HTTP Basic.
    pub fn from_grant(error: GrantError, basic: bool) -> Self {
        match error {
            GrantError::InvalidClient => ApiError::InvalidClient { basic },
            GrantError::InvalidClientAssertion(why) => ApiError::InvalidClientAssertion(why),
            GrantError::InvalidGrant(why) => ApiError::InvalidGrant(why),
            GrantError::InvalidRequest(why) => {
                ApiError::InvalidRequest(vec![ValidationError::new(&["body"], why, "value_error")])
            }
            GrantError::UnsupportedGrantType(g) => ApiError::UnsupportedGrantType(g),
            GrantError::InvalidScope(why) => ApiError::InvalidScope(why),
            GrantError::InvalidTarget(why) => ApiError::InvalidTarget(why),
            GrantError::NoSigningKey => ApiError::Unavailable("no signing key is active"),
            GrantError::RateLimited(wait) => ApiError::RateLimited(wait),
            GrantError::InvalidDpopProof(why) => ApiError::InvalidDpopProof(why),
            GrantError::UseDpopNonce(nonce) => ApiError::UseDpopNonce(nonce),
            GrantError::TokenOfAnotherClient => {
                ApiError::UnauthorizedClient("the token was not issued to this client")
            }
        }
    }
}

impl From<BearerError> for ApiError {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::Expired => ApiError::ExpiredToken,
            BearerError::Invalid => ApiError::InvalidToken,
        }
    }
}

/// An administrative failure as the admin API reports it: unknown objects are 404, bad
/// input 422, and a store failure is logged (never sent) and 503. Kept here, beside the
/// other mappings, so the admin API and the test trigger cannot drift apart.
impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::UnknownApp(_)
            | AdminError::UnknownClient(_)
            | AdminError::UnknownKey(_)
            | AdminError::UnknownEvent(_) => ApiError::UnknownObject(e.to_string()),
            AdminError::Invalid(why) => ApiError::validation(&["body"], why, "value_error"),
            AdminError::Forbidden(why) => ApiError::InsufficientScope(why),
            AdminError::NoWebhookUrl(_) => ApiError::WebhookNotConfigured,
            AdminError::TooManyPending { .. } => ApiError::TooManyPendingWebhooks,
            AdminError::Store(error) => {
                tracing::error!(%error, "admin API: database");
                ApiError::Unavailable("the database cannot be reached")
            }
        }
    }
}

/// A store failure, mapped as [`AdminError`] maps it (an unknown app is a 404).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        AdminError::from(e).into()
    }
}
