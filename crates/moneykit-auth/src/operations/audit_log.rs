//! `serve --audit-log FILE|-`: the audit trail streamed as JSON lines (one
//! [`record_json`] per line) while it grows, for a SIEM to collect. The server tails the
//! trail in the database, so records made by the CLI and by every replica's admin API are
//! streamed too (each replica with the flag streams them all: set it on one, or dedupe by
//! `id`).
//!
//! A file is appended to (made `0600`) and resumed after its last line's `seq`, so a
//! restart neither repeats nor skips a record; `-` (standard output) starts with the
//! records written from then on.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::audit::record_json;
use crate::domain::audit::AuditRecord;
use crate::store::{Store, StoreError};

/// How often the trail is read for new records.
const POLL: Duration = Duration::from_secs(1);

/// Records read per poll, at most.
const BATCH: u32 = 500;

/// How long a gap in `seq` is waited on before it is taken as a transaction that rolled
/// back: on PostgreSQL a record can commit after one with a higher `seq`.
const GAP_WAIT: time::Duration = time::Duration::seconds(5);

/// Where the stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    /// Standard output.
    Stdout,
    /// This file, appended to.
    File(PathBuf),
}

impl AuditSink {
    /// `-` is standard output; anything else a file.
    pub fn parse(text: &str) -> Self {
        match text {
            "-" => AuditSink::Stdout,
            path => AuditSink::File(PathBuf::from(path)),
        }
    }

    fn open(&self) -> std::io::Result<Box<dyn Write + Send>> {
        match self {
            AuditSink::Stdout => Ok(Box::new(std::io::stdout())),
            AuditSink::File(path) => {
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file = options.open(path)?;
                // The mode above applies only to a file it creates.
                #[cfg(unix)]
                std::fs::set_permissions(
                    path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )?;
                Ok(Box::new(file))
            }
        }
    }

    /// The `seq` of the last record a file holds (its last line), if any.
    fn last_seq(&self) -> Option<i64> {
        let AuditSink::File(path) = self else {
            return None;
        };
        let text = std::fs::read(path).ok()?;
        let tail = &text[text.len().saturating_sub(64 * 1024)..];
        let line = tail.split(|b| *b == b'\n').rev().find(|l| !l.is_empty())?;
        let value: serde_json::Value = serde_json::from_slice(line).ok()?;
        value["seq"].as_i64()
    }
}

/// Checks the sink can be written before the server starts, so a wrong path fails `serve`
/// at once instead of in the background.
pub fn check(sink: &AuditSink) -> std::io::Result<()> {
    sink.open().map(drop)
}

/// A stream about to start: where to, and after which record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditStream {
    sink: AuditSink,
    cursor: i64,
}

impl AuditStream {
    /// Where the stream to `sink` starts: after the last record a file holds, else after
    /// the newest record now. Taken before the server serves, so every record written
    /// after start-up is streamed.
    pub async fn start(store: &dyn Store, sink: AuditSink) -> Result<Self, StoreError> {
        let cursor = match sink.last_seq() {
            Some(seq) => seq,
            None => latest_seq(store).await?,
        };
        Ok(Self { sink, cursor })
    }
}

/// Streams new records until `shutdown` changes.
pub async fn run(store: Arc<dyn Store>, stream: AuditStream, mut shutdown: watch::Receiver<bool>) {
    let AuditStream { sink, mut cursor } = stream;
    let mut out = match sink.open() {
        Ok(out) => out,
        Err(error) => {
            tracing::error!(%error, "cannot open the audit log; not streaming the audit trail");
            return;
        }
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let records = match store.audit_since(cursor, BATCH).await {
            Ok(records) => records,
            Err(error) => {
                tracing::debug!(%error, "cannot read the audit trail; retrying");
                continue;
            }
        };
        let ready = ready(&records, cursor, OffsetDateTime::now_utc());
        for record in ready {
            let line = record_json(record).to_string();
            if let Err(error) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                tracing::error!(%error, "cannot write the audit log");
                break;
            }
            cursor = record.seq;
        }
    }
}

/// The newest `seq` now (0 when the trail is empty).
async fn latest_seq(store: &dyn Store) -> Result<i64, StoreError> {
    let newest = store
        .list_audit(&crate::domain::audit::AuditFilter {
            limit: 1,
            ..Default::default()
        })
        .await?;
    Ok(newest.first().map_or(0, |r| r.seq))
}

/// The records that can be streamed now, in order: those following `cursor` without a
/// gap, and past a gap only once its first record is [`GAP_WAIT`] old.
fn ready(records: &[AuditRecord], mut cursor: i64, now: OffsetDateTime) -> &[AuditRecord] {
    let mut n = 0;
    for record in records {
        if record.seq != cursor + 1 && now - record.at < GAP_WAIT {
            break;
        }
        cursor = record.seq;
        n += 1;
    }
    &records[..n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::Outcome;

    fn record(seq: i64, at: OffsetDateTime) -> AuditRecord {
        AuditRecord {
            seq,
            id: format!("aud_{seq}"),
            at,
            actor: "cli:a@b".into(),
            via: "cli".into(),
            source: None,
            action: "app.create".into(),
            target: None,
            changes: None,
            request_id: None,
            outcome: Outcome::Ok,
            detail: None,
        }
    }

    #[test]
    fn a_gap_holds_the_stream_until_it_is_old() {
        let now = OffsetDateTime::now_utc();
        let records = [record(1, now), record(2, now), record(4, now)];
        assert_eq!(ready(&records, 0, now).len(), 2, "stops before the gap");
        let old = now - time::Duration::seconds(6);
        let records = [record(1, now), record(3, old), record(4, now)];
        assert_eq!(ready(&records, 0, now).len(), 3, "an old gap is a rollback");
        assert!(ready(&[record(7, now)], 5, now).is_empty());
    }
}
