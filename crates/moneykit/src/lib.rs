//! # moneykit
//!
//! A Rust client for the MoneyKit access token API — MoneyKit itself, or a self-hosted
//! [moneykit-auth](https://github.com/moneykit-auth/moneykit-auth) — with the operations
//! and names of the official SDKs' `AccessTokenApi`, plus what a Rust service needs
//! beyond them: tokens that refresh themselves, webhook signature verification, and
//! access token verification for resource servers.
//!
//! ## Layout
//!
//! - [`Configuration`]: host, HTTP Basic credentials, access token, user agent, timeout.
//!   Start from [`Configuration::moneykit`] (MoneyKit's API) or
//!   [`Configuration::self_hosted`] (your moneykit-auth): the host is always a choice.
//! - [`AccessTokenApi`]: `generate_access_token`, `get_well_known_jwks`,
//!   `instrospect_client` (and `introspect_client`), each with a `_with_http_info` variant
//!   returning `(data, status, headers)`.
//! - [`TokenSource`]: a cached access token, refreshed ahead of expiry, one refresh
//!   shared by concurrent callers; the client proves itself with a secret, a
//!   [`PrivateKey`] (`private_key_jwt`, through [`PrivateKeyJwt`]), a TLS client
//!   certificate alone ([`ClientCertificate`]) or, holding no credential at all, a
//!   platform token ([`WorkloadIdentity`]).
//! - Sender-constrained tokens, which a thief cannot use: [`DpopKey`] binds tokens to a
//!   key (DPoP, RFC 9449; every call carries a proof, made by
//!   [`AccessToken::authorization_headers`]), [`ClientCertificate`] to a TLS client
//!   certificate (RFC 8705). [`jwk_thumbprint`] and [`certificate_thumbprint`] compute
//!   what such tokens name in `cnf`.
//! - [`webhooks::Verifier`]: checks `MoneyKit-Signature` headers against the JWKS.
//! - [`AccessTokenVerifier`]: checks access tokens (RFC 9068 JWTs) in a resource server,
//!   against the JWKS found through the issuer's RFC 8414 metadata, giving a
//!   [`VerifiedAccessToken`] or a [`TokenError`]; with
//!   [`AccessTokenVerifier::verify_request`] and a [`ResourceRequest`], DPoP-bound tokens
//!   with their proof ([`DpopProofError`] says why one was refused) and certificate-bound
//!   tokens with their certificate.
//! - `axum` (feature `axum`, off by default): the `Authenticated` extractor, which
//!   verifies the access token of a request — bearer, DPoP, or bound to the
//!   `PeerCertificate` the application gives it — and answers 401/403 as RFC 6750 and
//!   RFC 9449 say.
//! - [`ApiError`]: transport failures, unexpected bodies and API errors kept apart
//!   ([`ErrorKind`]), with the MoneyKit error fields parsed.
//! - The JSON types ([`GenerateAccessTokenResponse`], [`AppClientResponse`], [`JwkSet`], …)
//!   come from `moneykit-wire`, the same crate the server uses.
//!
//! ## Getting a token
//!
//! ```no_run
//! use moneykit::{AccessTokenApi, Configuration, GenerateAccessTokenOpts};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Your own moneykit-auth; for MoneyKit itself, Configuration::moneykit().
//! let config = Configuration::self_hosted("http://127.0.0.1:8080")?.basic_auth("live_…", "mks_…");
//! let api = AccessTokenApi::new(config)?;
//! let token = api
//!     .generate_access_token(GenerateAccessTokenOpts::default())
//!     .await?;
//! println!("{} expires in {} s", token.token_type, token.expires_in);
//! # Ok(())
//! # }
//! ```
//!
//! ## Calling with tokens that refresh themselves
//!
//! ```no_run
//! use moneykit::{AccessTokenApi, Configuration, TokenSource};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Configuration::self_hosted("http://127.0.0.1:8080")?;
//! let tokens = TokenSource::new(config.clone(), "live_…", "mks_…")?;
//! let api = AccessTokenApi::new(config)?.with_token_source(tokens);
//! let me = api.introspect_client().await?; // token fetched, cached, refreshed as needed
//! println!("I am {} of {}", me.client_id, me.app.app_name);
//! # Ok(())
//! # }
//! ```
//!
//! ## Without a client secret
//!
//! With a private key, the server holds only the public key (`private_key_jwt`):
//!
//! ```no_run
//! use moneykit::{Configuration, PrivateKey, TokenSource};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Configuration::self_hosted("https://auth.example.com")?;
//! let key = PrivateKey::from_file("client-key.pem")?; // PEM or private JWK
//! let tokens = TokenSource::with_private_key(config, "live_…", key).build()?;
//! # let _ = tokens.token().await?;
//! # Ok(())
//! # }
//! ```
//!
//! With workload identity federation, the workload holds nothing: the server trusts the
//! token its platform gives it (a Kubernetes service-account token, read again for every
//! refresh):
//!
//! ```no_run
//! use moneykit::{Configuration, TokenSource, WorkloadIdentity};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Configuration::self_hosted("https://auth.example.com")?;
//! let identity = WorkloadIdentity::from_token_file("/var/run/secrets/tokens/moneykit");
//! let tokens = TokenSource::federated(config, identity).build()?;
//! # let _ = tokens.token().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Sender-constrained tokens
//!
//! With a DPoP key, tokens are bound to it, and each of your calls carries a new proof:
//!
//! ```no_run
//! use moneykit::{Configuration, DpopKey, TokenSource};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Configuration::self_hosted("https://auth.example.com")?;
//! let tokens = TokenSource::builder(config, "live_…", "mks_…")
//!     .dpop(DpopKey::generate()?)
//!     .build()?;
//! let url = "https://api.example.com/accounts";
//! let headers = tokens.authorization_headers("GET", url).await?; // Authorization + DPoP
//! let accounts = reqwest::Client::new().get(url).headers(headers).send().await?;
//! # let _ = accounts;
//! # Ok(())
//! # }
//! ```
//!
//! With a TLS client certificate, the certificate can be the client's only credential,
//! and the tokens are bound to it:
//!
//! ```no_run
//! use moneykit::{ClientCertificate, Configuration, TokenSource};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let certificate = ClientCertificate::from_files("client.crt", "client.key")?;
//! let config = Configuration::self_hosted("https://auth.example.com")?;
//! let tokens = TokenSource::with_client_certificate(config, "live_…", certificate).build()?;
//! # let _ = tokens.token().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Protecting an API
//!
//! ```no_run
//! use moneykit::{AccessTokenVerifier, TokenError};
//!
//! # async fn example(bearer_token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! // Keep one per process: it caches the keys and the tokens it verified.
//! let verifier = AccessTokenVerifier::builder("http://127.0.0.1:8080", "https://api.example.com")
//!     .build()?;
//! match verifier.verify(bearer_token).await {
//!     Ok(token) if token.has_scope("accounts:read") => {
//!         println!("{} of app {}", token.client_id(), token.app_id())
//!     }
//!     Ok(_) => eprintln!("403: the token lacks accounts:read"),
//!     Err(TokenError::Expired) => eprintln!("401: expired, get a new token"),
//!     Err(e) => eprintln!("401: {e}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `verify` takes bearer tokens only. To accept DPoP-bound and certificate-bound tokens,
//! give the whole request to [`AccessTokenVerifier::verify_request`]; with the `axum`
//! feature, `moneykit::axum::Authenticated` does this as an extractor; see
//! `examples/resource_server.rs`.
//!
//! ## Cargo features
//!
//! - `axum` (off by default): `moneykit::axum`, the `Authenticated` extractor and its
//!   RFC 6750 and RFC 9449 rejections.
//!
//! ## Errors
//!
//! ```no_run
//! # use moneykit::{AccessTokenApi, Configuration, ErrorKind, GenerateAccessTokenOpts};
//! # async fn example(api: AccessTokenApi) {
//! match api.generate_access_token(GenerateAccessTokenOpts::default()).await {
//!     Ok(token) => println!("scope: {}", token.scope),
//!     Err(e) if e.error_code() == Some("api_error.auth.unauthorized") => {
//!         eprintln!("wrong client id or secret")
//!     }
//!     Err(e) if e.kind() == ErrorKind::Transport => eprintln!("cannot reach the server: {e}"),
//!     Err(e) => eprintln!("{e}"),
//! }
//! # }
//! ```
//!
//! Secrets and tokens are held in [`Secret`], whose `Debug` and `Display` print
//! `[redacted]`.

mod access_token;
#[cfg(feature = "axum")]
pub mod axum;
mod client;
mod client_assertion;
mod client_certificate;
mod configuration;
mod dpop;
mod dpop_proof;
mod error;
mod jwk;
mod jwks_cache;
mod jwt;
mod private_key;
mod secret;
mod token_request;
mod token_source;
mod verifier;
pub mod webhooks;
mod workload_identity;

/// README.md's Rust examples, compiled and checked as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use access_token::AccessTokenApi;
pub use client::WithHttpInfo;
pub use client_assertion::PrivateKeyJwt;
pub use client_certificate::{ClientCertificate, certificate_thumbprint};
pub use configuration::{Configuration, DEFAULT_HOST, InvalidBaseUrl};
pub use dpop::DpopKey;
pub use dpop_proof::DpopProofError;
pub use error::{ApiError, CredentialError, ErrorKind, TransportError};
pub use jwk::jwk_thumbprint;
pub use moneykit_wire::{
    AppClientResponse, AppResponse, ErrorBody, GenerateAccessTokenResponse, Jwk, JwkSet,
    ValidationError, WebhookSignatureClaims,
};
pub use private_key::{JwsAlgorithm, PrivateKey};
pub use secret::Secret;
pub use token_request::GenerateAccessTokenOpts;
pub use token_source::{AccessToken, TokenSource, TokenSourceBuilder};
pub use verifier::{
    AccessTokenVerifier, AccessTokenVerifierBuilder, MAX_TOKEN_LEN, ResourceRequest, TokenError,
    VerifiedAccessToken,
};
pub use workload_identity::WorkloadIdentity;
