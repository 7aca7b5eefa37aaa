//! Workload identity federation: a workload presents the token its platform gave it (a
//! Kubernetes service-account token, a GitHub Actions OIDC token, a SPIFFE JWT-SVID) and
//! gets an access token of the client that trusts it, holding no credential of ours.
//! Two grants carry the platform token: RFC 7523 §2.1 (`assertion`) and RFC 8693 token
//! exchange (`subject_token`); both end here.
//!
//! The token's `iss` picks the trust rules to try; a rule matches when the token is
//! signed by the issuer's keys and its `sub`, `aud` and times pass the rule
//! (`domain::assertions::TrustRule::check`). Platform tokens are reused until they
//! rotate, so there is no replay check; their lifetime is capped instead.

use time::OffsetDateTime;

use super::client_auth::Credentials;
use super::grant::{IssuedToken, TokenRequest};
use super::snapshot::{KeySet, TrustEntry};
use super::{Engine, GrantError};
use crate::crypto::jose::{Jws, JwsError};
use crate::domain::assertions::{
    ACCESS_TOKEN_TYPE, JWT_BEARER_GRANT, JWT_TOKEN_TYPE, JwtClaims, MAX_ASSERTION_LEN,
};

impl Engine<'_> {
    /// Runs a federated grant (`grant` is the jwt-bearer or token-exchange grant type).
    /// Client authentication is optional (RFC 7523 §3.1); when the request carries
    /// credentials they must authenticate, and only that client's rules are tried. A
    /// bare `client_id` only chooses among the clients that trust the token.
    pub(super) fn federated(
        &self,
        grant: &str,
        request: &TokenRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, GrantError> {
        let exchange = grant != JWT_BEARER_GRANT;
        let token = platform_token(exchange, request)?;
        let authenticated = match &request.credentials {
            Some(credentials @ (Credentials::Secret { .. } | Credentials::Assertion { .. })) => {
                Some(self.authenticate(Some(credentials), now)?)
            }
            None => None,
        };
        let wanted = match &authenticated {
            Some(a) => Some(a.entry.client.id.as_str()),
            None => request.client_id,
        };
        self.limits
            .check_source(self.source)
            .map_err(GrantError::RateLimited)?;
        let rule = self.matching_rule(token, wanted, now).map_err(|error| {
            let limited = self.limits.record_failure(self.source, None);
            // At info, like refused client authentications: the check that failed (never
            // the token), and where from.
            tracing::info!(
                reason = "invalid_platform_token",
                check = %error,
                client = self.source.map(tracing::field::display),
                rate_limited = limited.is_err().then_some(true),
                "federated grant refused"
            );
            match limited {
                Err(wait) => GrantError::RateLimited(wait),
                Ok(()) => error,
            }
        })?;
        let entry = self
            .snapshot
            .client(&rule.rule.client_id)
            .filter(|e| !e.client.is_disabled(now))
            .ok_or_else(|| GrantError::InvalidGrant("the trusting client is disabled".into()))?;
        tracing::debug!(client_id = %entry.client.id, rule = %rule.rule.id, "federated token");
        let mut issued = self.issue_for(entry, request, now)?;
        issued.assertion = authenticated.and_then(|a| a.assertion);
        issued.issued_token_type = exchange.then_some(ACCESS_TOKEN_TYPE);
        Ok(issued)
    }

    /// The one trust rule (of `wanted`'s, when given) that accepts `token`.
    fn matching_rule(
        &self,
        token: &str,
        wanted: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<&TrustEntry, GrantError> {
        let invalid = |why: String| GrantError::InvalidGrant(why);
        let jws = Jws::parse(token, MAX_ASSERTION_LEN).map_err(|e| match e {
            JwsError::TooLong(_) | JwsError::Malformed => {
                GrantError::InvalidRequest(format!("the platform token is {e}"))
            }
            other => invalid(format!("platform token: {other}")),
        })?;
        let claims = JwtClaims::parse(jws.payload()).ok_or_else(|| {
            GrantError::InvalidRequest(
                "the platform token's claims are not valid JSON claims".into(),
            )
        })?;
        let issuer = claims
            .iss
            .as_deref()
            .ok_or_else(|| invalid("platform token: the iss claim is required".into()))?;
        let rules: Vec<&TrustEntry> = self
            .snapshot
            .trust_rules(issuer)
            .iter()
            .filter(|t| wanted.is_none_or(|c| c == t.rule.client_id))
            .collect();
        if rules.is_empty() {
            return Err(invalid(
                "no trust rule accepts tokens of this issuer".into(),
            ));
        }
        let settings = &self.snapshot.settings;
        let mut matched: Vec<&TrustEntry> = Vec::new();
        // The refusal reported: that of a rule for this token's subject when there is one
        // (an expired token of a trusted workload is "expired", not "sub does not match"
        // from another rule of the same issuer), else the first.
        let mut refusal: Option<(bool, String)> = None;
        for entry in rules {
            let outcome = self.verify_with(&jws, &entry.keys).and_then(|()| {
                entry
                    .rule
                    .check(
                        &claims,
                        &settings.issuer,
                        settings.assertions.federation_max_lifetime_secs,
                        now.unix_timestamp(),
                    )
                    .map_err(|e| format!("platform token: {e}"))
            });
            match outcome {
                Ok(())
                    if !matched
                        .iter()
                        .any(|m| m.rule.client_id == entry.rule.client_id) =>
                {
                    matched.push(entry)
                }
                Ok(()) => {}
                Err(why) => {
                    let for_subject = claims.sub.as_deref() == Some(entry.rule.subject.as_str());
                    if refusal
                        .as_ref()
                        .is_none_or(|(best, _)| for_subject && !best)
                    {
                        refusal = Some((for_subject, why));
                    }
                }
            }
        }
        match matched.as_slice() {
            [one] => Ok(one),
            [] => Err(invalid(refusal.map(|(_, why)| why).unwrap_or_default())),
            _ => Err(GrantError::InvalidRequest(
                "several clients trust this token: send client_id to choose one".into(),
            )),
        }
    }

    /// Verifies `jws` under an issuer's keys; an unknown `kid` at a fetched location asks
    /// for a refetch (the issuer may have rotated), for the next attempt.
    fn verify_with(&self, jws: &Jws<'_>, set: &KeySet) -> Result<(), String> {
        let remote;
        let keys: &[_] = match set {
            KeySet::Registered(keys) => keys,
            KeySet::Remote(location) => {
                let cache = &self.assertions.remote_keys;
                remote = cache.keys(location).ok_or_else(|| {
                    cache.request_refetch(location);
                    "the issuer's keys could not be fetched yet".to_owned()
                })?;
                &remote
            }
            KeySet::None => &[],
        };
        jws.verify(keys).map(|_| ()).map_err(|e| {
            if let (JwsError::UnknownKid(_), Some(location)) = (&e, set.location()) {
                self.assertions.remote_keys.request_refetch(location);
            }
            format!("platform token: {e}")
        })
    }
}

/// The platform token of a federated grant, after the grant's own parameter checks.
fn platform_token<'r>(exchange: bool, request: &TokenRequest<'r>) -> Result<&'r str, GrantError> {
    let missing = |name: &str| GrantError::InvalidRequest(format!("{name} is required"));
    if !exchange {
        return request.platform_token.ok_or_else(|| missing("assertion"));
    }
    if request.actor_token {
        return Err(GrantError::InvalidRequest(
            "delegation (actor_token) is not supported".into(),
        ));
    }
    match request.subject_token_type {
        Some(JWT_TOKEN_TYPE) => {}
        Some(_) => {
            return Err(GrantError::InvalidRequest(format!(
                "subject_token_type must be {JWT_TOKEN_TYPE}"
            )));
        }
        None => return Err(missing("subject_token_type")),
    }
    if request
        .requested_token_type
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(GrantError::InvalidRequest(format!(
            "requested_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    request
        .platform_token
        .ok_or_else(|| missing("subject_token"))
}
