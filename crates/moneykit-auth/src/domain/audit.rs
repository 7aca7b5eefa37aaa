//! The audit trail: who changed what, when, through which door, and how it went. A record
//! is written once and never changed; what it holds about the change is the fields that
//! changed, before and after, and never a secret, a private key or a token.

use time::OffsetDateTime;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The change was made.
    Ok,
    /// The caller was refused: not authenticated, not allowed, or invalid input.
    Refused,
    /// The change could not be made (the database failed).
    Failed,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ok" => Some(Outcome::Ok),
            "refused" => Some(Outcome::Refused),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// One record of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the trail, assigned by the store (0 before it is stored).
    pub seq: i64,
    /// `aud_…` id.
    pub id: String,
    /// When, to the millisecond.
    pub at: OffsetDateTime,
    /// Who: `cli:user@host`, `admin_token`, `client:live_…`, or `anonymous` for a caller
    /// the admin API could not authenticate.
    pub actor: String,
    /// Through which door: `cli`, `admin_api`, `demo`, `server`.
    pub via: String,
    /// The admin API caller's address.
    pub source: Option<String>,
    /// What was attempted, as `object.verb` (`client.create`, `client.secret.revoke`).
    pub action: String,
    /// The id of what it acted on.
    pub target: Option<String>,
    /// The changed fields as a JSON object, `{"field": {"before": …, "after": …}}`.
    pub changes: Option<String>,
    /// The admin API request's `X-Request-Id`.
    pub request_id: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was refused or failed.
    pub detail: Option<String>,
}

/// Which audit records to list: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// At or after this time.
    pub since: Option<OffsetDateTime>,
    /// Before this time.
    pub until: Option<OffsetDateTime>,
    /// Acting on this id.
    pub target: Option<String>,
    /// By this actor.
    pub actor: Option<String>,
    /// With `seq` below this (the cursor of the previous page).
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: u32,
}
