//! The `events` table: each platform event id, kept so a re-sent event is
//! answered as a duplicate instead of stored twice (the idempotency keys).

use sqlx::Row;

use super::{for_backend, now_ms, value_rows, Result, WriteTx, ROWS_PER_STATEMENT};
use crate::domain::{ConversationId, EventId, OrgId};

/// An event id as ingest records it.
pub struct EventRow<'a> {
    pub id: &'a EventId,
    pub conversation_id: &'a ConversationId,
    pub kind: &'a str,
}

/// Records event ids; returns those the org had not seen before (the
/// others are repeats, answered `duplicate`).
pub async fn insert_events(
    tx: &mut WriteTx,
    org_id: &OrgId,
    rows: &[EventRow<'_>],
) -> Result<std::collections::HashSet<EventId>> {
    let now = now_ms();
    let mut fresh = std::collections::HashSet::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = for_backend(
            tx,
            format!(
                "INSERT INTO events (org_id, received_at, id, conversation_id, type) VALUES {} \
                 ON CONFLICT (org_id, id) DO NOTHING RETURNING id",
                value_rows("(?, ?, ?, ?, ?)", chunk.len(), 1)
            ),
        );
        let mut q = super::rows_query(&sql, chunk.len());
        for e in chunk {
            q = q
                .bind(org_id)
                .bind(now)
                .bind(e.id)
                .bind(e.conversation_id)
                .bind(e.kind);
        }
        for r in q.fetch_all(&mut **tx).await? {
            fresh.insert(r.try_get::<EventId, _>("id")?);
        }
    }
    Ok(fresh)
}
