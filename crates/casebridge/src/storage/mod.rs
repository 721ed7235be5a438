//! The database: SQLite (the embedded default, one file in WAL mode) or
//! PostgreSQL (several instances sharing one database), behind one sqlx
//! `Any` pool so that every query and every test runs on both.
//!
//! Queries use `$1`-style placeholders, which both drivers accept; times are
//! Unix milliseconds, ids TEXT and flags 0/1 (see the migrations). Each
//! table's queries live in the module named after it.

pub mod ai_fields;
pub mod chatwoot;
pub mod connections;
pub mod conversations;
pub mod deliveries;
pub mod erasure;
pub mod events;
pub mod jobs;
pub mod messages;
pub mod orgs;
pub mod outbox;
pub mod retention;
pub mod rounds;
pub mod timeline;
pub mod views;
pub mod webhook_tokens;
pub mod written;

use std::str::FromStr;
use std::time::Duration;

use crate::domain::OrgId;
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
    /// The database was migrated by a later casebridge than this one.
    #[error(
        "the database was upgraded by a newer casebridge (schema version {found}; this casebridge knows versions up to {known}). \
         Run that version or a newer one, or restore the backup taken before the upgrade (casebridge restore)"
    )]
    NewerSchema { found: i64, known: i64 },
    /// The database file or its directory could not be made.
    #[error("{0}")]
    Io(String),
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
    /// SQLite: the one connection those busiest writers use. SQLite drops a
    /// connection's page cache whenever another connection wrote since its
    /// last transaction, so writes spread over the pool's connections each
    /// began cold, reading back the index pages they needed; the one
    /// writer keeps them. `None` for PostgreSQL and in-memory SQLite (whose
    /// database exists once per connection): writes use `pool`.
    write_pool: Option<AnyPool>,
    /// Wakes this process's workers when a write queued work for them.
    wake: std::sync::Arc<Wakeups>,
}

/// The workers a committed write may have given work to.
#[derive(Debug, Default)]
struct Wakeups {
    jobs: tokio::sync::Notify,
    deliveries: tokio::sync::Notify,
}

/// A transaction that writes: the only way anything outside this module
/// writes. It holds SQLite's write turn (see [`Db`]) from before `BEGIN
/// IMMEDIATE` to after the commit or rollback, and on commit wakes the
/// workers whose queues it added to. Dropped without [`WriteTx::commit`],
/// it rolls back and wakes no one.
pub struct WriteTx {
    // Declared before the turn: dropped (rolled back) while still holding it.
    tx: Tx<'static>,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    wake: std::sync::Arc<Wakeups>,
    backend: Backend,
    jobs_queued: bool,
    deliveries_queued: bool,
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl WriteTx {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Jobs were queued (or became due): the sync workers look on commit.
    pub fn jobs_queued(&mut self) {
        self.jobs_queued = true;
    }

    /// Deliveries were queued (or may go out now): the senders look on
    /// commit.
    pub fn deliveries_queued(&mut self) {
        self.deliveries_queued = true;
    }

    /// Commits, gives up the write turn, then wakes whom the writes concern.
    pub async fn commit(self) -> Result<()> {
        let WriteTx {
            tx,
            turn,
            wake,
            jobs_queued,
            deliveries_queued,
            ..
        } = self;
        tx.commit().await?;
        drop(turn);
        if jobs_queued {
            wake.jobs.notify_waiters();
        }
        if deliveries_queued {
            wake.deliveries.notify_waiters();
        }
        Ok(())
    }
}

/// One statement that writes, alone: `sqlx::query(…).bind(…).write_on(db)`
/// where a read would say `.execute(db.pool())`. A statement is atomic by
/// itself, so it takes the write turn but no BEGIN and COMMIT: two round
/// trips to SQLite fewer while the turn is held, which the claims (many a
/// second) feel. It cannot find its snapshot stale (SQLITE_BUSY_SNAPSHOT):
/// while the turn is held no other connection of this process writes.
pub(crate) trait WriteQuery {
    fn write_on(
        self,
        db: &Db,
    ) -> impl std::future::Future<Output = Result<sqlx::any::AnyQueryResult>> + Send;

    /// [`WriteQuery::write_on`] for an `UPDATE … RETURNING`: the rows.
    fn write_returning(
        self,
        db: &Db,
    ) -> impl std::future::Future<Output = Result<Vec<sqlx::any::AnyRow>>> + Send;
}

impl<'q> WriteQuery for sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    async fn write_on(self, db: &Db) -> Result<sqlx::any::AnyQueryResult> {
        let _turn = db.turn().await;
        Ok(self.execute(db.writer()).await?)
    }

    async fn write_returning(self, db: &Db) -> Result<Vec<sqlx::any::AnyRow>> {
        let _turn = db.turn().await;
        Ok(self.fetch_all(db.writer()).await?)
    }
}

/// Statements run on the transaction's connection: `.execute(&mut *tx)`.
impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// What SQLite may hold in memory, all connections together (bytes): page
/// caches and prepared statements. Each of the pool's 17 connections
/// fills its page cache (2 MiB; the writer's 4 MiB) as the database
/// grows, one of what took the service past its 64 MB target in the soak
/// (`scripts/soak.py`); past this limit SQLite recycles the least recently
/// used pages instead. The file's pages stay in the operating system's
/// cache, so a page read again costs a copy, not a disk read.
const SQLITE_HEAP_LIMIT: u64 = 16 * 1024 * 1024;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Db {
    /// Opens (creating a SQLite file when needed) and migrates the database.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            if let Some(path) = sqlite_file(url) {
                create_private_file(&path)?;
            }
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
        // An in-memory SQLite database exists once per connection.
        let pool = Self::pool_options(backend, if in_memory { 1 } else { 16 }, 2_000)
            .connect_with(options.clone())
            .await?;
        refuse_newer_schema(&pool).await?;
        MIGRATOR.run(&pool).await?;
        let write_pool = if backend == Backend::Sqlite && !in_memory {
            // A larger page cache (in KiB) for the connection that does most
            // of the writing: ingest, claims and records touch the newest
            // pages of every table and index.
            Some(
                Self::pool_options(backend, 1, 4_096)
                    .connect_with(options)
                    .await?,
            )
        } else {
            None
        };
        Ok(Db {
            pool,
            backend,
            writer: Default::default(),
            write_pool,
            wake: Default::default(),
        })
    }

    fn pool_options(backend: Backend, connections: u32, cache_kib: u32) -> AnyPoolOptions {
        AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; NORMAL sync
                        // is durable across process crashes in WAL mode.
                        // secure_delete zeroes a deleted or changed row's
                        // bytes, so purged and erased text does not stay
                        // behind in free space. soft_heap_limit (process
                        // wide) caps what SQLite holds in memory.
                        conn.execute(
                            format!(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA cache_size = -{cache_kib}; PRAGMA secure_delete = ON; \
                                 PRAGMA soft_heap_limit = {SQLITE_HEAP_LIMIT};"
                            )
                            .as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
    }

    /// After an erasure (SQLite): copies the WAL into the database file and
    /// empties it, so the erased rows' old page images leave the disk with
    /// it (`secure_delete` zeroes them in the file itself). A reader holding
    /// an old snapshot can keep the WAL from emptying: the next checkpoint
    /// does it then.
    pub async fn flush_erased(&self) {
        if self.backend == Backend::Sqlite {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(self.writer())
                .await
            {
                tracing::warn!(error = %e, "Could not empty the SQLite WAL after an erasure; the next checkpoint will.");
            }
        }
    }

    /// The schema version the database is at (0: none yet).
    pub async fn schema_version(&self) -> Result<i64> {
        schema_version(&self.pool).await
    }

    /// The schema version of the database at `url`, without migrating it
    /// (0: a new database).
    pub async fn schema_version_of(url: &str) -> Result<i64> {
        sqlx::any::install_default_drivers();
        if let Some(path) = sqlite_file(url) {
            if !path.exists() {
                return Ok(0);
            }
        }
        let url = if url.starts_with("sqlite:") {
            sqlite_url(url)
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        let version = schema_version(&pool).await;
        pool.close().await;
        version
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool that [`Db::write`] writes through.
    fn writer(&self) -> &AnyPool {
        self.write_pool.as_ref().unwrap_or(&self.pool)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that writes. On SQLite it first waits for the
    /// write turn, so writers queue here in order instead of sleeping on a
    /// locked file and racing again when they wake; then it is `BEGIN
    /// IMMEDIATE`, which takes the write lock before the first statement. A
    /// deferred transaction that reads first and then writes fails with
    /// SQLITE_BUSY_SNAPSHOT (517) whenever another connection commits in
    /// between, and no timeout retries that: under load the purge's passes
    /// failed this way one after another while the tables grew. PostgreSQL
    /// has row locks and needs no turn.
    ///
    /// Never open a second one while holding one: on SQLite it waits for
    /// the turn its own caller holds.
    pub async fn write(&self) -> Result<WriteTx> {
        let turn = self.turn().await;
        let tx = match self.backend {
            Backend::Sqlite => self.writer().begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer().begin().await?,
        };
        Ok(WriteTx {
            tx,
            turn,
            wake: self.wake.clone(),
            backend: self.backend,
            jobs_queued: false,
            deliveries_queued: false,
        })
    }

    /// SQLite's write turn (PostgreSQL has row locks and needs none).
    async fn turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.clone().lock_owned().await),
            Backend::Postgres => None,
        }
    }

    /// Resolves when a write of this process queued sync jobs.
    pub fn jobs_queued(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.jobs.notified()
    }

    /// Resolves when a write of this process queued deliveries.
    pub fn deliveries_queued(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.deliveries.notified()
    }

    /// `sql` as this database binds it fastest (see [`for_backend`]).
    fn for_backend(&self, sql: String) -> String {
        statement_for(self.backend, sql)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        if let Some(w) = &self.write_pool {
            w.close().await;
        }
        self.pool.close().await;
    }
}

/// The newest schema version this casebridge has a migration for.
pub fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The migrations this casebridge applies: version and description.
/// Rows of `table` counted by the values of `column` (for gauges); both
/// are the caller's constants, never input.
pub(crate) async fn count_by(
    db: &Db,
    table: &'static str,
    column: &'static str,
) -> Result<Vec<(String, i64)>> {
    use sqlx::Row;
    let rows = sqlx::query(&format!(
        "SELECT {column} AS k, COUNT(*) AS n FROM {table} GROUP BY {column}"
    ))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("k")?, r.try_get("n")?)))
        .collect()
}

pub fn known_migrations() -> Vec<(i64, String)> {
    MIGRATOR
        .iter()
        .map(|m| (m.version, m.description.to_string()))
        .collect()
}

async fn schema_version(pool: &AnyPool) -> Result<i64> {
    use sqlx::Row;
    // No table yet: a new database.
    match sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
    {
        Ok(row) => Ok(row.try_get("v")?),
        Err(sqlx::Error::Database(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Refuses a database a later casebridge migrated: this one would fail on
/// it later and less clearly (sqlx: "migration N was previously applied but
/// is missing"), or worse, write rows the newer schema does not expect.
async fn refuse_newer_schema(pool: &AnyPool) -> Result<()> {
    let found = schema_version(pool).await?;
    let known = known_schema_version();
    if found > known {
        return Err(StorageError::NewerSchema { found, known });
    }
    Ok(())
}

/// The file a SQLite URL names; `None` for an in-memory database (or a URL
/// that is not SQLite's).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.into())
}

/// Creates the database file, empty, readable by its owner only (0600),
/// and its directory (0700) when missing. SQLite itself would create it
/// 0644 — customer text readable by every local user — and gives its
/// `-wal` and `-shm` files the database file's mode, so creating the file
/// first settles all three. An existing file keeps its mode: the operator
/// chose it; a warning says when others can read it.
pub(crate) fn create_private_file(path: &std::path::Path) -> Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        StorageError::Io(format!("could not {what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(dir)
                .map_err(|e| fail("create the directory of", e))?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)
                    .map_err(|e| fail("read", e))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "The database file can be read by other users; it holds customer messages. Run chmod 600 on it and its -wal and -shm files.");
                }
            }
            Ok(())
        }
        Err(e) => Err(fail("create", e)),
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

/// Rows per multi-row statement and values per `IN` list: well under both
/// databases' parameter limits (PostgreSQL 65,535; SQLite 32,766).
const ROWS_PER_STATEMENT: usize = 500;

/// A statement of `rows` value rows or `IN` values: kept prepared on the
/// connection (sqlx's cache of 100 per connection) only when small. Each
/// row count is another statement text, and a prepared statement of
/// hundreds of rows holds hundreds of KiB: cached on 17 connections they
/// grew the service's memory for as long as new counts came along (the
/// soak, `scripts/soak.py`). Preparing a large one again costs less than
/// the rows it carries.
fn rows_query(
    sql: &str,
    rows: usize,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(sql).persistent(rows <= CACHED_ROWS)
}

/// Statements of up to this many rows stay prepared.
const CACHED_ROWS: usize = 8;

/// `rows` copies of `row` (a tuple with `?` for each parameter) joined by
/// commas, the `?`s numbered `$first`, `$first + 1`, … in order. With
/// `row` `"?"` it is an `IN` list of `rows` parameters.
fn value_rows(row: &str, rows: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * (row.len() + 16));
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        for ch in row.chars() {
            if ch == '?' {
                out.push('$');
                out.push_str(&n.to_string());
                n += 1;
            } else {
                out.push(ch);
            }
        }
    }
    out
}

/// A statement as the connection's database binds it fastest. sqlx asks
/// SQLite for each bound value's name, which SQLite finds by walking the
/// statement's list of named parameters: a statement with n `$N`
/// parameters costs n² steps (5 % of the sync benchmark's CPU with
/// 100-row inserts). Anonymous `?` parameters have no names and bind by
/// position, so when a statement's parameters are numbered in the order
/// they appear, each once, SQLite gets `?`s. Anything else is unchanged.
fn for_backend(conn: &sqlx::AnyConnection, sql: String) -> String {
    let backend = if conn.backend_name() == "SQLite" {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    statement_for(backend, sql)
}

fn statement_for(backend: Backend, sql: String) -> String {
    match backend {
        Backend::Sqlite => anonymous(&sql).unwrap_or(sql),
        Backend::Postgres => sql,
    }
}

/// `sql` with `$1, $2, …` (in that order, each once) as `?`; `None` when
/// the parameters are numbered any other way.
fn anonymous(sql: &str) -> Option<String> {
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1u64;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let n: u64 = rest[at + 1..at + 1 + digits].parse().ok()?;
        if n != expected {
            return None;
        }
        expected += 1;
        out.push('?');
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    Some(out)
}

/// Runs `sql` (which has `$1` = org id and an `IN ({ids})` list) once per
/// chunk of `ids` and returns every row.
async fn rows_for<S: AsRef<str>>(
    db: &Db,
    sql: &str,
    org_id: &OrgId,
    ids: &[S],
) -> Result<Vec<sqlx::any::AnyRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = sql.replace("{ids}", &value_rows("?", chunk.len(), 2));
        let sql = db.for_backend(sql);
        let mut q = rows_query(&sql, chunk.len()).bind(org_id);
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
    org_id: &OrgId,
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

/// SQLite's plan for `sql`, one line per step (for the tests that hold the
/// hot statements to their indexes).
#[cfg(test)]
async fn query_plan(db: &Db, sql: &str, binds: usize) -> String {
    use sqlx::Row;
    let sql = db.for_backend(format!("EXPLAIN QUERY PLAN {sql}"));
    let mut q = sqlx::query(&sql);
    for i in 0..binds {
        q = q.bind(i as i64);
    }
    let rows = q.fetch_all(db.pool()).await.unwrap();
    rows.iter()
        .map(|r| r.try_get::<String, _>("detail").unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A stored word (a state, a role, a kind) as its type; a word this
/// casebridge does not know is corrupt data, named with its column.
fn stored<T>(word: String, column: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(&word).ok_or_else(|| StorageError::Corrupt(format!("{column} {word:?} is not known")))
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
    fn value_rows_number_every_parameter_in_order() {
        assert_eq!(
            value_rows("(?, 'x', ?)", 2, 3),
            "($3, 'x', $4), ($5, 'x', $6)"
        );
        assert_eq!(value_rows("(?)", 0, 1), "");
        assert_eq!(value_rows("?", 3, 2), "$2, $3, $4");
    }

    #[test]
    fn parameters_in_order_become_anonymous_for_sqlite() {
        assert_eq!(
            anonymous("UPDATE t SET a = $1 WHERE b IN ($2, $3) AND c = $4").as_deref(),
            Some("UPDATE t SET a = ? WHERE b IN (?, ?) AND c = ?")
        );
        assert_eq!(anonymous("SELECT 1").as_deref(), Some("SELECT 1"));
        // Reused, skipped or reordered numbers keep their names.
        assert_eq!(anonymous("a = $1 AND b = $1"), None);
        assert_eq!(anonymous("a = $2 AND b = $1"), None);
        assert_eq!(anonymous("a = $1 AND b = $3"), None);
        assert_eq!(anonymous("a = '$' AND b = $1"), None);
        assert_eq!(anonymous("a = $10"), None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_sqlite_database_and_its_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("casebridge.db");
        let db = Db::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        // WAL mode is on: the -wal and -shm files exist now.
        db.ping().await.unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        for file in ["casebridge.db", "casebridge.db-wal", "casebridge.db-shm"] {
            let p = path.with_file_name(file);
            assert!(p.exists(), "{file}");
            assert_eq!(mode(&p), 0o600, "{file}");
        }
        db.close().await;
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(
            sqlite_file("sqlite://a/b.db?mode=rwc"),
            Some("a/b.db".into())
        );
    }

    /// A write transaction that reads first survives another connection
    /// committing between its read and its write: `Db::write` takes the
    /// lock up front and the other commit waits for it. (A deferred
    /// transaction fails here with SQLITE_BUSY_SNAPSHOT, code 517.)
    #[tokio::test]
    async fn a_write_transaction_that_reads_first_is_not_lost_to_another_commit() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("cb.db").display());
        let db = Db::connect(&url).await.unwrap();
        let insert = |id: &'static str| {
            sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, 'x', 0)").bind(id)
        };
        let count = "SELECT COUNT(*) AS n FROM orgs";
        let mut deferred = db.writer().begin().await.unwrap();
        sqlx::query(count).fetch_one(&mut *deferred).await.unwrap();
        insert("o1").execute(db.pool()).await.unwrap();
        let e = insert("o2").execute(&mut *deferred).await.unwrap_err();
        assert!(e.to_string().contains("517"), "{e}");
        deferred.rollback().await.unwrap();

        let mut tx = db.write().await.unwrap();
        sqlx::query(count).fetch_one(&mut *tx).await.unwrap();
        let other = tokio::spawn({
            let pool = db.pool().clone();
            async move { insert("o3").execute(&pool).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        insert("o4").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        other.await.unwrap().unwrap();
        let n: i64 = sqlx::Row::get(&sqlx::query(count).fetch_one(db.pool()).await.unwrap(), "n");
        assert_eq!(n, 3);
        db.close().await;
    }

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
