//! Mutual TLS (RFC 8705) against a real HTTPS server: clients authenticated by a
//! certificate from the client CA (`tls_client_auth`) or a registered self-signed one
//! (`self_signed_tls_client_auth`), certificate-bound tokens on both surfaces, the
//! certificate a trusted proxy forwards, and every certificate that must not pass.
//! Certificates are made in the tests with rcgen.

use std::path::{Path, PathBuf};

use moneykit_auth::http::tls::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;

use crate::helpers::*;
use crate::tls::self_signed;

/// A certificate authority for client certificates.
pub(crate) struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

pub(crate) fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// A client certificate: PEM of certificate and key together (what reqwest's identity
/// takes), and the certificate's DER.
pub(crate) struct ClientCert {
    pub(crate) identity: Vec<u8>,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) der: Vec<u8>,
}

impl ClientCert {
    pub(crate) fn thumbprint(&self) -> String {
        use base64::Engine;
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.der);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.as_ref())
    }
}

/// A client certificate for `cn` (organisation Acme) with DNS name `dns`, signed by `ca`
/// or self-signed; `expired` puts its validity in the past.
pub(crate) fn client_cert(ca: Option<&Ca>, cn: &str, dns: &str, expired: bool) -> ClientCert {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = vec![SanType::DnsName(dns.try_into().unwrap())];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if expired {
        params.not_before = time::macros::datetime!(2020-01-01 0:00 UTC);
        params.not_after = time::macros::datetime!(2021-01-01 0:00 UTC);
    }
    let cert = match ca {
        Some(ca) => params
            .signed_by(&key, &Issuer::new(ca.params.clone(), &ca.key))
            .unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    ClientCert {
        identity: format!("{cert_pem}{key_pem}").into_bytes(),
        key_pem,
        cert_pem,
        der: cert.der().to_vec(),
    }
}

/// An HTTPS server trusting `ca` for client certificates, and its certificate.
pub(crate) async fn mtls_app(dir: &Path, ca: &Ca) -> (TestApp, PathBuf) {
    let (cert, key) = self_signed(dir, "server");
    let ca_file = dir.join("client-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let app = spawn_app_with(|s| {
        s.tls = Some(TlsFiles {
            cert: cert.clone(),
            key,
        });
        s.sender.client_ca_file = Some(ca_file);
    })
    .await;
    (app, cert)
}

/// An HTTPS client trusting the server's certificate, presenting `identity` if given.
fn https_client(server_cert: &Path, identity: Option<&ClientCert>) -> reqwest::Client {
    let pem = std::fs::read(server_cert).unwrap();
    let mut builder =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]);
    if let Some(identity) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(&identity.identity).unwrap());
    }
    builder.build().unwrap()
}

/// `POST {base}{path}` with `client_id` alone in the body (certificate authentication).
async fn token_by_certificate(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    client_id: &str,
) -> reqwest::Response {
    http.post(format!("{base}{path}"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap()
}

/// The `cnf` of the token in a token response with `status`.
async fn bound_to(response: reqwest::Response, status: u16) -> (String, Value) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let cnf = jwt_part(&token, 1)["cnf"].clone();
    (token, cnf)
}

pub(crate) fn https(app: &TestApp) -> String {
    app.base.replace("http://", "https://")
}

/// Creates a certificate client with `args` (after `--app`) through the CLI; its id.
pub(crate) async fn cli_client(app: &TestApp, args: &[&str]) -> String {
    let created = app.create_app("m").await;
    let mut all = vec![
        "clients",
        "create",
        "--app",
        &created.id,
        "--scope",
        "a",
        "--json",
    ];
    all.extend_from_slice(args);
    let out = app.cli_async(&all).await;
    assert!(out.status.success(), "{out:?}");
    let client: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(client.get("client_secret").is_none(), "no secret: {client}");
    app.synced().await;
    client["client_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn certificate_clients_get_bound_tokens_on_both_surfaces() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("Client CA");
    let (app, server_cert) = mtls_app(dir.path(), &ca).await;
    let base = https(&app);

    // tls_client_auth, by subject DN (RFC 4514 order) and by DNS name.
    let billing = client_cert(Some(&ca), "billing", "billing.acme.test", false);
    let by_dn = cli_client(
        &app,
        &[
            "--auth-method",
            "tls_client_auth",
            "--tls-subject-dn",
            "CN=billing,O=Acme",
        ],
    )
    .await;
    let by_dns = cli_client(&app, &["--tls-san-dns", "billing.acme.test"]).await;
    let http = https_client(&server_cert, Some(&billing));
    for id in [&by_dn, &by_dns] {
        let (_, cnf) = bound_to(
            token_by_certificate(&http, &base, "/auth/token", id).await,
            201,
        )
        .await;
        assert_eq!(cnf["x5t#S256"], billing.thumbprint());
        let (token, cnf) = bound_to(
            token_by_certificate(&http, &base, "/oauth2/token", id).await,
            200,
        )
        .await;
        assert_eq!(cnf["x5t#S256"], billing.thumbprint());
        // Introspection shows the binding; the token works at /auth/introspect over the
        // same certificate, and not without it.
        let seen: Value = http
            .post(format!("{base}/oauth2/introspect"))
            .form(&[("token", token.as_str()), ("client_id", id.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seen["active"], true, "{seen}");
        assert_eq!(seen["cnf"]["x5t#S256"], billing.thumbprint(), "{seen}");
        let ok = http
            .get(format!("{base}/auth/introspect"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_introspected_as(ok, id).await;
        let stolen = https_client(&server_cert, None)
            .get(format!("{base}/auth/introspect"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let challenge = stolen.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer "),
            "the scheme it came in: {challenge}"
        );
        assert_invalid_token(stolen).await;
    }

    // self_signed_tls_client_auth with the certificate registered from a PEM file.
    let own = client_cert(None, "robot", "robot.acme.test", false);
    let pem_file = dir.path().join("robot.pem");
    std::fs::write(&pem_file, &own.cert_pem).unwrap();
    let robot = cli_client(
        &app,
        &[
            "--auth-method",
            "self_signed_tls_client_auth",
            "--cert-file",
            pem_file.to_str().unwrap(),
        ],
    )
    .await;
    let http = https_client(&server_cert, Some(&own));
    for (path, status) in [("/auth/token", 201), ("/oauth2/token", 200)] {
        let (_, cnf) = bound_to(
            token_by_certificate(&http, &base, path, &robot).await,
            status,
        )
        .await;
        assert_eq!(cnf["x5t#S256"], own.thumbprint());
    }

    // A secret client over mTLS: authenticated by its secret, its token bound anyway.
    let (client, secret) = app.create_client("a", None).await;
    let response = http
        .post(format!("{base}/auth/token"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (_, cnf) = bound_to(response, 201).await;
    assert_eq!(cnf["x5t#S256"], own.thumbprint());

    let metadata: Value = https_client(&server_cert, None)
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["tls_client_certificate_bound_access_tokens"], true,
        "{metadata}"
    );
    let methods = metadata["token_endpoint_auth_methods_supported"].to_string();
    assert!(
        methods.contains("\"tls_client_auth\"") && methods.contains("self_signed_tls_client_auth"),
        "{metadata}"
    );
}

#[tokio::test]
async fn certificates_that_must_not_authenticate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("Client CA");
    let (app, server_cert) = mtls_app(dir.path(), &ca).await;
    let base = https(&app);
    let billing = cli_client(&app, &["--tls-subject-dn", "CN=billing,O=Acme"]).await;
    let own = client_cert(None, "robot", "robot.acme.test", false);
    let pem_file = dir.path().join("robot.pem");
    std::fs::write(&pem_file, &own.cert_pem).unwrap();
    let robot = cli_client(&app, &["--cert-file", pem_file.to_str().unwrap()]).await;

    let foreign_ca = new_ca("Someone else's CA");
    let cases = [
        (
            "expired, from the CA",
            Some(client_cert(Some(&ca), "billing", "b.test", true)),
            &billing,
        ),
        (
            "from a foreign CA",
            Some(client_cert(Some(&foreign_ca), "billing", "b.test", false)),
            &billing,
        ),
        (
            "self-signed for a CA client",
            Some(client_cert(None, "billing", "b.test", false)),
            &billing,
        ),
        (
            "another identity",
            Some(client_cert(Some(&ca), "payroll", "p.test", false)),
            &billing,
        ),
        ("no certificate", None, &billing),
        (
            "another self-signed certificate",
            Some(client_cert(None, "robot", "robot.acme.test", false)),
            &robot,
        ),
        (
            "an expired self-signed certificate",
            Some(client_cert(None, "robot", "r.test", true)),
            &robot,
        ),
        ("no certificate, self-signed client", None, &robot),
    ];
    for (what, cert, id) in cases {
        let http = https_client(&server_cert, cert.as_ref());
        let response = token_by_certificate(&http, &base, "/auth/token", id).await;
        assert_eq!(response.status(), 401, "{what}");
        assert_invalid_client(response).await;
        let response = token_by_certificate(&http, &base, "/oauth2/token", id).await;
        assert_rfc_error(response, 401, "invalid_client").await;
    }
    // A certificate of the CA matching no client, with an unknown id; the secret client
    // path with a certificate alone.
    let stranger = https_client(
        &server_cert,
        Some(&client_cert(Some(&ca), "billing", "b.test", false)),
    );
    assert_eq!(
        token_by_certificate(&stranger, &base, "/auth/token", "live_nobody")
            .await
            .status(),
        401
    );
    let (client, _) = app.create_client("a", None).await;
    assert_eq!(
        token_by_certificate(&stranger, &base, "/auth/token", &client.id)
            .await
            .status(),
        401
    );
    // A secret sent for a certificate client is refused.
    let response = stranger
        .post(format!("{base}/auth/token"))
        .basic_auth(&billing, Some("a guess"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The server is up, and the good certificate still works.
    let good = https_client(
        &server_cert,
        Some(&client_cert(Some(&ca), "billing", "b.test", false)),
    );
    assert_eq!(
        token_by_certificate(&good, &base, "/auth/token", &billing)
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn a_forwarded_certificate_counts_only_from_a_trusted_proxy() {
    let ca = new_ca("Client CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let behind_proxy = |proxy: &'static str| {
        let ca_file = ca_file.clone();
        move |s: &mut moneykit_auth::config::ServeSettings| {
            s.sender.client_ca_file = Some(ca_file);
            s.sender.client_cert_header = Some("x-client-cert".parse().unwrap());
            s.connection.trusted_proxies = vec![proxy.parse().unwrap()];
        }
    };
    let cert = client_cert(Some(&ca), "billing", "b.test", false);
    let forwarded: String =
        percent_encoding::utf8_percent_encode(&cert.cert_pem, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let send = |app: &TestApp, id: String, header: String| {
        let (http, url) = (app.http.clone(), app.url("/auth/token"));
        async move {
            http.post(url)
                .header("x-client-cert", header)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", id.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };

    // The proxy is this machine: the header is believed, in nginx's form and Envoy's.
    let app = spawn_app_with(behind_proxy("127.0.0.1/32")).await;
    let id = cli_client(&app, &["--tls-subject-dn", "CN=billing,O=Acme"]).await;
    let (_, cnf) = bound_to(send(&app, id.clone(), forwarded.clone()).await, 201).await;
    assert_eq!(cnf["x5t#S256"], cert.thumbprint());
    let envoy = format!("By=spiffe://proxy;Hash=x;Cert=\"{forwarded}\";Subject=\"CN=billing\"");
    let (_, cnf) = bound_to(send(&app, id.clone(), envoy).await, 201).await;
    assert_eq!(cnf["x5t#S256"], cert.thumbprint());
    let metadata = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(metadata["tls_client_certificate_bound_access_tokens"], true);
    // A forwarded certificate from a foreign CA, or garbage, is no certificate.
    let foreign = client_cert(Some(&new_ca("Other")), "billing", "b.test", false);
    let foreign: String = percent_encoding::utf8_percent_encode(
        &foreign.cert_pem,
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    assert_eq!(send(&app, id.clone(), foreign).await.status(), 401);
    assert_eq!(send(&app, id.clone(), "garbage".into()).await.status(), 401);
    app.stop().await;

    // The proxy is elsewhere: the same header from this machine is ignored.
    let app = spawn_app_with(behind_proxy("192.0.2.0/24")).await;
    let id = cli_client(&app, &["--tls-subject-dn", "CN=billing,O=Acme"]).await;
    assert_eq!(send(&app, id, forwarded).await.status(), 401);

    // The header without --trusted-proxy does not start.
    let db = TestDb::new().await;
    let mut settings = test_settings(&db);
    settings.sender.client_cert_header = Some("x-client-cert".parse().unwrap());
    let refused = moneykit_auth::startup::Application::build(settings).await;
    let error = refused.err().expect("refused").to_string();
    assert!(error.contains("--trusted-proxy"), "{error}");
}

const ADMIN_TOKEN: &str = "admin-token-for-mtls-tests-0123456789abcdef";

#[tokio::test]
async fn the_admin_api_and_the_cli_register_certificate_clients_and_refuse_bad_input() {
    let app = spawn_app_with(|s| {
        s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        s.admin_token = Some(ADMIN_TOKEN.into());
    })
    .await;
    let admin = |method: &'static str, path: String, body: Option<Value>| {
        let (http, url) = (
            app.http.clone(),
            format!("{}{path}", app.admin_base.as_ref().unwrap()),
        );
        async move { admin_call(&http, ADMIN_TOKEN, method, &url, body).await }
    };
    let created = app.create_app("m").await;
    let new = |extra: Value| {
        let mut body = serde_json::json!({"app_id": created.id, "scope": "a"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let own = client_cert(None, "robot", "robot.acme.test", false);

    // Created by each method; no secret in the answer; DPoP required where asked.
    let (status, by_dn) = admin(
        "POST",
        "/admin/clients".into(),
        Some(new(serde_json::json!({
        "tls_client_auth_subject_dn": "CN=billing,O=Acme", "require_dpop": true}))),
    )
    .await;
    assert_eq!(status, 201, "{by_dn}");
    assert_eq!(by_dn["token_endpoint_auth_method"], "tls_client_auth");
    assert_eq!(by_dn["tls_client_auth_subject_dn"], "CN=billing,O=Acme");
    assert_eq!(by_dn["require_dpop"], true);
    assert!(by_dn.get("client_secret").is_none(), "{by_dn}");
    let (status, by_cert) = admin("POST", "/admin/clients".into(), Some(new(serde_json::json!({
        "token_endpoint_auth_method": "self_signed_tls_client_auth", "certificate": own.cert_pem})))).await;
    assert_eq!(status, 201, "{by_cert}");
    assert_eq!(by_cert["certificate_thumbprints"][0], own.thumbprint());
    let id = by_dn["client_id"].as_str().unwrap();
    // Switched to another identity, and back off DPoP.
    let (status, changed) = admin(
        "PATCH",
        format!("/admin/clients/{id}"),
        Some(serde_json::json!({
        "tls_client_auth_san_dns": "billing.acme.test", "require_dpop": false})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["tls_client_auth_san_dns"], "billing.acme.test");
    assert_eq!(changed["require_dpop"], false);

    // Bad input: each a 4xx naming the problem, nothing written.
    let key_pem = String::from_utf8(own.identity.clone()).unwrap();
    let bad_creates = [
        (
            serde_json::json!({"tls_client_auth_subject_dn": "not a DN"}),
            "distinguished name",
        ),
        (
            serde_json::json!({"tls_client_auth_subject_dn": "CN=a", "certificate": own.cert_pem}),
            "give one of",
        ),
        (serde_json::json!({"certificate": key_pem}), "private key"),
        (
            serde_json::json!({"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
            "certificate",
        ),
        (
            serde_json::json!({"certificate": "no pem at all"}),
            "CERTIFICATE",
        ),
        (
            serde_json::json!({"token_endpoint_auth_method": "tls_client_auth"}),
            "needs",
        ),
        (
            serde_json::json!({"token_endpoint_auth_method": "private_key_jwt", "tls_client_auth_san_dns": "x"}),
            "not private_key_jwt",
        ),
        (
            serde_json::json!({"token_endpoint_auth_method": "client_secret_basic", "tls_client_auth_san_dns": "x"}),
            "with a secret",
        ),
        (
            serde_json::json!({"tls_client_auth_san_ip": "not an ip"}),
            "",
        ),
    ];
    let before = app.store.list_clients(None).await.unwrap().len();
    for (extra, names) in bad_creates {
        let (status, body) = admin("POST", "/admin/clients".into(), Some(new(extra.clone()))).await;
        assert!((400..500).contains(&status), "{extra}: {status} {body}");
        assert!(body.to_string().contains(names), "{names:?} not in {body}");
    }
    let (client, _) = app.create_client("a", None).await;
    let bad_updates = [
        (
            client.id.clone(),
            serde_json::json!({"tls_client_auth_san_dns": "x.test"}),
            "with a secret",
        ),
        (
            id.to_owned(),
            serde_json::json!({"tls_client_auth_subjet_dn": "CN=typo"}),
            "unknown member",
        ),
        (
            id.to_owned(),
            serde_json::json!({"require_dpop": "yes"}),
            "",
        ),
    ];
    for (target, change, names) in bad_updates {
        let (status, body) = admin(
            "PATCH",
            format!("/admin/clients/{target}"),
            Some(change.clone()),
        )
        .await;
        assert!((400..500).contains(&status), "{change}: {status} {body}");
        assert!(body.to_string().contains(names), "{names:?} not in {body}");
    }
    assert_eq!(
        app.store.list_clients(None).await.unwrap().len(),
        before + 1,
        "only the secret client was added"
    );

    // The CLI refuses the same mistakes with one line each.
    let dir = tempfile::tempdir().unwrap();
    let with_key = dir.path().join("with-key.pem");
    std::fs::write(&with_key, &key_pem).unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, r#"{"keys":[]}"#).unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--tls-subject-dn", "CN"], "distinguished name"),
        (&["--cert-file", with_key.to_str().unwrap()], "private key"),
        (
            &["--auth-method", "self_signed_tls_client_auth"],
            "--cert-file",
        ),
        (
            &[
                "--auth-method",
                "private_key_jwt",
                "--tls-san-dns",
                "x.test",
            ],
            "not private_key_jwt",
        ),
        (
            &[
                "--jwks-file",
                jwks.to_str().unwrap(),
                "--tls-san-dns",
                "x.test",
            ],
            "not both",
        ),
    ];
    for (args, names) in cases {
        let mut all = vec!["clients", "create", "--app", &created.id];
        all.extend_from_slice(args);
        let out = app.cli_async(&all).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(names), "{names:?} not in {stderr}");
    }
    let out = app
        .cli_async(&["clients", "update", &client.id, "--tls-san-dns", "x.test"])
        .await;
    assert!(!out.status.success());
    assert_eq!(
        app.store.list_clients(None).await.unwrap().len(),
        before + 1
    );
}
