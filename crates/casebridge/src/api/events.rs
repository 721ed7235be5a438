//! `POST /v1/events` (ingest or admin key) and `GET /v1/conversations/{id}`.

use axum::body::Bytes;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::error::{ApiError, ApiResult, Code, FieldProblem};
use super::extract::{parse_json_named, Admin, QueryParams};
use super::openapi::ErrorBody;
use super::AppState;
use crate::domain::ConversationState;
use crate::domain::{CaseId, ConversationId, OrgId};
use crate::storage::connections::{self, Status};
use crate::storage::conversations;
use crate::storage::orgs::Caller;
use crate::storage::rfc3339;
use crate::storage::views;
use crate::sync::events::{self, Invalid};

/// `POST /v1/events`: what became of each event, in order.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IngestedOut {
    pub accepted: usize,
    /// Events whose id was seen before: nothing was stored for them.
    pub duplicates: usize,
    pub events: Vec<events::Ingested>,
}

/// `GET /v1/conversations/{id}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversationOut {
    pub id: ConversationId,
    pub channel: String,
    pub state: ConversationState,
    /// `every_conversation`, or `handoff_only` when cases are created at
    /// hand-off only.
    pub mode: &'static str,
    pub case: CaseLinkOut,
    /// The Creatio Contact linked to the conversation.
    pub contact_id: Option<String>,
    pub messages: MessageCountsOut,
    /// Jobs by state (`pending`, `running`, `done`, `dead`, `cancelled`).
    #[serde(serialize_with = "super::pairs_as_object")]
    #[schema(value_type = std::collections::HashMap<String, i64>)]
    pub jobs: Vec<(String, i64)>,
    /// The jobs not done, in order, at most 50.
    pub open_jobs: Vec<OpenJobOut>,
    /// The newest timeline lines, oldest first.
    pub timeline: Vec<TimelineLineOut>,
    /// Present when older lines exist.
    pub timeline_older: Option<OlderOut>,
    pub created_at: String,
    pub updated_at: String,
    /// When its personal data was erased.
    pub erased_at: Option<String>,
}

/// The conversation's Creatio Case.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CaseLinkOut {
    /// The Case Id (derived from the org and conversation ids).
    pub id: CaseId,
    pub number: Option<String>,
    /// Whether the case exists in Creatio yet.
    pub created: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageCountsOut {
    pub received: i64,
    /// Written to Creatio as activities.
    pub written: i64,
}

/// A job that is not done.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenJobOut {
    /// What `POST /v1/jobs/{id}/retry` takes.
    pub id: String,
    pub seq: i64,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    /// Dead, but a later success did its work: nothing to retry.
    pub moot: bool,
}

/// A timeline line.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TimelineLineOut {
    pub id: String,
    pub at: String,
    /// `event`, `creatio`, `delivery`, `ai`, `warning` or `error`.
    pub kind: String,
    pub summary: String,
    pub attempts: Option<i64>,
}

/// Where older timeline lines are.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OlderOut {
    pub before: String,
    pub hint: &'static str,
}

/// The largest request body `POST /v1/events` takes.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

fn invalid_events(errors: Vec<Invalid>) -> ApiError {
    let message = errors
        .iter()
        .take(5)
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    let list = errors
        .iter()
        .map(|e| FieldProblem {
            field: e.path.clone(),
            message: e.message.clone(),
            hint: None,
        })
        .collect();
    ApiError::invalid(
        format!(
            "{} invalid field(s), nothing was stored: {message}",
            errors.len()
        ),
        "Fix the named fields and send the request again; the event shape is in the README.",
    )
    .with_fields(list)
}

/// Counts stored events by outcome (`casebridge_events_received_total`),
/// once committed; how many were accepted (the rest were duplicates).
pub(super) fn count_received(answers: &[events::Ingested]) -> usize {
    let accepted = answers.iter().filter(|a| a.status == "accepted").count();
    metrics::counter!(crate::metrics::EVENTS_RECEIVED, "outcome" => "accepted")
        .increment(accepted as u64);
    metrics::counter!(crate::metrics::EVENTS_RECEIVED, "outcome" => "duplicate")
        .increment((answers.len() - accepted) as u64);
    accepted
}

/// `POST /v1/events`: validated, then every event, message and job is
/// written in one transaction before `202`.
#[utoipa::path(post, path = "/v1/events", operation_id = "ingestEvents", tag = "sync", request_body = crate::sync::events::EventsIn, security(("api_key" = [])), responses((status = 202, description = "Stored with their jobs in one transaction", body = IngestedOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 409, description = "The org has no active connection; nothing stored", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<IngestedOut>)> {
    let value: Value = parse_json_named(&body, ("events", "event"))?;
    let parsed = events::parse_body(&value).map_err(invalid_events)?;
    let connection = connections::get(&state.app.db, &caller.org_id).await?;
    match connection.as_ref().map(|c| c.status) {
        Some(Status::Active | Status::NeedsAttention) => {}
        _ => {
            return Err(ApiError::new(
                Code::Conflict,
                "This org has no active Creatio connection, so events would have nowhere to go; nothing was stored",
                "An org admin connects Creatio first: POST /v1/creatio/connection (Test & Save).",
            ))
        }
    }
    let mut tx = state.app.db.write().await?;
    let answers = events::ingest_all(&mut tx, &caller.org_id, &parsed).await?;
    tx.commit().await?;
    let accepted = count_received(&answers);
    tracing::debug!(org_id = %caller.org_id, accepted, duplicates = answers.len() - accepted, "Accepted events.");
    Ok((
        StatusCode::ACCEPTED,
        Json(IngestedOut {
            accepted,
            duplicates: answers.len() - accepted,
            events: answers,
        }),
    ))
}

/// The org's conversation `id`, or a 404 that says where ids come from.
pub(super) async fn find_conversation(
    state: &AppState,
    org_id: &OrgId,
    id: &ConversationId,
) -> ApiResult<conversations::Conversation> {
    conversations::get_conversation(&state.app.db, org_id, id).await?.ok_or_else(|| {
        ApiError::not_found(
            format!("This org has no conversation {id:?}"),
            "Conversations appear with their first event (POST /v1/events); check the id the platform uses.",
        )
    })
}

/// Timeline lines per answer, unless `timeline_limit` says otherwise.
const TIMELINE_PAGE: i64 = 200;
const TIMELINE_PAGE_MAX: i64 = 1_000;

/// `timeline_before` (a line id from an earlier answer) and
/// `timeline_limit` (1 to 1,000) from the query.
fn timeline_page(query: &HashMap<String, String>) -> ApiResult<(Option<String>, usize)> {
    let query = QueryParams::known(
        query,
        &["timeline_before", "timeline_limit"],
        "This endpoint takes timeline_before and timeline_limit.",
    )?;
    let limit = query.count(
        "timeline_limit",
        TIMELINE_PAGE_MAX,
        TIMELINE_PAGE,
        &format!("Leave it out for {TIMELINE_PAGE} lines, or give a number from 1 to {TIMELINE_PAGE_MAX}."),
    )?;
    let before = match query.get("timeline_before") {
        None => None,
        Some(text) => Some(
            uuid::Uuid::parse_str(text)
                .map(|u| u.hyphenated().to_string())
                .map_err(|_| {
                    ApiError::invalid(
                        format!("timeline_before {text:?} is not a timeline line id"),
                        "Use timeline_older.before from the previous answer.",
                    )
                })?,
        ),
    };
    Ok((before, limit as usize))
}

/// `GET /v1/conversations/{id}`: the case link, state and timeline (the
/// newest 200 lines; `timeline_before` pages back).
#[utoipa::path(get, path = "/v1/conversations/{id}", operation_id = "getConversation", tag = "sync", security(("api_key" = [])), params(("id" = String, Path, description = "The platform's conversation id"), ("timeline_before" = Option<String>, Query, description = "Page back: the timeline_older.before of the previous answer"), ("timeline_limit" = Option<u32>, Query, description = "Timeline lines per answer, 1 to 1000 (default 200)")), responses((status = 200, description = "Case link, state, jobs and the newest timeline lines", body = ConversationOut), (status = 400, description = "Invalid paging parameter", body = ErrorBody), (status = 404, description = "No such conversation", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn conversation(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<ConversationId>,
    Query(page): Query<HashMap<String, String>>,
) -> ApiResult<Json<ConversationOut>> {
    let (before, limit) = timeline_page(&page)?;
    let c = find_conversation(&state, &caller.org_id, &id).await?;
    let mode = match connections::get(&state.app.db, &caller.org_id).await? {
        Some(conn) if conn.create_case_only_on_handoff => "handoff_only",
        _ => "every_conversation",
    };
    let (messages, written) = views::message_counts(&state.app.db, &caller.org_id, &id).await?;
    let jobs = views::job_counts(&state.app.db, &caller.org_id, &id).await?;
    let open_jobs: Vec<OpenJobOut> = views::open_jobs(&state.app.db, &caller.org_id, &id)
        .await?
        .into_iter()
        .map(|j| OpenJobOut {
            id: j.id,
            seq: j.seq,
            kind: j.kind,
            state: j.state,
            attempts: j.attempts,
            next_attempt_at: rfc3339(j.run_after),
            last_error: j.last_error,
            moot: j.moot,
        })
        .collect();
    let (lines, more) =
        views::timeline_page(&state.app.db, &caller.org_id, &id, before.as_deref(), limit).await?;
    let older = more.then(|| lines.first().map(|t| t.id.clone())).flatten();
    let timeline: Vec<TimelineLineOut> = lines
        .into_iter()
        .map(|t| TimelineLineOut {
            id: t.id,
            at: rfc3339(t.at),
            kind: t.kind,
            summary: t.summary,
            attempts: t.attempts,
        })
        .collect();
    Ok(Json(ConversationOut {
        id: c.id,
        channel: c.channel,
        state: c.state,
        mode,
        case: CaseLinkOut {
            id: c.case_id,
            number: c.case_number,
            created: c.case_created,
        },
        contact_id: c.creatio_contact_id,
        messages: MessageCountsOut {
            received: messages,
            written,
        },
        jobs,
        open_jobs,
        timeline,
        timeline_older: older.map(|before| OlderOut {
            before,
            hint: "Older lines: GET this URL with ?timeline_before=<before>.",
        }),
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
        erased_at: c.erased_at.map(rfc3339),
    }))
}
