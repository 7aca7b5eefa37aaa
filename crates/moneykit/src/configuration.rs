//! [`Configuration`]: where the API is and how to authenticate, as in the official SDKs
//! (`host`, HTTP Basic `username`/`password`, `access_token`, user agent, timeout).

use std::fmt;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::client_certificate::{ClientCertificate, certificates};
use crate::error::CredentialError;
use crate::secret::Secret;

/// The MoneyKit production API: where [`Configuration::moneykit`] sends requests.
pub const DEFAULT_HOST: &str = "https://api.moneykit.com";

/// Settings for an [`crate::AccessTokenApi`]. Start from [`Configuration::moneykit`] or
/// [`Configuration::self_hosted`] (there is no `Default`: the server your client secret is
/// sent to should be a choice, not a fallback), then chain the setters; every field is
/// also public.
#[derive(Debug, Clone)]
pub struct Configuration {
    /// Base URL of the API, without a trailing slash.
    pub host: String,
    /// HTTP Basic user name: your client id (used by `generate_access_token`).
    pub username: Option<String>,
    /// HTTP Basic password: your client secret.
    pub password: Option<Secret>,
    /// Access token for the operations that need one (introspection, JWKS): a bearer
    /// token, or a DPoP-bound one with [`crate::AccessTokenApi::with_dpop`].
    pub access_token: Option<Secret>,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Timeout of each request, connection included.
    pub timeout: Duration,
    /// `MoneyKit-Version` header; the version this SDK is written against.
    pub api_version: String,
    /// The TLS client certificate presented when the server asks for one (RFC 8705).
    pub client_certificate: Option<ClientCertificate>,
    /// Certificate authorities trusted besides the system's (a private CA, or a
    /// self-signed server certificate), as DER.
    pub root_certificates: Vec<CertificateDer<'static>>,
}

/// Why [`Configuration::self_hosted`] refused a base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidBaseUrl {
    url: String,
    reason: &'static str,
}

impl fmt::Display for InvalidBaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid base URL {:?}: {}", self.url, self.reason)
    }
}

impl std::error::Error for InvalidBaseUrl {}

impl Configuration {
    /// MoneyKit's production API ([`DEFAULT_HOST`]), no credentials, 30 s timeout: for
    /// calling MoneyKit itself.
    pub fn moneykit() -> Self {
        Self {
            host: DEFAULT_HOST.into(),
            username: None,
            password: None,
            access_token: None,
            user_agent: format!("moneykit-rust/{}", env!("CARGO_PKG_VERSION")),
            timeout: Duration::from_secs(30),
            api_version: moneykit_wire::headers::SUPPORTED_VERSION.into(),
            client_certificate: None,
            root_certificates: Vec::new(),
        }
    }

    /// Your own moneykit-auth at `base_url` (e.g. `https://auth.example.com`, or
    /// `http://127.0.0.1:8080` in development), otherwise as [`Configuration::moneykit`].
    ///
    /// The URL must be `http://` or `https://` with a host, and without credentials, query
    /// or fragment; a path (a server behind a prefix) is kept, a trailing `/` dropped.
    pub fn self_hosted(base_url: impl AsRef<str>) -> Result<Self, InvalidBaseUrl> {
        let text = base_url.as_ref();
        let invalid = |reason| InvalidBaseUrl {
            url: text.to_owned(),
            reason,
        };
        let url = reqwest::Url::parse(text)
            .map_err(|_| invalid("not a URL (expected e.g. https://auth.example.com)"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("expected an http:// or https:// URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // The error shows the URL: not with its password.
            let mut shown = url.clone();
            let _ = shown.set_password(url.password().map(|_| "****"));
            return Err(InvalidBaseUrl {
                url: shown.into(),
                reason: "credentials do not belong in the URL (set them with basic_auth)",
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a base URL has no query or fragment"));
        }
        Ok(Self::moneykit().host(url.as_str()))
    }

    /// The same as [`Configuration::moneykit`]: MoneyKit's production host.
    #[deprecated(
        note = "new() sends requests, client secret included, to MoneyKit's production host \
                unless .host() is set: use Configuration::moneykit() or \
                Configuration::self_hosted(url)"
    )]
    #[expect(
        clippy::new_without_default,
        reason = "no Default on purpose: the host must be chosen"
    )]
    pub fn new() -> Self {
        Self::moneykit()
    }

    /// Sets the base URL as is, unchecked (the official SDKs' `host`); prefer
    /// [`Configuration::self_hosted`], which checks it.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sets HTTP Basic credentials: client id and client secret.
    pub fn basic_auth(mut self, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// Sets a fixed bearer token.
    pub fn access_token(mut self, token: impl Into<Secret>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    /// Sets the `User-Agent`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Sets the per-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Presents `certificate` to the server over TLS: the tokens issued then are bound
    /// to it, and a client registered for certificate authentication needs no secret
    /// (see [`crate::TokenSource::with_client_certificate`]).
    pub fn client_certificate(mut self, certificate: ClientCertificate) -> Self {
        self.client_certificate = Some(certificate);
        self
    }

    /// Trusts the certificates of a PEM document too (`CERTIFICATE` sections): the CA of
    /// a server whose certificate the system does not know.
    pub fn add_root_certificates(mut self, pem: &[u8]) -> Result<Self, CredentialError> {
        self.root_certificates.extend(certificates(pem)?);
        Ok(self)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moneykit_is_the_production_host() {
        assert_eq!(Configuration::moneykit().host, "https://api.moneykit.com");
        #[expect(deprecated, reason = "new() must stay what it was")]
        let old = Configuration::new();
        assert_eq!(old.host, DEFAULT_HOST);
    }

    #[test]
    fn self_hosted_keeps_a_usable_base_url() {
        for (given, host) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://Auth.Example.com/", "https://auth.example.com"),
            ("https://example.com/auth/", "https://example.com/auth"),
            ("http://[::1]:8080", "http://[::1]:8080"),
        ] {
            let config = Configuration::self_hosted(given).unwrap();
            assert_eq!(config.host, host, "{given}");
            assert_eq!(config.url("/auth/token"), format!("{host}/auth/token"));
        }
    }

    #[test]
    fn self_hosted_refuses_what_is_not_a_base_url() {
        for (given, reason) in [
            ("", "not a URL"),
            ("auth.example.com", "not a URL"),
            ("127.0.0.1:8080", "not a URL"),
            ("localhost:8080", "http:// or https://"),
            ("ftp://example.com", "http:// or https://"),
            (
                "https://id:secret@example.com",
                "https://id:****@example.com/\": credentials",
            ),
            ("https://id@example.com", "basic_auth"),
            ("https://example.com/?x=1", "query"),
            ("https://example.com/#top", "fragment"),
        ] {
            let e = Configuration::self_hosted(given).unwrap_err();
            assert!(e.to_string().contains(reason), "{given}: {e}");
        }
    }
}
