//! Turning rows into domain types, once for both backends: the columns are the same on
//! SQLite and PostgreSQL (times as Unix seconds, hashes and keys as bytes), only the SQL
//! dialect around them differs.

use sqlx::{ColumnIndex, Decode, Row, Type};
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::assertions::{IssuerKeys, TrustRule};
use crate::domain::audience::parse_audiences;
use crate::domain::audit::{AuditRecord, Outcome};
use crate::domain::certificates::TlsIdentity;
use crate::domain::clients::{App, Client, ClientAuth, ClientKeys};
use crate::domain::events::{ClaimedEvent, EventStatus, WebhookEvent};
use crate::domain::scope::Scopes;
use crate::domain::secrets::{SecretHash, StoredSecret};
use crate::domain::signing_keys::KeyRecord;
use crate::domain::time::from_unix_ms;
use crate::domain::tokens::RevokedToken;

/// Typed column access for the rows of either backend.
pub(super) trait Columns {
    /// A text column.
    fn text(&self, column: &str) -> Result<String, StoreError>;
    /// An integer column.
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A bytes column.
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    /// A nullable text column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
}

fn get<'r, R, T>(row: &'r R, column: &str) -> Result<T, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Backend(format!("column {column}: {e}")))
}

impl<R> Columns for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> Result<String, StoreError> {
        get(self, column)
    }

    fn int(&self, column: &str) -> Result<i64, StoreError> {
        get(self, column)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        get(self, column)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        get(self, column)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        get(self, column)
    }
}

/// Unix seconds → time.
pub(super) fn from_unix(secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {secs} out of range")))
}

/// The columns `app` reads, in the order both backends select them.
pub(super) const APP_COLUMNS: &str = "id, name, created_at, webhook_url";

/// An app row.
pub(super) fn app(row: &impl Columns) -> Result<App, StoreError> {
    Ok(App {
        id: row.text("id")?,
        name: row.text("name")?,
        created_at: from_unix(row.int("created_at")?)?,
        webhook_url: row.opt_text("webhook_url")?,
    })
}

/// The columns `client` reads.
pub(super) const CLIENT_COLUMNS: &str = "id, app_id, name, scopes, audiences, token_ttl_secs, \
     auth_method, jwks, jwks_uri, tls_identity, require_dpop, created_at, \
     disabled_at";

/// The `auth_method` column of a secret client.
pub(super) const SECRET_METHOD: &str = "client_secret";

/// How a client authenticates, as the columns `auth_method`, `secret_hash`, `jwks`,
/// `jwks_uri` and `tls_identity` hold it.
pub(super) struct AuthColumns<'a> {
    pub method: &'static str,
    pub secret_hash: [u8; 32],
    pub jwks: Option<&'a str>,
    pub jwks_uri: Option<&'a str>,
    pub tls_identity: Option<String>,
}

/// The columns of `auth`. A client without a secret gets a `secret_hash` of 32 random
/// bytes, the hash of no secret anyone has: a replica still running a release from before
/// its method existed reads the row as a secret client nobody can authenticate as,
/// instead of a corrupt row that would stop its snapshot from loading during a rolling
/// upgrade.
pub(super) fn auth_columns(auth: &ClientAuth) -> AuthColumns<'_> {
    let mut columns = AuthColumns {
        method: auth.method(),
        secret_hash: crate::crypto::random_bytes::<32>(),
        jwks: None,
        jwks_uri: None,
        tls_identity: None,
    };
    match auth {
        ClientAuth::Secret(secrets) => {
            columns.method = SECRET_METHOD;
            if let Some(newest) = secrets.iter().max_by_key(|s| s.created_at) {
                columns.secret_hash = *newest.hash.as_bytes();
            }
        }
        ClientAuth::PrivateKeyJwt(ClientKeys::Jwks(jwks)) => columns.jwks = Some(jwks),
        ClientAuth::PrivateKeyJwt(ClientKeys::Uri(uri)) => columns.jwks_uri = Some(uri),
        ClientAuth::TlsClientAuth(identity) => {
            columns.tls_identity = Some(format!("{} {}", identity.kind(), identity.value()));
        }
        ClientAuth::SelfSignedTls(thumbprints) => {
            columns.tls_identity = Some(thumbprints.join(" "));
        }
    }
    columns
}

/// A `tls_client_auth` client's identity from its `tls_identity` column.
fn tls_identity(column: &str) -> Option<TlsIdentity> {
    let (kind, value) = column.split_once(' ')?;
    TlsIdentity::from_kind(kind, value)
}

/// A client's audiences as stored: space-separated (audiences hold no spaces).
pub(super) fn audiences_column(audiences: &[String]) -> String {
    audiences.join(" ")
}

/// A client row.
pub(super) fn client(row: &impl Columns) -> Result<Client, StoreError> {
    let id = row.text("id")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("client {id}: {what}"));
    Ok(Client {
        scopes: Scopes::parse(&row.text("scopes")?).map_err(|e| corrupt(&e.to_string()))?,
        audiences: parse_audiences(
            &row.text("audiences")?
                .split_whitespace()
                .collect::<Vec<_>>(),
        )
        .map_err(|e| corrupt(&e.to_string()))?,
        auth: match row.text("auth_method")?.as_str() {
            // Its secrets are rows of their own, attached by the caller.
            SECRET_METHOD => ClientAuth::Secret(Vec::new()),
            "private_key_jwt" => ClientAuth::PrivateKeyJwt(
                match (row.opt_text("jwks")?, row.opt_text("jwks_uri")?) {
                    (Some(jwks), None) => ClientKeys::Jwks(jwks),
                    (None, Some(uri)) => ClientKeys::Uri(uri),
                    _ => return Err(corrupt("keys: exactly one of jwks and jwks_uri")),
                },
            ),
            "tls_client_auth" => ClientAuth::TlsClientAuth(
                row.opt_text("tls_identity")?
                    .as_deref()
                    .and_then(tls_identity)
                    .ok_or_else(|| corrupt("TLS identity"))?,
            ),
            "self_signed_tls_client_auth" => ClientAuth::SelfSignedTls(
                row.opt_text("tls_identity")?
                    .ok_or_else(|| corrupt("certificate thumbprints"))?
                    .split(' ')
                    .map(str::to_owned)
                    .collect(),
            ),
            other => return Err(corrupt(&format!("authentication method {other:?}"))),
        },
        require_dpop: row.int("require_dpop")? != 0,
        token_ttl_secs: row
            .opt_int("token_ttl_secs")?
            .map(u32::try_from)
            .transpose()
            .map_err(|_| corrupt("token ttl"))?,
        app_id: row.text("app_id")?,
        name: row.text("name")?,
        created_at: from_unix(row.int("created_at")?)?,
        disabled_at: row.opt_int("disabled_at")?.map(from_unix).transpose()?,
        id,
    })
}

/// The columns `secret` reads, with `client_id` first.
pub(super) const SECRET_COLUMNS: &str = "client_id, id, hash, created_at, expires_at, last_used_at";

/// A client secret row, with the client it belongs to.
pub(super) fn secret(row: &impl Columns) -> Result<(String, StoredSecret), StoreError> {
    let id = row.text("id")?;
    Ok((
        row.text("client_id")?,
        StoredSecret {
            hash: SecretHash::from_bytes(&row.bytes("hash")?)
                .ok_or_else(|| StoreError::Corrupt(format!("client secret {id}: hash")))?,
            created_at: from_unix(row.int("created_at")?)?,
            expires_at: row.opt_int("expires_at")?.map(from_unix).transpose()?,
            last_used_at: row.opt_int("last_used_at")?.map(from_unix).transpose()?,
            id,
        },
    ))
}

/// The columns `audit` reads.
pub(super) const AUDIT_COLUMNS: &str = "seq, id, at_ms, actor, via, source, action, target, \
     changes, request_id, outcome, detail";

/// An audit trail row.
pub(super) fn audit(row: &impl Columns) -> Result<AuditRecord, StoreError> {
    let id = row.text("id")?;
    let at_ms = row.int("at_ms")?;
    Ok(AuditRecord {
        seq: row.int("seq")?,
        at: from_unix_ms(at_ms)
            .ok_or_else(|| StoreError::Corrupt(format!("audit record {id}: time")))?,
        actor: row.text("actor")?,
        via: row.text("via")?,
        source: row.opt_text("source")?,
        action: row.text("action")?,
        target: row.opt_text("target")?,
        changes: row.opt_text("changes")?,
        request_id: row.opt_text("request_id")?,
        outcome: Outcome::parse(&row.text("outcome")?)
            .ok_or_else(|| StoreError::Corrupt(format!("audit record {id}: outcome")))?,
        detail: row.opt_text("detail")?,
        id,
    })
}

/// The columns `trust_rule` reads.
pub(super) const TRUST_RULE_COLUMNS: &str =
    "id, client_id, issuer, subject, audience, jwks, jwks_uri, created_at";

/// Where a trust rule's keys come from, as the columns `jwks`, `jwks_uri` hold it.
pub(super) fn issuer_keys_columns(keys: &IssuerKeys) -> (Option<&str>, Option<&str>) {
    match keys {
        IssuerKeys::Jwks(jwks) => (Some(jwks), None),
        IssuerKeys::Uri(uri) => (None, Some(uri)),
        IssuerKeys::Discovery => (None, None),
    }
}

/// A trust rule row.
pub(super) fn trust_rule(row: &impl Columns) -> Result<TrustRule, StoreError> {
    let id = row.text("id")?;
    Ok(TrustRule {
        keys: match (row.opt_text("jwks")?, row.opt_text("jwks_uri")?) {
            (Some(jwks), None) => IssuerKeys::Jwks(jwks),
            (None, Some(uri)) => IssuerKeys::Uri(uri),
            (None, None) => IssuerKeys::Discovery,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "trust rule {id}: both jwks and jwks_uri"
                )));
            }
        },
        client_id: row.text("client_id")?,
        issuer: row.text("issuer")?,
        subject: row.text("subject")?,
        audience: row.opt_text("audience")?,
        created_at: from_unix(row.int("created_at")?)?,
        id,
    })
}

/// The columns `key` reads.
pub(super) const KEY_COLUMNS: &str =
    "seq, kid, public_key, sealed_private_key, created_at, activates_at, revoked_at";

/// A signing key row.
pub(super) fn key(row: &impl Columns) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        seq: row.int("seq")?,
        kid: row.text("kid")?,
        public_key: row.bytes("public_key")?,
        sealed_private_key: row.bytes("sealed_private_key")?,
        created_at: from_unix(row.int("created_at")?)?,
        activates_at: from_unix(row.int("activates_at")?)?,
        revoked_at: row.opt_int("revoked_at")?.map(from_unix).transpose()?,
    })
}

/// The columns `revoked` reads.
pub(super) const REVOKED_COLUMNS: &str = "seq, jti, client_id, expires_at, revoked_at";

/// A revoked-token row.
pub(super) fn revoked(row: &impl Columns) -> Result<RevokedToken, StoreError> {
    Ok(RevokedToken {
        seq: row.int("seq")?,
        jti: row.text("jti")?,
        client_id: row.text("client_id")?,
        expires_at: row.int("expires_at")?,
        revoked_at: row.int("revoked_at")?,
    })
}

/// The columns `webhook_event` reads.
pub(super) const EVENT_COLUMNS: &str = "id, app_id, event, body, delivery_token, status, \
     attempts, next_attempt_ms, retry_until_ms, last_status, last_error, created_ms, finished_ms";

/// An outbox row.
pub(super) fn webhook_event(row: &impl Columns) -> Result<WebhookEvent, StoreError> {
    let id = row.text("id")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("webhook event {id}: {what}"));
    let status = row.text("status")?;
    Ok(WebhookEvent {
        status: EventStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        attempts: u32::try_from(row.int("attempts")?).map_err(|_| corrupt("attempts"))?,
        last_status: row
            .opt_int("last_status")?
            .map(u16::try_from)
            .transpose()
            .map_err(|_| corrupt("last status"))?,
        app_id: row.text("app_id")?,
        event: row.text("event")?,
        body: row.bytes("body")?,
        delivery_token: row.text("delivery_token")?,
        next_attempt_ms: row.int("next_attempt_ms")?,
        retry_until_ms: row.int("retry_until_ms")?,
        last_error: row.opt_text("last_error")?,
        created_ms: row.int("created_ms")?,
        finished_ms: row.opt_int("finished_ms")?,
        id,
    })
}

/// A claimed outbox row, with the app's `webhook_url`.
pub(super) fn claimed_event(row: &impl Columns) -> Result<ClaimedEvent, StoreError> {
    Ok(ClaimedEvent {
        event: webhook_event(row)?,
        url: row.opt_text("webhook_url")?,
    })
}
