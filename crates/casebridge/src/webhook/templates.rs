//! The two business processes an admin builds in Creatio (agent replies,
//! closures), with the org's webhook URL filled in, ready to paste: what
//! `GET /v1/creatio/process-templates` answers.

use serde_json::{json, Value};

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
