//! The hand-off: a note Activity on the case with the summary, reason,
//! language, sentiment and AI field values, and the case's owner and group
//! as the org's defaults say.

use creatio::ids::{activity_category, activity_status, activity_type};
use creatio::models::{Activity, Case};
use uuid::Uuid;

use super::cases::with_ai_text_fallback;
use super::context::{contact_uuid, created_once};
use super::context::{timeline, Context, JobError};
use super::events::HandoffJson;
use super::records::{case_body, first_line, symptoms, MAX_TITLE};
use super::triage::Triage;
use crate::domain::EventId;
use crate::storage::conversations::Conversation;
use crate::storage::jobs::Job;
use crate::storage::written;

pub(super) async fn write_handoff(
    ctx: &mut Context<'_>,
    job: &Job,
    event_id: &EventId,
    h: &HandoffJson,
    triage: &Triage,
) -> Result<(), JobError> {
    let c = ctx.conversation.clone();
    let case_id = c.case_id.0;
    let note_id = super::ids::handoff_note_id(&job.org_id, &c.id, event_id);
    let note = note(&c, h, triage, note_id);
    created_once(ctx.client.create(&note).await)?;
    written::remember_written(
        &ctx.services.db,
        &job.org_id,
        &note_id.to_string(),
        "Activity",
        Some(&c.id),
    )
    .await?;
    let patch = Case {
        symptoms: Some(symptoms(&c, &h.summary)),
        owner_id: ctx.settings.default_owner_id,
        group_id: ctx.settings.default_group_id,
        ..Default::default()
    };
    let ai_columns = triage.case_columns();
    let ai_columns = with_ai_text_fallback(ctx, job, &ai_columns, |columns| {
        let client = ctx.client.clone();
        let body = case_body(&patch, &columns);
        async move {
            client.update_value("Case", case_id, &body?).await?;
            Ok(columns)
        }
    })
    .await?;
    let ai = if ai_columns.is_empty() {
        String::new()
    } else {
        format!(
            " and AI fields {}",
            ai_columns.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    timeline(
        ctx,
        "creatio",
        &format!("Wrote hand-off note {note_id} and updated the case summary, owner and group{ai}"),
        job,
    )
    .await;
    Ok(())
}

/// The hand-off note: the summary, reason, language, sentiment and AI
/// field values, titled by the reason.
fn note(c: &Conversation, h: &HandoffJson, triage: &Triage, note_id: Uuid) -> Activity {
    let mut notes = format!("Summary: {}", h.summary.trim());
    if !h.reason.trim().is_empty() {
        notes.push_str(&format!("\nReason: {}", h.reason.trim()));
    }
    notes.push_str(&format!("\nLanguage: {}", triage.language_line()));
    notes.push_str(&format!("\nSentiment: {}", triage.sentiment_line()));
    if let Some(e) = &triage.evaluation {
        for v in &e.values {
            notes.push_str(&format!(
                "\n{}: {}",
                v.title,
                v.value.as_deref().unwrap_or("(left empty)")
            ));
        }
    }
    if let Some(url) = &c.url {
        notes.push_str(&format!("\nView conversation: {url}"));
    }
    let reason = first_line(&h.reason, MAX_TITLE - 10);
    Activity {
        id: Some(note_id),
        title: Some(if reason.is_empty() {
            "Hand-off to an agent".into()
        } else {
            format!("Hand-off: {reason}")
        }),
        notes: Some(notes),
        type_id: Some(activity_type::TASK),
        activity_category_id: Some(activity_category::TODO),
        status_id: Some(activity_status::COMPLETED),
        case_id: Some(c.case_id.0),
        contact_id: contact_uuid(c),
        ..Default::default()
    }
}
