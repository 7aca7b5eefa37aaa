//! [`TokenSource`]: an access token that is always there when you need one.
//!
//! It gets a token with client credentials, caches it, and refreshes it shortly before
//! it expires. Concurrent callers that find the token stale share one refresh (single
//! flight) instead of each asking the server. A call rejected with
//! `api_error.auth.expired_access_token` (clock skew, a server restart with a shorter
//! lifetime) triggers one refresh and one retry.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::client::HttpClient;
use crate::configuration::Configuration;
use crate::error::ApiError;
use crate::secret::Secret;
use crate::token_request::{GenerateAccessTokenOpts, request_token};

/// A token from the cache or a refresh.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret,
    /// The scopes granted.
    pub scope: String,
    /// When it expires, by this process's clock.
    pub expires_at: Instant,
    issued_at: Instant,
}

impl AccessToken {
    /// Whether it is still worth using at `now`: not expired, and not within
    /// `refresh_ahead` of expiring (capped at half its lifetime, so very short-lived tokens
    /// are still used for a while).
    fn is_fresh(&self, now: Instant, refresh_ahead: Duration) -> bool {
        let lifetime = self.expires_at.saturating_duration_since(self.issued_at);
        let margin = refresh_ahead.min(lifetime / 2);
        now + margin < self.expires_at
    }
}

/// A cached, auto-refreshing client-credentials token. Cheap to clone; clones share the
/// cache.
///
/// ```no_run
/// use moneykit::{AccessTokenApi, Configuration, TokenSource};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Configuration::self_hosted("http://127.0.0.1:8080")?;
/// let tokens = TokenSource::builder(config.clone(), "live_…", "mks_…")
///     .scope("accounts:read")
///     .build()?;
/// // Every call below uses a cached token, refreshed before it expires.
/// let api = AccessTokenApi::new(config)?.with_token_source(tokens.clone());
/// let me = api.introspect_client().await?;
/// println!("{}", me.client_name);
/// let bearer = tokens.token().await?; // for your own requests
/// # let _ = bearer;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: HttpClient,
    scope: Option<String>,
    refresh_ahead: Duration,
    cached: Mutex<Option<AccessToken>>,
    refreshing: tokio::sync::Mutex<()>,
}

/// Settings of a [`TokenSource`] before it is built.
#[derive(Debug, Clone)]
pub struct TokenSourceBuilder {
    configuration: Configuration,
    scope: Option<String>,
    refresh_ahead: Duration,
}

impl TokenSourceBuilder {
    /// Asks for these scopes (space-separated) instead of everything the client may have.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Refreshes this long before expiry (default 60 s, at most half the lifetime).
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.refresh_ahead = ahead;
        self
    }

    /// Builds the source. Fails only if the TLS backend cannot start.
    pub fn build(self) -> Result<TokenSource, ApiError> {
        Ok(TokenSource {
            inner: Arc::new(Inner {
                client: HttpClient::new(self.configuration)?,
                scope: self.scope,
                refresh_ahead: self.refresh_ahead,
                cached: Mutex::new(None),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl TokenSource {
    /// A source for this client with the defaults (all allowed scopes, refresh 60 s
    /// ahead). Credentials are sent as HTTP Basic to `configuration.host`.
    pub fn new(
        configuration: Configuration,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Result<Self, ApiError> {
        Self::builder(configuration, client_id, client_secret).build()
    }

    /// A builder, to set the scope or how early to refresh.
    pub fn builder(
        configuration: Configuration,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> TokenSourceBuilder {
        TokenSourceBuilder {
            configuration: configuration.basic_auth(client_id, client_secret),
            scope: None,
            refresh_ahead: Duration::from_secs(60),
        }
    }

    fn cached_if_fresh(&self) -> Option<AccessToken> {
        let cached = self.inner.cached.lock().expect("not poisoned");
        cached
            .as_ref()
            .filter(|t| t.is_fresh(Instant::now(), self.inner.refresh_ahead))
            .cloned()
    }

    /// A token valid for a while yet: the cached one, or a new one.
    pub async fn token(&self) -> Result<AccessToken, ApiError> {
        if let Some(token) = self.cached_if_fresh() {
            return Ok(token);
        }
        let _refresh = self.inner.refreshing.lock().await;
        // Whoever held the lock before us may have refreshed already.
        if let Some(token) = self.cached_if_fresh() {
            return Ok(token);
        }
        self.fetch().await
    }

    /// A new token because `rejected` was refused as expired; if another caller already
    /// replaced it, that newer token is returned without asking the server again.
    pub async fn refresh_after_rejection(
        &self,
        rejected: &Secret,
    ) -> Result<AccessToken, ApiError> {
        let _refresh = self.inner.refreshing.lock().await;
        let newer = self
            .inner
            .cached
            .lock()
            .expect("not poisoned")
            .clone()
            .filter(|t| &t.token != rejected);
        match newer {
            Some(token) => Ok(token),
            None => self.fetch().await,
        }
    }

    /// Runs `call` with a token; if the server answers that the token expired, refreshes
    /// once and runs it again.
    pub async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, ApiError>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let token = self.token().await?;
        match call(token.token.clone()).await {
            Err(e) if e.is_expired_token() => {
                let fresh = self.refresh_after_rejection(&token.token).await?;
                call(fresh.token).await
            }
            other => other,
        }
    }

    async fn fetch(&self) -> Result<AccessToken, ApiError> {
        let issued_at = Instant::now();
        let opts = GenerateAccessTokenOpts {
            grant_type: Some("client_credentials".into()),
            scope: self.inner.scope.clone(),
            ..Default::default()
        };
        let (response, _, _) = request_token(&self.inner.client, &opts).await?;
        let token = AccessToken {
            token: Secret::new(response.access_token),
            scope: response.scope,
            expires_at: issued_at + Duration::from_secs(response.expires_in),
            issued_at,
        };
        *self.inner.cached.lock().expect("not poisoned") = Some(token.clone());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(lifetime: u64) -> AccessToken {
        let now = Instant::now();
        AccessToken {
            token: Secret::new("t"),
            scope: String::new(),
            expires_at: now + Duration::from_secs(lifetime),
            issued_at: now,
        }
    }

    #[test]
    fn tokens_are_refreshed_ahead_of_expiry() {
        let t = token(3600);
        let ahead = Duration::from_secs(60);
        assert!(t.is_fresh(t.issued_at, ahead));
        assert!(t.is_fresh(t.issued_at + Duration::from_secs(3539), ahead));
        assert!(!t.is_fresh(t.issued_at + Duration::from_secs(3540), ahead));
    }

    #[test]
    fn short_lived_tokens_are_used_for_half_their_life() {
        let t = token(10);
        let ahead = Duration::from_secs(60);
        assert!(t.is_fresh(t.issued_at + Duration::from_secs(4), ahead));
        assert!(!t.is_fresh(t.issued_at + Duration::from_secs(5), ahead));
    }
}
