//! moneykit-auth: a self-hostable, MoneyKit-compatible OAuth 2.0 access token service.
//!
//! One binary serves the MoneyKit `AccessTokenApi` (`POST /auth/token`,
//! `GET /auth/introspect`, `GET /.well-known/jwks.json`) and administers apps, clients and
//! signing keys from the command line. The library exists so tests (and embedders) can
//! build the server in-process.
//!
//! # Layout
//!
//! - [`cli`]: the command line; `main.rs` only calls [`cli::run`].
//! - [`config`]: typed server settings and where the master key comes from.
//! - [`startup`]: [`startup::Application`] — build on a bound listener, run until stopped.
//! - [`http`]: routes and layers; handlers are thin.
//! - [`domain`]: plain logic — ids, secrets, scopes, clients, the JWT format, and the
//!   grant engine every endpoint calls.
//! - [`keys`]: signing keys — sealing at rest, ES256, lifecycle.
//! - [`store`]: the storage trait and its SQLite and PostgreSQL backends.
//! - [`snapshot`]: the in-memory view the hot path reads; [`sync`] keeps it current.
//! - [`revocation`]: the in-memory list of revoked tokens, caught up incrementally.
//! - [`verified`]: tokens already signed or verified here, so they are not verified again.
//! - [`ratelimit`]: bounded in-memory budgets of issuance and failed authentication.
//! - [`net`]: CIDRs (`--trusted-proxy`) and the /64 key IPv6 sources are counted by.
//! - [`webhooks`]: signed webhook delivery — the outbox, the SSRF guard, the worker.
//! - [`admin`]: administrative operations shared by the CLI (and later the admin API).
//! - [`metrics`]: request, token, rate-limit and webhook counters for Prometheus.
//! - [`state`], [`telemetry`]: shared handler state; logging.
//! - [`tls`]: optional TLS with rustls, reloaded on SIGHUP or file change.
//!
//! The hot path (token, introspect, JWKS) reads only the snapshot: no database I/O per
//! request.

pub mod admin;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod json;
pub mod keys;
pub mod metrics;
pub mod net;
pub mod ratelimit;
pub mod revocation;
pub mod snapshot;
pub mod startup;
pub mod state;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tls;
pub mod verified;
pub mod views;
pub mod webhooks;
