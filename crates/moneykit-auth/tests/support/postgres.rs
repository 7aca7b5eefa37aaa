//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory, a server
//! on a free loopback port, trust authentication, durability off (nothing here needs to
//! survive a crash of the machine). `initdb` and `postgres` refuse to run as root, so as
//! root they run as the `postgres` system user.
//!
//! PostgreSQL cannot be told to bind port 0 and report the port, so a free port is picked
//! first; if something else takes it before the server binds it, the server's "could not
//! bind" is recognised and the start is retried on another port.
//!
//! A watchdog process stops the server and removes its directory when the test process
//! exits, however it exits: a cluster held in a `static` is never dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

/// A running (or stopped) private cluster.
pub struct PgCluster {
    root: PathBuf,
    port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when we are root.
fn pg_command(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!(
            "{what}: cannot run ({e}); are the PostgreSQL server binaries (initdb, pg_ctl) on PATH?"
        )
    });
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// How many ports [`PgCluster::start`] tries before it gives up.
const PORT_ATTEMPTS: u32 = 5;

/// Why `pg_ctl start` failed, with what it and the server said.
enum StartFailure {
    /// Another process bound the port first.
    PortTaken(String),
    Other(String),
}

/// A port nothing listens on right now. It may be taken again before the server binds
/// it: [`PgCluster::start`] retries on another one if so.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    /// Creates and starts a cluster; panics with the server's output if it cannot.
    pub fn start() -> Self {
        let root = tempfile::Builder::new()
            .prefix("moneykit-pg.")
            .tempdir()
            .unwrap()
            .keep();
        // The postgres user must be able to create its data directory in here.
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let mut cluster = Self {
            root,
            port: free_port(),
        };
        let mut initdb = pg_command("initdb");
        initdb.arg("-D").arg(cluster.data()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        let mut attempt = 1;
        loop {
            match cluster.try_start_server() {
                Ok(()) => break,
                Err(StartFailure::PortTaken(log)) if attempt < PORT_ATTEMPTS => {
                    eprintln!(
                        "port {} was taken before PostgreSQL bound it; trying another:\n{log}",
                        cluster.port
                    );
                    cluster.port = free_port();
                    attempt += 1;
                }
                Err(StartFailure::PortTaken(log) | StartFailure::Other(log)) => {
                    panic!("pg_ctl start failed: {log}")
                }
            }
        }
        cluster.watch_this_process();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Starts the server (again, after [`PgCluster::stop`], on the same port: the
    /// replicas' database URLs name it) and waits until it accepts connections.
    pub fn start_server(&self) {
        if let Err(StartFailure::PortTaken(log) | StartFailure::Other(log)) =
            self.try_start_server()
        {
            panic!("pg_ctl start failed: {log}");
        }
    }

    /// `pg_ctl start`, telling a port somebody else bound first from other failures.
    fn try_start_server(&self) -> Result<(), StartFailure> {
        let server_log = self.root.join("server.log");
        let log_before = std::fs::metadata(&server_log).map_or(0, |m| m.len());
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=500 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.root.display()
        );
        let mut start = pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&server_log)
            .args(["-o", &options, "-w", "-t", "30", "start"]);
        let output = start.stdin(Stdio::null()).output().unwrap_or_else(|e| {
            panic!(
                "pg_ctl start: cannot run ({e}); are the PostgreSQL server binaries (initdb, pg_ctl) on PATH?"
            )
        });
        if output.status.success() {
            return Ok(());
        }
        // What the server logged during this start only.
        let log = std::fs::read(&server_log)
            .map(|bytes| {
                let from = usize::try_from(log_before).unwrap_or(0).min(bytes.len());
                String::from_utf8_lossy(&bytes[from..]).into_owned()
            })
            .unwrap_or_default();
        let message = format!(
            "{}{}{log}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if log.contains("could not bind") || log.contains("Address already in use") {
            Err(StartFailure::PortTaken(message))
        } else {
            Err(StartFailure::Other(message))
        }
    }

    /// Serves TLS with this certificate chain and key (PEM) from now on: writes them into
    /// the data directory (owned by the server's user, key 0600, as PostgreSQL demands),
    /// turns `ssl` on and restarts the server.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) {
        use std::os::unix::fs::PermissionsExt;
        for (name, text) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = self.data().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if is_root() {
                let mut chown = Command::new("chown");
                chown.arg("postgres:postgres").arg(&path);
                run(chown, "chown");
            }
        }
        let conf = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap();
        self.stop();
        self.start_server();
    }

    /// Stops the server the way an outage would: connections drop at once.
    pub fn stop(&self) {
        let mut stop = pg_command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"]);
        run(stop, "pg_ctl stop");
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server and removes the directory once this process is gone.
    fn watch_this_process(&self) {
        let stop = if is_root() {
            "runuser -u postgres -- pg_ctl"
        } else {
            "pg_ctl"
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{root}'",
            pid = std::process::id(),
            data = self.data().display(),
            root = self.root.display(),
        );
        // Deliberately never waited for: it must outlive this process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the watchdog starts");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let mut stop = pg_command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = stop.status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Creates an empty database through `admin_url` (a database URL whose user may create
/// databases) and returns the new database's URL.
pub async fn create_database(admin_url: &str) -> String {
    let name = format!("mk_{}", hex::encode(rand_bytes()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match sqlx::PgConnection::connect(admin_url).await {
            Ok(conn) => break conn,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {admin_url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let (server, _db) = base.rsplit_once('/').expect("a database URL has a path");
    format!("{server}/{name}{query}")
}

fn rand_bytes() -> [u8; 8] {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 8];
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    bytes.copy_from_slice(&hasher.finish().to_le_bytes());
    bytes
}
