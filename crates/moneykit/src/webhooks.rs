//! Verifying signed webhooks, the way MoneyKit's own receivers do.
//!
//! Every delivery carries a `MoneyKit-Signature` header: an ES256 JWT whose header names
//! the signing key (`kid`) and whose claims hold the signing time (`iat`) and the hex
//! SHA-256 of the exact body (`request_body_sha256`). [`Verifier`] checks, in order: the
//! JWT is well formed and ES256 (nothing else is accepted), its `kid` is in the JWKS
//! (fetched once and cached, refetched at most every
//! [`Verifier::min_refetch_interval`] when a `kid` is unknown), the signature verifies,
//! `iat` is within 5 minutes of now, and the body hash matches in constant time.
//!
//! ```no_run
//! use moneykit::webhooks::Verifier;
//! use moneykit::{AccessTokenApi, Configuration};
//!
//! # async fn handle(signature_header: &str, raw_body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let api = AccessTokenApi::new(Configuration::self_hosted("http://127.0.0.1:8080")?)?;
//! let verifier = Verifier::new(api); // keep one per process: it caches the JWKS
//! match verifier.verify(signature_header, raw_body).await {
//!     Ok(claims) => println!("genuine, signed at {}", claims.iat),
//!     Err(e) => eprintln!("rejecting webhook: {e}"),
//! }
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit_wire::{JwkSet, WebhookSignatureClaims};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::access_token::AccessTokenApi;
use crate::error::ApiError;
use crate::jwks_cache::JwksCache;

pub use moneykit_wire::webhook::{
    DELIVERY_ATTEMPT_HEADER, DELIVERY_TOKEN_HEADER, SIGNATURE_HEADER,
};

/// Clock leeway on `iat`, as MoneyKit's receivers allow.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// Why a webhook was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The header is not a JWT with the expected header and claims.
    #[error("malformed MoneyKit-Signature: {0}")]
    MalformedSignature(&'static str),
    /// The JWT is signed with another algorithm than ES256.
    #[error("unsupported signature algorithm {0:?}: only ES256 is accepted")]
    UnsupportedAlgorithm(String),
    /// No published key has this `kid`, even after refetching the JWKS.
    #[error("unknown signing key {0:?}")]
    UnknownKey(String),
    /// The signature does not verify under the named key.
    #[error("the signature does not verify")]
    BadSignature,
    /// `iat` is further from now than the leeway allows.
    #[error("signed at {iat}, outside the allowed leeway around now ({now})")]
    IssuedAtOutsideLeeway {
        /// The claim.
        iat: i64,
        /// This process's clock.
        now: i64,
    },
    /// The body is not the one that was signed.
    #[error("the body does not match the signed hash")]
    BodyMismatch,
    /// The JWKS could not be fetched.
    #[error("cannot fetch the JWKS: {0}")]
    Jwks(#[source] ApiError),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Verifies `MoneyKit-Signature` headers. Keep one per process: it caches the JWKS.
#[derive(Debug)]
pub struct Verifier {
    api: Option<AccessTokenApi>,
    cache: JwksCache,
    leeway: Duration,
}

impl Verifier {
    /// A verifier that fetches the JWKS through `api` on first use.
    pub fn new(api: AccessTokenApi) -> Self {
        Self {
            api: Some(api),
            cache: JwksCache::new(Duration::from_secs(30)),
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// A verifier with a fixed key set that never fetches (offline use, tests).
    pub fn from_jwks(jwks: &JwkSet) -> Self {
        Self {
            api: None,
            cache: JwksCache::with_keys(jwks, Duration::MAX),
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// The shortest time between two JWKS fetches triggered by unknown `kid`s (default
    /// 30 s), so forged headers cannot make the verifier hammer the JWKS endpoint.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.cache.min_refetch_interval = interval;
        self
    }

    /// The allowed distance between `iat` and now (default 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Verifies a webhook: `signature` is the `MoneyKit-Signature` header value, `body`
    /// the raw request body exactly as received.
    pub async fn verify(
        &self,
        signature: &str,
        body: &[u8],
    ) -> Result<WebhookSignatureClaims, WebhookError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        self.verify_at(signature, body, now).await
    }

    /// [`Verifier::verify`] at a given time (Unix seconds).
    pub async fn verify_at(
        &self,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<WebhookSignatureClaims, WebhookError> {
        use WebhookError::MalformedSignature as Malformed;
        let signature = signature.trim();
        let mut parts = signature.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Malformed("not a compact JWT"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| Malformed("not base64url"))
        };
        let header: Header =
            serde_json::from_slice(&decode(header_b64)?).map_err(|_| Malformed("bad header"))?;
        if header.alg != "ES256" {
            return Err(WebhookError::UnsupportedAlgorithm(header.alg));
        }
        let kid = header.kid.ok_or(Malformed("no kid in the header"))?;
        let signature_bytes = decode(sig_b64)?;
        let signing_input = &signature[..header_b64.len() + 1 + claims_b64.len()];
        self.check_signature(&kid, signing_input.as_bytes(), &signature_bytes)
            .await?;

        let claims: WebhookSignatureClaims =
            serde_json::from_slice(&decode(claims_b64)?).map_err(|_| Malformed("bad claims"))?;
        if claims.iat.abs_diff(now) > self.leeway.as_secs() {
            return Err(WebhookError::IssuedAtOutsideLeeway {
                iat: claims.iat,
                now,
            });
        }
        let expected = hex::decode(&claims.request_body_sha256)
            .map_err(|_| Malformed("request_body_sha256 is not hex"))?;
        let actual = digest(&SHA256, body);
        if !bool::from(actual.as_ref().ct_eq(&expected)) {
            return Err(WebhookError::BodyMismatch);
        }
        Ok(claims)
    }

    async fn check_signature(
        &self,
        kid: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), WebhookError> {
        let key = match &self.api {
            Some(api) => self
                .cache
                .get_or_refetch(kid, || api.get_well_known_jwks())
                .await
                .map_err(WebhookError::Jwks)?,
            None => self.cache.get(kid),
        };
        let key = key.ok_or_else(|| WebhookError::UnknownKey(kid.to_owned()))?;
        key.verify_sig(message, signature)
            .map_err(|_| WebhookError::BadSignature)
    }
}
