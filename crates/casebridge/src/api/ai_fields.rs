//! AI fields: `GET`/`PUT /v1/creatio/ai-fields` (the mappings, checked
//! against the org's Creatio at save), `POST /v1/creatio/ai-fields/preview`
//! (what a transcript would get, and why, writing nothing) and
//! `POST /v1/conversations/{id}/ai-fields/rerun` (decide again and PATCH the
//! conversation's case).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Json;
use creatio::query::Query;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::connection::creatio_client;
use super::error::{ApiError, ApiResult, Code};
use super::extract::{Admin, Body};
use super::openapi::ErrorBody;
use super::AppState;
use crate::ai::metadata::{closest, CaseSchema, Column};
use crate::ai::signals::{detect_language, detect_sentiment};
use crate::ai::{
    offline, same_name, Choice, FieldType, Line, Mapping, Speaker, Transcript, MAX_MAPPINGS,
};
use crate::domain::MessageRole;
use crate::storage::{ai_fields, timeline};

/// Columns casebridge itself manages on a case: an AI value there would
/// fight the sync (the status drives the two-way closure, the description
/// carries the summary and the deep link).
const MANAGED_COLUMNS: &[&str] = &[
    "Id",
    "Number",
    "StatusId",
    "Symptoms",
    "CreatedOn",
    "CreatedById",
    "ModifiedOn",
    "ModifiedById",
    "ProcessListeners",
];
const MAX_DESCRIPTION: usize = 4000;
const MAX_TITLE: usize = 100;
const MAX_OPTIONS: usize = 100;
/// The largest `max_length` of a text field (unlimited columns take more,
/// but an AI value that long is not a field value).
const MAX_TEXT_LENGTH: usize = 100_000;
/// Lookup rows read to resolve option names (a dropdown of more options
/// than this is not a dropdown people can describe).
const MAX_LOOKUP_ROWS: u32 = 2000;
const MAX_PREVIEW_CHARS: usize = 100_000;

/// One mapping as an admin writes it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingIn {
    /// A Case column: `PriorityId` (or `Priority`), `UsrOrderNumber`.
    field_name: String,
    /// The label people see; the field name when absent.
    #[serde(default)]
    title: Option<String>,
    #[serde(rename = "type")]
    kind: FieldType,
    /// How to choose the value. For a dropdown, one line per option:
    /// `High if a key feature is broken`.
    description: String,
    /// A dropdown's option names, when the description does not name them
    /// one per line.
    #[serde(default)]
    options: Option<Vec<String>>,
    /// A text field's longest value, in characters: the Creatio column's
    /// size (50, 250 or 500; unlimited columns take any). Creatio's
    /// `$metadata` does not tell it, so the default is 50, the smallest.
    #[serde(default)]
    max_length: Option<usize>,
}

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

/// One problem with one mapping, for the error's `fields` list.
struct Problem {
    field: String,
    message: String,
    hint: String,
}

fn problem(i: usize, what: &str, message: String, hint: &str) -> Problem {
    Problem {
        field: format!("fields[{i}].{what}"),
        message,
        hint: hint.into(),
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
    let list: Vec<Value> = problems
        .iter()
        .map(|p| json!({"field": p.field, "message": p.message, "hint": p.hint}))
        .collect();
    ApiError::invalid(message, hint).with("fields", Value::Array(list))
}

/// Checks what can be checked without Creatio.
fn check_shape(fields: &[MappingIn]) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    if fields.len() > MAX_MAPPINGS {
        return Err(ApiError::invalid(
            format!(
                "{} mappings; at most {MAX_MAPPINGS} are allowed",
                fields.len()
            ),
            "Map the columns agents triage by; each mapping is a question asked at every hand-off.",
        ));
    }
    for (i, f) in fields.iter().enumerate() {
        match (f.kind, f.max_length) {
            (FieldType::Dropdown, Some(_)) => problems.push(problem(
                i,
                "max_length",
                "max_length is for text fields; a dropdown's value is an option".to_string(),
                "Leave max_length out of dropdown fields.",
            )),
            (FieldType::Text, Some(n)) if !(1..=MAX_TEXT_LENGTH).contains(&n) => {
                problems.push(problem(
                    i,
                    "max_length",
                    format!("max_length {n} is not from 1 to {MAX_TEXT_LENGTH}"),
                    "Give the Creatio column's size: 50, 250 or 500 characters (the object designer shows the text type).",
                ))
            }
            _ => {}
        }
        let name = f.field_name.trim();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            problems.push(problem(
                i,
                "field_name",
                format!("{name:?} is not a column name"),
                "Use the column's code as Creatio's object designer shows it (PriorityId, UsrOrderNumber), not its caption.",
            ));
        }
        if f.title
            .as_deref()
            .is_some_and(|t| t.chars().count() > MAX_TITLE)
        {
            problems.push(problem(
                i,
                "title",
                format!("is longer than {MAX_TITLE} characters"),
                "Use a short label such as Priority.",
            ));
        }
        let d = f.description.trim();
        if d.is_empty() || d.chars().count() > MAX_DESCRIPTION {
            problems.push(problem(
                i,
                "description",
                format!("must have 1 to {MAX_DESCRIPTION} characters"),
                "Describe how to choose the value; for a dropdown one line per option, like \"High if a key feature is broken\".",
            ));
        }
        match (&f.options, f.kind) {
            (Some(_), FieldType::Text) => problems.push(problem(
                i,
                "options",
                "a text field has no options".into(),
                "Remove options, or make the field a dropdown.",
            )),
            (Some(o), FieldType::Dropdown)
                if o.is_empty()
                    || o.len() > MAX_OPTIONS
                    || o.iter()
                        .any(|n| n.trim().is_empty() || n.chars().count() > 250) =>
            {
                problems.push(problem(
                    i,
                    "options",
                    format!("must list 1 to {MAX_OPTIONS} non-empty names"),
                    "List the lookup values by name, as Creatio shows them.",
                ))
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(refuse(problems))
    }
}

/// Checks the mappings against the org's Creatio: each column exists on
/// Case and suits its type, each dropdown option is a row of the lookup.
async fn resolve(
    state: &AppState,
    org_id: &str,
    fields: Vec<MappingIn>,
) -> ApiResult<Vec<Mapping>> {
    check_shape(&fields)?;
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    let client = creatio_client(state, org_id).await?;
    let csdl = client.metadata().await.map_err(|e| {
        ApiError::creatio(
            "Could not read Creatio's $metadata to check the columns",
            &e,
        )
    })?;
    let schema = CaseSchema::parse(&csdl).map_err(|e| {
        ApiError::new(
            Code::CreatioError,
            e.to_string(),
            "Check the Instance URL points at Creatio (Test & Save) and the integration user may read Case.",
        )
    })?;
    let mut problems = Vec::new();
    let mut rows: HashMap<String, Vec<Choice>> = HashMap::new();
    let mut out = Vec::new();
    let mut columns_seen: HashMap<String, usize> = HashMap::new();
    for (i, f) in fields.into_iter().enumerate() {
        let field_name = f.field_name.trim().to_string();
        let column = match schema.column(&field_name) {
            Ok(c) => c,
            Err(message) => {
                problems.push(problem(
                    i,
                    "field_name",
                    message,
                    "Use a column of the Case object: its code as the object designer shows it.",
                ));
                continue;
            }
        };
        let (column_name, lookup, max_length) = match (&column, f.kind) {
            // The admin's size, else one $metadata gives (real Creatio
            // gives none), else the smallest Creatio text size.
            (Column::Text { name, max_length }, FieldType::Text) => (
                name.clone(),
                None,
                Some(
                    f.max_length
                        .or(*max_length)
                        .unwrap_or(crate::ai::DEFAULT_TEXT_LENGTH),
                ),
            ),
            (Column::Lookup { column, entity_set }, FieldType::Dropdown) => {
                (column.clone(), Some(entity_set.clone()), None)
            }
            (Column::Text { name, .. }, FieldType::Dropdown) => {
                problems.push(problem(
                    i,
                    "type",
                    format!("Case.{name} is a text column, not a lookup"),
                    "Make the field type text, or map a lookup column (one whose values come from a list).",
                ));
                continue;
            }
            (Column::Lookup { column, entity_set }, FieldType::Text) => {
                problems.push(problem(
                    i,
                    "type",
                    format!("Case.{column} is a lookup of {entity_set}, so its value must be one of its rows"),
                    "Make the field type dropdown and name its options.",
                ));
                continue;
            }
        };
        if MANAGED_COLUMNS.contains(&column_name.as_str()) {
            problems.push(problem(
                i,
                "field_name",
                format!("Case.{column_name} is written by casebridge itself"),
                "Map another column; the status follows the conversation's resolution and the description carries the summary.",
            ));
            continue;
        }
        if let Some(earlier) = columns_seen.insert(column_name.clone(), i) {
            problems.push(problem(
                i,
                "field_name",
                format!("Case.{column_name} is mapped already by fields[{earlier}]"),
                "Map each column once.",
            ));
            continue;
        }
        let mut options = Vec::new();
        if let Some(set) = &lookup {
            let names: Vec<String> = match &f.options {
                Some(list) => list.iter().map(|n| n.trim().to_string()).collect(),
                None => offline::criteria(&f.description)
                    .into_iter()
                    .map(|c| c.option)
                    .collect(),
            };
            let mut unique: Vec<String> = Vec::new();
            for n in names {
                if !unique.iter().any(|u| same_name(u, &n)) {
                    unique.push(n);
                }
            }
            if unique.is_empty() {
                problems.push(problem(
                    i,
                    "description",
                    "names no options".into(),
                    "Write one line per option (\"High if a key feature is broken\"), or list them in options.",
                ));
                continue;
            }
            if !rows.contains_key(set) {
                let found = client
                    .list_values(
                        set,
                        &Query::new()
                            .select(["Id", "Name"])
                            .order_by_asc("Name")
                            .top(MAX_LOOKUP_ROWS),
                    )
                    .await
                    .map_err(|e| {
                        ApiError::creatio(&format!("Could not read the {set} lookup"), &e)
                    })?;
                let choices = found
                    .iter()
                    .filter_map(|r| {
                        Some(Choice {
                            name: r["Name"].as_str()?.to_string(),
                            id: r["Id"].as_str()?.parse::<Uuid>().ok()?,
                        })
                    })
                    .collect();
                rows.insert(set.clone(), choices);
            }
            let available = &rows[set];
            for name in unique {
                match available.iter().find(|c| same_name(&c.name, &name)) {
                    Some(c) => options.push(c.clone()),
                    None => {
                        let close = closest(&name, available.iter().map(|c| c.name.as_str()), 3);
                        let all: Vec<&str> =
                            available.iter().take(12).map(|c| c.name.as_str()).collect();
                        problems.push(problem(
                            i,
                            "options",
                            if close.is_empty() {
                                format!("{name:?} is not a {set} value; the values are: {}", all.join(", "))
                            } else {
                                format!("{name:?} is not a {set} value; closest: {}", close.join(", "))
                            },
                            "Name the options exactly as Creatio lists them (case does not matter), or add the value to the lookup in Creatio first. A description line of the form \"X: …\" or \"X if …\" names an option X; list the options in options when a line is not one.",
                        ));
                    }
                }
            }
        }
        out.push(Mapping {
            title: f
                .title
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| field_name.clone()),
            field_name,
            kind: f.kind,
            description: f.description.trim().to_string(),
            column: column_name,
            lookup,
            options,
            max_length,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(refuse(problems))
    }
}

fn mappings_json(state: &AppState, mappings: &[Mapping]) -> Value {
    json!({"provider": state.app.ai.name(), "fields": mappings})
}

#[utoipa::path(get, path = "/v1/creatio/ai-fields", tag = "ai-fields", security(("api_key" = [])), responses((status = 200, description = "The provider and the saved mappings (with their columns and option GUIDs)"), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn read(State(state): State<AppState>, Admin(caller): Admin) -> ApiResult<Json<Value>> {
    let mappings = ai_fields::mappings(&state.app.db, &caller.org_id).await?;
    Ok(Json(mappings_json(&state, &mappings)))
}

#[utoipa::path(put, path = "/v1/creatio/ai-fields", tag = "ai-fields", security(("api_key" = [])), request_body = MappingsBody, responses((status = 200, description = "Saved: each mapping with its column, lookup, option GUIDs and size"), (status = 400, description = "A column that does not exist or does not fit, or an option that is not a lookup value; each problem named with the closest names", body = ErrorBody), (status = 409, description = "Not connected", body = ErrorBody), (status = 502, description = "Creatio could not be read", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(body): Body<MappingsBody>,
) -> ApiResult<Json<Value>> {
    let mappings = resolve(&state, &caller.org_id, body.fields).await?;
    ai_fields::save_mappings(&state.app.db, &caller.org_id, &mappings).await?;
    tracing::info!(org_id = %caller.org_id, mappings = mappings.len(), "AI field mappings saved.");
    Ok(Json(mappings_json(&state, &mappings)))
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

#[utoipa::path(post, path = "/v1/creatio/ai-fields/preview", tag = "ai-fields", security(("api_key" = [])), request_body = PreviewBody, responses((status = 200, description = "The value each mapping would get and why, and the detected language and sentiment; nothing is written"), (status = 400, description = "Invalid transcript or mappings", body = ErrorBody), (status = 409, description = "No mappings saved or given, or not connected", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(body): Body<PreviewBody>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({
        "provider": evaluation.provider,
        "values": evaluation.values,
        "language": detect_language(&transcript),
        "sentiment": detect_sentiment(&transcript),
    })))
}

#[utoipa::path(post, path = "/v1/conversations/{id}/ai-fields/rerun", tag = "ai-fields", security(("api_key" = [])), params(("id" = String, Path, description = "The platform's conversation id")), responses((status = 200, description = "The values decided again and written to the case (fields left empty are not touched)"), (status = 404, description = "No such conversation", body = ErrorBody), (status = 409, description = "No case yet, no mappings, or not connected", body = ErrorBody), (status = 502, description = "Creatio refused the update", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn rerun(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
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
    let case_id: Uuid = c
        .case_id
        .parse()
        .map_err(|e| ApiError::internal("Reading the conversation's case id", &e))?;
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
    Ok(Json(json!({
        "provider": evaluation.provider,
        "case_id": case_id,
        "written": columns.keys().collect::<Vec<_>>(),
        "values": evaluation.values,
    })))
}
