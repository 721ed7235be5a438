//! `POST /webhooks/creatio/{token}` (what Creatio's business processes
//! call) and `GET /v1/creatio/process-templates` (how to set those
//! processes up, ready to paste).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::connection::current_webhook_url;
use super::error::{ApiError, ApiResult, Code};
use super::extract::Admin;
use super::openapi::ErrorBody;
use super::AppState;
use crate::secrets::token_hash;
use crate::storage::{connections, conversations, jobs, timeline, webhook_tokens, StorageError};
use crate::sync::events::JobPayload;
use crate::webhook::{self, Kind};

/// The largest body a process call may have.
pub const MAX_BODY: usize = 64 * 1024;

/// A look at a case follows another of its kind by at least this much: a
/// process calling in a loop (within the rate limit) costs about one
/// Creatio read a second, not one per call.
const CHECK_DEBOUNCE_MS: i64 = 1_000;

/// Calls for one conversation within this long are counted on one timeline
/// line.
const TIMELINE_WINDOW_MS: i64 = 60_000;

fn count(event: &str, outcome: &'static str) {
    metrics::counter!(crate::metrics::WEBHOOK_CALLS, "event" => event.to_string(), "outcome" => outcome)
        .increment(1);
}

/// A process call. Answered `200` only once its work is durably queued:
/// Creatio's "Call web service" element retries only on failure, so a
/// `200` must never be a promise casebridge could forget.
#[utoipa::path(post, path = "/webhooks/creatio/{token}", tag = "two-way", params(("token" = String, Path, description = "The org's webhook token (part of the webhook URL)")), responses((status = 200, description = "Queued (or already queued, or ignored for an unknown case)"), (status = 400, description = "Placeholder, non-GUID or missing field; the hint names the process parameter to fix", body = ErrorBody), (status = 404, description = "Unknown or revoked token", body = ErrorBody), (status = 429, description = "Rate-limited; see Retry-After", body = ErrorBody)))]
pub async fn creatio(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    match handle(&state, &token, &body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(Refusal::Limited(wait)) => {
            count("unknown", "limited");
            let secs = wait.as_secs().max(1);
            (
                [(RETRY_AFTER, secs.to_string())],
                ApiError::new(
                    Code::RateLimited,
                    "Too many webhook calls for this org",
                    format!(
                        "Retry after {secs} s. If a business process calls this URL in a loop, \
                         check its start signal and filter."
                    ),
                ),
            )
                .into_response()
        }
        Err(Refusal::Api(e)) => e.into_response(),
    }
}

enum Refusal {
    Limited(std::time::Duration),
    Api(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Api(e)
    }
}

impl From<StorageError> for Refusal {
    fn from(e: StorageError) -> Self {
        Refusal::Api(e.into())
    }
}

async fn handle(state: &AppState, token: &str, body: &[u8]) -> Result<Value, Refusal> {
    let org_id = webhook_tokens::org_for_token_hash(&state.app.db, &token_hash(token))
        .await?
        .ok_or_else(|| {
            count("unknown", "unknown_token");
            ApiError::not_found(
                "Unknown or revoked webhook token",
                "Copy the current webhook URL (GET /v1/creatio/connection, or the admin page) into \
                 the business process's Call web service element. The URL changes when the token \
                 is rotated (the old one works for a grace period) and stops working at disconnect.",
            )
        })?;
    state
        .webhook_limiter
        .check(&org_id)
        .map_err(Refusal::Limited)?;
    super::extract::refuse_nul(body, ("", ""))?;
    let call = webhook::parse(body).map_err(|p| {
        count("unknown", "invalid");
        tracing::info!(%org_id, field = %p.field, problem = %p.message, "Refused a Creatio webhook call.");
        ApiError::invalid(p.message, p.hint).with("field", json!(p.field))
    })?;
    let case_id = call.case_id.to_string();
    let Some(conversation) =
        conversations::conversation_for_case(&state.app.db, &org_id, &case_id).await?
    else {
        count(&call.event_type, "ignored");
        tracing::debug!(%org_id, %case_id, event_type = %call.event_type, "Webhook call for a case without a conversation; ignored.");
        return Ok(json!({
            "status": "ignored",
            "reason": format!("case {case_id} is not linked to any casebridge conversation"),
        }));
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
    let mut tx = state.app.db.write().await?;
    let queued = jobs::queue_check(
        &mut tx,
        &org_id,
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
        &org_id,
        &conversation.id,
        &summary,
        TIMELINE_WINDOW_MS,
    )
    .await?;
    tx.commit().await?;
    let outcome = match queued {
        jobs::Queued::Now | jobs::Queued::Later => "queued",
        jobs::Queued::AlreadyWaiting => "coalesced",
    };
    count(&call.event_type, outcome);
    tracing::info!(%org_id, conversation_id = %conversation.id, %case_id, event_type = %call.event_type, outcome, "Creatio webhook call accepted.");
    Ok(json!({
        "status": if outcome == "queued" { "queued" } else { "already_queued" },
        "conversation_id": conversation.id,
        "case_id": case_id,
    }))
}

/// `GET /v1/creatio/process-templates`: the two business processes an
/// admin builds in Creatio, with this org's URL, ready to paste.
#[utoipa::path(get, path = "/v1/creatio/process-templates", tag = "two-way", security(("api_key" = [])), responses((status = 200, description = "The agent-reply and closure processes, ready to paste"), (status = 409, description = "Not connected yet", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn process_templates(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<Value>> {
    let url = current_webhook_url(&state, &caller.org_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Code::Conflict,
                "This org has no webhook URL yet",
                "Connect Creatio first (POST /v1/creatio/connection, Test & Save); the webhook URL is created then.",
            )
        })?;
    let connection = connections::get(&state.app.db, &caller.org_id).await?;
    let technical_user = connection.and_then(|c| c.technical_user_id);
    Ok(Json(templates(&url, technical_user.as_deref())))
}

/// The process set-up for `url`; `technical_user` is the contact Id of the
/// integration's user, when Test & Save learned it.
pub fn templates(url: &str, technical_user: Option<&str>) -> Value {
    let not_ours = match technical_user {
        Some(id) => format!(
            "Created by ≠ the integration user (contact Id {id}) — optional, casebridge skips its own activities anyway"
        ),
        None => "Created by ≠ the integration user — optional, casebridge skips its own activities anyway".into(),
    };
    let call = |body: Value, parameters: Value| {
        json!({
            "method": "POST",
            "url": url,
            "content_type": "application/json",
            "response_timeout_ms": 5000,
            "retries_on_failure": 3,
            "body": body,
            "body_parameters": parameters,
        })
    };
    json!({
        "webhook_url": url,
        "notes": [
            "Create each process in Creatio: System designer → Process library → Add process.",
            "Start it with a Signal (object signal) as below, then add a Call web service element with the method below.",
            "In Creatio's web service set-up, add each body parameter with its request code (the name) and map it to the value shown.",
            "casebridge answers 200 once the call is safely queued; 'Retries on call failure' covers casebridge being briefly unreachable.",
            "Calls for cases casebridge did not create are answered 200 and ignored, so broad filters are safe.",
        ],
        "processes": [
            {
                "key": "agent_reply",
                "name": "casebridge: send agent replies to the customer",
                "signal": {
                    "object": "Activity",
                    "event": "Record added",
                    "filter": ["Case is filled in", not_ours],
                    "trigger": {"kind": "activity_added", "only_case_activities": true},
                },
                "call_web_service": call(
                    json!({"event_type": "new_activity", "caseId": "[#Case.Id#]", "activityId": "[#Activity.Id#]"}),
                    json!([
                        {"name": "event_type", "value": "new_activity", "source": "constant", "required": true},
                        {"name": "caseId", "value": "[#Case.Id#]", "source": "the added activity's Case → Id", "required": true},
                        {"name": "activityId", "value": "[#Activity.Id#]", "source": "the added activity's Id", "required": false},
                    ]),
                ),
            },
            {
                "key": "closure",
                "name": "casebridge: tell the customer the case is closed",
                "signal": {
                    "object": "Case",
                    "event": "Record modified (Status changed)",
                    "filter": ["Status changed; casebridge reads the new status and acts only on final or resolved ones, so no status filter is needed"],
                    "trigger": {"kind": "case_status_changed"},
                },
                "call_web_service": call(
                    json!({"event_type": "case_status_changed", "caseId": "[#Case.Id#]", "statusId": "[#Case.StatusId#]"}),
                    json!([
                        {"name": "event_type", "value": "case_status_changed", "source": "constant", "required": true},
                        {"name": "caseId", "value": "[#Case.Id#]", "source": "the modified case's Id", "required": true},
                        {"name": "statusId", "value": "[#Case.StatusId#]", "source": "the modified case's Status → Id", "required": false},
                    ]),
                ),
            },
        ],
    })
}
