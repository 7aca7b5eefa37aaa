//! The engine behind every token endpoint: the grant dispatch, the client-credentials
//! grant (RFC 6749 §4.4),
//! bearer-token authorization and what a revocation means (RFC 7009). HTTP surfaces parse
//! their input, call these, and map the result to their own wire format; none of them
//! re-implements any of it. Client authentication, the first step of most of them, is in
//! [`super::client_auth`].

use time::OffsetDateTime;

use moneykit_wire::Confirmation;

use super::client_auth::Credentials;
use super::dpop::{AcceptedProof, DpopRefusal};
use super::replay::{REPLAY_FULL_RETRY, UsedAssertion};
use super::snapshot::ClientEntry;
use super::verified::TokenKey;
use super::{Engine, GrantError};
use crate::domain::assertions::{JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT};
use crate::domain::audience::{TargetNotAllowed, resolve_audience};
use crate::domain::certificates::ClientCertificate;
use crate::domain::dpop::Expected;
use crate::domain::ids::new_token_id;
use crate::domain::scope::{ScopeNotAllowed, Scopes};
use crate::domain::tokens::RevokedToken;
use crate::domain::tokens::{self, AccessClaims, SignatureForm, TokenRejection};

/// A token request after transport-level parsing. `Debug` leaves out the platform token
/// (a reusable credential) and the client's credentials.
#[derive(Default)]
pub struct TokenRequest<'a> {
    /// `grant_type`; absent means `client_credentials`.
    pub grant_type: Option<&'a str>,
    /// The parameters of a federated grant; read from the form only for one, so the
    /// client-credentials grant does not look them up.
    pub federation: Option<FederatedRequest<'a>>,
    /// `scope`; absent or empty means everything the client is allowed.
    pub scope: Option<&'a str>,
    /// The audiences asked for (`resource` values, then `audience` split on spaces);
    /// empty means the client's default.
    pub audiences: Vec<&'a str>,
    /// The client's credentials; `None` if the request carried none.
    pub credentials: Option<Credentials<'a>>,
    /// What the token is to be bound to.
    pub binding: Binding<'a>,
}

/// What a request presents to bind its token to (sender-constrained tokens).
#[derive(Default, Clone, Copy)]
pub struct Binding<'a> {
    /// The `DPoP` header: a proof of possession of a key (RFC 9449).
    pub dpop: Option<&'a str>,
    /// The path of the endpoint the request came to, which the proof's `htu` names
    /// under this server's issuer.
    pub endpoint: &'a str,
    /// The client certificate of the connection (RFC 8705 §3).
    pub certificate: Option<&'a ClientCertificate>,
}

/// The parameters only federated grants read.
#[derive(Default)]
pub struct FederatedRequest<'a> {
    /// The `client_id` parameter: which trusting client to issue for when several trust
    /// the same workload.
    pub client_id: Option<&'a str>,
    /// The platform token: `assertion` (jwt-bearer) or `subject_token` (token exchange).
    pub platform_token: Option<&'a str>,
    /// RFC 8693 `subject_token_type`.
    pub subject_token_type: Option<&'a str>,
    /// RFC 8693 `requested_token_type`.
    pub requested_token_type: Option<&'a str>,
    /// Whether an RFC 8693 `actor_token` was sent (delegation: not supported).
    pub actor_token: bool,
}

impl std::fmt::Debug for TokenRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let client_id = self.federation.as_ref().and_then(|f| f.client_id);
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &client_id)
            .field("scope", &self.scope)
            .field("audiences", &self.audiences)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
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
    /// RFC 8693 token exchange only: the type of the token issued.
    pub issued_token_type: Option<&'static str>,
}

/// What a token request came to, and the single-use JWTs it used, if any: once an
/// assertion's or a DPoP proof's signature and claims passed, it is used up whatever
/// happens after (a scope refused, a budget spent), so the caller records its use in
/// every case.
#[derive(Debug)]
pub struct Grant {
    /// The token, or why none was issued.
    pub outcome: Result<IssuedToken, GrantError>,
    /// The client assertion the client authenticated with, and the DPoP proof.
    pub used: Vec<UsedAssertion>,
}

impl Grant {
    pub(super) fn without_assertion(outcome: Result<IssuedToken, GrantError>) -> Self {
        Self {
            outcome,
            used: Vec::new(),
        }
    }
}

impl<'a> Engine<'a> {
    /// Runs the grant a token request asks for: client credentials (the default), or a
    /// federated workload's jwt-bearer or token-exchange grant. A DPoP proof is judged
    /// first, so a refused one (or one without the nonce) costs no client assertion.
    pub fn token(&self, request: &TokenRequest<'_>, now: OffsetDateTime) -> Grant {
        let proof = match request.binding.dpop {
            None => None,
            Some(proof) => match self.token_endpoint_proof(proof, request.binding.endpoint, now) {
                Ok(accepted) => Some(accepted),
                Err(error) => return Grant::without_assertion(Err(error)),
            },
        };
        let bound = Confirmation {
            jkt: proof.as_ref().map(|p| p.jkt.clone()),
            x5t_s256: request.binding.certificate.map(|c| c.thumbprint.clone()),
        };
        let mut grant = match request.grant_type {
            None | Some("client_credentials") => self.client_credentials(request, &bound, now),
            Some(grant @ (JWT_BEARER_GRANT | TOKEN_EXCHANGE_GRANT)) => {
                self.federated(grant, request, &bound, now)
            }
            Some(other) => {
                Grant::without_assertion(Err(GrantError::UnsupportedGrantType(other.to_owned())))
            }
        };
        grant.used.extend(proof.map(|p| p.used));
        grant
    }

    /// Judges the DPoP proof of a token request to `endpoint`. Like a failed client
    /// authentication, a refused proof (a signature verified for nothing) counts against
    /// the source address's failure budget, and an address over it is refused first.
    fn token_endpoint_proof(
        &self,
        proof: &str,
        endpoint: &str,
        now: OffsetDateTime,
    ) -> Result<AcceptedProof, GrantError> {
        self.limits
            .check_source(self.source)
            .map_err(GrantError::RateLimited)?;
        let url = format!("{}{endpoint}", self.snapshot.settings.issuer);
        let expected = Expected {
            method: "POST",
            url: &url,
            access_token: None,
            window_secs: self.snapshot.settings.dpop.window_secs,
        };
        self.check_dpop(proof, expected, true, now.unix_timestamp())
            .map_err(|refusal| match refusal {
                DpopRefusal::Invalid(why) => {
                    self.count_failure(None, GrantError::InvalidDpopProof(why), |_| {})
                }
                DpopRefusal::UseNonce(nonce) => GrantError::UseDpopNonce(nonce),
                DpopRefusal::Full => GrantError::RateLimited(REPLAY_FULL_RETRY),
            })
    }

    /// Runs the client-credentials grant and signs a token bound to `bound`.
    fn client_credentials(
        &self,
        request: &TokenRequest<'_>,
        bound: &Confirmation,
        now: OffsetDateTime,
    ) -> Grant {
        match self.authenticate(request.credentials.as_ref(), now) {
            Ok(authenticated) => Grant {
                outcome: self.issue_for(authenticated.entry, request, bound, now),
                used: authenticated.assertion.into_iter().collect(),
            },
            Err(error) => Grant::without_assertion(Err(error)),
        }
    }

    /// Signs a token for `entry`, an authenticated client (or one a trust rule matched):
    /// its issuance budget, the scopes and audiences asked for, narrowed to what it may
    /// have.
    ///
    /// The token is not put in the verified-token cache here: measured, that cost 10-15 %
    /// of issuance throughput (the cached claims crowd the CPU caches), while a token is
    /// cached anyway the first time it is introspected.
    pub(super) fn issue_for(
        &self,
        entry: &ClientEntry,
        request: &TokenRequest<'_>,
        bound: &Confirmation,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, GrantError> {
        let client = &entry.client;
        if client.require_dpop && bound.jkt.is_none() {
            return Err(GrantError::InvalidDpopProof(
                "DPoP proof: this client must send one (a DPoP header) with every token request"
                    .into(),
            ));
        }
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
            cnf: (!bound.is_empty()).then(|| bound.clone()),
        };
        let access_token = tokens::sign(&signer.key, &signer.access_token_header, &claims);
        Ok(IssuedToken {
            access_token,
            expires_in: ttl,
            scope,
            claims,
            issued_token_type: None,
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
