//! Erasure and retention: `DELETE /v1/conversations/{id}` and
//! `POST /v1/erasure` remove the personal data casebridge holds (texts,
//! names, addresses, payloads) and record an audit line without it
//! (`GET /v1/erasures`); `GET /v1/retention` shows how long each kind of
//! data is kept, what the last purge did and how much is stored.
//!
//! A conversation still syncing (a job pending or running, a delivery
//! waiting) is refused with a hint, not erased under its job's feet: the
//! job may be about to write that very text to Creatio, and would fail on
//! what it no longer finds. Creatio is never changed; the answer names the
//! cases and contacts that stay there.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, ApiResult, Code};
use super::extract::{parse_json, Admin, Operator, QueryParams};
use super::openapi::ErrorBody;
use super::AppState;
use crate::domain::{CaseId, ConversationId};
use crate::retention::format_duration;
use crate::storage::erasure::{self, Erased, Request, StillSyncing};
use crate::storage::{conversations, rfc3339};

/// What Creatio keeps: casebridge changed none of it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatioUntouchedOut {
    /// Always false: casebridge never changes Creatio on an erasure.
    pub changed: bool,
    /// The Case Ids of the erased conversations.
    pub cases: Vec<CaseId>,
    /// The Contact Ids linked to them.
    pub contacts: Vec<String>,
    pub hint: &'static str,
}

/// An erasure done.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErasedOut {
    pub erased: ErasedRowsOut,
    /// The audit line's id (`GET /v1/erasures`).
    pub audit_id: String,
    pub at: String,
    /// What casebridge keeps of each conversation.
    pub kept: &'static str,
    pub creatio: CreatioUntouchedOut,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErasedRowsOut {
    /// The conversations erased.
    pub conversations: Vec<ConversationId>,
    /// Rows removed, per kind.
    #[schema(value_type = Object)]
    pub removed: erasure::Removed,
}

/// `GET /v1/erasures`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErasuresOut {
    pub erasures: Vec<AuditLineOut>,
}

/// An erasure's audit line: no personal data.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditLineOut {
    pub id: String,
    pub at: String,
    /// Which key asked (`API key key_…`).
    pub actor: String,
    /// `conversation` or `contact`.
    pub scope: String,
    pub conversation_id: Option<ConversationId>,
    /// Rows removed, per kind.
    #[schema(value_type = Object)]
    pub counts: Value,
}

impl CreatioUntouchedOut {
    fn of(conversations: &[conversations::Conversation]) -> Self {
        // Conversations joined to one case (case-append) name it once.
        let mut cases: Vec<CaseId> = conversations
            .iter()
            .filter(|c| c.case_created)
            .map(|c| c.case_id)
            .collect();
        cases.sort_unstable();
        cases.dedup();
        let mut contacts: Vec<String> = conversations
            .iter()
            .filter_map(|c| c.creatio_contact_id.clone())
            .collect();
        contacts.sort_unstable();
        contacts.dedup();
        CreatioUntouchedOut {
            changed: false,
            cases,
            contacts,
            hint: "casebridge did not change Creatio: these cases, their activities (the messages) and the contacts stay there. \
                   Erase or anonymize them in Creatio itself (delete the contact and its cases, or use Creatio's personal data tools), \
                   as your Creatio administrator does for any other erasure request.",
        }
    }
}

fn syncing_error(busy: Vec<StillSyncing>) -> ApiError {
    let ids: Vec<&str> = busy.iter().map(|b| b.conversation_id.as_str()).collect();
    ApiError::new(
        Code::Conflict,
        format!(
            "Nothing was erased: {} still syncing ({})",
            if ids.len() == 1 { "the conversation is" } else { "these conversations are" },
            ids.join(", ")
        ),
        "A job is about to write to Creatio or a reply is waiting to be delivered. Wait until GET /v1/conversations/{id} shows no open_jobs \
         (normally seconds), then repeat. If Creatio is unreachable and the jobs keep retrying, disconnect (DELETE /v1/creatio/connection) \
         to cancel them, then erase.",
    )
    .with_data("still_syncing", &busy)
}

impl ErasedOut {
    fn of(erased: &Erased, conversations: &[conversations::Conversation]) -> Self {
        ErasedOut {
            erased: ErasedRowsOut {
                conversations: conversations.iter().map(|c| c.id.clone()).collect(),
                removed: erased.removed,
            },
            audit_id: erased.audit_id.clone(),
            at: rfc3339(erased.at),
            kept: "Each conversation's id, state and its links to the Creatio case and contact (so a later event joins the same case), \
                   and the ids of records casebridge wrote (the echo guard). No text, name, e-mail, phone or payload.",
            creatio: CreatioUntouchedOut::of(conversations),
        }
    }
}

async fn erase(
    state: &AppState,
    caller: &crate::storage::orgs::Caller,
    conversations: &[conversations::Conversation],
    scope: &str,
    subject: Option<&str>,
) -> ApiResult<Json<ErasedOut>> {
    let ids: Vec<ConversationId> = conversations.iter().map(|c| c.id.clone()).collect();
    let actor = format!("API key {}", caller.key_id);
    let request = Request {
        actor: &actor,
        scope,
        subject,
    };
    match erasure::erase_conversations(&state.app.db, &caller.org_id, &ids, &request).await? {
        Ok(erased) => {
            tracing::info!(org_id = %caller.org_id, audit_id = %erased.audit_id, scope, conversations = ids.len(), "Erased personal data.");
            Ok(Json(ErasedOut::of(&erased, conversations)))
        }
        Err(busy) => Err(syncing_error(busy)),
    }
}

/// `DELETE /v1/conversations/{id}`: erases the conversation's personal data.
#[utoipa::path(delete, path = "/v1/conversations/{id}", operation_id = "eraseConversation", tag = "privacy", security(("api_key" = [])), params(("id" = String, Path, description = "The platform's conversation id")), responses((status = 200, description = "Erased: what was removed, the audit id, and what Creatio still holds", body = ErasedOut), (status = 404, description = "No such conversation", body = ErrorBody), (status = 409, description = "Still syncing; nothing was erased", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn erase_conversation(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<ErasedOut>> {
    let c = super::events::find_conversation(&state, &caller.org_id, &id).await?;
    erase(&state, &caller, &[c], "conversation", Some(id.as_str())).await
}

/// The contact whose conversations are erased: one of the two.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactErasure {
    email: Option<String>,
    phone: Option<String>,
}

/// The contact an erasure is for.
enum Wanted {
    /// Lower case, trimmed.
    Email(String),
    Phone(String),
}

impl Wanted {
    /// Whether a conversation's stored contact is this one: the e-mail in
    /// any letter case, the phone in any usual notation.
    fn matches(&self, email: Option<&str>, phone: Option<&str>) -> bool {
        match self {
            Wanted::Email(wanted) => email.is_some_and(|e| e.trim().to_lowercase() == *wanted),
            Wanted::Phone(wanted) => {
                phone.is_some_and(|p| crate::sync::contacts::same_phone(p, wanted))
            }
        }
    }
}

/// `POST /v1/erasure` `{"email"}` or `{"phone"}`: erases every conversation
/// of that contact, all or none.
#[utoipa::path(post, path = "/v1/erasure", operation_id = "eraseContact", tag = "privacy", request_body = ContactErasure, security(("api_key" = [])), responses((status = 200, description = "Erased (possibly nothing: no conversation had that contact); the audit id, and what Creatio still holds", body = ErasedOut), (status = 400, description = "Neither or both of email and phone, or an invalid one", body = ErrorBody), (status = 409, description = "A conversation is still syncing; nothing was erased", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn erase_contact(
    State(state): State<AppState>,
    Admin(caller): Admin,
    body: Bytes,
) -> ApiResult<Json<ErasedOut>> {
    let input: ContactErasure = parse_json(&body)?;
    let wanted = match (&input.email, &input.phone) {
        (Some(email), None) => {
            let email = email.trim().to_lowercase();
            if !email.contains('@') || email.len() > 320 {
                return Err(ApiError::invalid(
                    "email is not an e-mail address",
                    "Send the address the conversations' contact had, e.g. {\"email\": \"ada@example.com\"}.",
                ));
            }
            Wanted::Email(email)
        }
        (None, Some(phone)) => {
            let digits = phone.chars().filter(char::is_ascii_digit).count();
            if !(4..=20).contains(&digits) {
                return Err(ApiError::invalid(
                    "phone is not a phone number",
                    "Send the number with 4 to 20 digits, in any usual form: {\"phone\": \"+1 617 555 0100\"}.",
                ));
            }
            Wanted::Phone(phone.clone())
        }
        _ => {
            return Err(ApiError::invalid(
                "Give exactly one of email and phone",
                "Send {\"email\": \"ada@example.com\"} or {\"phone\": \"+1 617 555 0100\"}; to erase by both, send two requests.",
            ))
        }
    };
    // Compared here, in Rust, so both backends compare the same way.
    let conversations: Vec<conversations::Conversation> =
        conversations::conversations_with_contact_details(&state.app.db, &caller.org_id)
            .await?
            .into_iter()
            .filter(|c| wanted.matches(c.contact_email.as_deref(), c.contact_phone.as_deref()))
            .collect();
    erase(&state, &caller, &conversations, "contact", None).await
}

/// `GET /v1/erasures?limit=`: the org's erasures, newest first.
#[utoipa::path(get, path = "/v1/erasures", operation_id = "listErasures", tag = "privacy", security(("api_key" = [])), params(("limit" = Option<i64>, Query, description = "1 to 500, default 100")), responses((status = 200, description = "Audit lines: when, which key, the scope, and the rows removed; no personal data", body = ErasuresOut), (status = 400, description = "Invalid limit", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<ErasuresOut>> {
    let hint = "GET /v1/erasures takes limit (1 to 500).";
    let params = QueryParams::known(&params, &["limit"], hint)?;
    let limit = params.count("limit", 500, 100, hint)?;
    let lines = erasure::audit_lines(&state.app.db, &caller.org_id, limit).await?;
    Ok(Json(ErasuresOut {
        erasures: lines
            .into_iter()
            .map(|l| AuditLineOut {
                id: l.id,
                at: rfc3339(l.at),
                actor: l.actor,
                scope: l.scope,
                conversation_id: l.subject.map(ConversationId::from),
                counts: l.counts,
            })
            .collect(),
    }))
}

/// `GET /v1/retention`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetentionOut {
    pub settings: RetentionSettingsOut,
    /// The last purge pass of this process; absent before the first.
    pub last_purge: Option<PurgePassOut>,
    pub sizes: SizesOut,
}

/// How long each kind of data is kept (`30d`, `12h`; `forever`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetentionSettingsOut {
    pub messages: String,
    pub events: String,
    pub timeline: String,
    pub deliveries: String,
    pub jobs: String,
    pub dead_jobs: String,
    /// How often the purge runs (`off`: never).
    pub purge_interval: String,
    /// Rows (messages, for conversation texts) per purge batch.
    pub purge_batch: usize,
}

/// What a purge pass did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PurgePassOut {
    pub started_at: String,
    pub took_ms: u64,
    /// The longest one batch held the database.
    pub longest_batch_ms: u64,
    /// Rows deleted per kind.
    #[serde(serialize_with = "super::pairs_as_object")]
    #[schema(value_type = std::collections::HashMap<String, u64>)]
    pub deleted: Vec<(String, u64)>,
    pub error: Option<String>,
}

/// What is stored, counted now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SizesOut {
    pub counted_at: String,
    pub database_bytes: i64,
    /// SQLite: bytes of free pages (reused before the file grows).
    pub free_bytes: Option<i64>,
    /// Rows per table.
    #[serde(serialize_with = "super::pairs_as_object")]
    #[schema(value_type = std::collections::HashMap<String, i64>)]
    pub rows: Vec<(String, i64)>,
}

/// `GET /v1/retention` (operator): the retention settings, the last purge
/// and the stored sizes.
#[utoipa::path(get, path = "/v1/retention", operation_id = "getRetention", tag = "privacy", security(("operator_token" = [])), responses((status = 200, description = "Settings, last purge pass, rows per table and database size", body = RetentionOut), (status = 401, description = "Missing or wrong admin token", body = ErrorBody)))]
pub async fn retention(
    State(state): State<AppState>,
    _op: Operator,
) -> ApiResult<Json<RetentionOut>> {
    let retention = &state.app.retention;
    let s = &retention.settings;
    let settings = RetentionSettingsOut {
        messages: format_duration(s.messages),
        events: format_duration(s.events),
        timeline: format_duration(s.timeline),
        deliveries: format_duration(s.deliveries),
        jobs: format_duration(s.jobs),
        dead_jobs: format_duration(s.dead_jobs),
        purge_interval: s
            .interval
            .map(|d| format_duration(Some(d)))
            .unwrap_or_else(|| "off".into()),
        purge_batch: s.batch,
    };
    let last_purge = retention.last_pass().map(|p| PurgePassOut {
        started_at: rfc3339(p.started_at),
        took_ms: p.took.as_millis() as u64,
        longest_batch_ms: p.longest_batch.as_millis() as u64,
        deleted: p.deleted.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        error: p.error.clone(),
    });
    // Counted now: a person asking wants today's figures.
    let sizes = retention
        .sizes(&state.app.db, std::time::Duration::ZERO)
        .await?;
    Ok(Json(RetentionOut {
        settings,
        last_purge,
        sizes: SizesOut {
            counted_at: rfc3339(sizes.at),
            database_bytes: sizes.database_bytes,
            free_bytes: sizes.free_bytes,
            rows: sizes
                .rows
                .iter()
                .map(|(t, n)| (t.to_string(), *n))
                .collect(),
        },
    }))
}
