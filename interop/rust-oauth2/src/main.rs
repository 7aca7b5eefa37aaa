//! Interop suite: the [`oauth2`](https://docs.rs/oauth2/5) crate, a client nobody here wrote,
//! against moneykit-auth's standard OAuth 2.0 surface.
//!
//! It gets tokens with the client credentials grant (RFC 6749 §4.4) from `/oauth2/token` with
//! both client authentication methods the crate has (`AuthType::BasicAuth` =
//! client_secret_basic, `AuthType::RequestBody` = client_secret_post), narrows the scope, reads
//! the RFC 6749 §5.2 errors, then introspects a token (RFC 7662) with the same crate. (Its RFC 7009
//! revocation needs an HTTPS URL, so the authlib suite covers revocation instead.)
//!
//! Configuration comes from the environment, as `interop/run.sh` exports it:
//! `BASE_URL`, `CLIENT_ID`, `CLIENT_SECRET` (a client allowed `accounts:read transactions:read`)
//! and optionally `CLIENT2_ID`, `CLIENT2_SECRET` (a second client that introspects as a resource
//! server would; the first client is used when they are absent).
//!
//! Output: one `ok <check>` or `FAIL <check>: <why>` line per check, then
//! `N passed, N failed`. The exit status is 1 when any check failed.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::http::{HeaderMap, StatusCode, header};
use oauth2::{
    AccessToken, AsyncHttpClient, AuthType, ClientId, ClientSecret, HttpClientError, HttpRequest,
    HttpResponse, IntrospectionUrl, RequestTokenError, Scope, TokenIntrospectionResponse,
    TokenResponse, TokenUrl, reqwest,
};
use serde_json::Value;

/// The scopes the suite's main client is allowed (`clients create --scope …` in `run.sh`).
const CLIENT_SCOPES: [&str; 2] = ["accounts:read", "transactions:read"];

/// One HTTP exchange as it went over the wire, kept so checks can look past the crate's typed
/// view (exact `token_type` spelling, status code, headers).
#[derive(Clone, Default)]
struct Exchange {
    request_headers: HeaderMap,
    request_body: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Exchange {
    /// The response body as JSON, or `Value::Null`.
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A response header as text, if present.
    fn header(&self, name: header::HeaderName) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// An [`AsyncHttpClient`] that sends through reqwest, like the crate's own reqwest support
/// (redirects off, as the crate's docs advise), and remembers the last exchange.
struct RecordingClient {
    http: reqwest::Client,
    last: Mutex<Option<Exchange>>,
}

impl RecordingClient {
    fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            last: Mutex::new(None),
        })
    }

    /// The last exchange (empty if none happened).
    fn last(&self) -> Exchange {
        self.last
            .lock()
            .expect("recorder lock")
            .clone()
            .unwrap_or_default()
    }
}

impl<'c> AsyncHttpClient<'c> for RecordingClient {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            *self.last.lock().expect("recorder lock") = None;
            let request_headers = request.headers().clone();
            let request_body = String::from_utf8_lossy(request.body()).into_owned();
            let request: reqwest::Request = request.try_into().map_err(Box::new)?;
            let response = self.http.execute(request).await.map_err(Box::new)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(Box::new)?.to_vec();

            let mut builder = oauth2::http::Response::builder().status(status);
            for (name, value) in &headers {
                builder = builder.header(name, value);
            }
            *self.last.lock().expect("recorder lock") = Some(Exchange {
                request_headers,
                request_body,
                status,
                headers,
                body: body.clone(),
            });
            builder.body(body).map_err(HttpClientError::Http)
        })
    }
}

/// Pass/fail bookkeeping; one output line per check.
#[derive(Default)]
struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("ok {name}");
            }
            Err(why) => {
                self.failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
}

/// `Ok` when `cond` holds, else `Err` with the message.
fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(why()) }
}

/// The claims of a compact JWS, decoded without verifying it (the PyJWT suite verifies).
fn jwt_claims(token: &str) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("not a compact JWS: {} parts", parts.len()));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[1])
        .map_err(|e| format!("payload is not base64url: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("payload is not JSON: {e}"))
}

/// A short, readable account of a failed oauth2 request, with the raw exchange.
fn describe<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    err: &RequestTokenError<RE, T>,
    exchange: &Exchange,
) -> String {
    let what = match err {
        RequestTokenError::ServerResponse(resp) => format!("server error response {resp:?}"),
        RequestTokenError::Request(e) => format!("transport error: {e}"),
        RequestTokenError::Parse(e, _) => format!("unparsable response: {e}"),
        RequestTokenError::Other(s) => format!("other: {s}"),
    };
    format!(
        "{what}; HTTP {} body {}",
        exchange.status,
        String::from_utf8_lossy(&exchange.body)
    )
}

fn scope_set<'a>(scopes: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    scopes.into_iter().map(str::to_owned).collect()
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
}

/// Settings from the environment.
struct Settings {
    base_url: String,
    client_id: String,
    client_secret: String,
    client2_id: String,
    client2_secret: String,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let client_id = env("CLIENT_ID")?;
        let client_secret = env("CLIENT_SECRET")?;
        Ok(Self {
            base_url: env("BASE_URL")?.trim_end_matches('/').to_owned(),
            client2_id: env("CLIENT2_ID").unwrap_or_else(|_| client_id.clone()),
            client2_secret: env("CLIENT2_SECRET").unwrap_or_else(|_| client_secret.clone()),
            client_id,
            client_secret,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("interop-rust-oauth2: {e}");
            std::process::exit(2);
        }
    };
    let http = match RecordingClient::new() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("interop-rust-oauth2: cannot build the HTTP client: {e}");
            std::process::exit(2);
        }
    };
    let mut report = Report::default();

    let token = token_checks(&settings, &http, &mut report).await;
    error_checks(&settings, &http, &mut report).await;
    match token {
        Some(token) => introspection(&settings, &http, &mut report, token).await,
        None => report.check("introspection", Err("skipped: no token was issued".into())),
    }

    println!("{} passed, {} failed", report.passed, report.failed);
    if report.failed > 0 {
        std::process::exit(1);
    }
}

/// Tokens with both auth types and with narrowed scopes. Returns a token for later checks.
async fn token_checks(
    s: &Settings,
    http: &RecordingClient,
    report: &mut Report,
) -> Option<AccessToken> {
    let token_url = TokenUrl::new(s.url("/oauth2/token")).expect("token URL");
    let mut kept = None;

    for (label, auth_type) in [
        ("client_secret_basic", AuthType::BasicAuth),
        ("client_secret_post", AuthType::RequestBody),
    ] {
        let client = BasicClient::new(ClientId::new(s.client_id.clone()))
            .set_client_secret(ClientSecret::new(s.client_secret.clone()))
            .set_token_uri(token_url.clone())
            .set_auth_type(auth_type.clone());

        // Full scope: no `scope` parameter.
        let result = client
            .exchange_client_credentials()
            .request_async(http)
            .await;
        let ex = http.last();
        let token = match result {
            Ok(t) => {
                report.check(&format!("{label}: client credentials token"), Ok(()));
                t
            }
            Err(e) => {
                report.check(
                    &format!("{label}: client credentials token"),
                    Err(describe(&e, &ex)),
                );
                continue;
            }
        };
        report.check(
            &format!("{label}: credentials sent the {label} way"),
            match auth_type {
                AuthType::BasicAuth => ensure(
                    ex.request_headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with("Basic "))
                        && !ex.request_body.contains("client_secret="),
                    || "expected an Authorization: Basic header and no body secret".into(),
                ),
                _ => ensure(
                    !ex.request_headers.contains_key(header::AUTHORIZATION)
                        && ex.request_body.contains("client_secret="),
                    || "expected client_secret in the body and no Authorization header".into(),
                ),
            },
        );
        report.check(
            &format!("{label}: HTTP 200 (RFC 6749 §5.1)"),
            ensure(ex.status == StatusCode::OK, || format!("got {}", ex.status)),
        );
        report.check(
            &format!("{label}: token_type is Bearer"),
            ensure(*token.token_type() == BasicTokenType::Bearer, || {
                format!("typed token_type {:?}", token.token_type())
            })
            .and_then(|()| {
                let raw = ex.json()["token_type"].clone();
                ensure(raw == "Bearer", || format!("raw token_type {raw}"))
            }),
        );
        report.check(
            &format!("{label}: expires_in in (0, 3600]"),
            match token.expires_in() {
                Some(d) if d > Duration::ZERO && d <= Duration::from_secs(3600) => Ok(()),
                other => Err(format!("expires_in {other:?}")),
            },
        );
        report.check(
            &format!("{label}: scope is every allowed scope"),
            match token.scopes() {
                Some(scopes) => {
                    let got = scope_set(scopes.iter().map(|s| s.as_str()));
                    ensure(got == scope_set(CLIENT_SCOPES), || {
                        format!("scopes {got:?}")
                    })
                }
                None => Err("no scope in the response".into()),
            },
        );
        report.check(
            &format!("{label}: Cache-Control no-store (RFC 6749 §5.1)"),
            match ex.header(header::CACHE_CONTROL) {
                Some(v) if v.contains("no-store") => Ok(()),
                other => Err(format!("Cache-Control {other:?}")),
            },
        );
        report.check(
            &format!("{label}: access token is a JWT for this client"),
            jwt_claims(token.access_token().secret()).and_then(|claims| {
                ensure(
                    claims["client_id"] == s.client_id.as_str()
                        && claims["sub"] == s.client_id.as_str(),
                    || format!("client_id/sub claims {claims}"),
                )?;
                let lifetime = claims["exp"].as_u64().unwrap_or(0) as i64
                    - claims["iat"].as_u64().unwrap_or(0) as i64;
                let expires_in = token.expires_in().map_or(-1, |d| d.as_secs() as i64);
                ensure(lifetime == expires_in, || {
                    format!("exp - iat = {lifetime}, expires_in = {expires_in}")
                })
            }),
        );

        // Narrowed scope: one scope of the two.
        let narrow = match auth_type {
            AuthType::BasicAuth => "accounts:read",
            _ => "transactions:read",
        };
        let result = client
            .exchange_client_credentials()
            .add_scope(Scope::new(narrow.to_owned()))
            .request_async(http)
            .await;
        let ex = http.last();
        report.check(
            &format!("{label}: scope narrowed to {narrow}"),
            match &result {
                Ok(t) => {
                    let got = t
                        .scopes()
                        .map(|v| scope_set(v.iter().map(|s| s.as_str())))
                        .unwrap_or_default();
                    let claim = jwt_claims(t.access_token().secret())
                        .map(|c| c["scope"].clone())
                        .unwrap_or(Value::Null);
                    // RFC 6749 §5.1 lets the server leave out `scope` when it is exactly what
                    // was asked for; then the token's claim must say it.
                    ensure(
                        (t.scopes().is_none() || got == scope_set([narrow])) && claim == narrow,
                        || format!("response scopes {got:?}, token scope claim {claim}"),
                    )
                }
                Err(e) => Err(describe(e, &ex)),
            },
        );

        if kept.is_none() {
            kept = Some(token.access_token().clone());
        }
    }
    kept
}

/// RFC 6749 §5.2 error responses, as the crate parses them.
async fn error_checks(s: &Settings, http: &RecordingClient, report: &mut Report) {
    let token_url = TokenUrl::new(s.url("/oauth2/token")).expect("token URL");
    let client = |id: &str, secret: &str, auth_type: AuthType| {
        BasicClient::new(ClientId::new(id.to_owned()))
            .set_client_secret(ClientSecret::new(secret.to_owned()))
            .set_token_uri(token_url.clone())
            .set_auth_type(auth_type)
    };

    let cases = [
        (
            "wrong secret (client_secret_basic) → 401 invalid_client + WWW-Authenticate",
            client(&s.client_id, "mks_wrong-secret", AuthType::BasicAuth),
            None,
            BasicErrorResponseType::InvalidClient,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong secret (client_secret_post) → 401 invalid_client",
            client(&s.client_id, "mks_wrong-secret", AuthType::RequestBody),
            None,
            BasicErrorResponseType::InvalidClient,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown client → 401 invalid_client",
            client(
                "live_000000000000000000000000",
                &s.client_secret,
                AuthType::BasicAuth,
            ),
            None,
            BasicErrorResponseType::InvalidClient,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "scope not allowed → 400 invalid_scope",
            client(&s.client_id, &s.client_secret, AuthType::BasicAuth),
            Some("accounts:write"),
            BasicErrorResponseType::InvalidScope,
            StatusCode::BAD_REQUEST,
        ),
    ];

    for (name, client, scope, want_error, want_status) in cases {
        let mut request = client.exchange_client_credentials();
        if let Some(scope) = scope {
            request = request.add_scope(Scope::new(scope.to_owned()));
        }
        let result = request.request_async(http).await;
        let ex = http.last();
        let outcome = match result {
            Ok(_) => Err(format!("a token was issued (HTTP {})", ex.status)),
            Err(RequestTokenError::ServerResponse(resp)) => {
                ensure(*resp.error() == want_error, || {
                    format!("error {:?}, wanted {want_error:?}", resp.error())
                })
                .and_then(|()| {
                    ensure(ex.status == want_status, || {
                        format!("HTTP {}, wanted {want_status}", ex.status)
                    })
                })
                .and_then(|()| {
                    let basic = ex.request_headers.contains_key(header::AUTHORIZATION);
                    if want_status == StatusCode::UNAUTHORIZED && basic {
                        // RFC 6749 §5.2: a 401 answer to Basic auth carries WWW-Authenticate.
                        ensure(ex.headers.contains_key(header::WWW_AUTHENTICATE), || {
                            "401 without WWW-Authenticate".into()
                        })
                    } else {
                        Ok(())
                    }
                })
            }
            Err(e) => Err(describe(&e, &ex)),
        };
        report.check(name, outcome);
    }
}

/// RFC 7662 introspection through the crate, by a second client as a resource server would.
///
/// The crate's RFC 7009 revocation is not exercised: `oauth2` 5 refuses a revocation URL that
/// is not HTTPS ("Scheme for revocation endpoint URL must be HTTPS"), and the server under test
/// listens on plain-HTTP loopback. The authlib suite covers revocation.
async fn introspection(
    s: &Settings,
    http: &RecordingClient,
    report: &mut Report,
    token: AccessToken,
) {
    let resource_server = BasicClient::new(ClientId::new(s.client2_id.clone()))
        .set_client_secret(ClientSecret::new(s.client2_secret.clone()))
        .set_introspection_url(
            IntrospectionUrl::new(s.url("/oauth2/introspect")).expect("introspection URL"),
        );

    let result = resource_server.introspect(&token).request_async(http).await;
    let ex = http.last();
    report.check(
        "introspect (RFC 7662): active token",
        match &result {
            Ok(r) => ensure(r.active(), || "active is false".into())
                .and_then(|()| {
                    let id = r.client_id().map(|c| c.as_str().to_owned());
                    ensure(id.as_deref() == Some(s.client_id.as_str()), || {
                        format!("client_id {id:?}")
                    })
                })
                .and_then(|()| {
                    let got = r
                        .scopes()
                        .map(|v| scope_set(v.iter().map(|s| s.as_str())))
                        .unwrap_or_default();
                    ensure(got == scope_set(CLIENT_SCOPES), || format!("scope {got:?}"))
                })
                .and_then(|()| {
                    ensure(r.exp().is_some() && r.iat().is_some(), || {
                        "exp or iat missing".into()
                    })
                })
                .and_then(|()| {
                    ensure(r.token_type() == Some(&BasicTokenType::Bearer), || {
                        format!("token_type {:?}", r.token_type())
                    })
                }),
            Err(e) => Err(describe(e, &ex)),
        },
    );

    // The same token with one character in the middle of its signature changed (the last
    // character may carry only padding bits).
    let mut forged = token.secret().clone().into_bytes();
    let at = forged.len() - 40;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = AccessToken::new(String::from_utf8(forged).expect("ASCII token"));
    let result = resource_server
        .introspect(&forged)
        .request_async(http)
        .await;
    let ex = http.last();
    report.check(
        "introspect (RFC 7662): forged token is inactive",
        match &result {
            Ok(r) => ensure(!r.active(), || {
                format!("active: {}", String::from_utf8_lossy(&ex.body))
            }),
            Err(e) => Err(describe(e, &ex)),
        },
    );
}
