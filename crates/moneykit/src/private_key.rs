//! [`PrivateKey`]: the key a client signs its assertions with (`private_key_jwt`), loaded
//! from PEM or from a private JWK, with the JWS algorithm that follows from it.

use std::fmt;
use std::path::Path;

use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use moneykit_wire::Jwk;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::{self, PemObject};
use serde_json::{Map, Value};

use crate::error::CredentialError;

/// The JWS algorithms a [`PrivateKey`] signs with: the ones the server accepts for
/// `private_key_jwt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwsAlgorithm {
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256: the default for RSA keys.
    Rs256,
    /// RSASSA-PSS with SHA-256.
    Ps256,
}

impl JwsAlgorithm {
    /// Every algorithm, in the order the `algs` of a DPoP challenge lists them.
    pub(crate) const ALL: [Self; 5] = [
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
        Self::Rs256,
        Self::Ps256,
    ];

    /// The name in a JWT header's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }

    fn is_rsa(self) -> bool {
        matches!(self, Self::Rs256 | Self::Ps256)
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private key for signing client assertions: P-256 (ES256), P-384 (ES384), Ed25519
/// (EdDSA) or RSA of 2048 to 8192 bits (RS256, or PS256 with
/// [`PrivateKey::with_algorithm`]).
///
/// `Debug` shows the algorithm and key id, never key material.
///
/// ```no_run
/// use moneykit::{JwsAlgorithm, PrivateKey};
///
/// # fn example() -> Result<(), Box<dyn std::error::Error>> {
/// // PEM (`openssl genpkey -algorithm ed25519`) or a private JWK, by its first character.
/// let key = PrivateKey::from_file("client-key.pem")?.with_key_id("2026-01");
/// assert_eq!(key.algorithm(), JwsAlgorithm::EdDsa);
/// // The public half, to register with the server.
/// println!("{}", serde_json::to_string(&key.public_jwk())?);
/// # Ok(())
/// # }
/// ```
pub struct PrivateKey {
    signer: Signer,
    algorithm: JwsAlgorithm,
    key_id: Option<String>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What [`PrivateKey`] accepts, for the messages that refuse something else.
const SUPPORTED: &str = "a P-256, P-384, Ed25519 or RSA (2048 to 8192 bits) private key";

impl PrivateKey {
    /// Reads a key file: a private JWK if its first non-blank character is `{`, else PEM
    /// (see [`PrivateKey::from_pem`] and [`PrivateKey::from_jwk`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, CredentialError> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|e| {
            CredentialError::with_source(format!("cannot read {}", path.display()), e)
        })?;
        let is_json = text.trim_ascii_start().starts_with(b"{");
        let key = match is_json {
            true => std::str::from_utf8(&text)
                .map_err(|_| CredentialError::new("not UTF-8 JSON"))
                .and_then(Self::from_jwk),
            false => Self::from_pem(&text),
        };
        key.map_err(|e| e.context(&path.display().to_string()))
    }

    /// Loads the first private key of a PEM document: `PRIVATE KEY` (PKCS#8, as
    /// `openssl genpkey` writes it), `EC PRIVATE KEY` (SEC1) or `RSA PRIVATE KEY`
    /// (PKCS#1). Encrypted keys are refused.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CredentialError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
            pem::Error::NoItemsFound if contains(pem, b"ENCRYPTED PRIVATE KEY") => {
                CredentialError::new(
                    "an encrypted private key: decrypt it first \
                     (openssl pkcs8 -topk8 -nocrypt -in KEY -out PLAIN)",
                )
            }
            pem::Error::NoItemsFound => CredentialError::new(format!(
                "no private key in the PEM (a certificate or public key cannot sign): \
                 expected {SUPPORTED}"
            )),
            // Other messages may quote the document: say only what is wrong with it.
            _ => CredentialError::new("not a valid PEM document"),
        })?;
        Self::from_der(&der)
    }

    fn from_der(der: &PrivateKeyDer<'_>) -> Result<Self, CredentialError> {
        let secret = der.secret_der();
        let unsupported = || CredentialError::new(format!("expected {SUPPORTED}"));
        if let PrivateKeyDer::Pkcs1(_) = der {
            return rsa_key(RsaKeyPair::from_der(secret), unsupported);
        }
        for (curve, algorithm) in [
            (&ECDSA_P256_SHA256_FIXED_SIGNING, JwsAlgorithm::Es256),
            (&ECDSA_P384_SHA384_FIXED_SIGNING, JwsAlgorithm::Es384),
        ] {
            // PKCS#8 or SEC1, whichever `der` is.
            if let Ok(key) = EcdsaKeyPair::from_private_key_der(curve, secret) {
                return Ok(Self::new(Signer::Ecdsa(key), algorithm));
            }
        }
        let PrivateKeyDer::Pkcs8(_) = der else {
            return Err(unsupported());
        };
        match Ed25519KeyPair::from_pkcs8(secret) {
            Ok(key) => Ok(Self::new(Signer::Ed25519(key), JwsAlgorithm::EdDsa)),
            Err(_) => rsa_key(RsaKeyPair::from_pkcs8(secret), unsupported),
        }
    }

    /// Loads a private JWK (RFC 7517, RFC 7518 §6): `EC` on `P-256` or `P-384`, `OKP` on
    /// `Ed25519`, or `RSA` with its CRT members; its `kid` becomes the key id, and an
    /// RSA key's `alg` of `PS256` selects PS256. A public JWK, a JWK Set, or members that
    /// contradict the key (`alg`, `use`, `key_ops`) are refused.
    pub fn from_jwk(json: &str) -> Result<Self, CredentialError> {
        let value: Value =
            serde_json::from_str(json).map_err(|_| CredentialError::new("not valid JSON"))?;
        let jwk = JwkMembers(
            value
                .as_object()
                .ok_or_else(|| CredentialError::new("a JWK is a JSON object"))?,
        );
        if jwk.0.contains_key("keys") {
            return Err(CredentialError::new(
                "a JWK Set: give the one private key (an element of \"keys\") on its own",
            ));
        }
        let kty = jwk.required("kty")?;
        let algorithm = match (kty, jwk.string("crv")?) {
            ("EC", Some("P-256")) => JwsAlgorithm::Es256,
            ("EC", Some("P-384")) => JwsAlgorithm::Es384,
            ("OKP", Some("Ed25519")) => JwsAlgorithm::EdDsa,
            ("RSA", _) => JwsAlgorithm::Rs256,
            ("EC" | "OKP", crv) => {
                return Err(CredentialError::new(format!(
                    "unsupported crv {crv:?} for kty {kty}: expected {SUPPORTED}"
                )));
            }
            (kty, _) => {
                return Err(CredentialError::new(format!(
                    "unsupported kty {kty:?}: expected {SUPPORTED}"
                )));
            }
        };
        if jwk.string("d")?.is_none() {
            return Err(CredentialError::new(
                "a public JWK (no \"d\"): give the private key",
            ));
        }
        jwk.check_use()?;
        let signer = match algorithm {
            JwsAlgorithm::Es256 => jwk.ecdsa(&ECDSA_P256_SHA256_FIXED_SIGNING, 32)?,
            JwsAlgorithm::Es384 => jwk.ecdsa(&ECDSA_P384_SHA384_FIXED_SIGNING, 48)?,
            JwsAlgorithm::EdDsa => jwk.ed25519()?,
            JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => jwk.rsa()?,
        };
        let mut key = Self::new(signer, algorithm);
        if let Some(alg) = jwk.string("alg")? {
            key = key.with_algorithm(alg.parse()?)?;
        }
        key.key_id = jwk.string("kid")?.map(str::to_owned);
        Ok(key)
    }

    /// A new P-256 key (ES256), generated here.
    pub(crate) fn generate_es256() -> Result<Self, CredentialError> {
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map(|key| Self::new(Signer::Ecdsa(key), JwsAlgorithm::Es256))
            .map_err(|_| CredentialError::new("cannot generate a P-256 key"))
    }

    fn new(signer: Signer, algorithm: JwsAlgorithm) -> Self {
        Self {
            signer,
            algorithm,
            key_id: None,
        }
    }

    /// Sets the `kid` sent in every assertion's header: the id under which the server
    /// holds the public key (replacing a JWK's own `kid`).
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// Signs with `algorithm` instead of the key's default: only an RSA key has a choice
    /// (`Rs256` or `Ps256`); any other change is refused.
    pub fn with_algorithm(mut self, algorithm: JwsAlgorithm) -> Result<Self, CredentialError> {
        if algorithm != self.algorithm && !(algorithm.is_rsa() && self.algorithm.is_rsa()) {
            return Err(CredentialError::new(format!(
                "this key signs {}, not {algorithm}",
                self.algorithm
            )));
        }
        self.algorithm = algorithm;
        Ok(self)
    }

    /// The algorithm of the signatures (the header's `alg`).
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.algorithm
    }

    /// The `kid` of the header, if any.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// The public key as a JWK (with `kid`, `alg` and `use`), to register with the server.
    pub fn public_jwk(&self) -> Jwk {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = Jwk {
            kty: String::new(),
            crv: None,
            x: None,
            y: None,
            kid: self.key_id.clone(),
            alg: Some(self.algorithm.as_str().into()),
            use_: Some("sig".into()),
            extra: Map::new(),
        };
        match &self.signer {
            Signer::Ecdsa(key) => {
                // Uncompressed point: 0x04, then x and y of equal length.
                let point = &key.public_key().as_ref()[1..];
                let (x, y) = point.split_at(point.len() / 2);
                jwk.kty = "EC".into();
                jwk.crv = Some(curve_name(self.algorithm).into());
                jwk.x = Some(b64(x));
                jwk.y = Some(b64(y));
            }
            Signer::Ed25519(key) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64(key.public_key().as_ref()));
            }
            Signer::Rsa(key) => {
                let public = key.public_key();
                jwk.kty = "RSA".into();
                for (name, value) in [("n", public.modulus()), ("e", public.exponent())] {
                    let encoded = b64(value.big_endian_without_leading_zero());
                    jwk.extra.insert(name.into(), Value::String(encoded));
                }
            }
        }
        jwk
    }

    /// The signature of `message` with this key's algorithm, in JWS form (ECDSA as fixed
    /// `r || s`).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CredentialError> {
        let failed = |_| CredentialError::new("signing failed");
        match &self.signer {
            Signer::Ecdsa(key) => Ok(key
                .sign(&SystemRandom::new(), message)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            Signer::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
            Signer::Rsa(key) => {
                let padding = match self.algorithm {
                    JwsAlgorithm::Ps256 => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(padding, &SystemRandom::new(), message, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
        }
    }
}

impl std::str::FromStr for JwsAlgorithm {
    type Err = CredentialError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str() == name)
            .ok_or_else(|| {
                CredentialError::new(format!(
                    "unsupported alg {name:?}: expected ES256, ES384, EdDSA, RS256 or PS256"
                ))
            })
    }
}

/// An RSA key, or why not: its size when that is the reason, else `otherwise`.
fn rsa_key(
    parsed: Result<RsaKeyPair, KeyRejected>,
    otherwise: impl FnOnce() -> CredentialError,
) -> Result<PrivateKey, CredentialError> {
    match parsed {
        Ok(key) => Ok(PrivateKey::new(Signer::Rsa(key), JwsAlgorithm::Rs256)),
        Err(rejected) if matches!(rejected.description_(), "TooSmall" | "TooLarge") => {
            Err(CredentialError::new(
                "an RSA key of an unsupported size: RSA keys need 2048 to 8192 bits",
            ))
        }
        Err(_) => Err(otherwise()),
    }
}

fn curve_name(algorithm: JwsAlgorithm) -> &'static str {
    match algorithm {
        JwsAlgorithm::Es384 => "P-384",
        _ => "P-256",
    }
}

/// A PEM document of `der`, as `openssl` writes one.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A JWK's members, read with messages that name the member and never quote a value.
struct JwkMembers<'a>(&'a Map<String, Value>);

impl JwkMembers<'_> {
    fn string(&self, name: &str) -> Result<Option<&str>, CredentialError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(CredentialError::new(format!(
                "JWK member {name:?} is not a string"
            ))),
        }
    }

    fn required(&self, name: &str) -> Result<&str, CredentialError> {
        self.string(name)?
            .ok_or_else(|| CredentialError::new(format!("JWK member {name:?} is missing")))
    }

    /// A base64url member, of exactly `len` bytes when `len` is given.
    fn bytes(&self, name: &str, len: Option<usize>) -> Result<Vec<u8>, CredentialError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(self.required(name)?)
            .map_err(|_| CredentialError::new(format!("JWK member {name:?} is not base64url")))?;
        match len {
            Some(len) if bytes.len() != len => Err(CredentialError::new(format!(
                "JWK member {name:?} has {} bytes, expected {len}",
                bytes.len()
            ))),
            _ => Ok(bytes),
        }
    }

    /// `use` and `key_ops`, when present, must allow signing.
    fn check_use(&self) -> Result<(), CredentialError> {
        if self.string("use")?.is_some_and(|u| u != "sig") {
            return Err(CredentialError::new(
                "JWK member \"use\" is not \"sig\": not a signing key",
            ));
        }
        match self.0.get("key_ops") {
            None => Ok(()),
            Some(Value::Array(ops)) if ops.iter().any(|op| op == "sign") => Ok(()),
            Some(_) => Err(CredentialError::new(
                "JWK member \"key_ops\" does not include \"sign\"",
            )),
        }
    }

    fn inconsistent(&self) -> CredentialError {
        CredentialError::new("the JWK's private and public members do not match")
    }

    fn ecdsa(
        &self,
        alg: &'static EcdsaSigningAlgorithm,
        len: usize,
    ) -> Result<Signer, CredentialError> {
        let mut point = vec![0x04];
        point.extend(self.bytes("x", Some(len))?);
        point.extend(self.bytes("y", Some(len))?);
        let d = self.bytes("d", Some(len))?;
        EcdsaKeyPair::from_private_key_and_public_key(alg, &d, &point)
            .map(Signer::Ecdsa)
            .map_err(|_| self.inconsistent())
    }

    fn ed25519(&self) -> Result<Signer, CredentialError> {
        let x = self.bytes("x", Some(32))?;
        let d = self.bytes("d", Some(32))?;
        Ed25519KeyPair::from_seed_and_public_key(&d, &x)
            .map(Signer::Ed25519)
            .map_err(|_| self.inconsistent())
    }

    fn rsa(&self) -> Result<Signer, CredentialError> {
        if self.0.contains_key("oth") {
            return Err(CredentialError::new(
                "a multi-prime RSA JWK (\"oth\"): only two-prime keys are supported",
            ));
        }
        let member = |name| self.bytes(name, None);
        let components = KeyPairComponents {
            public_key: PublicKeyComponents {
                n: member("n")?,
                e: member("e")?,
            },
            d: member("d")?,
            p: member("p")?,
            q: member("q")?,
            dP: member("dp")?,
            dQ: member("dq")?,
            qInv: member("qi")?,
        };
        let key = rsa_key(RsaKeyPair::from_components(&components), || {
            self.inconsistent()
        })?;
        Ok(key.signer)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use aws_lc_rs::encoding::AsBigEndian;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256,
        RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
    };
    use serde_json::json;

    use super::*;

    /// A new key of each kind: its PKCS#8 PEM, and what verifies its signatures (made
    /// by aws-lc-rs directly, not through `PrivateKey`).
    pub(crate) fn generated_keys() -> Vec<(JwsAlgorithm, String, Verifier)> {
        let rng = SystemRandom::new();
        let ec = |alg, verify| {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
            let public = key.public_key().as_ref().to_vec();
            (pem("PRIVATE KEY", pkcs8.as_ref()), Verifier(verify, public))
        };
        let (p256, p256_verifier) = ec(&ECDSA_P256_SHA256_FIXED_SIGNING, &ECDSA_P256_SHA256_FIXED);
        let (p384, p384_verifier) = ec(&ECDSA_P384_SHA384_FIXED_SIGNING, &ECDSA_P384_SHA384_FIXED);
        let ed = Ed25519KeyPair::generate().unwrap();
        let ed_pkcs8: aws_lc_rs::encoding::Pkcs8V1Der = ed.as_der().unwrap();
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let rsa_pkcs8: aws_lc_rs::encoding::Pkcs8V1Der = rsa.as_der().unwrap();
        vec![
            (JwsAlgorithm::Es256, p256, p256_verifier),
            (JwsAlgorithm::Es384, p384, p384_verifier),
            (
                JwsAlgorithm::EdDsa,
                pem("PRIVATE KEY", ed_pkcs8.as_ref()),
                Verifier(&ED25519, ed.public_key().as_ref().to_vec()),
            ),
            (
                JwsAlgorithm::Rs256,
                pem("PRIVATE KEY", rsa_pkcs8.as_ref()),
                Verifier(
                    &RSA_PKCS1_2048_8192_SHA256,
                    rsa.public_key().as_ref().to_vec(),
                ),
            ),
        ]
    }

    /// Checks signatures with a public key known apart from the `PrivateKey` under test.
    pub(crate) struct Verifier(&'static dyn VerificationAlgorithm, Vec<u8>);

    impl Verifier {
        pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            UnparsedPublicKey::new(self.0, &self.1)
                .verify(message, signature)
                .is_ok()
        }
    }

    #[test]
    fn every_key_kind_signs_what_its_public_key_verifies() {
        for (algorithm, pem, verifier) in generated_keys() {
            let key = PrivateKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.algorithm(), algorithm);
            let signature = key.sign(b"header.claims").unwrap();
            assert!(verifier.verify(b"header.claims", &signature), "{algorithm}");
            assert!(
                !verifier.verify(b"header.claimz", &signature),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn ecdsa_signatures_are_fixed_length_r_and_s() {
        for (algorithm, pem, _) in generated_keys().into_iter().take(2) {
            let key = PrivateKey::from_pem(pem.as_bytes()).unwrap();
            let expected = if algorithm == JwsAlgorithm::Es256 {
                64
            } else {
                96
            };
            assert_eq!(key.sign(b"m").unwrap().len(), expected, "{algorithm}");
        }
    }

    #[test]
    fn an_rsa_key_signs_ps256_when_asked() {
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der = rsa.as_der().unwrap();
        let key = PrivateKey::from_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
            .unwrap()
            .with_algorithm(JwsAlgorithm::Ps256)
            .unwrap();
        assert_eq!(key.algorithm(), JwsAlgorithm::Ps256);
        let signature = key.sign(b"m").unwrap();
        let public = rsa.public_key().as_ref();
        let pss = UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, public);
        assert!(pss.verify(b"m", &signature).is_ok());
        let pkcs1 = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public);
        assert!(pkcs1.verify(b"m", &signature).is_err());
    }

    #[test]
    fn only_rsa_keys_change_algorithm() {
        for (algorithm, pem, _) in generated_keys() {
            let key = || PrivateKey::from_pem(pem.as_bytes()).unwrap();
            assert!(key().with_algorithm(algorithm).is_ok());
            let other = match algorithm {
                JwsAlgorithm::Rs256 => JwsAlgorithm::Es256,
                _ => JwsAlgorithm::Ps256,
            };
            let e = key().with_algorithm(other).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("this key signs {algorithm}, not {other}")
            );
        }
    }

    #[test]
    fn openssl_key_files_load() {
        // `openssl ecparam -genkey`: SEC1, after an EC PARAMETERS section.
        let sec1 = PrivateKey::from_pem(include_bytes!("../tests/keys/ec-p256-sec1.pem")).unwrap();
        assert_eq!(sec1.algorithm(), JwsAlgorithm::Es256);
        let public =
            pem::PemObject::from_pem_slice(include_bytes!("../tests/keys/ec-p256-public.pem"));
        let public: rustls_pki_types::SubjectPublicKeyInfoDer<'_> = public.unwrap();
        let signature = sec1.sign(b"m").unwrap();
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public.as_ref())
                .verify(b"m", &signature)
                .is_ok()
        );

        // `openssl genrsa -traditional`: PKCS#1, and the same key as a private JWK.
        let pkcs1 =
            PrivateKey::from_pem(include_bytes!("../tests/keys/rsa-2048-pkcs1.pem")).unwrap();
        let jwk = PrivateKey::from_jwk(include_str!("../tests/keys/rsa-2048.jwk.json")).unwrap();
        assert_eq!(
            (pkcs1.algorithm(), jwk.algorithm()),
            (JwsAlgorithm::Rs256, JwsAlgorithm::Rs256)
        );
        assert_eq!(jwk.key_id(), Some("rsa-test"));
        let public = pkcs1.public_jwk();
        assert_eq!(public.extra, jwk.public_jwk().extra);
        let component = |name: &str| {
            URL_SAFE_NO_PAD
                .decode(public.extra[name].as_str().unwrap())
                .unwrap()
        };
        let public = RsaPublicKeyComponents {
            n: component("n"),
            e: component("e"),
        };
        let signature = jwk.sign(b"m").unwrap();
        assert!(
            public
                .verify(&RSA_PKCS1_2048_8192_SHA256, b"m", &signature)
                .is_ok()
        );
    }

    fn refused_pem(pem: &[u8]) -> String {
        PrivateKey::from_pem(pem).unwrap_err().to_string()
    }

    #[test]
    fn pems_that_are_not_usable_private_keys_are_refused() {
        let public = refused_pem(include_bytes!("../tests/keys/ec-p256-public.pem"));
        assert!(public.starts_with("no private key in the PEM"), "{public}");
        let encrypted = refused_pem(include_bytes!("../tests/keys/ec-p256-encrypted.pem"));
        assert!(
            encrypted.starts_with("an encrypted private key"),
            "{encrypted}"
        );
        let small = refused_pem(include_bytes!("../tests/keys/rsa-1024.pem"));
        assert!(small.contains("RSA keys need 2048 to 8192 bits"), "{small}");
        let garbage =
            refused_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert!(garbage.starts_with("expected a P-256"), "{garbage}");
        let text = refused_pem(b"hello");
        assert!(text.starts_with("no private key"), "{text}");
        let truncated = refused_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n");
        assert_eq!(truncated, "not a valid PEM document");
    }

    /// Private JWKs of a new P-256 key and a new Ed25519 key, with the verifiers of each.
    fn generated_jwks() -> Vec<(Map<String, Value>, Verifier)> {
        let b64 = |b: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(b));
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = ec.public_key().as_ref();
        let d = ec.private_key().as_be_bytes().unwrap();
        let ec_jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": "ec-1",
            "x": b64(&point[1..33]), "y": b64(&point[33..]), "d": b64(d.as_ref()),
        });
        let ed = Ed25519KeyPair::generate().unwrap();
        let seed = ed.seed().unwrap().as_be_bytes().unwrap();
        let ed_jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "key_ops": ["sign"],
            "x": b64(ed.public_key().as_ref()), "d": b64(seed.as_ref()),
        });
        vec![
            (
                ec_jwk.as_object().unwrap().clone(),
                Verifier(&ECDSA_P256_SHA256_FIXED, point.to_vec()),
            ),
            (
                ed_jwk.as_object().unwrap().clone(),
                Verifier(&ED25519, ed.public_key().as_ref().to_vec()),
            ),
        ]
    }

    #[test]
    fn private_jwks_load_with_their_kid_and_sign() {
        for (jwk, verifier) in generated_jwks() {
            let key = PrivateKey::from_jwk(&Value::Object(jwk.clone()).to_string()).unwrap();
            assert_eq!(key.key_id(), jwk.get("kid").and_then(Value::as_str));
            assert!(verifier.verify(b"m", &key.sign(b"m").unwrap()));
            // The public JWK is the private one without "d".
            let public = serde_json::to_value(key.public_jwk()).unwrap();
            for name in ["kty", "crv", "x", "y"] {
                assert_eq!(public.get(name), jwk.get(name), "{name}");
            }
            assert!(public.get("d").is_none());
        }
    }

    /// Why `jwk` with `member` set to `value` (or removed, for `None`) is refused.
    fn refused_jwk(jwk: &Map<String, Value>, member: &str, value: Option<Value>) -> String {
        let mut jwk = jwk.clone();
        match value {
            Some(value) => jwk.insert(member.into(), value),
            None => jwk.remove(member),
        };
        PrivateKey::from_jwk(&Value::Object(jwk).to_string())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn jwks_with_missing_or_odd_members_are_refused() {
        let jwks = generated_jwks();
        let (ec, ed) = (&jwks[0].0, &jwks[1].0);
        let cases = [
            (ec, "d", None, "a public JWK (no \"d\")"),
            (ec, "y", None, "JWK member \"y\" is missing"),
            (ec, "kty", None, "JWK member \"kty\" is missing"),
            (
                ec,
                "kty",
                Some(1.into()),
                "JWK member \"kty\" is not a string",
            ),
            (
                ec,
                "d",
                Some("not base64!".into()),
                "JWK member \"d\" is not base64url",
            ),
            (
                ec,
                "d",
                Some("AAAA".into()),
                "JWK member \"d\" has 3 bytes, expected 32",
            ),
            (
                ec,
                "d",
                Some(ed["d"].clone()),
                "private and public members do not match",
            ),
            (
                ec,
                "crv",
                Some("P-521".into()),
                "unsupported crv Some(\"P-521\") for kty EC",
            ),
            (
                ec,
                "alg",
                Some("ES384".into()),
                "this key signs ES256, not ES384",
            ),
            (ec, "alg", Some("HS256".into()), "unsupported alg \"HS256\""),
            (ec, "use", Some("enc".into()), "\"use\" is not \"sig\""),
            (
                ed,
                "key_ops",
                Some(json!(["verify"])),
                "\"key_ops\" does not include \"sign\"",
            ),
            (
                ed,
                "crv",
                Some("X25519".into()),
                "unsupported crv Some(\"X25519\") for kty OKP",
            ),
            (ed, "kty", Some("oct".into()), "unsupported kty \"oct\""),
        ];
        for (jwk, member, value, expected) in cases {
            let message = refused_jwk(jwk, member, value);
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
            assert!(!message.contains(jwk["d"].as_str().unwrap()), "{message}");
        }
        for (json, expected) in [
            ("[]", "a JWK is a JSON object"),
            ("{\"kty\":", "not valid JSON"),
            ("{\"keys\":[]}", "a JWK Set"),
        ] {
            let message = PrivateKey::from_jwk(json).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{message}");
        }
    }

    #[test]
    fn rsa_jwks_are_checked_and_may_choose_ps256() {
        let rsa: Map<String, Value> =
            serde_json::from_str(include_str!("../tests/keys/rsa-2048.jwk.json")).unwrap();
        let mut pss = rsa.clone();
        pss.insert("alg".into(), "PS256".into());
        let key = PrivateKey::from_jwk(&Value::Object(pss).to_string()).unwrap();
        assert_eq!(key.algorithm(), JwsAlgorithm::Ps256);
        let message = refused_jwk(&rsa, "qi", None);
        assert!(message.contains("\"qi\" is missing"), "{message}");
        let p = rsa["p"].clone();
        let message = refused_jwk(&rsa, "q", Some(p));
        assert!(message.contains("do not match"), "{message}");
        let message = refused_jwk(&rsa, "oth", Some(json!([])));
        assert!(message.contains("multi-prime"), "{message}");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let (jwk, _) = generated_jwks().remove(0);
        let key = PrivateKey::from_jwk(&Value::Object(jwk.clone()).to_string()).unwrap();
        let debug = format!("{key:?}");
        assert_eq!(
            debug,
            "PrivateKey { algorithm: Es256, key_id: Some(\"ec-1\"), .. }"
        );
    }

    #[test]
    fn key_files_are_pem_or_jwk_by_their_first_character() {
        let dir = tempfile::tempdir().unwrap();
        let (jwk, _) = generated_jwks().remove(0);
        let jwk_path = dir.path().join("key.json");
        std::fs::write(&jwk_path, format!("\n  {}", Value::Object(jwk))).unwrap();
        assert_eq!(
            PrivateKey::from_file(&jwk_path).unwrap().key_id(),
            Some("ec-1")
        );
        let pem_path = dir.path().join("key.pem");
        std::fs::write(&pem_path, include_bytes!("../tests/keys/ec-p256-sec1.pem")).unwrap();
        assert_eq!(
            PrivateKey::from_file(&pem_path).unwrap().algorithm(),
            JwsAlgorithm::Es256
        );
        let missing = dir.path().join("missing.pem");
        let e = PrivateKey::from_file(&missing).unwrap_err();
        assert!(e.to_string().starts_with("cannot read "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        // A `.pem` name does not matter: the content is a (public) JWK.
        std::fs::write(&pem_path, r#"{"kty":"EC","crv":"P-256"}"#).unwrap();
        let e = PrivateKey::from_file(&pem_path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: a public JWK (no \"d\"): give the private key",
                pem_path.display()
            )
        );
    }
}
