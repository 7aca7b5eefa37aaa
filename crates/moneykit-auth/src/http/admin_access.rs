//! Who may call the admin API, and for what. A caller sends `Authorization: Bearer …`
//! with either the bootstrap admin token (`MONEYKIT_AUTH_ADMIN_TOKEN`, compared in
//! constant time; it may do everything) or an access token this server issued to a client
//! holding admin scopes ([`ADMIN_SCOPES`]). Each route in [`ROUTES`] names its area:
//! reading needs `admin:read` or the area's scope, changing needs the area's scope (403
//! `insufficient_scope` otherwise). Refused authentications, missing scopes and changes
//! refused before any operation ran go to the audit trail here; the operations record
//! the rest.

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::extract::{ClientAddr, PresentedToken, bearer_token};
use super::hygiene::REQUEST_ID;
use super::state::AdminState;
use crate::domain::audit::Outcome;
use crate::domain::scope::Scopes;
use crate::operations::Actor;
use crate::operations::audit::{self, ADMIN_SCOPES, Grants};

/// What a route reads or changes: the admin scope it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Prometheus metrics: read with `admin:read`.
    Metrics,
    /// Apps and their webhook URLs: `admin:apps`.
    Apps,
    /// Clients, their secrets, keys, certificates and trust rules: `admin:clients`.
    Clients,
    /// Signing keys: `admin:keys`.
    Keys,
    /// Webhook events: `admin:webhooks`.
    Webhooks,
    /// The audit trail: read with `admin:read`.
    Audit,
}

impl Area {
    /// The scopes any one of which lets a caller read (`change` false) or change this
    /// area: the admin API's routes and the console's pages ask the same question.
    pub fn scopes(self, change: bool) -> Vec<&'static str> {
        match (change, self.scope()) {
            (false, "admin:read") => vec!["admin:read"],
            (false, scope) => vec!["admin:read", scope],
            (true, scope) => vec![scope],
        }
    }

    /// Whether `grants` may read or change this area; if not, why (the 403's text).
    pub fn permits(self, grants: &Grants, change: bool) -> Result<(), String> {
        let scopes = self.scopes(change);
        match scopes.iter().any(|scope| grants.has(scope)) {
            true => Ok(()),
            false => Err(format!("this needs the scope {}", scopes.join(" or "))),
        }
    }

    /// The scope that reads and changes this area (besides `admin:read` for reading).
    fn scope(self) -> &'static str {
        match self {
            Area::Metrics | Area::Audit => "admin:read",
            Area::Apps => "admin:apps",
            Area::Clients => "admin:clients",
            Area::Keys => "admin:keys",
            Area::Webhooks => "admin:webhooks",
        }
    }
}

/// One admin route: method, path as routed, area, and for a change the audit action
/// its refusals are recorded under.
#[derive(Debug, Clone, Copy)]
pub struct AdminRoute {
    /// HTTP method.
    pub method: &'static str,
    /// Path template.
    pub path: &'static str,
    /// What it reads or changes.
    pub area: Area,
    /// The audit action of a change; `None` for a read.
    pub action: Option<&'static str>,
}

pub(super) const fn read(path: &'static str, area: Area) -> AdminRoute {
    AdminRoute {
        method: "GET",
        path,
        area,
        action: None,
    }
}

pub(super) const fn change(
    method: &'static str,
    path: &'static str,
    area: Area,
    action: &'static str,
) -> AdminRoute {
    AdminRoute {
        method,
        path,
        area,
        action: Some(action),
    }
}

/// Every admin route. A route the router has and this table lacks is refused to every
/// caller (fail closed), so a new route cannot go out without its scope; the tests
/// enumerate this table to check that every change leaves an audit record.
pub const ROUTES: &[AdminRoute] = &[
    read("/metrics", Area::Metrics),
    read("/admin/apps", Area::Apps),
    change("POST", "/admin/apps", Area::Apps, "app.create"),
    change(
        "PUT",
        "/admin/apps/{id}/webhook",
        Area::Apps,
        "app.webhook.set",
    ),
    change(
        "DELETE",
        "/admin/apps/{id}/webhook",
        Area::Apps,
        "app.webhook.clear",
    ),
    read("/admin/clients", Area::Clients),
    change("POST", "/admin/clients", Area::Clients, "client.create"),
    read("/admin/clients/{id}", Area::Clients),
    change(
        "PATCH",
        "/admin/clients/{id}",
        Area::Clients,
        "client.update",
    ),
    change(
        "POST",
        "/admin/clients/{id}/disable",
        Area::Clients,
        "client.disable",
    ),
    change(
        "POST",
        "/admin/clients/{id}/enable",
        Area::Clients,
        "client.enable",
    ),
    change(
        "POST",
        "/admin/clients/{id}/rotate-secret",
        Area::Clients,
        "client.secret.rotate",
    ),
    change(
        "POST",
        "/admin/clients/{id}/secrets",
        Area::Clients,
        "client.secret.add",
    ),
    change(
        "DELETE",
        "/admin/clients/{id}/secrets/{secret_id}",
        Area::Clients,
        "client.secret.revoke",
    ),
    read("/admin/clients/{id}/trust-rules", Area::Clients),
    change(
        "POST",
        "/admin/clients/{id}/trust-rules",
        Area::Clients,
        "client.trust_rule.add",
    ),
    change(
        "DELETE",
        "/admin/clients/{id}/trust-rules/{rule_id}",
        Area::Clients,
        "client.trust_rule.remove",
    ),
    read("/admin/keys", Area::Keys),
    change("POST", "/admin/keys/rotate", Area::Keys, "key.rotate"),
    change("POST", "/admin/keys/{kid}/revoke", Area::Keys, "key.revoke"),
    read("/admin/webhooks", Area::Webhooks),
    change("POST", "/admin/webhooks", Area::Webhooks, "webhook.send"),
    change(
        "POST",
        "/admin/webhooks/{id}/retry",
        Area::Webhooks,
        "webhook.retry",
    ),
    read("/admin/audit", Area::Audit),
];

impl AdminRoute {
    /// The first path parameter's value in `path` (the object acted on).
    fn target(&self, path: &str) -> Option<String> {
        self.path
            .split('/')
            .zip(path.split('/'))
            .find(|(template, _)| template.starts_with('{'))
            .map(|(_, value)| value.to_owned())
    }
}

/// Authenticates the caller, checks the route's scope, hands the handler its [`Actor`],
/// and records in the audit trail what no operation did: refused authentications,
/// missing scopes, and changes refused before an operation ran (a malformed body).
pub(super) async fn authorize(
    State(state): State<Arc<AdminState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Arrival {
        source,
        request_id,
        path,
        matched,
        route,
    } = Arrival::of(&req, ROUTES);
    let method = req.method().as_str().to_owned();
    let authorization = bearer_token(req.headers()).map(str::to_owned);
    let actor = match authenticate(&state, authorization, &method, &path, source).await {
        Ok(actor) => actor.at(source, request_id),
        Err((reason, error)) => {
            // Never the token: only why it was refused.
            tracing::info!(
                reason = %reason,
                client = source.map(tracing::field::display),
                path = %path,
                "admin API authentication failed"
            );
            if state.refusals.take() {
                let actor = Actor::anonymous().at(source, request_id);
                let detail = format!("authentication failed: {reason}");
                record(&state, &actor, route, &path, Outcome::Refused, &detail).await;
            }
            return error.into_response();
        }
    };
    let Some(route) = route else {
        if ROUTES.iter().any(|r| Some(r.path) == matched.as_deref()) {
            // A method the path does not have: the router's 405, with `Allow`.
            return next.run(req).await;
        }
        tracing::error!(path = %path, "admin route without an entry in ROUTES: refused");
        return ApiError::InsufficientScope("this route has no scope assigned".into())
            .into_response();
    };
    if let Err(why) = route.area.permits(&actor.grants, route.action.is_some()) {
        record(&state, &actor, Some(route), &path, Outcome::Refused, &why).await;
        return ApiError::InsufficientScope(why).into_response();
    }
    req.extensions_mut().insert(actor.clone());
    let response = next.run(req).await;
    record_unrecorded(&state, &actor, route, &path, response.status()).await;
    response
}

/// What an access layer (the admin API's, the console's) reads off a request before
/// deciding on it: where it came from, its id, its path, and its entry in `routes`.
pub(super) struct Arrival {
    /// The caller's address.
    pub source: Option<std::net::IpAddr>,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
    /// The path asked for.
    pub path: String,
    /// The route template the router matched.
    pub matched: Option<String>,
    /// The route's entry, for its method (a `HEAD` is its `GET`).
    pub route: Option<&'static AdminRoute>,
}

impl Arrival {
    pub(super) fn of(req: &Request, routes: &'static [AdminRoute]) -> Self {
        let matched = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        // axum answers HEAD with the GET handler.
        let method = match req.method().as_str() {
            "HEAD" => "GET",
            other => other,
        };
        let route = routes
            .iter()
            .find(|r| Some(r.path) == matched.as_deref() && r.method == method);
        Self {
            source: req.extensions().get::<ClientAddr>().and_then(|c| c.0),
            request_id: req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            path: req.uri().path().to_owned(),
            matched,
            route,
        }
    }
}

/// After a change's handler ran: records how it ended (by its HTTP status) if no
/// operation did, such as a request refused before one ran.
pub(super) async fn record_unrecorded(
    state: &AdminState,
    actor: &Actor,
    route: &AdminRoute,
    path: &str,
    status: axum::http::StatusCode,
) {
    if route.action.is_none() || actor.recorded() {
        return;
    }
    let outcome = match status {
        s if s.is_success() || s.is_redirection() => Outcome::Ok,
        s if s.is_server_error() => Outcome::Failed,
        _ => Outcome::Refused,
    };
    let detail = format!("HTTP {}", status.as_u16());
    record(state, actor, Some(route), path, outcome, &detail).await;
}

/// Records a request to `route` (at `path`) that no operation recorded: its action (a
/// read's is `admin.read`), the object its path names, and how it ended.
pub(super) async fn record(
    state: &AdminState,
    actor: &Actor,
    route: Option<&AdminRoute>,
    path: &str,
    outcome: Outcome,
    detail: &str,
) {
    let action = route.and_then(|r| r.action).unwrap_or("admin.read");
    let target = route.and_then(|r| r.target(path));
    let store = state.store.as_ref();
    audit::append(
        store,
        actor,
        action,
        target.as_deref(),
        None,
        outcome,
        Some(detail),
    )
    .await;
}

/// Who the caller is: the holder of the bootstrap admin token, or a client presenting a
/// token this server issued and that is still good (not expired, revoked or of a disabled
/// client), with the admin scopes the token was granted (perhaps none: the route's scope
/// check then refuses it, in its name). A token bound to a DPoP key or a certificate is
/// refused here, as a bearer token without its proof.
async fn authenticate(
    state: &AdminState,
    authorization: Result<String, ApiError>,
    method: &str,
    path: &str,
    source: Option<std::net::IpAddr>,
) -> Result<Actor, (&'static str, ApiError)> {
    match authorization {
        Ok(token) => identify(state, token, method, path, source).await,
        Err(ApiError::MissingToken) => Err(("missing_token", ApiError::MissingToken)),
        Err(error) => Err(("malformed", error)),
    }
}

/// Who holds `presented`: the bootstrap admin token, or a still-good access token this
/// server issued (with the admin scopes it was granted). The console's sessions ask this
/// again on every request, so a revoked or expired token ends them too.
pub(super) async fn identify(
    state: &AdminState,
    presented: String,
    method: &str,
    path: &str,
    source: Option<std::net::IpAddr>,
) -> Result<Actor, (&'static str, ApiError)> {
    let d = digest(&SHA256, presented.as_bytes());
    if bool::from(d.as_ref().ct_eq(&state.token_digest)) {
        return Ok(Actor::admin_token());
    }
    let token = PresentedToken {
        token: presented,
        dpop_scheme: false,
        proof: Ok(None),
        certificate: None,
    };
    let holder = state
        .public
        .authorize_presented(&token, method, path, source, |authorized| {
            let scopes = Scopes::parse(&authorized.claims.scope).unwrap_or_default();
            (authorized.client.client.id.clone(), scopes)
        })
        .await;
    match holder {
        Ok((client_id, scopes)) => {
            let admin: Vec<&str> = scopes.iter().filter(|s| ADMIN_SCOPES.contains(s)).collect();
            let admin = Scopes::parse(&admin.join(" ")).unwrap_or_default();
            Ok(Actor::admin_client(&client_id, admin))
        }
        Err(ApiError::ExpiredToken) => Err(("expired_token", ApiError::ExpiredToken)),
        Err(_) => Err(("wrong_token", ApiError::InvalidToken)),
    }
}
