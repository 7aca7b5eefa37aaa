//! Printing command results as text for people or JSON for machines.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::clients::{App, Client};
use crate::domain::secrets::ClientSecret;

/// Where and how results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON instead of text.
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or `text()` as text.
    pub fn emit(&self, value: &impl Serialize, text: impl FnOnce() -> String) {
        if self.json {
            print_line(&serde_json::to_string_pretty(value).expect("serializable"));
        } else {
            print_line(&text());
        }
    }
}

/// Writes a line to stdout. A closed pipe (`… | head`) is not worth a panic: the reader
/// already has what it wanted.
pub fn print_line(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// RFC 3339, the one time format of the CLI and the API.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("valid RFC 3339 time")
}

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

/// A client as the CLI shows it (never with a secret).
pub fn client_json(client: &Client) -> Value {
    json!({
        "client_id": client.id,
        "app_id": client.app_id,
        "name": client.name,
        "scope": client.scopes.to_string(),
        "token_ttl": client.token_ttl_secs,
        "created_at": rfc3339(client.created_at),
        "disabled_at": client.disabled_at.map(rfc3339),
        "status": client_status(client, OffsetDateTime::now_utc()),
    })
}

/// A client with its new secret, shown once (`clients create`, `clients rotate-secret`).
pub fn client_with_secret(out: Output, verb: &str, client: &Client, secret: &ClientSecret) {
    let value = json!({
        "client_id": client.id,
        "client_secret": secret.expose(),
        "app_id": client.app_id,
        "name": client.name,
        "scope": client.scopes.to_string(),
        "token_ttl": client.token_ttl_secs,
    });
    out.emit(&value, || {
        format!(
            "{verb} client {id} (app {app})\n  client_id:     {id}\n  client_secret: {secret}\n  scope:         {scope}\n\nThe secret is shown only now: store it safely.",
            id = client.id,
            app = client.app_id,
            secret = secret.expose(),
            scope = client.scopes,
        )
    });
}

/// Renders rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}
