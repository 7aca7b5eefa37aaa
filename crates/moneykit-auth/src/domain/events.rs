//! Webhook events as the outbox keeps them: where each stands, what it carries, and what
//! an attempt ended with. Times are Unix milliseconds ([`super::time`]).

use std::fmt;

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    /// A 2xx was received.
    Delivered,
    /// The retry window closed without a 2xx.
    Failed,
}

impl EventStatus {
    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The status named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event in the outbox. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `evt_…` id.
    pub id: String,
    /// The app whose webhook URL receives it.
    pub app_id: String,
    /// The payload's `webhook_event`.
    pub event: String,
    /// The exact bytes every attempt sends (and signs).
    pub body: Vec<u8>,
    /// `MoneyKit-Delivery-Token`: unique per event, the same on every attempt.
    pub delivery_token: String,
    /// Where it stands.
    pub status: EventStatus,
    /// Attempts started so far; the attempt being made is this number.
    pub attempts: u32,
    /// When a pending event is next due.
    pub next_attempt_ms: i64,
    /// A failed attempt after this fails the event instead of scheduling another.
    pub retry_until_ms: i64,
    /// HTTP status of the last attempt, if it got one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_ms: i64,
    /// When it was delivered or failed.
    pub finished_ms: Option<i64>,
}

/// An event claimed for one attempt, with its app's webhook URL at claim time.
#[derive(Debug, Clone)]
pub struct ClaimedEvent {
    /// The event; `attempts` is the number of this attempt.
    pub event: WebhookEvent,
    /// The app's current webhook URL (`None`: it was cleared since the event was made).
    pub url: Option<String>,
}

/// What an attempt ended with, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// The event's status afterwards.
    pub status: EventStatus,
    /// The HTTP status received, if any.
    pub http_status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When a still-pending event is next due.
    pub next_attempt_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [
            EventStatus::Pending,
            EventStatus::Delivered,
            EventStatus::Failed,
        ] {
            assert_eq!(EventStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(EventStatus::parse("done"), None);
    }
}
