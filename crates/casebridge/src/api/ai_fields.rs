//! AI fields: `GET`/`PUT /v1/creatio/ai-fields` (the mappings, checked
//! against the org's Creatio at save), `POST /v1/creatio/ai-fields/preview`
//! (what a transcript would get, and why, writing nothing) and
//! `POST /v1/conversations/{id}/ai-fields/rerun` (decide again and PATCH the
//! conversation's case).

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::connection::creatio_client;
use super::error::{ApiError, ApiResult, Code, FieldProblem};
use super::extract::{Admin, Body};
use super::openapi::ErrorBody;
use super::AppState;
use crate::ai::mappings::{self, MappingIn, Problem, Refused};
use crate::ai::metadata::Column;
use crate::ai::signals::{detect_language, detect_sentiment, Language, Sentiment};
use crate::ai::{FieldValue, Line, Mapping, Speaker, Transcript, MAX_MAPPINGS};
use crate::domain::MessageRole;
use crate::domain::{ConversationId, OrgId};
use crate::storage::{ai_fields, timeline};

const MAX_PREVIEW_CHARS: usize = 100_000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingsBody {
    fields: Vec<MappingIn>,
}

/// A transcript: pasted text (`Customer: …` / `AI: …` lines) or messages.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TranscriptIn {
    Text(String),
    Messages(Vec<MessageIn>),
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// `customer`, `ai` or `agent`.
    role: String,
    text: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    transcript: TranscriptIn,
    /// The hand-off summary, if the preview should read one.
    #[serde(default)]
    summary: Option<String>,
    /// Mappings to try instead of the saved ones (checked as at save).
    #[serde(default)]
    fields: Option<Vec<MappingIn>>,
}

/// Checks `fields` (their shape first, so no connection is needed to hear
/// of a typo) and resolves them against the org's Creatio.
async fn resolve(
    state: &AppState,
    org_id: &OrgId,
    fields: Vec<MappingIn>,
) -> ApiResult<Vec<Mapping>> {
    mappings::check_shape(&fields).map_err(refused)?;
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    let client = creatio_client(state, org_id).await?;
    mappings::resolve(&client, fields).await.map_err(refused)
}

/// The answer to refused mappings.
fn refused(r: Refused) -> ApiError {
    match r {
        Refused::TooMany(n) => ApiError::invalid(
            format!("{n} mappings; at most {MAX_MAPPINGS} are allowed"),
            "Map the columns agents triage by; each mapping is a question asked at every hand-off.",
        ),
        Refused::Problems(problems) => refuse(problems),
        Refused::Creatio { what, error } => ApiError::creatio(&what, &error),
        Refused::Schema(message) => ApiError::new(
            Code::CreatioError,
            message,
            "Check the Instance URL points at Creatio (Test & Save) and the integration user may read Case.",
        ),
    }
}

fn refuse(problems: Vec<Problem>) -> ApiError {
    let message = format!(
        "{} problem{} with the AI field mappings: {}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let hint = problems[0].hint.clone();
    let list = problems
        .into_iter()
        .map(|p| FieldProblem {
            field: p.field,
            message: p.message,
            hint: Some(p.hint),
        })
        .collect();
    ApiError::invalid(message, hint).with_fields(list)
}

/// The saved mappings and who fills them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MappingsOut {
    /// `offline` or `openai`.
    pub provider: &'static str,
    pub fields: Vec<Mapping>,
}

/// What a transcript would get; nothing is written.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PreviewOut {
    pub provider: String,
    pub values: Vec<FieldValue>,
    pub language: Option<Language>,
    pub sentiment: Option<Sentiment>,
    /// What makes these values less reliable than they look: the offline
    /// provider reads English only, and the transcript is in another
    /// language.
    pub warning: Option<String>,
}

/// The values decided again, and the columns written to the case.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RerunOut {
    pub provider: String,
    pub case_id: Uuid,
    /// The Case columns written (a field left empty is not touched).
    pub written: Vec<String>,
    pub values: Vec<FieldValue>,
}

fn mappings_out(state: &AppState, mappings: Vec<Mapping>) -> MappingsOut {
    MappingsOut {
        provider: state.app.ai.name(),
        fields: mappings,
    }
}

#[utoipa::path(get, path = "/v1/creatio/ai-fields", operation_id = "getAiFields", tag = "ai-fields", security(("api_key" = [])), responses((status = 200, description = "The provider and the saved mappings (with their columns and option GUIDs)", body = MappingsOut), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<MappingsOut>> {
    let mappings = ai_fields::mappings(&state.app.db, &caller.org_id).await?;
    Ok(Json(mappings_out(&state, mappings)))
}

/// A Case column an AI field can fill.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ColumnOut {
    /// What to put in `field_name`.
    pub field_name: String,
    /// `text` or `dropdown` (a lookup).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A dropdown's lookup (entity set).
    pub lookup: Option<String>,
    /// A text column's size, when `$metadata` gives it.
    pub max_length: Option<usize>,
}

/// `GET /v1/creatio/ai-fields/columns`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ColumnsOut {
    pub columns: Vec<ColumnOut>,
}

/// The Case columns of the org's Creatio an AI field can fill, read from
/// its `$metadata`, for the page's column picker.
#[utoipa::path(get, path = "/v1/creatio/ai-fields/columns", operation_id = "listCaseColumns", tag = "ai-fields", security(("api_key" = [])), responses((status = 200, description = "Case's text and lookup columns, by name", body = ColumnsOut), (status = 409, description = "Not connected", body = ErrorBody), (status = 502, description = "Creatio could not be read", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn columns(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<ColumnsOut>> {
    let client = creatio_client(&state, &caller.org_id).await?;
    let schema = mappings::case_schema(&client).await.map_err(refused)?;
    Ok(Json(ColumnsOut {
        columns: schema
            .fillable()
            .into_iter()
            .map(|c| match c {
                Column::Text { name, max_length } => ColumnOut {
                    field_name: name,
                    kind: "text",
                    lookup: None,
                    max_length,
                },
                Column::Lookup { column, entity_set } => ColumnOut {
                    field_name: column,
                    kind: "dropdown",
                    lookup: Some(entity_set),
                    max_length: None,
                },
            })
            .collect(),
    }))
}

#[utoipa::path(put, path = "/v1/creatio/ai-fields", operation_id = "putAiFields", tag = "ai-fields", security(("api_key" = [])), request_body = MappingsBody, responses((status = 200, description = "Saved: each mapping with its column, lookup, option GUIDs and size", body = MappingsOut), (status = 400, description = "A column that does not exist or does not fit, or an option that is not a lookup value; each problem named with the closest names", body = ErrorBody), (status = 409, description = "Not connected", body = ErrorBody), (status = 502, description = "Creatio could not be read", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(body): Body<MappingsBody>,
) -> ApiResult<Json<MappingsOut>> {
    let mappings = resolve(&state, &caller.org_id, body.fields).await?;
    ai_fields::save_mappings(&state.app.db, &caller.org_id, &mappings).await?;
    tracing::info!(org_id = %caller.org_id, mappings = mappings.len(), "AI field mappings saved.");
    Ok(Json(mappings_out(&state, mappings)))
}

fn transcript_from(input: TranscriptIn) -> ApiResult<Transcript> {
    let t = match input {
        TranscriptIn::Text(text) => {
            if text.chars().count() > MAX_PREVIEW_CHARS {
                return Err(ApiError::invalid(
                    format!("transcript is longer than {MAX_PREVIEW_CHARS} characters"),
                    "Paste the conversation only.",
                ));
            }
            Transcript::parse(&text)
        }
        TranscriptIn::Messages(messages) => {
            let mut lines = Vec::new();
            let mut total = 0;
            for (i, m) in messages.into_iter().enumerate() {
                if MessageRole::parse(&m.role).is_none() {
                    return Err(ApiError::invalid(
                        format!("transcript[{i}].role {:?} is not a role", m.role),
                        format!("Use {}.", MessageRole::listed()),
                    ));
                }
                total += m.text.chars().count();
                lines.push(Line {
                    speaker: Speaker::parse(&m.role),
                    text: m.text,
                });
            }
            if total > MAX_PREVIEW_CHARS {
                return Err(ApiError::invalid(
                    format!("transcript is longer than {MAX_PREVIEW_CHARS} characters"),
                    "Send the conversation only.",
                ));
            }
            Transcript {
                lines,
                ..Default::default()
            }
        }
    };
    if t.lines.is_empty() {
        return Err(ApiError::invalid(
            "transcript has no messages",
            "Paste the conversation, one message per line (\"Customer: …\", \"AI: …\").",
        ));
    }
    Ok(t)
}

#[utoipa::path(post, path = "/v1/creatio/ai-fields/preview", operation_id = "previewAiFields", tag = "ai-fields", security(("api_key" = [])), request_body = PreviewBody, responses((status = 200, description = "The value each mapping would get and why, and the detected language and sentiment; nothing is written", body = PreviewOut), (status = 400, description = "Invalid transcript or mappings", body = ErrorBody), (status = 409, description = "No mappings saved or given, or not connected", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(body): Body<PreviewBody>,
) -> ApiResult<Json<PreviewOut>> {
    let mut transcript = transcript_from(body.transcript)?;
    transcript.summary = body.summary.filter(|s| !s.trim().is_empty());
    let mappings = match body.fields {
        Some(fields) => resolve(&state, &caller.org_id, fields).await?,
        None => ai_fields::mappings(&state.app.db, &caller.org_id).await?,
    };
    if mappings.is_empty() {
        return Err(ApiError::new(
            Code::Conflict,
            "No AI fields are mapped yet",
            "Save mappings with PUT /v1/creatio/ai-fields, or send them with the preview in fields.",
        ));
    }
    let evaluation = state.app.ai.evaluate(&mappings, &transcript).await;
    let language = detect_language(&transcript);
    let warning = language
        .as_ref()
        .filter(|l| state.app.ai.english_only() && l.code != "en")
        .map(|l| {
            format!(
                "The offline provider reads English only, and this transcript is in {}: its choices are likely empty or wrong. \
                 For other languages use a model (CASEBRIDGE_AI_PROVIDER=openai).",
                l.name.as_deref().unwrap_or(&l.code)
            )
        });
    Ok(Json(PreviewOut {
        provider: evaluation.provider,
        values: evaluation.values,
        language,
        sentiment: detect_sentiment(&transcript),
        warning,
    }))
}

#[utoipa::path(post, path = "/v1/conversations/{id}/ai-fields/rerun", operation_id = "rerunAiFields", tag = "ai-fields", security(("api_key" = [])), params(("id" = String, Path, description = "The platform's conversation id")), responses((status = 200, description = "The values decided again and written to the case (fields left empty are not touched)", body = RerunOut), (status = 404, description = "No such conversation", body = ErrorBody), (status = 409, description = "No case yet, no mappings, or not connected", body = ErrorBody), (status = 502, description = "Creatio refused the update", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn rerun(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<RerunOut>> {
    let org = &caller.org_id;
    let c = super::events::find_conversation(&state, org, &id).await?;
    if !c.case_created {
        return Err(ApiError::new(
            Code::Conflict,
            format!("Conversation {id:?} has no case yet"),
            "AI fields are filled when the case exists (at hand-off, or with the first customer message); try again after.",
        ));
    }
    let mappings = ai_fields::mappings(&state.app.db, org).await?;
    if mappings.is_empty() {
        return Err(ApiError::new(
            Code::Conflict,
            "No AI fields are mapped yet",
            "Save mappings with PUT /v1/creatio/ai-fields first.",
        ));
    }
    let case_id: Uuid = c.case_id.0;
    let client = creatio_client(&state, org).await?;
    let transcript = Transcript {
        lines: ai_fields::transcript_lines(&state.app.db, org, &id, None).await?,
        ..Default::default()
    };
    let evaluation = state.app.ai.evaluate(&mappings, &transcript).await;
    let columns = evaluation.case_columns();
    if !columns.is_empty() {
        client
            .update_value("Case", case_id, &Value::Object(columns.clone()))
            .await
            .map_err(|e| ApiError::creatio("Creatio refused the case update", &e))?;
    }
    let mut lines = vec![format!(
        "AI fields re-run by an admin ({}): {} written to case {case_id}",
        evaluation.provider,
        columns.len()
    )];
    lines.extend(evaluation.values.iter().map(|v| v.timeline_line()));
    for line in &lines {
        timeline::add_timeline_alone(&state.app.db, org, &id, "ai", line, None).await?;
    }
    Ok(Json(RerunOut {
        provider: evaluation.provider,
        case_id,
        written: columns.keys().cloned().collect(),
        values: evaluation.values,
    }))
}
