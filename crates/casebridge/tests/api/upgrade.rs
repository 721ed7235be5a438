//! Backups, restores and upgrades: a backup taken under load restores into
//! a fresh directory with every conversation, link and pending job; a
//! restore without the key says so and writes nothing; a database from a
//! newer casebridge is refused at start; and a database made by an earlier
//! release (a committed fixture) migrates and runs.

use std::path::{Path, PathBuf};

use casebridge::backup::{backup, key_file_of, restore};
use casebridge::config::SecretKeySource;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_database_from_a_newer_casebridge_is_refused,
    the_upgrade_fixture_migrates_and_runs,
);

/// Sends `each` messages to each of `n` conversations `{prefix}-0` …, and
/// waits until they are synced; returns each conversation's view.
async fn sync_conversations(
    app: &TestApp,
    key: &str,
    prefix: &str,
    n: usize,
    each: usize,
) -> Vec<Value> {
    let events: Vec<Value> = (0..n * each)
        .map(|i| {
            message(
                &format!("{prefix}-e{i}"),
                &format!("{prefix}-{}", i % n),
                &format!("{prefix} {i}"),
            )
        })
        .collect();
    app.send(key, Value::Array(events)).await;
    let mut synced = Vec::new();
    for c in 0..n {
        synced.push(app.settled(key, &format!("{prefix}-{c}")).await);
    }
    synced
}

/// After a restore: the conversations `{prefix}-0` … are as `before`
/// (case, contact, message counts), and the connection's webhook URL shows
/// (the key opened the sealed token).
async fn assert_restored(app: &TestApp, key: &str, prefix: &str, before: &[Value]) {
    for (c, was) in before.iter().enumerate() {
        let id = format!("{prefix}-{c}");
        let (status, now) = app.get(&format!("/v1/conversations/{id}"), key).await;
        assert_eq!(status, StatusCode::OK, "{now}");
        for field in ["case", "contact_id", "messages"] {
            assert_eq!(now[field], was[field], "{id} {field}");
        }
    }
    let (status, connection) = app.get("/v1/creatio/connection", key).await;
    assert_eq!(status, StatusCode::OK, "{connection}");
    assert!(
        connection.to_string().contains("/webhooks/creatio/"),
        "{connection}"
    );
}

fn message(event: &str, conv: &str, text: &str) -> Value {
    json!({
        "id": event, "type": "message.created",
        "conversation": {"id": conv, "channel": "web",
                         "contact": {"name": format!("Customer {conv}"), "email": format!("{conv}@backup.example")}},
        "message": {"id": event, "role": "customer", "text": text}
    })
}

#[tokio::test]
async fn a_backup_under_load_restores_everything_with_its_key() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("casebridge.key");
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.secret_key = SecretKeySource::File(key_file.clone());
    })
    .await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let synced = sync_conversations(&app, &org.key, "synced", 5, 4).await;
    // Creatio goes away: what comes now waits in the queue.
    app.creatio_outage(4).await;
    app.send(&org.key, json!([message("p0", "pending-0", "waiting 0")]))
        .await;
    // Ingest goes on while the backup is taken.
    let load = {
        let (api, key) = (app.api.clone(), org.key.clone());
        tokio::spawn(async move {
            for i in 1..40 {
                let events = json!([message(
                    &format!("p{i}"),
                    &format!("pending-{}", i % 4),
                    "waiting"
                )]);
                let r = api.send_events(&key, &events).await.unwrap();
                assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("casebridge-backup.db");
    let report = backup(app.config(), &file).await.expect("backup");
    load.await.unwrap();
    assert!(report.bytes > 0, "{report:?}");
    assert_eq!(
        report.key_file.as_deref(),
        Some(key_file_of(&file).as_path())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&file, &key_file_of(&file)] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }
    // A backup is never overwritten.
    let again = backup(app.config(), &file).await.unwrap_err();
    assert!(again.to_string().contains("never overwrites"), "{again:#}");

    // What the backup holds, read from the file itself.
    let (in_backup, open_in_backup) = {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display()))
                .await
                .unwrap();
        let n = |sql: &'static str| sql;
        let conversations: i64 = sqlx::query(n("SELECT COUNT(*) FROM conversations"))
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
        let open: i64 = sqlx::query(n(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')",
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
        (conversations, open)
    };
    assert!(
        in_backup >= 6,
        "synced and pending conversations: {in_backup}"
    );
    assert!(open_in_backup >= 1, "the backup holds the pending jobs");

    // Without its key, restore refuses and writes nothing.
    let fresh = tempfile::tempdir().unwrap();
    let target = fresh.path().join("casebridge.db");
    let mut config = app.config().clone();
    config.database_url = format!("sqlite://{}", target.display());
    config.secret_key = SecretKeySource::File(fresh.path().join("casebridge.key"));
    let hidden = dir.path().join("elsewhere.key");
    std::fs::rename(key_file_of(&file), &hidden).unwrap();
    let e = restore(&config, &file).await.unwrap_err().to_string();
    assert!(
        e.contains("key is missing") && e.contains("Nothing was restored"),
        "{e}"
    );
    assert!(!target.exists());
    // With another key: refused the same way.
    let mut wrong = config.clone();
    wrong.secret_key = SecretKeySource::Inline(SecretString::from(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string(),
    ));
    let e = restore(&wrong, &file).await.unwrap_err().to_string();
    assert!(e.contains("does not open"), "{e}");
    assert!(!target.exists());

    // With it: everything is there, and the pending jobs run.
    std::fs::rename(&hidden, key_file_of(&file)).unwrap();
    let restored = restore(&config, &file).await.expect("restore");
    assert_eq!(restored.conversations, in_backup, "{restored:?}");
    assert_eq!(restored.open_jobs, open_in_backup, "{restored:?}");
    assert!(fresh.path().join("casebridge.key").exists());
    // Restoring over it is refused.
    let e = restore(&config, &file).await.unwrap_err().to_string();
    assert!(e.contains("restore writes only a new database"), "{e}");

    let before = app.database_url().to_string();
    let app = app.restart_with(|c| *c = config.clone()).await;
    assert_ne!(app.database_url(), before);
    // The webhook URL shows: the restored key opens the sealed token.
    assert_restored(&app, &org.key, "synced", &synced).await;
    let settled = app.settled(&org.key, "pending-0").await;
    assert_eq!(
        settled["messages"]["written"], settled["messages"]["received"],
        "{settled}"
    );
    assert_eq!(settled["case"]["created"], true, "{settled}");
    app.finish().await;
}

#[tokio::test]
async fn backup_and_restore_point_postgresql_to_its_own_tools() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.db");
    let e = backup(app.config(), &file).await.unwrap_err().to_string();
    assert!(e.contains("pg_dump") && e.contains("SECRET_KEY"), "{e}");
    let e = restore(app.config(), &file).await.unwrap_err().to_string();
    assert!(e.contains("pg_restore"), "{e}");
    assert!(!file.exists());
    app.finish().await;
}

async fn a_database_from_a_newer_casebridge_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(99_999i64)
    .bind("from a newer casebridge")
    .bind(true)
    .bind(vec![0u8; 4])
    .bind(0i64)
    .execute(app.db.pool())
    .await
    .unwrap();
    let e = casebridge::storage::Db::connect(app.database_url())
        .await
        .unwrap_err()
        .to_string();
    let known = casebridge::storage::known_schema_version();
    assert!(
        e.contains("newer casebridge")
            && e.contains("99999")
            && e.contains(&format!("up to {known}"))
            && e.contains("backup"),
        "{e}"
    );
    app.finish().await;
}

/// The fixture's files: `<name>.db` and `<name>.json`.
fn fixture(name: &str) -> (PathBuf, Value) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upgrade");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(base.join(format!("{name}.json"))).unwrap())
            .unwrap();
    (base.join(format!("{name}.db")), meta)
}

/// Copies every row of the fixture's SQLite tables into `pg` (a database
/// migrated to the fixture's version): the same old data on PostgreSQL.
async fn copy_rows_to_postgres(from: &Path, pg: &sqlx::AnyPool) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", from.display()))
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' \
         AND name NOT LIKE 'sqlite%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("name"))
    .collect();
    // Parents first (foreign keys).
    let order = ["instance_settings", "orgs"];
    let mut tables: Vec<String> = tables;
    tables.sort_by_key(|t| order.iter().position(|o| o == t).unwrap_or(order.len()));
    for table in tables {
        let columns: Vec<(String, String)> = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("name"), r.get("type")))
            .collect();
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for row in rows {
            let params: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                params.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (i, (_, kind)) in columns.iter().enumerate() {
                q = if kind == "BIGINT" {
                    q.bind(row.get::<Option<i64>, _>(i))
                } else {
                    q.bind(row.get::<Option<String>, _>(i))
                };
            }
            q.execute(pg).await.unwrap();
        }
    }
}

async fn the_upgrade_fixture_migrates_and_runs(backend: Backend) {
    let (db_file, meta) = fixture("v4");
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("casebridge.db");
    std::fs::copy(&db_file, &copy).unwrap();
    let key = meta["secret_key"].as_str().unwrap().to_string();
    let operator = meta["operator_token"].as_str().unwrap().to_string();
    // SQLite: the fixture's copy. PostgreSQL: a database holding the old
    // schema and the fixture's rows before the service first opens it.
    let (database_url, postgres_db) = match backend {
        Backend::Sqlite => (format!("sqlite://{}", copy.display()), None),
        Backend::Postgres => {
            let (url, name) = crate::helpers::create_postgres_database().await;
            let old = tempfile::tempdir().unwrap();
            let version = meta["schema_version"].as_i64().unwrap();
            let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
            for entry in std::fs::read_dir(migrations).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name[..4].parse::<i64>().unwrap() <= version {
                    std::fs::copy(&path, old.path().join(&name)).unwrap();
                }
            }
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&url).await.unwrap();
            sqlx::migrate::Migrator::new(old.path())
                .await
                .unwrap()
                .run(&pool)
                .await
                .unwrap();
            copy_rows_to_postgres(&copy, &pool).await;
            pool.close().await;
            (url, Some(name))
        }
    };
    let app = TestApp::spawn_with(backend, |c| {
        c.secret_key = SecretKeySource::Inline(SecretString::from(key.clone()));
        c.admin_token = Some(SecretString::from(operator.clone()));
        c.database_url = database_url.clone();
    })
    .await;
    let api_key = meta["api_key"].as_str().unwrap();
    // Every conversation as the old version left it.
    for (id, was) in meta["conversations"].as_object().unwrap() {
        let (status, now) = app.get(&format!("/v1/conversations/{id}"), api_key).await;
        assert_eq!(status, StatusCode::OK, "{id}: {now}");
        assert_eq!(now["case"]["id"], was["case_id"], "{id}");
        assert_eq!(now["case"]["created"], was["case_created"], "{id}");
        assert_eq!(now["case"]["number"], was["case_number"], "{id}");
        assert_eq!(now["contact_id"], was["contact_id"], "{id}");
        assert_eq!(now["state"], was["state"], "{id}");
        assert_eq!(now["messages"], was["messages"], "{id}");
    }
    // The sealed secrets open with the old key: the webhook URL shows.
    let (status, connection) = app.get("/v1/creatio/connection", api_key).await;
    assert_eq!(status, StatusCode::OK, "{connection}");
    assert!(
        connection.to_string().contains("/webhooks/creatio/"),
        "{connection}"
    );
    // The pending jobs run: point the old connection at this emulator,
    // under the fixture's OAuth client.
    app.emulator
        .state()
        .register_client(creatio_emulator::ClientConfig::new(
            meta["client_id"].as_str().unwrap(),
            meta["client_secret"].as_str().unwrap(),
        ));
    sqlx::query("UPDATE creatio_connections SET instance_url = $1, identity_service_url = NULL")
        .bind(app.emulator.url())
        .execute(app.db.pool())
        .await
        .unwrap();
    let app = app.restart_with(|_| {}).await;
    for (id, was) in meta["conversations"].as_object().unwrap() {
        if was["open_jobs"].as_i64().unwrap() > 0 {
            let now = app.settled(api_key, id).await;
            assert_eq!(now["case"]["created"], true, "{id}: {now}");
            assert_eq!(
                now["messages"]["written"], now["messages"]["received"],
                "{id}: {now}"
            );
        }
    }
    // New data goes in after the upgrade too.
    let (status, body) = app
        .post(
            "/v1/events",
            api_key,
            json!([message("after-upgrade", "new-1", "hello")]),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.settled(api_key, "new-1").await;
    app.finish().await;
    if let Some(name) = postgres_db {
        crate::helpers::drop_postgres_database(&name).await;
    }
}

/// PostgreSQL's backup is its own tools, as `backup` says: a `pg_dump`
/// restored with `pg_restore` into a new database, served with the same
/// key, holds every conversation, opens the sealed secrets and goes on
/// syncing onto the same cases.
#[tokio::test]
async fn postgresql_round_trips_through_pg_dump_and_pg_restore_with_its_key() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let before = sync_conversations(&app, &org.key, "c", 3, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("casebridge.dump");
    let (restored_url, restored_db) = crate::helpers::create_postgres_database().await;
    let run = |program: &str, args: Vec<String>| {
        let out = std::process::Command::new(program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{program} (package postgresql-client): {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (source, file, target) = (
        app.database_url().to_string(),
        dump.display().to_string(),
        restored_url.clone(),
    );
    tokio::task::spawn_blocking(move || {
        run(
            "pg_dump",
            vec![
                "--format=custom".into(),
                "--no-owner".into(),
                "--file".into(),
                file.clone(),
                source,
            ],
        );
        run(
            "pg_restore",
            vec!["--no-owner".into(), "--dbname".into(), target, file],
        );
    })
    .await
    .unwrap();

    let app = app
        .restart_with(|c| c.database_url = restored_url.clone())
        .await;
    assert_eq!(app.database_url(), restored_url);
    // The key opens the restored sealed secrets: the webhook URL shows and
    // the Creatio connection still authenticates (the next message syncs).
    assert_restored(&app, &org.key, "c", &before).await;
    app.send(
        &org.key,
        json!([message("after", "c-0", "after the restore")]),
    )
    .await;
    let after = app.settled(&org.key, "c-0").await;
    assert_eq!(after["case"], before[0]["case"], "{after}");
    assert_eq!(
        after["messages"]["written"], after["messages"]["received"],
        "{after}"
    );
    app.finish().await;
    crate::helpers::drop_postgres_database(&restored_db).await;
}
