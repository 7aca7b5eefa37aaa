//! DPoP at request time (RFC 9449): a proof judged by [`crate::domain::dpop`], then the
//! two checks that need state — the server's nonce (§8), when it demands one, and the
//! `jti` seen before (§11.1) — and what the token is then bound to.
//!
//! Nonces are stateless, so every replica accepts every other's: a nonce is a time slot
//! and a MAC of it under a key derived from the master key all replicas share. The
//! current and the previous slot are accepted, so a nonce lives one to two periods.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit_wire::Confirmation;
use subtle::ConstantTimeEq;

use super::Engine;
use super::replay::{AssertionId, ReplayError, UsedAssertion, UsedKind};
use crate::domain::certificates::ClientCertificate;
use crate::domain::dpop::{
    CheckedProof, Expected, ProofError, ProofHeader, check_proof_with, header_segment, parse_header,
};

/// How DPoP proofs are judged; fixed for the life of a server.
#[derive(Debug, Clone)]
pub struct DpopSettings {
    /// How far a proof's `iat` may be from now, either way (`--dpop-proof-window`).
    pub window_secs: i64,
    /// Present when token requests must carry a fresh server nonce (`--dpop-nonce`).
    pub nonces: Option<NonceKey>,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            window_secs: 60,
            nonces: None,
        }
    }
}

/// Makes and checks the server's DPoP nonces.
#[derive(Clone)]
pub struct NonceKey {
    key: aws_lc_rs::hmac::Key,
    period_secs: i64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey")
            .field("period_secs", &self.period_secs)
            .finish_non_exhaustive()
    }
}

/// Bytes of MAC a nonce carries: 128 bits cannot be guessed.
const NONCE_MAC_LEN: usize = 16;

impl NonceKey {
    /// Nonces under `key` (32 bytes derived from the master key), a new one every
    /// `period_secs`.
    pub fn new(key: &[u8; 32], period_secs: i64) -> Self {
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
            period_secs: period_secs.max(1),
        }
    }

    fn mac(&self, slot: i64) -> [u8; NONCE_MAC_LEN] {
        let tag = aws_lc_rs::hmac::sign(&self.key, &slot.to_be_bytes());
        let mut out = [0u8; NONCE_MAC_LEN];
        out.copy_from_slice(&tag.as_ref()[..NONCE_MAC_LEN]);
        out
    }

    /// The nonce of the slot `now` (Unix seconds) falls in.
    pub fn current(&self, now: i64) -> String {
        let slot = now.div_euclid(self.period_secs);
        let mut bytes = Vec::with_capacity(8 + NONCE_MAC_LEN);
        bytes.extend_from_slice(&slot.to_be_bytes());
        bytes.extend_from_slice(&self.mac(slot));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` is this server's (any replica's) for the current or the previous
    /// slot.
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if bytes.len() != 8 + NONCE_MAC_LEN {
            return false;
        }
        let slot = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let current = now.div_euclid(self.period_secs);
        (slot == current || slot == current - 1) && bool::from(self.mac(slot).ct_eq(&bytes[8..]))
    }
}

/// Most proof headers kept; past it the set starts again (a flood of one-off keys only
/// costs their parsing, as it would without the cache).
const PROOF_KEYS: usize = 10_000;

/// The judged headers of recent proofs, by the header segment's bytes: a client signs
/// every proof with one key, so its key is parsed, checked on its curve and thumbprinted
/// once, not on every request. A header is a pure function of those bytes (its `alg`,
/// `typ` and `jwk`; `crit` is refused), so a proof that starts with them has that header.
#[derive(Debug, Default)]
pub struct ProofKeys(Mutex<HashMap<Box<str>, Arc<ProofHeader>>>);

impl ProofKeys {
    /// The judged header of `proof`: kept, or parsed now and kept.
    fn header_of(&self, proof: &str) -> Result<Arc<ProofHeader>, ProofError> {
        let segment = header_segment(proof)?;
        if let Some(header) = self.0.lock().expect("not poisoned").get(segment) {
            return Ok(header.clone());
        }
        let header = Arc::new(parse_header(proof)?);
        let mut kept = self.0.lock().expect("not poisoned");
        if kept.len() >= PROOF_KEYS {
            kept.clear();
        }
        kept.insert(segment.into(), header.clone());
        Ok(header)
    }
}

/// Why a proof was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpopRefusal {
    /// `invalid_dpop_proof`, naming the check.
    Invalid(String),
    /// `use_dpop_nonce`: the proof lacks the current nonce, which is given.
    UseNonce(String),
    /// The replay set is full; try again shortly.
    Full,
}

/// A proof accepted here: the key the token is bound to, and the use to record where
/// every replica sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedProof {
    /// `cnf.jkt`.
    pub jkt: String,
    /// The proof's `jti`, for the store.
    pub used: UsedAssertion,
}

impl Engine<'_> {
    /// Judges a DPoP proof sent with a request to `url` by `method` (with `access_token`
    /// at a protected resource): every check of RFC 9449 §4.3, then — at the token
    /// endpoints, when nonces are on — the nonce, then the `jti` against the proofs this
    /// process has accepted. `nonces` is false at a protected resource (its nonces are
    /// not this server's to demand).
    pub fn check_dpop(
        &self,
        proof: &str,
        expected: Expected<'_>,
        nonces: bool,
        now: i64,
    ) -> Result<AcceptedProof, DpopRefusal> {
        let settings = &self.snapshot.settings.dpop;
        let refuse = |why: String| {
            tracing::info!(
                reason = "invalid_dpop_proof",
                check = %why,
                client = self.source.map(tracing::field::display),
                "DPoP proof refused"
            );
            DpopRefusal::Invalid(why)
        };
        let CheckedProof {
            jkt,
            jti,
            iat,
            nonce,
        } = self
            .assertions
            .proof_keys
            .header_of(proof)
            .and_then(|header| check_proof_with(proof, &header, &expected, now))
            .map_err(|e| refuse(e.to_string()))?;
        if nonces && let Some(key) = &settings.nonces {
            let fresh = nonce.as_deref().is_some_and(|n| key.accepts(n, now));
            if !fresh {
                return Err(DpopRefusal::UseNonce(key.current(now)));
            }
        }
        // A proof is good until its iat leaves the window; remembered that long.
        let expires_at = iat + expected.window_secs;
        let id = AssertionId::of(&format!("dpop {jkt}"), &jti);
        match self.assertions.proofs.take(id, expires_at, now) {
            Ok(()) => Ok(AcceptedProof {
                jkt,
                used: UsedAssertion {
                    id,
                    expires_at,
                    kind: UsedKind::DpopProof,
                },
            }),
            Err(ReplayError::Replayed) => {
                Err(refuse("DPoP proof: the jti has been used before".into()))
            }
            Err(ReplayError::Full) => Err(DpopRefusal::Full),
        }
    }
}

/// How an access token was presented at a protected resource (`/auth/introspect`).
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    /// The token.
    pub token: &'a str,
    /// Whether it came under the DPoP scheme (`Authorization: DPoP`).
    pub dpop_scheme: bool,
    /// The `DPoP` header.
    pub proof: Option<&'a str>,
    /// The connection's client certificate.
    pub certificate: Option<&'a ClientCertificate>,
    /// The request's method.
    pub method: &'a str,
    /// The request's path, under this server's issuer.
    pub endpoint: &'a str,
}

/// Why a token was refused as presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentationError {
    /// RFC 9449 `invalid_token`: a DPoP-bound token under the Bearer scheme, or an
    /// unbound one under the DPoP scheme.
    InvalidToken(String),
    /// RFC 8705 §3 `invalid_token`: a certificate-bound token over a connection without
    /// its certificate.
    Certificate(String),
    /// `invalid_dpop_proof`: the proof is missing, refused, or by another key.
    InvalidProof(String),
    /// The replay set is full; try again shortly.
    Full,
}

impl Engine<'_> {
    /// Checks that a valid token with confirmation `cnf` was presented by its holder
    /// (RFC 9449 §7, RFC 8705 §3): a DPoP-bound token under the DPoP scheme with a proof
    /// by its key for this request and token, a certificate-bound token over a connection
    /// with its certificate, and a token bound to nothing under the Bearer scheme. Returns
    /// the proof to record where every replica sees it.
    pub fn check_presentation(
        &self,
        cnf: Option<&Confirmation>,
        presented: &Presentation<'_>,
        now: i64,
    ) -> Result<Option<UsedAssertion>, PresentationError> {
        let jkt = cnf.and_then(|c| c.jkt.as_deref());
        if let Some(x5t) = cnf.and_then(|c| c.x5t_s256.as_deref())
            && presented.certificate.map(|c| c.thumbprint.as_str()) != Some(x5t)
        {
            return Err(PresentationError::Certificate(
                "the token is bound to a client certificate this connection did not present".into(),
            ));
        }
        let Some(jkt) = jkt else {
            return match presented.dpop_scheme {
                true => Err(PresentationError::InvalidToken(
                    "the token is not bound to a DPoP key: present it as a Bearer token".into(),
                )),
                false => Ok(None),
            };
        };
        if !presented.dpop_scheme {
            return Err(PresentationError::InvalidToken(
                "the token is bound to a DPoP key: present it as Authorization: DPoP, with a proof"
                    .into(),
            ));
        }
        let proof = presented.proof.ok_or_else(|| {
            PresentationError::InvalidProof("DPoP proof: send one in the DPoP header".into())
        })?;
        let url = format!("{}{}", self.snapshot.settings.issuer, presented.endpoint);
        let expected = Expected {
            method: presented.method,
            url: &url,
            access_token: Some(presented.token),
            window_secs: self.snapshot.settings.dpop.window_secs,
        };
        let accepted =
            self.check_dpop(proof, expected, false, now)
                .map_err(|refusal| match refusal {
                    DpopRefusal::Invalid(why) | DpopRefusal::UseNonce(why) => {
                        PresentationError::InvalidProof(why)
                    }
                    DpopRefusal::Full => PresentationError::Full,
                })?;
        if accepted.jkt != jkt {
            return Err(PresentationError::InvalidProof(
                "DPoP proof: signed by another key than the one the token is bound to".into(),
            ));
        }
        Ok(Some(accepted.used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    /// A DPoP proof of `pair` with `claims`.
    fn proof(pair: &EcdsaKeyPair, claims: &str) -> String {
        let point = pair.public_key().as_ref();
        let header = format!(
            r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}}}"#,
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..])
        );
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn pair() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn a_keys_header_is_judged_once_and_its_signatures_every_time() {
        let keys = ProofKeys::default();
        let (alice, mallory) = (pair(), pair());
        let expected = Expected {
            method: "POST",
            url: "https://as.example/token",
            access_token: None,
            window_secs: 60,
        };
        let claims = |jti: &str| {
            format!(r#"{{"jti":"{jti}","htm":"POST","htu":"https://as.example/token","iat":1000}}"#)
        };
        let first = proof(&alice, &claims("1"));
        let second = proof(&alice, &claims("2"));
        let a = keys.header_of(&first).unwrap();
        let b = keys.header_of(&second).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one parse for both proofs of the key");
        assert_eq!(keys.0.lock().unwrap().len(), 1);
        assert!(check_proof_with(&second, &b, &expected, 1000).is_ok());
        // Alice's header on a body Mallory signed: the kept key still checks the signature.
        let forged = proof(&mallory, &claims("3"));
        let (_, forged_rest) = forged.split_once('.').unwrap();
        let spliced = format!("{}.{forged_rest}", header_segment(&first).unwrap());
        let header = keys.header_of(&spliced).unwrap();
        assert_eq!(
            check_proof_with(&spliced, &header, &expected, 1000),
            Err(ProofError::Signature)
        );
        assert!(keys.header_of("no-dots").is_err());
        assert!(keys.header_of(&"a.b.c".repeat(4000)).is_err());
    }

    #[test]
    fn nonces_verify_for_two_periods_under_the_same_key_only() {
        let key = NonceKey::new(&[7; 32], 300);
        let nonce = key.current(1_000);
        assert!(key.accepts(&nonce, 1_000));
        assert!(key.accepts(&nonce, 1_199), "same slot");
        assert!(key.accepts(&nonce, 1_499), "next slot still takes it");
        assert!(!key.accepts(&nonce, 1_500), "two slots on: stale");
        assert!(!key.accepts(&nonce, 800), "from the future");
        let other = NonceKey::new(&[8; 32], 300);
        assert!(
            !other.accepts(&nonce, 1_000),
            "another key (another deployment)"
        );
        assert!(!key.accepts("", 1_000));
        assert!(!key.accepts("not base64!", 1_000));
        let mut forged = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        forged[0] ^= 1;
        assert!(!key.accepts(&URL_SAFE_NO_PAD.encode(forged), 1_000));
    }
}
