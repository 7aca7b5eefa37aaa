//! The admin HTTP API and `/metrics`: everything the CLI does, behind the admin token, on
//! its own listener.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn admin_app() -> TestApp {
    admin_app_with(|_| {}).await
}

/// An admin-enabled server with settings adjusted by `adjust`.
async fn admin_app_with(adjust: impl FnOnce(&mut moneykit_auth::config::ServeSettings)) -> TestApp {
    spawn_admin_app_with(adjust).await
}

async fn call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", app.admin_base.as_ref().unwrap());
    admin_call(&app.http, ADMIN_TOKEN, method, &url, body).await
}

#[tokio::test]
async fn the_admin_api_needs_its_token() {
    let app = admin_app().await;
    let base = app.admin_base.clone().unwrap();
    for path in ["/admin/apps", "/metrics"] {
        let none = app.http.get(format!("{base}{path}")).send().await.unwrap();
        assert_invalid_token(none).await;
        let wrong = app
            .http
            .get(format!("{base}{path}"))
            .bearer_auth("admin-token-for-tests-0123456789abcdeX")
            .send()
            .await
            .unwrap();
        assert_invalid_token(wrong).await;
    }
    // The admin API is not on the public listener.
    let public = app
        .http
        .get(app.url("/admin/apps"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);

    let db = TestDb::new().await;
    let mut settings = test_settings(&db);
    settings.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    settings.admin_token = Some("short".into());
    let error = moneykit_auth::startup::Application::build(settings)
        .await
        .err()
        .expect("refuses a short token")
        .to_string();
    assert!(error.contains("MONEYKIT_AUTH_ADMIN_TOKEN"), "{error}");
}

#[tokio::test]
async fn the_admin_api_does_what_the_cli_does() {
    // Webhook URLs are checked against the server's own policy (a request may only
    // narrow it), so this server allows the loopback receiver.
    let app = admin_app_with(|s| {
        s.webhooks.policy.allow_http = true;
        s.webhooks.policy.allow_private_targets = true;
    })
    .await;
    let (status, created) = call(
        &app,
        "POST",
        "/admin/apps",
        Some(json!({"name": "Admin App"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let app_id = created["app_id"].as_str().unwrap().to_owned();
    let (status, client) = call(
        &app,
        "POST",
        "/admin/clients",
        Some(json!({"app_id": app_id, "name": "api", "scope": "accounts:read"})),
    )
    .await;
    assert_eq!(status, 201, "{client}");
    let id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    app.synced().await;
    app.token(&id, &secret, None).await;

    let (status, shown) = call(&app, "GET", &format!("/admin/clients/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["status"], "enabled");
    assert!(shown.get("client_secret").is_none(), "never shown again");
    let (status, listed) = call(&app, "GET", &format!("/admin/clients?app={app_id}"), None).await;
    assert_eq!((status, listed.as_array().unwrap().len()), (200, 1));

    let (status, disabled) =
        call(&app, "POST", &format!("/admin/clients/{id}/disable"), None).await;
    assert_eq!(
        (status, disabled["status"].as_str()),
        (200, Some("disabled"))
    );
    app.synced().await;
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &id),
        ("client_secret", &secret),
    ]);
    assert_invalid_client(app.post_token(&body, None).await).await;
    call(&app, "POST", &format!("/admin/clients/{id}/enable"), None).await;
    let (_, rotated) = call(
        &app,
        "POST",
        &format!("/admin/clients/{id}/rotate-secret"),
        None,
    )
    .await;
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    app.synced().await;
    app.token(&id, &new_secret, None).await;

    let (status, missing) = call(&app, "GET", "/admin/clients/live_nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error_code"], "api_error.admin.not_found");
    let (status, bad) = call(
        &app,
        "POST",
        "/admin/clients",
        Some(json!({"app_id": app_id, "scope": "bad\"scope"})),
    )
    .await;
    assert_eq!(status, 422, "{bad}");

    let (status, keys) = call(&app, "GET", "/admin/keys", None).await;
    assert_eq!((status, keys.as_array().unwrap().len()), (200, 1));
    let (status, rotation) = call(
        &app,
        "POST",
        "/admin/keys/rotate",
        Some(json!({"now": true})),
    )
    .await;
    assert_eq!(
        (status, rotation["result"].as_str()),
        (200, Some("published"))
    );
    app.synced().await;
    assert_eq!(app.jwks().await.keys.len(), 2);

    // Webhooks: refused without a URL, queued with one.
    let (status, _) = call(
        &app,
        "POST",
        "/admin/webhooks",
        Some(json!({"app_id": app_id, "event": "x.y"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, refused) = call(
        &app,
        "PUT",
        &format!("/admin/apps/{app_id}/webhook"),
        Some(json!({"url": "http://127.0.0.1:9/h", "allow_private_targets": false})),
    )
    .await;
    assert_eq!(status, 422, "the SSRF guard applies here too: {refused}");
    let (status, set) = call(
        &app,
        "PUT",
        &format!("/admin/apps/{app_id}/webhook"),
        Some(json!({"url": "http://127.0.0.1:9/h", "allow_http": true, "allow_private_targets": true})),
    )
    .await;
    assert_eq!(
        (status, set["webhook_url"].as_str()),
        (200, Some("http://127.0.0.1:9/h"))
    );
    let (status, queued) = call(
        &app,
        "POST",
        "/admin/webhooks",
        Some(json!({"app_id": app_id, "event": "invoice.paid", "data": {"n": 1}})),
    )
    .await;
    assert_eq!((status, queued["status"].as_str()), (201, Some("pending")));
    let (status, events) = call(&app, "GET", &format!("/admin/webhooks?app={app_id}"), None).await;
    assert_eq!((status, events.as_array().unwrap().len()), (200, 1));
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/admin/apps/{app_id}/webhook"),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_key_ages() {
    let app = admin_app().await;
    let (client, secret) = app.create_client("a", None).await;
    for _ in 0..3 {
        app.token(&client.id, &secret, None).await;
    }
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &client.id),
        ("client_secret", "mks_wrong"),
    ]);
    assert_eq!(app.post_token(&body, None).await.status(), 401);
    app.http.get(app.url("/no/such/path")).send().await.unwrap();

    let scrape = || async {
        let response = app
            .http
            .get(format!("{}/metrics", app.admin_base.as_ref().unwrap()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        response.text().await.unwrap()
    };
    // A request's duration is recorded as its response completes, just after the
    // client has it: wait for the last one to be counted.
    let last_counted = r#"moneykit_auth_requests_total{route="other",status="404"} 1"#;
    within(
        Duration::from_secs(5),
        "the last request is counted",
        || async { scrape().await.contains(last_counted) },
    )
    .await;
    let text = scrape().await;
    for expected in [
        r#"moneykit_auth_requests_total{route="/auth/token",status="201"} 3"#,
        r#"moneykit_auth_requests_total{route="/auth/token",status="401"} 1"#,
        r#"moneykit_auth_requests_total{route="other",status="404"} 1"#,
        "moneykit_auth_tokens_issued_total 3",
        "moneykit_auth_client_auth_failures_total 1",
        "moneykit_auth_rate_limited_total 0",
        r#"moneykit_auth_request_duration_seconds_count{route="/auth/token"} 4"#,
        "moneykit_auth_ready 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(
        text.contains(r#"moneykit_auth_signing_key_age_seconds{kid="key_"#),
        "{text}"
    );
    assert!(!text.contains(&secret), "no secrets in metrics");

    // What an operator watches besides requests: every family present, with a value.
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(text.contains(&format!(
        "moneykit_auth_build_info{{version=\"{}\",commit=\"",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(value("moneykit_auth_refresh_last_success_timestamp_seconds ") > 1.7e9);
    assert!(
        value("moneykit_auth_refresh_lag_seconds ") < 5.0,
        "refreshing"
    );
    assert_eq!(value("moneykit_auth_refresh_failures_total "), 0.0);
    assert!(value("moneykit_auth_db_pool_max_connections ") >= 1.0);
    assert!(value("moneykit_auth_db_pool_connections{state=\"idle\"} ") >= 0.0);
    assert_eq!(value("moneykit_auth_db_pool_waiters "), 0.0);
    assert!(value("moneykit_auth_db_pool_acquire_seconds_count ") > 0.0);
    assert_eq!(
        value("moneykit_auth_webhook_outbox_events{status=\"pending\"} "),
        0.0
    );
    // The test server runs in this test's process: its figures are this process's.
    assert!(value("process_resident_memory_bytes ") > 1e6);
    assert!(value("process_open_fds ") > 3.0);
    assert!(value("process_max_fds ") >= value("process_open_fds "));
    assert!(value("process_cpu_seconds_total ") > 0.0);
    assert!(value("process_start_time_seconds ") > 1.7e9);
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }
}

/// `PUT /admin/apps/{id}/webhook` checks the URL against the server's own target policy
/// (`--webhooks-allow-http`, `--webhooks-allow-private-targets`); the body's
/// `allow_http`/`allow_private_targets` may only narrow it for this URL, never widen it.
/// Decisions only: no event is queued, so nothing connects to these addresses.
#[tokio::test]
async fn webhook_urls_set_through_the_admin_api_follow_the_servers_own_policy() {
    let stored = |app: &TestApp, app_id: &str| {
        let (store, app_id) = (app.store.clone(), app_id.to_owned());
        async move { store.get_app(&app_id).await.unwrap().unwrap().webhook_url }
    };

    // A server with the default policy: body flags cannot open it up.
    let strict = admin_app().await;
    let app_id = strict.create_app("Strict").await.id;
    let path = format!("/admin/apps/{app_id}/webhook");
    for url in [
        "http://127.0.0.1:9/h",
        "https://127.0.0.1:9/h",
        "https://169.254.169.254/latest/meta-data",
        "https://[::127.0.0.1]/h",
        "https://[2002:7f00:1::]/h",
    ] {
        let (status, body) = call(
            &strict,
            "PUT",
            &path,
            Some(json!({"url": url, "allow_http": true, "allow_private_targets": true})),
        )
        .await;
        assert_eq!(status, 422, "{url} must not be widened in: {body}");
        assert_eq!(body["error_code"], "api_error.request.validation_failed");
    }
    assert_eq!(stored(&strict, &app_id).await, None, "nothing was stored");

    // A server started with both flags: the body need not repeat them…
    let open = admin_app_with(|s| {
        s.webhooks.policy.allow_http = true;
        s.webhooks.policy.allow_private_targets = true;
    })
    .await;
    let app_id = open.create_app("Open").await.id;
    let path = format!("/admin/apps/{app_id}/webhook");
    let (status, body) = call(
        &open,
        "PUT",
        &path,
        Some(json!({"url": "http://127.0.0.1:9/h"})),
    )
    .await;
    assert_eq!(status, 200, "the server's policy applies: {body}");
    assert_eq!(body["webhook_url"], "http://127.0.0.1:9/h");
    // …and may narrow them for one URL.
    for (url, narrowing) in [
        (
            "http://127.0.0.1:9/other",
            json!({"allow_private_targets": false}),
        ),
        ("http://127.0.0.1:9/other", json!({"allow_http": false})),
        (
            "https://127.0.0.1:9/other",
            json!({"allow_private_targets": false}),
        ),
        (
            "http://hooks.example.com/other",
            json!({"allow_http": false}),
        ),
    ] {
        let mut request = narrowing.clone();
        request["url"] = json!(url);
        let (status, body) = call(&open, "PUT", &path, Some(request)).await;
        assert_eq!(status, 422, "{url} with {narrowing}: {body}");
    }
    assert_eq!(
        stored(&open, &app_id).await.as_deref(),
        Some("http://127.0.0.1:9/h"),
        "refused changes left the URL as it was"
    );
    let (status, body) = call(
        &open,
        "PUT",
        &path,
        Some(json!({"url": "https://127.0.0.1:9/h", "allow_http": false, "allow_private_targets": true})),
    )
    .await;
    assert_eq!(status, 200, "narrowed, but still allowed: {body}");
}

/// Reads from `stream` until the server closes it or `limit` passes: what it sent, and
/// whether it closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&seen).into_owned(), closed)
}

#[tokio::test]
async fn the_admin_listener_times_out_slow_and_idle_connections_and_caps_them() {
    let _load = timing_sensitive().await;
    use tokio::io::AsyncWriteExt;
    let header_timeout = Duration::from_millis(1000);
    let app = spawn_app_with(|s| {
        s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        s.admin_token = Some(ADMIN_TOKEN.into());
        s.connection.header_read_timeout = header_timeout;
        s.connection.max_connections_per_address = 3;
        s.limits.request_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = app
        .admin_base
        .clone()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let connect = || tokio::net::TcpStream::connect(addr.clone());

    // A partial head and a silent connection are closed at the header timeout.
    let mut partial = connect().await.unwrap();
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut silent = connect().await.unwrap();
    // One address gets three connections at once; a fourth is closed straight away.
    let mut third = connect().await.unwrap();
    let mut fourth = connect().await.unwrap();
    let (_, closed) = read_until_closed(&mut fourth, Duration::from_millis(500)).await;
    assert!(
        closed,
        "a connection over the per-address cap is closed at once"
    );
    for stream in [&mut partial, &mut silent, &mut third] {
        let (_, closed) = read_until_closed(stream, Duration::from_secs(3)).await;
        assert!(closed, "closed by the header timeout");
    }

    // A request whose body never finishes gets the JSON 408 at the request timeout.
    let mut slow = connect().await.unwrap();
    let head = format!(
        "POST /admin/apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 20\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let (response, _) = read_until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response:?}");
    assert!(response.contains("api_error.request.timeout"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_admin_api_answers_malformed_requests_in_the_json_error_shape() {
    let app = admin_app().await;
    let base = app.admin_base.clone().unwrap();
    let post_apps = |body: Vec<u8>, content_type: Option<&str>| {
        let mut request = app
            .http
            .post(format!("{base}/admin/apps"))
            .bearer_auth(ADMIN_TOKEN)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    let json = Some("application/json");
    // Not JSON, the wrong JSON, no content type: 422 in the documented shape, saying why.
    let body = assert_validation_failed(post_apps(b"{".to_vec(), json).await.unwrap()).await;
    assert!(
        body["error_message"].as_str().unwrap().contains("JSON"),
        "{body}"
    );
    let body =
        assert_validation_failed(post_apps(br#"{"name": 5}"#.to_vec(), json).await.unwrap()).await;
    assert!(
        body["error_message"].as_str().unwrap().contains("name"),
        "{body}"
    );
    assert_validation_failed(post_apps(br#"{"name":"x"}"#.to_vec(), None).await.unwrap()).await;
    let response = app
        .http
        .get(format!("{base}/admin/webhooks?limit=many"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_validation_failed(response).await;
    // Too large: 413.
    let huge = format!(r#"{{"name":"{}"}}"#, "a".repeat(70 * 1024));
    let response = post_apps(huge.into_bytes(), json).await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    assert_error(
        response,
        413,
        "api_error.request.body_too_large",
        Some("invalid_request"),
    )
    .await;
}

#[tokio::test]
async fn the_admin_api_is_served_over_tls_when_the_public_listener_is() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::tls::self_signed(dir.path(), "admin");
    let app = spawn_app_with(|s| {
        s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        s.admin_token = Some(ADMIN_TOKEN.into());
        s.tls = Some(moneykit_auth::http::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    })
    .await;
    let plain = app.admin_base.clone().unwrap();
    let https = plain.replace("http://", "https://");
    let response = crate::tls::trusting(&cert)
        .get(format!("{https}/admin/apps"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
    // Plain HTTP is not served there.
    let refused = app
        .http
        .get(format!("{plain}/admin/apps"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
}
