//! The `jobs` table: the outbox toward Creatio.
//!
//! Ingest queues an event's job in the caller's transaction; workers claim
//! jobs so that a conversation's jobs run one at a time in `seq` order while
//! different conversations run in parallel, on one process or several
//! sharing a PostgreSQL database. A claim is an `UPDATE … WHERE state =
//! 'pending'` that only one claimant can win, so no job runs twice at once;
//! a crashed claimant's lease expires and the job runs again (its Creatio
//! writes are idempotent by deterministic ids).

use sqlx::Row;

use super::conversations::take_seq;
use super::outbox::{Verdict, JOBS};
use super::{for_backend, now_ms, value_rows, Db, Result, WriteQuery, WriteTx, ROWS_PER_STATEMENT};
use crate::domain::JobKind;
use crate::domain::{ConversationId, OrgId};

/// A job to queue.
pub struct JobIn<'a> {
    pub conversation_id: &'a ConversationId,
    pub seq: i64,
    pub kind: JobKind,
    pub payload: String,
}

/// Queues jobs (the outbox), due now.
pub async fn insert_jobs(tx: &mut WriteTx, org_id: &OrgId, rows: &[JobIn<'_>]) -> Result<()> {
    insert_jobs_due(tx, org_id, rows, now_ms()).await
}

/// Queues jobs due at `due` (ms).
async fn insert_jobs_due(
    tx: &mut WriteTx,
    org_id: &OrgId,
    rows: &[JobIn<'_>],
    due: i64,
) -> Result<()> {
    let now = now_ms();
    let cause = crate::domain::current_cause();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO jobs (org_id, run_after, id, conversation_id, seq, kind, payload, state, attempts, created_at, updated_at, request_id, traceparent) \
             VALUES {}",
            value_rows("(?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)", chunk.len(), 1)
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
                .bind(j.kind.as_str())
                .bind(j.payload.as_str())
                .bind(now)
                .bind(now)
                .bind(cause.request_id.as_deref())
                .bind(cause.traceparent.as_deref());
        }
        q.execute(&mut **tx).await?;
    }
    if !rows.is_empty() {
        tx.jobs_queued();
    }
    Ok(())
}

/// Queues one job, due at `due` (ms).
async fn insert_job(
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    seq: i64,
    kind: JobKind,
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

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub org_id: OrgId,
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub kind: JobKind,
    pub payload: String,
    /// Every attempt made, before an admin's retry too.
    pub attempts: i64,
    /// Attempts made before the last retry: the schedule counts from here.
    pub attempts_before: i64,
    /// When an admin last queued it again.
    pub retried_at: Option<i64>,
    pub created_at: i64,
    /// The request that queued it (`x-request-id`), if one did.
    pub request_id: Option<String>,
    /// The span that queued it (W3C), with traces on.
    pub traceparent: Option<String>,
}

/// Claims up to `limit` runnable jobs, each the first unfinished job of its
/// conversation (see [`super::outbox`]), oldest first. `first_messages`
/// claims only message jobs never tried (what a round runs).
pub async fn claim_batch(
    db: &Db,
    lease_ms: i64,
    limit: usize,
    first_messages: bool,
) -> Result<Vec<Job>> {
    let only = if first_messages { FIRST_MESSAGES } else { "" };
    claim_where(db, lease_ms, limit, only).await
}

/// The orgs with jobs due and an active connection: each claims its own
/// ([`claim_for_org`]). One index seek per connected org.
pub async fn orgs_ready(db: &Db) -> Result<Vec<OrgId>> {
    let rows = sqlx::query(&db.for_backend(
        "SELECT c.org_id FROM creatio_connections c WHERE c.status = 'active' AND EXISTS ( \
           SELECT 1 FROM jobs j WHERE j.org_id = c.org_id AND j.state = 'pending' AND j.run_after <= $1) \
         ORDER BY c.org_id"
            .to_string(),
    ))
    .bind(now_ms())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| Ok(r.try_get("org_id")?)).collect()
}

/// As [`claim_batch`], one org's jobs only: up to `limit` of them, read
/// through the org's own part of the queue (`jobs_org_ready`), so another
/// org's backlog costs this claim nothing.
pub async fn claim_for_org(
    db: &Db,
    lease_ms: i64,
    org_id: &OrgId,
    limit: usize,
    first_messages: bool,
) -> Result<Vec<Job>> {
    // Org ids are casebridge's own (`org_<hex>`); quoted all the same.
    let only = format!(
        "{} AND x.org_id = '{}'",
        if first_messages { FIRST_MESSAGES } else { "" },
        org_id.as_str().replace('\'', "''")
    );
    claim_where(db, lease_ms, limit, &only).await
}

async fn claim_where(db: &Db, lease_ms: i64, limit: usize, only: &str) -> Result<Vec<Job>> {
    let rows = JOBS.claim(db, lease_ms, limit, only).await?;
    let mut jobs: Vec<Job> = rows
        .iter()
        .map(|r| {
            Ok(Job {
                id: r.try_get("id")?,
                org_id: r.try_get("org_id")?,
                conversation_id: r.try_get("conversation_id")?,
                seq: r.try_get("seq")?,
                kind: super::stored(r.try_get("kind")?, "jobs.kind", JobKind::parse)?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
                attempts_before: r.try_get("attempts_before")?,
                retried_at: r.try_get("retried_at")?,
                created_at: r.try_get("created_at")?,
                request_id: r.try_get("request_id")?,
                traceparent: r.try_get("traceparent")?,
            })
        })
        .collect::<Result<_>>()?;
    jobs.sort_by_key(|j| j.created_at);
    Ok(jobs)
}

/// What a round claims: message jobs never tried.
const FIRST_MESSAGES: &str = "AND x.kind = 'message' AND x.attempts = 0";

/// Gives claimed jobs back untouched (their attempt too): this process
/// took more than it can start soon.
pub async fn unclaim(db: &Db, ids: &[&str]) -> Result<()> {
    JOBS.unclaim(db, ids).await
}

/// Records a job done. A job cancelled while it ran (disconnect) is
/// recorded done too: its writes happened.
pub async fn finish_job(db: &Db, id: &str) -> Result<()> {
    JOBS.settle_alone(db, id, Verdict::Done).await.map(drop)
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
    let verdict = Verdict::Retry {
        at: run_after,
        error: Some(error),
        keep_attempt,
    };
    JOBS.settle_alone(db, id, verdict).await.map(drop)
}

/// Gives up on a job; it stays, visible, as `dead`.
pub async fn kill_job(db: &Db, id: &str, error: &str) -> Result<()> {
    let verdict = Verdict::Dead { error: Some(error) };
    JOBS.settle_alone(db, id, verdict).await.map(drop)
}

/// The circuit breaker: holds every pending job of the org until `until`.
pub async fn hold_org(db: &Db, org_id: &OrgId, until: i64) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET run_after = $1, updated_at = $2 WHERE org_id = $3 AND state = 'pending' AND run_after < $1",
    )
    .bind(until)
    .bind(now_ms())
    .bind(org_id)
    .write_on(db)
    .await?;
    Ok(())
}

/// Disconnect: queued and running jobs are cancelled and kept. A running
/// one finishes what it is doing; if that fails it is not queued again.
pub async fn cancel_pending_jobs(tx: &mut WriteTx, org_id: &OrgId) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'cancelled', updated_at = $1 WHERE org_id = $2 AND state IN ('pending', 'running')",
    )
        .bind(now_ms())
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// Whether a dead job's work was done by a later one (SQL on a dead job
/// `j`): a message job's message is written (a later message job writes
/// the messages waiting before it), or a later job of its kind (a newer
/// hand-off, resolution or look at the case) is done.
pub const MOOT: &str = "(CASE WHEN j.kind = 'message' THEN EXISTS (SELECT 1 FROM messages m \
     WHERE m.org_id = j.org_id AND m.conversation_id = j.conversation_id AND m.seq = j.seq AND m.written = 1) \
   ELSE EXISTS (SELECT 1 FROM jobs l WHERE l.org_id = j.org_id AND l.conversation_id = j.conversation_id \
     AND l.kind = j.kind AND l.seq > j.seq AND l.state = 'done') END)";

/// The `moot` column of a query on jobs `j`: 1 for a dead job whose work a
/// later success did ([`MOOT`]), else 0 (BIGINT on both backends).
pub fn moot_column() -> String {
    format!("CAST(CASE WHEN j.state = 'dead' AND {MOOT} THEN 1 ELSE 0 END AS BIGINT) AS moot")
}

/// A dead job as a retry finds it.
#[derive(Debug, Clone)]
pub struct DeadJob {
    pub id: String,
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// A later success did its work.
    pub moot: bool,
}

/// One of the org's jobs, with whether it is moot (only a dead one can be).
pub async fn find(db: &Db, org_id: &OrgId, id: &str) -> Result<Option<DeadJob>> {
    let row = sqlx::query(&format!(
        "SELECT j.id, j.conversation_id, j.seq, j.kind, j.state, j.attempts, j.last_error, {} \
         FROM jobs j WHERE j.org_id = $1 AND j.id = $2",
        moot_column()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(dead_job_from).transpose()
}

fn dead_job_from(r: &sqlx::any::AnyRow) -> Result<DeadJob> {
    Ok(DeadJob {
        id: r.try_get("id")?,
        conversation_id: r.try_get("conversation_id")?,
        seq: r.try_get("seq")?,
        kind: r.try_get("kind")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        moot: r.try_get::<i64, _>("moot")? == 1,
    })
}

/// Which dead jobs a bulk retry takes.
#[derive(Debug, Default)]
pub struct DeadFilter<'a> {
    /// Dead-lettered at or after this time (ms).
    pub since: i64,
    pub conversation_id: Option<&'a ConversationId>,
}

/// The org's dead jobs that `filter` takes, in conversation order, moot
/// ones included (marked).
pub async fn dead(db: &Db, org_id: &OrgId, filter: &DeadFilter<'_>) -> Result<Vec<DeadJob>> {
    let rows = sqlx::query(&format!(
        "SELECT j.id, j.conversation_id, j.seq, j.kind, j.state, j.attempts, j.last_error, {} \
         FROM jobs j WHERE j.org_id = $1 AND j.state = 'dead' AND j.updated_at >= $2 \
         AND ($3 IS NULL OR j.conversation_id = $3) ORDER BY j.conversation_id, j.seq",
        moot_column()
    ))
    .bind(org_id)
    .bind(filter.since)
    .bind(filter.conversation_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(dead_job_from).collect()
}

/// Queues `jobs` (dead) again, due now, each conversation's in order, with
/// one timeline line per conversation saying what an admin did; the jobs
/// no longer dead by then are left alone. Returns the jobs requeued.
pub async fn retry_dead(
    db: &Db,
    org_id: &OrgId,
    jobs: &[DeadJob],
    why: &str,
) -> Result<Vec<super::outbox::Requeued>> {
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let mut tx = db.write().await?;
    let requeued = JOBS.requeue(&mut tx, org_id, &ids).await?;
    let kinds: std::collections::HashMap<&str, &str> = jobs
        .iter()
        .map(|j| (j.id.as_str(), j.kind.as_str()))
        .collect();
    // Requeued comes in conversation order: one line per conversation.
    for group in requeued.chunk_by(|a, b| a.conversation_id == b.conversation_id) {
        let what: Vec<String> = group
            .iter()
            .map(|r| {
                let kind = kinds.get(r.id.as_str()).copied().unwrap_or("job");
                format!("{kind} #{} ({} attempts before)", r.seq, r.attempts)
            })
            .collect();
        let summary = format!("Retried by an admin ({why}): {}", what.join(", "));
        let conversation_id = &group[0].conversation_id;
        super::timeline::add_timeline(&mut tx, org_id, conversation_id, "admin", &summary, None)
            .await?;
    }
    if !requeued.is_empty() {
        tx.jobs_queued();
    }
    tx.commit().await?;
    Ok(requeued)
}

/// All jobs by state (for metrics).
pub async fn job_counts_by_state(db: &Db) -> Result<Vec<(String, i64)>> {
    super::count_by(db, "jobs", "state").await
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
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    kind: JobKind,
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
    .bind(kind.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::query_plan as plan;
    use crate::storage::Backend;

    /// What a job's claim looks at in a conversation is its open part only
    /// (a partial index), never its whole history: the soak
    /// (scripts/soak.py) showed the cost per message growing with it.
    #[tokio::test]
    async fn a_claim_reads_no_conversation_history_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("p.db").display()))
            .await
            .unwrap();
        for first_messages in [false, true] {
            let only = if first_messages { FIRST_MESSAGES } else { "" };
            let claim = plan(&db, &JOBS.claim_sql(Backend::Sqlite, only), 3).await;
            assert!(
                claim.contains("USING INDEX jobs_open")
                    || claim.contains("USING COVERING INDEX jobs_open"),
                "{claim}"
            );
            assert!(!claim.contains("SCAN e"), "{claim}");
            // Whether the conversation has a claimed job: the small index.
            assert!(claim.contains("INDEX jobs_running"), "{claim}");
            assert!(!claim.contains("SCAN r"), "{claim}");
        }
        // A claim per org reads that org's part of the queue only: another
        // org's backlog is never walked.
        let only = "AND x.org_id = 'org_a'";
        let claim = plan(&db, &JOBS.claim_sql(Backend::Sqlite, only), 3).await;
        assert!(claim.contains("INDEX jobs_org_ready (org_id=?"), "{claim}");
    }
}
