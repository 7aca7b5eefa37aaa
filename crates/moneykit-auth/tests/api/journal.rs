//! Catching up by the journal: every write names what it changed, a running server builds
//! only those entries anew and shares the rest with its previous snapshot, and what it
//! serves then is exactly what a full reload would build.

use std::sync::Arc;

use moneykit_auth::crypto::MasterKey;
use moneykit_auth::engine::snapshot::Snapshot;
use serde_json::json;
use time::OffsetDateTime;

use crate::helpers::*;

const ISSUER: &str = "https://workloads.example";

/// The parts of a snapshot a request can observe, as comparable values.
fn observed(snapshot: &Snapshot) -> serde_json::Value {
    let mut clients: Vec<_> = snapshot
        .clients()
        .map(|entry| {
            json!({
                "client": format!("{:?}", entry.client),
                "app": format!("{:?}", entry.app),
                "keys": format!("{:?}", entry.keys),
                "introspection": String::from_utf8_lossy(entry.introspection_json()),
            })
        })
        .collect();
    clients.sort_by_key(|c| c["client"].as_str().unwrap().to_owned());
    let now = OffsetDateTime::now_utc();
    json!({
        "revision": snapshot.revision,
        "clients": clients,
        "trust": snapshot.trust_rules(ISSUER).map(|t| format!("{:?}", t.rule)).collect::<Vec<_>>(),
        "key_locations": format!("{:?}", snapshot.key_locations()),
        "jwks": String::from_utf8_lossy(snapshot.jwks_json()),
        "metadata": String::from_utf8_lossy(snapshot.metadata_json()),
        "signer": snapshot.signer_at(now).map(|s| s.public.kid().to_owned()),
        "stale_at": format!("{:?}", snapshot.stale_at),
    })
}

/// What a full reload of the store builds now.
async fn rebuilt(
    app: &TestApp,
    settings: Arc<moneykit_auth::engine::snapshot::TokenSettings>,
) -> Snapshot {
    let master = MasterKey::from_secret(TEST_SECRET).unwrap();
    let state = app.store.load().await.unwrap();
    Snapshot::build(state, &master, settings, OffsetDateTime::now_utc()).unwrap()
}

/// A new `private_key_jwt` client of `app_id` with the keys `keys` name; returns its id.
async fn keyed_client(app: &TestApp, app_id: &str, keys: &[&str]) -> String {
    let create = [
        "clients",
        "create",
        "--app",
        app_id,
        "--auth-method",
        "private_key_jwt",
    ];
    let args = [&create[..], keys, &["--json"]].concat();
    let created = cli_json(&app.cli_async(&args).await);
    created["client_id"].as_str().unwrap().to_owned()
}

/// Whether two snapshots hold the very same entry for `client_id` (shared, not rebuilt).
fn shared(a: &Snapshot, b: &Snapshot, client_id: &str) -> bool {
    std::ptr::eq(a.client(client_id).unwrap(), b.client(client_id).unwrap())
}

#[tokio::test]
async fn every_change_arrives_through_the_journal_as_a_full_reload_would_build_it() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let app_id = cli_app(&url, "Journal");
    let (client_id, _) = cli_client(&url, &app_id);
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    let jwks = json!({"keys": [crate::support::signing::TestKey::es256("k1").public_jwk()]});
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let jwks_file = jwks_path.to_str().unwrap().to_owned();
    let keyed_id = keyed_client(&app, &app_id, &["--jwks-file", &jwks_file]).await;
    // Its keys fetched from elsewhere (the server's fetcher refuses the loopback URI: no
    // connection is made).
    let remote = |path: &str| format!("http://127.0.0.1:9/{path}");
    let first = remote("first.json");
    let fetched = keyed_client(
        &app,
        &app_id,
        &[
            "--jwks-uri",
            &first,
            "--allow-http",
            "--allow-private-targets",
        ],
    )
    .await;
    let second = remote("second.json");
    // A bystander in another app: no change below touches it.
    let other_app = cli_app(&url, "Bystander");
    let (bystander, _) = cli_client(&url, &other_app);
    let spare = cli_json(
        &app.cli_async(&["clients", "add-secret", &client_id, "--json"])
            .await,
    );
    let secret_id = spare["secret_id"].as_str().unwrap().to_owned();
    app.synced().await;
    let kid = app
        .snapshot()
        .signer_at(OffsetDateTime::now_utc())
        .unwrap()
        .public
        .kid()
        .to_owned();

    enum Expect<'a> {
        App(&'a str),
        Client(&'a str),
        Keys,
    }
    let trust = vec![
        "clients",
        "trust",
        &keyed_id,
        "--issuer",
        ISSUER,
        "--subject",
        "job",
        "--jwks-file",
        &jwks_file,
    ];
    let runs: Vec<(Vec<&str>, Expect)> = vec![
        (
            vec![
                "apps",
                "set-webhook",
                &app_id,
                "http://127.0.0.1:9/in",
                "--allow-http",
                "--allow-private-targets",
            ],
            Expect::App(&app_id),
        ),
        (
            vec![
                "clients", "update", &client_id, "--name", "renamed", "--scope", "a b",
            ],
            Expect::Client(&client_id),
        ),
        (
            vec!["clients", "disable", &client_id],
            Expect::Client(&client_id),
        ),
        (
            vec!["clients", "enable", &client_id],
            Expect::Client(&client_id),
        ),
        (
            vec!["clients", "rotate-secret", &client_id, "--grace", "1h"],
            Expect::Client(&client_id),
        ),
        (
            vec!["clients", "add-secret", &client_id],
            Expect::Client(&client_id),
        ),
        (
            vec!["clients", "revoke-secret", &client_id, &secret_id],
            Expect::Client(&client_id),
        ),
        (trust.clone(), Expect::Client(&keyed_id)),
        (
            vec![
                "clients",
                "update",
                &fetched,
                "--jwks-uri",
                &second,
                "--allow-http",
                "--allow-private-targets",
            ],
            Expect::Client(&fetched),
        ),
        (
            vec!["clients", "update", &fetched, "--jwks-file", &jwks_file],
            Expect::Client(&fetched),
        ),
        (vec!["keys", "rotate"], Expect::Keys),
        (vec!["keys", "revoke", &kid], Expect::Keys),
    ];
    let locations = format!("{:?}", app.snapshot().key_locations());
    assert!(locations.contains(&first), "{locations}");
    for (args, expect) in &runs {
        let before = app.snapshot();
        let since = app.store.revision().await.unwrap();
        let output = app.cli_async(args).await;
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let changes = app
            .store
            .load_changes(since)
            .await
            .unwrap()
            .expect("the journal reaches back");
        match expect {
            Expect::App(id) => assert!(changes.apps.iter().any(|a| a.id == *id), "{args:?}"),
            Expect::Client(id) => {
                assert!(changes.client_ids.iter().any(|c| c == id), "{args:?}");
                assert!(
                    changes.apps.is_empty() && changes.keys.is_none(),
                    "{args:?}"
                );
            }
            Expect::Keys => assert!(
                changes.keys.is_some() && changes.client_ids.is_empty(),
                "{args:?}"
            ),
        }
        app.synced().await;
        let after = app.snapshot();
        assert_eq!(
            observed(&after),
            observed(&rebuilt(&app, after.settings.clone()).await),
            "{args:?}: the served snapshot differs from a full reload"
        );
        // Caught up, not reloaded: what the change did not touch is the same entry.
        assert!(
            shared(&before, &after, &bystander),
            "{args:?} rebuilt an untouched client"
        );
        if let Expect::App(_) = expect {
            assert!(
                !shared(&before, &after, &client_id),
                "its app's clients are built anew"
            );
            assert!(after.client(&client_id).unwrap().app.webhook_url.is_some());
        }
    }
    let rule = &app
        .snapshot()
        .trust_rules(ISSUER)
        .next()
        .unwrap()
        .rule
        .id
        .clone();
    let since = app.store.revision().await.unwrap();
    let untrust = app
        .cli_async(&["clients", "untrust", &keyed_id, rule])
        .await;
    assert!(untrust.status.success());
    app.synced().await;
    assert_eq!(app.snapshot().trust_rules(ISSUER).count(), 0);
    let changes = app.store.load_changes(since).await.unwrap().unwrap();
    assert_eq!(changes.client_ids, vec![keyed_id.clone()]);
    assert!(changes.trust_rules.is_empty());

    // A second rule for the same issuer, then the first client's: each issuer's rules keep
    // the order a full reload gives them.
    assert!(app.cli_async(&trust).await.status.success());
    let mut again = trust.clone();
    again[2] = &bystander;
    assert!(app.cli_async(&again).await.status.success());
    assert!(app.cli_async(&trust).await.status.success());
    app.synced().await;
    let served = app.snapshot();
    assert_eq!(served.trust_rules(ISSUER).count(), 3);
    assert_eq!(
        observed(&served),
        observed(&rebuilt(&app, served.settings.clone()).await)
    );
}

/// Moves the revision as a bulk load with the triggers off would: no journal entry.
async fn bump_around_the_triggers(url: &str) {
    let sql = "UPDATE revision SET value = value + 1 WHERE id = 1";
    if on_postgres() {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

#[tokio::test]
async fn a_journal_that_cannot_say_what_changed_asks_for_a_full_reload() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let app_id = cli_app(&url, "Pruned");
    let since = app.store.revision().await.unwrap();
    let (client_id, _) = cli_client(&url, &app_id);
    let now = app.store.revision().await.unwrap();
    assert!(app.store.load_changes(since).await.unwrap().is_some());

    // Entries written before a second ago are old at a second from now.
    let future = OffsetDateTime::now_utc().unix_timestamp() + 1;
    assert!(app.store.prune_state_changes(future).await.unwrap() > 0);
    assert!(
        app.store.load_changes(since).await.unwrap().is_none(),
        "what happened between `since` and now is gone"
    );
    let nothing = app
        .store
        .load_changes(now)
        .await
        .unwrap()
        .expect("up to date");
    assert_eq!(nothing.revision, now);
    assert!(nothing.client_ids.is_empty() && nothing.apps.is_empty() && nothing.keys.is_none());
    assert!(
        app.store.load_changes(now + 1).await.unwrap().is_none(),
        "a revision from the future"
    );
    assert_eq!(app.store.prune_state_changes(future).await.unwrap(), 0);

    // A change after the prune is in the journal again, and reaches the server.
    app.disable_client(&client_id, None).await;
    let changes = app.store.load_changes(now).await.unwrap().unwrap();
    assert_eq!(changes.client_ids, vec![client_id.clone()]);
    assert!(
        app.snapshot()
            .client(&client_id)
            .unwrap()
            .client
            .disabled_at
            .is_some()
    );

    // A revision moved without its entry: the journal does not pretend nothing changed,
    // and the server reloads everything.
    let since = app.store.revision().await.unwrap();
    bump_around_the_triggers(&url).await;
    assert!(app.store.load_changes(since).await.unwrap().is_none());
    let before = app.snapshot();
    app.synced().await;
    let after = app.snapshot();
    assert_eq!(after.revision, since + 1);
    assert!(
        !std::ptr::eq(
            before.client(&client_id).unwrap(),
            after.client(&client_id).unwrap()
        ),
        "reloaded, not caught up"
    );
}
