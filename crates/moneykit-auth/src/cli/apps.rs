//! `moneykit-auth apps create|list`.

use clap::Subcommand;
use serde_json::Value;

use super::output::{Output, app_json, rfc3339, table};
use crate::admin;
use crate::store::OpenMode;

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
}

pub(super) async fn run(cmd: AppsCommand, database_url: &str, out: Output) -> anyhow::Result<()> {
    match cmd {
        AppsCommand::Create { name } => {
            let store = super::open(database_url, OpenMode::CreateOrMigrate).await?;
            let app = admin::create_app(store.as_ref(), &name).await?;
            out.emit(&app_json(&app), || {
                format!("Created app {} ({})", app.id, app.name)
            });
        }
        AppsCommand::List => {
            let store = super::open(database_url, OpenMode::MustExist).await?;
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
    }
    Ok(())
}
