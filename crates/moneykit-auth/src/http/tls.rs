//! Optional TLS, terminated in the server with rustls (`--tls-cert`, `--tls-key`).
//!
//! The certificate and key are PEM files. They are read at start (a bad pair stops the
//! server from starting) and read again on SIGHUP, or when either file's modification time
//! changes (checked every few seconds), so a renewed certificate (certbot, cert-manager)
//! is picked up without a restart. A pair that fails to load is logged and the previous
//! one stays in use. Connections negotiate HTTP/2 or HTTP/1.1 by ALPN. Clients are asked
//! for a certificate, never required to send one (RFC 8705; see [`super::mtls`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Reads the pair into a server configuration that asks clients for a certificate as
/// `clients` says (see [`super::mtls`]).
pub fn load(
    files: &TlsFiles,
    clients: Arc<dyn ClientCertVerifier>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read the certificate {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", files.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no certificate",
        files.cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a private key from {}", files.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(super::mtls::provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(clients)
        .with_single_cert(certs, key)
        .context("the certificate and the private key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The current TLS configuration, swapped when the files change.
pub struct ReloadingConfig {
    files: TlsFiles,
    clients: Arc<dyn ClientCertVerifier>,
    current: ArcSwap<ServerConfig>,
}

impl ReloadingConfig {
    /// Loads the pair; fails if it cannot be used. Clients are asked for a certificate as
    /// `clients` says.
    pub fn new(files: TlsFiles, clients: Arc<dyn ClientCertVerifier>) -> anyhow::Result<Self> {
        let first = load(&files, clients.clone())?;
        Ok(Self {
            files,
            clients,
            current: ArcSwap::new(first),
        })
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    fn reload(&self, why: &str) {
        match load(&self.files, self.clients.clone()) {
            Ok(config) => {
                self.current.store(config);
                tracing::info!(reason = why, cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => tracing::error!(
                reason = why, error = %format!("{error:#}"),
                "TLS certificate not reloaded; keeping the previous one"
            ),
        }
    }

    /// Reloads on SIGHUP and when the files change, until `shutdown` changes.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, every: Duration) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let stamp = |f: &TlsFiles| (modified(&f.cert), modified(&f.key));
        let mut last = stamp(&self.files);
        let mut tick = tokio::time::interval(every);
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = hup => self.reload("SIGHUP"),
                _ = tick.tick() => {
                    let now = stamp(&self.files);
                    if now != last {
                        last = now;
                        self.reload("file changed");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
