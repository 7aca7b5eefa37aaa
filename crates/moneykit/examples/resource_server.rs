//! A protected API: `GET /accounts` needs an access token with scope `accounts:read`, a
//! bearer token or a DPoP-bound one (RFC 9449) with its proof.
//!
//! With a server running (`cargo run -p moneykit-auth -- serve --demo`), a bearer token:
//!
//! ```sh
//! cargo run -p moneykit --features axum --example resource_server
//! TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \
//!   -d scope=accounts:read http://127.0.0.1:8080/auth/token | jq -r .access_token)
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/accounts
//! ```
//!
//! A DPoP-bound token (one whose token request carried a `DPoP` proof) goes with
//! `Authorization: DPoP <token>` and a new `DPoP` proof for `GET
//! http://127.0.0.1:3000/accounts` with `ath`, signed by the token's key — curl cannot
//! sign one. From Rust, `TokenSource::builder(…).dpop(DpopKey::generate()?)` and
//! `tokens.authorization_headers("GET", url)` make both headers; from Python,
//! requests-oauth2client's DPoP support does (its `DPoPToken` as the request's `auth`).
//! Refusals answer 401 with
//! `WWW-Authenticate: DPoP error="invalid_dpop_proof"` or `error="invalid_token"`; a
//! DPoP-bound token sent as `Bearer` is refused.
//!
//! Environment: `MONEYKIT_ISSUER` (default `http://127.0.0.1:8080`), `MONEYKIT_AUDIENCE`
//! (default: the issuer), `LISTEN` (default `127.0.0.1:3000`), `PUBLIC_URL` (the URL
//! clients call, which DPoP proofs name; default `http://` + the request's `Host`: set it
//! behind a proxy or TLS).

use axum::routing::get;
use axum::{Json, Router};
use moneykit::AccessTokenVerifier;
use moneykit::axum::{AuthRejection, Authenticated};
use serde_json::{Value, json};

async fn accounts(auth: Authenticated) -> Result<Json<Value>, AuthRejection> {
    auth.require_scope("accounts:read")?;
    Ok(Json(json!({
        "client_id": auth.client_id(),
        "app_id": auth.app_id(),
        "accounts": [{ "account_id": "acc_demo", "name": "Demo checking" }],
    })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let issuer = env("MONEYKIT_ISSUER").unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let audience = env("MONEYKIT_AUDIENCE").unwrap_or_else(|| issuer.clone());
    let listen = env("LISTEN").unwrap_or_else(|| "127.0.0.1:3000".into());

    let mut verifier = AccessTokenVerifier::builder(&issuer, &audience);
    if let Some(public_url) = env("PUBLIC_URL") {
        verifier = verifier.public_url(public_url)?;
    }
    let verifier = verifier.build()?;
    // Not fatal: the first request discovers again if the issuer is not up yet.
    if let Err(e) = verifier.discover().await {
        eprintln!("warning: {e}");
    }

    let app = Router::new()
        .route("/accounts", get(accounts))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("GET http://{listen}/accounts (issuer {issuer}, audience {audience})");
    axum::serve(listener, app).await?;
    Ok(())
}
