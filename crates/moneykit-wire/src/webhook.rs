//! Signed webhooks: header names and the claims of the `MoneyKit-Signature` JWT
//!.

use serde::{Deserialize, Serialize};

/// Header carrying the ES256 JWT that signs the body.
pub const SIGNATURE_HEADER: &str = "MoneyKit-Signature";
/// Header carrying a token unique per event, the same across its delivery attempts.
pub const DELIVERY_TOKEN_HEADER: &str = "MoneyKit-Delivery-Token";
/// Header carrying the attempt number, 1, 2, …
pub const DELIVERY_ATTEMPT_HEADER: &str = "MoneyKit-Delivery-Attempt";

/// Claims of the `MoneyKit-Signature` JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookSignatureClaims {
    /// When the delivery was signed (Unix seconds).
    pub iat: i64,
    /// Lowercase hex SHA-256 of the exact body bytes sent.
    pub request_body_sha256: String,
}

/// The test events `POST /webhooks/test/link/{id}` produces, as MoneyKit names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WebhookLinkTestEvent {
    /// `link.state_changed`
    #[serde(rename = "link.state_changed")]
    LinkStateChanged,
    /// `transactions.updates_available`
    #[serde(rename = "transactions.updates_available")]
    TransactionsUpdatesAvailable,
    /// `product.state_changed`
    #[serde(rename = "product.state_changed")]
    ProductStateChanged,
    /// `link.product_refresh`
    #[serde(rename = "link.product_refresh")]
    LinkProductRefresh,
}

impl WebhookLinkTestEvent {
    /// Every test event.
    pub const ALL: [Self; 4] = [
        Self::LinkStateChanged,
        Self::TransactionsUpdatesAvailable,
        Self::ProductStateChanged,
        Self::LinkProductRefresh,
    ];

    /// The event's name, as it appears in `webhook_event`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkStateChanged => "link.state_changed",
            Self::TransactionsUpdatesAvailable => "transactions.updates_available",
            Self::ProductStateChanged => "product.state_changed",
            Self::LinkProductRefresh => "link.product_refresh",
        }
    }
}

/// Body of `POST /webhooks/test/link/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookTestLinkRequest {
    /// Which event to send.
    pub webhook_event: WebhookLinkTestEvent,
    /// The payload's `webhook_idempotency_key`; a new one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_idempotency_key: Option<String>,
}

/// Response of `POST /webhooks/test/link/{id}`: the event was queued for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookTestLinkResponse {
    /// The payload's `webhook_idempotency_key`.
    pub webhook_idempotency_key: String,
    /// The outbox event (`moneykit-auth webhooks list`).
    pub event_id: String,
    /// The `MoneyKit-Delivery-Token` its deliveries carry.
    pub delivery_token: String,
}
