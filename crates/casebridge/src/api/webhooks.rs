//! `POST /webhooks/creatio/{token}` (what Creatio's business processes
//! call) and `GET /v1/creatio/process-templates` (how to set those
//! processes up, ready to paste).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::connection::current_webhook_url;
use super::error::{ApiError, ApiResult, Code};
use super::extract::Admin;
use super::openapi::ErrorBody;
use super::AppState;
use crate::domain::{CaseId, ConversationId};
use crate::storage::connections;
use crate::webhook::accept::{self, Accepted, Refused};
use crate::webhook::templates::{templates, ProcessTemplates};

/// The answer to a process call.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CallOut {
    /// `queued`, `already_queued` or `ignored`.
    pub status: &'static str,
    /// Why an ignored call was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<CaseId>,
}

/// The largest body a process call may have.
pub const MAX_BODY: usize = 64 * 1024;

/// A process call. Answered `200` only once its work is durably queued
/// ([`crate::webhook::accept`]).
#[utoipa::path(post, path = "/webhooks/creatio/{token}", operation_id = "creatioWebhook", tag = "two-way", params(("token" = String, Path, description = "The org's webhook token (`cbw_…`): the credential of this endpoint, so the whole URL is a secret kept in Creatio's business process; rotate it with rotateWebhookToken")), request_body = crate::webhook::parse::ProcessCall, responses((status = 200, description = "Queued (or already queued, or ignored for an unknown case)", body = CallOut), (status = 400, description = "Placeholder, non-GUID or missing field; the hint names the process parameter to fix", body = ErrorBody), (status = 404, description = "Unknown or revoked token", body = ErrorBody), (status = 429, description = "Rate-limited; see Retry-After", body = ErrorBody)))]
pub async fn creatio(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let db = &state.app.db;
    let accepted = match accept::org_for(db, &state.webhook_limiter, &token).await {
        Ok(org_id) => match super::extract::refuse_nul(&body, ("", "")) {
            Ok(()) => accept::accept(db, &org_id, &body).await,
            Err(e) => return e.into_response(),
        },
        Err(refused) => Err(refused),
    };
    match accepted {
        Ok(Accepted::Ignored { case_id }) => Json(CallOut {
            status: "ignored",
            reason: Some(format!(
                "case {case_id} is not linked to any casebridge conversation"
            )),
            conversation_id: None,
            case_id: None,
        })
        .into_response(),
        Ok(Accepted::Queued {
            conversation_id,
            case_id,
            already,
        }) => Json(CallOut {
            status: if already { "already_queued" } else { "queued" },
            reason: None,
            conversation_id: Some(conversation_id),
            case_id: Some(case_id),
        })
        .into_response(),
        Err(refused) => refusal(refused),
    }
}

/// A 429 with `Retry-After` (whole seconds, at least one), the wait said
/// in the hint and `advice` after it.
pub(super) fn rate_limited(message: &str, wait: std::time::Duration, advice: &str) -> Response {
    let secs = wait.as_secs().max(1);
    (
        [(RETRY_AFTER, secs.to_string())],
        ApiError::new(
            Code::RateLimited,
            message,
            format!("Retry after {secs} s.{advice}"),
        ),
    )
        .into_response()
}

/// The answer to a refused call.
fn refusal(refused: Refused) -> Response {
    match refused {
        Refused::UnknownToken => ApiError::not_found(
            "Unknown or revoked webhook token",
            "Copy the current webhook URL (GET /v1/creatio/connection, or the admin page) into \
             the business process's Call web service element. The URL changes when the token \
             is rotated (the old one works for a grace period) and stops working at disconnect.",
        )
        .into_response(),
        Refused::Limited(wait) => rate_limited(
            "Too many webhook calls for this org",
            wait,
            " If a business process calls this URL in a loop, check its start signal and filter.",
        ),
        Refused::Invalid(p) => ApiError::invalid(p.message, p.hint)
            .with_data("field", &p.field)
            .into_response(),
        Refused::Storage(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /v1/creatio/process-templates`: the two business processes an
/// admin builds in Creatio, with this org's URL, ready to paste.
#[utoipa::path(get, path = "/v1/creatio/process-templates", operation_id = "getProcessTemplates", tag = "two-way", security(("api_key" = [])), responses((status = 200, description = "The agent-reply and closure processes, ready to paste", body = ProcessTemplates), (status = 409, description = "Not connected yet", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn process_templates(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<ProcessTemplates>> {
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
