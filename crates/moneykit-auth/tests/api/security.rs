//! What the security review of issue 14 found on the token path, each through real HTTP:
//! a leaked signing key withdrawn at once (`keys revoke`), claims no token of ours can
//! have, revocation floods, oversized scope lists, and database files others can read.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit_auth::crypto::{KeyPair, MasterKey};
use moneykit_auth::engine::ratelimit::Rate;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::*;

fn kid_of(token: &str) -> String {
    jwt_part(token, 0)["kid"].as_str().unwrap().to_owned()
}

/// The server's signing key `kid`, opened with the test master secret: what a thief of
/// the database and the secret would hold.
async fn stolen_key(app: &TestApp, kid: &str) -> KeyPair {
    let keys = app.store.list_keys().await.unwrap();
    let record = keys.iter().find(|k| k.kid == kid).unwrap();
    let pkcs8 = MasterKey::from_secret(TEST_SECRET)
        .unwrap()
        .open(&record.kid, &record.sealed_private_key)
        .unwrap();
    KeyPair::from_pkcs8(&record.kid, &pkcs8).unwrap()
}

/// A token with the server's own header and `claims`, signed with `key`.
fn forge(key: &KeyPair, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "ES256", "typ": "at+jwt", "kid": key.kid()}).to_string());
    key.sign_jwt(&header, claims.to_string().as_bytes())
}

#[tokio::test]
async fn a_revoked_key_leaves_the_jwks_and_takes_its_tokens_with_it_at_once() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    let old_kid = kid_of(&token);
    // Introspected once, so the server remembers its signature as verified.
    assert_eq!(app.introspect(&token).await.status(), 200);
    // An app with a webhook URL hears of the revocation.
    let listening = app.create_app("Listening").await;
    set_webhook(&app.database_url, &listening.id, "http://127.0.0.1:9/mk");

    let revoked = cli_json(&app.cli_async(&["keys", "revoke", &old_kid, "--json"]).await);
    assert_eq!(revoked["kid"], old_kid.as_str());
    assert_eq!(revoked["apps_notified"], 1);
    let new_kid = revoked["replaced_by"]
        .as_str()
        .expect("a new key took over")
        .to_owned();

    // Within a second: out of the JWKS, its (remembered) token refused, a new key signing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while app.jwks().await.find(&old_kid).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "still published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_invalid_token(app.introspect(&token).await).await;
    let introspected = app.rfc_introspect((&client.id, &secret), &token).await;
    assert_eq!(introspected, json!({"active": false}));
    let fresh = app.token(&client.id, &secret, None).await;
    assert_eq!(kid_of(&fresh), new_kid);
    assert_eq!(app.introspect(&fresh).await.status(), 200);
    assert!(app.jwks().await.find(&new_kid).is_some());

    // `keys list` shows it as revoked; the webhook event is queued for the app.
    let listed = cli_json(&app.cli_async(&["keys", "list", "--json"]).await);
    let status_of = |kid: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["status"].clone())
    };
    assert_eq!(status_of(&old_kid), Some(json!("revoked")));
    assert_eq!(status_of(&new_kid), Some(json!("active")));
    let events = cli_json(
        &app.cli_async(&["webhooks", "list", "--app", &listening.id, "--json"])
            .await,
    );
    assert_eq!(events[0]["event"], "signing_key.revoked", "{events}");

    // Bad input: one line, nothing changed.
    for (args, needle) in [
        (vec!["keys", "revoke", &old_kid], "revoked already"),
        (vec!["keys", "revoke", "key_nope"], "unknown signing key"),
    ] {
        let output = app.cli(&args);
        assert!(!output.status.success());
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    assert_eq!(kid_of(&app.token(&client.id, &secret, None).await), new_kid);
}

#[tokio::test]
async fn the_admin_api_revokes_a_key_that_is_not_signing_without_replacing_it() {
    const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";
    let app = spawn_app_with(|s| {
        s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        s.admin_token = Some(ADMIN_TOKEN.into());
    })
    .await;
    let rotated = cli_json(&app.cli_async(&["keys", "rotate", "--json"]).await);
    let pending = rotated["kid"].as_str().unwrap();
    let admin = app.admin_base.clone().unwrap();
    let response = app
        .http
        .post(format!("{admin}/admin/keys/{pending}/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["kid"], pending);
    assert_eq!(body["replaced_by"], Value::Null, "the signing key stays");
    app.synced().await;
    assert!(app.jwks().await.find(pending).is_none());
    // A later rotation is not blocked by the withdrawn pending key.
    let again = cli_json(&app.cli_async(&["keys", "rotate", "--json"]).await);
    assert_eq!(again["result"], "published");
    let unknown = app
        .http
        .post(format!("{admin}/admin/keys/key_nope/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn tokens_with_claims_we_never_issue_are_refused_even_when_properly_signed() {
    let app = spawn_app().await;
    let (client, secret) = app
        .create_client("accounts:read transactions:read", None)
        .await;
    let genuine = app.token(&client.id, &secret, None).await;
    let key = stolen_key(&app, &kid_of(&genuine)).await;
    let claims = jwt_part(&genuine, 1);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (name, value) in changes.as_object().unwrap() {
            c[name] = value.clone();
        }
        forge(&key, &c)
    };
    // The forging itself works: unchanged claims pass.
    assert_eq!(app.introspect(&with(json!({}))).await.status(), 200);
    let ten_years = 10 * 365 * 86_400;
    for forged in [
        with(json!({"iat": now, "exp": now + ten_years})),
        with(json!({"iat": now + 3600, "exp": now + 7200})),
        with(json!({"scope": "accounts:read anything:admin"})),
        with(json!({"scope": "anything:admin"})),
        with(json!({"aud": "https://another.example.test/"})),
    ] {
        assert_invalid_token(app.introspect(&forged).await).await;
        let body = app.rfc_introspect((&client.id, &secret), &forged).await;
        assert_eq!(body, json!({"active": false}));
    }
    // A client narrowed since: its token claiming a scope it lost is refused.
    cli_json(
        &app.cli_async(&[
            "clients",
            "update",
            &client.id,
            "--scope",
            "accounts:read",
            "--json",
        ])
        .await,
    );
    app.synced().await;
    assert_invalid_token(app.introspect(&genuine).await).await;
    let narrowed = app.token(&client.id, &secret, None).await;
    assert_eq!(app.introspect(&narrowed).await.status(), 200);
}

#[tokio::test]
async fn revocations_are_rate_limited_per_client() {
    let app = spawn_app_with(|s| {
        s.rate_limits.revocations_per_client = Rate::per(5, Duration::from_secs(60));
    })
    .await;
    let (client, secret) = app.create_client("a", None).await;
    let (other, other_secret) = app.create_client("a", None).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = app
            .revoke((&client.id, &secret), &format!("not-a-token-{i}"))
            .await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            assert_error(response, 429, "api_error.rate_limit_exceeded", None).await;
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    // Another client's budget is its own.
    let response = app.revoke((&other.id, &other_secret), "x").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_oversized_scope_list_is_refused_before_any_work() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("s0", None).await;
    let many: Vec<String> = (0..300).map(|i| format!("s{i}")).collect();
    for path in ["/auth/token", "/oauth2/token"] {
        let response = app
            .http
            .post(app.url(path))
            .basic_auth(&client.id, Some(&secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", &many.join(" ")),
            ])
            .send()
            .await
            .unwrap();
        let body = assert_error(
            response,
            400,
            "api_error.auth.invalid_scope",
            Some("invalid_scope"),
        )
        .await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("more than 256"),
            "{body}"
        );
    }
    // Repeats of an allowed scope are one scope, however many.
    let repeated = "s0 ".repeat(2000);
    let response = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", repeated.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["scope"], "s0");
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_and_its_wal_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    if on_postgres() {
        return; // a SQLite file property
    }
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let url = format!("sqlite://{}", db.display());
    cli_app(&url, "Perms");
    let server = ServerProcess::start(&url, &[]).await;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.clone().into_os_string();
        path.push(suffix);
        let path = std::path::PathBuf::from(path);
        assert!(path.exists(), "{}", path.display());
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    drop(server);

    // A database created by an older version with a wider mode is narrowed when opened.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    cli_json(&cli(&url, &["apps", "list", "--json"]));
    assert_eq!(mode(&db), 0o600);
}

/// `(r, n - s)`: the other valid ECDSA encoding of a signature, computed here
/// independently of the server (big-endian subtraction from the P-256 group order).
fn high_s_twin(token: &str) -> String {
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let mut borrow = 0i32;
    for k in (0..32).rev() {
        let d = i32::from(ORDER[k]) - i32::from(sig[32 + k]) - borrow;
        sig[32 + k] = d.rem_euclid(256) as u8;
        borrow = i32::from(d < 0);
    }
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[tokio::test]
async fn the_second_ecdsa_encoding_of_a_token_is_refused() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    for _ in 0..5 {
        let token = app.token(&client.id, &secret, None).await;
        let twin = high_s_twin(&token);
        assert_ne!(twin, token);
        assert_eq!(app.introspect(&token).await.status(), 200);
        assert_invalid_token(app.introspect(&twin).await).await;
        let body = app.rfc_introspect((&client.id, &secret), &twin).await;
        assert_eq!(body, json!({"active": false}));
    }
}
