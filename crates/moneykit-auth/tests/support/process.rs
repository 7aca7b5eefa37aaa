//! The real `serve` binary as a separate process, for tests that need signals, `kill -9`,
//! several replicas, the server's own log or its memory figures.

// Shared by several test binaries, each using part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `serve` process on a free loopback port, its stdout and stderr kept in a temporary
/// file. Killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    log: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Spawns `serve --listen 127.0.0.1:<free port> --database-url <url> <args>` with the
    /// master `secret` and log filter `rust_log`, without waiting for it to listen.
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_moneykit-auth"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url])
            .args(args)
            .env("MONEYKIT_AUTH_SECRET", secret)
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Waits until `path` answers 200, failing the test with the server's log after 20 s.
    pub async fn wait_for(&self, path: &str) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(self.url(path)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the server never answered {path} with 200:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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
