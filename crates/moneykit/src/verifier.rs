//! [`AccessTokenVerifier`]: checks the access tokens the server issues — ES256 JWTs per
//! RFC 9068 — in a resource server, without a call to the server per request.
//!
//! The checks, in order: the token is at most [`MAX_TOKEN_LEN`] bytes and a compact JWT;
//! its header says `alg` ES256 (nothing else), `typ` `at+jwt`, has no `crit` and names a
//! `kid`; that key is in the issuer's JWKS (found through RFC 8414 metadata, cached, and
//! refetched at most once per [`AccessTokenVerifierBuilder::min_refetch_interval`] when a
//! `kid` is unknown); the signature verifies; and only then the claims: `iss` is the
//! issuer, `aud` names an accepted audience, `exp`, `nbf` and `iat` fit the clock (with
//! [`AccessTokenVerifierBuilder::leeway`]).
//!
//! A token that passed is remembered by its SHA-256 until it expires, so verifying it
//! again skips the signature; the time checks still run every time.
//!
//! Sender-constrained tokens — bound to a DPoP key (`cnf.jkt`, RFC 9449) or to a TLS
//! client certificate (`cnf["x5t#S256"]`, RFC 8705) — are accepted only by
//! [`AccessTokenVerifier::verify_request`], which sees the proof of possession: the
//! request's `DPoP` proof, or the certificate its connection presented.
//! [`AccessTokenVerifier::verify`] refuses them, since a bound token alone proves nothing.
//!
//! The DPoP checks (RFC 9449 §4.3 and §7.1): the token comes with the `DPoP` scheme and
//! exactly one `DPoP` header; the proof's `typ` is `dpop+jwt`, its `alg` one of ES256,
//! ES384, EdDSA, RS256, PS256, its `jwk` a public key of that kind that verifies the
//! signature; `htm` is the request's method and `htu` its URL (see
//! [`AccessTokenVerifierBuilder::public_url`]); `iat` is within
//! [`AccessTokenVerifierBuilder::dpop_proof_window`] of now; `ath` is the hash of the
//! token; the `jwk`'s thumbprint is the token's `cnf.jkt`; and its `jti` was not accepted
//! before within the window. A token without `cnf.jkt` sent with the `DPoP` scheme is
//! refused as well (RFC 9449 §7.1: the scheme claims a binding the token does not have).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, Method, Uri};
use moneykit_wire::{Audience, JwkSet};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Map, Value};

use crate::client::read_body;
use crate::client_certificate::certificate_thumbprint;
use crate::configuration::{Configuration, InvalidBaseUrl};
use crate::dpop_proof::{DpopProofError, ExpectedProof, ReplayCache, ReplayRefusal, check_proof};
use crate::error::ApiError;
use crate::jwks_cache::JwksCache;
use crate::jwt::{DPOP, unix_now};

/// Longest token [`AccessTokenVerifier::verify`] looks at; real tokens are about 600 bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CACHE_CAPACITY: usize = 10_000;
const DEFAULT_DPOP_PROOF_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_DPOP_REPLAY_CAPACITY: usize = 100_000;
const WELL_KNOWN_METADATA: &str = "/.well-known/oauth-authorization-server";

/// Why an access token was not accepted, or could not be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWT with a readable header and claims.
    #[error("malformed access token: {0}")]
    Malformed(&'static str),
    /// Signed with another algorithm than ES256 (or none).
    #[error("unsupported token algorithm {0:?}: only ES256 is accepted")]
    UnsupportedAlgorithm(String),
    /// The header `typ` is not `at+jwt`: some other kind of JWT.
    #[error("not an access token: the header typ is not at+jwt")]
    WrongType,
    /// No published key has this `kid`, even after refetching the JWKS.
    #[error("unknown signing key {0:?}")]
    UnknownKey(String),
    /// The signature does not verify under the named key.
    #[error("the token signature does not verify")]
    BadSignature,
    /// `iss` is not the configured issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// `exp` is past (beyond the leeway).
    #[error("the token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The authorization server metadata could not be fetched or read.
    #[error("cannot fetch the authorization server metadata: {0}")]
    Discovery(#[source] ApiError),
    /// The metadata names another issuer than the configured one (RFC 8414 §3.3).
    #[error("the authorization server metadata names issuer {found:?}, not {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The metadata's `issuer`.
        found: String,
    },
    /// The JWKS could not be fetched or read.
    #[error("cannot fetch the JWKS: {0}")]
    Jwks(#[source] ApiError),
    /// The request has no `Authorization` header with the `Bearer` or `DPoP` scheme.
    #[error("the request carries no access token")]
    MissingToken,
    /// Several `Authorization` headers, or one that is not text.
    #[error("malformed Authorization header")]
    InvalidAuthorization,
    /// A DPoP-bound token (`cnf.jkt`) without its proof: sent as a bearer token, or
    /// given to [`AccessTokenVerifier::verify`].
    #[error("the token is DPoP-bound: present it with the DPoP scheme and a proof")]
    DpopBound,
    /// The `DPoP` scheme with a token that is not DPoP-bound.
    #[error("the token is not DPoP-bound, but was sent with the DPoP scheme")]
    NotDpopBound,
    /// The request's DPoP proof is missing or does not hold.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(#[source] DpopProofError),
    /// The DPoP proof holds, but its key is not the one the token is bound to.
    #[error("the DPoP proof's key is not the one the token is bound to")]
    DpopKeyMismatch,
    /// So many DPoP proofs arrived within the window that no more can be remembered:
    /// refused until some leave it (see
    /// [`AccessTokenVerifierBuilder::dpop_replay_capacity`]).
    #[error("too many DPoP proofs to check for replay right now")]
    DpopReplayCacheFull,
    /// A certificate-bound token (`cnf["x5t#S256"]`), and the request presented no client
    /// certificate.
    #[error("the token is bound to a client certificate, and none was presented")]
    CertificateRequired,
    /// The client certificate presented is not the one the token is bound to.
    #[error("the token is bound to another client certificate")]
    CertificateMismatch,
    /// `cnf` binds the token by a method this verifier cannot check.
    #[error("the token is bound by an unsupported confirmation method")]
    UnsupportedConfirmation,
}

/// The claims of an access token that verified. Cheap to clone.
#[derive(Debug, Clone)]
pub struct VerifiedAccessToken(Arc<Claims>);

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    /// Absent reads as no audience, refused as the wrong one.
    #[serde(default)]
    aud: Audience,
    sub: String,
    client_id: String,
    app_id: String,
    #[serde(default)]
    scope: String,
    iat: i64,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
    #[serde(default)]
    cnf: Option<Confirmation>,
}

/// `cnf` (RFC 7800): what the token is bound to.
#[derive(Debug, Deserialize)]
struct Confirmation {
    /// The thumbprint of a DPoP key (RFC 9449 §6).
    #[serde(default)]
    jkt: Option<String>,
    /// The thumbprint of a client certificate (RFC 8705 §3.1).
    #[serde(default, rename = "x5t#S256")]
    x5t_s256: Option<String>,
    /// Other confirmation methods, which cannot be checked here.
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl VerifiedAccessToken {
    /// The client the token was issued to (`client_id`).
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The client's app (`app_id`).
    pub fn app_id(&self) -> &str {
        &self.0.app_id
    }

    /// `sub`: the client id too, for client-credentials tokens.
    pub fn subject(&self) -> &str {
        &self.0.sub
    }

    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.0.iss
    }

    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.0.scope.split_ascii_whitespace()
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// `aud`, as a list even when the token has a single string.
    pub fn audiences(&self) -> &[String] {
        self.0.aud.as_slice()
    }

    /// `exp` (Unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.0.exp
    }

    /// `iat` (Unix seconds).
    pub fn issued_at(&self) -> i64 {
        self.0.iat
    }

    /// `nbf` (Unix seconds), when the token has one.
    pub fn not_before(&self) -> Option<i64> {
        self.0.nbf
    }

    /// `jti`: the token's unique id, what revocation names.
    pub fn token_id(&self) -> &str {
        &self.0.jti
    }

    /// `cnf.jkt`: the thumbprint of the DPoP key the token is bound to, if it is.
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.0.cnf.as_ref()?.jkt.as_deref()
    }

    /// `cnf["x5t#S256"]`: the thumbprint of the client certificate the token is bound to,
    /// if it is.
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.0.cnf.as_ref()?.x5t_s256.as_deref()
    }

    /// `Ok` if the client certificate `der` (the DER of the leaf the TLS connection
    /// presented) is the one the token is bound to, or the token is not bound to one.
    pub fn check_client_certificate(&self, der: &[u8]) -> Result<(), TokenError> {
        match self.certificate_thumbprint() {
            Some(bound) if bound != certificate_thumbprint(der) => {
                Err(TokenError::CertificateMismatch)
            }
            _ => Ok(()),
        }
    }
}

/// What a request to a resource server presents, for
/// [`AccessTokenVerifier::verify_request`]: its method, URI and headers, and the client
/// certificate of its TLS connection if there was one. Any HTTP framework built on the
/// `http` crate has these.
#[derive(Debug, Clone, Copy)]
pub struct ResourceRequest<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    client_certificate: Option<&'a [u8]>,
}

impl<'a> ResourceRequest<'a> {
    /// A request as received: `uri` is usually only a path, and the URL a DPoP proof is
    /// checked against is then made from the `Host` header or the verifier's
    /// [`public_url`](AccessTokenVerifierBuilder::public_url).
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        Self {
            method,
            uri,
            headers,
            client_certificate: None,
        }
    }

    /// The DER of the client certificate the request's TLS connection presented (its
    /// leaf), which a certificate-bound token must match.
    pub fn client_certificate(mut self, der: &'a [u8]) -> Self {
        self.client_certificate = Some(der);
        self
    }
}

/// The access token of a request, by scheme.
enum Presented<'a> {
    Bearer(&'a str),
    Dpop(&'a str),
}

/// The token of the request's one `Authorization` header, `Bearer` or `DPoP` (any case).
fn presented_token(headers: &HeaderMap) -> Result<Presented<'_>, TokenError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(match headers.contains_key(AUTHORIZATION) {
            true => TokenError::InvalidAuthorization,
            false => TokenError::MissingToken,
        });
    };
    let value = value
        .to_str()
        .map_err(|_| TokenError::InvalidAuthorization)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Presented::Bearer(token.trim()))
        }
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(DPOP) => {
            Ok(Presented::Dpop(token.trim()))
        }
        _ => Err(TokenError::MissingToken),
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// The part of the RFC 8414 metadata the verifier reads; everything else is ignored.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// Verifies access tokens for a resource server. Cheap to clone (clones share the key and
/// verification caches); keep one per process.
///
/// ```no_run
/// use moneykit::AccessTokenVerifier;
///
/// # async fn example(authorization_header: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = AccessTokenVerifier::builder("http://127.0.0.1:8080", "https://api.example.com")
///     .build()?;
/// verifier.discover().await?; // optional: else the first verify discovers
/// let token = authorization_header.trim_start_matches("Bearer ");
/// match verifier.verify(token).await {
///     Ok(t) if t.has_scope("accounts:read") => println!("{} of {}", t.client_id(), t.app_id()),
///     Ok(_) => eprintln!("forbidden: missing scope accounts:read"),
///     Err(e) => eprintln!("unauthorized: {e}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AccessTokenVerifier(Arc<Inner>);

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    leeway: i64,
    keys: JwksCache,
    /// `None` for a fixed key set.
    remote: Option<Remote>,
    verified: VerifiedCache,
    /// The base of the URLs clients call, without a trailing slash; `None`: from the
    /// request.
    public_url: Option<String>,
    /// How far a DPoP proof's `iat` may be from now, in seconds.
    dpop_proof_window: i64,
    used_proofs: ReplayCache,
}

struct Remote {
    http: reqwest::Client,
    timeout: Duration,
    metadata_url: String,
    /// From the builder, or discovered once.
    jwks_uri: OnceLock<String>,
}

impl fmt::Debug for AccessTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenVerifier")
            .field("issuer", &self.0.issuer)
            .field("audiences", &self.0.audiences)
            .field("leeway", &self.0.leeway)
            .finish_non_exhaustive()
    }
}

/// Options of an [`AccessTokenVerifier`]; from [`AccessTokenVerifier::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AccessTokenVerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    leeway: Duration,
    min_refetch_interval: Duration,
    timeout: Duration,
    http: Option<reqwest::Client>,
    jwks_uri: Option<String>,
    cache_capacity: usize,
    public_url: Option<String>,
    dpop_proof_window: Duration,
    dpop_replay_capacity: usize,
}

impl AccessTokenVerifierBuilder {
    /// Accepts tokens for `audience` too (a token passes when its `aud` names any
    /// accepted audience).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 5 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The shortest time between two JWKS fetches triggered by unknown `kid`s (default
    /// 30 s), so forged tokens cannot make the verifier hammer the JWKS endpoint.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Timeout of each metadata or JWKS request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Fetches with this client (proxies, TLS roots, connection pool shared with the
    /// application) instead of a new one.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Fetches the JWKS from here and skips the metadata (for issuers that publish none).
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// How many verified tokens to remember (default 10 000); 0 turns the cache off. A
    /// remembered token stays valid until `exp` even if its key leaves the JWKS meanwhile.
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// The URL clients call this API at — scheme, host, port and any path prefix a proxy
    /// strips, e.g. `https://api.example.com` — so a DPoP proof's `htu` is checked
    /// against what the client saw rather than what reached this process. Without it,
    /// the URL is the request's own if absolute (HTTP/2), else `http://` + its `Host`
    /// header + its path: set it whenever TLS or a proxy stands between the client and
    /// this process. Refused unless `http://` or `https://` with a host and no query.
    pub fn public_url(mut self, url: impl AsRef<str>) -> Result<Self, InvalidBaseUrl> {
        self.public_url = Some(Configuration::self_hosted(url)?.host);
        Ok(self)
    }

    /// How far a DPoP proof's `iat` may be from now, either way (default 60 s): its
    /// lifetime, and how long its `jti` is remembered against replay.
    pub fn dpop_proof_window(mut self, window: Duration) -> Self {
        self.dpop_proof_window = window;
        self
    }

    /// How many DPoP proofs to remember against replay (default 100 000, about 10 MB):
    /// when that many arrived within the proof window, further DPoP requests are refused
    /// with [`TokenError::DpopReplayCacheFull`] until some leave it — the verifier fails
    /// closed rather than forget a proof that could be replayed.
    pub fn dpop_replay_capacity(mut self, capacity: usize) -> Self {
        self.dpop_replay_capacity = capacity;
        self
    }

    /// A verifier that discovers the keys on the first [`AccessTokenVerifier::verify`]
    /// (or [`AccessTokenVerifier::discover`]). Fails only if the HTTP client cannot start.
    pub fn build(mut self) -> Result<AccessTokenVerifier, ApiError> {
        let http = match self.http.take() {
            Some(client) => client,
            None => reqwest::Client::builder()
                .user_agent(format!("moneykit-rust/{}", env!("CARGO_PKG_VERSION")))
                .build()?,
        };
        let remote = Remote {
            http,
            timeout: self.timeout,
            metadata_url: metadata_url(&self.issuer),
            jwks_uri: self.jwks_uri.take().map(OnceLock::from).unwrap_or_default(),
        };
        let keys = JwksCache::new(self.min_refetch_interval);
        Ok(self.finish(keys, Some(remote)))
    }

    /// A verifier with a fixed key set that never fetches (offline use, tests).
    pub fn build_with_jwks(self, jwks: &JwkSet) -> AccessTokenVerifier {
        let keys = JwksCache::with_keys(jwks, Duration::MAX);
        self.finish(keys, None)
    }

    fn finish(self, keys: JwksCache, remote: Option<Remote>) -> AccessTokenVerifier {
        AccessTokenVerifier(Arc::new(Inner {
            issuer: self.issuer,
            audiences: self.audiences,
            leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            keys,
            remote,
            verified: VerifiedCache::new(self.cache_capacity),
            public_url: self.public_url,
            dpop_proof_window: i64::try_from(self.dpop_proof_window.as_secs()).unwrap_or(i64::MAX),
            used_proofs: ReplayCache::new(self.dpop_replay_capacity),
        }))
    }
}

/// Where RFC 8414 §3.1 puts the metadata of `issuer`: after the host, before any path.
fn metadata_url(issuer: &str) -> String {
    match reqwest::Url::parse(issuer) {
        Ok(url) if url.path() != "/" => format!(
            "{}{WELL_KNOWN_METADATA}{}",
            url.origin().ascii_serialization(),
            url.path().trim_end_matches('/')
        ),
        _ => format!("{}{WELL_KNOWN_METADATA}", issuer.trim_end_matches('/')),
    }
}

impl AccessTokenVerifier {
    /// Options for verifying tokens of `issuer` (exactly as in their `iss`, e.g.
    /// `http://127.0.0.1:8080`) meant for `audience`.
    pub fn builder(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> AccessTokenVerifierBuilder {
        AccessTokenVerifierBuilder {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            leeway: DEFAULT_LEEWAY,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            http: None,
            jwks_uri: None,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            public_url: None,
            dpop_proof_window: DEFAULT_DPOP_PROOF_WINDOW,
            dpop_replay_capacity: DEFAULT_DPOP_REPLAY_CAPACITY,
        }
    }

    /// A verifier with the default options and a fixed key set: it never fetches.
    pub fn from_jwks(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: &JwkSet,
    ) -> Self {
        Self::builder(issuer, audience).build_with_jwks(jwks)
    }

    /// Fetches the metadata (once) and the JWKS now, so a misconfiguration shows at
    /// startup rather than on the first request. Does nothing for a fixed key set.
    pub async fn discover(&self) -> Result<(), TokenError> {
        if self.0.remote.is_some() {
            self.0.keys.refresh(|| self.fetch_jwks()).await?;
        }
        Ok(())
    }

    /// Verifies `token` (the bare JWT, without `Bearer `) now, as a bearer token: a token
    /// bound to a DPoP key or a client certificate is refused ([`TokenError::DpopBound`],
    /// [`TokenError::CertificateRequired`]), since only
    /// [`AccessTokenVerifier::verify_request`] sees the proof it needs.
    pub async fn verify(&self, token: &str) -> Result<VerifiedAccessToken, TokenError> {
        self.verify_at(token, unix_now()).await
    }

    /// [`AccessTokenVerifier::verify`] as if the time were `now` (Unix seconds).
    pub async fn verify_at(
        &self,
        token: &str,
        now: i64,
    ) -> Result<VerifiedAccessToken, TokenError> {
        let token = self.verify_signed_at(token, now).await?;
        check_confirmation(&token)?;
        if token.dpop_thumbprint().is_some() {
            return Err(TokenError::DpopBound);
        }
        if token.certificate_thumbprint().is_some() {
            return Err(TokenError::CertificateRequired);
        }
        Ok(token)
    }

    /// Verifies the access token of a request now: a bearer token as
    /// [`AccessTokenVerifier::verify`] does, a DPoP-bound one with its `DPoP` proof, a
    /// certificate-bound one against the request's client certificate.
    ///
    /// ```no_run
    /// use moneykit::{AccessTokenVerifier, ResourceRequest};
    ///
    /// # async fn example(request: http::Request<()>) -> Result<(), Box<dyn std::error::Error>> {
    /// let verifier = AccessTokenVerifier::builder("https://auth.example.com", "https://api.example.com")
    ///     .public_url("https://api.example.com")?
    ///     .build()?;
    /// let presented = ResourceRequest::new(request.method(), request.uri(), request.headers());
    /// let token = verifier.verify_request(&presented).await?;
    /// println!("{} (DPoP: {})", token.client_id(), token.dpop_thumbprint().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn verify_request(
        &self,
        request: &ResourceRequest<'_>,
    ) -> Result<VerifiedAccessToken, TokenError> {
        self.verify_request_at(request, unix_now()).await
    }

    /// [`AccessTokenVerifier::verify_request`] as if the time were `now` (Unix seconds).
    pub async fn verify_request_at(
        &self,
        request: &ResourceRequest<'_>,
        now: i64,
    ) -> Result<VerifiedAccessToken, TokenError> {
        let presented = presented_token(request.headers)?;
        let (Presented::Bearer(raw) | Presented::Dpop(raw)) = presented;
        let token = self.verify_signed_at(raw, now).await?;
        check_confirmation(&token)?;
        match (presented, token.dpop_thumbprint()) {
            (Presented::Bearer(_), Some(_)) => return Err(TokenError::DpopBound),
            (Presented::Dpop(_), None) => return Err(TokenError::NotDpopBound),
            (Presented::Dpop(raw), Some(jkt)) => self.check_dpop(request, raw, jkt, now)?,
            (Presented::Bearer(_), None) => {}
        }
        if token.certificate_thumbprint().is_some() {
            let der = request
                .client_certificate
                .ok_or(TokenError::CertificateRequired)?;
            token.check_client_certificate(der)?;
        }
        Ok(token)
    }

    /// Checks the request's one DPoP proof for the token `raw` bound to `jkt`, and
    /// records it as used.
    fn check_dpop(
        &self,
        request: &ResourceRequest<'_>,
        raw: &str,
        jkt: &str,
        now: i64,
    ) -> Result<(), TokenError> {
        let invalid = TokenError::InvalidDpopProof;
        let mut proofs = request.headers.get_all(DPOP).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => return Err(invalid(DpopProofError::Missing)),
            (Some(_), Some(_)) => return Err(invalid(DpopProofError::Several)),
            (Some(proof), None) => proof
                .to_str()
                .map_err(|_| invalid(DpopProofError::Malformed("not text")))?,
        };
        let url = self
            .request_url(request)
            .ok_or(invalid(DpopProofError::WrongUrl))?;
        let window = self.0.dpop_proof_window;
        let expected = ExpectedProof {
            method: request.method.as_str(),
            url: &url,
            access_token: raw,
            now,
            window,
        };
        let proof = check_proof(proof, &expected).map_err(invalid)?;
        if proof.thumbprint != jkt {
            return Err(TokenError::DpopKeyMismatch);
        }
        let forget_after = proof.iat.saturating_add(window);
        match self
            .0
            .used_proofs
            .record(proof.replay_key, forget_after, now)
        {
            Ok(()) => Ok(()),
            Err(ReplayRefusal::Replayed) => Err(invalid(DpopProofError::Replayed)),
            Err(ReplayRefusal::Full) => Err(TokenError::DpopReplayCacheFull),
        }
    }

    /// The URL the client called: the public URL, or the request's own, or its `Host`'s.
    fn request_url(&self, request: &ResourceRequest<'_>) -> Option<reqwest::Url> {
        let path = request.uri.path();
        let base = match (
            &self.0.public_url,
            request.uri.scheme(),
            request.uri.authority(),
        ) {
            (Some(base), _, _) => base.clone(),
            (None, Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            (None, _, _) => {
                let mut hosts = request.headers.get_all(HOST).iter();
                let (Some(host), None) = (hosts.next(), hosts.next()) else {
                    return None;
                };
                format!("http://{}", host.to_str().ok()?)
            }
        };
        reqwest::Url::parse(&format!("{base}{path}")).ok()
    }

    /// The checks of every token: signature, issuer, audience, times.
    async fn verify_signed_at(
        &self,
        token: &str,
        now: i64,
    ) -> Result<VerifiedAccessToken, TokenError> {
        use TokenError::Malformed;
        if token.len() > MAX_TOKEN_LEN {
            return Err(Malformed("longer than 8 KiB"));
        }
        let hash = self.0.verified.enabled().then(|| token_hash(token));
        if let Some(claims) = hash.as_ref().and_then(|h| self.0.verified.get(h)) {
            self.check_times(&claims, now)?;
            return Ok(VerifiedAccessToken(claims));
        }

        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Malformed("not a compact JWT"));
        };
        let header: Header =
            serde_json::from_slice(&decode(header_b64)?).map_err(|_| Malformed("bad header"))?;
        if header.alg != "ES256" {
            return Err(TokenError::UnsupportedAlgorithm(header.alg));
        }
        let typ = header.typ.as_deref().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(TokenError::WrongType);
        }
        if header.crit.is_some() {
            return Err(Malformed("critical header parameters are not supported"));
        }
        let kid = header.kid.ok_or(Malformed("no kid in the header"))?;
        let signature = decode(sig_b64)?;
        let key = self.key(&kid).await?;
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        key.verify_sig(signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;

        let claims: Claims =
            serde_json::from_slice(&decode(claims_b64)?).map_err(|_| Malformed("bad claims"))?;
        if claims.iss != self.0.issuer {
            return Err(TokenError::WrongIssuer);
        }
        let token = VerifiedAccessToken(Arc::new(claims));
        if !token
            .audiences()
            .iter()
            .any(|a| self.0.audiences.contains(a))
        {
            return Err(TokenError::WrongAudience);
        }
        self.check_times(&token.0, now)?;
        if let Some(hash) = hash {
            self.0
                .verified
                .insert(hash, Arc::clone(&token.0), now, self.0.leeway);
        }
        Ok(token)
    }

    fn check_times(&self, claims: &Claims, now: i64) -> Result<(), TokenError> {
        let leeway = self.0.leeway;
        if now >= claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        let latest_start = now.saturating_add(leeway);
        if claims.iat > latest_start || claims.nbf.is_some_and(|nbf| nbf > latest_start) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }

    async fn key(&self, kid: &str) -> Result<Arc<ParsedPublicKey>, TokenError> {
        let key = match &self.0.remote {
            Some(_) => {
                self.0
                    .keys
                    .get_or_refetch(kid, || self.fetch_jwks())
                    .await?
            }
            None => self.0.keys.get(kid),
        };
        key.ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))
    }

    /// The JWKS, from the `jwks_uri` of the metadata (read once).
    async fn fetch_jwks(&self) -> Result<JwkSet, TokenError> {
        let Some(remote) = &self.0.remote else {
            return Ok(JwkSet::default());
        };
        let jwks_uri = match remote.jwks_uri.get() {
            Some(uri) => uri,
            None => {
                let metadata: Metadata = remote
                    .get_json(&remote.metadata_url)
                    .await
                    .map_err(TokenError::Discovery)?;
                if metadata.issuer != self.0.issuer {
                    return Err(TokenError::IssuerMismatch {
                        expected: self.0.issuer.clone(),
                        found: metadata.issuer,
                    });
                }
                remote.jwks_uri.get_or_init(|| metadata.jwks_uri)
            }
        };
        remote.get_json(jwks_uri).await.map_err(TokenError::Jwks)
    }
}

impl Remote {
    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ApiError> {
        let response = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        // Read at most MAX_DOCUMENT_BYTES: a larger document is cut there, fails to parse
        // and is reported as an unexpected body, without ever being held whole.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_DOCUMENT_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() >= room {
                break;
            }
        }
        Ok(read_body(status, headers, body.into())?.0)
    }
}

/// `Ok` unless `cnf` binds the token only by methods this verifier cannot check.
fn check_confirmation(token: &VerifiedAccessToken) -> Result<(), TokenError> {
    match &token.0.cnf {
        Some(cnf) if !cnf.other.is_empty() || (cnf.jkt.is_none() && cnf.x5t_s256.is_none()) => {
            Err(TokenError::UnsupportedConfirmation)
        }
        _ => Ok(()),
    }
}

/// Largest metadata or JWKS document read; real ones are a few KiB.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

fn decode(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed("not base64url"))
}

type TokenHash = [u8; 32];

fn token_hash(token: &str) -> TokenHash {
    let mut hash = [0; 32];
    hash.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    hash
}

/// Tokens that verified, by SHA-256, until they expire. Bounded: when full, expired
/// entries go, and if that is not enough, everything does (tokens live minutes, so the
/// cache refills with what is in use).
struct VerifiedCache {
    capacity: usize,
    entries: Mutex<HashMap<TokenHash, Arc<Claims>>>,
}

impl VerifiedCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
        }
    }

    fn enabled(&self) -> bool {
        self.capacity > 0
    }

    fn get(&self, hash: &TokenHash) -> Option<Arc<Claims>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(hash).cloned()
    }

    fn insert(&self, hash: TokenHash, claims: Arc<Claims>, now: i64, leeway: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, c| now < c.exp.saturating_add(leeway));
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(hash, claims);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_follows_rfc_8414() {
        assert_eq!(
            metadata_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://auth.example.com/"),
            "https://auth.example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://example.com/mk"),
            "https://example.com/.well-known/oauth-authorization-server/mk"
        );
    }

    #[test]
    fn the_cache_is_bounded_and_drops_expired_entries_first() {
        let claims = |exp| {
            Arc::new(Claims {
                iss: String::new(),
                aud: Audience::single(""),
                sub: String::new(),
                client_id: String::new(),
                app_id: String::new(),
                scope: String::new(),
                iat: 0,
                exp,
                nbf: None,
                jti: String::new(),
                cnf: None,
            })
        };
        let cache = VerifiedCache::new(2);
        cache.insert([1; 32], claims(10), 0, 0);
        cache.insert([2; 32], claims(100), 0, 0);
        cache.insert([3; 32], claims(100), 50, 0); // [1] expired: dropped
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.get(&[2; 32]).is_some() && cache.get(&[3; 32]).is_some());
        cache.insert([4; 32], claims(100), 50, 0); // nothing expired: cleared
        assert!(cache.get(&[2; 32]).is_none() && cache.get(&[4; 32]).is_some());
    }
}
