//! Clauses of the documented contract that only an end-to-end run shows: the default
//! token rate, `MoneyKit-Version` on every MoneyKit endpoint, `serve --demo`'s printed
//! credentials, the key file, a retired key leaving the JWKS, and every environment
//! variable `--help` documents.

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use moneykit_auth::crypto::sealing::MasterKey;
use moneykit_auth::domain::signing_keys::RETIRED_KEY_PUBLISHED_FOR;
use moneykit_auth::store::{InsertKeyIf, Migrations, OpenMode, PoolSettings};
use serde_json::{Value, json};

use crate::helpers::*;

/// `serve` as a new user runs it: no `--listen` unless given, the environment as given
/// (no master secret unless set), output kept in a file; killed when dropped.
struct Serve {
    child: Child,
    stdout: tempfile::NamedTempFile,
    stderr: tempfile::NamedTempFile,
}

impl Serve {
    fn spawn(args: &[&str], env: &[(&str, &str)], secret: Option<&str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_moneykit-auth"));
        command
            .arg("serve")
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied());
        match secret {
            Some(secret) => command.env("MONEYKIT_AUTH_SECRET", secret),
            None => command.env_remove("MONEYKIT_AUTH_SECRET"),
        };
        Self::from_command(command)
    }

    /// Spawns a prepared `serve` command, its stdout and stderr kept apart (they would
    /// interleave mid-line in one file).
    fn from_command(mut command: Command) -> Self {
        let (stdout, stderr) = (
            tempfile::NamedTempFile::new().unwrap(),
            tempfile::NamedTempFile::new().unwrap(),
        );
        command
            .stdin(Stdio::null())
            .stdout(stdout.reopen().unwrap())
            .stderr(stderr.reopen().unwrap());
        Self {
            child: command.spawn().unwrap(),
            stdout,
            stderr,
        }
    }

    /// Its stdout, then its stderr, so far.
    fn log(&self) -> String {
        let read =
            |f: &tempfile::NamedTempFile| std::fs::read_to_string(f.path()).unwrap_or_default();
        read(&self.stdout) + &read(&self.stderr)
    }

    /// The base URL from the server's `listening` line, once it has printed it.
    async fn base(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            // Text logs say `listening address=…`, JSON ones `"address":"…"`.
            let address = log.lines().find_map(|l| {
                let rest = l
                    .split_once("listening address=")
                    .or_else(|| l.split_once(r#""message":"listening","address":""#))?
                    .1;
                rest.split([' ', '"']).next().map(str::to_owned)
            });
            if let Some(address) = address {
                return format!("http://{address}");
            }
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "serve never listened ({exited:?}):\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_settings_never_limit_a_client_below_1000_tokens_a_second() {
    let _load = heavy_load().await;
    let db = TestDb::new().await;
    let (_, id, secret) = cli_app_and_client(&db.url, "Busy");
    // Default settings: no rate flag at all.
    let server = ServerProcess::start(&db.url, &[]).await;
    let (sent, limited, other) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    // Requests paced at the contract's figure, 1000 a second, for 8 s: request i leaves
    // i ms after the start (later if the machine cannot keep up). A limit below
    // 1000/s would refuse some once the default burst (2000) is spent: with no 429, the
    // rate is at least 1000 − 2000/8 = 750 a second, whatever the burst.
    const PER_SECOND: u64 = 1000;
    const REQUESTS: u64 = 8 * PER_SECOND;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let http = reqwest::Client::new();
    let started = tokio::time::Instant::now();
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (http, url, next) = (http.clone(), server.url("/auth/token"), next.clone());
        let (sent, limited, other) = (sent.clone(), limited.clone(), other.clone());
        let auth = basic(&id, &secret);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REQUESTS {
                    break;
                }
                let due = started + Duration::from_micros(i * 1_000_000 / PER_SECOND);
                tokio::time::sleep_until(due).await;
                let response = http
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    201 => &sent,
                    429 => &limited,
                    _ => &other,
                }
                .fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (sent, limited, other) = (
        sent.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    let rate = sent as f64 / elapsed;
    println!(
        "one client, default settings, paced at {PER_SECOND}/s: {sent} × 201 in {elapsed:.2} s ({rate:.0}/s), {limited} × 429"
    );
    assert_eq!(other, 0);
    assert_eq!(
        limited, 0,
        "a client asking at most {PER_SECOND} tokens/s on default settings was limited"
    );
    assert_eq!(sent as u64, REQUESTS);
}

#[tokio::test]
async fn an_unsupported_moneykit_version_is_refused_on_every_moneykit_endpoint() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    for (path, bearer) in [
        ("/auth/introspect", Some(token.as_str())),
        ("/.well-known/jwks.json", None),
    ] {
        let send = |version: &'static str| {
            let request = app
                .http
                .get(app.url(path))
                .header("MoneyKit-Version", version);
            match bearer {
                Some(token) => request.bearer_auth(token),
                None => request,
            }
            .send()
        };
        assert_eq!(send("2023-02-18").await.unwrap().status(), 200, "{path}");
        println!("{path}");
        assert_unsupported_version(send("1999-01-01").await.unwrap()).await;
    }
}

#[tokio::test]
async fn serve_demo_prints_credentials_that_get_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let mut serve = Serve::spawn(
        &["--demo", "--listen", "127.0.0.1:0", "--database-url", &url],
        &[],
        Some(TEST_SECRET),
    );
    let base = serve.base().await;
    let field = |log: &str, name: &str| {
        log.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let (id, secret) = loop {
        let log = serve.log();
        if let (Some(id), Some(secret)) = (field(&log, "client_id:"), field(&log, "client_secret:"))
        {
            break (id, secret);
        }
        assert!(Instant::now() < deadline, "no credentials printed:\n{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = serve.log();
    assert!(
        log.contains(&format!("{base}/auth/token")),
        "the printed curl command names the server: {log}"
    );
    // Exactly what the printed curl command does.
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/auth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let claims = assert_issued_to(response, &id).await;
    let token = http
        .post(format!("{base}/auth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = http
        .get(format!("{base}/auth/introspect"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_introspected_as(response, &id).await;
    assert_eq!(
        claims["app_id"].as_str().map(|a| a.starts_with("app_")),
        Some(true)
    );
}

#[cfg(unix)]
#[tokio::test]
async fn without_a_secret_the_key_file_is_owner_only_and_a_warning_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("dev.db").display());
    let mut serve = Serve::spawn(
        &["--listen", "127.0.0.1:0", "--database-url", &url],
        &[],
        None,
    );
    serve.base().await;
    let key_file = moneykit_auth::store::key_file_path(&url).expect("a SQLite file has one");
    assert_eq!(key_file.parent(), Some(dir.path()), "beside the database");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", key_file.display());
    let log = serve.log();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("MONEYKIT_AUTH_SECRET is not set"))
        .unwrap_or_else(|| panic!("no warning about the key file:\n{log}"));
    assert!(
        warning.contains(&key_file.display().to_string()),
        "{warning}"
    );
}

#[tokio::test]
async fn a_retired_key_leaves_the_jwks_when_its_tokens_can_no_longer_be_valid() {
    let db = TestDb::new().await;
    let store = moneykit_auth::store::open(
        &db.url,
        OpenMode::CreateIfMissing,
        Migrations::Apply,
        &PoolSettings::default(),
    )
    .await
    .unwrap();
    let master = MasterKey::from_secret(TEST_SECRET).unwrap();
    let now = time::OffsetDateTime::now_utc();
    // The old key signed until its successor took over; that was almost as long ago as a
    // retired key stays published. It must leave the JWKS in about 4 s.
    let handover = now - RETIRED_KEY_PUBLISHED_FOR + time::Duration::seconds(4);
    let old_since = handover - time::Duration::days(30);
    let old = moneykit_auth::operations::new_key_record(&master, old_since, old_since);
    let new = moneykit_auth::operations::new_key_record(&master, handover, handover);
    assert!(store.insert_key(&old, InsertKeyIf::NoKeys).await.unwrap());
    assert!(
        store
            .insert_key(&new, InsertKeyIf::NonePendingAt(now))
            .await
            .unwrap()
    );
    let app = spawn_on(db.clone(), test_settings(&db)).await;
    let published = |jwks: &moneykit_wire::JwkSet, kid: &str| jwks.find(kid).is_some();
    let jwks = app.jwks().await;
    assert!(published(&jwks, &old.kid), "retired, still published");
    assert!(published(&jwks, &new.kid));
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    assert_eq!(
        jwt_part(&token, 0)["kid"],
        new.kid.as_str(),
        "the new key signs"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let jwks = app.jwks().await;
        if !published(&jwks, &old.kid) {
            assert!(published(&jwks, &new.kid), "the signing key stays");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retired key is still published well after its tokens expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not before its time (the store keeps whole seconds).
    assert!(
        time::OffsetDateTime::now_utc()
            >= handover + RETIRED_KEY_PUBLISHED_FOR - time::Duration::seconds(1),
        "not before its time"
    );
    assert_introspected_as(app.introspect(&token).await, &client.id).await;
}

/// The `--help` text of `moneykit-auth <path>`.
fn help(path: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_moneykit-auth"))
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{path:?} --help");
    String::from_utf8(output.stdout).unwrap()
}

/// Every `MONEYKIT_AUTH_*` variable documented anywhere in `--help`, with the command it
/// appears under and the flag it sets (`None` when only the text names it).
fn documented_variables() -> BTreeMap<String, (Vec<String>, Option<String>)> {
    let mut found = BTreeMap::new();
    let mut paths: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = paths.pop() {
        let path_str: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&path_str);
        // Subcommands, listed under "Commands:".
        if let Some(commands) = text.split("Commands:\n").nth(1) {
            let listed = commands.lines().take_while(|l| l.starts_with("  "));
            // Descriptions that wrap continue with deeper indentation.
            for line in listed.filter(|l| !l.starts_with("   ")) {
                let name = line.split_whitespace().next().unwrap();
                if name != "help" && path.len() < 2 {
                    let mut sub = path.clone();
                    sub.push(name.to_owned());
                    paths.push(sub);
                }
            }
        }
        let mut flag = None;
        for line in text.lines() {
            let trimmed = line.trim_start();
            // Flags start at most 6 columns in; their descriptions, which may mention
            // other flags, deeper.
            if trimmed.starts_with('-') && line.len() - trimmed.len() <= 6 {
                flag = trimmed
                    .split([' ', ','])
                    .find(|w| w.starts_with("--"))
                    .map(|w| w.trim_end_matches(['=', '<']).to_owned());
            }
            for (i, _) in line.match_indices("MONEYKIT_AUTH_") {
                let name: String = line[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                let sets = if line[i + name.len()..].starts_with('=') {
                    flag.clone() // "[env: NAME=]"
                } else {
                    None
                };
                let entry = found.entry(name).or_insert((path.clone(), None));
                if entry.1.is_none() {
                    *entry = (path.clone(), sets);
                }
            }
        }
    }
    found
}

/// What setting a variable must visibly do.
enum Check {
    /// The command fails, its error containing this (the flag it sets, usually).
    Fails(&'static str),
    /// `serve` starts, and its log comes to contain this.
    Logs(&'static str),
    /// `serve` starts, and `GET path` answers with a body containing this.
    Serves(&'static str, &'static str),
    /// `serve` starts, and after `GET path` its log comes to contain this.
    LogsServing(&'static str, &'static str),
}

/// One row: the command (without `--database-url`), the variable's value, other
/// variables set with it, and what must happen.
struct Case {
    args: Vec<String>,
    value: String,
    with: Vec<(&'static str, String)>,
    check: Check,
}

fn case(args: &[&str], value: &str, check: Check) -> Case {
    Case {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        value: value.to_owned(),
        with: vec![],
        check,
    }
}

const SERVE: &[&str] = &["serve", "--listen", "127.0.0.1:0"];

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_environment_variable_takes_effect() {
    use Check::*;
    let documented = documented_variables();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("env.db").display());

    // A server and a client for the `token` command's variables.
    let (_, client_id, client_secret) = cli_app_and_client(&url, "Env");
    let mut server = Serve::spawn(
        &["--listen", "127.0.0.1:0", "--database-url", &url],
        &[],
        Some(TEST_SECRET),
    );
    let base = server.base().await;
    // A private_key_jwt client and a private key file, for the private-key variables: the
    // key authenticates (the scope is then refused), a kid or audience of the variable's
    // is refused by the server naming it.
    let pem_path = dir.path().join("client-key.pem");
    let key_client = {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let der = EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        );
        std::fs::write(&pem_path, &pem).unwrap();
        let key = moneykit::PrivateKey::from_pem(pem.as_bytes()).unwrap();
        let jwks_path = dir.path().join("client-jwks.json");
        std::fs::write(&jwks_path, json!({"keys": [key.public_jwk()]}).to_string()).unwrap();
        let app = cli_app(&url, "Keys");
        let created = cli_json(&cli(
            &url,
            &[
                "clients",
                "create",
                "--app",
                &app,
                "--auth-method",
                "private_key_jwt",
                "--jwks-file",
                jwks_path.to_str().unwrap(),
                "--json",
            ],
        ));
        created["client_id"].as_str().unwrap().to_owned()
    };
    let pem_path = pem_path.to_str().unwrap().to_owned();
    let assertion_file = dir.path().join("platform-token");
    std::fs::write(&assertion_file, "not-a-jwt").unwrap();
    let assertion_file = assertion_file.to_str().unwrap().to_owned();
    let private_key = |name: &str, value: &str, check: Check| Case {
        args: vec!["token".into()],
        value: value.into(),
        with: [
            ("MONEYKIT_AUTH_URL", base.clone()),
            ("MONEYKIT_AUTH_CLIENT_ID", key_client.clone()),
            ("MONEYKIT_AUTH_PRIVATE_KEY", pem_path.clone()),
            ("MONEYKIT_AUTH_SCOPE", "not-granted".to_owned()),
        ]
        .into_iter()
        .filter(|(n, _)| *n != name)
        .collect(),
        check,
    };
    // Id, secret and URL reach the server and authenticate; the scope is then refused.
    let token = |name: &str| {
        let all = [
            ("MONEYKIT_AUTH_URL", base.clone()),
            ("MONEYKIT_AUTH_CLIENT_ID", client_id.clone()),
            ("MONEYKIT_AUTH_CLIENT_SECRET", client_secret.clone()),
            ("MONEYKIT_AUTH_SCOPE", "not-granted".to_owned()),
        ];
        let value = all.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        Case {
            args: vec!["token".into()],
            value,
            with: all.into_iter().filter(|(n, _)| *n != name).collect(),
            check: Fails("invalid_scope"),
        }
    };
    let admin_serve = [SERVE, &["--admin-listen", "127.0.0.1:0"]].concat();
    // Every variable whose garbage value is not simply refused naming its flag.
    let mut special: BTreeMap<&str, Case> = [
        (
            "MONEYKIT_AUTH_DATABASE_URL",
            case(
                &["apps", "list"],
                "mysql://localhost/x",
                Fails("unsupported database URL"),
            ),
        ),
        (
            "MONEYKIT_AUTH_TLS_CERT",
            case(SERVE, "cert.pem", Fails("--tls-key")),
        ),
        (
            "MONEYKIT_AUTH_TLS_KEY",
            case(SERVE, "key.pem", Fails("--tls-cert")),
        ),
        (
            "MONEYKIT_AUTH_CLIENT_IP_HEADER",
            case(SERVE, "a b", Fails("--client-ip-header")),
        ),
        (
            "MONEYKIT_AUTH_SECRET",
            case(
                &["keys", "rotate"],
                "short",
                Fails("at least 32 characters"),
            ),
        ),
        (
            "MONEYKIT_AUTH_LISTEN",
            case(
                &["serve"],
                "127.0.0.3:0",
                Logs("listening address=127.0.0.3:"),
            ),
        ),
        (
            "MONEYKIT_AUTH_DEMO",
            case(SERVE, "true", Logs("client_secret:")),
        ),
        (
            "MONEYKIT_AUTH_JSON",
            case(
                &[SERVE, &["--demo"]].concat(),
                "true",
                Logs("\"client_secret\""),
            ),
        ),
        (
            "MONEYKIT_AUTH_LOG_FORMAT",
            case(SERVE, "json", Logs("\"level\":\"INFO\"")),
        ),
        (
            "MONEYKIT_AUTH_CONFIG",
            case(
                &["apps", "list"],
                "/nonexistent/moneykit-auth.toml",
                Fails("cannot read config file"),
            ),
        ),
        (
            "MONEYKIT_AUTH_MIGRATE",
            case(
                SERVE,
                "true",
                Logs("schema up to date; no migration to apply"),
            ),
        ),
        (
            "MONEYKIT_AUTH_INSTANCE_ID",
            case(SERVE, "replica-9", Logs("instance=replica-9")),
        ),
        (
            "MONEYKIT_AUTH_ACCESS_LOG",
            case(
                SERVE,
                "true",
                LogsServing("/healthz/live", "access method=GET path=/healthz/live"),
            ),
        ),
        (
            "MONEYKIT_AUTH_WEBHOOKS_ALLOW_HTTP",
            case(SERVE, "true", Logs("allow_http=true")),
        ),
        (
            "MONEYKIT_AUTH_WEBHOOKS_ALLOW_PRIVATE_TARGETS",
            case(SERVE, "true", Logs("allow_private_targets=true")),
        ),
        (
            "MONEYKIT_AUTH_JWKS_ALLOW_HTTP",
            case(
                SERVE,
                "true",
                Logs("key fetch policy relaxed: for development and tests only allow_http=true"),
            ),
        ),
        (
            "MONEYKIT_AUTH_JWKS_ALLOW_PRIVATE_TARGETS",
            case(
                SERVE,
                "true",
                Logs("key fetch policy relaxed: for development and tests only allow_http=false allow_private_targets=true"),
            ),
        ),
        (
            "MONEYKIT_AUTH_DPOP_NONCE",
            case(SERVE, "true", Logs("DPoP nonces on")),
        ),
        (
            "MONEYKIT_AUTH_AUDIT_LOG",
            case(
                SERVE,
                "/nonexistent/dir/audit.jsonl",
                Fails("cannot open --audit-log"),
            ),
        ),
        (
            "MONEYKIT_AUTH_CLIENT_CERT_HEADER",
            case(SERVE, "x-client-cert", Fails("--trusted-proxy")),
        ),
        (
            "MONEYKIT_AUTH_STRICT_ASSERTION_AUDIENCE",
            case(SERVE, "true", Logs("client assertions must name the issuer alone")),
        ),
        (
            "MONEYKIT_AUTH_ADMIN_TOKEN",
            case(
                &admin_serve,
                "an-admin-token-long-enough-0123456789abcdef",
                Logs("admin API listening"),
            ),
        ),
        (
            "MONEYKIT_AUTH_PUBLISH_SCOPES",
            case(
                SERVE,
                "true",
                Serves(
                    "/.well-known/oauth-authorization-server",
                    "scopes_supported",
                ),
            ),
        ),
    ]
    .into_iter()
    .collect();
    for name in [
        "MONEYKIT_AUTH_URL",
        "MONEYKIT_AUTH_CLIENT_ID",
        "MONEYKIT_AUTH_CLIENT_SECRET",
        "MONEYKIT_AUTH_SCOPE",
    ] {
        special.insert(name, token(name));
    }
    let pem = pem_path.as_str();
    special.insert(
        "MONEYKIT_AUTH_PRIVATE_KEY",
        private_key("MONEYKIT_AUTH_PRIVATE_KEY", pem, Fails("invalid_scope")),
    );
    special.insert(
        "MONEYKIT_AUTH_KEY_ID",
        private_key(
            "MONEYKIT_AUTH_KEY_ID",
            "kid-from-env",
            Fails("not signed by a registered key"),
        ),
    );
    special.insert(
        "MONEYKIT_AUTH_ASSERTION_AUDIENCE",
        private_key(
            "MONEYKIT_AUTH_ASSERTION_AUDIENCE",
            "https://elsewhere.example",
            Fails("aud must be"),
        ),
    );
    // The binding options of `token`, with a client that would otherwise get a token: a
    // file that is not there is refused naming the option.
    let bound = |with: &[(&'static str, &str)], check: &'static str| Case {
        args: vec!["token".into()],
        value: "x%y".into(),
        with: [
            ("MONEYKIT_AUTH_URL", base.clone()),
            ("MONEYKIT_AUTH_CLIENT_ID", client_id.clone()),
            ("MONEYKIT_AUTH_CLIENT_SECRET", client_secret.clone()),
        ]
        .into_iter()
        .chain(with.iter().map(|(n, v)| (*n, (*v).to_owned())))
        .collect(),
        check: Fails(check),
    };
    special.insert("MONEYKIT_AUTH_CACERT", bound(&[], "--cacert"));
    special.insert("MONEYKIT_AUTH_DPOP_KEY", bound(&[], "--dpop-key"));
    special.insert(
        "MONEYKIT_AUTH_CLIENT_CERT",
        bound(&[("MONEYKIT_AUTH_CLIENT_CERT_KEY", "x%y")], "--cert/--key"),
    );
    special.insert(
        "MONEYKIT_AUTH_CLIENT_CERT_KEY",
        bound(&[("MONEYKIT_AUTH_CLIENT_CERT", "x%y")], "--cert/--key"),
    );
    special.insert(
        "MONEYKIT_AUTH_ASSERTION_FILE",
        Case {
            args: vec!["token".into()],
            value: assertion_file.clone(),
            with: vec![("MONEYKIT_AUTH_URL", base.clone())],
            check: Fails("not a compact JWT"),
        },
    );
    for name in special.keys() {
        assert!(
            documented.contains_key(*name),
            "{name} is no longer documented"
        );
    }
    assert!(documented.len() >= 40, "{documented:?}");

    for (name, (path, flag)) in &documented {
        let case = special.remove(name.as_str()).unwrap_or_else(|| {
            let flag = flag
                .clone()
                .unwrap_or_else(|| panic!("{name} sets no flag and has no row here"));
            let mut args = path.clone();
            if path.first().is_some_and(|c| c == "serve") {
                args.extend(["--listen".into(), "127.0.0.1:0".into()]);
            }
            Case {
                args,
                value: "x%y".into(),
                with: vec![],
                check: Fails(Box::leak(flag.into_boxed_str())),
            }
        });
        let mut command = Command::new(env!("CARGO_BIN_EXE_moneykit-auth"));
        command
            .args(&case.args)
            .env("MONEYKIT_AUTH_SECRET", TEST_SECRET)
            .env_remove("RUST_LOG");
        if name != "MONEYKIT_AUTH_DATABASE_URL" {
            command.args(["--database-url", &url]);
        }
        command.envs(case.with.iter().map(|(n, v)| (*n, v.as_str())));
        command.env(name, &case.value);
        let shown = format!("{name}={} on {:?}", case.value, case.args);
        match case.check {
            Fails(expected) => {
                let output: Output = tokio::task::spawn_blocking(move || run_bounded(command))
                    .await
                    .unwrap();
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(!output.status.success(), "{shown}: succeeded\n{stderr}");
                assert!(
                    stderr.contains(expected),
                    "{shown}: expected {expected:?} in:\n{stderr}"
                );
            }
            Logs(expected) | Serves(_, expected) | LogsServing(_, expected) => {
                let mut serve = Serve::from_command(command);
                let base = serve.base().await;
                if let LogsServing(path, _) = case.check {
                    reqwest::get(format!("{base}{path}")).await.unwrap();
                }
                if let Serves(path, _) = case.check {
                    let body = reqwest::get(format!("{base}{path}"))
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    assert!(
                        body.contains(expected),
                        "{shown}: {path} has no {expected:?}: {body}"
                    );
                } else {
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while !serve.log().contains(expected) && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let log = serve.log();
                    assert!(
                        log.contains(expected),
                        "{shown}: expected {expected:?} in:\n{log}"
                    );
                }
            }
        }
        println!("{shown}: ok");
    }
    assert!(
        special.is_empty(),
        "rows for undocumented variables: {:?}",
        special.keys()
    );
    server.child.kill().unwrap();
}

/// Runs `command` to its end, killing it after 20 s: a variable that is not read lets
/// `serve` start, which must fail the test rather than hang it.
fn run_bounded(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}
