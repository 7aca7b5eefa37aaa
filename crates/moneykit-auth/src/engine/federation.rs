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

use moneykit_wire::Confirmation;
use time::OffsetDateTime;

use super::grant::{FederatedRequest, Grant, IssuedToken, TokenRequest};
use super::remote_keys::KeyCheckError;
use super::snapshot::TrustEntry;
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
        bound: &Confirmation,
        now: OffsetDateTime,
    ) -> Grant {
        let exchange = grant != JWT_BEARER_GRANT;
        let none = FederatedRequest::default();
        let federation = request.federation.as_ref().unwrap_or(&none);
        let token = match platform_token(exchange, federation) {
            Ok(token) => token,
            Err(error) => return Grant::without_assertion(Err(error)),
        };
        let authenticated = match &request.credentials {
            Some(credentials) => match self.authenticate(Some(credentials), now) {
                Ok(authenticated) => Some(authenticated),
                Err(error) => return Grant::without_assertion(Err(error)),
            },
            None => None,
        };
        let wanted = authenticated.as_ref().map(|a| a.entry.client.id.as_str());
        Grant {
            outcome: self.exchange(
                token,
                wanted.or(federation.client_id),
                exchange,
                request,
                bound,
                now,
            ),
            used: authenticated
                .and_then(|a| a.assertion)
                .into_iter()
                .collect(),
        }
    }

    /// The federated grant after the optional client authentication: the trust rule that
    /// accepts `token`, and a token of its client.
    fn exchange(
        &self,
        token: &str,
        wanted: Option<&str>,
        exchange: bool,
        request: &TokenRequest<'_>,
        bound: &Confirmation,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, GrantError> {
        self.limits
            .check_source(self.source)
            .map_err(GrantError::RateLimited)?;
        let rule = self.matching_rule(token, wanted, now).map_err(|error| {
            let check = error.to_string();
            // At info, like refused client authentications: the check that failed (never
            // the token), and where from.
            self.count_failure(None, error, |limited| {
                tracing::info!(
                    reason = "invalid_platform_token",
                    check,
                    client = self.source.map(tracing::field::display),
                    rate_limited = limited.then_some(true),
                    "federated grant refused"
                )
            })
        })?;
        let entry = self
            .snapshot
            .client(&rule.rule.client_id)
            .filter(|e| !e.client.is_disabled(now))
            .ok_or_else(|| GrantError::InvalidGrant("the trusting client is disabled".into()))?;
        tracing::debug!(client_id = %entry.client.id, rule = %rule.rule.id, "federated token");
        let mut issued = self.issue_for(entry, request, bound, now)?;
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
            .filter(|t| wanted.is_none_or(|c| c == t.rule.client_id))
            .collect();
        if rules.is_empty() {
            return Err(invalid(
                "no trust rule accepts tokens of this issuer".into(),
            ));
        }
        // Subjects match exactly, so only the rules for this one can accept the token: a
        // signature check per rule that can, not per rule of the issuer, and the refusal
        // reported is one of those rules' (an expired token of a trusted workload reads
        // "expired").
        let rules: Vec<&TrustEntry> = rules
            .into_iter()
            .filter(|t| claims.sub.as_deref() == Some(t.rule.subject.as_str()))
            .collect();
        let settings = &self.snapshot.settings;
        let mut matched: Vec<&TrustEntry> = Vec::new();
        let mut refusal = None;
        for entry in rules {
            let outcome = self
                .assertions
                .remote_keys
                .verify(&entry.keys, &jws)
                .map_err(|e| format!("platform token: {}", federation_key_error(&e)))
                .and_then(|()| {
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
                    refusal.get_or_insert(why);
                }
            }
        }
        match matched.as_slice() {
            [one] => Ok(one),
            [] => Err(invalid(refusal.unwrap_or_else(|| {
                "platform token: sub does not match the trust rule".into()
            }))),
            _ => Err(GrantError::InvalidRequest(
                "several clients trust this token: send client_id to choose one".into(),
            )),
        }
    }
}

/// How a key failure reads in a federated grant's answer.
fn federation_key_error(error: &KeyCheckError) -> String {
    match error {
        KeyCheckError::NotFetched => "the issuer's keys could not be fetched yet".into(),
        KeyCheckError::Signature(e) => e.to_string(),
    }
}

/// The platform token of a federated grant, after the grant's own parameter checks.
fn platform_token<'r>(
    exchange: bool,
    request: &FederatedRequest<'r>,
) -> Result<&'r str, GrantError> {
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
