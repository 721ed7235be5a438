//! Business processes that "Call web service" (reference §4.2): a signal on
//! *Activity added* (optionally only activities of one type, or only those on
//! a case) or on *Case status changed* (optionally only to one status) POSTs a
//! JSON body built from a template to a URL. As in Creatio the call runs after
//! the triggering save, with a 5 s response timeout and no retries unless
//! configured (then with the designer's `2^i` s backoff). Every call is kept
//! in a log that tests read through the operator API.
//!
//! Templates are JSON whose strings may contain `[#Activity.<Column>#]` and
//! `[#Case.<Column>#]` placeholders (for an activity, `Case` is its case). A
//! placeholder that names nothing is sent as written, which is what a
//! misconfigured process parameter looks like to the receiver.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::schema::EMPTY_GUID;
use crate::store::{format_datetime, Record, Store};
use crate::Shared;

/// What starts a process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// An Activity record was added.
    ActivityAdded {
        /// Only activities of this `TypeId`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        type_id: Option<Uuid>,
        /// Only activities connected to a case (`CaseId` set).
        #[serde(default)]
        only_case_activities: bool,
    },
    /// A Case's `StatusId` changed.
    CaseStatusChanged {
        /// Only changes to this status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status_id: Option<Uuid>,
    },
}

/// A process definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessDef {
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    #[serde(default)]
    pub name: String,
    pub trigger: Trigger,
    pub url: String,
    /// Extra request headers (the "Header" request parameters).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body template.
    pub body: Value,
    /// "Response timeout, ms" (Creatio's default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// "Retries on call failure" (Creatio's default 0; the emulator allows at most [`MAX_RETRIES`]).
    #[serde(default)]
    pub retries: u32,
}

/// The most retries a process may be given: with the 64 s backoff cap this
/// already spans minutes, and an unbounded value would never finish.
pub const MAX_RETRIES: u32 = 10;

fn default_timeout_ms() -> u64 {
    5000
}

/// One HTTP attempt of a process call.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub at: String,
    pub status: Option<u16>,
    pub response_body: String,
    pub error: Option<String>,
}

/// A process run: what it sent and what came back.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCall {
    pub process_id: Uuid,
    pub process_name: String,
    pub url: String,
    pub request_body: Value,
    /// The element's `Success` output: the last status was < 400.
    pub success: bool,
    pub attempts: Vec<Attempt>,
}

/// A save that may start processes, captured under the store lock.
#[derive(Debug, Clone)]
pub enum ProcessEvent {
    ActivityAdded {
        activity: Record,
        case: Option<Record>,
    },
    CaseStatusChanged {
        case: Record,
    },
}

impl ProcessEvent {
    pub fn activity_added(activity: &Record, store: &Store) -> Self {
        let case = activity
            .get("CaseId")
            .and_then(Value::as_str)
            .filter(|id| *id != EMPTY_GUID)
            .and_then(|id| store.get_str("Case", id))
            .cloned();
        ProcessEvent::ActivityAdded {
            activity: activity.clone(),
            case,
        }
    }

    fn starts(&self, trigger: &Trigger) -> bool {
        let field = |r: &Record, f: &str| {
            r.get(f)
                .and_then(Value::as_str)
                .and_then(|s| Uuid::try_parse(s).ok())
        };
        match (self, trigger) {
            (
                ProcessEvent::ActivityAdded { activity, .. },
                Trigger::ActivityAdded {
                    type_id,
                    only_case_activities,
                },
            ) => {
                let has_case = field(activity, "CaseId").is_some_and(|c| !c.is_nil());
                type_id.is_none_or(|t| field(activity, "TypeId") == Some(t))
                    && (!only_case_activities || has_case)
            }
            (
                ProcessEvent::CaseStatusChanged { case },
                Trigger::CaseStatusChanged { status_id },
            ) => status_id.is_none_or(|s| field(case, "StatusId") == Some(s)),
            _ => false,
        }
    }

    fn records(&self) -> (Option<&Record>, Option<&Record>) {
        match self {
            ProcessEvent::ActivityAdded { activity, case } => (Some(activity), case.as_ref()),
            ProcessEvent::CaseStatusChanged { case } => (None, Some(case)),
        }
    }
}

fn substitute(text: &str, activity: Option<&Record>, case: Option<&Record>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[#") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("#]") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let value = name.split_once('.').and_then(|(entity, column)| {
            let record = match entity {
                "Activity" => activity,
                "Case" => case,
                _ => None,
            }?;
            match record.get(column)? {
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        });
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Builds the request body from a template.
pub fn render(template: &Value, activity: Option<&Record>, case: Option<&Record>) -> Value {
    match template {
        Value::String(s) => Value::String(substitute(s, activity, case)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| render(v, activity, case)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render(v, activity, case)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Starts every process the events trigger; each call runs in its own task.
pub fn fire(shared: &Arc<Shared>, events: Vec<ProcessEvent>) {
    if events.is_empty() {
        return;
    }
    let defs = shared.processes.lock().expect("process lock").clone();
    for event in events {
        for def in defs.iter().filter(|d| event.starts(&d.trigger)) {
            let (activity, case) = event.records();
            let body = render(&def.body, activity, case);
            let shared = Arc::clone(shared);
            let def = def.clone();
            tokio::spawn(async move { call(shared, def, body).await });
        }
    }
}

async fn call(shared: Arc<Shared>, def: ProcessDef, body: Value) {
    let mut attempts = Vec::new();
    let mut success = false;
    for attempt in 0..=def.retries {
        if attempt > 0 {
            // The designer's backoff: 1, 2, 4, … seconds, capped at 64.
            let backoff = 2u64.saturating_pow(attempt - 1).min(64);
            tokio::time::sleep(Duration::from_secs(backoff)).await;
        }
        let mut request = shared
            .http
            .post(&def.url)
            .timeout(Duration::from_millis(def.timeout_ms))
            .json(&body);
        for (k, v) in &def.headers {
            request = request.header(k, v);
        }
        let at = format_datetime(Utc::now());
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let response_body = response.text().await.unwrap_or_default();
                attempts.push(Attempt {
                    at,
                    status: Some(status),
                    response_body,
                    error: None,
                });
                success = status < 400;
            }
            Err(e) => attempts.push(Attempt {
                at,
                status: None,
                response_body: String::new(),
                error: Some(e.to_string()),
            }),
        }
        if success {
            break;
        }
    }
    tracing::debug!(process = %def.name, url = %def.url, success, "business process called its web service");
    shared
        .process_calls
        .lock()
        .expect("call log lock")
        .push(ProcessCall {
            process_id: def.id,
            process_name: def.name,
            url: def.url,
            request_body: body,
            success,
            attempts,
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_substituted_and_unknown_ones_kept() {
        let mut case = Record::new();
        case.insert("Id".into(), json!("c1"));
        case.insert("StatusId".into(), json!("s1"));
        let mut activity = Record::new();
        activity.insert("Id".into(), json!("a1"));
        let template = json!({"event_type": "new_activity", "caseId": "[#Case.Id#]",
            "activityId": "[#Activity.Id#]", "status": "[#Case.StatusId#]", "bad": "[#Case.Nope#]",
            "nested": ["x [#Activity.Id#] y"]});
        let body = render(&template, Some(&activity), Some(&case));
        assert_eq!(
            body,
            json!({"event_type": "new_activity", "caseId": "c1", "activityId": "a1",
            "status": "s1", "bad": "[#Case.Nope#]", "nested": ["x a1 y"]})
        );
    }
}
