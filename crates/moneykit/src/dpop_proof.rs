//! Checking the DPoP proof of a request to a resource server (RFC 9449 §4.3 and §7.1),
//! and remembering the proofs already used.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::jwk::{PublicKey, has_private_members, thumbprint};
use crate::jwt::access_token_hash;
use crate::private_key::JwsAlgorithm;

/// Longest proof looked at: an RSA-8192 key and signature are under 3 KiB.
const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti` accepted: a random id is a few dozen characters.
const MAX_JTI_LEN: usize = 256;

/// Why a DPoP proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopProofError {
    /// The request has no `DPoP` header.
    #[error("the request has no DPoP proof")]
    Missing,
    /// The request has several `DPoP` headers.
    #[error("the request has several DPoP proofs")]
    Several,
    /// Not a compact JWT with the members a proof needs.
    #[error("malformed DPoP proof: {0}")]
    Malformed(&'static str),
    /// The header `typ` is not `dpop+jwt`.
    #[error("not a DPoP proof: the header typ is not dpop+jwt")]
    WrongType,
    /// `alg` is none, symmetric, or one this verifier does not accept.
    #[error("unsupported DPoP proof algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The header's `jwk` holds private key members.
    #[error("the DPoP proof's jwk holds a private key")]
    PrivateKey,
    /// The header's `jwk` is not a public key of the kind `alg` needs.
    #[error("the DPoP proof's jwk is unusable: {0}")]
    InvalidKey(&'static str),
    /// The signature does not verify under the header's `jwk`.
    #[error("the DPoP proof's signature does not verify")]
    BadSignature,
    /// `htm` is not the request's method.
    #[error("the DPoP proof is for another HTTP method")]
    WrongMethod,
    /// `htu` is not the request's URL.
    #[error("the DPoP proof is for another URL")]
    WrongUrl,
    /// No `ath`, though the request carries an access token.
    #[error("the DPoP proof has no ath")]
    MissingAccessTokenHash,
    /// `ath` is not the hash of the request's access token.
    #[error("the DPoP proof is for another access token")]
    WrongAccessTokenHash,
    /// `iat` is further in the past than the proof window.
    #[error("the DPoP proof is too old")]
    Stale,
    /// `iat` is further in the future than the proof window.
    #[error("the DPoP proof is issued in the future")]
    IssuedInFuture,
    /// A proof with this `jti` was already accepted.
    #[error("the DPoP proof was used before")]
    Replayed,
}

/// What the request says a proof must match.
pub(crate) struct ExpectedProof<'a> {
    /// The request's method.
    pub(crate) method: &'a str,
    /// The request's URL, without query or fragment.
    pub(crate) url: &'a reqwest::Url,
    /// The access token presented with the proof.
    pub(crate) access_token: &'a str,
    pub(crate) now: i64,
    /// How far `iat` may be from `now`, in seconds.
    pub(crate) window: i64,
}

/// A proof that holds: its key's thumbprint, and its replay key (its `jti` under that key).
pub(crate) struct CheckedProof {
    pub(crate) thumbprint: String,
    pub(crate) replay_key: [u8; 32],
    pub(crate) iat: i64,
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: String,
    jwk: Option<Map<String, Value>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    ath: Option<String>,
}

/// Checks `proof` against the request; the replay check is the caller's, after the
/// thumbprint matched the token.
pub(crate) fn check_proof(
    proof: &str,
    expected: &ExpectedProof<'_>,
) -> Result<CheckedProof, DpopProofError> {
    use DpopProofError::Malformed;
    if proof.len() > MAX_PROOF_LEN {
        return Err(Malformed("longer than 8 KiB"));
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed("not a compact JWT"));
    };
    let header: Header =
        serde_json::from_slice(&decode(header_b64)?).map_err(|_| Malformed("bad header"))?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|typ| typ.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(DpopProofError::WrongType);
    }
    let algorithm: JwsAlgorithm = header
        .alg
        .parse()
        .map_err(|_| DpopProofError::UnsupportedAlgorithm(header.alg.clone()))?;
    if header.crit.is_some() {
        return Err(Malformed("critical header parameters are not supported"));
    }
    let jwk = header.jwk.ok_or(Malformed("no jwk in the header"))?;
    if has_private_members(&jwk) {
        return Err(DpopProofError::PrivateKey);
    }
    let key = PublicKey::from_jwk(&jwk, algorithm).map_err(DpopProofError::InvalidKey)?;
    let signing_input = &proof[..header_b64.len() + 1 + claims_b64.len()];
    if !key.verifies(signing_input.as_bytes(), &decode(signature_b64)?) {
        return Err(DpopProofError::BadSignature);
    }

    let claims: Claims =
        serde_json::from_slice(&decode(claims_b64)?).map_err(|_| Malformed("bad claims"))?;
    let jti = claims.jti.ok_or(Malformed("no jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(Malformed("a jti of 1 to 256 characters"));
    }
    if claims.htm.ok_or(Malformed("no htm"))? != expected.method {
        return Err(DpopProofError::WrongMethod);
    }
    let htu = claims.htu.ok_or(Malformed("no htu"))?;
    if !same_url(&htu, expected.url) {
        return Err(DpopProofError::WrongUrl);
    }
    let iat = claims.iat.ok_or(Malformed("no iat as whole seconds"))?;
    if iat < expected.now.saturating_sub(expected.window) {
        return Err(DpopProofError::Stale);
    }
    if iat > expected.now.saturating_add(expected.window) {
        return Err(DpopProofError::IssuedInFuture);
    }
    let ath = claims.ath.ok_or(DpopProofError::MissingAccessTokenHash)?;
    if ath != access_token_hash(expected.access_token) {
        return Err(DpopProofError::WrongAccessTokenHash);
    }
    let thumbprint = thumbprint(&jwk).map_err(|_| DpopProofError::InvalidKey("no thumbprint"))?;
    let replay_key = digest(&SHA256, format!("{thumbprint}.{jti}").as_bytes());
    Ok(CheckedProof {
        thumbprint,
        replay_key: replay_key.as_ref().try_into().expect("SHA-256 is 32 bytes"),
        iat,
    })
}

fn decode(part: &str) -> Result<Vec<u8>, DpopProofError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| DpopProofError::Malformed("not base64url"))
}

/// Whether `htu` names `url`: the same scheme, host and port (the URL parser lowercases
/// scheme and host and drops default ports) and the same path; query and fragment aside.
fn same_url(htu: &str, url: &reqwest::Url) -> bool {
    let Ok(htu) = reqwest::Url::parse(htu) else {
        return false;
    };
    htu.scheme() == url.scheme()
        && htu.host_str() == url.host_str()
        && htu.port_or_known_default() == url.port_or_known_default()
        && htu.path() == url.path()
}

/// Replay keys of the proofs accepted, each until its `iat` leaves the window. Bounded:
/// when full of proofs still in their window, new proofs are refused (fail closed)
/// rather than old ones forgotten.
pub(crate) struct ReplayCache {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], i64>>,
}

/// Why [`ReplayCache::record`] refused a proof.
pub(crate) enum ReplayRefusal {
    Replayed,
    Full,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
        }
    }

    /// Records a proof as used until `forget_after`, unless it was used before or there
    /// is no room left.
    pub(crate) fn record(
        &self,
        key: [u8; 32],
        forget_after: i64,
        now: i64,
    ) -> Result<(), ReplayRefusal> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.get(&key).is_some_and(|&until| until >= now) {
            return Err(ReplayRefusal::Replayed);
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, until| *until >= now);
            if entries.len() >= self.capacity {
                return Err(ReplayRefusal::Full);
            }
        }
        entries.insert(key, forget_after);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_by_scheme_host_port_and_path() {
        let url = reqwest::Url::parse("https://api.example.com/accounts").unwrap();
        for same in [
            "https://api.example.com/accounts",
            "HTTPS://API.EXAMPLE.COM/accounts",
            "https://api.example.com:443/accounts?x=1#y",
        ] {
            assert!(same_url(same, &url), "{same}");
        }
        for other in [
            "http://api.example.com/accounts",
            "https://api.example.com:8443/accounts",
            "https://example.com/accounts",
            "https://api.example.com/Accounts",
            "https://api.example.com/accounts/",
            "/accounts",
        ] {
            assert!(!same_url(other, &url), "{other}");
        }
    }

    #[test]
    fn the_replay_cache_fails_closed_when_full() {
        let cache = ReplayCache::new(2);
        assert!(cache.record([1; 32], 100, 0).is_ok());
        assert!(matches!(
            cache.record([1; 32], 100, 50),
            Err(ReplayRefusal::Replayed)
        ));
        assert!(cache.record([2; 32], 100, 50).is_ok());
        assert!(matches!(
            cache.record([3; 32], 100, 50),
            Err(ReplayRefusal::Full)
        ));
        // Once the first two leave their window, there is room again.
        assert!(cache.record([3; 32], 300, 101).is_ok());
        assert!(cache.record([1; 32], 300, 101).is_ok());
    }
}
