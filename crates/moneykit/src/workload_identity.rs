//! [`WorkloadIdentity`]: workload identity federation. A workload proves who it is with
//! a JWT its platform gives it (a Kubernetes projected service-account token, a CI job's
//! OIDC token), which the server trusts for a client: no secret and no key to keep.

use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;

use crate::error::CredentialError;
use crate::token_request::GenerateAccessTokenOpts;

const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Far above any platform token (a Kubernetes one is about 1 KiB): a larger file is a
/// wrong path, not a token.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// A platform token file and how to present it: the `jwt-bearer` grant (RFC 7523 §2.1,
/// the default) or an RFC 8693 token exchange.
///
/// The file is read again for every token request, because platforms rotate it
/// (Kubernetes rewrites a projected token well before it expires).
///
/// ```no_run
/// use moneykit::{Configuration, TokenSource, WorkloadIdentity};
///
/// # fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Configuration::self_hosted("https://auth.example.com")?;
/// let identity = WorkloadIdentity::from_token_file("/var/run/secrets/tokens/moneykit")
///     // Only needed when several clients trust the same workload.
///     .client_id("live_…");
/// let tokens = TokenSource::federated(config, identity).build()?;
/// # let _ = tokens;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct WorkloadIdentity {
    token_file: PathBuf,
    client_id: Option<String>,
    token_exchange: bool,
}

impl WorkloadIdentity {
    /// The platform token in `path`, presented with the `jwt-bearer` grant.
    pub fn from_token_file(path: impl Into<PathBuf>) -> Self {
        Self {
            token_file: path.into(),
            client_id: None,
            token_exchange: false,
        }
    }

    /// Names the client to get a token for, when more than one trusts this workload.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Presents the token with an RFC 8693 token exchange (`subject_token`) instead of
    /// the `jwt-bearer` grant, for servers or policies that expect one.
    pub fn token_exchange(mut self) -> Self {
        self.token_exchange = true;
        self
    }

    /// The token file.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// The form of a token request presenting the file's current token; set `scope` or
    /// `resource` on it as needed.
    pub async fn token_request(&self) -> Result<GenerateAccessTokenOpts, CredentialError> {
        let token = self.read_token().await?;
        let form = GenerateAccessTokenOpts {
            client_id: self.client_id.clone(),
            ..Default::default()
        };
        Ok(match self.token_exchange {
            false => GenerateAccessTokenOpts {
                grant_type: Some(JWT_BEARER_GRANT.into()),
                assertion: Some(token),
                ..form
            },
            true => GenerateAccessTokenOpts {
                grant_type: Some(TOKEN_EXCHANGE_GRANT.into()),
                subject_token: Some(token),
                subject_token_type: Some(JWT_TOKEN_TYPE.into()),
                ..form
            },
        })
    }

    async fn read_token(&self) -> Result<String, CredentialError> {
        let unreadable = |e| CredentialError::with_source("cannot read the token file", e);
        let read = async {
            let file = tokio::fs::File::open(&self.token_file)
                .await
                .map_err(unreadable)?;
            let mut text = String::new();
            file.take(MAX_TOKEN_FILE + 1)
                .read_to_string(&mut text)
                .await
                .map_err(unreadable)?;
            match text.trim() {
                _ if text.len() as u64 > MAX_TOKEN_FILE => Err(CredentialError::new(format!(
                    "the token file is larger than {MAX_TOKEN_FILE} bytes: not a token"
                ))),
                "" => Err(CredentialError::new("the token file is empty")),
                token => Ok(token.to_owned()),
            }
        };
        read.await
            .map_err(|e| e.context(&self.token_file.display().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn the_jwt_bearer_grant_presents_the_file_as_the_assertion() {
        let (_dir, path) = token_file("eyJ.platform.token\n");
        let form = WorkloadIdentity::from_token_file(&path)
            .token_request()
            .await
            .unwrap();
        assert_eq!(
            form.pairs(),
            [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", "eyJ.platform.token"),
            ]
        );
    }

    #[tokio::test]
    async fn a_token_exchange_presents_the_file_as_the_subject_token() {
        let (_dir, path) = token_file("eyJ.platform.token");
        let form = WorkloadIdentity::from_token_file(&path)
            .client_id("live_abc")
            .token_exchange()
            .token_request()
            .await
            .unwrap();
        assert_eq!(
            form.pairs(),
            [
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange"
                ),
                ("client_id", "live_abc"),
                ("subject_token", "eyJ.platform.token"),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ]
        );
    }

    #[tokio::test]
    async fn files_that_hold_no_token_are_refused_by_name() {
        let (dir, empty) = token_file(" \n");
        let large = dir.path().join("large");
        std::fs::write(&large, "x".repeat(MAX_TOKEN_FILE as usize + 1)).unwrap();
        let missing = dir.path().join("missing");
        for (path, expected) in [
            (&empty, "the token file is empty"),
            (
                &large,
                "the token file is larger than 65536 bytes: not a token",
            ),
            (&missing, "cannot read the token file"),
        ] {
            let e = WorkloadIdentity::from_token_file(path)
                .token_request()
                .await
                .unwrap_err();
            assert_eq!(e.to_string(), format!("{}: {expected}", path.display()));
        }
    }
}
