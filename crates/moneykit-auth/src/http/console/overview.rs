//! The overview: token traffic and failed client authentications over the last hour
//! (from this process's own counters, sampled every second: no Prometheus needed), the
//! signing keys in use and next, the webhook backlog, and this replica's health.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use askama::Template;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use time::OffsetDateTime;

use super::chart::{Chart, line_chart};
use super::keys::{KeyRow, timeline};
use super::{Frame, Page, Signed, html, unavailable};
use crate::domain::signing_keys::KeySchedule;
use crate::domain::time::rfc3339;
use crate::http::state::AdminState;

/// The charts' window and bucket: an hour, in ten-second steps.
const WINDOW_SECS: u32 = 3600;
const BUCKET_SECS: u32 = 10;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    frame: Frame,
    tokens: Chart,
    failures: Chart,
    tokens_total: u64,
    failures_total: u64,
    bucket_secs: u32,
    tokens_points: String,
    failures_points: String,
    active: Option<KeyRow>,
    next: Option<KeyRow>,
    ready: bool,
    last_refresh: String,
    refresh_failures: u64,
    outbox_pending: Option<u64>,
    webhooks_delivered: u64,
    webhooks_failed: u64,
    secrets_expiring: u64,
    now: String,
}

pub(super) async fn page(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
) -> Page {
    let now = OffsetDateTime::now_utc();
    let series = state
        .history
        .series(now.unix_timestamp(), WINDOW_SECS, BUCKET_SECS);
    let (_, operator) = state.operator_state(now).await;
    let keys = state.store.list_keys().await.map_err(unavailable)?;
    let schedule = KeySchedule::new(&keys);
    let rows = timeline(&schedule, now);
    let find = |kid: Option<&str>| rows.iter().find(|r| Some(r.kid.as_str()) == kid).cloned();
    let active = find(schedule.signer_at(now).map(|k| k.record.kid.as_str()));
    let next = find(schedule.pending_at(now).map(|k| k.record.kid.as_str()));
    let last_refresh = time::OffsetDateTime::from_unix_timestamp(operator.last_refresh_unix as i64)
        .map(rfc3339)
        .unwrap_or_default();
    let metrics = &state.metrics;
    let page = Overview {
        frame: Frame::new(&state, &signed, "overview", None),
        tokens: line_chart(
            "Tokens issued per second",
            "tokens/s",
            &series.tokens,
            BUCKET_SECS,
        ),
        failures: line_chart(
            "Failed client authentications per second",
            "failures/s",
            &series.failures,
            BUCKET_SECS,
        ),
        tokens_points: points_text(&series.tokens),
        failures_points: points_text(&series.failures),
        bucket_secs: BUCKET_SECS,
        tokens_total: series.tokens_total,
        failures_total: series.failures_total,
        active,
        next,
        ready: operator.ready,
        last_refresh,
        refresh_failures: operator.refresh_failures,
        outbox_pending: operator.outbox_pending,
        webhooks_delivered: metrics.webhooks_delivered.load(Ordering::Relaxed),
        webhooks_failed: metrics.webhooks_failed.load(Ordering::Relaxed),
        secrets_expiring: operator.secrets_expiring,
        now: rfc3339(now.replace_nanosecond(0).unwrap_or(now)),
    };
    html(StatusCode::OK, &page)
}

/// A chart's numbers as the page's `data-points` attribute: what a test (or a script)
/// reads instead of pixels.
fn points_text(points: &[f64]) -> String {
    let texts: Vec<String> = points.iter().map(|p| format!("{p:.2}")).collect();
    texts.join(" ")
}
