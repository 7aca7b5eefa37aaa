//! Signed webhook delivery, end to end: a real server delivers to a local
//! receiver, which verifies every delivery the way MoneyKit's receivers do — with the
//! `moneykit` SDK's `webhooks::Verifier` against the server's JWKS.

use std::sync::atomic::Ordering;
use std::time::Duration;

use moneykit::webhooks::Verifier;
use moneykit::{AccessTokenApi, Configuration};
use moneykit_auth::domain::events::EventStatus;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::support::receiver::Receiver;

/// A server that delivers to loopback over http, retrying fast.
async fn webhook_app() -> TestApp {
    spawn_app_with(|s| {
        s.webhooks.policy.allow_http = true;
        s.webhooks.policy.allow_private_targets = true;
        s.webhooks.poll_interval = Duration::from_millis(50);
        s.webhooks.retry_base = Duration::from_millis(100);
        s.webhooks.request_timeout = Duration::from_secs(2);
    })
    .await
}

/// A client whose app delivers to `url`; returns (client id, secret, app id).
async fn app_with_webhook(app: &TestApp, url: &str) -> (String, String, String) {
    let (client, secret) = app.create_client("accounts:read", None).await;
    set_webhook(&app.database_url, &client.app_id, url);
    (client.id, secret, client.app_id)
}

async fn trigger(app: &TestApp, token: &str, link: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/webhooks/test/link/{link}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn verifier(app: &TestApp) -> Verifier {
    Verifier::new(AccessTokenApi::new(Configuration::self_hosted(&app.base).unwrap()).unwrap())
}

fn events(app: &TestApp, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["webhooks", "list", "--json"];
    all.extend_from_slice(args);
    cli_json(&app.cli(&all)).as_array().unwrap().clone()
}

#[tokio::test]
async fn a_test_event_is_delivered_signed_on_the_first_attempt() {
    let app = webhook_app().await;
    let receiver = Receiver::start(&[]).await;
    let (id, secret, app_id) = app_with_webhook(&app, &receiver.url).await;
    let token = app.token(&id, &secret, None).await;

    let response = trigger(
        &app,
        &token,
        "mk_link_1",
        &json!({"webhook_event": "link.state_changed", "webhook_idempotency_key": "idem-1"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let queued: Value = response.json().await.unwrap();
    assert_eq!(queued["webhook_idempotency_key"], "idem-1");

    let [delivery] = receiver
        .wait_for(1, Duration::from_secs(5))
        .await
        .try_into()
        .unwrap();
    assert_eq!(delivery.attempt, 1);
    assert_eq!(delivery.token, queued["delivery_token"]);
    assert_eq!(delivery.content_type, "application/json");
    let claims = verifier(&app)
        .verify(&delivery.signature, &delivery.body)
        .await
        .expect("the SDK verifies the delivery against the server's JWKS");
    assert!(
        claims
            .iat
            .abs_diff(time::OffsetDateTime::now_utc().unix_timestamp())
            < 60
    );
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["webhook_event"], "link.state_changed");
    assert_eq!(body["link_id"], "mk_link_1");
    assert_eq!(body["webhook_idempotency_key"], "idem-1");
    assert_eq!(body["webhook_major_version"], 1);
    assert!(body["webhook_timestamp"].is_string());

    let header = jwt_part(&delivery.signature, 0);
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().unwrap();
    assert!(
        app.jwks()
            .await
            .keys
            .iter()
            .any(|k| k.kid.as_deref() == Some(kid))
    );

    wait_until(Duration::from_secs(2), || {
        events(&app, &["--status", "delivered"]).len() == 1
    })
    .await
    .expect("listed as delivered");
    let listed = &events(&app, &["--app", &app_id])[0];
    assert_eq!(listed["event_id"], queued["event_id"]);
    assert_eq!(listed["attempts"], 1);
    assert_eq!(listed["last_status"], 200);
}

#[tokio::test]
async fn failed_attempts_are_retried_with_the_same_token_and_body() {
    let app = webhook_app().await;
    let receiver = Receiver::start(&[500, 503]).await;
    let (id, secret, _) = app_with_webhook(&app, &receiver.url).await;
    let token = app.token(&id, &secret, None).await;
    let response = trigger(
        &app,
        &token,
        "mk_link_2",
        &json!({"webhook_event": "transactions.updates_available"}),
    )
    .await;
    assert_eq!(response.status(), 200);

    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    let attempts: Vec<u32> = got.iter().map(|d| d.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(
        got.iter().all(|d| d.token == got[0].token),
        "one delivery token"
    );
    assert!(got.iter().all(|d| d.body == got[0].body), "the same bytes");
    let verifier = verifier(&app);
    for d in &got {
        verifier.verify(&d.signature, &d.body).await.unwrap();
    }
    wait_until(Duration::from_secs(2), || {
        events(&app, &["--status", "delivered"]).len() == 1
    })
    .await
    .expect("delivered on the third attempt");
    let listed = &events(&app, &[])[0];
    assert_eq!(listed["attempts"], 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.deliveries().len(), 3, "nothing after the 2xx");
}

#[tokio::test]
async fn an_endpoint_down_past_the_retry_window_fails_the_event_until_retried() {
    let app = webhook_app().await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/gone", l.local_addr().unwrap())
    };
    let (_, _, app_id) = app_with_webhook(&app, &closed).await;
    let queued = cli_json(
        &app.cli_async(&[
            "webhooks",
            "send",
            "--app",
            &app_id,
            "--event",
            "invoice.paid",
            "--data",
            r#"{"invoice_id": "inv_1", "amount": 5}"#,
            "--retry-window",
            "1s",
            "--json",
        ])
        .await,
    );
    assert_eq!(queued["status"], "pending");
    let event_id = queued["event_id"].as_str().unwrap().to_owned();

    wait_until(Duration::from_secs(10), || {
        events(&app, &["--status", "failed"]).len() == 1
    })
    .await
    .expect("failed once the retry window closed");
    let failed = &events(&app, &["--status", "failed"])[0];
    assert_eq!(failed["event_id"], event_id.as_str());
    assert!(failed["attempts"].as_u64().unwrap() >= 2, "{failed}");
    assert!(failed["last_status"].is_null());
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "{failed}"
    );
    assert!(
        !failed["last_error"].as_str().unwrap().contains("/gone"),
        "no URL in errors"
    );

    // The operator fixes the endpoint and retries the event.
    let receiver = Receiver::start(&[]).await;
    set_webhook(&app.database_url, &app_id, &receiver.url);
    let retried = cli_json(
        &app.cli_async(&["webhooks", "retry", &event_id, "--json"])
            .await,
    );
    assert_eq!(retried["status"], "pending");
    let [delivery] = receiver
        .wait_for(1, Duration::from_secs(5))
        .await
        .try_into()
        .unwrap();
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["webhook_event"], "invoice.paid");
    assert_eq!(body["invoice_id"], "inv_1");
    assert_eq!(delivery.token, queued["delivery_token"]);
    assert!(delivery.attempt >= 3, "attempts keep counting");
    verifier(&app)
        .verify(&delivery.signature, &delivery.body)
        .await
        .unwrap();
}

#[tokio::test]
async fn private_targets_need_the_operators_flag() {
    let app = spawn_app_with(|s| {
        s.webhooks.poll_interval = Duration::from_millis(50);
        s.webhooks.retry_base = Duration::from_millis(100);
    })
    .await;
    let (client, _) = app.create_client("a", None).await;
    let set = |url: &str, flags: &[&str]| {
        let mut args = vec!["apps", "set-webhook", &client.app_id, url];
        args.extend_from_slice(flags);
        app.cli(&args)
    };
    let refused = |output: std::process::Output, needle: &str| {
        assert!(!output.status.success());
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    };
    refused(set("http://127.0.0.1:9/h", &[]), "https");
    refused(set("http://127.0.0.1:9/h", &["--allow-http"]), "loopback");
    refused(set("https://10.1.2.3/h", &[]), "private");
    refused(
        set("https://169.254.169.254/latest/meta-data", &[]),
        "link-local",
    );
    refused(set("https://[::1]/h", &[]), "loopback");
    refused(set("https://localhost/h", &[]), "loopback");
    refused(set("https://user:pw@hooks.example.com/h", &[]), "password");
    assert_eq!(
        app.store
            .get_app(&client.app_id)
            .await
            .unwrap()
            .unwrap()
            .webhook_url,
        None,
        "nothing was stored"
    );

    // Stored with the CLI's flags, but this server was not started with them: it
    // refuses to deliver there, and says why.
    let receiver = Receiver::start(&[]).await;
    set_webhook(&app.database_url, &client.app_id, &receiver.url);
    cli_json(
        &app.cli_async(&[
            "webhooks",
            "send",
            "--app",
            &client.app_id,
            "--event",
            "x.y",
            "--retry-window",
            "1s",
            "--json",
        ])
        .await,
    );
    wait_until(Duration::from_secs(10), || {
        events(&app, &["--status", "failed"]).len() == 1
    })
    .await
    .expect("failed");
    let failed = &events(&app, &["--status", "failed"])[0];
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("https") || error.contains("loopback"),
        "{error}"
    );
    assert!(
        receiver.deliveries().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn the_test_trigger_validates_its_input() {
    let app = webhook_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    let body = json!({"webhook_event": "link.state_changed"});

    let no_token = app
        .http
        .post(app.url("/webhooks/test/link/l1"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_invalid_token(no_token).await;
    assert_invalid_token(trigger(&app, "not-a-token", "l1", &body).await).await;
    assert_error(
        trigger(&app, &token, "l1", &body).await,
        400,
        "api_error.webhooks.not_configured",
        None,
    )
    .await;

    let receiver = Receiver::start(&[]).await;
    set_webhook(&app.database_url, &client.app_id, &receiver.url);
    assert_validation_failed(
        trigger(
            &app,
            &token,
            "l1",
            &json!({"webhook_event": "link.deleted"}),
        )
        .await,
    )
    .await;
    assert_validation_failed(trigger(&app, &token, "l1", &json!({})).await).await;
    let garbage = app
        .http
        .post(app.url("/webhooks/test/link/l1"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_validation_failed(garbage).await;
    let long = "k".repeat(201);
    assert_validation_failed(
        trigger(
            &app,
            &token,
            "l1",
            &json!({"webhook_event": "link.state_changed", "webhook_idempotency_key": long}),
        )
        .await,
    )
    .await;
    assert!(events(&app, &[]).is_empty(), "nothing was queued");

    for event in [
        "link.state_changed",
        "transactions.updates_available",
        "product.state_changed",
        "link.product_refresh",
    ] {
        let r = trigger(&app, &token, "l1", &json!({"webhook_event": event})).await;
        assert_eq!(r.status(), 200, "{event}");
    }
    let got = receiver.wait_for(4, Duration::from_secs(5)).await;
    let mut names: Vec<String> = got
        .iter()
        .map(|d| serde_json::from_slice::<Value>(&d.body).unwrap()["webhook_event"].to_string())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 4);
}

#[tokio::test]
async fn key_rotation_mid_stream_keeps_every_delivery_verifiable() {
    let app = webhook_app().await;
    let receiver = Receiver::start(&[]).await;
    let (id, secret, _) = app_with_webhook(&app, &receiver.url).await;
    let token = app.token(&id, &secret, None).await;
    let send = |n: usize| {
        let (app, token) = (&app, &token);
        async move {
            for _ in 0..n {
                let body = json!({"webhook_event": "link.state_changed"});
                assert_eq!(trigger(app, token, "l", &body).await.status(), 200);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    send(5).await;
    // The next key is published first and signs only after the activation delay: a
    // receiver whose cached JWKS is younger than that delay already has it.
    let rotated = cli_json(
        &app.cli_async(&["keys", "rotate", "--key-activation-delay", "2s", "--json"])
            .await,
    );
    assert_eq!(rotated["result"], "published");
    wait_until(Duration::from_secs(2), || receiver.deliveries().len() >= 5)
        .await
        .unwrap();
    // The receiver caches the JWKS now, and never refetches.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cached = app.jwks().await;
    assert_eq!(cached.keys.len(), 2, "the next key is published");
    let receiver_cache = Verifier::from_jwks(&cached);
    send(40).await; // about 3 s: across the activation
    let got = receiver.wait_for(45, Duration::from_secs(10)).await;
    let mut kids = std::collections::BTreeSet::new();
    for d in &got {
        receiver_cache
            .verify(&d.signature, &d.body)
            .await
            .expect("verifies with the JWKS cached before the rotation took effect");
        kids.insert(
            jwt_part(&d.signature, 0)["kid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        kids.len(),
        2,
        "deliveries were signed by the old key and then the new"
    );
    assert_eq!(kids.into_iter().collect::<Vec<_>>(), {
        let mut k: Vec<String> = cached.keys.iter().filter_map(|k| k.kid.clone()).collect();
        k.sort();
        k
    });
}

#[tokio::test]
async fn events_pending_when_the_server_is_killed_are_delivered_after_restart() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(&[]).await;
    receiver.failing.store(true, Ordering::SeqCst);
    let flags = [
        "--webhooks-allow-http",
        "--webhooks-allow-private-targets",
        "--webhook-retry-base",
        "200ms",
        "--webhook-timeout",
        "1s",
    ];
    let mut first = ServerProcess::start(&db.url, &flags).await;
    let app_id = cli_app(&db.url, "K");
    set_webhook(&db.url, &app_id, &receiver.url);
    let mut tokens = std::collections::BTreeSet::new();
    for i in 0..20 {
        let queued = cli_json(&cli(
            &db.url,
            &[
                "webhooks",
                "send",
                "--app",
                &app_id,
                "--event",
                "batch.item",
                "--data",
                &format!(r#"{{"n": {i}}}"#),
                "--json",
            ],
        ));
        tokens.insert(queued["delivery_token"].as_str().unwrap().to_owned());
    }
    // Attempts are being made and failing; kill the server mid-stream.
    receiver.wait_for(5, Duration::from_secs(10)).await;
    first.kill(); // SIGKILL
    // A request the dead server sent just before the kill may still be waiting to be read:
    // let the receiver take it (and fail it) before counting what came before the restart.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before_restart = receiver.deliveries().len();

    receiver.failing.store(false, Ordering::SeqCst);
    let _second = ServerProcess::start(&db.url, &flags).await;
    let limit = Duration::from_secs(30);
    wait_until(limit, || {
        let delivered: std::collections::BTreeSet<String> = receiver.deliveries()[before_restart..]
            .iter()
            .filter(|d| d.attempt > 0)
            .map(|d| d.token.clone())
            .collect();
        tokens.is_subset(&delivered)
    })
    .await
    .expect("every event reached the receiver after the restart");
    wait_until(limit, || {
        let out = cli(
            &db.url,
            &["webhooks", "list", "--status", "delivered", "--json"],
        );
        cli_json(&out).as_array().unwrap().len() == 20
    })
    .await
    .expect("all 20 recorded as delivered; none lost");
}

/// A loopback URL nothing listens on: every attempt fails at once, without leaving the host.
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/gone", l.local_addr().unwrap())
}

/// The app's events in `status`, straight from the store.
async fn count_events(app: &TestApp, app_id: &str, status: EventStatus) -> usize {
    app.store
        .list_webhook_events(Some(app_id), Some(status), 100_000)
        .await
        .unwrap()
        .len()
}

/// Fires `n` test triggers with `token`, 16 at a time, within 30 s; returns (status,
/// error code, Retry-After) of each.
async fn fire(app: &TestApp, token: &str, n: usize) -> Vec<(u16, String, Option<u64>)> {
    use futures_util::StreamExt;
    let calls = futures_util::stream::iter(0..n)
        .map(|i| async move {
            let body = json!({"webhook_event": "link.state_changed", "webhook_idempotency_key": format!("k{i}")});
            let response = trigger(app, token, "mk_link_load", &body).await;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body: Value = response.json().await.unwrap_or_default();
            let code = body["error_code"].as_str().unwrap_or_default().to_owned();
            (status, code, retry_after)
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    tokio::time::timeout(Duration::from_secs(30), calls)
        .await
        .expect("the load finished within 30 s")
}

/// Issue 14 item 3: one client token could queue thousands of test events in a second.
/// Now the trigger has token buckets per app and per client (429
/// `api_error.rate_limit_exceeded` with `Retry-After`), and an app with too many pending
/// events gets 429 `api_error.webhooks.too_many_pending` — the outbox never holds more
/// pending events for it than the cap, even under concurrent calls.
#[tokio::test]
async fn the_test_trigger_is_rate_limited_and_pending_events_are_capped_per_app() {
    use moneykit_auth::engine::ratelimit::Rate;
    const CAP: usize = 40;
    let app = spawn_app_with(|s| {
        s.webhooks.policy.allow_http = true;
        s.webhooks.policy.allow_private_targets = true;
        s.webhooks.poll_interval = Duration::from_millis(50);
        // Failed attempts wait a minute: every queued event stays pending.
        s.webhooks.retry_base = Duration::from_secs(60);
        s.webhooks.max_pending_per_app = CAP as u32;
        s.rate_limits.webhook_tests_per_app = Rate::per(100, Duration::from_secs(60));
        s.rate_limits.webhook_tests_per_client = Rate::per(70, Duration::from_secs(60));
    })
    .await;
    let (first, secret) = app.create_client("a", None).await;
    set_webhook(&app.database_url, &first.app_id, &closed_port_url());
    let (second, second_secret) = app.create_client_in(&first.app_id, "a", None).await;
    let token = app.token(&first.id, &secret, None).await;
    let second_token = app.token(&second.id, &second_secret, None).await;

    let results = fire(&app, &token, 200).await;
    let queued = results.iter().filter(|r| r.0 == 200).count();
    let refused: Vec<_> = results.iter().filter(|r| r.0 != 200).collect();
    assert!(
        refused.iter().all(|r| r.0 == 429),
        "only 200 or 429: {refused:?}"
    );
    assert!(
        refused.iter().all(|r| r.2.is_some_and(|s| s >= 1)),
        "every 429 says when to come back: {refused:?}"
    );
    let limited = refused
        .iter()
        .filter(|r| r.1 == "api_error.rate_limit_exceeded")
        .count();
    let backlogged = refused
        .iter()
        .filter(|r| r.1 == "api_error.webhooks.too_many_pending")
        .count();
    assert_eq!(limited + backlogged, refused.len(), "{refused:?}");
    assert_eq!(
        queued, CAP,
        "{queued} queued, {limited} rate-limited, {backlogged} over the cap"
    );
    assert!(
        limited >= 100,
        "the client's budget (70 a minute) ran out: {limited}"
    );
    assert!(backlogged >= 1, "the cap answered too: {backlogged}");
    assert_eq!(
        count_events(&app, &first.app_id, EventStatus::Pending).await,
        CAP,
        "never more pending than the cap"
    );

    // The app's budget (100) is shared by its clients: the second client's own budget is
    // untouched, but the app's runs out.
    let results = fire(&app, &second_token, 50).await;
    assert!(results.iter().all(|r| r.0 == 429), "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| r.1 == "api_error.rate_limit_exceeded"),
        "the app's budget is spent: {results:?}"
    );
    assert!(count_events(&app, &first.app_id, EventStatus::Pending).await <= CAP);

    // Another app is not affected.
    let (other, other_secret) = app.create_client("a", None).await;
    let receiver = Receiver::start(&[]).await;
    set_webhook(&app.database_url, &other.app_id, &receiver.url);
    let other_token = app.token(&other.id, &other_secret, None).await;
    let body = json!({"webhook_event": "link.state_changed"});
    assert_eq!(trigger(&app, &other_token, "l", &body).await.status(), 200);
    receiver.wait_for(1, Duration::from_secs(5)).await;
}

/// Issue 14 item 3: nothing pruned `webhook_events`. Now delivered and failed events are
/// deleted once they finished longer than the retention ago; pending ones stay.
#[tokio::test]
async fn delivered_and_failed_events_are_pruned_after_the_retention() {
    let app = spawn_app_with(|s| {
        s.webhooks.policy.allow_http = true;
        s.webhooks.policy.allow_private_targets = true;
        s.webhooks.poll_interval = Duration::from_millis(50);
        s.webhooks.retry_base = Duration::from_millis(100);
        s.webhooks.retention = Duration::from_secs(1);
        s.webhooks.prune_interval = Duration::from_millis(100);
    })
    .await;
    let store = app.store.clone();
    let receiver = Receiver::start(&[]).await;
    let delivered_app = app.create_app("Delivered").await.id;
    set_webhook(&app.database_url, &delivered_app, &receiver.url);
    let failed_app = app.create_app("Failed").await.id;
    set_webhook(&app.database_url, &failed_app, &closed_port_url());
    let pending_app = app.create_app("Pending").await.id;
    set_webhook(&app.database_url, &pending_app, &closed_port_url());
    let queue = |app_id: &str, window: Duration| {
        let (store, app_id) = (store.clone(), app_id.to_owned());
        async move {
            moneykit_auth::operations::queue_webhook_event(
                store.as_ref(),
                &app_id,
                "x.y",
                b"{}".to_vec(),
                window,
            )
            .await
            .unwrap()
        }
    };
    queue(&delivered_app, Duration::from_secs(3600)).await;
    queue(&failed_app, Duration::from_millis(300)).await;
    queue(&pending_app, Duration::from_secs(3600)).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen_finished = (false, false);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "finished events were not pruned within 10 s (seen delivered, failed: {seen_finished:?})"
        );
        let delivered = count_events(&app, &delivered_app, EventStatus::Delivered).await;
        let failed = count_events(&app, &failed_app, EventStatus::Failed).await;
        seen_finished.0 |= delivered == 1;
        seen_finished.1 |= failed == 1;
        let all = |app_id: &str| {
            let (store, app_id) = (store.clone(), app_id.to_owned());
            async move {
                store
                    .list_webhook_events(Some(&app_id), None, 10)
                    .await
                    .unwrap()
                    .len()
            }
        };
        if seen_finished == (true, true)
            && all(&delivered_app).await == 0
            && all(&failed_app).await == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count_events(&app, &pending_app, EventStatus::Pending).await,
        1,
        "pending events are never pruned"
    );
}

/// Issue 14 item 3: every failed attempt logged a warning (18 010 lines within minutes).
/// Now a failing endpoint gets at most one warning per interval (a minute by default),
/// saying how many attempts failed; each attempt is still logged at debug level.
#[tokio::test]
async fn a_failing_endpoint_logs_a_bounded_number_of_warnings() {
    const EVENTS: usize = 40;
    let db = TestDb::new().await;
    let app_id = cli_app(&db.url, "Failing");
    set_webhook(&db.url, &app_id, &closed_port_url());
    let store = moneykit_auth::store::connect(&db.url, moneykit_auth::store::OpenMode::MustExist)
        .await
        .unwrap();
    for _ in 0..EVENTS {
        moneykit_auth::operations::queue_webhook_event(
            store.as_ref(),
            &app_id,
            "x.y",
            b"{}".to_vec(),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    }
    let server = ServerProcess::spawn(
        &db.url,
        &[
            "--webhooks-allow-http",
            "--webhooks-allow-private-targets",
            "--webhook-retry-base",
            "100ms",
            "--webhook-timeout",
            "1s",
        ],
        TEST_SECRET,
        "warn,moneykit_auth::webhooks::worker=debug",
    );
    server.wait_for("/healthz/live").await;
    // Wait (at most 15 s) until every event failed at least three times, and those
    // attempts are in the log (an attempt is counted in the store when it starts, and
    // logged when it has failed).
    let attempts_logged = |log: &str| {
        log.lines()
            .filter(|l| l.contains(" DEBUG ") && l.contains("webhook attempt failed"))
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let events = store
            .list_webhook_events(Some(&app_id), None, 1000)
            .await
            .unwrap();
        if events.iter().all(|e| e.attempts >= 3) && attempts_logged(&server.log()) >= 3 * EVENTS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "attempts are too slow: {:?}",
            events.iter().map(|e| e.attempts).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = server.log();
    // Lines about deliveries (not the startup notice that the test's policy is relaxed).
    let about_webhooks = |level: &str| {
        log.lines()
            .filter(|l| l.contains(level) && l.contains("webhook") && !l.contains("policy"))
            .collect::<Vec<_>>()
    };
    let warnings = about_webhooks(" WARN ");
    assert!(
        (1..=2).contains(&warnings.len()),
        "{} warnings for {} failed attempts:\n{}",
        warnings.len(),
        3 * EVENTS,
        warnings.join("\n")
    );
    assert!(
        warnings[0].contains("failures="),
        "the warning says how many failed: {}",
        warnings[0]
    );
    assert!(
        about_webhooks(" DEBUG ").len() >= 3 * EVENTS,
        "one debug line per attempt"
    );
}
