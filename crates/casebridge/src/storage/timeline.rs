//! The `timeline` table: what happened to a conversation, in words, for the
//! admin page and the API.

use sqlx::Row;

use super::{for_backend, now_ms, value_rows, Db, Result, WriteTx, ROWS_PER_STATEMENT};
use crate::domain::{ConversationId, OrgId};

/// A timeline line to add.
pub struct TimelineIn<'a> {
    pub conversation_id: &'a ConversationId,
    pub kind: &'a str,
    pub summary: String,
    pub attempts: Option<i64>,
}

/// Appends lines to conversations' timelines, in the given order.
pub async fn add_timelines(
    conn: &mut sqlx::AnyConnection,
    org_id: &OrgId,
    rows: &[TimelineIn<'_>],
) -> Result<()> {
    let now = now_ms();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO timeline (org_id, at, id, conversation_id, kind, summary, attempts) VALUES {}",
            value_rows("(?, ?, ?, ?, ?, ?, ?)", chunk.len(), 1)
        );
        let sql = for_backend(conn, sql);
        let mut q = super::rows_query(&sql, chunk.len());
        for t in chunk {
            q = q
                .bind(org_id)
                .bind(now)
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(t.conversation_id)
                .bind(t.kind)
                .bind(t.summary.as_str())
                .bind(t.attempts);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Appends to a conversation's timeline (inside a transaction or not).
pub async fn add_timeline(
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    kind: &str,
    summary: &str,
    attempts: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO timeline (id, org_id, conversation_id, at, kind, summary, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(org_id)
    .bind(conversation_id)
    .bind(now_ms())
    .bind(kind)
    .bind(summary)
    .bind(attempts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// [`add_timeline`] in a transaction of its own.
pub async fn add_timeline_alone(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    kind: &str,
    summary: &str,
    attempts: Option<i64>,
) -> Result<()> {
    let mut tx = db.write().await?;
    add_timeline(&mut tx, org_id, conversation_id, kind, summary, attempts).await?;
    tx.commit().await
}

/// Notes a call from Creatio on the conversation's timeline: calls within
/// `window_ms` of the newest such line are counted on it (`attempts` holds
/// the number of calls, `summary` the latest) instead of each adding a
/// line, so a process calling in a loop cannot grow the timeline.
pub async fn note_webhook_call(
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    summary: &str,
    window_ms: i64,
) -> Result<()> {
    let now = now_ms();
    let recent = sqlx::query(
        "SELECT id, attempts FROM timeline WHERE org_id = $1 AND conversation_id = $2 \
         AND kind = 'webhook' AND at > $3 ORDER BY at DESC, id DESC LIMIT 1",
    )
    .bind(org_id)
    .bind(conversation_id)
    .bind(now - window_ms)
    .fetch_optional(&mut **tx)
    .await?;
    match recent {
        Some(row) => {
            let id: String = row.try_get("id")?;
            let calls = row.try_get::<Option<i64>, _>("attempts")?.unwrap_or(1) + 1;
            sqlx::query("UPDATE timeline SET summary = $1, attempts = $2 WHERE id = $3")
                .bind(format!("{summary} ({calls} calls)"))
                .bind(calls)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        None => {
            add_timeline(tx, org_id, conversation_id, "webhook", summary, Some(1)).await?;
        }
    }
    Ok(())
}
