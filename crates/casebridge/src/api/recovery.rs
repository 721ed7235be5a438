//! Recovery after a failure (issue "When things go wrong"): retry a dead
//! Creatio job, or every one dead since a time; send a pending delivery
//! now, or recover every dead delivery since a time (Svix's "recover
//! failed messages since").
//!
//! A retried item keeps its place in its conversation, so it goes before
//! the conversation's later items and never beside one already running
//! ([`crate::storage::outbox`]); its schedule starts over and its attempt
//! count goes on. Each retry is a line on the conversation's timeline.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult, Code};
use super::extract::{Admin, Body};
use super::openapi::ErrorBody;
use super::AppState;
use crate::domain::{ConversationId, OrgId};
use crate::storage::connections::{self, Status};
use crate::storage::deliveries::{self, RetryNow};
use crate::storage::jobs::{self, DeadFilter};
use crate::storage::now_ms;
use crate::storage::outbox::Requeued;

/// A job queued again.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetriedJobOut {
    pub id: String,
    pub conversation_id: ConversationId,
    pub kind: String,
    /// Always `pending`.
    pub state: &'static str,
    /// Attempts made before this retry.
    pub attempts_before: i64,
    /// A later success had done its work already; retrying it is harmless.
    pub moot: bool,
    /// Why it may still wait (the org's connection is not active).
    pub warning: Option<String>,
}

/// `POST /v1/jobs/{id}/retry`: queues a dead Creatio job again, now, in its
/// place in its conversation.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", operation_id = "retryJob", tag = "sync", security(("api_key" = [])), params(("id" = String, Path, description = "The job's id (from the conversation's open_jobs)")), responses((status = 202, description = "Queued again", body = RetriedJobOut), (status = 404, description = "No such job", body = ErrorBody), (status = 409, description = "The job is not dead", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn retry_job(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RetriedJobOut>)> {
    let job = jobs::find(&state.app.db, &caller.org_id, &id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                format!("This org has no job {id}"),
                "Take the id from GET /v1/conversations/{id} (open_jobs).",
            )
        })?;
    if job.state != "dead" {
        return Err(not_dead(&id, &job.state));
    }
    let requeued = jobs::retry_dead(
        &state.app.db,
        &caller.org_id,
        std::slice::from_ref(&job),
        "job retry",
    )
    .await?;
    if requeued.is_empty() {
        return Err(not_dead(&id, "no longer dead"));
    }
    tracing::info!(org_id = %caller.org_id, job_id = %id, moot = job.moot, "Dead job retried.");
    Ok((
        StatusCode::ACCEPTED,
        Json(RetriedJobOut {
            id: job.id,
            conversation_id: job.conversation_id,
            kind: job.kind,
            state: "pending",
            attempts_before: job.attempts,
            moot: job.moot,
            warning: paused_warning(&state, &caller.org_id).await?,
        }),
    ))
}

fn not_dead(id: &str, state: &str) -> ApiError {
    let hint = match state {
        "pending" => "It is queued and runs on its schedule; nothing to retry.",
        "running" => "It is running now; nothing to retry.",
        "done" => "It is done; nothing to retry.",
        "cancelled" => "It was cancelled when the org disconnected; Test & Save queues the conversation's work again.",
        _ => "Only dead jobs can be retried.",
    };
    ApiError::new(
        Code::Conflict,
        format!("Job {id} is {state}, not dead"),
        hint,
    )
}

/// Why retried jobs may still wait.
async fn paused_warning(state: &AppState, org_id: &OrgId) -> ApiResult<Option<String>> {
    let c = connections::get(&state.app.db, org_id).await?;
    Ok(match c.map(|c| c.status) {
        Some(Status::Active) => None,
        Some(Status::NeedsAttention) => Some(
            "The connection needs attention: the jobs wait until Test & Save or Re-test passes."
                .into(),
        ),
        _ => Some("The org is not connected: the jobs wait until Test & Save passes.".into()),
    })
}

/// `POST /v1/jobs/retry`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryJobsIn {
    /// `dead`, the only state a job is retried from.
    pub state: String,
    /// Jobs dead-lettered at or after this time (RFC 3339).
    pub since: String,
    /// Only this conversation's.
    pub conversation_id: Option<String>,
    /// Retry moot jobs too (a later success did their work): default false.
    #[serde(default)]
    pub include_moot: bool,
}

/// What a bulk retry did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetriedJobsOut {
    /// Jobs queued again.
    pub retried: usize,
    /// Their conversations.
    pub conversations: usize,
    /// Dead jobs left as they are: a later success did their work.
    pub moot_left: usize,
    pub warning: Option<String>,
}

/// `POST /v1/jobs/retry`: queues again every dead job dead-lettered since a
/// time, each conversation's in order.
#[utoipa::path(post, path = "/v1/jobs/retry", operation_id = "retryDeadJobs", tag = "sync", security(("api_key" = [])), request_body = RetryJobsIn, responses((status = 202, description = "Queued again", body = RetriedJobsOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn retry_jobs(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(input): Body<RetryJobsIn>,
) -> ApiResult<(StatusCode, Json<RetriedJobsOut>)> {
    if input.state != "dead" {
        return Err(ApiError::invalid(
            format!("state {:?} cannot be retried", input.state),
            "Send \"state\": \"dead\": only dead jobs are retried; pending ones run on their schedule.",
        ));
    }
    let since = since_ms(&input.since)?;
    let conversation_id = input.conversation_id.as_deref().map(ConversationId::from);
    let filter = DeadFilter {
        since,
        conversation_id: conversation_id.as_ref(),
    };
    let dead = jobs::dead(&state.app.db, &caller.org_id, &filter).await?;
    let (take, moot): (Vec<_>, Vec<_>) = dead
        .into_iter()
        .partition(|j| input.include_moot || !j.moot);
    let why = format!("recovery since {}", input.since);
    let requeued = jobs::retry_dead(&state.app.db, &caller.org_id, &take, &why).await?;
    tracing::info!(org_id = %caller.org_id, retried = requeued.len(), moot_left = moot.len(), "Dead jobs retried.");
    let warning = if requeued.is_empty() {
        None
    } else {
        paused_warning(&state, &caller.org_id).await?
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(RetriedJobsOut {
            retried: requeued.len(),
            conversations: conversations(&requeued),
            moot_left: moot.len(),
            warning,
        }),
    ))
}

/// How many conversations requeued items (in conversation order) span.
fn conversations(requeued: &[Requeued]) -> usize {
    requeued
        .chunk_by(|a, b| a.conversation_id == b.conversation_id)
        .count()
}

/// `since`, as milliseconds: RFC 3339, not in the future.
fn since_ms(text: &str) -> ApiResult<i64> {
    let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        ApiError::invalid(
            format!("since {text:?} is not an RFC 3339 time: {e}"),
            "Send a time such as \"2026-12-01T09:00:00Z\".",
        )
    })?;
    let ms = at.timestamp_millis();
    if ms > now_ms() {
        return Err(ApiError::invalid(
            format!("since {text:?} is in the future"),
            "Send a past time: what failed since then is queued again.",
        ));
    }
    Ok(ms)
}

/// A delivery sent now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetriedDeliveryOut {
    pub id: String,
    /// Always `pending`.
    pub state: &'static str,
    /// Earlier pending deliveries of its conversation made due now too:
    /// they go first.
    pub earlier: u64,
    /// Why it may still wait (no URL, or a disabled one).
    pub warning: Option<&'static str>,
}

/// `POST /v1/deliveries/{id}/retry`: sends a pending delivery now rather
/// than on its schedule (a dead one is queued again).
#[utoipa::path(post, path = "/v1/deliveries/{id}/retry", operation_id = "retryDelivery", tag = "two-way", security(("api_key" = [])), params(("id" = String, Path, description = "The delivery's id")), responses((status = 202, description = "Due now", body = RetriedDeliveryOut), (status = 404, description = "No such delivery", body = ErrorBody), (status = 409, description = "Being sent or already delivered", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RetriedDeliveryOut>)> {
    match deliveries::retry_now(&state.app.db, &caller.org_id, &id).await? {
        None => Err(super::delivery::no_delivery(&id)),
        Some(RetryNow::Not(now)) => Err(ApiError::new(
            Code::Conflict,
            format!("Delivery {id} is {now}; there is nothing to retry"),
            match now.as_str() {
                "delivered" => "To send it again, replay it (POST /v1/deliveries/{id}/replay).",
                _ => "It is being sent now; look again in a moment.",
            },
        )),
        Some(RetryNow::Queued { earlier }) => {
            tracing::info!(org_id = %caller.org_id, delivery_id = %id, earlier, "Delivery retried now.");
            Ok((
                StatusCode::ACCEPTED,
                Json(RetriedDeliveryOut {
                    id,
                    state: "pending",
                    earlier,
                    warning: super::delivery::waiting_warning(&state, &caller.org_id).await?,
                }),
            ))
        }
    }
}

/// `POST /v1/deliveries/recover`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// Deliveries dead-lettered at or after this time (RFC 3339).
    pub since: String,
}

/// What a recovery did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveredOut {
    /// Dead deliveries queued again.
    pub recovered: usize,
    pub conversations: usize,
    pub warning: Option<&'static str>,
}

/// `POST /v1/deliveries/recover`: queues again every delivery dead-lettered
/// since a time, each conversation's in order.
#[utoipa::path(post, path = "/v1/deliveries/recover", operation_id = "recoverDeliveries", tag = "two-way", security(("api_key" = [])), request_body = RecoverIn, responses((status = 202, description = "Queued again", body = RecoveredOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn recover_deliveries(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(input): Body<RecoverIn>,
) -> ApiResult<(StatusCode, Json<RecoveredOut>)> {
    let since = since_ms(&input.since)?;
    let requeued = deliveries::recover(&state.app.db, &caller.org_id, since).await?;
    tracing::info!(org_id = %caller.org_id, recovered = requeued.len(), "Dead deliveries recovered.");
    let warning = if requeued.is_empty() {
        None
    } else {
        super::delivery::waiting_warning(&state, &caller.org_id).await?
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(RecoveredOut {
            recovered: requeued.len(),
            conversations: conversations(&requeued),
            warning,
        }),
    ))
}
