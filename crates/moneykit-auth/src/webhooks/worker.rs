//! The delivery loop every `serve` process runs.
//!
//! Every poll interval (and at once when this process creates an event) the worker claims
//! due events from the outbox — each claim counts the attempt and leases the event, in one
//! statement, so workers in other replicas never make the same attempt at the same time —
//! and delivers each in its own task: at most `max_in_flight` at once, and at most
//! `per_endpoint_concurrency` to one endpoint. The outcome is recorded only if the lease
//! is still this worker's. A worker that dies mid-attempt leaves the lease to run out,
//! and the event is attempted again (at-least-once).
//!
//! The same loop deletes delivered and failed events past the retention, and keeps the
//! log bounded: every failed attempt is a debug line, but a failing app gets at most one
//! warning per `failure_log_interval`, counting the failures since the last one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::WebhookSettings;
use crate::crypto::random_bytes;
use crate::domain::events::{AttemptOutcome, ClaimedEvent, EventStatus, WebhookEvent};
use crate::domain::time::{millis, now_ms};
use crate::engine::snapshot::SnapshotCell;
use crate::metrics::Metrics;
use crate::net::guard::{self, GuardedResolver};
use crate::store::Store;
use moneykit_wire::webhook::{DELIVERY_ATTEMPT_HEADER, DELIVERY_TOKEN_HEADER, SIGNATURE_HEADER};

/// What an attempt got back: a status code, or why there was none.
type Response = Result<u16, String>;

/// The outcome to record after `attempt` of `event` got `response` at `now_ms`: delivered
/// on any 2xx; otherwise retried after the backoff, unless that would be past the
/// event's retry window, which fails it.
pub fn outcome_of(
    settings: &WebhookSettings,
    event: &WebhookEvent,
    response: &Response,
    now_ms: i64,
    jitter: f64,
) -> AttemptOutcome {
    let (http_status, error) = match response {
        Ok(status) if (200..300).contains(status) => {
            return AttemptOutcome {
                status: EventStatus::Delivered,
                http_status: Some(*status),
                error: None,
                next_attempt_ms: now_ms,
            };
        }
        Ok(status) => (Some(*status), Some(format!("HTTP {status}"))),
        Err(why) => (None, Some(why.clone())),
    };
    let wait = settings.backoff(event.attempts, jitter);
    let next = now_ms.saturating_add(millis(wait));
    AttemptOutcome {
        status: if next > event.retry_until_ms {
            EventStatus::Failed
        } else {
            EventStatus::Pending
        },
        http_status,
        error,
        next_attempt_ms: next,
    }
}

/// A uniform number in [0.5, 1.0] for backoff jitter.
fn jitter() -> f64 {
    let [b] = random_bytes::<1>();
    0.5 + f64::from(b) / 510.0
}

/// Failed attempts per app since the last warning about that app: what keeps an endpoint
/// that is down from writing a warning per attempt.
#[derive(Debug)]
struct FailureLog {
    interval: Duration,
    apps: Mutex<HashMap<String, Unreported>>,
}

#[derive(Debug, Clone, Copy)]
struct Unreported {
    /// When the last warning about the app was written.
    warned_at: Instant,
    /// Failures since then.
    failures: u64,
}

impl FailureLog {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            apps: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failed attempt for `app_id` at `now`; `Some(n)` when a warning is due,
    /// covering `n` failures: the app's first failure, or the first one an interval or
    /// more after the last warning.
    fn failed(&self, app_id: &str, now: Instant) -> Option<u64> {
        let mut apps = self.apps.lock().expect("not poisoned");
        let Some(app) = apps.get_mut(app_id) else {
            apps.insert(
                app_id.to_owned(),
                Unreported {
                    warned_at: now,
                    failures: 0,
                },
            );
            return Some(1);
        };
        app.failures += 1;
        if now.saturating_duration_since(app.warned_at) < self.interval {
            return None;
        }
        let failures = std::mem::take(&mut app.failures);
        app.warned_at = now;
        Some(failures)
    }

    /// A delivery for `app_id` succeeded: forgets its failures; `Some(n)` if it had been
    /// failing, with the `n` failures no warning covered yet.
    fn recovered(&self, app_id: &str) -> Option<u64> {
        let mut apps = self.apps.lock().expect("not poisoned");
        if apps.is_empty() {
            return None;
        }
        apps.remove(app_id).map(|app| app.failures)
    }
}

/// Delivers webhooks from the outbox.
pub struct Worker {
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    keys: Arc<SnapshotCell>,
    settings: WebhookSettings,
    http: reqwest::Client,
    wake: Arc<Notify>,
    in_flight: Arc<Semaphore>,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
    failures: FailureLog,
}

impl Worker {
    /// A worker signing with the keys of `keys` (the same snapshot the JWKS is served
    /// from, so a receiver can always find the `kid`).
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<SnapshotCell>,
        settings: WebhookSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: settings.policy,
            }))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            metrics,
            store,
            keys,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            failures: FailureLog::new(settings.failure_log_interval),
            settings,
            http,
            wake: Arc::new(Notify::new()),
            endpoints: Mutex::new(HashMap::new()),
        })
    }

    /// Wakes the worker at once (after an event was created here).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `shutdown` changes, then waits up to `grace` for deliveries in flight.
    /// Deliveries still running after that are dropped; their leases run out and they are
    /// attempted again later, so nothing is lost.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut tick = tokio::time::interval(self.settings.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: a server that was down for a while prunes on start.
        let mut prune =
            tokio::time::interval(self.settings.prune_interval.max(Duration::from_millis(10)));
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prune_failing = false;
        let mut tasks = JoinSet::new();
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.wake.notified() => {}
                _ = prune.tick() => {
                    self.prune(&mut prune_failing).await;
                    continue;
                }
                _ = shutdown.changed() => break,
            }
            while tasks.try_join_next().is_some() {}
            match self.claim_and_start(&mut tasks).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("webhook outbox reachable again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    // The pool reports only that it timed out; a direct check says why.
                    let error = match self.store.ping(Duration::from_secs(1)).await {
                        Err(cause) => cause.to_string(),
                        Ok(()) => error.to_string(),
                    };
                    tracing::error!(%error, "cannot read the webhook outbox; retrying");
                }
                Err(_) => {}
            }
        }
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = tasks.len(),
                "webhook deliveries still running at shutdown; they will be retried"
            );
        }
    }

    /// Deletes delivered and failed events that finished more than the retention ago
    /// (nothing with a zero retention). A failure is logged once until pruning works again.
    async fn prune(&self, failing: &mut bool) {
        if self.settings.retention.is_zero() {
            return;
        }
        let before = now_ms().saturating_sub(millis(self.settings.retention));
        match self.store.prune_webhook_events(before).await {
            Ok(deleted) => {
                *failing = false;
                if deleted > 0 {
                    tracing::info!(
                        deleted,
                        retention = %humantime::format_duration(self.settings.retention),
                        "deleted finished webhook events past the retention"
                    );
                }
            }
            Err(error) if !*failing => {
                *failing = true;
                tracing::warn!(%error, "cannot delete old webhook events; retrying");
            }
            Err(_) => {}
        }
    }

    async fn claim_and_start(self: &Arc<Self>, tasks: &mut JoinSet<()>) -> anyhow::Result<()> {
        let free = self.in_flight.available_permits();
        if free == 0 {
            return Ok(());
        }
        let now = now_ms();
        let lease_until = now.saturating_add(millis(self.settings.lease()));
        let claimed = self
            .store
            .claim_webhook_events(now, lease_until, u32::try_from(free).unwrap_or(64))
            .await?;
        for event in claimed {
            let permit = self.in_flight.clone().acquire_owned().await?;
            let worker = self.clone();
            tasks.spawn(async move { worker.attempt(event, permit).await });
        }
        Ok(())
    }

    /// One attempt of one claimed event, start to recorded outcome.
    async fn attempt(&self, claimed: ClaimedEvent, _permit: OwnedSemaphorePermit) {
        let event = &claimed.event;
        let response = match &claimed.url {
            None => Err("the app has no webhook URL".to_owned()),
            Some(url) => match self.endpoint_slot(url).await {
                Some(_slot) => self.send(event, url).await,
                None => {
                    // The endpoint is busy beyond what the lease leaves time for: record
                    // this attempt as failed (it backs off like any other) rather than
                    // send after the lease has run out and race another worker.
                    Err("endpoint busy: concurrency limit reached".to_owned())
                }
            },
        };
        let outcome = outcome_of(&self.settings, event, &response, now_ms(), jitter());
        let counter = match outcome.status {
            EventStatus::Delivered => &self.metrics.webhooks_delivered,
            EventStatus::Pending => &self.metrics.webhooks_retried,
            EventStatus::Failed => &self.metrics.webhooks_failed,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match &outcome.status {
            EventStatus::Delivered => {
                if let Some(unreported) = self.failures.recovered(&event.app_id) {
                    tracing::info!(
                        app_id = %event.app_id, unreported_failures = unreported,
                        "webhook deliveries succeed again"
                    );
                }
                tracing::info!(
                    event_id = %event.id, app_id = %event.app_id, attempt = event.attempts,
                    status = outcome.http_status, "webhook delivered"
                );
            }
            status => {
                let error = outcome.error.as_deref().unwrap_or_default();
                tracing::debug!(
                    event_id = %event.id, app_id = %event.app_id, attempt = event.attempts,
                    error, next = %status, "webhook attempt failed"
                );
                if let Some(failures) = self.failures.failed(&event.app_id, Instant::now()) {
                    tracing::warn!(
                        app_id = %event.app_id, failures, event_id = %event.id,
                        attempt = event.attempts, error, next = %status,
                        quiet_for = %humantime::format_duration(self.settings.failure_log_interval),
                        "webhook deliveries failing (failures: since the last such warning \
                         for this app; every attempt is logged at debug level)"
                    );
                }
            }
        }
        match self
            .store
            .finish_webhook_attempt(&event.id, event.attempts, &outcome, now_ms())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                event_id = %event.id,
                "webhook attempt outlived its lease; the outcome was not recorded"
            ),
            Err(error) => tracing::warn!(
                event_id = %event.id, %error,
                "cannot record a webhook attempt; it will be attempted again"
            ),
        }
    }

    /// A slot for one delivery to `url`'s endpoint, waiting at most what the lease leaves
    /// after the request timeout.
    async fn endpoint_slot(&self, url: &str) -> Option<OwnedSemaphorePermit> {
        let endpoint = reqwest::Url::parse(url)
            .map(|u| {
                format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or_default(),
                    u.port_or_known_default().unwrap_or(0)
                )
            })
            .unwrap_or_else(|_| url.to_owned());
        let slots = self
            .endpoints
            .lock()
            .expect("not poisoned")
            .entry(endpoint)
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.settings.per_endpoint_concurrency.max(1),
                ))
            })
            .clone();
        let wait = self
            .settings
            .lease()
            .saturating_sub(self.settings.request_timeout + Duration::from_secs(1));
        tokio::time::timeout(wait, slots.acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// POSTs the event's body, signed now with the active key.
    async fn send(&self, event: &WebhookEvent, url: &str) -> Response {
        // Literal addresses never reach the resolver; `check_url` checks them.
        let target = guard::check_url(url, self.settings.policy).map_err(|e| e.to_string())?;
        let signature = {
            let snapshot = self.keys.load();
            let now = time::OffsetDateTime::now_utc();
            let signer = snapshot
                .signer_at(now)
                .ok_or_else(|| "no active signing key".to_owned())?;
            super::signature::sign(&signer.key, &event.body, now.unix_timestamp())
        };
        let response = self
            .http
            .post(target)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(
                USER_AGENT,
                concat!("moneykit-auth-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_TOKEN_HEADER, event.delivery_token.as_str())
            .header(DELIVERY_ATTEMPT_HEADER, event.attempts.to_string())
            .body(event.body.clone())
            .send()
            .await
            .map_err(describe)?;
        Ok(response.status().as_u16())
    }
}

/// A delivery failure in one line, without the URL (which may carry a secret): the
/// error and its causes joined by ": ", as `{:#}` prints an `anyhow` chain.
fn describe(error: reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    format!("{:#}", anyhow::Error::new(error.without_url()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(attempts: u32, retry_until_ms: i64) -> WebhookEvent {
        let mut e = crate::domain::payloads::new_event("app", "x", b"{}".to_vec(), 0, 0);
        e.attempts = attempts;
        e.retry_until_ms = retry_until_ms;
        e
    }

    #[test]
    fn a_failing_app_is_warned_about_once_per_interval_with_a_count() {
        let log = FailureLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(
            log.failed("app_a", t0),
            Some(1),
            "the first failure is reported"
        );
        for i in 1..=99 {
            assert_eq!(
                log.failed("app_a", t0 + Duration::from_millis(i * 100)),
                None
            );
        }
        assert_eq!(log.failed("app_b", t0), Some(1), "apps are counted apart");
        assert_eq!(
            log.failed("app_a", t0 + Duration::from_secs(60)),
            Some(100),
            "an interval later: every failure since the last warning"
        );
        assert_eq!(log.failed("app_a", t0 + Duration::from_secs(61)), None);
        assert_eq!(log.recovered("app_a"), Some(1), "one not yet reported");
        assert_eq!(log.recovered("app_a"), None, "forgotten");
        assert_eq!(
            log.failed("app_a", t0 + Duration::from_secs(62)),
            Some(1),
            "failing again is reported at once"
        );
        assert_eq!(log.recovered("app_c"), None);
    }

    #[test]
    fn any_2xx_delivers_and_anything_else_retries_until_the_window_closes() {
        let s = WebhookSettings {
            retry_base: Duration::from_secs(1),
            ..WebhookSettings::default()
        };
        let e = event(1, 10_000);
        assert_eq!(
            outcome_of(&s, &e, &Ok(204), 5, 1.0).status,
            EventStatus::Delivered
        );
        let retry = outcome_of(&s, &e, &Ok(500), 5, 1.0);
        assert_eq!(retry.status, EventStatus::Pending);
        assert_eq!(retry.next_attempt_ms, 1_005);
        assert_eq!(retry.http_status, Some(500));
        let e = event(4, 10_000); // the next wait would be 8 s: past the window
        let failed = outcome_of(&s, &e, &Err("refused".into()), 5_000, 1.0);
        assert_eq!(failed.status, EventStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("refused"));
        assert_eq!(
            outcome_of(&s, &e, &Ok(302), 0, 1.0).status,
            EventStatus::Pending,
            "redirects are not followed, so they are failures"
        );
    }
}
