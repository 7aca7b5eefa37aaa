//! Client authentication, as one step: whatever credentials a request presents go in, the
//! authenticated client (or one uniform failure) comes out. Each way a client can prove
//! who it is is one [`Credentials`] variant; every endpoint that authenticates clients
//! calls [`Engine::authenticate`], so a new method is added here once and reaches all of
//! them, with the same rate limits and the same failure answer.

use time::OffsetDateTime;

use super::snapshot::ClientEntry;
use super::{Engine, GrantError};
use crate::domain::secrets::SecretHash;

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
}

impl<'a> Credentials<'a> {
    /// A client id and secret.
    pub fn secret(client_id: &'a str, client_secret: &'a str) -> Self {
        Self::Secret {
            client_id,
            client_secret,
        }
    }

    /// The client id the credentials claim.
    pub fn client_id(&self) -> &'a str {
        match self {
            Self::Secret { client_id, .. } => client_id,
        }
    }
}

impl std::fmt::Debug for Credentials<'_> {
    // The secret must never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret { client_id, .. } => f
                .debug_struct("Credentials::Secret")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
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
    ) -> Result<&'a ClientEntry, GrantError> {
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
        let failure = match credentials {
            Credentials::Secret {
                client_id,
                client_secret,
            } => match self.snapshot.client(client_id) {
                Some(entry) if !entry.client.secret_hash.verify(client_secret) => {
                    Failure::WrongSecret
                }
                Some(entry) if entry.client.is_disabled(now) => Failure::Disabled,
                Some(entry) => return Ok(entry),
                None => {
                    SecretHash::verify_against_nothing(client_secret);
                    Failure::UnknownClient
                }
            },
        };
        let client_id = credentials.client_id();
        let limited = self.limits.record_failure(self.source, client_id);
        log_failure(Some(client_id), failure, self.source, limited.is_err());
        limited.map_err(GrantError::RateLimited)?;
        Err(GrantError::InvalidClient)
    }
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
            Self::MissingToken => "missing_token",
            Self::ExpiredToken => "expired_token",
            Self::InvalidToken => "invalid_token",
        })
    }
}

/// Longest part of a presented client id that is logged: ids are attacker-chosen.
const MAX_LOGGED_CLIENT_ID: usize = 64;

/// Logs a failed client authentication at info: the client id presented (cut short, and
/// escaped by the formatter: it is the caller's text), why, and where from; never the
/// secret. `rate_limited` when this failure spent a budget (the answer is 429).
pub fn log_failure(
    client_id: Option<&str>,
    failure: Failure,
    source: Option<std::net::IpAddr>,
    rate_limited: bool,
) {
    let client_id = client_id.map(|id| {
        let end = id
            .char_indices()
            .nth(MAX_LOGGED_CLIENT_ID)
            .map_or(id.len(), |(i, _)| i);
        &id[..end]
    });
    tracing::info!(
        client_id,
        reason = %failure,
        client = source.map(tracing::field::display),
        rate_limited = rate_limited.then_some(true),
        "client authentication failed"
    );
}
