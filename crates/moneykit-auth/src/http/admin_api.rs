//! The admin HTTP API and Prometheus metrics, on their own listener (`--admin-listen`,
//! off by default). It does what the CLI does, with the same JSON shapes as the CLI's
//! `--json` ([`crate::operations::views`]) and the same admin operations
//! ([`crate::operations`]), so the two cannot disagree.
//!
//! Who may call which route, and the audit records of refusals, are in
//! [`super::admin_access`]; handlers get the caller as an [`Actor`] extension.
//!
//! | | |
//! |---|---|
//! | `GET /metrics` | Prometheus text |
//! | `GET /admin/apps`, `POST /admin/apps` `{"name"}` | apps |
//! | `PUT /admin/apps/{id}/webhook` `{"url","allow_http","allow_private_targets"}` (the flags only narrow the server's policy), `DELETE …` | webhook URL |
//! | `GET /admin/clients?app=`, `POST /admin/clients` `{"app_id","name","scope","audiences","token_ttl","secret_ttl","token_endpoint_auth_method","jwks","jwks_uri",…}` | clients |
//! | `GET /admin/clients/{id}`, `PATCH …` `{"name","scope","audiences","token_ttl","jwks","jwks_uri",…}`; `POST …/disable` `{"at"}`, `…/enable`, `…/rotate-secret` `{"grace","secret_ttl"}` | one client |
//! | `POST /admin/clients/{id}/secrets` `{"secret_ttl"}`, `DELETE …/secrets/{secret_id}` | a client's secrets |
//! | `GET /admin/clients/{id}/trust-rules`, `POST …` `{"issuer","subject","audience","jwks","jwks_uri"}`, `DELETE …/{rule_id}` | a client's trust rules (federated workloads) |
//! | `GET /admin/keys`, `POST /admin/keys/rotate` `{"now"}`, `POST /admin/keys/{kid}/revoke` | signing keys |
//! | `GET /admin/webhooks?app=&status=&limit=`, `POST /admin/webhooks` `{"app_id","event","data"}`, `POST /admin/webhooks/{id}/retry` | webhook events |
//! | `GET /admin/audit?since=&until=&target=&actor=&limit=&cursor=` | the audit trail, newest first |
//!
//! The console ([`super::console`]) is served beside it, at `/console`.

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Limits;
use super::admin_access;
use super::error::ApiError;
use super::hygiene::HygieneLayer;
use super::state::AdminState;
use crate::domain::audit::AuditFilter;
use crate::domain::certificates::TlsIdentity;
use crate::domain::events::EventStatus;
use crate::domain::signing_keys::KeySchedule;
use crate::net::guard::TargetPolicy;
use crate::operations::audit::{self, record_json};
use crate::operations::secretless::{self, KeysInput, NewTrustRule, SecretlessAuth};
use crate::operations::secrets::{self, Rotation};
use crate::operations::views;
use crate::operations::{self, Actor, AdminError, ClientUpdate, NewClient};

/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Why the admin API cannot start.
#[derive(Debug, thiserror::Error)]
#[error(
    "--admin-listen needs MONEYKIT_AUTH_ADMIN_TOKEN, at least {MIN_ADMIN_TOKEN_LEN} characters (for example: openssl rand -base64 32)"
)]
pub struct AdminTokenMissing;

/// The token's digest, if it is long enough to be one.
pub fn token_digest(token: Option<&str>) -> Result<[u8; 32], AdminTokenMissing> {
    match token {
        Some(t) if t.len() >= MIN_ADMIN_TOKEN_LEN => {
            let mut out = [0u8; 32];
            out.copy_from_slice(digest(&SHA256, t.as_bytes()).as_ref());
            Ok(out)
        }
        _ => Err(AdminTokenMissing),
    }
}

/// Largest admin request body.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The admin router, behind the same hygiene layer as the public one (`limits`' header
/// cap and request timeout; its own body cap), its requests left out of the metrics.
pub fn router(state: Arc<AdminState>, limits: Limits) -> axum::Router {
    let limits = Limits {
        max_body_bytes: MAX_BODY_BYTES,
        ..limits
    };
    let router = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/admin/apps", get(list_apps).post(create_app))
        .route(
            "/admin/apps/{id}/webhook",
            put(set_webhook).delete(clear_webhook),
        )
        .route("/admin/clients", get(list_clients).post(create_client))
        .route("/admin/clients/{id}", get(show_client).patch(update_client))
        .route("/admin/clients/{id}/disable", post(disable_client))
        .route("/admin/clients/{id}/enable", post(enable_client))
        .route("/admin/clients/{id}/rotate-secret", post(rotate_secret))
        .route("/admin/clients/{id}/secrets", post(add_secret))
        .route(
            "/admin/clients/{id}/secrets/{secret_id}",
            axum::routing::delete(revoke_secret),
        )
        .route(
            "/admin/clients/{id}/trust-rules",
            get(list_trust_rules).post(add_trust_rule),
        )
        .route(
            "/admin/clients/{id}/trust-rules/{rule_id}",
            axum::routing::delete(remove_trust_rule),
        )
        .route("/admin/keys", get(list_keys))
        .route("/admin/keys/rotate", post(rotate_key))
        .route("/admin/keys/{kid}/revoke", post(revoke_key))
        .route("/admin/webhooks", get(list_events).post(send_event))
        .route("/admin/webhooks/{id}/retry", post(retry_event))
        .route("/admin/audit", get(list_audit));
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin_access::authorize,
        ))
        .merge(super::console::router(state.clone()))
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(HygieneLayer::new(limits, None))
}

/// Body validation failures share one location and kind.
fn invalid(why: &str) -> ApiError {
    ApiError::validation(&["body"], why, "value_error")
}

/// Admin failures convert with `?` through `From<AdminError> for ApiError`.
type Reply = Result<Response, ApiError>;

fn ok(status: StatusCode, value: Value) -> Reply {
    Ok((status, Json(value)).into_response())
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let (keys, operator) = state.operator_state(OffsetDateTime::now_utc()).await;
    let body = state.metrics.render(&keys, &operator);
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

#[derive(Deserialize)]
struct NewApp {
    name: String,
}

async fn list_apps(State(state): State<Arc<AdminState>>) -> Reply {
    let apps = state.store.list_apps().await?;
    ok(
        StatusCode::OK,
        Value::from_iter(apps.iter().map(views::app_json)),
    )
}

async fn create_app(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Json(new): Json<NewApp>,
) -> Reply {
    let app = operations::create_app(state.store.as_ref(), &new.name, &actor).await?;
    ok(StatusCode::CREATED, views::app_json(&app))
}

/// `PUT /admin/apps/{id}/webhook`: the flags may only narrow the server's own policy
/// (`false` takes an allowance away; `true` or absent keeps the server's).
#[derive(Deserialize)]
struct WebhookTarget {
    url: String,
    allow_http: Option<bool>,
    allow_private_targets: Option<bool>,
}

async fn set_webhook(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Json(target): Json<WebhookTarget>,
) -> Reply {
    // The server delivers with its own policy, so that is what the URL is checked
    // against: a request that could widen it would store URLs the operator refused.
    let policy = state
        .webhook_policy
        .narrowed(target.allow_http, target.allow_private_targets);
    let url = Some(target.url.as_str());
    let app = operations::set_app_webhook(state.store.as_ref(), &id, url, policy, &actor).await?;
    ok(StatusCode::OK, views::app_json(&app))
}

async fn clear_webhook(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Reply {
    let policy = TargetPolicy::default();
    let app = operations::set_app_webhook(state.store.as_ref(), &id, None, policy, &actor).await?;
    ok(StatusCode::OK, views::app_json(&app))
}

#[derive(Deserialize)]
struct ClientFilter {
    app: Option<String>,
}

async fn list_clients(
    State(state): State<Arc<AdminState>>,
    Query(filter): Query<ClientFilter>,
) -> Reply {
    let clients = state.store.list_clients(filter.app.as_deref()).await?;
    ok(
        StatusCode::OK,
        Value::from_iter(clients.iter().map(views::client_json)),
    )
}

#[derive(Deserialize)]
struct CreateClient {
    app_id: String,
    #[serde(default = "default_client_name")]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    audiences: Vec<String>,
    token_ttl: Option<u64>,
    /// `client_secret_basic` (the default; `client_secret_post` is the same),
    /// `private_key_jwt`, `tls_client_auth` or `self_signed_tls_client_auth`.
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    require_dpop: bool,
    /// Lifetime of the first secret in seconds; absent: it never expires.
    secret_ttl: Option<u64>,
    #[serde(flatten)]
    credentials: CredentialFields,
}

/// The keys of a request body: a JWKS object or a URI, not both.
fn keys_input(
    jwks: Option<Value>,
    jwks_uri: Option<String>,
) -> Result<Option<KeysInput>, ApiError> {
    let jwks = jwks.map(|v| v.to_string());
    KeysInput::either(jwks.as_deref(), jwks_uri.as_deref()).map_err(ApiError::from)
}

/// How a client without a secret authenticates, in RFC 7591 / RFC 8705 member names: at
/// most one of them.
#[derive(Deserialize, Default)]
struct CredentialFields {
    /// A `private_key_jwt` client's JWKS, as a JSON object.
    jwks: Option<Value>,
    /// Or the URL it publishes its JWKS at.
    jwks_uri: Option<String>,
    tls_client_auth_subject_dn: Option<String>,
    tls_client_auth_san_dns: Option<String>,
    tls_client_auth_san_uri: Option<String>,
    tls_client_auth_san_email: Option<String>,
    tls_client_auth_san_ip: Option<std::net::IpAddr>,
    /// A `self_signed_tls_client_auth` client's certificates, PEM.
    certificate: Option<String>,
}

impl CredentialFields {
    /// The credentials given, if any; more than one kind is refused.
    fn given(self) -> Result<Option<SecretlessAuth>, ApiError> {
        let keys = keys_input(self.jwks, self.jwks_uri)?.map(SecretlessAuth::Keys);
        let tls = [
            self.tls_client_auth_subject_dn.map(TlsIdentity::SubjectDn),
            self.tls_client_auth_san_dns.map(TlsIdentity::Dns),
            self.tls_client_auth_san_uri.map(TlsIdentity::Uri),
            self.tls_client_auth_san_email.map(TlsIdentity::Email),
            self.tls_client_auth_san_ip.map(TlsIdentity::Ip),
        ]
        .into_iter()
        .flatten()
        .map(SecretlessAuth::Tls);
        let certificate = self.certificate.map(SecretlessAuth::SelfSigned);
        let mut given = keys.into_iter().chain(tls).chain(certificate);
        let first = given.next();
        if given.next().is_some() {
            return Err(invalid(
                "give one of jwks, jwks_uri, tls_client_auth_subject_dn, tls_client_auth_san_*, certificate",
            ));
        }
        Ok(first)
    }
}

fn default_client_name() -> String {
    "client".into()
}

async fn create_client(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Json(new): Json<CreateClient>,
) -> Reply {
    let credentials = secretless::credentials_for_method(
        new.token_endpoint_auth_method.as_deref(),
        new.credentials.given()?,
    )?;
    let new = NewClient {
        app_id: new.app_id,
        name: new.name,
        scope: new.scope,
        audiences: new.audiences,
        token_ttl_secs: new.token_ttl,
        require_dpop: new.require_dpop,
        secret_ttl_secs: new.secret_ttl,
    };
    let store = state.store.as_ref();
    match credentials {
        None => {
            let (client, secret) = operations::create_client(store, &new, &actor).await?;
            ok(
                StatusCode::CREATED,
                views::client_secret_json(&client, &secret),
            )
        }
        Some(auth) => {
            let client = secretless::create_secretless_client(
                store,
                &new,
                &auth,
                state.key_fetch_policy,
                &actor,
            )
            .await?;
            ok(StatusCode::CREATED, views::client_json(&client))
        }
    }
}

async fn show_client(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Reply {
    let client = state
        .store
        .get_client(&id)
        .await?
        .ok_or(AdminError::UnknownClient(id))?;
    let rules = state.store.list_trust_rules(Some(&client.id)).await?;
    let mut json = views::client_json(&client);
    json["trust_rules"] = rules.iter().map(views::trust_rule_json).collect();
    ok(StatusCode::OK, json)
}

/// `PATCH /admin/clients/{id}`: absent members stay as they are; `"token_ttl": null`
/// goes back to the server default, `"audiences": []` to the server's audience.
#[derive(Deserialize)]
struct UpdateClient {
    name: Option<String>,
    scope: Option<String>,
    audiences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    token_ttl: Option<Option<u64>>,
    require_dpop: Option<bool>,
    /// Switch a client without a secret to another such method.
    token_endpoint_auth_method: Option<String>,
    #[serde(flatten)]
    credentials: CredentialFields,
    /// Members not listed above: refused, so a misspelt one is not silently ignored
    /// (serde's `deny_unknown_fields` does not work beside `flatten`).
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, Value>,
}

/// A member that is present, even as `null`: `Some(None)`; absent is `None` (by default).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

async fn update_client(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Json(change): Json<UpdateClient>,
) -> Reply {
    if let Some(name) = change.unknown.keys().next() {
        return Err(invalid(&format!("unknown member {name:?}")));
    }
    let credentials = secretless::credentials_for_method(
        change.token_endpoint_auth_method.as_deref(),
        change.credentials.given()?,
    )?;
    let update = ClientUpdate {
        name: change.name,
        scope: change.scope,
        audiences: change.audiences,
        token_ttl_secs: change.token_ttl,
        require_dpop: change.require_dpop,
    };
    let client = secretless::update_client_credentials(
        state.store.as_ref(),
        &id,
        &update,
        credentials.as_ref(),
        state.key_fetch_policy,
        &actor,
    )
    .await?;
    ok(StatusCode::OK, views::client_json(&client))
}

async fn list_trust_rules(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Reply {
    operations::existing_client(state.store.as_ref(), &id).await?;
    let rules = state.store.list_trust_rules(Some(&id)).await?;
    ok(
        StatusCode::OK,
        Value::from_iter(rules.iter().map(views::trust_rule_json)),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddTrustRule {
    issuer: String,
    subject: String,
    audience: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
}

async fn add_trust_rule(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Json(rule): Json<AddTrustRule>,
) -> Reply {
    let new = NewTrustRule {
        keys: keys_input(rule.jwks, rule.jwks_uri)?,
        issuer: rule.issuer,
        subject: rule.subject,
        audience: rule.audience,
    };
    let rule = secretless::trust(
        state.store.as_ref(),
        &id,
        &new,
        state.key_fetch_policy,
        &actor,
    )
    .await?;
    ok(StatusCode::CREATED, views::trust_rule_json(&rule))
}

async fn remove_trust_rule(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path((id, rule_id)): Path<(String, String)>,
) -> Reply {
    secretless::untrust(state.store.as_ref(), &id, &rule_id, &actor).await?;
    ok(
        StatusCode::OK,
        json!({"client_id": id, "rule_id": rule_id, "removed": true}),
    )
}

#[derive(Deserialize, Default)]
struct DisableAt {
    at: Option<String>,
}

async fn disable_client(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Option<Json<DisableAt>>,
) -> Reply {
    let at = body
        .and_then(|Json(b)| b.at)
        .map(|text| {
            OffsetDateTime::parse(&text, &Rfc3339)
                .map_err(|_| invalid("at must be an RFC 3339 time"))
        })
        .transpose()?;
    let client = operations::disable_client(state.store.as_ref(), &id, at, &actor).await?;
    ok(StatusCode::OK, views::client_json(&client))
}

async fn enable_client(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Reply {
    let client = operations::enable_client(state.store.as_ref(), &id, &actor).await?;
    ok(StatusCode::OK, views::client_json(&client))
}

/// `POST /admin/clients/{id}/rotate-secret`: `grace` (seconds the old secrets keep
/// working; 0 or absent: none) and `secret_ttl` (seconds; absent: no expiry).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateSecret {
    #[serde(default)]
    grace: u64,
    secret_ttl: Option<u64>,
}

async fn rotate_secret(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Option<Json<RotateSecret>>,
) -> Reply {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let rotation = Rotation {
        grace_secs: body.grace,
        secret_ttl_secs: body.secret_ttl,
    };
    let (client, secret) =
        secrets::rotate_client_secret(state.store.as_ref(), &id, &rotation, &actor).await?;
    ok(StatusCode::OK, views::client_secret_json(&client, &secret))
}

/// `POST /admin/clients/{id}/secrets`: `secret_ttl` in seconds (absent: no expiry).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AddSecret {
    secret_ttl: Option<u64>,
}

async fn add_secret(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Option<Json<AddSecret>>,
) -> Reply {
    let ttl = body.and_then(|Json(b)| b.secret_ttl);
    let made = secrets::add_client_secret(state.store.as_ref(), &id, ttl, &actor).await?;
    ok(
        StatusCode::CREATED,
        views::client_secret_json(&made.client, &made.secret),
    )
}

async fn revoke_secret(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path((id, secret_id)): Path<(String, String)>,
) -> Reply {
    let client =
        secrets::revoke_client_secret(state.store.as_ref(), &id, &secret_id, &actor).await?;
    ok(StatusCode::OK, views::client_json(&client))
}

async fn list_keys(State(state): State<Arc<AdminState>>) -> Reply {
    let keys = state.store.list_keys().await?;
    let now = OffsetDateTime::now_utc();
    let schedule = KeySchedule::new(&keys);
    ok(
        StatusCode::OK,
        Value::from_iter(schedule.all_keys().map(|k| views::key_json(k, now))),
    )
}

async fn revoke_key(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(kid): Path<String>,
) -> Reply {
    let done = operations::revoke_key(
        state.store.as_ref(),
        &state.master,
        &kid,
        state.webhook_retry_window,
        &actor,
    )
    .await?;
    state.webhook_waker.notify_one();
    ok(StatusCode::OK, views::revocation_json(&done))
}

#[derive(Deserialize, Default)]
struct RotateKey {
    #[serde(default)]
    now: bool,
}

async fn rotate_key(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    body: Option<Json<RotateKey>>,
) -> Reply {
    let now = body.map(|Json(b)| b.now).unwrap_or_default();
    let rotation = operations::rotate_key_by(
        state.store.as_ref(),
        &state.master,
        state.key_activation_delay,
        now,
        &actor,
    )
    .await?;
    ok(StatusCode::OK, views::rotation_json(&rotation))
}

#[derive(Deserialize)]
struct EventFilter {
    app: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

async fn list_events(
    State(state): State<Arc<AdminState>>,
    Query(filter): Query<EventFilter>,
) -> Reply {
    let status = match filter.status.as_deref() {
        None => None,
        Some(s) => Some(
            EventStatus::parse(s)
                .ok_or_else(|| invalid("status is pending, delivered or failed"))?,
        ),
    };
    let limit = filter.limit.unwrap_or(100).min(1000);
    let events = state
        .store
        .list_webhook_events(filter.app.as_deref(), status, limit)
        .await?;
    ok(
        StatusCode::OK,
        Value::from_iter(events.iter().map(views::event_json)),
    )
}

#[derive(Deserialize)]
struct SendEvent {
    app_id: String,
    event: String,
    #[serde(default = "empty_object")]
    data: Value,
}

fn empty_object() -> Value {
    json!({})
}

async fn send_event(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Json(send): Json<SendEvent>,
) -> Reply {
    let event = operations::send_webhook_event(
        state.store.as_ref(),
        &send.app_id,
        &send.event,
        &send.data,
        state.webhook_retry_window,
        &actor,
    )
    .await?;
    state.webhook_waker.notify_one();
    ok(StatusCode::CREATED, views::event_json(&event))
}

async fn retry_event(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Reply {
    let event = operations::retry_webhook_event(
        state.store.as_ref(),
        &id,
        state.webhook_retry_window,
        &actor,
    )
    .await?;
    state.webhook_waker.notify_one();
    ok(StatusCode::OK, views::event_json(&event))
}

/// `GET /admin/audit`: RFC 3339 `since` (inclusive) and `until` (exclusive), exact
/// `target` and `actor`, `limit` (default 100, at most 1000) and the `cursor` of the
/// previous page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    since: Option<String>,
    until: Option<String>,
    target: Option<String>,
    actor: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_audit(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<AuditQuery>,
) -> Reply {
    let time = |name: &str, text: Option<String>| {
        text.map(|t| {
            OffsetDateTime::parse(&t, &Rfc3339).map_err(|_| {
                ApiError::validation(&["query", name], "must be an RFC 3339 time", "value_error")
            })
        })
        .transpose()
    };
    let filter = AuditFilter {
        since: time("since", query.since)?,
        until: time("until", query.until)?,
        target: query.target,
        actor: query.actor,
        before_seq: query
            .cursor
            .as_deref()
            .map(audit::parse_cursor)
            .transpose()?,
        limit: query.limit.unwrap_or(100),
    };
    let (records, next_cursor) = audit::list(state.store.as_ref(), &filter).await?;
    ok(
        StatusCode::OK,
        json!({
            "records": records.iter().map(record_json).collect::<Vec<_>>(),
            "next_cursor": next_cursor,
        }),
    )
}
