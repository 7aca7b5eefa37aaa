//! Signed webhook delivery (PRODUCT.md §7), end to end: a real server delivers to a local
//! receiver, which verifies every delivery the way MoneyKit's receivers do — with the
//! `moneykit` SDK's `webhooks::Verifier` against the server's JWKS.

use std::sync::atomic::Ordering;
use std::time::Duration;

use moneykit::webhooks::Verifier;
use moneykit::{AccessTokenApi, Configuration};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;

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
    Verifier::new(AccessTokenApi::new(Configuration::new().host(&app.base)).unwrap())
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
    let queued = cli_json(&app.cli(&[
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
    ]));
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
    let retried = cli_json(&app.cli(&["webhooks", "retry", &event_id, "--json"]));
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
    cli_json(&app.cli(&[
        "webhooks",
        "send",
        "--app",
        &client.app_id,
        "--event",
        "x.y",
        "--retry-window",
        "1s",
        "--json",
    ]));
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
    let rotated = cli_json(&app.cli(&["keys", "rotate", "--key-activation-delay", "2s", "--json"]));
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
