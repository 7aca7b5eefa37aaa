//! The admin console: server-rendered pages at `/console` on the admin listener (never the
//! public one), for the daily work — clients and their secrets, apps and webhooks, signing
//! keys, the audit trail, and whether token traffic looks normal.
//!
//! It is a third door to the same [`operations`](crate::operations) as the CLI and the
//! admin API: every change goes through them with the signed-in [`Actor`] (its `via` is
//! `console`), so validation, messages and audit records are the same. Who may see and
//! change what is the admin API's rule ([`Area`]) over the console's own route table
//! ([`ROUTES`]); a route missing from it is refused (fail closed).
//!
//! Pages work without JavaScript (one small script adds the copy button). Responses carry
//! a Content-Security-Policy without inline scripts or styles, `frame-ancestors 'none'`,
//! and `Cache-Control: no-store`; every value is escaped by the templates (askama); every
//! form carries the session's CSRF token, checked here before any handler runs.
//!
//! - `session`: sessions, cookies, CSRF and sign-in limits.
//! - `sign_in`: signing in and out.
//! - `overview`, `apps`, `clients`, `keys`, `events`, `audit`: the pages.
//! - `chart`: the overview's SVG charts.

mod apps;
mod audit;
mod chart;
mod clients;
mod events;
mod keys;
mod overview;
pub mod session;
pub mod sign_in;

use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::admin_access::{self, AdminRoute, Area, Arrival, change, read};
use super::error::ApiError;
use super::state::AdminState;
use crate::domain::audit::Outcome;
use crate::operations::{Actor, AdminError, Via};
use session::{Credential, Current};

/// Every console route that needs a session: method, path, the area it reads or changes
/// and, for a change, its audit action (the same as the admin API's).
pub const ROUTES: &[AdminRoute] = &[
    read("/console/overview", Area::Metrics),
    read("/console/apps", Area::Apps),
    change("POST", "/console/apps", Area::Apps, "app.create"),
    read("/console/apps/{id}", Area::Apps),
    change(
        "POST",
        "/console/apps/{id}/webhook",
        Area::Apps,
        "app.webhook.set",
    ),
    change(
        "POST",
        "/console/apps/{id}/webhook/clear",
        Area::Apps,
        "app.webhook.clear",
    ),
    change(
        "POST",
        "/console/apps/{id}/test-event",
        Area::Webhooks,
        "webhook.send",
    ),
    read("/console/clients", Area::Clients),
    change("POST", "/console/clients", Area::Clients, "client.create"),
    read("/console/clients/{id}", Area::Clients),
    change(
        "POST",
        "/console/clients/{id}",
        Area::Clients,
        "client.update",
    ),
    change(
        "POST",
        "/console/clients/{id}/disable",
        Area::Clients,
        "client.disable",
    ),
    change(
        "POST",
        "/console/clients/{id}/enable",
        Area::Clients,
        "client.enable",
    ),
    change(
        "POST",
        "/console/clients/{id}/rotate-secret",
        Area::Clients,
        "client.secret.rotate",
    ),
    change(
        "POST",
        "/console/clients/{id}/secrets",
        Area::Clients,
        "client.secret.add",
    ),
    change(
        "POST",
        "/console/clients/{id}/secrets/{secret_id}/revoke",
        Area::Clients,
        "client.secret.revoke",
    ),
    change(
        "POST",
        "/console/clients/{id}/trust-rules",
        Area::Clients,
        "client.trust_rule.add",
    ),
    change(
        "POST",
        "/console/clients/{id}/trust-rules/{rule_id}/remove",
        Area::Clients,
        "client.trust_rule.remove",
    ),
    read("/console/keys", Area::Keys),
    change("POST", "/console/keys/rotate", Area::Keys, "key.rotate"),
    change(
        "POST",
        "/console/keys/{kid}/revoke",
        Area::Keys,
        "key.revoke",
    ),
    read("/console/webhooks", Area::Webhooks),
    change(
        "POST",
        "/console/webhooks/{id}/retry",
        Area::Webhooks,
        "webhook.retry",
    ),
    read("/console/audit", Area::Audit),
];

/// The pages in the navigation, in order, with the area each shows.
const NAV: &[(&str, &str, Area)] = &[
    ("overview", "Overview", Area::Metrics),
    ("apps", "Apps", Area::Apps),
    ("clients", "Clients", Area::Clients),
    ("keys", "Signing keys", Area::Keys),
    ("webhooks", "Webhook events", Area::Webhooks),
    ("audit", "Audit log", Area::Audit),
];

/// Largest form accepted (a JWKS or a certificate chain fits).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The console's routes, for the admin router to merge (after its own access layer, which
/// does not apply here: the console has sessions instead of bearer tokens).
pub(super) fn router(state: Arc<AdminState>) -> axum::Router<Arc<AdminState>> {
    let signed = axum::Router::new()
        .route("/console/overview", get(overview::page))
        .route("/console/apps", get(apps::list).post(apps::create))
        .route("/console/apps/{id}", get(apps::show))
        .route("/console/apps/{id}/webhook", post(apps::set_webhook))
        .route(
            "/console/apps/{id}/webhook/clear",
            post(apps::clear_webhook),
        )
        .route("/console/apps/{id}/test-event", post(apps::test_event))
        .route("/console/clients", get(clients::list).post(clients::create))
        .route(
            "/console/clients/{id}",
            get(clients::show).post(clients::update),
        )
        .route("/console/clients/{id}/disable", post(clients::disable))
        .route("/console/clients/{id}/enable", post(clients::enable))
        .route(
            "/console/clients/{id}/rotate-secret",
            post(clients::rotate_secret),
        )
        .route("/console/clients/{id}/secrets", post(clients::add_secret))
        .route(
            "/console/clients/{id}/secrets/{secret_id}/revoke",
            post(clients::revoke_secret),
        )
        .route(
            "/console/clients/{id}/trust-rules",
            post(clients::add_trust_rule),
        )
        .route(
            "/console/clients/{id}/trust-rules/{rule_id}/remove",
            post(clients::remove_trust_rule),
        )
        .route("/console/keys", get(keys::page))
        .route("/console/keys/rotate", post(keys::rotate))
        .route("/console/keys/{kid}/revoke", post(keys::revoke))
        .route("/console/webhooks", get(events::page))
        .route("/console/webhooks/{id}/retry", post(events::retry))
        .route("/console/audit", get(audit::page))
        .route_layer(middleware::from_fn_with_state(state, guard));
    axum::Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route("/console/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .merge(signed)
        .layer(middleware::from_fn(security_headers))
}

/// Who is signed in, for the handlers: the actor every operation is called with, and the
/// session.
#[derive(Clone)]
pub struct Signed {
    /// The signed-in actor (`via` console), at this request's source and id.
    pub actor: Actor,
    /// The session.
    pub session: Current,
}

impl Signed {
    /// Whether the actor may read (or change) `area`, for what a page offers.
    fn may(&self, area: Area, change: bool) -> bool {
        area.permits(&self.actor.grants, change).is_ok()
    }
}

/// Authenticates the session (as the admin API would its credential), checks the form's
/// CSRF token and the route's scope, hands the handler a [`Signed`], and records in the
/// audit trail the refusals no operation saw.
async fn guard(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let Arrival {
        source,
        request_id,
        path,
        route,
        ..
    } = Arrival::of(&req, ROUTES);
    let method = req.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;
    let Some(session) = state.console.current(req.headers()) else {
        return signed_out(is_get, None);
    };
    let actor = match &session.credential {
        Credential::AdminToken => Ok(Actor::admin_token()),
        Credential::AccessToken(token) => {
            admin_access::identify(&state, token.clone(), method.as_str(), &path, source).await
        }
    };
    let Ok(mut actor) = actor else {
        // The token expired or was revoked, or its client disabled: the session ends.
        let cleared = state.console.close(&session.key);
        return signed_out(is_get, Some(cleared));
    };
    actor.via = Via::Console;
    let actor = actor.at(source, request_id);
    let Some(route) = route else {
        tracing::error!(path = %path, "console route without an entry in ROUTES: refused");
        return failure_page(StatusCode::FORBIDDEN, "This page has no scope assigned.");
    };
    let mut req = req;
    if !is_get {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return failure_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
        };
        let presented = form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.into_owned());
        if !presented.is_some_and(|p| session::same(&p, &session.csrf)) {
            let why = "the form's CSRF token is missing or wrong";
            admin_access::record(&state, &actor, Some(route), &path, Outcome::Refused, why).await;
            return failure_page(
                StatusCode::FORBIDDEN,
                "This form did not come from your console session (its CSRF token is missing \
                 or out of date). Reload the page and try again.",
            );
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    if let Err(why) = route.area.permits(&actor.grants, route.action.is_some()) {
        admin_access::record(&state, &actor, Some(route), &path, Outcome::Refused, &why).await;
        return failure_page(
            StatusCode::FORBIDDEN,
            &format!("You may not do this: {why}."),
        );
    }
    req.extensions_mut().insert(Signed {
        actor: actor.clone(),
        session,
    });
    let response = next.run(req).await;
    admin_access::record_unrecorded(&state, &actor, route, &path, response.status()).await;
    response
}

/// No session (or it ended): a page request goes to the sign-in page; a form is refused.
fn signed_out(is_get: bool, cleared: Option<HeaderValue>) -> Response {
    let mut response = match is_get {
        true => Redirect::to("/console/sign-in").into_response(),
        false => failure_page(
            StatusCode::UNAUTHORIZED,
            "Your console session has ended. Sign in again.",
        ),
    };
    if let Some(cookie) = cleared {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The policy every console response carries: scripts and styles from this origin only
/// (no inline ones), no framing, no referrer, nothing cached.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("static/console.js"),
    )
        .into_response()
}

/// What every signed-in page's frame shows: the navigation (the areas this actor may
/// read), who is signed in, the sign-out form's CSRF token, and the messages.
pub struct Frame {
    /// The current page's navigation key.
    pub nav: &'static str,
    /// The links: key, label.
    pub links: Vec<(&'static str, &'static str)>,
    /// Who is signed in.
    pub who: String,
    /// The CSRF token of every form on the page.
    pub csrf: String,
    /// What the last change did.
    pub notice: Option<String>,
    /// Why the form just sent was refused, shown in place.
    pub error: Option<String>,
}

impl Frame {
    /// The frame of page `nav` for `signed`, with the notice left for it (if any) and
    /// `error`.
    fn new(state: &AdminState, signed: &Signed, nav: &'static str, error: Option<String>) -> Self {
        Self {
            nav,
            links: NAV
                .iter()
                .filter(|(_, _, area)| signed.may(*area, false))
                .map(|(key, label, _)| (*key, *label))
                .collect(),
            who: signed.actor.name.clone(),
            csrf: signed.session.csrf.clone(),
            notice: state.console.take_notice(&signed.session.key),
            error,
        }
    }
}

/// A rendered page, or why it could not be.
type Page = Result<Response, PageFailure>;

/// A page that could not be shown: the response that says why.
pub struct PageFailure(Box<Response>);

impl IntoResponse for PageFailure {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for PageFailure {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

/// `template` as an HTML response with `status`.
fn html(status: StatusCode, template: &impl Template) -> Page {
    match template.render() {
        Ok(body) => Ok((
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()),
        Err(error) => {
            tracing::error!(%error, "console: a template failed to render");
            Err(failure_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "This page could not be shown.",
            )
            .into())
        }
    }
}

/// After a change: back to `to` (a `303`, so a reload does not send the form again), with
/// `notice` shown there.
fn done(state: &AdminState, signed: &Signed, to: &str, notice: String) -> Page {
    state.console.set_notice(&signed.session.key, notice);
    Ok(Redirect::to(to).into_response())
}

/// An operation's refusal as the console shows it: the status the admin API would answer
/// with, and the same text as the CLI (a database failure is not described).
fn refusal(error: AdminError) -> (StatusCode, String) {
    let text = match &error {
        AdminError::Store(_) => "the database cannot be reached; try again".to_owned(),
        other => other.to_string(),
    };
    (ApiError::from(error).status(), text)
}

/// The status and text of a refusal to show in place, or 200 and nothing.
fn split(error: Option<AdminError>) -> (StatusCode, Option<String>) {
    match error.map(refusal) {
        Some((status, text)) => (status, Some(text)),
        None => (StatusCode::OK, None),
    }
}

/// A store read's failure as a page.
fn unavailable(error: impl Into<AdminError>) -> PageFailure {
    let (status, text) = refusal(error.into());
    failure_page(status, &text).into()
}

#[derive(Template)]
#[template(path = "console/failure.html")]
struct Failure<'a> {
    message: &'a str,
}

/// A page that says only what went wrong (no session needed to see it).
fn failure_page(status: StatusCode, message: &str) -> Response {
    let body = Failure { message }
        .render()
        .unwrap_or_else(|_| "error".to_owned());
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// An optional form field: absent and blank are the same.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A duration field (`90s`, `15m`, `24h`, `7d`, or plain seconds) in seconds; blank is
/// `None`.
fn duration_field(name: &str, field: &Option<String>) -> Result<Option<u64>, AdminError> {
    let Some(text) = given(field) else {
        return Ok(None);
    };
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Some(secs));
    }
    humantime::parse_duration(text)
        .map(|d| Some(d.as_secs()))
        .map_err(|_| {
            AdminError::Invalid(format!(
                "{name}: {text:?} is not a duration (for example 90s, 15m, 24h, 7d)"
            ))
        })
}
