//! A secret client's secrets over their life: added, rotated with a grace period in which
//! the old and the new both work, revoked, and announced before the last one expires.
//! A client holds at most [`MAX_LIVE_SECRETS`] live secrets; the values are shown once,
//! when made, and stored only as hashes.

use serde_json::{Value, json};
use time::Duration;

use super::audit::{self, Actor, Change};
use super::{AdminError, managed_client, now, queue_webhook_event, views};
use crate::domain::clients::Client;
use crate::domain::payloads;
use crate::domain::secrets::{ClientSecret, MAX_LIVE_SECRETS, StoredSecret};
use crate::domain::time::rfc3339;
use crate::store::{SecretChange, Store};

/// Longest lifetime a secret may be given: ten years.
pub const MAX_SECRET_TTL_SECS: u64 = 10 * 366 * 24 * 60 * 60;

/// Longest grace a rotation may give the old secrets.
pub const MAX_GRACE_SECS: u64 = 90 * 24 * 60 * 60;

/// The operator event sent to a client's app when its last secret is about to expire.
pub const SECRET_EXPIRING_EVENT: &str = "client.secret_expiring";

/// Checks a secret lifetime: one minute to [`MAX_SECRET_TTL_SECS`].
pub fn check_secret_ttl(secs: u64) -> Result<Duration, AdminError> {
    if (60..=MAX_SECRET_TTL_SECS).contains(&secs) {
        Ok(Duration::seconds(secs as i64))
    } else {
        Err(AdminError::Invalid(format!(
            "secret lifetime must be between 60 and {MAX_SECRET_TTL_SECS} seconds"
        )))
    }
}

/// How a rotation treats the old secrets and the new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// How long the old secrets keep working, in seconds (0: they stop at once).
    pub grace_secs: u64,
    /// The new secret's lifetime in seconds; `None`: it never expires.
    pub secret_ttl_secs: Option<u64>,
}

impl Rotation {
    /// A rotation that stops the old secrets at once.
    pub fn now() -> Self {
        Self::default()
    }
}

/// What adding or rotating made: the client as it is now, the new secret (shown once) and
/// its record.
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// The client with its secrets.
    pub client: Client,
    /// The secret in clear.
    pub secret: ClientSecret,
    /// Its record (id, expiry).
    pub stored: StoredSecret,
}

/// Rotates a client's secret: a new one works at once, and every other stops after the
/// grace (at once without one, as before secrets could overlap). Tokens already issued
/// stay valid until they expire.
pub async fn rotate_client_secret(
    store: &dyn Store,
    id: &str,
    rotation: &Rotation,
    actor: &Actor,
) -> Result<(Client, ClientSecret), AdminError> {
    let made = rotate(store, id, rotation, actor).await?;
    Ok((made.client, made.secret))
}

/// [`rotate_client_secret`], with the new secret's record.
pub async fn rotate(
    store: &dyn Store,
    id: &str,
    rotation: &Rotation,
    actor: &Actor,
) -> Result<NewSecret, AdminError> {
    let result = async {
        if rotation.grace_secs > MAX_GRACE_SECS {
            return Err(AdminError::Invalid(format!(
                "grace must be at most {MAX_GRACE_SECS} seconds"
            )));
        }
        let others_expire_at = now() + Duration::seconds(rotation.grace_secs as i64);
        add(
            store,
            id,
            rotation.secret_ttl_secs,
            Some(others_expire_at),
            actor,
        )
        .await
    };
    let made = audit::finish(store, actor, "client.secret.rotate", Some(id), result.await).await?;
    tracing::info!(
        client_id = %id,
        secret_id = %made.stored.id,
        grace_secs = rotation.grace_secs,
        via = %actor.via,
        "client secret rotated"
    );
    Ok(made)
}

/// Adds a secret beside the client's others (which keep working), expiring after
/// `ttl_secs` if given.
pub async fn add_client_secret(
    store: &dyn Store,
    id: &str,
    ttl_secs: Option<u64>,
    actor: &Actor,
) -> Result<NewSecret, AdminError> {
    let result = add(store, id, ttl_secs, None, actor).await;
    let made = audit::finish(store, actor, "client.secret.add", Some(id), result).await?;
    tracing::info!(client_id = %id, secret_id = %made.stored.id, via = %actor.via, "client secret added");
    Ok(made)
}

async fn add(
    store: &dyn Store,
    id: &str,
    ttl_secs: Option<u64>,
    others_expire_at: Option<time::OffsetDateTime>,
    actor: &Actor,
) -> Result<(NewSecret, Change), AdminError> {
    let ttl = ttl_secs.map(check_secret_ttl).transpose()?;
    let before = managed_client(store, id, actor).await?;
    let secret = ClientSecret::generate();
    let now = now();
    let stored = StoredSecret::new(&secret, now, ttl);
    match store
        .add_client_secret(id, &stored, others_expire_at, now)
        .await?
    {
        SecretChange::Done => {}
        SecretChange::TooMany => {
            return Err(AdminError::Invalid(format!(
                "client {id} has {MAX_LIVE_SECRETS} live secrets, the most it may have: \
                 revoke one first (`clients revoke-secret`), or rotate without a grace"
            )));
        }
        _ => return Err(no_secret(&before)),
    }
    let client = managed_client(store, id, actor).await?;
    let change = Change::of(id, secrets_json(&before), secrets_json(&client));
    let made = NewSecret {
        client,
        secret,
        stored,
    };
    Ok((made, change))
}

/// Revokes one of a client's secrets at once. The last live secret cannot be revoked:
/// rotate instead (a leaked secret), or disable the client.
pub async fn revoke_client_secret(
    store: &dyn Store,
    id: &str,
    secret_id: &str,
    actor: &Actor,
) -> Result<Client, AdminError> {
    let result = async {
        let before = managed_client(store, id, actor).await?;
        match store.revoke_client_secret(id, secret_id, now()).await? {
            SecretChange::Done => {}
            SecretChange::UnknownSecret => {
                return Err(AdminError::Invalid(format!(
                    "client {id} has no live secret {secret_id}"
                )));
            }
            SecretChange::LastLive => {
                return Err(AdminError::Invalid(format!(
                    "secret {secret_id} is the last live secret of client {id}: rotate it \
                     (`clients rotate-secret`) or disable the client instead"
                )));
            }
            _ => return Err(no_secret(&before)),
        }
        let client = managed_client(store, id, actor).await?;
        let change = Change::of(id, secrets_json(&before), secrets_json(&client));
        Ok((client, change))
    };
    let client =
        audit::finish(store, actor, "client.secret.revoke", Some(id), result.await).await?;
    tracing::info!(client_id = %id, secret_id, via = %actor.via, "client secret revoked");
    Ok(client)
}

fn no_secret(client: &Client) -> AdminError {
    AdminError::Invalid(format!(
        "client {} authenticates with {}: it has no secret",
        client.id,
        client.auth.method()
    ))
}

/// The part of a client's view the audit trail compares for a secret change.
fn secrets_json(client: &Client) -> Value {
    json!({"secrets": views::client_json(client)["secrets"]})
}

/// Announces (once across every replica) that `secret` is the last live secret of
/// `client` and expires soon: an operator event to the client's app (the caller picks
/// clients whose app has a webhook URL). The metric
/// `moneykit_auth_client_secrets_expiring` counts such clients meanwhile.
pub async fn announce_secret_expiry(
    store: &dyn Store,
    client: &Client,
    secret: &StoredSecret,
    retry_window: std::time::Duration,
) -> Result<(), AdminError> {
    if !store.claim_secret_expiry_notice(&secret.id).await? {
        return Ok(());
    }
    let data = json!({
        "client_id": client.id,
        "secret_id": secret.id,
        "expires_at": secret.expires_at.map(rfc3339),
    });
    let body = payloads::operator_payload(
        SECRET_EXPIRING_EVENT,
        &data,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|e| AdminError::Invalid(e.to_string()))?;
    tracing::warn!(
        client_id = %client.id,
        secret_id = %secret.id,
        expires_at = %secret.expires_at.map(rfc3339).unwrap_or_default(),
        "the last secret of a client expires soon"
    );
    let queued = queue_webhook_event(
        store,
        &client.app_id,
        SECRET_EXPIRING_EVENT,
        body,
        retry_window,
    );
    match queued.await {
        // The app dropped its URL since the snapshot: nothing to deliver to.
        Ok(_) | Err(AdminError::NoWebhookUrl(_)) => Ok(()),
        Err(error) => Err(error),
    }
}
