//! `moneykit-auth serve`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::Database;
use super::output::Output;
use crate::config::{MasterKeyOrigin, ServeSettings};
use crate::engine::ratelimit::Rate;
use crate::operations::check_token_ttl;
use crate::startup::Application;
use crate::store::StoreError;

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on (use 0.0.0.0:8080 to accept connections from other hosts).
    #[arg(long, env = "MONEYKIT_AUTH_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Public base URL: the `iss` of tokens [default: http:// + the listen address].
    #[arg(long, env = "MONEYKIT_AUTH_ISSUER", value_parser = parse_issuer)]
    issuer: Option<String>,
    /// Default audience: the `aud` of tokens for clients without audiences of their own
    /// (an absolute URI) [default: the issuer].
    #[arg(long, env = "MONEYKIT_AUTH_AUDIENCE", value_name = "URI", value_parser = parse_audience)]
    audience: Option<String>,
    /// List every client's scopes in the RFC 8414 metadata (`scopes_supported`); off by
    /// default, since anyone may read the metadata.
    #[arg(long, env = "MONEYKIT_AUTH_PUBLISH_SCOPES", value_parser = clap::builder::FalseyValueParser::new())]
    publish_scopes: bool,
    /// Default token lifetime in seconds (1-86400).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_TOKEN_TTL",
        default_value_t = 3600,
        value_name = "SECS"
    )]
    token_ttl: u64,
    /// Create a demo app and client if needed, and print working credentials.
    #[arg(long, env = "MONEYKIT_AUTH_DEMO", value_parser = clap::builder::FalseyValueParser::new())]
    demo: bool,
    /// How long a rotated-in key is published before it signs.
    #[arg(long, env = "MONEYKIT_AUTH_KEY_ACTIVATION_DELAY", default_value = "10m", value_parser = super::parse_duration)]
    key_activation_delay: Duration,
    /// How long a key signs before scheduled rotation replaces it.
    #[arg(long, env = "MONEYKIT_AUTH_KEY_ROTATION_INTERVAL", default_value = "30d", value_parser = super::parse_duration)]
    key_rotation_interval: Duration,
    /// How often the server checks the database for changes (CLI edits, other replicas,
    /// revocations); changes reach it within this interval.
    #[arg(long, env = "MONEYKIT_AUTH_REFRESH_INTERVAL", default_value = "200ms", value_parser = super::parse_duration)]
    refresh_interval: Duration,
    /// Longest time a request may take.
    #[arg(long, env = "MONEYKIT_AUTH_REQUEST_TIMEOUT", default_value = "10s", value_parser = super::parse_duration)]
    request_timeout: Duration,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MONEYKIT_AUTH_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    max_body_bytes: usize,
    /// Most database connections this process opens (PostgreSQL; the hot path uses none).
    #[arg(long, env = "MONEYKIT_AUTH_DB_MAX_CONNECTIONS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_max_connections: u32,
    /// Deliver webhooks to http:// URLs too (default: https only).
    #[arg(long, env = "MONEYKIT_AUTH_WEBHOOKS_ALLOW_HTTP", value_parser = clap::builder::FalseyValueParser::new())]
    webhooks_allow_http: bool,
    /// Deliver webhooks to hosts that resolve to loopback, private or link-local addresses
    /// (default: refused, so an app's URL cannot reach into the server's network).
    #[arg(long, env = "MONEYKIT_AUTH_WEBHOOKS_ALLOW_PRIVATE_TARGETS", value_parser = clap::builder::FalseyValueParser::new())]
    webhooks_allow_private_targets: bool,
    /// How long one webhook delivery may take.
    #[arg(long, env = "MONEYKIT_AUTH_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = super::parse_duration)]
    webhook_timeout: Duration,
    /// Wait before the second delivery attempt; each later wait doubles (with jitter), up
    /// to an hour.
    #[arg(long, env = "MONEYKIT_AUTH_WEBHOOK_RETRY_BASE", default_value = "10s", value_parser = super::parse_duration)]
    webhook_retry_base: Duration,
    /// How long after its creation an event is retried before it is marked failed.
    #[arg(long, env = "MONEYKIT_AUTH_WEBHOOK_RETRY_WINDOW", default_value = "24h", value_parser = super::parse_duration)]
    webhook_retry_window: Duration,
    /// Most deliveries in flight to one endpoint from this process.
    #[arg(long, env = "MONEYKIT_AUTH_WEBHOOK_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    webhook_concurrency: u16,
    /// Test webhooks one app may trigger per minute (`POST /webhooks/test/link/{id}`);
    /// past it, 429 until the budget refills (0: no limit).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_WEBHOOK_TEST_RATE_PER_APP",
        default_value_t = 120
    )]
    webhook_test_rate_per_app: u32,
    /// Test webhooks one client may trigger per minute (0: no limit).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_WEBHOOK_TEST_RATE_PER_CLIENT",
        default_value_t = 60
    )]
    webhook_test_rate_per_client: u32,
    /// Most pending webhook events one app may have; past it the test trigger answers
    /// 429 until deliveries catch up (0: no cap).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_WEBHOOK_MAX_PENDING_PER_APP",
        default_value_t = 1000
    )]
    webhook_max_pending_per_app: u32,
    /// How long delivered and failed webhook events are kept, from when they finished;
    /// older ones are deleted (0: keep them forever).
    #[arg(long, env = "MONEYKIT_AUTH_WEBHOOK_RETENTION", default_value = "7d", value_parser = super::parse_duration)]
    webhook_retention: Duration,
    /// Tokens one client may be issued per second, sustained (0: no limit). Clients should
    /// reuse a token for its lifetime; this stops one that does not from starving others.
    #[arg(
        long,
        env = "MONEYKIT_AUTH_TOKEN_RATE_PER_CLIENT",
        default_value_t = 1000.0
    )]
    token_rate_per_client: f64,
    /// Tokens one client may be issued at once after a quiet period.
    #[arg(
        long,
        env = "MONEYKIT_AUTH_TOKEN_BURST_PER_CLIENT",
        default_value_t = 2000.0
    )]
    token_burst_per_client: f64,
    /// Failed client authentications one source address may make per minute; past it,
    /// the address is refused (429) until its budget refills (0: no limit).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_AUTH_FAILURES_PER_ADDRESS",
        default_value_t = 60
    )]
    auth_failures_per_address: u32,
    /// Failed authentications against one client id per minute; past it, wrong secrets
    /// for that id get 429 (right ones still work) (0: no limit).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_AUTH_FAILURES_PER_CLIENT",
        default_value_t = 20
    )]
    auth_failures_per_client: u32,
    /// Revocation requests (`/oauth2/revoke`) one client may make per minute; each one of
    /// a valid token is a durable write (0: no limit).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_REVOCATIONS_PER_CLIENT",
        default_value_t = 600
    )]
    revocations_per_client: u32,
    /// Behind a proxy or load balancer: the header whose last value is the client's
    /// address (e.g. X-Forwarded-For). Without it, the TCP peer is the client.
    #[arg(long, env = "MONEYKIT_AUTH_CLIENT_IP_HEADER")]
    client_ip_header: Option<axum::http::HeaderName>,
    /// Serve the admin API and Prometheus `/metrics` on this address (off by default; keep
    /// it off the public network). Needs MONEYKIT_AUTH_ADMIN_TOKEN.
    #[arg(long, env = "MONEYKIT_AUTH_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Serve HTTPS: the certificate chain (PEM). Reloaded on SIGHUP or when it changes.
    #[arg(long, env = "MONEYKIT_AUTH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "MONEYKIT_AUTH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Most connections served at once; more wait in the kernel's backlog.
    #[arg(long, env = "MONEYKIT_AUTH_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Most connections one source address (an IPv6 one: its /64) may hold at once; more
    /// are closed as they arrive. Peers in --trusted-proxy are exempt (0: no limit).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 512
    )]
    max_connections_per_address: usize,
    /// A proxy in front (an address or CIDR; repeatable, comma-separated in the env var):
    /// --client-ip-header is believed only from these peers, and they are exempt from
    /// --max-connections-per-address.
    #[arg(
        long,
        env = "MONEYKIT_AUTH_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    trusted_proxy: Vec<crate::net::Cidr>,
    /// How long a kept-alive connection may wait for its next request. Keep it longer than
    /// the idle timeout of a load balancer in front (AWS ALB: 60 s). 0: one request per
    /// connection.
    #[arg(long, env = "MONEYKIT_AUTH_KEEP_ALIVE_TIMEOUT", default_value = "75s", value_parser = super::parse_duration)]
    keep_alive_timeout: Duration,
    /// How long a database operation waits for a connection before it fails (PostgreSQL).
    #[arg(long, env = "MONEYKIT_AUTH_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = super::parse_duration)]
    db_acquire_timeout: Duration,
    /// Apply pending schema migrations at start. Without it a database that lacks
    /// migrations is refused (run `moneykit-auth migrate`); an empty one is initialized.
    #[arg(long, env = "MONEYKIT_AUTH_MIGRATE", value_parser = clap::builder::FalseyValueParser::new())]
    migrate: bool,
    /// On SIGTERM or Ctrl-C: how long to keep serving with readiness at 503 before the
    /// listener closes, so a load balancer moves traffic away first (a second signal ends
    /// it early).
    #[arg(long, env = "MONEYKIT_AUTH_SHUTDOWN_DELAY", default_value = "5s", value_parser = super::parse_duration)]
    shutdown_delay: Duration,
    /// Log every request at info (target `access`): method, path without the query,
    /// status, duration_ms, client address, request id. Off by default (a proxy in front
    /// usually logs requests already).
    #[arg(long, env = "MONEYKIT_AUTH_ACCESS_LOG", value_parser = clap::builder::FalseyValueParser::new())]
    access_log: bool,
    /// Accept a private_key_jwt client assertion only if its `aud` is this server's issuer
    /// identifier, as a single string (draft-ietf-oauth-rfc7523bis, FAPI 2.0). Without it,
    /// the exact URL of an endpoint where clients authenticate (token, introspection,
    /// revocation), and an array holding one of these, are accepted
    /// too, for clients that still send them; metadata lists what is accepted.
    #[arg(long, env = "MONEYKIT_AUTH_STRICT_ASSERTION_AUDIENCE", value_parser = clap::builder::FalseyValueParser::new())]
    strict_assertion_audience: bool,
    /// Longest a client assertion may still be valid for (its `exp` ahead of now).
    #[arg(long, env = "MONEYKIT_AUTH_ASSERTION_MAX_LIFETIME", default_value = "5m", value_parser = super::parse_duration)]
    assertion_max_lifetime: Duration,
    /// Longest lifetime (`exp` - `iat`) of a platform token a federated workload presents.
    #[arg(long, env = "MONEYKIT_AUTH_FEDERATION_MAX_TOKEN_LIFETIME", default_value = "24h", value_parser = super::parse_duration)]
    federation_max_token_lifetime: Duration,
    /// Fetch client JWKS URIs and trusted issuers' keys over http:// too (default: https).
    #[arg(long, env = "MONEYKIT_AUTH_JWKS_ALLOW_HTTP", value_parser = clap::builder::FalseyValueParser::new())]
    jwks_allow_http: bool,
    /// Fetch keys from hosts that resolve to loopback, private or link-local addresses
    /// (default: refused, like webhook targets).
    #[arg(long, env = "MONEYKIT_AUTH_JWKS_ALLOW_PRIVATE_TARGETS", value_parser = clap::builder::FalseyValueParser::new())]
    jwks_allow_private_targets: bool,
    /// Least time between two fetches of one JWKS: how often an assertion with an
    /// unknown `kid` can make the server look for a new key.
    #[arg(long, env = "MONEYKIT_AUTH_JWKS_REFETCH_INTERVAL", default_value = "30s", value_parser = super::parse_duration)]
    jwks_refetch_interval: Duration,
    /// How far a DPoP proof's `iat` may be from the server's time, either way (RFC 9449
    /// §11.1); a proof's `jti` is remembered that long.
    #[arg(long, env = "MONEYKIT_AUTH_DPOP_PROOF_WINDOW", default_value = "60s", value_parser = super::parse_duration)]
    dpop_proof_window: Duration,
    /// Demand a fresh server nonce in the DPoP proof of every token request (RFC 9449
    /// §8): a proof without one is answered `use_dpop_nonce` with the nonce in a
    /// `DPoP-Nonce` header. Nonces are derived from MONEYKIT_AUTH_SECRET, so every replica
    /// accepts every other's.
    #[arg(long, env = "MONEYKIT_AUTH_DPOP_NONCE", value_parser = clap::builder::FalseyValueParser::new())]
    dpop_nonce: bool,
    /// How often the DPoP nonce changes; a nonce is accepted for one to two periods.
    #[arg(long, env = "MONEYKIT_AUTH_DPOP_NONCE_PERIOD", default_value = "5m", value_parser = super::parse_duration)]
    dpop_nonce_period: Duration,
    /// The CAs (PEM) a tls_client_auth client's certificate must chain to. Over TLS the
    /// server asks every client for a certificate and never requires one.
    #[arg(long, env = "MONEYKIT_AUTH_CLIENT_CA_FILE", value_name = "PEM")]
    client_ca_file: Option<std::path::PathBuf>,
    /// Behind a proxy that terminates TLS: the header it forwards the client's certificate
    /// in, URL-encoded PEM (nginx $ssl_client_escaped_cert) or Envoy's
    /// X-Forwarded-Client-Cert. Believed only from --trusted-proxy addresses (required).
    #[arg(long, env = "MONEYKIT_AUTH_CLIENT_CERT_HEADER", value_name = "NAME")]
    client_cert_header: Option<axum::http::HeaderName>,
    /// A client whose last live secret expires within this long counts in the metric
    /// moneykit_auth_client_secrets_expiring, and its app is sent a
    /// client.secret_expiring webhook event (once).
    #[arg(long, env = "MONEYKIT_AUTH_SECRET_EXPIRY_WARNING", default_value = "7d", value_parser = super::parse_duration)]
    secret_expiry_warning: Duration,
    /// How long audit records are kept ("0": forever).
    #[arg(long, env = "MONEYKIT_AUTH_AUDIT_RETENTION", default_value = "365d", value_parser = super::parse_duration)]
    audit_retention: Duration,
    /// Stream the audit trail as JSON lines while it grows, to this file (appended to,
    /// 0600, resumed after its last record) or "-" for standard output.
    #[arg(long, env = "MONEYKIT_AUTH_AUDIT_LOG", value_name = "FILE|-")]
    audit_log: Option<String>,
    /// Print the effective settings as TOML, each with where it came from (flag, env, file,
    /// default), secrets masked; then exit without opening the database.
    #[arg(long)]
    print_config: bool,
}

fn parse_issuer(text: &str) -> Result<String, String> {
    let ok = (text.starts_with("https://") || text.starts_with("http://"))
        && text.len() > "https://".len()
        && !text.contains(char::is_whitespace);
    if ok {
        Ok(text.trim_end_matches('/').to_owned())
    } else {
        Err("expected an http:// or https:// URL".into())
    }
}

fn parse_audience(text: &str) -> Result<String, String> {
    crate::domain::audience::check_audience(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

pub(super) async fn run(args: ServeArgs, db: &Database, out: Output) -> anyhow::Result<()> {
    let mut settings = ServeSettings::new(db.url());
    settings.create_database = db.named() || args.demo;
    settings.migrate = args.migrate || args.demo;
    settings.shutdown_delay = args.shutdown_delay;
    settings.listen = args.listen;
    settings.issuer = args.issuer;
    settings.audience = args.audience;
    settings.publish_scopes = args.publish_scopes;
    settings.token_ttl_secs = check_token_ttl(args.token_ttl)?;
    settings.demo = args.demo;
    settings.master_secret = super::config_file::master_secret();
    settings.refresh.key_activation_delay = time::Duration::try_from(args.key_activation_delay)?;
    settings.refresh.key_rotation_interval = time::Duration::try_from(args.key_rotation_interval)?;
    settings.refresh.secret_expiry_warning = time::Duration::try_from(args.secret_expiry_warning)?;
    settings.refresh.audit_retention = match args.audit_retention.is_zero() {
        true => None,
        false => Some(time::Duration::try_from(args.audit_retention)?),
    };
    settings.refresh.webhook_retry_window = args.webhook_retry_window;
    settings.audit_log = args
        .audit_log
        .as_deref()
        .map(crate::operations::audit_log::AuditSink::parse);
    settings.limits.request_timeout = args.request_timeout;
    settings.refresh.poll_interval = args.refresh_interval;
    settings.limits.max_body_bytes = args.max_body_bytes;
    settings.pool.max_connections = args.db_max_connections;
    settings.pool.acquire_timeout = args.db_acquire_timeout;
    let per_minute = |n: u32| {
        if n == 0 {
            Rate::UNLIMITED
        } else {
            Rate::per(n, Duration::from_secs(60))
        }
    };
    settings.rate_limits.issuance_per_client = Rate {
        per_second: args.token_rate_per_client.max(0.0),
        burst: args.token_burst_per_client.max(1.0),
    };
    settings.rate_limits.failures_per_address = per_minute(args.auth_failures_per_address);
    settings.rate_limits.failures_per_client = per_minute(args.auth_failures_per_client);
    settings.rate_limits.revocations_per_client = per_minute(args.revocations_per_client);
    settings.rate_limits.webhook_tests_per_app = per_minute(args.webhook_test_rate_per_app);
    settings.rate_limits.webhook_tests_per_client = per_minute(args.webhook_test_rate_per_client);
    settings.connection.client_ip_header = args.client_ip_header;
    settings.connection.max_connections = args.max_connections.max(1);
    settings.connection.max_connections_per_address = args.max_connections_per_address;
    settings.connection.trusted_proxies = args.trusted_proxy;
    settings.connection.keep_alive_timeout = args.keep_alive_timeout;
    settings.admin_listen = args.admin_listen;
    settings.tls = args
        .tls_cert
        .zip(args.tls_key)
        .map(|(cert, key)| crate::http::tls::TlsFiles { cert, key });
    settings.admin_token = super::config_file::admin_token();
    settings.access_log = args.access_log;
    settings.webhooks.policy.allow_http = args.webhooks_allow_http;
    settings.webhooks.policy.allow_private_targets = args.webhooks_allow_private_targets;
    settings.webhooks.request_timeout = args.webhook_timeout;
    settings.webhooks.retry_base = args.webhook_retry_base;
    settings.webhooks.retry_window = args.webhook_retry_window;
    settings.webhooks.per_endpoint_concurrency = usize::from(args.webhook_concurrency);
    settings.webhooks.max_pending_per_app = args.webhook_max_pending_per_app;
    settings.webhooks.retention = args.webhook_retention;
    let secretless = &mut settings.secretless;
    secretless.strict_assertion_audience = args.strict_assertion_audience;
    secretless.assertion_max_lifetime = args.assertion_max_lifetime;
    secretless.federation_max_token_lifetime = args.federation_max_token_lifetime;
    secretless.key_fetch.policy.allow_http = args.jwks_allow_http;
    secretless.key_fetch.policy.allow_private_targets = args.jwks_allow_private_targets;
    secretless.key_fetch.min_refetch_interval = args.jwks_refetch_interval;
    let sender = &mut settings.sender;
    sender.dpop_proof_window = args.dpop_proof_window;
    sender.dpop_nonce = args.dpop_nonce;
    sender.dpop_nonce_period = args.dpop_nonce_period;
    sender.client_ca_file = args.client_ca_file;
    sender.client_cert_header = args.client_cert_header;

    let relaxed = &settings.webhooks.policy;
    let (allow_http, allow_private) = (relaxed.allow_http, relaxed.allow_private_targets);
    let key_fetch = settings.secretless.key_fetch.policy;
    let strict_audience = settings.secretless.strict_assertion_audience;
    let dpop_nonce = settings.sender.dpop_nonce;
    let app = Application::build(settings)
        .await
        .map_err(|e| match e.downcast::<StoreError>() {
            Ok(e) => db.explain(e),
            Err(e) => e,
        })?;
    if allow_http || allow_private {
        tracing::warn!(
            allow_http,
            allow_private_targets = allow_private,
            "webhook delivery policy relaxed: for development and tests only"
        );
    }
    if dpop_nonce {
        tracing::info!(
            "DPoP nonces on: a token request's DPoP proof must carry the server's current nonce"
        );
    }
    if strict_audience {
        tracing::info!(
            "strict assertion audience: client assertions must name the issuer alone, as a single string"
        );
    }
    if key_fetch.allow_http || key_fetch.allow_private_targets {
        tracing::warn!(
            allow_http = key_fetch.allow_http,
            allow_private_targets = key_fetch.allow_private_targets,
            "key fetch policy relaxed: for development and tests only"
        );
    }
    match app.master_key_origin() {
        MasterKeyOrigin::Secret => {}
        MasterKeyOrigin::KeyFile(path, created) => tracing::warn!(
            key_file = %path.display(),
            created,
            "MONEYKIT_AUTH_SECRET is not set: signing keys are sealed with a key file beside \
             the database. Fine for development; in production set MONEYKIT_AUTH_SECRET and keep \
             it out of the database's backups"
        ),
        MasterKeyOrigin::Ephemeral => tracing::warn!(
            "MONEYKIT_AUTH_SECRET is not set and the database is in memory: signing keys are \
             sealed with a throwaway key"
        ),
    }
    if let Some(demo) = app.demo_credentials() {
        let base = format!("http://{}", app.local_addr());
        let (app_id, id, secret) = (&demo.app.id, &demo.client.id, demo.secret.expose());
        let value = serde_json::json!({
            "app_id": app_id,
            "client_id": id,
            "client_secret": secret,
            "token_url": format!("{base}/auth/token"),
        });
        out.emit(&value, || {
            format!(
                "\nDemo app {app_id} and client ready (the secret is new on every `serve --demo`):\n\
                 \n  client_id:     {id}\n  client_secret: {secret}\n\
                 \nGet a token:\n\n  curl -i -X POST {base}/auth/token -u '{id}:{secret}' -d grant_type=client_credentials\n\
                 \nThen: curl {base}/auth/introspect -H 'Authorization: Bearer <access_token>'\n"
            )
        });
    }
    app.run_until_stopped(stop_signals()).await
}

/// One item per SIGINT (Ctrl-C) or SIGTERM: the first starts the shutdown, a second cuts
/// its delay short.
fn stop_signals() -> impl futures_util::Stream<Item = ()> + Send {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(not(unix))]
    let terminate: Option<()> = None;
    futures_util::stream::unfold(terminate, |mut terminate| async move {
        #[cfg(unix)]
        let term = async {
            match terminate.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            () = term => {},
        }
        Some(((), terminate))
    })
}
