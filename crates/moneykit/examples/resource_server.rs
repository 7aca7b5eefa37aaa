//! A protected API: `GET /accounts` needs an access token with scope `accounts:read`.
//!
//! With a server running (`cargo run -p moneykit-auth -- serve --demo`):
//!
//! ```sh
//! cargo run -p moneykit --features axum --example resource_server
//! TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \
//!   -d scope=accounts:read http://127.0.0.1:8080/auth/token | jq -r .access_token)
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/accounts
//! ```
//!
//! Environment: `MONEYKIT_ISSUER` (default `http://127.0.0.1:8080`), `MONEYKIT_AUDIENCE`
//! (default: the issuer), `LISTEN` (default `127.0.0.1:3000`).

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

    let verifier = AccessTokenVerifier::builder(&issuer, &audience).build()?;
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
