//! DPoP (RFC 9449): access tokens bound to a key the client holds. Every token request
//! and every call with such a token carries a new proof — a JWT signed with the key,
//! naming the request's method and URL — so a token that leaks is useless without the
//! private key.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, StatusCode};
use moneykit_wire::Jwk;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, CredentialError};
use crate::jwt::{DPOP, DPOP_NONCE, access_token_hash, random_jti, unix_now};
use crate::private_key::{JwsAlgorithm, PrivateKey};

/// A key that signs DPoP proofs, so the tokens issued to its holder are bound to it
/// (`cnf.jkt`, its thumbprint): any algorithm [`PrivateKey`] supports, or a fresh P-256
/// key from [`DpopKey::generate`]. Cheap to clone.
///
/// `Debug` shows the algorithm and thumbprint, never key material.
///
/// ```no_run
/// use moneykit::{Configuration, DpopKey, TokenSource};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Configuration::self_hosted("https://auth.example.com")?;
/// let tokens = TokenSource::builder(config, "live_…", "mks_…")
///     .dpop(DpopKey::generate()?) // new key per process: nothing to store
///     .build()?;
/// let url = "https://api.example.com/accounts?limit=10";
/// // `Authorization: DPoP …` and a `DPoP` proof for this call.
/// let headers = tokens.authorization_headers("GET", url).await?;
/// let response = reqwest::Client::new().get(url).headers(headers).send().await?;
/// # let _ = response;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DpopKey(Arc<KeyInner>);

struct KeyInner {
    key: PrivateKey,
    /// The public key as the proof header's `jwk`: the defining members only.
    jwk: Map<String, Value>,
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("algorithm", &self.algorithm())
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

impl From<PrivateKey> for DpopKey {
    fn from(key: PrivateKey) -> Self {
        Self::new(key)
    }
}

impl DpopKey {
    /// A new P-256 key (ES256). Tokens bound to it live as long as the process keeps it,
    /// which is usually what a service wants: nothing to store or rotate.
    pub fn generate() -> Result<Self, CredentialError> {
        PrivateKey::generate_es256().map(Self::new)
    }

    /// Signs proofs with `key` (and its algorithm; its `kid` is not used).
    pub fn new(key: PrivateKey) -> Self {
        let mut jwk = match serde_json::to_value(key.public_jwk()) {
            Ok(Value::Object(members)) => members,
            _ => Map::new(),
        };
        jwk.retain(|name, _| matches!(name.as_str(), "kty" | "crv" | "x" | "y" | "n" | "e"));
        let thumbprint = crate::jwk::thumbprint(&jwk).unwrap_or_default();
        Self(Arc::new(KeyInner {
            key,
            jwk,
            thumbprint,
        }))
    }

    /// A key file, PEM or private JWK, as [`PrivateKey::from_file`] reads it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, CredentialError> {
        PrivateKey::from_file(path).map(Self::new)
    }

    /// A PEM private key, as [`PrivateKey::from_pem`] reads it.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CredentialError> {
        PrivateKey::from_pem(pem).map(Self::new)
    }

    /// A private JWK, as [`PrivateKey::from_jwk`] reads it.
    pub fn from_jwk(json: &str) -> Result<Self, CredentialError> {
        PrivateKey::from_jwk(json).map(Self::new)
    }

    /// The algorithm of the proofs (their header's `alg`).
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.0.key.algorithm()
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key: the `cnf.jkt` of the tokens
    /// bound to it.
    pub fn thumbprint(&self) -> &str {
        &self.0.thumbprint
    }

    /// The public key as it appears in every proof's header.
    pub fn public_jwk(&self) -> Jwk {
        serde_json::from_value(Value::Object(self.0.jwk.clone()))
            .expect("a JWK serialised from a Jwk reads back")
    }

    /// A new proof for one request: `method` and `url` (its query and fragment are left
    /// out of `htu`, as RFC 9449 §4.2 says), a random `jti`, `iat` now; `ath` when the
    /// request carries `access_token`, and `nonce` when the server gave one.
    ///
    /// ```
    /// # fn example() -> Result<(), moneykit::CredentialError> {
    /// let key = moneykit::DpopKey::generate()?;
    /// let proof = key.proof("POST", "https://auth.example.com/auth/token", None, None)?;
    /// assert_eq!(proof.split('.').count(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn proof(
        &self,
        method: impl AsRef<str>,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, CredentialError> {
        self.proof_at(method.as_ref(), url, access_token, nonce, unix_now())
    }

    pub(crate) fn proof_at(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: i64,
    ) -> Result<String, CredentialError> {
        let header = json!({
            "typ": "dpop+jwt",
            "alg": self.algorithm().as_str(),
            "jwk": self.0.jwk,
        });
        let mut claims = json!({
            "jti": random_jti()?,
            "htm": method,
            "htu": htu(url)?,
            "iat": now,
        });
        if let Some(token) = access_token {
            claims["ath"] = access_token_hash(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let mut jwt = [&header, &claims]
            .map(|part| URL_SAFE_NO_PAD.encode(part.to_string()))
            .join(".");
        let signature = self.0.key.sign(jwt.as_bytes())?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(jwt)
    }
}

/// `url` as a proof's `htu`: without query, fragment or credentials.
pub(crate) fn htu(url: &str) -> Result<String, CredentialError> {
    let mut url = reqwest::Url::parse(url)
        .map_err(|_| CredentialError::new("the URL of a DPoP proof is not a valid URL"))?;
    url.set_query(None);
    url.set_fragment(None);
    // Setting these fails only for URLs that cannot have them, which have none to drop.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(url.into())
}

/// A [`DpopKey`] and the last nonce the server gave: what a token source or an API client
/// signs its token requests with.
#[derive(Debug)]
pub(crate) struct DpopSession {
    key: DpopKey,
    nonce: Mutex<Option<String>>,
}

impl DpopSession {
    pub(crate) fn new(key: DpopKey) -> Self {
        Self {
            key,
            nonce: Mutex::new(None),
        }
    }

    pub(crate) fn key(&self) -> &DpopKey {
        &self.key
    }

    /// A proof for `POST url`, with the latest nonce.
    pub(crate) fn token_request_proof(&self, url: &str) -> Result<String, CredentialError> {
        let nonce = self
            .nonce
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.key.proof("POST", url, None, nonce.as_deref())
    }

    /// Keeps the `DPoP-Nonce` of a response, if it has one, for the next proof.
    pub(crate) fn remember_nonce(&self, headers: &HeaderMap) {
        if let Some(nonce) = nonce_of(headers) {
            *self.nonce.lock().unwrap_or_else(PoisonError::into_inner) = Some(nonce);
        }
    }
}

fn nonce_of(headers: &HeaderMap) -> Option<String> {
    let nonce = headers.get(DPOP_NONCE)?.to_str().ok()?;
    (!nonce.is_empty()).then(|| nonce.to_owned())
}

/// The nonce `e` asks the next proof to carry, when it is a `use_dpop_nonce` refusal: a
/// 400 with that `error` from a token endpoint, or a 401 with it in `WWW-Authenticate`
/// from a resource.
pub(crate) fn demanded_nonce(e: &ApiError) -> Option<String> {
    let headers = e.headers()?;
    let demanded = match e.status()? {
        StatusCode::BAD_REQUEST => e
            .body()
            .and_then(|body| serde_json::from_slice::<Value>(body).ok())
            .is_some_and(|body| body["error"] == "use_dpop_nonce"),
        StatusCode::UNAUTHORIZED => headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.contains("error=\"use_dpop_nonce\"")),
        _ => false,
    };
    if demanded { nonce_of(headers) } else { None }
}

/// The headers that present `token` on a request: `Authorization: Bearer`, or with a
/// key `Authorization: DPoP` and a proof for `method` and `url` with `ath` (and `nonce`).
pub(crate) fn authorization_headers(
    token: &str,
    dpop: Option<&DpopKey>,
    method: &str,
    url: &str,
    nonce: Option<&str>,
) -> Result<HeaderMap, CredentialError> {
    let value = |text: String| {
        HeaderValue::from_str(&text)
            .map_err(|_| CredentialError::new("the access token cannot be sent in a header"))
    };
    let mut headers = HeaderMap::new();
    let scheme = match dpop {
        Some(key) => {
            let proof = key.proof(method, url, Some(token), nonce)?;
            headers.insert(DPOP, value(proof)?);
            DPOP
        }
        None => "Bearer",
    };
    let mut authorization = value(format!("{scheme} {token}"))?;
    authorization.set_sensitive(true);
    headers.insert(http::header::AUTHORIZATION, authorization);
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ath_is_the_rfc_9449_example() {
        // RFC 9449 §7.1: the access token of figure 12 and the ath of figure 13.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn htu_drops_query_fragment_and_credentials() {
        for (url, expected) in [
            (
                "https://api.example.com/accounts?limit=1#top",
                "https://api.example.com/accounts",
            ),
            (
                "HTTPS://API.Example.com:443/a/b",
                "https://api.example.com/a/b",
            ),
            (
                "http://id:secret@127.0.0.1:8080/auth/token",
                "http://127.0.0.1:8080/auth/token",
            ),
        ] {
            assert_eq!(htu(url).unwrap(), expected, "{url}");
        }
        assert!(htu("not a url").is_err());
    }

    #[test]
    fn only_use_dpop_nonce_refusals_demand_a_nonce() {
        let error = |status: u16, header: Option<(&str, &str)>, body: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(DPOP_NONCE, HeaderValue::from_static("n-1"));
            if let Some((name, value)) = header {
                headers.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            ApiError::from_response(
                StatusCode::from_u16(status).unwrap(),
                headers,
                bytes::Bytes::copy_from_slice(body.as_bytes()),
            )
        };
        let nonce = Some("n-1".to_owned());
        assert_eq!(
            demanded_nonce(&error(400, None, r#"{"error":"use_dpop_nonce"}"#)),
            nonce
        );
        let challenge = ("www-authenticate", r#"DPoP error="use_dpop_nonce""#);
        assert_eq!(demanded_nonce(&error(401, Some(challenge), "")), nonce);
        assert_eq!(
            demanded_nonce(&error(400, None, r#"{"error":"invalid_dpop_proof"}"#)),
            None
        );
        assert_eq!(
            demanded_nonce(&error(401, None, r#"{"error":"use_dpop_nonce"}"#)),
            None
        );
    }
}
