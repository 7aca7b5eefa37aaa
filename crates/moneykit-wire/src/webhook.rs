//! Signed webhooks: header names and the claims of the `MoneyKit-Signature` JWT
//! (PRODUCT.md §7).

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
