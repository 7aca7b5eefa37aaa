//! `moneykit-auth keys list|rotate|revoke`.

use clap::Subcommand;
use serde_json::Value;
use time::OffsetDateTime;

use super::output::{Output, table};
use crate::config::{check_master_secret, resolve_master_key};
use crate::domain::signing_keys::KeySchedule;
use crate::domain::time::rfc3339;
use crate::operations::views::{key_json, revocation_json, rotation_json};
use crate::operations::{self, Actor, Rotation};
use crate::webhooks::WebhookSettings;

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// List signing keys and where each is in its life.
    List,
    /// Publish a next signing key; it starts signing after the activation delay.
    Rotate {
        /// Activate the next key immediately (for a compromised key). Receivers that
        /// cached the JWKS will meet an unknown kid and must refetch.
        #[arg(long)]
        now: bool,
        /// How long a new key is published before it signs.
        #[arg(long, env = "MONEYKIT_AUTH_KEY_ACTIVATION_DELAY", default_value = "10m", value_parser = super::parse_duration)]
        key_activation_delay: std::time::Duration,
    },
    /// Withdraw a key that leaked: it leaves the JWKS at once, every token it signed is
    /// refused by every server within a second, a new key takes over if it was signing,
    /// and apps with a webhook URL get a `signing_key.revoked` event.
    Revoke {
        /// The key id (`keys list` shows them).
        kid: String,
    },
}

pub(super) async fn run(cmd: KeysCommand, db: &super::Database, out: Output) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List => {
            let store = db.open().await?;
            let keys = store.list_keys().await?;
            let now = OffsetDateTime::now_utc();
            let schedule = KeySchedule::new(&keys);
            let json: Vec<Value> = schedule.all_keys().map(|k| key_json(k, now)).collect();
            out.emit(&json, || {
                let rows: Vec<Vec<String>> = schedule
                    .all_keys()
                    .map(|k| {
                        vec![
                            k.record.kid.clone(),
                            k.status(now).to_string(),
                            rfc3339(k.record.activates_at),
                            k.retires_at.map(rfc3339).unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                table(&["KID", "STATUS", "ACTIVATES_AT", "RETIRES_AT"], &rows)
            });
        }
        KeysCommand::Rotate {
            now,
            key_activation_delay,
        } => {
            let delay = time::Duration::try_from(key_activation_delay)?;
            let secret = super::config_file::master_secret();
            check_master_secret(db.url(), secret.as_deref())?;
            let store = db.open().await?;
            let (master, _) =
                resolve_master_key(db.url(), secret.as_deref(), &store.list_keys().await?)?;
            let rotation =
                operations::rotate_key_by(store.as_ref(), &master, delay, now, &Actor::cli())
                    .await?;
            let (key, text) = match &rotation {
                Rotation::Published(k) => (k, "Published next key"),
                Rotation::AlreadyPending(k) => (
                    k,
                    "A next key is already published (run with --now to activate it at once):",
                ),
                Rotation::ActivatedPending(k) => (k, "Activated next key"),
            };
            out.emit(&rotation_json(&rotation), || {
                format!(
                    "{text} {} (signs from {})",
                    key.kid,
                    rfc3339(key.activates_at)
                )
            });
        }
        KeysCommand::Revoke { kid } => {
            let secret = super::config_file::master_secret();
            check_master_secret(db.url(), secret.as_deref())?;
            let store = db.open().await?;
            let (master, _) =
                resolve_master_key(db.url(), secret.as_deref(), &store.list_keys().await?)?;
            let retry_window = WebhookSettings::default().retry_window;
            let done =
                operations::revoke_key(store.as_ref(), &master, &kid, retry_window, &Actor::cli())
                    .await?;
            out.emit(&revocation_json(&done), || {
                let mut text =
                    format!("Revoked key {kid}: it is out of the JWKS and its tokens are refused");
                if let Some(k) = &done.replacement {
                    text.push_str(&format!("\nKey {} signs from now on", k.kid));
                }
                text.push_str(&format!(
                    "\n{} app(s) notified with a signing_key.revoked webhook event",
                    done.apps_notified
                ));
                text
            });
        }
    }
    Ok(())
}
