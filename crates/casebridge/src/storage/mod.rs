//! The database: SQLite (the embedded default, one file in WAL mode) or
//! PostgreSQL (several instances sharing one database), behind one sqlx
//! `Any` pool so that every query and every test runs on both.
//!
//! Queries use `$1`-style placeholders, which both drivers accept; times are
//! Unix milliseconds, ids TEXT and flags 0/1 (see the migrations). Each
//! table's queries live in the module named after it.

pub mod ai_fields;
pub mod connections;
pub mod deliveries;
pub mod orgs;
pub mod sync;
pub mod webhook_tokens;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

/// Which database is behind the pool, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "unsupported database URL {0:?}: use sqlite://<file> or postgres://<user>@<host>/<db>"
    )]
    UnsupportedUrl(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A connection pool with its backend, cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer: a writer that finds the file locked sleeps
    /// in steps of up to 100 ms and may lose the race again when it wakes.
    /// The busiest writers (ingest, job claims, a round's records) queue
    /// here instead, in order, and each finds the file free.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Db {
    /// Opens (creating a SQLite file when needed) and migrates the database.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StorageError::UnsupportedUrl(url.to_string()));
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let in_memory = url.contains(":memory:");
        let pool = AnyPoolOptions::new()
            // An in-memory SQLite database exists once per connection.
            .max_connections(if in_memory { 1 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; NORMAL sync
                        // is durable across process crashes in WAL mode.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Db {
            pool,
            backend,
            writer: Default::default(),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A turn to write, for SQLite; hold it until the transaction commits.
    /// PostgreSQL has row locks and needs none.
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite://file.db` → `sqlite://file.db?mode=rwc`, so a first start
/// creates the file instead of failing.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Values bound per statement in the multi-row and `IN`-list statements:
/// well under both databases' limits (PostgreSQL 65,535; SQLite 32,766),
/// and small because sqlx looks each bound value up by name, which costs
/// SQLite time in proportion to the statement's values.
const ROWS_PER_STATEMENT: usize = 100;

/// `$first, $first+1, …`: an `IN` list of `n` placeholders.
fn numbered(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `sql` (which has `$1` = org id and an `IN ({ids})` list) once per
/// chunk of `ids` and returns every row.
async fn rows_for<S: AsRef<str>>(
    db: &Db,
    sql: &str,
    org_id: &str,
    ids: &[S],
) -> Result<Vec<sqlx::any::AnyRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = sql.replace("{ids}", &numbered(chunk.len(), 2));
        let mut q = sqlx::query(&sql).bind(org_id);
        for id in chunk {
            q = q.bind(id.as_ref());
        }
        out.extend(q.fetch_all(db.pool()).await?);
    }
    Ok(out)
}

/// Which of `values` an org's rows of `table` hold in `column`. `table`
/// and `column` are constants of the caller's.
async fn present_among(
    db: &Db,
    table: &str,
    column: &str,
    org_id: &str,
    values: &[String],
) -> Result<Vec<String>> {
    use sqlx::Row;
    let sql = format!("SELECT {column} FROM {table} WHERE org_id = $1 AND {column} IN ({{ids}})");
    rows_for(db, &sql, org_id, values)
        .await?
        .iter()
        .map(|r| Ok(r.try_get(column)?))
        .collect()
}

/// Now, as stored: Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A stored millisecond time as RFC 3339, for API answers.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(sqlite_url("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(
            sqlite_url("sqlite://a.db?x=1"),
            "sqlite://a.db?x=1&mode=rwc"
        );
        assert_eq!(sqlite_url("sqlite://a.db?mode=ro"), "sqlite://a.db?mode=ro");
        assert_eq!(sqlite_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[tokio::test]
    async fn unsupported_urls_are_refused_with_the_accepted_forms() {
        let e = Db::connect("mysql://x").await.unwrap_err();
        assert!(e.to_string().contains("sqlite://"), "{e}");
    }
}
