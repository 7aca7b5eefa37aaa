//! Signing keys: how they are sealed at rest, how they sign and verify, and how they move
//! through their life (next → active → retired → expired).
//!
//! - [`sealing`]: the master key and AES-256-GCM sealing of private keys at rest.
//! - [`es256`]: a parsed ES256 key pair that signs JWTs, and its public half.
//! - [`lifecycle`]: which key signs at a given moment and which keys are published.

pub mod es256;
pub mod lifecycle;
pub mod sealing;

pub use es256::{KeyPair, PublicKey};
pub use lifecycle::{KeyRecord, KeyStatus};
pub use sealing::MasterKey;
