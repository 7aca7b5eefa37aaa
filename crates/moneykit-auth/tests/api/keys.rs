//! Signing key rotation: pre-published next keys, immediate rotation, scheduled rotation,
//! and racing rotations.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

fn kid_of(token: &str) -> String {
    jwt_part(token, 0)["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rotation_prepublishes_the_next_key_and_rotate_now_activates_it() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let old_token = app.token(&client.id, &secret, None).await;
    let old_kid = kid_of(&old_token);

    let rotated = cli_json(&app.cli_async(&["keys", "rotate", "--json"]).await);
    assert_eq!(rotated["result"], "published");
    let next_kid = rotated["kid"].as_str().unwrap().to_owned();
    app.synced().await;

    // Published at once, not yet signing.
    let jwks = app.jwks().await;
    assert!(jwks.find(&old_kid).is_some() && jwks.find(&next_kid).is_some());
    assert_eq!(kid_of(&app.token(&client.id, &secret, None).await), old_kid);

    // A second rotate leaves the pending key alone.
    let again = cli_json(&app.cli_async(&["keys", "rotate", "--json"]).await);
    assert_eq!(again["result"], "already_pending");
    assert_eq!(again["kid"], next_kid.as_str());

    // --now activates the pending key.
    let now = cli_json(&app.cli_async(&["keys", "rotate", "--now", "--json"]).await);
    assert_eq!(now["result"], "activated");
    app.synced().await;
    let new_token = app.token(&client.id, &secret, None).await;
    assert_eq!(kid_of(&new_token), next_kid);

    // The old key stays published, so its tokens still verify.
    let jwks = app.jwks().await;
    assert_eq!(jwks.keys.len(), 2);
    assert_eq!(app.introspect(&old_token).await.status(), 200);
    assert_eq!(app.introspect(&new_token).await.status(), 200);

    let listed = cli_json(&app.cli_async(&["keys", "list", "--json"]).await);
    let statuses: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [(old_kid.as_str(), "retired"), (next_kid.as_str(), "active")]
    );
}

#[tokio::test]
async fn rotate_now_without_a_pending_key_creates_and_activates_one() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let before = kid_of(&app.token(&client.id, &secret, None).await);
    let out = cli_json(&app.cli_async(&["keys", "rotate", "--now", "--json"]).await);
    assert_eq!(out["result"], "published");
    app.synced().await;
    let after = kid_of(&app.token(&client.id, &secret, None).await);
    assert_ne!(before, after);
    assert_eq!(after, out["kid"].as_str().unwrap());
}

#[tokio::test]
async fn concurrent_rotations_publish_exactly_one_next_key() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || cli(&url, &["keys", "rotate", "--json"]))
        })
        .collect();
    let results: Vec<Value> = runs
        .into_iter()
        .map(|h| cli_json(&h.join().unwrap()))
        .collect();
    let published = results
        .iter()
        .filter(|r| r["result"] == "published")
        .count();
    assert_eq!(published, 1, "{results:?}");
    let kids: std::collections::HashSet<&str> =
        results.iter().map(|r| r["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 1, "everyone reports the same next key");
    assert_eq!(app.store.list_keys().await.unwrap().len(), 2);
}

#[tokio::test]
async fn scheduled_rotation_publishes_then_activates_a_new_key() {
    let _load = timing_sensitive().await;
    let app = spawn_app_with(|s| {
        s.refresh.key_rotation_interval = time::Duration::seconds(3);
        s.refresh.key_activation_delay = time::Duration::seconds(2);
    })
    .await;
    let (client, secret) = app.create_client("a", None).await;
    let first_token = app.token(&client.id, &secret, None).await;
    let first_kid = kid_of(&first_token);

    // Due at interval − delay = 1 s; activates 2 s later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let token = app.token(&client.id, &secret, None).await;
        if kid_of(&token) != first_kid {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled rotation happened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.jwks().await.find(&first_kid).is_some());
    assert_eq!(app.introspect(&first_token).await.status(), 200);
}
