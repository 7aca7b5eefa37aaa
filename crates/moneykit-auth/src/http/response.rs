//! Response shapes several handlers share: JSON bodies already serialized, the token
//! response written without serde, and the RFC 6749 §5.1 no-store headers.

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::domain::json::push_str;
use crate::engine::grant::IssuedToken;

/// A response from a body that is already JSON.
pub fn json_bytes(status: StatusCode, body: Bytes, cache_control: &'static str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

/// Headers RFC 6749 §5.1 requires on every response that carries a token.
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The token response body (`GenerateAccessTokenResponse`), written directly: the same
/// bytes serde writes, without its cost on every issued token. `token_type` is the
/// surface's name for a bearer token; a DPoP-bound token's is `DPoP` (RFC 9449 §5).
/// `dpop_nonce`: the nonce clients should use next, when the server demands them.
pub fn token_response(
    status: StatusCode,
    issued: &IssuedToken,
    bearer: &str,
    dpop_nonce: Option<String>,
) -> Response {
    let dpop_bound = issued
        .claims
        .cnf
        .as_ref()
        .is_some_and(|cnf| cnf.jkt.is_some());
    let token_type = if dpop_bound { "DPoP" } else { bearer };
    let mut body = String::with_capacity(issued.access_token.len() + issued.scope.len() + 80);
    body.push_str("{\"access_token\":");
    push_str(&mut body, &issued.access_token);
    body.push_str(",\"token_type\":");
    push_str(&mut body, token_type);
    body.push_str(&format!(",\"expires_in\":{},\"scope\":", issued.expires_in));
    push_str(&mut body, &issued.scope);
    if let Some(issued_type) = issued.issued_token_type {
        body.push_str(",\"issued_token_type\":");
        push_str(&mut body, issued_type);
    }
    body.push('}');
    let mut response = json_bytes(status, Bytes::from(body), "no-store");
    let headers = response.headers_mut();
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if let Some(value) = dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        headers.insert(super::error::DPOP_NONCE, value);
    }
    response
}
