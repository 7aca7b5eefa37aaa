//! `moneykit-auth audit list`: the audit trail, newest first, a page at a time.

use clap::Subcommand;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::output::{Output, table};
use crate::domain::audit::AuditFilter;
use crate::operations::audit::{self, record_json};

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// List audit records, newest first: every change made through the CLI or the admin
    /// API, and every refused attempt.
    List {
        /// Only records at or after this time: RFC 3339, or a duration ago (e.g. 24h).
        #[arg(long, value_parser = parse_when)]
        since: Option<OffsetDateTime>,
        /// Only records before this time: RFC 3339, or a duration ago.
        #[arg(long, value_parser = parse_when)]
        until: Option<OffsetDateTime>,
        /// Only records about this object: a client id (its secrets and trust rules
        /// included), an app id, a key id or a webhook event id.
        #[arg(long, value_name = "ID")]
        target: Option<String>,
        /// Only records of this actor (e.g. cli:alice@host, admin_token, client:live_…).
        #[arg(long)]
        actor: Option<String>,
        /// At most this many records (1-1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Continue after a previous page (its "next_cursor").
        #[arg(long)]
        cursor: Option<String>,
    },
}

/// RFC 3339, or a duration that long ago.
fn parse_when(text: &str) -> Result<OffsetDateTime, String> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let ago = super::parse_duration(text)
        .map_err(|_| "expected an RFC 3339 time or a duration ago (e.g. 24h)".to_owned())?;
    let ago = time::Duration::try_from(ago).map_err(|e| e.to_string())?;
    OffsetDateTime::now_utc()
        .checked_sub(ago)
        .ok_or_else(|| "too long ago".to_owned())
}

pub(super) async fn run(
    cmd: AuditCommand,
    db: &super::Database,
    out: Output,
) -> anyhow::Result<()> {
    let store = db.open().await?;
    match cmd {
        AuditCommand::List {
            since,
            until,
            target,
            actor,
            limit,
            cursor,
        } => {
            let filter = AuditFilter {
                since,
                until,
                target,
                actor,
                before_seq: cursor.as_deref().map(audit::parse_cursor).transpose()?,
                limit,
            };
            let (records, next_cursor) = audit::list(store.as_ref(), &filter).await?;
            let json = serde_json::json!({
                "records": records.iter().map(record_json).collect::<Vec<_>>(),
                "next_cursor": next_cursor,
            });
            out.emit(&json, || {
                let rows: Vec<Vec<String>> = records
                    .iter()
                    .map(|r| {
                        let view = record_json(r);
                        vec![
                            view["at"].as_str().unwrap_or_default().to_owned(),
                            r.actor.clone(),
                            r.action.clone(),
                            r.target.clone().unwrap_or_else(|| "-".into()),
                            r.outcome.as_str().to_owned(),
                            r.detail.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                let mut text = table(
                    &["AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"],
                    &rows,
                );
                if let Some(cursor) = &next_cursor {
                    text.push_str(&format!("\n(more: --cursor {cursor})"));
                }
                text
            });
        }
    }
    Ok(())
}
