//! `moneykit-auth webhooks send|list|retry`: the outbox from the command line.

use clap::Subcommand;
use serde_json::Value;

use super::output::{Output, table};
use crate::domain::events::{EventStatus, WebhookEvent};
use crate::operations::views::event_json;
use crate::operations::{self, Actor, AdminError};

#[derive(Debug, Subcommand)]
pub(super) enum WebhooksCommand {
    /// Queue an event of your own for an app's webhook URL.
    Send {
        /// The app.
        #[arg(long)]
        app: String,
        /// The payload's `webhook_event`, e.g. `invoice.paid`.
        #[arg(long)]
        event: String,
        /// A JSON object whose members are added to the payload.
        #[arg(long, default_value = "{}")]
        data: String,
        /// How long failed deliveries are retried.
        #[arg(long, default_value = "24h", value_parser = super::parse_duration)]
        retry_window: std::time::Duration,
    },
    /// List events, newest first.
    List {
        /// Only this app's events.
        #[arg(long)]
        app: Option<String>,
        /// Only events in this status: pending, delivered or failed.
        #[arg(long, value_parser = parse_status)]
        status: Option<EventStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Deliver a delivered or failed event again, with a fresh retry window.
    Retry {
        /// The event (`evt_…`).
        event_id: String,
        /// How long failed deliveries are retried.
        #[arg(long, default_value = "24h", value_parser = super::parse_duration)]
        retry_window: std::time::Duration,
    },
}

fn parse_status(text: &str) -> Result<EventStatus, String> {
    EventStatus::parse(text).ok_or_else(|| "expected pending, delivered or failed".into())
}

fn event_line(verb: &str, e: &WebhookEvent) -> String {
    format!(
        "{verb} event {} ({}) for app {}: {}",
        e.id, e.event, e.app_id, e.status
    )
}

pub(super) async fn run(
    cmd: WebhooksCommand,
    db: &super::Database,
    out: Output,
) -> anyhow::Result<()> {
    let store = db.open().await?;
    match cmd {
        WebhooksCommand::Send {
            app,
            event,
            data,
            retry_window,
        } => {
            let data: Value = serde_json::from_str(&data)
                .map_err(|e| AdminError::Invalid(format!("--data is not JSON: {e}")))?;
            let queued = operations::send_webhook_event(
                store.as_ref(),
                &app,
                &event,
                &data,
                retry_window,
                &Actor::cli(),
            )
            .await?;
            out.emit(&event_json(&queued), || event_line("Queued", &queued));
        }
        WebhooksCommand::List { app, status, limit } => {
            let events = store
                .list_webhook_events(app.as_deref(), status, limit)
                .await?;
            let json: Vec<Value> = events.iter().map(event_json).collect();
            out.emit(&json, || {
                let rows: Vec<Vec<String>> = events
                    .iter()
                    .map(|e| {
                        let last = match (e.last_status, &e.last_error) {
                            (Some(s), _) => format!("HTTP {s}"),
                            (None, Some(err)) => err.clone(),
                            (None, None) => "-".into(),
                        };
                        vec![
                            e.id.clone(),
                            e.app_id.clone(),
                            e.event.clone(),
                            e.status.to_string(),
                            e.attempts.to_string(),
                            last,
                        ]
                    })
                    .collect();
                table(
                    &["EVENT_ID", "APP_ID", "EVENT", "STATUS", "ATTEMPTS", "LAST"],
                    &rows,
                )
            });
        }
        WebhooksCommand::Retry {
            event_id,
            retry_window,
        } => {
            let event = operations::retry_webhook_event(
                store.as_ref(),
                &event_id,
                retry_window,
                &Actor::cli(),
            )
            .await?;
            out.emit(&event_json(&event), || event_line("Requeued", &event));
        }
    }
    Ok(())
}
