//! The error body every failing request gets.

use serde::{Deserialize, Serialize};

/// An error response body.
///
/// It carries the MoneyKit fields (`error_code`, `error_message`, `documentation_url`)
/// that the official SDKs read, and the RFC 6749 §5.2 fields (`error`,
/// `error_description`) that generic OAuth 2.0 clients read, so both kinds of client
/// understand the same response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// MoneyKit error code, e.g. `api_error.auth.unauthorized`.
    pub error_code: String,
    /// Human-readable message.
    pub error_message: String,
    /// Where the error is documented.
    #[serde(default)]
    pub documentation_url: Option<String>,
    /// RFC 6749 error code, e.g. `invalid_client`; absent where RFC 6749 has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// RFC 6749 error description (same text as `error_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// What was wrong with a malformed request (422 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_errors: Option<Vec<ValidationError>>,
}

/// One problem with a malformed request, in the MoneyKit (FastAPI) shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationError {
    /// Where the problem is, e.g. `["body", "client_id"]` or `["header", "content-type"]`.
    pub location: Vec<String>,
    /// What is wrong.
    pub message: String,
    /// A stable machine-readable kind, e.g. `value_error.duplicate`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl ValidationError {
    /// Builds a validation error at `location` (a list of path segments).
    pub fn new(location: &[&str], message: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            location: location.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
            kind: kind.into(),
        }
    }
}
