//! Client certificates (RFC 8705): asked for on the TLS listener, and read from a trusted
//! proxy's header when TLS ends in front of the server.
//!
//! The TLS handshake requests a certificate but never requires one, and accepts any
//! certificate whose holder proves its key (the handshake signature): a
//! `self_signed_tls_client_auth` client's certificate chains to nothing. Whether a
//! certificate chains to a configured client CA (`--client-ca-file`) is judged once per
//! connection, after the handshake, and kept beside the certificate for the engine to
//! weigh: only `tls_client_auth` needs it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use axum::http::{HeaderMap, HeaderName};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::domain::certificates::ClientCertificate;
use crate::net::Cidr;

/// The crypto provider of every TLS configuration here.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The handshake side: asks for a client certificate, takes any whose holder signs the
/// handshake, and hints the client CAs' names so clients pick a matching certificate.
#[derive(Debug)]
pub struct RequestClientCertificate {
    provider: Arc<CryptoProvider>,
    /// The client CAs' verifier, for its name hints.
    ca: Option<Arc<dyn ClientCertVerifier>>,
}

impl RequestClientCertificate {
    /// Asks for certificates, hinting the CAs of `ca` when given.
    pub fn new(ca: Option<Arc<dyn ClientCertVerifier>>) -> Self {
        Self {
            provider: provider(),
            ca,
        }
    }
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.as_ref().map_or(&[], |ca| ca.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Judged after the handshake (see the module docs); the signatures below still
        // prove the client holds the certificate's key.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Loads `--client-ca-file`: the CAs `tls_client_auth` certificates must chain to.
pub fn load_client_cas(path: &Path) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("--client-ca-file: cannot read {}", path.display()))?
    {
        let cert =
            cert.with_context(|| format!("--client-ca-file: {} is not PEM", path.display()))?;
        roots.add(cert).with_context(|| {
            format!("--client-ca-file: {} holds an unusable CA", path.display())
        })?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "--client-ca-file: {} holds no certificate",
        path.display()
    );
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .with_context(|| format!("--client-ca-file: {} is not usable", path.display()))
}

/// Where request certificates come from, and how they are judged.
#[derive(Clone, Default)]
pub struct CertificateSource {
    /// The client CAs (`--client-ca-file`).
    pub ca: Option<Arc<dyn ClientCertVerifier>>,
    /// The header a TLS-terminating proxy forwards the client's certificate in
    /// (`--client-cert-header`), believed only from the connection's trusted proxies.
    pub header: Option<HeaderName>,
}

impl std::fmt::Debug for CertificateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSource")
            .field("ca", &self.ca.is_some())
            .field("header", &self.header)
            .finish()
    }
}

/// Largest forwarded-certificate header read: a certificate chain, URL-encoded.
const MAX_HEADER_BYTES: usize = 16 * 1024;

impl CertificateSource {
    /// The certificate a TLS client presented (`chain`, leaf first), judged against the
    /// client CAs; `None` when it is not an X.509 certificate this server can read.
    pub fn from_tls(&self, chain: &[CertificateDer<'_>]) -> Option<ClientCertificate> {
        let (leaf, intermediates) = chain.split_first()?;
        self.judge(leaf, intermediates)
    }

    fn judge(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Option<ClientCertificate> {
        let chain = match &self.ca {
            None => Err("no client CA is configured (--client-ca-file)".to_owned()),
            Some(ca) => ca
                .verify_client_cert(leaf, intermediates, UnixTime::now())
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        ClientCertificate::from_der(leaf, chain).ok()
    }

    /// The certificate a trusted proxy forwarded for a request from `peer`: the header
    /// holds a URL-encoded PEM (nginx `$ssl_client_escaped_cert`), or an Envoy
    /// `X-Forwarded-Client-Cert` element whose `Cert=` is one. From a peer not among
    /// `proxies` (`--trusted-proxy`) the header is ignored (and that is logged, once).
    pub fn from_header(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        proxies: &[Cidr],
    ) -> Option<ClientCertificate> {
        let name = self.header.as_ref()?;
        let value = headers.get(name)?;
        if !proxies.iter().any(|proxy| proxy.contains(peer)) {
            warn_once_untrusted(name, peer);
            return None;
        }
        if value.len() > MAX_HEADER_BYTES {
            return None;
        }
        let pem = forwarded_pem(value.to_str().ok()?)?;
        let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes());
        let leaf = certs.next()?.ok()?;
        let intermediates: Vec<_> = certs.filter_map(Result::ok).collect();
        self.judge(&leaf, &intermediates)
    }
}

/// The PEM in a forwarded-certificate header value, URL-decoded: the whole value (nginx),
/// or the `Cert` pair of the first element of an Envoy `X-Forwarded-Client-Cert` list.
fn forwarded_pem(value: &str) -> Option<String> {
    let value = value.trim();
    let encoded =
        if value.starts_with("-----") || value.starts_with("%2D") || value.starts_with("%2d") {
            value
        } else {
            xfcc_cert(value)?
        };
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    decoded
        .contains("-----BEGIN CERTIFICATE-----")
        .then(|| decoded.into_owned())
}

/// The `Cert` value of the first element of an Envoy `X-Forwarded-Client-Cert` header:
/// elements are separated by `,`, pairs by `;`, keys and values by `=`, and a value may
/// be quoted (holding `,`, `;` or `=`). Only a pair whose key is exactly `Cert` counts, so
/// a `Cert=` inside another pair's value (a subject a client chose) is never taken.
fn xfcc_cert(header: &str) -> Option<&str> {
    let mut rest = header;
    loop {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                // Inside quotes a `"` is escaped as `\"`: the value ends at the first
                // unescaped one.
                let mut escaped = false;
                let end = quoted.char_indices().find_map(|(i, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes.then_some(i)
                })?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => {
                let end = after.find([';', ',']).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if key.trim() == "Cert" {
            return Some(value);
        }
        match next.chars().next() {
            Some(';') => rest = &next[1..],
            // The end of the first element (or of the header): no `Cert` in it.
            _ => return None,
        }
    }
}

/// A forwarded-certificate header from a peer not in `--trusted-proxy` is ignored: say
/// so, once (anyone can send the header; only a proxy's is believed).
fn warn_once_untrusted(name: &HeaderName, peer: IpAddr) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            header = %name,
            %peer,
            "a request carried the --client-cert-header from an address that is not a \
             --trusted-proxy; the header is ignored (logged once)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_pems_are_read_from_nginx_and_envoy_forms() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let encoded: String =
            percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(forwarded_pem(&encoded).as_deref(), Some(pem));
        let envoy = format!("By=spiffe://a;Hash=abc;Cert=\"{encoded}\";Subject=\"CN=x\"");
        assert_eq!(forwarded_pem(&envoy).as_deref(), Some(pem));
        let unquoted = format!("Hash=abc;Cert={encoded};URI=spiffe://b");
        assert_eq!(forwarded_pem(&unquoted).as_deref(), Some(pem));
        assert_eq!(forwarded_pem("nonsense"), None);
        assert_eq!(forwarded_pem("Cert=\"unterminated"), None);
        // A `Cert=` inside another pair's value, or in a later element, is not the
        // certificate of this request.
        let smuggled = format!("By=x;Hash=00;Subject=\"CN=Cert={encoded}\"");
        assert_eq!(forwarded_pem(&smuggled), None);
        let later = format!("By=x;Hash=00,By=y;Cert=\"{encoded}\"");
        assert_eq!(forwarded_pem(&later), None);
        let escaped = format!("Subject=\"CN=\\\";Cert={encoded};x=\\\"\";By=y");
        assert_eq!(forwarded_pem(&escaped), None, "{escaped}");
        let quoted_separators = format!("Subject=\"CN=a,O=b;c\";Cert=\"{encoded}\"");
        assert_eq!(forwarded_pem(&quoted_separators).as_deref(), Some(pem));
    }
}
