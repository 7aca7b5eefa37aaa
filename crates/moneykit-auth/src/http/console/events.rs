//! Webhook events: status, attempts, the last response or error, and retrying.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use serde::Deserialize;

use super::{Frame, Page, Signed, done, given, html, split, unavailable};
use crate::domain::events::{EventStatus, WebhookEvent};
use crate::http::admin_access::Area;
use crate::http::state::AdminState;
use crate::operations::views::time_ms;
use crate::operations::{self, AdminError};

/// Events shown at most.
const LIMIT: u32 = 200;

/// An event as a row: never its body or delivery token.
pub(super) struct EventRow {
    pub id: String,
    pub app_id: String,
    pub event: String,
    pub status: &'static str,
    pub attempts: u32,
    pub last_status: String,
    pub last_error: String,
    pub created: String,
    pub finished: String,
    pub next_attempt: String,
}

impl EventRow {
    pub(super) fn of(e: &WebhookEvent) -> Self {
        Self {
            id: e.id.clone(),
            app_id: e.app_id.clone(),
            event: e.event.clone(),
            status: e.status.as_str(),
            attempts: e.attempts,
            last_status: e.last_status.map(|s| s.to_string()).unwrap_or_default(),
            last_error: e.last_error.clone().unwrap_or_default(),
            created: time_ms(e.created_ms),
            finished: e.finished_ms.map(time_ms).unwrap_or_default(),
            next_attempt: match e.status {
                EventStatus::Pending => time_ms(e.next_attempt_ms),
                _ => String::new(),
            },
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct Filter {
    app: Option<String>,
    status: Option<String>,
}

#[derive(Template)]
#[template(path = "console/events.html")]
struct EventsPage {
    frame: Frame,
    events: Vec<EventRow>,
    app: String,
    status: String,
    may_retry: bool,
}

pub(super) async fn page(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Query(filter): Query<Filter>,
) -> Page {
    events_page(&state, &signed, filter, None).await
}

async fn events_page(
    state: &AdminState,
    signed: &Signed,
    filter: Filter,
    error: Option<AdminError>,
) -> Page {
    let (status_filter, error) = match given(&filter.status).map(EventStatus::parse) {
        Some(None) => (
            None,
            error.or(Some(AdminError::Invalid(
                "status is pending, delivered or failed".into(),
            ))),
        ),
        Some(Some(status)) => (Some(status), error),
        None => (None, error),
    };
    let events = state
        .store
        .list_webhook_events(given(&filter.app), status_filter, LIMIT)
        .await
        .map_err(unavailable)?;
    let (status, error) = split(error);
    let page = EventsPage {
        frame: Frame::new(state, signed, "webhooks", error),
        events: events.iter().map(EventRow::of).collect(),
        app: filter.app.unwrap_or_default(),
        status: filter.status.unwrap_or_default(),
        may_retry: signed.may(Area::Webhooks, true),
    };
    html(status, &page)
}

pub(super) async fn retry(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Page {
    let store = state.store.as_ref();
    let retried =
        operations::retry_webhook_event(store, &id, state.webhook_retry_window, &signed.actor)
            .await;
    match retried {
        Ok(event) => {
            state.webhook_waker.notify_one();
            let notice = format!("Event {} queued again.", event.id);
            done(&state, &signed, "/console/webhooks", notice)
        }
        Err(error) => events_page(&state, &signed, Filter::default(), Some(error)).await,
    }
}
