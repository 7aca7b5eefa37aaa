//! Logging. Lines go to stderr, as text or JSON, filtered by `RUST_LOG` (default `info`,
//! with sqlx at `warn`).
//! Nothing logs secrets or tokens: handlers log client ids, never credentials, and the
//! types that hold secrets redact themselves in `Debug`.
//!
//! Every line ends with the build's `version` and this process's `instance` id, so lines
//! collected from several replicas (or from before and after an upgrade) can be told apart
//! without the log shipper adding anything.

use std::cell::RefCell;
use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::registry::LookupSpan;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// This build's version, as every log line carries it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest `--instance-id` accepted.
const MAX_INSTANCE_ID_LEN: usize = 64;

static INSTANCE_ID: OnceLock<String> = OnceLock::new();

/// This process's instance id: `--instance-id`, or 12 random hex characters. Fixed for
/// the life of the process, so metrics can carry the same value as the log lines.
pub fn instance_id() -> &'static str {
    INSTANCE_ID.get_or_init(|| hex::encode(crate::crypto::random_bytes::<6>()))
}

/// Checks an `--instance-id`: 1-64 letters, digits, `.`, `_`, `-` or `:` (a host, pod or
/// task name fits), so it needs no quoting or escaping in either log format.
pub fn parse_instance_id(text: &str) -> Result<String, String> {
    let ok = (1..=MAX_INSTANCE_ID_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "expected 1-{MAX_INSTANCE_ID_LEN} letters, digits, '.', '_', '-' or ':'"
        ))
    }
}

/// Installs the global subscriber. Call once, from `main`, with the `--instance-id` (a
/// random one when `None`).
pub fn init(format: LogFormat, instance: Option<String>) {
    if let Some(id) = instance {
        let _ = INSTANCE_ID.set(id);
    }
    let instance = instance_id();
    // sqlx narrates its pool at info ("ping on idle connection returned error" for each
    // connection a restarted database dropped); the server logs the outage itself, once.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let inner = format::format()
                .with_target(false)
                .with_ansi(std::io::stderr().is_terminal());
            builder.event_format(Stamped::text(inner, instance)).init();
        }
        LogFormat::Json => {
            let inner = format::format()
                .json()
                .flatten_event(true)
                .with_target(false);
            builder
                .fmt_fields(JsonFields::new())
                .event_format(Stamped::json(inner, instance))
                .init();
        }
    }
}

/// An event formatter that appends `version` and `instance` to what `inner` writes: as
/// ` version=… instance=…` at the end of a text line, as two more members of a JSON
/// object (so each line stays one valid object). The suffix is built once; a line costs
/// one extra copy through a per-thread buffer.
struct Stamped<F> {
    inner: F,
    /// What replaces the line's end: the text suffix and newline, or the two JSON
    /// members, the closing brace and newline.
    tail: String,
    /// Whether `inner` writes JSON objects.
    json: bool,
}

impl<F> Stamped<F> {
    fn text(inner: F, instance: &str) -> Self {
        Self {
            inner,
            tail: format!(" version={VERSION} instance={instance}\n"),
            json: false,
        }
    }

    // Neither value needs JSON escaping: the version is a semver string and the instance
    // id is checked by `parse_instance_id` (or is hex).
    fn json(inner: F, instance: &str) -> Self {
        Self {
            inner,
            tail: format!(",\"version\":\"{VERSION}\",\"instance\":\"{instance}\"}}\n"),
            json: true,
        }
    }

    /// `line` (as `inner` wrote it) with the tail in place of its end.
    fn finish(&self, line: &str, out: &mut Writer<'_>) -> fmt::Result {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let body = if self.json {
            match line.strip_suffix('}') {
                // `{}` would become `{,…}`: not something the JSON formatter writes, but
                // never produce invalid JSON.
                Some(body) if body.len() > 1 => body,
                _ => return out.write_str(line).and_then(|()| out.write_char('\n')),
            }
        } else {
            line
        };
        out.write_str(body)?;
        out.write_str(&self.tail)
    }
}

thread_local! {
    /// Where `inner` writes a line before the tail is put on it.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N, F> FormatEvent<S, N> for Stamped<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                self.inner
                    .format_event(ctx, Writer::new(&mut *line), event)?;
                self.finish(&line, &mut writer)
            }
            // Formatting this event logged another one on this thread: rare enough to
            // pay for a buffer of its own.
            Err(_) => {
                let mut line = String::new();
                self.inner
                    .format_event(ctx, Writer::new(&mut line), event)?;
                self.finish(&line, &mut writer)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// A writer that keeps what was logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_some(dispatch: impl Into<tracing::Dispatch>) {
        tracing::dispatcher::with_default(&dispatch.into(), || {
            let span = tracing::info_span!("outer", request_id = "r-1");
            let _entered = span.enter();
            tracing::info!(client_id = "c1", count = 3, "one");
            tracing::warn!("two");
        });
    }

    #[test]
    fn text_lines_end_with_version_and_instance() {
        let out = Captured::default();
        let inner = format::format().with_target(false).with_ansi(false);
        log_some(
            tracing_subscriber::fmt()
                .with_writer(out.clone())
                .event_format(Stamped::text(inner, "inst-1"))
                .finish(),
        );
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            assert!(
                line.ends_with(&format!(" version={VERSION} instance=inst-1")),
                "{line}"
            );
        }
        assert!(lines[0].contains("one client_id=\"c1\" count=3"), "{text}");
    }

    #[test]
    fn json_lines_stay_one_object_with_version_and_instance() {
        let out = Captured::default();
        let inner = format::format()
            .json()
            .flatten_event(true)
            .with_target(false);
        log_some(
            tracing_subscriber::fmt()
                .with_writer(out.clone())
                .fmt_fields(JsonFields::new())
                .event_format(Stamped::json(inner, "inst-1"))
                .finish(),
        );
        let text = out.text();
        assert_eq!(text.lines().count(), 2, "{text}");
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect(line);
            assert_eq!(value["version"], VERSION, "{line}");
            assert_eq!(value["instance"], "inst-1", "{line}");
        }
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["client_id"], "c1");
        assert_eq!(first["count"], 3);
        assert_eq!(first["span"]["request_id"], "r-1");
    }

    #[test]
    fn instance_ids_are_plain_names() {
        for good in [
            "a",
            "auth-7d9f-x2",
            "ip-10-0-0-1.ec2.internal",
            "host:1",
            "a_b",
        ] {
            assert_eq!(parse_instance_id(good).as_deref(), Ok(good));
        }
        for bad in ["", "a b", "a\"b", "a\\b", "é", &"x".repeat(65)] {
            assert!(parse_instance_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_instance_id_is_twelve_hex_characters() {
        // Nothing in the unit tests calls `init`, so this is the random default.
        let id = instance_id();
        assert_eq!(id, instance_id(), "fixed for the process");
        assert_eq!(id.len(), 12, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
}
