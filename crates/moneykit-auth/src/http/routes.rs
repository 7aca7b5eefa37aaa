//! The route table: every public route is written here once, and that one entry gives it
//! its router entry, its OpenAPI path (from the handler's `#[utoipa::path]` annotation)
//! and its metrics label. Two tests check the three agree: this file's (labels and the
//! document) and `tests/api/oauth2.rs`, which sends every documented operation to a real
//! server and finds it routed and counted under its own label.

use utoipa::OpenApi;
use utoipa::openapi::PathItem;
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::ApiDoc;
use super::state::AppState;
use super::{auth, discovery, health, oauth2, webhooks};
use crate::metrics::RouteLabel;

/// Routes served but not in the document, each counted under the documented route it is
/// another form of: RFC 8414 §3.1 metadata for an issuer with a path (the path may hold
/// slashes, which an OpenAPI path parameter cannot).
const ALIASES: [(&str, &str); 1] = [(
    "/.well-known/oauth-authorization-server/{*issuer_path}",
    "/.well-known/oauth-authorization-server",
)];

/// The security scheme of routes where a client authenticates with its secret.
const CLIENT_AUTH_SCHEME: &str = "HTTPBasic";

/// Every public route, with its OpenAPI description.
pub fn table() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::token))
        .routes(routes!(auth::introspect))
        .routes(routes!(discovery::jwks))
        .routes(routes!(discovery::metadata))
        .routes(routes!(discovery::openapi))
        .routes(routes!(oauth2::token))
        .routes(routes!(oauth2::introspect))
        .routes(routes!(oauth2::revoke))
        .routes(routes!(webhooks::test_link_event))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .route(
            ALIASES[0].0,
            axum::routing::get(discovery::metadata_for_path),
        )
}

/// The metrics labels of the routes `doc` describes (the route table's document): one per
/// path, plus the aliases under the path they alias.
pub fn labels(doc: &utoipa::openapi::OpenApi) -> Vec<RouteLabel> {
    let basic = SecurityRequirement::new(CLIENT_AUTH_SCHEME, Vec::<String>::new());
    let client_auth = |item: &PathItem| {
        operations(item).any(|op| op.security.iter().flatten().any(|r| *r == basic))
    };
    let documented = doc.paths.paths.iter().map(|(path, item)| RouteLabel {
        template: path.clone(),
        label: path.clone(),
        client_auth: client_auth(item),
    });
    let aliases = ALIASES.iter().map(|(template, of)| RouteLabel {
        template: (*template).to_owned(),
        label: (*of).to_owned(),
        client_auth: doc.paths.paths.get(*of).is_some_and(client_auth),
    });
    documented.chain(aliases).collect()
}

/// The operations of a path item.
fn operations(item: &PathItem) -> impl Iterator<Item = &utoipa::openapi::path::Operation> {
    [
        &item.get,
        &item.put,
        &item.post,
        &item.delete,
        &item.options,
        &item.head,
        &item.patch,
        &item.trace,
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_is_labelled_by_its_documented_path() {
        let (_, doc) = table().split_for_parts();
        let labels = labels(&doc);
        let documented: BTreeSet<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        assert_eq!(documented.len(), 11, "{documented:?}");
        for label in &labels {
            assert!(documented.contains(label.label.as_str()), "{label:?}");
        }
        let templates: BTreeSet<&str> = labels.iter().map(|l| l.template.as_str()).collect();
        assert!(documented.is_subset(&templates));
        assert!(templates.contains(ALIASES[0].0));
        // Where clients present their secret: what `client_auth_failures_total` counts.
        let client_auth: BTreeSet<&str> = labels
            .iter()
            .filter(|l| l.client_auth)
            .map(|l| l.template.as_str())
            .collect();
        assert_eq!(
            client_auth,
            BTreeSet::from([
                "/auth/token",
                "/oauth2/token",
                "/oauth2/introspect",
                "/oauth2/revoke"
            ])
        );
    }
}
