//! Several replicas as one service (PRODUCT.md §8), with real processes: a private
//! PostgreSQL cluster, two `moneykit-auth serve` processes on one database, and the real
//! CLI making changes from outside. Run with `--nocapture` to see the timings.

#![allow(missing_docs)]

#[path = "../support/cli.rs"]
mod cli_support;
#[path = "../support/postgres.rs"]
mod postgres;
#[path = "../support/process.rs"]
mod process;
#[path = "../support/receiver.rs"]
mod receiver;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_support::*;
use postgres::PgCluster;
use process::ServerProcess;
use serde_json::Value;

const ISSUER: &str = "https://auth.cluster.test";

/// A `serve` replica, named in messages; killed when dropped.
struct Replica {
    name: &'static str,
    server: ServerProcess,
}

impl Replica {
    fn start(name: &'static str, database_url: &str) -> Self {
        let args = [
            "--issuer",
            ISSUER,
            "--db-acquire-timeout",
            "1s",
            "--webhooks-allow-http",
            "--webhooks-allow-private-targets",
            "--webhook-retry-base",
            "100ms",
        ];
        let server = ServerProcess::spawn(database_url, &args, TEST_SECRET, "info");
        Self { name, server }
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
}

/// A client-credentials request to replica `r`, with HTTP Basic.
fn token_request(
    http: &reqwest::Client,
    r: &Replica,
    id: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    http.post(r.url("/auth/token"))
        .header("authorization", basic(id, secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
}

async fn token_status(http: &reqwest::Client, r: &Replica, id: &str, secret: &str) -> u16 {
    let response = token_request(http, r, id, secret).send().await.unwrap();
    response.status().as_u16()
}

async fn token(http: &reqwest::Client, r: &Replica, id: &str, secret: &str) -> String {
    let response = token_request(http, r, id, secret).send().await.unwrap();
    assert_eq!(response.status(), 201, "token from replica {}", r.name);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn introspect_status(http: &reqwest::Client, r: &Replica, token: &str) -> u16 {
    http.get(r.url("/auth/introspect"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// RFC 7662 `active`, asked by client (`id`, `secret`).
async fn oauth2_active(
    http: &reqwest::Client,
    r: &Replica,
    token: &str,
    (id, secret): (&str, &str),
) -> bool {
    let body: Value = http
        .post(r.url("/oauth2/introspect"))
        .header("authorization", basic(id, secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["active"].as_bool().unwrap()
}

async fn jwks(http: &reqwest::Client, r: &Replica) -> Value {
    http.get(r.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `probe` until it returns true on every replica; returns how long that took, and
/// fails the test past `limit`.
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
    let mut pending: Vec<&Replica> = replicas.to_vec();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for r in pending {
            if !probe(r).await {
                still.push(r);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "{what}: replica {} did not get there within {limit:?}",
            pending[0].name
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    println!("{what}: every replica within {} ms", took.as_millis());
    took
}

struct Setup {
    cluster: PgCluster,
    url: String,
    a: Replica,
    b: Replica,
    http: reqwest::Client,
}

async fn two_replicas() -> Setup {
    let cluster = PgCluster::start();
    let url = postgres::create_database(&cluster.url("postgres")).await;
    // Both start at once on an empty database: migrations and the first key race.
    let a = Replica::start("A", &url);
    let b = Replica::start("B", &url);
    let http = reqwest::Client::new();
    a.wait_ready().await;
    b.wait_ready().await;
    Setup {
        cluster,
        url,
        a,
        b,
        http,
    }
}

const ONE_SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
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
    let keys = cli_json(&cli(&url, &["keys", "list", "--json"]));
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(jwks(&http, &a).await, jwks(&http, &b).await);

    // A client created through the CLI can get tokens from both replicas.
    let (_, id, secret) = cli_app_and_client(&url, "Cluster");
    until_all("client created", &both, ONE_SECOND, |r| {
        let (http, id, secret) = (&http, &id, &secret);
        async move { token_status(http, r, id, secret).await == 201 }
    })
    .await;

    // A token from A introspects on B, on both surfaces.
    let token_a = token(&http, &a, &id, &secret).await;
    assert_eq!(introspect_status(&http, &b, &token_a).await, 200);
    assert!(oauth2_active(&http, &b, &token_a, (&id, &secret)).await);
    let token_b = token(&http, &b, &id, &secret).await;
    assert_eq!(introspect_status(&http, &a, &token_b).await, 200);

    // Revoked on A → B rejects it.
    let revoke = http
        .post(a.url("/oauth2/revoke"))
        .header("authorization", basic(&id, &secret))
        .form(&[("token", token_a.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    until_all("token revoked on A", &both, ONE_SECOND, |r| {
        let (http, token) = (&http, &token_a);
        async move { introspect_status(http, r, token).await == 401 }
    })
    .await;
    assert!(!oauth2_active(&http, &b, &token_a, (&id, &secret)).await);
    assert_eq!(
        introspect_status(&http, &b, &token_b).await,
        200,
        "only that token"
    );

    // Secret rotated through the CLI → the old secret stops working everywhere.
    let rotated = cli_json(&cli(&url, &["clients", "rotate-secret", &id, "--json"]));
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    until_all("secret rotated", &both, ONE_SECOND, |r| {
        let (http, id, old, new) = (&http, &id, &secret, &new_secret);
        async move {
            token_status(http, r, id, old).await == 401
                && token_status(http, r, id, new).await == 201
        }
    })
    .await;

    // Disabled through the CLI → both refuse tokens and reject its existing ones.
    let output = cli(&url, &["clients", "disable", &id]);
    assert!(output.status.success());
    until_all("client disabled", &both, ONE_SECOND, |r| {
        let (http, id, secret, token) = (&http, &id, &new_secret, &token_b);
        async move {
            token_status(http, r, id, secret).await == 401
                && introspect_status(http, r, token).await == 401
        }
    })
    .await;

    // Two `keys rotate` at the same moment from two processes: one next key, not two.
    let rotate = || {
        cli_command(&url, &["keys", "rotate", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (rotate(), rotate());
    let mut results: Vec<String> = [first, second]
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
        .collect();
    results.sort();
    assert_eq!(results, ["already_pending", "published"]);
    let keys = cli_json(&cli(&url, &["keys", "list", "--json"]));
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
    until_all("next key published", &both, ONE_SECOND, |r| {
        let http = &http;
        async move { jwks(http, r).await["keys"].as_array().unwrap().len() == 2 }
    })
    .await;
    assert_eq!(jwks(&http, a_ref).await, jwks(&http, b_ref).await);

    // `--now` on one process: every replica signs with the same new key.
    let output = cli(&url, &["keys", "rotate", "--now"]);
    assert!(output.status.success());
    let active = cli_json(&cli(&url, &["keys", "list", "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["status"] == "active")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, id2, secret2) = cli_app_and_client(&url, "Cluster");
    until_all("key rotated now", &both, ONE_SECOND, |r| {
        let (http, id, secret, active) = (&http, &id2, &secret2, &active);
        async move {
            if token_status(http, r, id, secret).await != 201 {
                return false;
            }
            let token = token(http, r, id, secret).await;
            jwt_part(&token, 0)["kid"] == active.as_str()
        }
    })
    .await;

    // `keys revoke` of the signing key on one process: within a second every replica
    // drops it from the JWKS, refuses the tokens it signed (even ones it has verified
    // and remembers) and signs with the replacement.
    let token_of_revoked = token(&http, &a, &id2, &secret2).await;
    for r in both {
        assert_eq!(introspect_status(&http, r, &token_of_revoked).await, 200);
    }
    let revoked = cli_json(&cli(&url, &["keys", "revoke", &active, "--json"]));
    let replacement = revoked["replaced_by"].as_str().unwrap().to_owned();
    until_all("key revoked", &both, ONE_SECOND, |r| {
        let (http, old_token, id, secret) = (&http, &token_of_revoked, &id2, &secret2);
        let (revoked, replacement) = (&active, &replacement);
        async move {
            let keys = jwks(http, r).await;
            let published = |kid: &str| {
                keys["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kid"] == kid)
            };
            introspect_status(http, r, old_token).await == 401
                && !published(revoked)
                && published(replacement)
                && jwt_part(&token(http, r, id, secret).await, 0)["kid"] == replacement.as_str()
        }
    })
    .await;
}

#[tokio::test]
async fn replicas_ride_out_a_database_outage() {
    let Setup {
        cluster,
        url,
        a,
        b,
        http,
    } = two_replicas().await;
    let both = [&a, &b];
    let (_, id, secret) = cli_app_and_client(&url, "Cluster");
    until_all("client created", &both, ONE_SECOND, |r| {
        let (http, id, secret) = (&http, &id, &secret);
        async move { token_status(http, r, id, secret).await == 201 }
    })
    .await;
    let before = token(&http, &a, &id, &secret).await;

    cluster.stop();
    println!("database stopped");
    let stopped = Instant::now();

    // The hot path keeps working from memory, on both replicas, while readiness turns
    // false.
    let mut issued = 0;
    let mut went_unready = [None, None];
    while stopped.elapsed() < Duration::from_secs(6) {
        for (i, r) in both.iter().enumerate() {
            let fresh = token(&http, r, &id, &secret).await;
            assert_eq!(introspect_status(&http, r, &fresh).await, 200);
            assert_eq!(introspect_status(&http, r, &before).await, 200);
            issued += 1;
            if went_unready[i].is_none() && r.ready_status(&http).await == Some(503) {
                went_unready[i] = Some(stopped.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("during the outage: {issued} tokens issued and introspected, all 201/200");
    for (r, at) in both.iter().zip(went_unready) {
        let at = at.unwrap_or_else(|| panic!("replica {} stayed ready", r.name));
        println!(
            "replica {}: /healthz/ready 503 after {} ms",
            r.name,
            at.as_millis()
        );
        assert_eq!(
            introspect_status(&http, r, &before).await,
            200,
            "still serving"
        );
    }

    // Admin writes fail with one clear line, and write nothing.
    let started = Instant::now();
    let output = cli(&url, &["apps", "create", "--name", "During outage"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "CLI during the outage ({} ms): {}",
        started.elapsed().as_millis(),
        stderr.trim()
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("database"), "{stderr}");
    let revoke = http
        .post(a.url("/oauth2/revoke"))
        .header("authorization", basic(&id, &secret))
        .form(&[("token", before.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 503, "a revocation that cannot be stored");

    let restarted = Instant::now();
    cluster.start_server();
    println!(
        "database started again (pg_ctl start took {} ms)",
        restarted.elapsed().as_millis()
    );
    for r in both {
        r.wait_ready().await;
        println!(
            "replica {}: ready again {} ms after the database was started",
            r.name,
            restarted.elapsed().as_millis()
        );
    }
    assert!(
        restarted.elapsed() < Duration::from_secs(10),
        "recovered within seconds"
    );
    let apps = cli_json(&cli(&url, &["apps", "list", "--json"]));
    assert_eq!(
        apps.as_array().unwrap().len(),
        1,
        "the failed write left nothing"
    );

    // Changes flow again (pushed or polled), without restarting anything.
    assert!(cli(&url, &["clients", "disable", &id]).status.success());
    until_all("client disabled after recovery", &both, ONE_SECOND, |r| {
        let (http, id, secret) = (&http, &id, &secret);
        async move { token_status(http, r, id, secret).await == 401 }
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
        assert!(
            noteworthy.len() <= 3,
            "the outage is not logged per attempt: {log}"
        );
        assert_eq!(log.matches("refresh failed").count(), 1, "{log}");
        assert_eq!(log.matches("database reachable again").count(), 1, "{log}");
        assert!(!log.contains(TEST_SECRET));
    }
}

#[tokio::test]
async fn replicas_share_the_webhook_outbox_without_double_attempts() {
    let Setup {
        cluster: _cluster,
        url,
        a,
        b,
        http: _,
    } = two_replicas().await;
    // Every third request fails, so attempts are retried by whichever replica claims them.
    let plan: Vec<u16> = (0..200)
        .map(|i| if i % 3 == 0 { 500 } else { 200 })
        .collect();
    let receiver = receiver::Receiver::start(&plan).await;
    let app_id = cli_app(&url, "Hooks");
    set_webhook(&url, &app_id, &receiver.url);
    const EVENTS: usize = 60;
    for i in 0..EVENTS {
        let data = format!(r#"{{"n": {i}}}"#);
        cli_json(&cli(
            &url,
            &[
                "webhooks",
                "send",
                "--app",
                &app_id,
                "--event",
                "load.item",
                "--data",
                &data,
                "--json",
            ],
        ));
    }
    let started = Instant::now();
    loop {
        let delivered = cli_json(&cli(
            &url,
            &["webhooks", "list", "--status", "delivered", "--json"],
        ));
        if delivered.as_array().unwrap().len() == EVENTS {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "all delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = receiver.deliveries();
    let mut seen = std::collections::HashSet::new();
    for d in &got {
        assert!(
            seen.insert((d.token.clone(), d.attempt)),
            "attempt {} of {} was made twice",
            d.attempt,
            d.token
        );
    }
    let tokens: std::collections::HashSet<&String> = got.iter().map(|d| &d.token).collect();
    assert_eq!(tokens.len(), EVENTS);
    println!(
        "{EVENTS} events, {} attempts through replicas {} and {}, none made twice",
        got.len(),
        a.name,
        b.name
    );
}
