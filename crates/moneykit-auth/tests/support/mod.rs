//! What the test binaries share, included by each as
//! `#[path = "../support/mod.rs"] mod support;`.
//!
//! Here: the requests the tests make to a running server, given its base URL and a
//! `reqwest::Client` (an in-process server, a `serve` process, a replica), the encodings
//! those requests need (HTTP Basic, form bodies, JWT parts), and [`blocking`]. One concern
//! a module beside it: the real CLI ([`cli`]), a throwaway PostgreSQL cluster
//! ([`postgres`]), `serve` as a process ([`process`]) and a webhook endpoint
//! ([`receiver`]).

// Shared by several test binaries, each using part of it.
#![allow(dead_code)]

pub mod cli;
pub mod issuer;
pub mod postgres;
pub mod process;
pub mod receiver;
pub mod signing;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

/// Form-urlencodes one component.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Builds a form body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An HTTP Basic header value, form-urlencoding id and secret first (RFC 6749 §2.3.1).
pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

/// Decodes the JSON of one JWT part (0 header, 1 claims).
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Serves `router` on `listener` from a thread and runtime of its own, so a test that
/// blocks its own runtime (a CLI call, a current-thread runtime busy elsewhere) never
/// holds it up; it stops when the runtime of the test that called this shuts down, as a
/// task spawned there would.
pub fn serve_in_background(name: &str, listener: std::net::TcpListener, router: axum::Router) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    _ = axum::serve(listener, router) => {}
                    _ = stopped => {}
                }
            });
        })
        .unwrap();
    // Dropped, and so the server stopped, when the caller's runtime shuts down.
    tokio::spawn(async move {
        let _stop = stop;
        std::future::pending::<()>().await
    });
}

/// `f` on the blocking pool, so that the test's runtime keeps serving its other tasks
/// meanwhile; its panic (a failed assertion) is passed on as is.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("blocking task: {error}"),
        },
    }
}

/// `POST url` with a raw form body and an optional `Authorization` value.
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut request = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    request.send().await.unwrap()
}

/// `POST /auth/token` on the server at `base`: a client-credentials grant for `client`
/// (id, secret), the credentials in the body, asking for `scope` when given.
pub async fn request_token(
    http: &reqwest::Client,
    base: &str,
    (id, secret): (&str, &str),
    scope: Option<&str>,
) -> reqwest::Response {
    let mut body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ]);
    if let Some(scope) = scope {
        body.push_str(&format!("&scope={}", encode(scope)));
    }
    post_form(http, &format!("{base}/auth/token"), &body, None).await
}

/// A token for `client` from the server at `base` ([`request_token`]); panics unless 201.
pub async fn token(
    http: &reqwest::Client,
    base: &str,
    client: (&str, &str),
    scope: Option<&str>,
) -> String {
    let response = request_token(http, base, client, scope).await;
    assert_eq!(
        response.status(),
        201,
        "token from {base}: {}",
        response.text().await.unwrap()
    );
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// `GET /auth/introspect` on the server at `base`, with `token` as the bearer.
pub async fn introspect(http: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    http.get(format!("{base}/auth/introspect"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `POST url` with the form `token=…`, by client `caller` (id, secret) over HTTP Basic:
/// a question about `token` to `/oauth2/introspect` (RFC 7662) or `/oauth2/revoke`
/// (RFC 7009).
pub async fn oauth2_token_call(
    http: &reqwest::Client,
    url: &str,
    (id, secret): (&str, &str),
    token: &str,
) -> reqwest::Response {
    post_form(
        http,
        url,
        &form(&[("token", token)]),
        Some(&basic(id, secret)),
    )
    .await
}

/// A JSON document fetched with `GET url`; panics unless 200.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

/// The JWKS of the server at `base`.
pub async fn jwks(http: &reqwest::Client, base: &str) -> Value {
    get_json(http, &format!("{base}/.well-known/jwks.json")).await
}

/// A call to an admin API (`url`, with `admin_token` as the bearer): the status and the
/// JSON body (a body that is not JSON, such as `/metrics`, as a JSON string).
pub async fn admin_call(
    http: &reqwest::Client,
    admin_token: &str,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http
        .request(method.parse().unwrap(), url)
        .bearer_auth(admin_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
