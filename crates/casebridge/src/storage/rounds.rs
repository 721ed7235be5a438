//! What a round of message jobs ([`crate::sync::round`]) reads in a few
//! statements (the conversations' unwritten messages up to their first
//! barrier) and records in one transaction: contacts and cases linked,
//! messages written and remembered, jobs done, timeline lines.

use sqlx::Row;

use super::jobs::Job;
use super::messages::{message_from, Message};
use super::outbox::JOBS;
use super::timeline::{add_timelines, TimelineIn};
use super::written::{remember_all, Remembered};
use super::{
    for_backend, now_ms, rows_for, value_rows, Backend, Db, Result, WriteTx, ROWS_PER_STATEMENT,
};
use crate::domain::{ConversationId, OrgId};

/// What a batch of message jobs needs to know of their conversations'
/// messages, read in three statements for the whole batch.
#[derive(Default)]
pub struct Backlog {
    /// Messages not yet written, per conversation, in order.
    pub unwritten: std::collections::HashMap<ConversationId, Vec<Message>>,
    /// The position of the conversation's next queued hand-off or
    /// resolution (messages behind it wait for it).
    pub barrier: std::collections::HashMap<ConversationId, i64>,
    /// Conversations with a message written already.
    pub started: std::collections::HashSet<ConversationId>,
}

/// A batch's unwritten messages (through `messages_unwritten`: a
/// conversation's written history is never read).
const BACKLOG_MESSAGES_SQL: &str =
    "SELECT conversation_id, id, seq, role, text, attachments, occurred_at, activity_id FROM messages \
     WHERE org_id = $1 AND conversation_id IN ({ids}) AND written = 0 ORDER BY conversation_id, seq";

pub async fn backlog(
    db: &Db,
    org_id: &OrgId,
    conversation_ids: &[&ConversationId],
) -> Result<Backlog> {
    let mut b = Backlog::default();
    for r in rows_for(db, BACKLOG_MESSAGES_SQL, org_id, conversation_ids).await? {
        b.unwritten
            .entry(r.try_get("conversation_id")?)
            .or_default()
            .push(message_from(&r)?);
    }
    // The repeated state condition lets SQLite use jobs_open (see above).
    for r in rows_for(
        db,
        "SELECT conversation_id, MIN(seq) AS seq FROM jobs WHERE org_id = $1 AND conversation_id IN ({ids}) \
         AND kind <> 'message' AND state = 'pending' AND state IN ('pending', 'running') GROUP BY conversation_id",
        org_id,
        conversation_ids,
    )
    .await?
    {
        b.barrier
            .insert(r.try_get("conversation_id")?, r.try_get("seq")?);
    }
    for r in rows_for(
        db,
        "SELECT c.id FROM conversations c WHERE c.org_id = $1 AND c.id IN ({ids}) AND EXISTS ( \
         SELECT 1 FROM messages m WHERE m.org_id = c.org_id AND m.conversation_id = c.id AND m.written = 1)",
        org_id,
        conversation_ids,
    )
    .await?
    {
        b.started.insert(r.try_get("id")?);
    }
    Ok(b)
}

/// What one message job of a batch wrote to Creatio.
pub struct BatchWrite<'a> {
    pub job: &'a Job,
    /// The Contact linked to the conversation now, and whether casebridge
    /// created it.
    pub contact: Option<(String, bool)>,
    /// The Case created for the conversation, and its number.
    pub case: Option<(String, Option<String>)>,
    /// Messages written as activities: a run of the conversation's
    /// unwritten messages, in order.
    pub messages: &'a [Message],
    /// Timeline lines: kind and summary.
    pub timeline: Vec<(&'static str, String)>,
}

/// Records a batch of message jobs done with everything they wrote, in a
/// few statements of the caller's transaction: contacts and cases linked,
/// messages written (and remembered for the echo guard), each job and the
/// message jobs whose messages rode along done, the timeline.
pub async fn record_batch(
    tx: &mut WriteTx,
    org_id: &OrgId,
    writes: &[BatchWrite<'_>],
) -> Result<()> {
    let now = now_ms();
    let links = link_conversations(tx, org_id, writes, now).await?;
    let mut remembered: Vec<Remembered> = Vec::new();
    for w in links {
        let conversation_id = &w.job.conversation_id;
        if let Some((id, true)) = &w.contact {
            remembered.push((id, "Contact", Some(conversation_id)));
        }
        if let Some((case_id, _)) = &w.case {
            remembered.push((case_id, "Case", Some(conversation_id)));
        }
    }
    for w in writes {
        for m in w.messages {
            remembered.push((&m.activity_id, "Activity", Some(&w.job.conversation_id)));
        }
    }
    remember_all(tx, org_id, &remembered).await?;
    mark_spans_written(tx, org_id, writes, now).await?;
    let ids: Vec<&str> = writes.iter().map(|w| w.job.id.as_str()).collect();
    JOBS.finish_all(tx, &ids).await?;
    let lines: Vec<TimelineIn> = writes
        .iter()
        .flat_map(|w| {
            w.timeline.iter().map(|(kind, summary)| TimelineIn {
                conversation_id: &w.job.conversation_id,
                kind,
                summary: summary.clone(),
                attempts: Some(w.job.attempts),
            })
        })
        .collect();
    add_timelines(tx, org_id, &lines).await
}

/// Links conversations to their contacts and new cases: one UPDATE … FROM
/// (VALUES …) per chunk. Returns the writes that linked something, in
/// conversation id order.
async fn link_conversations<'w, 'a>(
    tx: &mut WriteTx,
    org_id: &OrgId,
    writes: &'w [BatchWrite<'a>],
    now: i64,
) -> Result<Vec<&'w BatchWrite<'a>>> {
    let mut links: Vec<&BatchWrite> = writes
        .iter()
        .filter(|w| w.contact.is_some() || w.case.is_some())
        .collect();
    // PostgreSQL: lock the conversation rows first, in id order, the order
    // ingest's upsert takes them in; the UPDATE … FROM joins in whatever
    // order its plan picks, which deadlocked against a concurrent ingest.
    links.sort_by(|a, b| a.job.conversation_id.cmp(&b.job.conversation_id));
    if tx.backend() == Backend::Postgres {
        let ids: Vec<&str> = links
            .iter()
            .map(|w| w.job.conversation_id.as_str())
            .collect();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id FROM conversations WHERE org_id = $1 AND id IN ({}) ORDER BY id FOR UPDATE",
                value_rows("?", chunk.len(), 2)
            );
            let mut q = super::rows_query(&sql, chunk.len()).bind(org_id);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut **tx).await?;
        }
    }
    for chunk in links.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE conversations SET creatio_contact_id = COALESCE(v.column2, creatio_contact_id), \
             case_created = CASE WHEN v.column3 IS NULL THEN case_created ELSE 1 END, \
             case_number = COALESCE(v.column4, case_number), updated_at = $1 \
             FROM (VALUES {}) AS v WHERE conversations.org_id = ${} AND conversations.id = v.column1",
            value_rows("(?, ?, ?, ?)", chunk.len(), 2),
            2 + chunk.len() * 4
        );
        let sql = for_backend(tx, sql);
        let mut q = super::rows_query(&sql, chunk.len()).bind(now);
        for w in chunk {
            let (case_id, number) = match &w.case {
                Some((id, number)) => (Some(id.as_str()), number.as_deref()),
                None => (None, None),
            };
            q = q
                .bind(w.job.conversation_id.as_str())
                .bind(w.contact.as_ref().map(|(id, _)| id.as_str()))
                .bind(case_id)
                .bind(number);
        }
        q.bind(org_id).execute(&mut **tx).await?;
    }
    Ok(links)
}

/// Per conversation: the messages written are exactly its unwritten ones
/// from the first to the last position written (newer messages take
/// higher positions), and its pending message jobs up to that last one are
/// done: their messages rode along. The conversations are a VALUES list on
/// the left of a CROSS JOIN, which SQLite always makes the outer loop, so
/// each row is an index lookup (joined any other way, or as an OR chain,
/// SQLite's planner scans the org's messages or every pending job); the
/// outer `IN` then goes by primary key.
async fn mark_spans_written(
    tx: &mut WriteTx,
    org_id: &OrgId,
    writes: &[BatchWrite<'_>],
    now: i64,
) -> Result<()> {
    let spans: Vec<(&str, i64, i64)> = writes
        .iter()
        .filter_map(|w| {
            let (first, last) = (w.messages.first()?, w.messages.last()?);
            Some((w.job.conversation_id.as_str(), first.seq, last.seq))
        })
        .collect();
    for chunk in spans.chunks(ROWS_PER_STATEMENT) {
        let sql = for_backend(tx, spans_written_sql(chunk.len()));
        let mut q = super::rows_query(&sql, chunk.len()).bind(org_id);
        for (conversation_id, first, last) in chunk {
            q = q.bind(*conversation_id).bind(*first).bind(*last);
        }
        q.bind(org_id).execute(&mut **tx).await?;
        let sql = for_backend(tx, ride_along_done_sql(chunk.len()));
        let mut q = super::rows_query(&sql, chunk.len()).bind(now);
        for (conversation_id, _, last) in chunk {
            q = q.bind(*conversation_id).bind(*last);
        }
        q.bind(org_id).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Marks `n` conversations' messages written: binds the org, then each
/// conversation's id, first and last position written, then the org again.
fn spans_written_sql(n: usize) -> String {
    format!(
        "UPDATE messages SET written = 1 WHERE org_id = $1 AND (conversation_id, id) IN ( \
         SELECT m.conversation_id, m.id FROM (VALUES {}) AS v CROSS JOIN messages m \
         WHERE m.org_id = ${} AND m.conversation_id = v.column1 \
         AND m.seq BETWEEN v.column2 AND v.column3 AND m.written = 0)",
        value_rows("(?, ?, ?)", n, 2),
        2 + n * 3
    )
}

/// Marks `n` conversations' pending message jobs done up to a position:
/// binds the time, then each conversation's id and last position, then
/// the org. The state condition is repeated in the form of `jobs_open`'s,
/// which SQLite needs to use that partial index.
fn ride_along_done_sql(n: usize) -> String {
    format!(
        "UPDATE jobs SET state = 'done', updated_at = $1 WHERE id IN ( \
         SELECT j.id FROM (VALUES {}) AS v CROSS JOIN jobs j \
         WHERE j.org_id = ${} AND j.conversation_id = v.column1 AND j.seq <= v.column2 \
         AND j.kind = 'message' AND j.state = 'pending' AND j.state IN ('pending', 'running'))",
        value_rows("(?, ?)", n, 2),
        2 + n * 2
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::query_plan as plan;

    /// A round's records touch each conversation's rows through an index:
    /// the bundled SQLite scanned every pending job or every message of the
    /// org for other multi-row forms, which made records slower the longer
    /// the service ran.
    #[tokio::test]
    async fn round_records_go_by_index_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("p.db").display()))
            .await
            .unwrap();
        let messages = plan(&db, &spans_written_sql(3), 2 + 3 * 3).await;
        assert!(!messages.contains("SCAN messages"), "{messages}");
        assert!(
            !messages.contains("SCAN m\n") && !messages.ends_with("SCAN m"),
            "{messages}"
        );
        assert!(
            messages.contains("USING INDEX messages_in_order")
                || messages.contains("USING INDEX messages_unwritten"),
            "{messages}"
        );
        let jobs = plan(&db, &ride_along_done_sql(3), 2 + 3 * 2).await;
        assert!(
            !jobs.contains("SCAN jobs") && !jobs.contains("SCAN j\n"),
            "{jobs}"
        );
        assert!(jobs.contains("USING INDEX jobs_open"), "{jobs}");
    }

    /// What a round reads of a conversation is its open part only (a
    /// partial index), never its whole history: the soak (scripts/soak.py)
    /// showed the cost per message growing with it.
    #[tokio::test]
    async fn a_round_reads_no_conversation_history_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("p.db").display()))
            .await
            .unwrap();
        let backlog = plan(&db, &BACKLOG_MESSAGES_SQL.replace("{ids}", "$2, $3"), 3).await;
        assert!(backlog.contains("INDEX messages_unwritten"), "{backlog}");
    }
}
