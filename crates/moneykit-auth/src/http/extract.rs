//! Turning raw requests into typed input: the token form, client credentials (body or
//! HTTP Basic), bearer tokens and the `MoneyKit-Version` header.
//!
//! Parsing is strict where the RFCs are (a repeated parameter is an error, RFC 6749 §3.2;
//! Basic credentials are form-urlencoded, RFC 6749 §2.3.1) and allocation-free in the
//! common case, since every token request passes through here.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use moneykit_wire::headers::{MONEYKIT_VERSION, SUPPORTED_VERSIONS};
use utoipa::IntoParams;

use super::error::ApiError;
use crate::domain::assertions::{CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT};
use crate::domain::certificates::ClientCertificate;
use crate::engine::Credentials;
use crate::engine::client_auth;
use crate::engine::grant::{Binding, FederatedRequest, TokenRequest};
use crate::net::Cidr;

/// The one parameter that may be sent several times (RFC 8707 §2).
const REPEATABLE: &str = "resource";

/// Most `resource` parameters one request may carry.
pub const MAX_RESOURCES: usize = crate::domain::audience::MAX_AUDIENCES;

/// The decoded values of a form's known fields. `Debug` shows which fields are present,
/// never their values (one of them is usually a secret).
pub struct FormFields<'a> {
    names: &'static [&'static str],
    values: Vec<Option<Cow<'a, str>>>,
    /// Every value of the repeatable field, in order.
    repeated: Vec<Cow<'a, str>>,
}

impl FormFields<'_> {
    /// The value of a known field, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.names.iter().position(|n| *n == name)?;
        self.values[i].as_deref()
    }

    /// Every `resource` value, in order.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.repeated.iter().map(|v| v.as_ref())
    }
}

impl std::fmt::Debug for FormFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let present: Vec<&str> = self
            .names
            .iter()
            .zip(&self.values)
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| *n)
            .collect();
        f.debug_struct("FormFields")
            .field("present", &present)
            .finish()
    }
}

/// Shorthand for [`ApiError::validation`] at this file's call sites.
fn validation(location: &[&str], message: &str, kind: &str) -> ApiError {
    ApiError::validation(location, message, kind)
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

/// Parses a form body, keeping the `known` fields. Unknown parameters are ignored (RFC
/// 6749 §3.2); a known one sent twice, or a part that is not UTF-8 after decoding, is a
/// validation error.
pub fn parse_form<'a>(
    body: &'a [u8],
    known: &'static [&'static str],
) -> Result<FormFields<'a>, ApiError> {
    let mut fields = FormFields {
        names: known,
        values: vec![None; known.len()],
        repeated: Vec::new(),
    };
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
        let Some(index) = known.iter().position(|k| *k == name) else {
            continue;
        };
        let field = known[index];
        let repeatable = field == REPEATABLE;
        if repeatable && fields.repeated.len() == MAX_RESOURCES {
            let message = "too many resource parameters";
            return Err(validation(
                &["body", field],
                message,
                "value_error.too_many",
            ));
        }
        if !repeatable && fields.values[index].is_some() {
            let message = "parameter must not be repeated";
            return Err(validation(
                &["body", field],
                message,
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
        if repeatable {
            fields.repeated.push(value);
        } else {
            fields.values[index] = Some(value);
        }
    }
    Ok(fields)
}

/// Client credentials from an `Authorization: Basic` header (RFC 6749 §2.3.1).
pub struct BasicCredentials {
    /// Decoded client id.
    pub client_id: String,
    /// Decoded secret.
    pub client_secret: String,
}

impl BasicCredentials {
    /// Whether both id and secret are empty (`Basic Og==`, base64 of `:`). Generated
    /// clients, the official MoneyKit Ruby SDK among them, send that whenever their
    /// Basic username and password are unset, even beside credentials in the body; it
    /// names no client, so it counts as no Basic credentials at all.
    pub fn is_empty(&self) -> bool {
        self.client_id.is_empty() && self.client_secret.is_empty()
    }
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

/// A form request from an authenticating client: its fields, and its credentials from
/// HTTP Basic or the body (`client_id`/`client_secret`), checked to agree when both are
/// sent.
pub struct AuthenticatedForm<'a> {
    fields: FormFields<'a>,
    basic: Option<BasicCredentials>,
    /// The client certificate the connection presented, if any.
    certificate: Option<&'a ClientCertificate>,
}

impl<'a> AuthenticatedForm<'a> {
    /// Parses headers and body the MoneyKit way: credentials in Basic and in the body
    /// are accepted when they agree (the official SDKs may send both), and are
    /// [`ApiError::InvalidClient`] when they differ. `known` must include `client_id` and
    /// `client_secret`.
    pub fn parse(
        headers: &HeaderMap,
        body: &'a [u8],
        known: &'static [&'static str],
    ) -> Result<Self, ApiError> {
        Self::parse_fields(headers, body, known)?.agreeing()
    }

    /// Parses headers and body the RFC 6749 way (§2.3): a client uses one authentication
    /// method per request, so a Basic header together with a body `client_secret` is a
    /// validation error (`invalid_request` on the standard surface).
    pub fn parse_single_method(
        headers: &HeaderMap,
        body: &'a [u8],
        known: &'static [&'static str],
    ) -> Result<Self, ApiError> {
        let form = Self::parse_fields(headers, body, known)?;
        if form.basic.is_some() && form.fields.get("client_secret").is_some() {
            return Err(validation(
                &["body", "client_secret"],
                "use one client authentication method: HTTP Basic or client_secret in the body, not both",
                "value_error.auth_methods",
            ));
        }
        form.agreeing()
    }

    fn parse_fields(
        headers: &HeaderMap,
        body: &'a [u8],
        known: &'static [&'static str],
    ) -> Result<Self, ApiError> {
        check_form_content_type(headers, body)?;
        let fields = parse_form(body, known)?;
        let basic = basic_credentials(headers)
            .transpose()?
            .filter(|b| !b.is_empty());
        let form = Self {
            fields,
            basic,
            certificate: None,
        };
        form.check_assertion_fields()?;
        Ok(form)
    }

    /// A client assertion comes with its type, and alone: a client uses one
    /// authentication method per request (RFC 6749 §2.3), whatever the surface.
    fn check_assertion_fields(&self) -> Result<(), ApiError> {
        let assertion = self.fields.get("client_assertion");
        let kind = self.fields.get("client_assertion_type");
        let fail = |field: &str, message: &str| {
            Err(validation(
                &["body", field],
                message,
                "value_error.client_assertion",
            ))
        };
        match (assertion, kind) {
            (None, None) => Ok(()),
            (Some(_), None) => fail(
                "client_assertion_type",
                "client_assertion_type is required with client_assertion",
            ),
            (None, Some(_)) => fail(
                "client_assertion",
                "client_assertion is required with client_assertion_type",
            ),
            (Some(_), Some(kind)) if kind != CLIENT_ASSERTION_TYPE => fail(
                "client_assertion_type",
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (Some(_), Some(_))
                if self.basic.is_some() || self.fields.get("client_secret").is_some() =>
            {
                fail(
                    "client_assertion",
                    "use one client authentication method: a client_assertion, or a secret, not both",
                )
            }
            (Some(_), Some(_)) => Ok(()),
        }
    }

    /// The form, if its Basic and body credentials (when both are sent) agree.
    fn agreeing(self) -> Result<Self, ApiError> {
        if let Some(basic) = &self.basic {
            let differs =
                |name: &str, expected: &str| self.fields.get(name).is_some_and(|v| v != expected);
            if differs("client_id", &basic.client_id)
                || differs("client_secret", &basic.client_secret)
            {
                return Err(ApiError::InvalidClient { basic: true });
            }
        }
        Ok(self)
    }

    /// [`Self::parse`] or [`Self::parse_single_method`] (`single_method`) for a request
    /// from `source`, logging credentials that cannot be read as a failed authentication
    /// (the engine logs every other one).
    pub fn parse_from(
        headers: &HeaderMap,
        body: &'a [u8],
        known: &'static [&'static str],
        single_method: bool,
        source: Option<IpAddr>,
    ) -> Result<Self, ApiError> {
        let parsed = if single_method {
            Self::parse_single_method(headers, body, known)
        } else {
            Self::parse(headers, body, known)
        };
        if let Err(ApiError::InvalidClient { .. }) = &parsed {
            client_auth::log_failure(None, client_auth::Failure::Malformed, source, false);
        }
        parsed
    }

    /// The same form from a connection that presented `certificate`: a `client_id`
    /// alone then authenticates by it (RFC 8705 §2), and tokens are bound to it.
    pub fn with_certificate(self, certificate: Option<&'a ClientCertificate>) -> Self {
        Self {
            certificate,
            ..self
        }
    }

    /// Whether the client authenticated with HTTP Basic.
    pub fn used_basic(&self) -> bool {
        self.basic.is_some()
    }

    /// A form field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name)
    }

    /// The client's credentials, `None` if the request carried none. A body `client_id`
    /// without a secret is a certificate client's on a connection with a client
    /// certificate, and otherwise yields an empty secret, which fails authentication.
    pub fn credentials(&self) -> Option<Credentials<'_>> {
        if let Some(assertion) = self.field("client_assertion") {
            return Some(Credentials::Assertion {
                client_id: self.field("client_id"),
                assertion,
            });
        }
        if let Some(b) = &self.basic {
            return Some(Credentials::secret(&b.client_id, &b.client_secret));
        }
        let client_id = self.field("client_id")?;
        Some(match (self.field("client_secret"), self.certificate) {
            (None, Some(certificate)) => Credentials::Certificate {
                client_id,
                certificate,
            },
            (secret, _) => Credentials::secret(client_id, secret.unwrap_or("")),
        })
    }

    /// The request as the grant engine takes it (for forms parsed with `TokenForm::FIELDS`):
    /// the audiences asked for are the `resource` values, then `audience` split on
    /// spaces; the token is bound to `dpop`'s key (a proof for `endpoint`) and to the
    /// form's certificate.
    pub fn as_grant_request<'r>(
        &'r self,
        dpop: Option<&'r str>,
        endpoint: &'r str,
    ) -> TokenRequest<'r> {
        let audience = self.field("audience").unwrap_or_default();
        let grant_type = self.field("grant_type");
        let federation = self.federated_request(grant_type);
        // A federated workload needs no client authentication; its `client_id` alone only
        // chooses among the clients that trust it.
        let unauthenticated = || {
            self.basic.is_none()
                && self.field("client_secret").is_none()
                && self.field("client_assertion").is_none()
        };
        let credentials = match federation.is_some() && unauthenticated() {
            true => None,
            false => self.credentials(),
        };
        TokenRequest {
            grant_type,
            federation,
            scope: self.field("scope"),
            audiences: self
                .fields
                .resources()
                .chain(audience.split(' ').filter(|a| !a.is_empty()))
                .collect(),
            credentials,
            binding: Binding {
                dpop,
                endpoint,
                certificate: self.certificate,
            },
        }
    }

    /// The parameters of a federated grant, when `grant_type` names one.
    fn federated_request(&self, grant_type: Option<&str>) -> Option<FederatedRequest<'_>> {
        let exchange = match grant_type? {
            JWT_BEARER_GRANT => false,
            TOKEN_EXCHANGE_GRANT => true,
            _ => return None,
        };
        Some(FederatedRequest {
            client_id: self.field("client_id"),
            platform_token: self.field(if exchange {
                "subject_token"
            } else {
                "assertion"
            }),
            subject_token_type: self.field("subject_token_type"),
            requested_token_type: self.field("requested_token_type"),
            actor_token: self.field("actor_token").is_some(),
        })
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

/// Where a request came from, as the connection layer determined it (the TCP peer, or
/// behind a proxy the configured header), put into every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The client's address: `peer`, or when `trusted_header` is set (the server runs
    /// behind a proxy that appends the client's address to it), that header's last value.
    /// Only the last value is the proxy's own; earlier ones are whatever the client sent.
    /// With `proxies` listed, only a peer among them is believed: anyone else could set
    /// the header to a fresh address on every request, and get a fresh budget with it.
    pub fn resolve(
        headers: &HeaderMap,
        peer: IpAddr,
        trusted_header: Option<&header::HeaderName>,
        proxies: &[Cidr],
    ) -> Self {
        if trusted_header.is_none() {
            warn_once_if_proxied(headers);
        }
        let from_proxy = proxies.is_empty() || proxies.iter().any(|p| p.contains(peer));
        let from_header = trusted_header
            .filter(|_| from_proxy)
            .and_then(|name| headers.get_all(name).iter().next_back())
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok());
        ClientAddr(Some(from_header.unwrap_or(peer)))
    }
}

/// Behind a proxy without `--client-ip-header`, every request seems to come from the
/// proxy, so all clients share one address's failure budget and one client's wrong secrets
/// can get everyone refused. The proxy's forwarding headers give that away: say so, once.
fn warn_once_if_proxied(headers: &HeaderMap) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if WARNED.load(Ordering::Relaxed) {
        return;
    }
    let forwarded = [X_FORWARDED_FOR, X_REAL_IP]
        .into_iter()
        .find(|name| headers.contains_key(name));
    if let Some(name) = forwarded
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            header = %name,
            "requests carry a proxy's forwarding header but --client-ip-header is not set: \
             each request counts as coming from the proxy's address, so every client behind \
             it shares one rate-limit budget; if a proxy you trust sets this header, \
             start with --client-ip-header {name}"
        );
    }
}

/// What proxies put the client's address in (`--client-ip-header` reads either).
const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: header::HeaderName = header::HeaderName::from_static("x-real-ip");

/// A form request: its headers (moved out of the request, not cloned as axum's
/// `HeaderMap` extractor does), its body, read up to the body limit, its source and its
/// client certificate.
pub struct FormRequest {
    /// The request headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: axum::body::Bytes,
    /// Where it came from, when known.
    pub source: Option<IpAddr>,
    /// The client certificate its connection (or a trusted proxy) presented.
    pub certificate: Option<PresentedCertificate>,
}

/// A client certificate presented on a request (RFC 8705), put into its extensions by the
/// connection layer: read once per TLS connection, or from a trusted proxy's header.
#[derive(Debug, Clone)]
pub struct PresentedCertificate(pub std::sync::Arc<ClientCertificate>);

/// The `DPoP` header of a request (RFC 9449 §4.3: at most one). A second header, or one
/// that is not ASCII, is an invalid proof.
pub fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, String> {
    let mut values = headers.get_all(DPOP).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("DPoP proof: send exactly one DPoP header".into());
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| "DPoP proof: the DPoP header is not a compact JWT".into())
}

/// The request header that carries a DPoP proof.
pub const DPOP: header::HeaderName = header::HeaderName::from_static("dpop");

impl<S: Send + Sync> FromRequest<S> for FormRequest {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        let source = parts.extensions.get::<ClientAddr>().and_then(|c| c.0);
        let certificate = parts.extensions.remove::<PresentedCertificate>();
        let req = axum::extract::Request::from_parts(parts, body);
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::from_status(rejection.status()))?;
        Ok(Self {
            headers,
            body,
            source,
            certificate,
        })
    }
}

/// Where a request came from ([`ClientAddr`]), as an extractor; `None` when unknown
/// (a router called without the server's accept loop).
pub struct Source(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(
            parts.extensions.get::<ClientAddr>().and_then(|c| c.0),
        ))
    }
}

/// The access token of a request to a protected resource, as an extractor: from
/// `Authorization: Bearer` or `Authorization: DPoP` (RFC 9449 §7.1), with what may
/// accompany it — the `DPoP` proof and the client certificate.
pub struct PresentedToken {
    /// The access token.
    pub token: String,
    /// Whether it came under the DPoP scheme.
    pub dpop_scheme: bool,
    /// The `DPoP` header, or why it cannot be read.
    pub proof: Result<Option<String>, String>,
    /// The connection's client certificate.
    pub certificate: Option<PresentedCertificate>,
}

impl<S: Send + Sync> FromRequestParts<S> for PresentedToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let (token, dpop_scheme) = match split_scheme(headers, "DPoP") {
            Some(Ok(token)) if !token.is_empty() => (token, true),
            Some(_) => return Err(ApiError::InvalidToken),
            None => (bearer_token(headers)?, false),
        };
        Ok(Self {
            token: token.to_owned(),
            dpop_scheme,
            proof: dpop_header(headers).map(|p| p.map(str::to_owned)),
            certificate: parts.extensions.get::<PresentedCertificate>().cloned(),
        })
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

/// The optional `MoneyKit-Version` header of the MoneyKit paths.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct MoneyKitVersionHeader {
    /// API version: `2023-02-18` (what the official SDKs send), or absent. Anything else
    /// is a 400 naming the supported versions.
    #[serde(rename = "MoneyKit-Version")]
    #[param(required = false, inline)]
    pub moneykit_version: ApiVersion,
}

/// The optional `DPoP` header of the token endpoints and of this server's protected
/// resources (RFC 9449).
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct DpopProofHeader {
    /// A DPoP proof (RFC 9449 §4.2; at most one): a JWT of type `dpop+jwt` signed by the
    /// key in its `jwk` header (ES256, ES384, EdDSA, RS256 or PS256), with `jti`, `htm`,
    /// `htu` (this server's public URL of the endpoint), `iat`, and at a protected resource
    /// `ath`. At a token endpoint it binds the token to that key: `token_type` `DPoP`,
    /// claim `cnf.jkt`.
    #[serde(rename = "DPoP")]
    #[param(required = false)]
    pub dpop: String,
}

/// The API versions this server speaks (see `moneykit_wire::headers::SUPPORTED_VERSIONS`).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub enum ApiVersion {
    /// The version of the official SDKs.
    #[serde(rename = "2023-02-18")]
    V2023_02_18,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use moneykit_wire::TokenForm;

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
    fn forms_parse_known_fields_and_reject_repeats() {
        let body = b"grant_type=client_credentials&scope=a+b&x=1&&client_id=c";
        let p = parse_form(body, TokenForm::FIELDS).unwrap();
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("scope"), Some("a b"));
        assert_eq!(p.get("client_id"), Some("c"));
        assert_eq!(p.get("client_secret"), None);
        assert_eq!(p.get("x"), None);
        let shown = format!(
            "{:?}",
            parse_form(b"client_secret=hush", TokenForm::FIELDS).unwrap()
        );
        assert!(!shown.contains("hush"), "{shown}");
        let err = parse_form(b"client_id=a&client_id=b", TokenForm::FIELDS).unwrap_err();
        match err {
            ApiError::Validation(v) => assert_eq!(v[0].location, ["body", "client_id"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_form(b"scope=%FF", TokenForm::FIELDS),
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
        assert!(
            AuthenticatedForm::parse(&h, b"client_id=id1&client_secret=s1", TokenForm::FIELDS)
                .is_ok()
        );
        assert!(matches!(
            AuthenticatedForm::parse(&h, b"client_id=id2", TokenForm::FIELDS),
            Err(ApiError::InvalidClient { basic: true })
        ));
        assert!(matches!(
            AuthenticatedForm::parse(&h, b"client_secret=other", TokenForm::FIELDS),
            Err(ApiError::InvalidClient { basic: true })
        ));
        let parsed = AuthenticatedForm::parse(&h, b"", TokenForm::FIELDS).unwrap();
        let req = parsed.as_grant_request(None, "/auth/token");
        assert_eq!(req.credentials.unwrap().client_id(), Some("id1"));
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

    #[test]
    fn the_client_ip_header_is_believed_only_from_trusted_proxies() {
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9")]);
        let name = header::HeaderName::from_static("x-forwarded-for");
        let resolve = |peer: &str, proxies: &[Cidr]| {
            ClientAddr::resolve(&h, peer.parse().unwrap(), Some(&name), proxies).0
        };
        let client = Some("203.0.113.9".parse().unwrap());
        assert_eq!(
            resolve("10.0.0.5", &[]),
            client,
            "any peer when none listed"
        );
        let proxies = ["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        assert_eq!(resolve("10.0.0.5", &proxies), client);
        assert_eq!(resolve("fd00::5", &proxies), client);
        assert_eq!(
            resolve("192.0.2.7", &proxies),
            Some("192.0.2.7".parse().unwrap()),
            "anyone else is their own address"
        );
    }
}
