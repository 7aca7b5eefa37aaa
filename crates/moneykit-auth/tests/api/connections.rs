//! Connection-level defences for HTTP/2: a connection must open a stream within the
//! header timeout and is closed once idle for the keep-alive timeout, over plain TCP and
//! over TLS, and one address cannot take every connection slot.
//!
//! The floods are bounded (a few hundred connections, each test well under 15 s) and stay
//! on loopback; the "other" client connects from 127.0.0.2, which Linux routes to lo.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moneykit_auth::http::tls::TlsFiles;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::*;

/// The HTTP/2 client preface followed by an empty SETTINGS frame: all a client has to
/// send for the server to take it for an HTTP/2 connection.
const PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A HEADERS frame opening stream 1 with `GET /healthz/live` (HPACK, no Huffman), ending
/// the stream.
fn get_live_frame() -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    block.push(0x04); // :path, literal without indexing
    block.push(13);
    block.extend_from_slice(b"/healthz/live");
    block.push(0x01); // :authority, literal without indexing
    block.push(1);
    block.push(b'x');
    let mut frame = vec![0, 0, block.len() as u8, 0x01, 0x05, 0, 0, 0, 1];
    frame.extend_from_slice(&block);
    frame
}

/// A TCP connection to `addr` from the loopback address `source`.
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(addr).await
}

/// How long until the server closes `stream` (end of file or reset), at most `limit`.
async fn time_to_close(
    mut stream: impl AsyncRead + Unpin,
    limit: Duration,
    since: Instant,
) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    let closed = async { while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {} };
    tokio::time::timeout(limit, closed).await.ok()?;
    Some(since.elapsed())
}

/// A client that connects from `source`.
fn client_from(source: [u8; 4]) -> reqwest::ClientBuilder {
    reqwest::Client::builder().local_address(IpAddr::from(source))
}

#[tokio::test]
async fn http2_connections_that_open_no_stream_are_closed_and_cannot_take_every_slot() {
    let _load = heavy_load().await;
    let header_timeout = Duration::from_secs(1);
    let keep_alive = Duration::from_secs(2);
    let app = spawn_app_with(|s| {
        s.connection.header_read_timeout = header_timeout;
        s.connection.keep_alive_timeout = keep_alive;
        s.connection.max_connections = 20;
        s.connection.max_connections_per_address = 10;
    })
    .await;
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();

    // 300 connections from one address that send the preface and SETTINGS, then nothing.
    let started = Instant::now();
    let mut flood = Vec::new();
    for i in 0..300 {
        // Bounded: were the slots never released, the kernel's backlog would fill up.
        let connected =
            tokio::time::timeout(Duration::from_secs(1), connect_from([127, 0, 0, 1], addr)).await;
        let mut stream = connected
            .unwrap_or_else(|_| panic!("connection {i} not accepted within a second"))
            .unwrap();
        let _ = stream.write_all(PREFACE_AND_SETTINGS).await; // refused ones may be reset
        flood.push(stream);
    }
    // Another address is served at once.
    let other = client_from([127, 0, 0, 2]).build().unwrap();
    let asked = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(1),
        other.get(app.url("/healthz/live")).send(),
    )
    .await
    .expect("answered within a second beside 300 preface-only connections")
    .unwrap();
    assert_eq!(response.status(), 200);
    println!("answered in {:?} beside the flood", asked.elapsed());

    // Every flood connection is closed by the header timeout (plus scheduling slack).
    let closes = futures_util::future::join_all(
        flood
            .into_iter()
            .map(|s| time_to_close(s, Duration::from_secs(4), started)),
    )
    .await;
    let open = closes.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        open, 0,
        "{open} preface-only connections still open after 4 s"
    );
    let last = closes.iter().flatten().max().unwrap();
    assert!(*last < header_timeout + Duration::from_secs(2), "{last:?}");
    println!("all 300 closed within {last:?}");
    // So the slots are free again, for that address too.
    let same = client_from([127, 0, 0, 1]).build().unwrap();
    let response = tokio::time::timeout(
        Duration::from_secs(1),
        same.get(app.url("/healthz/live")).send(),
    )
    .await
    .expect("the flooding address is served again once its slots are released")
    .unwrap();
    assert_eq!(response.status(), 200);

    // A connection that opened a stream is closed (GOAWAY, then end of file) once it has
    // had none open for the keep-alive timeout, not kept forever. The client acks the
    // PING of the graceful close, as real clients do.
    let mut h2 = connect_from([127, 0, 0, 3], addr).await.unwrap();
    h2.write_all(PREFACE_AND_SETTINGS).await.unwrap();
    h2.write_all(&get_live_frame()).await.unwrap();
    let asked = Instant::now();
    let (mut seen, mut parsed, mut types) = (Vec::new(), 0, Vec::new());
    let mut buf = [0u8; 4096];
    let waited = loop {
        let read = tokio::time::timeout(Duration::from_secs(5), h2.read(&mut buf)).await;
        let Ok(Ok(n)) = read else {
            panic!("an idle HTTP/2 connection is closed in the end: {read:?}");
        };
        if n == 0 {
            break asked.elapsed();
        }
        seen.extend_from_slice(&buf[..n]);
        while let Some((kind, flags, payload)) = next_frame(&seen, &mut parsed) {
            types.push(kind);
            if kind == 0x6 && flags & 0x1 == 0 {
                let mut ack = vec![0, 0, 8, 0x6, 0x1, 0, 0, 0, 0];
                ack.extend_from_slice(payload);
                h2.write_all(&ack).await.unwrap();
            }
        }
    };
    println!("idle HTTP/2 connection closed {waited:?} after its request: frames {types:?}");
    assert!(types.contains(&0x1), "the response's HEADERS");
    assert!(types.contains(&0x7), "closed with a GOAWAY");
    assert!(
        waited > keep_alive - Duration::from_millis(500) && waited < keep_alive * 2,
        "{waited:?}"
    );
}

/// The next complete HTTP/2 frame in `bytes` from `*at` on (type, flags, payload); moves
/// `*at` past it.
fn next_frame<'a>(bytes: &'a [u8], at: &mut usize) -> Option<(u8, u8, &'a [u8])> {
    let head = bytes.get(*at..*at + 9)?;
    let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let payload = bytes.get(*at + 9..*at + 9 + length)?;
    *at += 9 + length;
    Some((head[3], head[4], payload))
}

#[tokio::test]
async fn http2_over_tls_connections_that_open_no_stream_are_closed() {
    let _load = heavy_load().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::tls::self_signed(dir.path(), "h2");
    let header_timeout = Duration::from_secs(1);
    let app = spawn_app_with(|s| {
        s.connection.header_read_timeout = header_timeout;
        s.connection.max_connections = 20;
        s.connection.max_connections_per_address = 10;
        s.tls = Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    })
    .await;
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let https = app.base.replace("http://", "https://");

    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&cert).unwrap();
    use rustls_pki_types::pem::PemObject;
    for der in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(der.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();

    // 20 connections from one address (the whole connection cap) that finish the TLS
    // handshake with ALPN h2, send the preface and SETTINGS, then nothing. Those past the
    // per-address cap are refused before the handshake.
    let started = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..20 {
        let tcp = connect_from([127, 0, 0, 1], addr).await.unwrap();
        let Ok(Ok(mut tls)) = tokio::time::timeout(
            Duration::from_millis(500),
            connector.connect(name.clone(), tcp),
        )
        .await
        else {
            continue;
        };
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls.write_all(PREFACE_AND_SETTINGS).await.unwrap();
        tls.flush().await.unwrap();
        flood.push(tls);
    }
    assert!(!flood.is_empty(), "some handshakes succeed");
    // An ordinary HTTP/2 request from another address is answered at once.
    let pem = reqwest::Certificate::from_pem(&pem).unwrap();
    let other = client_from([127, 0, 0, 2])
        .tls_certs_only([pem])
        .build()
        .unwrap();
    let response = tokio::time::timeout(
        Duration::from_secs(1),
        other.get(format!("{https}/healthz/live")).send(),
    )
    .await
    .expect("answered within a second beside the TLS flood")
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    // The preface-only TLS connections are closed by the header timeout.
    let held = flood.len();
    let closes = futures_util::future::join_all(
        flood
            .into_iter()
            .map(|s| time_to_close(s, Duration::from_secs(4), started)),
    )
    .await;
    let open = closes.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} of {held} still open after 4 s");
    let last = closes.iter().flatten().max().unwrap();
    assert!(*last < header_timeout + Duration::from_secs(2), "{last:?}");
}
