//! Building and running the server: open the store, make sure a signing key exists, build
//! the first snapshot, bind the listener, then serve (and deliver webhooks) until told to
//! stop.
//!
//! [`Application::build`] binds before it returns, so a caller that asked for port 0 can
//! read the real port from [`Application::port`] — this is how the integration tests run
//! a real server per test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{MasterKeyOrigin, ServeSettings, check_master_secret, resolve_master_key};
use crate::domain::clients::{App, Client};
use crate::domain::secrets::ClientSecret;
use crate::engine::Assertions;
use crate::engine::dpop::{DpopSettings, NonceKey};
use crate::engine::ratelimit::RateLimits;
use crate::engine::refresh::Health;
use crate::engine::refresh::Refresher;
use crate::engine::remote_keys::{KeyFetcher, RemoteKeys};
use crate::engine::replay::ReplayCache;
use crate::engine::snapshot::{AssertionSettings, TokenSettings};
use crate::engine::verified::VerifiedTokens;
use crate::http::server::{self, ConnectionLimits, Phase};
use crate::http::state::{AppState, Shared};
use crate::http::tls::ReloadingConfig;
use crate::http::{self, admin_api};
use crate::metrics::{History, Metrics, history};
use crate::operations;
use crate::operations::audit_log::{self, AuditStream};
use crate::store::{self, Migrations, OpenMode, Store, StoreError};
use crate::webhooks::worker::Worker;

/// Credentials created by `serve --demo`, to print once.
#[derive(Debug)]
pub struct DemoCredentials {
    /// The demo app.
    pub app: App,
    /// The demo client.
    pub client: Client,
    /// Its secret in clear.
    pub secret: ClientSecret,
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    issuer: String,
    router: axum::Router,
    refresher: Refresher,
    key_fetcher: KeyFetcher,
    webhooks: Arc<Worker>,
    admin: Option<(TcpListener, axum::Router)>,
    /// The console's record of the last hour's traffic, sampled while the admin listener
    /// serves.
    history: Option<Arc<History>>,
    tls: Option<Arc<ReloadingConfig>>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    connection: ConnectionLimits,
    health: Arc<Health>,
    shutdown_delay: Duration,
    master_key_origin: MasterKeyOrigin,
    demo: Option<DemoCredentials>,
    audit_log: Option<AuditStream>,
}

impl Application {
    /// Binds the listener, opens the store, checks the master key against the stored
    /// keys, creates the first signing key if there is none, and builds the first
    /// snapshot. Everything that can fail without writing (secret shape, port in use,
    /// wrong master key) is checked before anything is written.
    pub async fn build(mut settings: ServeSettings) -> anyhow::Result<Self> {
        check_master_secret(&settings.database_url, settings.master_secret.as_deref())?;
        let admin_token = match settings.admin_listen {
            Some(_) => Some(admin_api::token_digest(settings.admin_token.as_deref())?),
            None => None,
        };
        if let Some(sink) = &settings.audit_log {
            audit_log::check(sink).context("cannot open --audit-log")?;
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let admin_listener = match settings.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (--admin-listen)"))?,
            ),
            None => None,
        };
        let local_addr = listener.local_addr()?;
        let client_cas = settings
            .sender
            .client_ca_file
            .as_deref()
            .map(http::mtls::load_client_cas)
            .transpose()?;
        let request_certificates: Arc<dyn rustls::server::danger::ClientCertVerifier> = Arc::new(
            http::mtls::RequestClientCertificate::new(client_cas.clone()),
        );
        let tls = settings
            .tls
            .clone()
            .map(|files| ReloadingConfig::new(files, request_certificates))
            .transpose()?
            .map(Arc::new);
        let cert_header = settings.sender.client_cert_header.clone();
        anyhow::ensure!(
            cert_header.is_none() || !settings.connection.trusted_proxies.is_empty(),
            "--client-cert-header needs --trusted-proxy: the header is believed only from the \
             proxies listed there (anyone else could send any certificate in it)"
        );
        let client_certificates = tls.is_some() || cert_header.is_some();
        settings.connection.certificates = Arc::new(http::mtls::CertificateSource {
            ca: client_cas,
            header: cert_header,
        });

        let store = open_store(&settings, &listener, tls.clone()).await?;
        let audit_log = match settings.audit_log.take() {
            Some(sink) => Some(AuditStream::start(store.as_ref(), sink).await?),
            None => None,
        };
        let (master, master_key_origin) = resolve_master_key(
            &settings.database_url,
            settings.master_secret.as_deref(),
            &store.list_keys().await?,
        )?;
        if let Some(key) = operations::ensure_first_key(store.as_ref(), &master).await? {
            tracing::info!(kid = %key.kid, "created the first signing key");
        }
        let demo = if settings.demo {
            let (app, client, secret) = operations::ensure_demo_client(store.as_ref()).await?;
            Some(DemoCredentials {
                app,
                client,
                secret,
            })
        } else {
            None
        };
        let issuer = settings.issuer.clone().unwrap_or_else(|| {
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{local_addr}")
        });
        let secretless = &settings.secretless;
        let assertions = AssertionSettings::new(
            &issuer,
            secretless.strict_assertion_audience,
            secretless.assertion_max_lifetime,
            secretless.federation_max_token_lifetime,
        );
        let tokens = Arc::new(TokenSettings {
            audience: settings.audience.clone().unwrap_or_else(|| issuer.clone()),
            issuer: issuer.clone(),
            default_ttl_secs: settings.token_ttl_secs,
            publish_scopes: settings.publish_scopes,
            assertions,
            dpop: DpopSettings {
                window_secs: i64::try_from(settings.sender.dpop_proof_window.as_secs())
                    .unwrap_or(i64::MAX),
                nonces: settings.sender.dpop_nonce.then(|| {
                    NonceKey::new(
                        &master.derive("moneykit-auth DPoP nonce"),
                        i64::try_from(settings.sender.dpop_nonce_period.as_secs())
                            .unwrap_or(i64::MAX),
                    )
                }),
            },
            client_certificates,
        });
        let health = Arc::new(Health::default());
        let shutdown_delay = settings.shutdown_delay;
        let admin_master = master.clone();
        let key_activation_delay = settings.refresh.key_activation_delay;
        let secret_expiry_warning = settings.refresh.secret_expiry_warning;
        let refresher = Refresher::start(
            store.clone(),
            master,
            tokens,
            health.clone(),
            settings.refresh,
        )
        .await?;
        let remote_keys = Arc::new(RemoteKeys::new(secretless.key_fetch));
        let key_fetcher = KeyFetcher::new(remote_keys.clone(), refresher.cell())?;
        let (routes, document) = http::routes::table().split_for_parts();
        let metrics = Arc::new(Metrics::new(http::routes::labels(&document)));
        let webhooks = Arc::new(Worker::new(
            store.clone(),
            refresher.cell(),
            settings.webhooks.clone(),
            metrics.clone(),
        )?);
        let state = AppState::new(Shared {
            snapshot: refresher.cell(),
            health,
            metrics: metrics.clone(),
            revocations: refresher.revocations(),
            store: store.clone(),
            openapi_json: http::openapi_document(document, &issuer),
            verified: Arc::new(VerifiedTokens::new(settings.verified_token_cache)),
            webhook_waker: webhooks.waker(),
            webhook_retry_window: settings.webhooks.retry_window,
            webhook_max_pending: settings.webhooks.max_pending_per_app,
            limits: Arc::new(RateLimits::new(settings.rate_limits)),
            assertions: Arc::new(Assertions {
                remote_keys: remote_keys.clone(),
                replay: ReplayCache::new(secretless.replay_capacity),
                proofs: ReplayCache::new(settings.sender.dpop_replay_capacity),
                proof_keys: Default::default(),
            }),
        });
        let history = Arc::new(History::new());
        let admin = match (admin_listener, admin_token) {
            (Some(listener), Some(token_digest)) => {
                let admin_state = Arc::new(http::state::AdminState {
                    store: store.clone(),
                    metrics: metrics.clone(),
                    snapshot: refresher.cell(),
                    health: state.health.clone(),
                    master: admin_master,
                    key_activation_delay,
                    webhook_retry_window: settings.webhooks.retry_window,
                    webhook_waker: webhooks.waker(),
                    webhook_policy: settings.webhooks.policy,
                    key_fetch_policy: secretless.key_fetch.policy,
                    token_digest,
                    public: state.clone(),
                    refusals: Default::default(),
                    secret_expiry_warning,
                    console: http::console::session::Sessions::new(tls.is_some()),
                    history: history.clone(),
                });
                Some((listener, admin_api::router(admin_state, settings.limits)))
            }
            _ => None,
        };
        Ok(Self {
            history: admin.is_some().then_some(history),
            admin,
            tls,
            health: state.health.clone(),
            router: http::router(routes, state, settings.limits, settings.access_log),
            listener,
            local_addr,
            issuer,
            refresher,
            key_fetcher,
            webhooks,
            store,
            metrics,
            connection: settings.connection,
            shutdown_delay,
            master_key_origin,
            demo,
            audit_log,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the admin API listens, when enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The issuer tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The store, for tests and tools that share the server's database.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The server's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The live snapshot cell, so tests can wait until a change has been picked up.
    pub fn snapshot_cell(&self) -> Arc<crate::engine::snapshot::SnapshotCell> {
        self.refresher.cell()
    }

    /// How the master key was obtained (for the start-up message).
    pub fn master_key_origin(&self) -> &MasterKeyOrigin {
        &self.master_key_origin
    }

    /// The demo credentials, when built with `demo`.
    pub fn demo_credentials(&self) -> Option<&DemoCredentials> {
        self.demo.as_ref()
    }

    /// Serves until the first item of `signals`, then drains: readiness turns 503 at once
    /// and every HTTP/1 response says `Connection: close`, while the listeners keep
    /// accepting for the shutdown delay (a second signal cuts it short), so a load
    /// balancer moves traffic away before they close. Then it stops accepting, lets the
    /// requests in flight finish (up to the shutdown grace period) and stops the
    /// background tasks.
    pub async fn run_until_stopped(
        self,
        signals: impl Stream<Item = ()> + Send,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let refresh = tokio::spawn(self.refresher.run(stop_rx.clone()));
        let key_fetcher = tokio::spawn(self.key_fetcher.run(stop_rx.clone()));
        if let Some(stream) = self.audit_log {
            tokio::spawn(audit_log::run(self.store.clone(), stream, stop_rx.clone()));
        }
        if let Some(history) = &self.history {
            tokio::spawn(history::run(
                self.metrics.clone(),
                history.clone(),
                stop_rx.clone(),
            ));
        }
        if let Some(tls) = &self.tls {
            tokio::spawn(
                tls.clone()
                    .watch(stop_rx.clone(), std::time::Duration::from_secs(2)),
            );
        }
        let webhooks = tokio::spawn(
            self.webhooks
                .clone()
                .run(stop_rx, self.connection.shutdown_grace),
        );

        let (phase_tx, phase) = watch::channel(Phase::Serving);
        let admin = self.admin.map(|(listener, router)| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "admin API listening");
            }
            tokio::spawn(server::serve(
                listener,
                router,
                self.connection.clone(),
                self.tls.clone(),
                phase.clone(),
            ))
        });
        tracing::info!(address = %self.local_addr, issuer = %self.issuer, "listening");
        let public = server::serve(self.listener, self.router, self.connection, self.tls, phase);
        tokio::pin!(public);
        let signals = signals.fuse();
        tokio::pin!(signals);
        tokio::select! {
            _ = signals.next() => {}
            () = &mut public => {}
        }
        self.health.start_draining();
        let _ = phase_tx.send(Phase::Draining);
        if !self.shutdown_delay.is_zero() {
            tracing::info!(
                delay_ms = u64::try_from(self.shutdown_delay.as_millis()).unwrap_or(u64::MAX),
                "stop requested: readiness is 503; still serving until the shutdown delay ends \
                 (signal again to skip it)"
            );
            tokio::select! {
                () = tokio::time::sleep(self.shutdown_delay) => {}
                _ = signals.next() => {}
                () = &mut public => {}
            }
        }
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = phase_tx.send(Phase::Stopping);
        public.await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        let _ = stop_tx.send(true);
        let _ = refresh.await;
        let _ = key_fetcher.await;
        let _ = webhooks.await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the database as the settings allow. An unreachable one is waited for: the
/// listener answers liveness (200) and everything else 503 meanwhile, and each attempt is
/// logged with its cause, so a server started before its database neither exits (a crash
/// loop under an orchestrator) nor takes traffic.
async fn open_store(
    settings: &ServeSettings,
    listener: &TcpListener,
    tls: Option<Arc<ReloadingConfig>>,
) -> anyhow::Result<Arc<dyn Store>> {
    const FIRST_RETRY: Duration = Duration::from_millis(500);
    const LONGEST_RETRY: Duration = Duration::from_secs(10);
    let url = settings.database_url.as_str();
    let mode = if settings.create_database {
        OpenMode::CreateIfMissing
    } else {
        OpenMode::MustExist
    };
    let migrations = if settings.migrate {
        Migrations::Apply
    } else {
        Migrations::ApplyIfEmpty
    };
    let mut retry_in = FIRST_RETRY;
    let mut waiting: Option<(watch::Sender<Phase>, tokio::task::JoinHandle<()>)> = None;
    let store = loop {
        match store::open(url, mode, migrations, &settings.pool).await {
            Ok(store) => break store,
            Err(StoreError::Unreachable(cause)) if settings.wait_for_database => {
                tracing::warn!(
                    database = %store::describe(url),
                    error = %cause,
                    retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
                    "database unreachable; not ready, retrying"
                );
                if waiting.is_none() {
                    waiting = Some(serve_while_waiting(listener, settings, tls.clone())?);
                    tracing::info!(
                        address = %listener.local_addr()?,
                        "listening for health checks only, until the database answers"
                    );
                }
                tokio::time::sleep(retry_in).await;
                retry_in = (retry_in * 2).min(LONGEST_RETRY);
            }
            Err(e) => return Err(e.into()),
        }
    };
    if let Some((phase, task)) = waiting {
        let _ = phase.send(Phase::Stopping);
        let _ = task.await;
        tracing::info!(database = %store::describe(url), "database reachable; starting");
    }
    tracing::info!(database = %store::describe(url), "opened the database");
    Ok(store)
}

/// Serves [`http::starting_router`] on a second handle to `listener` until told
/// to stop; the listener itself stays open for the real server.
fn serve_while_waiting(
    listener: &TcpListener,
    settings: &ServeSettings,
    tls: Option<Arc<ReloadingConfig>>,
) -> anyhow::Result<(watch::Sender<Phase>, tokio::task::JoinHandle<()>)> {
    let handle = second_handle(listener)?;
    let (phase_tx, phase) = watch::channel(Phase::Serving);
    // Every answer says `Connection: close`: clients reconnect, and so reach the real
    // server once it takes over, instead of holding a connection that is about to end.
    let _ = phase_tx.send(Phase::Draining);
    let mut connection = settings.connection.clone();
    connection.shutdown_grace = Duration::from_secs(1);
    let task = tokio::spawn(server::serve(
        handle,
        http::starting_router(),
        connection,
        tls,
        phase,
    ));
    Ok((phase_tx, task))
}

/// Another handle to the same listening socket.
#[cfg(unix)]
fn second_handle(listener: &TcpListener) -> std::io::Result<TcpListener> {
    use std::os::fd::AsFd;
    let fd = listener.as_fd().try_clone_to_owned()?;
    // The duplicate shares the socket and its non-blocking mode.
    TcpListener::from_std(std::net::TcpListener::from(fd))
}

#[cfg(not(unix))]
fn second_handle(_: &TcpListener) -> std::io::Result<TcpListener> {
    Err(std::io::Error::other("not supported on this platform"))
}
