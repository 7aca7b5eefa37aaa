//! [axum](https://docs.rs/axum) integration (feature `axum`): the [`Authenticated`]
//! extractor, which takes the bearer token of a request and verifies it with the
//! [`AccessTokenVerifier`] in the router's state.
//!
//! Refusals follow RFC 6750 §3: 401 with `WWW-Authenticate: Bearer` when there is no
//! token, 401 with `error="invalid_token"` when it does not verify, and 403 with
//! `error="insufficient_scope"` from [`Authenticated::require_scope`]. The descriptions
//! name only the category (expired, not yet valid, invalid), never what exactly failed.
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use moneykit::AccessTokenVerifier;
//! use moneykit::axum::{AuthRejection, Authenticated};
//! use serde_json::{Value, json};
//!
//! async fn accounts(auth: Authenticated) -> Result<Json<Value>, AuthRejection> {
//!     auth.require_scope("accounts:read")?;
//!     Ok(Json(json!({ "client_id": auth.client_id() })))
//! }
//!
//! # fn app() -> Result<Router, moneykit::ApiError> {
//! let verifier = AccessTokenVerifier::builder("http://127.0.0.1:8080", "https://api.example.com")
//!     .build()?;
//! // Any state works whose `FromRef` gives an `AccessTokenVerifier`.
//! Ok(Router::new().route("/accounts", get(accounts)).with_state(verifier))
//! # }
//! ```

use std::ops::Deref;

use ::axum::Json;
use ::axum::extract::{FromRef, FromRequestParts};
use ::axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::verifier::{AccessTokenVerifier, TokenError, VerifiedAccessToken};

/// The verified access token of a request. Derefs to [`VerifiedAccessToken`].
#[derive(Debug, Clone)]
pub struct Authenticated(pub VerifiedAccessToken);

impl Authenticated {
    /// `Ok` if the token grants `scope`, else the 403 `insufficient_scope` refusal.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthRejection> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthRejection::InsufficientScope(scope.to_owned()))
        }
    }
}

impl Deref for Authenticated {
    type Target = VerifiedAccessToken;

    fn deref(&self) -> &VerifiedAccessToken {
        &self.0
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    AccessTokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let token = bearer_token(&parts.headers)?;
        let verifier = AccessTokenVerifier::from_ref(state);
        Ok(Self(verifier.verify(token).await?))
    }
}

/// The token of `Authorization: Bearer <token>`. Other schemes count as no token
/// (RFC 6750 §3.1); several `Authorization` headers are a malformed request.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthRejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(AUTHORIZATION) {
            AuthRejection::InvalidRequest
        } else {
            AuthRejection::MissingToken
        });
    };
    let value = value.to_str().map_err(|_| AuthRejection::InvalidRequest)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(AuthRejection::MissingToken),
    }
}

/// Why [`Authenticated`] refused a request; as a response, the RFC 6750 status,
/// `WWW-Authenticate` header and a small JSON body `{"error", "error_description"}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No bearer token: 401, `WWW-Authenticate: Bearer`.
    #[error("no bearer access token")]
    MissingToken,
    /// Several `Authorization` headers, or one that is not text: 400 `invalid_request`.
    #[error("malformed Authorization header")]
    InvalidRequest,
    /// The token does not verify: 401 `invalid_token`.
    #[error("invalid access token: {0}")]
    InvalidToken(TokenError),
    /// The keys could not be fetched, so no token can be checked: 503.
    #[error("cannot verify access tokens: {0}")]
    Unavailable(TokenError),
    /// The token lacks this scope: 403 `insufficient_scope`.
    #[error("the access token lacks the scope {0:?}")]
    InsufficientScope(String),
}

impl From<TokenError> for AuthRejection {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Discovery(_) | TokenError::IssuerMismatch { .. } | TokenError::Jwks(_) => {
                Self::Unavailable(e)
            }
            e => Self::InvalidToken(e),
        }
    }
}

impl AuthRejection {
    /// The response status: 400, 401, 403 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The RFC 6750 error code and the description sent to the client.
    fn error(&self) -> (&'static str, &'static str) {
        match self {
            Self::MissingToken => ("missing_token", "a bearer access token is required"),
            Self::InvalidRequest => ("invalid_request", "malformed Authorization header"),
            Self::InvalidToken(TokenError::Expired) => {
                ("invalid_token", "the access token expired")
            }
            Self::InvalidToken(TokenError::NotYetValid) => {
                ("invalid_token", "the access token is not valid yet")
            }
            Self::InvalidToken(_) => ("invalid_token", "the access token is invalid"),
            Self::Unavailable(_) => (
                "temporarily_unavailable",
                "access tokens cannot be verified right now",
            ),
            Self::InsufficientScope(_) => (
                "insufficient_scope",
                "the access token lacks a required scope",
            ),
        }
    }

    fn www_authenticate(&self) -> Option<HeaderValue> {
        let (error, description) = self.error();
        let value = match self {
            Self::MissingToken => "Bearer".to_owned(),
            Self::Unavailable(_) => return None,
            Self::InsufficientScope(scope) => {
                format!("Bearer error=\"{error}\", scope=\"{}\"", quoted(scope))
            }
            _ => format!("Bearer error=\"{error}\", error_description=\"{description}\""),
        };
        HeaderValue::from_str(&value).ok()
    }
}

/// `s` made safe inside a quoted-string: scope tokens never hold `"`, `\` or controls
/// (RFC 6749 §3.3), so such characters are dropped rather than escaped.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~'))
        .collect()
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (error, description) = self.error();
        let body = serde_json::json!({ "error": error, "error_description": description });
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(value) = self.www_authenticate() {
            response.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}
