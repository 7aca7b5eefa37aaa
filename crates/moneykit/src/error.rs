//! [`ApiError`]: what can go wrong calling the API, kept apart by kind — no response at
//! all, a response that is not what the operation returns, or an error response from the
//! server (with the MoneyKit error fields parsed when the body has them) — and
//! [`CredentialError`], a client credential that cannot be loaded or made.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use moneykit_wire::{ErrorBody, ValidationError};

/// A failed API call. What kind of failure it was is [`ApiError::kind`]; the accessors
/// give the response parts when there was a response.
pub struct ApiError(Box<Repr>);

/// The kinds of [`ApiError`], kept apart because callers handle them differently: retry a
/// transport failure, report an unexpected body as a bug, act on an API error's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No HTTP response: DNS, connection, TLS, timeout.
    Transport,
    /// A response the operation cannot read: a success status with a body that is not
    /// the documented type.
    UnexpectedBody,
    /// The server answered with an error status (4xx, 5xx).
    Api,
    /// No request was sent: the client's own credential could not be made (a workload
    /// token file that cannot be read, a signature that failed).
    Credential,
}

#[derive(Debug)]
enum Repr {
    Transport(TransportError),
    Credential(CredentialError),
    UnexpectedBody {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        reason: String,
    },
    Api {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        error: Option<ErrorBody>,
    },
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A transport failure; the underlying cause is available through
/// [`std::error::Error::source`].
#[derive(Debug)]
pub struct TransportError(pub(crate) reqwest::Error);

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // reqwest's own message is generic ("error sending request"); the cause says why.
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(&self.0);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A private key that cannot be loaded, or a credential that cannot be made from it or
/// from a workload's token file. The message names what is wrong, never key material;
/// an I/O failure is its [`std::error::Error::source`].
#[derive(Debug)]
pub struct CredentialError {
    message: String,
    source: Option<std::io::Error>,
}

impl CredentialError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(message: impl Into<String>, source: std::io::Error) -> Self {
        Self {
            message: message.into(),
            source: Some(source),
        }
    }

    /// The same error, its message prefixed with where it happened (a file name).
    pub(crate) fn context(mut self, place: &str) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CredentialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl TransportError {
    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        self.0.is_timeout()
    }

    /// Whether the connection could not be made.
    pub fn is_connect(&self) -> bool {
        self.0.is_connect()
    }
}

impl ApiError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match &*self.0 {
            Repr::Transport(_) => ErrorKind::Transport,
            Repr::Credential(_) => ErrorKind::Credential,
            Repr::UnexpectedBody { .. } => ErrorKind::UnexpectedBody,
            Repr::Api { .. } => ErrorKind::Api,
        }
    }

    /// The transport failure, for [`ErrorKind::Transport`].
    pub fn transport(&self) -> Option<&TransportError> {
        match &*self.0 {
            Repr::Transport(e) => Some(e),
            _ => None,
        }
    }

    /// The credential failure, for [`ErrorKind::Credential`].
    pub fn credential(&self) -> Option<&CredentialError> {
        match &*self.0 {
            Repr::Credential(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status, when there was a response.
    pub fn status(&self) -> Option<StatusCode> {
        match &*self.0 {
            Repr::Transport(_) | Repr::Credential(_) => None,
            Repr::UnexpectedBody { status, .. } | Repr::Api { status, .. } => Some(*status),
        }
    }

    /// The response headers, when there was a response.
    pub fn headers(&self) -> Option<&HeaderMap> {
        match &*self.0 {
            Repr::Transport(_) | Repr::Credential(_) => None,
            Repr::UnexpectedBody { headers, .. } | Repr::Api { headers, .. } => Some(headers),
        }
    }

    /// The raw response body, when there was a response.
    pub fn body(&self) -> Option<&Bytes> {
        match &*self.0 {
            Repr::Transport(_) | Repr::Credential(_) => None,
            Repr::UnexpectedBody { body, .. } | Repr::Api { body, .. } => Some(body),
        }
    }

    /// The parsed MoneyKit error body of an API error.
    pub fn moneykit_error(&self) -> Option<&ErrorBody> {
        match &*self.0 {
            Repr::Api { error, .. } => error.as_ref(),
            _ => None,
        }
    }

    /// `error_code`, e.g. `api_error.auth.unauthorized`.
    pub fn error_code(&self) -> Option<&str> {
        self.moneykit_error().map(|e| e.error_code.as_str())
    }

    /// `error_message`.
    pub fn error_message(&self) -> Option<&str> {
        self.moneykit_error().map(|e| e.error_message.as_str())
    }

    /// `documentation_url`.
    pub fn documentation_url(&self) -> Option<&str> {
        self.moneykit_error()
            .and_then(|e| e.documentation_url.as_deref())
    }

    /// `validation_errors` of a 422.
    pub fn validation_errors(&self) -> &[ValidationError] {
        self.moneykit_error()
            .and_then(|e| e.validation_errors.as_deref())
            .unwrap_or_default()
    }

    /// Whether the server said the access token expired (the one error a token refresh
    /// and retry can fix).
    pub fn is_expired_token(&self) -> bool {
        self.status() == Some(StatusCode::UNAUTHORIZED)
            && self.error_code() == Some("api_error.auth.expired_access_token")
    }

    /// The error for an error response, parsing the MoneyKit fields when the body has
    /// them. Public so code that makes its own requests (for example inside
    /// [`crate::TokenSource::with_token`]) reports failures the same way.
    pub fn from_response(status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        let error = serde_json::from_slice::<ErrorBody>(&body).ok();
        Self(Box::new(Repr::Api {
            status,
            headers,
            body,
            error,
        }))
    }

    pub(crate) fn unexpected_body(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        reason: String,
    ) -> Self {
        Self(Box::new(Repr::UnexpectedBody {
            status,
            headers,
            body,
            reason,
        }))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Repr::Transport(e) => write!(f, "transport error: {e}"),
            Repr::Credential(e) => {
                write!(f, "credential error: {e}")?;
                if let Some(cause) = std::error::Error::source(e) {
                    write!(f, ": {cause}")?;
                }
                Ok(())
            }
            Repr::UnexpectedBody { status, reason, .. } => {
                write!(
                    f,
                    "unexpected response (HTTP {}): {reason}",
                    status.as_u16()
                )
            }
            Repr::Api {
                status,
                error: Some(e),
                ..
            } => write!(
                f,
                "HTTP {} {}: {}",
                status.as_u16(),
                e.error_code,
                e.error_message
            ),
            Repr::Api { status, body, .. } => {
                let text = String::from_utf8_lossy(body);
                let snippet: String = text.chars().take(200).collect();
                write!(
                    f,
                    "HTTP {} without a MoneyKit error body: {snippet:?}",
                    status.as_u16()
                )
            }
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            Repr::Transport(e) => Some(e),
            Repr::Credential(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        Self(Box::new(Repr::Credential(e)))
    }
}

impl From<reqwest::Error> for ApiError {
    fn from(e: reqwest::Error) -> Self {
        Self(Box::new(Repr::Transport(TransportError(e))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_parse_the_moneykit_fields() {
        let body = Bytes::from_static(
            br#"{"error_code":"api_error.auth.expired_access_token","error_message":"Access token expired","documentation_url":null,"error":"invalid_token"}"#,
        );
        let e = ApiError::from_response(StatusCode::UNAUTHORIZED, HeaderMap::new(), body);
        assert_eq!(e.error_code(), Some("api_error.auth.expired_access_token"));
        assert!(e.is_expired_token());
        assert_eq!(
            e.to_string(),
            "HTTP 401 api_error.auth.expired_access_token: Access token expired"
        );
    }

    #[test]
    fn non_moneykit_error_bodies_are_kept_raw() {
        let e = ApiError::from_response(
            StatusCode::BAD_GATEWAY,
            HeaderMap::new(),
            Bytes::from_static(b"<html>bad gateway</html>"),
        );
        assert_eq!(e.error_code(), None);
        assert!(!e.is_expired_token());
        assert_eq!(e.body().unwrap().as_ref(), b"<html>bad gateway</html>");
        assert!(
            e.to_string()
                .starts_with("HTTP 502 without a MoneyKit error body")
        );
        assert!(!e.to_string().contains('\n'));
    }
}
