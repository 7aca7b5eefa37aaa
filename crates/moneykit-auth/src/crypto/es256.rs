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

/// Half the order of the P-256 group, rounded down (big-endian): an ECDSA signature
/// `(r, s)` is "low-s" when `s` is at most this.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// The order of the P-256 group (big-endian).
const ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Whether a raw `r || s` signature is in low-s form (what this server signs).
pub fn is_low_s(signature: &[u8]) -> bool {
    signature.len() == 64 && signature[32..] <= HALF_ORDER[..]
}

/// Rewrites a raw `r || s` ECDSA P-256 signature into its low-s form: `(r, s)` and
/// `(r, n - s)` both verify, so without one canonical form the same token has two
/// encodings (signature malleability). Anything but 64 bytes is left alone.
pub fn normalize_signature(signature: &mut [u8]) {
    if signature.len() != 64 || signature[32..] <= HALF_ORDER[..] {
        return;
    }
    // s := n - s, big-endian, with borrow.
    let s = &mut signature[32..];
    let mut borrow = 0u16;
    for (byte, n) in s.iter_mut().zip(ORDER).rev() {
        let diff = u16::from(n)
            .wrapping_sub(u16::from(*byte))
            .wrapping_sub(borrow);
        *byte = diff as u8;
        borrow = (diff >> 15) & 1;
    }
}

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
        let mut signature: [u8; 64] = signature
            .as_ref()
            .try_into()
            .expect("ES256 fixed signatures are 64 bytes");
        normalize_signature(&mut signature);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
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

/// `(r, n - s)` for a low-s signature `(r, s)`: the other valid encoding, for tests. An
/// independent subtraction (signed arithmetic), not [`normalize_signature`]'s.
#[cfg(test)]
pub(crate) fn high_s_twin(signature: &[u8]) -> Vec<u8> {
    let mut twin = signature.to_vec();
    let mut borrow = 0i16;
    for k in (0..32).rev() {
        let d = i16::from(ORDER[k]) - i16::from(signature[32 + k]) - borrow;
        twin[32 + k] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    twin
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
    fn signatures_are_low_s_and_the_high_s_twin_is_its_normal_form() {
        let pair = KeyPair::from_pkcs8("key_a", &KeyPair::generate_pkcs8()).unwrap();
        let public = PublicKey::from_sec1("key_a", &pair.public_key_bytes()).unwrap();
        for i in 0..64 {
            let jwt = pair.sign_jwt("eyJhbGciOiJFUzI1NiJ9", format!("{{\"n\":{i}}}").as_bytes());
            let (input, sig) = jwt.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            assert!(sig[32..] <= HALF_ORDER[..], "signature {i} is high-s");
            // (r, n - s) verifies too (that is the malleability), and normalizes back.
            let mut twin = high_s_twin(&sig);
            assert!(public.verify(input.as_bytes(), &twin));
            assert_ne!(twin, sig);
            normalize_signature(&mut twin);
            assert_eq!(twin, sig);
        }
        // The boundary: n/2 itself is low, n/2 + 1 is high and becomes n - (n/2 + 1) = n/2.
        let mut at_half = [0u8; 64];
        at_half[32..].copy_from_slice(&HALF_ORDER);
        let unchanged = at_half;
        normalize_signature(&mut at_half);
        assert_eq!(at_half, unchanged);
        let mut above = unchanged;
        above[63] += 1;
        normalize_signature(&mut above);
        assert_eq!(above, unchanged);
    }

    #[test]
    fn garbage_keys_are_rejected() {
        assert!(KeyPair::from_pkcs8("k", b"nope").is_err());
        assert!(PublicKey::from_sec1("k", &[4u8; 65]).is_err());
        assert!(PublicKey::from_sec1("k", &[4u8; 3]).is_err());
    }
}
