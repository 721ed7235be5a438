//! `POST /v1/events` (ingest or admin key) and `GET /v1/conversations/{id}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, Code};
use super::extract::{parse_json_named, Admin};
use super::openapi::ErrorBody;
use super::AppState;
use crate::storage::connections::{self, Status};
use crate::storage::orgs::Caller;
use crate::storage::rfc3339;
use crate::storage::sync;
use crate::sync::events::{self, Invalid};

/// The largest request body `POST /v1/events` takes.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

fn invalid_events(errors: Vec<Invalid>) -> ApiError {
    let message = errors
        .iter()
        .take(5)
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    let list: Vec<Value> = errors
        .iter()
        .map(|e| json!({"field": e.path, "message": e.message}))
        .collect();
    ApiError::invalid(
        format!(
            "{} invalid field(s), nothing was stored: {message}",
            errors.len()
        ),
        "Fix the named fields and send the request again; the event shape is in the README.",
    )
    .with("fields", Value::Array(list))
}

/// `POST /v1/events`: validated, then every event, message and job is
/// written in one transaction before `202`.
#[utoipa::path(post, path = "/v1/events", tag = "sync", security(("api_key" = [])), responses((status = 202, description = "Stored with their jobs in one transaction"), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 409, description = "The org has no active connection; nothing stored", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let value: Value = parse_json_named(&body, ("events", "event"))?;
    let parsed = events::parse_body(&value).map_err(invalid_events)?;
    let connection = connections::get(&state.db, &caller.org_id).await?;
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
    let turn = state.db.write_turn().await;
    let mut tx = state
        .db
        .writer()
        .begin()
        .await
        .map_err(crate::storage::StorageError::from)?;
    let answers = events::ingest_all(&mut tx, &caller.org_id, &parsed).await?;
    tx.commit()
        .await
        .map_err(crate::storage::StorageError::from)?;
    drop(turn);
    state.work_ready.notify_waiters();
    let accepted = answers.iter().filter(|a| a.status == "accepted").count();
    metrics::counter!(crate::metrics::EVENTS_RECEIVED, "outcome" => "accepted")
        .increment(accepted as u64);
    metrics::counter!(crate::metrics::EVENTS_RECEIVED, "outcome" => "duplicate")
        .increment((answers.len() - accepted) as u64);
    tracing::debug!(org_id = %caller.org_id, accepted, duplicates = answers.len() - accepted, "Accepted events.");
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"accepted": accepted, "duplicates": answers.len() - accepted, "events": answers}),
        ),
    ))
}

/// The org's conversation `id`, or a 404 that says where ids come from.
pub(super) async fn find_conversation(
    state: &AppState,
    org_id: &str,
    id: &str,
) -> ApiResult<sync::Conversation> {
    sync::get_conversation(&state.db, org_id, id).await?.ok_or_else(|| {
        ApiError::not_found(
            format!("This org has no conversation {id:?}"),
            "Conversations appear with their first event (POST /v1/events); check the id the platform uses.",
        )
    })
}

/// `GET /v1/conversations/{id}`: the case link, state and timeline.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "sync", security(("api_key" = [])), params(("id" = String, Path, description = "The platform's conversation id")), responses((status = 200, description = "Case link, state, jobs and timeline"), (status = 404, description = "No such conversation", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn conversation(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = find_conversation(&state, &caller.org_id, &id).await?;
    let mode = match connections::get(&state.db, &caller.org_id).await? {
        Some(conn) if conn.create_case_only_on_handoff => "handoff_only",
        _ => "every_conversation",
    };
    let (messages, written) = sync::message_counts(&state.db, &caller.org_id, &id).await?;
    let jobs: serde_json::Map<String, Value> = sync::job_counts(&state.db, &caller.org_id, &id)
        .await?
        .into_iter()
        .map(|(k, n)| (k, json!(n)))
        .collect();
    let open_jobs: Vec<Value> = sync::open_jobs(&state.db, &caller.org_id, &id)
        .await?
        .into_iter()
        .map(|j| {
            json!({"seq": j.seq, "kind": j.kind, "state": j.state, "attempts": j.attempts,
                        "next_attempt_at": rfc3339(j.run_after), "last_error": j.last_error})
        })
        .collect();
    let timeline: Vec<Value> = sync::timeline(&state.db, &caller.org_id, &id)
        .await?
        .into_iter()
        .map(|t| json!({"at": rfc3339(t.at), "kind": t.kind, "summary": t.summary, "attempts": t.attempts}))
        .collect();
    Ok(Json(json!({
        "id": c.id,
        "channel": c.channel,
        "state": c.state,
        "mode": mode,
        "case": {"id": c.case_id, "number": c.case_number, "created": c.case_created},
        "contact_id": c.creatio_contact_id,
        "messages": {"received": messages, "written": written},
        "jobs": jobs,
        "open_jobs": open_jobs,
        "timeline": timeline,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })))
}
