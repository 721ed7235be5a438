//! Retention: deleting what casebridge no longer needs, one small batch per
//! statement, so a purge never holds SQLite's one writer (or PostgreSQL's
//! row locks) for longer than a batch takes. On PostgreSQL each batch takes
//! its rows `FOR UPDATE SKIP LOCKED`, so several instances purging at once
//! pass each other instead of deleting the same rows or waiting.
//!
//! What is never deleted here: pending and running jobs, deliveries not
//! delivered (pending, delivering, dead), the conversation rows (the keys
//! that link a conversation to its case and contact), a conversation's
//! messages while it has an open job.

use sqlx::Row;

use super::{now_ms, value_rows, Backend, Db, Result, ROWS_PER_STATEMENT};
use crate::domain::{ConversationId, OrgId};

/// Deletes up to `limit` rows of `table` matching `filter` (which binds
/// `$1`, the cutoff), oldest first as the filter's index gives them.
/// `key` (its primary key's columns) names a row on PostgreSQL; SQLite
/// uses its rowid.
async fn delete_batch(
    db: &Db,
    table: &str,
    key: &str,
    filter: &str,
    cutoff: i64,
    limit: usize,
) -> Result<u64> {
    let (key, lock) = match db.backend() {
        Backend::Sqlite => ("rowid", ""),
        Backend::Postgres => (key, "FOR UPDATE SKIP LOCKED"),
    };
    let sql = format!(
        "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {filter} LIMIT $2 {lock})"
    );
    let mut tx = db.write().await?;
    let done = sqlx::query(&sql)
        .bind(cutoff)
        .bind(limit as i64)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Event ids received before `cutoff`: a platform re-sending one of them
/// after that is taken as new (its messages are not: see the messages'
/// own keys).
pub async fn purge_events(db: &Db, cutoff: i64, limit: usize) -> Result<u64> {
    delete_batch(
        db,
        "events",
        "org_id, id",
        "received_at < $1",
        cutoff,
        limit,
    )
    .await
}

/// Timeline lines last written before `cutoff`.
pub async fn purge_timeline(db: &Db, cutoff: i64, limit: usize) -> Result<u64> {
    delete_batch(db, "timeline", "id", "at < $1", cutoff, limit).await
}

/// Jobs in `states` (a SQL list: `'done', 'cancelled'` or `'dead'`) that
/// finished before `cutoff`. A finished job's `run_after` is never later
/// than its `updated_at`, so the filter walks `jobs_ready` (state,
/// run_after) and needs no index of its own.
pub async fn purge_jobs(db: &Db, states: &str, cutoff: i64, limit: usize) -> Result<u64> {
    let filter = format!("state IN ({states}) AND run_after < $1 AND updated_at < $1");
    delete_batch(db, "jobs", "id", &filter, cutoff, limit).await
}

/// The echo guard's memory of records written before `cutoff`. Replies
/// are looked for only among activities newer than the same window
/// (`sync::replies`), so nothing older is ever asked about.
pub async fn purge_echo_guard(db: &Db, cutoff: i64, limit: usize) -> Result<u64> {
    delete_batch(
        db,
        "written_records",
        "org_id, record_id",
        "written_at < $1",
        cutoff,
        limit,
    )
    .await
}

/// Deliveries delivered before `cutoff`, with their attempts; returns the
/// deliveries deleted. Undelivered ones (pending, delivering, dead) stay.
pub async fn purge_deliveries(db: &Db, cutoff: i64, limit: usize) -> Result<u64> {
    let lock = match db.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
    };
    let mut tx = db.write().await?;
    // next_attempt_at is never later than delivered_at: deliveries_due
    // (state, next_attempt_at) finds them.
    let ids: Vec<String> = sqlx::query(&format!(
        "SELECT id FROM deliveries WHERE state = 'delivered' AND next_attempt_at < $1 \
         AND delivered_at < $1 LIMIT $2 {lock}"
    ))
    .bind(cutoff)
    .bind(limit as i64)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<std::result::Result<_, _>>()?;
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        for table_key in ["delivery_attempts WHERE delivery_id", "deliveries WHERE id"] {
            let sql = format!(
                "DELETE FROM {table_key} IN ({})",
                value_rows("?", chunk.len(), 1)
            );
            let mut q = super::rows_query(&sql, chunk.len());
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(ids.len() as u64)
}

/// What a conversation purge removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextsPurged {
    pub conversations: u64,
    pub messages: u64,
    /// Whether more conversations were due than this batch took.
    pub more: bool,
}

/// The texts of conversations last active before `cutoff`: their messages,
/// AI results and the contact's name, e-mail and phone. The conversation
/// row stays, as the key to its case and contact. Conversations with an
/// open job are left for a later pass: the job may need the texts.
///
/// A batch is sized in messages, not conversations: it takes conversations
/// (oldest first, at least one) while their messages, counted by their
/// jobs (`next_seq`, never fewer than the messages), stay within `limit`.
/// A batch of `limit` conversations of 40 messages each held SQLite's
/// writer for 20,000 deletes, and every ingest and worker waited.
pub async fn purge_conversation_texts(db: &Db, cutoff: i64, limit: usize) -> Result<TextsPurged> {
    let lock = match db.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => "FOR UPDATE OF c SKIP LOCKED",
    };
    let mut tx = db.write().await?;
    let rows = sqlx::query(&format!(
        "SELECT c.org_id, c.id, c.next_seq FROM conversations c WHERE c.text_purged = 0 AND c.updated_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.org_id = c.org_id AND j.conversation_id = c.id \
         AND j.state IN ('pending', 'running')) \
         ORDER BY c.updated_at LIMIT $2 {lock}"
    ))
    .bind(cutoff)
    .bind(limit as i64)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_org: std::collections::BTreeMap<OrgId, Vec<ConversationId>> = Default::default();
    let mut taken = 0;
    let mut budget = limit as i64;
    for r in &rows {
        let messages: i64 = r.try_get::<i64, _>("next_seq")?.max(1);
        if taken > 0 && messages > budget {
            break;
        }
        budget -= messages;
        taken += 1;
        by_org
            .entry(r.try_get("org_id")?)
            .or_default()
            .push(r.try_get("id")?);
    }
    let mut purged = TextsPurged {
        more: taken < rows.len() || rows.len() == limit,
        ..TextsPurged::default()
    };
    for (org_id, ids) in &by_org {
        let counts = super::erasure::remove_texts(&mut tx, org_id, ids).await?;
        purged.messages += counts.messages;
        purged.conversations += ids.len() as u64;
    }
    tx.commit().await?;
    Ok(purged)
}

/// Every table casebridge keeps rows in, for the sizes shown.
pub const TABLES: &[&str] = &[
    "conversations",
    "messages",
    "events",
    "jobs",
    "timeline",
    "written_records",
    "deliveries",
    "delivery_attempts",
    "ai_evaluations",
    "erasures",
];

/// How much is stored: rows per table and the database's size.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub at: i64,
    pub rows: Vec<(&'static str, i64)>,
    /// The database's bytes on disk (SQLite: the main file without its
    /// WAL; PostgreSQL: `pg_database_size`).
    pub database_bytes: i64,
    /// SQLite: bytes of free pages, reused by new rows before the file
    /// grows (the file never shrinks by itself). `None` on PostgreSQL.
    pub free_bytes: Option<i64>,
}

/// Counts every table's rows (one `COUNT(*)` each, on a reader connection:
/// seconds at tens of millions of rows, so callers cache the answer).
pub async fn sizes(db: &Db) -> Result<Sizes> {
    let mut rows = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(db.pool())
            .await?
            .try_get("n")?;
        rows.push((*table, n));
    }
    let (database_bytes, free_bytes) = match db.backend() {
        Backend::Sqlite => {
            let r = sqlx::query(
                "SELECT p.page_count * s.page_size AS size, f.freelist_count * s.page_size AS free \
                 FROM pragma_page_count() p, pragma_page_size() s, pragma_freelist_count() f",
            )
            .fetch_one(db.pool())
            .await?;
            (r.try_get("size")?, Some(r.try_get("free")?))
        }
        Backend::Postgres => {
            let r = sqlx::query("SELECT pg_database_size(current_database()) AS size")
                .fetch_one(db.pool())
                .await?;
            (r.try_get("size")?, None)
        }
    };
    Ok(Sizes {
        at: now_ms(),
        rows,
        database_bytes,
        free_bytes,
    })
}
