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
        let credentials = presented.ok_or(GrantError::InvalidClient)?;
        self.limits
            .check_source(self.source)
            .map_err(GrantError::RateLimited)?;
        let proven = match credentials {
            Credentials::Secret {
                client_id,
                client_secret,
            } => match self.snapshot.client(client_id) {
                Some(entry) => entry
                    .client
                    .secret_hash
                    .verify(client_secret)
                    .then_some(entry),
                None => {
                    SecretHash::verify_against_nothing(client_secret);
                    None
                }
            },
        };
        if let Some(entry) = proven.filter(|e| !e.client.is_disabled(now)) {
            return Ok(entry);
        }
        self.limits
            .record_failure(self.source, credentials.client_id())
            .map_err(GrantError::RateLimited)?;
        Err(GrantError::InvalidClient)
    }
}
