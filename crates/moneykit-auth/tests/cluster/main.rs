//! Several replicas as one service, with real processes: a private
//! PostgreSQL cluster, two `moneykit-auth serve` processes on one database, and the real
//! CLI and admin API making changes from outside. Run with `--nocapture` to see the
//! timings.
//!
//! The tests run on a multi-threaded runtime and make their blocking calls (the CLI,
//! `pg_ctl`) on the blocking pool, so that nothing the test itself serves stalls behind
//! them. Waits are on the condition, up to what the contract promises.

#![allow(missing_docs)]

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use support::cli::*;
use support::postgres::{self, PgCluster};
use support::process::ServerProcess;
use support::receiver::Receiver;
use support::signing;
use support::*;

const ISSUER: &str = "https://auth.cluster.test";

/// The admin token every replica accepts on its admin listener.
const ADMIN_TOKEN: &str = "cluster-admin-token-0123456789abcdef";

/// How long a change made through the CLI or the admin API may take to reach every
/// running server: within a second, the documented promise.
const PROPAGATION: Duration = Duration::from_secs(1);

/// An app and a client of it made through the CLI: (app id, client id, secret).
async fn new_client(database_url: &str, name: &str) -> (String, String, String) {
    let (url, name) = (database_url.to_owned(), name.to_owned());
    blocking(move || cli_app_and_client(&url, &name)).await
}

/// A `serve` replica, named in messages; killed when dropped.
struct Replica {
    name: &'static str,
    server: ServerProcess,
}

impl Replica {
    /// Spawns the replica and waits until it has bound its listeners (blocking: call it
    /// through [`blocking`]).
    fn start(name: &'static str, database_url: &str) -> Self {
        let args = [
            "--issuer",
            ISSUER,
            "--webhooks-allow-http",
            "--webhooks-allow-private-targets",
            "--webhook-retry-base",
            "100ms",
            "--admin-listen",
            "127.0.0.1:0",
        ];
        let server = ServerProcess::spawn_with_env(
            database_url,
            &args,
            &[("MONEYKIT_AUTH_ADMIN_TOKEN", ADMIN_TOKEN)],
            TEST_SECRET,
            "info",
        );
        Self { name, server }
    }

    /// `http://<address the replica bound>`.
    fn base(&self) -> &str {
        &self.server.base
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn log_text(&self) -> String {
        self.server.log()
    }

    async fn ready_status(&self, http: &reqwest::Client) -> Option<u16> {
        let response = http.get(self.url("/healthz/ready")).send().await.ok()?;
        Some(response.status().as_u16())
    }

    async fn wait_ready(&self) {
        self.server.wait_for("/healthz/ready").await;
    }

    /// A call to this replica's admin API: (status, JSON body).
    async fn admin(
        &self,
        http: &reqwest::Client,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = self.server.admin_url(path);
        admin_call(http, ADMIN_TOKEN, method, &url, body).await
    }

    /// A counter from this replica's `/metrics` (`moneykit_auth_<name>`).
    async fn counter(&self, http: &reqwest::Client, name: &str) -> u64 {
        let (status, text) = self.admin(http, "GET", "/metrics", None).await;
        assert_eq!(status, 200, "metrics of replica {}", self.name);
        let text = text.as_str().unwrap_or_default();
        let prefix = format!("moneykit_auth_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the metrics of {}:\n{text}", self.name))
    }
}

/// The status of a [`request_token`] to replica `r`.
async fn token_status(
    http: &reqwest::Client,
    r: &Replica,
    client: (&str, &str),
    scope: Option<&str>,
) -> u16 {
    request_token(http, r.base(), client, scope)
        .await
        .status()
        .as_u16()
}

/// RFC 7662 `active`, asked by client `caller` (id, secret).
async fn oauth2_active(
    http: &reqwest::Client,
    r: &Replica,
    token: &str,
    caller: (&str, &str),
) -> bool {
    let body: Value = oauth2_token_call(http, &r.url("/oauth2/introspect"), caller, token)
        .await
        .json()
        .await
        .unwrap();
    body["active"].as_bool().unwrap()
}

/// Polls `probe` until it holds on every replica; returns how long that took. Call it
/// right after the change was made. The test fails only on proof that the change missed
/// `limit`: a probe that began after the deadline and still did not see it (so a slow
/// probe or a busy machine cannot fail a server that kept its promise).
async fn until_all<'a, F, Fut>(
    what: &str,
    replicas: &'a [&'a Replica],
    limit: Duration,
    mut probe: F,
) -> Duration
where
    F: FnMut(&'a Replica) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let deadline = started + limit;
    let mut pending: Vec<&Replica> = replicas.to_vec();
    loop {
        let round = Instant::now();
        let mut still = Vec::new();
        for r in pending {
            if !probe(r).await {
                still.push(r);
            }
        }
        pending = still;
        let Some(late) = pending.first() else {
            break;
        };
        assert!(
            round < deadline,
            "{what}: replica {} still did not show it {} ms after the change (the contract: {limit:?})",
            late.name,
            round.duration_since(started).as_millis()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    println!("{what}: every replica within {} ms", took.as_millis());
    took
}

struct Setup {
    cluster: Arc<PgCluster>,
    url: String,
    a: Replica,
    b: Replica,
    http: reqwest::Client,
}

async fn two_replicas() -> Setup {
    let cluster = blocking(PgCluster::start).await;
    let url = postgres::create_database(&cluster.url("postgres")).await;
    // Both start at once on an empty database: migrations and the first key race.
    let (url_a, url_b) = (url.clone(), url.clone());
    let (a, b) = tokio::join!(
        blocking(move || Replica::start("A", &url_a)),
        blocking(move || Replica::start("B", &url_b)),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    a.wait_ready().await;
    b.wait_ready().await;
    Setup {
        cluster: Arc::new(cluster),
        url,
        a,
        b,
        http,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_database_behave_as_one_service() {
    let Setup {
        cluster: _cluster,
        url,
        a,
        b,
        http,
    } = two_replicas().await;
    let both = [&a, &b];

    // Starting together created exactly one signing key, served by both.
    let keys = cli_json(&cli_async(&url, &["keys", "list", "--json"]).await);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(jwks(&http, a.base()).await, jwks(&http, b.base()).await);

    // A client created through the CLI can get tokens from both replicas.
    let (_, id, secret) = new_client(&url, "Cluster").await;
    until_all("client created", &both, PROPAGATION, |r| {
        let (http, id, secret) = (&http, &id, &secret);
        async move { token_status(http, r, (id, secret), None).await == 201 }
    })
    .await;

    // A token from A introspects on B, on both surfaces.
    let token_a = token(&http, a.base(), (&id, &secret), None).await;
    assert_eq!(introspect(&http, b.base(), &token_a).await.status(), 200);
    assert!(oauth2_active(&http, &b, &token_a, (&id, &secret)).await);
    let token_b = token(&http, b.base(), (&id, &secret), None).await;
    assert_eq!(introspect(&http, a.base(), &token_b).await.status(), 200);

    // Revoked on A → B rejects it.
    let revoke = oauth2_token_call(&http, &a.url("/oauth2/revoke"), (&id, &secret), &token_a).await;
    assert_eq!(revoke.status(), 200);
    until_all("token revoked on A", &both, PROPAGATION, |r| {
        let (http, token) = (&http, &token_a);
        async move { introspect(http, r.base(), token).await.status() == 401 }
    })
    .await;
    assert!(!oauth2_active(&http, &b, &token_a, (&id, &secret)).await);
    assert_eq!(
        introspect(&http, b.base(), &token_b).await.status(),
        200,
        "only that token"
    );

    // Secret rotated through the CLI → the old secret stops working everywhere.
    let rotated = cli_json(&cli_async(&url, &["clients", "rotate-secret", &id, "--json"]).await);
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    until_all("secret rotated", &both, PROPAGATION, |r| {
        let (http, id, old, new) = (&http, &id, &secret, &new_secret);
        async move {
            token_status(http, r, (id, old), None).await == 401
                && token_status(http, r, (id, new), None).await == 201
        }
    })
    .await;

    // Rotated with a grace → the old and the new secret work on every replica; the old
    // one revoked → only the new one, everywhere within the second.
    let args = ["clients", "rotate-secret", &id, "--grace", "1h", "--json"];
    let graced = cli_json(&cli_async(&url, &args).await);
    let newest = graced["client_secret"].as_str().unwrap().to_owned();
    until_all("secret rotated with a grace", &both, PROPAGATION, |r| {
        let (http, id, old, new) = (&http, &id, &new_secret, &newest);
        async move {
            token_status(http, r, (id, old), None).await == 201
                && token_status(http, r, (id, new), None).await == 201
        }
    })
    .await;
    let shown = cli_json(&cli_async(&url, &["clients", "show", &id, "--json"]).await);
    let old_id = shown["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["secret_id"].as_str().unwrap())
        .find(|s| *s != graced["secret_id"])
        .unwrap()
        .to_owned();
    let output = cli_async(&url, &["clients", "revoke-secret", &id, &old_id]).await;
    assert!(output.status.success());
    until_all("old secret revoked", &both, PROPAGATION, |r| {
        let (http, id, old, new) = (&http, &id, &new_secret, &newest);
        async move {
            token_status(http, r, (id, old), None).await == 401
                && token_status(http, r, (id, new), None).await == 201
        }
    })
    .await;

    // Disabled through the CLI → both refuse tokens and reject its existing ones.
    let output = cli_async(&url, &["clients", "disable", &id]).await;
    assert!(output.status.success());
    until_all("client disabled", &both, PROPAGATION, |r| {
        let (http, id, secret, token) = (&http, &id, &newest, &token_b);
        async move {
            token_status(http, r, (id, secret), None).await == 401
                && introspect(http, r.base(), token).await.status() == 401
        }
    })
    .await;

    // Two `keys rotate` at the same moment from two processes: one next key, not two.
    let rotate_url = url.clone();
    let mut results: Vec<String> = blocking(move || {
        let rotate = || {
            cli_command(&rotate_url, &["keys", "rotate", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (rotate(), rotate());
        [first, second]
            .into_iter()
            .map(|child| {
                let output = child.wait_with_output().unwrap();
                assert!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                let body: Value = serde_json::from_slice(&output.stdout).unwrap();
                body["result"].as_str().unwrap().to_owned()
            })
            .collect()
    })
    .await;
    results.sort();
    assert_eq!(results, ["already_pending", "published"]);
    let keys = cli_json(&cli_async(&url, &["keys", "list", "--json"]).await);
    let statuses: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "active").count(),
        1,
        "{keys}"
    );
    assert_eq!(statuses.len(), 2, "{keys}");
    let (a_ref, b_ref) = (&a, &b);
    until_all("next key published", &both, PROPAGATION, |r| {
        let http = &http;
        async move { jwks(http, r.base()).await["keys"].as_array().unwrap().len() == 2 }
    })
    .await;
    assert_eq!(
        jwks(&http, a_ref.base()).await,
        jwks(&http, b_ref.base()).await
    );

    // `--now` on one process: every replica signs with the same new key.
    let (_, id2, secret2) = new_client(&url, "Cluster").await;
    let output = cli_async(&url, &["keys", "rotate", "--now"]).await;
    assert!(output.status.success());
    let active = cli_json(&cli_async(&url, &["keys", "list", "--json"]).await)
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["status"] == "active")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    until_all("key rotated now", &both, PROPAGATION, |r| {
        let (http, id, secret, active) = (&http, &id2, &secret2, &active);
        async move {
            if token_status(http, r, (id, secret), None).await != 201 {
                return false;
            }
            let token = token(http, r.base(), (id, secret), None).await;
            jwt_part(&token, 0)["kid"] == active.as_str()
        }
    })
    .await;

    // `keys revoke` of the signing key on one process: within a second every replica
    // drops it from the JWKS, refuses the tokens it signed (even ones it has verified
    // and remembers) and signs with the replacement.
    let token_of_revoked = token(&http, a.base(), (&id2, &secret2), None).await;
    for r in both {
        assert_eq!(
            introspect(&http, r.base(), &token_of_revoked)
                .await
                .status(),
            200
        );
    }
    let revoked = cli_json(&cli_async(&url, &["keys", "revoke", &active, "--json"]).await);
    let replacement = revoked["replaced_by"].as_str().unwrap().to_owned();
    until_all("key revoked", &both, PROPAGATION, |r| {
        let (http, old_token, id, secret) = (&http, &token_of_revoked, &id2, &secret2);
        let (revoked, replacement) = (&active, &replacement);
        async move {
            let keys = jwks(http, r.base()).await;
            let published = |kid: &str| {
                keys["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kid"] == kid)
            };
            introspect(http, r.base(), old_token).await.status() == 401
                && !published(revoked)
                && published(replacement)
                && jwt_part(&token(http, r.base(), (id, secret), None).await, 0)["kid"]
                    == replacement.as_str()
        }
    })
    .await;
}

/// How long a replica may take to report not-ready once the database is gone: a check
/// every 200 ms (`--refresh-interval`) that gives up after 1 s, whatever the pool's own
/// acquire timeout (5 s by default, left so here), with a busy machine's margin.
const UNREADY_LIMIT: Duration = Duration::from_secs(2);

/// How long a replica may take to be ready again once the database is back: the next
/// check, with the same margin.
const RECOVERY_LIMIT: Duration = Duration::from_secs(2);

/// How long the hot path is exercised once both replicas are not ready: several failed
/// checks, not a wait for anything.
const SOAK_WHILE_UNREADY: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread")]
async fn replicas_ride_out_a_database_outage() {
    let Setup {
        cluster,
        url,
        a,
        b,
        http,
    } = two_replicas().await;
    let both = [&a, &b];
    let (_, id, secret) = new_client(&url, "Cluster").await;
    until_all("client created", &both, PROPAGATION, |r| {
        let (http, id, secret) = (&http, &id, &secret);
        async move { token_status(http, r, (id, secret), None).await == 201 }
    })
    .await;
    let before = token(&http, a.base(), (&id, &secret), None).await;

    let pg = cluster.clone();
    blocking(move || pg.stop()).await;
    println!("database stopped");
    let stopped = Instant::now();

    // The hot path keeps working from memory, on both replicas, while readiness turns
    // false: until both report 503, and for a while after that.
    let mut issued = 0;
    let mut went_unready = [None, None];
    let mut both_unready: Option<Instant> = None;
    while both_unready.is_none_or(|since| since.elapsed() < SOAK_WHILE_UNREADY) {
        let round = Instant::now();
        for (i, r) in both.iter().enumerate() {
            let fresh = token(&http, r.base(), (&id, &secret), None).await;
            assert_eq!(introspect(&http, r.base(), &fresh).await.status(), 200);
            assert_eq!(introspect(&http, r.base(), &before).await.status(), 200);
            issued += 1;
            if went_unready[i].is_none() && r.ready_status(&http).await == Some(503) {
                went_unready[i] = Some(stopped.elapsed());
            }
        }
        if went_unready.iter().all(Option::is_some) {
            both_unready.get_or_insert_with(Instant::now);
        } else {
            let ready = both[went_unready.iter().position(Option::is_none).unwrap()];
            assert!(
                round.duration_since(stopped) < UNREADY_LIMIT,
                "replica {} still ready {} ms after the database stopped",
                ready.name,
                round.duration_since(stopped).as_millis()
            );
        }
    }
    println!(
        "during the outage ({} ms): {issued} tokens issued and introspected, all 201/200",
        stopped.elapsed().as_millis()
    );
    for (r, at) in both.iter().zip(went_unready) {
        println!(
            "replica {}: /healthz/ready 503 after {} ms",
            r.name,
            at.unwrap().as_millis()
        );
        assert_eq!(
            introspect(&http, r.base(), &before).await.status(),
            200,
            "still serving"
        );
    }

    // Admin writes fail with one clear line, and write nothing.
    let started = Instant::now();
    let output = cli_async(&url, &["apps", "create", "--name", "During outage"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "CLI during the outage ({} ms): {}",
        started.elapsed().as_millis(),
        stderr.trim()
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("database"), "{stderr}");
    let revoke = oauth2_token_call(&http, &a.url("/oauth2/revoke"), (&id, &secret), &before).await;
    assert_eq!(revoke.status(), 503, "a revocation that cannot be stored");

    let restarted = Instant::now();
    let pg = cluster.clone();
    blocking(move || pg.start_server()).await;
    println!(
        "database started again (pg_ctl start took {} ms)",
        restarted.elapsed().as_millis()
    );
    let deadline = restarted + RECOVERY_LIMIT;
    for r in both {
        loop {
            let probe = Instant::now();
            if r.ready_status(&http).await == Some(200) {
                break;
            }
            assert!(
                probe < deadline,
                "replica {} not ready {RECOVERY_LIMIT:?} after the database was started:\n{}",
                r.name,
                r.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "replica {}: ready again {} ms after the database was started",
            r.name,
            restarted.elapsed().as_millis()
        );
    }
    let apps = cli_json(&cli_async(&url, &["apps", "list", "--json"]).await);
    assert_eq!(
        apps.as_array().unwrap().len(),
        1,
        "the failed write left nothing"
    );

    // Changes flow again (pushed or polled), without restarting anything.
    assert!(
        cli_async(&url, &["clients", "disable", &id])
            .await
            .status
            .success()
    );
    until_all("client disabled after recovery", &both, PROPAGATION, |r| {
        let (http, id, secret) = (&http, &id, &secret);
        async move { token_status(http, r, (id, secret), None).await == 401 }
    })
    .await;

    // The outage was logged once per replica, not once per refresh attempt.
    for r in both {
        let log = r.log_text();
        let noteworthy: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        println!(
            "replica {} warnings and errors:\n  {}",
            r.name,
            noteworthy.join("\n  ")
        );
        // The database driver's pool may warn once per connection the server closed
        // under it (bounded by the pool's size, not by the outage's length); every other
        // warning or error is the server's own, once per outage: the refresh, the webhook
        // outbox, and the start-up's relaxed delivery policy.
        let (pool, own): (Vec<&str>, Vec<&str>) = noteworthy
            .iter()
            .partition(|l| l.contains("testing the connection"));
        assert!(pool.len() <= 5, "pool warnings beyond its size: {log}");
        assert!(
            own.len() <= 3,
            "the outage is not logged per attempt: {log}"
        );
        assert_eq!(log.matches("refresh failed").count(), 1, "{log}");
        assert_eq!(log.matches("database reachable again").count(), 1, "{log}");
        assert!(!log.contains(TEST_SECRET));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_started_before_its_database_waits_and_becomes_ready_once_it_answers() {
    let cluster = Arc::new(blocking(PgCluster::start).await);
    let url = postgres::create_database(&cluster.url("postgres")).await;
    let pg = cluster.clone();
    blocking(move || pg.stop()).await;
    let replica = {
        let url = url.clone();
        blocking(move || Replica::start("early", &url)).await
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Alive, not ready, and no traffic taken, for as long as the database is down.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        let live = http.get(replica.url("/healthz/live")).send().await.unwrap();
        assert_eq!(live.status(), 200);
        assert_eq!(replica.ready_status(&http).await, Some(503));
        let token = http
            .post(replica.url("/auth/token"))
            .basic_auth("live_nobody", Some("nothing"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = replica.log_text();
    assert!(
        log.matches("database unreachable; not ready, retrying")
            .count()
            >= 2,
        "each try is logged: {log}"
    );
    assert!(
        log.contains("Connection refused"),
        "the root cause reaches the log: {log}"
    );

    let pg = cluster.clone();
    blocking(move || pg.start_server()).await;
    let restarted = Instant::now();
    // The next try (backoff up to 10 s) connects, initializes the empty database and
    // starts serving.
    loop {
        if replica.ready_status(&http).await == Some(200) {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "not ready 15 s after the database started:\n{}",
            replica.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "ready {} ms after the database started",
        restarted.elapsed().as_millis()
    );
    let (_, id, secret) = new_client(&url, "Early").await;
    until_all("client created", &[&replica], PROPAGATION, |r| {
        let (http, id, secret) = (&http, &id, &secret);
        async move { token_status(http, r, (id, secret), None).await == 201 }
    })
    .await;
}

/// A CA and a certificate it signed for 127.0.0.1: (CA PEM, certificate PEM, key PEM).
fn certificate_authority_and_server_certificate(name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut server = CertificateParams::new(Vec::<String>::new()).unwrap();
    server.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = server.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_over_verified_tls() {
    let cluster = blocking(PgCluster::start).await;
    let (ca, cert, key) = certificate_authority_and_server_certificate("moneykit test CA");
    let (other_ca, _, _) = certificate_authority_and_server_certificate("another CA");
    let cluster = blocking(move || {
        cluster.enable_tls(&cert, &key);
        cluster
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, other_ca_file) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&other_ca_file, other_ca).unwrap();
    let plain = postgres::create_database(&cluster.url("postgres")).await;
    let verified = |root: &std::path::Path| {
        format!("{plain}?sslmode=verify-full&sslrootcert={}", root.display())
    };

    // A server certificate from a CA the URL does not trust: refused, one line.
    let refused = cli_async(&verified(&other_ca_file), &["init"]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    println!("untrusted CA: {}", stderr.trim());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");

    // The right CA: initialized, served, and every connection of the server encrypted.
    let url = verified(&ca_file);
    let init = cli_async(&url, &["init"]).await;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let replica = {
        let url = url.clone();
        blocking(move || Replica::start("tls", &url)).await
    };
    replica.wait_ready().await;
    let (_, id, secret) = new_client(&url, "Over TLS").await;
    let http = reqwest::Client::new();
    until_all("client created", &[&replica], PROPAGATION, |r| {
        let (http, id, secret) = (&http, &id, &secret);
        async move { token_status(http, r, (id, secret), None).await == 201 }
    })
    .await;
    let mut admin = sqlx::PgConnection::connect(&plain).await.unwrap();
    let seen: Vec<(bool,)> = sqlx::query_as(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'moneykit-auth'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!seen.is_empty(), "the replica holds connections");
    assert!(seen.iter().all(|(ssl,)| *ssl), "all encrypted: {seen:?}");
}

/// Fetches the outbox through replica `r`'s admin API: (delivered events, all events).
async fn outbox(http: &reqwest::Client, r: &Replica, app_id: &str) -> (usize, usize) {
    let (status, events) = r
        .admin(
            http,
            "GET",
            &format!("/admin/webhooks?app={app_id}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{events}");
    let events = events.as_array().unwrap();
    let delivered = events.iter().filter(|e| e["status"] == "delivered").count();
    (delivered, events.len())
}

/// How long the outbox test gives its events to be delivered: a few retries each with
/// `--webhook-retry-base 100ms`, on a busy machine.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_the_webhook_outbox_without_double_attempts() {
    let Setup {
        cluster: _cluster,
        url: _,
        a,
        b,
        http,
    } = two_replicas().await;
    let both = [&a, &b];
    // Every third request fails, so attempts are retried by whichever replica claims them
    // first: both poll the one outbox every 200 ms.
    let plan: Vec<u16> = (0..300)
        .map(|i| if i % 3 == 0 { 500 } else { 200 })
        .collect();
    let receiver = Receiver::start(&plan).await;
    let (status, app) = a
        .admin(&http, "POST", "/admin/apps", Some(json!({"name": "Hooks"})))
        .await;
    assert_eq!(status, 201, "{app}");
    let app_id = app["app_id"].as_str().unwrap().to_owned();
    let (status, app) = a
        .admin(
            &http,
            "PUT",
            &format!("/admin/apps/{app_id}/webhook"),
            Some(json!({
                "url": receiver.url,
                "allow_http": true,
                "allow_private_targets": true,
            })),
        )
        .await;
    assert_eq!(status, 200, "{app}");

    // Queued through the two replicas' admin APIs in turn: each one wakes its own
    // replica's worker at once, so both replicas get work whatever their polls' phases.
    const EVENTS: usize = 60;
    for i in 0..EVENTS {
        let r = both[i % 2];
        let (status, event) = r
            .admin(
                &http,
                "POST",
                "/admin/webhooks",
                Some(json!({"app_id": app_id, "event": "load.item", "data": {"n": i}})),
            )
            .await;
        assert_eq!(status, 201, "event {i} through replica {}: {event}", r.name);
    }
    let started = Instant::now();
    loop {
        let probe = Instant::now();
        let (delivered, total) = outbox(&http, &a, &app_id).await;
        assert_eq!(total, EVENTS);
        if delivered == EVENTS {
            break;
        }
        assert!(
            probe.duration_since(started) < DELIVERY_LIMIT,
            "{delivered} of {EVENTS} delivered after {DELIVERY_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every event's attempts reached the receiver numbered 1, 2, … once each, failed
    // until the last, which was its only delivery: no attempt was made twice, and no
    // event was attempted again after it was delivered.
    let got = receiver.deliveries();
    let mut by_event: BTreeMap<&str, Vec<(u32, u16)>> = BTreeMap::new();
    for d in &got {
        by_event
            .entry(d.token.as_str())
            .or_default()
            .push((d.attempt, d.status));
    }
    assert_eq!(by_event.len(), EVENTS, "one delivery token per event");
    for (token, attempts) in &mut by_event {
        attempts.sort_unstable();
        let numbers: Vec<u32> = attempts.iter().map(|(n, _)| *n).collect();
        let expected: Vec<u32> = (1..=u32::try_from(attempts.len()).unwrap()).collect();
        assert_eq!(
            numbers, expected,
            "event {token}: attempts {attempts:?}: an attempt was made twice or skipped"
        );
        let delivered = attempts.iter().filter(|(_, s)| *s < 300).count();
        assert!(
            delivered == 1 && attempts.last().unwrap().1 < 300,
            "event {token}: attempts {attempts:?}: delivered {delivered} times"
        );
    }

    // Both replicas delivered: the work was shared, under contention, not done by one.
    let mut delivered_total = 0;
    let mut attempts_total = 0;
    let mut shares = Vec::new();
    for r in both {
        let delivered = r.counter(&http, "webhook_deliveries_total").await;
        let retried = r.counter(&http, "webhook_retries_total").await;
        let failed = r.counter(&http, "webhook_failures_total").await;
        shares.push(format!(
            "replica {}: {delivered} delivered, {retried} failed and retried",
            r.name
        ));
        assert!(
            delivered >= 1,
            "replica {} delivered nothing: one replica did all the work ({shares:?})",
            r.name
        );
        delivered_total += delivered;
        attempts_total += delivered + retried + failed;
    }
    assert_eq!(
        delivered_total, EVENTS as u64,
        "each event delivered once, by one replica ({shares:?})"
    );
    assert_eq!(
        attempts_total,
        got.len() as u64,
        "the replicas' attempts are the receiver's requests ({shares:?})"
    );
    println!(
        "{EVENTS} events, {} attempts, none made twice; {}",
        got.len(),
        shares.join("; ")
    );
}

/// A token for `scope` from replica `r`, granted that scope.
async fn scoped_token(
    http: &reqwest::Client,
    r: &Replica,
    client: (&str, &str),
    scope: &str,
) -> String {
    let response = request_token(http, r.base(), client, Some(scope)).await;
    assert_eq!(response.status(), 201, "{scope} from replica {}", r.name);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["scope"], scope);
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_api_change_on_one_replica_is_enforced_by_the_other() {
    let Setup {
        cluster: _cluster,
        url: _,
        a,
        b,
        http,
    } = two_replicas().await;
    let both = [&a, &b];

    // An app and a client, made through replica A's admin API, get tokens on B.
    let (status, app) = a
        .admin(&http, "POST", "/admin/apps", Some(json!({"name": "Admin"})))
        .await;
    assert_eq!(status, 201, "{app}");
    let (status, client) = a
        .admin(
            &http,
            "POST",
            "/admin/clients",
            Some(json!({"app_id": app["app_id"], "scope": "accounts:read transactions:read"})),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    let id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    until_all(
        "client created through A's admin API",
        &both,
        PROPAGATION,
        |r| {
            let (http, id, secret) = (&http, &id, &secret);
            async move { token_status(http, r, (id, secret), None).await == 201 }
        },
    )
    .await;
    let wide = scoped_token(&http, &b, (&id, &secret), "transactions:read").await;
    let narrow = scoped_token(&http, &b, (&id, &secret), "accounts:read").await;
    assert_eq!(introspect(&http, b.base(), &wide).await.status(), 200);

    // Scope narrowed through A: B refuses the scope taken away, and the token it issued
    // with that scope; what the client keeps still works there.
    let (status, changed) = a
        .admin(
            &http,
            "PATCH",
            &format!("/admin/clients/{id}"),
            Some(json!({"scope": "accounts:read"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    until_all(
        "scope narrowed through A's admin API",
        &[&b],
        PROPAGATION,
        |r| {
            let (http, id, secret, wide) = (&http, &id, &secret, &wide);
            async move {
                token_status(http, r, (id, secret), Some("transactions:read")).await == 400
                    && introspect(http, r.base(), wide).await.status() == 401
            }
        },
    )
    .await;
    assert_eq!(
        token_status(&http, &b, (&id, &secret), Some("accounts:read")).await,
        201
    );

    // Disabled through A: B refuses it tokens and rejects the ones it has.
    assert_eq!(introspect(&http, b.base(), &narrow).await.status(), 200);
    let (status, disabled) = a
        .admin(&http, "POST", &format!("/admin/clients/{id}/disable"), None)
        .await;
    assert_eq!(status, 200, "{disabled}");
    until_all(
        "client disabled through A's admin API",
        &[&b],
        PROPAGATION,
        |r| {
            let (http, id, secret, narrow) = (&http, &id, &secret, &narrow);
            async move {
                token_status(http, r, (id, secret), None).await == 401
                    && introspect(http, r.base(), narrow).await.status() == 401
            }
        },
    )
    .await;
}

/// A `private_key_jwt` client made through the CLI, with `key` registered: its id.
async fn new_key_client(database_url: &str, key: &signing::TestKey) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, signing::key_set(&[key]).to_string()).unwrap();
    let app = {
        let url = database_url.to_owned();
        blocking(move || cli_app(&url, "Keyed")).await
    };
    let created = cli_json(
        &cli_async(
            database_url,
            &[
                "clients",
                "create",
                "--app",
                &app,
                "--auth-method",
                "private_key_jwt",
                "--jwks-file",
                path.to_str().unwrap(),
                "--json",
            ],
        )
        .await,
    );
    created["client_id"].as_str().unwrap().to_owned()
}

/// The status of a client-credentials request to `r` authenticated by `assertion`.
async fn assertion_status(http: &reqwest::Client, r: &Replica, assertion: &str) -> u16 {
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_assertion_type", signing::CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ]);
    post_form(http, &r.url("/auth/token"), &body, None)
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_assertion_is_accepted_once_across_replicas() {
    let Setup {
        cluster: _cluster,
        url,
        a,
        b,
        http,
    } = two_replicas().await;
    let key = signing::TestKey::es256("k1");
    let id = new_key_client(&url, &key).await;
    until_all("key client created", &[&a, &b], PROPAGATION, |r| {
        let (http, key, id) = (&http, &key, &id);
        async move { assertion_status(http, r, &key.assertion(id, ISSUER)).await == 201 }
    })
    .await;

    // Used at A, refused at B (the database remembers it), and at A again (memory).
    let assertion = key.assertion(&id, ISSUER);
    assert_eq!(assertion_status(&http, &a, &assertion).await, 201);
    assert_eq!(assertion_status(&http, &b, &assertion).await, 401);
    assert_eq!(assertion_status(&http, &a, &assertion).await, 401);

    // Sent to both at the same moment, each assertion gets exactly one token.
    for _ in 0..20 {
        let assertion = key.assertion(&id, ISSUER);
        let (at_a, at_b) = tokio::join!(
            assertion_status(&http, &a, &assertion),
            assertion_status(&http, &b, &assertion)
        );
        let mut statuses = [at_a, at_b];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [201, 401],
            "one replica took it, the other refused it"
        );
    }
    assert!(
        b.log_text().contains("jti used before, at another replica")
            || a.log_text().contains("jti used before, at another replica"),
        "the database refused a replay"
    );
}

/// The status of a client-credentials request to `r` with the client's secret and
/// `proof` in the `DPoP` header.
async fn dpop_status(
    http: &reqwest::Client,
    r: &Replica,
    client: (&str, &str),
    proof: &str,
) -> u16 {
    http.post(r.url("/auth/token"))
        .basic_auth(client.0, Some(client.1))
        .header("DPoP", proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dpop_proof_is_accepted_once_across_replicas() {
    let Setup {
        cluster: _cluster,
        url,
        a,
        b,
        http,
    } = two_replicas().await;
    let (_, id, secret) = new_client(&url, "Dpop").await;
    let key = signing::TestKey::es256("dpop");
    let htu = format!("{ISSUER}/auth/token");
    until_all("client created", &[&a, &b], PROPAGATION, |r| {
        let (http, key, id, secret, htu) = (&http, &key, &id, &secret, &htu);
        async move {
            let proof = key.dpop_proof("POST", htu, None, None);
            dpop_status(http, r, (id, secret), &proof).await == 201
        }
    })
    .await;

    // Used at A, refused at B (the database remembers it), and at A again (memory).
    let proof = key.dpop_proof("POST", &htu, None, None);
    assert_eq!(dpop_status(&http, &a, (&id, &secret), &proof).await, 201);
    assert_eq!(dpop_status(&http, &b, (&id, &secret), &proof).await, 400);
    assert_eq!(dpop_status(&http, &a, (&id, &secret), &proof).await, 400);
    // Sent to both at once, each proof gets exactly one token.
    for _ in 0..20 {
        let proof = key.dpop_proof("POST", &htu, None, None);
        let (at_a, at_b) = tokio::join!(
            dpop_status(&http, &a, (&id, &secret), &proof),
            dpop_status(&http, &b, (&id, &secret), &proof)
        );
        let mut statuses = [at_a, at_b];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [201, 400],
            "one replica took it, the other refused it"
        );
    }
    assert!(
        a.log_text().contains("jti used before, at another replica")
            || b.log_text().contains("jti used before, at another replica"),
        "the database refused a replay"
    );
}
