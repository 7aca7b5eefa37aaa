//! `POST /auth/token`: the request [`AccessTokenApi`](crate::AccessTokenApi) sends for
//! its caller and [`TokenSource`](crate::TokenSource) sends to fill its cache. Both build
//! on this module, and it on neither.

use std::future::Future;

use moneykit_wire::{GenerateAccessTokenResponse, TokenForm};

use crate::client::{HttpClient, WithHttpInfo};
use crate::dpop::{DpopSession, demanded_nonce};
use crate::error::ApiError;

const TOKEN_PATH: &str = "/auth/token";

/// The optional parameters of
/// [`AccessTokenApi::generate_access_token`](crate::AccessTokenApi::generate_access_token):
/// `grant_type`, `scope`, `client_id`, `client_secret`, as in the official SDKs' `opts`.
pub type GenerateAccessTokenOpts = TokenForm;

/// `POST /auth/token` with the form `make_form` gives (and HTTP Basic when the client's
/// configuration has a user name). With a DPoP session, each attempt carries a new proof;
/// a `use_dpop_nonce` refusal is retried once, with a new form (a client assertion is
/// good for one request) and the nonce the server gave.
pub(crate) async fn request_token<F, Fut>(
    client: &HttpClient,
    dpop: Option<&DpopSession>,
    mut make_form: F,
) -> Result<WithHttpInfo<GenerateAccessTokenResponse>, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<GenerateAccessTokenOpts, ApiError>>,
{
    let mut retried = false;
    loop {
        let opts = make_form().await?;
        let proof = match dpop {
            Some(session) => Some(session.token_request_proof(&client.config.url(TOKEN_PATH))?),
            None => None,
        };
        // As pairs: `resource` repeats, which the serde form encoder cannot express.
        let result = client
            .post_form(TOKEN_PATH, &opts.pairs(), proof.as_deref())
            .await;
        let Some(session) = dpop else {
            return result;
        };
        let headers = match &result {
            Ok((_, _, headers)) => Some(headers),
            Err(e) => e.headers(),
        };
        if let Some(headers) = headers {
            session.remember_nonce(headers);
        }
        match result {
            Err(e) if !retried && demanded_nonce(&e).is_some() => retried = true,
            other => return other,
        }
    }
}
