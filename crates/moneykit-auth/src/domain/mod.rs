//! Plain domain logic: no HTTP, no SQL, no global state. Everything that depends on the
//! time takes `now` as an argument, so tests can pin it.
//!
//! - [`ids`]: generated identifiers (client, app, key and token ids).
//! - [`secrets`]: client secrets, their hashes and the constant-time check.
//! - [`scope`]: scope lists and down-scoping.
//! - [`audience`]: audience URIs and RFC 8707 resource indicators.
//! - [`clients`]: apps and clients as stored, and what "disabled" means.
//! - [`tokens`]: the access token format (RFC 9068 JWT) — signing and validation.
//! - [`grant`]: the client-credentials grant and bearer-token authorization, the engine
//!   every HTTP surface calls.

pub mod audience;
pub mod clients;
pub mod grant;
pub mod ids;
pub mod scope;
pub mod secrets;
pub mod tokens;

/// The longest lifetime any access token may have. Also bounds how long a retired signing
/// key stays published: after this long, nothing it signed can still be valid.
pub const MAX_TOKEN_TTL_SECS: u32 = 24 * 60 * 60;

/// Clock leeway allowed when checking a token's `exp` (PRODUCT.md §3: at most 5 s).
pub const EXPIRY_LEEWAY_SECS: i64 = 5;
