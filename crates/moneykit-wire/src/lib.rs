//! The wire format of the MoneyKit access token API: one definition of every JSON body,
//! shared by the `moneykit-auth` server and the `moneykit` SDK so the two can never
//! disagree on field names or shapes.
//!
//! # Layout
//!
//! - [`token`]: the `/auth/token` form fields and the token response.
//! - [`audience`]: the `aud` of a token, one string or an array.
//! - [`confirmation`]: the `cnf` claim of a sender-constrained token.
//! - [`introspect`]: `AppClientResponse`, the body of `/auth/introspect`.
//! - [`jwks`]: the public JSON Web Key Set published at `/.well-known/jwks.json`.
//! - [`error`]: the error body (MoneyKit fields, RFC 6749 fields, validation errors).
//! - [`oauth2`]: RFC 7662 introspection, RFC 7009 revocation and RFC 8414 metadata bodies.
//! - [`headers`]: header names and the API version the official SDKs send.
//! - [`webhook`]: webhook header names and the claims of the `MoneyKit-Signature` JWT.
//!
//! With the `openapi` feature every type also derives `utoipa::ToSchema`, which is how the
//! server's `/openapi.json` describes exactly these bodies.
//!
//! Types here are plain data: no I/O, no validation beyond what serde does. Unknown JSON
//! members are kept where a client may need them (JWKs) and ignored elsewhere, so newer
//! servers stay readable by older clients.

pub mod audience;
pub mod confirmation;
pub mod error;
pub mod headers;
pub mod introspect;
pub mod jwks;
pub mod oauth2;
pub mod token;
pub mod webhook;

pub use audience::Audience;
pub use confirmation::Confirmation;
pub use error::{ErrorBody, ValidationError};
pub use introspect::{AppClientResponse, AppResponse};
pub use jwks::{Jwk, JwkSet};
pub use oauth2::{
    AuthorizationServerMetadata, ClientCredentialsForm, IntrospectionResponse, TokenHintForm,
};
pub use token::{GenerateAccessTokenResponse, TokenForm};
pub use webhook::{
    WebhookLinkTestEvent, WebhookSignatureClaims, WebhookTestLinkRequest, WebhookTestLinkResponse,
};
