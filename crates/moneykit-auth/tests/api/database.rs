//! The database as an operator meets it: nothing is created without being named,
//! migrations are an explicit step, a schema from another release is refused in one
//! line, and `backup` writes a consistent, owner-only copy.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The binary with `args`, in `dir`, with no database named anywhere.
fn unnamed(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moneykit-auth"))
        .args(args)
        .current_dir(dir)
        .env_remove("MONEYKIT_AUTH_DATABASE_URL")
        .env_remove("RUST_LOG")
        .env("MONEYKIT_AUTH_SECRET", TEST_SECRET)
        .output()
        .unwrap()
}

/// A failed command whose only `error:` line mentions every one of `needles`.
fn assert_refused(output: &Output, needles: &[&str]) {
    assert!(!output.status.success(), "expected failure: {output:?}");
    let err = stderr(output);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    for needle in needles {
        assert!(errors[0].contains(needle), "{needle:?} missing from {err}");
    }
}

#[test]
fn without_a_database_url_the_cli_creates_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["apps", "create", "--name", "Forgot the URL"][..],
        &["keys", "rotate"],
        &["clients", "disable", "live_x"],
        &["apps", "list"],
        &["migrate"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let output = unnamed(dir.path(), args);
        assert_refused(
            &output,
            &[
                "no database",
                "MONEYKIT_AUTH_DATABASE_URL",
                "nothing was created",
            ],
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?} created a file"
        );
    }
    // Named, a new database is created by the command that starts something, and every
    // command says which database it acted on.
    let created = unnamed(
        dir.path(),
        &[
            "apps",
            "create",
            "--name",
            "Named",
            "--database-url",
            "sqlite://moneykit-auth.db",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let file = dir.path().join("moneykit-auth.db");
    assert_eq!(
        stderr(&created).trim().lines().last().unwrap(),
        format!("database: sqlite {}", file.display())
    );
    // Found by default once it exists.
    let listed = unnamed(dir.path(), &["apps", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("Named"));
    assert!(stderr(&listed).contains(&file.display().to_string()));
}

#[test]
fn init_creates_a_named_database_once_and_reports_on_the_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("init.db").display());
    let first = cli(&url, &["init", "--json"]);
    let first = cli_json(&first);
    assert!(first["created_signing_key"].is_string(), "{first}");
    let again = cli_json(&cli(&url, &["init", "--json"]));
    assert_eq!(again["created_signing_key"], serde_json::Value::Null);
    assert_eq!(again["schema_version"], first["schema_version"]);
    let keys = cli_json(&cli(&url, &["keys", "list", "--json"]));
    assert_eq!(keys.as_array().unwrap().len(), 1, "one key, not two");
}

/// A SQLite database at `url` with all but the newest of this build's migrations, as an
/// older release left it; returns the newest migration's file name.
async fn database_one_release_behind(url: &str) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut files: Vec<_> = std::fs::read_dir(&source)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let newest = files.pop().unwrap();
    let older = tempfile::tempdir().unwrap();
    for f in &files {
        std::fs::copy(source.join(f), older.path().join(f)).unwrap();
    }
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
        .await
        .unwrap();
    let migrator = sqlx::migrate::Migrator::new(older.path()).await.unwrap();
    migrator.run(&pool).await.unwrap();
    pool.close().await;
    newest
}

/// Runs `serve` on `url` expecting it to refuse at start; returns its output.
fn serve_refuses(url: &str, args: &[&str]) -> Output {
    let mut child = cli_command(url, &[&["serve", "--listen", "127.0.0.1:0"], args].concat())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("serve kept running: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn migrations_are_an_explicit_step_and_other_releases_schemas_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let newest = database_one_release_behind(&url).await;
    let version: i64 = newest.split('_').next().unwrap().parse().unwrap();

    // What is pending, without applying it.
    let dry = cli(&url, &["migrate", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains(&format!("pending {version} ")), "{text}");
    let dry = cli_json(&cli(&url, &["migrate", "--dry-run", "--json"]));
    assert_eq!(dry["pending"][0]["version"], version);
    assert_eq!(dry["schema_version"], version - 1);

    // Neither the server nor an admin command migrates behind the operator's back.
    assert_refused(
        &serve_refuses(&url, &[]),
        &[
            "moneykit-auth migrate",
            "--migrate",
            &format!("needs {version}"),
        ],
    );
    assert_refused(&cli(&url, &["apps", "list"]), &["moneykit-auth migrate"]);
    let still = cli_json(&cli(&url, &["migrate", "--dry-run", "--json"]));
    assert_eq!(still["schema_version"], version - 1, "nothing was applied");

    // `migrate` applies it; then everything works.
    let applied = cli_json(&cli(&url, &["migrate", "--json"]));
    assert_eq!(applied["applied"], serde_json::json!([version]));
    let up = cli(&url, &["migrate", "--dry-run"]);
    assert!(String::from_utf8_lossy(&up.stdout).contains("Up to date"));
    assert!(cli(&url, &["apps", "list"]).status.success());

    // A schema a newer release migrated: refused by everything, in one line.
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let newer = ["schema version 9999", "newer than this moneykit-auth"];
    assert_refused(&serve_refuses(&url, &["--migrate"]), &newer);
    assert_refused(&cli(&url, &["apps", "list"]), &newer);
    assert_refused(&cli(&url, &["migrate"]), &newer);
}

#[tokio::test]
async fn serve_with_migrate_upgrades_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("upgrade.db").display());
    database_one_release_behind(&url).await;
    let server = ServerProcess::start(&url, &["--migrate"]).await;
    server.wait_for("/healthz/ready").await;
    let up = cli_json(&cli(&url, &["migrate", "--dry-run", "--json"]));
    assert_eq!(up["pending"], serde_json::json!([]));
}

#[tokio::test]
async fn backup_writes_a_consistent_owner_only_copy_while_the_server_runs() {
    let app = spawn_app().await;
    let app_id = cli_app(&app.database_url, "Backed up");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let copy_arg = copy.display().to_string();
    let output = cli(&app.database_url, &["backup", &copy_arg]);
    if on_postgres() {
        assert_refused(&output, &["pg_dump"]);
        assert!(!copy.exists());
        return;
    }
    assert!(output.status.success(), "{}", stderr(&output));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&copy).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "the copy holds secret hashes and sealed keys"
    );
    let copy_url = format!("sqlite://{copy_arg}");
    let apps = cli_json(&cli(&copy_url, &["apps", "list", "--json"]));
    assert_eq!(apps[0]["app_id"], app_id.as_str());
    assert!(cli(&copy_url, &["keys", "list"]).status.success());
    // Never over an existing file.
    assert_refused(
        &cli(&app.database_url, &["backup", &copy_arg]),
        &["copy.db"],
    );
}
