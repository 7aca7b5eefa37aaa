//! Public JWKs that someone else chose: RFC 7638 thumbprints, and verifying a signature
//! with the key a DPoP proof carries in its header.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit_wire::Jwk;
use serde_json::{Map, Value};

use crate::error::CredentialError;
use crate::private_key::JwsAlgorithm;

/// Members that only a private (or symmetric) key has: a JWK holding one of them gives a
/// secret away.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The RFC 7638 SHA-256 thumbprint of a public key, base64url: what a DPoP-bound token
/// names in `cnf.jkt`. Only the members that define the key count (`crv`, `kty`, `x`,
/// `y` for EC; `crv`, `kty`, `x` for OKP; `e`, `kty`, `n` for RSA), so `kid`, `alg` or
/// `use` do not change it.
///
/// ```
/// use moneykit::{Jwk, jwk_thumbprint};
///
/// // RFC 9449 §6.1's example key and thumbprint.
/// let jwk: Jwk = serde_json::from_str(
///     r#"{"kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
///         "y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}"#,
/// )?;
/// assert_eq!(jwk_thumbprint(&jwk)?, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn jwk_thumbprint(jwk: &Jwk) -> Result<String, CredentialError> {
    match serde_json::to_value(jwk) {
        Ok(Value::Object(members)) => thumbprint(&members),
        _ => Err(CredentialError::new("a JWK is a JSON object")),
    }
}

/// [`jwk_thumbprint`] of the members of a JWK as parsed JSON.
pub(crate) fn thumbprint(jwk: &Map<String, Value>) -> Result<String, CredentialError> {
    let kty = string_member(jwk, "kty")?;
    let required: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => {
            return Err(CredentialError::new(format!(
                "no thumbprint for kty {kty:?}: expected EC, OKP or RSA"
            )));
        }
    };
    // Lexicographic order, no whitespace; serde_json escapes each string as JSON does.
    let mut canonical = String::from("{");
    for (i, name) in required.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        let value = Value::from(string_member(jwk, name)?);
        canonical.push_str(&format!("\"{name}\":{value}"));
    }
    canonical.push('}');
    Ok(URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes())))
}

fn string_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, CredentialError> {
    match jwk.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(CredentialError::new(format!(
            "JWK member {name:?} is not a string"
        ))),
        None => Err(CredentialError::new(format!(
            "JWK member {name:?} is missing"
        ))),
    }
}

/// Whether `jwk` has a member that belongs only to a private or symmetric key.
pub(crate) fn has_private_members(jwk: &Map<String, Value>) -> bool {
    PRIVATE_MEMBERS.iter().any(|name| jwk.contains_key(*name))
}

/// A public key, from a JWK, that checks signatures of one algorithm.
pub(crate) enum PublicKey {
    Raw(&'static dyn VerificationAlgorithm, Vec<u8>),
    Rsa(
        &'static aws_lc_rs::signature::RsaParameters,
        RsaPublicKeyComponents<Vec<u8>>,
    ),
}

impl PublicKey {
    /// The key of `jwk` for `algorithm`, or what is wrong with it (a key of another type
    /// or curve than the algorithm needs, missing or malformed members).
    pub(crate) fn from_jwk(
        jwk: &Map<String, Value>,
        algorithm: JwsAlgorithm,
    ) -> Result<Self, &'static str> {
        let member = |name| -> Result<Vec<u8>, &'static str> {
            let Some(Value::String(text)) = jwk.get(name) else {
                return Err("a key member is missing");
            };
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| "a key member is not base64url")
        };
        let is = |name, expected: &str| jwk.get(name).and_then(Value::as_str) == Some(expected);
        let ec = |curve, len: usize, verify| -> Result<Self, &'static str> {
            if !is("kty", "EC") || !is("crv", curve) {
                return Err("the key does not fit the algorithm");
            }
            let (x, y) = (member("x")?, member("y")?);
            if x.len() != len || y.len() != len {
                return Err("the key's coordinates have the wrong length");
            }
            Ok(Self::Raw(verify, [&[0x04][..], &x, &y].concat()))
        };
        match algorithm {
            JwsAlgorithm::Es256 => ec("P-256", 32, &ECDSA_P256_SHA256_FIXED),
            JwsAlgorithm::Es384 => ec("P-384", 48, &ECDSA_P384_SHA384_FIXED),
            JwsAlgorithm::EdDsa => {
                if !is("kty", "OKP") || !is("crv", "Ed25519") {
                    return Err("the key does not fit the algorithm");
                }
                let x = member("x")?;
                if x.len() != 32 {
                    return Err("the key has the wrong length");
                }
                Ok(Self::Raw(&ED25519, x))
            }
            JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => {
                if !is("kty", "RSA") {
                    return Err("the key does not fit the algorithm");
                }
                let parameters = match algorithm {
                    JwsAlgorithm::Ps256 => &RSA_PSS_2048_8192_SHA256,
                    _ => &RSA_PKCS1_2048_8192_SHA256,
                };
                let components = RsaPublicKeyComponents {
                    n: member("n")?,
                    e: member("e")?,
                };
                Ok(Self::Rsa(parameters, components))
            }
        }
    }

    /// Whether `signature` (JWS form) signs `message` under this key.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Raw(algorithm, key) => UnparsedPublicKey::new(*algorithm, key)
                .verify(message, signature)
                .is_ok(),
            Self::Rsa(parameters, components) => {
                components.verify(parameters, message, signature).is_ok()
            }
        }
    }
}
