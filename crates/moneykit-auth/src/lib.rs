//! moneykit-auth: a self-hostable, MoneyKit-compatible OAuth 2.0 access token service.
//!
//! One binary serves the MoneyKit `AccessTokenApi` (`POST /auth/token`,
//! `GET /auth/introspect`, `GET /.well-known/jwks.json`) and administers apps, clients and
//! signing keys from the command line. The library exists so tests (and embedders) can
//! build the server in-process.
//!
//! # Layout
//!
//! Each folder is a layer; a layer imports only the layers listed before it (an
//! architecture test, `tests/architecture.rs`, keeps it so).
//!
//! - [`crypto`]: ES256 key pairs, sealing private keys at rest, the random source.
//! - [`net`]: CIDRs, the key sources are counted by, and the SSRF [`net::guard`].
//! - [`domain`]: pure types and functions — ids, secrets, scopes, audiences, clients, the
//!   JWT format, signing-key lifecycle, webhook events, time formats.
//! - [`metrics`]: request, token, rate-limit and webhook counters for Prometheus.
//! - [`store`]: the storage trait and its SQLite and PostgreSQL backends.
//! - [`operations`]: what the CLI, the admin API and the webhook trigger do to apps,
//!   clients, keys and webhook events, and the JSON views of them.
//! - [`engine`]: the request-time service — the in-memory snapshot and its refresh,
//!   revocations, verified-token cache, rate limits, client authentication, the grant.
//! - `webhooks`: signed webhook delivery — the outbox worker and the signature.
//! - [`http`]: the one route table, thin handlers, layers, the accept loop and TLS.
//! - [`config`]: typed server settings and where the master key comes from.
//! - [`startup`]: [`startup::Application`] — wire it all, bind, run until stopped.
//! - [`cli`]: the command line; `main.rs` only calls [`cli::run`]. `telemetry`: logging.
//!
//! The hot path (token, introspect, JWKS) reads only the engine's snapshot: no database
//! I/O per request.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod net;
pub mod operations;
pub mod startup;
pub mod store;
mod telemetry;
mod webhooks;
