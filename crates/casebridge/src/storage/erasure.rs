//! Erasure: removing the personal data casebridge holds about
//! conversations (texts, names, addresses, payloads), and the audit line
//! that records it without that data.
//!
//! A conversation row stays as a key: its case and contact links, so an
//! event arriving later joins the same case instead of opening a second
//! one. So do the echo guard's records (ids of what casebridge wrote, no
//! text), or an agent's edit of an erased conversation's case could send
//! casebridge's own writes back to the platform.

use serde::Serialize;
use sqlx::Row;

use super::WriteTx;
use super::{now_ms, value_rows, Db, Result, ROWS_PER_STATEMENT};
use crate::domain::{ConversationId, OrgId};

/// Rows removed, per kind.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Removed {
    pub messages: u64,
    pub ai_evaluations: u64,
    pub events: u64,
    pub jobs: u64,
    pub timeline: u64,
    pub deliveries: u64,
    pub delivery_attempts: u64,
}

/// `sql` (with `$1` the org and an `IN ({ids})` list) for `chunk`, bound.
fn chunk_query<'q>(
    tx: &WriteTx,
    sql: &'q mut String,
    template: &str,
    org_id: &'q OrgId,
    chunk: &'q [ConversationId],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    *sql = super::for_backend(
        tx,
        template.replace("{ids}", &value_rows("?", chunk.len(), 2)),
    );
    let mut q = super::rows_query(sql, chunk.len()).bind(org_id);
    for id in chunk {
        q = q.bind(id);
    }
    q
}

/// Runs `sql` for every chunk of `ids` in `tx`; returns the rows it changed.
async fn for_chunks(
    tx: &mut WriteTx,
    sql: &str,
    org_id: &OrgId,
    ids: &[ConversationId],
) -> Result<u64> {
    let mut changed = 0;
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut text = String::new();
        let q = chunk_query(tx, &mut text, sql, org_id, chunk);
        changed += q.execute(&mut **tx).await?.rows_affected();
    }
    Ok(changed)
}

/// Runs the query `sql` for every chunk of `ids` in `tx`; returns every row.
async fn rows_for_chunks(
    tx: &mut WriteTx,
    sql: &str,
    org_id: &OrgId,
    ids: &[ConversationId],
) -> Result<Vec<sqlx::any::AnyRow>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut text = String::new();
        let q = chunk_query(tx, &mut text, sql, org_id, chunk);
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// Deletes the rows of `table` (with `org_id` and `conversation_id`
/// columns) that belong to the org's conversations `ids`.
async fn delete_in(
    tx: &mut WriteTx,
    table: &str,
    org_id: &OrgId,
    ids: &[ConversationId],
) -> Result<u64> {
    let sql = format!("DELETE FROM {table} WHERE org_id = $1 AND conversation_id IN ({{ids}})");
    for_chunks(tx, &sql, org_id, ids).await
}

/// The texts of an org's conversations `ids`: their messages, AI results,
/// and the contact's name, e-mail and phone on the conversation row.
/// Shared by retention (conversations long idle) and erasure.
pub(super) async fn remove_texts(
    tx: &mut WriteTx,
    org_id: &OrgId,
    ids: &[ConversationId],
) -> Result<Removed> {
    let messages = delete_in(tx, "messages", org_id, ids).await?;
    let ai_evaluations = delete_in(tx, "ai_evaluations", org_id, ids).await?;
    for_chunks(
        tx,
        "UPDATE conversations SET contact_name = NULL, contact_email = NULL, contact_phone = NULL, \
         text_purged = 1 WHERE org_id = $1 AND id IN ({ids})",
        org_id,
        ids,
    )
    .await?;
    Ok(Removed {
        messages,
        ai_evaluations,
        ..Removed::default()
    })
}

/// A conversation whose sync is still running: what is open.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StillSyncing {
    pub conversation_id: ConversationId,
    pub open_jobs: i64,
    pub undelivered: i64,
}

/// Who asked for an erasure and what it covered, for the audit line.
pub struct Request<'a> {
    /// Who asked: the API key, by id.
    pub actor: &'a str,
    /// `conversation` or `contact`.
    pub scope: &'a str,
    /// The conversation id for a conversation's erasure; `None` for a
    /// contact's (the e-mail or phone is what is being erased).
    pub subject: Option<&'a str>,
}

/// An erasure done.
#[derive(Debug, Clone, Serialize)]
pub struct Erased {
    pub audit_id: String,
    pub at: i64,
    pub removed: Removed,
}

/// Erases the personal data of an org's conversations `ids`, all or
/// nothing: when any of them is still syncing (a job pending or running,
/// a delivery pending or being sent) nothing changes and those are
/// returned. Records the audit line in the same transaction.
pub async fn erase_conversations(
    db: &Db,
    org_id: &OrgId,
    ids: &[ConversationId],
    request: &Request<'_>,
) -> Result<std::result::Result<Erased, Vec<StillSyncing>>> {
    let now = now_ms();
    let mut tx = db.write().await?;
    // Lock the rows in id order, as ingest does: an event for one of them
    // waits for the erasure and lands after it.
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    if db.backend() == super::Backend::Postgres {
        for_chunks(
            &mut tx,
            "SELECT id FROM conversations WHERE org_id = $1 AND id IN ({ids}) ORDER BY id FOR UPDATE",
            org_id,
            &sorted,
        )
        .await?;
    }
    let busy = still_syncing(&mut tx, org_id, &sorted).await?;
    if !busy.is_empty() {
        // Dropped: rolled back.
        return Ok(Err(busy));
    }
    let texts = remove_texts(&mut tx, org_id, &sorted).await?;
    let removed = Removed {
        events: delete_in(&mut tx, "events", org_id, &sorted).await?,
        jobs: delete_in(&mut tx, "jobs", org_id, &sorted).await?,
        timeline: delete_in(&mut tx, "timeline", org_id, &sorted).await?,
        // Attempts before their deliveries: they are found through them.
        delivery_attempts: for_chunks(
            &mut tx,
            "DELETE FROM delivery_attempts WHERE delivery_id IN ( \
             SELECT id FROM deliveries WHERE org_id = $1 AND conversation_id IN ({ids}))",
            org_id,
            &sorted,
        )
        .await?,
        deliveries: delete_in(&mut tx, "deliveries", org_id, &sorted).await?,
        ..texts
    };
    // The conversation's address on the platform goes too; the row keeps
    // its ids, state and links.
    let mark = format!(
        "UPDATE conversations SET url = NULL, erased_at = {now} WHERE org_id = $1 AND id IN ({{ids}})"
    );
    for_chunks(&mut tx, &mark, org_id, &sorted).await?;
    let audit_id = audit(&mut tx, org_id, &sorted, removed, request, now).await?;
    tx.commit().await?;
    db.flush_erased().await;
    Ok(Ok(Erased {
        audit_id,
        at: now,
        removed,
    }))
}

/// The erasure's audit line (no personal data) and each conversation's
/// timeline line; returns the audit line's id.
async fn audit(
    tx: &mut WriteTx,
    org_id: &OrgId,
    sorted: &[ConversationId],
    removed: Removed,
    request: &Request<'_>,
    now: i64,
) -> Result<String> {
    let audit_id = uuid::Uuid::now_v7().to_string();
    let counts = serde_json::json!({"conversations": sorted.len(), "removed": removed});
    sqlx::query(
        "INSERT INTO erasures (id, org_id, at, actor, scope, subject, counts) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&audit_id)
    .bind(org_id)
    .bind(now)
    .bind(request.actor)
    .bind(request.scope)
    .bind(request.subject)
    .bind(counts.to_string())
    .execute(&mut **tx)
    .await?;
    let lines: Vec<super::timeline::TimelineIn> = sorted
        .iter()
        .map(|id| super::timeline::TimelineIn {
            conversation_id: id,
            kind: "event",
            summary: format!(
                "Personal data erased at the request of {} (erasure {audit_id}); Creatio was not changed",
                request.actor
            ),
            attempts: None,
        })
        .collect();
    super::timeline::add_timelines(tx, org_id, &lines).await?;
    Ok(audit_id)
}

/// Which of `ids` have a job pending or running, or a delivery pending or
/// being sent.
async fn still_syncing(
    tx: &mut WriteTx,
    org_id: &OrgId,
    ids: &[ConversationId],
) -> Result<Vec<StillSyncing>> {
    let mut open: std::collections::BTreeMap<ConversationId, (i64, i64)> = Default::default();
    for (sql, jobs) in [
        (
            "SELECT conversation_id, COUNT(*) AS n FROM jobs WHERE org_id = $1 AND conversation_id IN ({ids}) \
             AND state IN ('pending', 'running') GROUP BY conversation_id",
            true,
        ),
        (
            "SELECT conversation_id, COUNT(*) AS n FROM deliveries WHERE org_id = $1 AND conversation_id IN ({ids}) \
             AND state IN ('pending', 'delivering') GROUP BY conversation_id",
            false,
        ),
    ] {
        for r in rows_for_chunks(tx, sql, org_id, ids).await? {
            let entry = open.entry(r.try_get("conversation_id")?).or_default();
            let n: i64 = r.try_get("n")?;
            if jobs {
                entry.0 = n;
            } else {
                entry.1 = n;
            }
        }
    }
    Ok(open
        .into_iter()
        .map(|(conversation_id, (open_jobs, undelivered))| StillSyncing {
            conversation_id,
            open_jobs,
            undelivered,
        })
        .collect())
}

/// An audit line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLine {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub scope: String,
    pub subject: Option<String>,
    pub counts: serde_json::Value,
}

/// The org's erasures, newest first.
pub async fn audit_lines(db: &Db, org_id: &OrgId, limit: i64) -> Result<Vec<AuditLine>> {
    sqlx::query(
        "SELECT id, at, actor, scope, subject, counts FROM erasures WHERE org_id = $1 \
         ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(org_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|r| {
        let (id, counts): (String, String) = (r.try_get("id")?, r.try_get("counts")?);
        let counts = serde_json::from_str(&counts).map_err(|e| {
            super::StorageError::Corrupt(format!("the counts of erasure {id}: {e}"))
        })?;
        Ok(AuditLine {
            id,
            at: r.try_get("at")?,
            actor: r.try_get("actor")?,
            scope: r.try_get("scope")?,
            subject: r.try_get("subject")?,
            counts,
        })
    })
    .collect()
}
