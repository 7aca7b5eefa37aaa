//! `moneykit-auth apps create|list|set-webhook`.

use clap::Subcommand;
use serde_json::Value;

use super::output::{Output, table};
use crate::domain::time::rfc3339;
use crate::net::guard::TargetPolicy;
use crate::operations::views::app_json;
use crate::operations::{self, Actor};

#[derive(Debug, Subcommand)]
pub(super) enum AppsCommand {
    /// Create an app.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List apps.
    List,
    /// Set (or with --clear, remove) the URL an app's webhooks are delivered to.
    ///
    /// The URL must be https, and its host must resolve only to public addresses, unless
    /// the flags below allow more. The server checks again on every delivery, with its own
    /// flags (`serve --webhooks-allow-http`, `--webhooks-allow-private-targets`).
    SetWebhook {
        /// The app.
        app_id: String,
        /// Where to POST its webhooks.
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        url: Option<String>,
        /// Remove the app's webhook URL.
        #[arg(long)]
        clear: bool,
        /// Accept an http:// URL.
        #[arg(long)]
        allow_http: bool,
        /// Accept a host that resolves to a loopback, private or link-local address.
        #[arg(long)]
        allow_private_targets: bool,
    },
}

pub(super) async fn run(cmd: AppsCommand, db: &super::Database, out: Output) -> anyhow::Result<()> {
    match cmd {
        AppsCommand::Create { name } => {
            let store = db.open_or_create().await?;
            let app = operations::create_app(store.as_ref(), &name, &Actor::cli()).await?;
            out.emit(&app_json(&app), || {
                format!("Created app {} ({})", app.id, app.name)
            });
        }
        AppsCommand::List => {
            let store = db.open().await?;
            let apps = store.list_apps().await?;
            let json: Vec<Value> = apps.iter().map(app_json).collect();
            out.emit(&json, || {
                let rows: Vec<Vec<String>> = apps
                    .iter()
                    .map(|a| vec![a.id.clone(), a.name.clone(), rfc3339(a.created_at)])
                    .collect();
                table(&["APP_ID", "NAME", "CREATED_AT"], &rows)
            });
        }
        AppsCommand::SetWebhook {
            app_id,
            url,
            clear,
            allow_http,
            allow_private_targets,
        } => {
            let policy = TargetPolicy {
                allow_http,
                allow_private_targets,
            };
            let store = db.open().await?;
            let url = if clear { None } else { url };
            let app = operations::set_app_webhook(
                store.as_ref(),
                &app_id,
                url.as_deref(),
                policy,
                &Actor::cli(),
            )
            .await?;
            out.emit(&app_json(&app), || match &app.webhook_url {
                Some(url) => format!("Webhooks of app {} go to {url}", app.id),
                None => format!("App {} has no webhook URL", app.id),
            });
        }
    }
    Ok(())
}
