//! Apps: the list, creating one, an app's webhook URL, a test event and its deliveries.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;
use serde_json::json;

use super::events::EventRow;
use super::{Frame, Page, Signed, done, given, html, split, unavailable};
use crate::domain::clients::App;
use crate::http::admin_access::Area;
use crate::http::state::AdminState;
use crate::net::guard::TargetPolicy;
use crate::operations::{self, AdminError};

/// Deliveries shown on an app's page.
const RECENT_EVENTS: u32 = 20;

/// The event name of the console's test event.
pub const TEST_EVENT: &str = "console.test";

#[derive(Template)]
#[template(path = "console/apps.html")]
struct AppsPage {
    frame: Frame,
    apps: Vec<App>,
    may_change: bool,
    name: String,
}

pub(super) async fn list(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
) -> Page {
    list_page(&state, &signed, None, String::new()).await
}

async fn list_page(
    state: &AdminState,
    signed: &Signed,
    error: Option<AdminError>,
    name: String,
) -> Page {
    let apps = state.store.list_apps().await.map_err(unavailable)?;
    let (status, error) = split(error);
    let page = AppsPage {
        frame: Frame::new(state, signed, "apps", error),
        apps,
        may_change: signed.may(Area::Apps, true),
        name,
    };
    html(status, &page)
}

#[derive(Deserialize)]
pub(super) struct NewApp {
    #[serde(default)]
    name: String,
}

pub(super) async fn create(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Form(form): Form<NewApp>,
) -> Page {
    match operations::create_app(state.store.as_ref(), &form.name, &signed.actor).await {
        Ok(app) => {
            let to = format!("/console/apps/{}", app.id);
            done(&state, &signed, &to, format!("App {} created.", app.id))
        }
        Err(error) => list_page(&state, &signed, Some(error), form.name).await,
    }
}

#[derive(Template)]
#[template(path = "console/app.html")]
struct AppPage {
    frame: Frame,
    app: App,
    events: Vec<EventRow>,
    may_change: bool,
    may_retry: bool,
    url: String,
}

pub(super) async fn show(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Page {
    app_page(&state, &signed, &id, None, None).await
}

async fn app_page(
    state: &AdminState,
    signed: &Signed,
    id: &str,
    error: Option<AdminError>,
    url: Option<String>,
) -> Page {
    let store = state.store.as_ref();
    let app = store
        .get_app(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| unavailable(AdminError::UnknownApp(id.to_owned())))?;
    // Deliveries are the webhooks area's: shown to those who may read it.
    let events = match signed.may(Area::Webhooks, false) {
        true => store
            .list_webhook_events(Some(id), None, RECENT_EVENTS)
            .await
            .map_err(unavailable)?
            .iter()
            .map(EventRow::of)
            .collect(),
        false => Vec::new(),
    };
    let (status, error) = split(error);
    let page = AppPage {
        frame: Frame::new(state, signed, "apps", error),
        url: url.or_else(|| app.webhook_url.clone()).unwrap_or_default(),
        app,
        events,
        may_change: signed.may(Area::Apps, true),
        may_retry: signed.may(Area::Webhooks, true),
    };
    html(status, &page)
}

#[derive(Deserialize)]
pub(super) struct WebhookForm {
    url: Option<String>,
}

pub(super) async fn set_webhook(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<WebhookForm>,
) -> Page {
    let Some(url) = given(&form.url) else {
        let error = AdminError::Invalid("give the webhook URL (or clear it)".into());
        return app_page(&state, &signed, &id, Some(error), None).await;
    };
    let store = state.store.as_ref();
    let policy = state.webhook_policy;
    match operations::set_app_webhook(store, &id, Some(url), policy, &signed.actor).await {
        Ok(_) => done(
            &state,
            &signed,
            &format!("/console/apps/{id}"),
            "Webhook URL set.".into(),
        ),
        Err(error) => app_page(&state, &signed, &id, Some(error), form.url).await,
    }
}

pub(super) async fn clear_webhook(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Page {
    let store = state.store.as_ref();
    let policy = TargetPolicy::default();
    match operations::set_app_webhook(store, &id, None, policy, &signed.actor).await {
        Ok(_) => done(
            &state,
            &signed,
            &format!("/console/apps/{id}"),
            "Webhook URL cleared.".into(),
        ),
        Err(error) => app_page(&state, &signed, &id, Some(error), None).await,
    }
}

pub(super) async fn test_event(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Page {
    let data = json!({"message": "a test event sent from the moneykit-auth console"});
    let sent = operations::send_webhook_event(
        state.store.as_ref(),
        &id,
        TEST_EVENT,
        &data,
        state.webhook_retry_window,
        &signed.actor,
    )
    .await;
    match sent {
        Ok(event) => {
            state.webhook_waker.notify_one();
            let notice = format!("Test event {} queued.", event.id);
            done(&state, &signed, &format!("/console/apps/{id}"), notice)
        }
        Err(error) => app_page(&state, &signed, &id, Some(error), None).await,
    }
}
