//! `Authorization` parsing (Basic and Bearer) and the whole credential extraction of the
//! token endpoint, over arbitrary header bytes and bodies.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use moneykit_auth::http::extract::{AuthenticatedForm, basic_credentials, bearer_token};
use moneykit_wire::TokenForm;

fuzz_target!(|input: (&[u8], &[u8])| {
    let (authorization, body) = input;
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.insert(header::AUTHORIZATION, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let _ = basic_credentials(&headers);
    let _ = bearer_token(&headers);
    if let Ok(form) = AuthenticatedForm::parse(&headers, body, TokenForm::FIELDS) {
        let _ = form.credentials();
    }
    let _ = AuthenticatedForm::parse_single_method(&headers, body, TokenForm::FIELDS);
});
