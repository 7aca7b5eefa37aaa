//! `spawn_app()` and friends: a real server per test, on a free port, with a fresh
//! database. Logs stay quiet unless `TEST_LOG` is set.
//!
//! The backend is SQLite (a file in a temporary directory) unless
//! `MONEYKIT_TEST_BACKEND=postgres`: then each test gets a new database on a PostgreSQL
//! cluster — the one `MONEYKIT_TEST_POSTGRES_URL` names (a URL whose user may create
//! databases), or a private cluster this test process starts once. The same suite runs
//! on both; the few tests about one backend's specifics say so.

use std::process::Output;
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

use moneykit_auth::config::ServeSettings;
use moneykit_auth::domain::clients::{App, Client};
use moneykit_auth::engine::snapshot::{Snapshot, SnapshotCell};
use moneykit_auth::metrics::Metrics;
use moneykit_auth::operations::{self, Actor, NewClient};
use moneykit_auth::startup::Application;
use moneykit_auth::store::Store;
use moneykit_wire::JwkSet;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

// The CLI, the master secret, requests and their encodings, shared with the cluster test.
pub use crate::support::cli::*;
pub use crate::support::*;

/// Whether this run tests the PostgreSQL backend.
pub fn on_postgres() -> bool {
    std::env::var("MONEYKIT_TEST_BACKEND").is_ok_and(|b| b.eq_ignore_ascii_case("postgres"))
}

/// The URL through which test databases are created on PostgreSQL.
fn postgres_admin_url() -> String {
    static CLUSTER: OnceLock<String> = OnceLock::new();
    CLUSTER
        .get_or_init(|| match std::env::var("MONEYKIT_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                let cluster = Box::leak(Box::new(crate::support::postgres::PgCluster::start()));
                cluster.url("postgres")
            }
        })
        .clone()
}

/// One test's database, and a directory for any files beside it.
pub struct TestDb {
    pub url: String,
    /// Holds the SQLite file (and any key file beside it) until the test ends.
    _dir: TempDir,
}

impl TestDb {
    /// A new, empty database on the backend under test.
    pub async fn new() -> Arc<Self> {
        let dir = tempfile::tempdir().unwrap();
        let url = if on_postgres() {
            let admin = tokio::task::spawn_blocking(postgres_admin_url)
                .await
                .unwrap();
            crate::support::postgres::create_database(&admin).await
        } else {
            format!("sqlite://{}", dir.path().join("test.db").display())
        };
        Arc::new(Self { url, _dir: dir })
    }
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    /// The admin API's base URL, when the server was built with one.
    pub admin_base: Option<String>,
    pub issuer: String,
    pub database_url: String,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    cell: Arc<SnapshotCell>,
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: Arc<TestDb>,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("debug")
                .with_test_writer()
                .init();
        }
    });
}

/// Settings for a test server on `db`: port 0, the test secret, fast refresh.
pub fn test_settings(db: &TestDb) -> ServeSettings {
    let mut settings = ServeSettings::new(db.url.clone());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.master_secret = Some(TEST_SECRET.into());
    settings.create_database = true;
    settings.shutdown_delay = Duration::ZERO;
    settings.refresh.poll_interval = Duration::from_millis(50);
    // Tests ask for many tokens quickly; the limits suite sets its own budgets.
    settings.rate_limits.issuance_per_client = moneykit_auth::engine::ratelimit::Rate::UNLIMITED;
    settings
}

/// The admin token of [`spawn_admin_app_with`]'s servers.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

/// A server with an admin listener (token [`ADMIN_TOKEN`]) and settings adjusted by
/// `adjust`.
pub async fn spawn_admin_app_with(adjust: impl FnOnce(&mut ServeSettings)) -> TestApp {
    spawn_app_with(|s| {
        s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        s.admin_token = Some(ADMIN_TOKEN.into());
        adjust(s);
    })
    .await
}

/// A server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server with settings adjusted by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ServeSettings)) -> TestApp {
    let db = TestDb::new().await;
    let mut settings = test_settings(&db);
    adjust(&mut settings);
    spawn_on(db, settings).await
}

/// A server on an existing database (for restarts, and several servers on one database).
pub async fn spawn_on(db: Arc<TestDb>, settings: ServeSettings) -> TestApp {
    init_logs();
    let database_url = settings.database_url.clone();
    let app = Application::build(settings).await.expect("server builds");
    let base = format!("http://{}", app.local_addr());
    let admin_base = app.admin_addr().map(|a| format!("http://{a}"));
    let issuer = app.issuer().to_owned();
    let store = app.store();
    let cell = app.snapshot_cell();
    let metrics = app.metrics();
    let (stop, stopped) = oneshot::channel();
    let stop_signal = futures_util::stream::once(async {
        let _ = stopped.await;
    });
    let server = tokio::spawn(app.run_until_stopped(stop_signal));
    TestApp {
        base,
        admin_base,
        issuer,
        database_url,
        store,
        http: reqwest::Client::new(),
        cell,
        metrics,
        stop: Some(stop),
        server: Some(server),
        db,
    }
}

impl TestApp {
    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
    }

    /// The server's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The snapshot the server serves from now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.cell.load().clone()
    }

    /// Waits until the server's snapshot reflects every write made so far.
    pub async fn synced(&self) {
        let target = self.store.revision().await.unwrap();
        wait_until(Duration::from_secs(2), || {
            self.cell.load().revision >= target
        })
        .await
        .expect("the server picked up the change");
    }

    /// Disables `client_id` (from `at`, or now) as the CLI does, and waits until the
    /// server has picked the change up.
    pub async fn disable_client(&self, client_id: &str, at: Option<OffsetDateTime>) {
        operations::disable_client(self.store.as_ref(), client_id, at, &Actor::cli())
            .await
            .unwrap();
        self.synced().await;
    }

    /// Enables `client_id` again, and waits until the server has picked the change up.
    pub async fn enable_client(&self, client_id: &str) {
        operations::enable_client(self.store.as_ref(), client_id, &Actor::cli())
            .await
            .unwrap();
        self.synced().await;
    }

    pub async fn create_app(&self, name: &str) -> App {
        let app = operations::create_app(self.store.as_ref(), name, &Actor::cli())
            .await
            .unwrap();
        self.synced().await;
        app
    }

    /// A client of a new app, with the given scopes (and optional TTL); returns the client
    /// and its secret.
    pub async fn create_client(&self, scope: &str, ttl: Option<u64>) -> (Client, String) {
        let app = operations::create_app(self.store.as_ref(), "Test App", &Actor::cli())
            .await
            .unwrap();
        self.create_client_in(&app.id, scope, ttl).await
    }

    pub async fn create_client_in(
        &self,
        app_id: &str,
        scope: &str,
        ttl: Option<u64>,
    ) -> (Client, String) {
        let new = NewClient {
            app_id: app_id.into(),
            name: "test client".into(),
            scope: scope.into(),
            audiences: Vec::new(),
            token_ttl_secs: ttl,
            require_dpop: false,
            secret_ttl_secs: None,
        };
        let (client, secret) = operations::create_client(self.store.as_ref(), &new, &Actor::cli())
            .await
            .unwrap();
        self.synced().await;
        (client, secret.expose().to_owned())
    }

    /// A client of a new app allowed `audiences` (the first its default).
    pub async fn create_client_with_audiences(
        &self,
        scope: &str,
        audiences: &[&str],
    ) -> (Client, String) {
        let app = operations::create_app(self.store.as_ref(), "Test App", &Actor::cli())
            .await
            .unwrap();
        let new = NewClient {
            app_id: app.id,
            name: "test client".into(),
            scope: scope.into(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            token_ttl_secs: None,
            require_dpop: false,
            secret_ttl_secs: None,
        };
        let (client, secret) = operations::create_client(self.store.as_ref(), &new, &Actor::cli())
            .await
            .unwrap();
        self.synced().await;
        (client, secret.expose().to_owned())
    }

    /// `POST /auth/token` with a raw form body and optional Basic header value.
    pub async fn post_token(&self, body: &str, authorization: Option<&str>) -> reqwest::Response {
        self.post_form("/auth/token", body, authorization).await
    }

    /// A token for the client via body credentials; panics unless 201.
    pub async fn token(&self, client_id: &str, secret: &str, scope: Option<&str>) -> String {
        token(&self.http, &self.base, (client_id, secret), scope).await
    }

    pub async fn introspect(&self, token: &str) -> reqwest::Response {
        introspect(&self.http, &self.base, token).await
    }

    pub async fn jwks(&self) -> JwkSet {
        serde_json::from_value(jwks(&self.http, &self.base).await).unwrap()
    }

    /// Runs the real CLI binary against this server's database.
    /// [`Self::cli`] on a blocking thread: the server, on this test's runtime, keeps
    /// running meanwhile.
    pub async fn cli_async(&self, args: &[&str]) -> Output {
        cli_async(&self.database_url, args).await
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.database_url, args)
    }

    /// A call to this server's admin API with `token` (the admin token or an admin
    /// client's access token): the status and the JSON answer.
    pub async fn admin_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!(
            "{}{path}",
            self.admin_base.as_ref().expect("an admin listener")
        );
        admin_call(&self.http, token, method, &url, body).await
    }
}

/// Tests that load this 2-core machine (floods, SIGTERM under load, rate measurements)
/// run one at a time, and never beside the tests whose assertions are timings.
static LOAD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Held by a test that puts the machine under load: it runs alone among the load and
/// timing tests.
pub async fn heavy_load() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    LOAD.write().await
}

/// Held by a test that asserts timings: it never runs beside a load test.
pub async fn timing_sensitive() -> tokio::sync::RwLockReadGuard<'static, ()> {
    LOAD.read().await
}

/// Probes every 20 ms until `probe` says the change is visible; panics, naming `what`,
/// only when a probe that began after `limit` still did not see it (a probe begun in time
/// but slowed by a busy machine does not count against the server's promise). Returns how
/// long it took.
pub async fn within<F, Fut>(limit: Duration, what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    loop {
        let began = tokio::time::Instant::now();
        if probe().await {
            return started.elapsed();
        }
        assert!(
            began - started < limit,
            "{what}: not visible {:?} after the change (promised within {limit:?})",
            began - started
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `condition` every 10 ms until it holds or `limit` passes; Err on timeout.
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            return Err(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A 201 from a token endpoint carrying a bearer token issued to `client_id`; returns
/// the token's claims.
pub async fn assert_issued_to(response: reqwest::Response, client_id: &str) -> Value {
    assert_eq!(response.status(), 201, "a token was issued");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer", "{body}");
    let token = body["access_token"].as_str().expect("an access_token");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["sub"], client_id, "{claims}");
    assert_eq!(claims["client_id"], client_id, "{claims}");
    claims
}

/// A 200 from `GET /auth/introspect` naming `client_id`.
pub async fn assert_introspected_as(response: reqwest::Response, client_id: &str) {
    assert_eq!(response.status(), 200, "the token is active");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], client_id, "{body}");
}

/// Asserts the MoneyKit + RFC 6749 error body and returns it.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    error_code: &str,
    rfc_error: Option<&str>,
) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "error bodies are JSON"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], error_code, "{body}");
    assert!(
        body["error_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body.get("documentation_url").is_some(), "{body}");
    match rfc_error {
        Some(e) => {
            assert_eq!(body["error"], e, "{body}");
            assert!(body["error_description"].is_string(), "{body}");
        }
        None => assert!(body.get("error").is_none(), "{body}"),
    }
    body
}

/// An error in both shapes whose RFC 6749 `error` is `rfc_error`, whatever its MoneyKit
/// code; returns the body.
pub async fn assert_rfc_error(response: reqwest::Response, status: u16, rfc_error: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], rfc_error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    assert!(
        body["error_code"]
            .as_str()
            .is_some_and(|c| c.starts_with("api_error.")),
        "{body}"
    );
    assert!(body["error_message"].is_string(), "{body}");
    body
}

/// A 400 `unsupported_version` naming the version this server speaks.
pub async fn assert_unsupported_version(response: reqwest::Response) {
    let error = assert_error(
        response,
        400,
        "api_error.request.unsupported_version",
        Some("invalid_request"),
    )
    .await;
    let message = error["error_message"].as_str().unwrap();
    assert!(message.contains("2023-02-18"), "{error}");
}

/// A 401 `invalid_client` from the token endpoint.
pub async fn assert_invalid_client(response: reqwest::Response) -> Value {
    assert_error(
        response,
        401,
        "api_error.auth.unauthorized",
        Some("invalid_client"),
    )
    .await
}

/// A 401 `invalid_token` from a bearer-protected endpoint.
pub async fn assert_invalid_token(response: reqwest::Response) -> Value {
    assert_error(
        response,
        401,
        "api_error.auth.unauthorized",
        Some("invalid_token"),
    )
    .await
}

/// A 422 with validation errors.
pub async fn assert_validation_failed(response: reqwest::Response) -> Value {
    assert_error(
        response,
        422,
        "api_error.request.validation_failed",
        Some("invalid_request"),
    )
    .await
}

/// The standard surface's form endpoints, shared by the suites that call them.
impl TestApp {
    /// `POST path` with a raw form body and an optional `Authorization` value.
    pub async fn post_form(
        &self,
        path: &str,
        body: &str,
        authorization: Option<&str>,
    ) -> reqwest::Response {
        post_form(&self.http, &self.url(path), body, authorization).await
    }

    /// `POST /oauth2/introspect` as `caller`; returns the JSON body (status must be 200).
    pub async fn rfc_introspect(&self, caller: (&str, &str), token: &str) -> Value {
        let response =
            oauth2_token_call(&self.http, &self.url("/oauth2/introspect"), caller, token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.unwrap()
    }

    /// `POST /oauth2/revoke` as `caller`.
    pub async fn revoke(&self, caller: (&str, &str), token: &str) -> reqwest::Response {
        oauth2_token_call(&self.http, &self.url("/oauth2/revoke"), caller, token).await
    }

    /// A JSON document fetched with `GET`, status 200.
    pub async fn get_json(&self, path: &str) -> Value {
        get_json(&self.http, &self.url(path)).await
    }
}

pub use crate::support::process::ServerProcess;

impl ServerProcess {
    /// Starts `serve` on `database_url` with the test secret and `args`, logging warnings
    /// and errors, and waits until it answers `/healthz/live`.
    pub async fn start(database_url: &str, args: &[&str]) -> Self {
        let server = Self::spawn(database_url, args, TEST_SECRET, "warn");
        server.wait_for("/healthz/live").await;
        server
    }
}
