//! `POST /webhooks/test/link/{id}`: MoneyKit's test trigger. An app's own access token
//! asks for a test event of link `{id}`; the event is queued in the outbox and delivered,
//! signed, to the app's webhook URL like any other.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use moneykit_wire::{ErrorBody, WebhookTestLinkRequest, WebhookTestLinkResponse};
use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::{MoneyKitVersion, MoneyKitVersionHeader, PresentedToken, Source};
use super::hygiene::request_id;
use super::state::AppState;
use crate::domain::ids::new_token_id;
use crate::domain::payloads;
use crate::operations::{self, AdminError};

/// Longest link id or idempotency key accepted.
const MAX_ID_LEN: usize = 200;

/// Checks a link id or idempotency key: 1-[`MAX_ID_LEN`] bytes (they are stored and
/// echoed verbatim, so bytes bound their size), no control characters.
fn check_id(location: &[&str], value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
        return Err(ApiError::validation(
            location,
            format!("must be 1-{MAX_ID_LEN} characters without control characters"),
            "value_error",
        ));
    }
    Ok(())
}

/// `POST /webhooks/test/link/{id}`: queue a test webhook for link `id`.
#[utoipa::path(
    post, path = "/webhooks/test/link/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "The link the test event is about."), MoneyKitVersionHeader),
    request_body(content = WebhookTestLinkRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The event was queued; it is delivered to the app's webhook URL, signed.", body = WebhookTestLinkResponse),
        (status = 400, description = "Unsupported `MoneyKit-Version`, or the app has no webhook URL (`api_error.webhooks.not_configured`).", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired access token, or a sender-constrained token presented without its DPoP proof or client certificate (`WWW-Authenticate: DPoP`, as for `/auth/introspect`).", body = ErrorBody),
        (status = 422, description = "Malformed body or link id.", body = ErrorBody),
        (status = 429, description = "`api_error.rate_limit_exceeded`: too many test events from this client or its app; `api_error.webhooks.too_many_pending`: the app has too many events waiting for delivery. `Retry-After` says when to try again.", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "The outbox cannot be written now.", body = ErrorBody),
    ),
    security(("OAuth2ClientCredentials" = [])),
)]
#[tracing::instrument(name = "webhooks.test_link", level = "debug", skip_all)]
pub async fn test_link_event(
    State(state): State<AppState>,
    _version: MoneyKitVersion,
    Path(link_id): Path<String>,
    Source(source): Source,
    presented: PresentedToken,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let endpoint = format!("/webhooks/test/link/{link_id}");
    let (app_id, client_id) = state
        .authorize_presented(&presented, "POST", &endpoint, source, |authorized| {
            (
                authorized.claims.app_id.clone(),
                authorized.claims.client_id.clone(),
            )
        })
        .await?;
    // Every call writes to the database: budgeted per client and per app before anything
    // else is looked at.
    state
        .limits
        .take_webhook_test(&app_id, &client_id)
        .map_err(ApiError::RateLimited)?;
    check_id(&["path", "id"], &link_id)?;
    let request: WebhookTestLinkRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::validation(
            &["body"],
            format!("not a valid request: {e}"),
            "value_error.jsondecode",
        )
    })?;
    let key = match request.webhook_idempotency_key {
        Some(key) => {
            check_id(&["body", "webhook_idempotency_key"], &key)?;
            key
        }
        None => new_token_id(),
    };
    let event_name = request.webhook_event.as_str();
    let body = payloads::test_payload(
        request.webhook_event,
        &link_id,
        &key,
        OffsetDateTime::now_utc(),
    );
    let event = operations::queue_capped_webhook_event(
        state.store.as_ref(),
        &app_id,
        event_name,
        body,
        state.webhook_retry_window,
        state.webhook_max_pending,
    )
    .await
    .map_err(|e| match e {
        // Unlike the admin API, the caller named no app: its token's app gone missing is
        // the server's problem (503), not a 404, and is logged with the request id.
        error @ (AdminError::UnknownApp(_) | AdminError::Store(_)) => {
            tracing::error!(%error, request_id = %request_id(&headers), "cannot queue a test webhook");
            ApiError::Unavailable("the event could not be queued")
        }
        other => ApiError::from(other),
    })?;
    state.webhook_waker.notify_one();
    tracing::info!(
        request_id = %request_id(&headers),
        app_id = %event.app_id,
        event_id = %event.id,
        event = event_name,
        "test webhook queued"
    );
    Ok(Json(WebhookTestLinkResponse {
        webhook_idempotency_key: key,
        event_id: event.id,
        delivery_token: event.delivery_token,
    })
    .into_response())
}
