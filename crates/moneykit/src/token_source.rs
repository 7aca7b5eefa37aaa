//! [`TokenSource`]: an access token that is always there when you need one.
//!
//! It gets a token with the client's credential — a client secret, a private key
//! (`private_key_jwt`) or a workload's platform token (federation) — caches it, and
//! refreshes it shortly before it expires. Concurrent callers that find the token stale
//! share one refresh (single flight) instead of each asking the server. A call rejected with
//! `api_error.auth.expired_access_token` (clock skew, a server restart with a shorter
//! lifetime) triggers one refresh and one retry.
//!
//! Any credential can be combined with a DPoP key ([`TokenSourceBuilder::dpop`]), whose
//! tokens are bound to the key, and with a TLS client certificate
//! ([`TokenSourceBuilder::client_certificate`]), which binds them to the certificate.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use crate::client::HttpClient;
use crate::client_assertion::PrivateKeyJwt;
use crate::client_certificate::ClientCertificate;
use crate::configuration::Configuration;
use crate::dpop::{DpopKey, DpopSession, authorization_headers};
use crate::error::{ApiError, CredentialError};
use crate::private_key::PrivateKey;
use crate::secret::Secret;
use crate::token_request::{GenerateAccessTokenOpts, request_token};
use crate::workload_identity::WorkloadIdentity;

/// A token from the cache or a refresh.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The access token.
    pub token: Secret,
    /// How it is presented: `DPoP` for a token bound to the source's DPoP key, else
    /// `bearer` or `Bearer`, as the server said.
    pub token_type: String,
    /// The scopes granted.
    pub scope: String,
    /// When it expires, by this process's clock.
    pub expires_at: Instant,
    issued_at: Instant,
    /// The key the token is bound to, when the server bound it.
    dpop: Option<DpopKey>,
}

impl AccessToken {
    /// Whether the token is DPoP-bound: every request with it needs a proof, which
    /// [`AccessToken::authorization_headers`] makes.
    pub fn is_dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// The headers that present the token on a request to `url` with `method`:
    /// `Authorization: Bearer …`, or for a DPoP-bound token `Authorization: DPoP …` and a
    /// new `DPoP` proof for this method and URL (with `ath`). Make them for each request:
    /// a proof is good for one.
    pub fn authorization_headers(
        &self,
        method: impl AsRef<str>,
        url: &str,
    ) -> Result<HeaderMap, CredentialError> {
        self.authorization_headers_with_nonce(method.as_ref(), url, None)
    }

    pub(crate) fn authorization_headers_with_nonce(
        &self,
        method: &str,
        url: &str,
        nonce: Option<&str>,
    ) -> Result<HeaderMap, CredentialError> {
        authorization_headers(self.token.expose(), self.dpop.as_ref(), method, url, nonce)
    }

    /// Whether it is still worth using at `now`: not expired, and not within
    /// `refresh_ahead` of expiring (capped at half its lifetime, so very short-lived tokens
    /// are still used for a while).
    fn is_fresh(&self, now: Instant, refresh_ahead: Duration) -> bool {
        let lifetime = self.expires_at.saturating_duration_since(self.issued_at);
        let margin = refresh_ahead.min(lifetime / 2);
        now + margin < self.expires_at
    }
}

/// A cached, auto-refreshing access token. Cheap to clone; clones share the cache.
///
/// Build one for the client's credential: [`TokenSource::new`] or
/// [`TokenSource::builder`] with a client secret, [`TokenSource::with_private_key`] (or
/// [`TokenSource::with_client_assertion`]) with a private key, or
/// [`TokenSource::federated`] with a workload's platform token.
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
    credential: Credential,
    dpop: Option<DpopSession>,
    scope: Option<String>,
    refresh_ahead: Duration,
    cached: Mutex<Option<AccessToken>>,
    refreshing: tokio::sync::Mutex<()>,
}

/// What a refresh proves the client's identity with.
#[derive(Debug, Clone)]
enum Credential {
    /// The client secret, sent as HTTP Basic from the configuration.
    ClientSecret,
    /// The TLS client certificate alone: the form names the client.
    ClientCertificate { client_id: String },
    /// A new signed assertion for every refresh.
    PrivateKeyJwt(PrivateKeyJwt),
    /// The platform token file, read again for every refresh.
    Federated(WorkloadIdentity),
}

impl Credential {
    /// The form of the next token request, scope aside.
    async fn token_request(&self) -> Result<GenerateAccessTokenOpts, ApiError> {
        Ok(match self {
            Self::ClientSecret => GenerateAccessTokenOpts {
                grant_type: Some("client_credentials".into()),
                ..Default::default()
            },
            Self::ClientCertificate { client_id } => GenerateAccessTokenOpts {
                grant_type: Some("client_credentials".into()),
                client_id: Some(client_id.clone()),
                ..Default::default()
            },
            Self::PrivateKeyJwt(assertions) => assertions.token_request()?,
            Self::Federated(identity) => identity.token_request().await?,
        })
    }
}

/// Settings of a [`TokenSource`] before it is built.
#[derive(Debug, Clone)]
pub struct TokenSourceBuilder {
    configuration: Configuration,
    credential: Credential,
    dpop: Option<DpopKey>,
    scope: Option<String>,
    refresh_ahead: Duration,
}

impl TokenSourceBuilder {
    fn new(configuration: Configuration, credential: Credential) -> Self {
        Self {
            configuration,
            credential,
            dpop: None,
            scope: None,
            refresh_ahead: Duration::from_secs(60),
        }
    }

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

    /// Asks for tokens bound to `key` (DPoP, RFC 9449): every token request carries a
    /// new proof (retried once with the server's nonce when it asks for one), and the
    /// tokens must be presented with a proof too — see
    /// [`TokenSource::authorization_headers`].
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// Presents `certificate` on the token requests (RFC 8705): the tokens are bound to
    /// it, so calls with them must present it as well (set it on their
    /// [`Configuration`] too). The client still proves itself with its credential; for
    /// the certificate alone, see [`TokenSource::with_client_certificate`].
    pub fn client_certificate(mut self, certificate: ClientCertificate) -> Self {
        self.configuration = self.configuration.client_certificate(certificate);
        self
    }

    /// Builds the source. Fails only if the TLS backend cannot start.
    pub fn build(self) -> Result<TokenSource, ApiError> {
        Ok(TokenSource {
            inner: Arc::new(Inner {
                client: HttpClient::new(self.configuration)?,
                credential: self.credential,
                dpop: self.dpop.map(DpopSession::new),
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
        TokenSourceBuilder::new(
            configuration.basic_auth(client_id, client_secret),
            Credential::ClientSecret,
        )
    }

    /// A builder for a client that authenticates with a private key instead of a secret
    /// (`private_key_jwt`): every refresh sends a new assertion for the server of
    /// `configuration`, and no HTTP Basic header. See [`PrivateKeyJwt`] for the
    /// assertion, and [`TokenSource::with_client_assertion`] to change its audience or
    /// lifetime.
    ///
    /// ```no_run
    /// use moneykit::{Configuration, PrivateKey, TokenSource};
    ///
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Configuration::self_hosted("https://auth.example.com")?;
    /// let key = PrivateKey::from_file("/etc/moneykit/client-key.pem")?.with_key_id("2026-01");
    /// let tokens = TokenSource::with_private_key(config, "live_…", key)
    ///     .scope("accounts:read")
    ///     .build()?;
    /// let bearer = tokens.token().await?;
    /// # let _ = bearer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_private_key(
        configuration: Configuration,
        client_id: impl Into<String>,
        key: PrivateKey,
    ) -> TokenSourceBuilder {
        let assertions = PrivateKeyJwt::new(&configuration, client_id, key);
        Self::with_client_assertion(configuration, assertions)
    }

    /// [`TokenSource::with_private_key`] with assertions made as `assertions` says.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use moneykit::{Configuration, PrivateKey, PrivateKeyJwt, TokenSource};
    ///
    /// # fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// // Requests go through an internal URL; the issuer is the public one.
    /// let config = Configuration::self_hosted("http://moneykit-auth.internal:8080")?;
    /// let key = PrivateKey::from_file("/etc/moneykit/client-key.json")?;
    /// let assertions = PrivateKeyJwt::new(&config, "live_…", key)
    ///     .audience("https://auth.example.com")
    ///     .lifetime(Duration::from_secs(30));
    /// let tokens = TokenSource::with_client_assertion(config, assertions).build()?;
    /// # let _ = tokens;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_client_assertion(
        configuration: Configuration,
        assertions: PrivateKeyJwt,
    ) -> TokenSourceBuilder {
        TokenSourceBuilder::new(
            without_basic_auth(configuration),
            Credential::PrivateKeyJwt(assertions),
        )
    }

    /// A builder for a client that authenticates with its TLS client certificate alone
    /// (`tls_client_auth` or `self_signed_tls_client_auth`, RFC 8705 §2): the request
    /// names the client in the form, with no secret and no HTTP Basic header. The tokens
    /// are bound to the certificate.
    ///
    /// ```no_run
    /// use moneykit::{ClientCertificate, Configuration, TokenSource};
    ///
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Configuration::self_hosted("https://auth.example.com")?;
    /// let certificate = ClientCertificate::from_files("client.crt", "client.key")?;
    /// let tokens = TokenSource::with_client_certificate(config, "live_…", certificate).build()?;
    /// let token = tokens.token().await?;
    /// # let _ = token;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_client_certificate(
        configuration: Configuration,
        client_id: impl Into<String>,
        certificate: ClientCertificate,
    ) -> TokenSourceBuilder {
        TokenSourceBuilder::new(
            without_basic_auth(configuration).client_certificate(certificate),
            Credential::ClientCertificate {
                client_id: client_id.into(),
            },
        )
    }

    /// A builder for a workload that holds no credential of its own (workload identity
    /// federation): every refresh reads the platform token file again and presents it
    /// with the `jwt-bearer` grant, or with a token exchange (see [`WorkloadIdentity`]).
    ///
    /// ```no_run
    /// use moneykit::{Configuration, TokenSource, WorkloadIdentity};
    ///
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Configuration::self_hosted("https://auth.example.com")?;
    /// // A Kubernetes projected service-account token with audience auth.example.com.
    /// let identity = WorkloadIdentity::from_token_file("/var/run/secrets/tokens/moneykit");
    /// let tokens = TokenSource::federated(config, identity).build()?;
    /// let bearer = tokens.token().await?;
    /// # let _ = bearer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn federated(
        configuration: Configuration,
        identity: WorkloadIdentity,
    ) -> TokenSourceBuilder {
        TokenSourceBuilder::new(
            without_basic_auth(configuration),
            Credential::Federated(identity),
        )
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
    /// once and runs it again. For a DPoP-bound token, use
    /// [`TokenSource::with_access_token`], whose token makes the proof.
    pub async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, ApiError>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        self.with_access_token(|token| call(token.token)).await
    }

    /// [`TokenSource::with_token`] with the whole [`AccessToken`], whose
    /// [`AccessToken::authorization_headers`] present it whatever its type.
    ///
    /// ```no_run
    /// # use moneykit::{ApiError, TokenSource};
    /// # async fn example(tokens: TokenSource) -> Result<(), ApiError> {
    /// let url = "https://api.example.com/accounts";
    /// let status = tokens
    ///     .with_access_token(|token| async move {
    ///         let headers = token.authorization_headers("GET", url)?;
    ///         let response = reqwest::Client::new().get(url).headers(headers).send().await?;
    ///         Ok(response.status())
    ///     })
    ///     .await?;
    /// # let _ = status;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with_access_token<T, F, Fut>(&self, call: F) -> Result<T, ApiError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let token = self.token().await?;
        let rejected = token.token.clone();
        match call(token).await {
            Err(e) if e.is_expired_token() => {
                let fresh = self.refresh_after_rejection(&rejected).await?;
                call(fresh).await
            }
            other => other,
        }
    }

    /// The headers for a request of your own to `url` with `method`, with a token valid
    /// for a while yet: `Authorization: Bearer …`, or for DPoP `Authorization: DPoP …`
    /// and a new proof for this request (see [`AccessToken::authorization_headers`]).
    pub async fn authorization_headers(
        &self,
        method: impl AsRef<str>,
        url: &str,
    ) -> Result<HeaderMap, ApiError> {
        Ok(self.token().await?.authorization_headers(method, url)?)
    }

    async fn fetch(&self) -> Result<AccessToken, ApiError> {
        let issued_at = Instant::now();
        let make_form = || async {
            Ok(GenerateAccessTokenOpts {
                scope: self.inner.scope.clone(),
                ..self.inner.credential.token_request().await?
            })
        };
        let dpop = self.inner.dpop.as_ref();
        let (response, _, _) = request_token(&self.inner.client, dpop, make_form).await?;
        let bound = response.token_type.eq_ignore_ascii_case("dpop");
        let token = AccessToken {
            token: Secret::new(response.access_token),
            token_type: response.token_type,
            scope: response.scope,
            expires_at: issued_at + Duration::from_secs(response.expires_in),
            issued_at,
            dpop: dpop.filter(|_| bound).map(|session| session.key().clone()),
        };
        *self.inner.cached.lock().expect("not poisoned") = Some(token.clone());
        Ok(token)
    }
}

/// `configuration` without HTTP Basic credentials: a client that proves itself otherwise
/// must not also send a secret.
fn without_basic_auth(configuration: Configuration) -> Configuration {
    Configuration {
        username: None,
        password: None,
        ..configuration
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(lifetime: u64) -> AccessToken {
        let now = Instant::now();
        AccessToken {
            token: Secret::new("t"),
            token_type: "bearer".into(),
            scope: String::new(),
            expires_at: now + Duration::from_secs(lifetime),
            issued_at: now,
            dpop: None,
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
