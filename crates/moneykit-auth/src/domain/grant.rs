//! The engine behind every token endpoint: the client-credentials grant (RFC 6749 §4.4)
//! and bearer-token authorization. HTTP surfaces parse their input, call these, and map
//! the result to their own wire format; none of them re-implements any of it.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::audience::{TargetNotAllowed, resolve_audience};
use super::ids::new_token_id;
use super::scope::{ScopeNotAllowed, Scopes};
use super::secrets::SecretHash;
use super::tokens::{self, AccessClaims, SignatureForm, TokenRejection};
use crate::ratelimit::RateLimits;
use crate::revocation::{RevocationList, RevokedToken};
use crate::snapshot::{ClientEntry, Snapshot};
use crate::verified::{TokenKey, VerifiedTokens};

/// Client id and secret as presented, from the body or HTTP Basic.
pub struct Credentials<'a> {
    /// The claimed client id.
    pub client_id: &'a str,
    /// The presented secret.
    pub client_secret: &'a str,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A token request after transport-level parsing.
#[derive(Debug)]
pub struct TokenRequest<'a> {
    /// `grant_type`; absent means `client_credentials`.
    pub grant_type: Option<&'a str>,
    /// `scope`; absent or empty means everything the client is allowed.
    pub scope: Option<&'a str>,
    /// The audiences asked for (`resource` values, then `audience` split on spaces);
    /// empty means the client's default.
    pub audiences: Vec<&'a str>,
    /// The client's credentials; `None` if the request carried none.
    pub credentials: Option<Credentials<'a>>,
}

/// A freshly issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    /// The signed JWT.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u32,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// Its claims, for callers that log or count.
    pub claims: AccessClaims,
}

/// Why a token was not issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Missing, unknown or disabled client, or wrong secret (deliberately one case).
    #[error("client authentication failed")]
    InvalidClient,
    /// A grant type other than `client_credentials`.
    #[error("unsupported grant_type {0:?}: only client_credentials is supported")]
    UnsupportedGrantType(String),
    /// Malformed scope, or one the client is not allowed.
    #[error("{0}")]
    InvalidScope(String),
    /// An audience the client may not ask for (RFC 8707 `invalid_target`).
    #[error("{0}")]
    InvalidTarget(String),
    /// No signing key is active (only possible if every key is scheduled in the future).
    #[error("no signing key is active")]
    NoSigningKey,
    /// A client asked to revoke a token issued to another client.
    #[error("the token was not issued to this client")]
    TokenOfAnotherClient,
    /// Over a rate limit; try again after this long.
    #[error("rate limited")]
    RateLimited(std::time::Duration),
}

/// What the grant engine reads: the snapshot of clients and keys, and the two sets kept
/// beside it at run time (revoked tokens, tokens already verified). Cheap to build per
/// request from borrowed parts.
#[derive(Debug, Clone, Copy)]
pub struct Engine<'a> {
    /// Clients, apps and keys.
    pub snapshot: &'a Snapshot,
    /// Revoked token ids.
    pub revoked: &'a RevocationList,
    /// Tokens known to be validly signed.
    pub verified: &'a VerifiedTokens,
    /// Budgets of issuance and failed authentication.
    pub limits: &'a RateLimits,
    /// Where the request came from, for the per-address limit (`None`: unknown).
    pub source: Option<IpAddr>,
}

impl<'a> Engine<'a> {
    /// The same engine, for a request from `source`.
    pub fn from_source(self, source: Option<IpAddr>) -> Self {
        Self { source, ..self }
    }

    /// Authenticates a client: known, enabled at `now`, right secret. Unknown ids cost
    /// the same hash work as known ones. A source address over its budget of failures is
    /// refused before the credentials are looked at; a failure that spends a budget is
    /// reported as [`GrantError::RateLimited`] instead of an invalid client.
    pub fn authenticate(
        &self,
        credentials: &Credentials<'_>,
        now: OffsetDateTime,
    ) -> Result<&'a ClientEntry, GrantError> {
        self.limits
            .check_source(self.source)
            .map_err(GrantError::RateLimited)?;
        match self.snapshot.client(credentials.client_id) {
            Some(entry)
                if entry.client.secret_hash.verify(credentials.client_secret)
                    && !entry.client.is_disabled(now) =>
            {
                return Ok(entry);
            }
            Some(_) => {}
            None => SecretHash::verify_against_nothing(credentials.client_secret),
        }
        self.limits
            .record_failure(self.source, credentials.client_id)
            .map_err(GrantError::RateLimited)?;
        Err(GrantError::InvalidClient)
    }

    /// Runs the client-credentials grant and signs a token.
    ///
    /// The token is not put in the verified-token cache here: measured, that cost 10-15 %
    /// of issuance throughput (the cached claims crowd the CPU caches), while a token is
    /// cached anyway the first time it is introspected.
    pub fn client_credentials(
        &self,
        request: &TokenRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, GrantError> {
        if let Some(grant) = request.grant_type
            && grant != "client_credentials"
        {
            return Err(GrantError::UnsupportedGrantType(grant.to_owned()));
        }
        let credentials = request
            .credentials
            .as_ref()
            .ok_or(GrantError::InvalidClient)?;
        let entry = self.authenticate(credentials, now)?;
        let client = &entry.client;
        self.limits
            .take_issuance(&client.id)
            .map_err(GrantError::RateLimited)?;

        let requested = Scopes::parse(request.scope.unwrap_or(""))
            .map_err(|e| GrantError::InvalidScope(e.to_string()))?;
        let scope = if requested.is_empty() {
            client.scopes.as_str().to_owned()
        } else {
            client
                .scopes
                .narrow_to(&requested)
                .map_err(|ScopeNotAllowed(s)| {
                    GrantError::InvalidScope(format!("scope {s:?} is not allowed for this client"))
                })?
                .to_string()
        };

        let snapshot = self.snapshot;
        let aud = resolve_audience(
            client.allowed_audiences(&snapshot.settings.audience),
            request.audiences.iter().copied(),
        )
        .map_err(|TargetNotAllowed(why)| GrantError::InvalidTarget(why))?;
        let signer = snapshot.signer_at(now).ok_or(GrantError::NoSigningKey)?;
        let ttl = client.token_ttl(snapshot.settings.default_ttl_secs);
        let iat = now.unix_timestamp();
        let claims = AccessClaims {
            iss: snapshot.settings.issuer.clone(),
            aud,
            sub: client.id.clone(),
            client_id: client.id.clone(),
            app_id: client.app_id.clone(),
            scope: scope.clone(),
            iat,
            exp: iat + i64::from(ttl),
            jti: new_token_id(),
        };
        let access_token = tokens::sign(&signer.key, &signer.access_token_header, &claims);
        Ok(IssuedToken {
            access_token,
            expires_in: ttl,
            scope,
            claims,
        })
    }

    /// The claims of a validly signed token of ours: its signature verified once (then
    /// remembered by the token's digest); on every call, its header checked to name a key
    /// that is still published (so a revoked key's tokens are refused even when
    /// remembered), and its claims for issuer, expiry and bounds.
    pub fn verified_claims(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, TokenRejection> {
        let snapshot = self.snapshot;
        let signing_key = tokens::signing_key(
            token,
            |header| snapshot.verifier_for_header(header),
            |kid| snapshot.verifier(kid),
        )?;
        let key = TokenKey::of(token);
        if self.verified.contains(&key) {
            return tokens::checked_claims(token, &snapshot.settings.issuer, now.unix_timestamp());
        }
        let form = tokens::verify_signature_with(signing_key, token)?;
        if form == SignatureForm::Canonical {
            self.verified.insert(key);
        }
        let claims =
            tokens::checked_claims(token, &snapshot.settings.issuer, now.unix_timestamp())?;
        form.check(&claims)?;
        Ok(claims)
    }

    /// Validates a bearer token: signature, type, issuer, expiry, not revoked, and that
    /// its client still exists and is not disabled at `now`.
    pub fn authorize_bearer(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Authorized<'a>, BearerError> {
        let claims = self
            .verified_claims(token, now)
            .map_err(|rejection| match rejection {
                TokenRejection::Expired => BearerError::Expired,
                _ => BearerError::Invalid,
            })?;
        if self.revoked.is_revoked(&claims.jti) {
            return Err(BearerError::Invalid);
        }
        // The client must still exist, be enabled, and be allowed every scope and audience
        // the token claims: a token claiming more was made with a stolen key, or its client
        // was narrowed since.
        let default_audience = &self.snapshot.settings.audience;
        let client = self
            .snapshot
            .client(&claims.client_id)
            .filter(|entry| !entry.client.is_disabled(now))
            .filter(|entry| {
                let allowed = entry.client.allowed_audiences(default_audience);
                claims
                    .scope
                    .split(' ')
                    .all(|s| s.is_empty() || entry.client.scopes.contains(s))
                    && claims.aud.iter().all(|a| allowed.iter().any(|x| x == a))
            })
            .ok_or(BearerError::Invalid)?;
        Ok(Authorized { claims, client })
    }

    /// What revoking `token` on behalf of `caller` means (RFC 7009 §2.1): a revocation
    /// to record for a valid token of the caller's; nothing for a token that is
    /// malformed, foreign or already expired (revoking it changes nothing, and the RFC
    /// answers 200); an error for a valid token of another client.
    pub fn revocation_for(
        &self,
        caller: &ClientEntry,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<RevokedToken>, GrantError> {
        self.limits
            .take_revocation(&caller.client.id)
            .map_err(GrantError::RateLimited)?;
        let Ok(claims) = self.verified_claims(token, now) else {
            return Ok(None);
        };
        if claims.client_id != caller.client.id {
            return Err(GrantError::TokenOfAnotherClient);
        }
        Ok(Some(RevokedToken {
            seq: 0,
            jti: claims.jti,
            client_id: claims.client_id,
            expires_at: claims.exp,
            revoked_at: now.unix_timestamp(),
        }))
    }
}

/// Why a bearer token does not authorize its bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// The token was valid but has expired.
    #[error("the access token has expired")]
    Expired,
    /// Anything else: malformed, forged, foreign, revoked, or its client is gone or
    /// disabled.
    #[error("the access token is invalid")]
    Invalid,
}

/// A token that authorizes its bearer, with the client it was issued to.
#[derive(Debug)]
pub struct Authorized<'s> {
    /// The token's claims.
    pub claims: AccessClaims,
    /// The client, as the snapshot knows it now.
    pub client: &'s ClientEntry,
}
