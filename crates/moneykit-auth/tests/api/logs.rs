//! No secret or token ever reaches the server's output, at any log level.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn secrets_and_tokens_never_appear_in_server_output_even_at_trace_level() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let app = cli_json(&cli(&url, &["apps", "create", "--name", "Logs", "--json"]));
    let client = cli_json(&cli(
        &url,
        &[
            "clients",
            "create",
            "--app",
            app["app_id"].as_str().unwrap(),
            "--json",
        ],
    ));
    let id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();

    for format in ["text", "json"] {
        let mut server = Command::new(env!("CARGO_BIN_EXE_moneykit-auth"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                &url,
                "--log-format",
                format,
            ])
            .env("MONEYKIT_AUTH_SECRET", TEST_SECRET)
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(server.stderr.take().unwrap());
        let mut log = String::new();
        let address = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "server exited: {log}"
            );
            log.push_str(&line);
            if line.contains("listening") {
                let at = line.find("127.0.0.1:").unwrap();
                let rest = &line[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                    .unwrap_or(rest.len());
                break rest[..end].to_owned();
            }
        };
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
        ] {
            assert!(
                !log.contains(needle),
                "{what} appears in the {format} log:\n{log}"
            );
        }
    }
}
