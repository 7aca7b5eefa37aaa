//! `moneykit-auth clients create|list|show|update|disable|enable|rotate-secret|add-secret|
//! revoke-secret|trust|untrust`.

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
use crate::operations::secretless::{
    self, KeysInput, MAX_JWKS_BYTES, NewTrustRule, SecretlessAuth,
};
use crate::operations::secrets::{self, Rotation};
use crate::operations::views::{
    client_json, client_secret_json, client_status, jwks_kids, trust_rule_json,
};
use crate::operations::{self, Actor, AdminError, ClientUpdate, NewClient};

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
    /// With a client certificate from the server's --client-ca-file showing the identity
    /// given by --tls-subject-dn or one --tls-san-* (RFC 8705 §2.1); no secret.
    #[value(name = "tls_client_auth")]
    TlsClientAuth,
    /// With one of the self-signed certificates in --cert-file (RFC 8705 §2.2); no secret.
    #[value(name = "self_signed_tls_client_auth")]
    SelfSignedTlsClientAuth,
}

/// The certificate a client authenticates with over mutual TLS.
#[derive(Debug, Clone, Args)]
#[group(multiple = false)]
pub(super) struct TlsArgs {
    /// tls_client_auth: the certificate's subject DN, RFC 4514 (e.g. "CN=billing,O=Acme").
    #[arg(long, value_name = "DN")]
    tls_subject_dn: Option<String>,
    /// tls_client_auth: a DNS name among the certificate's subject alternative names.
    #[arg(long, value_name = "NAME")]
    tls_san_dns: Option<String>,
    /// tls_client_auth: a URI among its subject alternative names (e.g. a SPIFFE id).
    #[arg(long, value_name = "URI")]
    tls_san_uri: Option<String>,
    /// tls_client_auth: an email address among its subject alternative names.
    #[arg(long, value_name = "EMAIL")]
    tls_san_email: Option<String>,
    /// tls_client_auth: an IP address among its subject alternative names.
    #[arg(long, value_name = "IP")]
    tls_san_ip: Option<std::net::IpAddr>,
    /// self_signed_tls_client_auth: a PEM file of the client's certificates (up to 8;
    /// no private key).
    #[arg(long, value_name = "PEM")]
    cert_file: Option<PathBuf>,
}

impl TlsArgs {
    /// The certificate identity given, read from the file if it is one.
    fn auth(&self) -> anyhow::Result<Option<SecretlessAuth>> {
        use crate::domain::certificates::TlsIdentity;
        let identity = if let Some(dn) = &self.tls_subject_dn {
            TlsIdentity::SubjectDn(dn.clone())
        } else if let Some(dns) = &self.tls_san_dns {
            TlsIdentity::Dns(dns.clone())
        } else if let Some(uri) = &self.tls_san_uri {
            TlsIdentity::Uri(uri.clone())
        } else if let Some(email) = &self.tls_san_email {
            TlsIdentity::Email(email.clone())
        } else if let Some(ip) = self.tls_san_ip {
            TlsIdentity::Ip(ip)
        } else if let Some(path) = &self.cert_file {
            return Ok(Some(SecretlessAuth::SelfSigned(read_small_file(
                "--cert-file",
                path,
            )?)));
        } else {
            return Ok(None);
        };
        Ok(Some(SecretlessAuth::Tls(identity)))
    }
}

/// How a client without a secret authenticates, from the flags given; `method` (when
/// given) must agree with them.
fn secretless_auth(
    method: Option<AuthMethod>,
    keys: &KeysArgs,
    tls: &TlsArgs,
) -> anyhow::Result<Option<SecretlessAuth>> {
    let given = match (keys.keys()?, tls.auth()?) {
        (Some(_), Some(_)) => {
            anyhow::bail!("give keys (--jwks-file/--jwks-uri) or a certificate identity, not both")
        }
        (Some(keys), None) => Some(SecretlessAuth::Keys(keys)),
        (None, tls) => tls,
    };
    // The flags a method needs, named as this command spells them.
    let needs = match (method, &given) {
        (Some(AuthMethod::PrivateKeyJwt), None) => {
            Some("public keys: --jwks-file PATH or --jwks-uri URL")
        }
        (Some(AuthMethod::TlsClientAuth), None) => {
            Some("certificate identity: --tls-subject-dn DN or one --tls-san-*")
        }
        (Some(AuthMethod::SelfSignedTlsClientAuth), None) => Some("certificate: --cert-file PEM"),
        _ => None,
    };
    if let (Some(method), Some(needs)) = (method, needs) {
        anyhow::bail!(
            "--auth-method {} needs the client's {needs}",
            method_name(method)
        );
    }
    let method = method.map(method_name);
    Ok(secretless::credentials_for_method(
        method.as_deref(),
        given,
    )?)
}

fn method_name(method: AuthMethod) -> String {
    method
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
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
    read_small_file("--jwks-file", path)
}

/// Reads the file a `flag` names, refusing one larger than any real key set or
/// certificate file before reading it all.
fn read_small_file(flag: &str, path: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let size = std::fs::metadata(path)
        .with_context(|| format!("{flag} {}", path.display()))?
        .len();
    if size > MAX_JWKS_BYTES as u64 {
        anyhow::bail!(
            "{flag} {}: larger than {MAX_JWKS_BYTES} bytes",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))
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
        /// How the client authenticates; private_key_jwt needs --jwks-file or --jwks-uri,
        /// tls_client_auth --tls-subject-dn or a --tls-san-*, self_signed_tls_client_auth
        /// --cert-file (default: implied by those, else a secret).
        #[arg(long, value_enum)]
        auth_method: Option<AuthMethod>,
        #[command(flatten)]
        keys: KeysArgs,
        #[command(flatten)]
        tls: TlsArgs,
        /// Refuse this client's token requests without a DPoP proof (RFC 9449): it only
        /// ever gets tokens bound to its key.
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        require_dpop: Option<bool>,
        /// Lifetime of its first secret, e.g. 90d (default: it never expires).
        #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
        secret_ttl: Option<std::time::Duration>,
    },
    /// Change a client's name, scopes, audiences, token lifetime, DPoP requirement or (for a
    /// client without a secret) keys or certificate identity; running servers apply it to
    /// new tokens within a second.
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
        /// A new certificate identity of a client without a secret.
        #[command(flatten)]
        tls: TlsArgs,
        /// Switch a client without a secret to another such method (with its keys or
        /// certificate identity).
        #[arg(long, value_enum)]
        auth_method: Option<AuthMethod>,
        /// Require (true) or stop requiring (false) a DPoP proof on its token requests.
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        require_dpop: Option<bool>,
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
    /// Give a client a new secret and retire its others: at once, or after --grace (both
    /// work meanwhile); prints the new one once.
    RotateSecret {
        /// The client id.
        client_id: String,
        /// How long the old secrets keep working, e.g. 24h (default: they stop now).
        #[arg(long, value_name = "DURATION", value_parser = super::parse_duration, default_value = "0")]
        grace: std::time::Duration,
        /// Lifetime of the new secret, e.g. 90d (default: it never expires).
        #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
        secret_ttl: Option<std::time::Duration>,
    },
    /// Add a secret beside the client's others (up to 5 live); prints it once.
    AddSecret {
        /// The client id.
        client_id: String,
        /// Lifetime of the new secret, e.g. 90d (default: it never expires).
        #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
        secret_ttl: Option<std::time::Duration>,
    },
    /// Revoke one of a client's secrets at once (not its last live one).
    RevokeSecret {
        /// The client id.
        client_id: String,
        /// The secret (`sec_…`, from `clients show`).
        secret_id: String,
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
        ClientAuth::TlsClientAuth(identity) => {
            format!(" ({} {})", identity.kind(), identity.value())
        }
        ClientAuth::SelfSignedTls(thumbprints) => {
            format!(" (certificates x5t#S256: {})", thumbprints.join(", "))
        }
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
        format!(
            "dpop:        {}",
            if client.require_dpop {
                "required"
            } else {
                "optional"
            }
        ),
        format!("created_at:  {}", rfc3339(client.created_at)),
        format!("status:      {}", client_status(client, now)),
    ];
    if let Some(at) = client.disabled_at {
        lines.push(format!("disabled_at: {}", rfc3339(at)));
    }
    if let ClientAuth::Secret(secrets) = &client.auth {
        for secret in secrets {
            let state = match secret.expires_at {
                _ if !secret.is_live(now) => "expired".to_owned(),
                Some(at) => format!("expires {}", rfc3339(at)),
                None => "no expiry".to_owned(),
            };
            let used = secret.last_used_at.map_or("never used".to_owned(), |at| {
                format!("last used {}", rfc3339(at))
            });
            lines.push(format!(
                "secret:      {} (created {}, {state}, {used})",
                secret.id,
                rfc3339(secret.created_at)
            ));
        }
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
    let actor = &Actor::cli();
    match cmd {
        ClientsCommand::Create {
            app_id,
            name,
            scope,
            audiences,
            token_ttl,
            auth_method,
            keys,
            tls,
            require_dpop,
            secret_ttl,
        } => {
            let new = NewClient {
                app_id,
                name,
                scope,
                audiences,
                token_ttl_secs: token_ttl,
                require_dpop: require_dpop.unwrap_or(false),
                secret_ttl_secs: secret_ttl.map(|d| d.as_secs()),
            };
            match secretless_auth(auth_method, &keys, &tls)? {
                None => {
                    let (client, secret) = operations::create_client(store, &new, actor).await?;
                    client_with_secret(out, "Created", &client, &secret);
                }
                Some(auth) => {
                    let client = secretless::create_secretless_client(
                        store,
                        &new,
                        &auth,
                        keys.policy(),
                        actor,
                    )
                    .await?;
                    out.emit(&client_json(&client), || {
                        format!(
                            "Created client {} (app {}); it authenticates with {} and has no secret\n{}",
                            client.id,
                            client.app_id,
                            client.auth.method(),
                            describe(&client)
                        )
                    });
                }
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
            tls,
            auth_method,
            require_dpop,
        } => {
            let update = ClientUpdate {
                name,
                scope,
                audiences: (clear_audiences || !audiences.is_empty()).then_some(audiences),
                token_ttl_secs: token_ttl.map(|TtlChange(secs)| secs),
                require_dpop,
            };
            let credentials = secretless_auth(auth_method, &keys, &tls)?;
            if update.is_empty() && credentials.is_none() {
                anyhow::bail!(
                    "nothing to change: give --name, --scope, --audience, --clear-audiences, --token-ttl, --require-dpop, --jwks-file, --jwks-uri, --tls-* or --cert-file"
                );
            }
            let client = secretless::update_client_credentials(
                store,
                &client_id,
                &update,
                credentials.as_ref(),
                keys.policy(),
                actor,
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
            let rule = secretless::trust(store, &client_id, &rule, keys.policy(), actor).await?;
            out.emit(&trust_rule_json(&rule), || {
                format!("Client {client_id} now trusts {}", describe_rule(&rule))
            });
        }
        ClientsCommand::Untrust { client_id, rule_id } => {
            secretless::untrust(store, &client_id, &rule_id, actor).await?;
            out.emit(
                &serde_json::json!({"client_id": client_id, "rule_id": rule_id, "removed": true}),
                || format!("Removed trust rule {rule_id} of client {client_id}"),
            );
        }
        ClientsCommand::Disable { client_id, at } => {
            let client = operations::disable_client(store, &client_id, at, actor).await?;
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
            let client = operations::enable_client(store, &client_id, actor).await?;
            out.emit(&client_json(&client), || {
                format!("Enabled client {}", client.id)
            });
        }
        ClientsCommand::RotateSecret {
            client_id,
            grace,
            secret_ttl,
        } => {
            let rotation = Rotation {
                grace_secs: grace.as_secs(),
                secret_ttl_secs: secret_ttl.map(|d| d.as_secs()),
            };
            let (client, secret) =
                secrets::rotate_client_secret(store, &client_id, &rotation, actor).await?;
            client_with_secret(out, "Rotated the secret of", &client, &secret);
        }
        ClientsCommand::AddSecret {
            client_id,
            secret_ttl,
        } => {
            let ttl = secret_ttl.map(|d| d.as_secs());
            let made = secrets::add_client_secret(store, &client_id, ttl, actor).await?;
            client_with_secret(out, "Added a secret to", &made.client, &made.secret);
        }
        ClientsCommand::RevokeSecret {
            client_id,
            secret_id,
        } => {
            let client =
                secrets::revoke_client_secret(store, &client_id, &secret_id, actor).await?;
            out.emit(&client_json(&client), || {
                format!(
                    "Revoked secret {secret_id} of client {client_id}\n{}",
                    describe(&client)
                )
            });
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
        let secret_id = value["secret_id"].as_str().unwrap_or("-");
        let expires = value["secret_expires_at"].as_str().unwrap_or("never");
        format!(
            "{verb} client {id} (app {app})\n  client_id:     {id}\n  client_secret: {secret}\n  secret_id:     {secret_id} (expires: {expires})\n  scope:         {scope}\n  audiences:     {audiences}\n\nThe secret is shown only now: store it safely.",
            id = client.id,
            app = client.app_id,
            secret = secret.expose(),
            scope = client.scopes,
            audiences = audiences_text(client),
        )
    });
}
