//! HTTPS with rustls: served with HTTP/2 by ALPN, and a renewed certificate is picked up
//! without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use moneykit_auth::http::tls::TlsFiles;

use crate::helpers::*;

/// A self-signed P-256 certificate for 127.0.0.1, written as `name`.crt / `name`.key.
/// Made in-process with rcgen: no `openssl` binary needed.
pub fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::IpAddress(
        std::net::Ipv4Addr::LOCALHOST.into(),
    )];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let certificate = params.self_signed(&pair).unwrap();
    std::fs::write(&cert, certificate.pem()).unwrap();
    std::fs::write(&key, pair.serialize_pem()).unwrap();
    (cert, key)
}

pub fn trusting(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_is_served_and_a_renewed_certificate_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = self_signed(dir.path(), "a");
    let (cert_b, key_b) = self_signed(dir.path(), "b");
    let live_cert = dir.path().join("live.crt");
    let live_key = dir.path().join("live.key");
    std::fs::copy(&cert_a, &live_cert).unwrap();
    std::fs::copy(&key_a, &live_key).unwrap();
    let app = spawn_app_with(|s| {
        s.tls = Some(TlsFiles {
            cert: live_cert.clone(),
            key: live_key.clone(),
        });
    })
    .await;
    assert!(app.issuer.starts_with("https://"), "{}", app.issuer);
    let https = app.base.replace("http://", "https://");

    let client_a = trusting(&cert_a);
    let response = client_a
        .get(format!("{https}/healthz/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
    let (client, secret) = app.create_client("a", None).await;
    let token = client_a
        .post(format!("{https}/auth/token"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 201);
    // Plain HTTP on the TLS port gets nowhere.
    assert!(app.http.get(app.url("/healthz/live")).send().await.is_err());

    // Renewal: the files are replaced; new connections get the new certificate.
    let client_b = trusting(&cert_b);
    assert!(
        client_b
            .get(format!("{https}/healthz/live"))
            .send()
            .await
            .is_err()
    );
    std::fs::copy(&key_b, dir.path().join("tmp.key")).unwrap();
    std::fs::copy(&cert_b, dir.path().join("tmp.crt")).unwrap();
    std::fs::rename(dir.path().join("tmp.key"), &live_key).unwrap();
    std::fs::rename(dir.path().join("tmp.crt"), &live_cert).unwrap();
    let started = Instant::now();
    while client_b
        .get(format!("{https}/healthz/live"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "reloaded within seconds"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("renewed certificate served after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_certificate_that_does_not_match_its_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, _) = self_signed(dir.path(), "a");
    let (_, key_b) = self_signed(dir.path(), "b");
    let db = TestDb::new().await;
    let mut settings = test_settings(&db);
    settings.tls = Some(TlsFiles {
        cert: cert_a,
        key: key_b,
    });
    let error = moneykit_auth::startup::Application::build(settings)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("do not match"), "{error}");
}
