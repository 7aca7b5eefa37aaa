//! Header names and values that both sides of the API agree on.

/// The API version header the official MoneyKit SDKs send on every request.
pub const MONEYKIT_VERSION: &str = "MoneyKit-Version";

/// The one API version this wire format describes (the official SDKs' `2023-02-18`).
pub const SUPPORTED_VERSION: &str = "2023-02-18";

/// Every `MoneyKit-Version` value the server accepts; an absent header is accepted too.
pub const SUPPORTED_VERSIONS: &[&str] = &[SUPPORTED_VERSION];

/// Request id header: echoed when the caller sends one, generated otherwise.
pub const REQUEST_ID: &str = "X-Request-Id";

/// Header newer MoneyKit SDKs send on the JWKS request instead of a bearer token.
pub const CLIENT_ID: &str = "X-Client-Id";
