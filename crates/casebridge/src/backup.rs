//! `casebridge backup` and `casebridge restore` (SQLite), and `casebridge
//! migrate`.
//!
//! A backup is two files: the database, copied online with SQLite's
//! `VACUUM INTO` (a consistent snapshot taken while the service writes,
//! holding no lock a writer waits on), and beside it `<file>.key`, the key
//! that sealed the secrets in it (Creatio client secrets, webhook tokens,
//! delivery signing secrets). Without the key a restored database runs but
//! every org must enter its secrets again, so `restore` refuses a backup
//! whose secrets the key it has cannot open.
//!
//! PostgreSQL has its own tools; both commands say which instead.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use secrecy::SecretString;
use sqlx::{Connection, Row};

use crate::config::{Config, SecretKeySource};
use crate::secrets::SecretBox;
use crate::storage::{self, sqlite_file, Db};

/// What `backup` wrote.
#[derive(Debug)]
pub struct BackupReport {
    pub file: PathBuf,
    pub bytes: u64,
    /// The key file written beside it; `None` when the key is
    /// `CASEBRIDGE_SECRET_KEY` (nothing to copy: keep that value).
    pub key_file: Option<PathBuf>,
    pub schema_version: i64,
    pub conversations: i64,
}

/// The key file saved beside a backup.
pub fn key_file_of(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

fn postgres_refusal(command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "casebridge {command} handles SQLite databases; this one is PostgreSQL. Use PostgreSQL's own tools: \
         `pg_dump --format=custom --file=casebridge.dump \"$CASEBRIDGE_DATABASE_URL\"` to back up (online, consistent) and \
         `pg_restore --dbname=<new database> casebridge.dump` to restore. Keep the secret key \
         (CASEBRIDGE_SECRET_KEY or the file CASEBRIDGE_SECRET_KEY_FILE names) with the dump: the secrets in it are sealed with that key."
    )
}

/// The database file of a SQLite URL, or the refusal for PostgreSQL.
fn database_file(config: &Config, command: &str) -> anyhow::Result<PathBuf> {
    if !config.database_url.starts_with("sqlite:") {
        return Err(postgres_refusal(command));
    }
    sqlite_file(&config.database_url).with_context(|| {
        format!(
            "CASEBRIDGE_DATABASE_URL={} is an in-memory database: there is nothing on disk to {command}",
            config.database_url
        )
    })
}

/// A connection to a SQLite file, read-only.
async fn open_read_only(path: &Path) -> anyhow::Result<sqlx::SqliteConnection> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("could not open {} as a SQLite database", path.display()))
}

async fn schema_version(conn: &mut sqlx::SqliteConnection) -> anyhow::Result<i64> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(&mut *conn)
    .await
    .context(
        "it holds no casebridge schema (no _sqlx_migrations table): is it a casebridge database?",
    )?;
    Ok(row.try_get("v")?)
}

/// Copies the database online into `out` (which must not exist) and the
/// key beside it.
pub async fn backup(config: &Config, out: &Path) -> anyhow::Result<BackupReport> {
    let source = database_file(config, "backup")?;
    if !source.exists() {
        bail!(
            "there is no database at {} (CASEBRIDGE_DATABASE_URL); nothing to back up",
            source.display()
        );
    }
    let key_out = key_file_of(out);
    for path in [out, key_out.as_path()] {
        if path.exists() {
            bail!(
                "{} exists already; casebridge never overwrites a backup: choose a new file name",
                path.display()
            );
        }
    }
    let key_text = match &config.secret_key {
        SecretKeySource::File(path) => Some(std::fs::read_to_string(path).with_context(|| {
            format!(
                "could not read the secret key file {} (CASEBRIDGE_SECRET_KEY_FILE); a backup without its key cannot open the secrets it holds",
                path.display()
            )
        })?),
        SecretKeySource::Inline(_) => None,
    };
    let mut conn = open_read_only(&source).await?;
    let schema_version = schema_version(&mut conn).await?;
    let conversations: i64 = sqlx::query("SELECT COUNT(*) AS n FROM conversations")
        .fetch_one(&mut conn)
        .await?
        .try_get("n")?;
    // The copy is private like the database (0600), created empty first:
    // VACUUM INTO writes into an empty file and keeps its mode.
    storage::create_private_file(out)?;
    let target = out.to_string_lossy().replace('\'', "''");
    if let Err(e) = sqlx::query(&format!("VACUUM INTO '{target}'"))
        .execute(&mut conn)
        .await
    {
        let _ = std::fs::remove_file(out);
        return Err(anyhow::Error::new(e).context(format!("could not write {}", out.display())));
    }
    conn.close().await?;
    let key_file = match key_text {
        Some(text) => {
            storage::create_private_file(&key_out)?;
            std::fs::write(&key_out, text)
                .with_context(|| format!("could not write {}", key_out.display()))?;
            Some(key_out)
        }
        None => None,
    };
    Ok(BackupReport {
        bytes: std::fs::metadata(out)?.len(),
        file: out.to_path_buf(),
        key_file,
        schema_version,
        conversations,
    })
}

/// What `restore` put in place.
#[derive(Debug)]
pub struct RestoreReport {
    pub database: PathBuf,
    pub key_file: Option<PathBuf>,
    pub schema_version_before: i64,
    pub schema_version: i64,
    pub conversations: i64,
    pub open_jobs: i64,
}

/// The sealed secrets of a database and what each was sealed for: the key
/// must open the first (all were sealed with one key).
async fn first_sealed(
    conn: &mut sqlx::SqliteConnection,
) -> anyhow::Result<Option<(String, String)>> {
    for (sql, context) in [
        (
            "SELECT org_id, client_secret_sealed AS s FROM creatio_connections WHERE client_secret_sealed IS NOT NULL LIMIT 1",
            "client_secret",
        ),
        ("SELECT org_id, token_sealed AS s FROM webhook_tokens LIMIT 1", "webhook_token"),
        ("SELECT org_id, secret_sealed AS s FROM delivery_endpoints LIMIT 1", "delivery_secret"),
    ] {
        if let Some(r) = sqlx::query(sql).fetch_optional(&mut *conn).await? {
            let org: String = r.try_get("org_id")?;
            return Ok(Some((r.try_get("s")?, format!("{context}:{org}"))));
        }
    }
    Ok(None)
}

/// Puts the backup `from` in place as the configured database (which must
/// not exist), with its key, and migrates it to this version's schema.
/// Checks everything before writing anything.
pub async fn restore(config: &Config, from: &Path) -> anyhow::Result<RestoreReport> {
    let target = database_file(config, "restore")?;
    refuse_existing(&target)?;
    let (before, sealed) = check_backup(from).await?;
    let (key, key_source) = backup_key(config, from)?;
    if let Some((sealed, context)) = &sealed {
        check_key(key.as_deref(), &key_source, from, sealed, context)?;
    }
    let key_file = key_destination(config, key.as_deref())?;
    copy_file(from, &target)?;
    if let (Some(path), Some(key)) = (&key_file, &key) {
        storage::create_private_file(path)?;
        std::fs::write(path, key).with_context(|| format!("could not write {}", path.display()))?;
    }
    let db = Db::connect(&config.database_url)
        .await
        .context("the restored database could not be opened")?;
    // Jobs and deliveries that were in flight when the backup was taken
    // run again now, not when their lease would have run out: nothing is
    // running them in this database.
    storage::outbox::requeue_claimed(&db).await?;
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query(sql)
                .fetch_one(db.pool())
                .await
                .and_then(|r| r.try_get::<i64, _>("n"))
        }
    };
    let conversations = count("SELECT COUNT(*) AS n FROM conversations").await?;
    let open_jobs =
        count("SELECT COUNT(*) AS n FROM jobs WHERE state IN ('pending', 'running')").await?;
    db.close().await;
    Ok(RestoreReport {
        database: target,
        key_file,
        schema_version_before: before,
        schema_version: storage::known_schema_version(),
        conversations,
        open_jobs,
    })
}

/// Restore writes only a new database: not over one, its WAL or its
/// shared memory.
fn refuse_existing(target: &Path) -> anyhow::Result<()> {
    for path in [
        target.to_path_buf(),
        PathBuf::from(format!("{}-wal", target.display())),
        PathBuf::from(format!("{}-shm", target.display())),
    ] {
        if path.exists() {
            bail!(
                "{} exists; restore writes only a new database. Stop casebridge, move the database and its -wal and -shm files away \
                 (or point CASEBRIDGE_DATABASE_URL at a new file), and run restore again",
                path.display()
            );
        }
    }
    Ok(())
}

/// The backup is a readable, undamaged casebridge database of a schema
/// this casebridge knows: its schema version, and one sealed secret with
/// its context (to test the key on), if it holds any.
async fn check_backup(from: &Path) -> anyhow::Result<(i64, Option<(String, String)>)> {
    let mut conn = open_read_only(from).await?;
    let check: String = sqlx::query("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("{} is not a readable SQLite database", from.display()))?
        .try_get(0)?;
    if check != "ok" {
        bail!(
            "{} is damaged (SQLite quick_check: {check}); restore another backup",
            from.display()
        );
    }
    let before = schema_version(&mut conn)
        .await
        .with_context(|| format!("{} is not a casebridge backup", from.display()))?;
    let known = storage::known_schema_version();
    if before > known {
        bail!(
            "{} was made by a newer casebridge (schema version {before}; this one knows up to {known}): restore it with that version or newer",
            from.display()
        );
    }
    let sealed = first_sealed(&mut conn).await?;
    conn.close().await?;
    Ok((before, sealed))
}

/// The key: the one saved beside the backup, else the configured one; and
/// where it came from, for the messages.
fn backup_key(config: &Config, from: &Path) -> anyhow::Result<(Option<String>, String)> {
    let saved_key = key_file_of(from);
    Ok(if saved_key.exists() {
        let text = std::fs::read_to_string(&saved_key)
            .with_context(|| format!("could not read {}", saved_key.display()))?;
        (Some(text), saved_key.display().to_string())
    } else {
        match &config.secret_key {
            SecretKeySource::Inline(k) => (
                Some(secrecy::ExposeSecret::expose_secret(k).to_string()),
                "CASEBRIDGE_SECRET_KEY".to_string(),
            ),
            SecretKeySource::File(path) if path.exists() => (
                Some(std::fs::read_to_string(path)?),
                path.display().to_string(),
            ),
            SecretKeySource::File(_) => (None, String::new()),
        }
    })
}

/// The key opens the backup's sealed secrets.
fn check_key(
    key: Option<&str>,
    key_source: &str,
    from: &Path,
    sealed: &str,
    context: &str,
) -> anyhow::Result<()> {
    let saved_key = key_file_of(from);
    let Some(key) = key else {
        bail!(
            "the backup's key is missing: there is no {} beside it and no key is configured. The backup holds sealed secrets \
             (Creatio client secrets, webhook tokens, delivery secrets) that only the key saved with it opens: put that file at {}, \
             or set CASEBRIDGE_SECRET_KEY to its value, and run restore again. Nothing was restored",
            saved_key.display(),
            saved_key.display()
        );
    };
    let opens = SecretBox::from_base64(&SecretString::from(key.to_string()))
        .ok()
        .is_some_and(|b| b.open(sealed, context).is_ok());
    if !opens {
        bail!(
            "the key from {key_source} does not open the secrets in this backup: it was sealed with another key. Put the key file \
             saved with the backup at {}, or set CASEBRIDGE_SECRET_KEY to that key, and run restore again. Nothing was restored",
            saved_key.display()
        );
    }
    Ok(())
}

/// Where the key goes: the configured key file, unless it holds this key
/// already; a different key there is not overwritten.
fn key_destination(config: &Config, key: Option<&str>) -> anyhow::Result<Option<PathBuf>> {
    match (&config.secret_key, key) {
        (SecretKeySource::File(path), Some(key)) => {
            if path.exists() {
                let existing = std::fs::read_to_string(path)?;
                if existing.trim() != key.trim() {
                    bail!(
                        "{} holds another key than the backup's; move it away (the database it belongs to needs it) and run restore again",
                        path.display()
                    );
                }
                Ok(None)
            } else {
                Ok(Some(path.clone()))
            }
        }
        _ => Ok(None),
    }
}

/// Copies the backup to `target` (created private), synced to disk; no
/// half-copied file stays behind.
fn copy_file(from: &Path, target: &Path) -> anyhow::Result<()> {
    storage::create_private_file(target)?;
    let copied = (|| -> std::io::Result<()> {
        let mut input = std::fs::File::open(from)?;
        let mut output = std::fs::OpenOptions::new().write(true).open(target)?;
        std::io::copy(&mut input, &mut output)?;
        output.sync_all()
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(target);
        bail!(
            "could not copy {} to {}: {e}",
            from.display(),
            target.display()
        );
    }
    Ok(())
}
