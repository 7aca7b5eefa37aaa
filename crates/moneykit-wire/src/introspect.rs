//! `GET /auth/introspect`: who the bearer of a token is.

use serde::{Deserialize, Serialize};

/// The app a client belongs to.
///
/// MoneyKit renamed `id`/`name` to `app_id`/`app_name`; both spellings are sent with the
/// same values so clients written against either keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppResponse {
    /// The app id (new name).
    pub app_id: String,
    /// The app name (old name).
    pub name: String,
    /// The app id (old name).
    pub id: String,
    /// The app name (new name).
    pub app_name: String,
}

impl AppResponse {
    /// Builds the response with both spellings filled from one id and one name.
    pub fn new(app_id: &str, name: &str) -> Self {
        Self {
            app_id: app_id.to_owned(),
            name: name.to_owned(),
            id: app_id.to_owned(),
            app_name: name.to_owned(),
        }
    }
}

/// The body of `GET /auth/introspect`: the client a token was issued to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppClientResponse {
    /// The client id (also the token's `sub`).
    pub client_id: String,
    /// The client's display name.
    pub client_name: String,
    /// Every scope the client is allowed, space-separated.
    pub scope: String,
    /// The app the client belongs to.
    pub app: AppResponse,
    /// When the client is (or is scheduled to be) disabled, as RFC 3339; `null` otherwise.
    pub disabled_at: Option<String>,
}
