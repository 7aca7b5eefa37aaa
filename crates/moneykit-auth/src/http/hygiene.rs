//! One layer for what every request gets, in one pass and one boxed future: a request id
//! (echoed when the caller sent one), the header size limit, the request timeout, the
//! documented JSON body on errors the framework produced (405, 413, …), and a debug-level
//! access log. Six separate tower layers did the same for about 3 µs a request — a third
//! of what the cheapest endpoint costs.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::metrics::{Metrics, route_index};

use super::error::ApiError;

/// The request id header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of a request that passed this layer (it sets one on every request), for
/// handlers' own log lines: the per-request span that carries it exists only at debug
/// level, where its cost is acceptable.
pub fn request_id(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

/// Longest caller-supplied request id that is echoed; a longer one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Settings of [`HygieneLayer`].
#[derive(Debug, Clone)]
pub struct HygieneLayer {
    max_header_bytes: usize,
    timeout: Duration,
    ids: Arc<RequestIds>,
    metrics: Arc<Metrics>,
}

impl HygieneLayer {
    /// Requests over `max_header_bytes` of headers get a 431; those taking longer than
    /// `timeout` a 408.
    /// Every request is counted in `metrics`.
    pub fn new(max_header_bytes: usize, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            max_header_bytes,
            timeout,
            ids: Arc::new(RequestIds::new()),
            metrics,
        }
    }
}

impl<S> Layer<S> for HygieneLayer {
    type Service = Hygiene<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Hygiene {
            inner,
            settings: self.clone(),
        }
    }
}

/// The service [`HygieneLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub struct Hygiene<S> {
    inner: S,
    settings: HygieneLayer,
}

impl<S> Service<Request<Body>> for Hygiene<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let route = route_index(req.uri().path());
        let metrics = self.settings.metrics.clone();
        let id = match req.headers().get(&REQUEST_ID) {
            Some(given) if !given.is_empty() && given.len() <= MAX_REQUEST_ID_LEN => given.clone(),
            _ => {
                let id = self.settings.ids.next();
                req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
                id
            }
        };
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_bytes > self.settings.max_header_bytes {
            let response = with_request_id(ApiError::HeadersTooLarge.into_response(), id);
            metrics.record(route, response.status().as_u16(), started.elapsed());
            return Box::pin(std::future::ready(Ok(response)));
        }

        // The clone that was polled ready is the one to call (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let timeout = self.settings.timeout;
        let span = if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug_span!(
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = ?id,
            )
        } else {
            tracing::Span::none()
        };
        Box::pin(
            async move {
                let response = match tokio::time::timeout(timeout, inner.call(req)).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => ApiError::RequestTimeout.into_response(),
                };
                let response = json_error_body(response);
                let elapsed = started.elapsed();
                metrics.record(route, response.status().as_u16(), elapsed);
                tracing::debug!(
                    status = response.status().as_u16(),
                    micros = elapsed.as_micros() as u64,
                    "response"
                );
                Ok(with_request_id(response, id))
            }
            .instrument(span),
        )
    }
}

fn with_request_id(mut response: Response, id: HeaderValue) -> Response {
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}

/// Gives error responses made by the framework (405 from the router, 413 from the body
/// limit …) the documented JSON body, keeping their headers (`Allow` on a 405).
fn json_error_body(response: Response) -> Response {
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
/// counter — unique, sortable within a process, and far cheaper than a UUID.
#[derive(Debug)]
struct RequestIds {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: hex::encode(crate::domain::ids::random_bytes::<6>()),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        HeaderValue::try_from(format!("{}-{n:x}", self.prefix)).expect("hex is a valid header")
    }
}
