//! The admin console in a real browser: headless Chromium driven through chromedriver
//! (fantoccini), against the real `serve` binary with its admin listener. Each test has a
//! chromedriver and a Chromium of its own, so the tests run in parallel.
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and `chromium-driver`, or
//! `CHROME_BIN` and `CHROMEDRIVER`); without them each test says it is skipped and
//! passes, except under `CI`, where they fail. A failing test leaves its screenshot, URL,
//! page source and console log in `target/browser-screenshots/`. Run with `--nocapture` to
//! see the timings.

#![allow(missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod console;
mod harness;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use futures_util::FutureExt;
use harness::{Browser, console_server, screenshot_dir};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// `html` as a `data:` URL: a page the test writes itself, with no server.
fn data_url(html: &str) -> String {
    format!(
        "data:text/html;charset=utf-8,{}",
        utf8_percent_encode(html, NON_ALPHANUMERIC)
    )
}

/// The JSON a page shows (Chromium puts a JSON response in a `<pre>`).
async fn shown_json(page: &harness::Page) -> anyhow::Result<Value> {
    let text = page.text("pre").await?;
    serde_json::from_str(&text).with_context(|| format!("the page shows no JSON: {text:?}"))
}

/// The harness end to end against the real server: the admin listener refusing Chromium
/// without a token, the public JWKS, a form filled and submitted, a click, a late text,
/// cookies; what the browser shows is checked against the same requests made directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_drives_chromium_against_the_real_server() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = console_server(&[]).await;
    let http = reqwest::Client::new();
    let metrics = http.get(server.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 401);
    let refusal: Value = metrics.json().await.unwrap();
    let jwks = support::jwks(&http, &server.base).await;
    assert!(!jwks["keys"].as_array().unwrap().is_empty());
    let public = server.base.clone();

    let form_page = data_url(&format!(
        r#"<!doctype html><title>form</title>
        <form id="lookup" action="{public}/.well-known/jwks.json" method="get">
          <input id="q" name="q" value="typed over">
          <button type="submit">Look up</button>
        </form>
        <button id="press" type="button"
          onclick="document.getElementById('pressed').textContent = 'pressed once'">Press</button>
        <p id="pressed"></p>
        <form class="twin" action="/a"><button>A</button></form>
        <form class="twin" action="/b"><button>B</button></form>
        <p id="late"></p>
        <script>
          setTimeout(() => document.getElementById('late').textContent = 'arrived late', 400);
        </script>"#
    ));

    browser
        .run(
            "harness_drives_chromium_against_the_real_server",
            server.admin_base(),
            |page| async move {
                // The admin listener, no token: the 401 and its JSON error, no metrics.
                page.goto("/metrics").await?;
                ensure!(page.current_path().await? == "/metrics");
                ensure!(
                    shown_json(&page).await? == refusal,
                    "Chromium shows the admin refusal: {}",
                    page.source().await?
                );
                ensure!(!page.source().await?.contains("# TYPE"));

                // A cookie set on that origin, read back with its flags.
                page.client()
                    .execute(
                        "document.cookie = 'harness_probe=1; SameSite=Strict; path=/';",
                        vec![],
                    )
                    .await?;
                let cookies = page.cookies().await?;
                let probe = cookies
                    .iter()
                    .find(|c| c.name() == "harness_probe")
                    .ok_or_else(|| anyhow!("no harness_probe cookie: {cookies:?}"))?;
                ensure!(page.cookie("harness_probe").await?.as_ref() == Some(probe));
                ensure!(probe.value() == "1");
                ensure!(probe.http_only() == Some(false), "{probe:?}");
                ensure!(
                    format!("{:?}", probe.same_site()) == "Some(Strict)",
                    "{probe:?}"
                );

                // The public listener's JWKS, as served.
                page.goto(&format!("{public}/.well-known/jwks.json"))
                    .await?;
                ensure!(
                    page.wait_for_text("body", "\"keys\"")
                        .await?
                        .contains("\"kid\"")
                );
                ensure!(shown_json(&page).await? == jwks);

                // Nothing but loopback: no name resolves, so no DNS query leaves Chromium.
                let outside = page.goto("http://example.com/").await.unwrap_err();
                ensure!(
                    format!("{outside:#}").contains("ERR_NAME_NOT_RESOLVED"),
                    "{outside:#}"
                );

                // A page of the test's own: a text that comes late, a click, a form.
                page.goto(&form_page).await?;
                page.wait_for_text("#late", "arrived late").await?;
                page.click("#press").await?;
                ensure!(page.wait_for_text("#pressed", "pressed").await? == "pressed once");

                // The helpers' failures name the selector and what they saw, after the
                // wait asked for.
                let impatient = page.with_wait(Duration::from_millis(300));
                let started = Instant::now();
                let missing = impatient.text("#nowhere").await.unwrap_err();
                ensure!(format!("{missing:#}").contains("`#nowhere`"), "{missing:#}");
                let late = impatient
                    .wait_for_text("#pressed", "twice")
                    .await
                    .unwrap_err();
                ensure!(format!("{late:#}").contains("\"pressed once\""), "{late:#}");
                ensure!(started.elapsed() < Duration::from_secs(3));
                let twins = page.submit_form("form.twin").await.unwrap_err();
                ensure!(
                    format!("{twins:#}").contains("matches 2 elements"),
                    "{twins:#}"
                );

                ensure!(page.attr("#q", "name").await?.as_deref() == Some("q"));
                ensure!(page.attr("#q", "placeholder").await?.is_none());
                page.fill("#q", "a b&c").await?;
                page.submit_form("#lookup").await?;
                ensure!(page.current_path().await? == "/.well-known/jwks.json");
                let url = page.current_url().await?;
                ensure!(url.query() == Some("q=a+b%26c"), "submitted to {url}");
                ensure!(shown_json(&page).await? == jwks);

                Ok(())
            },
        )
        .await;
}

/// A failing test body leaves a screenshot, the page source and its console log behind,
/// and still fails: a panic (a failed assertion) and an error returned alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_saves_a_screenshot_on_failure() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let page = data_url(
        r#"<!doctype html><title>doomed</title>
        <h1 id="marker">harness failure marker 7f3a</h1>
        <script>console.error('harness console marker 7f3a')</script>"#,
    );
    let dir = screenshot_dir();
    for (name, expected) in [
        (
            "harness_saves_a_screenshot_on_failure",
            "deliberate failure",
        ),
        ("harness_saves_a_screenshot_on_error", "deliberate error"),
    ] {
        let saved = ["png", "html", "console.txt"].map(|ext| dir.join(format!("{name}.{ext}")));
        for file in &saved {
            let _ = std::fs::remove_file(file);
        }
        let page = page.clone();
        let outcome =
            AssertUnwindSafe(
                browser.run(name, "http://127.0.0.1:9", move |p| async move {
                    p.goto(&page).await?;
                    let marker = p.wait_for_text("#marker", "7f3a").await?;
                    if name.ends_with("error") {
                        return Err(anyhow!("deliberate error"));
                    }
                    assert_eq!(marker, "another text", "deliberate failure");
                    Ok(())
                }),
            )
            .catch_unwind()
            .await;
        let panic = outcome.expect_err("the failure is raised again");
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        assert!(message.contains(expected), "{name}: {message}");

        let [png, html, console] = saved;
        let png = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
        assert!(png.len() > 1000, "{name}: {} bytes", png.len());
        let html = std::fs::read_to_string(&html).unwrap();
        assert!(
            html.starts_with(&format!("<!-- {name}: data:text/html")),
            "{html}"
        );
        assert!(html.contains("harness failure marker 7f3a"), "{html}");
        let console = std::fs::read_to_string(&console).unwrap();
        assert!(console.contains("harness console marker 7f3a"), "{console}");
    }
}
