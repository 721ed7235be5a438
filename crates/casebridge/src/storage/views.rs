//! Read models for the admin page and the API: recent conversations, a
//! conversation's open jobs, counts and timeline pages.

use sqlx::Row;

use super::conversations::{conversation_from, Conversation, CONVERSATION_COLUMNS};
use super::{Db, Result};
use crate::domain::ConversationState;
use crate::domain::{ConversationId, OrgId};

/// Jobs of a conversation by state.
pub async fn job_counts(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
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
    org_id: &OrgId,
    conversation_id: &ConversationId,
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
pub async fn message_counts(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
) -> Result<(i64, i64)> {
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

/// A job as the conversation view shows it.
pub struct JobView {
    pub id: String,
    pub seq: i64,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub run_after: i64,
    pub last_error: Option<String>,
    /// Dead, and a later success did its work ([`super::jobs::MOOT`]).
    pub moot: bool,
}

/// The conversation's jobs that are not done (queued, running, dead), in
/// order, at most 50.
pub async fn open_jobs(
    db: &Db,
    org_id: &OrgId,
    conversation_id: &ConversationId,
) -> Result<Vec<JobView>> {
    let rows = sqlx::query(&format!(
        "SELECT j.id, j.seq, j.kind, j.state, j.attempts, j.run_after, j.last_error, {} FROM jobs j \
         WHERE j.org_id = $1 AND j.conversation_id = $2 AND j.state IN ('pending', 'running', 'dead') \
         ORDER BY j.seq LIMIT 50",
        super::jobs::moot_column()
    ))
    .bind(org_id)
    .bind(conversation_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(JobView {
                id: r.try_get("id")?,
                seq: r.try_get("seq")?,
                kind: r.try_get("kind")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                run_after: r.try_get("run_after")?,
                last_error: r.try_get("last_error")?,
                moot: r.try_get::<i64, _>("moot")? == 1,
            })
        })
        .collect()
}

/// A conversation as the admin page's activity list shows it.
#[derive(Debug, Clone)]
pub struct ConversationSummary {
    pub conversation: Conversation,
    pub messages: i64,
    pub messages_written: i64,
    /// Jobs queued or running: the conversation is still syncing.
    pub jobs_open: i64,
    /// Jobs given up on whose work no later success did: something
    /// needs a person.
    pub jobs_dead: i64,
    /// Jobs given up on whose work a later success did.
    pub jobs_moot: i64,
    /// The newest timeline line, if any.
    pub last_event: Option<String>,
}

/// Which conversations a list shows: a state, a search, and where the
/// previous page ended.
#[derive(Debug, Default, Clone)]
pub struct ConversationFilter {
    pub state: Option<ConversationState>,
    /// A conversation id or its beginning, a case number, or a contact's
    /// e-mail address (any case).
    pub search: Option<String>,
    /// The last row of the previous page: its `updated_at` and id.
    pub after: Option<(i64, String)>,
}

/// The org's most recently changed conversations, newest first, with the
/// counts the activity list shows, of those `filter` keeps, one page. Counts
/// are subqueries (COUNT, which both backends read as BIGINT) so one query
/// serves the page however many conversations it lists.
pub async fn recent_conversations(
    db: &Db,
    org_id: &OrgId,
    filter: &ConversationFilter,
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
         (SELECT COUNT(*) FROM jobs j WHERE j.org_id = c.org_id AND j.conversation_id = c.id AND j.state = 'dead' AND NOT {moot}) AS jobs_dead, \
         (SELECT COUNT(*) FROM jobs j WHERE j.org_id = c.org_id AND j.conversation_id = c.id AND j.state = 'dead' AND {moot}) AS jobs_moot, \
         (SELECT t.summary FROM timeline t WHERE t.org_id = c.org_id AND t.conversation_id = c.id ORDER BY t.id DESC LIMIT 1) AS last_event \
         FROM conversations c WHERE c.org_id = $1 AND ($2 = '' OR c.state = $2) \
         AND ($4 = '' OR substr(c.id, 1, length($4)) = $4 OR c.case_number = $4 \
              OR lower(c.contact_email) = $5) \
         AND (c.updated_at < $6 OR (c.updated_at = $6 AND c.id < $7)) \
         ORDER BY c.updated_at DESC, c.id DESC LIMIT $3",
        columns.join(", "),
        moot = super::jobs::MOOT
    );
    let search = filter.search.as_deref().unwrap_or("");
    // The first page starts after every row: a time no row has, and an id
    // no row reaches at that time.
    let (after_at, after_id) = filter.after.clone().unwrap_or((i64::MAX, String::new()));
    let rows = sqlx::query(&sql)
        .bind(org_id)
        .bind(filter.state.map_or("", ConversationState::as_str))
        .bind(limit)
        .bind(search)
        .bind(search.to_lowercase())
        .bind(after_at)
        .bind(after_id)
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
                jobs_moot: r.try_get("jobs_moot")?,
                last_event: r.try_get("last_event")?,
            })
        })
        .collect()
}
