//! Console sessions: who signed in, with which credential, and the CSRF token of their
//! forms. Kept in this process's memory only; the browser holds a random id in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` and `__Host-` on TLS), never a token.
//!
//! A session keeps the credential it was opened with (the bootstrap admin token is not
//! kept, only that it was shown; an access token is kept to be checked again), so every
//! request is authorized as the admin API would authorize it: a revoked or expired
//! token, or a disabled client, ends the session at once. Sessions end after
//! [`IDLE`] without a request, after [`LIFETIME`] in all, and at sign-out; at most
//! [`MAX_SESSIONS`] are kept (the least recently used goes first).
//!
//! Sign-in is rate limited per source address ([`MAX_FAILURES_PER_MINUTE`]), and its form
//! carries a CSRF token of its own, checked against a short-lived cookie (the double-submit
//! pattern: a page on another site can neither read nor, `SameSite=Strict`, send it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::crypto::random_bytes;

/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, used or not.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// Most sessions kept at once.
pub const MAX_SESSIONS: usize = 1000;
/// Failed sign-ins allowed per source address and minute; more get 429.
pub const MAX_FAILURES_PER_MINUTE: u32 = 10;
/// Source addresses whose failures are counted at once (a flood of fresh addresses
/// resets the oldest counts, not the server's memory).
const MAX_COUNTED_SOURCES: usize = 10_000;
/// How long a sign-in form stays good.
const SIGN_IN_FORM_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// What a session was opened with.
#[derive(Clone)]
pub enum Credential {
    /// The bootstrap admin token (not kept).
    AdminToken,
    /// An access token this server issued to an admin-scoped client, checked again on
    /// every request.
    AccessToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::AdminToken => f.write_str("AdminToken"),
            Credential::AccessToken(_) => f.write_str("AccessToken(…)"),
        }
    }
}

struct Session {
    credential: Credential,
    csrf: String,
    opened: Instant,
    seen: Instant,
    /// A message for the next page shown (what the last change did).
    notice: Option<String>,
}

/// A live session, as a request sees it.
#[derive(Debug, Clone)]
pub struct Current {
    /// The session's key (the digest of its cookie's value).
    pub key: [u8; 32],
    /// What it was opened with.
    pub credential: Credential,
    /// The CSRF token its forms carry.
    pub csrf: String,
}

/// The console's sessions and sign-in attempts.
pub struct Sessions {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<IpAddr, (u64, u32)>>,
    started: Instant,
    secure: bool,
}

impl Sessions {
    /// Sessions whose cookies are `Secure` (the admin listener serves TLS) or not.
    pub fn new(secure: bool) -> Self {
        Self {
            sessions: Mutex::default(),
            failures: Mutex::default(),
            started: Instant::now(),
            secure,
        }
    }

    /// The session cookie's name: `__Host-` on TLS, so no other path or subdomain can set
    /// it.
    fn cookie_name(&self) -> &'static str {
        match self.secure {
            true => "__Host-moneykit-console",
            false => "moneykit-console",
        }
    }

    fn sign_in_cookie_name(&self) -> &'static str {
        match self.secure {
            true => "__Host-moneykit-console-sign-in",
            false => "moneykit-console-sign-in",
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.as_secs()
        );
        HeaderValue::try_from(text).expect("cookie values are base64url")
    }

    /// Opens a session for `credential`; returns the `Set-Cookie` value.
    pub fn open(&self, credential: Credential) -> HeaderValue {
        let id = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let now = Instant::now();
        let session = Session {
            credential,
            csrf: URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
            opened: now,
            seen: now,
            notice: None,
        };
        let mut sessions = self.sessions.lock().expect("not poisoned");
        sessions.retain(|_, s| live(s, now));
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(key_of(&id), session);
        self.cookie(self.cookie_name(), &id, LIFETIME)
    }

    /// The live session the request's cookie names, marked as used now.
    pub fn current(&self, headers: &HeaderMap) -> Option<Current> {
        let id = cookie(headers, self.cookie_name())?;
        let key = key_of(id);
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("not poisoned");
        let session = sessions.get_mut(&key)?;
        if !live(session, now) {
            sessions.remove(&key);
            return None;
        }
        session.seen = now;
        Some(Current {
            key,
            credential: session.credential.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends a session; returns the `Set-Cookie` value that clears the cookie.
    pub fn close(&self, key: &[u8; 32]) -> HeaderValue {
        self.sessions.lock().expect("not poisoned").remove(key);
        self.cookie(self.cookie_name(), "", Duration::ZERO)
    }

    /// Leaves a message for the session's next page.
    pub fn set_notice(&self, key: &[u8; 32], notice: String) {
        if let Some(s) = self.sessions.lock().expect("not poisoned").get_mut(key) {
            s.notice = Some(notice);
        }
    }

    /// Takes the message left for this page, if any.
    pub fn take_notice(&self, key: &[u8; 32]) -> Option<String> {
        let mut sessions = self.sessions.lock().expect("not poisoned");
        sessions.get_mut(key).and_then(|s| s.notice.take())
    }

    /// A fresh sign-in form token, and the `Set-Cookie` value that pairs with it.
    pub fn sign_in_form(&self) -> (String, HeaderValue) {
        let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let cookie = self.cookie(self.sign_in_cookie_name(), &token, SIGN_IN_FORM_LIFETIME);
        (token, cookie)
    }

    /// Whether the sign-in form's token matches its cookie.
    pub fn sign_in_form_matches(&self, headers: &HeaderMap, presented: &str) -> bool {
        cookie(headers, self.sign_in_cookie_name())
            .is_some_and(|expected| same(expected, presented))
    }

    /// The `Set-Cookie` value that clears the sign-in form's cookie.
    pub fn sign_in_form_used(&self) -> HeaderValue {
        self.cookie(self.sign_in_cookie_name(), "", Duration::ZERO)
    }

    /// Whether `source` may try to sign in now (fewer than the limit of failures this
    /// minute); if not, the seconds until it may.
    pub fn sign_in_allowed(&self, source: Option<IpAddr>) -> Result<(), u64> {
        let Some(source) = source else { return Ok(()) };
        let (minute, seconds) = self.minute();
        let failures = self.failures.lock().expect("not poisoned");
        match failures.get(&source) {
            Some(&(m, n)) if m == minute && n >= MAX_FAILURES_PER_MINUTE => Err(60 - seconds),
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in from `source`.
    pub fn sign_in_failed(&self, source: Option<IpAddr>) {
        let Some(source) = source else { return };
        let (minute, _) = self.minute();
        let mut failures = self.failures.lock().expect("not poisoned");
        if failures.len() >= MAX_COUNTED_SOURCES {
            failures.retain(|_, (m, _)| *m == minute);
            if failures.len() >= MAX_COUNTED_SOURCES {
                failures.clear();
            }
        }
        let entry = failures.entry(source).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
    }

    /// The minute since start, and the seconds into it.
    fn minute(&self) -> (u64, u64) {
        let secs = self.started.elapsed().as_secs();
        (secs / 60, secs % 60)
    }
}

fn live(session: &Session, now: Instant) -> bool {
    now.duration_since(session.seen) < IDLE && now.duration_since(session.opened) < LIFETIME
}

/// Sessions are found by the digest of their id, so the lookup reveals nothing about
/// ids through timing.
fn key_of(id: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, id.as_bytes()).as_ref());
    key
}

/// Constant-time equality of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of the cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        headers
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends_at_sign_out() {
        let sessions = Sessions::new(true);
        let set = sessions.open(Credential::AdminToken);
        let text = set.to_str().unwrap();
        assert!(text.starts_with("__Host-moneykit-console="));
        for attribute in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=",
        ] {
            assert!(text.contains(attribute), "{text}");
        }
        let headers = with_cookie(&set);
        let current = sessions.current(&headers).expect("live");
        assert_eq!(current.csrf.len(), 43);
        sessions.set_notice(&current.key, "done".into());
        assert_eq!(sessions.take_notice(&current.key).as_deref(), Some("done"));
        assert_eq!(sessions.take_notice(&current.key), None);
        let cleared = sessions.close(&current.key);
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
        assert!(sessions.current(&headers).is_none());
    }

    #[test]
    fn an_unknown_or_empty_cookie_is_no_session() {
        let sessions = Sessions::new(false);
        sessions.open(Credential::AdminToken);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("moneykit-console=forged"),
        );
        assert!(sessions.current(&headers).is_none());
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("moneykit-console="),
        );
        assert!(sessions.current(&headers).is_none());
        assert!(sessions.current(&HeaderMap::new()).is_none());
    }

    #[test]
    fn the_least_recently_used_session_goes_when_full() {
        let sessions = Sessions::new(false);
        let first = with_cookie(&sessions.open(Credential::AdminToken));
        for _ in 1..MAX_SESSIONS {
            sessions.open(Credential::AdminToken);
        }
        assert!(
            sessions.current(&first).is_some(),
            "the first is now the most recent"
        );
        sessions.open(Credential::AdminToken);
        assert!(sessions.current(&first).is_some());
        assert_eq!(sessions.sessions.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn the_sign_in_form_token_must_match_its_cookie() {
        let sessions = Sessions::new(false);
        let (token, cookie) = sessions.sign_in_form();
        let headers = with_cookie(&cookie);
        assert!(sessions.sign_in_form_matches(&headers, &token));
        assert!(!sessions.sign_in_form_matches(&headers, "other"));
        assert!(!sessions.sign_in_form_matches(&HeaderMap::new(), &token));
    }

    #[test]
    fn sign_in_failures_are_limited_per_source() {
        let sessions = Sessions::new(false);
        let a = Some(IpAddr::from([127, 0, 0, 1]));
        let b = Some(IpAddr::from([127, 0, 0, 2]));
        for _ in 0..MAX_FAILURES_PER_MINUTE {
            assert!(sessions.sign_in_allowed(a).is_ok());
            sessions.sign_in_failed(a);
        }
        let wait = sessions.sign_in_allowed(a).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(sessions.sign_in_allowed(b).is_ok());
    }
}
