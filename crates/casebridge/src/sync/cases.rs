//! The conversation's Case: created once under its deterministic Id (AI
//! text cut, then left out, when Creatio finds it too long), or a returning
//! contact's open case appended to; announced to the platform as
//! `case.linked` when the org has a delivery URL.

use creatio::models::Case;
use creatio::query::{col, lookup, Query};
use creatio::{Client, Error as CreatioError};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::contacts::ensure_contact;
use super::context::{timeline, Context, JobError};
use super::events::HandoffJson;
use super::records::{case_body, created_case, new_case, smaller_ai_text};
use crate::domain::CaseId;
use crate::storage::conversations;
use crate::storage::jobs::Job;
use crate::storage::messages;
use crate::storage::written;

/// Creates the conversation's case unless it exists, with `ai_columns`
/// (AI field values decided at hand-off) set on it.
pub(super) async fn ensure_case(
    ctx: &mut Context<'_>,
    job: &Job,
    handoff: Option<&HandoffJson>,
    ai_columns: &Map<String, Value>,
) -> Result<(), JobError> {
    if ctx.conversation.case_created {
        return Ok(());
    }
    let contact_id = ensure_contact(ctx, job).await?;
    if let Some(contact) = contact_id {
        if ctx
            .settings
            .case_append_channels
            .contains(&ctx.conversation.channel)
            && append_to_open_case(ctx, job, contact).await?
        {
            return Ok(());
        }
    }
    let c = ctx.conversation.clone();
    let first =
        messages::first_customer_text(&ctx.services.db, &job.org_id, &job.conversation_id).await?;
    let case = new_case(&c, &ctx.settings, first.as_deref(), handoff)?;
    let case_id = c.case_id.0;
    let created = with_ai_text_fallback(ctx, job, ai_columns, |columns| {
        let client = ctx.client.clone();
        let case = case.clone();
        async move { create_case(&client, &case, &columns).await }
    })
    .await;
    let number = match created {
        Ok(number) => number,
        Err(CreatioError::AlreadyExists { .. }) => {
            let existing: Case = ctx.client.get(case_id).await?;
            existing.number
        }
        Err(e) => return Err(e.into()),
    };
    written::remember_written(
        &ctx.services.db,
        &job.org_id,
        &c.case_id.to_string(),
        "Case",
        Some(&c.id),
    )
    .await?;
    conversations::link_case(
        &ctx.services.db,
        &job.org_id,
        &c.id,
        c.case_id,
        number.as_deref(),
    )
    .await?;
    ctx.conversation.case_created = true;
    ctx.conversation.case_number = number.clone();
    announce_case(ctx, job).await?;
    timeline(
        ctx,
        "creatio",
        &created_case(number.as_deref(), case_id),
        job,
    )
    .await;
    Ok(())
}

/// Runs a Case write with AI columns; when Creatio refuses a text value as
/// too long for its column (its `$metadata` does not tell the size, so a
/// mapping's `max_length` can be wrong), writes again with the text values
/// cut to [`crate::ai::DEFAULT_TEXT_LENGTH`], then without them, saying so
/// on the timeline. The hand-off completes; the error is never retried as
/// transient. Other failures are returned as they are.
pub(super) async fn with_ai_text_fallback<T, F, Fut>(
    ctx: &Context<'_>,
    job: &Job,
    columns: &Map<String, Value>,
    write: F,
) -> Result<T, CreatioError>
where
    F: Fn(Map<String, Value>) -> Fut,
    Fut: std::future::Future<Output = Result<T, CreatioError>>,
{
    let mut columns = columns.clone();
    let mut tried = 0;
    loop {
        match write(columns.clone()).await {
            Err(e @ CreatioError::ValueTooLong { .. }) => {
                let Some((smaller, what)) = smaller_ai_text(&columns, tried) else {
                    return Err(e);
                };
                tracing::warn!(org_id = %job.org_id, conversation_id = %job.conversation_id, error = %e, "An AI text value was too long for its Creatio column; writing it shorter.");
                timeline(
                    ctx,
                    "warning",
                    &format!("Creatio refused an AI field's text as too long for its column ({e}); {what}. Set the field's max_length to the column's size."),
                    job,
                )
                .await;
                columns = smaller;
                tried += 1;
            }
            other => return other,
        }
    }
}

/// Creates `case` with extra columns; returns its number.
async fn create_case(
    client: &Client,
    case: &Case,
    extra: &Map<String, Value>,
) -> Result<Option<String>, CreatioError> {
    let created = client
        .create_value("Case", &case_body(case, extra)?)
        .await?;
    Ok(created["Number"].as_str().map(str::to_string))
}

/// Tells the platform which case the conversation has (`case.linked`), so
/// it can show the ticket number. Only for an org with a delivery URL: an
/// org that syncs one way only gets no queue of undeliverable notices.
async fn announce_case(ctx: &Context<'_>, job: &Job) -> Result<(), JobError> {
    let db = &ctx.services.db;
    if crate::storage::deliveries::endpoint(db, &job.org_id)
        .await?
        .is_none()
    {
        return Ok(());
    }
    let c = &ctx.conversation;
    let mut tx = db.write().await?;
    crate::deliver::queue_case_linked(
        &mut tx,
        &job.org_id,
        &c.id,
        &c.case_id.to_string(),
        c.case_number.as_deref(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Case-append: a returning contact whose latest case is still open gets
/// this conversation on that case. True when it did.
async fn append_to_open_case(
    ctx: &mut Context<'_>,
    job: &Job,
    contact: Uuid,
) -> Result<bool, JobError> {
    let open: Vec<Case> = ctx
        .client
        .list(
            Query::new()
                .select(["Id", "Number"])
                .filter(lookup("Contact").eq(contact))
                .filter(col("Status/IsFinal").eq(false))
                .filter(col("Status/IsResolved").eq(false))
                .order_by_desc("CreatedOn")
                .top(1),
        )
        .await?;
    let Some(case) = open.into_iter().next() else {
        return Ok(false);
    };
    let Some(case_id) = case.id else {
        return Ok(false);
    };
    conversations::link_case(
        &ctx.services.db,
        &job.org_id,
        &job.conversation_id,
        CaseId(case_id),
        case.number.as_deref(),
    )
    .await?;
    ctx.conversation.case_id = CaseId(case_id);
    ctx.conversation.case_created = true;
    ctx.conversation.case_number = case.number.clone();
    announce_case(ctx, job).await?;
    timeline(
        ctx,
        "creatio",
        &format!(
            "Appended to the contact's open case {} ({case_id}) instead of opening another",
            case.number.as_deref().unwrap_or("?")
        ),
        job,
    )
    .await;
    Ok(true)
}
