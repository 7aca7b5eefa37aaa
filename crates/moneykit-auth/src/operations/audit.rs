//! Who is acting ([`Actor`]), what they may do ([`Grants`]), and the audit trail every
//! administrative operation appends to ([`finish`]), whatever door it came through.
//!
//! An operation records after its change committed, with the fields that changed before
//! and after; a refused or failed one records why. Records are appended and never
//! changed; [`list`] reads them back, newest first, a page at a time.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{AdminError, Via};
use crate::domain::audit::{AuditFilter, AuditRecord, Outcome};
use crate::domain::ids::new_audit_id;
use crate::domain::scope::Scopes;
use crate::domain::time::rfc3339;
use crate::store::Store;

/// The scope prefix of administrative scopes: held by a client, they let its tokens call
/// the admin API.
pub const ADMIN_SCOPE_PREFIX: &str = "admin:";

/// Every administrative scope. `admin:read` reads everything (the audit trail and the
/// metrics too); each of the others reads and changes one area.
pub const ADMIN_SCOPES: [&str; 5] = [
    "admin:read",
    "admin:apps",
    "admin:clients",
    "admin:keys",
    "admin:webhooks",
];

/// What an actor may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grants {
    /// Everything: the CLI (it holds the database) and the bootstrap admin token.
    Everything,
    /// What these admin scopes allow: a token this server issued to an admin client.
    Scopes(Scopes),
}

impl Grants {
    /// Whether this includes `scope`.
    pub fn has(&self, scope: &str) -> bool {
        match self {
            Grants::Everything => true,
            Grants::Scopes(scopes) => scopes.iter().any(|s| s == scope),
        }
    }

    /// Refuses to let a caller hand out, or take control of, administrative power it does
    /// not hold: every admin scope in `scopes` (a client's, before or after a change) must
    /// be one of the caller's.
    pub fn may_confer(&self, scopes: &Scopes) -> Result<(), AdminError> {
        let missing: Vec<&str> = scopes
            .iter()
            .filter(|s| s.starts_with(ADMIN_SCOPE_PREFIX) && !self.has(s))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(AdminError::Forbidden(format!(
            "only a caller holding {} may manage a client with {}",
            missing.join(" "),
            if missing.len() == 1 {
                "that scope"
            } else {
                "those scopes"
            }
        )))
    }
}

/// Who asks for an administrative operation, from where, and what they may do.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `cli:user@host`, `admin_token`, `client:live_…`, `demo`.
    pub name: String,
    /// Which door.
    pub via: Via,
    /// The admin API caller's address.
    pub source: Option<IpAddr>,
    /// The admin API request's id.
    pub request_id: Option<String>,
    /// What it may do.
    pub grants: Grants,
    /// Set once an operation recorded this actor's attempt, so the admin API records the
    /// requests no operation saw (a malformed body) without recording others twice.
    recorded: Arc<AtomicBool>,
}

impl Actor {
    fn new(name: String, via: Via, grants: Grants) -> Self {
        Self {
            name,
            via,
            source: None,
            request_id: None,
            grants,
            recorded: Arc::default(),
        }
    }

    /// The operating-system user running an admin command, and the host.
    pub fn cli() -> Self {
        let user = whoami::fallible::username().unwrap_or_else(|_| "unknown".into());
        let host = whoami::fallible::hostname().unwrap_or_else(|_| "unknown".into());
        Self::new(format!("cli:{user}@{host}"), Via::Cli, Grants::Everything)
    }

    /// `serve --demo` setting itself up.
    pub fn demo() -> Self {
        Self::new("demo".into(), Via::Demo, Grants::Everything)
    }

    /// The admin API caller holding the bootstrap admin token.
    pub fn admin_token() -> Self {
        Self::new("admin_token".into(), Via::AdminApi, Grants::Everything)
    }

    /// The admin API caller presenting a token this server issued to `client_id`.
    pub fn admin_client(client_id: &str, scopes: Scopes) -> Self {
        Self::new(
            format!("client:{client_id}"),
            Via::AdminApi,
            Grants::Scopes(scopes),
        )
    }

    /// An admin API caller that could not be authenticated.
    pub fn anonymous() -> Self {
        Self::new(
            "anonymous".into(),
            Via::AdminApi,
            Grants::Scopes(Scopes::default()),
        )
    }

    /// The same actor, for a request from `source` with id `request_id`.
    pub fn at(mut self, source: Option<IpAddr>, request_id: Option<String>) -> Self {
        self.source = source;
        self.request_id = request_id;
        self
    }

    /// Whether an operation recorded an attempt of this actor.
    pub fn recorded(&self) -> bool {
        self.recorded.load(Ordering::Relaxed)
    }
}

/// What an operation changed: the object's id and its JSON view before and after (`null`
/// before a creation, after a removal). Never holds a secret: views have none.
#[derive(Debug, Clone)]
pub struct Change {
    /// The id of the object.
    pub target: String,
    /// Its view before.
    pub before: Value,
    /// Its view after.
    pub after: Value,
}

impl Change {
    /// A change of `target` from `before` to `after`.
    pub fn of(target: &str, before: Value, after: Value) -> Self {
        Self {
            target: target.to_owned(),
            before,
            after,
        }
    }
}

/// Records the end of an operation and passes its result on: `result` is the operation's
/// value with what it changed, or why it was refused or failed; `target` names what it
/// acted on when the change does not (a refused creation has no id yet).
pub async fn finish<T>(
    store: &dyn Store,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    result: Result<(T, Change), AdminError>,
) -> Result<T, AdminError> {
    match result {
        Ok((value, change)) => {
            let changes = diff(&change.before, &change.after);
            append(
                store,
                actor,
                action,
                Some(&change.target),
                changes,
                Outcome::Ok,
                None,
            )
            .await;
            Ok(value)
        }
        Err(error) => {
            let outcome = match error {
                AdminError::Store(_) => Outcome::Failed,
                _ => Outcome::Refused,
            };
            let detail = error.to_string();
            append(store, actor, action, target, None, outcome, Some(&detail)).await;
            Err(error)
        }
    }
}

/// Appends one record; a trail that cannot be written is logged at error, and the
/// operation (committed already) stands.
pub async fn append(
    store: &dyn Store,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    changes: Option<String>,
    outcome: Outcome,
    detail: Option<&str>,
) {
    actor.recorded.store(true, Ordering::Relaxed);
    let record = AuditRecord {
        seq: 0,
        id: new_audit_id(),
        at: OffsetDateTime::now_utc(),
        actor: actor.name.clone(),
        via: actor.via.to_string(),
        source: actor.source.map(|ip| ip.to_string()),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        changes,
        request_id: actor.request_id.clone(),
        outcome,
        detail: detail.map(str::to_owned),
    };
    if let Err(error) = store.append_audit(&record).await {
        tracing::error!(%error, action, outcome = outcome.as_str(), "cannot append to the audit trail");
    }
}

/// The top-level fields that differ between two views, as
/// `{"field": {"before": …, "after": …}}`; `None` when nothing differs. A webhook URL is
/// cut to its origin: its path or query may carry a credential.
pub fn diff(before: &Value, after: &Value) -> Option<String> {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut changes = Map::new();
    for key in before.keys().chain(after.keys()) {
        let (b, a) = (
            before.get(key).unwrap_or(&Value::Null),
            after.get(key).unwrap_or(&Value::Null),
        );
        if b != a && !changes.contains_key(key) {
            let shown = |v: &Value| match (key.as_str(), v.as_str()) {
                ("webhook_url", Some(url)) => json!(origin_of(url)),
                _ => v.clone(),
            };
            changes.insert(key.clone(), json!({"before": shown(b), "after": shown(a)}));
        }
    }
    (!changes.is_empty()).then(|| Value::Object(changes).to_string())
}

/// `scheme://host[:port]` of a URL, and `/…` when it had more.
fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let origin = u.origin().ascii_serialization();
            if u.path() == "/" && u.query().is_none() {
                origin
            } else {
                format!("{origin}/…")
            }
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// Longest page of audit records one call returns.
pub const MAX_PAGE: u32 = 1000;

/// A page of audit records, newest first, and the cursor of the next page (`None`: this
/// was the last).
pub async fn list(
    store: &dyn Store,
    filter: &AuditFilter,
) -> Result<(Vec<AuditRecord>, Option<String>), AdminError> {
    let limit = filter.limit.clamp(1, MAX_PAGE);
    let mut page = store
        .list_audit(&AuditFilter {
            limit: limit + 1,
            ..filter.clone()
        })
        .await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let cursor = more
        .then(|| page.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok((page, cursor))
}

/// Reads a cursor given back by [`list`].
pub fn parse_cursor(cursor: &str) -> Result<i64, AdminError> {
    cursor
        .parse::<i64>()
        .ok()
        .filter(|seq| *seq > 0)
        .ok_or_else(|| {
            AdminError::Invalid(format!("cursor {cursor:?} is not one this server gave"))
        })
}

/// An audit record as the CLI's `--json`, the admin API and the JSON-lines stream show it.
pub fn record_json(r: &AuditRecord) -> Value {
    json!({
        "id": r.id,
        "seq": r.seq,
        "at": rfc3339(r.at),
        "actor": r.actor,
        "via": r.via,
        "source": r.source,
        "action": r.action,
        "target": r.target,
        "changes": r.changes.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()),
        "request_id": r.request_id,
        "outcome": r.outcome.as_str(),
        "detail": r.detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_holds_only_what_changed_and_hides_webhook_paths() {
        let before = json!({"name": "a", "scope": "x", "webhook_url": null});
        let after = json!({"name": "b", "scope": "x", "webhook_url": "https://h.example/hook?token=s3cret"});
        let d: Value = serde_json::from_str(&diff(&before, &after).unwrap()).unwrap();
        assert_eq!(d["name"], json!({"before": "a", "after": "b"}));
        assert!(d.get("scope").is_none());
        assert_eq!(d["webhook_url"]["after"], "https://h.example/…");
        assert!(diff(&before, &before).is_none());
        let created: Value = serde_json::from_str(&diff(&Value::Null, &before).unwrap()).unwrap();
        assert_eq!(created["name"], json!({"before": null, "after": "a"}));
    }

    #[test]
    fn admin_scopes_cannot_be_conferred_by_a_caller_without_them() {
        let scoped = Grants::Scopes(Scopes::parse("admin:clients admin:read").unwrap());
        assert!(
            scoped
                .may_confer(&Scopes::parse("accounts:read admin:clients").unwrap())
                .is_ok()
        );
        let err = scoped
            .may_confer(&Scopes::parse("admin:clients admin:keys").unwrap())
            .unwrap_err();
        assert!(
            matches!(err, AdminError::Forbidden(ref m) if m.contains("admin:keys")),
            "{err}"
        );
        assert!(
            Grants::Everything
                .may_confer(&Scopes::parse("admin:keys").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_cursor("42").unwrap(), 42);
        for bad in ["", "0", "-1", "x", "1e3"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
