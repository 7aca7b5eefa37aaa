//! Generated identifiers.
//!
//! Every id is a fixed prefix plus random hex, so ids are unguessable, tell their kind at a
//! glance, and use only URL-unreserved characters (their form-urlencoded and raw forms are
//! identical, which lets clients that do and clients that do not encode HTTP Basic
//! credentials both work).

use crate::crypto::random_bytes;

fn prefixed_hex<const N: usize>(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(random_bytes::<N>()))
}

/// A new client id, e.g. `live_5c739a369515e10fc9e0a1b2` (96 random bits).
pub fn new_client_id() -> String {
    prefixed_hex::<12>("live_")
}

/// A new app id, e.g. `app_0f3c…` (96 random bits).
pub fn new_app_id() -> String {
    prefixed_hex::<12>("app_")
}

/// A new signing key id (`kid`), e.g. `key_9a41…` (64 random bits; only needs to be unique
/// among a handful of keys, and short keeps every JWT header short).
pub fn new_key_id() -> String {
    prefixed_hex::<8>("key_")
}

/// A new webhook event id, e.g. `evt_3b1f…` (96 random bits).
pub fn new_event_id() -> String {
    prefixed_hex::<12>("evt_")
}

/// A new trust rule id, e.g. `trust_7d0e…` (96 random bits).
pub fn new_trust_rule_id() -> String {
    prefixed_hex::<12>("trust_")
}

/// A new client secret id, e.g. `sec_1a2b…` (96 random bits; names the secret, reveals
/// nothing of it).
pub fn new_secret_id() -> String {
    prefixed_hex::<12>("sec_")
}

/// A new audit record id, e.g. `aud_4c2e…` (96 random bits).
pub fn new_audit_id() -> String {
    prefixed_hex::<12>("aud_")
}

/// A new token id (`jti`): 128 random bits, so revocation lists never see a collision.
/// Also the opaque webhook delivery tokens and idempotency keys, which need the same.
pub fn new_token_id() -> String {
    hex::encode(random_bytes::<16>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_unreserved_and_distinct() {
        let a = new_client_id();
        assert!(a.starts_with("live_") && a.len() == 5 + 24);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
        assert_ne!(a, new_client_id());
        assert!(new_app_id().starts_with("app_"));
        assert!(new_key_id().starts_with("key_"));
        assert!(new_trust_rule_id().starts_with("trust_"));
        assert!(new_secret_id().starts_with("sec_") && new_secret_id().len() == 4 + 24);
        assert!(new_audit_id().starts_with("aud_"));
        assert!(new_event_id().starts_with("evt_") && new_event_id().len() == 4 + 24);
        assert_eq!(new_token_id().len(), 32);
    }
}
