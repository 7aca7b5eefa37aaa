//! [`ClientCertificate`]: a TLS client certificate (RFC 8705), which binds the tokens
//! issued over its connection to it (`cnf["x5t#S256"]`) and can stand in for the client
//! secret (`tls_client_auth`, `self_signed_tls_client_auth`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::CredentialError;
use crate::private_key::pem;

/// A certificate chain and its private key, presented whenever the server asks for a
/// client certificate. Cheap to clone; `Debug` shows the thumbprint, never the key.
///
/// Set it with [`Configuration::client_certificate`](crate::Configuration::client_certificate)
/// for every request of an API client, or on a token source: with
/// [`TokenSource::with_client_certificate`](crate::TokenSource::with_client_certificate)
/// the certificate is the client's only credential.
///
/// ```no_run
/// use moneykit::{ClientCertificate, Configuration, TokenSource};
///
/// # fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let certificate = ClientCertificate::from_files("client.crt", "client.key")?;
/// let config = Configuration::self_hosted("https://auth.example.com")?;
/// let tokens = TokenSource::with_client_certificate(config, "live_…", certificate).build()?;
/// # let _ = tokens;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClientCertificate(Arc<Inner>);

struct Inner {
    identity: reqwest::Identity,
    thumbprint: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.0.thumbprint)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Reads the certificate chain (PEM, the client's certificate first) and the private
    /// key (PEM: PKCS#8, SEC1 or PKCS#1) from two files; they may be the same file.
    pub fn from_files(
        certificate_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> Result<Self, CredentialError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| {
                CredentialError::with_source(format!("cannot read {}", path.display()), e)
            })
        };
        let (chain_path, key_path) = (certificate_chain.as_ref(), private_key.as_ref());
        let chain = read(chain_path)?;
        let key = read(key_path)?;
        let chain =
            certificates(&chain).map_err(|e| e.context(&chain_path.display().to_string()))?;
        let key = private_key_der(&key).map_err(|e| e.context(&key_path.display().to_string()))?;
        Self::new(&chain, &key)
    }

    /// The certificate chain (PEM, the client's certificate first) and its private key
    /// (PEM: PKCS#8, SEC1 or PKCS#1). Other PEM sections (`EC PARAMETERS`) are skipped; a
    /// key that is not the certificate's is refused.
    pub fn from_pem(certificate_chain: &[u8], private_key: &[u8]) -> Result<Self, CredentialError> {
        Self::new(
            &certificates(certificate_chain)?,
            &private_key_der(private_key)?,
        )
    }

    fn new(
        chain: &[CertificateDer<'static>],
        key: &PrivateKeyDer<'static>,
    ) -> Result<Self, CredentialError> {
        // reqwest reads one PEM document and refuses sections it does not know: give it
        // exactly the chain and the key.
        let mut document: String = chain.iter().map(|cert| pem("CERTIFICATE", cert)).collect();
        let label = match key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        document.push_str(&pem(label, key.secret_der()));
        let unusable = |_| {
            CredentialError::new(
                "the certificate and the private key cannot be used together for TLS \
                 (is the key the certificate's?)",
            )
        };
        let identity = reqwest::Identity::from_pem(document.as_bytes()).map_err(unusable)?;
        // TLS checks the pair only when a client is built: build one now, so a key that is
        // not the certificate's fails here, as a credential error.
        reqwest::Client::builder()
            .identity(identity.clone())
            .build()
            .map_err(unusable)?;
        Ok(Self(Arc::new(Inner {
            identity,
            thumbprint: certificate_thumbprint(&chain[0]),
        })))
    }

    /// The RFC 8705 thumbprint of the client's certificate: the `cnf["x5t#S256"]` of the
    /// tokens issued over a connection that presented it.
    pub fn thumbprint(&self) -> &str {
        &self.0.thumbprint
    }

    pub(crate) fn identity(&self) -> reqwest::Identity {
        self.0.identity.clone()
    }
}

/// The RFC 8705 §3.1 thumbprint of a certificate: base64url of the SHA-256 of its DER,
/// as a certificate-bound token names it in `cnf["x5t#S256"]`.
pub fn certificate_thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, der))
}

/// The `CERTIFICATE` sections of a PEM document, at least one.
pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CredentialError::new("not a valid PEM document"))?;
    if chain.is_empty() {
        return Err(CredentialError::new("no CERTIFICATE in the PEM"));
    }
    Ok(chain)
}

fn private_key_der(pem: &[u8]) -> Result<PrivateKeyDer<'static>, CredentialError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        CredentialError::new(
            "no usable private key in the PEM (an encrypted one must be decrypted first)",
        )
    })
}
