//! `moneykit-auth token`: get an access token from a running server, with the `moneykit`
//! SDK — the quickest way to check credentials from a shell: a client secret, a private
//! key (`private_key_jwt`), a workload's platform token (federation) or a TLS client
//! certificate alone; and with `--dpop-key` or `--cert`, a sender-constrained token.

use std::path::PathBuf;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::{ArgGroup, Args};
use moneykit::{
    AccessTokenApi, ClientCertificate, Configuration, DpopKey, GenerateAccessTokenOpts, PrivateKey,
    PrivateKeyJwt, WorkloadIdentity,
};

use super::output::Output;

/// `--help`'s heading for the mutually exclusive credentials and their options.
const CREDENTIAL: &str = "Credential (one of --client-secret, --private-key, \
                          --assertion-file, or --cert alone, as a flag or an environment \
                          variable)";
/// `--help`'s heading for the options that bind the token to a key or a certificate.
const BINDING: &str = "Sender-constrained tokens";

/// What `--help` adds after the options. (The summary above them is the `token` command's
/// doc in `cli/mod.rs`: a variant's doc replaces an `about` set here.)
const AFTER_HELP: &str = "Sender-constrained tokens: with --dpop-key, the token request \
carries a DPoP proof (RFC 9449) and the token is bound to the key (token_type DPoP), so \
every call with it needs a new proof signed by that key. With --cert and --key, the client \
certificate is presented over TLS (RFC 8705) and the token is bound to it; with --client-id \
and no other credential, the certificate is the client's only credential \
(tls_client_auth). Add --cacert when the server's certificate comes from a private CA.";

// The options of one credential name the others as conflicts too: clap skips `requires`
// when the required argument conflicts with one given, so `--client-secret S --key-id K`
// would otherwise pass and ignore the key id. A client certificate may stand alone or
// come with any of them.
#[derive(Debug, Args)]
#[command(
    after_help = AFTER_HELP,
    group(
        ArgGroup::new("credential")
            .args(["client_secret", "private_key", "assertion_file"])
            .multiple(false)
    ),
    group(
        ArgGroup::new("authentication")
            .args(["client_secret", "private_key", "assertion_file", "cert"])
            .required(true)
            .multiple(true)
    )
)]
pub(super) struct TokenArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "MONEYKIT_AUTH_URL")]
    url: String,
    /// Client id (optional with --assertion-file: the server finds the client that trusts
    /// the token, and needs it only when several do).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_CLIENT_ID",
        required_unless_present = "assertion_file"
    )]
    client_id: Option<String>,
    /// Scopes to narrow the token to, space-separated [default: all the client may have].
    #[arg(long, env = "MONEYKIT_AUTH_SCOPE")]
    scope: Option<String>,

    /// Client secret (prefer the environment variable: arguments show up in `ps`).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_CLIENT_SECRET",
        hide_env_values = true,
        help_heading = CREDENTIAL
    )]
    client_secret: Option<String>,
    /// Private key file, PEM or private JWK: authenticate with a signed assertion
    /// (private_key_jwt) instead of a secret.
    #[arg(
        long,
        env = "MONEYKIT_AUTH_PRIVATE_KEY",
        value_name = "PATH",
        help_heading = CREDENTIAL
    )]
    private_key: Option<PathBuf>,
    /// The assertion header's `kid`: the id the server knows the key by [default: the
    /// JWK's `kid`, else none].
    #[arg(
        long,
        env = "MONEYKIT_AUTH_KEY_ID",
        value_name = "KID",
        requires = "private_key",
        conflicts_with_all = ["client_secret", "assertion_file"],
        help_heading = CREDENTIAL
    )]
    key_id: Option<String>,
    /// The assertion's `aud`: the server's issuer identifier [default: --url].
    #[arg(
        long,
        env = "MONEYKIT_AUTH_ASSERTION_AUDIENCE",
        value_name = "AUD",
        requires = "private_key",
        conflicts_with_all = ["client_secret", "assertion_file"],
        help_heading = CREDENTIAL
    )]
    assertion_audience: Option<String>,
    /// Platform token file (e.g. a Kubernetes projected service-account token), presented
    /// with the jwt-bearer grant: workload identity federation.
    #[arg(
        long,
        env = "MONEYKIT_AUTH_ASSERTION_FILE",
        value_name = "PATH",
        help_heading = CREDENTIAL
    )]
    assertion_file: Option<PathBuf>,
    /// Present --assertion-file as an RFC 8693 token exchange instead.
    #[arg(
        long,
        env = "MONEYKIT_AUTH_TOKEN_EXCHANGE",
        value_parser = BoolishValueParser::new(),
        requires = "assertion_file",
        conflicts_with_all = ["client_secret", "private_key"],
        help_heading = CREDENTIAL
    )]
    token_exchange: bool,

    /// TLS client certificate chain, PEM (with --key): presented to the server, which
    /// binds the token to it (RFC 8705). Without another credential, it is the client's
    /// credential (tls_client_auth: --client-id, no secret).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_CLIENT_CERT",
        value_name = "PATH",
        requires = "key",
        help_heading = BINDING
    )]
    cert: Option<PathBuf>,
    /// The private key of --cert, PEM.
    #[arg(
        long,
        env = "MONEYKIT_AUTH_CLIENT_CERT_KEY",
        value_name = "PATH",
        requires = "cert",
        help_heading = BINDING
    )]
    key: Option<PathBuf>,
    /// CA certificates (PEM) to trust besides the system's, for a server whose
    /// certificate comes from a private CA.
    #[arg(long, env = "MONEYKIT_AUTH_CACERT", value_name = "PATH", help_heading = BINDING)]
    cacert: Option<PathBuf>,
    /// DPoP private key, PEM or private JWK (P-256, P-384, Ed25519 or RSA): the request
    /// carries a DPoP proof and the token is bound to the key (token_type DPoP).
    #[arg(
        long,
        env = "MONEYKIT_AUTH_DPOP_KEY",
        value_name = "PATH",
        help_heading = BINDING
    )]
    dpop_key: Option<PathBuf>,
}

pub(super) async fn run(mut args: TokenArgs, out: Output) -> anyhow::Result<()> {
    let mut config =
        Configuration::self_hosted(&args.url).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
    if let Some(path) = &args.cacert {
        let pem = std::fs::read(path).with_context(|| format!("--cacert: {}", path.display()))?;
        config = config.add_root_certificates(&pem).context("--cacert")?;
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let certificate = ClientCertificate::from_files(cert, key).context("--cert/--key")?;
        config = config.client_certificate(certificate);
    }
    let dpop = match args.dpop_key.take() {
        Some(path) => Some(DpopKey::from_file(path).context("--dpop-key")?),
        None => None,
    };
    let scope = args.scope.take();
    let (config, form) = args.token_request(config).await?;
    let mut api = AccessTokenApi::new(config)?;
    if let Some(key) = dpop {
        api = api.with_dpop(key);
    }
    let token = api
        .generate_access_token(GenerateAccessTokenOpts { scope, ..form })
        .await?;
    let mut value = serde_json::json!({
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_in": token.expires_in,
        "scope": token.scope,
    });
    if let Some(issued) = &token.issued_token_type {
        value["issued_token_type"] = issued.as_str().into();
    }
    out.emit(&value, || {
        format!(
            "access_token: {}\ntoken_type:   {}\nexpires_in:   {}\nscope:        {}",
            token.access_token, token.token_type, token.expires_in, token.scope
        )
    });
    Ok(())
}

impl TokenArgs {
    /// The configuration and the token request for the one credential given (clap has
    /// checked there is at most one, or a certificate): HTTP Basic for a secret; for a
    /// private key or a platform token, no Basic and the credential in the form; for the
    /// certificate alone, the client id in the form.
    async fn token_request(
        self,
        config: Configuration,
    ) -> anyhow::Result<(Configuration, GenerateAccessTokenOpts)> {
        if let Some(path) = self.assertion_file {
            let mut identity = WorkloadIdentity::from_token_file(path);
            if let Some(client_id) = self.client_id {
                identity = identity.client_id(client_id);
            }
            if self.token_exchange {
                identity = identity.token_exchange();
            }
            let form = identity.token_request().await.context("--assertion-file")?;
            return Ok((config, form));
        }
        // clap requires --client-id unless --assertion-file is given.
        let client_id = self.client_id.unwrap_or_default();
        if let Some(path) = self.private_key {
            let mut key = PrivateKey::from_file(path).context("--private-key")?;
            if let Some(key_id) = self.key_id {
                key = key.with_key_id(key_id);
            }
            let mut assertions = PrivateKeyJwt::new(&config, client_id, key);
            if let Some(audience) = self.assertion_audience {
                assertions = assertions.audience(audience);
            }
            return Ok((config, assertions.token_request()?));
        }
        let form = GenerateAccessTokenOpts {
            grant_type: Some("client_credentials".into()),
            ..Default::default()
        };
        match self.client_secret {
            Some(secret) => Ok((config.basic_auth(client_id, secret), form)),
            // clap requires a credential: here, the certificate alone.
            None => Ok((
                config,
                GenerateAccessTokenOpts {
                    client_id: Some(client_id),
                    ..form
                },
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_lc_rs::encoding::AsBigEndian;
    use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, header};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use clap::Parser;
    use serde_json::{Value, json};

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<TokenArgs, String> {
        let argv = ["moneykit-auth", "token", "--url", "http://127.0.0.1:9"];
        let cli = Cli::try_parse_from(argv.iter().chain(args)).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Token(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn exactly_one_credential_is_accepted() {
        for given in [
            &["--client-id", "c", "--client-secret", "s"][..],
            &[
                "--client-id",
                "c",
                "--private-key",
                "k.pem",
                "--key-id",
                "k1",
            ],
            &["--assertion-file", "token", "--token-exchange"],
            &["--assertion-file", "token", "--client-id", "c"],
        ] {
            assert!(parse(given).is_ok(), "{given:?}: {:?}", parse(given).err());
        }
        for (given, expected) in [
            (
                &["--client-id", "c"][..],
                "--client-secret <CLIENT_SECRET>|--private-key <PATH>|--assertion-file <PATH>|--cert <PATH>",
            ),
            (
                &[
                    "--client-id",
                    "c",
                    "--client-secret",
                    "s",
                    "--private-key",
                    "k",
                ],
                "cannot be used with",
            ),
            (
                &[
                    "--client-id",
                    "c",
                    "--private-key",
                    "k",
                    "--assertion-file",
                    "t",
                ],
                "cannot be used with",
            ),
            (&["--private-key", "k"], "--client-id"),
            (
                &["--client-id", "c", "--client-secret", "s", "--key-id", "k1"],
                "'--key-id <KID>'",
            ),
            (
                &[
                    "--client-id",
                    "c",
                    "--client-secret",
                    "s",
                    "--assertion-audience",
                    "a",
                ],
                "'--assertion-audience <AUD>'",
            ),
            (
                &["--client-id", "c", "--private-key", "k", "--token-exchange"],
                "'--token-exchange'",
            ),
            (&["--client-id", "c", "--cert", "c.pem"], "--key <PATH>"),
            (
                &["--client-id", "c", "--dpop-key", "k.pem"],
                "--client-secret",
            ),
        ] {
            let e = parse(given).unwrap_err();
            assert!(e.contains(expected), "{given:?}: {e}");
        }
    }

    #[test]
    fn a_certificate_stands_alone_or_with_a_credential_and_dpop_with_any() {
        for given in [
            &["--client-id", "c", "--cert", "c.pem", "--key", "k.pem"][..],
            &[
                "--client-id",
                "c",
                "--client-secret",
                "s",
                "--cert",
                "c.pem",
                "--key",
                "k.pem",
                "--cacert",
                "ca.pem",
            ],
            &[
                "--client-id",
                "c",
                "--client-secret",
                "s",
                "--dpop-key",
                "d.pem",
            ],
            &["--assertion-file", "t", "--dpop-key", "d.pem"],
            &[
                "--client-id",
                "c",
                "--cert",
                "c.pem",
                "--key",
                "k.pem",
                "--dpop-key",
                "d.pem",
            ],
        ] {
            assert!(parse(given).is_ok(), "{given:?}: {:?}", parse(given).err());
        }
    }

    #[test]
    fn the_help_explains_sender_constrained_tokens() {
        let e = Cli::try_parse_from(["moneykit-auth", "token", "--help"]).unwrap_err();
        // Unwrapped: clap wraps lines at the terminal's width.
        let help = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for expected in [
            "--dpop-key <PATH>",
            "--cert <PATH>",
            "--key <PATH>",
            "every call with it needs a new proof",
        ] {
            assert!(help.contains(expected), "{expected}: {help}");
        }
    }

    /// A token endpoint on 127.0.0.1 keeping each request's Authorization header and form.
    async fn recording_endpoint() -> (String, Arc<Mutex<Vec<(Option<String>, Value)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let issue = move |headers: HeaderMap, body: Bytes| async move {
            let authorization = headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            let form: serde_json::Map<String, Value> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
                .collect();
            record
                .lock()
                .unwrap()
                .push((authorization, Value::Object(form)));
            let body = json!({
                "access_token": "eyJ.t.s", "token_type": "bearer", "expires_in": 60, "scope": "a",
            });
            (StatusCode::CREATED, axum::Json(body))
        };
        let app = axum::Router::new().route("/auth/token", axum::routing::post(issue));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, seen)
    }

    fn run_token(base: &str, args: &[&str]) -> impl Future<Output = anyhow::Result<()>> {
        let args = parse(args).unwrap();
        run(
            TokenArgs {
                url: base.to_owned(),
                ..args
            },
            Output { json: true },
        )
    }

    #[tokio::test]
    async fn a_private_key_sends_a_signed_assertion_and_no_secret() {
        let (base, seen) = recording_endpoint().await;
        let key = Ed25519KeyPair::generate().unwrap();
        let seed = key.seed().unwrap().as_be_bytes().unwrap();
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "from-jwk",
            "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
            "d": URL_SAFE_NO_PAD.encode(seed.as_ref()),
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, jwk.to_string()).unwrap();
        let path = path.to_str().unwrap();

        run_token(
            &base,
            &[
                "--client-id",
                "live_c",
                "--private-key",
                path,
                "--scope",
                "a",
            ],
        )
        .await
        .unwrap();
        run_token(
            &base,
            &[
                "--client-id",
                "live_c",
                "--private-key",
                path,
                "--key-id",
                "k2",
                "--assertion-audience",
                "https://issuer.example",
            ],
        )
        .await
        .unwrap();

        let seen = seen.lock().unwrap();
        let mut expected = [
            ("from-jwk", base.as_str()),
            ("k2", "https://issuer.example"),
        ]
        .into_iter();
        for (authorization, form) in seen.iter() {
            let (kid, aud) = expected.next().unwrap();
            assert_eq!(authorization, &None);
            assert_eq!(form["grant_type"], "client_credentials");
            assert_eq!(form["client_id"], "live_c");
            assert_eq!(
                form["client_assertion_type"],
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            );
            let jwt = form["client_assertion"].as_str().unwrap();
            let (signed, signature) = jwt.rsplit_once('.').unwrap();
            UnparsedPublicKey::new(&ED25519, key.public_key().as_ref())
                .verify(
                    signed.as_bytes(),
                    &URL_SAFE_NO_PAD.decode(signature).unwrap(),
                )
                .unwrap();
            let part = |i: usize| -> Value {
                let text = signed.split('.').nth(i).unwrap();
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).unwrap()).unwrap()
            };
            assert_eq!(part(0), json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}));
            assert_eq!(part(1)["aud"], aud);
            assert_eq!(part(1)["sub"], "live_c");
        }
        assert_eq!(seen[0].1["scope"], "a");
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test]
    async fn an_assertion_file_is_presented_without_client_authentication() {
        let (base, seen) = recording_endpoint().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "eyJ.platform.token\n").unwrap();
        let path = path.to_str().unwrap();

        run_token(&base, &["--assertion-file", path]).await.unwrap();
        run_token(
            &base,
            &[
                "--assertion-file",
                path,
                "--token-exchange",
                "--client-id",
                "live_c",
            ],
        )
        .await
        .unwrap();

        let seen = seen.lock().unwrap();
        assert_eq!(
            seen[0],
            (
                None,
                json!({
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": "eyJ.platform.token",
                })
            )
        );
        assert_eq!(
            seen[1],
            (
                None,
                json!({
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "client_id": "live_c",
                    "subject_token": "eyJ.platform.token",
                    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                })
            )
        );
    }

    /// A token endpoint on 127.0.0.1 keeping each request's `DPoP` header and form, and
    /// answering `token_type` `DPoP` to a request with a proof.
    async fn dpop_endpoint() -> (String, Arc<Mutex<Vec<(Option<String>, Value)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let issue = move |headers: HeaderMap, body: Bytes| async move {
            let proof = headers.get("dpop").map(|v| v.to_str().unwrap().to_owned());
            let form: serde_json::Map<String, Value> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), Value::from(v.into_owned())))
                .collect();
            let token_type = if proof.is_some() { "DPoP" } else { "bearer" };
            record.lock().unwrap().push((proof, Value::Object(form)));
            let body = json!({
                "access_token": "eyJ.t.s", "token_type": token_type, "expires_in": 60, "scope": "a",
            });
            (StatusCode::CREATED, axum::Json(body))
        };
        let app = axum::Router::new().route("/auth/token", axum::routing::post(issue));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, seen)
    }

    #[tokio::test]
    async fn a_dpop_key_signs_a_proof_for_the_token_request() {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair,
        };
        let (base, seen) = dpop_endpoint().await;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        let lines: Vec<String> = body
            .as_bytes()
            .chunks(64)
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dpop.pem");
        std::fs::write(&path, pem).unwrap();

        let args = [
            "--client-id",
            "live_c",
            "--client-secret",
            "s",
            "--dpop-key",
            path.to_str().unwrap(),
        ];
        run_token(&base, &args).await.unwrap();

        let seen = seen.lock().unwrap();
        let proof = seen[0].0.as_deref().expect("a DPoP header");
        let (signed, signature) = proof.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref())
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .expect("signed by the --dpop-key");
        let part = |i: usize| -> Value {
            let text = signed.split('.').nth(i).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).unwrap()).unwrap()
        };
        assert_eq!(part(0)["typ"], "dpop+jwt");
        assert_eq!(part(1)["htm"], "POST");
        assert_eq!(part(1)["htu"], format!("{base}/auth/token"));
    }

    #[tokio::test]
    async fn a_certificate_alone_names_the_client_in_the_form() {
        let (base, seen) = recording_endpoint().await;
        let generated = rcgen::generate_simple_self_signed(vec!["client".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("client.crt"), dir.path().join("client.key"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();

        let args = [
            "--client-id",
            "live_c",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ];
        run_token(&base, &args).await.unwrap();
        let first = seen.lock().unwrap()[0].clone();
        assert_eq!(
            first,
            (
                None,
                json!({ "grant_type": "client_credentials", "client_id": "live_c" })
            )
        );

        let e = run_token(
            &base,
            &[
                "--client-id",
                "c",
                "--cert",
                key.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
        )
        .await
        .unwrap_err();
        assert!(format!("{e:#}").starts_with("--cert/--key: "), "{e:#}");
    }

    #[tokio::test]
    async fn unusable_credential_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let missing = missing.to_str().unwrap();
        let e = run_token(
            "http://127.0.0.1:9",
            &["--client-id", "c", "--private-key", missing],
        )
        .await
        .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!("--private-key: cannot read {missing}: No such file or directory (os error 2)")
        );
        let e = run_token("http://127.0.0.1:9", &["--assertion-file", missing])
            .await
            .unwrap_err();
        assert!(
            format!("{e:#}").starts_with(&format!(
                "--assertion-file: {missing}: cannot read the token file: "
            )),
            "{e:#}"
        );
    }
}
