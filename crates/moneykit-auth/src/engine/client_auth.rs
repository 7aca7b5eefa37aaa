//! Client authentication, as one step: whatever credentials a request presents go in, the
//! authenticated client (or one uniform failure) comes out. Each way a client can prove
//! who it is is one [`Credentials`] variant; every endpoint that authenticates clients
//! calls [`Engine::authenticate`], so a new method is added here once and reaches all of
//! them, with the same rate limits and the same failure answer.

use time::OffsetDateTime;

use super::replay::{AssertionId, REPLAY_FULL_RETRY, ReplayError, UsedAssertion, UsedKind};
use super::snapshot::ClientEntry;
use super::{Engine, GrantError};
use crate::crypto::jose::Jws;
use crate::domain::assertions::{JwtClaims, MAX_ASSERTION_LEN, check_client_assertion};
use crate::domain::certificates::ClientCertificate;
use crate::domain::clients::ClientAuth;
use crate::domain::secrets::{SecretHash, find_secret};

/// The credentials a request presents, however it presents them.
pub enum Credentials<'a> {
    /// A client id and secret, from HTTP Basic (`client_secret_basic`) or the body
    /// (`client_secret_post`).
    Secret {
        /// The claimed client id.
        client_id: &'a str,
        /// The presented secret.
        client_secret: &'a str,
    },
    /// A JWT signed with one of the client's keys (`private_key_jwt`, RFC 7523 §2.2),
    /// with the `client_id` parameter if the request sent one.
    Assertion {
        /// The `client_id` parameter, which must then be the assertion's subject.
        client_id: Option<&'a str>,
        /// The compact JWT.
        assertion: &'a str,
    },
    /// A client id alone, on a connection that presented a client certificate
    /// (`tls_client_auth`, `self_signed_tls_client_auth`, RFC 8705 §2).
    Certificate {
        /// The claimed client id.
        client_id: &'a str,
        /// The certificate the TLS layer (or a trusted proxy) saw.
        certificate: &'a ClientCertificate,
    },
}

impl<'a> Credentials<'a> {
    /// A client id and secret.
    pub fn secret(client_id: &'a str, client_secret: &'a str) -> Self {
        Self::Secret {
            client_id,
            client_secret,
        }
    }

    /// The client id the credentials claim, if they name one before being read (an
    /// assertion names its client inside).
    pub fn client_id(&self) -> Option<&'a str> {
        match self {
            Self::Secret { client_id, .. } | Self::Certificate { client_id, .. } => Some(client_id),
            Self::Assertion { client_id, .. } => *client_id,
        }
    }
}

/// An authenticated client, and the assertion it used, if any: on a store shared by
/// replicas that use must be recorded there too before the request goes on
/// ([`crate::store::Store::record_assertion`]).
#[derive(Debug)]
pub struct Authenticated<'a> {
    /// The client.
    pub entry: &'a ClientEntry,
    /// The assertion used.
    pub assertion: Option<UsedAssertion>,
}

impl std::fmt::Debug for Credentials<'_> {
    // The secret must never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret { client_id, .. } => f
                .debug_struct("Credentials::Secret")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Self::Assertion { client_id, .. } => f
                .debug_struct("Credentials::Assertion")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Self::Certificate {
                client_id,
                certificate,
            } => f
                .debug_struct("Credentials::Certificate")
                .field("client_id", client_id)
                .field("x5t#S256", &certificate.thumbprint)
                .finish(),
        }
    }
}

impl<'a> Engine<'a> {
    /// Authenticates the client behind `presented` (`None`: the request carried no
    /// credentials): known, enabled at `now`, and proven. Unknown ids cost the same hash
    /// work as known ones. A source address over its budget of failures is refused before
    /// the credentials are looked at; a failure that spends a budget is reported as
    /// [`GrantError::RateLimited`] instead of an invalid client.
    pub fn authenticate(
        &self,
        presented: Option<&Credentials<'_>>,
        now: OffsetDateTime,
    ) -> Result<Authenticated<'a>, GrantError> {
        let Some(credentials) = presented else {
            log_failure(None, Failure::MissingCredentials, self.source, false);
            return Err(GrantError::InvalidClient);
        };
        self.limits.check_source(self.source).map_err(|wait| {
            // Not at info: an address past its budget could otherwise write a line per
            // request; the failures that spent the budget were logged.
            tracing::debug!(
                client = self.source.map(tracing::field::display),
                "client authentication refused: address over its failure budget"
            );
            GrantError::RateLimited(wait)
        })?;
        let (client_id, failure) = match credentials {
            Credentials::Secret {
                client_id,
                client_secret,
            } => {
                let entry = self.snapshot.client(client_id);
                let failure = match entry.map(|e| (e, &e.client.auth)) {
                    Some((entry, ClientAuth::Secret(secrets))) => {
                        match find_secret(secrets, client_secret, now) {
                            None => Failure::WrongSecret,
                            Some(_) if entry.client.is_disabled(now) => Failure::Disabled,
                            Some((slot, _)) => {
                                entry.stamp_use(slot, now);
                                return Ok(Authenticated {
                                    entry,
                                    assertion: None,
                                });
                            }
                        }
                    }
                    Some((_, ClientAuth::PrivateKeyJwt(_))) => {
                        SecretHash::verify_against_nothing(client_secret);
                        Failure::SecretForKeyClient
                    }
                    Some((_, ClientAuth::TlsClientAuth(_) | ClientAuth::SelfSignedTls(_))) => {
                        SecretHash::verify_against_nothing(client_secret);
                        Failure::NoCertificate
                    }
                    None => {
                        SecretHash::verify_against_nothing(client_secret);
                        Failure::UnknownClient
                    }
                };
                (Some(*client_id), failure)
            }
            Credentials::Certificate {
                client_id,
                certificate,
            } => {
                let entry = self.snapshot.client(client_id);
                let failure = match entry {
                    Some(entry) => match certificate_failure(entry, certificate, now) {
                        None => {
                            return Ok(Authenticated {
                                entry,
                                assertion: None,
                            });
                        }
                        Some(failure) => failure,
                    },
                    None => Failure::UnknownClient,
                };
                (Some(*client_id), failure)
            }
            Credentials::Assertion {
                client_id,
                assertion,
            } => match self.check_assertion(*client_id, assertion, now) {
                Ok(authenticated) => return Ok(authenticated),
                Err(AssertionFailure::Full) => {
                    return Err(GrantError::RateLimited(REPLAY_FULL_RETRY));
                }
                Err(AssertionFailure::Refused {
                    client_id,
                    why,
                    detail,
                }) => {
                    let check = detail.unwrap_or_else(|| why.clone());
                    return Err(self.count_failure(
                        client_id.as_deref(),
                        GrantError::InvalidClientAssertion(why),
                        |limited| {
                            log_assertion_failure(
                                client_id.as_deref(),
                                &check,
                                self.source,
                                limited,
                            )
                        },
                    ));
                }
            },
        };
        Err(
            self.count_failure(client_id, GrantError::InvalidClient, |limited| {
                log_failure(client_id, failure, self.source, limited)
            }),
        )
    }

    /// Counts a failed attempt against the source address (and `client_id`, when the
    /// request named one), logs it with `log` (told whether it spent a budget), and
    /// returns the answer: 429 once a budget is spent, `error` before.
    pub(super) fn count_failure(
        &self,
        client_id: Option<&str>,
        error: GrantError,
        log: impl FnOnce(bool),
    ) -> GrantError {
        let limited = self.limits.record_failure(self.source, client_id);
        log(limited.is_err());
        match limited {
            Err(wait) => GrantError::RateLimited(wait),
            Ok(()) => error,
        }
    }

    /// Checks a `private_key_jwt` assertion, in an order that tells a caller without the
    /// client's key nothing about the server's clients or the claims: the form and
    /// algorithm, then the signature under the keys of the client it names (every failure
    /// up to there gets one answer, so client ids and kids cannot be probed; the log has
    /// the detail), then the claims, then replay.
    fn check_assertion(
        &self,
        claimed: Option<&str>,
        assertion: &str,
        now: OffsetDateTime,
    ) -> Result<Authenticated<'a>, AssertionFailure> {
        let refuse = |client_id: Option<&str>, why: String| AssertionFailure::Refused {
            client_id: client_id.map(str::to_owned),
            why,
            detail: None,
        };
        let unverified = |client_id: &str, detail: String| AssertionFailure::Refused {
            client_id: Some(client_id.to_owned()),
            why: UNVERIFIED.into(),
            detail: Some(detail),
        };
        let jws = Jws::parse(assertion, MAX_ASSERTION_LEN)
            .map_err(|e| refuse(claimed, format!("client_assertion: {e}")))?;
        if let Some(typ) = &jws.typ
            && !is_client_assertion_type(typ)
        {
            return Err(refuse(
                claimed,
                "client_assertion: typ must be JWT or client-authentication+jwt".into(),
            ));
        }
        let claims = JwtClaims::parse(jws.payload()).ok_or_else(|| {
            refuse(
                claimed,
                "client_assertion: the claims are not valid JSON claims".into(),
            )
        })?;
        let Some(subject) = claims.sub.as_deref() else {
            return Err(refuse(
                claimed,
                "client_assertion: the sub claim is required".into(),
            ));
        };
        if claimed.is_some_and(|c| c != subject) {
            return Err(refuse(
                claimed,
                "client_id does not match the client_assertion's sub".into(),
            ));
        }
        let entry = self
            .snapshot
            .client(subject)
            .filter(|e| matches!(e.client.auth, ClientAuth::PrivateKeyJwt(_)))
            .ok_or_else(|| {
                unverified(
                    subject,
                    "unknown client, or one that does not authenticate with private_key_jwt".into(),
                )
            })?;
        self.assertions
            .remote_keys
            .verify(&entry.keys, &jws)
            .map_err(|e| unverified(subject, e.to_string()))?;
        let settings = &self.snapshot.settings.assertions;
        let accepted = check_client_assertion(
            &claims,
            subject,
            &settings.audience,
            settings.max_lifetime_secs,
            now.unix_timestamp(),
        )
        .map_err(|e| refuse(Some(subject), format!("client_assertion: {e}")))?;
        if entry.client.is_disabled(now) {
            return Err(refuse(Some(subject), "the client is disabled".into()));
        }
        let id = AssertionId::of(subject, &accepted.jti);
        self.assertions
            .replay
            .take(id, accepted.expires_at, now.unix_timestamp())
            .map_err(|e| match e {
                ReplayError::Replayed => refuse(Some(subject), format!("client_assertion: {e}")),
                ReplayError::Full => AssertionFailure::Full,
            })?;
        Ok(Authenticated {
            entry,
            assertion: Some(UsedAssertion {
                id,
                expires_at: accepted.expires_at,
                kind: UsedKind::ClientAssertion,
            }),
        })
    }
}

/// Whether a JWT `typ` fits a client assertion: `JWT`, or the explicit type of
/// draft-ietf-oauth-rfc7523bis; with or without the `application/` prefix (RFC 7515
/// §4.1.9). Other types (an access token's `at+jwt`, a DPoP proof) are other JWTs.
fn is_client_assertion_type(typ: &str) -> bool {
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("client-authentication+jwt")
}

/// The answer to every assertion whose signature was not verified under the keys of the
/// client it names, whatever the reason.
const UNVERIFIED: &str =
    "client_assertion: not signed by a registered key of the client named in sub";

/// Why a client assertion was not accepted.
enum AssertionFailure {
    /// Refused: the check that failed as the client is told, the client id it named (if
    /// any), and for the log the detail the client is not told.
    Refused {
        client_id: Option<String>,
        why: String,
        detail: Option<String>,
    },
    /// The replay set is full: try again shortly.
    Full,
}

/// Why `certificate` does not authenticate `entry` at `now`; `None` when it does. A chain
/// from the client CAs for `tls_client_auth`, a registered thumbprint for
/// `self_signed_tls_client_auth`; in both, a certificate within its validity.
fn certificate_failure(
    entry: &ClientEntry,
    certificate: &ClientCertificate,
    now: OffsetDateTime,
) -> Option<Failure> {
    let client = &entry.client;
    let current = certificate.is_current(now.unix_timestamp());
    let failure = match &client.auth {
        ClientAuth::TlsClientAuth(identity) => {
            if !current {
                Failure::ExpiredCertificate
            } else if certificate.chain.is_err() {
                Failure::UntrustedCertificate
            } else if !identity.matches(certificate) {
                Failure::CertificateMismatch
            } else {
                return client.is_disabled(now).then_some(Failure::Disabled);
            }
        }
        ClientAuth::SelfSignedTls(thumbprints) => {
            if !thumbprints.contains(&certificate.thumbprint) {
                Failure::CertificateMismatch
            } else if !current {
                Failure::ExpiredCertificate
            } else {
                return client.is_disabled(now).then_some(Failure::Disabled);
            }
        }
        ClientAuth::Secret(_) | ClientAuth::PrivateKeyJwt(_) => Failure::CertificateForOtherMethod,
    };
    Some(failure)
}

/// Why client authentication failed, for the log only: the answer is the same for all
/// (so callers cannot probe which client ids exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request carried no credentials.
    MissingCredentials,
    /// Credentials that could not be read (an undecodable Basic header, Basic and body
    /// credentials that differ, an `Authorization` header that is not a bearer token).
    Malformed,
    /// No client with the presented id.
    UnknownClient,
    /// The secret does not match.
    WrongSecret,
    /// The client is disabled.
    Disabled,
    /// A secret was presented for a client that authenticates with its keys.
    SecretForKeyClient,
    /// A certificate client sent no certificate (a secret, or nothing but its id).
    NoCertificate,
    /// A `tls_client_auth` certificate that does not chain to a configured client CA.
    UntrustedCertificate,
    /// A client certificate outside its validity.
    ExpiredCertificate,
    /// A certificate that shows another identity than the client's registered one.
    CertificateMismatch,
    /// A certificate alone, for a client that authenticates another way.
    CertificateForOtherMethod,
    /// No bearer token (`GET /auth/introspect`).
    MissingToken,
    /// A bearer token that has expired.
    ExpiredToken,
    /// A bearer token that is not valid: forged, foreign, revoked, or its client is gone
    /// or disabled.
    InvalidToken,
}

impl std::fmt::Display for Failure {
    /// The `reason` on the log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MissingCredentials => "missing_credentials",
            Self::Malformed => "malformed",
            Self::UnknownClient => "unknown_client",
            Self::WrongSecret => "wrong_secret",
            Self::Disabled => "disabled",
            Self::SecretForKeyClient => "secret_for_private_key_jwt_client",
            Self::NoCertificate => "no_client_certificate",
            Self::UntrustedCertificate => "untrusted_client_certificate",
            Self::ExpiredCertificate => "expired_client_certificate",
            Self::CertificateMismatch => "client_certificate_mismatch",
            Self::CertificateForOtherMethod => "certificate_for_non_tls_client",
            Self::MissingToken => "missing_token",
            Self::ExpiredToken => "expired_token",
            Self::InvalidToken => "invalid_token",
        })
    }
}

/// Longest part of a presented client id that is logged: ids are attacker-chosen.
const MAX_LOGGED_CLIENT_ID: usize = 64;

/// The first [`MAX_LOGGED_CLIENT_ID`] characters of a presented client id.
fn loggable(id: &str) -> &str {
    let end = id
        .char_indices()
        .nth(MAX_LOGGED_CLIENT_ID)
        .map_or(id.len(), |(i, _)| i);
    &id[..end]
}

/// Logs a refused client assertion at info, with the check that failed (it names a
/// check, never key material or the assertion).
fn log_assertion_failure(
    client_id: Option<&str>,
    why: &str,
    source: Option<std::net::IpAddr>,
    rate_limited: bool,
) {
    tracing::info!(
        client_id = client_id.map(loggable),
        reason = "invalid_assertion",
        check = why,
        client = source.map(tracing::field::display),
        rate_limited = rate_limited.then_some(true),
        "client authentication failed"
    );
}

/// Logs a failed client authentication at info: the client id presented (cut short, and
/// escaped by the formatter: it is the caller's text), why, and where from; never the
/// secret. `rate_limited` when this failure spent a budget (the answer is 429).
pub fn log_failure(
    client_id: Option<&str>,
    failure: Failure,
    source: Option<std::net::IpAddr>,
    rate_limited: bool,
) {
    tracing::info!(
        client_id = client_id.map(loggable),
        reason = %failure,
        client = source.map(tracing::field::display),
        rate_limited = rate_limited.then_some(true),
        "client authentication failed"
    );
}
