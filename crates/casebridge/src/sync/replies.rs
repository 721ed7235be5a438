//! Creatio → chat: what the jobs queued by Creatio's webhook calls do.
//!
//! A business process only says "something happened on case X" (its
//! documented body is `event_type` + `caseId`), so casebridge looks in
//! Creatio for what is new, and applies the echo guard (DESIGN.md §3):
//!
//! - **agent replies**: the case's activities since the conversation began,
//!   minus every record casebridge wrote (by id, remembered when written)
//!   and every record its technical user created (`CreatedById`), minus
//!   incoming e-mails (the customer writing in), minus those delivered
//!   before (one delivery per activity id). The rest are
//!   queued as `agent.reply` in creation order.
//! - **closures**: the case's status, read now. A final or resolved status
//!   marks the conversation resolved and queues one `conversation.resolved`,
//!   unless casebridge set that status itself (the platform resolved the
//!   conversation) or the conversation is resolved already.
//!
//! These jobs run in the conversation's queue, after the writes queued
//! before them, so casebridge's own activities are remembered by the time
//! a webhook they triggered is looked at.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use creatio::ids::email_type;
use creatio::models::{Activity, Contact};
use creatio::query::{col, lookup, Query};
use creatio::Error as CreatioError;
use uuid::Uuid;

use super::context::{timeline, Context, JobError};
use crate::deliver::{self, AgentReply, ReplyAuthor};
use crate::storage::deliveries;
use crate::storage::jobs::Job;
use crate::storage::timeline;
use crate::storage::written;

/// How far before the conversation's start an activity may be created and
/// still answer it (clocks of Creatio and casebridge differ a little).
const CLOCK_SLACK_SECS: i64 = 300;
/// The longest reply text delivered; a longer one is cut with a note.
const MAX_REPLY_CHARS: usize = 16_000;

pub async fn check_replies(
    ctx: &mut Context<'_>,
    job: &Job,
    hint: Option<Uuid>,
) -> Result<(), JobError> {
    if !ctx.conversation.case_created {
        timeline(
            ctx,
            "warning",
            "Creatio reported an activity, but the conversation has no case yet; nothing to look at",
            job,
        )
        .await;
        return Ok(());
    }
    let case_id = ctx.conversation.case_id.0;
    let activities = case_activities(ctx, case_id).await?;
    let found = agents_replies(ctx, job, &activities, hint).await?;
    // Replies delivered before cost nothing more: no author lookup, no write.
    let mut replies = found.replies;
    let keys: Vec<String> = replies.iter().map(|(id, ..)| reply_key(*id)).collect();
    let before = deliveries::queued_among(&ctx.services.db, &job.org_id, &keys).await?;
    replies.retain(|(id, ..)| !before.contains(&reply_key(*id)));
    let fresh = with_authors(ctx, case_id, replies).await?;
    let queued = queue_replies(ctx, job, fresh).await?;
    // Nothing new is the usual answer: every activity casebridge writes
    // fires the agent-reply process too. It is counted, not written on the
    // timeline, where it read like a fault on almost every conversation;
    // a reply found has its own line (queue_replies).
    let outcome = if queued == 0 {
        "nothing_new"
    } else {
        "replies"
    };
    metrics::counter!(crate::metrics::REPLY_CHECKS, "outcome" => outcome).increment(1);
    tracing::debug!(
        org_id = %job.org_id,
        conversation_id = %job.conversation_id,
        %case_id,
        queued,
        skipped_ours = found.skipped_ours,
        delivered_before = before.len(),
        activity_found = found.hint_found,
        "Looked for agents' replies."
    );
    Ok(())
}

/// The case's activities since the conversation began, but never further
/// back than what retention keeps of deliveries and the echo guard: an
/// older reply would be delivered a second time (its delivery purged), and
/// casebridge's own older writes could echo.
async fn case_activities(ctx: &Context<'_>, case_id: Uuid) -> Result<Vec<Activity>, JobError> {
    let start = ctx.conversation.created_at - CLOCK_SLACK_SECS * 1000;
    let since = DateTime::<Utc>::from_timestamp_millis(
        crate::retention::reply_window_start(&ctx.services.retention.settings)
            .map_or(start, |window| start.max(window)),
    )
    .unwrap_or_default();
    let mut query = Query::new()
        .select([
            "Id",
            "Title",
            "Notes",
            "Body",
            "TypeId",
            "MessageTypeId",
            "CaseId",
            "CreatedOn",
            "CreatedById",
        ])
        .filter(lookup("Case").eq(case_id))
        .filter(col("CreatedOn").ge(since))
        .order_by_asc("CreatedOn");
    if let Some(ours) = ctx.technical_user {
        // The echo guard's cheap half runs in Creatio: its own records
        // never travel.
        query = query.filter(lookup("CreatedBy").ne(ours));
    }
    Ok(ctx.client.list(query).await?)
}

/// What [`agents_replies`] found among a case's activities.
struct Found<'a> {
    /// Each reply: its activity id, the activity, the text to deliver.
    replies: Vec<(Uuid, &'a Activity, String)>,
    /// Activities casebridge wrote itself (the echo guard).
    skipped_ours: usize,
    /// Whether the activity the webhook named was among them.
    hint_found: bool,
}

/// The activities that are agents' replies: not written by casebridge (by
/// id, or by its technical user), not the customer's own incoming e-mail,
/// and with text.
async fn agents_replies<'a>(
    ctx: &Context<'_>,
    job: &Job,
    activities: &'a [Activity],
    hint: Option<Uuid>,
) -> Result<Found<'a>, JobError> {
    let ids: Vec<String> = activities
        .iter()
        .filter_map(|a| a.id.map(|i| i.to_string()))
        .collect();
    let ours = written::written_among(&ctx.services.db, &job.org_id, &ids).await?;
    let mut found = Found {
        replies: Vec::new(),
        skipped_ours: 0,
        hint_found: hint.is_none(),
    };
    for a in activities {
        let Some(id) = a.id else { continue };
        found.hint_found |= Some(id) == hint;
        if ours.contains(&id.to_string())
            || (ctx.technical_user.is_some() && a.created_by_id == ctx.technical_user)
        {
            found.skipped_ours += 1;
            continue;
        }
        if a.message_type_id == Some(email_type::INCOMING) {
            // The customer's own e-mail on the case, not an agent's reply.
            continue;
        }
        if let Some(text) = reply_text(a) {
            found.replies.push((id, a, text));
        }
    }
    Ok(found)
}

/// Each reply's delivery payload, with its author's name from Creatio (one
/// lookup per author).
async fn with_authors(
    ctx: &Context<'_>,
    case_id: Uuid,
    replies: Vec<(Uuid, &Activity, String)>,
) -> Result<Vec<(Uuid, AgentReply)>, JobError> {
    let mut authors: HashMap<Uuid, Option<String>> = HashMap::new();
    let mut fresh = Vec::with_capacity(replies.len());
    for (id, a, text) in replies {
        let author = match a.created_by_id {
            Some(contact) => {
                if let Entry::Vacant(slot) = authors.entry(contact) {
                    slot.insert(author_name(ctx, contact).await?);
                }
                Some(ReplyAuthor {
                    contact_id: contact,
                    name: authors[&contact].clone(),
                })
            }
            None => None,
        };
        let reply = AgentReply {
            conversation_id: ctx.conversation.id.clone(),
            case_id,
            case_number: ctx.conversation.case_number.clone(),
            activity_id: id,
            text,
            author,
            created_at: a
                .created_on
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        };
        fresh.push((id, reply));
    }
    Ok(fresh)
}

/// Queues each reply's delivery with its timeline line, in one
/// transaction; returns how many were new.
async fn queue_replies(
    ctx: &Context<'_>,
    job: &Job,
    fresh: Vec<(Uuid, AgentReply)>,
) -> Result<usize, JobError> {
    if fresh.is_empty() {
        return Ok(0);
    }
    let mut queued = 0;
    let mut tx = ctx.services.db.write().await?;
    for (id, reply) in fresh {
        let who = reply
            .author
            .as_ref()
            .and_then(|a| a.name.clone())
            .unwrap_or_else(|| "an agent".into());
        let queued_as = deliver::queue(
            &mut tx,
            &job.org_id,
            &job.conversation_id,
            &reply_key(id),
            deliver::Delivered::AgentReply(reply),
        )
        .await?;
        if let Some(delivery_id) = queued_as {
            queued += 1;
            timeline::add_timeline(
                &mut tx,
                &job.org_id,
                &job.conversation_id,
                "delivery",
                &format!("Agent reply {id} by {who} found in Creatio; queued as {delivery_id}"),
                Some(job.attempts),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(queued)
}

/// The dedupe key of an agent reply's delivery: one per activity.
fn reply_key(activity: Uuid) -> String {
    format!("reply:{activity}")
}

/// The author's name, `None` when the contact is gone.
async fn author_name(ctx: &Context<'_>, contact: Uuid) -> Result<Option<String>, JobError> {
    match ctx.client.get::<Contact>(contact).await {
        Ok(c) => Ok(c.name),
        Err(CreatioError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What the customer should read: an e-mail's body as text, else the
/// notes, else the title. `None` for an empty activity.
fn reply_text(a: &Activity) -> Option<String> {
    let body = a.body.as_deref().map(html_to_text);
    let text = [body, a.notes.clone(), a.title.clone()]
        .into_iter()
        .flatten()
        .map(|t| t.trim().to_string())
        .find(|t| !t.is_empty())?;
    if text.chars().count() > MAX_REPLY_CHARS {
        let cut: String = text.chars().take(MAX_REPLY_CHARS).collect();
        return Some(format!(
            "{cut}\n[… cut; the full reply is in the Creatio case]"
        ));
    }
    Some(text)
}

/// How wide a line of the text may be before html2text wraps it: wider
/// than any paragraph, since the chat widget wraps lines itself; tables and
/// lists are laid out within it.
const TEXT_WIDTH: usize = 100_000;

/// Rich text (Creatio keeps e-mail bodies as HTML) as plain text, by
/// html2text on html5ever's parse: every named and numeric entity decoded,
/// paragraphs apart, list items as `* ` / `1. `, table cells apart, quotes
/// as `> `, links as footnotes with their addresses, script and style
/// dropped; broken markup read as a browser reads it. Text without a
/// tag is returned as it is.
pub fn html_to_text(html: &str) -> String {
    let has_tag = html
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!')));
    if !has_tag {
        // Plain text ("Fish & chips", "a < b"): Creatio's editors always
        // write HTML with tags, so this is text as typed.
        return html.to_string();
    }
    let rendered = html2text::config::plain_no_decorate()
        .link_footnotes(true)
        .no_table_borders()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), TEXT_WIDTH);
    let Ok(text) = rendered else {
        // html2text fails only on a width too narrow for the content,
        // which overflow allows; were it to, the source is still readable.
        return html.to_string();
    };
    // At most one blank line in a row, no trailing spaces.
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    // A no-break space (`&nbsp;`) is a plain space in a chat message.
    let text = text.replace('\u{a0}', " ");
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_become_readable_text() {
        assert_eq!(html_to_text("plain text"), "plain text");
        assert_eq!(
            html_to_text("<p>Hello Ada,</p><p>your refund is on its way &amp; should arrive&nbsp;soon.<br>Sarah</p>"),
            "Hello Ada,\n\nyour refund is on its way & should arrive soon.\nSarah"
        );
        assert_eq!(
            html_to_text("<style>p{color:red}</style><div>Hi &lt;there&gt;</div>"),
            "Hi <there>"
        );
        assert_eq!(html_to_text("a < b"), "a < b");
    }

    /// Real-world bodies (tests/data/reply_bodies.json): Creatio's rich-text
    /// editor, Outlook, Gmail, entities, lists, tables, links, quotes,
    /// broken markup; each with the text the customer should read.
    #[test]
    fn the_corpus_of_real_bodies_reads_as_expected() {
        let corpus: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/data/reply_bodies.json")).unwrap();
        assert!(corpus.len() >= 10);
        let mut wrong = Vec::new();
        for case in &corpus {
            let got = html_to_text(case["html"].as_str().unwrap());
            if got != case["text"].as_str().unwrap() {
                wrong.push(format!(
                    "{}:\n got: {got:?}\nwant: {:?}",
                    case["name"], case["text"]
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn reply_text_prefers_body_then_notes_then_title() {
        let mut a = Activity {
            title: Some("Re: printer".into()),
            ..Default::default()
        };
        assert_eq!(reply_text(&a).as_deref(), Some("Re: printer"));
        a.notes = Some("Try turning it off".into());
        assert_eq!(reply_text(&a).as_deref(), Some("Try turning it off"));
        a.body = Some("<p>Turn it off and on</p>".into());
        assert_eq!(reply_text(&a).as_deref(), Some("Turn it off and on"));
        let empty = Activity::default();
        assert_eq!(reply_text(&empty), None);
    }
}
