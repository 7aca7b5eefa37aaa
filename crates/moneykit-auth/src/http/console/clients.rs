//! Clients: the filtered list, creating one (its secret shown once), and one client's
//! page — its settings, secrets, credentials, trust rules, and disabling or enabling it.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Frame, Page, Signed, done, duration_field, given, html, split, unavailable};
use crate::domain::assertions::TrustRule;
use crate::domain::certificates::TlsIdentity;
use crate::domain::clients::{App, Client, ClientAuth};
use crate::domain::secrets::StoredSecret;
use crate::domain::time::rfc3339;
use crate::http::admin_access::Area;
use crate::http::state::AdminState;
use crate::operations::secretless::{self, KeysInput, NewTrustRule, SecretlessAuth};
use crate::operations::secrets::{self, Rotation};
use crate::operations::{self, AdminError, ClientUpdate, NewClient, views};

/// The list's filters; blank is "any".
#[derive(Deserialize, Default, Clone)]
pub(super) struct Filter {
    app: Option<String>,
    status: Option<String>,
    method: Option<String>,
}

/// The authentication methods a client may have, for the filter and the create form.
const METHODS: &[&str] = &[
    "client_secret_basic",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
];

/// The certificate identities a `tls_client_auth` client may be registered with.
const TLS_IDENTITIES: &[(&str, &str)] = &[
    ("subject_dn", "Subject DN"),
    ("san_dns", "SAN DNS name"),
    ("san_uri", "SAN URI"),
    ("san_email", "SAN e-mail"),
    ("san_ip", "SAN IP address"),
];

/// A client as a row of the list.
struct Row {
    client: Client,
    status: &'static str,
}

#[derive(Template)]
#[template(path = "console/clients.html")]
struct ClientsPage {
    frame: Frame,
    rows: Vec<Row>,
    apps: Vec<App>,
    filter: Filter,
    form: NewClientForm,
    may_change: bool,
    methods: &'static [&'static str],
    identities: &'static [(&'static str, &'static str)],
}

pub(super) async fn list(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Query(filter): Query<Filter>,
) -> Page {
    list_page(&state, &signed, filter, None, NewClientForm::default()).await
}

async fn list_page(
    state: &AdminState,
    signed: &Signed,
    filter: Filter,
    error: Option<AdminError>,
    form: NewClientForm,
) -> Page {
    let store = state.store.as_ref();
    let clients = store
        .list_clients(given(&filter.app))
        .await
        .map_err(unavailable)?;
    let apps = store.list_apps().await.map_err(unavailable)?;
    let now = OffsetDateTime::now_utc();
    let rows = clients
        .into_iter()
        .map(|client| Row {
            status: views::client_status(&client, now),
            client,
        })
        .filter(|row| given(&filter.status).is_none_or(|s| s == row.status))
        .filter(|row| given(&filter.method).is_none_or(|m| m == row.client.auth.method()))
        .collect();
    let (status, error) = split(error);
    let page = ClientsPage {
        frame: Frame::new(state, signed, "clients", error),
        rows,
        apps,
        filter,
        form,
        may_change: signed.may(Area::Clients, true),
        methods: METHODS,
        identities: TLS_IDENTITIES,
    };
    html(status, &page)
}

/// The create form, kept to show again beside a refusal.
#[derive(Deserialize, Default)]
pub(super) struct NewClientForm {
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    audiences: String,
    token_ttl: Option<String>,
    secret_ttl: Option<String>,
    #[serde(default)]
    method: String,
    require_dpop: Option<String>,
    #[serde(flatten)]
    credentials: CredentialFields,
}

impl NewClientForm {
    fn new_client(&self) -> Result<NewClient, AdminError> {
        Ok(NewClient {
            app_id: self.app_id.trim().to_owned(),
            name: match self.name.trim() {
                "" => "client".to_owned(),
                name => name.to_owned(),
            },
            scope: self.scope.trim().to_owned(),
            audiences: words(&self.audiences),
            token_ttl_secs: duration_field("token lifetime", &self.token_ttl)?,
            require_dpop: self.require_dpop.is_some(),
            secret_ttl_secs: duration_field("secret lifetime", &self.secret_ttl)?,
        })
    }
}

/// The credential fields of the create and edit forms: those of the method chosen count.
#[derive(Deserialize, Default)]
pub(super) struct CredentialFields {
    jwks: Option<String>,
    jwks_uri: Option<String>,
    tls_identity_kind: Option<String>,
    tls_identity: Option<String>,
    certificate: Option<String>,
}

/// What the form gives for `method` (blank: keep or imply), checked by the same rule as
/// the CLI and the admin API ([`secretless::credentials_for_method`]).
fn credentials(
    method: &str,
    fields: &CredentialFields,
) -> Result<Option<SecretlessAuth>, AdminError> {
    let method = Some(method.trim()).filter(|m| !m.is_empty());
    let given = match method {
        Some("private_key_jwt") => KeysInput::either(given(&fields.jwks), given(&fields.jwks_uri))?
            .map(SecretlessAuth::Keys),
        Some("tls_client_auth") => match given(&fields.tls_identity) {
            Some(value) => Some(SecretlessAuth::Tls(tls_identity(
                given(&fields.tls_identity_kind).unwrap_or("subject_dn"),
                value,
            )?)),
            None => None,
        },
        Some("self_signed_tls_client_auth") => {
            given(&fields.certificate).map(|pem| SecretlessAuth::SelfSigned(pem.to_owned()))
        }
        _ => None,
    };
    secretless::credentials_for_method(method, given)
}

fn tls_identity(kind: &str, value: &str) -> Result<TlsIdentity, AdminError> {
    let value = value.to_owned();
    Ok(match kind {
        "subject_dn" => TlsIdentity::SubjectDn(value),
        "san_dns" => TlsIdentity::Dns(value),
        "san_uri" => TlsIdentity::Uri(value),
        "san_email" => TlsIdentity::Email(value),
        "san_ip" => TlsIdentity::Ip(value.parse().map_err(|_| {
            AdminError::Invalid(format!(
                "tls_client_auth_san_ip: {value:?} is not an IP address"
            ))
        })?),
        other => {
            return Err(AdminError::Invalid(format!(
                "unknown certificate identity {other:?}"
            )));
        }
    })
}

/// Whitespace- or comma-separated words.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Template)]
#[template(path = "console/secret.html")]
struct SecretShown {
    frame: Frame,
    client: Client,
    secret: String,
    secret_id: String,
    expires: String,
    what: &'static str,
}

/// A new secret, shown this once, on a page nothing caches (`Cache-Control: no-store`).
fn show_secret(
    state: &AdminState,
    signed: &Signed,
    client: Client,
    secret: &crate::domain::secrets::ClientSecret,
    what: &'static str,
) -> Page {
    let json = views::client_secret_json(&client, secret);
    let page = SecretShown {
        frame: Frame::new(state, signed, "clients", None),
        secret: secret.expose().to_owned(),
        secret_id: json["secret_id"].as_str().unwrap_or_default().to_owned(),
        expires: json["secret_expires_at"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        client,
        what,
    };
    html(StatusCode::OK, &page)
}

pub(super) async fn create(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Form(form): Form<NewClientForm>,
) -> Page {
    let store = state.store.as_ref();
    let checked = form
        .new_client()
        .and_then(|new| Ok((new, credentials(&form.method, &form.credentials)?)));
    let created = match checked {
        Err(error) => Err(error),
        Ok((new, None)) => operations::create_client(store, &new, &signed.actor)
            .await
            .map(|(client, secret)| (client, Some(secret))),
        Ok((new, Some(auth))) => secretless::create_secretless_client(
            store,
            &new,
            &auth,
            state.key_fetch_policy,
            &signed.actor,
        )
        .await
        .map(|client| (client, None)),
    };
    match created {
        Ok((client, Some(secret))) => show_secret(&state, &signed, client, &secret, "created"),
        Ok((client, None)) => {
            let to = format!("/console/clients/{}", client.id);
            done(
                &state,
                &signed,
                &to,
                format!("Client {} created.", client.id),
            )
        }
        Err(error) => list_page(&state, &signed, Filter::default(), Some(error), form).await,
    }
}

/// A secret as a row of the client's page (never its value or hash).
struct SecretRow {
    id: String,
    status: &'static str,
    created: String,
    expires: String,
    last_used: String,
}

impl SecretRow {
    fn of(secret: &StoredSecret, now: OffsetDateTime) -> Self {
        let time = |t: Option<OffsetDateTime>| t.map(rfc3339).unwrap_or_default();
        Self {
            id: secret.id.clone(),
            status: if secret.is_live(now) {
                "active"
            } else {
                "expired"
            },
            created: rfc3339(secret.created_at),
            expires: time(secret.expires_at),
            last_used: time(secret.last_used_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/client.html")]
struct ClientPage {
    frame: Frame,
    client: Client,
    status: &'static str,
    created: String,
    disabled_at: String,
    audiences: String,
    token_ttl: String,
    secrets: Vec<SecretRow>,
    rules: Vec<TrustRule>,
    credential: String,
    may_change: bool,
    methods: &'static [&'static str],
    identities: &'static [(&'static str, &'static str)],
}

pub(super) async fn show(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Page {
    client_page(&state, &signed, &id, None).await
}

async fn client_page(
    state: &AdminState,
    signed: &Signed,
    id: &str,
    error: Option<AdminError>,
) -> Page {
    let store = state.store.as_ref();
    let client = store
        .get_client(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| unavailable(AdminError::UnknownClient(id.to_owned())))?;
    let rules = store
        .list_trust_rules(Some(id))
        .await
        .map_err(unavailable)?;
    let now = OffsetDateTime::now_utc();
    let secrets = match &client.auth {
        ClientAuth::Secret(secrets) => secrets.iter().map(|s| SecretRow::of(s, now)).collect(),
        _ => Vec::new(),
    };
    // What the client authenticates with, as the JSON view names it (never a secret).
    let view = views::client_json(&client);
    let credential = view
        .as_object()
        .into_iter()
        .flatten()
        .find(|(member, _)| {
            member.starts_with("jwks_")
                || member.starts_with("tls_client_auth_")
                || *member == "certificate_thumbprints"
        })
        .map(|(member, value)| format!("{member}: {value}"))
        .unwrap_or_default();
    let (status, error) = split(error);
    let page = ClientPage {
        frame: Frame::new(state, signed, "clients", error),
        status: views::client_status(&client, now),
        created: rfc3339(client.created_at),
        disabled_at: client.disabled_at.map(rfc3339).unwrap_or_default(),
        audiences: client.audiences.join(" "),
        token_ttl: client
            .token_ttl_secs
            .map(|s| s.to_string())
            .unwrap_or_default(),
        client,
        secrets,
        rules,
        credential,
        may_change: signed.may(Area::Clients, true),
        methods: METHODS,
        identities: TLS_IDENTITIES,
    };
    html(status, &page)
}

/// The edit form: blank fields stay as they are, except the token lifetime (blank: the
/// server's default) and the audiences (blank: the server's audience).
#[derive(Deserialize)]
pub(super) struct EditForm {
    name: Option<String>,
    scope: Option<String>,
    audiences: Option<String>,
    token_ttl: Option<String>,
    require_dpop: Option<String>,
    #[serde(default)]
    method: String,
    #[serde(flatten)]
    credentials: CredentialFields,
}

pub(super) async fn update(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<EditForm>,
) -> Page {
    let checked = (|| {
        let update = ClientUpdate {
            name: given(&form.name).map(str::to_owned),
            scope: form.scope.as_deref().map(|s| s.trim().to_owned()),
            audiences: form.audiences.as_deref().map(words),
            token_ttl_secs: Some(duration_field("token lifetime", &form.token_ttl)?),
            require_dpop: Some(form.require_dpop.is_some()),
        };
        let credentials = credentials(&form.method, &form.credentials)?;
        Ok::<_, AdminError>((update, credentials))
    })();
    let result = match checked {
        Ok((update, credentials)) => {
            secretless::update_client_credentials(
                state.store.as_ref(),
                &id,
                &update,
                credentials.as_ref(),
                state.key_fetch_policy,
                &signed.actor,
            )
            .await
        }
        Err(error) => Err(error),
    };
    after(
        &state,
        &signed,
        &id,
        result.map(|_| "Client saved.".to_owned()),
    )
    .await
}

/// Back to the client's page: with a notice after a change, or with the refusal in place.
async fn after(
    state: &AdminState,
    signed: &Signed,
    id: &str,
    result: Result<String, AdminError>,
) -> Page {
    match result {
        Ok(notice) => done(state, signed, &format!("/console/clients/{id}"), notice),
        Err(error) => client_page(state, signed, id, Some(error)).await,
    }
}

#[derive(Deserialize)]
pub(super) struct DisableForm {
    at: Option<String>,
}

pub(super) async fn disable(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<DisableForm>,
) -> Page {
    let at = given(&form.at)
        .map(|text| {
            OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                AdminError::Invalid(format!(
                    "{text:?} is not an RFC 3339 time such as 2027-01-31T18:00:00Z"
                ))
            })
        })
        .transpose();
    let result = match at {
        Ok(at) => operations::disable_client(state.store.as_ref(), &id, at, &signed.actor)
            .await
            .map(|client| match client.disabled_at {
                Some(when) if at.is_some() => {
                    format!("Client will be disabled at {}.", rfc3339(when))
                }
                _ => "Client disabled.".to_owned(),
            }),
        Err(error) => Err(error),
    };
    after(&state, &signed, &id, result).await
}

pub(super) async fn enable(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Page {
    let result = operations::enable_client(state.store.as_ref(), &id, &signed.actor).await;
    after(
        &state,
        &signed,
        &id,
        result.map(|_| "Client enabled.".to_owned()),
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct SecretForm {
    grace: Option<String>,
    secret_ttl: Option<String>,
}

pub(super) async fn rotate_secret(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<SecretForm>,
) -> Page {
    let rotation = duration_field("grace", &form.grace).and_then(|grace| {
        Ok(Rotation {
            grace_secs: grace.unwrap_or(0),
            secret_ttl_secs: duration_field("secret lifetime", &form.secret_ttl)?,
        })
    });
    let store = state.store.as_ref();
    let rotated = match rotation {
        Ok(rotation) => secrets::rotate_client_secret(store, &id, &rotation, &signed.actor).await,
        Err(error) => Err(error),
    };
    match rotated {
        Ok((client, secret)) => show_secret(&state, &signed, client, &secret, "rotated"),
        Err(error) => client_page(&state, &signed, &id, Some(error)).await,
    }
}

pub(super) async fn add_secret(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<SecretForm>,
) -> Page {
    let store = state.store.as_ref();
    let added = match duration_field("secret lifetime", &form.secret_ttl) {
        Ok(ttl) => secrets::add_client_secret(store, &id, ttl, &signed.actor).await,
        Err(error) => Err(error),
    };
    match added {
        Ok(made) => show_secret(&state, &signed, made.client, &made.secret, "added"),
        Err(error) => client_page(&state, &signed, &id, Some(error)).await,
    }
}

pub(super) async fn revoke_secret(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path((id, secret_id)): Path<(String, String)>,
) -> Page {
    let store = state.store.as_ref();
    let result = secrets::revoke_client_secret(store, &id, &secret_id, &signed.actor).await;
    let notice = format!("Secret {secret_id} revoked.");
    after(&state, &signed, &id, result.map(|_| notice)).await
}

#[derive(Deserialize)]
pub(super) struct TrustRuleForm {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    subject: String,
    audience: Option<String>,
    jwks: Option<String>,
    jwks_uri: Option<String>,
}

pub(super) async fn add_trust_rule(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<TrustRuleForm>,
) -> Page {
    let result = match KeysInput::either(given(&form.jwks), given(&form.jwks_uri)) {
        Ok(keys) => {
            let rule = NewTrustRule {
                keys,
                issuer: form.issuer.trim().to_owned(),
                subject: form.subject.trim().to_owned(),
                audience: given(&form.audience).map(str::to_owned),
            };
            let store = state.store.as_ref();
            secretless::trust(store, &id, &rule, state.key_fetch_policy, &signed.actor)
                .await
                .map(|rule| format!("Trust rule {} added.", rule.id))
        }
        Err(error) => Err(error),
    };
    after(&state, &signed, &id, result).await
}

pub(super) async fn remove_trust_rule(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path((id, rule_id)): Path<(String, String)>,
) -> Page {
    let store = state.store.as_ref();
    let result = secretless::untrust(store, &id, &rule_id, &signed.actor).await;
    let notice = format!("Trust rule {rule_id} removed.");
    after(&state, &signed, &id, result.map(|()| notice)).await
}
