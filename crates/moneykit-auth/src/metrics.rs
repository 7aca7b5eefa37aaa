//! Counters and histograms for Prometheus (`GET /metrics` on the admin listener).
//!
//! Everything is a fixed array of relaxed atomics indexed by route and status, so
//! recording a request costs a few nanoseconds and no allocation, and the label sets are
//! bounded whatever paths clients send (unknown paths count as `other`).
//!
//! [`history`] keeps the last hour of two of these counters per second, for the admin
//! console's charts.

pub mod history;
mod process;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use history::{History, Sample, Series};
pub use process::ProcessStats;

/// The git commit this binary was built from (`build.rs`), `unknown` outside a checkout.
pub const GIT_COMMIT: &str = env!("MONEYKIT_AUTH_GIT_COMMIT");

/// What an operator watches besides requests, gathered at scrape time.
#[derive(Debug, Clone, Default)]
pub struct OperatorState {
    /// Whether `/healthz/ready` answers 200.
    pub ready: bool,
    /// When the last successful refresh from the database ended (Unix seconds).
    pub last_refresh_unix: f64,
    /// Failed refreshes since start.
    pub refresh_failures: u64,
    /// The database connection pool.
    pub pool: PoolGauges,
    /// Webhook events waiting for delivery; `None` when the database did not say.
    pub outbox_pending: Option<u64>,
    /// Clients whose last live secret expires within the warning window.
    pub secrets_expiring: u64,
    /// This process, where the platform tells.
    pub process: Option<ProcessStats>,
    /// Now (Unix seconds), for the refresh lag.
    pub now_unix: f64,
}

/// The connection pool, as the store reports it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    /// Connections open.
    pub size: u32,
    /// Connections open and idle.
    pub idle: u32,
    /// Most connections the pool opens.
    pub max: u32,
    /// Operations waiting for a connection.
    pub waiting: u64,
    /// Connections handed out since start.
    pub acquired: u64,
    /// Seconds spent waiting for them, in all.
    pub acquire_seconds: f64,
}

/// The statuses counted individually; anything else is counted as `other`.
const STATUSES: [u16; 15] = [
    200, 201, 400, 401, 404, 405, 408, 413, 415, 422, 429, 431, 500, 503, 504,
];

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000, 1_000_000,
];

fn zeros<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// A route as requests are counted: the router's path template, the label it is counted
/// under, and whether clients authenticate there (for `client_auth_failures_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLabel {
    /// The path template the router matched (`/webhooks/test/link/{id}`).
    pub template: String,
    /// The `route` label (the template itself, or the documented route it aliases).
    pub label: String,
    /// Whether a client authenticates here, so a 401 is a failed client authentication.
    pub client_auth: bool,
}

/// The label of requests no route matched.
const OTHER: &str = "other";

/// What the server counts. Route labels come from the route table ([`RouteLabel`]), so the
/// label sets are bounded whatever paths clients send (unmatched paths count as `other`).
#[derive(Debug)]
pub struct Metrics {
    /// Router template → index into `labels`.
    templates: Vec<(String, usize)>,
    /// Distinct labels, `other` last.
    labels: Vec<String>,
    /// Per label: whether a 401 there is a failed client authentication.
    client_auth: Vec<bool>,
    requests: Box<[[AtomicU64; STATUSES.len() + 1]]>,
    latency: Box<[[AtomicU64; BUCKETS_US.len() + 1]]>,
    latency_sum_us: Box<[AtomicU64]>,
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
    /// Metrics with no routes: every request counts as `other`.
    fn default() -> Self {
        Self::new([])
    }
}

impl Metrics {
    /// Counters for requests to `routes` (and `other`).
    pub fn new(routes: impl IntoIterator<Item = RouteLabel>) -> Self {
        let mut labels: Vec<String> = Vec::new();
        let mut client_auth = Vec::new();
        let mut templates = Vec::new();
        for route in routes {
            let index = match labels.iter().position(|l| *l == route.label) {
                Some(i) => i,
                None => {
                    labels.push(route.label);
                    client_auth.push(route.client_auth);
                    labels.len() - 1
                }
            };
            client_auth[index] |= route.client_auth;
            templates.push((route.template, index));
        }
        labels.push(OTHER.to_owned());
        client_auth.push(false);
        let n = labels.len();
        Self {
            templates,
            labels,
            client_auth,
            requests: (0..n).map(|_| zeros()).collect(),
            latency: (0..n).map(|_| zeros()).collect(),
            latency_sum_us: (0..n).map(|_| AtomicU64::new(0)).collect(),
            tokens_issued: AtomicU64::new(0),
            tokens_revoked: AtomicU64::new(0),
            webhooks_delivered: AtomicU64::new(0),
            webhooks_retried: AtomicU64::new(0),
            webhooks_failed: AtomicU64::new(0),
        }
    }

    /// The index requests matched to router template `template` count under (`None`, or
    /// a template no route has: `other`).
    pub fn route_index(&self, template: Option<&str>) -> usize {
        template
            .and_then(|t| self.templates.iter().find(|(known, _)| known == t))
            .map_or(self.labels.len() - 1, |(_, index)| *index)
    }
}

/// A signing key as `/metrics` reports it.
#[derive(Debug, Clone)]
pub struct KeyAge {
    /// Its `kid`.
    pub kid: String,
    /// Next, active or retired.
    pub state: crate::domain::signing_keys::KeyStatus,
    /// Seconds since it started signing (negative while it waits to).
    pub age_secs: i64,
}

impl Metrics {
    /// Access tokens issued since start.
    pub fn tokens_issued(&self) -> u64 {
        self.tokens_issued.load(Ordering::Relaxed)
    }

    /// Failed client authentications since start: 401s on routes where clients
    /// authenticate. The one definition `client_auth_failures_total` and the console's
    /// chart both use.
    pub fn client_auth_failures(&self) -> u64 {
        self.requests_with(true, 401)
    }

    /// Counts one request to `route` answered with `status` after `elapsed`.
    pub fn record(&self, route: usize, status: u16, elapsed: Duration) {
        let route = route.min(self.labels.len() - 1);
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

    /// Requests answered with `status`, on every route (`client_auth_only`: on routes where
    /// clients authenticate).
    fn requests_with(&self, client_auth_only: bool, status: u16) -> u64 {
        let s = STATUSES
            .iter()
            .position(|c| *c == status)
            .unwrap_or(STATUSES.len());
        self.client_auth
            .iter()
            .enumerate()
            .filter(|(_, auth)| !client_auth_only || **auth)
            .map(|(i, _)| self.requests[i][s].load(Ordering::Relaxed))
            .sum()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, keys: &[KeyAge], state: &OperatorState) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP moneykit_auth_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE moneykit_auth_requests_total counter\n");
        for (r, route) in self.labels.iter().enumerate() {
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
        for (r, route) in self.labels.iter().enumerate() {
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
                self.client_auth_failures(),
            ),
            (
                "rate_limited_total",
                "Requests refused with 429.",
                self.requests_with(false, 429),
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
            let name = format!("moneykit_auth_{name}");
            write_family(&mut out, &name, "counter", help, &[("", value.to_string())]);
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
        render_operator_state(&mut out, state);
        out
    }
}

/// Appends one metric family: its HELP and TYPE lines, then one sample per (labels,
/// value); `labels` is `{…}`, empty, or a suffix such as a summary's `_sum`.
fn write_family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// Build, readiness, refresh, pool, outbox and process families.
fn render_operator_state(out: &mut String, state: &OperatorState) {
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
        write_family(out, name, kind, help, samples);
    };
    let build = format!(
        "{{version=\"{}\",commit=\"{GIT_COMMIT}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    family(
        "moneykit_auth_build_info",
        "gauge",
        "The running build: always 1, with its version and git commit as labels.",
        &[(&build, "1".into())],
    );
    family(
        "moneykit_auth_ready",
        "gauge",
        "Whether /healthz/ready answers 200: state loaded, database answering, not shutting down.",
        &[("", u8::from(state.ready).to_string())],
    );
    family(
        "moneykit_auth_refresh_last_success_timestamp_seconds",
        "gauge",
        "When the last refresh from the database succeeded (Unix seconds).",
        &[("", state.last_refresh_unix.to_string())],
    );
    family(
        "moneykit_auth_refresh_lag_seconds",
        "gauge",
        "Seconds since the last successful refresh: how stale this replica's view may be.",
        &[(
            "",
            (state.now_unix - state.last_refresh_unix)
                .max(0.0)
                .to_string(),
        )],
    );
    family(
        "moneykit_auth_refresh_failures_total",
        "counter",
        "Refreshes that failed (database unreachable or erroring).",
        &[("", state.refresh_failures.to_string())],
    );
    let pool = state.pool;
    family(
        "moneykit_auth_db_pool_connections",
        "gauge",
        "Open database connections, idle or in use.",
        &[
            ("{state=\"idle\"}", pool.idle.to_string()),
            (
                "{state=\"in_use\"}",
                pool.size.saturating_sub(pool.idle).to_string(),
            ),
        ],
    );
    family(
        "moneykit_auth_db_pool_max_connections",
        "gauge",
        "Most database connections this process opens.",
        &[("", pool.max.to_string())],
    );
    family(
        "moneykit_auth_db_pool_waiters",
        "gauge",
        "Database operations waiting for a connection now.",
        &[("", pool.waiting.to_string())],
    );
    family(
        "moneykit_auth_db_pool_acquire_seconds",
        "summary",
        "Time database operations waited for a pooled connection.",
        &[
            ("_sum", pool.acquire_seconds.to_string()),
            ("_count", pool.acquired.to_string()),
        ],
    );
    if let Some(pending) = state.outbox_pending {
        family(
            "moneykit_auth_webhook_outbox_events",
            "gauge",
            "Webhook events in the outbox by status (pending: waiting for delivery).",
            &[("{status=\"pending\"}", pending.to_string())],
        );
    }
    family(
        "moneykit_auth_client_secrets_expiring",
        "gauge",
        "Clients whose last live secret expires within --secret-expiry-warning.",
        &[("", state.secrets_expiring.to_string())],
    );
    if let Some(process) = &state.process {
        process.render(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_bounded_labels() {
        let route = |template: &str, client_auth| RouteLabel {
            template: template.into(),
            label: template.into(),
            client_auth,
        };
        let m = Metrics::new([
            route("/auth/token", true),
            route("/oauth2/token", true),
            route("/webhooks/test/link/{id}", false),
        ]);
        let route_index = |template| m.route_index(template);
        m.record(
            route_index(Some("/auth/token")),
            201,
            Duration::from_micros(40),
        );
        m.record(
            route_index(Some("/auth/token")),
            401,
            Duration::from_micros(900),
        );
        m.record(
            route_index(Some("/webhooks/test/link/{id}")),
            200,
            Duration::from_millis(3),
        );
        m.record(route_index(None), 404, Duration::from_micros(5));
        m.record(
            route_index(Some("/oauth2/token")),
            429,
            Duration::from_micros(5),
        );
        let text = m.render(
            &[KeyAge {
                kid: "key_1".into(),
                state: crate::domain::signing_keys::KeyStatus::Active,
                age_secs: 60,
            }],
            &OperatorState {
                ready: true,
                last_refresh_unix: 1_000.0,
                now_unix: 1_002.5,
                pool: PoolGauges {
                    size: 3,
                    idle: 2,
                    max: 5,
                    waiting: 1,
                    acquired: 10,
                    acquire_seconds: 0.5,
                },
                outbox_pending: Some(7),
                secrets_expiring: 2,
                ..OperatorState::default()
            },
        );
        for line in [
            "moneykit_auth_ready 1",
            "moneykit_auth_refresh_lag_seconds 2.5",
            r#"moneykit_auth_db_pool_connections{state="in_use"} 1"#,
            "moneykit_auth_db_pool_waiters 1",
            "moneykit_auth_db_pool_acquire_seconds_count 10",
            r#"moneykit_auth_webhook_outbox_events{status="pending"} 7"#,
            "moneykit_auth_client_secrets_expiring 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(text.contains(&format!(
            "moneykit_auth_build_info{{version=\"{}\",commit=\"{GIT_COMMIT}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
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
