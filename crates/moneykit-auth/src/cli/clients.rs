//! `moneykit-auth clients create|list|show|update|disable|enable|rotate-secret|trust|untrust`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::output::{Output, table};
use crate::domain::assertions::{IssuerKeys, TrustRule};
use crate::domain::clients::{Client, ClientAuth, ClientKeys};
use crate::domain::secrets::ClientSecret;
use crate::domain::time::rfc3339;
use crate::net::guard::TargetPolicy;
use crate::operations::secretless::{self, KeysInput, MAX_JWKS_BYTES, NewTrustRule};
use crate::operations::views::{
    client_json, client_secret_json, client_status, jwks_kids, trust_rule_json,
};
use crate::operations::{self, AdminError, ClientUpdate, NewClient, Via};

/// How a new client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum AuthMethod {
    /// With a secret, in HTTP Basic or in the body (`client_secret_basic`/`_post`).
    #[value(
        name = "client_secret",
        alias = "client_secret_basic",
        alias = "client_secret_post"
    )]
    ClientSecret,
    /// With a JWT signed by one of its keys (RFC 7523); no secret.
    #[value(name = "private_key_jwt")]
    PrivateKeyJwt,
}

/// Where a client's or an issuer's public keys are.
#[derive(Debug, Clone, Args)]
pub(super) struct KeysArgs {
    /// A JWKS file of public keys (ES256, ES384, EdDSA, RS256 or PS256); a private member
    /// such as "d" is refused.
    #[arg(long, value_name = "PATH", conflicts_with = "jwks_uri")]
    jwks_file: Option<PathBuf>,
    /// A URL the JWKS is published at, fetched by the server in the background: https and
    /// public addresses only, unless the flags below allow more for registering it and
    /// the server's --jwks-allow-http/--jwks-allow-private-targets for fetching it.
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// Accept an http:// URL.
    #[arg(long)]
    allow_http: bool,
    /// Accept a host that resolves to a loopback, private or link-local address.
    #[arg(long)]
    allow_private_targets: bool,
}

impl KeysArgs {
    /// The keys given, read from the file if it is one.
    fn keys(&self) -> anyhow::Result<Option<KeysInput>> {
        Ok(match (&self.jwks_file, &self.jwks_uri) {
            (Some(path), _) => Some(KeysInput::Jwks(read_jwks(path)?)),
            (None, Some(uri)) => Some(KeysInput::Uri(uri.clone())),
            (None, None) => None,
        })
    }

    fn policy(&self) -> TargetPolicy {
        TargetPolicy {
            allow_http: self.allow_http,
            allow_private_targets: self.allow_private_targets,
        }
    }
}

/// Reads a JWKS file, refusing one larger than any real key set before reading it all.
fn read_jwks(path: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let size = std::fs::metadata(path)
        .with_context(|| format!("--jwks-file {}", path.display()))?
        .len();
    if size > MAX_JWKS_BYTES as u64 {
        anyhow::bail!(
            "--jwks-file {}: larger than {MAX_JWKS_BYTES} bytes",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("--jwks-file {}", path.display()))
}

#[derive(Debug, Subcommand)]
pub(super) enum ClientsCommand {
    /// Create a client; prints its secret once (a private_key_jwt client has none).
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
        /// How the client authenticates; private_key_jwt needs --jwks-file or --jwks-uri.
        #[arg(long, value_enum, default_value = "client_secret_basic")]
        auth_method: AuthMethod,
        #[command(flatten)]
        keys: KeysArgs,
    },
    /// Change a client's name, scopes, audiences, token lifetime or (private_key_jwt)
    /// keys; running servers apply it to new tokens within a second.
    Update {
        /// The client id.
        client_id: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New allowed scopes, space-separated (replaces the list; "" for none).
        #[arg(long)]
        scope: Option<String>,
        /// New audiences (replaces the list); repeat for several, the first is the default.
        #[arg(
            long = "audience",
            value_name = "URI",
            conflicts_with = "clear_audiences"
        )]
        audiences: Vec<String>,
        /// Remove the client's audiences: its tokens get the server's default audience.
        #[arg(long)]
        clear_audiences: bool,
        /// New token lifetime in seconds, or "default" for the server's --token-ttl.
        #[arg(long, value_name = "SECS|default", value_parser = parse_ttl_change)]
        token_ttl: Option<TtlChange>,
        /// New keys of a private_key_jwt client (replaces them all: to roll a key,
        /// register the new one beside the old, then remove the old).
        #[command(flatten)]
        keys: KeysArgs,
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
    /// Let workloads holding a token of an external issuer (Kubernetes, GitHub Actions,
    /// SPIFFE) get this client's tokens, with no credential of their own.
    Trust {
        /// The trusting client.
        client_id: String,
        /// The platform token's issuer (`iss`), compared exactly.
        #[arg(long, value_name = "URL")]
        issuer: String,
        /// The workload's subject (`sub`), compared exactly, e.g.
        /// system:serviceaccount:NAMESPACE:NAME or repo:ORG/REPO:ref:refs/heads/main.
        #[arg(long)]
        subject: String,
        /// The audience the platform token must carry (default: this server's issuer).
        #[arg(long)]
        audience: Option<String>,
        /// The issuer's keys; without --jwks-file or --jwks-uri they are found through
        /// {issuer}/.well-known/openid-configuration.
        #[command(flatten)]
        keys: KeysArgs,
    },
    /// Remove a trust rule of a client.
    Untrust {
        /// The client.
        client_id: String,
        /// The rule (`trust_…`, from `clients show`).
        rule_id: String,
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
    let keys = match &client.auth {
        ClientAuth::Secret(_) => String::new(),
        ClientAuth::PrivateKeyJwt(ClientKeys::Jwks(jwks)) => format!(
            " (kids: {})",
            jwks_kids(jwks)
                .into_iter()
                .map(|k| k.unwrap_or_else(|| "-".into()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ClientAuth::PrivateKeyJwt(ClientKeys::Uri(uri)) => format!(" (keys at {uri})"),
    };
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
        format!("auth_method: {}{keys}", client.auth.method()),
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
            auth_method,
            keys,
        } => {
            let new = NewClient {
                app_id,
                name,
                scope,
                audiences,
                token_ttl_secs: token_ttl,
            };
            match (auth_method, keys.keys()?) {
                (AuthMethod::ClientSecret, None) => {
                    let (client, secret) = operations::create_client(store, &new, Via::Cli).await?;
                    client_with_secret(out, "Created", &client, &secret);
                }
                (AuthMethod::PrivateKeyJwt, Some(input)) => {
                    let client =
                        secretless::create_key_client(store, &new, &input, keys.policy(), Via::Cli)
                            .await?;
                    out.emit(&client_json(&client), || {
                        format!(
                            "Created client {} (app {}); it authenticates with private_key_jwt and has no secret\n{}",
                            client.id,
                            client.app_id,
                            describe(&client)
                        )
                    });
                }
                (AuthMethod::PrivateKeyJwt, None) => anyhow::bail!(
                    "--auth-method private_key_jwt needs the client's public keys: --jwks-file PATH or --jwks-uri URL"
                ),
                (AuthMethod::ClientSecret, Some(_)) => anyhow::bail!(
                    "--jwks-file and --jwks-uri are for --auth-method private_key_jwt"
                ),
            }
        }
        ClientsCommand::Update {
            client_id,
            name,
            scope,
            audiences,
            clear_audiences,
            token_ttl,
            keys,
        } => {
            let update = ClientUpdate {
                name,
                scope,
                audiences: (clear_audiences || !audiences.is_empty()).then_some(audiences),
                token_ttl_secs: token_ttl.map(|TtlChange(secs)| secs),
            };
            let new_keys = keys.keys()?;
            if update.is_empty() && new_keys.is_none() {
                anyhow::bail!(
                    "nothing to change: give --name, --scope, --audience, --clear-audiences, --token-ttl, --jwks-file or --jwks-uri"
                );
            }
            let client = secretless::update_client_with_keys(
                store,
                &client_id,
                &update,
                new_keys.as_ref(),
                keys.policy(),
                Via::Cli,
            )
            .await?;
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
                            c.auth.method().to_owned(),
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
                        "AUTH",
                        "SCOPE",
                        "AUDIENCES",
                    ],
                    &rows,
                )
            });
        }
        ClientsCommand::Show { client_id } => {
            let client = operations::existing_client(store, &client_id).await?;
            let rules = store.list_trust_rules(Some(&client.id)).await?;
            let mut json = client_json(&client);
            json["trust_rules"] = rules.iter().map(trust_rule_json).collect();
            out.emit(&json, || {
                let mut text = describe(&client);
                for rule in &rules {
                    text.push_str(&format!("\ntrust:       {}", describe_rule(rule)));
                }
                text
            });
        }
        ClientsCommand::Trust {
            client_id,
            issuer,
            subject,
            audience,
            keys,
        } => {
            let rule = NewTrustRule {
                issuer,
                subject,
                audience,
                keys: keys.keys()?,
            };
            let rule = secretless::trust(store, &client_id, &rule, keys.policy(), Via::Cli).await?;
            out.emit(&trust_rule_json(&rule), || {
                format!("Client {client_id} now trusts {}", describe_rule(&rule))
            });
        }
        ClientsCommand::Untrust { client_id, rule_id } => {
            secretless::untrust(store, &client_id, &rule_id, Via::Cli).await?;
            out.emit(
                &serde_json::json!({"client_id": client_id, "rule_id": rule_id, "removed": true}),
                || format!("Removed trust rule {rule_id} of client {client_id}"),
            );
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

/// A trust rule in one line.
fn describe_rule(rule: &TrustRule) -> String {
    let keys = match &rule.keys {
        IssuerKeys::Jwks(jwks) => format!("registered keys ({})", jwks_kids(jwks).len()),
        IssuerKeys::Uri(uri) => format!("keys at {uri}"),
        IssuerKeys::Discovery => "keys by discovery".into(),
    };
    format!(
        "{id}: iss {iss} sub {sub} aud {aud}, {keys}",
        id = rule.id,
        iss = rule.issuer,
        sub = rule.subject,
        aud = rule.audience.as_deref().unwrap_or("(this server's issuer)"),
    )
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
