//! [`Configuration`]: where the API is and how to authenticate, as in the official SDKs
//! (`host`, HTTP Basic `username`/`password`, `access_token`, user agent, timeout).

use std::time::Duration;

use crate::secret::Secret;

/// The MoneyKit production API.
pub const DEFAULT_HOST: &str = "https://api.moneykit.com";

/// Settings for an [`crate::AccessTokenApi`]. Build with [`Configuration::new`] and the
/// chained setters; every field is also public.
#[derive(Debug, Clone)]
pub struct Configuration {
    /// Base URL of the API, without a trailing slash.
    pub host: String,
    /// HTTP Basic user name: your client id (used by `generate_access_token`).
    pub username: Option<String>,
    /// HTTP Basic password: your client secret.
    pub password: Option<Secret>,
    /// Bearer token for the operations that need one (introspection, JWKS).
    pub access_token: Option<Secret>,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Timeout of each request, connection included.
    pub timeout: Duration,
    /// `MoneyKit-Version` header; the version this SDK is written against.
    pub api_version: String,
}

impl Default for Configuration {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.into(),
            username: None,
            password: None,
            access_token: None,
            user_agent: format!("moneykit-rust/{}", env!("CARGO_PKG_VERSION")),
            timeout: Duration::from_secs(30),
            api_version: moneykit_wire::headers::SUPPORTED_VERSION.into(),
        }
    }
}

impl Configuration {
    /// The defaults: MoneyKit's production host, no credentials, 30 s timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the base URL (e.g. `http://127.0.0.1:8080` for a local moneykit-auth).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sets HTTP Basic credentials: client id and client secret.
    pub fn basic_auth(mut self, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// Sets a fixed bearer token.
    pub fn access_token(mut self, token: impl Into<Secret>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    /// Sets the `User-Agent`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Sets the per-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.host)
    }
}
