//! `GET /v1/conversations`: the org's recent conversations, newest first,
//! with their case and how far their sync got: the admin page's activity
//! list. One conversation in full is `GET /v1/conversations/{id}`
//! ([`super::events::conversation`]).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use super::events::MessageCountsOut;
use super::extract::{Admin, QueryParams};
use super::openapi::ErrorBody;
use super::AppState;
use crate::domain::ConversationState;
use crate::domain::{CaseId, ConversationId};
use crate::storage::connections;
use crate::storage::rfc3339;
use crate::storage::views;
use crate::storage::views::ConversationSummary;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// How far a conversation's sync got, in one word for a badge.
fn sync_state(s: &ConversationSummary) -> &'static str {
    if s.jobs_dead > 0 {
        "failed"
    } else if s.jobs_open > 0 {
        "syncing"
    } else {
        "synced"
    }
}

/// A conversation as the activity list shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversationSummaryOut {
    pub id: ConversationId,
    pub channel: String,
    pub state: ConversationState,
    /// `every_conversation` or `handoff_only`.
    pub mode: &'static str,
    pub contact_name: Option<String>,
    /// The Case Id, once the case exists.
    pub case_id: Option<CaseId>,
    pub case_number: Option<String>,
    /// `synced`, `syncing` or `failed` (a job was dead-lettered and no
    /// later success did its work).
    pub sync: &'static str,
    pub messages: MessageCountsOut,
    pub jobs: JobCountsOut,
    /// The newest timeline line.
    pub last_event: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobCountsOut {
    /// Queued or running.
    pub open: i64,
    /// Given up on, work not done: retry them (POST /v1/jobs/{id}/retry).
    pub dead: i64,
    /// Given up on, but a later success did their work: nothing to do.
    pub moot: i64,
}

/// `GET /v1/conversations`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversationsOut {
    pub conversations: Vec<ConversationSummaryOut>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// A page's end as an opaque cursor: its last row's `updated_at` and id.
fn cursor_of(updated_at: i64, id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{updated_at}:{id}"))
}

fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(text).ok()?;
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, id.to_string()))
}

impl ConversationSummaryOut {
    fn of(s: &ConversationSummary, mode: &'static str) -> Self {
        let c = &s.conversation;
        ConversationSummaryOut {
            id: c.id.clone(),
            channel: c.channel.clone(),
            state: c.state,
            mode,
            contact_name: c.contact_name.clone(),
            case_id: c.case_created.then_some(c.case_id),
            case_number: c.case_number.clone(),
            sync: sync_state(s),
            messages: MessageCountsOut {
                received: s.messages,
                written: s.messages_written,
            },
            jobs: JobCountsOut {
                open: s.jobs_open,
                dead: s.jobs_dead,
                moot: s.jobs_moot,
            },
            last_event: s.last_event.clone(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// `GET /v1/conversations?state=&q=&limit=&cursor=`.
#[utoipa::path(get, path = "/v1/conversations", operation_id = "listConversations", tag = "sync", security(("api_key" = [])), params(("state" = Option<String>, Query, description = "open, handed_off or resolved"), ("q" = Option<String>, Query, description = "A conversation id or its beginning, a case number, or a contact's e-mail address (any case)"), ("limit" = Option<i64>, Query, description = "1 to 200, default 50"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")), responses((status = 200, description = "Recent conversations, most recently changed first, with case number, sync state and counts", body = ConversationsOut), (status = 400, description = "Invalid input; the error names the parameter and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<ConversationsOut>> {
    let params = QueryParams::known(
        &params,
        &["state", "q", "limit", "cursor"],
        "Filter with state (open, handed_off or resolved), search with q, page with limit and cursor.",
    )?;
    let wanted = match params.get("state").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(ConversationState::parse(s).ok_or_else(|| {
            ApiError::invalid(
                format!("state {s:?} is not a conversation state"),
                format!(
                    "Use {}, or leave state out for all.",
                    ConversationState::listed()
                ),
            )
        })?),
    };
    let limit = params.count(
        "limit",
        MAX_LIMIT,
        DEFAULT_LIMIT,
        &format!("Ask for at most {MAX_LIMIT} conversations at a time."),
    )?;
    let mode = match connections::get(&state.app.db, &caller.org_id).await? {
        Some(conn) if conn.create_case_only_on_handoff => "handoff_only",
        _ => "every_conversation",
    };
    let search = params.get("q").map(str::trim).filter(|q| !q.is_empty());
    if search.is_some_and(|q| q.chars().count() > 320) {
        return Err(ApiError::invalid(
            "q is longer than 320 characters",
            "Search by a conversation id or its beginning, a case number, or an e-mail address.",
        ));
    }
    let after = match params.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(parse_cursor(c).ok_or_else(|| {
            ApiError::invalid(
                format!("cursor {c:?} is not one this API gave"),
                "Pass next_cursor from the previous page as it is, or leave cursor out for the first page.",
            )
        })?),
    };
    let filter = views::ConversationFilter {
        state: wanted,
        search: search.map(str::to_string),
        after,
    };
    // One more than asked tells whether there is a next page.
    let mut found =
        views::recent_conversations(&state.app.db, &caller.org_id, &filter, limit + 1).await?;
    let more = found.len() as i64 > limit;
    found.truncate(limit as usize);
    let next_cursor = found
        .last()
        .filter(|_| more)
        .map(|s| cursor_of(s.conversation.updated_at, s.conversation.id.as_str()));
    Ok(Json(ConversationsOut {
        conversations: found
            .iter()
            .map(|s| ConversationSummaryOut::of(s, mode))
            .collect(),
        next_cursor,
    }))
}
