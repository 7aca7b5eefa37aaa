//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations
//! and the wire types' schemas — never written by hand, so it cannot drift from the code.

use bytes::Bytes;
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
};
use utoipa::openapi::{Server, ServerBuilder};
use utoipa::{IntoParams, Modify, OpenApi};

use super::{auth, discovery, health, oauth2, webhooks};

/// The optional `MoneyKit-Version` header of the MoneyKit paths.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct MoneyKitVersionHeader {
    /// API version: `2023-02-18` (what the official SDKs send), or absent. Anything else
    /// is a 400 naming the supported versions.
    #[serde(rename = "MoneyKit-Version")]
    #[param(required = false, inline)]
    pub moneykit_version: ApiVersion,
}

/// The API versions this server speaks (see `moneykit_wire::headers::SUPPORTED_VERSIONS`).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub enum ApiVersion {
    /// The version of the official SDKs.
    #[serde(rename = "2023-02-18")]
    V2023_02_18,
}

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "moneykit-auth",
        description = "A self-hostable, MoneyKit-compatible OAuth 2.0 access token service. \
            The MoneyKit paths (`/auth/*`, `/.well-known/jwks.json`) behave as the official \
            MoneyKit SDKs expect; the `/oauth2/*` paths are standard OAuth 2.0 for every \
            other client. Every error body carries the MoneyKit fields (`error_code`, \
            `error_message`, `documentation_url`) and, where RFC 6749 defines one, `error` \
            and `error_description`.",
        license(name = "Apache-2.0"),
    ),
    paths(
        auth::token,
        auth::introspect,
        discovery::jwks,
        discovery::metadata,
        discovery::openapi,
        oauth2::token,
        oauth2::introspect,
        oauth2::revoke,
        webhooks::test_link_event,
        health::live,
        health::ready,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "MoneyKit", description = "The MoneyKit AccessTokenApi, as the official SDKs use it."),
        (name = "OAuth 2.0", description = "RFC 6749 client credentials, RFC 7662 introspection, RFC 7009 revocation."),
        (name = "Discovery", description = "Public keys, RFC 8414 metadata, this document."),
        (name = "Webhooks", description = "Test events, delivered signed to the app's webhook URL."),
        (name = "Health", description = "Liveness and readiness for load balancers."),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "HTTPBasic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "OAuth2ClientCredentials",
            SecurityScheme::OAuth2(OAuth2::new([Flow::ClientCredentials(
                ClientCredentials::new("/auth/token", Scopes::new()),
            )])),
        );
    }
}

/// The document for a server whose public base URL is `issuer`, serialized once.
pub fn document(issuer: &str) -> Bytes {
    let mut doc = ApiDoc::openapi();
    let server: Server = ServerBuilder::new().url(issuer).build();
    doc.servers = Some(vec![server]);
    Bytes::from(doc.to_json().expect("the OpenAPI document serializes"))
}
