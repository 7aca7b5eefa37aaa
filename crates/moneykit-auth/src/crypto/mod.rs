//! The cryptographic floor: signing key pairs, sealing private keys at rest, and the
//! random source every id, key and secret comes from. Imports nothing from the rest of
//! the crate.
//!
//! - [`es256`]: a parsed ES256 key pair that signs JWTs, and its public half.
//! - [`jose`]: public JWKs of others and the JWS signatures they verify (client
//!   assertions, workload tokens), algorithms pinned to an allow-list.
//! - [`sealing`]: the master key and AES-256-GCM sealing of private keys at rest.

pub mod es256;
pub mod jose;
pub mod sealing;

pub use es256::{KeyPair, PublicKey};
pub use sealing::MasterKey;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Fills a buffer from the operating system's CSPRNG.
///
/// A failing system RNG leaves no safe way to continue, so this panics rather than hand
/// out predictable ids, keys or secrets.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random number generator failed");
    buf
}
