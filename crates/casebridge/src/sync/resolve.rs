//! The platform resolved the conversation: the case takes the org's
//! resolved status, unless it is closed already.

use creatio::models::Case;

use super::context::{timeline, Context, JobError};
use crate::domain::ConversationState;
use crate::storage::conversations;
use crate::storage::jobs::Job;
use crate::storage::written;

pub(super) async fn resolve(ctx: &mut Context<'_>, job: &Job) -> Result<(), JobError> {
    let db = &ctx.services.db;
    conversations::set_conversation_state(
        db,
        &job.org_id,
        &job.conversation_id,
        ConversationState::Resolved,
    )
    .await?;
    if !ctx.conversation.case_created {
        timeline(
            ctx,
            "warning",
            "Conversation resolved before any case existed; nothing to resolve in Creatio",
            job,
        )
        .await;
        return Ok(());
    }
    let Some(status) = ctx.settings.resolved_status_id else {
        timeline(
            ctx,
            "warning",
            "Conversation resolved, but no Resolved Status ID is set: the case was left as it is. Set resolved_status_id in the connection settings.",
            job,
        )
        .await;
        return Ok(());
    };
    let case_id = ctx.conversation.case_id.0;
    ctx.client
        .update(
            case_id,
            &Case {
                status_id: Some(status),
                ..Default::default()
            },
        )
        .await?;
    written::remember_written(
        db,
        &job.org_id,
        &format!("status:{case_id}:{status}"),
        "CaseStatus",
        Some(&job.conversation_id),
    )
    .await?;
    timeline(
        ctx,
        "creatio",
        &format!("Set case {case_id} to the resolved status {status}"),
        job,
    )
    .await;
    Ok(())
}
