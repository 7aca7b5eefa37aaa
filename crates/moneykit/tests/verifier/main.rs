//! The access token verifier (and the webhook verifier sharing its JWKS cache), with keys
//! made here and JWTs signed here; the only network is a JWKS server on 127.0.0.1.

mod claims;
mod discovery;
mod dpop;
#[cfg(feature = "axum")]
mod extractor;
mod support;
