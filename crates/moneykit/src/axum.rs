//! [axum](https://docs.rs/axum) integration (feature `axum`): the [`Authenticated`]
//! extractor, which takes the access token of a request and verifies it with the
//! [`AccessTokenVerifier`] in the router's state, through
//! [`AccessTokenVerifier::verify_request`]: bearer tokens, DPoP-bound tokens with their
//! proof (RFC 9449), and certificate-bound tokens (RFC 8705) against the request's
//! [`PeerCertificate`].
//!
//! Refusals follow RFC 6750 §3 and RFC 9449 §7.1: 401 with `WWW-Authenticate: Bearer`
//! when there is no token (a bare challenge, as before DPoP; RFC 9449 §7.2 would also
//! allow a `DPoP` one beside it), 401 with
//! `Bearer error="invalid_token"` when a bearer token does not verify, 401 with
//! `DPoP error="invalid_dpop_proof"` or `DPoP error="invalid_token"` (and `algs`) when a
//! DPoP request does not hold — or a DPoP-bound token came as a bearer token — and 403
//! with `error="insufficient_scope"` from [`Authenticated::require_scope`]. The
//! descriptions name only the category (expired, not yet valid, invalid), never what
//! exactly failed.
//!
//! Behind a proxy or TLS terminated in the process, set
//! [`public_url`](crate::AccessTokenVerifierBuilder::public_url) on the verifier: DPoP
//! proofs name the URL the client called.
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
use std::sync::LazyLock;

use ::axum::Json;
use ::axum::extract::{FromRef, FromRequestParts, OriginalUri};
use ::axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::private_key::JwsAlgorithm;
use crate::verifier::{AccessTokenVerifier, ResourceRequest, TokenError, VerifiedAccessToken};

/// The DPoP proof algorithms accepted, as a challenge's `algs` names them.
static ALGS: LazyLock<String> = LazyLock::new(|| {
    let names: Vec<&str> = JwsAlgorithm::ALL.iter().map(|alg| alg.as_str()).collect();
    names.join(" ")
});

/// The DER of the client certificate (the leaf) that the request's TLS connection
/// presented, as a request extension: a certificate-bound token (RFC 8705) is accepted
/// only when it matches. The SDK cannot see how the application terminates TLS, so the
/// application inserts it — from its rustls acceptor
/// (`connection.peer_certificates()`), or from a header its TLS-terminating proxy sets
/// and nothing else can.
///
/// ```no_run
/// use axum::extract::Request;
/// use axum::middleware::Next;
/// use axum::response::Response;
/// use moneykit::axum::PeerCertificate;
///
/// # fn leaf_of_this_connection(request: &Request) -> Option<Vec<u8>> { None }
/// async fn with_peer_certificate(mut request: Request, next: Next) -> Response {
///     if let Some(der) = leaf_of_this_connection(&request) {
///         request.extensions_mut().insert(PeerCertificate(der));
///     }
///     next.run(request).await
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate(pub Vec<u8>);

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
        let verifier = AccessTokenVerifier::from_ref(state);
        // The URI the client sent, not what a nested router left of it.
        let uri = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(uri)) => uri,
            None => &parts.uri,
        };
        let mut request = ResourceRequest::new(&parts.method, uri, &parts.headers);
        if let Some(PeerCertificate(der)) = parts.extensions.get::<PeerCertificate>() {
            request = request.client_certificate(der);
        }
        match verifier.verify_request(&request).await {
            Ok(token) => Ok(Self(token)),
            Err(e) if uses_dpop_scheme(parts) => Err(AuthRejection::dpop(e)),
            Err(e) => Err(e.into()),
        }
    }
}

fn uses_dpop_scheme(parts: &Parts) -> bool {
    let value = parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    value.is_some_and(|v| v.len() > 5 && v[..5].eq_ignore_ascii_case(b"dpop "))
}

/// Why [`Authenticated`] refused a request; as a response, the RFC 6750 (or RFC 9449)
/// status, `WWW-Authenticate` header and a small JSON body
/// `{"error", "error_description"}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No access token: 401, `WWW-Authenticate: Bearer`.
    #[error("no access token")]
    MissingToken,
    /// Several `Authorization` headers, or one that is not text: 400 `invalid_request`.
    #[error("malformed Authorization header")]
    InvalidRequest,
    /// The token does not verify: 401 `invalid_token`.
    #[error("invalid access token: {0}")]
    InvalidToken(TokenError),
    /// A request refused on DPoP's terms — its proof does not hold, the token was sent
    /// with the DPoP scheme and does not verify, or a DPoP-bound token came as a bearer
    /// token: 401 with a `DPoP` challenge, `invalid_dpop_proof` or `invalid_token`.
    #[error("DPoP: {0}")]
    InvalidDpop(TokenError),
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
            TokenError::Discovery(_)
            | TokenError::IssuerMismatch { .. }
            | TokenError::Jwks(_)
            | TokenError::DpopReplayCacheFull => Self::Unavailable(e),
            TokenError::MissingToken => Self::MissingToken,
            TokenError::InvalidAuthorization => Self::InvalidRequest,
            TokenError::DpopBound
            | TokenError::NotDpopBound
            | TokenError::InvalidDpopProof(_)
            | TokenError::DpopKeyMismatch => Self::InvalidDpop(e),
            e => Self::InvalidToken(e),
        }
    }
}

impl AuthRejection {
    /// The refusal of a request that used the `DPoP` scheme: a token that does not
    /// verify is answered with a DPoP challenge too.
    fn dpop(e: TokenError) -> Self {
        match Self::from(e) {
            Self::InvalidToken(e) => Self::InvalidDpop(e),
            other => other,
        }
    }

    /// The response status: 400, 401, 403 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) | Self::InvalidDpop(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The RFC 6750 error code and the description sent to the client.
    fn error(&self) -> (&'static str, &'static str) {
        match self {
            Self::MissingToken => ("missing_token", "an access token is required"),
            Self::InvalidRequest => ("invalid_request", "malformed Authorization header"),
            Self::InvalidDpop(TokenError::InvalidDpopProof(_)) => {
                ("invalid_dpop_proof", "the DPoP proof is invalid")
            }
            Self::InvalidDpop(TokenError::DpopKeyMismatch) => {
                ("invalid_token", "invalid DPoP key binding")
            }
            Self::InvalidDpop(TokenError::DpopBound) => (
                "invalid_token",
                "the access token is DPoP-bound: send it with the DPoP scheme and a proof",
            ),
            Self::InvalidDpop(TokenError::NotDpopBound) => (
                "invalid_token",
                "the access token is not DPoP-bound: send it with the Bearer scheme",
            ),
            Self::InvalidToken(TokenError::Expired) | Self::InvalidDpop(TokenError::Expired) => {
                ("invalid_token", "the access token expired")
            }
            Self::InvalidToken(TokenError::NotYetValid)
            | Self::InvalidDpop(TokenError::NotYetValid) => {
                ("invalid_token", "the access token is not valid yet")
            }
            Self::InvalidToken(_) | Self::InvalidDpop(_) => {
                ("invalid_token", "the access token is invalid")
            }
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
        let algs = ALGS.as_str();
        let value = match self {
            Self::MissingToken => "Bearer".to_owned(),
            Self::InvalidDpop(_) => format!(
                "DPoP error=\"{error}\", error_description=\"{description}\", algs=\"{algs}\""
            ),
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
