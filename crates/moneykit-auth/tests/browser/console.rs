//! The console's flows in Chromium: what an operator does with it, checked against what
//! the server then does over HTTP (tokens, introspection, webhook deliveries), and the
//! overview's charts against real token traffic sent by `wrk`.
//!
//! `CONSOLE_SCREENSHOTS=DIR` saves the overview and clients pages as PNG there (the
//! README's pictures: `CONSOLE_SCREENSHOTS=docs/console cargo test --test browser`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::harness::{ADMIN_TOKEN, Browser, Page, console_server};
use crate::support::receiver::Receiver;
use crate::support::{self, basic, cli::*};

/// Signs `page` in with the admin token; lands on the overview.
async fn sign_in(page: &Page) -> anyhow::Result<()> {
    page.goto("/console/sign-in").await?;
    page.fill("#token", ADMIN_TOKEN).await?;
    page.submit_form("form[action='/console/sign-in']").await?;
    let path = page.current_path().await?;
    ensure!(path == "/console/overview", "signed in to {path}");
    Ok(())
}

/// The token endpoint's status for `client` at the server at `base`.
async fn token_status(base: &str, client: (&str, &str)) -> u16 {
    let http = reqwest::Client::new();
    support::request_token(&http, base, client, None)
        .await
        .status()
        .as_u16()
}

/// Whether the token endpoint answers `status` for `client` within 5 s: a change made in
/// the console reaches the serving snapshot with the next refresh.
async fn answers(base: &str, client: (&str, &str), status: u16) -> bool {
    until(Duration::from_secs(5), || async move {
        token_status(base, client).await == status
    })
    .await
}

/// Where the README's screenshots go, when asked for.
fn screenshots() -> Option<PathBuf> {
    std::env::var_os("CONSOLE_SCREENSHOTS").map(PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_client_and_its_app_from_the_console() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server =
        console_server(&["--webhooks-allow-http", "--webhooks-allow-private-targets"]).await;
    let receiver = Receiver::start(&[200]).await;
    let (server, receiver) = (&server, &receiver);
    browser
        .run("operator_runs_a_client", server.admin_base(), |page| async move {
            sign_in(&page).await?;

            // An app, then a client of it: the secret is on the page once.
            page.goto("/console/apps").await?;
            page.fill("#app-name", "Billing").await?;
            page.submit_form("form[method=post][action='/console/apps']").await?;
            let app_id = page.text("[data-test=app-id]").await?;
            ensure!(app_id.starts_with("app_"), "{app_id}");
            ensure!(page.text("[data-test=notice]").await?.contains("created"));
            page.goto("/console/clients").await?;
            page.fill("#c-name", "Invoices").await?;
            page.fill("#c-scope", "accounts:read").await?;
            page.submit_form("form[method=post][action='/console/clients']").await?;
            let client_id = page.text("#client-id").await?;
            let first = page.text("#client-secret").await?;
            ensure!(first.starts_with("mks_"), "{first}");
            ensure!(page.text("[role=alert]").await?.contains("shown this once"));
            // The copy button is the page's one script's work: visible once it ran.
            let copy = page.attr("button[data-copy]", "hidden").await?;
            ensure!(copy.is_none(), "the copy button stayed hidden: {copy:?}");
            ensure!(answers(&server.base, (&client_id, &first), 201).await, "the first secret");

            // Rotated: the old secret is refused at once, the new one works.
            page.goto(&format!("/console/clients/{client_id}")).await?;
            page.submit_form("form[action$='/rotate-secret']").await?;
            let second = page.text("#client-secret").await?;
            ensure!(second != first && second.starts_with("mks_"));
            ensure!(answers(&server.base, (&client_id, &first), 401).await, "the first secret, rotated, still works");
            ensure!(answers(&server.base, (&client_id, &second), 201).await, "the new secret");
            let http = reqwest::Client::new();
            let token = support::token(&http, &server.base, (&client_id, &second), None).await;
            let introspected = support::introspect(&http, &server.base, &token).await;
            ensure!(introspected.status() == 200);

            // A third secret beside it; then the second revoked from the client's page.
            let second_id = page.text("[data-test=secret-id]").await?;
            page.goto(&format!("/console/clients/{client_id}")).await?;
            page.submit_form("form[action$='/secrets']").await?;
            let third = page.text("#client-secret").await?;
            page.goto(&format!("/console/clients/{client_id}")).await?;
            page.submit_form(&format!("form[action$='/secrets/{second_id}/revoke']")).await?;
            ensure!(page.text("[data-test=notice]").await?.contains("revoked"));
            ensure!(answers(&server.base, (&client_id, &second), 401).await, "the second secret, revoked, still works");
            ensure!(answers(&server.base, (&client_id, &third), 201).await, "the third secret");

            // Disabled: its token is refused at introspection (within a refresh).
            page.goto(&format!("/console/clients/{client_id}")).await?;
            page.submit_form("form[action$='/disable']").await?;
            ensure!(page.text("[data-test=client-status]").await? == "disabled");
            let refused = until(Duration::from_secs(5), || async {
                support::introspect(&http, &server.base, &token).await.status() == 401
            })
            .await;
            ensure!(refused, "the disabled client's token still introspects");

            // The app's webhook at a local receiver; a test event, delivered and shown.
            page.goto(&format!("/console/apps/{app_id}")).await?;
            page.fill("#webhook-url", &receiver.url).await?;
            page.submit_form("form[action$='/webhook']").await?;
            ensure!(page.text("[data-test=webhook-url]").await? == receiver.url);
            page.submit_form("form[action$='/test-event']").await?;
            let got = receiver.wait_for(1, Duration::from_secs(10)).await;
            ensure!(got.len() == 1 && got[0].status == 200, "{got:?}");
            let shown = until(Duration::from_secs(10), || async {
                page.goto(&format!("/console/apps/{app_id}")).await.is_ok()
                    && page.text("[data-test=event-status]").await.unwrap_or_default() == "delivered"
            })
            .await;
            ensure!(shown, "the delivery is not shown as delivered");
            ensure!(page.text("[data-test=last-status]").await? == "200");

            // The signing key rotated: a next key is published, shown on the overview.
            page.goto("/console/keys").await?;
            let before = page.client().find_all(fantoccini::Locator::Css("li.key")).await?.len();
            page.submit_form("form[action='/console/keys/rotate']").await?;
            let after = page.client().find_all(fantoccini::Locator::Css("li.key")).await?;
            ensure!(after.len() == before + 1, "{before} → {}", after.len());
            ensure!(page.text("li.key.next [data-test=key-status]").await? == "next");
            page.goto("/console/overview").await?;
            ensure!(page.text("[data-test=next-key]").await?.contains("takes over at"));

            // A form whose CSRF token was taken out is refused, and changes nothing.
            page.goto("/console/apps").await?;
            page.client()
                .execute(
                    "document.querySelector(\"form[method=post][action='/console/apps'] input[name=csrf]\").remove();",
                    vec![],
                )
                .await?;
            page.fill("#app-name", "Forged").await?;
            page.submit_form("form[method=post][action='/console/apps']").await?;
            ensure!(page.text("[data-test=error]").await?.contains("CSRF"));
            let apps = cli_json(&cli(&server.database_url(), &["apps", "list", "--json"]));
            ensure!(apps.as_array().map(Vec::len) == Some(1), "{apps}");

            // Signed out: the console's pages lead back to the sign-in form.
            page.goto("/console/overview").await?;
            page.submit_form("form[action='/console/sign-out']").await?;
            page.goto("/console/clients").await?;
            ensure!(page.current_path().await? == "/console/sign-in");
            Ok(())
        })
        .await;
    // Everything the console changed is in the audit trail under its door.
    let trail = cli_json(&cli(&server.database_url(), &["audit", "list", "--json"]));
    let via_console = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["via"] == "console")
        .count();
    assert!(via_console >= 8, "{trail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_render_as_text() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = console_server(&[]).await;
    // Were either part parsed as markup, it would mark the page (and leave an `img`).
    let hostile = "<script>document.body.dataset.pwned=1</script>\"'><img src=x onerror=\"document.body.dataset.pwned=2\">";
    let app_id = cli_app(&server.database_url(), hostile);
    // The longest name there may be, without a space to break it at.
    cli_app(&server.database_url(), &"W".repeat(200));
    let created = cli_json(&cli(
        &server.database_url(),
        &[
            "clients", "create", "--app", &app_id, "--name", hostile, "--json",
        ],
    ));
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let server = &server;
    browser
        .run(
            "hostile_names_render_as_text",
            server.admin_base(),
            |page| async move {
                sign_in(&page).await?;
                for path in [
                    "/console/apps".to_owned(),
                    format!("/console/apps/{app_id}"),
                    "/console/clients".to_owned(),
                    format!("/console/clients/{client_id}"),
                    "/console/audit".to_owned(),
                ] {
                    page.goto(&path).await?;
                    let marked = page.attr("body", "data-pwned").await?;
                    ensure!(
                        marked.is_none(),
                        "{path}: a script from a name ran ({marked:?})"
                    );
                    let images = page
                        .client()
                        .find_all(fantoccini::Locator::Css("main img"))
                        .await?;
                    ensure!(images.is_empty(), "{path}: markup from a name was parsed");
                    let main = page.text("main").await?;
                    ensure!(
                        main.contains("<script>document.body.dataset.pwned=1</script>"),
                        "{path}: {main}"
                    );
                }
                page.goto(&format!("/console/clients/{client_id}")).await?;
                ensure!(page.text("[data-test=client-name]").await? == hostile);

                // On a phone's width, no page is wider than the screen: long names wrap
                // and tables scroll inside their own box.
                page.client().set_window_size(390, 844).await?;
                for path in [
                    "/console/overview".to_owned(),
                    "/console/apps".to_owned(),
                    "/console/clients".to_owned(),
                    format!("/console/clients/{client_id}"),
                    "/console/keys".to_owned(),
                    "/console/audit".to_owned(),
                ] {
                    page.goto(&path).await?;
                    let widths = page
                        .client()
                        .execute(
                            "const root = document.documentElement; \
                             const over = [...document.querySelectorAll('body *')] \
                               .find(e => e.getBoundingClientRect().right > root.clientWidth); \
                             return [root.scrollWidth, root.clientWidth, \
                                     over && over.outerHTML.slice(0, 200)];",
                            vec![],
                        )
                        .await?;
                    let (wide, screen) = (widths[0].as_u64(), widths[1].as_u64());
                    ensure!(
                        wide <= screen,
                        "{path}: {wide:?} px wide on a {screen:?} px screen; the first element past its edge: {}",
                        widths[2]
                    );
                }
                Ok(())
            },
        )
        .await;
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
async fn until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `wrk`, when installed; under `CI` it must be.
fn wrk() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("wrk"))
            .find(|p| p.is_file())
    });
    if found.is_none() && std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("wrk is not installed (Debian package wrk); CI runs every browser test");
    }
    found
}

/// A chart's numbers as the page gives them: (tokens in the window, points).
async fn chart(page: &Page, name: &str) -> anyhow::Result<(u64, Vec<f64>)> {
    let css = format!("figure[data-chart={name}]");
    let total = page
        .attr(&css, "data-total")
        .await?
        .context("data-total")?
        .parse()?;
    let points = page
        .attr(&css, "data-points")
        .await?
        .context("data-points")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<Vec<f64>, _>>()?;
    Ok((total, points))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_charts_move_when_wrk_sends_token_traffic() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let Some(wrk) = wrk() else {
        println!("skipped: wrk not installed");
        return;
    };
    let server = console_server(&[]).await;
    let database = server.database_url();
    let (app_id, client_id, secret) = cli_app_and_client(&database, "Traffic");
    for name in ["Ledger sync", "Payouts", "Reports"] {
        cli(
            &database,
            &[
                "clients",
                "create",
                "--app",
                &app_id,
                "--name",
                name,
                "--scope",
                "accounts:read",
            ],
        );
    }
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials\"\n\
             wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
             wrk.headers[\"Authorization\"] = \"{}\"\n",
            basic(&client_id, &secret)
        ),
    )
    .unwrap();
    let base = server.base.clone();
    browser
        .run(
            "overview_charts_move",
            server.admin_base(),
            |page| async move {
                sign_in(&page).await?;
                let (before, _) = chart(&page, "tokens").await?;
                ensure!(before == 0, "tokens before any traffic: {before}");

                // Two seconds of token requests from one wrk thread (bounded in time), and a
                // few failed authentications.
                let started = Instant::now();
                let output = Command::new(&wrk)
                    .args(["-t1", "-c2", "-d2s", "--timeout", "2s", "-s"])
                    .arg(script.path())
                    .arg(format!("{base}/auth/token"))
                    .output()
                    .context("running wrk")?;
                ensure!(
                    output.status.success(),
                    "wrk: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                println!(
                    "wrk ran {} ms: {}",
                    started.elapsed().as_millis(),
                    String::from_utf8_lossy(&output.stdout)
                );
                for _ in 0..3 {
                    ensure!(token_status(&base, (&client_id, "mks_wrong")).await == 401);
                }

                // The sampler records once a second: the chart has it within two.
                let moved = until(Duration::from_secs(5), || async {
                    page.goto("/console/overview").await.is_ok()
                        && matches!(chart(&page, "tokens").await, Ok((n, _)) if n > 100)
                        && matches!(chart(&page, "failures").await, Ok((n, _)) if n >= 3)
                })
                .await;
                let (tokens, points) = chart(&page, "tokens").await?;
                let (failures, _) = chart(&page, "failures").await?;
                ensure!(
                    moved,
                    "the charts did not move: tokens {tokens}, failures {failures}"
                );
                ensure!(points.len() == 360, "{} points", points.len());
                let busy: Vec<f64> = points
                    .iter()
                    .rev()
                    .take(3)
                    .copied()
                    .filter(|p| *p > 0.0)
                    .collect();
                ensure!(
                    !busy.is_empty(),
                    "the newest buckets show no traffic: {points:?}"
                );
                ensure!(
                    points.iter().rev().skip(3).all(|p| *p == 0.0),
                    "traffic before wrk ran"
                );
                let rate: f64 = busy.iter().sum::<f64>() * 10.0;
                ensure!(
                    rate.round() as u64 <= tokens + 10,
                    "rates {busy:?} × 10 s vs {tokens} tokens"
                );
                if let Some(dir) = screenshots() {
                    std::fs::create_dir_all(&dir)?;
                    page.screenshot(dir.join("overview.png")).await?;
                    page.goto("/console/clients").await?;
                    page.screenshot(dir.join("clients.png")).await?;
                }
                Ok(())
            },
        )
        .await;
}
