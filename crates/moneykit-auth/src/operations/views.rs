//! JSON views of apps, clients, keys and webhook events: one shape for the CLI's `--json`
//! output and the admin HTTP API, so the two cannot drift apart.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::domain::assertions::{IssuerKeys, TrustRule};
use crate::domain::clients::{App, Client, ClientAuth, ClientKeys};
use crate::domain::events::{EventStatus, WebhookEvent};
use crate::domain::secrets::{ClientSecret, StoredSecret};
use crate::domain::signing_keys::ScheduledKey;
use crate::domain::time::{from_unix_ms, rfc3339};

/// An app as the CLI shows it.
pub fn app_json(app: &App) -> Value {
    json!({
        "app_id": app.id,
        "name": app.name,
        "created_at": rfc3339(app.created_at),
        "webhook_url": app.webhook_url,
    })
}

/// A client's state in one word.
pub fn client_status(client: &Client, now: OffsetDateTime) -> &'static str {
    match client.disabled_at {
        None => "enabled",
        Some(_) if client.is_disabled(now) => "disabled",
        Some(_) => "disable_scheduled",
    }
}

/// A client as the CLI shows it (never with a secret): how it authenticates, and for a
/// `private_key_jwt` client the `kid`s of its registered keys or its JWKS URI, for an mTLS
/// client its certificate identity or thumbprints.
pub fn client_json(client: &Client) -> Value {
    let mut value = json!({
        "client_id": client.id,
        "app_id": client.app_id,
        "name": client.name,
        "scope": client.scopes.to_string(),
        "audiences": client.audiences,
        "token_ttl": client.token_ttl_secs,
        "token_endpoint_auth_method": client.auth.method(),
        "require_dpop": client.require_dpop,
        "created_at": rfc3339(client.created_at),
        "disabled_at": client.disabled_at.map(rfc3339),
        "status": client_status(client, OffsetDateTime::now_utc()),
    });
    match &client.auth {
        ClientAuth::Secret(secrets) => {
            let now = OffsetDateTime::now_utc();
            value["secrets"] = secrets.iter().map(|s| secret_json(s, now)).collect();
        }
        ClientAuth::PrivateKeyJwt(ClientKeys::Jwks(jwks)) => {
            value["jwks_kids"] = json!(jwks_kids(jwks));
        }
        ClientAuth::PrivateKeyJwt(ClientKeys::Uri(uri)) => value["jwks_uri"] = json!(uri),
        // RFC 7591 / RFC 8705 §2.1.2 member names.
        ClientAuth::TlsClientAuth(identity) => value[identity.kind()] = json!(identity.value()),
        ClientAuth::SelfSignedTls(thumbprints) => {
            value["certificate_thumbprints"] = json!(thumbprints);
        }
    }
    value
}

/// The `kid`s of a registered JWKS, in order (`null` for a key without one).
pub fn jwks_kids(jwks: &str) -> Vec<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Key {
        kid: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<Key>,
    }
    serde_json::from_str::<Set>(jwks)
        .map(|s| s.keys.into_iter().map(|k| k.kid).collect())
        .unwrap_or_default()
}

/// A trust rule as the CLI and the admin API show it.
pub fn trust_rule_json(rule: &TrustRule) -> Value {
    let mut value = json!({
        "rule_id": rule.id,
        "client_id": rule.client_id,
        "issuer": rule.issuer,
        "subject": rule.subject,
        "audience": rule.audience,
        "created_at": rfc3339(rule.created_at),
    });
    match &rule.keys {
        IssuerKeys::Jwks(jwks) => {
            value["keys"] = json!("jwks");
            value["jwks_kids"] = json!(jwks_kids(jwks));
        }
        IssuerKeys::Uri(uri) => {
            value["keys"] = json!("jwks_uri");
            value["jwks_uri"] = json!(uri);
        }
        IssuerKeys::Discovery => value["keys"] = json!("discovery"),
    }
    value
}

/// One of a client's secrets, never its value: its id, times and state at `now`.
pub fn secret_json(secret: &StoredSecret, now: OffsetDateTime) -> Value {
    json!({
        "secret_id": secret.id,
        "created_at": rfc3339(secret.created_at),
        "expires_at": secret.expires_at.map(rfc3339),
        "last_used_at": secret.last_used_at.map(rfc3339),
        "status": if secret.is_live(now) { "active" } else { "expired" },
    })
}

/// A client with its new secret, shown once (`clients create`, `clients rotate-secret`,
/// `clients add-secret`), with the new secret's id and expiry.
pub fn client_secret_json(client: &Client, secret: &ClientSecret) -> Value {
    let hash = secret.hash();
    let stored = match &client.auth {
        ClientAuth::Secret(secrets) => secrets.iter().find(|s| s.hash == hash),
        _ => None,
    };
    json!({
        "client_id": client.id,
        "client_secret": secret.expose(),
        "secret_id": stored.map(|s| s.id.as_str()),
        "secret_expires_at": stored.and_then(|s| s.expires_at).map(rfc3339),
        "app_id": client.app_id,
        "name": client.name,
        "scope": client.scopes.to_string(),
        "audiences": client.audiences,
        "token_ttl": client.token_ttl_secs,
        "require_dpop": client.require_dpop,
    })
}

/// A signing key and where it is in its life at `now`.
pub fn key_json(k: &ScheduledKey<'_>, now: OffsetDateTime) -> Value {
    json!({
        "kid": k.record.kid,
        "status": k.status(now),
        "created_at": rfc3339(k.record.created_at),
        "activates_at": rfc3339(k.record.activates_at),
        "retires_at": k.retires_at.map(rfc3339),
        "unpublished_at": k.unpublished_at().map(rfc3339),
        "revoked_at": k.record.revoked_at.map(rfc3339),
    })
}

/// Unix milliseconds as RFC 3339.
pub fn time_ms(ms: i64) -> String {
    from_unix_ms(ms).map(rfc3339).unwrap_or_default()
}

/// A webhook event (never its body).
pub fn event_json(e: &WebhookEvent) -> Value {
    json!({
        "event_id": e.id,
        "app_id": e.app_id,
        "event": e.event,
        "status": e.status.as_str(),
        "attempts": e.attempts,
        "last_status": e.last_status,
        "last_error": e.last_error,
        "delivery_token": e.delivery_token,
        "created_at": time_ms(e.created_ms),
        "next_attempt_at": (e.status == EventStatus::Pending).then(|| time_ms(e.next_attempt_ms)),
        "finished_at": e.finished_ms.map(time_ms),
    })
}

/// The outcome of `keys revoke`: `{"kid","revoked_at","replaced_by","apps_notified"}`.
pub fn revocation_json(done: &crate::operations::KeyRevocation) -> Value {
    json!({
        "kid": done.revoked.kid,
        "revoked_at": done.revoked.revoked_at.map(rfc3339),
        "replaced_by": done.replacement.as_ref().map(|k| k.kid.as_str()),
        "apps_notified": done.apps_notified,
    })
}

/// The outcome of a key rotation: `{"result","kid","activates_at"}`.
pub fn rotation_json(rotation: &crate::operations::Rotation) -> Value {
    use crate::operations::Rotation;
    let (result, key) = match rotation {
        Rotation::Published(k) => ("published", k),
        Rotation::AlreadyPending(k) => ("already_pending", k),
        Rotation::ActivatedPending(k) => ("activated", k),
    };
    json!({ "result": result, "kid": key.kid, "activates_at": rfc3339(key.activates_at) })
}
