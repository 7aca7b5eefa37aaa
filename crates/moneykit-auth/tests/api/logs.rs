//! No secret, private key or full token ever reaches the server's output, at any log
//! level: client secrets (right and wrong), access tokens, webhook signatures, the master
//! secret, the admin token, and a client secret minted through the admin API.
//!
//! And what the log says: every line carries `version` and `instance`; JSON lines are
//! JSON objects whose values are never Rust `Debug` renderings; failed authentications
//! and admin changes are logged once at info; `--access-log` logs each request once.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn secrets_and_tokens_never_appear_in_server_output_even_at_trace_level() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let (app_id, id, secret) = cli_app_and_client(&url, "Logs");
    let receiver = crate::support::receiver::Receiver::start(&[]).await;
    set_webhook(&url, &app_id, &receiver.url);
    const ADMIN_TOKEN: &str = "admin-token-that-must-never-be-logged-0123";

    for format in ["text", "json"] {
        // The previous run rotated the secret through the admin API: take a fresh one.
        let secret = if format == "text" {
            secret.clone()
        } else {
            cli_json(&cli(&url, &["clients", "rotate-secret", &id, "--json"]))["client_secret"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let mut server = Command::new(env!("CARGO_BIN_EXE_moneykit-auth"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                &url,
                "--log-format",
                format,
                "--admin-listen",
                "127.0.0.1:0",
                "--webhooks-allow-http",
                "--webhooks-allow-private-targets",
            ])
            .env("MONEYKIT_AUTH_SECRET", TEST_SECRET)
            .env("MONEYKIT_AUTH_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(server.stderr.take().unwrap());
        let mut log = String::new();
        let address_in = |line: &str| {
            let at = line.find("127.0.0.1:").unwrap();
            let rest = &line[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        };
        let mut admin_address = None;
        let address = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "server exited: {log}"
            );
            log.push_str(&line);
            if line.contains("admin API listening") {
                admin_address = Some(address_in(&line));
            } else if line.contains("listening") {
                break address_in(&line);
            }
        };
        // Read the rest of both streams while the server runs: at trace level it writes
        // more than a pipe holds, and a full pipe would stall its logging, and with it the
        // requests below.
        let rest_of_stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            stderr.read_to_string(&mut rest).unwrap();
            rest
        });
        let mut stdout_pipe = server.stdout.take().unwrap();
        let rest_of_stdout = std::thread::spawn(move || {
            let mut rest = String::new();
            stdout_pipe.read_to_string(&mut rest).unwrap();
            rest
        });
        let admin = format!("http://{}", admin_address.expect("the admin API started"));
        let base = format!("http://{address}");
        let http = reqwest::Client::new();
        let body = form(&[("client_id", &id), ("client_secret", &secret)]);
        let response = http
            .post(format!("{base}/auth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let token: serde_json::Value = response.json().await.unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        let wrong_secret = format!("{secret}WRONG");
        for auth in [basic(&id, &secret), basic(&id, &wrong_secret)] {
            http.post(format!("{base}/auth/token"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
        }
        http.get(format!("{base}/auth/introspect"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        http.get(format!("{base}/auth/introspect"))
            .bearer_auth(format!("{token}x"))
            .send()
            .await
            .unwrap();
        // A signed webhook delivery.
        let delivered_before = receiver.deliveries().len();
        let queued = http
            .post(format!("{base}/webhooks/test/link/l1"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"webhook_event": "link.state_changed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(queued.status(), 200);
        let deliveries = receiver
            .wait_for(delivered_before + 1, Duration::from_secs(5))
            .await;
        let webhook_signature = deliveries.last().unwrap().signature.clone();
        // The admin API: metrics with the right and a wrong token, and a secret minted.
        for bearer in [ADMIN_TOKEN, "admin-token-that-is-wrong-0123456789abcdef"] {
            http.get(format!("{admin}/metrics"))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap();
        }
        let rotated: serde_json::Value = http
            .post(format!("{admin}/admin/clients/{id}/rotate-secret"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let minted = rotated["client_secret"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(300)).await;

        Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap();
        let status = server.wait().unwrap();
        assert!(status.success(), "graceful exit on SIGTERM");
        log.push_str(&rest_of_stderr.join().unwrap());
        log.push_str(&rest_of_stdout.join().unwrap());

        assert!(log.contains("listening"), "the log was captured");
        assert!(
            log.lines().count() > 5,
            "trace level produced output: {log}"
        );
        let signature = token.rsplit('.').next().unwrap();
        for (what, needle) in [
            ("client secret", secret.as_str()),
            ("wrong secret", wrong_secret.as_str()),
            ("token", token.as_str()),
            ("token signature", signature),
            ("master secret", TEST_SECRET),
            ("admin token", ADMIN_TOKEN),
            ("webhook signature", webhook_signature.as_str()),
            ("client secret minted by the admin API", minted.as_str()),
            ("a private key", "PRIVATE KEY"),
        ] {
            assert!(
                !log.contains(needle),
                "{what} appears in the {format} log:\n{log}"
            );
        }
    }
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The JSON objects of a log, one a line; panics on a line that is not one.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{log}"));
            assert!(value.is_object(), "not an object: {line}");
            value
        })
        .collect()
}

/// Every string in `value`, nested ones included.
fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn with_message<'a>(lines: &'a [serde_json::Value], message: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

#[tokio::test]
async fn json_lines_are_objects_with_version_and_instance_and_no_debug_values() {
    const ADMIN_TOKEN: &str = "admin-token-for-the-json-log-test-0123456789";
    let db = TestDb::new().await;
    let (app_id, id, secret) = cli_app_and_client(&db.url, "Json logs");
    let server = ServerProcess::spawn_with_env(
        &db.url,
        &[
            "--log-format",
            "json",
            "--instance-id",
            "replica-7.example",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[("MONEYKIT_AUTH_ADMIN_TOKEN", ADMIN_TOKEN)],
        TEST_SECRET,
        "info",
    );
    server.wait_for("/healthz/ready").await;
    let http = reqwest::Client::new();
    let base = &server.base;
    let token = token(&http, base, (&id, &secret), None).await;
    let wrong = format!("{secret}WRONG");
    assert_eq!(
        request_token(&http, base, (&id, &wrong), None)
            .await
            .status(),
        401
    );
    let revoke = format!("{base}/oauth2/revoke");
    let revoked = oauth2_token_call(&http, &revoke, (&id, &secret), &token).await;
    assert_eq!(revoked.status(), 200);
    let (status, created) = admin_call(
        &http,
        ADMIN_TOKEN,
        "POST",
        &server.admin_url("/admin/clients"),
        Some(serde_json::json!({"app_id": app_id, "name": "via api"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let minted = created["client_secret"].as_str().unwrap();

    let log = server.log();
    let lines = json_lines(&log);
    assert!(lines.len() >= 5, "{log}");
    for line in &lines {
        assert_eq!(line["version"], VERSION, "{line}");
        assert_eq!(line["instance"], "replica-7.example", "{line}");
        let mut values = Vec::new();
        strings(line, &mut values);
        for value in values {
            assert!(
                !value.starts_with("Some(") && !value.contains('"'),
                "a Debug rendering in {line}"
            );
        }
    }
    // The admin listener's address is a plain address.
    let admin = with_message(&lines, "admin API listening");
    assert_eq!(admin.len(), 1, "{log}");
    let address = admin[0]["address"].as_str().unwrap();
    assert!(address.parse::<std::net::SocketAddr>().is_ok(), "{address}");

    let failed = with_message(&lines, "client authentication failed");
    assert_eq!(failed.len(), 1, "one line for one failure:\n{log}");
    assert_eq!(failed[0]["level"], "INFO");
    assert_eq!(failed[0]["client_id"], id.as_str());
    assert_eq!(failed[0]["reason"], "wrong_secret");
    assert_eq!(failed[0]["client"], "127.0.0.1");
    let revoked = with_message(&lines, "token revoked");
    assert_eq!(revoked.len(), 1, "{log}");
    assert!(revoked[0]["request_id"].is_string(), "{log}");

    let created = with_message(&lines, "client created");
    assert_eq!(created.len(), 1, "{log}");
    assert_eq!(created[0]["via"], "admin_api");
    assert_eq!(created[0]["app_id"], app_id.as_str());
    for needle in [
        secret.as_str(),
        wrong.as_str(),
        token.as_str(),
        minted,
        ADMIN_TOKEN,
    ] {
        assert!(
            !log.contains(needle),
            "a secret or token in the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn failed_authentications_are_logged_once_with_a_reason_and_text_lines_name_the_build() {
    let db = TestDb::new().await;
    let (_, id, secret) = cli_app_and_client(&db.url, "Text logs");
    let server = ServerProcess::spawn(&db.url, &[], TEST_SECRET, "info");
    server.wait_for("/healthz/ready").await;
    let http = reqwest::Client::new();
    let token_url = server.url("/auth/token");
    let failures = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("client authentication failed"))
            .map(str::to_owned)
            .collect()
    };
    // Each failure, alone, and the one line it leaves.
    let cases: [(&str, Option<String>, &str); 4] = [
        (
            "unknown_client",
            Some(basic("live_nobody", "mks_x")),
            "live_nobody",
        ),
        (
            "wrong_secret",
            Some(basic(&id, "mks_wrong_secret_value")),
            id.as_str(),
        ),
        ("missing_credentials", None, ""),
        ("malformed", Some("Basic !!!".to_owned()), ""),
    ];
    for (reason, authorization, client_id) in cases {
        let before = failures(&server.log()).len();
        let response = post_form(
            &http,
            &token_url,
            "grant_type=client_credentials",
            authorization.as_deref(),
        )
        .await;
        assert_eq!(response.status(), 401, "{reason}");
        let log = server.log();
        let lines = failures(&log);
        assert_eq!(lines.len(), before + 1, "one line for {reason}:\n{log}");
        let line = lines.last().unwrap();
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains(&format!("reason={reason}")), "{line}");
        assert!(line.contains("client=127.0.0.1"), "{line}");
        if client_id.is_empty() {
            assert!(!line.contains("client_id="), "{line}");
        } else {
            assert!(
                line.contains(&format!("client_id=\"{client_id}\"")),
                "{line}"
            );
        }
        assert!(!line.contains("mks_"), "no secret: {line}");
    }
    // A bad bearer token on the MoneyKit introspection.
    let response = introspect(&http, &server.base, "not.a.token").await;
    assert_eq!(response.status(), 401);
    let log = server.log();
    assert!(
        failures(&log)
            .last()
            .unwrap()
            .contains("reason=invalid_token"),
        "{log}"
    );
    assert!(!log.contains("not.a.token"), "{log}");
    assert!(!log.contains(&secret), "{log}");

    // Every line ends with the version and one random 12-hex-character instance id.
    let suffix = format!(" version={VERSION} instance=");
    let mut instances = std::collections::BTreeSet::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let (_, instance) = line
            .rsplit_once(&suffix)
            .unwrap_or_else(|| panic!("no version and instance: {line}"));
        assert_eq!(instance.len(), 12, "{line}");
        assert!(instance.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        instances.insert(instance.to_owned());
    }
    assert_eq!(
        instances.len(),
        1,
        "one instance id per process: {instances:?}"
    );
}

#[tokio::test]
async fn admin_changes_from_the_cli_are_logged_once_with_via_cli() {
    let db = TestDb::new().await;
    let (app_id, id, _) = cli_app_and_client(&db.url, "Cli logs");
    let only = |output: &std::process::Output, message: &str| -> String {
        assert!(output.status.success(), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(message)).collect();
        assert_eq!(lines.len(), 1, "one {message:?} line:\n{stderr}");
        lines[0].to_owned()
    };
    let line = only(
        &cli(&db.url, &["clients", "disable", &id]),
        "client disabled",
    );
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains(&format!("client_id={id}")), "{line}");
    assert!(line.contains("via=cli"), "{line}");
    let output = cli(&db.url, &["clients", "rotate-secret", &id, "--json"]);
    let line = only(&output, "client secret rotated");
    let secret = cli_json(&output)["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(&secret),
        "{line}"
    );
    let output = cli(
        &db.url,
        &[
            "apps",
            "set-webhook",
            &app_id,
            "http://127.0.0.1:9/hook/s3cret-path?key=s3cret",
            "--allow-http",
            "--allow-private-targets",
        ],
    );
    let line = only(&output, "app webhook URL set");
    assert!(line.contains("host=127.0.0.1"), "{line}");
    assert!(
        !line.contains("hunter2") && !line.contains("s3cret"),
        "{line}"
    );
    let line = only(&cli(&db.url, &["keys", "rotate"]), "signing key rotation");
    assert!(line.contains("kid=") && line.contains("via=cli"), "{line}");
}

#[tokio::test]
async fn the_access_log_has_one_line_per_request_only_when_asked_for() {
    let db = TestDb::new().await;
    for enabled in [true, false] {
        let mut args = vec!["--log-format", "json"];
        if enabled {
            args.push("--access-log");
        }
        let server = ServerProcess::spawn(&db.url, &args, TEST_SECRET, "info");
        server.wait_for("/healthz/live").await;
        let start = server.log().len();
        let http = reqwest::Client::new();
        let requests = [
            ("GET", "/.well-known/jwks.json?token=query-secret", 200),
            ("POST", "/auth/token", 401),
            ("GET", "/no/such/path", 404),
        ];
        for (method, path, status) in requests {
            let response = http
                .request(method.parse().unwrap(), server.url(path))
                .header("x-request-id", format!("req-{status}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
        }
        let log = server.log();
        let lines = json_lines(&log[start..]);
        let access = with_message(&lines, "access");
        if !enabled {
            assert!(access.is_empty(), "no access log unless asked for:\n{log}");
            continue;
        }
        assert_eq!(access.len(), requests.len(), "one line per request:\n{log}");
        for ((method, path, status), line) in requests.iter().zip(access) {
            assert_eq!(line["level"], "INFO");
            assert_eq!(line["method"], *method);
            assert_eq!(line["path"], path.split('?').next().unwrap(), "no query");
            assert_eq!(line["status"], *status);
            assert!(line["duration_ms"].as_f64().is_some(), "{line}");
            assert_eq!(line["client"], "127.0.0.1");
            assert_eq!(line["request_id"], format!("req-{status}"));
            assert_eq!(line["version"], VERSION);
        }
        assert!(!log.contains("query-secret"), "{log}");
    }
}
