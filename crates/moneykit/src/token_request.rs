//! `POST /auth/token`: the request [`AccessTokenApi`](crate::AccessTokenApi) sends for
//! its caller and [`TokenSource`](crate::TokenSource) sends to fill its cache. Both build
//! on this module, and it on neither.

use moneykit_wire::{GenerateAccessTokenResponse, TokenForm};

use crate::client::{HttpClient, WithHttpInfo};
use crate::error::ApiError;

/// The optional parameters of
/// [`AccessTokenApi::generate_access_token`](crate::AccessTokenApi::generate_access_token):
/// `grant_type`, `scope`, `client_id`, `client_secret`, as in the official SDKs' `opts`.
pub type GenerateAccessTokenOpts = TokenForm;

/// `POST /auth/token` with `opts` as the form (and HTTP Basic when the client's
/// configuration has a user name).
pub(crate) async fn request_token(
    client: &HttpClient,
    opts: &GenerateAccessTokenOpts,
) -> Result<WithHttpInfo<GenerateAccessTokenResponse>, ApiError> {
    // As pairs: `resource` repeats, which the serde form encoder cannot express.
    client.post_form("/auth/token", &opts.pairs()).await
}
