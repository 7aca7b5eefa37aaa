//! The HTTP surface: routes, and the layers every request passes through.
//!
//! - [`auth`]: `POST /auth/token`, `GET /auth/introspect` (MoneyKit-compatible).
//! - [`oauth2`]: `POST /oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke` (RFC 6749,
//!   7662, 7009).
//! - [`discovery`]: `GET /.well-known/jwks.json`, `/.well-known/oauth-authorization-server`,
//!   `/openapi.json`; [`openapi`] generates the document.
//! - [`webhooks`]: `POST /webhooks/test/link/{id}`, MoneyKit's test webhook trigger.
//! - [`health`]: `/healthz/live`, `/healthz/ready`.
//! - [`admin`]: the admin API and `/metrics`, on a separate listener.
//! - [`connection`]: the header timeout, apart from the keep-alive timeout.
//! - [`server`]: the accept loop both listeners run: connection caps, TLS, graceful stop.
//! - [`extract`]: request parsing (form, Basic, Bearer, `MoneyKit-Version`).
//! - [`error`]: [`ApiError`], the one mapping from failure to response.
//!
//! Layers: [`hygiene`] (request id, header cap, timeout, JSON bodies for framework-made
//! errors, access log) around everything, and the body size cap (enforced where a
//! handler reads the body, so the 413 it produces still gets the JSON error body).

pub mod admin;
pub mod auth;
pub mod connection;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod health;
pub mod hygiene;
pub mod oauth2;
pub mod openapi;
pub mod server;
pub mod webhooks;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::state::AppState;

/// Request limits (PRODUCT.md §2: over-long bodies get 413, over-long headers 431, slow
/// requests 408).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted, in bytes. Token requests are a few hundred bytes.
    pub max_body_bytes: usize,
    /// Largest total size of request headers, in bytes. Checked here so the 431 carries
    /// the JSON body and request id; the connection layer has a hard cap above it.
    pub max_header_bytes: usize,
    /// Longest a request may take from headers read to response.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Builds the application router with its layers.
pub fn router(state: AppState, limits: Limits) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/auth/token", post(auth::token))
        .route("/auth/introspect", get(auth::introspect))
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server/{*issuer_path}",
            get(discovery::metadata_for_path),
        )
        .route("/openapi.json", get(discovery::openapi))
        .route("/oauth2/token", post(oauth2::token))
        .route("/oauth2/introspect", post(oauth2::introspect))
        .route("/oauth2/revoke", post(oauth2::revoke))
        .route("/webhooks/test/link/{id}", post(webhooks::test_link_event))
        .route("/healthz/live", get(health::live))
        .route("/healthz/ready", get(health::ready))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(hygiene::HygieneLayer::new(limits, Some(metrics)))
}
