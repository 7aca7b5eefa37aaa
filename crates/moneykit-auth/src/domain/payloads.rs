//! Event bodies. Every webhook carries MoneyKit's common keys — `webhook_event`,
//! `webhook_major_version`, `webhook_minor_version`, `webhook_idempotency_key` (opaque,
//! the same on every retry) and `webhook_timestamp` (when the payload was generated, not
//! regenerated for retries) — plus the event's own fields. The body is serialized once, at
//! creation, and stored: every attempt sends and signs the same bytes.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use moneykit_wire::WebhookLinkTestEvent;

use super::events::{EventStatus, WebhookEvent};
use crate::domain::ids::{new_event_id, new_token_id};
use crate::domain::time::rfc3339;

/// The payload schema version this server sends.
pub const MAJOR_VERSION: u32 = 1;
/// See [`MAJOR_VERSION`].
pub const MINOR_VERSION: u32 = 0;

/// Longest event name accepted for operator events.
const MAX_EVENT_NAME: usize = 100;

/// Why an event cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// An operator event name that is empty, too long, or not `a.b_c`-like.
    #[error("event names are 1-100 characters of a-z, 0-9, '.', '_' and '-'")]
    BadEventName,
    /// Operator data that is not a JSON object.
    #[error("event data must be a JSON object")]
    DataNotAnObject,
    /// Operator data that sets one of the common keys.
    #[error("event data must not set {0}; it is set by the server")]
    ReservedKey(String),
}

fn common(event: &str, idempotency_key: &str, now: OffsetDateTime) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("webhook_event".into(), json!(event));
    body.insert("webhook_major_version".into(), json!(MAJOR_VERSION));
    body.insert("webhook_minor_version".into(), json!(MINOR_VERSION));
    body.insert("webhook_idempotency_key".into(), json!(idempotency_key));
    body.insert("webhook_timestamp".into(), json!(rfc3339(now)));
    body
}

/// The test payload of `event` for link `link_id`, shaped like MoneyKit's own.
pub fn test_payload(
    event: WebhookLinkTestEvent,
    link_id: &str,
    idempotency_key: &str,
    now: OffsetDateTime,
) -> Vec<u8> {
    let mut body = common(event.as_str(), idempotency_key, now);
    body.insert("link_id".into(), json!(link_id));
    body.insert("link_tags".into(), json!([]));
    let specific = match event {
        WebhookLinkTestEvent::LinkStateChanged => {
            json!({ "state": "connected", "error": null, "error_message": null })
        }
        WebhookLinkTestEvent::TransactionsUpdatesAvailable => json!({ "has_history": true }),
        WebhookLinkTestEvent::ProductStateChanged | WebhookLinkTestEvent::LinkProductRefresh => {
            json!({
                "product": "transactions",
                "state": "ready",
                "state_changed_at": rfc3339(now),
                "error_message": null,
            })
        }
    };
    if let Value::Object(fields) = specific {
        body.extend(fields);
    }
    serde_json::to_vec(&body).expect("serializable")
}

/// An operator's own event (`webhooks send`): the common keys plus `data`'s members.
pub fn operator_payload(
    event: &str,
    data: &Value,
    now: OffsetDateTime,
) -> Result<Vec<u8>, PayloadError> {
    let name_ok = !event.is_empty()
        && event.len() <= MAX_EVENT_NAME
        && event
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !name_ok {
        return Err(PayloadError::BadEventName);
    }
    let Value::Object(fields) = data else {
        return Err(PayloadError::DataNotAnObject);
    };
    // Operator events get a fresh opaque idempotency key (128 random bits).
    let mut body = common(event, &new_token_id(), now);
    if let Some(reserved) = fields.keys().find(|k| body.contains_key(*k)) {
        return Err(PayloadError::ReservedKey(reserved.clone()));
    }
    body.extend(fields.clone());
    Ok(serde_json::to_vec(&body).expect("serializable"))
}

/// A new pending event for `app_id`, due now, retried until `retry_window_ms` from now.
pub fn new_event(
    app_id: &str,
    event: &str,
    body: Vec<u8>,
    now_ms: i64,
    retry_window_ms: i64,
) -> WebhookEvent {
    WebhookEvent {
        id: new_event_id(),
        app_id: app_id.to_owned(),
        event: event.to_owned(),
        body,
        delivery_token: new_token_id(),
        status: EventStatus::Pending,
        attempts: 0,
        next_attempt_ms: now_ms,
        retry_until_ms: now_ms.saturating_add(retry_window_ms),
        last_status: None,
        last_error: None,
        created_ms: now_ms,
        finished_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn test_payloads_carry_the_common_keys_and_the_link() {
        for event in WebhookLinkTestEvent::ALL {
            let body: Value =
                serde_json::from_slice(&test_payload(event, "mk_link", "idem", now())).unwrap();
            assert_eq!(body["webhook_event"], event.as_str());
            assert_eq!(body["webhook_major_version"], 1);
            assert_eq!(body["webhook_minor_version"], 0);
            assert_eq!(body["webhook_idempotency_key"], "idem");
            assert_eq!(body["webhook_timestamp"], "2023-11-14T22:13:20Z");
            assert_eq!(body["link_id"], "mk_link");
        }
    }

    #[test]
    fn operator_events_keep_their_data_but_not_the_common_keys() {
        let body = operator_payload("invoice.paid", &json!({"amount": 5}), now()).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["amount"], 5);
        assert_eq!(body["webhook_event"], "invoice.paid");
        assert_eq!(
            operator_payload("x", &json!({"webhook_timestamp": "then"}), now()),
            Err(PayloadError::ReservedKey("webhook_timestamp".into()))
        );
        assert_eq!(
            operator_payload("x", &json!([1]), now()),
            Err(PayloadError::DataNotAnObject)
        );
        assert_eq!(
            operator_payload("Bad Name", &json!({}), now()),
            Err(PayloadError::BadEventName)
        );
    }
}
