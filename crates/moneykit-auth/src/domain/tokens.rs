//! The access token: an ES256-signed JWT per RFC 9068 (header `typ` `at+jwt`).
//!
//! Signing and validation are plain functions over parsed keys; validation pins the
//! algorithm, requires the `at+jwt` type and the configured issuer, checks the signature
//! before trusting any claim, and only then looks at `exp` (with [`EXPIRY_LEEWAY_SECS`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit_wire::{Audience, Confirmation};
use serde::{Deserialize, Serialize};

use super::{EXPIRY_LEEWAY_SECS, MAX_TOKEN_TTL_SECS};
use crate::crypto::es256::is_low_s;
use crate::crypto::{KeyPair, PublicKey};

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Longest token string the validator will look at; real tokens are about 500 bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer URL the server is configured with.
    pub iss: String,
    /// The resource servers the token is for (RFC 9068 §2.2: required). Read as empty
    /// from tokens issued before audiences existed, which stay valid until they expire.
    #[serde(default)]
    pub aud: Audience,
    /// The client id.
    pub sub: String,
    /// The client id again (RFC 9068 §2.2).
    pub client_id: String,
    /// The client's app.
    pub app_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Unique token id; what revocation names.
    pub jti: String,
    /// What a sender-constrained token is bound to: a DPoP key (RFC 9449 §6.1), a client
    /// certificate (RFC 8705 §3.1), or both. Absent for a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The base64url header of an ES256 JWT signed by `kid` with type `typ`: the one place
/// both access tokens and webhook signatures take their header from.
pub fn jwt_header(kid: &str, typ: &str) -> String {
    let header = serde_json::json!({ "alg": "ES256", "typ": typ, "kid": kid });
    URL_SAFE_NO_PAD.encode(header.to_string())
}

/// The base64url JWT header for access tokens signed by `kid`. Computed once per key.
pub fn access_token_header(kid: &str) -> String {
    jwt_header(kid, ACCESS_TOKEN_TYPE)
}

impl AccessClaims {
    /// The claims as JSON: the same bytes `serde_json` writes for this struct, written
    /// directly because this runs once per issued token.
    pub fn to_json(&self) -> String {
        use crate::domain::json::push_str;
        let audience_len: usize = self.aud.iter().map(|a| a.len() + 3).sum();
        let mut out = String::with_capacity(
            104 + self.iss.len()
                + audience_len
                + 2 * self.sub.len()
                + self.app_id.len()
                + self.scope.len(),
        );
        out.push_str("{\"iss\":");
        push_str(&mut out, &self.iss);
        out.push_str(",\"aud\":");
        match self.aud.as_slice() {
            [one] => push_str(&mut out, one),
            many => {
                out.push('[');
                for (i, audience) in many.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_str(&mut out, audience);
                }
                out.push(']');
            }
        }
        out.push_str(",\"sub\":");
        push_str(&mut out, &self.sub);
        out.push_str(",\"client_id\":");
        push_str(&mut out, &self.client_id);
        out.push_str(",\"app_id\":");
        push_str(&mut out, &self.app_id);
        out.push_str(",\"scope\":");
        push_str(&mut out, &self.scope);
        out.push_str(&format!(
            ",\"iat\":{},\"exp\":{},\"jti\":",
            self.iat, self.exp
        ));
        push_str(&mut out, &self.jti);
        if let Some(cnf) = &self.cnf {
            out.push_str(",\"cnf\":{");
            let members = [("jkt", &cnf.jkt), ("x5t#S256", &cnf.x5t_s256)];
            let mut first = true;
            for (name, value) in members {
                if let Some(value) = value {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    push_str(&mut out, name);
                    out.push(':');
                    push_str(&mut out, value);
                }
            }
            out.push('}');
        }
        out.push('}');
        out
    }
}

/// Signs `claims` into a compact JWT with a precomputed `header_b64`.
pub fn sign(key: &KeyPair, header_b64: &str, claims: &AccessClaims) -> String {
    key.sign_jwt(header_b64, claims.to_json().as_bytes())
}

/// Why a presented token is not accepted. Only [`TokenRejection::Expired`] is reported
/// differently to the caller; the others all mean "not a token of ours".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not three base64url parts of JSON, or too long.
    #[error("the token is malformed")]
    Malformed,
    /// The header names another algorithm than ES256, or critical extensions.
    #[error("the token's algorithm is not ES256")]
    WrongAlgorithm,
    /// The header `typ` is not `at+jwt`.
    #[error("the token is not an access token")]
    WrongType,
    /// No published key has the header's `kid`.
    #[error("the token was not signed by a known key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// Signed by us but for another issuer.
    #[error("the token was issued for another issuer")]
    WrongIssuer,
    /// Past `exp` (plus leeway).
    #[error("the access token has expired")]
    Expired,
    /// Claims no token of ours can have: issued in the future (beyond the leeway), or
    /// living longer than the longest lifetime. Only a holder of a signing key can make
    /// such a token, so it is refused rather than trusted.
    #[error("the token's claims are out of bounds")]
    OutOfBounds,
    /// A valid signature in its high-s form, on a token that carries `aud`: every such
    /// token is signed low-s here, so this is the second encoding ECDSA allows
    /// (malleability), made from a real token by someone else.
    #[error("the token's signature is not in canonical (low-s) form")]
    NonCanonicalSignature,
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    #[serde(default)]
    typ: Option<&'a str>,
    #[serde(default)]
    kid: Option<&'a str>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

fn decode_part(part: &str) -> Result<Vec<u8>, TokenRejection> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenRejection::Malformed)
}

/// Validates a compact JWT and returns its claims: [`verify_signature`], then
/// [`checked_claims`].
///
/// `key_for` looks up a verification key by `kid`; `issuer` is the expected `iss`;
/// `now` is Unix seconds.
pub fn validate<'k>(
    token: &str,
    key_for: impl Fn(&str) -> Option<&'k PublicKey>,
    issuer: &str,
    now: i64,
) -> Result<AccessClaims, TokenRejection> {
    let form = verify_signature(token, |_| None, key_for)?;
    let claims = checked_claims(token, issuer, now)?;
    form.check(&claims)?;
    Ok(claims)
}

/// Which of ECDSA's two encodings a verified signature has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureForm {
    /// Low-s: how this server signs.
    Canonical,
    /// High-s: `(r, n - s)` of a canonical signature.
    HighS,
}

impl SignatureForm {
    /// Refuses the high-s form on tokens that carry `aud`, which this version always signs
    /// low-s. Tokens without `aud` come from earlier versions, which signed either form;
    /// they are accepted for the day at most they have left.
    pub fn check(self, claims: &AccessClaims) -> Result<(), TokenRejection> {
        if self == SignatureForm::HighS && !claims.aud.is_empty() {
            return Err(TokenRejection::NonCanonicalSignature);
        }
        Ok(())
    }
}

/// The signature half of validation: the header is ES256, `at+jwt`, without critical
/// extensions, names a known key, and the signature verifies. Nothing in the claims is
/// looked at, so a token that passes can be remembered by its exact bytes and never
/// verified again.
///
/// `known_header` short-cuts the header checks: given the base64url header, it returns
/// the key whose own precomputed access-token header is exactly those bytes (every token
/// this service signs), so the header need not be decoded and parsed. `key_for` looks a
/// key up by `kid` for any other header.
pub fn verify_signature<'k>(
    token: &str,
    known_header: impl Fn(&str) -> Option<&'k PublicKey>,
    key_for: impl Fn(&str) -> Option<&'k PublicKey>,
) -> Result<SignatureForm, TokenRejection> {
    let key = signing_key(token, known_header, key_for)?;
    verify_signature_with(key, token)
}

/// The header half of [`verify_signature`]: the published key the token's header names,
/// provided the header is one we accept. Cheap (no signature check), so it runs on every
/// use of a token, remembered or not: a key withdrawn since takes its tokens with it.
pub fn signing_key<'k>(
    token: &str,
    known_header: impl Fn(&str) -> Option<&'k PublicKey>,
    key_for: impl Fn(&str) -> Option<&'k PublicKey>,
) -> Result<&'k PublicKey, TokenRejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenRejection::Malformed);
    }
    let (header_b64, _) = token.split_once('.').ok_or(TokenRejection::Malformed)?;
    match known_header(header_b64) {
        Some(key) => Ok(key),
        None => checked_header_key(header_b64, key_for),
    }
}

/// The signature half of [`verify_signature`], under the key [`signing_key`] found; says
/// which encoding the valid signature has.
pub fn verify_signature_with(
    key: &PublicKey,
    token: &str,
) -> Result<SignatureForm, TokenRejection> {
    let (signing_input, signature_b64) = token.rsplit_once('.').ok_or(TokenRejection::Malformed)?;
    if !signing_input.contains('.') {
        return Err(TokenRejection::Malformed);
    }
    let signature = decode_part(signature_b64)?;
    if !key.verify(signing_input.as_bytes(), &signature) {
        return Err(TokenRejection::BadSignature);
    }
    Ok(if is_low_s(&signature) {
        SignatureForm::Canonical
    } else {
        SignatureForm::HighS
    })
}

/// Parses and checks a JWT header, returning the key it names.
fn checked_header_key<'k>(
    header_b64: &str,
    key_for: impl Fn(&str) -> Option<&'k PublicKey>,
) -> Result<&'k PublicKey, TokenRejection> {
    let header_json = decode_part(header_b64)?;
    let header: Header<'_> =
        serde_json::from_slice(&header_json).map_err(|_| TokenRejection::Malformed)?;
    if header.alg != "ES256" || header.crit.is_some() {
        return Err(TokenRejection::WrongAlgorithm);
    }
    let typ_ok = header.typ.is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenRejection::WrongType);
    }
    header
        .kid
        .and_then(key_for)
        .ok_or(TokenRejection::UnknownKey)
}

/// The claims half of validation, for a token whose signature has been verified: the
/// claims parse, the issuer is `issuer`, `exp` (with leeway) is not past `now`, and the
/// times are ones this server could have issued: `iat` not after `now` (with leeway) and
/// a lifetime of at most [`MAX_TOKEN_TTL_SECS`].
pub fn checked_claims(token: &str, issuer: &str, now: i64) -> Result<AccessClaims, TokenRejection> {
    let claims_b64 = token.split('.').nth(1).ok_or(TokenRejection::Malformed)?;
    let claims: AccessClaims =
        serde_json::from_slice(&decode_part(claims_b64)?).map_err(|_| TokenRejection::Malformed)?;
    if claims.iss != issuer {
        return Err(TokenRejection::WrongIssuer);
    }
    if now > claims.exp.saturating_add(EXPIRY_LEEWAY_SECS) {
        return Err(TokenRejection::Expired);
    }
    let lifetime = claims.exp.saturating_sub(claims.iat);
    if claims.iat > now.saturating_add(EXPIRY_LEEWAY_SECS)
        || !(0..=i64::from(MAX_TOKEN_TTL_SECS)).contains(&lifetime)
    {
        return Err(TokenRejection::OutOfBounds);
    }
    Ok(claims)
}

/// A revoked token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    /// Store order; assigned by the store.
    pub seq: i64,
    /// The token's `jti`.
    pub jti: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The token's `exp` (Unix seconds): after this the entry can be forgotten.
    pub expires_at: i64,
    /// When it was revoked (Unix seconds).
    pub revoked_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        pair: KeyPair,
        public: PublicKey,
    }

    fn fixture() -> Fixture {
        let pair = KeyPair::from_pkcs8("key_t", &KeyPair::generate_pkcs8()).unwrap();
        let public = PublicKey::from_sec1("key_t", &pair.public_key_bytes()).unwrap();
        Fixture { pair, public }
    }

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer".into(),
            aud: Audience::single("http://issuer"),
            sub: "live_1".into(),
            client_id: "live_1".into(),
            app_id: "app_1".into(),
            scope: "a b".into(),
            iat: exp - 200,
            exp,
            jti: "j".into(),
            cnf: None,
        }
    }

    fn check(f: &Fixture, token: &str, now: i64) -> Result<AccessClaims, TokenRejection> {
        validate(
            token,
            |kid| (kid == "key_t").then_some(&f.public),
            "http://issuer",
            now,
        )
    }

    fn with_header(f: &Fixture, header: serde_json::Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        sign(&f.pair, &h, &claims(1000))
    }

    #[test]
    fn hand_written_claims_json_is_what_serde_writes() {
        let mut c = claims(1000);
        assert_eq!(c.to_json(), serde_json::to_string(&c).unwrap());
        c.iss = "https://q\"uote\\d/ü".into();
        c.scope = "a:b c!d".into();
        c.iat = -5;
        assert_eq!(c.to_json(), serde_json::to_string(&c).unwrap());
        c.aud = Audience::new(vec!["urn:a".into(), "https://b/\"".into()]);
        assert_eq!(c.to_json(), serde_json::to_string(&c).unwrap());
        c.aud = Audience::default();
        assert_eq!(c.to_json(), serde_json::to_string(&c).unwrap());
    }

    #[test]
    fn a_signed_token_round_trips() {
        let f = fixture();
        let token = sign(&f.pair, &access_token_header("key_t"), &claims(1000));
        assert_eq!(check(&f, &token, 900).unwrap(), claims(1000));
    }

    #[test]
    fn expiry_allows_five_seconds_of_leeway() {
        let f = fixture();
        let token = sign(&f.pair, &access_token_header("key_t"), &claims(1000));
        assert!(check(&f, &token, 1005).is_ok());
        assert_eq!(check(&f, &token, 1006), Err(TokenRejection::Expired));
    }

    #[test]
    fn tampering_anywhere_is_rejected() {
        let f = fixture();
        let token = sign(&f.pair, &access_token_header("key_t"), &claims(1000));
        let mut other = claims(1000);
        other.scope = "admin".into();
        let forged_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(check(&f, &forged, 900), Err(TokenRejection::BadSignature));
        let zero_sig = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode([0u8; 64])
        );
        assert_eq!(check(&f, &zero_sig, 900), Err(TokenRejection::BadSignature));
        assert_eq!(check(&f, "a.b", 900), Err(TokenRejection::Malformed));
        assert_eq!(check(&f, "", 900), Err(TokenRejection::Malformed));
        assert_eq!(check(&f, "!!.??.**", 900), Err(TokenRejection::Malformed));
        assert_eq!(
            check(&f, &"a".repeat(MAX_TOKEN_LEN + 1), 900),
            Err(TokenRejection::Malformed)
        );
    }

    #[test]
    fn header_is_pinned() {
        let f = fixture();
        let t = |h| check(&f, &with_header(&f, h), 900);
        use serde_json::json;
        assert_eq!(
            t(json!({"alg":"HS256","typ":"at+jwt","kid":"key_t"})),
            Err(TokenRejection::WrongAlgorithm)
        );
        assert_eq!(
            t(json!({"alg":"none","typ":"at+jwt","kid":"key_t"})),
            Err(TokenRejection::WrongAlgorithm)
        );
        assert_eq!(
            t(json!({"alg":"ES256","typ":"JWT","kid":"key_t"})),
            Err(TokenRejection::WrongType)
        );
        assert_eq!(
            t(json!({"alg":"ES256","kid":"key_t"})),
            Err(TokenRejection::WrongType)
        );
        assert_eq!(
            t(json!({"alg":"ES256","typ":"at+jwt","kid":"other"})),
            Err(TokenRejection::UnknownKey)
        );
        assert_eq!(
            t(json!({"alg":"ES256","typ":"at+jwt","kid":"key_t","crit":["x"]})),
            Err(TokenRejection::WrongAlgorithm)
        );
        assert!(t(json!({"alg":"ES256","typ":"application/at+jwt","kid":"key_t"})).is_ok());
    }

    #[test]
    fn the_known_header_fast_path_still_checks_the_signature() {
        let f = fixture();
        let header = access_token_header("key_t");
        let known = |h: &str| (h == header).then_some(&f.public);
        let by_kid = |_: &str| None;
        let token = sign(&f.pair, &header, &claims(1000));
        assert_eq!(
            verify_signature(&token, known, by_kid),
            Ok(SignatureForm::Canonical)
        );

        // The fast path skips only header parsing: a bad signature under the exact
        // known header is still rejected.
        let parts: Vec<&str> = token.split('.').collect();
        let zero_sig = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode([0u8; 64])
        );
        assert_eq!(
            verify_signature(&zero_sig, known, by_kid),
            Err(TokenRejection::BadSignature)
        );

        // Any other header falls through to the full checks, which still pin the algorithm.
        let hs = with_header(
            &f,
            serde_json::json!({"alg":"HS256","typ":"at+jwt","kid":"key_t"}),
        );
        assert_eq!(
            verify_signature(&hs, known, |kid| (kid == "key_t").then_some(&f.public)),
            Err(TokenRejection::WrongAlgorithm)
        );
        // A valid but differently written header is looked up by kid, not by bytes.
        let other = with_header(
            &f,
            serde_json::json!({"alg":"ES256","typ":"at+jwt","kid":"key_t","x":1}),
        );
        assert_eq!(
            verify_signature(&other, known, by_kid),
            Err(TokenRejection::UnknownKey)
        );
    }

    #[test]
    fn claims_outside_what_we_issue_are_refused() {
        let f = fixture();
        let sign_claims = |c: &AccessClaims| sign(&f.pair, &access_token_header("key_t"), c);
        // Ten years ahead: a lifetime beyond the longest one.
        let mut c = claims(1000);
        c.exp = c.iat + 10 * 365 * 86_400;
        assert_eq!(
            check(&f, &sign_claims(&c), 900),
            Err(TokenRejection::OutOfBounds)
        );
        c.exp = c.iat + i64::from(MAX_TOKEN_TTL_SECS);
        assert!(check(&f, &sign_claims(&c), 900).is_ok());
        // Issued in the future, beyond the leeway.
        let mut c = claims(2000);
        c.iat = 900 + EXPIRY_LEEWAY_SECS + 1;
        assert_eq!(
            check(&f, &sign_claims(&c), 900),
            Err(TokenRejection::OutOfBounds)
        );
        c.iat = 900 + EXPIRY_LEEWAY_SECS;
        assert!(check(&f, &sign_claims(&c), 900).is_ok());
        // Expiring before it was issued.
        let mut c = claims(1000);
        c.iat = c.exp + 1;
        assert_eq!(
            check(&f, &sign_claims(&c), 900),
            Err(TokenRejection::OutOfBounds)
        );
    }

    #[test]
    fn the_high_s_twin_of_a_token_with_an_audience_is_refused() {
        use crate::crypto::es256::high_s_twin;
        let f = fixture();
        let twin_of = |c: &AccessClaims| {
            let token = sign(&f.pair, &access_token_header("key_t"), c);
            let (input, sig) = token.rsplit_once('.').unwrap();
            let twin = high_s_twin(&URL_SAFE_NO_PAD.decode(sig).unwrap());
            (
                token.clone(),
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(twin)),
            )
        };
        let (token, twin) = twin_of(&claims(1000));
        assert!(check(&f, &token, 900).is_ok());
        assert_eq!(
            check(&f, &twin, 900),
            Err(TokenRejection::NonCanonicalSignature)
        );
        // Tokens of earlier versions carry no `aud` and may be high-s: still accepted.
        let mut legacy = claims(1000);
        legacy.aud = Audience::default();
        let (_, legacy_twin) = twin_of(&legacy);
        assert_eq!(check(&f, &legacy_twin, 900), Ok(legacy));
    }

    #[test]
    fn issuer_must_match() {
        let f = fixture();
        let mut c = claims(1000);
        c.iss = "http://elsewhere".into();
        let token = sign(&f.pair, &access_token_header("key_t"), &c);
        assert_eq!(check(&f, &token, 900), Err(TokenRejection::WrongIssuer));
    }
}
