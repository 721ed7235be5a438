//! What Creatio's "Call web service" element sends to
//! `POST /webhooks/creatio/{token}` (DESIGN.md §2), parsed and checked.
//!
//! Creatio admins type these bodies by hand, so parsing is tolerant where
//! tolerance is safe (key spelling: `caseId`, `CaseId`, `case_id`; unknown
//! keys ignored; braces around GUIDs) and strict where a mistake would go
//! unnoticed: a placeholder Creatio did not substitute (`"[#Case.Id#]"`) or
//! a value that is not a GUID is refused with a sentence that says which
//! process parameter to fix.

use std::collections::HashMap;

use serde_json::Value;
use uuid::Uuid;

/// The event types a process may send.
pub const EVENT_TYPES: &[&str] = &[
    "new_activity",
    "case_closed",
    "case_resolved",
    "case_status_changed",
];

/// The body a process sends, for the OpenAPI document ([`parse`] reads it,
/// tolerating other spellings of the keys and braces around GUIDs). The
/// example is the agent-reply template's body, substituted.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"event_type": "new_activity",
    "caseId": "54088cc2-1769-5972-84b9-280623c39e0a",
    "activityId": "0a5d4c38-3f3e-4b8e-9a57-4d1c8b7f2e61"}))]
#[allow(dead_code, non_snake_case)] // documentation of the JSON keys
pub struct ProcessCall {
    /// `new_activity`, `case_status_changed`, `case_closed` or `case_resolved`.
    #[schema(example = "new_activity")]
    event_type: String,
    /// The case (`[#Case.Id#]`).
    caseId: Uuid,
    /// The added activity (`[#Activity.Id#]`), for `new_activity`.
    activityId: Option<Uuid>,
    /// The new status (`[#Case.StatusId#]`), for a status change.
    statusId: Option<Uuid>,
}

/// A checked webhook call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// As sent, normalised (`new_activity`, `case_resolved`, …).
    pub event_type: String,
    pub case_id: Uuid,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// An activity was added to the case: look for agent replies.
    NewActivity { activity_id: Option<Uuid> },
    /// The case's status changed: look whether it is closed.
    Closure { status_id: Option<Uuid> },
}

/// Why a call was refused: what, and what to change in the process.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub field: String,
    pub message: String,
    pub hint: String,
}

fn problem(field: &str, message: String, hint: &str) -> Problem {
    Problem {
        field: field.into(),
        message,
        hint: hint.into(),
    }
}

/// `caseId`, `CaseId`, `case_id`, `case-id` → `caseid`.
fn normalise_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Reads a GUID parameter. `Ok(None)` when absent or empty.
fn guid(
    fields: &HashMap<String, &Value>,
    keys: &[&str],
    label: &str,
) -> Result<Option<Uuid>, Problem> {
    let Some(value) = keys.iter().find_map(|k| fields.get(*k)) else {
        return Ok(None);
    };
    let Some(text) = text_of(value).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.contains("[#") && text.contains("#]") {
        return Err(problem(
            label,
            format!("{label} is {text:?}: Creatio sent the placeholder instead of its value"),
            "In the business process's Call web service element, set this body parameter to the \
             process parameter that holds the record's Id (pick it from the parameter list \
             rather than typing it), save and activate the process again. \
             GET /v1/creatio/process-templates shows the exact set-up.",
        ));
    }
    match Uuid::try_parse(&text) {
        Ok(id) if id.is_nil() => Ok(None),
        Ok(id) => Ok(Some(id)),
        Err(_) => Err(problem(
            label,
            format!("{label} is {text:?}, which is not a GUID"),
            "Map this body parameter to the record's Id column (a GUID such as \
             ae7f411e-f46b-1410-009b-0050ba5d6c38), not to its name or number. \
             GET /v1/creatio/process-templates shows the exact set-up.",
        )),
    }
}

/// Parses a call's body.
pub fn parse(body: &[u8]) -> Result<Call, Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        problem(
            "body",
            format!("The body is not JSON ({e})"),
            "In the Call web service element, set the request's content type to JSON and send \
             the body parameters of GET /v1/creatio/process-templates.",
        )
    })?;
    let Value::Object(map) = &value else {
        return Err(problem(
            "body",
            "The body is not a JSON object".into(),
            "Send an object such as {\"event_type\": \"new_activity\", \"caseId\": \"<case id>\"}.",
        ));
    };
    let fields: HashMap<String, &Value> = map.iter().map(|(k, v)| (normalise_key(k), v)).collect();
    let event_type = ["eventtype", "event"]
        .iter()
        .find_map(|k| fields.get(*k))
        .and_then(|v| text_of(v))
        .map(|t| t.to_lowercase().replace(['-', ' '], "_"))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            problem(
                "event_type",
                "The body has no event_type".into(),
                "Add the body parameter event_type with the constant value new_activity (agent \
                 reply process) or case_status_changed (closure process).",
            )
        })?;
    if !EVENT_TYPES.contains(&event_type.as_str()) {
        return Err(problem(
            "event_type",
            format!("event_type {event_type:?} is not one casebridge knows"),
            "Use new_activity, case_closed, case_resolved or case_status_changed.",
        ));
    }
    let case_id = guid(&fields, &["caseid", "case"], "caseId")?.ok_or_else(|| {
        problem(
            "caseId",
            "The body has no caseId".into(),
            "Add the body parameter caseId, set to the Id of the case (for an activity: its \
             Case column's Id).",
        )
    })?;
    let kind = if event_type == "new_activity" {
        Kind::NewActivity {
            activity_id: guid(&fields, &["activityid", "activity"], "activityId")?,
        }
    } else {
        Kind::Closure {
            status_id: guid(&fields, &["statusid", "casestatusid"], "statusId")?,
        }
    };
    Ok(Call {
        event_type,
        case_id,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_example_is_a_call_parse_takes() {
        use utoipa::PartialSchema;
        let example = serde_json::to_value(ProcessCall::schema()).unwrap()["example"].clone();
        let call = parse(example.to_string().as_bytes()).expect("the example parses");
        assert_eq!(call.event_type, "new_activity");
    }

    const CASE: &str = "0b6a4c3e-2f1d-4e5a-9b8c-7d6e5f4a3b2c";

    fn parse_json(v: Value) -> Result<Call, Problem> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn the_minimal_documented_body_parses() {
        let call = parse_json(json!({"event_type": "new_activity", "caseId": CASE})).unwrap();
        assert_eq!(call.case_id.to_string(), CASE);
        assert_eq!(call.kind, Kind::NewActivity { activity_id: None });
    }

    #[test]
    fn key_spelling_and_unknown_keys_are_tolerated() {
        for key in ["caseId", "CaseId", "case_id", "CASE-ID", "case"] {
            let call = parse_json(
                json!({"EventType": "New-Activity", key: format!("{{{CASE}}}"),
                "ActivityId": CASE, "whatever": [1, 2]}),
            )
            .unwrap_or_else(|p| panic!("{key}: {p:?}"));
            assert_eq!(call.case_id.to_string(), CASE, "{key}");
            assert_eq!(call.event_type, "new_activity");
        }
        let call = parse_json(json!({"event_type": "case_status_changed", "case_id": CASE,
            "statusId": "ae7f411e-f46b-1410-009b-0050ba5d6c38"}))
        .unwrap();
        assert!(matches!(call.kind, Kind::Closure { status_id: Some(_) }));
        // An empty optional GUID is absent, not an error.
        let call = parse_json(json!({"event_type": "case_closed", "caseId": CASE,
            "statusId": "00000000-0000-0000-0000-000000000000"}))
        .unwrap();
        assert_eq!(call.kind, Kind::Closure { status_id: None });
    }

    #[test]
    fn placeholders_and_non_guids_name_the_parameter_to_fix() {
        let p =
            parse_json(json!({"event_type": "new_activity", "caseId": "[#Case.Id#]"})).unwrap_err();
        assert_eq!(p.field, "caseId");
        assert!(p.message.contains("placeholder"), "{p:?}");
        assert!(p.hint.contains("Call web service"), "{p:?}");
        let p = parse_json(json!({"event_type": "new_activity", "caseId": CASE,
            "activityId": "[#Activity.Id#]"}))
        .unwrap_err();
        assert_eq!(p.field, "activityId");
        let p =
            parse_json(json!({"event_type": "new_activity", "caseId": "SR00000123"})).unwrap_err();
        assert!(p.message.contains("not a GUID"), "{p:?}");
    }

    #[test]
    fn missing_or_unknown_event_types_and_bad_bodies_are_refused() {
        assert_eq!(
            parse_json(json!({"caseId": CASE})).unwrap_err().field,
            "event_type"
        );
        let p = parse_json(json!({"event_type": "case_deleted", "caseId": CASE})).unwrap_err();
        assert!(p.hint.contains("case_status_changed"));
        assert_eq!(
            parse_json(json!({"event_type": "new_activity"}))
                .unwrap_err()
                .field,
            "caseId"
        );
        assert_eq!(parse(b"caseId=1").unwrap_err().field, "body");
        assert_eq!(parse_json(json!([1])).unwrap_err().field, "body");
    }
}
