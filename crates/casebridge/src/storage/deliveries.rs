//! Deliveries to the chat platform: the org's endpoint (URL, sealed signing
//! secret, enabled or disabled), the delivery queue and every attempt.
//!
//! A delivery is queued once per thing it reports (`dedupe_key`, e.g.
//! `reply:<activity id>`), so a webhook that arrives twice, or a check that
//! runs again, queues nothing more. Deliveries of one conversation go out in
//! order: one is claimable only when no earlier one of its conversation is
//! still pending; a delivery held for a retry holds the conversation's later
//! ones too, so the platform never sees reply 2 before reply 1.

use sqlx::Row;

use super::timeline::add_timeline;
use super::{now_ms, Db, Result, WriteQuery};

use super::outbox::{Verdict, DELIVERIES};
use super::WriteTx;
use crate::domain::{ConversationId, OrgId};

/// The org's delivery endpoint as stored.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub org_id: OrgId,
    pub url: String,
    pub secret_sealed: String,
    pub previous_sealed: Option<String>,
    pub previous_until: Option<i64>,
    /// `enabled` or `disabled`.
    pub state: String,
    pub disabled_reason: Option<String>,
    /// `webhook` (a receiver of signed deliveries) or `chatwoot` (the
    /// org's Chatwoot connector: its API).
    pub platform: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn endpoint(db: &Db, org_id: &OrgId) -> Result<Option<Endpoint>> {
    let row = sqlx::query(
        "SELECT org_id, url, secret_sealed, previous_sealed, previous_until, state, disabled_reason, \
         platform, created_at, updated_at FROM delivery_endpoints WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        Ok(Endpoint {
            org_id: r.try_get("org_id")?,
            url: r.try_get("url")?,
            secret_sealed: r.try_get("secret_sealed")?,
            previous_sealed: r.try_get("previous_sealed")?,
            previous_until: r.try_get("previous_until")?,
            state: r.try_get("state")?,
            disabled_reason: r.try_get("disabled_reason")?,
            platform: r.try_get("platform")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    })
    .transpose()
}

/// Sets the URL and (re-)enables the endpoint. `new_secret` is the sealed
/// secret for a first save; an existing endpoint keeps its secret.
pub async fn put_endpoint(db: &Db, org_id: &OrgId, url: &str, new_secret: &str) -> Result<()> {
    let mut tx = db.write().await?;
    upsert_endpoint(&mut tx, org_id, url, new_secret, "webhook").await?;
    tx.commit().await
}

/// Sets the org's endpoint (`platform`: `webhook` or `chatwoot`) and
/// enables it, in the caller's transaction; a first one gets
/// `new_secret`, an existing one keeps its secret. Wakes the senders on
/// commit: deliveries waiting for a destination (or for a disabled one)
/// may go now.
pub(super) async fn upsert_endpoint(
    tx: &mut WriteTx,
    org_id: &OrgId,
    url: &str,
    new_secret: &str,
    platform: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO delivery_endpoints (org_id, url, secret_sealed, state, created_at, updated_at, platform) \
         VALUES ($1, $2, $3, 'enabled', $4, $4, $5) \
         ON CONFLICT (org_id) DO UPDATE SET url = excluded.url, state = 'enabled', \
         disabled_reason = NULL, platform = excluded.platform, updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(url)
    .bind(new_secret)
    .bind(now_ms())
    .bind(platform)
    .execute(&mut **tx)
    .await?;
    tx.deliveries_queued();
    Ok(())
}

/// Replaces the secret; the old one keeps signing until `previous_until`.
pub async fn rotate_secret(
    db: &Db,
    org_id: &OrgId,
    new_sealed: &str,
    previous_until: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE delivery_endpoints SET previous_sealed = secret_sealed, previous_until = $1, \
         secret_sealed = $2, updated_at = $3 WHERE org_id = $4",
    )
    .bind(previous_until)
    .bind(new_sealed)
    .bind(now_ms())
    .bind(org_id)
    .write_on(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes the endpoint; queued deliveries wait for a new one.
pub async fn delete_endpoint(db: &Db, org_id: &OrgId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM delivery_endpoints WHERE org_id = $1")
        .bind(org_id)
        .write_on(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The receiver said the endpoint is gone (410): stop sending to it.
async fn disable_endpoint(tx: &mut WriteTx, org_id: &OrgId, reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE delivery_endpoints SET state = 'disabled', disabled_reason = $1, updated_at = $2 WHERE org_id = $3",
    )
    .bind(reason)
    .bind(now_ms())
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A delivery to queue.
pub struct NewDelivery<'a> {
    pub org_id: &'a OrgId,
    pub conversation_id: &'a ConversationId,
    pub dedupe_key: &'a str,
    pub event_type: &'a str,
    /// Builds the payload from the delivery's id (the webhook-id).
    pub payload: &'a str,
}

/// Queues a delivery unless one with its key exists; its id when queued.
pub async fn enqueue(tx: &mut WriteTx, d: &NewDelivery<'_>) -> Result<Option<String>> {
    let now = now_ms();
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let cause = crate::domain::current_cause();
    let done = sqlx::query(
        "INSERT INTO deliveries (id, org_id, conversation_id, seq, dedupe_key, event_type, payload, state, \
         attempts, next_attempt_at, created_at, updated_at, request_id, traceparent) \
         SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6, 'pending', 0, $7, $7, $7, $8, $9 \
         FROM deliveries WHERE org_id = $2 AND conversation_id = $3 \
         ON CONFLICT (org_id, dedupe_key) DO NOTHING",
    )
    .bind(&id)
    .bind(d.org_id)
    .bind(d.conversation_id)
    .bind(d.dedupe_key)
    .bind(d.event_type)
    .bind(d.payload)
    .bind(now)
    .bind(cause.request_id)
    .bind(cause.traceparent)
    .execute(&mut **tx)
    .await?;
    let queued = done.rows_affected() == 1;
    if queued {
        tx.deliveries_queued();
    }
    Ok(queued.then_some(id))
}

/// Which of `keys` were queued before (delivered or not).
pub async fn queued_among(db: &Db, org_id: &OrgId, keys: &[String]) -> Result<Vec<String>> {
    super::present_among(db, "deliveries", "dedupe_key", org_id, keys).await
}

/// A delivery as stored.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub org_id: OrgId,
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub event_type: String,
    pub payload: String,
    pub state: String,
    /// Every attempt made (the attempt log has one row each).
    pub attempts: i64,
    /// Attempts made before the last replay or retry: the schedule counts
    /// from here.
    pub attempts_before: i64,
    /// When an admin last queued it again.
    pub retried_at: Option<i64>,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
    /// The request whose work queued it (sent as `x-request-id`), if any.
    pub request_id: Option<String>,
    /// The span that queued it (W3C), with traces on.
    pub traceparent: Option<String>,
}

const COLUMNS: &str = "id, org_id, conversation_id, seq, event_type, payload, state, attempts, \
    attempts_before, retried_at, next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at, request_id, traceparent";

fn delivery_from(r: &sqlx::any::AnyRow) -> Result<Delivery> {
    Ok(Delivery {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        conversation_id: r.try_get("conversation_id")?,
        seq: r.try_get("seq")?,
        event_type: r.try_get("event_type")?,
        payload: r.try_get("payload")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        attempts_before: r.try_get("attempts_before")?,
        retried_at: r.try_get("retried_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        delivered_at: r.try_get("delivered_at")?,
        request_id: r.try_get("request_id")?,
        traceparent: r.try_get("traceparent")?,
    })
}

/// Claims the next due delivery of an enabled endpoint that is the first
/// unfinished one of its conversation (see [`super::outbox`]).
pub async fn claim_next(db: &Db, lease_ms: i64) -> Result<Option<Delivery>> {
    let rows = DELIVERIES.claim(db, lease_ms, 1, "").await?;
    rows.first().map(delivery_from).transpose()
}

/// Puts a claimed delivery back as it was (its endpoint changed meanwhile).
pub async fn release(db: &Db, id: &str) -> Result<()> {
    DELIVERIES.unclaim(db, &[id]).await
}

/// One attempt as made.
pub struct Attempt<'a> {
    pub delivery_id: &'a str,
    pub org_id: &'a OrgId,
    pub conversation_id: &'a ConversationId,
    /// Which attempt of the delivery this was.
    pub number: i64,
    pub url: &'a str,
    pub status: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<&'a str>,
    pub response: Option<&'a str>,
    /// The conversation's timeline line: its kind and text.
    pub timeline: (&'a str, &'a str),
}

/// What becomes of a delivery after an attempt.
pub enum Outcome<'a> {
    Delivered,
    Retry {
        at: i64,
    },
    Dead,
    /// Dead, and the endpoint is disabled with this reason.
    Gone {
        reason: &'a str,
    },
}

/// Logs the attempt (and its timeline line) and moves the delivery on, in
/// one transaction.
pub async fn record_attempt(db: &Db, a: &Attempt<'_>, outcome: Outcome<'_>) -> Result<()> {
    let now = now_ms();
    let mut tx = db.write().await?;
    sqlx::query(
        "INSERT INTO delivery_attempts (id, delivery_id, org_id, at, url, status, latency_ms, error, response) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(a.delivery_id)
    .bind(a.org_id)
    .bind(now)
    .bind(a.url)
    .bind(a.status.map(i64::from))
    .bind(a.latency_ms)
    .bind(a.error)
    .bind(a.response)
    .execute(&mut *tx)
    .await?;
    let verdict = match outcome {
        Outcome::Delivered => Verdict::Done,
        Outcome::Retry { at } => Verdict::Retry {
            at,
            error: a.error,
            keep_attempt: true,
        },
        Outcome::Dead => Verdict::Dead { error: a.error },
        Outcome::Gone { reason } => {
            disable_endpoint(&mut tx, a.org_id, reason).await?;
            Verdict::Dead { error: a.error }
        }
    };
    if DELIVERIES.settle(&mut tx, a.delivery_id, verdict).await? {
        // What only a delivery keeps: the receiver's status, when it was
        // delivered; a finished one is due now (replay starts from there).
        let (next, delivered_at) = match verdict {
            Verdict::Done => (Some(now), Some(now)),
            Verdict::Dead { .. } => (Some(now), None),
            Verdict::Retry { .. } => (None, None),
        };
        sqlx::query(
            "UPDATE deliveries SET last_status = $1, delivered_at = COALESCE($2, delivered_at), \
             next_attempt_at = COALESCE($3, next_attempt_at) WHERE id = $4",
        )
        .bind(a.status.map(i64::from))
        .bind(delivered_at)
        .bind(next)
        .bind(a.delivery_id)
        .execute(&mut *tx)
        .await?;
    }
    let (kind, summary) = a.timeline;
    super::timeline::add_timeline(
        &mut tx,
        a.org_id,
        a.conversation_id,
        kind,
        summary,
        Some(a.number),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Queues a dead or delivered delivery again, with a fresh schedule (its
/// attempt count goes on). `None` when the org has no such delivery;
/// `Some(false)` when it is still queued (nothing to replay).
pub async fn replay(db: &Db, org_id: &OrgId, id: &str) -> Result<Option<bool>> {
    let now = now_ms();
    let q = sqlx::query(
        "UPDATE deliveries SET state = 'pending', attempts_before = attempts, retried_at = $1, next_attempt_at = $1, \
         last_error = NULL, updated_at = $1 WHERE org_id = $2 AND id = $3 AND state IN ('dead', 'delivered') \
         RETURNING conversation_id, attempts",
    )
    .bind(now)
    .bind(org_id)
    .bind(id);
    let mut tx = db.write().await?;
    if let Some(row) = q.fetch_optional(&mut *tx).await? {
        let conversation_id: ConversationId = row.try_get("conversation_id")?;
        let attempts: i64 = row.try_get("attempts")?;
        let line = format!("Delivery {id} replayed by an admin ({attempts} attempts before)");
        add_timeline(&mut tx, org_id, &conversation_id, "admin", &line, None).await?;
        tx.deliveries_queued();
        tx.commit().await?;
        return Ok(Some(true));
    }
    drop(tx);
    Ok(get(db, org_id, id).await?.map(|_| false))
}

/// What [`retry_now`] found.
#[derive(Debug, PartialEq)]
pub enum RetryNow {
    /// Due now, with the earlier pending deliveries of its conversation
    /// (it goes after them): how many those were.
    Queued { earlier: u64 },
    /// Not pending or dead: its state.
    Not(String),
}

/// Sends a pending delivery now rather than on its schedule, and a dead one
/// again (as [`recover`] does). Its conversation's earlier pending ones
/// are made due now too: they go first. `None` when the org has no such
/// delivery.
pub async fn retry_now(db: &Db, org_id: &OrgId, id: &str) -> Result<Option<RetryNow>> {
    let Some(d) = get(db, org_id, id).await? else {
        return Ok(None);
    };
    let now = now_ms();
    let mut tx = db.write().await?;
    let line = match d.state.as_str() {
        "pending" => {
            sqlx::query("UPDATE deliveries SET next_attempt_at = $1, updated_at = $1 WHERE id = $2 AND state = 'pending'")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            format!(
                "Delivery {id} retried now by an admin ({} attempts before)",
                d.attempts
            )
        }
        "dead" => {
            if DELIVERIES.requeue(&mut tx, org_id, &[id]).await?.is_empty() {
                return Ok(Some(RetryNow::Not("no longer dead".into())));
            }
            format!(
                "Delivery {id} retried by an admin ({} attempts before)",
                d.attempts
            )
        }
        other => return Ok(Some(RetryNow::Not(other.to_string()))),
    };
    let done = sqlx::query(
        "UPDATE deliveries SET next_attempt_at = $1, updated_at = $1 WHERE org_id = $2 AND conversation_id = $3 \
         AND state = 'pending' AND seq < $4 AND next_attempt_at > $1",
    )
    .bind(now)
    .bind(org_id)
    .bind(&d.conversation_id)
    .bind(d.seq)
    .execute(&mut *tx)
    .await?;
    let earlier = done.rows_affected();
    add_timeline(&mut tx, org_id, &d.conversation_id, "admin", &line, None).await?;
    tx.deliveries_queued();
    tx.commit().await?;
    Ok(Some(RetryNow::Queued { earlier }))
}

/// Queues again every dead delivery of the org dead-lettered at or after
/// `since` (ms), like Svix's "recover failed messages since": each keeps
/// its place in its conversation, its schedule starts over. One timeline
/// line per conversation. Returns how many.
pub async fn recover(db: &Db, org_id: &OrgId, since: i64) -> Result<Vec<super::outbox::Requeued>> {
    let rows = sqlx::query(
        "SELECT id FROM deliveries WHERE org_id = $1 AND state = 'dead' AND updated_at >= $2 ORDER BY conversation_id, seq",
    )
    .bind(org_id)
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut tx = db.write().await?;
    let requeued = DELIVERIES.requeue(&mut tx, org_id, &ids).await?;
    for group in requeued.chunk_by(|a, b| a.conversation_id == b.conversation_id) {
        let ids: Vec<&str> = group.iter().map(|r| r.id.as_str()).collect();
        let line = format!(
            "Recovered by an admin: {} queued again ({})",
            match group.len() {
                1 => "1 dead delivery".to_string(),
                n => format!("{n} dead deliveries"),
            },
            ids.join(", ")
        );
        add_timeline(
            &mut tx,
            org_id,
            &group[0].conversation_id,
            "admin",
            &line,
            None,
        )
        .await?;
    }
    if !requeued.is_empty() {
        tx.deliveries_queued();
    }
    tx.commit().await?;
    Ok(requeued)
}

pub async fn get(db: &Db, org_id: &OrgId, id: &str) -> Result<Option<Delivery>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM deliveries WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(delivery_from).transpose()
}

/// Filters of the delivery log.
#[derive(Default)]
pub struct ListFilter<'a> {
    pub state: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    /// Only deliveries created before this one (paging, newest first).
    pub before: Option<&'a str>,
    pub limit: i64,
}

/// The org's deliveries, newest first.
pub async fn list(db: &Db, org_id: &OrgId, f: &ListFilter<'_>) -> Result<Vec<Delivery>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM deliveries WHERE org_id = $1 \
         AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR conversation_id = $3) \
         AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
    ))
    .bind(org_id)
    .bind(f.state)
    .bind(f.conversation_id)
    .bind(f.before)
    .bind(f.limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(delivery_from).collect()
}

/// An attempt as the log shows it.
pub struct AttemptView {
    pub at: i64,
    pub url: String,
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response: Option<String>,
}

pub async fn attempts(db: &Db, org_id: &OrgId, delivery_id: &str) -> Result<Vec<AttemptView>> {
    let rows = sqlx::query(
        "SELECT at, url, status, latency_ms, error, response FROM delivery_attempts \
         WHERE org_id = $1 AND delivery_id = $2 ORDER BY id",
    )
    .bind(org_id)
    .bind(delivery_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AttemptView {
                at: r.try_get("at")?,
                url: r.try_get("url")?,
                status: r.try_get("status")?,
                latency_ms: r.try_get("latency_ms")?,
                error: r.try_get("error")?,
                response: r.try_get("response")?,
            })
        })
        .collect()
}

/// The org's deliveries by state.
pub async fn counts(db: &Db, org_id: &OrgId) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT state, COUNT(*) AS n FROM deliveries WHERE org_id = $1 GROUP BY state ORDER BY state",
    )
    .bind(org_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
        .collect()
}
