//! The request-time engine: everything a token, introspection or JWKS request reads,
//! held in memory so the hot path does no database I/O, and kept current in the
//! background.
//!
//! - [`Engine`] (here): what one request reads, borrowed per request; [`grant`]: the
//!   client-credentials grant, bearer-token authorization, what a revocation means.
//! - [`client_auth`]: client authentication as one step, whatever [`Credentials`] a
//!   request presents.
//! - [`snapshot`]: the immutable in-memory view of clients, apps and keys the hot path
//!   reads; [`refresh`] rebuilds it when the store changes, rotates keys when due, and
//!   reports the store's [`Health`].
//! - [`revocation`]: the revoked-token list, caught up incrementally.
//! - [`verified`]: tokens already signed or verified here, so they are not verified again.
//! - [`ratelimit`]: bounded budgets of issuance and failed authentication.
//! - [`federation`]: tokens for workloads that present their platform's token (RFC 7523
//!   §2.1 jwt-bearer, RFC 8693 token exchange), matched against trust rules.
//! - [`remote_keys`]: keys that live elsewhere (client JWKS URIs, trusted issuers),
//!   fetched in the background; [`replay`]: client assertions already used.
//!
//! May import `domain`, `crypto`, `net`, `store`, `operations` and `metrics`; never `http`.

pub mod client_auth;
pub mod dpop;
pub mod federation;
pub mod grant;
pub mod ratelimit;
pub mod refresh;
pub mod remote_keys;
pub mod replay;
pub mod revocation;
pub mod snapshot;
pub mod verified;

pub use client_auth::Credentials;
pub use refresh::Health;

use std::net::IpAddr;

use ratelimit::RateLimits;
use revocation::RevocationList;
use snapshot::Snapshot;
use verified::VerifiedTokens;

/// Why a token was not issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Missing, unknown or disabled client, or wrong secret (deliberately one case).
    #[error("client authentication failed")]
    InvalidClient,
    /// A client assertion that was refused, with the check that failed. Unlike a wrong
    /// secret, naming the check helps the client's developer and tells an attacker
    /// nothing: failures before the signature verified share one answer, and the claims
    /// are judged only after it did.
    #[error("client authentication failed: {0}")]
    InvalidClientAssertion(String),
    /// A federated grant whose platform token no trust rule accepts (RFC 6749
    /// `invalid_grant`), with why.
    #[error("{0}")]
    InvalidGrant(String),
    /// A malformed federated grant request (`invalid_request`), with what is wrong.
    #[error("{0}")]
    InvalidRequest(String),
    /// A grant type this server does not support.
    #[error("unsupported grant_type {0:?}")]
    UnsupportedGrantType(String),
    /// Malformed scope, or one the client is not allowed.
    #[error("{0}")]
    InvalidScope(String),
    /// An audience the client may not ask for (RFC 8707 `invalid_target`).
    #[error("{0}")]
    InvalidTarget(String),
    /// No signing key is active (only possible if every key is scheduled in the future).
    #[error("no signing key is active")]
    NoSigningKey,
    /// A client asked to revoke a token issued to another client.
    #[error("the token was not issued to this client")]
    TokenOfAnotherClient,
    /// Over a rate limit; try again after this long.
    #[error("rate limited")]
    RateLimited(std::time::Duration),
    /// A DPoP proof that was refused, or missing for a client that must send one
    /// (RFC 9449 `invalid_dpop_proof`), with the check that failed.
    #[error("{0}")]
    InvalidDpopProof(String),
    /// A DPoP proof without the server's current nonce, which is given (RFC 9449 §8
    /// `use_dpop_nonce`).
    #[error("the DPoP proof must carry the server's nonce")]
    UseDpopNonce(String),
}

/// What the grant engine reads: the snapshot of clients and keys, and the two sets kept
/// beside it at run time (revoked tokens, tokens already verified). Cheap to build per
/// request from borrowed parts.
#[derive(Debug, Clone, Copy)]
pub struct Engine<'a> {
    /// Clients, apps and keys.
    pub snapshot: &'a Snapshot,
    /// Revoked token ids.
    pub revoked: &'a RevocationList,
    /// Tokens known to be validly signed.
    pub verified: &'a VerifiedTokens,
    /// Budgets of issuance and failed authentication.
    pub limits: &'a RateLimits,
    /// Keys fetched from elsewhere, and client assertions already used.
    pub assertions: &'a Assertions,
    /// Where the request came from, for the per-address limit (`None`: unknown).
    pub source: Option<IpAddr>,
}

/// What checking JWTs signed by others needs beside the snapshot: one per server.
#[derive(Debug)]
pub struct Assertions {
    /// Keys fetched from client JWKS URIs and trusted issuers.
    pub remote_keys: std::sync::Arc<remote_keys::RemoteKeys>,
    /// Client assertions used and not yet expired.
    pub replay: replay::ReplayCache,
    /// DPoP proofs used and still within their window.
    pub proofs: replay::ReplayCache,
    /// The keys of recent DPoP proofs, parsed once.
    pub proof_keys: dpop::ProofKeys,
}

impl Engine<'_> {
    /// The same engine, for a request from `source`.
    pub fn from_source(self, source: Option<IpAddr>) -> Self {
        Self { source, ..self }
    }
}
