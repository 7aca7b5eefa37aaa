//! The HTTP exchange shared by every operation: one reused `reqwest` client (rustls),
//! the headers the official SDKs send, and turning responses into data or [`ApiError`].

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::configuration::Configuration;
use crate::error::ApiError;
use crate::jwt::DPOP;
use crate::secret::Secret;

/// A successful response: the parsed body, the status and the headers — what the
/// `_with_http_info` variants return.
pub type WithHttpInfo<T> = (T, StatusCode, HeaderMap);

/// Configuration plus the connection pool; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    pub(crate) config: Arc<Configuration>,
    http: reqwest::Client,
}

impl HttpClient {
    pub(crate) fn new(config: Configuration) -> Result<Self, ApiError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(std::time::Duration::from_secs(10)))
            .tls_certs_merge(
                config
                    .root_certificates
                    .iter()
                    .map(|der| reqwest::Certificate::from_der(der))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        if let Some(certificate) = &config.client_certificate {
            builder = builder.identity(certificate.identity());
        }
        let http = builder.build()?;
        Ok(Self {
            config: Arc::new(config),
            http,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.config.url(path))
            .header(http::header::ACCEPT, "application/json")
            .header(
                moneykit_wire::headers::MONEYKIT_VERSION,
                self.config.api_version.as_str(),
            )
    }

    /// `POST` a form, with HTTP Basic when the configuration has a user name, and a
    /// `DPoP` proof when given one.
    pub(crate) async fn post_form<F: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        form: &F,
        dpop_proof: Option<&str>,
    ) -> Result<WithHttpInfo<T>, ApiError> {
        let mut request = self.request(reqwest::Method::POST, path).form(form);
        if let Some(proof) = dpop_proof {
            request = request.header(DPOP, proof);
        }
        if let Some(user) = &self.config.username {
            let password = self.config.password.as_ref().map(Secret::expose);
            request = request.basic_auth(user, password);
        }
        self.send(request).await
    }

    /// `GET` with an optional bearer token.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&Secret>,
    ) -> Result<WithHttpInfo<T>, ApiError> {
        let mut request = self.request(reqwest::Method::GET, path);
        if let Some(token) = bearer {
            request = request.bearer_auth(token.expose());
        }
        self.send(request).await
    }

    /// `GET` with these headers (a token's `Authorization`, and its `DPoP` proof).
    pub(crate) async fn get_with_headers<T: DeserializeOwned>(
        &self,
        path: &str,
        headers: HeaderMap,
    ) -> Result<WithHttpInfo<T>, ApiError> {
        self.send(self.request(reqwest::Method::GET, path).headers(headers))
            .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<WithHttpInfo<T>, ApiError> {
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body: Bytes = response.bytes().await?;
        read_body(status, headers, body)
    }
}

/// Success (2xx) with a body of type `T`, or the matching [`ApiError`].
pub(crate) fn read_body<T: DeserializeOwned>(
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Result<WithHttpInfo<T>, ApiError> {
    if !status.is_success() {
        return Err(ApiError::from_response(status, headers, body));
    }
    match serde_json::from_slice(&body) {
        Ok(data) => Ok((data, status, headers)),
        Err(e) => Err(ApiError::unexpected_body(
            status,
            headers,
            body,
            format!("expected {}: {e}", short_type_name::<T>()),
        )),
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use moneykit_wire::GenerateAccessTokenResponse;

    #[test]
    fn bodies_that_do_not_match_are_unexpected_not_panics() {
        let err = read_body::<GenerateAccessTokenResponse>(
            StatusCode::CREATED,
            HeaderMap::new(),
            Bytes::from_static(b"{\"nope\":1}"),
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::UnexpectedBody);
        assert!(
            err.to_string().contains("GenerateAccessTokenResponse"),
            "{err}"
        );
    }
}
