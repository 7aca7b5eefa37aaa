//! ES256 (ECDSA P-256 with SHA-256) key pairs and public keys, parsed once.
//!
//! The backend is aws-lc-rs: `benches/es256_backends.rs` measured it fastest of aws-lc-rs,
//! ring and RustCrypto's `p256` for both signing and verification (figures in
//! `docs/BENCHMARKS.md`). Keys are parsed when the in-memory snapshot is built, never per
//! request, which is most of the gap to libraries that re-parse PKCS#8 on every call.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    ParsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit_wire::Jwk;

/// Length of an uncompressed SEC1 P-256 point: `0x04 || x || y`.
pub const PUBLIC_KEY_LEN: usize = 65;

/// A private ES256 key, parsed and ready to sign. `Debug` shows only the kid.
pub struct KeyPair {
    kid: String,
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({})", self.kid)
    }
}

/// A PKCS#8 document that does not hold a P-256 private key.
#[derive(Debug, thiserror::Error)]
#[error("signing key {0} is not a valid P-256 private key")]
pub struct InvalidKey(pub String);

impl KeyPair {
    /// Generates a new private key, returned as PKCS#8 DER (to be sealed and stored).
    pub fn generate_pkcs8() -> Vec<u8> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("P-256 key generation cannot fail with a working RNG")
            .as_ref()
            .to_vec()
    }

    /// Parses a PKCS#8 private key once, for signing under `kid`.
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<Self, InvalidKey> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|_| InvalidKey(kid.to_owned()))?;
        Ok(Self {
            kid: kid.to_owned(),
            pair,
            rng: SystemRandom::new(),
        })
    }

    /// The key id that goes into every JWT header it signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as an uncompressed SEC1 point.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// Signs `header_b64.claims_b64` and returns the compact JWT.
    pub fn sign_jwt(&self, header_b64: &str, claims_json: &[u8]) -> String {
        let claims_len = base64_len(claims_json.len());
        let mut out = String::with_capacity(header_b64.len() + claims_len + 2 + 86);
        out.push_str(header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut out);
        let signature = self
            .pair
            .sign(&self.rng, out.as_bytes())
            .expect("ECDSA signing cannot fail with a working RNG");
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut out);
        out
    }
}

fn base64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// A public ES256 key, parsed once, that verifies signatures and renders as a JWK.
pub struct PublicKey {
    kid: String,
    point: Vec<u8>,
    parsed: ParsedPublicKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.kid)
    }
}

impl PublicKey {
    /// Parses an uncompressed SEC1 P-256 point.
    pub fn from_sec1(kid: &str, point: &[u8]) -> Result<Self, InvalidKey> {
        if point.len() != PUBLIC_KEY_LEN {
            return Err(InvalidKey(kid.to_owned()));
        }
        let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .map_err(|_| InvalidKey(kid.to_owned()))?;
        Ok(Self {
            kid: kid.to_owned(),
            point: point.to_vec(),
            parsed,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Whether `signature` (raw `r || s`, 64 bytes) signs `message` under this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify_sig(message, signature).is_ok()
    }

    /// The public JWK: `kty` EC, `crv` P-256, `x`, `y`, `kid`, `alg` ES256, `use` sig.
    pub fn to_jwk(&self) -> Jwk {
        let (x, y) = self.point[1..].split_at(32);
        Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(x)),
            y: Some(URL_SAFE_NO_PAD.encode(y)),
            kid: Some(self.kid.clone()),
            alg: Some("ES256".into()),
            use_: Some("sig".into()),
            extra: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_jwts_verify_with_the_public_key_only() {
        let pair = KeyPair::from_pkcs8("key_a", &KeyPair::generate_pkcs8()).unwrap();
        let public = PublicKey::from_sec1("key_a", &pair.public_key_bytes()).unwrap();
        let jwt = pair.sign_jwt("eyJhbGciOiJFUzI1NiJ9", br#"{"sub":"x"}"#);
        let (signing_input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert_eq!(sig.len(), 64);
        assert!(public.verify(signing_input.as_bytes(), &sig));
        assert!(!public.verify(b"something else", &sig));
        let jwk = public.to_jwk();
        assert_eq!(jwk.kid.as_deref(), Some("key_a"));
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk.x.unwrap()).unwrap().len(), 32);
    }

    #[test]
    fn garbage_keys_are_rejected() {
        assert!(KeyPair::from_pkcs8("k", b"nope").is_err());
        assert!(PublicKey::from_sec1("k", &[4u8; 65]).is_err());
        assert!(PublicKey::from_sec1("k", &[4u8; 3]).is_err());
    }
}
