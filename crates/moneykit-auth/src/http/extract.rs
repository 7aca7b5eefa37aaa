//! Turning raw requests into typed input: the token form, client credentials (body or
//! HTTP Basic), bearer tokens and the `MoneyKit-Version` header.
//!
//! Parsing is strict where the RFCs are (a repeated parameter is an error, RFC 6749 §3.2;
//! Basic credentials are form-urlencoded, RFC 6749 §2.3.1) and allocation-free in the
//! common case, since every token request passes through here.

use std::borrow::Cow;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use moneykit_wire::ValidationError;
use moneykit_wire::headers::{MONEYKIT_VERSION, SUPPORTED_VERSIONS};

use super::error::ApiError;
use crate::domain::grant::{Credentials, TokenRequest};

/// The parameters of a token request body, decoded.
#[derive(Default)]
pub struct TokenParams<'a> {
    /// `grant_type`.
    pub grant_type: Option<Cow<'a, str>>,
    /// `scope`.
    pub scope: Option<Cow<'a, str>>,
    /// `client_id`.
    pub client_id: Option<Cow<'a, str>>,
    /// `client_secret`.
    pub client_secret: Option<Cow<'a, str>>,
}

impl std::fmt::Debug for TokenParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenParams")
            .field("grant_type", &self.grant_type)
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn validation(location: &[&str], message: &str, kind: &str) -> ApiError {
    ApiError::Validation(vec![ValidationError::new(location, message, kind)])
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a
/// byte, and the result must be UTF-8. Borrows when nothing needs decoding.
pub fn decode_form_component(raw: &[u8]) -> Option<Cow<'_, str>> {
    if !raw.iter().any(|&b| b == b'+' || b == b'%') {
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(decoded).ok().map(Cow::Owned)
}

/// Checks the content type of a token request: a non-empty body must be
/// `application/x-www-form-urlencoded` (parameters such as `charset=utf-8` allowed).
pub fn check_form_content_type(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    let is_form = content_type.is_some_and(|ct| {
        let essence = ct.split(|&b| b == b';').next().unwrap_or_default();
        essence
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
    });
    if is_form || (body.is_empty() && content_type.is_none()) {
        Ok(())
    } else {
        Err(validation(
            &["header", "content-type"],
            "the body must be application/x-www-form-urlencoded",
            "value_error.content_type",
        ))
    }
}

/// Parses a token request body. Unknown parameters are ignored (RFC 6749 §3.2); a known
/// one sent twice, or a part that is not UTF-8 after decoding, is a 422.
pub fn parse_token_params(body: &[u8]) -> Result<TokenParams<'_>, ApiError> {
    let mut params = TokenParams::default();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode_form_component(raw_name).ok_or_else(|| {
            validation(
                &["body"],
                "parameter names must be UTF-8",
                "value_error.encoding",
            )
        })?;
        let (slot, field) = match name.as_ref() {
            "grant_type" => (&mut params.grant_type, "grant_type"),
            "scope" => (&mut params.scope, "scope"),
            "client_id" => (&mut params.client_id, "client_id"),
            "client_secret" => (&mut params.client_secret, "client_secret"),
            _ => continue,
        };
        if slot.is_some() {
            return Err(validation(
                &["body", field],
                "parameter must not be repeated",
                "value_error.duplicate",
            ));
        }
        let value = decode_form_component(raw_value).ok_or_else(|| {
            validation(
                &["body", field],
                "value must be UTF-8",
                "value_error.encoding",
            )
        })?;
        *slot = Some(value);
    }
    Ok(params)
}

/// Client credentials from an `Authorization: Basic` header (RFC 6749 §2.3.1).
pub struct BasicCredentials {
    /// Decoded client id.
    pub client_id: String,
    /// Decoded secret.
    pub client_secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn split_scheme<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<Result<&'h str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(()));
    };
    let (given, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !given.eq_ignore_ascii_case(scheme) {
        return None;
    }
    Some(Ok(rest.trim()))
}

/// Reads HTTP Basic client credentials: `None` without a Basic header, `Err` for a Basic
/// header that does not decode.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Result<BasicCredentials, ApiError>> {
    let invalid = || ApiError::InvalidClient { basic: true };
    let encoded = match split_scheme(headers, "Basic")? {
        Ok(e) => e,
        Err(()) => return Some(Err(invalid())),
    };
    let parsed = (|| {
        let decoded = BASE64_LENIENT.decode(encoded).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        let id = decode_form_component(&decoded[..colon])?.into_owned();
        let secret = decode_form_component(&decoded[colon + 1..])?.into_owned();
        Some(BasicCredentials {
            client_id: id,
            client_secret: secret,
        })
    })();
    Some(parsed.ok_or_else(invalid))
}

/// A token request ready for the grant engine, owning what it borrows from.
pub struct ParsedTokenRequest<'a> {
    params: TokenParams<'a>,
    basic: Option<BasicCredentials>,
}

impl<'a> ParsedTokenRequest<'a> {
    /// Parses headers and body, resolving where the credentials come from: Basic, body,
    /// or both when they agree (both present and different is a 401).
    pub fn parse(headers: &HeaderMap, body: &'a [u8]) -> Result<Self, ApiError> {
        check_form_content_type(headers, body)?;
        let params = parse_token_params(body)?;
        let basic = basic_credentials(headers).transpose()?;
        if let Some(basic) = &basic {
            let id_conflict = params
                .client_id
                .as_deref()
                .is_some_and(|id| id != basic.client_id);
            let secret_conflict = params
                .client_secret
                .as_deref()
                .is_some_and(|s| s != basic.client_secret);
            if id_conflict || secret_conflict {
                return Err(ApiError::InvalidClient { basic: true });
            }
        }
        Ok(Self { params, basic })
    }

    /// Whether the client authenticated with HTTP Basic.
    pub fn used_basic(&self) -> bool {
        self.basic.is_some()
    }

    /// The request as the grant engine takes it.
    pub fn as_grant_request(&self) -> TokenRequest<'_> {
        let credentials = match &self.basic {
            Some(b) => Some(Credentials {
                client_id: &b.client_id,
                client_secret: &b.client_secret,
            }),
            None => self.params.client_id.as_deref().map(|id| Credentials {
                client_id: id,
                client_secret: self.params.client_secret.as_deref().unwrap_or(""),
            }),
        };
        TokenRequest {
            grant_type: self.params.grant_type.as_deref(),
            scope: self.params.scope.as_deref(),
            credentials,
        }
    }
}

/// Reads `Authorization: Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    match split_scheme(headers, "Bearer") {
        Some(Ok(token)) if !token.is_empty() => Ok(token),
        Some(_) => Err(ApiError::InvalidToken),
        None if headers.contains_key(header::AUTHORIZATION) => Err(ApiError::InvalidToken),
        None => Err(ApiError::MissingToken),
    }
}

/// Extractor that accepts the request only if its `MoneyKit-Version` (when present) is
/// one this server speaks.
#[derive(Debug, Clone, Copy)]
pub struct MoneyKitVersion;

impl<S: Send + Sync> FromRequestParts<S> for MoneyKitVersion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(MONEYKIT_VERSION) {
            None => Ok(MoneyKitVersion),
            Some(v) => {
                let v = String::from_utf8_lossy(v.as_bytes());
                if SUPPORTED_VERSIONS.contains(&v.trim()) {
                    Ok(MoneyKitVersion)
                } else {
                    Err(ApiError::UnsupportedVersion(v.chars().take(64).collect()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    #[test]
    fn form_components_decode_plus_and_percent() {
        assert_eq!(decode_form_component(b"a+b%20c%3A").unwrap(), "a b c:");
        assert!(matches!(
            decode_form_component(b"plain").unwrap(),
            Cow::Borrowed(_)
        ));
        assert!(decode_form_component(b"%FF").is_none());
        assert_eq!(decode_form_component(b"%zz").unwrap(), "%zz");
    }

    #[test]
    fn token_params_parse_and_reject_repeats() {
        let p = parse_token_params(b"grant_type=client_credentials&scope=a+b&x=1&&client_id=c")
            .unwrap();
        assert_eq!(p.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(p.scope.as_deref(), Some("a b"));
        assert_eq!(p.client_id.as_deref(), Some("c"));
        assert!(p.client_secret.is_none());
        let err = parse_token_params(b"client_id=a&client_id=b").unwrap_err();
        match err {
            ApiError::Validation(v) => assert_eq!(v[0].location, ["body", "client_id"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_token_params(b"scope=%FF"),
            Err(ApiError::Validation(_))
        ));
    }

    #[test]
    fn content_type_must_be_form_for_a_body() {
        let form = headers(&[(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )]);
        assert!(check_form_content_type(&form, b"a=b").is_ok());
        let json = headers(&[("content-type", "application/json")]);
        assert!(check_form_content_type(&json, b"{}").is_err());
        assert!(check_form_content_type(&HeaderMap::new(), b"").is_ok());
        assert!(check_form_content_type(&HeaderMap::new(), b"a=b").is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let h = headers(&[("authorization", &basic("my%20id", "s%3Acret+x"))]);
        let c = basic_credentials(&h).unwrap().unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.client_secret.as_str()),
            ("my id", "s:cret x")
        );
        let h = headers(&[("authorization", "basic bm9jb2xvbg")]);
        assert!(basic_credentials(&h).unwrap().is_err());
        let h = headers(&[("authorization", "Basic !!!")]);
        assert!(basic_credentials(&h).unwrap().is_err());
        assert!(basic_credentials(&headers(&[("authorization", "Bearer x")])).is_none());
        assert!(basic_credentials(&HeaderMap::new()).is_none());
    }

    #[test]
    fn body_and_basic_must_agree() {
        let h = headers(&[
            ("authorization", &basic("id1", "s1")),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        assert!(ParsedTokenRequest::parse(&h, b"client_id=id1&client_secret=s1").is_ok());
        assert!(matches!(
            ParsedTokenRequest::parse(&h, b"client_id=id2"),
            Err(ApiError::InvalidClient { basic: true })
        ));
        assert!(matches!(
            ParsedTokenRequest::parse(&h, b"client_secret=other"),
            Err(ApiError::InvalidClient { basic: true })
        ));
        let parsed = ParsedTokenRequest::parse(&h, b"").unwrap();
        let req = parsed.as_grant_request();
        assert_eq!(req.credentials.unwrap().client_id, "id1");
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer abc")])).unwrap(),
            "abc"
        );
        assert!(matches!(
            bearer_token(&HeaderMap::new()),
            Err(ApiError::MissingToken)
        ));
        assert!(matches!(
            bearer_token(&headers(&[("authorization", "Bearer ")])),
            Err(ApiError::InvalidToken)
        ));
        assert!(matches!(
            bearer_token(&headers(&[("authorization", "Basic abc")])),
            Err(ApiError::InvalidToken)
        ));
    }
}
