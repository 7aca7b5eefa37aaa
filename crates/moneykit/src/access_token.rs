//! [`AccessTokenApi`]: the three operations of MoneyKit's `AccessTokenApi`, with the
//! official SDKs' names (including `instrospect_client`, spelled as MoneyKit spells it).

use std::sync::Arc;

use http::HeaderMap;
use moneykit_wire::{AppClientResponse, GenerateAccessTokenResponse, JwkSet};
use serde::de::DeserializeOwned;

use crate::client::{HttpClient, WithHttpInfo};
use crate::configuration::Configuration;
use crate::dpop::{DpopKey, DpopSession, authorization_headers, demanded_nonce};
use crate::error::{ApiError, CredentialError};
use crate::jwt::DPOP;
use crate::token_request::{GenerateAccessTokenOpts, request_token};
use crate::token_source::TokenSource;

/// Client for `/auth/token`, `/auth/introspect` and `/.well-known/jwks.json`.
///
/// Cheap to clone (the connection pool is shared). Operations that need a token take it
/// from the attached [`TokenSource`] if there is one (refreshing and retrying once when
/// the server says it expired, and presenting a DPoP-bound token with a proof), else
/// from [`Configuration::access_token`].
#[derive(Debug, Clone)]
pub struct AccessTokenApi {
    client: HttpClient,
    tokens: Option<TokenSource>,
    dpop: Option<Arc<DpopSession>>,
}

impl AccessTokenApi {
    /// A client with this configuration. Fails only if the TLS backend cannot start.
    pub fn new(configuration: Configuration) -> Result<Self, ApiError> {
        Ok(Self {
            client: HttpClient::new(configuration)?,
            tokens: None,
            dpop: None,
        })
    }

    /// Binds the tokens this client gets to `key` (DPoP, RFC 9449): every
    /// `generate_access_token` carries a new proof (retried once with the server's nonce
    /// when it asks for one), and [`Configuration::access_token`] is presented as a
    /// DPoP-bound token, with a proof. A token from an attached [`TokenSource`] is
    /// presented as that source says.
    ///
    /// A retry after a nonce demand sends `opts` again: a client assertion in it may
    /// have been used up. [`TokenSource`] makes a new one for the retry.
    pub fn with_dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(Arc::new(DpopSession::new(key)));
        self
    }

    /// Takes tokens from `source` instead of a fixed access token.
    pub fn with_token_source(mut self, source: TokenSource) -> Self {
        self.tokens = Some(source);
        self
    }

    /// The configuration in use.
    pub fn configuration(&self) -> &Configuration {
        &self.client.config
    }

    /// `POST /auth/token`: creates a short-lived access token from client credentials,
    /// given in `opts` or as HTTP Basic from the configuration. Without a secret, `opts`
    /// comes from [`PrivateKeyJwt::token_request`](crate::PrivateKeyJwt::token_request) or
    /// [`WorkloadIdentity::token_request`](crate::WorkloadIdentity::token_request).
    ///
    /// ```no_run
    /// use moneykit::{AccessTokenApi, Configuration, GenerateAccessTokenOpts};
    ///
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// // Setup authorization: HTTP Basic with your client id and secret.
    /// let config = Configuration::self_hosted("http://127.0.0.1:8080")?
    ///     .basic_auth("YOUR USERNAME", "YOUR PASSWORD");
    /// let api_instance = AccessTokenApi::new(config)?;
    /// let opts = GenerateAccessTokenOpts {
    ///     grant_type: Some("client_credentials".into()), // Or the jwt-bearer and token-exchange grants.
    ///     scope: Some("accounts:read".into()), // Space-separated; omit for everything allowed.
    ///     client_id: None,                     // Or send credentials in the body instead of Basic.
    ///     client_secret: None,
    ///     resource: vec![], // RFC 8707: the APIs (audiences) the token is for; empty for the default.
    ///     audience: None,   // The same, space-separated, as Auth0 clients send it.
    ///     // Client assertions and federation: PrivateKeyJwt and WorkloadIdentity fill these.
    ///     ..Default::default()
    /// };
    ///
    /// match api_instance.generate_access_token(opts).await {
    ///     Ok(result) => println!("{result:?}"),
    ///     Err(e) => eprintln!("Error when calling AccessTokenApi->generate_access_token: {e}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn generate_access_token(
        &self,
        opts: GenerateAccessTokenOpts,
    ) -> Result<GenerateAccessTokenResponse, ApiError> {
        Ok(self.generate_access_token_with_http_info(opts).await?.0)
    }

    /// [`AccessTokenApi::generate_access_token`], also returning the status (201) and
    /// the response headers.
    ///
    /// ```no_run
    /// # use moneykit::{AccessTokenApi, Configuration, GenerateAccessTokenOpts};
    /// # async fn example(api_instance: AccessTokenApi, opts: GenerateAccessTokenOpts) {
    /// match api_instance.generate_access_token_with_http_info(opts).await {
    ///     Ok((data, status_code, headers)) => {
    ///         println!("{status_code}"); // => 201 Created
    ///         println!("{headers:?}");
    ///         println!("{data:?}"); // => GenerateAccessTokenResponse
    ///     }
    ///     Err(e) => eprintln!("Error when calling AccessTokenApi->generate_access_token_with_http_info: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn generate_access_token_with_http_info(
        &self,
        opts: GenerateAccessTokenOpts,
    ) -> Result<WithHttpInfo<GenerateAccessTokenResponse>, ApiError> {
        let form = || async { Ok(opts.clone()) };
        request_token(&self.client, self.dpop.as_deref(), form).await
    }

    /// `GET /.well-known/jwks.json`: the public keys that verify webhook JWTs (and access
    /// tokens).
    ///
    /// ```no_run
    /// use moneykit::{AccessTokenApi, Configuration};
    ///
    /// # async fn example() -> Result<(), moneykit::ApiError> {
    /// // Setup authorization: a bearer token (optional for this endpoint).
    /// let config = Configuration::moneykit().access_token("YOUR ACCESS TOKEN");
    /// let api_instance = AccessTokenApi::new(config)?;
    ///
    /// match api_instance.get_well_known_jwks().await {
    ///     Ok(result) => println!("{result:?}"),
    ///     Err(e) => eprintln!("Error when calling AccessTokenApi->get_well_known_jwks: {e}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_well_known_jwks(&self) -> Result<JwkSet, ApiError> {
        Ok(self.get_well_known_jwks_with_http_info().await?.0)
    }

    /// [`AccessTokenApi::get_well_known_jwks`], also returning status and headers.
    ///
    /// ```no_run
    /// # use moneykit::AccessTokenApi;
    /// # async fn example(api_instance: AccessTokenApi) {
    /// match api_instance.get_well_known_jwks_with_http_info().await {
    ///     Ok((data, status_code, headers)) => {
    ///         println!("{status_code}"); // => 200 OK
    ///         println!("{:?}", headers.get("cache-control"));
    ///         println!("{data:?}"); // => JwkSet
    ///     }
    ///     Err(e) => eprintln!("Error when calling AccessTokenApi->get_well_known_jwks_with_http_info: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn get_well_known_jwks_with_http_info(
        &self,
    ) -> Result<WithHttpInfo<JwkSet>, ApiError> {
        // Public keys need no token; send one if we have one, as the official SDKs do,
        // but never fetch one just for this.
        let token = self.client.config.access_token.clone();
        self.client
            .get("/.well-known/jwks.json", token.as_ref())
            .await
    }

    /// `GET /auth/introspect`: the client and app behind the access token. (The name
    /// keeps the official SDKs' spelling; [`AccessTokenApi::introspect_client`] is the
    /// same call spelled correctly.)
    ///
    /// ```no_run
    /// use moneykit::{AccessTokenApi, Configuration};
    ///
    /// # async fn example() -> Result<(), moneykit::ApiError> {
    /// // Setup authorization: the access token from generate_access_token.
    /// let config = Configuration::moneykit().access_token("YOUR ACCESS TOKEN");
    /// let api_instance = AccessTokenApi::new(config)?;
    ///
    /// match api_instance.instrospect_client().await {
    ///     Ok(result) => println!("{result:?}"),
    ///     Err(e) => eprintln!("Error when calling AccessTokenApi->instrospect_client: {e}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn instrospect_client(&self) -> Result<AppClientResponse, ApiError> {
        Ok(self.instrospect_client_with_http_info().await?.0)
    }

    /// [`AccessTokenApi::instrospect_client`], also returning status and headers.
    ///
    /// ```no_run
    /// # use moneykit::AccessTokenApi;
    /// # async fn example(api_instance: AccessTokenApi) {
    /// match api_instance.instrospect_client_with_http_info().await {
    ///     Ok((data, status_code, headers)) => {
    ///         println!("{status_code}"); // => 200 OK
    ///         println!("{headers:?}");
    ///         println!("{data:?}"); // => AppClientResponse
    ///     }
    ///     Err(e) => eprintln!("Error when calling AccessTokenApi->instrospect_client_with_http_info: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn instrospect_client_with_http_info(
        &self,
    ) -> Result<WithHttpInfo<AppClientResponse>, ApiError> {
        self.authorized_get("/auth/introspect").await
    }

    /// The correctly spelled [`AccessTokenApi::instrospect_client`].
    ///
    /// ```no_run
    /// # use moneykit::AccessTokenApi;
    /// # async fn example(api_instance: AccessTokenApi) -> Result<(), moneykit::ApiError> {
    /// let me = api_instance.introspect_client().await?;
    /// println!("{} of app {}", me.client_id, me.app.app_name);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn introspect_client(&self) -> Result<AppClientResponse, ApiError> {
        self.instrospect_client().await
    }

    /// The correctly spelled [`AccessTokenApi::instrospect_client_with_http_info`].
    ///
    /// ```no_run
    /// # use moneykit::AccessTokenApi;
    /// # async fn example(api_instance: AccessTokenApi) -> Result<(), moneykit::ApiError> {
    /// let (me, status_code, _headers) = api_instance.introspect_client_with_http_info().await?;
    /// assert_eq!(status_code, 200);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn introspect_client_with_http_info(
        &self,
    ) -> Result<WithHttpInfo<AppClientResponse>, ApiError> {
        self.instrospect_client_with_http_info().await
    }

    /// `GET path` with the token of the source, or of the configuration.
    async fn authorized_get<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<WithHttpInfo<T>, ApiError> {
        match &self.tokens {
            Some(source) => {
                source
                    .with_access_token(|token| async move {
                        self.get_presenting(path, |url, nonce| {
                            token.authorization_headers_with_nonce("GET", url, nonce)
                        })
                        .await
                    })
                    .await
            }
            None => match (&self.client.config.access_token, &self.dpop) {
                (Some(token), Some(session)) => {
                    self.get_presenting(path, |url, nonce| {
                        authorization_headers(
                            token.expose(),
                            Some(session.key()),
                            "GET",
                            url,
                            nonce,
                        )
                    })
                    .await
                }
                (token, _) => self.client.get(path, token.as_ref()).await,
            },
        }
    }

    /// `GET path` with the headers `present` makes for its URL; when they carry a DPoP
    /// proof and the server demands a nonce, once more with that nonce.
    async fn get_presenting<T: DeserializeOwned>(
        &self,
        path: &str,
        present: impl Fn(&str, Option<&str>) -> Result<HeaderMap, CredentialError>,
    ) -> Result<WithHttpInfo<T>, ApiError> {
        let url = self.client.config.url(path);
        let headers = present(&url, None)?;
        let has_proof = headers.contains_key(DPOP);
        match self.client.get_with_headers(path, headers).await {
            Err(e) if has_proof => match demanded_nonce(&e) {
                Some(nonce) => {
                    let headers = present(&url, Some(&nonce))?;
                    self.client.get_with_headers(path, headers).await
                }
                None => Err(e),
            },
            other => other,
        }
    }
}
