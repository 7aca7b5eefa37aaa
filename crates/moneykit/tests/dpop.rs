//! The client side of sender-constrained tokens: DPoP proofs (checked with the `p256`
//! crate, not the SDK), RFC 7638 thumbprints, token sources against a token endpoint on
//! 127.0.0.1 that demands nonces, and a TLS client certificate presented to a server that
//! asks for one.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::{SHA256, digest};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit::{
    AccessTokenApi, ClientCertificate, Configuration, DpopKey, Jwk, PrivateKey, PrivateKeyJwt,
    TokenSource, WorkloadIdentity, certificate_thumbprint, jwk_thumbprint,
};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Header and claims of an ES256 proof, once `p256` verified it with the header's jwk.
fn verified_es256(proof: &str) -> (Value, Value) {
    let (signed, signature) = proof.rsplit_once('.').unwrap();
    let (header, claims) = signed.split_once('.').unwrap();
    let (header, claims) = (decode(header), decode(claims));
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(header["jwk"][name].as_str().unwrap());
    let point = [
        vec![0x04],
        coordinate("x").unwrap(),
        coordinate("y").unwrap(),
    ]
    .concat();
    let key = VerifyingKey::from_sec1_bytes(&point).unwrap();
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
    key.verify(signed.as_bytes(), &signature)
        .expect("the proof verifies with its own jwk");
    (header, claims)
}

#[test]
fn a_proof_is_an_es256_jwt_another_library_verifies() {
    let key = DpopKey::generate().unwrap();
    let url = "https://Auth.Example.com:443/auth/token?scope=a#frag";
    let (header, claims) = verified_es256(&key.proof("POST", url, None, None).unwrap());
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    let jwk = header["jwk"].as_object().unwrap();
    let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
    members.sort();
    assert_eq!(members, ["crv", "kty", "x", "y"], "public members only");
    assert_eq!(header.as_object().unwrap().len(), 3, "{header}");

    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["htu"], "https://auth.example.com/auth/token");
    assert!((claims["iat"].as_i64().unwrap() - now()).abs() <= 2);
    let jti = URL_SAFE_NO_PAD
        .decode(claims["jti"].as_str().unwrap())
        .unwrap();
    assert!(jti.len() >= 16, "a jti of at least 128 bits");
    assert_eq!(
        claims.as_object().unwrap().len(),
        4,
        "no ath, no nonce: {claims}"
    );

    // With a token and a nonce: ath and nonce, and a new jti.
    let token = "eyJ.access.token";
    let proof = key
        .proof(
            &Method::GET,
            "https://api.example.com/x",
            Some(token),
            Some("n-1"),
        )
        .unwrap();
    let (_, with_token) = verified_es256(&proof);
    assert_eq!(with_token["htm"], "GET");
    assert_eq!(
        with_token["ath"],
        b64(digest(&SHA256, token.as_bytes()).as_ref())
    );
    assert_eq!(with_token["nonce"], "n-1");
    assert_ne!(with_token["jti"], claims["jti"]);
}

#[test]
fn keys_of_every_kind_sign_proofs_with_their_algorithm() {
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    for (file, alg) in [
        ("ec-p256-sec1.pem", "ES256"),
        ("rsa-2048-pkcs1.pem", "RS256"),
        ("rsa-2048.jwk.json", "RS256"),
    ] {
        let key = DpopKey::from_file(keys.join(file)).unwrap();
        let proof = key
            .proof("GET", "https://api.example.com/", None, None)
            .unwrap();
        let header = decode(proof.split('.').next().unwrap());
        assert_eq!(header["alg"], alg, "{file}");
        assert!(header["jwk"].get("d").is_none(), "{file}");
        assert!(header["jwk"].get("kid").is_none(), "{file}");
        let jwk: Jwk = serde_json::from_value(header["jwk"].clone()).unwrap();
        assert_eq!(jwk_thumbprint(&jwk).unwrap(), key.thumbprint(), "{file}");
    }
}

#[test]
fn thumbprints_are_the_rfc_examples() {
    // RFC 7638 §3.1, with the members that must not count.
    let rsa: Jwk = serde_json::from_value(json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }))
    .unwrap();
    assert_eq!(
        jwk_thumbprint(&rsa).unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    // RFC 9449 §6.1 (EC P-256).
    let ec: Jwk = serde_json::from_value(json!({
        "kty": "EC", "crv": "P-256", "use": "sig",
        "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    }))
    .unwrap();
    assert_eq!(
        jwk_thumbprint(&ec).unwrap(),
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    );
    // RFC 8037 §A.3 (Ed25519).
    let okp: Jwk = serde_json::from_value(json!({
        "kty": "OKP", "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }))
    .unwrap();
    assert_eq!(
        jwk_thumbprint(&okp).unwrap(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    let oct: Jwk = serde_json::from_value(json!({"kty": "oct", "k": "c2VjcmV0"})).unwrap();
    assert!(jwk_thumbprint(&oct).is_err());
    let incomplete: Jwk = serde_json::from_value(json!({"kty": "EC", "crv": "P-256"})).unwrap();
    assert!(jwk_thumbprint(&incomplete).is_err());
}

#[test]
fn a_generated_key_thumbprint_is_its_canonical_jwk_hashed() {
    let key = DpopKey::generate().unwrap();
    let jwk = key.public_jwk();
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk.x.unwrap(),
        jwk.y.unwrap()
    );
    assert_eq!(
        key.thumbprint(),
        b64(digest(&SHA256, canonical.as_bytes()).as_ref())
    );
    assert_eq!(
        format!("{key:?}"),
        format!(
            "DpopKey {{ algorithm: Es256, thumbprint: {:?}, .. }}",
            key.thumbprint()
        )
    );
}

/// One request as the test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    proofs: Vec<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The one proof, verified, and its claims.
    fn proof_claims(&self) -> Value {
        assert_eq!(self.proofs.len(), 1, "one DPoP header: {self:?}");
        verified_es256(&self.proofs[0]).1
    }
}

/// A token endpoint and an introspection endpoint that answer as moneykit-auth would
/// with DPoP, demanding a nonce from the token request whose proof lacks the current one
/// (and, when `resource_nonce`, once from introspection too).
#[derive(Clone)]
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    nonces: Arc<AtomicUsize>,
    always_demand: Arc<AtomicBool>,
    resource_nonce: Arc<AtomicBool>,
}

impl Server {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            base: format!("http://{}", listener.local_addr().unwrap()),
            seen: Arc::default(),
            nonces: Arc::default(),
            always_demand: Arc::default(),
            resource_nonce: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/auth/token", axum::routing::post(token))
            .route("/auth/introspect", axum::routing::get(introspect))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    fn config(&self) -> Configuration {
        Configuration::self_hosted(&self.base).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn record(&self, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Seen {
        let seen = Seen {
            path: uri.path().to_owned(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            proofs: headers
                .get_all("dpop")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect(),
            form: form_urlencoded::parse(body).into_owned().collect(),
        };
        self.seen.lock().unwrap().push(seen.clone());
        seen
    }

    fn nonce(&self) -> String {
        format!("nonce-{}", self.nonces.load(Ordering::SeqCst))
    }

    /// A new current nonce.
    fn rotate(&self) -> String {
        self.nonces.fetch_add(1, Ordering::SeqCst);
        self.nonce()
    }
}

async fn token(
    State(server): State<Server>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = server.record(&uri, &headers, &body);
    let count = server.seen().len();
    if seen.proofs.is_empty() {
        let body = json!({
            "access_token": format!("token-{count}"), "token_type": "bearer",
            "expires_in": 3600, "scope": "accounts:read",
        });
        return (StatusCode::CREATED, Json(body)).into_response();
    }
    let claims = seen.proof_claims();
    let demand = server.always_demand.load(Ordering::SeqCst)
        || claims.get("nonce").and_then(Value::as_str) != Some(&server.nonce());
    if demand {
        let nonce = server.rotate();
        let body = json!({
            "error": "use_dpop_nonce",
            "error_description": "Authorization server requires nonce in DPoP proof",
            "error_code": "api_error.auth.use_dpop_nonce",
            "error_message": "Authorization server requires nonce in DPoP proof",
        });
        return (StatusCode::BAD_REQUEST, [("DPoP-Nonce", nonce)], Json(body)).into_response();
    }
    let next = server.rotate();
    let body = json!({
        "access_token": format!("token-{count}"), "token_type": "DPoP",
        "expires_in": 3600, "scope": "accounts:read",
    });
    (StatusCode::CREATED, [("DPoP-Nonce", next)], Json(body)).into_response()
}

async fn introspect(State(server): State<Server>, uri: Uri, headers: HeaderMap) -> Response {
    let seen = server.record(&uri, &headers, b"");
    let has_nonce = seen.proofs.first().is_some_and(|proof| {
        decode(proof.split('.').nth(1).unwrap())
            .get("nonce")
            .is_some()
    });
    if server.resource_nonce.load(Ordering::SeqCst) && !has_nonce {
        let challenge = r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#;
        let headers = [("WWW-Authenticate", challenge), ("DPoP-Nonce", "rs-nonce")];
        return (
            StatusCode::UNAUTHORIZED,
            headers,
            Json(json!({"error": "use_dpop_nonce"})),
        )
            .into_response();
    }
    let body = json!({
        "client_id": "live_abc", "client_name": "Demo", "scope": "accounts:read",
        "app": {"app_id": "app_1", "name": "Demo", "id": "app_1", "app_name": "Demo"},
    });
    Json(body).into_response()
}

#[tokio::test]
async fn a_token_source_retries_once_with_the_nonce_and_keeps_the_next() {
    let server = Server::start().await;
    let key = DpopKey::generate().unwrap();
    let private_key = PrivateKey::from_pem(include_bytes!("keys/ec-p256-sec1.pem")).unwrap();
    let tokens = TokenSource::with_private_key(server.config(), "live_abc", private_key)
        .dpop(key.clone())
        .build()
        .unwrap();

    let token = tokens.token().await.unwrap();
    assert_eq!(token.token_type, "DPoP");
    assert!(token.is_dpop());
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "one refusal, one retry");
    let (first, retry) = (seen[0].proof_claims(), seen[1].proof_claims());
    assert!(first.get("nonce").is_none());
    assert_eq!(retry["nonce"], "nonce-1");
    for claims in [&first, &retry] {
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], format!("{}/auth/token", server.base));
        assert!(claims.get("ath").is_none());
    }
    assert_ne!(first["jti"], retry["jti"]);
    // The retry signs a new client assertion: the first may count as used.
    assert_ne!(
        seen[0].field("client_assertion"),
        seen[1].field("client_assertion")
    );
    let header = decode(seen[1].proofs[0].split('.').next().unwrap());
    let jwk: Jwk = serde_json::from_value(header["jwk"].clone()).unwrap();
    assert_eq!(jwk_thumbprint(&jwk).unwrap(), key.thumbprint());

    // The next refresh uses the nonce of the last success, and is not refused.
    tokens.refresh_after_rejection(&token.token).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].proof_claims()["nonce"], "nonce-2");
}

#[tokio::test]
async fn a_server_that_keeps_demanding_nonces_gets_one_retry() {
    let server = Server::start().await;
    server.always_demand.store(true, Ordering::SeqCst);
    let tokens = TokenSource::builder(server.config(), "live_abc", "mks_secret")
        .dpop(DpopKey::generate().unwrap())
        .build()
        .unwrap();
    let e = tokens.token().await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(e.error_code(), Some("api_error.auth.use_dpop_nonce"));
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn every_credential_kind_sends_a_proof() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJ.platform.token").unwrap();
    let private_key = || PrivateKey::from_pem(include_bytes!("keys/ec-p256-sec1.pem")).unwrap();
    let config = server.config();
    let builders = [
        TokenSource::builder(config.clone(), "live_abc", "mks_secret"),
        TokenSource::with_private_key(config.clone(), "live_abc", private_key()),
        TokenSource::with_client_assertion(
            config.clone(),
            PrivateKeyJwt::new(&config, "live_abc", private_key()).audience("https://issuer"),
        ),
        TokenSource::federated(
            config.clone(),
            WorkloadIdentity::from_token_file(&token_file),
        ),
    ];
    for builder in builders {
        let key = DpopKey::generate().unwrap();
        let tokens = builder.dpop(key.clone()).build().unwrap();
        let token = tokens.token().await.unwrap();
        assert!(token.is_dpop());
        let last = server.seen().pop().unwrap();
        let header = decode(last.proofs[0].split('.').next().unwrap());
        let jwk: Jwk = serde_json::from_value(header["jwk"].clone()).unwrap();
        assert_eq!(jwk_thumbprint(&jwk).unwrap(), key.thumbprint());
        assert!(last.field("grant_type").is_some());
    }
    let seen = server.seen();
    assert!(
        seen[1]
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(
        seen[seen.len() - 1].field("assertion"),
        Some("eyJ.platform.token")
    );
}

#[tokio::test]
async fn introspection_through_a_dpop_source_presents_the_token_with_a_proof() {
    let server = Server::start().await;
    server.resource_nonce.store(true, Ordering::SeqCst);
    let tokens = TokenSource::builder(server.config(), "live_abc", "mks_secret")
        .dpop(DpopKey::generate().unwrap())
        .build()
        .unwrap();
    let api = AccessTokenApi::new(server.config())
        .unwrap()
        .with_token_source(tokens);
    let me = api.introspect_client().await.unwrap();
    assert_eq!(me.client_id, "live_abc");

    let calls: Vec<Seen> = server
        .seen()
        .into_iter()
        .filter(|s| s.path == "/auth/introspect")
        .collect();
    assert_eq!(calls.len(), 2, "one nonce demand, one retry");
    let token = "token-2"; // the retry of the token request
    for (call, nonce) in calls.iter().zip([None, Some("rs-nonce")]) {
        assert_eq!(
            call.authorization.as_deref(),
            Some(&*format!("DPoP {token}"))
        );
        let claims = call.proof_claims();
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], format!("{}/auth/introspect", server.base));
        assert_eq!(
            claims["ath"],
            b64(digest(&SHA256, token.as_bytes()).as_ref())
        );
        assert_eq!(claims.get("nonce").and_then(Value::as_str), nonce);
    }
}

#[tokio::test]
async fn authorization_headers_present_bearer_and_dpop_tokens() {
    let server = Server::start().await;
    let bearer = TokenSource::new(server.config(), "live_abc", "mks_secret").unwrap();
    let headers = bearer
        .authorization_headers("GET", "https://api.example.com/a")
        .await
        .unwrap();
    assert_eq!(headers[header::AUTHORIZATION], "Bearer token-1");
    assert!(headers.get("dpop").is_none());
    assert!(!bearer.token().await.unwrap().is_dpop());

    let dpop = TokenSource::builder(server.config(), "live_abc", "mks_secret")
        .dpop(DpopKey::generate().unwrap())
        .build()
        .unwrap();
    let headers = dpop
        .authorization_headers(Method::DELETE, "https://api.example.com/a/1?x=y")
        .await
        .unwrap();
    let token = "token-3";
    assert_eq!(
        headers[header::AUTHORIZATION],
        format!("DPoP {token}").as_str()
    );
    let (_, claims) = verified_es256(headers["dpop"].to_str().unwrap());
    assert_eq!(claims["htm"], "DELETE");
    assert_eq!(claims["htu"], "https://api.example.com/a/1");
    assert_eq!(
        claims["ath"],
        b64(digest(&SHA256, token.as_bytes()).as_ref())
    );
}

#[tokio::test]
async fn api_client_with_dpop_binds_generated_tokens() {
    let server = Server::start().await;
    let api = AccessTokenApi::new(server.config().basic_auth("live_abc", "mks_secret"))
        .unwrap()
        .with_dpop(DpopKey::generate().unwrap());
    let token = api.generate_access_token(Default::default()).await.unwrap();
    assert_eq!(token.token_type, "DPoP");
    assert_eq!(server.seen().len(), 2, "nonce demanded, then granted");
    assert!(server.seen()[1].proof_claims()["nonce"] == "nonce-1");
}

#[tokio::test]
async fn a_certificate_alone_names_the_client_and_sends_no_secret() {
    let server = Server::start().await;
    let certificate = generated_certificate("client.example");
    let config = server.config().basic_auth("live_other", "mks_stale");
    let tokens = TokenSource::with_client_certificate(config, "live_abc", certificate.0)
        .build()
        .unwrap();
    tokens.token().await.unwrap();
    let seen = server.seen().pop().unwrap();
    assert_eq!(seen.authorization, None);
    assert_eq!(
        seen.form,
        [
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), "live_abc".to_owned())
        ]
    );
}

/// A self-signed certificate for `name`, as the SDK loads it, with its PEM and DER.
fn generated_certificate(name: &str) -> (ClientCertificate, String, Vec<u8>) {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let pem = generated.cert.pem();
    let certificate = ClientCertificate::from_pem(
        pem.as_bytes(),
        generated.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    (certificate, pem, generated.cert.der().to_vec())
}

#[test]
fn certificates_and_keys_that_do_not_load_are_refused() {
    let (_, pem, der) = generated_certificate("client.example");
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    assert!(ClientCertificate::from_pem(b"", key.as_bytes()).is_err());
    assert!(ClientCertificate::from_pem(pem.as_bytes(), b"").is_err());
    assert!(ClientCertificate::from_pem(key.as_bytes(), key.as_bytes()).is_err());
    // Another key than the certificate's.
    let e = ClientCertificate::from_pem(pem.as_bytes(), key.as_bytes()).unwrap_err();
    assert!(
        e.to_string().contains("is the key the certificate's?"),
        "{e}"
    );
    let (certificate, _, _) = generated_certificate("client.example");
    assert_eq!(
        format!("{certificate:?}"),
        format!(
            "ClientCertificate {{ thumbprint: {:?}, .. }}",
            certificate.thumbprint()
        )
    );
    assert_ne!(certificate.thumbprint(), certificate_thumbprint(&der));
}

mod tls {
    //! A TLS server on 127.0.0.1 that asks for (and does not require) a client
    //! certificate, accepts any, and answers one token request.

    use std::sync::Arc;

    use rustls::DistinguishedName;
    use rustls::client::danger::HandshakeSignatureValid;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
    use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Debug)]
    struct AnyClientCertificate(Arc<CryptoProvider>);

    impl ClientCertVerifier for AnyClientCertificate {
        fn client_auth_mandatory(&self) -> bool {
            false
        }

        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            &[]
        }

        fn verify_client_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _now: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            Ok(ClientCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = &self.0.signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = &self.0.signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// The server's base URL and certificate (PEM), and what it saw: the DER of the
    /// client certificate presented, if any, and the request.
    pub struct Server {
        pub base: String,
        pub certificate_pem: String,
        pub seen: tokio::task::JoinHandle<(Option<Vec<u8>>, String)>,
    }

    /// Whether `request` holds its head and as much body as its `content-length` says.
    fn is_complete(request: &[u8]) -> bool {
        let text = String::from_utf8_lossy(request);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        body.len() >= length
    }

    pub async fn serve_once() -> Server {
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(Arc::new(AnyClientCertificate(provider)))
            .with_single_cert(vec![generated.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let seen = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let presented = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| leaf.to_vec());
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !is_complete(&request) {
                let n = tls.read(&mut buffer).await.unwrap();
                assert!(n > 0, "connection closed early");
                request.extend_from_slice(&buffer[..n]);
            }
            let body =
                r#"{"access_token":"token-tls","token_type":"bearer","expires_in":60,"scope":""}"#;
            let response = format!(
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            tls.write_all(response.as_bytes()).await.unwrap();
            tls.shutdown().await.unwrap();
            (presented, String::from_utf8_lossy(&request).into_owned())
        });
        Server {
            base,
            certificate_pem: generated.cert.pem(),
            seen,
        }
    }
}

#[tokio::test]
async fn the_client_certificate_is_presented_over_tls() {
    let server = tls::serve_once().await;
    let (certificate, _, der) = generated_certificate("client.example");
    assert_eq!(
        certificate.thumbprint(),
        b64(digest(&SHA256, &der).as_ref())
    );
    let config = Configuration::self_hosted(&server.base)
        .unwrap()
        .add_root_certificates(server.certificate_pem.as_bytes())
        .unwrap();
    let tokens = TokenSource::with_client_certificate(config, "live_abc", certificate)
        .build()
        .unwrap();
    let token = tokens.token().await.unwrap();
    assert_eq!(token.token.expose(), "token-tls");
    let (presented, request) = server.seen.await.unwrap();
    assert_eq!(presented, Some(der), "the leaf certificate was presented");
    assert!(
        request.ends_with("grant_type=client_credentials&client_id=live_abc"),
        "{request}"
    );
    assert!(
        !request.to_ascii_lowercase().contains("authorization:"),
        "{request}"
    );
}
