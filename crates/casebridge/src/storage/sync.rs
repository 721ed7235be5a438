//! The sync engine's tables: conversations, events, messages, jobs (the
//! outbox), the timeline and the records written to Creatio.
//!
//! Ingest writes an event, its message and its job in the caller's
//! transaction; workers claim jobs so that a conversation's jobs run one at
//! a time in `seq` order while different conversations run in parallel, on
//! one process or several sharing a PostgreSQL database. A claim is an
//! `UPDATE … WHERE state = 'pending'` that only one claimant can win, so no
//! job runs twice at once; a crashed claimant's lease expires and the job
//! runs again (its Creatio writes are idempotent by deterministic ids).

use sqlx::{Any, Row, Transaction};

use super::{for_backend, now_ms, rows_for, value_rows, Db, Result, ROWS_PER_STATEMENT};

pub type Tx<'a> = Transaction<'a, Any>;

/// A conversation as stored.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub org_id: String,
    pub id: String,
    pub channel: String,
    pub url: Option<String>,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    pub state: String,
    pub case_id: String,
    pub case_created: bool,
    pub case_number: Option<String>,
    pub creatio_contact_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When its personal data was erased (the row stays as a key).
    pub erased_at: Option<i64>,
}

const CONVERSATION_COLUMNS: &str = "org_id, id, channel, url, contact_name, contact_email, \
    contact_phone, state, case_id, case_created, case_number, creatio_contact_id, created_at, updated_at, \
    erased_at";

fn conversation_from(r: &sqlx::any::AnyRow) -> Result<Conversation> {
    let created: i64 = r.try_get("case_created")?;
    Ok(Conversation {
        org_id: r.try_get("org_id")?,
        id: r.try_get("id")?,
        channel: r.try_get("channel")?,
        url: r.try_get("url")?,
        contact_name: r.try_get("contact_name")?,
        contact_email: r.try_get("contact_email")?,
        contact_phone: r.try_get("contact_phone")?,
        state: r.try_get("state")?,
        case_id: r.try_get("case_id")?,
        case_created: created != 0,
        case_number: r.try_get("case_number")?,
        creatio_contact_id: r.try_get("creatio_contact_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        erased_at: r.try_get("erased_at")?,
    })
}

/// An event id as ingest records it.
pub struct EventRow<'a> {
    pub id: &'a str,
    pub conversation_id: &'a str,
    pub kind: &'a str,
}

/// Records event ids; returns those the org had not seen before (the
/// others are repeats, answered `duplicate`).
pub async fn insert_events(
    tx: &mut Tx<'_>,
    org_id: &str,
    rows: &[EventRow<'_>],
) -> Result<std::collections::HashSet<String>> {
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
            fresh.insert(r.try_get::<String, _>("id")?);
        }
    }
    Ok(fresh)
}

/// A conversation as a request's events describe it, with how many job
/// positions they need.
pub struct ConversationIn<'a> {
    pub id: &'a str,
    pub channel: &'a str,
    pub url: Option<&'a str>,
    pub contact_name: Option<&'a str>,
    pub contact_email: Option<&'a str>,
    pub contact_phone: Option<&'a str>,
    pub case_id: &'a str,
    /// Job positions to take.
    pub seqs: i64,
}

/// Creates or refreshes conversations (details given replace stored ones,
/// details missing keep them) and takes `seqs` job positions for each;
/// returns each conversation's last position taken. Rows go in the given
/// order: callers sort them by id, so concurrent requests lock conversation
/// rows in one order (no deadlock on PostgreSQL) and each takes its
/// positions after the other's.
pub async fn upsert_conversations(
    tx: &mut Tx<'_>,
    org_id: &str,
    rows: &[ConversationIn<'_>],
) -> Result<std::collections::HashMap<String, i64>> {
    let now = now_ms();
    let mut last = std::collections::HashMap::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO conversations (org_id, id, channel, url, contact_name, contact_email, contact_phone, \
             state, next_seq, case_id, case_created, created_at, updated_at) VALUES {} \
             ON CONFLICT (org_id, id) DO UPDATE SET \
             url = COALESCE(excluded.url, conversations.url), \
             contact_name = COALESCE(excluded.contact_name, conversations.contact_name), \
             contact_email = COALESCE(excluded.contact_email, conversations.contact_email), \
             contact_phone = COALESCE(excluded.contact_phone, conversations.contact_phone), \
             next_seq = conversations.next_seq + excluded.next_seq, \
             updated_at = excluded.updated_at, text_purged = 0 \
             RETURNING id, next_seq",
            value_rows("(?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 0, ?, ?)", chunk.len(), 1)
        );
        let sql = for_backend(tx, sql);
        let mut q = super::rows_query(&sql, chunk.len());
        for c in chunk {
            q = q
                .bind(org_id)
                .bind(c.id)
                .bind(c.channel)
                .bind(c.url)
                .bind(c.contact_name)
                .bind(c.contact_email)
                .bind(c.contact_phone)
                .bind(c.seqs)
                .bind(c.case_id)
                .bind(now)
                .bind(now);
        }
        for r in q.fetch_all(&mut **tx).await? {
            last.insert(
                r.try_get::<String, _>("id")?,
                r.try_get::<i64, _>("next_seq")?,
            );
        }
    }
    Ok(last)
}

/// The conversation's next job position. The row update serialises
/// concurrent writers of one conversation.
async fn take_seq(tx: &mut Tx<'_>, org_id: &str, conversation_id: &str) -> Result<i64> {
    let row = sqlx::query(
        "UPDATE conversations SET next_seq = next_seq + 1 WHERE org_id = $1 AND id = $2 RETURNING next_seq",
    )
    .bind(org_id)
    .bind(conversation_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("next_seq")?)
}

pub struct MessageIn<'a> {
    pub conversation_id: &'a str,
    pub id: &'a str,
    pub seq: i64,
    pub role: &'a str,
    pub text: &'a str,
    pub attachments: Option<&'a str>,
    pub occurred_at: i64,
    pub activity_id: &'a str,
}

/// Stores messages; returns the `(conversation, message)` ids that were
/// new (a message the conversation has already is not stored again).
pub async fn insert_messages(
    tx: &mut Tx<'_>,
    org_id: &str,
    rows: &[MessageIn<'_>],
) -> Result<std::collections::HashSet<(String, String)>> {
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
                .bind(m.role)
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

/// A job to queue.
pub struct JobIn<'a> {
    pub conversation_id: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    pub payload: String,
}

/// Queues jobs (the outbox), due now.
pub async fn insert_jobs(tx: &mut Tx<'_>, org_id: &str, rows: &[JobIn<'_>]) -> Result<()> {
    insert_jobs_due(tx, org_id, rows, now_ms()).await
}

/// Queues jobs due at `due` (ms).
async fn insert_jobs_due(
    tx: &mut Tx<'_>,
    org_id: &str,
    rows: &[JobIn<'_>],
    due: i64,
) -> Result<()> {
    let now = now_ms();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO jobs (org_id, run_after, id, conversation_id, seq, kind, payload, state, attempts, created_at, updated_at) \
             VALUES {}",
            value_rows("(?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)", chunk.len(), 1)
        );
        let sql = for_backend(tx, sql);
        let mut q = super::rows_query(&sql, chunk.len());
        for j in chunk {
            q = q
                .bind(org_id)
                .bind(due)
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(j.conversation_id)
                .bind(j.seq)
                .bind(j.kind)
                .bind(j.payload.as_str())
                .bind(now)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Queues one job, due at `due` (ms).
async fn insert_job(
    tx: &mut Tx<'_>,
    org_id: &str,
    conversation_id: &str,
    seq: i64,
    kind: &str,
    payload: &str,
    due: i64,
) -> Result<()> {
    insert_jobs_due(
        tx,
        org_id,
        &[JobIn {
            conversation_id,
            seq,
            kind,
            payload: payload.to_string(),
        }],
        due,
    )
    .await
}

/// A timeline line to add.
pub struct TimelineIn<'a> {
    pub conversation_id: &'a str,
    pub kind: &'a str,
    pub summary: String,
    pub attempts: Option<i64>,
}

/// Appends lines to conversations' timelines, in the given order.
pub async fn add_timelines(
    conn: &mut sqlx::AnyConnection,
    org_id: &str,
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
pub async fn add_timeline<'e, E: sqlx::Executor<'e, Database = Any>>(
    exec: E,
    org_id: &str,
    conversation_id: &str,
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
    .execute(exec)
    .await?;
    Ok(())
}

/// Appends a line, unless the conversation's newest line says the same
/// (`kind` and `summary`) and is younger than `window_ms`: then that line
/// counts one more (`… (×3)`). For lines a loop would repeat — a look at a
/// case that found nothing new — so a timeline grows with what happened,
/// not with how often it was asked.
pub async fn add_or_repeat_timeline(
    db: &Db,
    org_id: &str,
    conversation_id: &str,
    kind: &str,
    summary: &str,
    attempts: Option<i64>,
    window_ms: i64,
) -> Result<()> {
    let now = now_ms();
    let newest = sqlx::query(
        "SELECT id, kind, summary, at FROM timeline WHERE org_id = $1 AND conversation_id = $2 \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(org_id)
    .bind(conversation_id)
    .fetch_optional(db.pool())
    .await?;
    if let Some(row) = newest {
        let said: String = row.try_get("summary")?;
        let times = match said.strip_prefix(summary) {
            Some("") => Some(1),
            Some(rest) => rest
                .strip_prefix(" (×")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|n| n.parse::<i64>().ok()),
            None => None,
        };
        let recent = row.try_get::<i64, _>("at")? > now - window_ms;
        if let (Some(times), true, true) =
            (times, recent, row.try_get::<String, _>("kind")? == kind)
        {
            sqlx::query("UPDATE timeline SET summary = $1 WHERE id = $2")
                .bind(format!("{summary} (×{})", times + 1))
                .bind(row.try_get::<String, _>("id")?)
                .execute(db.pool())
                .await?;
            return Ok(());
        }
    }
    add_timeline(db.pool(), org_id, conversation_id, kind, summary, attempts).await
}

pub async fn get_conversation(db: &Db, org_id: &str, id: &str) -> Result<Option<Conversation>> {
    let row = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(conversation_from).transpose()
}

pub async fn set_conversation_contact(
    db: &Db,
    org_id: &str,
    id: &str,
    contact_id: &str,
) -> Result<()> {
    sqlx::query("UPDATE conversations SET creatio_contact_id = $1, updated_at = $2 WHERE org_id = $3 AND id = $4")
        .bind(contact_id)
        .bind(now_ms())
        .bind(org_id)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Links the conversation to its case: the one created with the
/// conversation's own id, or a contact's open case it was appended to.
pub async fn link_case(
    db: &Db,
    org_id: &str,
    id: &str,
    case_id: &str,
    number: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE conversations SET case_id = $1, case_created = 1, case_number = COALESCE($2, case_number), \
         updated_at = $3 WHERE org_id = $4 AND id = $5",
    )
    .bind(case_id)
    .bind(number)
    .bind(now_ms())
    .bind(org_id)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The role of the conversation's message at `seq`, if it is not written yet.
pub async fn unwritten_message_role(
    db: &Db,
    org_id: &str,
    conversation_id: &str,
    seq: i64,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT role FROM messages WHERE org_id = $1 AND conversation_id = $2 AND seq = $3 AND written = 0",
    )
    .bind(org_id)
    .bind(conversation_id)
    .bind(seq)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|r| r.try_get("role")).transpose()?)
}

/// Sets the conversation's state (inside a transaction or not).
pub async fn set_conversation_state<'e, E: sqlx::Executor<'e, Database = Any>>(
    exec: E,
    org_id: &str,
    id: &str,
    state: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE conversations SET state = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
    )
    .bind(state)
    .bind(now_ms())
    .bind(org_id)
    .bind(id)
    .execute(exec)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub seq: i64,
    pub role: String,
    pub text: String,
    pub attachments: Option<String>,
    pub occurred_at: i64,
    pub activity_id: String,
}

/// Messages not yet written to Creatio, up to `seq`, in order.
pub async fn unwritten_messages(
    db: &Db,
    org_id: &str,
    conversation_id: &str,
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
    org_id: &str,
    conversation_id: &str,
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

fn message_from(r: &sqlx::any::AnyRow) -> Result<Message> {
    Ok(Message {
        id: r.try_get("id")?,
        seq: r.try_get("seq")?,
        role: r.try_get("role")?,
        text: r.try_get("text")?,
        attachments: r.try_get("attachments")?,
        occurred_at: r.try_get("occurred_at")?,
        activity_id: r.try_get("activity_id")?,
    })
}

/// Whether the conversation has any message already written (the first
/// activity carries the deep link).
pub async fn any_message_written(db: &Db, org_id: &str, conversation_id: &str) -> Result<bool> {
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
    org_id: &str,
    conversation_id: &str,
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
    org_id: &str,
    conversation_id: &str,
    w: Written<'_>,
) -> Result<()> {
    let now = now_ms();
    let _turn = db.write_turn().await;
    let mut tx = db.begin_write(db.writer()).await?;
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
            &mut *tx,
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
    org_id: &str,
    conversation_id: &str,
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

/// A record casebridge wrote: its id, entity and conversation.
type Remembered<'a> = (&'a str, &'static str, Option<&'a str>);

/// Remembers records casebridge wrote (the echo guard's memory), a few
/// hundred per statement.
async fn remember_all(tx: &mut Tx<'_>, org_id: &str, rows: &[Remembered<'_>]) -> Result<()> {
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
    org_id: &str,
    record_id: &str,
    entity: &'static str,
    conversation_id: Option<&str>,
) -> Result<()> {
    let mut tx = db.begin_write(db.pool()).await?;
    remember_all(&mut tx, org_id, &[(record_id, entity, conversation_id)]).await?;
    tx.commit().await?;
    Ok(())
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub org_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// Claims up to `limit` runnable jobs: pending, due, of an active org, and
/// each the first unfinished job of its conversation, so no two claimed
/// jobs share a conversation. One statement: on SQLite the single writer
/// makes it atomic; on PostgreSQL `FOR UPDATE SKIP LOCKED` lets concurrent
/// claimants (other workers, other processes) pass each other instead of
/// queueing on the same rows, and the outer `state = 'pending'` re-check
/// means a row taken meanwhile is never claimed twice. `first_messages`
/// claims only message jobs never tried (what a round runs).
pub async fn claim_batch(
    db: &Db,
    lease_ms: i64,
    limit: usize,
    first_messages: bool,
) -> Result<Vec<Job>> {
    let now = now_ms();
    let turn = db.write_turn().await;
    let rows = sqlx::query(&claim_sql(db.backend(), first_messages))
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(db.writer())
        .await?;
    drop(turn);
    let mut jobs: Vec<Job> = rows
        .iter()
        .map(|r| {
            Ok(Job {
                id: r.try_get("id")?,
                org_id: r.try_get("org_id")?,
                conversation_id: r.try_get("conversation_id")?,
                seq: r.try_get("seq")?,
                kind: r.try_get("kind")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<_>>()?;
    jobs.sort_by_key(|j| j.created_at);
    Ok(jobs)
}

/// The claim (see [`claim_batch`]): binds the lease's end, now, the limit.
/// "No earlier unfinished job in the conversation" reads `jobs_open`, the
/// open part of each conversation's queue, so a claim costs the same in a
/// conversation's thousandth message as in its first.
fn claim_sql(backend: super::Backend, first_messages: bool) -> String {
    let only = if first_messages {
        "AND j.kind = 'message' AND j.attempts = 0"
    } else {
        ""
    };
    // SQLite runs the statement alone (one writer), so the re-check is not
    // needed there, and leaving it out keeps its planner on the primary
    // key instead of walking every pending job.
    let (recheck, lock) = match backend {
        super::Backend::Postgres => ("state = 'pending' AND", "FOR UPDATE OF j SKIP LOCKED"),
        super::Backend::Sqlite => ("", ""),
    };
    format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = $1, updated_at = $2 \
         WHERE {recheck} id IN ( \
           SELECT j.id FROM jobs j JOIN creatio_connections c ON c.org_id = j.org_id AND c.status = 'active' \
           WHERE j.state = 'pending' AND j.run_after <= $2 {only} AND NOT EXISTS ( \
             SELECT 1 FROM jobs e WHERE e.org_id = j.org_id AND e.conversation_id = j.conversation_id \
             AND e.seq < j.seq AND e.state IN ('pending', 'running')) \
           ORDER BY j.run_after, j.seq LIMIT $3 {lock}) \
         RETURNING id, org_id, conversation_id, seq, kind, payload, attempts, created_at"
    )
}

/// Gives claimed jobs back untouched (their attempt too): this process
/// took more than it can start soon.
pub async fn unclaim(db: &Db, ids: &[&str]) -> Result<()> {
    let _turn = db.write_turn().await;
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE jobs SET state = 'pending', attempts = attempts - 1, locked_until = NULL \
             WHERE state = 'running' AND id IN ({})",
            value_rows("?", chunk.len(), 1)
        );
        let sql = db.for_backend(sql);
        let mut q = super::rows_query(&sql, chunk.len());
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(db.writer()).await?;
    }
    Ok(())
}

/// The org's conversations among `ids`, by id.
pub async fn conversations_among(
    db: &Db,
    org_id: &str,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, Conversation>> {
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 AND id IN ({{ids}})"
    );
    rows_for(db, &sql, org_id, ids)
        .await?
        .iter()
        .map(|r| conversation_from(r).map(|c| (c.id.clone(), c)))
        .collect()
}

/// The org's conversations that still hold a contact e-mail or phone, by
/// id: what an erasure by contact searches.
pub async fn conversations_with_contact_details(
    db: &Db,
    org_id: &str,
) -> Result<Vec<Conversation>> {
    sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 \
         AND (contact_email IS NOT NULL OR contact_phone IS NOT NULL) ORDER BY id"
    ))
    .bind(org_id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(conversation_from)
    .collect()
}

/// What a batch of message jobs needs to know of their conversations'
/// messages, read in three statements for the whole batch.
#[derive(Default)]
pub struct Backlog {
    /// Messages not yet written, per conversation, in order.
    pub unwritten: std::collections::HashMap<String, Vec<Message>>,
    /// The position of the conversation's next queued hand-off or
    /// resolution (messages behind it wait for it).
    pub barrier: std::collections::HashMap<String, i64>,
    /// Conversations with a message written already.
    pub started: std::collections::HashSet<String>,
}

/// A batch's unwritten messages (through `messages_unwritten`: a
/// conversation's written history is never read).
const BACKLOG_MESSAGES_SQL: &str =
    "SELECT conversation_id, id, seq, role, text, attachments, occurred_at, activity_id FROM messages \
     WHERE org_id = $1 AND conversation_id IN ({ids}) AND written = 0 ORDER BY conversation_id, seq";

pub async fn backlog(db: &Db, org_id: &str, conversation_ids: &[&str]) -> Result<Backlog> {
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

/// Records a batch of message jobs done with everything they wrote, in one
/// transaction and a few statements: contacts and cases linked, messages
/// written (and remembered for the echo guard), each job and the message
/// jobs whose messages rode along done, the timeline. `announce` queues a
/// `case.linked` delivery for each new case.
pub async fn record_batch(
    db: &Db,
    org_id: &str,
    writes: &[BatchWrite<'_>],
    announce: bool,
) -> Result<()> {
    let now = now_ms();
    let _turn = db.write_turn().await;
    let mut tx = db.begin_write(db.writer()).await?;
    let mut remembered: Vec<Remembered> = Vec::new();
    // Links to contacts and cases: one UPDATE … FROM (VALUES …) per chunk.
    let mut links: Vec<&BatchWrite> = writes
        .iter()
        .filter(|w| w.contact.is_some() || w.case.is_some())
        .collect();
    // PostgreSQL: lock the conversation rows first, in id order, the order
    // ingest's upsert takes them in; the UPDATE … FROM joins in whatever
    // order its plan picks, which deadlocked against a concurrent ingest.
    links.sort_by(|a, b| a.job.conversation_id.cmp(&b.job.conversation_id));
    if db.backend() == super::Backend::Postgres {
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
            q.fetch_all(&mut *tx).await?;
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
        let sql = for_backend(&tx, sql);
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
        q.bind(org_id).execute(&mut *tx).await?;
    }
    for w in links {
        let conversation_id = w.job.conversation_id.as_str();
        if let Some((id, true)) = &w.contact {
            remembered.push((id, "Contact", Some(conversation_id)));
        }
        if let Some((case_id, number)) = &w.case {
            remembered.push((case_id, "Case", Some(conversation_id)));
            if announce {
                crate::deliver::queue(
                    &mut tx,
                    org_id,
                    conversation_id,
                    &format!("linked:{conversation_id}:{case_id}"),
                    crate::deliver::CASE_LINKED,
                    serde_json::json!({"conversation_id": conversation_id, "case_id": case_id, "case_number": number}),
                )
                .await?;
            }
        }
    }
    for w in writes {
        for m in w.messages {
            remembered.push((&m.activity_id, "Activity", Some(&w.job.conversation_id)));
        }
    }
    remember_all(&mut tx, org_id, &remembered).await?;
    // Per conversation: the messages written are exactly its unwritten ones
    // from the first to the last position written (newer messages take
    // higher positions), and its pending message jobs up to that last one
    // are done: their messages rode along. The conversations are a VALUES
    // list on the left of a CROSS JOIN, which SQLite always makes the outer
    // loop, so each row is an index lookup (joined any other way, or as an
    // OR chain, SQLite's planner scans the org's messages or every pending
    // job); the outer `IN` then goes by primary key.
    let spans: Vec<(&str, i64, i64)> = writes
        .iter()
        .filter_map(|w| {
            let (first, last) = (w.messages.first()?, w.messages.last()?);
            Some((w.job.conversation_id.as_str(), first.seq, last.seq))
        })
        .collect();
    for chunk in spans.chunks(ROWS_PER_STATEMENT) {
        let sql = for_backend(&tx, spans_written_sql(chunk.len()));
        let mut q = super::rows_query(&sql, chunk.len()).bind(org_id);
        for (conversation_id, first, last) in chunk {
            q = q.bind(*conversation_id).bind(*first).bind(*last);
        }
        q.bind(org_id).execute(&mut *tx).await?;
        let sql = for_backend(&tx, ride_along_done_sql(chunk.len()));
        let mut q = super::rows_query(&sql, chunk.len()).bind(now);
        for (conversation_id, _, last) in chunk {
            q = q.bind(*conversation_id).bind(*last);
        }
        q.bind(org_id).execute(&mut *tx).await?;
    }
    let ids: Vec<&str> = writes.iter().map(|w| w.job.id.as_str()).collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE jobs SET state = 'done', locked_until = NULL, last_error = NULL, updated_at = $1 \
             WHERE state IN ('running', 'cancelled') AND id IN ({})",
            value_rows("?", chunk.len(), 2)
        );
        let sql = for_backend(&tx, sql);
        let mut q = super::rows_query(&sql, chunk.len()).bind(now);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *tx).await?;
    }
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
    add_timelines(&mut tx, org_id, &lines).await?;
    tx.commit().await?;
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

/// Returns jobs whose claimant died (lease expired) to the queue.
pub async fn release_expired_leases(db: &Db) -> Result<u64> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE jobs SET state = 'pending', locked_until = NULL, updated_at = $1 WHERE state = 'running' AND locked_until < $1",
    )
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected())
}

/// Records a job done. A job cancelled while it ran (disconnect) is
/// recorded done too: its writes happened.
pub async fn finish_job(db: &Db, id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'done', locked_until = NULL, last_error = NULL, updated_at = $1 \
         WHERE id = $2 AND state IN ('running', 'cancelled')",
    )
    .bind(now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Puts a job back to run after `run_after`. `keep_attempt` false gives the
/// attempt back (the org was paused: the job did not really fail).
pub async fn retry_job(
    db: &Db,
    id: &str,
    run_after: i64,
    error: &str,
    keep_attempt: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'pending', locked_until = NULL, run_after = $1, last_error = $2, \
         attempts = attempts - $3, updated_at = $4 WHERE id = $5 AND state = 'running'",
    )
    .bind(run_after)
    .bind(error)
    .bind(i64::from(!keep_attempt))
    .bind(now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Gives up on a job; it stays, visible, as `dead`.
pub async fn kill_job(db: &Db, id: &str, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'dead', locked_until = NULL, last_error = $1, updated_at = $2 \
         WHERE id = $3 AND state = 'running'",
    )
    .bind(error)
    .bind(now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The circuit breaker: holds every pending job of the org until `until`.
pub async fn hold_org(db: &Db, org_id: &str, until: i64) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET run_after = $1, updated_at = $2 WHERE org_id = $3 AND state = 'pending' AND run_after < $1",
    )
    .bind(until)
    .bind(now_ms())
    .bind(org_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Disconnect: queued and running jobs are cancelled and kept. A running
/// one finishes what it is doing; if that fails it is not queued again.
pub async fn cancel_pending_jobs(tx: &mut Tx<'_>, org_id: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'cancelled', updated_at = $1 WHERE org_id = $2 AND state IN ('pending', 'running')",
    )
        .bind(now_ms())
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// Jobs of a conversation by state.
pub async fn job_counts(
    db: &Db,
    org_id: &str,
    conversation_id: &str,
) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT state, COUNT(*) AS n FROM jobs WHERE org_id = $1 AND conversation_id = $2 GROUP BY state ORDER BY state",
    )
    .bind(org_id)
    .bind(conversation_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
        .collect()
}

pub struct TimelineEntry {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub summary: String,
    pub attempts: Option<i64>,
}

/// A page of a conversation's timeline: the newest `limit` lines before the
/// line `before` (or the newest of all), oldest first, and whether older
/// lines remain.
pub async fn timeline_page(
    db: &Db,
    org_id: &str,
    conversation_id: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<(Vec<TimelineEntry>, bool)> {
    let rows = match before {
        Some(before) => sqlx::query(
            "SELECT id, at, kind, summary, attempts FROM timeline WHERE org_id = $1 \
             AND conversation_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4",
        )
        .bind(org_id)
        .bind(conversation_id)
        .bind(before)
        .bind(limit as i64 + 1),
        None => sqlx::query(
            "SELECT id, at, kind, summary, attempts FROM timeline WHERE org_id = $1 \
             AND conversation_id = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(org_id)
        .bind(conversation_id)
        .bind(limit as i64 + 1),
    }
    .fetch_all(db.pool())
    .await?;
    let more = rows.len() > limit;
    let mut page = rows
        .iter()
        .take(limit)
        .map(|r| {
            Ok(TimelineEntry {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                kind: r.try_get("kind")?,
                summary: r.try_get("summary")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    page.reverse();
    Ok((page, more))
}

/// How many messages a conversation has, and how many reached Creatio.
pub async fn message_counts(db: &Db, org_id: &str, conversation_id: &str) -> Result<(i64, i64)> {
    // COUNT, not SUM: PostgreSQL sums BIGINT as NUMERIC, which `Any` cannot read.
    let row = sqlx::query(
        "SELECT COUNT(*) AS total, COUNT(CASE WHEN written = 1 THEN 1 END) AS written \
         FROM messages WHERE org_id = $1 AND conversation_id = $2",
    )
    .bind(org_id)
    .bind(conversation_id)
    .fetch_one(db.pool())
    .await?;
    Ok((row.try_get("total")?, row.try_get("written")?))
}

/// All jobs by state (for metrics).
pub async fn job_counts_by_state(db: &Db) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
        .collect()
}

/// A job as the conversation view shows it.
pub struct JobView {
    pub seq: i64,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub run_after: i64,
    pub last_error: Option<String>,
}

/// The conversation's jobs that are not done (queued, running, dead), in
/// order, at most 50.
pub async fn open_jobs(db: &Db, org_id: &str, conversation_id: &str) -> Result<Vec<JobView>> {
    let rows = sqlx::query(
        "SELECT seq, kind, state, attempts, run_after, last_error FROM jobs \
         WHERE org_id = $1 AND conversation_id = $2 AND state IN ('pending', 'running', 'dead') \
         ORDER BY seq LIMIT 50",
    )
    .bind(org_id)
    .bind(conversation_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(JobView {
                seq: r.try_get("seq")?,
                kind: r.try_get("kind")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                run_after: r.try_get("run_after")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .collect()
}

/// The conversation a Creatio case belongs to: the latest one linked to it
/// (several share a case after case-append).
pub async fn conversation_for_case(
    db: &Db,
    org_id: &str,
    case_id: &str,
) -> Result<Option<Conversation>> {
    let row = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 AND case_id = $2 \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(case_id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(conversation_from).transpose()
}

/// What [`queue_check`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// A check was queued to run now.
    Now,
    /// A check was queued to run `debounce_ms` after one of its kind that
    /// ran or started moments ago.
    Later,
    /// One is already waiting; it will see what this call announced.
    AlreadyWaiting,
}

/// Queues a check job (a look at the case) for a conversation, coalescing
/// bursts: none when one of its kind is waiting (it has not read Creatio
/// yet, so it will see what the caller announced); when one is running or
/// started less than `debounce_ms` ago, one follow-up, due `debounce_ms`
/// after that one started. A running check may have read Creatio before
/// the change being announced, so it is never the answer alone; the
/// follow-up is. A process calling in a loop thus causes about one read per
/// `debounce_ms`, not one per call.
pub async fn queue_check(
    tx: &mut Tx<'_>,
    org_id: &str,
    conversation_id: &str,
    kind: &str,
    payload: &str,
    debounce_ms: i64,
) -> Result<Queued> {
    let now = now_ms();
    // Write first: on SQLite a transaction that reads and then writes can
    // fail at once with "database is locked" when another writer got in
    // between (no busy wait is possible for it); taking the write lock
    // first makes it wait its turn. On PostgreSQL the row lock serialises
    // concurrent calls for one conversation.
    sqlx::query("UPDATE conversations SET updated_at = $1 WHERE org_id = $2 AND id = $3")
        .bind(now)
        .bind(org_id)
        .bind(conversation_id)
        .execute(&mut **tx)
        .await?;
    let newest = sqlx::query(
        "SELECT state, created_at FROM jobs WHERE org_id = $1 AND conversation_id = $2 AND kind = $3 \
         AND (state IN ('pending', 'running') OR created_at > $4) ORDER BY seq DESC LIMIT 1",
    )
    .bind(org_id)
    .bind(conversation_id)
    .bind(kind)
    .bind(now - debounce_ms)
    .fetch_optional(&mut **tx)
    .await?;
    let due = match newest {
        Some(row) if row.try_get::<String, _>("state")? == "pending" => {
            return Ok(Queued::AlreadyWaiting)
        }
        Some(row) => (row.try_get::<i64, _>("created_at")? + debounce_ms).max(now),
        None => now,
    };
    let seq = take_seq(tx, org_id, conversation_id).await?;
    insert_job(tx, org_id, conversation_id, seq, kind, payload, due).await?;
    Ok(if due > now {
        Queued::Later
    } else {
        Queued::Now
    })
}

/// Notes a call from Creatio on the conversation's timeline: calls within
/// `window_ms` of the newest such line are counted on it (`attempts` holds
/// the number of calls, `summary` the latest) instead of each adding a
/// line, so a process calling in a loop cannot grow the timeline.
pub async fn note_webhook_call(
    tx: &mut Tx<'_>,
    org_id: &str,
    conversation_id: &str,
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
            add_timeline(
                &mut **tx,
                org_id,
                conversation_id,
                "webhook",
                summary,
                Some(1),
            )
            .await?;
        }
    }
    Ok(())
}

/// Which of `ids` casebridge wrote itself (the echo guard).
pub async fn written_among(db: &Db, org_id: &str, ids: &[String]) -> Result<Vec<String>> {
    super::present_among(db, "written_records", "record_id", org_id, ids).await
}

/// Whether casebridge wrote the record (or marker) `record_id`.
pub async fn was_written(db: &Db, org_id: &str, record_id: &str) -> Result<bool> {
    Ok(!written_among(db, org_id, &[record_id.to_string()])
        .await?
        .is_empty())
}

/// A conversation as the admin page's activity list shows it.
#[derive(Debug, Clone)]
pub struct ConversationSummary {
    pub conversation: Conversation,
    pub messages: i64,
    pub messages_written: i64,
    /// Jobs queued or running: the conversation is still syncing.
    pub jobs_open: i64,
    /// Jobs given up on: something needs a person.
    pub jobs_dead: i64,
    /// The newest timeline line, if any.
    pub last_event: Option<String>,
}

/// The org's most recently changed conversations, newest first, with the
/// counts the activity list shows; `state` keeps only those in it. Counts
/// are subqueries (COUNT, which both backends read as BIGINT) so one query
/// serves the page however many conversations it lists.
pub async fn recent_conversations(
    db: &Db,
    org_id: &str,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<ConversationSummary>> {
    let columns: Vec<String> = CONVERSATION_COLUMNS
        .split(',')
        .map(|c| format!("c.{}", c.trim()))
        .collect();
    let sql = format!(
        "SELECT {}, \
         (SELECT COUNT(*) FROM messages m WHERE m.org_id = c.org_id AND m.conversation_id = c.id) AS messages, \
         (SELECT COUNT(*) FROM messages m WHERE m.org_id = c.org_id AND m.conversation_id = c.id AND m.written = 1) AS messages_written, \
         (SELECT COUNT(*) FROM jobs j WHERE j.org_id = c.org_id AND j.conversation_id = c.id AND j.state IN ('pending', 'running')) AS jobs_open, \
         (SELECT COUNT(*) FROM jobs j WHERE j.org_id = c.org_id AND j.conversation_id = c.id AND j.state = 'dead') AS jobs_dead, \
         (SELECT t.summary FROM timeline t WHERE t.org_id = c.org_id AND t.conversation_id = c.id ORDER BY t.id DESC LIMIT 1) AS last_event \
         FROM conversations c WHERE c.org_id = $1 AND ($2 = '' OR c.state = $2) \
         ORDER BY c.updated_at DESC, c.id DESC LIMIT $3",
        columns.join(", ")
    );
    let rows = sqlx::query(&sql)
        .bind(org_id)
        .bind(state.unwrap_or(""))
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ConversationSummary {
                conversation: conversation_from(r)?,
                messages: r.try_get("messages")?,
                messages_written: r.try_get("messages_written")?,
                jobs_open: r.try_get("jobs_open")?,
                jobs_dead: r.try_get("jobs_dead")?,
                last_event: r.try_get("last_event")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for `sql`, one line per step.
    async fn plan(db: &Db, sql: &str, binds: usize) -> String {
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

    /// What a job's claim and a round's reads look at in a conversation is
    /// its open part only (partial indexes), never its whole history: the
    /// soak (scripts/soak.py) showed the cost per message growing with it.
    #[tokio::test]
    async fn the_hot_path_reads_no_conversation_history_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("p.db").display()))
            .await
            .unwrap();
        for first_messages in [false, true] {
            let claim = plan(
                &db,
                &claim_sql(super::super::Backend::Sqlite, first_messages),
                3,
            )
            .await;
            assert!(
                claim.contains("USING INDEX jobs_open")
                    || claim.contains("USING COVERING INDEX jobs_open"),
                "{claim}"
            );
            assert!(!claim.contains("SCAN e"), "{claim}");
        }
        let backlog = plan(&db, &BACKLOG_MESSAGES_SQL.replace("{ids}", "$2, $3"), 3).await;
        assert!(backlog.contains("INDEX messages_unwritten"), "{backlog}");
    }
}
