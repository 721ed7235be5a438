//! The `messages` table: each conversation's messages in order, and which of
//! them are written to Creatio as Activities.

use sqlx::Row;

use super::timeline::add_timeline;
use super::written::{remember_all, Remembered};
use super::{for_backend, now_ms, value_rows, Db, Result, WriteTx, ROWS_PER_STATEMENT};
use crate::domain::MessageRole;
use crate::domain::{ConversationId, MessageId, OrgId};

pub struct MessageIn<'a> {
    pub conversation_id: &'a ConversationId,
    pub id: &'a MessageId,
    pub seq: i64,
    pub role: MessageRole,
    pub text: &'a str,
    pub attachments: Option<&'a str>,
    pub occurred_at: i64,
    pub activity_id: &'a str,
}

/// Stores messages; returns the `(conversation, message)` ids that were
/// new (a message the conversation has already is not stored again).
pub async fn insert_messages(
    tx: &mut WriteTx,
    org_id: &OrgId,
    rows: &[MessageIn<'_>],
) -> Result<std::collections::HashSet<(ConversationId, MessageId)>> {
    let mut fresh = std::collections::HashSet::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO messages (org_id, conversation_id, id, seq, role, text, attachments, occurred_at, activity_id, written) \
             VALUES {} ON CONFLICT (org_id, conversation_id, id) DO NOTHING RETURNING conversation_id, id",
            value_rows("(?, ?, ?, ?, ?, ?, ?, ?, ?, 0)", chunk.len(), 1)
        );
        let sql = for_backend(tx, sql);
        let mut q = super::rows_query(&sql, chunk.len());
        for m in chunk {
            q = q
                .bind(org_id)
                .bind(m.conversation_id)
                .bind(m.id)
                .bind(m.seq)
                .bind(m.role.as_str())
                .bind(m.text)
                .bind(m.attachments)
                .bind(m.occurred_at)
                .bind(m.activity_id);
        }
        for r in q.fetch_all(&mut **tx).await? {
            fresh.insert((r.try_get("conversation_id")?, r.try_get("id")?));
        }
    }
    Ok(fresh)
}

/// The role of the conversation's message at `seq`, if it is not written yet.
pub async fn unwritten_message_role(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    seq: i64,
) -> Result<Option<MessageRole>> {
    let row = sqlx::query(
        "SELECT role FROM messages WHERE org_id = $1 AND conversation_id = $2 AND seq = $3 AND written = 0",
    )
    .bind(org_id)
    .bind(conversation_id)
    .bind(seq)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| super::stored(r.try_get("role")?, "messages.role", MessageRole::parse))
        .transpose()
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: MessageId,
    pub seq: i64,
    pub role: MessageRole,
    pub text: String,
    pub attachments: Option<String>,
    pub occurred_at: i64,
    pub activity_id: String,
}

/// Messages not yet written to Creatio, up to `seq`, in order.
pub async fn unwritten_messages(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    up_to_seq: i64,
) -> Result<Vec<Message>> {
    let rows = sqlx::query(
        "SELECT id, seq, role, text, attachments, occurred_at, activity_id FROM messages \
         WHERE org_id = $1 AND conversation_id = $2 AND written = 0 AND seq <= $3 ORDER BY seq",
    )
    .bind(org_id)
    .bind(conversation_id)
    .bind(up_to_seq)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(message_from).collect()
}

/// Messages not yet written, in order, that may go before the
/// conversation's next hand-off or resolution after `seq`: a message job
/// writes the messages queued behind it, never past such a job.
pub async fn unwritten_messages_before_barrier(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    seq: i64,
) -> Result<Vec<Message>> {
    let rows = sqlx::query(
        "SELECT id, seq, role, text, attachments, occurred_at, activity_id FROM messages \
         WHERE org_id = $1 AND conversation_id = $2 AND written = 0 AND seq < COALESCE( \
           (SELECT MIN(j.seq) FROM jobs j WHERE j.org_id = $1 AND j.conversation_id = $2 \
            AND j.seq > $3 AND j.kind <> 'message'), 9223372036854775807) \
         ORDER BY seq",
    )
    .bind(org_id)
    .bind(conversation_id)
    .bind(seq)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(message_from).collect()
}

pub(super) fn message_from(r: &sqlx::any::AnyRow) -> Result<Message> {
    Ok(Message {
        id: r.try_get("id")?,
        seq: r.try_get("seq")?,
        role: super::stored(r.try_get("role")?, "messages.role", MessageRole::parse)?,
        text: r.try_get("text")?,
        attachments: r.try_get("attachments")?,
        occurred_at: r.try_get("occurred_at")?,
        activity_id: r.try_get("activity_id")?,
    })
}

/// Whether the conversation has any message already written (the first
/// activity carries the deep link).
pub async fn any_message_written(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
) -> Result<bool> {
    // One row at most: a long conversation is not counted through.
    let row = sqlx::query("SELECT COUNT(*) AS n FROM (SELECT 1 FROM messages WHERE org_id = $1 AND conversation_id = $2 AND written = 1 LIMIT 1) t")
        .bind(org_id)
        .bind(conversation_id)
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// The first customer message's text, for the case subject.
pub async fn first_customer_text(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT text FROM messages WHERE org_id = $1 AND conversation_id = $2 AND role = 'customer' ORDER BY seq LIMIT 1",
    )
    .bind(org_id)
    .bind(conversation_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|r| r.try_get("text")).transpose()?)
}

/// What a job records after writing activities, in one transaction: the
/// messages written (remembered for the echo guard), the message jobs whose
/// work that was, the job itself, and the timeline line.
#[derive(Default)]
pub struct Written<'a> {
    pub messages: &'a [Message],
    /// Pending message jobs up to this position are done: their messages
    /// rode along in this job's batch.
    pub finish_message_jobs_up_to: Option<i64>,
    /// This job is done.
    pub finish_job: Option<&'a str>,
    /// A timeline line and the attempt it belongs to.
    pub timeline: Option<(&'a str, i64)>,
}

pub async fn record_written(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    w: Written<'_>,
) -> Result<()> {
    let now = now_ms();
    let mut tx = db.write().await?;
    // Two statements per hundred messages, not two per message: each
    // statement is a round trip to the database's connection thread.
    for chunk in w.messages.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE messages SET written = 1 WHERE org_id = $1 AND conversation_id = $2 AND id IN ({})",
            value_rows("?", chunk.len(), 3)
        );
        let sql = for_backend(&tx, sql);
        let mut q = super::rows_query(&sql, chunk.len())
            .bind(org_id)
            .bind(conversation_id);
        for m in chunk {
            q = q.bind(&m.id);
        }
        q.execute(&mut *tx).await?;
    }
    let activities: Vec<Remembered> = w
        .messages
        .iter()
        .map(|m| (m.activity_id.as_str(), "Activity", Some(conversation_id)))
        .collect();
    remember_all(&mut tx, org_id, &activities).await?;
    if let Some(up_to) = w.finish_message_jobs_up_to {
        // `state IN ('pending', 'running')` as well: SQLite uses a partial
        // index (jobs_open) only when the query repeats its condition.
        sqlx::query(
            "UPDATE jobs SET state = 'done', updated_at = $1 WHERE org_id = $2 AND conversation_id = $3 \
             AND kind = 'message' AND state = 'pending' AND state IN ('pending', 'running') AND seq <= $4",
        )
        .bind(now)
        .bind(org_id)
        .bind(conversation_id)
        .bind(up_to)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(id) = w.finish_job {
        sqlx::query(
            "UPDATE jobs SET state = 'done', locked_until = NULL, last_error = NULL, updated_at = $1 \
             WHERE id = $2 AND state IN ('running', 'cancelled')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    if let Some((summary, attempts)) = w.timeline {
        add_timeline(
            &mut tx,
            org_id,
            conversation_id,
            "creatio",
            summary,
            Some(attempts),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Marks messages written (and remembered), nothing else.
pub async fn mark_written(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    messages: &[Message],
) -> Result<()> {
    record_written(
        db,
        org_id,
        conversation_id,
        Written {
            messages,
            ..Default::default()
        },
    )
    .await
}
