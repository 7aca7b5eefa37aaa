//! The `moneykit` SDK's sender-constrained tokens against the real server: DPoP-bound
//! tokens from a token source (with nonces, and for a client that requires DPoP), used
//! at `/auth/introspect` and at an API protected by the SDK's own verifier; a client
//! certificate over real TLS; and `moneykit-auth token --dpop-key` / `--cert --key`.

use moneykit::{AccessTokenApi, ClientCertificate, Configuration, DpopKey, TokenSource};

use crate::helpers::*;
use crate::mtls::{cli_client, client_cert, https, mtls_app, new_ca};

fn config(app: &TestApp) -> Configuration {
    Configuration::self_hosted(&app.base).unwrap()
}

#[tokio::test]
async fn a_dpop_token_source_gets_bound_tokens_and_uses_them() {
    let app = spawn_app_with(|s| s.sender.dpop_nonce = true).await;
    let (client, secret) = app.create_client("accounts:read", None).await;
    let key = DpopKey::generate().unwrap();
    let tokens = TokenSource::builder(config(&app), &client.id, secret.as_str())
        .dpop(key.clone())
        .build()
        .unwrap();
    // The server demands a nonce: the source retries with it by itself.
    let token = tokens.token().await.unwrap();
    assert!(token.is_dpop(), "{}", token.token_type);
    assert_eq!(
        jwt_part(token.token.expose(), 1)["cnf"]["jkt"],
        key.thumbprint()
    );

    // Introspection through the source presents the token with a proof carrying ath.
    let api = AccessTokenApi::new(config(&app))
        .unwrap()
        .with_token_source(tokens.clone());
    let me = api.introspect_client().await.unwrap();
    assert_eq!(me.client_id, client.id);

    // An API behind the SDK's verifier takes the token with a proof for its URL, and
    // refuses it as a bearer token.
    let url = crate::sdk::accounts_api(&app.issuer).await;
    let headers = tokens.authorization_headers("GET", &url).await.unwrap();
    let ok = app.http.get(&url).headers(headers).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), client.id);
    let as_bearer = app
        .http
        .get(&url)
        .bearer_auth(token.token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(as_bearer.status(), 401);

    // A client that requires DPoP: the SDK's source without a key is refused, with one
    // it gets tokens.
    let out = app
        .cli_async(&["clients", "update", &client.id, "--require-dpop"])
        .await;
    assert!(out.status.success(), "{out:?}");
    app.synced().await;
    let plain = TokenSource::new(config(&app), &client.id, secret.as_str()).unwrap();
    let refused = plain.token().await.unwrap_err();
    assert!(
        refused.to_string().contains("invalid_dpop_proof"),
        "{refused}"
    );
    let fresh = TokenSource::builder(config(&app), &client.id, secret.as_str())
        .dpop(DpopKey::generate().unwrap())
        .build()
        .unwrap();
    assert!(fresh.token().await.unwrap().is_dpop());
}

#[tokio::test]
async fn a_token_source_with_a_client_certificate_gets_certificate_bound_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("Client CA");
    let (app, server_cert) = mtls_app(dir.path(), &ca).await;
    let id = cli_client(&app, &["--tls-subject-dn", "CN=billing,O=Acme"]).await;
    let cert = client_cert(Some(&ca), "billing", "billing.acme.test", false);
    let certificate =
        ClientCertificate::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    assert_eq!(certificate.thumbprint(), cert.thumbprint());
    let config = Configuration::self_hosted(https(&app))
        .unwrap()
        .add_root_certificates(&std::fs::read(&server_cert).unwrap())
        .unwrap()
        .client_certificate(certificate.clone());
    let tokens = TokenSource::with_client_certificate(config.clone(), &id, certificate)
        .build()
        .unwrap();
    let token = tokens.token().await.unwrap();
    assert_eq!(
        jwt_part(token.token.expose(), 1)["cnf"]["x5t#S256"],
        cert.thumbprint()
    );
    // Introspected over a connection with the certificate: accepted.
    let api = AccessTokenApi::new(config)
        .unwrap()
        .with_token_source(tokens);
    assert_eq!(api.introspect_client().await.unwrap().client_id, id);
}

#[tokio::test]
async fn the_token_command_binds_tokens_to_a_dpop_key_or_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("Client CA");
    let (app, server_cert) = mtls_app(dir.path(), &ca).await;
    let (client, secret) = app.create_client("a", None).await;
    let key_file = dir.path().join("dpop.pem");
    std::fs::write(&key_file, crate::sdk::p256_pem()).unwrap();
    let base = https(&app);
    let cacert = server_cert.to_str().unwrap();
    let token = token_command(
        &app,
        &base,
        cacert,
        &[
            "--client-id",
            &client.id,
            "--client-secret",
            &secret,
            "--dpop-key",
            key_file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(token["token_type"], "DPoP", "{token}");
    let claims = jwt_part(token["access_token"].as_str().unwrap(), 1);
    assert_eq!(
        claims["cnf"]["jkt"],
        DpopKey::from_file(&key_file).unwrap().thumbprint()
    );

    let id = cli_client(&app, &["--tls-subject-dn", "CN=billing,O=Acme"]).await;
    let cert = client_cert(Some(&ca), "billing", "billing.acme.test", false);
    let (cert_file, cert_key) = (dir.path().join("c.pem"), dir.path().join("c.key"));
    std::fs::write(&cert_file, &cert.cert_pem).unwrap();
    std::fs::write(&cert_key, &cert.key_pem).unwrap();
    let token = token_command(
        &app,
        &base,
        cacert,
        &[
            "--client-id",
            &id,
            "--cert",
            cert_file.to_str().unwrap(),
            "--key",
            cert_key.to_str().unwrap(),
        ],
    )
    .await;
    let claims = jwt_part(token["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint(), "{claims}");
}

/// `moneykit-auth token --url BASE --cacert CACERT --json ARGS…`: the JSON it prints.
async fn token_command(
    app: &TestApp,
    base: &str,
    cacert: &str,
    args: &[&str],
) -> serde_json::Value {
    let mut all = vec!["token", "--url", base, "--json", "--cacert", cacert];
    all.extend_from_slice(args);
    cli_json(&app.cli_async(&all).await)
}
