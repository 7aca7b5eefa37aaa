//! Pure domain types and functions: no HTTP, no SQL, no metrics, no global state. Imports
//! only [`crate::crypto`] (an architecture test keeps it so). Everything that depends on
//! the time takes `now` as an argument, so tests can pin it.
//!
//! - [`ids`]: generated identifiers (client, app, key, event and token ids).
//! - [`secrets`]: client secrets, their hashes, a client's several secrets and the
//!   constant-time check against all of them.
//! - [`scope`]: scope lists and down-scoping.
//! - [`audience`]: audience URIs and RFC 8707 resource indicators.
//! - [`clients`]: apps and clients as stored, how each authenticates, and what
//!   "disabled" means.
//! - [`dpop`], [`certificates`]: sender-constrained tokens — DPoP proofs (RFC 9449) and
//!   client certificates (RFC 8705).
//! - [`assertions`]: the claims of JWTs others sign (client assertions, workload platform
//!   tokens), trust rules, and what makes them acceptable.
//! - [`tokens`]: the access token format (RFC 9068 JWT) — signing and validation — and
//!   revoked tokens as stored.
//! - [`signing_keys`]: a signing key's life (next → active → retired → expired).
//! - [`audit`]: records of the audit trail and how they are filtered.
//! - [`events`], [`payloads`]: webhook events as the outbox keeps them, and their bodies.
//! - [`time`]: RFC 3339 and Unix-millisecond times.
//! - [`json`]: writing JSON strings by hand on the hot path.

pub mod assertions;
pub mod audience;
pub mod audit;
pub mod certificates;
pub mod clients;
pub mod dpop;
pub mod events;
pub mod ids;
pub mod json;
pub mod payloads;
pub mod scope;
pub mod secrets;
pub mod signing_keys;
pub mod time;
pub mod tokens;

/// The longest lifetime any access token may have. Also bounds how long a retired signing
/// key stays published: after this long, nothing it signed can still be valid.
pub const MAX_TOKEN_TTL_SECS: u32 = 24 * 60 * 60;

/// Clock leeway allowed when checking a token's `exp` (at most 5 s).
pub const EXPIRY_LEEWAY_SECS: i64 = 5;
