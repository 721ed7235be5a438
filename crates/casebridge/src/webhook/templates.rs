//! The two business processes an admin builds in Creatio (agent replies,
//! closures), with the org's webhook URL filled in, ready to paste: what
//! `GET /v1/creatio/process-templates` answers.

use serde::Serialize;
use serde_json::{json, Value};

/// The process set-up for an org.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProcessTemplates {
    pub webhook_url: String,
    /// How to build the processes, step by step.
    pub notes: Vec<&'static str>,
    pub processes: Vec<Process>,
}

/// One business process.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Process {
    /// `agent_reply` or `closure`.
    pub key: &'static str,
    pub name: &'static str,
    pub signal: Signal,
    pub call_web_service: CallWebService,
}

/// What starts the process.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Signal {
    pub object: &'static str,
    pub event: &'static str,
    pub filter: Vec<String>,
    pub trigger: Trigger,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Trigger {
    /// `activity_added` or `case_status_changed`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_case_activities: Option<bool>,
}

/// The process's "Call web service" element.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CallWebService {
    pub method: &'static str,
    pub url: String,
    pub content_type: &'static str,
    pub response_timeout_ms: u32,
    pub retries_on_failure: u32,
    /// The body with Creatio's placeholders, as Creatio sends it.
    #[schema(value_type = Object)]
    pub body: Value,
    pub body_parameters: Vec<BodyParameter>,
}

/// A body parameter as Creatio's web service set-up names it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BodyParameter {
    pub name: &'static str,
    pub value: &'static str,
    /// Where its value comes from in the process.
    pub source: &'static str,
    pub required: bool,
}

/// The process set-up for `url`; `technical_user` is the contact Id of the
/// integration's user, when Test & Save learned it.
pub fn templates(url: &str, technical_user: Option<&str>) -> ProcessTemplates {
    // Required, not a nicety: without it every activity casebridge writes
    // (one per message) calls back, and each call costs a read of the
    // case's activities to find nothing new (485 writes cost 228 extra
    // reads in the evaluation behind issue 23).
    let why = "required: without it each activity casebridge writes calls this process back, and every call costs a read of the case's activities that finds nothing";
    let not_ours = match technical_user {
        Some(id) => format!("Created by ≠ the integration user (contact Id {id}); {why}"),
        None => format!(
            "Created by ≠ the integration user (the user the OAuth app runs as; Test & Save found no contact for it, so pick it by name); {why}"
        ),
    };
    let call = |body: Value, body_parameters: Vec<BodyParameter>| CallWebService {
        method: "POST",
        url: url.to_string(),
        content_type: "application/json",
        response_timeout_ms: 5000,
        retries_on_failure: 3,
        body,
        body_parameters,
    };
    let parameter = |name, value, source, required| BodyParameter {
        name,
        value,
        source,
        required,
    };
    ProcessTemplates {
        webhook_url: url.to_string(),
        notes: vec![
            "Create each process in Creatio: System designer → Process library → Add process.",
            "Start it with a Signal (object signal) as below, then add a Call web service element with the method below.",
            "In Creatio's web service set-up, add each body parameter with its request code (the name) and map it to the value shown.",
            "casebridge answers 200 once the call is safely queued; 'Retries on call failure' covers casebridge being briefly unreachable.",
            "Calls for cases casebridge did not create are answered 200 and ignored, so broad filters are safe.",
        ],
        processes: vec![
            Process {
                key: "agent_reply",
                name: "casebridge: send agent replies to the customer",
                signal: Signal {
                    object: "Activity",
                    event: "Record added",
                    filter: vec!["Case is filled in".into(), not_ours],
                    trigger: Trigger {
                        kind: "activity_added",
                        only_case_activities: Some(true),
                    },
                },
                call_web_service: call(
                    json!({"event_type": "new_activity", "caseId": "[#Case.Id#]", "activityId": "[#Activity.Id#]"}),
                    vec![
                        parameter("event_type", "new_activity", "constant", true),
                        parameter("caseId", "[#Case.Id#]", "the added activity's Case → Id", true),
                        parameter("activityId", "[#Activity.Id#]", "the added activity's Id", false),
                    ],
                ),
            },
            Process {
                key: "closure",
                name: "casebridge: tell the customer the case is closed",
                signal: Signal {
                    object: "Case",
                    event: "Record modified (Status changed)",
                    filter: vec!["Status changed; casebridge reads the new status and acts only on final or resolved ones, so no status filter is needed".into()],
                    trigger: Trigger {
                        kind: "case_status_changed",
                        only_case_activities: None,
                    },
                },
                call_web_service: call(
                    json!({"event_type": "case_status_changed", "caseId": "[#Case.Id#]", "statusId": "[#Case.StatusId#]"}),
                    vec![
                        parameter("event_type", "case_status_changed", "constant", true),
                        parameter("caseId", "[#Case.Id#]", "the modified case's Id", true),
                        parameter("statusId", "[#Case.StatusId#]", "the modified case's Status → Id", false),
                    ],
                ),
            },
        ],
    }
}
