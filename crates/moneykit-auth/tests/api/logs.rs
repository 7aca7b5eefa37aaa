//! No secret, private key or full token ever reaches the server's output, at any log
//! level: client secrets (right and wrong), access tokens, webhook signatures, the master
//! secret, the admin token, and a client secret minted through the admin API.

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
        stderr.read_to_string(&mut log).unwrap();
        let mut stdout = String::new();
        server
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        log.push_str(&stdout);

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
