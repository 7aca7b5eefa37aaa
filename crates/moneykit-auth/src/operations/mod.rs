//! Administrative operations: what the CLI, the admin API and the webhook trigger do to
//! apps, clients, keys and webhook events — one implementation, so they cannot disagree.
//! [`secretless`] holds the ones for clients without secrets: `private_key_jwt` keys and
//! the trust rules of federated workloads.
//! Each validates its input fully before writing, so bad input changes nothing, and each
//! is one store call or a guarded sequence that is safe to retry. [`views`] are the JSON
//! shapes both the CLI's `--json` and the admin API print.
//!
//! Every change is logged here at info, once, with what changed, which object and who
//! asked ([`Via`]); never a secret, nor a webhook URL (it may carry credentials).
//!
//! May import `store`, `domain`, `net` and `crypto`; the engine calls in here (scheduled
//! key rotation), never the reverse.

pub mod audit;
pub mod audit_log;
pub mod secretless;
pub mod secrets;
pub mod views;

pub use audit::Actor;
use audit::Change;
use serde_json::Value;

use time::{Duration, OffsetDateTime};

use crate::crypto::{KeyPair, MasterKey};
use crate::domain::MAX_TOKEN_TTL_SECS;
use crate::domain::audience::parse_audiences;
use crate::domain::clients::{App, Client, ClientAuth};
use crate::domain::events::{EventStatus, WebhookEvent};
use crate::domain::ids::{new_app_id, new_client_id, new_key_id};
use crate::domain::payloads;
use crate::domain::scope::Scopes;
use crate::domain::secrets::{ClientSecret, StoredSecret};
use crate::domain::signing_keys::KeyRecord;
use crate::domain::signing_keys::KeySchedule;
use crate::domain::time::{millis, now_ms, rfc3339};
use crate::net::guard::{self, TargetPolicy};
use crate::store::{InsertKeyIf, Store, StoreError};

/// Why an administrative operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No app with this id.
    #[error("unknown app {0}")]
    UnknownApp(String),
    /// No client with this id.
    #[error("unknown client {0}")]
    UnknownClient(String),
    /// No signing key with this kid.
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    /// No webhook event with this id.
    #[error("unknown webhook event {0}")]
    UnknownEvent(String),
    /// The app has no webhook URL to deliver to.
    #[error("app {0} has no webhook URL (set one with `moneykit-auth apps set-webhook`)")]
    NoWebhookUrl(String),
    /// The app has as many pending events as it may have.
    #[error("app {app_id} already has {max} pending webhook events, the most it may have")]
    TooManyPending {
        /// The app.
        app_id: String,
        /// The cap.
        max: u32,
    },
    /// Input that is not acceptable, with the reason.
    #[error("{0}")]
    Invalid(String),
    /// The caller lacks the administrative scope this needs, with what it lacks.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownApp(id) => AdminError::UnknownApp(id),
            StoreError::UnknownClient(id) => AdminError::UnknownClient(id),
            other => AdminError::Store(other),
        }
    }
}

/// Which door an administrative change came through: the `via` of its log line and of
/// its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An admin command (`moneykit-auth apps …`, `clients …`, `keys …`).
    Cli,
    /// The admin API.
    AdminApi,
    /// The admin console in a browser (`/console` on the admin listener).
    Console,
    /// `serve --demo` setting up its demo app and client.
    Demo,
    /// The server itself (announcements it queues).
    Server,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::Cli => "cli",
            Via::AdminApi => "admin_api",
            Via::Console => "console",
            Via::Demo => "demo",
            Via::Server => "server",
        })
    }
}

/// The current time in whole seconds: what the store keeps, so what a command prints
/// right after a write matches what it reads back later.
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Checks a display name: non-empty, at most 200 characters, no control characters.
pub(crate) fn check_name(what: &str, name: &str) -> Result<String, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(format!(
            "{what} name must be 1-200 characters without control characters"
        )));
    }
    Ok(name.to_owned())
}

/// Checks a token lifetime: 1 s to [`MAX_TOKEN_TTL_SECS`].
pub fn check_token_ttl(secs: u64) -> Result<u32, AdminError> {
    u32::try_from(secs)
        .ok()
        .filter(|s| (1..=MAX_TOKEN_TTL_SECS).contains(s))
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "token lifetime must be between 1 and {MAX_TOKEN_TTL_SECS} seconds"
            ))
        })
}

/// Creates an app.
pub async fn create_app(store: &dyn Store, name: &str, actor: &Actor) -> Result<App, AdminError> {
    let created = async {
        let app = App {
            id: new_app_id(),
            name: check_name("app", name)?,
            created_at: now(),
            webhook_url: None,
        };
        store.insert_app(&app).await?;
        let change = Change::of(&app.id, Value::Null, views::app_json(&app));
        Ok((app, change))
    };
    let app = audit::finish(store, actor, "app.create", None, created.await).await?;
    tracing::info!(app_id = %app.id, name = app.name.as_str(), via = %actor.via, "app created");
    Ok(app)
}

/// What a new client should be.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// The app it belongs to.
    pub app_id: String,
    /// Display name.
    pub name: String,
    /// Space-separated allowed scopes.
    pub scope: String,
    /// Audiences it may ask for, the first being its default; empty: the server's.
    pub audiences: Vec<String>,
    /// Token lifetime override in seconds.
    pub token_ttl_secs: Option<u64>,
    /// Whether its token requests must carry a DPoP proof.
    pub require_dpop: bool,
    /// Lifetime of its first secret in seconds; `None`: it never expires.
    pub secret_ttl_secs: Option<u64>,
}

fn check_scope(scope: &str) -> Result<Scopes, AdminError> {
    Scopes::parse(scope).map_err(|e| AdminError::Invalid(e.to_string()))
}

fn check_audiences(audiences: &[String]) -> Result<Vec<String>, AdminError> {
    parse_audiences(audiences).map_err(|e| AdminError::Invalid(e.to_string()))
}

/// Creates a client with a fresh secret; the secret is returned once and not stored.
pub async fn create_client(
    store: &dyn Store,
    new: &NewClient,
    actor: &Actor,
) -> Result<(Client, ClientSecret), AdminError> {
    let secret = ClientSecret::generate();
    let ttl = new
        .secret_ttl_secs
        .map(secrets::check_secret_ttl)
        .transpose();
    let auth = ttl.map(|ttl| ClientAuth::Secret(vec![StoredSecret::new(&secret, now(), ttl)]));
    let client = match auth {
        Ok(auth) => insert_new_client(store, new, auth, actor).await?,
        Err(error) => {
            return audit::finish(store, actor, "client.create", None, Err(error)).await;
        }
    };
    Ok((client, secret))
}

/// Checks `new` and stores it as a client authenticating with `auth`, on behalf of
/// `actor` (who must hold any admin scope it gives).
pub(crate) async fn insert_new_client(
    store: &dyn Store,
    new: &NewClient,
    auth: ClientAuth,
    actor: &Actor,
) -> Result<Client, AdminError> {
    let created = insert_checked_client(store, new, auth, actor)
        .await
        .map(|client| {
            let change = Change::of(&client.id, Value::Null, views::client_json(&client));
            (client, change)
        });
    let client = audit::finish(store, actor, "client.create", None, created).await?;
    tracing::info!(
        client_id = %client.id,
        app_id = %client.app_id,
        scope = client.scopes.as_str(),
        auth_method = client.auth.method(),
        via = %actor.via,
        "client created"
    );
    Ok(client)
}

async fn insert_checked_client(
    store: &dyn Store,
    new: &NewClient,
    auth: ClientAuth,
    actor: &Actor,
) -> Result<Client, AdminError> {
    let scopes = check_scope(&new.scope)?;
    actor.grants.may_confer(&scopes)?;
    let audiences = check_audiences(&new.audiences)?;
    let token_ttl_secs = new.token_ttl_secs.map(check_token_ttl).transpose()?;
    let name = check_name("client", &new.name)?;
    if store.get_app(&new.app_id).await?.is_none() {
        return Err(AdminError::UnknownApp(new.app_id.clone()));
    }
    let client = Client {
        id: new_client_id(),
        app_id: new.app_id.clone(),
        name,
        scopes,
        audiences,
        token_ttl_secs,
        auth,
        created_at: now(),
        disabled_at: None,
        require_dpop: new.require_dpop,
    };
    store.insert_client(&client).await?;
    Ok(client)
}

pub(crate) async fn existing_client(store: &dyn Store, id: &str) -> Result<Client, AdminError> {
    store
        .get_client(id)
        .await?
        .ok_or_else(|| AdminError::UnknownClient(id.to_owned()))
}

/// A client `actor` may manage: one whose admin scopes (if any) it holds, so nobody takes
/// control of a more powerful client by changing its credentials.
pub(crate) async fn managed_client(
    store: &dyn Store,
    id: &str,
    actor: &Actor,
) -> Result<Client, AdminError> {
    let client = existing_client(store, id).await?;
    actor.grants.may_confer(&client.scopes)?;
    Ok(client)
}

/// Changes to a client; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New allowed scopes, space-separated (replaces the list).
    pub scope: Option<String>,
    /// New audiences (replaces the list; empty: the server's default).
    pub audiences: Option<Vec<String>>,
    /// New token lifetime: `Some(None)` goes back to the server default.
    pub token_ttl_secs: Option<Option<u64>>,
    /// Whether its token requests must carry a DPoP proof.
    pub require_dpop: Option<bool>,
}

impl ClientUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changed().is_empty()
    }

    /// The fields this update sets, comma-separated, for its log line.
    fn changed(&self) -> String {
        let fields = [
            ("name", self.name.is_some()),
            ("scope", self.scope.is_some()),
            ("audiences", self.audiences.is_some()),
            ("token_ttl", self.token_ttl_secs.is_some()),
            ("require_dpop", self.require_dpop.is_some()),
        ];
        let set: Vec<&str> = fields.iter().filter(|f| f.1).map(|f| f.0).collect();
        set.join(",")
    }
}

/// Changes a client's name, scopes, audiences, token lifetime or DPoP requirement. Running servers pick the
/// change up like any other; a token already issued that claims a scope or audience the
/// client no longer has is refused from then on (see `Engine::authorize_bearer`).
pub async fn update_client(
    store: &dyn Store,
    id: &str,
    update: &ClientUpdate,
    actor: &Actor,
) -> Result<Client, AdminError> {
    let result = change_client(store, id, update, actor).await;
    let client = audit::finish(store, actor, "client.update", Some(id), result).await?;
    tracing::info!(
        client_id = %client.id,
        changed = %update.changed(),
        via = %actor.via,
        "client updated"
    );
    Ok(client)
}

pub(crate) async fn change_client(
    store: &dyn Store,
    id: &str,
    update: &ClientUpdate,
    actor: &Actor,
) -> Result<(Client, Change), AdminError> {
    let mut client = managed_client(store, id, actor).await?;
    let before = views::client_json(&client);
    if let Some(name) = &update.name {
        client.name = check_name("client", name)?;
    }
    if let Some(scope) = &update.scope {
        client.scopes = check_scope(scope)?;
        actor.grants.may_confer(&client.scopes)?;
    }
    if let Some(audiences) = &update.audiences {
        client.audiences = check_audiences(audiences)?;
    }
    if let Some(ttl) = update.token_ttl_secs {
        client.token_ttl_secs = ttl.map(check_token_ttl).transpose()?;
    }
    if let Some(require) = update.require_dpop {
        client.require_dpop = require;
    }
    if !store.update_client(&client).await? {
        return Err(AdminError::UnknownClient(id.to_owned()));
    }
    let change = Change::of(&client.id, before, views::client_json(&client));
    Ok((client, change))
}

/// Disables a client at `at` (now when `None`); a future time schedules it.
pub async fn disable_client(
    store: &dyn Store,
    id: &str,
    at: Option<OffsetDateTime>,
    actor: &Actor,
) -> Result<Client, AdminError> {
    let at = at.unwrap_or_else(OffsetDateTime::now_utc);
    let result = set_disabled_at(store, id, Some(at), actor).await;
    let client = audit::finish(store, actor, "client.disable", Some(id), result).await?;
    tracing::info!(client_id = %id, at = %rfc3339(at), via = %actor.via, "client disabled");
    Ok(client)
}

/// Enables a client again, cancelling any scheduled disablement.
pub async fn enable_client(
    store: &dyn Store,
    id: &str,
    actor: &Actor,
) -> Result<Client, AdminError> {
    let result = set_disabled_at(store, id, None, actor).await;
    let client = audit::finish(store, actor, "client.enable", Some(id), result).await?;
    tracing::info!(client_id = %id, via = %actor.via, "client enabled");
    Ok(client)
}

async fn set_disabled_at(
    store: &dyn Store,
    id: &str,
    at: Option<OffsetDateTime>,
    actor: &Actor,
) -> Result<(Client, Change), AdminError> {
    let before = managed_client(store, id, actor).await?;
    if !store.set_client_disabled_at(id, at).await? {
        return Err(AdminError::UnknownClient(id.to_owned()));
    }
    let after = existing_client(store, id).await?;
    let change = Change::of(id, views::client_json(&before), views::client_json(&after));
    Ok((after, change))
}

/// A new signing key sealed under `master`, created at `now`, signing from
/// `activates_at`; not yet stored.
pub fn new_key_record(
    master: &MasterKey,
    now: OffsetDateTime,
    activates_at: OffsetDateTime,
) -> KeyRecord {
    let kid = new_key_id();
    let pkcs8 = KeyPair::generate_pkcs8();
    let pair = KeyPair::from_pkcs8(&kid, &pkcs8).expect("a freshly generated key parses");
    KeyRecord {
        seq: 0,
        public_key: pair.public_key_bytes(),
        sealed_private_key: master.seal(&kid, &pkcs8),
        kid,
        created_at: now,
        activates_at,
        revoked_at: None,
    }
}

/// Creates the first signing key, active at once, unless any key exists. Returns the key
/// if this call created it.
pub async fn ensure_first_key(
    store: &dyn Store,
    master: &MasterKey,
) -> Result<Option<KeyRecord>, AdminError> {
    let now = now();
    let key = new_key_record(master, now, now);
    Ok(store
        .insert_key(&key, InsertKeyIf::NoKeys)
        .await?
        .then_some(key))
}

/// What `keys rotate` did.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// A new key was published; it signs from `activates_at`.
    Published(KeyRecord),
    /// A next key was already published and was left alone.
    AlreadyPending(KeyRecord),
    /// The pending next key was made active at once.
    ActivatedPending(KeyRecord),
}

/// [`rotate_key`] asked for by an operator, logged. (Scheduled rotation calls
/// [`rotate_key`] and logs its own line.)
pub async fn rotate_key_by(
    store: &dyn Store,
    master: &MasterKey,
    activation_delay: Duration,
    immediately: bool,
    actor: &Actor,
) -> Result<Rotation, AdminError> {
    let result = rotate_key(store, master, activation_delay, immediately)
        .await
        .map(|rotation| {
            let change = match &rotation {
                Rotation::Published(key) | Rotation::ActivatedPending(key) => Change::of(
                    &key.kid,
                    Value::Null,
                    serde_json::json!({
                        "kid": key.kid,
                        "activates_at": rfc3339(key.activates_at),
                        "immediately": immediately,
                    }),
                ),
                Rotation::AlreadyPending(key) => Change::of(&key.kid, Value::Null, Value::Null),
            };
            (rotation, change)
        });
    let rotation = audit::finish(store, actor, "key.rotate", None, result).await?;
    let via = actor.via;
    match &rotation {
        Rotation::Published(key) => tracing::info!(
            kid = %key.kid,
            activates_at = %rfc3339(key.activates_at),
            %via,
            "signing key rotation published a next key"
        ),
        Rotation::ActivatedPending(key) => tracing::info!(
            kid = %key.kid,
            %via,
            "signing key rotation activated the pending key now"
        ),
        // Nothing changed.
        Rotation::AlreadyPending(_) => {}
    }
    Ok(rotation)
}

/// Rotates the signing key. Normally publishes a next key that activates after
/// `activation_delay` (so receivers caching the JWKS see it first); with `now`, the next
/// key (pending or new) activates immediately, for a compromised key. Logs nothing: see
/// [`rotate_key_by`].
pub async fn rotate_key(
    store: &dyn Store,
    master: &MasterKey,
    activation_delay: Duration,
    immediately: bool,
) -> Result<Rotation, AdminError> {
    let now = now();
    let keys = store.list_keys().await?;
    let pending = KeySchedule::new(&keys)
        .pending_at(now)
        .map(|k| k.record.clone());
    if let Some(mut pending) = pending {
        if !immediately {
            return Ok(Rotation::AlreadyPending(pending));
        }
        if store.activate_key_now(&pending.kid, now).await? {
            pending.activates_at = now;
            return Ok(Rotation::ActivatedPending(pending));
        }
    }
    let activates_at = if immediately {
        now
    } else {
        now + activation_delay
    };
    let key = new_key_record(master, now, activates_at);
    if store
        .insert_key(&key, InsertKeyIf::NonePendingAt(now))
        .await?
    {
        return Ok(Rotation::Published(key));
    }
    // Another process published a next key between our read and our write.
    let keys = store.list_keys().await?;
    match KeySchedule::new(&keys).pending_at(now) {
        Some(k) => Ok(Rotation::AlreadyPending(k.record.clone())),
        None => Err(AdminError::Invalid(
            "key rotation raced with another process; run it again".into(),
        )),
    }
}

/// What `keys revoke` did.
#[derive(Debug, Clone)]
pub struct KeyRevocation {
    /// The withdrawn key, as stored now.
    pub revoked: KeyRecord,
    /// The key that took over signing at once, when the revoked one was signing.
    pub replacement: Option<KeyRecord>,
    /// Apps told by a `signing_key.revoked` webhook event.
    pub apps_notified: usize,
}

/// The operator event that tells webhook receivers a key was withdrawn, so they drop it
/// from any cached JWKS at once instead of when their cache expires.
pub const KEY_REVOKED_EVENT: &str = "signing_key.revoked";

/// Withdraws a signing key, for a key that leaked: it leaves the JWKS, and every token it
/// signed is refused, on every replica within a second. If it was signing, a new key
/// takes over at once, in the same transaction. Apps with a webhook URL are sent a
/// [`KEY_REVOKED_EVENT`].
pub async fn revoke_key(
    store: &dyn Store,
    master: &MasterKey,
    kid: &str,
    retry_window: std::time::Duration,
    actor: &Actor,
) -> Result<KeyRevocation, AdminError> {
    let result = withdraw_key(store, master, kid).await;
    let (revoked, replacement) =
        audit::finish(store, actor, "key.revoke", Some(kid), result).await?;
    let now = revoked.revoked_at.unwrap_or_else(now);
    tracing::info!(
        kid = %kid,
        replaced_by = replacement.as_ref().map(|k| tracing::field::display(&k.kid)),
        via = %actor.via,
        "signing key revoked"
    );
    let data = serde_json::json!({
        "kid": kid,
        "revoked_at": rfc3339(now),
        "replaced_by": replacement.as_ref().map(|k| k.kid.as_str()),
    });
    let body = payloads::operator_payload(KEY_REVOKED_EVENT, &data, OffsetDateTime::now_utc())
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    // The revocation is committed: telling receivers is best effort, never a failure.
    let apps_notified = notify_apps(store, KEY_REVOKED_EVENT, &body, retry_window).await;
    Ok(KeyRevocation {
        revoked,
        replacement,
        apps_notified,
    })
}

/// Queues an operator event for every app with a webhook URL; returns how many took it.
async fn notify_apps(
    store: &dyn Store,
    event: &str,
    body: &[u8],
    retry_window: std::time::Duration,
) -> usize {
    let mut notified = 0;
    let apps = store.list_apps().await.unwrap_or_default();
    for app in apps.iter().filter(|a| a.webhook_url.is_some()) {
        let queued = queue_webhook_event(store, &app.id, event, body.to_vec(), retry_window);
        match queued.await {
            Ok(_) => notified += 1,
            Err(error) => {
                tracing::warn!(app_id = %app.id, %error, event, "cannot queue an operator event")
            }
        }
    }
    notified
}

/// [`revoke_key`]'s change: the key withdrawn and, if it was signing, its replacement.
async fn withdraw_key(
    store: &dyn Store,
    master: &MasterKey,
    kid: &str,
) -> Result<((KeyRecord, Option<KeyRecord>), Change), AdminError> {
    let now = now();
    let keys = store.list_keys().await?;
    let mut revoked = keys
        .iter()
        .find(|k| k.kid == kid)
        .cloned()
        .ok_or_else(|| AdminError::UnknownKey(kid.to_owned()))?;
    if revoked.revoked_at.is_some() {
        return Err(AdminError::Invalid(format!(
            "signing key {kid} is revoked already"
        )));
    }
    let signing = KeySchedule::new(&keys)
        .signer_at(now)
        .is_some_and(|k| k.record.kid == kid);
    let replacement = signing.then(|| new_key_record(master, now, now));
    if !store.revoke_key(kid, now, replacement.as_ref()).await? {
        return Err(AdminError::Invalid(format!(
            "signing key {kid} was revoked by another process meanwhile"
        )));
    }
    revoked.revoked_at = Some(now);
    let change = Change::of(
        kid,
        serde_json::json!({"revoked_at": null, "replaced_by": null}),
        serde_json::json!({
            "revoked_at": rfc3339(now),
            "replaced_by": replacement.as_ref().map(|k| k.kid.as_str()),
        }),
    );
    Ok(((revoked, replacement), change))
}

/// The demo app and client of `serve --demo`, with a fresh secret to print.
///
/// The secret is stored only as a hash, so a restart cannot show the old one: an existing
/// demo client gets its secret rotated instead, and the printed credentials always work.
pub async fn ensure_demo_client(
    store: &dyn Store,
) -> Result<(App, Client, ClientSecret), AdminError> {
    const APP_NAME: &str = "Demo App";
    const CLIENT_NAME: &str = "demo";
    let app = match store
        .list_apps()
        .await?
        .into_iter()
        .find(|a| a.name == APP_NAME)
    {
        Some(app) => app,
        None => create_app(store, APP_NAME, &Actor::demo()).await?,
    };
    let existing = store
        .list_clients(Some(&app.id))
        .await?
        .into_iter()
        .find(|c| c.name == CLIENT_NAME);
    let (client, secret) = match existing {
        Some(client) => {
            let rotation = secrets::Rotation::now();
            secrets::rotate_client_secret(store, &client.id, &rotation, &Actor::demo()).await?
        }
        None => {
            create_client(
                store,
                &NewClient {
                    app_id: app.id.clone(),
                    name: CLIENT_NAME.into(),
                    scope: "accounts:read transactions:read".into(),
                    audiences: Vec::new(),
                    token_ttl_secs: None,
                    require_dpop: false,
                    secret_ttl_secs: None,
                },
                &Actor::demo(),
            )
            .await?
        }
    };
    Ok((app, client, secret))
}

/// Sets (after checking it against `policy`, addresses included) or clears an app's
/// webhook URL.
pub async fn set_app_webhook(
    store: &dyn Store,
    app_id: &str,
    url: Option<&str>,
    policy: TargetPolicy,
    actor: &Actor,
) -> Result<App, AdminError> {
    let action = match url {
        Some(_) => "app.webhook.set",
        None => "app.webhook.clear",
    };
    let result = change_app_webhook(store, app_id, url, policy, actor.via).await;
    audit::finish(store, actor, action, Some(app_id), result).await
}

async fn change_app_webhook(
    store: &dyn Store,
    app_id: &str,
    url: Option<&str>,
    policy: TargetPolicy,
    via: Via,
) -> Result<(App, Change), AdminError> {
    let mut app = store
        .get_app(app_id)
        .await?
        .ok_or_else(|| AdminError::UnknownApp(app_id.to_owned()))?;
    let before = views::app_json(&app);
    let target = match url {
        Some(text) => Some(
            guard::check_target(text, policy)
                .await
                .map_err(|e| AdminError::Invalid(e.to_string()))?,
        ),
        None => None,
    };
    let url = target.as_ref().map(ToString::to_string);
    if !store.set_app_webhook(app_id, url.as_deref()).await? {
        return Err(AdminError::UnknownApp(app_id.to_owned()));
    }
    // The host only: a URL's path or query may hold a credential.
    match target.as_ref() {
        Some(target) => tracing::info!(
            app_id = %app_id,
            host = %target.host_str().unwrap_or_default(),
            %via,
            "app webhook URL set"
        ),
        None => tracing::info!(app_id = %app_id, %via, "app webhook URL cleared"),
    }
    app.webhook_url = url;
    let change = Change::of(app_id, before, views::app_json(&app));
    Ok((app, change))
}

/// Queues an event an operator asked for (`webhooks send`, `POST /admin/webhooks`, the
/// console's test event): `data` is the JSON object added to the payload's own members.
pub async fn send_webhook_event(
    store: &dyn Store,
    app_id: &str,
    event: &str,
    data: &Value,
    retry_window: std::time::Duration,
    actor: &Actor,
) -> Result<WebhookEvent, AdminError> {
    let body = payloads::operator_payload(event, data, OffsetDateTime::now_utc())
        .map_err(|e| AdminError::Invalid(e.to_string()));
    let result = match body {
        Ok(body) => queue_webhook_event(store, app_id, event, body, retry_window).await,
        Err(refused) => Err(refused),
    };
    let result = result.map(|queued| {
        let after = serde_json::json!({"event_id": queued.id, "app_id": app_id, "event": event});
        let change = Change::of(&queued.id, Value::Null, after);
        (queued, change)
    });
    audit::finish(store, actor, "webhook.send", Some(app_id), result).await
}

/// Queues an event with this exact `body` for delivery to the app's webhook URL, retried
/// for `retry_window`.
pub async fn queue_webhook_event(
    store: &dyn Store,
    app_id: &str,
    event: &str,
    body: Vec<u8>,
    retry_window: std::time::Duration,
) -> Result<WebhookEvent, AdminError> {
    queue_capped_webhook_event(store, app_id, event, body, retry_window, 0).await
}

/// [`queue_webhook_event`] for events a client asks for (the test trigger): refused with
/// [`AdminError::TooManyPending`] while the app has `max_pending` pending events (0: no
/// cap), so a client cannot fill the outbox faster than its endpoint takes events.
pub async fn queue_capped_webhook_event(
    store: &dyn Store,
    app_id: &str,
    event: &str,
    body: Vec<u8>,
    retry_window: std::time::Duration,
    max_pending: u32,
) -> Result<WebhookEvent, AdminError> {
    let app = store
        .get_app(app_id)
        .await?
        .ok_or_else(|| AdminError::UnknownApp(app_id.to_owned()))?;
    if app.webhook_url.is_none() {
        return Err(AdminError::NoWebhookUrl(app.id));
    }
    let event = payloads::new_event(app_id, event, body, now_ms(), millis(retry_window));
    if !store
        .insert_webhook_event_capped(&event, max_pending)
        .await?
    {
        return Err(AdminError::TooManyPending {
            app_id: app.id,
            max: max_pending,
        });
    }
    Ok(event)
}

/// Makes a delivered or failed event pending again, due now, with a fresh retry window.
pub async fn retry_webhook_event(
    store: &dyn Store,
    id: &str,
    retry_window: std::time::Duration,
    actor: &Actor,
) -> Result<WebhookEvent, AdminError> {
    let result = requeue_webhook_event(store, id, retry_window).await;
    audit::finish(store, actor, "webhook.retry", Some(id), result).await
}

async fn requeue_webhook_event(
    store: &dyn Store,
    id: &str,
    retry_window: std::time::Duration,
) -> Result<(WebhookEvent, Change), AdminError> {
    let unknown = || AdminError::UnknownEvent(id.to_owned());
    let event = store.get_webhook_event(id).await?.ok_or_else(unknown)?;
    if event.status == EventStatus::Pending {
        return Err(AdminError::Invalid(format!(
            "webhook event {id} is already pending (attempt {} so far)",
            event.attempts
        )));
    }
    let now = now_ms();
    store
        .retry_webhook_event(id, now, now.saturating_add(millis(retry_window)))
        .await?;
    let after = store.get_webhook_event(id).await?.ok_or_else(unknown)?;
    let change = Change::of(
        id,
        serde_json::json!({"status": event.status.as_str()}),
        serde_json::json!({"status": after.status.as_str()}),
    );
    Ok((after, change))
}
