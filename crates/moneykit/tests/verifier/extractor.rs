//! `moneykit::axum::Authenticated` through a router: RFC 6750 statuses, headers and bodies.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use moneykit::axum::{AuthRejection, Authenticated, PeerCertificate};
use moneykit::{AccessTokenVerifier, DpopKey, certificate_thumbprint};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::*;

async fn accounts(auth: Authenticated) -> Result<Json<Value>, AuthRejection> {
    auth.require_scope("accounts:read")?;
    Ok(Json(
        json!({ "client_id": auth.client_id(), "app_id": auth.app_id() }),
    ))
}

async fn admin(auth: Authenticated) -> Result<&'static str, AuthRejection> {
    auth.require_scope("admin:write")?;
    Ok("ok")
}

fn app(signer: &Signer) -> Router {
    // Real time: the router verifies with the clock, so the tokens are signed for now.
    let verifier = AccessTokenVerifier::from_jwks(ISSUER, AUDIENCE, &signer.jwks());
    Router::new()
        .route("/accounts", get(accounts))
        .route("/admin", get(admin))
        .with_state(verifier)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token_at(signer: &Signer, iat: i64) -> String {
    let mut claims = claims();
    claims["iat"] = json!(iat);
    claims["exp"] = json!(iat + 300);
    signer.sign(&signer.header(), &claims)
}

/// Status, `WWW-Authenticate` and JSON body of `GET path` with these `Authorization`s.
async fn call(app: &Router, path: &str, auth: &[&str]) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::get(path);
    for value in auth {
        request = request.header(header::AUTHORIZATION, *value);
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let www = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, www, body)
}

#[tokio::test]
async fn a_token_with_the_scope_gets_through() {
    let signer = Signer::new("key_1");
    let bearer = format!("Bearer {}", token_at(&signer, now()));
    let (status, www, body) = call(&app(&signer), "/accounts", &[&bearer]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(www, None);
    assert_eq!(
        body,
        json!({ "client_id": "live_client", "app_id": "app_demo" })
    );
    // The scheme is case-insensitive.
    let lower = format!("bearer {}", token_at(&signer, now()));
    assert_eq!(
        call(&app(&signer), "/accounts", &[&lower]).await.0,
        StatusCode::OK
    );
}

const ALGS: &str = r#"algs="ES256 ES384 EdDSA RS256 PS256""#;

#[tokio::test]
async fn no_token_is_a_bare_bearer_challenge() {
    let signer = Signer::new("key_1");
    for auth in [&[][..], &["Basic bGl2ZV94OnNlY3JldA=="][..]] {
        let (status, www, body) = call(&app(&signer), "/accounts", auth).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(www.as_deref(), Some("Bearer"));
        assert_eq!(body["error"], "missing_token");
    }
}

/// A token issued now and bound by `cnf`.
fn bound_token(signer: &Signer, cnf: Value) -> String {
    let mut claims = claims();
    claims["iat"] = json!(now());
    claims["exp"] = json!(now() + 300);
    claims["cnf"] = cnf;
    signer.sign(&signer.header(), &claims)
}

/// `GET http://api.example.test/accounts` with `Authorization: DPoP <token>` and `proof`.
fn dpop_request(token: &str, proof: &str) -> Request<Body> {
    Request::get("/accounts")
        .header(header::HOST, "api.example.test")
        .header(header::AUTHORIZATION, format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_dpop_bound_token_with_its_proof_gets_through() {
    let signer = Signer::new("key_1");
    let key = DpopKey::generate().unwrap();
    let token = bound_token(&signer, json!({ "jkt": key.thumbprint() }));
    let url = "http://api.example.test/accounts";
    let proof = key.proof("GET", url, Some(&token), None).unwrap();
    let (status, _, body) = send(&app(&signer), dpop_request(&token, &proof)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["client_id"], "live_client");
}

#[tokio::test]
async fn dpop_refusals_are_dpop_challenges() {
    let signer = Signer::new("key_1");
    let key = DpopKey::generate().unwrap();
    let token = bound_token(&signer, json!({ "jkt": key.thumbprint() }));
    let url = "http://api.example.test/accounts";
    let challenge = |error: &str, description: &str| {
        format!(r#"DPoP error="{error}", error_description="{description}", {ALGS}"#)
    };

    // A proof for another URL.
    let proof = key
        .proof("GET", "http://api.example.test/admin", Some(&token), None)
        .unwrap();
    let (status, www, body) = send(&app(&signer), dpop_request(&token, &proof)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www.unwrap(),
        challenge("invalid_dpop_proof", "the DPoP proof is invalid")
    );
    assert_eq!(body["error"], "invalid_dpop_proof");

    // A proof by another key.
    let other = DpopKey::generate().unwrap();
    let proof = other.proof("GET", url, Some(&token), None).unwrap();
    let (status, www, _) = send(&app(&signer), dpop_request(&token, &proof)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www.unwrap(),
        challenge("invalid_token", "invalid DPoP key binding")
    );

    // The DPoP-bound token as a bearer token.
    let (status, www, body) = call(&app(&signer), "/accounts", &[&format!("Bearer {token}")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www.unwrap(),
        challenge(
            "invalid_token",
            "the access token is DPoP-bound: send it with the DPoP scheme and a proof"
        )
    );
    assert_eq!(body["error"], "invalid_token");

    // An expired token with the DPoP scheme: a DPoP challenge too.
    let expired = token_at(&signer, now() - 3600);
    let proof = key.proof("GET", url, Some(&expired), None).unwrap();
    let (_, www, _) = send(&app(&signer), dpop_request(&expired, &proof)).await;
    assert_eq!(
        www.unwrap(),
        challenge("invalid_token", "the access token expired")
    );
}

#[tokio::test]
async fn a_certificate_bound_token_needs_the_peer_certificate_extension() {
    let signer = Signer::new("key_1");
    let der = b"DER of the client certificate".to_vec();
    let token = bound_token(&signer, json!({ "x5t#S256": certificate_thumbprint(&der) }));
    let request = |certificate: Option<&[u8]>| {
        let mut request = Request::get("/accounts")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        if let Some(der) = certificate {
            request
                .extensions_mut()
                .insert(PeerCertificate(der.to_vec()));
        }
        request
    };
    let (status, _, _) = send(&app(&signer), request(Some(&der))).await;
    assert_eq!(status, StatusCode::OK);
    for certificate in [None, Some(&b"another certificate"[..])] {
        let (status, www, _) = send(&app(&signer), request(certificate)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            www.unwrap(),
            r#"Bearer error="invalid_token", error_description="the access token is invalid""#
        );
    }
}

#[tokio::test]
async fn bad_tokens_are_invalid_token_without_details() {
    let signer = Signer::new("key_1");
    let stranger = Signer::new("key_9");
    let cases = [
        ("Bearer not.a.jwt".to_owned(), "the access token is invalid"),
        (
            format!("Bearer {}", token_at(&stranger, now())),
            "the access token is invalid",
        ),
        (
            format!("Bearer {}", token_at(&signer, now() - 3600)),
            "the access token expired",
        ),
        (
            format!("Bearer {}", token_at(&signer, now() + 3600)),
            "the access token is not valid yet",
        ),
    ];
    for (auth, description) in cases {
        let (status, www, body) = call(&app(&signer), "/accounts", &[&auth]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(
            www.unwrap(),
            format!(r#"Bearer error="invalid_token", error_description="{description}""#)
        );
        assert_eq!(
            body,
            json!({ "error": "invalid_token", "error_description": description })
        );
    }
}

#[tokio::test]
async fn several_authorization_headers_are_a_bad_request() {
    let signer = Signer::new("key_1");
    let bearer = format!("Bearer {}", token_at(&signer, now()));
    let (status, www, body) = call(&app(&signer), "/accounts", &[&bearer, &bearer]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        www.unwrap()
            .starts_with(r#"Bearer error="invalid_request""#)
    );
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn a_missing_scope_is_forbidden_and_named() {
    let signer = Signer::new("key_1");
    let bearer = format!("Bearer {}", token_at(&signer, now()));
    let (status, www, body) = call(&app(&signer), "/admin", &[&bearer]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        www.as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="admin:write""#)
    );
    assert_eq!(body["error"], "insufficient_scope");
}

#[tokio::test]
async fn unreachable_keys_are_a_503_not_a_401() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let verifier = AccessTokenVerifier::builder(&closed, AUDIENCE)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/accounts", get(accounts))
        .with_state(verifier);
    let signer = Signer::new("key_1");
    let bearer = format!("Bearer {}", token_at(&signer, now()));
    let (status, www, body) = call(&app, "/accounts", &[&bearer]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(www, None);
    assert_eq!(body["error"], "temporarily_unavailable");
}
