//! Request hygiene: limits, unknown paths and methods, request ids, health checks.

use crate::helpers::*;

#[tokio::test]
async fn over_long_bodies_get_413_in_the_documented_shape() {
    let app = spawn_app().await;
    let body = format!("client_id={}", "a".repeat(64 * 1024));
    let response = app.post_token(&body, None).await;
    assert_error(
        response,
        413,
        "api_error.request.body_too_large",
        Some("invalid_request"),
    )
    .await;
}

#[tokio::test]
async fn over_long_headers_get_431_with_a_json_body_and_request_id() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/auth/introspect"))
        .header("x-filler", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    assert_error(
        response,
        431,
        "api_error.request.headers_too_large",
        Some("invalid_request"),
    )
    .await;
    // Past the connection layer's hard cap the answer is still a 431, not a hang.
    let response = app
        .http
        .get(app.url("/healthz/live"))
        .header("x-filler", "a".repeat(128 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    // And the server is fine afterwards.
    let ok = app.http.get(app.url("/healthz/live")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn unknown_paths_get_404_and_wrong_methods_405_with_allow() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/no/such/path")).send().await.unwrap();
    assert_error(response, 404, "api_error.request.not_found", None).await;

    let response = app.http.get(app.url("/auth/token")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_error(response, 405, "api_error.request.method_not_allowed", None).await;

    let response = app
        .http
        .post(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["allow"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert_error(response, 405, "api_error.request.method_not_allowed", None).await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let a = app.http.get(app.url("/nope")).send().await.unwrap();
    let b = app.http.get(app.url("/nope")).send().await.unwrap();
    let (a, b) = (&a.headers()["x-request-id"], &b.headers()["x-request-id"]);
    assert!(!a.is_empty());
    assert_ne!(a, b);
}

#[tokio::test]
async fn health_endpoints_report_live_and_ready() {
    let app = spawn_app().await;
    for path in ["/healthz/live", "/healthz/ready"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn garbage_requests_never_get_a_5xx() {
    let app = spawn_app().await;
    let bodies: [&[u8]; 6] = [
        b"\xff\xfe\x00",
        b"=&=&==",
        b"%",
        b"client_id=%",
        b"&&&&",
        b"a=b=c",
    ];
    for body in bodies {
        let response = app
            .http
            .post(app.url("/auth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{body:?} → {}",
            response.status()
        );
    }
    for auth in [
        "Basic",
        "Basic =",
        "Basic OjpA",
        "Bearer",
        "Bearer ...",
        "Bearer \u{7f}",
    ] {
        for path in ["/auth/token", "/auth/introspect"] {
            let request = if path == "/auth/token" {
                app.http.post(app.url(path))
            } else {
                app.http.get(app.url(path))
            };
            let Ok(response) = request.header("authorization", auth).send().await else {
                continue; // the client refused to send it
            };
            assert!(response.status().is_client_error(), "{auth:?} on {path}");
        }
    }
}
