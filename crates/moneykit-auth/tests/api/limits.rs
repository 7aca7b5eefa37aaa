//! Request hygiene: limits, unknown paths and methods, request ids, health checks.

use std::time::Duration;

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
        let status = response.status();
        assert!(status.is_client_error(), "{body:?} → {status}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert!(
            error["error_code"].is_string() && error["error"].is_string(),
            "{body:?} → {status}: both error shapes: {error}"
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
            let response = match request.header("authorization", auth).send().await {
                Ok(response) => response,
                // reqwest would not build a request with this header: nothing was sent.
                Err(e) if e.is_builder() => continue,
                Err(e) => panic!("{auth:?} on {path}: no answer from the server: {e}"),
            };
            println!("{auth:?} on {path}");
            if path == "/auth/token" {
                assert_invalid_client(response).await;
            } else {
                assert_invalid_token(response).await;
            }
        }
    }
}

/// Sends `GET /healthz/live` on an open connection and reads the whole response: its
/// status line, or `None` once the server has closed the connection.
async fn get_live(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = b"GET /healthz/live HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(request).await.ok()?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.parse().unwrap());
            if body.len() >= length {
                return head.lines().next().map(str::to_owned);
            }
        }
    }
}

/// How long until the server closes `stream` (reads return end of file), at most `limit`.
async fn time_to_close(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let closed = async { while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {} };
    tokio::time::timeout(limit, closed).await.ok()?;
    Some(started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_kept_alive_connections_outlive_the_header_timeout_but_slow_heads_do_not() {
    let _load = timing_sensitive().await;
    use tokio::io::AsyncWriteExt;
    let header_timeout = Duration::from_millis(500);
    let keep_alive = Duration::from_secs(4);
    let app = spawn_app_with(|s| {
        s.connection.header_read_timeout = header_timeout;
        s.connection.keep_alive_timeout = keep_alive;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let connect = || tokio::net::TcpStream::connect(addr.clone());
    let ok = Some("HTTP/1.1 200 OK".to_owned());

    // Reused after idling three header timeouts: still served.
    let mut stream = connect().await.unwrap();
    assert_eq!(get_live(&mut stream).await, ok);
    tokio::time::sleep(header_timeout * 3).await;
    assert_eq!(get_live(&mut stream).await, ok, "reused after idling");
    // A next head begun and never finished is cut off at the header timeout.
    stream
        .write_all(b"GET /healthz/live HTTP/1.1\r\n")
        .await
        .unwrap();
    let waited = time_to_close(&mut stream, Duration::from_secs(5)).await;
    let waited = waited.expect("a stalled head is cut off");
    // The header timeout, with room for a busy machine; far from the keep-alive timeout.
    assert!(waited < Duration::from_millis(2500), "{waited:?}");

    // A connection that never sends a byte is closed at the header timeout too.
    let mut silent = connect().await.unwrap();
    let waited = time_to_close(&mut silent, Duration::from_secs(5)).await;
    let waited = waited.expect("a silent connection is closed");
    assert!(waited < Duration::from_millis(2500), "{waited:?}");

    // And an idle kept-alive connection is closed at the keep-alive timeout.
    let mut idle = connect().await.unwrap();
    assert_eq!(get_live(&mut idle).await, ok);
    let waited = time_to_close(&mut idle, Duration::from_secs(15)).await;
    let waited = waited.expect("an idle connection is closed in the end");
    // The keep-alive timeout, checked a quarter of it at a time: at most a quarter more.
    assert!(
        waited > keep_alive - Duration::from_millis(500) && waited < keep_alive * 2,
        "{waited:?}"
    );
}

#[tokio::test]
async fn request_ids_that_are_not_short_visible_text_are_replaced() {
    let app = spawn_app().await;
    let id_for = |given: &'static [u8]| {
        app.http
            .get(app.url("/healthz/live"))
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(given).unwrap(),
            )
            .send()
    };
    let generated = |response: &reqwest::Response| {
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let (prefix, counter) = id.split_once('-').expect("prefix-counter");
        assert_eq!(prefix.len(), 12, "{id}");
        assert!(
            (prefix.to_owned() + counter)
                .bytes()
                .all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    };
    for given in [
        &b"trace\x80\xff"[..],
        b"trace\tme",
        b"trace me",
        &[b'a'; 129],
    ] {
        let response = id_for(given).await.unwrap();
        assert_ne!(response.headers()["x-request-id"].as_bytes(), given);
        generated(&response);
    }
    let longest = id_for(&[b'b'; 128]).await.unwrap();
    assert_eq!(longest.headers()["x-request-id"].as_bytes(), &[b'b'; 128]);
}

#[tokio::test]
async fn a_declared_body_over_the_cap_gets_413_at_once_without_100_continue() {
    let _load = timing_sensitive().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /auth/token HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            response.extend_from_slice(&buf[..n]);
            if n == 0 || response.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    let response = String::from_utf8_lossy(&response).into_owned();
    assert!(
        read.is_ok(),
        "answered at once, not after the request timeout: {response:?}"
    );
    assert!(response.starts_with("HTTP/1.1 413"), "{response:?}");
    assert!(
        response.contains("content-type: application/json"),
        "{response}"
    );
    assert!(
        response.contains("api_error.request.body_too_large"),
        "{response}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
