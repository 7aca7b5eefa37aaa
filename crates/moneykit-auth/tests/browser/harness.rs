//! What the console's browser tests share: a chromedriver process of the test's own
//! ([`Browser`]), a fresh headless Chromium session per [`Browser::run`] (a [`Page`] with
//! bounded waits for driving forms), the screenshot, URL, source and console log saved
//! when a test fails, and the server under test ([`console_server`]).
//!
//! Chromium and chromedriver come from `CHROME_BIN` and `CHROMEDRIVER`, else the usual
//! Debian places. Without them a test is skipped (it passes, saying so) unless `CI` is set:
//! then it fails, so that CI never skips the console's tests.

// For the console's tests: the harness's own tests use only part of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};

use crate::support::cli::TEST_SECRET;
use crate::support::process::ServerProcess;

/// The admin token of [`console_server`]'s servers (and so the console's sign-in token).
pub const ADMIN_TOKEN: &str = "console-browser-tests-admin-token-0123456789abcdef";

/// How long a helper waits for what it needs (an element, a text, a new page), and how
/// long chromedriver may take to answer `/status`.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// How long Chromium may take to start and open its first window.
const SESSION_LIMIT: Duration = Duration::from_secs(30);

/// Ports tried for chromedriver, which cannot bind port 0 itself: a free port is picked and
/// released, and another is tried should something take it before chromedriver binds it.
const DRIVER_ATTEMPTS: u32 = 5;

/// Chromium's command line. Headless, no sandbox (CI runs as root), no GPU and no
/// `/dev/shm` (small in containers; shared memory there crashes tabs), and nothing that
/// phones home: the machines running these tests have no network beyond loopback, and
/// Chromium otherwise keeps retrying refused connections in the background. Even so it
/// looks up Google's hosts (accounts, clients2, optimizationguide-pa…): its resolver is
/// told that no host but loopback exists (IP literals included), so no DNS query leaves
/// it, and a page that needs anything but the server under test (a CDN, a web font)
/// shows it in the tests.
const CHROMIUM_ARGS: &[&str] = &[
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE ::1",
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-quic",
    "--window-size=1280,900",
];

/// Whether CI is running the tests (`CI` set and not empty): then a missing browser fails
/// the test instead of skipping it.
fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// An executable file at `path`.
fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| executable(candidate))
}

/// The program named by the environment variable `var` (which, when set, must name an
/// executable: a wrong setting fails rather than skips), else the first of `candidates`
/// that exists: an absolute path, or a name looked up on `PATH`.
fn locate(var: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&value);
        let found = if path.components().count() == 1 {
            on_path(&path.to_string_lossy())
        } else {
            Some(path.clone()).filter(|p| executable(p))
        };
        return Some(
            found
                .unwrap_or_else(|| panic!("{var}={} is not an executable program", path.display())),
        );
    }
    candidates.iter().find_map(|candidate| {
        if candidate.starts_with('/') {
            Some(PathBuf::from(candidate)).filter(|p| executable(p))
        } else {
            on_path(candidate)
        }
    })
}

/// A loopback port nothing was listening on a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A chromedriver process of the test's own, on a loopback port; each [`Browser::run`]
/// opens a fresh Chromium session through it. Dropping it kills chromedriver and any
/// Chromium it started (they share its process group).
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:<port>`.
    url: String,
    chromium: PathBuf,
    /// chromedriver's stdout and stderr.
    log: tempfile::NamedTempFile,
}

/// How waiting for chromedriver ended.
enum DriverStart {
    Ready,
    /// The process exited (most likely its port was taken).
    Exited(std::process::ExitStatus),
}

impl Browser {
    /// Starts chromedriver for Chromium, or returns `None` (having printed that the test
    /// is skipped) when either is not installed and `CI` is not set. Panics when they are
    /// missing under CI, or when chromedriver does not come up.
    pub async fn start() -> Option<Self> {
        let driver = locate("CHROMEDRIVER", &["chromedriver", "/usr/bin/chromedriver"]);
        let chromium = locate("CHROME_BIN", &["/usr/bin/chromium", "chromium"]);
        let (Some(driver), Some(chromium)) = (&driver, &chromium) else {
            let missing = match (driver, chromium) {
                (None, None) => "chromium and chromedriver",
                (None, _) => "chromedriver",
                _ => "chromium",
            };
            assert!(
                !in_ci(),
                "CI is set, and the console's browser tests must not be skipped there, but \
                 {missing} cannot be found: install Debian's `chromium` and \
                 `chromium-driver`, or name the programs in CHROME_BIN and CHROMEDRIVER"
            );
            println!("skipped: chromium/chromedriver not installed");
            return None;
        };
        let started = Instant::now();
        for attempt in 1..=DRIVER_ATTEMPTS {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().unwrap();
            let child = Command::new(driver)
                .arg(format!("--port={port}"))
                // chromedriver listens on loopback only unless given --allowed-ips (which
                // makes it listen on every interface), so none is given.
                .stdin(Stdio::null())
                .stdout(log.reopen().unwrap())
                .stderr(log.reopen().unwrap())
                // A group of its own, which the Chromium it starts joins: killed together.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", driver.display()));
            // Built before waiting, so that a failed wait kills the process on the way out.
            let mut browser = Self {
                driver: child,
                url: format!("http://127.0.0.1:{port}"),
                chromium: chromium.to_owned(),
                log,
            };
            match browser.wait_until_ready().await {
                DriverStart::Ready => {
                    println!(
                        "chromedriver on port {port} ready in {} ms",
                        started.elapsed().as_millis()
                    );
                    return Some(browser);
                }
                DriverStart::Exited(status) if attempt < DRIVER_ATTEMPTS => {
                    println!("chromedriver on port {port} exited ({status}); another port");
                }
                DriverStart::Exited(status) => panic!(
                    "chromedriver exited ({status}) {DRIVER_ATTEMPTS} times:\n{}",
                    browser.log()
                ),
            }
        }
        unreachable!()
    }

    /// Waits until chromedriver's `/status` says it is ready (panicking after [`WAIT`]),
    /// or its process exits.
    async fn wait_until_ready(&mut self) -> DriverStart {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let status_url = format!("{}/status", self.url);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return DriverStart::Exited(status);
            }
            // Another program that took the port would not answer like chromedriver.
            if let Ok(response) = http.get(&status_url).send().await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return DriverStart::Ready;
            }
            assert!(
                started.elapsed() < WAIT,
                "chromedriver was not ready within {WAIT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// What chromedriver has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// A fresh Chromium (new profile: no cookies) and a [`Page`] on it whose relative
    /// paths resolve against `base`. Panics, with chromedriver's log, if it won't start.
    pub async fn session(&self, base: &str) -> Page {
        let started = Instant::now();
        let profile = tempfile::Builder::new()
            .prefix("moneykit-chromium-")
            .tempdir()
            .unwrap();
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|&a| a.to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let Value::Object(capabilities) = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": args,
            },
            // The page's console, saved when a test fails.
            "goog:loggingPrefs": { "browser": "ALL" },
            // No command waits forever on a wedged page.
            "timeouts": { "pageLoad": 30_000, "script": 10_000, "implicit": 0 },
        }) else {
            unreachable!()
        };
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let client = match tokio::time::timeout(SESSION_LIMIT, builder.connect(&self.url)).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => panic!(
                "Chromium ({}) did not start: {error}\nchromedriver's log:\n{}",
                self.chromium.display(),
                self.log()
            ),
            Err(_) => panic!(
                "Chromium ({}) did not start within {SESSION_LIMIT:?}\nchromedriver's log:\n{}",
                self.chromium.display(),
                self.log()
            ),
        };
        println!("chromium session in {} ms", started.elapsed().as_millis());
        Page {
            client,
            base: base.trim_end_matches('/').to_owned(),
            wait: WAIT,
            _profile: Arc::new(profile),
        }
    }

    /// Runs the test `body` on a fresh session ([`Self::session`], relative paths against
    /// `base`) and closes the session. Should `body` panic or return an error, the
    /// screenshot, the page's URL and source, and its console log are saved first as
    /// `<target>/browser-screenshots/<name>.{png,html,console.txt}` (paths printed), and
    /// the panic is raised again (an error becomes one). Returns what `body` returned.
    ///
    /// `body` runs on the test's own task and may borrow from the test: to use a value
    /// inside its `async move` block and after it, move in a reference
    /// (`let server = &server;` first).
    pub async fn run<T, F, Fut>(&self, name: &str, base: &str, body: F) -> T
    where
        F: FnOnce(Page) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let page = self.session(base).await;
        let given = page.clone();
        // The closure called inside the future, so that a panic while building the body's
        // future is caught too.
        let outcome = AssertUnwindSafe(async move { body(given).await })
            .catch_unwind()
            .await;
        let failure = match outcome {
            Ok(Ok(value)) => {
                page.close().await;
                return value;
            }
            Ok(Err(error)) => Err(error),
            Err(panic) => Ok(panic),
        };
        page.save_failure(name).await;
        page.close().await;
        match failure {
            Err(error) => panic!("browser test {name} failed: {error:#}"),
            Ok(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Kills chromedriver and every process of its group (the Chromium it started, which
    /// outlives chromedriver otherwise).
    fn kill(&mut self) {
        if let Ok(None) = self.driver.try_wait() {
            // The group's id is chromedriver's pid, not reused before it is reaped below.
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", self.driver.id())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The page's console messages, chromedriver's own command (`goog:loggingPrefs` asks for
/// them); each read returns the messages since the last.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// `<target>/browser-screenshots`: `CARGO_TARGET_DIR` (a relative one taken from the
/// workspace) or the workspace's `target`.
pub fn screenshot_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("browser-screenshots")
}

/// Whether a WebDriver error is `status`.
fn is(error: &CmdError, status: ErrorStatus) -> bool {
    matches!(error, CmdError::Standard(e) if e.error == status)
}

/// One Chromium session, with helpers that wait (at most [`WAIT`], or what
/// [`Page::with_wait`] says) for what they need and name the selector when they fail.
/// Cheap to clone (the same session); the session is closed by [`Browser::run`].
#[derive(Clone)]
pub struct Page {
    client: Client,
    /// What relative paths resolve against, without a trailing `/`.
    base: String,
    /// How long the helpers wait.
    wait: Duration,
    /// The profile directory, removed when the last clone goes.
    _profile: Arc<tempfile::TempDir>,
}

impl Page {
    /// The fantoccini client, for anything the helpers don't cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What relative paths resolve against.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same session, its helpers waiting up to `wait` instead: shorter to check that
    /// something is absent, longer for something slow.
    pub fn with_wait(&self, wait: Duration) -> Page {
        Page {
            wait,
            ..self.clone()
        }
    }

    /// `path` against the base; a full URL (anything with a scheme, such as
    /// `http://…` or `data:…`) as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') || path.is_empty() {
            format!("{}{path}", self.base)
        } else if path.contains(':') {
            path.to_owned()
        } else {
            format!("{}/{path}", self.base)
        }
    }

    /// Navigates to `path` ([`Self::url`]) and waits for the page to load.
    pub async fn goto(&self, path: &str) -> anyhow::Result<()> {
        let url = self.url(path);
        self.client
            .goto(&url)
            .await
            .with_context(|| format!("goto {url}"))
    }

    /// The first element matching the CSS selector `css`, once there is one.
    pub async fn wait_for(&self, css: &str) -> anyhow::Result<Element> {
        let failure = || format!("no element matches `{css}`");
        self.poll(failure, || async {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => Ok(Ok(element)),
                Err(e) if is(&e, ErrorStatus::NoSuchElement) => Ok(Err(String::new())),
                Err(e) => Err(e).with_context(|| format!("finding `{css}`")),
            }
        })
        .await
    }

    /// Runs `attempt` every [`POLL`] until it gives a value (`Ok(Ok(_))`) or fails
    /// (`Err`), for at most the page's wait. `Ok(Err(seen))` means not yet; after the wait
    /// the failure reads `{failure()} within {wait}{seen} (page …)`.
    async fn poll<T, Fut>(
        &self,
        failure: impl Fn() -> String,
        mut attempt: impl FnMut() -> Fut,
    ) -> anyhow::Result<T>
    where
        Fut: Future<Output = anyhow::Result<Result<T, String>>>,
    {
        let started = Instant::now();
        loop {
            let seen = match attempt().await? {
                Ok(value) => return Ok(value),
                Err(seen) => seen,
            };
            if started.elapsed() >= self.wait {
                bail!(
                    "{} within {:?}{seen} (page {})",
                    failure(),
                    self.wait,
                    self.location().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clears the field matching `css` and types `value` into it.
    pub async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let field = self.wait_for(css).await?;
        field
            .clear()
            .await
            .with_context(|| format!("clearing `{css}`"))?;
        field
            .send_keys(value)
            .await
            .with_context(|| format!("typing into `{css}`"))
    }

    /// Clicks the element matching `css`, once it is there and can be clicked (not hidden
    /// or covered).
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let element = self.wait_for(css).await?;
            match element.click().await {
                Ok(()) => return Ok(()),
                Err(e)
                    if started.elapsed() < self.wait
                        && (is(&e, ErrorStatus::ElementNotInteractable)
                            || is(&e, ErrorStatus::ElementClickIntercepted)
                            || is(&e, ErrorStatus::StaleElementReference)) =>
                {
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(e).with_context(|| format!("clicking `{css}`")),
            }
        }
    }

    /// Submits the form matching `css` as a user would, by clicking its first submit
    /// button, and waits until the page it leads to has loaded (a submission that does not
    /// load a new page is an error). `css` must match one element: a page often has two
    /// forms to one action (a GET filter and a POST create), and submitting the wrong one
    /// would fail the test much later.
    pub async fn submit_form(&self, css: &str) -> anyhow::Result<()> {
        self.wait_for(css).await?;
        let matching = self
            .client
            .find_all(Locator::Css(css))
            .await
            .with_context(|| format!("finding `{css}`"))?;
        if matching.len() > 1 {
            bail!(
                "`{css}` matches {} elements; which form to submit? (page {})",
                matching.len(),
                self.location().await
            );
        }
        let form = self
            .client
            .form(Locator::Css(css))
            .await
            .with_context(|| format!("form `{css}`"))?;
        self.mark_page().await?;
        form.submit()
            .await
            .with_context(|| format!("submitting `{css}` (has it a submit button?)"))?;
        self.wait_for_new_page()
            .await
            .with_context(|| format!("after submitting `{css}`"))
    }

    /// Marks the current document, for [`Self::wait_for_new_page`].
    async fn mark_page(&self) -> anyhow::Result<()> {
        self.client
            .execute("window.__harnessOldPage = true;", vec![])
            .await
            .context("marking the page")?;
        Ok(())
    }

    /// Waits until the document marked by [`Self::mark_page`] has been replaced by one that
    /// has loaded.
    async fn wait_for_new_page(&self) -> anyhow::Result<()> {
        let failure = || "no new page loaded".to_owned();
        self.poll(failure, || async {
            // Errors while the old document goes away are expected: looked at again.
            let state = self
                .client
                .execute(
                    "return window.__harnessOldPage === true ? 'old' : document.readyState;",
                    vec![],
                )
                .await;
            Ok(match state {
                Ok(Value::String(state)) if state == "complete" => Ok(()),
                Ok(state) => Err(format!(" (last: {state})")),
                Err(e) => Err(format!(" (last: {e})")),
            })
        })
        .await
    }

    /// The rendered text of the element matching `css` (what a user sees: empty for a
    /// hidden element).
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        self.wait_for(css)
            .await?
            .text()
            .await
            .with_context(|| format!("text of `{css}`"))
    }

    /// The attribute `name` of the element matching `css` (`None` when absent). A field's
    /// current value is its property: `client().find(…).prop("value")`.
    pub async fn attr(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        self.wait_for(css)
            .await?
            .attr(name)
            .await
            .with_context(|| format!("attribute {name} of `{css}`"))
    }

    /// Waits until the element matching `css` shows text containing `needle`; returns its
    /// whole text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        let failure = || format!("`{css}` did not show {needle:?}");
        self.poll(failure, || async {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => match element.text().await {
                    Ok(text) if text.contains(needle) => Ok(Ok(text)),
                    Ok(text) => Ok(Err(format!(": its text was {text:?}"))),
                    Err(e) if is(&e, ErrorStatus::StaleElementReference) => Ok(Err(String::new())),
                    Err(e) => Err(e).with_context(|| format!("text of `{css}`")),
                },
                Err(e) if is(&e, ErrorStatus::NoSuchElement) => {
                    Ok(Err(": no element matched".to_owned()))
                }
                Err(e) => Err(e).with_context(|| format!("finding `{css}`")),
            }
        })
        .await
    }

    /// The URL the browser is on.
    pub async fn current_url(&self) -> anyhow::Result<url::Url> {
        self.client.current_url().await.context("current URL")
    }

    /// The path of the URL the browser is on (no query).
    pub async fn current_path(&self) -> anyhow::Result<String> {
        Ok(self.current_url().await?.path().to_owned())
    }

    /// The current URL for error messages, or why there is none.
    async fn location(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("unknown: {e}"),
        }
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> anyhow::Result<String> {
        self.client.source().await.context("page source")
    }

    /// Saves a PNG of the window at `path` (directories created); returns the path.
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> anyhow::Result<PathBuf> {
        let path = path.as_ref().to_owned();
        let png = self.client.screenshot().await.context("screenshot")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The cookies the browser holds for the current page, with their flags
    /// (`http_only()`, `secure()`, `same_site()`, `path()`, `expires()`…).
    pub async fn cookies(&self) -> anyhow::Result<Vec<Cookie<'static>>> {
        self.client.get_all_cookies().await.context("cookies")
    }

    /// The cookie `name` for the current page, if the browser has one.
    pub async fn cookie(&self, name: &str) -> anyhow::Result<Option<Cookie<'static>>> {
        Ok(self.cookies().await?.into_iter().find(|c| c.name() == name))
    }

    /// The console messages the page logged since the last call.
    pub async fn console_log(&self) -> anyhow::Result<Vec<String>> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .context("browser log")?;
        Ok(entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        let field = |name: &str| e[name].as_str().unwrap_or("?").to_owned();
                        format!("{} {}", field("level"), field("message"))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// After a failure: the screenshot, URL, source and console log into
    /// [`screenshot_dir`], each given [`WAIT`] (the browser may be what failed), and their
    /// paths printed.
    async fn save_failure(&self, name: &str) {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = screenshot_dir();
        let mut report = format!("browser test {name} failed; saved:");
        let png = dir.join(format!("{name}.png"));
        match tokio::time::timeout(WAIT, self.screenshot(&png)).await {
            Ok(Ok(path)) => write!(report, "\n  screenshot {}", path.display()).unwrap(),
            Ok(Err(e)) => write!(report, "\n  no screenshot: {e:#}").unwrap(),
            Err(_) => write!(report, "\n  no screenshot: no answer within {WAIT:?}").unwrap(),
        }
        let url = tokio::time::timeout(WAIT, self.location())
            .await
            .unwrap_or_else(|_| "unknown: no answer".to_owned());
        write!(report, "\n  at {url}").unwrap();
        let html = dir.join(format!("{name}.html"));
        let source = match tokio::time::timeout(WAIT, self.source()).await {
            Ok(Ok(source)) => source,
            Ok(Err(e)) => format!("(no source: {e:#})"),
            Err(_) => format!("(no source: no answer within {WAIT:?})"),
        };
        let saved = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                &html,
                format!("<!-- {name}: {} -->\n{source}", url.replace("--", "%2D%2D")),
            )
        });
        match saved {
            Ok(()) => write!(report, "\n  source {}", html.display()).unwrap(),
            Err(e) => write!(report, "\n  no source file: {e}").unwrap(),
        }
        if let Ok(Ok(lines)) = tokio::time::timeout(WAIT, self.console_log()).await {
            let console = dir.join(format!("{name}.console.txt"));
            let mut text = lines.join("\n");
            text.push('\n');
            if std::fs::write(&console, text).is_ok() {
                write!(report, "\n  console log {}", console.display()).unwrap();
            }
        }
        eprintln!("{report}");
    }

    /// Ends the session (Chromium quits); errors are only printed.
    async fn close(self) {
        match tokio::time::timeout(WAIT, self.client.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("closing the browser session: {e}"),
            Err(_) => eprintln!("closing the browser session: no answer within {WAIT:?}"),
        }
    }
}

/// `serve` with the console's admin listener, on a fresh SQLite database; killed, and
/// the database removed, when dropped. Dereferences to the [`ServerProcess`]
/// (`admin_url`, `url`, `log`…).
pub struct ConsoleServer {
    pub server: ServerProcess,
    /// Holds the database until the server is gone (dropped after it).
    dir: tempfile::TempDir,
}

impl ConsoleServer {
    /// The database's URL, for the CLI.
    pub fn database_url(&self) -> String {
        sqlite_url(self.dir.path())
    }

    /// The admin listener's base URL (`http://127.0.0.1:<port>`).
    pub fn admin_base(&self) -> &str {
        self.server
            .admin_base()
            .expect("started with --admin-listen")
    }
}

impl std::ops::Deref for ConsoleServer {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.server
    }
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("console.db").display())
}

/// Starts `serve --admin-listen 127.0.0.1:0 <extra_args>` on a new SQLite database, with
/// the test master secret and [`ADMIN_TOKEN`], and waits until it is ready.
pub async fn console_server(extra_args: &[&str]) -> ConsoleServer {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--admin-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra_args);
    let server = ServerProcess::spawn_with_env(
        &sqlite_url(dir.path()),
        &args,
        &[("MONEYKIT_AUTH_ADMIN_TOKEN", ADMIN_TOKEN)],
        TEST_SECRET,
        "warn",
    );
    server.wait_for("/healthz/ready").await;
    ConsoleServer { server, dir }
}
