//! The admin console over plain HTTP (its flows in a real browser are `tests/browser`):
//! where it is served, the headers every page carries, sessions and their cookie, CSRF on
//! every change, admin scopes, escaping of hostile names, the sign-in limit, and the
//! audit records its changes and refusals leave.

use moneykit_auth::http::console::ROUTES;
use moneykit_auth::http::console::session::MAX_FAILURES_PER_MINUTE;
use moneykit_auth::http::console::sign_in::SIGN_IN;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::helpers::*;

/// A browser without a browser: the session cookie and the page's CSRF token by hand.
struct Console {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

/// A page's status, headers and body.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// The value of the first hidden `csrf` field of `page`.
fn csrf_of(page: &str) -> String {
    let start = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[start..][..page[start..].find('"').unwrap()].to_owned()
}

/// The `name=value` of every `Set-Cookie`, and the cookies' full texts.
fn cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn fetch(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> Reply {
    let mut request = http.request(method.clone(), url);
    if !cookie.is_empty() {
        request = request.header("cookie", cookie);
    }
    if method == reqwest::Method::POST {
        request = request.form(form);
    }
    let response = request.send().await.unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

impl Console {
    /// Signs in to `app`'s console with `token`; panics unless it is accepted.
    async fn sign_in(app: &TestApp, token: &str) -> Self {
        let (reply, console) = Self::try_sign_in(app, token).await;
        assert_eq!(reply.status, 303, "{}", reply.body);
        console.expect("signed in")
    }

    /// The sign-in form's answer, and the session if it opened one.
    async fn try_sign_in(app: &TestApp, token: &str) -> (Reply, Option<Self>) {
        let http = plain_client();
        let base = app.admin_base.clone().expect("an admin listener");
        let url = format!("{base}/console/sign-in");
        let form = fetch(&http, reqwest::Method::GET, &url, "", &[]).await;
        assert_eq!(form.status, 200);
        let form_cookie = cookies(&form.headers)[0]
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let csrf = csrf_of(&form.body);
        let fields = [("csrf", csrf.as_str()), ("token", token)];
        let reply = fetch(&http, reqwest::Method::POST, &url, &form_cookie, &fields).await;
        let session = cookies(&reply.headers)
            .into_iter()
            .find(|c| c.starts_with("moneykit-console=") && !c.starts_with("moneykit-console=;"));
        let Some(session) = session else {
            return (reply, None);
        };
        let cookie = session.split(';').next().unwrap().to_owned();
        let mut console = Self {
            http,
            base,
            cookie,
            csrf: String::new(),
        };
        let landing = console.get(reply.location()).await;
        assert_eq!(landing.status, 200, "{}", landing.body);
        console.csrf = csrf_of(&landing.body);
        (reply, Some(console))
    }

    async fn get(&self, path: &str) -> Reply {
        let url = format!("{}{path}", self.base);
        fetch(&self.http, reqwest::Method::GET, &url, &self.cookie, &[]).await
    }

    /// A form sent with the session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut with_token = vec![("csrf", self.csrf.as_str())];
        with_token.extend_from_slice(fields);
        self.post_raw(path, &with_token).await
    }

    /// A form sent exactly as given (without a CSRF token unless it has one).
    async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let url = format!("{}{path}", self.base);
        fetch(
            &self.http,
            reqwest::Method::POST,
            &url,
            &self.cookie,
            fields,
        )
        .await
    }
}

/// The audit records of `action`, newest first, through the admin API.
async fn records(app: &TestApp, action: &str) -> Vec<Value> {
    let (status, page) = app
        .admin_as(ADMIN_TOKEN, "GET", "/admin/audit?limit=1000", None)
        .await;
    assert_eq!(status, 200);
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == action)
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_console_is_on_the_admin_listener_only_and_its_pages_are_locked_down() {
    let app = spawn_admin_app_with(|_| {}).await;
    let http = plain_client();
    // Not on the public listener.
    let public = fetch(
        &http,
        reqwest::Method::GET,
        &app.url("/console/sign-in"),
        "",
        &[],
    )
    .await;
    assert_eq!(public.status, 404);

    let admin = app.admin_base.clone().unwrap();
    let sign_in = fetch(
        &http,
        reqwest::Method::GET,
        &format!("{admin}/console/sign-in"),
        "",
        &[],
    )
    .await;
    assert_eq!(sign_in.status, 200);
    let csp = sign_in.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(sign_in.headers["x-frame-options"], "DENY");
    assert_eq!(sign_in.headers["cache-control"], "no-store");
    assert!(!sign_in.body.contains("<script>") && !sign_in.body.contains(" style="));

    // A page without a session goes to the sign-in form; a form is refused.
    let page = fetch(
        &http,
        reqwest::Method::GET,
        &format!("{admin}/console/clients"),
        "",
        &[],
    )
    .await;
    assert_eq!((page.status, page.location()), (303, "/console/sign-in"));
    let form = fetch(
        &http,
        reqwest::Method::POST,
        &format!("{admin}/console/apps"),
        "",
        &[("name", "x")],
    )
    .await;
    assert_eq!(form.status, 401);

    // A wrong token, a sign-in form without its cookie's token: refused, no session.
    let (wrong, none) = Console::try_sign_in(&app, "not-the-admin-token-0123456789abcdef").await;
    assert_eq!(wrong.status, 401);
    assert!(none.is_none());
    assert!(
        wrong.body.contains("neither the admin token"),
        "{}",
        wrong.body
    );

    // The session cookie: HttpOnly, SameSite=Strict, expiring (not Secure over plain HTTP).
    let (accepted, console) = Console::try_sign_in(&app, ADMIN_TOKEN).await;
    let session = cookies(&accepted.headers)
        .into_iter()
        .find(|c| c.starts_with("moneykit-console="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains(ADMIN_TOKEN));
    assert_eq!(accepted.location(), "/console/overview");
    let console = console.unwrap();
    let overview = console.get("/console/overview").await;
    assert!(
        overview.body.contains("data-chart=\"tokens\""),
        "{}",
        overview.body
    );
    assert!(!overview.body.contains(ADMIN_TOKEN));

    // Signing out ends the session on the server: the old cookie no longer works.
    let out = console.post("/console/sign-out", &[]).await;
    assert_eq!(out.status, 303);
    assert!(
        cookies(&out.headers)
            .iter()
            .any(|c| c.contains("Max-Age=0"))
    );
    let after = console.get("/console/clients").await;
    assert_eq!((after.status, after.location()), (303, "/console/sign-in"));
}

#[tokio::test]
async fn every_console_change_needs_the_session_csrf_token_and_every_refusal_is_recorded() {
    let app = spawn_admin_app_with(|_| {}).await;
    let console = Console::sign_in(&app, ADMIN_TOKEN).await;
    let (app_id, client_id, _) = cli_app_and_client(&app.database_url, "Csrf");
    let kid = cli_json(&app.cli(&["keys", "list", "--json"]))[0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.cli(&["clients", "show", &client_id, "--json"]).stdout;

    let changes: Vec<_> = ROUTES.iter().filter(|r| r.action.is_some()).collect();
    assert!(changes.len() >= 15, "{}", changes.len());
    for route in changes {
        let path = route
            .path
            .replace(
                "{id}",
                if route.path.starts_with("/console/apps") {
                    &app_id
                } else {
                    &client_id
                },
            )
            .replace("{kid}", &kid)
            .replace("{secret_id}", "sec_unknown")
            .replace("{rule_id}", "rule_unknown");
        let fields = [
            ("name", "Sneaky"),
            ("now", "on"),
            ("url", "http://127.0.0.1:9/"),
        ];
        let refused = console.post_raw(&path, &fields).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(refused.body.contains("CSRF"), "{path}");
        let forged = [("csrf", "forged"), ("name", "Sneaky")];
        assert_eq!(console.post_raw(&path, &forged).await.status, 403, "{path}");
        let recorded = records(&app, route.action.unwrap()).await;
        let refusals: Vec<_> = recorded
            .iter()
            .filter(|r| r["via"] == "console" && r["outcome"] == "refused")
            .collect();
        assert_eq!(refusals.len(), 2, "{path}: {recorded:?}");
        assert!(refusals[0]["detail"].as_str().unwrap().contains("CSRF"));
    }
    // Nothing changed: no app, client or key was made or touched.
    assert_eq!(
        app.cli(&["clients", "show", &client_id, "--json"]).stdout,
        before
    );
    assert_eq!(
        cli_json(&app.cli(&["apps", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        cli_json(&app.cli(&["keys", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // With the token, the same change goes through the operations: one record, via console.
    let made = console
        .post("/console/apps", &[("name", "Through the console")])
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let created = records(&app, "app.create").await;
    assert_eq!(created[0]["outcome"], "ok");
    assert_eq!(created[0]["via"], "console");
    assert_eq!(created[0]["actor"], "admin_token");
    assert!(created[0]["request_id"].is_string());
    // A refused one is shown in place, with the CLI's words, and recorded once.
    let refused = console
        .post("/console/clients", &[("app_id", "app_missing")])
        .await;
    assert_eq!(refused.status, 404, "{}", refused.body);
    assert!(
        refused.body.contains("unknown app app_missing"),
        "{}",
        refused.body
    );
    let refusals = records(&app, "client.create").await;
    let unknown: Vec<_> = refusals
        .iter()
        .filter(|r| r["detail"] == "unknown app app_missing")
        .collect();
    assert_eq!(unknown.len(), 1, "{refusals:?}");
    // The credential fields reach the same checks as the admin API's members.
    let app_for_keys = app_id.as_str();
    for (fields, says) in [
        (
            vec![("method", "private_key_jwt")],
            "a private_key_jwt client needs",
        ),
        (vec![("method", "private_key_jwt"), ("jwks", "{}")], "jwks:"),
        (
            vec![
                ("method", "tls_client_auth"),
                ("tls_identity_kind", "san_ip"),
                ("tls_identity", "not-an-ip"),
            ],
            "is not an IP address",
        ),
    ] {
        let mut form = vec![("app_id", app_for_keys)];
        form.extend(fields);
        let refused = console.post("/console/clients", &form).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert!(refused.body.contains(says), "{says}: {}", refused.body);
    }
    assert_eq!(
        (&unknown[0]["outcome"], &unknown[0]["via"]),
        (&"refused".into(), &"console".into())
    );
}

#[tokio::test]
async fn hostile_names_are_escaped_everywhere_they_are_shown() {
    let app = spawn_admin_app_with(|_| {}).await;
    let console = Console::sign_in(&app, ADMIN_TOKEN).await;
    let hostile = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>&amp;";
    // As long as a name may be (200 characters); one more is refused in place, with the
    // CLI's words.
    let long = format!("{hostile}{}", "W".repeat(200 - hostile.chars().count()));
    let too_long = format!("{long}W");
    let refused = console.post("/console/apps", &[("name", &too_long)]).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("app name must be 1-200 characters"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("<script>alert"));
    let made = console.post("/console/apps", &[("name", &long)]).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let app_path = made.location().to_owned();
    let app_id = app_path.rsplit('/').next().unwrap().to_owned();
    let made = console
        .post(
            "/console/clients",
            &[
                ("app_id", &app_id),
                ("name", hostile),
                ("scope", "accounts:read"),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let client_id = made.body.split("id=\"client-id\">").nth(1).unwrap()[..29].to_owned();
    let pages = [
        "/console/apps".to_owned(),
        app_path,
        "/console/clients".to_owned(),
        format!("/console/clients/{client_id}"),
        "/console/audit".to_owned(),
    ];
    for path in pages {
        let page = console.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains("<script>alert"), "{path}: unescaped");
        assert!(!page.body.contains("<img src=x"), "{path}: unescaped");
        let shown = page
            .body
            .find("alert(1)")
            .map(|i| &page.body[i.saturating_sub(40)..i + 20]);
        // askama writes numeric character references.
        assert!(
            page.body
                .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: {shown:?}"
        );
        assert!(
            page.body.contains("&#34;&#39;&#62;&#60;img"),
            "{path}: quotes not escaped"
        );
        assert!(page.body.contains("&#38;amp;"), "{path}: & not escaped");
    }
    // The one-time secret page showed the secret once; no later page shows it.
    let secret = made
        .body
        .split("id=\"client-secret\" class=\"wrap\">")
        .nth(1)
        .unwrap();
    let secret = &secret[..secret.find('<').unwrap()];
    assert!(secret.starts_with("mks_"), "{secret}");
    for path in [
        "/console/clients",
        &format!("/console/clients/{client_id}"),
        "/console/audit",
    ] {
        assert!(!console.get(path).await.body.contains(secret), "{path}");
    }
}

#[tokio::test]
async fn an_admin_scoped_client_signs_in_sees_its_areas_and_loses_its_session_when_disabled() {
    let app = spawn_admin_app_with(|_| {}).await;
    let app_id = cli_app(&app.database_url, "Ops");
    let created = cli_json(&app.cli(&[
        "clients",
        "create",
        "--app",
        &app_id,
        "--scope",
        "admin:clients",
        "--json",
    ]));
    let id = created["client_id"].as_str().unwrap().to_owned();
    app.synced().await;
    let token = app
        .token(&id, created["client_secret"].as_str().unwrap(), None)
        .await;
    let (reply, console) = Console::try_sign_in(&app, &token).await;
    assert_eq!(
        reply.location(),
        "/console/clients",
        "its first readable page"
    );
    let console = console.unwrap();
    let clients = console.get("/console/clients").await;
    assert!(
        clients.body.contains(&format!("client:{id}")),
        "who is signed in"
    );
    assert!(
        !clients.body.contains("href=\"/console/keys\""),
        "no link it may not follow"
    );
    for page in ["/console/keys", "/console/overview", "/console/audit"] {
        let refused = console.get(page).await;
        assert_eq!(refused.status, 403, "{page}");
        assert!(refused.body.contains("admin:"), "{page}: {}", refused.body);
    }
    let rotate = console.post("/console/keys/rotate", &[]).await;
    assert_eq!(rotate.status, 403);
    let refusals = records(&app, "key.rotate").await;
    assert_eq!(refusals[0]["actor"], format!("client:{id}"));
    assert_eq!(refusals[0]["via"], "console");
    // It cannot give itself (or anyone) more than it holds.
    let escalate = console
        .post(
            &format!("/console/clients/{id}"),
            &[("scope", "admin:clients admin:keys")],
        )
        .await;
    assert_eq!(escalate.status, 403, "{}", escalate.body);
    // Disabled from elsewhere: the next request finds the session gone.
    assert!(app.cli(&["clients", "disable", &id]).status.success());
    app.synced().await;
    let after = console.get("/console/clients").await;
    assert_eq!((after.status, after.location()), (303, "/console/sign-in"));

    // A token without any admin scope cannot open a session at all.
    let (_, plain, plain_secret) = cli_app_and_client(&app.database_url, "Plain");
    app.synced().await;
    let plain_token = app.token(&plain, &plain_secret, None).await;
    let (refused, none) = Console::try_sign_in(&app, &plain_token).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(none.is_none());
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_address_and_recorded() {
    let app = spawn_admin_app_with(|_| {}).await;
    for _ in 0..MAX_FAILURES_PER_MINUTE {
        let (reply, _) = Console::try_sign_in(&app, "wrong-token-0123456789abcdef0123456789").await;
        // A minute boundary may reset the count midway; never a session.
        assert_eq!(reply.status, 401);
    }
    let (limited, none) = Console::try_sign_in(&app, ADMIN_TOKEN).await;
    assert!(none.is_none(), "even the right token waits");
    if limited.status == 401 {
        return; // the minute turned between the failures: the count started again.
    }
    assert_eq!(limited.status, 429, "{}", limited.body);
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    let sign_ins = records(&app, SIGN_IN).await;
    assert_eq!(
        sign_ins.len(),
        MAX_FAILURES_PER_MINUTE as usize,
        "{sign_ins:?}"
    );
    assert_eq!(sign_ins[0]["via"], "console");
    assert_eq!(sign_ins[0]["actor"], "anonymous");
    assert_eq!(sign_ins[0]["outcome"], "refused");
    assert!(
        !sign_ins[0].to_string().contains("wrong-token"),
        "never the token"
    );
}
