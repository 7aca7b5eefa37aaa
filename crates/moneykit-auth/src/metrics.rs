//! Counters and histograms for Prometheus (`GET /metrics` on the admin listener).
//!
//! Everything is a fixed array of relaxed atomics indexed by route and status, so
//! recording a request costs a few nanoseconds and no allocation, and the label sets are
//! bounded whatever paths clients send (unknown paths count as `other`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The routes requests are counted by.
pub const ROUTES: [&str; 12] = [
    "/auth/token",
    "/auth/introspect",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
    "/openapi.json",
    "/oauth2/token",
    "/oauth2/introspect",
    "/oauth2/revoke",
    "/webhooks/test/link/{id}",
    "/healthz/live",
    "/healthz/ready",
    "other",
];

/// Routes where a client authenticates with its secret.
const CLIENT_AUTH_ROUTES: [&str; 4] = [
    "/auth/token",
    "/oauth2/token",
    "/oauth2/introspect",
    "/oauth2/revoke",
];

/// The statuses counted individually; anything else is counted as `other`.
const STATUSES: [u16; 15] = [
    200, 201, 400, 401, 404, 405, 408, 413, 415, 422, 429, 431, 500, 503, 504,
];

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000, 1_000_000,
];

/// The route label of a request path: routes with a path parameter, or served under
/// more than one path, count under their template.
pub fn route_index(path: &str) -> usize {
    let route = if path.starts_with("/webhooks/test/link/") {
        "/webhooks/test/link/{id}"
    } else if path.starts_with("/.well-known/oauth-authorization-server/") {
        "/.well-known/oauth-authorization-server"
    } else {
        path
    };
    ROUTES
        .iter()
        .position(|r| *r == route)
        .unwrap_or(ROUTES.len() - 1)
}

fn zeros<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// What the server counts.
#[derive(Debug)]
pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len() + 1]; ROUTES.len()],
    latency: [[AtomicU64; BUCKETS_US.len() + 1]; ROUTES.len()],
    latency_sum_us: [AtomicU64; ROUTES.len()],
    /// Access tokens issued since start.
    pub tokens_issued: AtomicU64,
    /// Access tokens revoked through this server since start.
    pub tokens_revoked: AtomicU64,
    /// Webhook attempts answered with a 2xx.
    pub webhooks_delivered: AtomicU64,
    /// Webhook attempts that failed and were scheduled again.
    pub webhooks_retried: AtomicU64,
    /// Webhook events given up on.
    pub webhooks_failed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: std::array::from_fn(|_| zeros()),
            latency: std::array::from_fn(|_| zeros()),
            latency_sum_us: zeros(),
            tokens_issued: AtomicU64::new(0),
            tokens_revoked: AtomicU64::new(0),
            webhooks_delivered: AtomicU64::new(0),
            webhooks_retried: AtomicU64::new(0),
            webhooks_failed: AtomicU64::new(0),
        }
    }
}

/// A signing key as `/metrics` reports it.
#[derive(Debug, Clone)]
pub struct KeyAge {
    /// Its `kid`.
    pub kid: String,
    /// Next, active or retired.
    pub state: crate::keys::KeyStatus,
    /// Seconds since it started signing (negative while it waits to).
    pub age_secs: i64,
}

impl Metrics {
    /// Access tokens issued since start.
    pub fn tokens_issued(&self) -> u64 {
        self.tokens_issued.load(Ordering::Relaxed)
    }

    /// Counts one request to `route` answered with `status` after `elapsed`.
    pub fn record(&self, route: usize, status: u16, elapsed: Duration) {
        let route = route.min(ROUTES.len() - 1);
        let s = STATUSES
            .iter()
            .position(|c| *c == status)
            .unwrap_or(STATUSES.len());
        self.requests[route][s].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let b = BUCKETS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(BUCKETS_US.len());
        self.latency[route][b].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us[route].fetch_add(us, Ordering::Relaxed);
    }

    fn requests_with(&self, routes: &[&str], status: u16) -> u64 {
        let s = STATUSES
            .iter()
            .position(|c| *c == status)
            .unwrap_or(STATUSES.len());
        ROUTES
            .iter()
            .enumerate()
            .filter(|(_, r)| routes.is_empty() || routes.contains(r))
            .map(|(i, _)| self.requests[i][s].load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, keys: &[KeyAge], ready: bool) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP moneykit_auth_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE moneykit_auth_requests_total counter\n");
        for (r, route) in ROUTES.iter().enumerate() {
            for (s, count) in self.requests[r].iter().enumerate() {
                let n = load(count);
                if n == 0 {
                    continue;
                }
                let status = STATUSES.get(s).map_or("other".to_owned(), u16::to_string);
                let _ = writeln!(
                    out,
                    "moneykit_auth_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP moneykit_auth_request_duration_seconds Time from request head to response.\n",
        );
        out.push_str("# TYPE moneykit_auth_request_duration_seconds histogram\n");
        for (r, route) in ROUTES.iter().enumerate() {
            let total: u64 = self.latency[r].iter().map(load).sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (b, count) in self.latency[r].iter().enumerate() {
                cumulative += load(count);
                let le = BUCKETS_US
                    .get(b)
                    .map_or("+Inf".to_owned(), |us| format!("{}", *us as f64 / 1e6));
                let _ = writeln!(
                    out,
                    "moneykit_auth_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "moneykit_auth_request_duration_seconds_sum{{route=\"{route}\"}} {}\nmoneykit_auth_request_duration_seconds_count{{route=\"{route}\"}} {total}",
                load(&self.latency_sum_us[r]) as f64 / 1e6
            );
        }
        let counters = [
            (
                "tokens_issued_total",
                "Access tokens issued.",
                load(&self.tokens_issued),
            ),
            (
                "tokens_revoked_total",
                "Access tokens revoked through this server.",
                load(&self.tokens_revoked),
            ),
            (
                "client_auth_failures_total",
                "Failed client authentications (401 where a client presents its secret).",
                self.requests_with(&CLIENT_AUTH_ROUTES, 401),
            ),
            (
                "rate_limited_total",
                "Requests refused with 429.",
                self.requests_with(&[], 429),
            ),
            (
                "webhook_deliveries_total",
                "Webhook attempts answered with a 2xx.",
                load(&self.webhooks_delivered),
            ),
            (
                "webhook_retries_total",
                "Webhook attempts that failed and were scheduled again.",
                load(&self.webhooks_retried),
            ),
            (
                "webhook_failures_total",
                "Webhook events given up on after their retry window.",
                load(&self.webhooks_failed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP moneykit_auth_{name} {help}\n# TYPE moneykit_auth_{name} counter\nmoneykit_auth_{name} {value}"
            );
        }
        out.push_str("# HELP moneykit_auth_signing_key_age_seconds Seconds since each published key started signing (negative: not yet).\n");
        out.push_str("# TYPE moneykit_auth_signing_key_age_seconds gauge\n");
        for key in keys {
            let _ = writeln!(
                out,
                "moneykit_auth_signing_key_age_seconds{{kid=\"{}\",state=\"{}\"}} {}",
                key.kid, key.state, key.age_secs
            );
        }
        let _ = writeln!(
            out,
            "# HELP moneykit_auth_ready Whether the last refresh reached the database.\n# TYPE moneykit_auth_ready gauge\nmoneykit_auth_ready {}",
            u8::from(ready)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_bounded_labels() {
        let m = Metrics::default();
        m.record(route_index("/auth/token"), 201, Duration::from_micros(40));
        m.record(route_index("/auth/token"), 401, Duration::from_micros(900));
        m.record(
            route_index("/webhooks/test/link/abc"),
            200,
            Duration::from_millis(3),
        );
        m.record(
            route_index("/random/../path"),
            404,
            Duration::from_micros(5),
        );
        m.record(route_index("/oauth2/token"), 429, Duration::from_micros(5));
        let text = m.render(
            &[KeyAge {
                kid: "key_1".into(),
                state: crate::keys::KeyStatus::Active,
                age_secs: 60,
            }],
            true,
        );
        assert!(
            text.contains(r#"moneykit_auth_requests_total{route="/auth/token",status="201"} 1"#)
        );
        assert!(text.contains(r#"route="/webhooks/test/link/{id}",status="200"} 1"#));
        assert!(text.contains(r#"route="other",status="404"} 1"#));
        assert!(text.contains(
            r#"moneykit_auth_request_duration_seconds_bucket{route="/auth/token",le="0.0001"} 1"#
        ));
        assert!(text.contains(
            r#"moneykit_auth_request_duration_seconds_bucket{route="/auth/token",le="+Inf"} 2"#
        ));
        assert!(text.contains("moneykit_auth_client_auth_failures_total 1"));
        assert!(text.contains("moneykit_auth_rate_limited_total 1"));
        assert!(
            text.contains(
                r#"moneykit_auth_signing_key_age_seconds{kid="key_1",state="active"} 60"#
            )
        );
        assert!(text.contains("moneykit_auth_ready 1"));
    }
}
