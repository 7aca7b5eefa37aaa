//! `moneykit-auth clients create|list|show|update|disable|enable|rotate-secret`.

use clap::Subcommand;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::output::{Output, table};
use crate::domain::clients::Client;
use crate::domain::secrets::ClientSecret;
use crate::domain::time::rfc3339;
use crate::operations::views::{client_json, client_secret_json, client_status};
use crate::operations::{self, AdminError, ClientUpdate, NewClient, Via};

#[derive(Debug, Subcommand)]
pub(super) enum ClientsCommand {
    /// Create a client; prints its secret once.
    Create {
        /// The app the client belongs to.
        #[arg(long = "app", value_name = "APP_ID")]
        app_id: String,
        /// Display name.
        #[arg(long, default_value = "default")]
        name: String,
        /// Allowed scopes, space-separated (e.g. "accounts:read transactions:read").
        #[arg(long, default_value = "")]
        scope: String,
        /// An audience (absolute URI) the client may ask for with `resource`/`audience`;
        /// repeat for several, the first is its default (default: the server's --audience).
        #[arg(long = "audience", value_name = "URI")]
        audiences: Vec<String>,
        /// Lifetime of this client's tokens in seconds (default: the server's --token-ttl).
        #[arg(long, value_name = "SECS")]
        token_ttl: Option<u64>,
    },
    /// Change a client's name, scopes, audiences or token lifetime; running servers apply
    /// it to new tokens within a second.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    Update {
        /// The client id.
        client_id: String,
        /// New display name.
        #[arg(long, group = "change")]
        name: Option<String>,
        /// New allowed scopes, space-separated (replaces the list; "" for none).
        #[arg(long, group = "change")]
        scope: Option<String>,
        /// New audiences (replaces the list); repeat for several, the first is the default.
        #[arg(
            long = "audience",
            value_name = "URI",
            group = "change",
            conflicts_with = "clear_audiences"
        )]
        audiences: Vec<String>,
        /// Remove the client's audiences: its tokens get the server's default audience.
        #[arg(long, group = "change")]
        clear_audiences: bool,
        /// New token lifetime in seconds, or "default" for the server's --token-ttl.
        #[arg(long, value_name = "SECS|default", value_parser = parse_ttl_change, group = "change")]
        token_ttl: Option<TtlChange>,
    },
    /// List clients.
    List {
        /// Only this app's clients.
        #[arg(long = "app", value_name = "APP_ID")]
        app_id: Option<String>,
    },
    /// Show one client.
    Show {
        /// The client id.
        client_id: String,
    },
    /// Disable a client now, or at a given time.
    Disable {
        /// The client id.
        client_id: String,
        /// When to disable it (RFC 3339, e.g. 2026-12-01T00:00:00Z); default now.
        #[arg(long, value_parser = parse_rfc3339)]
        at: Option<OffsetDateTime>,
    },
    /// Enable a client again (cancels a scheduled disablement).
    Enable {
        /// The client id.
        client_id: String,
    },
    /// Replace a client's secret; prints the new one once.
    RotateSecret {
        /// The client id.
        client_id: String,
    },
}

/// A `--token-ttl` of `clients update`: seconds, or back to the server default.
#[derive(Debug, Clone, Copy)]
pub(super) struct TtlChange(Option<u64>);

fn parse_ttl_change(text: &str) -> Result<TtlChange, String> {
    if text == "default" {
        return Ok(TtlChange(None));
    }
    text.parse()
        .map(|secs| TtlChange(Some(secs)))
        .map_err(|_| "expected seconds or \"default\"".into())
}

fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("{e}; expected RFC 3339, e.g. 2026-12-01T00:00:00Z"))
}

/// A client's audiences for people: the list, or that the server's default applies.
pub(super) fn audiences_text(client: &Client) -> String {
    if client.audiences.is_empty() {
        "(server default)".to_owned()
    } else {
        client.audiences.join(" ")
    }
}

fn describe(client: &Client) -> String {
    let now = OffsetDateTime::now_utc();
    let mut lines = vec![
        format!("client_id:   {}", client.id),
        format!("app_id:      {}", client.app_id),
        format!("name:        {}", client.name),
        format!("scope:       {}", client.scopes),
        format!("audiences:   {}", audiences_text(client)),
        format!(
            "token_ttl:   {}",
            client
                .token_ttl_secs
                .map_or("server default".to_owned(), |s| format!("{s}s"))
        ),
        format!("created_at:  {}", rfc3339(client.created_at)),
        format!("status:      {}", client_status(client, now)),
    ];
    if let Some(at) = client.disabled_at {
        lines.push(format!("disabled_at: {}", rfc3339(at)));
    }
    lines.join("\n")
}

pub(super) async fn run(
    cmd: ClientsCommand,
    db: &super::Database,
    out: Output,
) -> anyhow::Result<()> {
    // Every clients command needs an existing app, hence an existing database.
    let store = db.open().await?;
    let store = store.as_ref();
    match cmd {
        ClientsCommand::Create {
            app_id,
            name,
            scope,
            audiences,
            token_ttl,
        } => {
            let new = NewClient {
                app_id,
                name,
                scope,
                audiences,
                token_ttl_secs: token_ttl,
            };
            let (client, secret) = operations::create_client(store, &new, Via::Cli).await?;
            client_with_secret(out, "Created", &client, &secret);
        }
        ClientsCommand::Update {
            client_id,
            name,
            scope,
            audiences,
            clear_audiences,
            token_ttl,
        } => {
            let update = ClientUpdate {
                name,
                scope,
                audiences: (clear_audiences || !audiences.is_empty()).then_some(audiences),
                token_ttl_secs: token_ttl.map(|TtlChange(secs)| secs),
            };
            let client = operations::update_client(store, &client_id, &update, Via::Cli).await?;
            out.emit(&client_json(&client), || {
                format!("Updated client {}\n{}", client.id, describe(&client))
            });
        }
        ClientsCommand::List { app_id } => {
            if let Some(app) = &app_id
                && store.get_app(app).await?.is_none()
            {
                return Err(AdminError::UnknownApp(app.clone()).into());
            }
            let clients = store.list_clients(app_id.as_deref()).await?;
            let json: Vec<Value> = clients.iter().map(client_json).collect();
            out.emit(&json, || {
                let now = OffsetDateTime::now_utc();
                let rows: Vec<Vec<String>> = clients
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.app_id.clone(),
                            c.name.clone(),
                            client_status(c, now).to_owned(),
                            c.scopes.to_string(),
                            audiences_text(c),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "CLIENT_ID",
                        "APP_ID",
                        "NAME",
                        "STATUS",
                        "SCOPE",
                        "AUDIENCES",
                    ],
                    &rows,
                )
            });
        }
        ClientsCommand::Show { client_id } => {
            let client = store
                .get_client(&client_id)
                .await?
                .ok_or(AdminError::UnknownClient(client_id))?;
            out.emit(&client_json(&client), || describe(&client));
        }
        ClientsCommand::Disable { client_id, at } => {
            let client = operations::disable_client(store, &client_id, at, Via::Cli).await?;
            out.emit(&client_json(&client), || {
                let when = client.disabled_at.map(rfc3339).unwrap_or_default();
                if client.is_disabled(OffsetDateTime::now_utc()) {
                    format!("Disabled client {} (since {when})", client.id)
                } else {
                    format!("Client {} will be disabled at {when}", client.id)
                }
            });
        }
        ClientsCommand::Enable { client_id } => {
            let client = operations::enable_client(store, &client_id, Via::Cli).await?;
            out.emit(&client_json(&client), || {
                format!("Enabled client {}", client.id)
            });
        }
        ClientsCommand::RotateSecret { client_id } => {
            let (client, secret) =
                operations::rotate_client_secret(store, &client_id, Via::Cli).await?;
            client_with_secret(out, "Rotated the secret of", &client, &secret);
        }
    }
    Ok(())
}

/// A client with its new secret, shown once (`clients create`, `clients rotate-secret`).
pub fn client_with_secret(out: Output, verb: &str, client: &Client, secret: &ClientSecret) {
    let value = client_secret_json(client, secret);
    out.emit(&value, || {
        format!(
            "{verb} client {id} (app {app})\n  client_id:     {id}\n  client_secret: {secret}\n  scope:         {scope}\n  audiences:     {audiences}\n\nThe secret is shown only now: store it safely.",
            id = client.id,
            app = client.app_id,
            secret = secret.expose(),
            scope = client.scopes,
            audiences = audiences_text(client),
        )
    });
}
