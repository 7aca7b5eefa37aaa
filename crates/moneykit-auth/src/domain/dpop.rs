//! DPoP proofs (RFC 9449): a JWT a client signs with its own key for each request, which
//! binds a token to that key. This module judges one proof against the request it came
//! with (§4.3, checks 2–9, 11 and 12); what needs state — the `jti` seen before, the
//! server's nonce — is the engine's.

use serde::Deserialize;
use url::Url;

use crate::crypto::jose::{Algorithm, JwkError, Jws, JwsError, VerifyingKey, thumbprint};

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";

/// Longest proof looked at: an RSA-8192 `jwk` and signature fit with room to spare.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// Longest `jti` accepted; RFC 9449 asks for 96 random bits or more, far below this.
pub const MAX_JTI_LEN: usize = 256;

/// Longest `nonce` looked at: this server's are 32 characters.
const MAX_NONCE_LEN: usize = 256;

/// What the proof must match: the request it came with.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The URL the request was for, as the client sees it: this server's public URL and
    /// the request's path (`htu`).
    pub url: &'a str,
    /// At a protected resource, the access token presented: its hash must be `ath`.
    pub access_token: Option<&'a str>,
    /// How far `iat` may be from now, either way, in seconds.
    pub window_secs: i64,
}

/// A proof that passed every stateless check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// The RFC 7638 thumbprint of its key: what the token is bound to (`cnf.jkt`).
    pub jkt: String,
    /// Its `jti`, to be accepted once.
    pub jti: String,
    /// Its `iat` (Unix seconds).
    pub iat: i64,
    /// The `nonce` it carries, for the server to check when it demands one.
    pub nonce: Option<String>,
}

/// Why a proof was refused; each names the check, as the `error_description` of an
/// `invalid_dpop_proof` answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not a compact JWS, too long, an algorithm off the list, a `crit` header.
    #[error("DPoP proof: {0}")]
    Jws(#[from] JwsError),
    /// `typ` is not `dpop+jwt`.
    #[error("DPoP proof: typ must be dpop+jwt")]
    Type,
    /// No `jwk`, or one that is not a usable public key.
    #[error("DPoP proof: {0}")]
    Key(String),
    /// The signature does not verify under the proof's own `jwk`.
    #[error("DPoP proof: the signature does not verify under its jwk")]
    Signature,
    /// The claims are not JSON, or one is missing or mistyped.
    #[error("DPoP proof: the claims must include jti, htm, htu and iat")]
    Claims,
    /// `jti` empty or too long.
    #[error("DPoP proof: jti must be 1 to {MAX_JTI_LEN} bytes")]
    Jti,
    /// `htm` is not the request's method.
    #[error("DPoP proof: htm must be {0}")]
    Method(String),
    /// `htu` is not the request's URL.
    #[error("DPoP proof: htu must be {0}")]
    Url(String),
    /// `iat` too far in the past or the future.
    #[error("DPoP proof: iat must be within {0} s of the server's time")]
    Time(i64),
    /// `ath` missing or not the hash of the access token presented.
    #[error("DPoP proof: ath must be the base64url SHA-256 of the access token")]
    TokenHash,
    /// A `nonce` too long to be one of the server's.
    #[error("DPoP proof: nonce is too long")]
    Nonce,
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// A proof's header, judged: its algorithm and the public key it carries, with the key's
/// RFC 7638 thumbprint. It is the same for every proof a client signs with one key, so the
/// engine keeps it by the header's bytes instead of parsing the key again.
#[derive(Debug)]
pub struct ProofHeader {
    alg: Algorithm,
    key: VerifyingKey,
    /// The key's thumbprint: what a token is bound to (`cnf.jkt`).
    pub jkt: String,
}

/// The header segment of a proof (what [`ProofHeader`]s are kept by); refuses a proof
/// too long to look at, or one with no segments.
pub fn header_segment(proof: &str) -> Result<&str, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(JwsError::TooLong(MAX_PROOF_LEN).into());
    }
    proof
        .split_once('.')
        .map(|(header, _)| header)
        .ok_or(ProofError::Jws(JwsError::Malformed))
}

/// Judges a proof's header: a compact JWS with an accepted `alg` and no `crit`, `typ`
/// `dpop+jwt`, and a `jwk` holding a public key this server verifies with.
pub fn parse_header(proof: &str) -> Result<ProofHeader, ProofError> {
    let jws = Jws::parse(proof, MAX_PROOF_LEN)?;
    if jws.typ.as_deref() != Some(PROOF_TYPE) {
        return Err(ProofError::Type);
    }
    let jwk = jws
        .jwk
        .as_ref()
        .ok_or_else(|| ProofError::Key("the header must carry the public key as jwk".into()))?;
    let key = VerifyingKey::from_jwk(jwk, 0).map_err(|e| match e {
        JwkError::PrivateMember { member, .. } => ProofError::Key(format!(
            "the jwk holds the private member \"{member}\": send the public key only"
        )),
        JwkError::Unsupported { why, .. } => ProofError::Key(format!("the jwk: {why}")),
        other => ProofError::Key(other.to_string()),
    })?;
    let jkt = thumbprint(jwk).ok_or_else(|| ProofError::Key("no thumbprint".into()))?;
    Ok(ProofHeader {
        alg: jws.alg,
        key,
        jkt,
    })
}

/// Checks `proof` against the request it came with, at `now` (Unix seconds): form,
/// type, algorithm, key, signature, then the claims.
pub fn check_proof(
    proof: &str,
    expected: &Expected<'_>,
    now: i64,
) -> Result<CheckedProof, ProofError> {
    check_proof_with(proof, &parse_header(proof)?, expected, now)
}

/// [`check_proof`] for a proof whose header has been judged already (`header`, parsed
/// from this proof's header segment): the signature under its key, then the claims.
pub fn check_proof_with(
    proof: &str,
    header: &ProofHeader,
    expected: &Expected<'_>,
    now: i64,
) -> Result<CheckedProof, ProofError> {
    use base64::Engine as _;
    let malformed = || ProofError::Jws(JwsError::Malformed);
    let (signing_input, signature) = proof.rsplit_once('.').ok_or_else(malformed)?;
    let (_, payload) = signing_input.split_once('.').ok_or_else(malformed)?;
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| malformed())
    };
    let signature = decode(signature)?;
    if !header
        .key
        .verify(header.alg, signing_input.as_bytes(), &signature)
    {
        return Err(ProofError::Signature);
    }
    let jkt = header.jkt.clone();
    let claims: Claims =
        serde_json::from_slice(&decode(payload)?).map_err(|_| ProofError::Claims)?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofError::Jti);
    }
    if claims.htm != expected.method {
        return Err(ProofError::Method(expected.method.to_owned()));
    }
    if !same_resource(&claims.htu, expected.url) {
        return Err(ProofError::Url(expected.url.to_owned()));
    }
    if (claims.iat - now).abs() > expected.window_secs {
        return Err(ProofError::Time(expected.window_secs));
    }
    if let Some(token) = expected.access_token
        && claims.ath.as_deref() != Some(token_hash(token).as_str())
    {
        return Err(ProofError::TokenHash);
    }
    if claims
        .nonce
        .as_ref()
        .is_some_and(|n| n.len() > MAX_NONCE_LEN)
    {
        return Err(ProofError::Nonce);
    }
    Ok(CheckedProof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
    })
}

/// The `ath` of `token`: base64url SHA-256 of its ASCII (RFC 9449 §4.2).
pub fn token_hash(token: &str) -> String {
    use base64::Engine;
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.as_ref())
}

/// Whether `htu` names the resource at `expected` (RFC 9449 §4.3, check 9): scheme, host,
/// port and path equal after RFC 3986 §6.2.2–6.2.3 normalisation (case of scheme and
/// host, default ports, dot segments, percent-encoding case), query and fragment ignored.
pub fn same_resource(htu: &str, expected: &str) -> bool {
    // What clients send: the URL exactly as expected, nothing to normalise.
    if htu == expected {
        return true;
    }
    let (Ok(given), Ok(expected)) = (Url::parse(htu), Url::parse(expected)) else {
        return false;
    };
    given.scheme() == expected.scheme()
        && given.host() == expected.host()
        && given.port_or_known_default() == expected.port_or_known_default()
        && normalized_path(given.path()) == normalized_path(expected.path())
}

/// A path with percent-encodings of unreserved characters decoded and the others in upper
/// case, and an empty path as `/`.
fn normalized_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = path.get(i + 1..i + 3)
            && let Ok(value) = u8::from_str_radix(hex, 16)
        {
            if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_compares_after_normalisation() {
        let url = "https://as.example/oauth2/token";
        for same in [
            "https://as.example/oauth2/token",
            "HTTPS://AS.example:443/oauth2/token",
            "https://as.example/oauth2/./token?x=1#f",
            "https://as.example/oauth2/%74oken",
        ] {
            assert!(same_resource(same, url), "{same}");
        }
        for other in [
            "http://as.example/oauth2/token",
            "https://as.example:8443/oauth2/token",
            "https://evil.example/oauth2/token",
            "https://as.example/oauth2/token/",
            "https://as.example/auth/token",
            "/oauth2/token",
            "not a url",
        ] {
            assert!(!same_resource(other, url), "{other}");
        }
    }

    #[test]
    fn ath_is_the_base64url_sha256_of_the_token() {
        // RFC 9449 §7.1's example token and its ath.
        assert_eq!(
            token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
