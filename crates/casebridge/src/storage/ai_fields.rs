//! AI field mappings per org, the evaluation each hand-off made, and the
//! transcript an evaluation reads (the conversation's stored messages).

use sqlx::Row;

use super::{now_ms, Db, Result, StorageError, WriteQuery};
use crate::ai::{Line, Mapping, Speaker};
use crate::domain::{ConversationId, EventId, OrgId};

/// The org's mappings; none saved is an empty list.
pub async fn mappings(db: &Db, org_id: &OrgId) -> Result<Vec<Mapping>> {
    let row = sqlx::query("SELECT mappings FROM ai_fields WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(db.pool())
        .await?;
    match row {
        None => Ok(Vec::new()),
        Some(r) => {
            let text: String = r.try_get("mappings")?;
            serde_json::from_str(&text).map_err(|e| {
                StorageError::Corrupt(format!("AI field mappings of org {org_id}: {e}"))
            })
        }
    }
}

/// Replaces the org's mappings.
pub async fn save_mappings(db: &Db, org_id: &OrgId, mappings: &[Mapping]) -> Result<()> {
    let text = serde_json::to_string(mappings)
        .map_err(|e| StorageError::Corrupt(format!("AI field mappings: {e}")))?;
    sqlx::query(
        "INSERT INTO ai_fields (org_id, mappings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id) DO UPDATE SET mappings = excluded.mappings, updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(text)
    .bind(now_ms())
    .write_on(db)
    .await?;
    Ok(())
}

/// The evaluation stored for a hand-off event, if one was made.
pub async fn evaluation(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    event_id: &EventId,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT result FROM ai_evaluations WHERE org_id = $1 AND conversation_id = $2 AND event_id = $3",
    )
    .bind(org_id)
    .bind(conversation_id)
    .bind(event_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|r| r.try_get("result")).transpose()?)
}

/// Stores a hand-off's evaluation unless one is stored already (a
/// concurrent run of the same job). True when this one was stored.
pub async fn save_evaluation(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    event_id: &EventId,
    result: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO ai_evaluations (org_id, conversation_id, event_id, result, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, conversation_id, event_id) DO NOTHING",
    )
    .bind(org_id)
    .bind(conversation_id)
    .bind(event_id)
    .bind(result)
    .bind(now_ms())
    .write_on(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The conversation's messages in order (those before `before_seq` when
/// given: what was said up to a hand-off).
pub async fn transcript_lines(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    before_seq: Option<i64>,
) -> Result<Vec<Line>> {
    let rows = sqlx::query(
        "SELECT role, text FROM messages WHERE org_id = $1 AND conversation_id = $2 AND seq < $3 ORDER BY seq",
    )
    .bind(org_id)
    .bind(conversation_id)
    .bind(before_seq.unwrap_or(i64::MAX))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Line {
                speaker: Speaker::parse(&r.try_get::<String, _>("role")?),
                text: r.try_get("text")?,
            })
        })
        .collect()
}
