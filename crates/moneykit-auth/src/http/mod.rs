//! The HTTP surface: routes, and the layers every request passes through.
//!
//! - [`auth`]: `POST /auth/token`, `GET /auth/introspect` (MoneyKit-compatible).
//! - [`oauth2`]: `POST /oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke` (RFC 6749,
//!   7662, 7009).
//! - [`discovery`]: `GET /.well-known/jwks.json`, `/.well-known/oauth-authorization-server`,
//!   `/openapi.json`; [`openapi`] generates the document.
//! - [`health`]: `/healthz/live`, `/healthz/ready`.
//! - [`extract`]: request parsing (form, Basic, Bearer, `MoneyKit-Version`).
//! - [`error`]: [`ApiError`], the one mapping from failure to response.
//!
//! Layers, outermost first: request id (set, then echoed on the response), tracing,
//! JSON bodies for framework-made errors, request timeout, body size cap (enforced where
//! a handler reads the body, so the 413 it produces still gets the JSON error body).

pub mod auth;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod health;
pub mod oauth2;
pub mod openapi;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

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
    let request_id = HeaderName::from_static("x-request-id");
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
        .route("/healthz/live", get(health::live))
        .route("/healthz/ready", get(health::ready))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    request_id.clone(),
                    ProcessRequestIds::new(),
                ))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::debug_span!(
                            "request",
                            method = %req.method(),
                            path = %req.uri().path(),
                            request_id = %id,
                        )
                    }),
                )
                .layer(axum::middleware::map_response(json_error_bodies))
                .layer(axum::middleware::map_request(
                    move |req: Request<Body>| async move {
                        reject_large_headers(req, limits.max_header_bytes)
                    },
                ))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    limits.request_timeout,
                ))
                .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes)),
        )
}

/// Refuses requests whose headers add up to more than `max` bytes with a 431.
fn reject_large_headers(req: Request<Body>, max: usize) -> Result<Request<Body>, ApiError> {
    let size: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > max {
        Err(ApiError::HeadersTooLarge)
    } else {
        Ok(req)
    }
}

/// Gives error responses made by the framework (405 from the router, 413 from the body
/// limit, 408 from the timeout …) the documented JSON body, keeping their headers
/// (`Allow` on a 405).
async fn json_error_bodies(response: Response) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_error || is_json {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut replaced = ApiError::from_status(status).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replaced.headers_mut().insert(name.clone(), value.clone());
        }
    }
    replaced
}

/// Request ids for requests that arrive without one: a per-process random prefix and a
/// counter — unique, sortable within a process, and far cheaper than a UUID per request.
#[derive(Debug, Clone)]
struct ProcessRequestIds {
    prefix: std::sync::Arc<str>,
    counter: std::sync::Arc<AtomicU64>,
}

impl ProcessRequestIds {
    fn new() -> Self {
        Self {
            prefix: hex::encode(crate::domain::ids::random_bytes::<6>()).into(),
            counter: Default::default(),
        }
    }
}

impl MakeRequestId for ProcessRequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}
