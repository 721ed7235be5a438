//! Creatio → chat: the case's status, read when Creatio's webhook says it
//! changed. A final or resolved status marks the conversation resolved and
//! queues one `conversation.resolved`, unless casebridge set that status
//! itself (the platform resolved the conversation) or the conversation is
//! resolved already.

use creatio::models::{Case, CaseStatus};
use uuid::Uuid;

use super::context::{timeline, Context, JobError};
use crate::deliver;
use crate::domain::ConversationState;
use crate::storage::conversations;
use crate::storage::jobs::Job;
use crate::storage::timeline;
use crate::storage::written;

pub async fn check_closure(
    ctx: &mut Context<'_>,
    job: &Job,
    reported: Option<Uuid>,
) -> Result<(), JobError> {
    if !ctx.conversation.case_created {
        timeline(
            ctx,
            "warning",
            "Creatio reported a status change, but the conversation has no case yet; nothing to look at",
            job,
        )
        .await;
        return Ok(());
    }
    let case_id = ctx.conversation.case_id.0;
    let Some(status) = case_status(ctx, job, case_id, reported).await? else {
        return Ok(());
    };
    let name = status.name.clone().unwrap_or_default();
    let closed = status.is_final == Some(true) || status.is_resolved == Some(true);
    let db = &ctx.services.db;
    if !closed {
        return not_closed(ctx, job, case_id, &name).await;
    }
    if ctx.conversation.state == ConversationState::Resolved {
        timeline(
            ctx,
            "event",
            &format!("Case {case_id} is {name}; the conversation was resolved already, nothing to deliver"),
            job,
        )
        .await;
        return Ok(());
    }
    let status_id = status.id.unwrap_or_default();
    if written::was_written(db, &job.org_id, &format!("status:{case_id}:{status_id}")).await? {
        conversations::set_conversation_state(
            db,
            &job.org_id,
            &job.conversation_id,
            ConversationState::Resolved,
        )
        .await?;
        timeline(
            ctx,
            "event",
            &format!("Case {case_id} is {name} because casebridge set it; no echo to the platform"),
            job,
        )
        .await;
        return Ok(());
    }
    announce(ctx, job, case_id, &status).await
}

/// The case's status now, whatever the call said: calls can arrive late or
/// out of order, the record cannot. `None` (with a timeline line) when the
/// case has none. Its name is the status's, or its id.
async fn case_status(
    ctx: &Context<'_>,
    job: &Job,
    case_id: Uuid,
    reported: Option<Uuid>,
) -> Result<Option<CaseStatus>, JobError> {
    let case: Case = ctx.client.get(case_id).await?;
    let Some(status_id) = case.status_id else {
        timeline(
            ctx,
            "warning",
            &format!("Case {case_id} has no status; nothing to do"),
            job,
        )
        .await;
        return Ok(None);
    };
    if reported.is_some_and(|r| r != status_id) {
        tracing::debug!(org_id = %job.org_id, %case_id, "The webhook's status is no longer the case's; using the case's.");
    }
    let mut status: CaseStatus = ctx.client.get(status_id).await?;
    status.id = Some(status_id);
    status.name = Some(status.name.unwrap_or_else(|| status_id.to_string()));
    Ok(Some(status))
}

/// A status that is neither final nor resolved: a resolved conversation
/// opens again (the case was reopened); otherwise nothing to deliver.
async fn not_closed(
    ctx: &Context<'_>,
    job: &Job,
    case_id: Uuid,
    name: &str,
) -> Result<(), JobError> {
    if ctx.conversation.state == ConversationState::Resolved {
        conversations::set_conversation_state(
            &ctx.services.db,
            &job.org_id,
            &job.conversation_id,
            ConversationState::HandedOff,
        )
        .await?;
        timeline(
            ctx,
            "event",
            &format!("Case {case_id} was reopened in Creatio (status {name}); the conversation is open again"),
            job,
        )
        .await;
    } else {
        timeline(
            ctx,
            "event",
            &format!("Case {case_id} changed to status {name}, which is neither final nor resolved; nothing to deliver"),
            job,
        )
        .await;
    }
    Ok(())
}

/// The conversation resolved and `conversation.resolved` queued, with the
/// timeline line, in one transaction. One delivery per closure: the job's
/// id makes a re-run of this job find its own delivery.
async fn announce(
    ctx: &Context<'_>,
    job: &Job,
    case_id: Uuid,
    status: &CaseStatus,
) -> Result<(), JobError> {
    let name = status.name.clone().unwrap_or_default();
    let data = deliver::Delivered::ConversationResolved(deliver::ConversationResolved {
        conversation_id: ctx.conversation.id.clone(),
        case_id,
        case_number: ctx.conversation.case_number.clone(),
        status: name.clone(),
        status_id: status.id,
        is_final: status.is_final == Some(true),
        is_resolved: status.is_resolved == Some(true),
    });
    let mut tx = ctx.services.db.write().await?;
    let delivery = deliver::queue(
        &mut tx,
        &job.org_id,
        &job.conversation_id,
        &format!("resolved:{}", job.id),
        data,
    )
    .await?;
    conversations::set_state_in(
        &mut tx,
        &job.org_id,
        &job.conversation_id,
        ConversationState::Resolved,
    )
    .await?;
    timeline::add_timeline(
        &mut tx,
        &job.org_id,
        &job.conversation_id,
        "delivery",
        &format!(
            "Case {case_id} was closed in Creatio (status {name}); conversation resolved, queued as {}",
            delivery.as_deref().unwrap_or("an earlier delivery")
        ),
        Some(job.attempts),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
