//! Messages as Activities, in the conversation's order: one create, or one
//! `$batch` that stops at the first failure so nothing overtakes it. A retry
//! first asks Creatio which of them landed on an earlier run.

use creatio::models::Activity;
use creatio::{BatchOp, Error as CreatioError};
use uuid::Uuid;

use super::context::{contact_uuid, created_once, Context, JobError};
use super::records::{activity_for, wrote_activities};
use crate::domain::JobKind;
use crate::storage::jobs::Job;
use crate::storage::messages;
use crate::storage::messages::Message;

/// Creates `activities` (those of `pending`, in order): one create, or a
/// `$batch` that stops at the first failure so nothing overtakes it; what
/// landed before a failure is recorded written.
async fn create_activities(
    ctx: &Context<'_>,
    job: &Job,
    activities: &[Activity],
    pending: &[Message],
) -> Result<(), JobError> {
    if let [one] = activities {
        let body = serde_json::to_value(one)
            .map_err(|e| JobError::Permanent(format!("cannot encode an activity: {e}")))?;
        metrics::counter!(crate::metrics::CREATIO_REQUESTS, "kind" => "single").increment(1);
        return created_once(ctx.client.create_value("Activity", &body).await);
    }
    let ops: Vec<BatchOp> = activities
        .iter()
        .map(BatchOp::create)
        .collect::<Result<_, _>>()?;
    metrics::counter!(crate::metrics::CREATIO_REQUESTS, "kind" => "batch").increment(1);
    metrics::histogram!(crate::metrics::BATCH_SIZE).record(ops.len() as f64);
    let results = ctx.client.batch_with(&ops, false).await;
    // Record what landed, up to the first failure, in one transaction.
    let mut landed = 0;
    for r in results {
        match r {
            Ok(_) | Err(CreatioError::AlreadyExists { .. }) => landed += 1,
            Err(e) => {
                messages::mark_written(
                    &ctx.services.db,
                    &job.org_id,
                    &job.conversation_id,
                    &pending[..landed],
                )
                .await?;
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// A retry: an earlier run may have written some of `pending` before it
/// failed or its process died. Asks Creatio which exist and records them
/// written, so the batch does not stop at the first duplicate again and
/// again; returns the others.
async fn not_written_before(
    ctx: &Context<'_>,
    job: &Job,
    pending: Vec<Message>,
) -> Result<Vec<Message>, JobError> {
    let ids: Vec<Uuid> = pending
        .iter()
        .filter_map(|m| Uuid::parse_str(&m.activity_id).ok())
        .collect();
    let existing: Vec<Activity> = ctx.client.get_many(&ids).await?;
    let found: std::collections::HashSet<String> = existing
        .iter()
        .filter_map(|a| a.id.map(|i| i.to_string()))
        .collect();
    let (done, rest): (Vec<Message>, Vec<Message>) = pending
        .into_iter()
        .partition(|m| found.contains(&m.activity_id));
    if !done.is_empty() {
        messages::mark_written(&ctx.services.db, &job.org_id, &job.conversation_id, &done).await?;
    }
    Ok(rest)
}

/// Writes the conversation's unwritten messages up to the job, in order;
/// several at once go as one `$batch`.
pub(super) async fn write_messages(ctx: &mut Context<'_>, job: &Job) -> Result<bool, JobError> {
    let db = &ctx.services.db;
    // A message job also writes the messages queued behind it (their own
    // jobs then find nothing to do): one $batch instead of many requests.
    // Never past a hand-off or resolution, which must come after them.
    let mut pending = if job.kind == JobKind::Message {
        messages::unwritten_messages_before_barrier(db, &job.org_id, &job.conversation_id, job.seq)
            .await?
    } else {
        messages::unwritten_messages(db, &job.org_id, &job.conversation_id, job.seq).await?
    };
    if pending.is_empty() {
        return Ok(false);
    }
    if job.attempts > 1 {
        pending = not_written_before(ctx, job, pending).await?;
        if pending.is_empty() {
            return Ok(false);
        }
    }
    let c = ctx.conversation.clone();
    let case_id = c.case_id.0;
    let contact_id = contact_uuid(&c);
    let mut first = !messages::any_message_written(db, &job.org_id, &job.conversation_id).await?;
    let activities: Vec<Activity> = pending
        .iter()
        .map(|m| {
            let a = activity_for(&c, m, contact_id, case_id, first);
            first = false;
            a
        })
        .collect();
    create_activities(ctx, job, &activities, &pending).await?;
    let last = pending[pending.len() - 1].seq;
    let summary = wrote_activities(&pending);
    // Everything this write means, in one transaction: messages written,
    // the jobs of the messages that rode along done, and — for a message
    // job, which has nothing left to do — the job itself done.
    let finishes = job.kind == JobKind::Message;
    messages::record_written(
        db,
        &job.org_id,
        &job.conversation_id,
        messages::Written {
            messages: &pending,
            finish_message_jobs_up_to: (last > job.seq).then_some(last),
            finish_job: finishes.then_some(job.id.as_str()),
            timeline: Some((&summary, job.attempts)),
        },
    )
    .await?;
    Ok(finishes)
}
