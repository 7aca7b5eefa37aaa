//! The real `serve` binary as a separate process, for tests that need signals, `kill -9`,
//! several replicas, the server's own log or its memory figures.
//!
//! The server binds port 0 itself and the test reads the port back from its "listening"
//! log line: a port picked by the test and released before the server binds it could be
//! taken by anything else in between.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take from spawn to its "listening" line (migrations included).
const STARTUP_LIMIT: Duration = Duration::from_secs(20);

/// The log directive that keeps the start-up lines (with the bound addresses) in the log
/// whatever filter the caller asked for.
const STARTUP_DIRECTIVE: &str = "moneykit_auth::startup=info";

/// A `serve` process on a loopback port it bound itself, its stdout and stderr kept in a
/// temporary file. Killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    /// `http://<address the server bound>`.
    pub base: String,
    /// `http://<admin address>`, when started with `--admin-listen`.
    admin_base: Option<String>,
    log: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Spawns `serve --listen 127.0.0.1:0 --database-url <url> <args>` with the master
    /// `secret` and log filter `rust_log`, and waits (at most 20 s) until it has bound its
    /// listeners and logged their addresses; it may still be building its first snapshot
    /// of the database, so wait for a health path before relying on it.
    pub fn spawn(database_url: &str, args: &[&str], secret: &str, rust_log: &str) -> Self {
        Self::spawn_with_env(database_url, args, &[], secret, rust_log)
    }

    /// [`Self::spawn`] with extra environment variables.
    pub fn spawn_with_env(
        database_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
        secret: &str,
        rust_log: &str,
    ) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_moneykit-auth"));
        command.arg("serve");
        if !args
            .iter()
            .any(|a| *a == "--listen" || a.starts_with("--listen="))
        {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(["--database-url", database_url])
            .args(args)
            .env("MONEYKIT_AUTH_SECRET", secret)
            .env("RUST_LOG", with_startup_lines(rust_log));
        for (name, value) in env {
            if *name == "RUST_LOG" {
                command.env(name, with_startup_lines(value));
            } else {
                command.env(name, value);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        // Built before waiting, so that a failed wait kills the process on the way out.
        let mut server = Self {
            child,
            base: String::new(),
            admin_base: None,
            log,
        };
        let (public, admin) = without_stalling(|| server.bound_addresses());
        server.base = format!("http://{public}");
        server.admin_base = admin.map(|a| format!("http://{a}"));
        server
    }

    /// Waits until the log names the public address (and the admin one, which is logged
    /// first, when enabled), failing the test with the log if the process exits first or
    /// takes longer than [`STARTUP_LIMIT`].
    fn bound_addresses(&mut self) -> (SocketAddr, Option<SocketAddr>) {
        let started = Instant::now();
        loop {
            let log = self.log();
            if let Some(found) = parse_addresses(&log) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}) before listening:\n{log}");
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "the server did not log its address within {STARTUP_LIMIT:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `path` answers 200, failing the test with the server's log after 20 s.
    pub async fn wait_for(&self, path: &str) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(self.url(path)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "the server never answered {path} with 200:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `http://<admin address>`, when the server was started with `--admin-listen`.
    pub fn admin_base(&self) -> Option<&str> {
        self.admin_base.as_deref()
    }

    /// `path` on the admin listener; panics if there is none.
    pub fn admin_url(&self, path: &str) -> String {
        let base = self
            .admin_base
            .as_deref()
            .expect("the server was started with --admin-listen");
        format!("{base}{path}")
    }

    /// What the server has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The server's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGKILL, and wait.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `rust_log` plus the directive that keeps the start-up lines.
fn with_startup_lines(rust_log: &str) -> String {
    if rust_log.trim().is_empty() {
        STARTUP_DIRECTIVE.to_owned()
    } else {
        format!("{rust_log},{STARTUP_DIRECTIVE}")
    }
}

/// Runs the blocking `f` without stalling other tasks when called from a multi-threaded
/// Tokio runtime (the worker hands its tasks over while `f` runs); elsewhere it just runs
/// `f`.
fn without_stalling<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The public and admin addresses from a server log, once the public "listening" line is
/// there. Understands the text format (`address=127.0.0.1:8080`) and the JSON one
/// (`"address":"127.0.0.1:8080"`), and lines ending with ` version=… instance=…`.
fn parse_addresses(log: &str) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let mut admin = None;
    for line in log.lines() {
        if !line.contains("listening") {
            continue;
        }
        let Some(address) = address_field(line) else {
            continue;
        };
        if line.contains("admin API listening") {
            admin = Some(address);
        } else {
            return Some((address, admin));
        }
    }
    None
}

fn address_field(line: &str) -> Option<SocketAddr> {
    let value = if let Some((_, rest)) = line.split_once("\"address\":\"") {
        rest.split('"').next()?
    } else {
        let (_, rest) = line.split_once("address=")?;
        rest.split_whitespace().next()?
    };
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_text_and_json_lines() {
        let text = "2025-01-01T00:00:00.000000Z  INFO created the first signing key kid=k1\n\
            2025-01-01T00:00:00.000000Z  INFO admin API listening address=127.0.0.1:4001 version=0.1.0 instance=a1\n\
            2025-01-01T00:00:00.000000Z  INFO listening address=127.0.0.1:4000 issuer=http://x version=0.1.0 instance=a1\n";
        assert_eq!(
            parse_addresses(text),
            Some((
                "127.0.0.1:4000".parse().unwrap(),
                Some("127.0.0.1:4001".parse().unwrap())
            ))
        );
        let json = r#"{"level":"INFO","message":"listening","address":"[::1]:4000","issuer":"x"}"#;
        assert_eq!(
            parse_addresses(json),
            Some(("[::1]:4000".parse().unwrap(), None))
        );
        assert_eq!(
            parse_addresses(&text[..text.rfind("INFO listening").unwrap()]),
            None
        );
    }
}
