//! The HTTP surface: thin handlers, the one route table, the layers every request passes
//! through, and the server that accepts connections. Handlers parse, call the
//! [`engine`](crate::engine) or [`operations`](crate::operations), and shape the response;
//! none touches the store (an architecture test keeps it so).
//!
//! - `routes`: the route table — router entries, OpenAPI paths and metrics labels.
//! - `auth`: `POST /auth/token`, `GET /auth/introspect` (MoneyKit-compatible).
//! - `oauth2`: `POST /oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke` (RFC 6749,
//!   7662, 7009).
//! - `discovery`: `GET /.well-known/jwks.json`, `/.well-known/oauth-authorization-server`,
//!   `/openapi.json`; `openapi` describes the API as a whole.
//! - `webhooks`: `POST /webhooks/test/link/{id}`, MoneyKit's test webhook trigger.
//! - `health`: `/healthz/live`, `/healthz/ready`.
//! - `admin_api`: the admin API and `/metrics`, on a separate listener; `console`: the
//!   admin console in the browser, beside it.
//! - `server`: the accept loop both listeners run: connection caps, TLS ([`tls`]),
//!   graceful stop; `connection`: the header timeout, apart from the keep-alive timeout;
//!   [`mtls`]: client certificates, from the TLS handshake or a trusted proxy's header.
//! - `state`: what handlers reach — the snapshot, the engine, counters.
//! - `response`: response shapes several handlers share.
//! - [`extract`]: request parsing (form, Basic, Bearer, `MoneyKit-Version`).
//! - `error`: [`ApiError`], the one mapping from failure to response.
//!
//! Layers: `hygiene` (request id, header cap, timeout, JSON bodies for framework-made
//! errors, debug-level request log) around everything, and the body size cap (enforced
//! where a handler reads the body, so the 413 it produces still gets the JSON error
//! body); with `serve --access-log`, `access` around those, so its line shows the final
//! status and request id.

mod access;
pub mod admin_access;
pub mod admin_api;
mod auth;
mod connection;
pub mod console;
mod discovery;
mod error;
pub mod extract;
mod health;
mod hygiene;
pub mod mtls;
mod oauth2;
mod openapi;
mod response;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod state;
pub mod tls;
mod webhooks;

use std::time::Duration;

use axum::Router;

pub use error::ApiError;
pub(crate) use health::starting_router;
pub(crate) use openapi::document as openapi_document;

use state::AppState;

/// Request limits (over-long bodies get 413, over-long headers 431, slow
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

/// The public router: the route table's `routes` (see [`routes::table`]) on `state`, with
/// the 404 fallback and the layers every request passes; with `access_log`, an info line
/// per request (without it, the layer is not there at all).
pub(crate) fn router(
    routes: Router<AppState>,
    state: AppState,
    limits: Limits,
    access_log: bool,
) -> Router {
    let metrics = state.metrics.clone();
    let router = routes
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(hygiene::HygieneLayer::new(limits, Some(metrics)));
    if access_log {
        router.layer(axum::middleware::from_fn(access::log))
    } else {
        router
    }
}
