//! TLS load for the benchmark harness (`bench/run.sh --only sender`): wrk speaks no client
//! certificates, so the mutual-TLS figures come from here.
//!
//! ```text
//! bench-tls certs DIR
//! bench-tls handshakes 127.0.0.1:PORT DIR SECONDS CONNECTIONS [client]
//! bench-tls requests 127.0.0.1:PORT DIR SECONDS CONNECTIONS [client] REQUEST_FILE
//! ```
//! - `certs` writes a server certificate for 127.0.0.1 (`server.pem`, `server.key`), a client
//!   CA (`ca.pem`) and a client certificate it signed, subject `CN=bench,O=Acme`
//!   (`client.pem`, `client.key`).
//! - `handshakes` opens a new TLS connection per request (`GET /healthz/live`, then close),
//!   from CONNECTIONS tasks for SECONDS; `client` presents the client certificate.
//! - `requests` sends the raw HTTP/1.1 request in REQUEST_FILE over CONNECTIONS kept-alive
//!   TLS connections for SECONDS.
//!
//! Each prints one JSON object: `{"requests": N, "rps": R, "errors": E, "non_2xx": M}`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// `bench-tls certs DIR`.
fn certs(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut server = CertificateParams::new(Vec::<String>::new()).unwrap();
    server.subject_alt_names = vec![SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())];
    write("server.pem", server.self_signed(&server_key).unwrap().pem());
    write("server.key", server_key.serialize_pem());

    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "bench client CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    write("ca.pem", ca.self_signed(&ca_key).unwrap().pem());
    let client_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::OrganizationName, "Acme");
    client.distinguished_name.push(DnType::CommonName, "bench");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let signed = client
        .signed_by(&client_key, &Issuer::new(ca, &ca_key))
        .unwrap();
    write("client.pem", signed.pem());
    write("client.key", client_key.serialize_pem());
}

/// A client configuration trusting `DIR/server.pem`, presenting `DIR/client.pem` when
/// `with_certificate`.
fn client_config(dir: &Path, with_certificate: bool) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("server.pem")).unwrap())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = if with_certificate {
        let chain = vec![CertificateDer::from_pem_file(dir.join("client.pem")).unwrap()];
        let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Counters shared by the load tasks.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    errors: AtomicU64,
    non_2xx: AtomicU64,
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body) into `buf`; its
/// status, or `None` if the connection broke.
async fn read_response<S: AsyncReadExt + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<u16> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).ok()?;
            let status = head.get(9..12)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(status);
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn count(counts: &Counts, status: Option<u16>) {
    match status {
        Some(s) => {
            counts.requests.fetch_add(1, Ordering::Relaxed);
            if !(200..300).contains(&s) {
                counts.non_2xx.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A new TLS connection to `addr`.
async fn connect(
    addr: &str,
    connector: &TlsConnector,
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.ok()
}

/// One task's loop until `until`: a new connection per request, or `request` repeated
/// over one kept-alive connection (reopened if it breaks).
async fn task(
    addr: String,
    connector: TlsConnector,
    request: Option<Arc<Vec<u8>>>,
    counts: Arc<Counts>,
    until: Instant,
) {
    let mut buf = Vec::with_capacity(16 * 1024);
    let probe = format!("GET /healthz/live HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    while Instant::now() < until {
        let Some(mut stream) = connect(&addr, &connector).await else {
            count(&counts, None);
            continue;
        };
        match &request {
            None => {
                let ok = stream.write_all(probe.as_bytes()).await.is_ok();
                let status = if ok {
                    read_response(&mut stream, &mut buf).await
                } else {
                    None
                };
                count(&counts, status);
            }
            Some(request) => {
                while Instant::now() < until {
                    if stream.write_all(request).await.is_err() {
                        count(&counts, None);
                        break;
                    }
                    let status = read_response(&mut stream, &mut buf).await;
                    count(&counts, status);
                    if status.is_none() {
                        break;
                    }
                }
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (addr, dir, seconds, connections, rest) = match args.as_slice() {
        ["certs", dir] => return certs(Path::new(dir)),
        [
            mode @ ("handshakes" | "requests"),
            addr,
            dir,
            seconds,
            connections,
            rest @ ..,
        ] => (
            addr,
            Path::new(dir),
            seconds.parse::<u64>().expect("SECONDS"),
            connections.parse::<usize>().expect("CONNECTIONS"),
            (*mode, rest),
        ),
        _ => panic!("usage: see the module documentation"),
    };
    let (mode, rest) = rest;
    let with_certificate = rest.first() == Some(&"client");
    let request = match mode {
        "requests" => {
            let file = rest.last().expect("REQUEST_FILE");
            Some(Arc::new(
                std::fs::read(file).expect("REQUEST_FILE readable"),
            ))
        }
        _ => None,
    };
    let connector = TlsConnector::from(client_config(dir, with_certificate));
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(task(
                (*addr).to_owned(),
                connector.clone(),
                request.clone(),
                counts.clone(),
                until,
            ))
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = counts.requests.load(Ordering::Relaxed);
    println!(
        "{{\"requests\": {requests}, \"rps\": {:.1}, \"errors\": {}, \"non_2xx\": {}}}",
        requests as f64 / elapsed,
        counts.errors.load(Ordering::Relaxed),
        counts.non_2xx.load(Ordering::Relaxed)
    );
}
