//! Accepting a process call. The work it asks for is durably queued before
//! the call is answered: Creatio's "Call web service" element retries only
//! on failure, so a success must never be a promise casebridge could forget.

use std::time::Duration;

use super::limit::RateLimiter;
use super::parse::{self, Kind, Problem};
use crate::domain::{CaseId, ConversationId, OrgId};
use crate::secrets::token_hash;
use crate::storage::{conversations, jobs, timeline, webhook_tokens, Db, StorageError};
use crate::sync::events::JobPayload;

/// A look at a case follows another of its kind by at least this much: a
/// process calling in a loop (within the rate limit) costs about one
/// Creatio read a second, not one per call.
pub const CHECK_DEBOUNCE_MS: i64 = 1_000;

/// Calls for one conversation within this long are counted on one timeline
/// line.
const TIMELINE_WINDOW_MS: i64 = 60_000;

/// What became of an accepted call.
#[derive(Debug, PartialEq)]
pub enum Accepted {
    /// The case is no casebridge conversation's (a broad process filter):
    /// nothing to do.
    Ignored { case_id: CaseId },
    /// A look at the case is queued: now, after the debounce, or `already`
    /// waiting from an earlier call.
    Queued {
        conversation_id: ConversationId,
        case_id: CaseId,
        already: bool,
    },
}

/// Why a call was refused.
#[derive(Debug)]
pub enum Refused {
    /// No org has this token (never had, revoked, or disconnected).
    UnknownToken,
    /// The org's calls are over the rate limit; try again after this long.
    Limited(Duration),
    /// The body is wrong: which process parameter to fix.
    Invalid(Problem),
    Storage(StorageError),
}

impl From<StorageError> for Refused {
    fn from(e: StorageError) -> Self {
        Refused::Storage(e)
    }
}

/// Counts a call by event type and outcome (`casebridge_webhook_calls_total`).
pub fn count(event: &str, outcome: &'static str) {
    metrics::counter!(crate::metrics::WEBHOOK_CALLS, "event" => event.to_string(), "outcome" => outcome)
        .increment(1);
}

/// The org whose webhook token this is, if its calls are within its rate.
pub async fn org_for(db: &Db, limiter: &RateLimiter, token: &str) -> Result<OrgId, Refused> {
    let Some(org_id) = webhook_tokens::org_for_token_hash(db, &token_hash(token)).await? else {
        count("unknown", "unknown_token");
        return Err(Refused::UnknownToken);
    };
    limiter.check(org_id.as_str()).map_err(|wait| {
        count("unknown", "limited");
        Refused::Limited(wait)
    })?;
    Ok(org_id)
}

/// Parses `body` and queues the look at the case it names, with a timeline
/// line, in one transaction.
pub async fn accept(db: &Db, org_id: &OrgId, body: &[u8]) -> Result<Accepted, Refused> {
    let call = parse::parse(body).map_err(|p| {
        count("unknown", "invalid");
        tracing::info!(%org_id, field = %p.field, problem = %p.message, "Refused a Creatio webhook call.");
        Refused::Invalid(p)
    })?;
    let case_id = CaseId(call.case_id);
    let Some(conversation) = conversations::conversation_for_case(db, org_id, case_id).await?
    else {
        count(&call.event_type, "ignored");
        tracing::debug!(%org_id, %case_id, event_type = %call.event_type, "Webhook call for a case without a conversation; ignored.");
        return Ok(Accepted::Ignored { case_id });
    };
    let (payload, what) = match call.kind {
        Kind::NewActivity { activity_id } => (
            JobPayload::ReplyCheck { activity_id },
            match activity_id {
                Some(a) => format!("activity {a} added to case {case_id}"),
                None => format!("an activity added to case {case_id}"),
            },
        ),
        Kind::Closure { status_id } => (
            JobPayload::ClosureCheck {
                event_type: call.event_type.clone(),
                status_id,
            },
            format!("{} on case {case_id}", call.event_type),
        ),
    };
    let payload_json = serde_json::to_string(&payload).unwrap_or_default();
    let mut tx = db.write().await?;
    let queued = jobs::queue_check(
        &mut tx,
        org_id,
        &conversation.id,
        payload.kind(),
        &payload_json,
        CHECK_DEBOUNCE_MS,
    )
    .await?;
    let summary = match queued {
        jobs::Queued::Now => format!("Creatio webhook: {what}; queued a look at the case"),
        jobs::Queued::Later => format!(
            "Creatio webhook: {what}; queued a look at the case in under {} s (one ran moments ago)",
            CHECK_DEBOUNCE_MS / 1000
        ),
        jobs::Queued::AlreadyWaiting => {
            format!("Creatio webhook: {what}; a look at the case is already queued")
        }
    };
    timeline::note_webhook_call(
        &mut tx,
        org_id,
        &conversation.id,
        &summary,
        TIMELINE_WINDOW_MS,
    )
    .await?;
    tx.commit().await?;
    let already = queued == jobs::Queued::AlreadyWaiting;
    let outcome = if already { "coalesced" } else { "queued" };
    count(&call.event_type, outcome);
    tracing::info!(%org_id, conversation_id = %conversation.id, %case_id, event_type = %call.event_type, outcome, "Creatio webhook call accepted.");
    Ok(Accepted::Queued {
        conversation_id: conversation.id,
        case_id,
        already,
    })
}
