//! Signing keys: the timeline (next, active, retired, revoked), rotating (with the
//! activation delay or at once) and revoking.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{Frame, Page, Signed, done, html, split, unavailable};
use crate::domain::signing_keys::KeySchedule;
use crate::domain::time::rfc3339;
use crate::http::admin_access::Area;
use crate::http::state::AdminState;
use crate::operations::{self, AdminError, Rotation};

/// A key as a row of the timeline.
#[derive(Clone)]
pub(super) struct KeyRow {
    pub kid: String,
    pub status: String,
    pub created: String,
    pub activates: String,
    pub retires: Option<String>,
    pub unpublished: Option<String>,
    pub revoked: Option<String>,
}

/// The timeline at `now`, the next key first.
pub(super) fn timeline(schedule: &KeySchedule<'_>, now: OffsetDateTime) -> Vec<KeyRow> {
    let mut rows: Vec<KeyRow> = schedule
        .all_keys()
        .map(|k| KeyRow {
            kid: k.record.kid.clone(),
            status: k.status(now).to_string(),
            created: rfc3339(k.record.created_at),
            activates: rfc3339(k.record.activates_at),
            retires: k.retires_at.map(rfc3339),
            unpublished: k.unpublished_at().map(rfc3339),
            revoked: k.record.revoked_at.map(rfc3339),
        })
        .collect();
    rows.reverse();
    rows
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    frame: Frame,
    rows: Vec<KeyRow>,
    delay: String,
    may_change: bool,
}

pub(super) async fn page(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
) -> Page {
    keys_page(&state, &signed, None).await
}

async fn keys_page(state: &AdminState, signed: &Signed, error: Option<AdminError>) -> Page {
    let keys = state.store.list_keys().await.map_err(unavailable)?;
    let rows = timeline(&KeySchedule::new(&keys), OffsetDateTime::now_utc());
    let (status, error) = split(error);
    let delay = humantime::format_duration(state.key_activation_delay.unsigned_abs()).to_string();
    let page = KeysPage {
        frame: Frame::new(state, signed, "keys", error),
        rows,
        delay,
        may_change: signed.may(Area::Keys, true),
    };
    html(status, &page)
}

#[derive(Deserialize)]
pub(super) struct RotateForm {
    now: Option<String>,
}

pub(super) async fn rotate(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Form(form): Form<RotateForm>,
) -> Page {
    let rotated = operations::rotate_key_by(
        state.store.as_ref(),
        &state.master,
        state.key_activation_delay,
        form.now.is_some(),
        &signed.actor,
    )
    .await;
    let notice = |rotation: Rotation| match rotation {
        Rotation::Published(k) => {
            format!(
                "Key {} published; it signs from {}.",
                k.kid,
                rfc3339(k.activates_at)
            )
        }
        Rotation::AlreadyPending(k) => format!(
            "Key {} is already waiting to sign from {}; nothing changed.",
            k.kid,
            rfc3339(k.activates_at)
        ),
        Rotation::ActivatedPending(k) => format!("Key {} signs from now.", k.kid),
    };
    match rotated {
        Ok(rotation) => done(&state, &signed, "/console/keys", notice(rotation)),
        Err(error) => keys_page(&state, &signed, Some(error)).await,
    }
}

pub(super) async fn revoke(
    State(state): State<Arc<AdminState>>,
    Extension(signed): Extension<Signed>,
    Path(kid): Path<String>,
) -> Page {
    let revoked = operations::revoke_key(
        state.store.as_ref(),
        &state.master,
        &kid,
        state.webhook_retry_window,
        &signed.actor,
    )
    .await;
    match revoked {
        Ok(done_) => {
            state.webhook_waker.notify_one();
            let notice = match &done_.replacement {
                Some(k) => format!("Key {kid} revoked; {} signs from now.", k.kid),
                None => format!("Key {kid} revoked."),
            };
            done(&state, &signed, "/console/keys", notice)
        }
        Err(error) => keys_page(&state, &signed, Some(error)).await,
    }
}
