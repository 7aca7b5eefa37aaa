//! The standard OAuth 2.0 surface: RFC 7662 introspection, RFC 7009 revocation and
//! RFC 8414 server metadata. (The token response is the same shape as MoneyKit's,
//! [`crate::GenerateAccessTokenResponse`], with `token_type` `Bearer`.)

use serde::{Deserialize, Serialize};

/// The form of `POST /oauth2/token`: as MoneyKit's [`crate::TokenForm`], except that
/// `grant_type` is required. `client_credentials` (RFC 6749 §4.4.2),
/// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1) or
/// `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientCredentialsForm {
    /// `client_credentials`, `urn:ietf:params:oauth:grant-type:jwt-bearer` or
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    pub grant_type: String,
    /// Space-separated scopes to narrow the token to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client id (client_secret_post).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client secret (client_secret_post).
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
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (`private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion_type: Option<String>,
    /// The client's signed JWT (`private_key_jwt`, RFC 7523 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<String>,
    /// The JWT of the jwt-bearer grant (RFC 7523 §2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<String>,
    /// The token to exchange (RFC 8693 §2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token: Option<String>,
    /// `urn:ietf:params:oauth:token-type:jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token_type: Option<String>,
    /// Absent or `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_token_type: Option<String>,
    /// RFC 8693 delegation: not supported, refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token: Option<String>,
}

impl ClientCredentialsForm {
    /// The form's parameter names: those of MoneyKit's form, since only whether
    /// `grant_type` is required differs.
    pub const FIELDS: &'static [&'static str] = crate::TokenForm::FIELDS;
}

impl std::fmt::Debug for ClientCredentialsForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentialsForm")
            .field("grant_type", &self.grant_type)
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .field("resource", &self.resource)
            .field("audience", &self.audience)
            .field("client_assertion_type", &self.client_assertion_type)
            .field("subject_token_type", &self.subject_token_type)
            .finish_non_exhaustive()
    }
}

/// The form of `POST /oauth2/introspect` (RFC 7662 §2.1) and `POST /oauth2/revoke`
/// (RFC 7009 §2.1). The caller authenticates as a client: with HTTP Basic, with
/// `client_id`/`client_secret` in this form, or with a `client_assertion`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenHintForm {
    /// The token to introspect or revoke.
    pub token: String,
    /// `access_token` (the only kind this server issues); other hints are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
    /// The calling client's id (client_secret_post).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The calling client's secret (client_secret_post).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` (`private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion_type: Option<String>,
    /// The calling client's signed JWT (`private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<String>,
}

impl TokenHintForm {
    /// The form's parameter names, as sent.
    pub const FIELDS: &'static [&'static str] = &[
        "token",
        "token_type_hint",
        "client_id",
        "client_secret",
        "client_assertion_type",
        "client_assertion",
    ];
}

impl std::fmt::Debug for TokenHintForm {
    // Neither the token nor the secret may reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenHintForm")
            .field("token_type_hint", &self.token_type_hint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The body of `POST /oauth2/introspect` (RFC 7662 §2.2): `{"active": false}` alone for
/// anything not currently valid, the standard members for an active token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntrospectionResponse {
    /// Whether the token is currently valid.
    pub active: bool,
    /// Granted scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `Bearer`, or `DPoP` for a token bound to a DPoP key (RFC 9449 §6.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Subject: the client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: the resource servers the token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<crate::Audience>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The client's app (an extension member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// What the token is bound to, for a sender-constrained token (RFC 9449 §6.2,
    /// RFC 8705 §3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::Confirmation>,
}

/// RFC 8414 authorization server metadata, served at
/// `/.well-known/oauth-authorization-server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthorizationServerMetadata {
    /// The issuer: the `iss` of every token.
    pub issuer: String,
    /// `POST` here for tokens (RFC 6749 §4.4).
    pub token_endpoint: String,
    /// The public keys.
    pub jwks_uri: String,
    /// RFC 7662 introspection.
    pub introspection_endpoint: String,
    /// RFC 7009 revocation.
    pub revocation_endpoint: String,
    /// `client_credentials`, and the jwt-bearer and token-exchange grants of federated
    /// workloads.
    pub grant_types_supported: Vec<String>,
    /// Empty: there is no authorization endpoint (client credentials only).
    pub response_types_supported: Vec<String>,
    /// Every scope some client may ask for; omitted unless the operator publishes them
    /// (the names are every tenant's business).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt`.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithms a `private_key_jwt` assertion may be signed with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Same as the token endpoint's.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Same as the token endpoint's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Same as the token endpoint's.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Same as the token endpoint's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// An extension member: the `aud` values a `private_key_jwt` assertion may carry.
    /// The issuer alone when the server runs with `--strict-assertion-audience`
    /// (draft-ietf-oauth-rfc7523bis: a single string, nothing else); otherwise also the
    /// exact URLs of the endpoints where clients authenticate, which many clients send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_assertion_audiences_accepted: Vec<String>,
    /// The algorithms a DPoP proof may be signed with (RFC 9449 §5.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether tokens are bound to the client certificate a request presents (RFC 8705
    /// §3.3): true when the server can see client certificates (its own TLS listener, or a
    /// proxy forwarding them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Where the API is described.
    pub service_documentation: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::tests::serde_names;

    fn sorted(mut names: Vec<String>) -> Vec<String> {
        names.sort();
        names
    }

    #[test]
    fn fields_name_every_field_of_each_form() {
        let full = ClientCredentialsForm {
            grant_type: "g".into(),
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
        let fields = |f: &[&str]| sorted(f.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            sorted(serde_names(&full)),
            fields(ClientCredentialsForm::FIELDS)
        );
        let hint = TokenHintForm {
            token: "t".into(),
            token_type_hint: Some("h".into()),
            client_id: Some("i".into()),
            client_secret: Some("x".into()),
            client_assertion_type: Some("t".into()),
            client_assertion: Some("j".into()),
        };
        assert_eq!(sorted(serde_names(&hint)), fields(TokenHintForm::FIELDS));
    }
}
