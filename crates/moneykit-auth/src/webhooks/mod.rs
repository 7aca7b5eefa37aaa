//! Signed webhook delivery: what the JWKS is for.
//!
//! An app may register a webhook URL. Events for it go into a durable outbox in the same
//! database (`webhook_events`); a background [`worker`] in every `serve` process claims due
//! events under a lease, POSTs the exact stored body with a `MoneyKit-Signature` (an ES256
//! JWT from the same key ring as the JWKS), and records the outcome: delivered on any 2xx,
//! otherwise retried with exponential backoff and jitter until the retry window closes,
//! then failed. Delivery is at-least-once: an event leaves `pending` only after a recorded
//! outcome, so a crash mid-delivery means one more attempt after restart, never a lost
//! event.
//!
//! - [`signature`]: the `MoneyKit-Signature` JWT.
//! - [`worker`]: the delivery loop.

pub mod signature;
pub mod worker;

use std::time::Duration;

use crate::net::guard::TargetPolicy;

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Which targets may receive webhooks.
    pub policy: TargetPolicy,
    /// How long one delivery may take before it counts as failed.
    pub request_timeout: Duration,
    /// The wait before the second attempt; each later wait doubles (with jitter).
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub retry_max_interval: Duration,
    /// How long after its creation an event keeps being retried.
    pub retry_window: Duration,
    /// Most deliveries in flight to one endpoint (scheme, host and port) at a time.
    pub per_endpoint_concurrency: usize,
    /// Most deliveries in flight from this process.
    pub max_in_flight: usize,
    /// How often the outbox is checked for due events.
    pub poll_interval: Duration,
    /// Most pending events one app may have before the test trigger answers 429 (0: no
    /// cap). Operator events (CLI, admin API) are not capped.
    pub max_pending_per_app: u32,
    /// How long delivered and failed events are kept, counted from when they finished
    /// (zero: forever).
    pub retention: Duration,
    /// How often events past the retention are deleted.
    pub prune_interval: Duration,
    /// At most one warning per app this often about failing deliveries, with how many
    /// failed since the last one; every attempt is still logged at debug level.
    pub failure_log_interval: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            policy: TargetPolicy::default(),
            request_timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(10),
            retry_max_interval: Duration::from_secs(60 * 60),
            retry_window: Duration::from_secs(24 * 60 * 60),
            per_endpoint_concurrency: 4,
            max_in_flight: 64,
            poll_interval: Duration::from_millis(200),
            max_pending_per_app: 1000,
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            prune_interval: Duration::from_secs(60),
            failure_log_interval: Duration::from_secs(60),
        }
    }
}

impl WebhookSettings {
    /// How long a claimed attempt is reserved for its worker: the request timeout plus
    /// margin. A worker that dies mid-delivery releases the event when this runs out.
    pub fn lease(&self) -> Duration {
        self.request_timeout + Duration::from_secs(5)
    }

    /// The wait after failed attempt `attempt` (1, 2, …): `retry_base` doubling per
    /// attempt up to `retry_max_interval`, then scaled by `jitter` in [0.5, 1.0] so that
    /// endpoints that failed together do not get retried together.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let wait = self
            .retry_base
            .saturating_mul(1 << doublings)
            .min(self.retry_max_interval);
        wait.mul_f64(jitter.clamp(0.5, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_it() {
        let s = WebhookSettings {
            retry_base: Duration::from_secs(10),
            retry_max_interval: Duration::from_secs(60),
            ..WebhookSettings::default()
        };
        assert_eq!(s.backoff(1, 1.0), Duration::from_secs(10));
        assert_eq!(s.backoff(2, 1.0), Duration::from_secs(20));
        assert_eq!(s.backoff(3, 1.0), Duration::from_secs(40));
        assert_eq!(s.backoff(4, 1.0), Duration::from_secs(60));
        assert_eq!(s.backoff(40, 1.0), Duration::from_secs(60));
        assert_eq!(s.backoff(2, 0.5), Duration::from_secs(10));
        assert_eq!(
            s.backoff(2, 0.0),
            Duration::from_secs(10),
            "jitter is clamped"
        );
    }
}
