//! The echo guard's memory (`written_records`): every record casebridge
//! wrote to Creatio, by id, so a webhook about it is not taken for an
//! agent's reply.

use super::{for_backend, now_ms, value_rows, Db, Result, WriteTx, ROWS_PER_STATEMENT};
use crate::domain::{ConversationId, OrgId};

/// A record casebridge wrote: its id, entity and conversation.
pub(super) type Remembered<'a> = (&'a str, &'static str, Option<&'a ConversationId>);

/// Remembers records casebridge wrote (the echo guard's memory), a few
/// hundred per statement.
pub(super) async fn remember_all(
    tx: &mut WriteTx,
    org_id: &OrgId,
    rows: &[Remembered<'_>],
) -> Result<()> {
    let now = now_ms();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO written_records (org_id, written_at, record_id, entity, conversation_id) VALUES {} \
             ON CONFLICT (org_id, record_id) DO NOTHING",
            value_rows("(?, ?, ?, ?, ?)", chunk.len(), 1)
        );
        let sql = for_backend(tx, sql);
        let mut q = super::rows_query(&sql, chunk.len());
        for (id, entity, conversation_id) in chunk {
            q = q
                .bind(org_id)
                .bind(now)
                .bind(*id)
                .bind(*entity)
                .bind(*conversation_id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Remembers a record casebridge wrote (the echo guard's memory).
pub async fn remember_written(
    db: &Db,
    org_id: &OrgId,
    record_id: &str,
    entity: &'static str,
    conversation_id: Option<&ConversationId>,
) -> Result<()> {
    let mut tx = db.write().await?;
    remember_all(&mut tx, org_id, &[(record_id, entity, conversation_id)]).await?;
    tx.commit().await?;
    Ok(())
}

/// Which of `ids` casebridge wrote itself (the echo guard).
pub async fn written_among(db: &Db, org_id: &OrgId, ids: &[String]) -> Result<Vec<String>> {
    super::present_among(db, "written_records", "record_id", org_id, ids).await
}

/// Whether casebridge wrote the record (or marker) `record_id`.
pub async fn was_written(db: &Db, org_id: &OrgId, record_id: &str) -> Result<bool> {
    Ok(!written_among(db, org_id, &[record_id.to_string()])
        .await?
        .is_empty())
}
