//! Verifying JWTs that others sign: client assertions (`private_key_jwt`) and workload
//! platform tokens. Their keys arrive as JWKs, in one of five asymmetric algorithms; this
//! module turns public JWKs into parsed keys and checks compact JWS signatures against
//! them, with the algorithm pinned to an allow-list (never `none`, never an HMAC, whose
//! "key" would be the public key itself).
//!
//! What the claims mean is the domain's business (`domain::assertions`); nothing here
//! reads them.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Most keys one JWKS may hold: real ones hold a handful (current, next, previous).
pub const MAX_KEYS: usize = 32;

/// The signature algorithms accepted on JWTs signed by others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519, named `EdDSA` (RFC 8037) or `Ed25519` (RFC 9864's fully specified name).
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048 to 8192 bits).
    Rs256,
    /// RSASSA-PSS with SHA-256 (2048 to 8192 bits).
    Ps256,
}

impl Algorithm {
    /// Every accepted algorithm, in the order metadata lists them.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
        Algorithm::Rs256,
        Algorithm::Ps256,
    ];

    /// The JOSE name (`alg`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
        }
    }

    /// The algorithm a JOSE `alg` names, if it is accepted.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Ed25519" => Some(Algorithm::EdDsa),
            _ => Self::ALL.into_iter().find(|a| a.name() == name),
        }
    }

    /// Every accepted `alg` name, as metadata lists them: RFC 9864's `Ed25519` beside
    /// `EdDSA`.
    pub const NAMES: [&'static str; 6] = ["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"];
}

/// Why a JWK or JWKS is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// Not JSON, or not `{"keys": [...]}` of objects.
    #[error("not a JWKS: {0}")]
    NotJwks(String),
    /// A key set without keys.
    #[error("the JWKS holds no keys")]
    Empty,
    /// More than [`MAX_KEYS`].
    #[error("the JWKS holds more than {MAX_KEYS} keys")]
    TooMany,
    /// A private member: the JWKS must hold public keys only.
    #[error(
        "key {kid} holds the private member \"{member}\": register public keys only, and keep the private key with the client"
    )]
    PrivateMember {
        /// Which key (`kid`, or its position).
        kid: String,
        /// The member found.
        member: &'static str,
    },
    /// A key type, curve, use or algorithm this server does not verify with.
    #[error("key {kid}: {why}")]
    Unsupported {
        /// Which key.
        kid: String,
        /// What is unsupported.
        why: String,
    },
    /// Two keys with the same `kid`.
    #[error("two keys have the kid {0:?}")]
    DuplicateKid(String),
}

/// Members that only private (or symmetric) keys have.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A public key from a JWK, parsed once, that verifies JWS signatures.
pub struct VerifyingKey {
    kid: Option<String>,
    /// The JWK's own `alg`, when it pins one.
    pinned: Option<Algorithm>,
    material: Material,
}

enum Material {
    Ecdsa(Algorithm, ParsedPublicKey),
    Ed25519(ParsedPublicKey),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

fn b64_member(jwk: &Map<String, Value>, name: &str, kid: &str) -> Result<Vec<u8>, JwkError> {
    member(jwk, name)
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .ok_or_else(|| JwkError::Unsupported {
            kid: kid.to_owned(),
            why: format!("member \"{name}\" is missing or not base64url"),
        })
}

impl VerifyingKey {
    /// Parses one public JWK; `position` names it in errors when it has no `kid`.
    pub fn from_jwk(jwk: &Map<String, Value>, position: usize) -> Result<Self, JwkError> {
        let kid = member(jwk, "kid").map(str::to_owned);
        let name = kid.clone().unwrap_or_else(|| format!("#{}", position + 1));
        if let Some(found) = PRIVATE_MEMBERS.into_iter().find(|m| jwk.contains_key(*m)) {
            return Err(JwkError::PrivateMember {
                kid: name,
                member: found,
            });
        }
        let unsupported = |why: String| JwkError::Unsupported {
            kid: name.clone(),
            why,
        };
        if let Some(use_) = jwk.get("use")
            && use_.as_str() != Some("sig")
        {
            return Err(unsupported(format!("\"use\" is {use_}, not \"sig\"")));
        }
        let pinned = match jwk.get("alg") {
            None => None,
            Some(alg) => Some(
                alg.as_str()
                    .and_then(Algorithm::from_name)
                    .ok_or_else(|| unsupported(format!("algorithm {alg} is not accepted")))?,
            ),
        };
        let kty = member(jwk, "kty").unwrap_or_default();
        let crv = member(jwk, "crv").unwrap_or_default();
        let material = match (kty, crv) {
            ("EC", "P-256" | "P-384") => {
                let (alg, verification, len) = if crv == "P-256" {
                    (Algorithm::Es256, &ECDSA_P256_SHA256_FIXED, 32)
                } else {
                    (Algorithm::Es384, &ECDSA_P384_SHA384_FIXED, 48)
                };
                let x = b64_member(jwk, "x", &name)?;
                let y = b64_member(jwk, "y", &name)?;
                if x.len() != len || y.len() != len {
                    return Err(unsupported(format!(
                        "x and y must be {len} bytes for {crv}"
                    )));
                }
                let point = [&[4u8][..], &x, &y].concat();
                let parsed = ParsedPublicKey::new(verification, &point)
                    .map_err(|_| unsupported(format!("not a point on {crv}")))?;
                Material::Ecdsa(alg, parsed)
            }
            ("OKP", "Ed25519") => {
                let x = b64_member(jwk, "x", &name)?;
                let parsed = ParsedPublicKey::new(&ED25519, &x)
                    .map_err(|_| unsupported("not an Ed25519 public key".into()))?;
                Material::Ed25519(parsed)
            }
            ("RSA", _) => {
                let n = b64_member(jwk, "n", &name)?;
                let e = b64_member(jwk, "e", &name)?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(unsupported(
                        "RSA keys must have 2048 to 8192 bits".to_owned(),
                    ));
                }
                Material::Rsa { n, e }
            }
            ("oct", _) => {
                return Err(unsupported(
                    "symmetric keys are not accepted: use an asymmetric key".into(),
                ));
            }
            _ => {
                return Err(unsupported(format!(
                    "key type {kty:?} (curve {crv:?}) is not supported: use EC P-256/P-384, OKP Ed25519 or RSA"
                )));
            }
        };
        let key = Self {
            kid,
            pinned,
            material,
        };
        if let Some(alg) = pinned
            && !key.fits(alg)
        {
            return Err(unsupported(format!(
                "its alg {} does not fit its key type",
                alg.name()
            )));
        }
        Ok(key)
    }

    /// The key id, if the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether the key's type can verify `alg` at all.
    fn fits(&self, alg: Algorithm) -> bool {
        match &self.material {
            Material::Ecdsa(own, _) => *own == alg,
            Material::Ed25519(_) => alg == Algorithm::EdDsa,
            Material::Rsa { .. } => matches!(alg, Algorithm::Rs256 | Algorithm::Ps256),
        }
    }

    /// Whether this key may verify a signature made with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.fits(alg) && self.pinned.is_none_or(|p| p == alg)
    }

    /// Whether `signature` signs `message` under this key with `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        match &self.material {
            Material::Ecdsa(_, key) | Material::Ed25519(key) => {
                key.verify_sig(message, signature).is_ok()
            }
            Material::Rsa { n, e } => {
                let params = match alg {
                    Algorithm::Ps256 => &RSA_PSS_2048_8192_SHA256,
                    _ => &RSA_PKCS1_2048_8192_SHA256,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
        }
    }
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK, base64url: the hash of its required
/// members alone, in lexicographic order, so the same key always gives the same value
/// whatever else its JWK carries. `None` for a key type without defined members (call it
/// after [`VerifyingKey::from_jwk`] accepted the key).
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let required: &[&str] = match member(jwk, "kty")? {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => return None,
    };
    // The members in lexicographic order, written without whitespace: the RFC's
    // canonical form. In a key `from_jwk` accepted they are base64url or fixed names,
    // which JSON writes as they are; anything that would need escaping gets no thumbprint.
    let mut json = String::with_capacity(256);
    json.push('{');
    for (i, name) in required.iter().enumerate() {
        let value = member(jwk, name)?;
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        if i > 0 {
            json.push(',');
        }
        for part in ["\"", name, "\":\"", value, "\""] {
            json.push_str(part);
        }
    }
    json.push('}');
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, json.as_bytes());
    Some(URL_SAFE_NO_PAD.encode(hash.as_ref()))
}

/// How strictly a JWKS is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Every key must be usable: a JWKS an operator registers, where a key this server
    /// cannot use is a mistake to report.
    Every,
    /// Keys of unsupported types are skipped: an issuer's published JWKS, which may list
    /// keys for other consumers. A private member still refuses the whole set.
    Usable,
}

/// Parses a JWKS document (`{"keys": [...]}`) into verifying keys.
pub fn parse_jwks(json: &[u8], strictness: Strictness) -> Result<Vec<VerifyingKey>, JwkError> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Map<String, Value>>,
    }
    let set: Set = serde_json::from_slice(json).map_err(|e| JwkError::NotJwks(e.to_string()))?;
    if set.keys.len() > MAX_KEYS {
        return Err(JwkError::TooMany);
    }
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(set.keys.len());
    for (position, jwk) in set.keys.iter().enumerate() {
        match VerifyingKey::from_jwk(jwk, position) {
            Ok(key) => {
                if let Some(kid) = key.kid()
                    && keys.iter().any(|k| k.kid() == Some(kid))
                {
                    return Err(JwkError::DuplicateKid(kid.to_owned()));
                }
                keys.push(key);
            }
            Err(e @ JwkError::PrivateMember { .. }) => return Err(e),
            Err(e) if strictness == Strictness::Every => return Err(e),
            Err(_) => {}
        }
    }
    if keys.is_empty() {
        return Err(JwkError::Empty);
    }
    Ok(keys)
}

/// Why a compact JWS was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Longer than the cap for its kind.
    #[error("longer than {0} bytes")]
    TooLong(usize),
    /// Not three base64url parts with a JSON header.
    #[error("not a compact JWT")]
    Malformed,
    /// `none`, an HMAC, or anything else off the allow-list.
    #[error(
        "algorithm {0:?} is not accepted (ES256, ES384, EdDSA or Ed25519, RS256 or PS256 only)"
    )]
    Algorithm(String),
    /// A `crit` header: extensions this server does not understand.
    #[error("critical header extensions are not supported")]
    Critical,
    /// No key has the header's `kid`.
    #[error("no registered key has kid {0:?}")]
    UnknownKid(String),
    /// No key verifies the signature.
    #[error("the signature does not verify under any registered key")]
    BadSignature,
}

/// The first 64 characters of a header value the sender chose, for error messages.
fn shortened(value: &str) -> String {
    value.chars().take(64).collect()
}

/// A compact JWS, split and its header checked; its signature not yet verified.
#[derive(Debug)]
pub struct Jws<'a> {
    /// The accepted algorithm the header names.
    pub alg: Algorithm,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The header's `typ`.
    pub typ: Option<String>,
    /// The header's `jwk`: the public key a DPoP proof carries (RFC 9449 §4.2).
    pub jwk: Option<Map<String, Value>>,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    /// Splits `token` (at most `max_len` bytes) and checks its header.
    pub fn parse(token: &'a str, max_len: usize) -> Result<Self, JwsError> {
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            #[serde(default)]
            kid: Option<String>,
            #[serde(default)]
            typ: Option<String>,
            #[serde(default)]
            jwk: Option<Map<String, Value>>,
            #[serde(default)]
            crit: Option<serde::de::IgnoredAny>,
        }
        if token.len() > max_len {
            return Err(JwsError::TooLong(max_len));
        }
        let (signing_input, signature_b64) = token.rsplit_once('.').ok_or(JwsError::Malformed)?;
        let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(JwsError::Malformed)?;
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwsError::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(header_b64)?).map_err(|_| JwsError::Malformed)?;
        let alg = Algorithm::from_name(&header.alg)
            .ok_or_else(|| JwsError::Algorithm(shortened(&header.alg)))?;
        if header.crit.is_some() {
            return Err(JwsError::Critical);
        }
        Ok(Self {
            alg,
            kid: header.kid,
            typ: header.typ,
            jwk: header.jwk,
            signing_input,
            payload: decode(payload_b64)?,
            signature: decode(signature_b64)?,
        })
    }

    /// The decoded payload (the claims), not to be trusted before [`Jws::verify`].
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Verifies the signature under one of `keys`: the key with the header's `kid` when
    /// it names one, else each key that accepts the algorithm. Returns the key that
    /// verified.
    pub fn verify<'k>(&self, keys: &'k [VerifyingKey]) -> Result<&'k VerifyingKey, JwsError> {
        let mut candidates = keys
            .iter()
            .filter(|k| self.kid.is_none() || k.kid() == self.kid.as_deref())
            .peekable();
        if candidates.peek().is_none()
            && let Some(kid) = &self.kid
        {
            return Err(JwsError::UnknownKid(shortened(kid)));
        }
        candidates
            .find(|k| k.verify(self.alg, self.signing_input.as_bytes(), &self.signature))
            .ok_or(JwsError::BadSignature)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair,
    };
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn thumbprints_match_rfc_7638() {
        // RFC 7638 §3.1's example key and thumbprint; members beyond the required ones
        // (alg, kid) change nothing.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let jwk = jwk.as_object().unwrap();
        assert_eq!(
            thumbprint(jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(
            thumbprint(json!({"kty": "oct", "k": "x"}).as_object().unwrap()),
            None
        );
        assert_eq!(
            thumbprint(json!({"kty": "EC", "crv": "P-256"}).as_object().unwrap()),
            None
        );
    }

    /// A compact JWT over `claims` with `header`, signed by `sign`.
    fn jwt(header: Value, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = sign(input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }

    fn jwk_map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_algorithm_verifies_and_only_under_its_own_key() {
        let rng = SystemRandom::new();
        let p256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let ed = Ed25519KeyPair::generate().unwrap();
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let point = |k: &EcdsaKeyPair| k.public_key().as_ref().to_vec();
        let ec_jwk = |crv: &str, p: Vec<u8>, kid: &str| {
            let half = (p.len() - 1) / 2;
            json!({"kty":"EC","crv":crv,"x":b64(&p[1..1+half]),"y":b64(&p[1+half..]),"kid":kid})
        };
        let rsa_public = rsa.public_key();
        let components: RsaPublicKeyComponents<Vec<u8>> = rsa_public.into();
        let jwks = json!({"keys":[
            ec_jwk("P-256", point(&p256), "p256"),
            ec_jwk("P-384", point(&p384), "p384"),
            {"kty":"OKP","crv":"Ed25519","x":b64(ed.public_key().as_ref()),"kid":"ed"},
            {"kty":"RSA","n":b64(&components.n),"e":b64(&components.e),"kid":"rsa"},
        ]});
        let keys = parse_jwks(jwks.to_string().as_bytes(), Strictness::Every).unwrap();
        assert_eq!(keys.len(), 4);
        let claims = json!({"sub":"x"});
        type Signer<'a> = Box<dyn Fn(&[u8]) -> Vec<u8> + 'a>;
        let cases: Vec<(&str, &str, Signer)> = vec![
            (
                "ES256",
                "p256",
                Box::new(|m| p256.sign(&rng, m).unwrap().as_ref().to_vec()),
            ),
            (
                "ES384",
                "p384",
                Box::new(|m| p384.sign(&rng, m).unwrap().as_ref().to_vec()),
            ),
            ("EdDSA", "ed", Box::new(|m| ed.sign(m).as_ref().to_vec())),
            (
                "RS256",
                "rsa",
                Box::new(|m| {
                    let mut s = vec![0; rsa.public_modulus_len()];
                    rsa.sign(&RSA_PKCS1_SHA256, &rng, m, &mut s).unwrap();
                    s
                }),
            ),
            (
                "PS256",
                "rsa",
                Box::new(|m| {
                    let mut s = vec![0; rsa.public_modulus_len()];
                    rsa.sign(&RSA_PSS_SHA256, &rng, m, &mut s).unwrap();
                    s
                }),
            ),
        ];
        for (alg, kid, sign) in &cases {
            // With its kid, and without one (each key is tried).
            for header in [json!({"alg":alg,"kid":kid}), json!({"alg":alg})] {
                let token = jwt(header, claims.clone(), sign);
                let jws = Jws::parse(&token, 8192).unwrap();
                assert_eq!(jws.verify(&keys).unwrap().kid(), Some(*kid), "{alg}");
                assert_eq!(jws.payload(), claims.to_string().as_bytes());
            }
            // Named as another key: refused.
            let other = if *kid == "p256" { "ed" } else { "p256" };
            let token = jwt(json!({"alg":alg,"kid":other}), claims.clone(), sign);
            assert_eq!(
                Jws::parse(&token, 8192).unwrap().verify(&keys).unwrap_err(),
                JwsError::BadSignature
            );
        }
        // RFC 9864's name for Ed25519 is the same algorithm.
        let token = jwt(
            json!({"alg":"Ed25519","kid":"ed"}),
            claims.clone(),
            &cases[2].2,
        );
        assert_eq!(
            Jws::parse(&token, 8192)
                .unwrap()
                .verify(&keys)
                .unwrap()
                .kid(),
            Some("ed")
        );
        // An RS256 signature presented as PS256 does not verify.
        let token = jwt(
            json!({"alg":"PS256","kid":"rsa"}),
            claims.clone(),
            &cases[3].2,
        );
        assert!(Jws::parse(&token, 8192).unwrap().verify(&keys).is_err());
    }

    #[test]
    fn none_hmac_and_unknown_algorithms_are_refused_before_any_key_is_tried() {
        for alg in ["none", "HS256", "HS512", "RS512", "ES256K", ""] {
            let token = jwt(json!({"alg":alg}), json!({}), |_| vec![1, 2, 3]);
            assert_eq!(
                Jws::parse(&token, 8192).unwrap_err(),
                JwsError::Algorithm(alg.into())
            );
        }
        let token = jwt(json!({"alg":"ES256","crit":["exp"]}), json!({}), |_| {
            vec![1]
        });
        assert_eq!(Jws::parse(&token, 8192).unwrap_err(), JwsError::Critical);
        assert_eq!(Jws::parse("a.b", 8192).unwrap_err(), JwsError::Malformed);
        assert_eq!(
            Jws::parse(&"a".repeat(100), 50).unwrap_err(),
            JwsError::TooLong(50)
        );
    }

    #[test]
    fn unknown_kids_are_reported_as_such() {
        let p256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p = p256.public_key().as_ref().to_vec();
        let jwks = json!({"keys":[{"kty":"EC","crv":"P-256","x":b64(&p[1..33]),"y":b64(&p[33..]),"kid":"a"}]});
        let keys = parse_jwks(jwks.to_string().as_bytes(), Strictness::Every).unwrap();
        let token = jwt(json!({"alg":"ES256","kid":"zzz"}), json!({}), |_| {
            vec![0; 64]
        });
        assert_eq!(
            Jws::parse(&token, 8192).unwrap().verify(&keys).unwrap_err(),
            JwsError::UnknownKid("zzz".into())
        );
    }

    #[test]
    fn private_symmetric_and_odd_jwks_are_refused() {
        let private =
            json!({"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA","kid":"k1"}]});
        assert_eq!(
            parse_jwks(private.to_string().as_bytes(), Strictness::Usable).unwrap_err(),
            JwkError::PrivateMember {
                kid: "k1".into(),
                member: "d"
            }
        );
        let oct = json!({"keys":[{"kty":"oct","k":"c2VjcmV0"}]});
        assert!(matches!(
            parse_jwks(oct.to_string().as_bytes(), Strictness::Every).unwrap_err(),
            JwkError::PrivateMember { member: "k", .. }
        ));
        let short_rsa = json!({"keys":[{"kty":"RSA","n":b64(&[0xff; 128]),"e":"AQAB"}]});
        assert!(matches!(
            parse_jwks(short_rsa.to_string().as_bytes(), Strictness::Every).unwrap_err(),
            JwkError::Unsupported { .. }
        ));
        // Leniently read, an unusable key is skipped, but nothing usable is an error.
        assert_eq!(
            parse_jwks(short_rsa.to_string().as_bytes(), Strictness::Usable).unwrap_err(),
            JwkError::Empty
        );
        let bad_point =
            json!({"keys":[{"kty":"EC","crv":"P-256","x":b64(&[1;32]),"y":b64(&[2;32])}]});
        assert!(parse_jwks(bad_point.to_string().as_bytes(), Strictness::Every).is_err());
        let mismatched = json!({"kty":"OKP","crv":"Ed25519","x":b64(&[9;32]),"alg":"ES256"});
        assert!(VerifyingKey::from_jwk(&jwk_map(mismatched), 0).is_err());
        assert!(parse_jwks(b"not json", Strictness::Every).is_err());
        assert_eq!(
            parse_jwks(br#"{"keys":[]}"#, Strictness::Every).unwrap_err(),
            JwkError::Empty
        );
        let many = json!({"keys": vec![json!({"kty":"oct"}); MAX_KEYS + 1]});
        assert_eq!(
            parse_jwks(many.to_string().as_bytes(), Strictness::Usable).unwrap_err(),
            JwkError::TooMany
        );
    }
}
