//! `POST /auth/token`: the form a client sends and the token it gets back.

use serde::{Deserialize, Serialize};

/// The `application/x-www-form-urlencoded` body of `POST /auth/token`.
///
/// Every field is optional on the wire: credentials may come in an HTTP Basic header
/// instead, an absent `grant_type` means `client_credentials`, and an absent or empty
/// `scope` means every scope the client is allowed.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenForm {
    /// Only `client_credentials` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// Space-separated scopes to narrow the token to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client id, when not sent as HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client secret, when not sent as HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// RFC 8707 resource indicators: absolute URIs of the APIs the token is meant for,
    /// each one of the client's audiences; repeat the parameter for several. Absent: the
    /// client's default audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
    /// The same request as `resource`, space-separated, as Auth0 and Ory Hydra clients
    /// send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` when the client
    /// authenticates with a signed JWT instead of a secret (`private_key_jwt`, RFC 7523
    /// §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion_type: Option<String>,
    /// The client's signed JWT (`private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<String>,
    /// The JWT of the `urn:ietf:params:oauth:grant-type:jwt-bearer` grant (RFC 7523 §2.1):
    /// a workload's platform token, matched against its client's trust rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<String>,
    /// The token of an RFC 8693 token exchange (`grant_type`
    /// `urn:ietf:params:oauth:grant-type:token-exchange`): a workload's platform JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token: Option<String>,
    /// `urn:ietf:params:oauth:token-type:jwt` (RFC 8693 §3), the only type accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token_type: Option<String>,
    /// RFC 8693: absent or `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_token_type: Option<String>,
    /// RFC 8693 delegation; not supported, so a request carrying it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token: Option<String>,
}

impl std::fmt::Debug for TokenForm {
    // The secret must never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenForm")
            .field("grant_type", &self.grant_type)
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("resource", &self.resource)
            .field("audience", &self.audience)
            .field("client_assertion_type", &self.client_assertion_type)
            .field("subject_token_type", &self.subject_token_type)
            .field("requested_token_type", &self.requested_token_type)
            .finish_non_exhaustive()
    }
}

impl TokenForm {
    /// The form's parameter names, as sent: what a server parses, in declaration order.
    pub const FIELDS: &'static [&'static str] = &[
        "grant_type",
        "scope",
        "client_id",
        "client_secret",
        "resource",
        "audience",
        "client_assertion_type",
        "client_assertion",
        "assertion",
        "subject_token",
        "subject_token_type",
        "requested_token_type",
        "actor_token",
    ];

    /// The form as name-value pairs in wire order, `resource` once per value: what an
    /// `application/x-www-form-urlencoded` encoder takes (serde's form encoder cannot
    /// repeat a parameter).
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let singles = [
            ("grant_type", &self.grant_type),
            ("scope", &self.scope),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
            ("client_assertion_type", &self.client_assertion_type),
            ("client_assertion", &self.client_assertion),
            ("assertion", &self.assertion),
            ("subject_token", &self.subject_token),
            ("subject_token_type", &self.subject_token_type),
            ("requested_token_type", &self.requested_token_type),
            ("actor_token", &self.actor_token),
        ];
        let mut pairs: Vec<(&'static str, &str)> = singles
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_deref()?)))
            .collect();
        pairs.extend(self.resource.iter().map(|r| ("resource", r.as_str())));
        if let Some(audience) = &self.audience {
            pairs.push(("audience", audience));
        }
        pairs
    }
}

/// The body of a successful token response (`201` on `/auth/token`, `200` on
/// `/oauth2/token`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GenerateAccessTokenResponse {
    /// The bearer token: an ES256-signed JWT (RFC 9068).
    pub access_token: String,
    /// Always `bearer` on the MoneyKit path.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The scopes granted, space-separated.
    #[serde(default)]
    pub scope: String,
    /// RFC 8693 token exchange only: `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

impl std::fmt::Debug for GenerateAccessTokenResponse {
    // A full token in a debug print is a credential in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateAccessTokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("issued_token_type", &self.issued_token_type)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The names of a form's fields as serde writes them, for the `FIELDS` checks.
    pub(crate) fn serde_names(form: impl Serialize) -> Vec<String> {
        match serde_json::to_value(form).expect("a form serializes") {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn fields_name_every_field_of_the_form() {
        let full = TokenForm {
            grant_type: Some("g".into()),
            scope: Some("s".into()),
            client_id: Some("i".into()),
            client_secret: Some("x".into()),
            resource: vec!["r".into()],
            audience: Some("a".into()),
            client_assertion_type: Some("t".into()),
            client_assertion: Some("j".into()),
            assertion: Some("j".into()),
            subject_token: Some("j".into()),
            subject_token_type: Some("t".into()),
            requested_token_type: Some("t".into()),
            actor_token: Some("j".into()),
        };
        let mut names = serde_names(&full);
        names.sort();
        let mut fields: Vec<&str> = TokenForm::FIELDS.to_vec();
        fields.sort();
        assert_eq!(names, fields);
        assert!(
            full.pairs()
                .iter()
                .all(|(n, _)| TokenForm::FIELDS.contains(n))
        );
    }
}
