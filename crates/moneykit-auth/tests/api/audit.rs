//! The audit trail: every change through the CLI or the admin API, and every refused
//! attempt, leaves one record naming who did it; records are listed with filters and
//! pages, streamed as JSON lines, and cannot be changed.

use std::collections::BTreeSet;
use std::time::Duration;

use moneykit_auth::http::admin_access::ROUTES;
use serde_json::{Value, json};

use crate::helpers::*;

async fn admin_app_with(adjust: impl FnOnce(&mut moneykit_auth::config::ServeSettings)) -> TestApp {
    spawn_admin_app_with(|s| {
        s.webhooks.policy.allow_http = true;
        s.webhooks.policy.allow_private_targets = true;
        adjust(s);
    })
    .await
}

async fn call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    app.admin_as(ADMIN_TOKEN, method, path, body).await
}

/// Every record, newest first, through the admin API (following the pages).
async fn records(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/audit?limit=1000&cursor={c}"),
            None => "/admin/audit?limit=1000".to_owned(),
        };
        let (status, page) = call(app, "GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

/// The records of `action`.
fn of<'a>(records: &'a [Value], action: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["action"] == action).collect()
}

#[tokio::test]
async fn every_admin_api_change_leaves_an_audit_record() {
    let receiver = crate::support::receiver::Receiver::start(&[]).await;
    let app = admin_app_with(|_| {}).await;
    let (client, _) = app.create_client("accounts:read", None).await;
    let app_id = client.app_id.clone();
    set_webhook(&app.database_url, &app_id, &receiver.url);
    let spare = cli_json(
        &app.cli_async(&["clients", "add-secret", &client.id, "--json"])
            .await,
    );
    let secret_id = spare["secret_id"].as_str().unwrap().to_owned();
    let jwks_dir = tempfile::tempdir().unwrap();
    let jwks_file = jwks_file(&jwks_dir);
    let rule = cli_json(
        &app.cli_async(&[
            "clients",
            "trust",
            &client.id,
            "--issuer",
            "https://issuer.example",
            "--subject",
            "s",
            "--jwks-file",
            &jwks_file,
            "--json",
        ])
        .await,
    );
    let rule_id = rule["rule_id"].as_str().unwrap().to_owned();
    let event = cli_json(
        &app.cli_async(&[
            "webhooks", "send", "--app", &app_id, "--event", "ops.test", "--json",
        ])
        .await,
    );
    let event_id = event["event_id"]
        .as_str()
        .or(event["id"].as_str())
        .unwrap()
        .to_owned();
    let kid = app.jwks().await.keys[0].kid.clone().unwrap();

    let changes: Vec<_> = ROUTES.iter().filter(|r| r.action.is_some()).collect();
    assert_eq!(changes.len(), 16, "{changes:?}");
    let mut seen = BTreeSet::new();
    for route in changes {
        let action = route.action.unwrap();
        let path = route
            .path
            .replace("/admin/apps/{id}", &format!("/admin/apps/{app_id}"))
            .replace(
                "/admin/clients/{id}",
                &format!("/admin/clients/{}", client.id),
            )
            .replace("{secret_id}", &secret_id)
            .replace("{rule_id}", &rule_id)
            .replace(
                "/admin/webhooks/{id}",
                &format!("/admin/webhooks/{event_id}"),
            )
            .replace("{kid}", &kid);
        let body = match action {
            "app.create" => Some(json!({"name": "Audited"})),
            "app.webhook.set" => Some(json!({"url": receiver.url})),
            "client.create" => Some(json!({"app_id": app_id, "scope": "accounts:read"})),
            "client.update" => Some(json!({"name": "renamed"})),
            "client.trust_rule.add" => {
                Some(json!({"issuer": "https://other.example", "subject": "x", "jwks": jwks()}))
            }
            "webhook.send" => Some(json!({"app_id": app_id, "event": "ops.again"})),
            _ => None,
        };
        let before = records(&app).await.len();
        let (status, answer) = call(&app, route.method, &path, body).await;
        let after = records(&app).await;
        assert_eq!(
            after.len(),
            before + 1,
            "{} {path} ({status} {answer}) left one record",
            route.method
        );
        let record = &after[0];
        assert_eq!(record["action"], action, "{record}");
        assert_eq!(record["actor"], "admin_token");
        assert_eq!(record["via"], "admin_api");
        assert!(record["request_id"].is_string(), "{record}");
        assert_eq!(record["source"], "127.0.0.1");
        let expected = if status < 300 { "ok" } else { "refused" };
        assert_eq!(
            record["outcome"], expected,
            "{path} {status} {answer}: {record}"
        );
        seen.insert(action);
    }
    // The trail never holds a secret.
    let text = serde_json::to_string(&records(&app).await).unwrap();
    assert!(!text.contains("mks_"), "a secret in the trail");
    assert!(seen.contains("client.secret.rotate") && seen.contains("key.revoke"));
}

#[tokio::test]
async fn every_cli_change_leaves_an_audit_record_and_every_command_is_classified() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let app_id = cli_app(&url, "CLI audited");
    let (client_id, _) = cli_client(&url, &app_id);
    let spare = cli_json(
        &app.cli_async(&["clients", "add-secret", &client_id, "--json"])
            .await,
    );
    let secret_id = spare["secret_id"].as_str().unwrap().to_owned();
    let kid = app.jwks().await.keys[0].kid.clone().unwrap();
    let jwks_dir = tempfile::tempdir().unwrap();
    let jwks_file = jwks_file(&jwks_dir);
    let runs: Vec<(Vec<&str>, &str)> = vec![
        (vec!["apps", "create", "--name", "x"], "app.create"),
        (
            vec![
                "apps",
                "set-webhook",
                &app_id,
                "http://127.0.0.1:9/in",
                "--allow-http",
                "--allow-private-targets",
            ],
            "app.webhook.set",
        ),
        (
            vec!["apps", "set-webhook", &app_id, "--clear"],
            "app.webhook.clear",
        ),
        (vec!["clients", "create", "--app", &app_id], "client.create"),
        (
            vec!["clients", "update", &client_id, "--name", "n"],
            "client.update",
        ),
        (vec!["clients", "disable", &client_id], "client.disable"),
        (vec!["clients", "enable", &client_id], "client.enable"),
        (
            vec!["clients", "rotate-secret", &client_id, "--grace", "1h"],
            "client.secret.rotate",
        ),
        (
            vec!["clients", "add-secret", &client_id],
            "client.secret.add",
        ),
        (
            vec!["clients", "revoke-secret", &client_id, &secret_id],
            "client.secret.revoke",
        ),
        (
            vec![
                "clients",
                "trust",
                &client_id,
                "--issuer",
                "https://i.example",
                "--subject",
                "s",
                "--jwks-file",
                &jwks_file,
            ],
            "client.trust_rule.add",
        ),
        (
            vec![
                "clients",
                "untrust",
                &client_id,
                "trust_000000000000000000000000",
            ],
            "client.trust_rule.remove",
        ),
        (vec!["keys", "rotate"], "key.rotate"),
        (vec!["keys", "revoke", &kid], "key.revoke"),
        (
            vec!["webhooks", "send", "--app", &app_id, "--event", "x"],
            "webhook.send",
        ),
        (
            vec!["webhooks", "retry", "evt_000000000000000000000000"],
            "webhook.retry",
        ),
    ];
    let user = whoami::fallible::username().unwrap_or_else(|_| "unknown".into());
    let mut changing = BTreeSet::new();
    for (args, action) in &runs {
        let before = app.store.list_audit(&filter(1000)).await.unwrap().len();
        let output = app.cli_async(args).await;
        let after = app.store.list_audit(&filter(1000)).await.unwrap();
        assert_eq!(
            after.len(),
            before + 1,
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let record = &after[0];
        assert_eq!(record.action, *action);
        assert!(
            record.actor.starts_with(&format!("cli:{user}@")),
            "{}",
            record.actor
        );
        let expected = if output.status.success() {
            "ok"
        } else {
            "refused"
        };
        assert_eq!(record.outcome.as_str(), expected, "{args:?}");
        changing.insert(format!("{} {}", args[0], args[1]));
    }
    // Every subcommand of the CLI is either a change exercised above or a read: a new
    // command fails here until it is classified (and audited, if it changes anything).
    let reads = BTreeSet::from(
        [
            "apps list",
            "clients list",
            "clients show",
            "keys list",
            "webhooks list",
            "audit list",
        ]
        .map(str::to_owned),
    );
    for group in ["apps", "clients", "keys", "webhooks", "audit"] {
        let help = String::from_utf8(cli(&url, &[group, "--help"]).stdout).unwrap();
        let commands = help
            .split("Commands:")
            .nth(1)
            .unwrap()
            .split("Options:")
            .next()
            .unwrap()
            .lines()
            // A command's line is indented two spaces; its wrapped description more.
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(|c| format!("{group} {c}"));
        for command in commands {
            assert!(
                changing.contains(&command) || reads.contains(&command),
                "`{command}` is neither audited here nor a known read"
            );
        }
    }
}

/// A JWKS of one public key.
fn jwks() -> Value {
    json!({"keys": [crate::support::signing::TestKey::es256("k1").public_jwk()]})
}

/// [`jwks`] in a file under `dir`; returns its path.
fn jwks_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks().to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn filter(limit: u32) -> moneykit_auth::domain::audit::AuditFilter {
    moneykit_auth::domain::audit::AuditFilter {
        limit,
        ..Default::default()
    }
}

#[tokio::test]
async fn refused_attempts_are_recorded() {
    let app = admin_app_with(|_| {}).await;
    let base = app.admin_base.clone().unwrap();
    // No token, a wrong one: recorded as anonymous, never with the token.
    let none = app
        .http
        .post(format!("{base}/admin/apps"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let wrong = "wrong-token-wrong-token-wrong-token-0000";
    let (status, _) = app
        .admin_as(wrong, "DELETE", "/admin/apps/app_1/webhook", None)
        .await;
    assert_eq!(status, 401);
    // Invalid input the operation refuses, and a body no operation sees.
    let (status, _) = call(&app, "POST", "/admin/apps", Some(json!({"name": ""}))).await;
    assert_eq!(status, 422);
    let malformed = app
        .http
        .post(format!("{base}/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16() / 100, 4);
    let all = records(&app).await;
    let anonymous: Vec<_> = all.iter().filter(|r| r["actor"] == "anonymous").collect();
    assert_eq!(anonymous.len(), 2, "{all:?}");
    assert!(anonymous.iter().all(|r| r["outcome"] == "refused"));
    assert!(
        anonymous
            .iter()
            .any(|r| r["action"] == "app.webhook.clear" && r["target"] == "app_1")
    );
    assert!(!serde_json::to_string(&all).unwrap().contains(wrong));
    let created = of(&all, "app.create");
    assert!(
        created
            .iter()
            .any(|r| r["outcome"] == "refused" && r["detail"].as_str().unwrap().contains("name")),
        "{created:?}"
    );
    assert!(
        of(&all, "client.create")
            .iter()
            .any(|r| r["outcome"] == "refused"),
        "{all:?}"
    );
    // A CLI refusal too.
    one_line_error(
        app.cli_async(&["clients", "disable", "live_000000000000000000000000"])
            .await,
        "unknown client",
    );
    let last = app.store.list_audit(&filter(1)).await.unwrap();
    assert_eq!(last[0].action, "client.disable");
    assert_eq!(last[0].outcome.as_str(), "refused");
}

#[tokio::test]
async fn the_trail_is_filtered_and_paged_by_the_cli_and_the_admin_api() {
    let app = admin_app_with(|_| {}).await;
    let (client, _) = app.create_client("", None).await;
    for name in ["a", "b", "c"] {
        cli_json(
            &app.cli_async(&["clients", "update", &client.id, "--name", name, "--json"])
                .await,
        );
    }
    let (status, page) = call(
        &app,
        "GET",
        &format!("/admin/audit?target={}&limit=2", client.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let first = page["records"].as_array().unwrap().clone();
    assert_eq!(first.len(), 2);
    assert_eq!(
        first[0]["changes"]["name"],
        json!({"before": "b", "after": "c"}),
        "{page}"
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = call(
        &app,
        "GET",
        &format!("/admin/audit?target={}&limit=2&cursor={cursor}", client.id),
        None,
    )
    .await;
    let rest = next["records"].as_array().unwrap();
    // Three updates and the creation.
    assert_eq!(rest.len(), 2, "{next}");
    assert!(next["next_cursor"].is_null());
    assert_eq!(rest[1]["action"], "client.create");
    // By actor and time.
    let (_, by_token) = call(&app, "GET", "/admin/audit?actor=admin_token", None).await;
    assert!(
        by_token["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["actor"] == "admin_token")
    );
    let (_, future) = call(&app, "GET", "/admin/audit?since=2999-01-01T00:00:00Z", None).await;
    assert_eq!(future["records"], json!([]));
    let (_, past) = call(&app, "GET", "/admin/audit?until=2000-01-01T00:00:00Z", None).await;
    assert_eq!(past["records"], json!([]));
    for bad in [
        "cursor=abc",
        "cursor=0",
        "since=yesterday",
        "limit=-1",
        "colour=blue",
    ] {
        let (status, error) = call(&app, "GET", &format!("/admin/audit?{bad}"), None).await;
        assert_eq!(status, 422, "{bad}: {error}");
        assert!(error["error_code"].is_string());
    }
    // The CLI: the same records, the same pages.
    let cli_page = cli_json(
        &app.cli_async(&[
            "audit", "list", "--target", &client.id, "--limit", "2", "--json",
        ])
        .await,
    );
    assert_eq!(cli_page["records"], json!(first));
    let text = String::from_utf8(
        app.cli_async(&["audit", "list", "--target", &client.id, "--limit", "2"])
            .await
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("client.update") && text.contains("--cursor"),
        "{text}"
    );
    let since = cli_json(
        &app.cli_async(&["audit", "list", "--since", "1h", "--json"])
            .await,
    );
    assert!(since["records"].as_array().unwrap().len() >= 4);
    one_line_error(
        app.cli_async(&["audit", "list", "--cursor", "nope"]).await,
        "cursor",
    );
    one_line_error(
        app.cli_async(&["audit", "list", "--since", "someday"])
            .await,
        "RFC 3339",
    );
}

#[tokio::test]
async fn the_audit_log_streams_the_records_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = path.clone();
    let app = admin_app_with(move |s| {
        s.audit_log = Some(moneykit_auth::operations::audit_log::AuditSink::File(log));
    })
    .await;
    let (client, _) = app.create_client("", None).await;
    cli_json(
        &app.cli_async(&[
            "clients",
            "rotate-secret",
            &client.id,
            "--grace",
            "1h",
            "--json",
        ])
        .await,
    );
    call(
        &app,
        "POST",
        "/admin/apps",
        Some(json!({"name": "streamed"})),
    )
    .await;
    let expected: Vec<String> = records(&app)
        .await
        .iter()
        .rev()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(expected.len() >= 4);
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if lines.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let streamed: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(streamed, expected, "the same records, in order");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A restart resumes after the last line: nothing repeated, nothing skipped.
    let db = app.db.clone();
    app.stop().await;
    cli_json(&cli(
        &db.url,
        &["apps", "create", "--name", "while-down", "--json"],
    ));
    let mut settings = test_settings(&db);
    settings.audit_log = Some(moneykit_auth::operations::audit_log::AuditSink::File(
        path.clone(),
    ));
    let again = spawn_on(db, settings).await;
    within(
        Duration::from_secs(5),
        "the record made while down",
        || async { std::fs::read_to_string(&path).unwrap().lines().count() == expected.len() + 1 },
    )
    .await;
    again.stop().await;
}

#[tokio::test]
async fn audit_records_cannot_be_changed() {
    let app = spawn_app().await;
    app.create_app("x").await;
    let update = "UPDATE audit_events SET actor = 'someone else'";
    let error = if on_postgres() {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query(update)
            .execute(&pool)
            .await
            .unwrap_err()
            .to_string()
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        sqlx::query(update)
            .execute(&pool)
            .await
            .unwrap_err()
            .to_string()
    };
    assert!(error.contains("append-only"), "{error}");
    let kept = app.store.list_audit(&filter(10)).await.unwrap();
    assert!(kept.iter().all(|r| r.actor.starts_with("cli:")));
}

#[tokio::test]
async fn records_past_the_retention_are_forgotten_oldest_first() {
    let app = spawn_app_with(|s| {
        s.refresh.housekeeping_interval = Duration::from_millis(200);
        s.refresh.audit_retention = Some(time::Duration::seconds(2));
    })
    .await;
    app.create_app("old").await;
    assert_eq!(app.store.list_audit(&filter(10)).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.create_app("new").await;
    within(
        Duration::from_secs(5),
        "the old record forgotten",
        || async {
            let kept = app.store.list_audit(&filter(10)).await.unwrap();
            kept.len() == 1
        },
    )
    .await;
    let kept = app.store.list_audit(&filter(10)).await.unwrap();
    assert!(
        kept[0].changes.as_deref().unwrap().contains("\"new\""),
        "the newer stays"
    );
}
