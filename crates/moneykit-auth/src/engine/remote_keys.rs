//! Public keys that live elsewhere: the JWKS URI of a `private_key_jwt` client, and the
//! keys of an issuer a client trusts (its `jwks_uri`, or found through its OpenID
//! discovery document). Fetched in the background through the SSRF guard, with a timeout
//! and a size cap, cached as `Cache-Control` says within bounds, and read by requests
//! from memory only.
//!
//! A request that names a `kid` the cache lacks may ask for a refetch
//! ([`RemoteKeys::request_refetch`]); a location is fetched at most once per
//! [`FetchSettings::min_refetch_interval`] however many requests ask, and only locations
//! the snapshot knows (registered clients and trust rules) are ever fetched or kept, so
//! forged client ids and kids cannot grow memory or turn into a flood of fetches.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use reqwest::header::{ACCEPT, CACHE_CONTROL};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::snapshot::{KeySet, SnapshotCell};
use crate::crypto::jose::{JwkError, Jws, JwsError, Strictness, VerifyingKey, parse_jwks};
use crate::domain::assertions::{KeyLocation, discovery_url};
use crate::net::guard::{self, GuardedResolver, TargetPolicy};

/// How keys are fetched and cached.
#[derive(Debug, Clone, Copy)]
pub struct FetchSettings {
    /// Which hosts may be fetched from (the same guard as webhook targets).
    pub policy: TargetPolicy,
    /// Longest one fetch may take, connection included.
    pub timeout: Duration,
    /// Largest document read.
    pub max_bytes: usize,
    /// Least time between two fetches of one location (after a failure, or when an
    /// unknown `kid` asks for a refetch).
    pub min_refetch_interval: Duration,
    /// How long keys are kept when the response says nothing (`Cache-Control`).
    pub default_max_age: Duration,
    /// Bounds on what `Cache-Control: max-age` may set.
    pub min_max_age: Duration,
    /// Upper bound of the same.
    pub max_max_age: Duration,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            policy: TargetPolicy::default(),
            timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
            min_refetch_interval: Duration::from_secs(30),
            default_max_age: Duration::from_secs(15 * 60),
            min_max_age: Duration::from_secs(60),
            max_max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// What is known of one location.
#[derive(Debug, Clone)]
struct Slot {
    /// The last keys fetched, kept through later failures for at most the longest
    /// cache age, and dropped at once when the location publishes a private key.
    keys: Option<Arc<Vec<VerifyingKey>>>,
    /// When those keys were fetched.
    fetched_at: Option<Instant>,
    /// When it was last fetched or tried.
    attempted_at: Instant,
    /// When to fetch it again.
    refresh_at: Instant,
    /// Why the last attempt failed, if it did.
    error: Option<String>,
}

/// Most refetch requests waiting for the fetcher; more are dropped (the fetcher is busy
/// with the ones before, and each location is fetched at most once per interval anyway).
const REFETCH_QUEUE: usize = 64;

/// The key cache requests read, and the fetcher fills.
#[derive(Debug)]
pub struct RemoteKeys {
    slots: RwLock<HashMap<KeyLocation, Slot>>,
    refetch: mpsc::Sender<KeyLocation>,
    requests: Mutex<Option<mpsc::Receiver<KeyLocation>>>,
    settings: FetchSettings,
}

impl RemoteKeys {
    /// An empty cache.
    pub fn new(settings: FetchSettings) -> Self {
        let (refetch, requests) = mpsc::channel(REFETCH_QUEUE);
        Self {
            slots: RwLock::default(),
            refetch,
            requests: Mutex::new(Some(requests)),
            settings,
        }
    }

    /// The keys last fetched from `location`, if any.
    pub fn keys(&self, location: &KeyLocation) -> Option<Arc<Vec<VerifyingKey>>> {
        let slots = self.slots.read().expect("not poisoned");
        slots.get(location).and_then(|s| s.keys.clone())
    }

    /// Verifies `jws` under the keys of `set`, fetched ones read from this cache. When a
    /// signature fails under fetched keys (an unknown `kid`, or no `kid` and a key the
    /// owner rotated), a refetch is asked for, for the next attempt: the cache limits it
    /// to one per location per interval.
    pub fn verify(&self, set: &KeySet, jws: &Jws<'_>) -> Result<(), KeyCheckError> {
        let fetched;
        let keys: &[VerifyingKey] = match set {
            KeySet::None => &[],
            KeySet::Registered(keys) => keys,
            KeySet::Remote(location) => {
                fetched = self.keys(location).ok_or_else(|| {
                    self.request_refetch(location);
                    KeyCheckError::NotFetched
                })?;
                &fetched
            }
        };
        jws.verify(keys).map(|_| ()).map_err(|e| {
            if let Some(location) = set.location() {
                self.request_refetch(location);
            }
            KeyCheckError::Signature(e)
        })
    }

    /// Asks the fetcher to fetch `location` again soon (a `kid` was not found), unless it
    /// was fetched within the minimum interval. Never waits.
    pub fn request_refetch(&self, location: &KeyLocation) {
        let recent = {
            let slots = self.slots.read().expect("not poisoned");
            slots
                .get(location)
                .is_some_and(|s| s.attempted_at.elapsed() < self.settings.min_refetch_interval)
        };
        if !recent {
            let _ = self.refetch.try_send(location.clone());
        }
    }

    fn store(&self, location: KeyLocation, outcome: Result<Fetched, FetchFailure>) {
        let now = Instant::now();
        let mut slots = self.slots.write().expect("not poisoned");
        let previous = slots.remove(&location);
        let slot = match outcome {
            Ok(fetched) => {
                if previous.as_ref().is_some_and(|p| p.error.is_some()) {
                    tracing::info!(location = %location, "keys fetched again");
                }
                Slot {
                    keys: Some(Arc::new(fetched.keys)),
                    fetched_at: Some(now),
                    attempted_at: now,
                    refresh_at: now + fetched.max_age,
                    error: None,
                }
            }
            Err(FetchFailure { error, compromised }) => {
                if previous
                    .as_ref()
                    .is_none_or(|p| p.error.as_ref() != Some(&error))
                {
                    tracing::warn!(location = %location, %error, "cannot fetch keys; keeping the last ones fetched, if any and not too old");
                }
                let max_age = self.settings.max_max_age;
                let kept = previous
                    .filter(|p| !compromised && p.fetched_at.is_some_and(|t| now - t < max_age));
                Slot {
                    keys: kept.as_ref().and_then(|p| p.keys.clone()),
                    fetched_at: kept.and_then(|p| p.fetched_at),
                    attempted_at: now,
                    refresh_at: now + self.settings.min_refetch_interval,
                    error: Some(error),
                }
            }
        };
        slots.insert(location, slot);
    }

    /// The locations due for a fetch among `wanted`, forgetting every other one.
    fn due(&self, wanted: &[KeyLocation], now: Instant) -> Vec<KeyLocation> {
        let mut slots = self.slots.write().expect("not poisoned");
        let keep: HashSet<&KeyLocation> = wanted.iter().collect();
        slots.retain(|location, _| keep.contains(location));
        wanted
            .iter()
            .filter(|l| slots.get(*l).is_none_or(|s| s.refresh_at <= now))
            .cloned()
            .collect()
    }

    /// Whether a refetch asked for now should go ahead: `location` is one the snapshot
    /// wants and was not tried within the minimum interval.
    fn refetch_allowed(&self, location: &KeyLocation, wanted: &[KeyLocation]) -> bool {
        let slots = self.slots.read().expect("not poisoned");
        wanted.contains(location)
            && slots
                .get(location)
                .is_none_or(|s| s.attempted_at.elapsed() >= self.settings.min_refetch_interval)
    }
}

/// Why a JWT was not verified under a [`KeySet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyCheckError {
    /// The keys live elsewhere and have not been fetched (yet, or ever).
    #[error("the keys could not be fetched yet")]
    NotFetched,
    /// No key verified the signature.
    #[error(transparent)]
    Signature(JwsError),
}

/// Keys fetched, and how long to keep them.
struct Fetched {
    keys: Vec<VerifyingKey>,
    max_age: Duration,
}

/// Why keys could not be fetched; `compromised` when the location published a private
/// key, so the keys fetched from it before must not be trusted any more.
struct FetchFailure {
    error: String,
    compromised: bool,
}

impl From<String> for FetchFailure {
    fn from(error: String) -> Self {
        Self {
            error,
            compromised: false,
        }
    }
}

/// The background task that fills a [`RemoteKeys`].
pub struct KeyFetcher {
    cache: Arc<RemoteKeys>,
    snapshot: Arc<SnapshotCell>,
    http: reqwest::Client,
}

impl KeyFetcher {
    /// A fetcher for the locations `snapshot` names, through the guard of `cache`'s
    /// settings.
    pub fn new(cache: Arc<RemoteKeys>, snapshot: Arc<SnapshotCell>) -> anyhow::Result<Self> {
        let settings = cache.settings;
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: settings.policy,
            }))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("moneykit-auth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            cache,
            snapshot,
            http,
        })
    }

    /// Fetches what is due every second, and what requests ask for at once, until
    /// `shutdown` changes.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Some(mut requests) = self.cache.requests.lock().expect("not poisoned").take() else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut in_flight: HashSet<KeyLocation> = HashSet::new();
        let mut tasks: JoinSet<(KeyLocation, Result<Fetched, FetchFailure>)> = JoinSet::new();
        loop {
            // The snapshot held, not its locations copied: it changes rarely.
            let snapshot = arc_swap::Guard::into_inner(self.snapshot.load());
            let wanted = snapshot.key_locations();
            let start: Vec<KeyLocation> = tokio::select! {
                _ = tick.tick() => self.cache.due(wanted, Instant::now()),
                Some(location) = requests.recv() => {
                    if self.cache.refetch_allowed(&location, wanted) { vec![location] } else { vec![] }
                }
                Some(done) = tasks.join_next() => {
                    if let Ok((location, outcome)) = done {
                        in_flight.remove(&location);
                        if wanted.contains(&location) {
                            self.cache.store(location, outcome);
                        }
                    }
                    vec![]
                }
                _ = shutdown.changed() => return,
            };
            for location in start {
                if in_flight.insert(location.clone()) {
                    let http = self.http.clone();
                    let settings = self.cache.settings;
                    tasks.spawn(async move {
                        let outcome = fetch_keys(&http, &location, &settings).await;
                        (location, outcome)
                    });
                }
            }
        }
    }
}

/// Fetches the keys at `location`.
async fn fetch_keys(
    http: &reqwest::Client,
    location: &KeyLocation,
    settings: &FetchSettings,
) -> Result<Fetched, FetchFailure> {
    let (body, max_age) = match location {
        KeyLocation::Jwks(url) => fetch(http, url, settings).await?,
        KeyLocation::Discovery(issuer) => {
            #[derive(Deserialize)]
            struct Discovery {
                issuer: String,
                jwks_uri: String,
            }
            let url = discovery_url(issuer);
            let (body, first_age) = fetch(http, &url, settings).await?;
            let doc: Discovery = serde_json::from_slice(&body)
                .map_err(|e| FetchFailure::from(format!("{url}: not a discovery document: {e}")))?;
            // OpenID Connect Discovery §4.3: the document must be the issuer's own.
            if doc.issuer != *issuer {
                return Err(FetchFailure::from(format!(
                    "{url}: names issuer {:?}, not {issuer:?}",
                    doc.issuer
                )));
            }
            let (body, second_age) = fetch(http, &doc.jwks_uri, settings).await?;
            (body, first_age.min(second_age))
        }
    };
    let keys = parse_jwks(&body, Strictness::Usable).map_err(|e| FetchFailure {
        compromised: matches!(e, JwkError::PrivateMember { .. }),
        error: format!("{location}: {e}"),
    })?;
    Ok(Fetched { keys, max_age })
}

/// GETs `url` through the guard: at most `max_bytes`, a 2xx answer, and how long it may
/// be cached.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    settings: &FetchSettings,
) -> Result<(Vec<u8>, Duration), String> {
    let target = guard::check_url(url, settings.policy).map_err(|e| format!("{url}: {e}"))?;
    let mut response = http
        .get(target)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("{url}: {}", describe(e)))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status().as_u16()));
    }
    let max_age = response
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(cache_max_age)
        .unwrap_or(settings.default_max_age)
        .clamp(settings.min_max_age, settings.max_max_age);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{url}: {}", describe(e)))?
    {
        if body.len() + chunk.len() > settings.max_bytes {
            return Err(format!("{url}: larger than {} bytes", settings.max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// A fetch error without the URL reqwest repeats in it.
fn describe(error: reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        // The guard's refusal arrives as a connect error; its text says why.
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
        let mut last = error.to_string();
        while let Some(s) = source {
            last = s.to_string();
            source = s.source();
        }
        format!("cannot connect: {last}")
    } else {
        error.without_url().to_string()
    }
}

/// How long `Cache-Control` lets a response be kept: `max-age`, or zero for `no-store`
/// and `no-cache` (which the bounds then raise to the minimum).
fn cache_max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        lower
            .strip_prefix("max-age=")
            .and_then(|secs| secs.trim_matches('"').parse().ok())
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_sets_the_age_within_bounds() {
        assert_eq!(
            cache_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(cache_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(cache_max_age("private"), None);
        assert_eq!(cache_max_age("max-age=nope"), None);
        let settings = FetchSettings::default();
        let bounded = |d: Duration| d.clamp(settings.min_max_age, settings.max_max_age);
        assert_eq!(bounded(Duration::ZERO), Duration::from_secs(60));
        assert_eq!(
            bounded(Duration::from_secs(10 * 86_400)),
            Duration::from_secs(86_400)
        );
    }

    #[test]
    fn discovery_is_under_the_issuer() {
        assert_eq!(
            discovery_url("https://token.actions.githubusercontent.com"),
            "https://token.actions.githubusercontent.com/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://kubernetes.default.svc/"),
            "https://kubernetes.default.svc/.well-known/openid-configuration"
        );
    }

    #[tokio::test]
    async fn refetch_requests_are_bounded_and_rate_limited_per_location() {
        let keys = RemoteKeys::new(FetchSettings::default());
        let location = KeyLocation::Jwks("https://keys.example/jwks".into());
        // A flood of requests leaves at most the queue's worth waiting.
        for i in 0..10_000 {
            keys.request_refetch(&KeyLocation::Jwks(format!("https://keys.example/{i}")));
        }
        let mut requests = keys.requests.lock().unwrap().take().unwrap();
        let mut queued = 0;
        while requests.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, REFETCH_QUEUE);
        // Only a wanted location is fetched, and not again within the interval.
        let wanted = vec![location.clone()];
        assert!(keys.refetch_allowed(&location, &wanted));
        assert!(!keys.refetch_allowed(&KeyLocation::Jwks("https://other".into()), &wanted));
        keys.store(location.clone(), Err(String::from("HTTP 500").into()));
        assert!(!keys.refetch_allowed(&location, &wanted));
        keys.request_refetch(&location);
        assert!(
            requests.try_recv().is_err(),
            "a recent attempt is not retried"
        );
        let error = |keys: &RemoteKeys| {
            let slots = keys.slots.read().unwrap();
            slots.get(&location).and_then(|s| s.error.clone())
        };
        assert_eq!(error(&keys).as_deref(), Some("HTTP 500"));
        // Locations no longer wanted are forgotten.
        assert_eq!(keys.due(&[], Instant::now()), Vec::<KeyLocation>::new());
        assert!(error(&keys).is_none());
    }
}
