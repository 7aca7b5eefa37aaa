//! What the JWTs this crate signs and checks share, with no dependency on the rest of
//! the crate (so the modules that sign, send and verify them can all use it): the clock,
//! random `jti`s, the DPoP header names and the access token hash.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::CredentialError;

/// The request header that carries a proof, and the `Authorization` scheme of a
/// DPoP-bound token.
pub(crate) const DPOP: &str = "DPoP";
/// The response header with the nonce the next proof must carry.
pub(crate) const DPOP_NONCE: &str = "DPoP-Nonce";

/// Seconds since the Unix epoch, by this machine's clock.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// 128 random bits, base64url: a `jti` unique without any state.
pub(crate) fn random_jti() -> Result<String, CredentialError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| CredentialError::new("no random bytes for a jti"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `ath`: base64url of the SHA-256 of the access token.
pub(crate) fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()))
}
