//! The claims of JWTs others sign, and what makes them acceptable: client assertions
//! (`private_key_jwt`, RFC 7523 §3 and draft-ietf-oauth-rfc7523bis) and the platform
//! tokens of federated workloads (RFC 7523 §2.1, RFC 8693). Pure checks on decoded
//! claims; the signature is verified before any of this runs (`crypto::jose`).

use serde::Deserialize;
use time::OffsetDateTime;

/// `client_assertion_type` of a `private_key_jwt` client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `grant_type` of token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The `subject_token_type` accepted in a token exchange: a JWT.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The `issued_token_type` (and the only `requested_token_type`) of a token exchange.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Longest assertion or platform token looked at: real ones are well under 2 KiB
/// (Kubernetes tokens about 1 KiB, RSA-signed ones a little more).
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// How far in the future `iat` and `nbf` may be: the clocks of two machines disagree.
pub const CLOCK_LEEWAY_SECS: i64 = 5;

/// `aud` as sent: one string, or an array of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AudienceClaim {
    /// A single string.
    One(String),
    /// An array.
    Many(Vec<String>),
}

impl AudienceClaim {
    /// Whether `value` is among the audiences.
    fn contains(&self, value: &str) -> bool {
        match self {
            AudienceClaim::One(one) => one == value,
            AudienceClaim::Many(many) => many.iter().any(|a| a == value),
        }
    }
}

/// The registered claims both kinds of JWT are judged by; the rest are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JwtClaims {
    /// Issuer.
    #[serde(default)]
    pub iss: Option<String>,
    /// Subject.
    #[serde(default)]
    pub sub: Option<String>,
    /// Audience.
    #[serde(default)]
    pub aud: Option<AudienceClaim>,
    /// Expiry (Unix seconds).
    #[serde(default)]
    pub exp: Option<i64>,
    /// Not before (Unix seconds).
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Issued at (Unix seconds).
    #[serde(default)]
    pub iat: Option<i64>,
    /// JWT id.
    #[serde(default)]
    pub jti: Option<String>,
}

impl JwtClaims {
    /// Decodes a payload; `None` if it is not a JSON object with well-typed claims.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }

    /// The time checks both kinds share: `exp` present and not past, `iat` and `nbf`
    /// not in the future beyond the leeway. Returns `exp`.
    fn check_times(&self, now: i64) -> Result<i64, Rejection> {
        let exp = self.exp.ok_or(Rejection::MissingClaim("exp"))?;
        if exp <= now {
            return Err(Rejection::Expired);
        }
        let future = |t: Option<i64>| t.is_some_and(|t| t > now + CLOCK_LEEWAY_SECS);
        if future(self.iat) {
            return Err(Rejection::IssuedInFuture);
        }
        if future(self.nbf) {
            return Err(Rejection::NotYetValid);
        }
        Ok(exp)
    }
}

/// Why an assertion or platform token is refused; its `Display` is the description sent
/// to the client (names the check, never a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A required claim is absent.
    #[error("the {0} claim is required")]
    MissingClaim(&'static str),
    /// `iss` and `sub` are not both the client id.
    #[error("iss and sub must both be the client id")]
    IssuerNotSubject,
    /// `aud` does not identify this server.
    #[error("aud must be {0}")]
    WrongAudience(String),
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// `iat` in the future.
    #[error("iat is in the future")]
    IssuedInFuture,
    /// `nbf` in the future.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `exp` too far ahead.
    #[error("the token lives longer than {0} s")]
    TooLongLived(i64),
    /// `jti` empty or too long to keep.
    #[error("the jti must be 1-256 bytes")]
    JtiLength,
    /// `jti` used before.
    #[error("the jti has been used before")]
    Replayed,
    /// `sub` not the rule's subject.
    #[error("sub does not match the trust rule")]
    WrongSubject,
}

/// What this server accepts as the audience of a client assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionAudience {
    /// The issuer identifier: always accepted (as the only value of a string `aud`, or
    /// in an array when not strict).
    pub issuer: String,
    /// The exact URLs of this server's endpoints where clients authenticate (the token
    /// endpoints, introspection, revocation), accepted unless `strict`: clients such as
    /// Authlib and requests-oauth2client put the URL they call in `aud`.
    pub endpoints: Vec<String>,
    /// draft-ietf-oauth-rfc7523bis: `aud` must be the issuer identifier, as a single JSON
    /// string. Closes the audience-injection attack, in which a client is tricked into
    /// signing an assertion for an attacker's server whose metadata names this server's
    /// token endpoint (or lists several audiences).
    pub strict: bool,
}

impl AssertionAudience {
    /// The values accepted, for the metadata.
    pub fn accepted(&self) -> Vec<String> {
        let mut all = vec![self.issuer.clone()];
        if !self.strict {
            all.extend(self.endpoints.iter().cloned());
        }
        all
    }

    fn accepts(&self, aud: &AudienceClaim) -> bool {
        match aud {
            AudienceClaim::One(one) => {
                *one == self.issuer || (!self.strict && self.endpoints.contains(one))
            }
            AudienceClaim::Many(many) => {
                !self.strict
                    && many
                        .iter()
                        .any(|a| *a == self.issuer || self.endpoints.contains(a))
            }
        }
    }
}

/// A client assertion that passed: its `jti` and until when it must not be seen again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedAssertion {
    /// The assertion's id.
    pub jti: String,
    /// Its `exp`: after that it is refused as expired anyway.
    pub expires_at: i64,
}

/// Longest `jti` kept: a client-chosen string that the replay cache stores.
const MAX_JTI_LEN: usize = 256;

/// Checks the claims of a `private_key_jwt` assertion whose signature verified under a
/// key of `client_id`: `iss` = `sub` = the client id, `aud` this server, times within
/// bounds (`exp` at most `max_lifetime` seconds ahead), a `jti`. Replay is the caller's
/// check (it needs state).
pub fn check_client_assertion(
    claims: &JwtClaims,
    client_id: &str,
    audience: &AssertionAudience,
    max_lifetime: i64,
    now: i64,
) -> Result<AcceptedAssertion, Rejection> {
    if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
        return Err(Rejection::IssuerNotSubject);
    }
    let aud = claims.aud.as_ref().ok_or(Rejection::MissingClaim("aud"))?;
    if !audience.accepts(aud) {
        let expected = if audience.strict {
            format!(
                "the issuer identifier {:?} as a single string",
                audience.issuer
            )
        } else {
            format!(
                "the issuer identifier {:?} or the URL of the endpoint called",
                audience.issuer
            )
        };
        return Err(Rejection::WrongAudience(expected));
    }
    let expires_at = claims.check_times(now)?;
    if expires_at.saturating_sub(now) > max_lifetime {
        return Err(Rejection::TooLongLived(max_lifetime));
    }
    let jti = claims
        .jti
        .as_deref()
        .ok_or(Rejection::MissingClaim("jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(Rejection::JtiLength);
    }
    Ok(AcceptedAssertion {
        jti: jti.to_owned(),
        expires_at,
    })
}

/// Where a set of keys is fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyLocation {
    /// A JWKS document at this URL.
    Jwks(String),
    /// The `jwks_uri` of this issuer's `/.well-known/openid-configuration`.
    Discovery(String),
}

impl std::fmt::Display for KeyLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyLocation::Jwks(url) => write!(f, "{url}"),
            KeyLocation::Discovery(issuer) => write!(f, "{}", discovery_url(issuer)),
        }
    }
}

/// The OpenID discovery document of `issuer` (OpenID Connect Discovery §4), where its
/// keys are found when a trust rule names none.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// A client's trust in an external issuer: a workload whose platform token was issued by
/// `issuer` for `subject` gets tokens of `client_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRule {
    /// `trust_…` id.
    pub id: String,
    /// The trusting client.
    pub client_id: String,
    /// The platform's issuer (`iss`), compared exactly.
    pub issuer: String,
    /// The workload's `sub`, compared exactly.
    pub subject: String,
    /// The `aud` the platform token must contain; `None`: this server's issuer.
    pub audience: Option<String>,
    /// Where the issuer's keys come from.
    pub keys: IssuerKeys,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// Where the keys that verify an issuer's tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerKeys {
    /// A JWKS registered with the rule (e.g. a cluster's `/openid/v1/jwks`).
    Jwks(String),
    /// A JWKS URL, fetched and cached in the background.
    Uri(String),
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery,
}

impl TrustRule {
    /// Whether a token with these (verified) claims matches the rule: `iss` exact (the
    /// caller picks rules by issuer), `sub` exact, `aud` containing the rule's audience
    /// (`default_audience` when it has none), times within bounds and a lifetime of at
    /// most `max_lifetime` seconds.
    pub fn check(
        &self,
        claims: &JwtClaims,
        default_audience: &str,
        max_lifetime: i64,
        now: i64,
    ) -> Result<(), Rejection> {
        if claims.sub.as_deref() != Some(self.subject.as_str()) {
            return Err(Rejection::WrongSubject);
        }
        let audience = self.audience.as_deref().unwrap_or(default_audience);
        if !claims.aud.as_ref().is_some_and(|a| a.contains(audience)) {
            return Err(Rejection::WrongAudience(format!(
                "{audience:?} among the audiences"
            )));
        }
        let exp = claims.check_times(now)?;
        // The whole lifetime, from issue (or now, without iat): a long-lived platform
        // token is a standing credential, whatever is left of it.
        if exp.saturating_sub(claims.iat.unwrap_or(now).min(now)) > max_lifetime {
            return Err(Rejection::TooLongLived(max_lifetime));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn audience(strict: bool) -> AssertionAudience {
        AssertionAudience {
            issuer: "https://auth.example".into(),
            endpoints: vec![
                "https://auth.example/oauth2/token".into(),
                "https://auth.example/auth/token".into(),
            ],
            strict,
        }
    }

    fn assertion() -> JwtClaims {
        JwtClaims {
            iss: Some("live_1".into()),
            sub: Some("live_1".into()),
            aud: Some(AudienceClaim::One("https://auth.example".into())),
            exp: Some(NOW + 60),
            iat: Some(NOW),
            nbf: None,
            jti: Some("j1".into()),
        }
    }

    fn check(claims: &JwtClaims, strict: bool) -> Result<AcceptedAssertion, Rejection> {
        check_client_assertion(claims, "live_1", &audience(strict), 300, NOW)
    }

    #[test]
    fn a_good_assertion_passes_in_both_modes() {
        let accepted = check(&assertion(), true).unwrap();
        assert_eq!(accepted.jti, "j1");
        assert_eq!(accepted.expires_at, NOW + 60);
        assert!(check(&assertion(), false).is_ok());
    }

    #[test]
    fn strict_mode_takes_only_the_issuer_as_a_single_string() {
        let with = |aud: AudienceClaim| JwtClaims {
            aud: Some(aud),
            ..assertion()
        };
        let endpoint = with(AudienceClaim::One(
            "https://auth.example/oauth2/token".into(),
        ));
        let array = with(AudienceClaim::Many(vec!["https://auth.example".into()]));
        let injected = with(AudienceClaim::Many(vec![
            "https://evil.example".into(),
            "https://auth.example/oauth2/token".into(),
        ]));
        for claims in [&endpoint, &array, &injected] {
            assert!(matches!(
                check(claims, true),
                Err(Rejection::WrongAudience(_))
            ));
            assert!(check(claims, false).is_ok());
        }
        let foreign = with(AudienceClaim::One("https://evil.example".into()));
        assert!(check(&foreign, false).is_err());
        let prefix = with(AudienceClaim::One("https://auth.example/".into()));
        assert!(check(&prefix, false).is_err());
    }

    #[test]
    fn each_claim_check_names_itself() {
        let cases: Vec<(JwtClaims, Rejection)> = vec![
            (
                JwtClaims {
                    sub: Some("live_2".into()),
                    ..assertion()
                },
                Rejection::IssuerNotSubject,
            ),
            (
                JwtClaims {
                    iss: None,
                    ..assertion()
                },
                Rejection::IssuerNotSubject,
            ),
            (
                JwtClaims {
                    aud: None,
                    ..assertion()
                },
                Rejection::MissingClaim("aud"),
            ),
            (
                JwtClaims {
                    exp: None,
                    ..assertion()
                },
                Rejection::MissingClaim("exp"),
            ),
            (
                JwtClaims {
                    exp: Some(NOW),
                    ..assertion()
                },
                Rejection::Expired,
            ),
            (
                JwtClaims {
                    iat: Some(NOW + 60),
                    exp: Some(NOW + 120),
                    ..assertion()
                },
                Rejection::IssuedInFuture,
            ),
            (
                JwtClaims {
                    nbf: Some(NOW + 60),
                    ..assertion()
                },
                Rejection::NotYetValid,
            ),
            (
                JwtClaims {
                    exp: Some(NOW + 301),
                    ..assertion()
                },
                Rejection::TooLongLived(300),
            ),
            (
                JwtClaims {
                    jti: None,
                    ..assertion()
                },
                Rejection::MissingClaim("jti"),
            ),
            (
                JwtClaims {
                    jti: Some(String::new()),
                    ..assertion()
                },
                Rejection::JtiLength,
            ),
            (
                JwtClaims {
                    jti: Some("x".repeat(257)),
                    ..assertion()
                },
                Rejection::JtiLength,
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(check(&claims, false).unwrap_err(), expected, "{claims:?}");
        }
        // Within the leeway is fine; an old iat with a near exp is fine too.
        assert!(
            check(
                &JwtClaims {
                    iat: Some(NOW + 5),
                    ..assertion()
                },
                false
            )
            .is_ok()
        );
        assert!(
            check(
                &JwtClaims {
                    iat: Some(NOW - 3600),
                    ..assertion()
                },
                false
            )
            .is_ok()
        );
    }

    fn rule() -> TrustRule {
        TrustRule {
            id: "trust_1".into(),
            client_id: "live_1".into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            subject: "repo:acme/app:ref:refs/heads/main".into(),
            audience: None,
            keys: IssuerKeys::Discovery,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn platform_token() -> JwtClaims {
        JwtClaims {
            iss: Some("https://token.actions.githubusercontent.com".into()),
            sub: Some("repo:acme/app:ref:refs/heads/main".into()),
            aud: Some(AudienceClaim::Many(vec![
                "https://auth.example".into(),
                "other".into(),
            ])),
            exp: Some(NOW + 300),
            iat: Some(NOW - 10),
            nbf: None,
            jti: None,
        }
    }

    #[test]
    fn trust_rules_match_subject_and_audience_exactly() {
        let r = rule();
        assert!(
            r.check(&platform_token(), "https://auth.example", 3600, NOW)
                .is_ok()
        );
        let branch = JwtClaims {
            sub: Some("repo:acme/app:ref:refs/heads/main-evil".into()),
            ..platform_token()
        };
        assert_eq!(
            r.check(&branch, "https://auth.example", 3600, NOW),
            Err(Rejection::WrongSubject)
        );
        let other_aud = JwtClaims {
            aud: Some(AudienceClaim::One("https://elsewhere".into())),
            ..platform_token()
        };
        assert!(matches!(
            r.check(&other_aud, "https://auth.example", 3600, NOW),
            Err(Rejection::WrongAudience(_))
        ));
        let own = TrustRule {
            audience: Some("other".into()),
            ..rule()
        };
        assert!(
            own.check(&platform_token(), "https://auth.example", 3600, NOW)
                .is_ok()
        );
        let expired = JwtClaims {
            exp: Some(NOW - 1),
            ..platform_token()
        };
        assert_eq!(
            r.check(&expired, "https://auth.example", 3600, NOW),
            Err(Rejection::Expired)
        );
        let long = JwtClaims {
            exp: Some(NOW + 7200),
            ..platform_token()
        };
        assert_eq!(
            r.check(&long, "https://auth.example", 3600, NOW),
            Err(Rejection::TooLongLived(3600))
        );
    }
}
