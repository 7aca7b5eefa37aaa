//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations
//! and the wire types' schemas — never written by hand, so it cannot drift from the code.
//! This file holds what the document says about the whole API; its paths come from the
//! route table ([`super::routes`]).

use bytes::Bytes;
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
};
use utoipa::openapi::{Server, ServerBuilder};
use utoipa::{Modify, OpenApi};

/// What the document says about the whole API (its paths: [`super::routes::table`]).
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

/// `doc` (the route table's document) for a server whose public base URL is `issuer`,
/// serialized once.
pub fn document(mut doc: utoipa::openapi::OpenApi, issuer: &str) -> Bytes {
    let server: Server = ServerBuilder::new().url(issuer).build();
    doc.servers = Some(vec![server]);
    Bytes::from(doc.to_json().expect("the OpenAPI document serializes"))
}
