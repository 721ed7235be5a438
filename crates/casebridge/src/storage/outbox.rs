//! The outbox: one set of rules for the two queues casebridge keeps, jobs
//! toward Creatio ([`super::jobs`]) and deliveries toward the chat platform
//! ([`super::deliveries`]).
//!
//! - **Enqueue** in the caller's transaction, which wakes that queue's
//!   workers on commit ([`super::WriteTx`]). It stays with each queue
//!   (`jobs::insert_jobs`, `deliveries::enqueue`) rather than a generic
//!   `enqueue(tx, task)`: a delivery dedupes on its key and takes its
//!   position in one statement, jobs go in multi-row batches; the rules
//!   below are shared once the row exists.
//! - **Claim**: an item is claimable when it is pending and due, when its
//!   destination can take it now (the gate: the org's Creatio connection is
//!   active, or its delivery URL enabled), and when no earlier item of its
//!   conversation is unfinished. A conversation's items go out one at a
//!   time, in order; different conversations go side by side. A claim is
//!   one statement: on SQLite the single writer makes it atomic; on
//!   PostgreSQL `FOR UPDATE SKIP LOCKED` lets claimants in other processes
//!   pass each other, and the outer `state = 'pending'` re-check means a row
//!   taken meanwhile is never claimed twice.
//! - **Lease**: a claim holds the item until `locked_until`; a claimant that
//!   dies lets it run out, and [`reap`] returns the item to the queue. Each
//!   process runs one reaper for both queues.
//! - **Requeue**: an admin queues dead items again ([`Queue::requeue`]).
//!   They keep their place (`seq`) in their conversation, so they go before
//!   its later items, and the claim admits no item of a conversation while
//!   another one of it is claimed: a requeued item never runs beside a
//!   later one already running. The schedule restarts (`attempts_before`);
//!   the attempt count does not.
//! - **Settle**: done, pending again from a given time (a retry), or dead
//!   (kept, visible, replayable). Which, and when to retry, is each queue's
//!   own policy, decided by its worker: the circuit-breaking `Policy`
//!   toward Creatio ([`crate::sync::settle`]), Svix's schedule toward the
//!   platform ([`crate::deliver`]). The outbox records the verdict.

use sqlx::Row;

use super::{now_ms, rows_query, value_rows, Backend, Db, Result, WriteQuery, WriteTx};

/// One of the two queues: its table and the words and columns that differ.
#[derive(Debug)]
pub struct Queue {
    pub table: &'static str,
    /// The state of a claimed item.
    pub running: &'static str,
    /// The state of a finished one.
    pub done: &'static str,
    /// The states an item may be settled from (a job cancelled while it
    /// ran is settled too: its writes happened).
    settle_from: &'static str,
    /// The column of the time an item is due.
    due: &'static str,
    /// The join that admits only items whose destination can take them now
    /// (the queue's rows are `x`).
    gate: &'static str,
    /// The columns a claim returns.
    returning: &'static str,
}

/// Sync jobs toward Creatio.
pub const JOBS: Queue = Queue {
    table: "jobs",
    running: "running",
    done: "done",
    settle_from: "('running', 'cancelled')",
    due: "run_after",
    gate: "JOIN creatio_connections c ON c.org_id = x.org_id AND c.status = 'active'",
    returning: "id, org_id, conversation_id, seq, kind, payload, attempts, attempts_before, retried_at, created_at, request_id, traceparent",
};

/// Deliveries toward the chat platform.
pub const DELIVERIES: Queue = Queue {
    table: "deliveries",
    running: "delivering",
    done: "delivered",
    settle_from: "('delivering')",
    due: "next_attempt_at",
    gate: "JOIN delivery_endpoints g ON g.org_id = x.org_id AND g.state = 'enabled'",
    // Every column: the row as the deliveries module reads it.
    returning: "*",
};

/// What becomes of a claimed item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict<'a> {
    Done,
    /// Pending again, due at `at`; `keep_attempt` false gives the attempt
    /// back (the destination was paused: the item did not really fail).
    Retry {
        at: i64,
        error: Option<&'a str>,
        keep_attempt: bool,
    },
    /// Failed for good; kept as `dead`.
    Dead {
        error: Option<&'a str>,
    },
}

impl Queue {
    /// The claim: binds the lease's end, now, the limit. `only` narrows the
    /// claimable rows further (`AND x.kind = 'message'`). "No earlier
    /// unfinished item in the conversation" reads each queue's partial
    /// index of open items, so a claim costs the same in a conversation's
    /// thousandth item as in its first.
    pub(super) fn claim_sql(&self, backend: Backend, only: &str) -> String {
        let Queue {
            table,
            running,
            due,
            gate,
            returning,
            ..
        } = self;
        // "The first unfinished item" is the open item of least seq, a
        // scalar subquery per candidate through the open-items index on
        // both columns. As NOT EXISTS, PostgreSQL made it an anti-join,
        // and with a claim for one org (its id a constant on both sides)
        // and no statistics yet (a fresh database) it read the org's whole
        // open index for every candidate: 11 s for a claim of 100 among
        // 20,000 jobs, against 0.04 s now.
        // Nothing of the conversation may be claimed: the first unfinished
        // item is normally the claimed one itself, but an item requeued by
        // an admin comes back before later ones that may be running. The
        // index of claimed items makes that a seek into a handful of rows.
        // SQLite runs the statement alone (one writer), so the re-check is
        // not needed there, and leaving it out keeps its planner on the
        // primary key instead of walking every pending item. PostgreSQL
        // gets the ids as an array, computed once: as `id IN (…)` its
        // planner made a semi-join that ran the subquery again for each
        // row, each run skipping the rows the earlier ones had locked, so
        // a claim of one delivery took two (the storage tests caught it).
        let (recheck, open, close, lock) = match backend {
            Backend::Postgres => (
                "state = 'pending' AND",
                "= ANY(ARRAY(",
                "))",
                "FOR UPDATE OF x SKIP LOCKED",
            ),
            Backend::Sqlite => ("", "IN (", ")", ""),
        };
        format!(
            "UPDATE {table} SET state = '{running}', attempts = attempts + 1, locked_until = $1, updated_at = $2 \
             WHERE {recheck} id {open} \
               SELECT x.id FROM {table} x {gate} \
               WHERE x.state = 'pending' AND x.{due} <= $2 {only} AND x.seq = ( \
                 SELECT MIN(e.seq) FROM {table} e WHERE e.org_id = x.org_id AND e.conversation_id = x.conversation_id \
                 AND e.state IN ('pending', '{running}')) \
               AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.org_id = x.org_id \
                 AND r.conversation_id = x.conversation_id AND r.state = '{running}') \
               ORDER BY x.{due}, x.seq LIMIT $3 {lock}{close} \
             RETURNING {returning}"
        )
    }

    /// Claims up to `limit` items for `lease_ms`, in one write.
    pub(super) async fn claim(
        &self,
        db: &Db,
        lease_ms: i64,
        limit: usize,
        only: &str,
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        let now = now_ms();
        sqlx::query(&self.claim_sql(db.backend(), only))
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit as i64)
            .write_returning(db)
            .await
    }

    /// Queues dead items (of `org_id`, among `ids`) again, due now, in
    /// the caller's transaction: they keep their place in their
    /// conversation, their schedule starts again and their attempt count
    /// does not. Returns those requeued (an item no longer dead is left
    /// alone), in conversation order.
    pub async fn requeue(
        &self,
        tx: &mut WriteTx,
        org_id: &crate::domain::OrgId,
        ids: &[&str],
    ) -> Result<Vec<Requeued>> {
        let Queue { table, due, .. } = self;
        let now = now_ms();
        let mut requeued = Vec::new();
        for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE {table} SET state = 'pending', {due} = $1, attempts_before = attempts, retried_at = $1, \
                 last_error = NULL, locked_until = NULL, updated_at = $1 \
                 WHERE org_id = $2 AND state = 'dead' AND id IN ({}) \
                 RETURNING id, conversation_id, seq, attempts",
                value_rows("?", chunk.len(), 3)
            );
            let sql = super::for_backend(tx, sql);
            let mut q = rows_query(&sql, chunk.len()).bind(now).bind(org_id);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&mut **tx).await? {
                requeued.push(Requeued {
                    id: r.try_get("id")?,
                    conversation_id: r.try_get("conversation_id")?,
                    seq: r.try_get("seq")?,
                    attempts: r.try_get("attempts")?,
                });
            }
        }
        requeued.sort_by(|a, b| (&a.conversation_id, a.seq).cmp(&(&b.conversation_id, b.seq)));
        Ok(requeued)
    }

    /// Gives claimed items back untouched, their attempt too (the claimant
    /// took more than it can start soon, or the destination changed).
    pub async fn unclaim(&self, db: &Db, ids: &[&str]) -> Result<()> {
        let Queue { table, running, .. } = self;
        let mut tx = db.write().await?;
        for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE {table} SET state = 'pending', attempts = attempts - 1, locked_until = NULL, updated_at = $1 \
                 WHERE state = '{running}' AND id IN ({})",
                value_rows("?", chunk.len(), 2)
            );
            let sql = db.for_backend(sql);
            let mut q = rows_query(&sql, chunk.len()).bind(now_ms());
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Returns the items whose claimant died (their lease ran out) to the
    /// queue, as they were.
    pub async fn reap(&self, db: &Db) -> Result<u64> {
        let Queue { table, running, .. } = self;
        let done = sqlx::query(&format!(
            "UPDATE {table} SET state = 'pending', locked_until = NULL, updated_at = $1 \
             WHERE state = '{running}' AND locked_until < $1"
        ))
        .bind(now_ms())
        .write_on(db)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records what became of a claimed item, in the caller's transaction.
    /// An item no longer claimed (its lease ran out and another claimant
    /// took it) is left alone. Returns whether the item was settled.
    pub async fn settle(&self, tx: &mut WriteTx, id: &str, verdict: Verdict<'_>) -> Result<bool> {
        let Queue {
            table,
            running,
            done,
            settle_from,
            due,
            ..
        } = self;
        let now = now_ms();
        let result = match verdict {
            Verdict::Done => {
                sqlx::query(&format!(
                    "UPDATE {table} SET state = '{done}', locked_until = NULL, last_error = NULL, updated_at = $1 \
                     WHERE id = $2 AND state IN {settle_from}"
                ))
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?
            }
            Verdict::Retry {
                at,
                error,
                keep_attempt,
            } => {
                sqlx::query(&format!(
                    "UPDATE {table} SET state = 'pending', locked_until = NULL, {due} = $1, last_error = $2, \
                     attempts = attempts - $3, updated_at = $4 WHERE id = $5 AND state = '{running}'"
                ))
                .bind(at)
                .bind(error)
                .bind(i64::from(!keep_attempt))
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?
            }
            Verdict::Dead { error } => {
                sqlx::query(&format!(
                    "UPDATE {table} SET state = 'dead', locked_until = NULL, last_error = $1, updated_at = $2 \
                     WHERE id = $3 AND state = '{running}'"
                ))
                .bind(error)
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?
            }
        };
        Ok(result.rows_affected() == 1)
    }

    /// Records claimed items done, many at once, in the caller's
    /// transaction (a round's jobs).
    pub async fn finish_all(&self, tx: &mut WriteTx, ids: &[&str]) -> Result<()> {
        let Queue {
            table,
            done,
            settle_from,
            ..
        } = self;
        let now = now_ms();
        for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE {table} SET state = '{done}', locked_until = NULL, last_error = NULL, updated_at = $1 \
                 WHERE state IN {settle_from} AND id IN ({})",
                value_rows("?", chunk.len(), 2)
            );
            let sql = super::for_backend(tx, sql);
            let mut q = rows_query(&sql, chunk.len()).bind(now);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// [`Queue::settle`] in a transaction of its own.
    pub async fn settle_alone(&self, db: &Db, id: &str, verdict: Verdict<'_>) -> Result<bool> {
        let mut tx = db.write().await?;
        let settled = self.settle(&mut tx, id, verdict).await?;
        tx.commit().await?;
        Ok(settled)
    }
}

/// An item [`Queue::requeue`] queued again.
#[derive(Debug, Clone)]
pub struct Requeued {
    pub id: String,
    pub conversation_id: crate::domain::ConversationId,
    pub seq: i64,
    /// Attempts made before.
    pub attempts: i64,
}

/// Items returned to each queue by [`reap`].
#[derive(Debug, Default, PartialEq)]
pub struct Reaped {
    pub jobs: u64,
    pub deliveries: u64,
}

/// Returns both queues' items whose claimant died to their queues.
pub async fn reap(db: &Db) -> Result<Reaped> {
    Ok(Reaped {
        jobs: JOBS.reap(db).await?,
        deliveries: DELIVERIES.reap(db).await?,
    })
}

/// Returns every claimed item of both queues to its queue, leases or not:
/// after a restore nothing runs what the backup held as claimed.
pub async fn requeue_claimed(db: &Db) -> Result<Reaped> {
    let mut reaped = Reaped::default();
    for (queue, n) in [
        (&JOBS, &mut reaped.jobs),
        (&DELIVERIES, &mut reaped.deliveries),
    ] {
        let Queue { table, running, .. } = queue;
        *n = sqlx::query(&format!(
            "UPDATE {table} SET state = 'pending', locked_until = NULL WHERE state = '{running}'"
        ))
        .write_on(db)
        .await?
        .rows_affected();
    }
    Ok(reaped)
}
