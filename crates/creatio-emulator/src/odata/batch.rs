//! JSON `$batch` (reference §2.6): at most 100 sub-requests; processing stops
//! at the first failure unless `Prefer: continue-on-error`; the response
//! carries a server-generated GUID in place of each group label.
//!
//! An `atomicityGroup` is **not a transaction** by default: ASP.NET OData's
//! `ChangeSetRequestItem` runs a change set's requests in order and, at the
//! first failure, answers the group with **only the failed response**; the
//! requests before it stay committed (no rollback), those after it are not
//! run (reference/creatio-evidence.md §3, ASPNET-ODATA
//! `src/Microsoft.AspNetCore.OData/Batch/ChangeSetRequestItem.cs`). Whether
//! Creatio replaces that handler with a transaction is unknown (evidence
//! §7), so `PUT /__emulator/settings {"batch_groups": "transaction"}` makes
//! groups all-or-nothing (the others of a failed group rolled back and
//! answered 424 Failed Dependency).

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{execute, Body, OdataError, OdataRequest, OdataResponse};
use crate::identity::ClientSnapshot;
use crate::processes::ProcessEvent;
use crate::schema;
use crate::store::Record;
use crate::Shared;

/// Creatio's limit on sub-requests per batch.
pub const MAX_BATCH_REQUESTS: usize = 100;

#[derive(Deserialize)]
struct BatchBody {
    requests: Vec<SubRequest>,
}

#[derive(Deserialize)]
struct SubRequest {
    #[serde(default)]
    id: Option<Value>,
    method: String,
    url: String,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default, rename = "atomicityGroup")]
    atomicity_group: Option<String>,
}

/// A write of an atomicity group that succeeded, kept until the group is
/// known to have succeeded as a whole.
struct Committed {
    /// Where its answer sits in the response list (replaced by 424 on rollback).
    response_index: usize,
    undo: Option<Undo>,
    events: Vec<ProcessEvent>,
}

/// How to undo one successful write inside an atomicity group.
enum Undo {
    Remove(&'static str, Uuid),
    Restore(&'static str, Record),
}

/// Strips an absolute or rooted URL down to the service-relative path and query.
fn relative(url: &str) -> (&str, &str) {
    let path = match url.find("/odata/") {
        Some(i) => &url[i + "/odata/".len()..],
        None => url.trim_start_matches('/'),
    };
    path.split_once('?').unwrap_or((path, ""))
}

/// The entity and key a sub-request addresses, for building its undo entry.
fn target(path: &str) -> Option<(&'static str, Option<Uuid>)> {
    let (head, rest) = path
        .split_once('/')
        .map_or((path, None), |(h, r)| (h, Some(r)));
    let (name, key) = match head.split_once('(') {
        Some((n, k)) => (n, k.strip_suffix(')')),
        None => (head, rest),
    };
    let schema = schema::find(name)?;
    Some((schema.name, key.and_then(|k| Uuid::try_parse(k).ok())))
}

fn response_json(id: &Value, group: Option<&String>, r: &OdataResponse) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), id.clone());
    if let Some(g) = group {
        out.insert("atomicityGroup".into(), Value::String(g.clone()));
    }
    out.insert("status".into(), r.status.as_u16().into());
    let mut headers = Map::new();
    for (k, v) in &r.headers {
        headers.insert((*k).to_string(), Value::String(v.clone()));
    }
    match &r.body {
        Body::Json(v) => {
            headers.insert(
                "content-type".into(),
                "application/json; odata.metadata=minimal".into(),
            );
            out.insert("headers".into(), Value::Object(headers));
            out.insert("body".into(), v.clone());
        }
        Body::Text(ct, text) => {
            headers.insert("content-type".into(), (*ct).into());
            out.insert("headers".into(), Value::Object(headers));
            out.insert("body".into(), Value::String(text.clone()));
        }
        Body::Empty => {
            out.insert("headers".into(), Value::Object(headers));
        }
    }
    Value::Object(out)
}

fn failed_dependency(id: &Value, group: Option<&String>) -> Value {
    let e = OdataError::new(
        StatusCode::FAILED_DEPENDENCY,
        "Another request in the same atomicity group failed; this change was rolled back.",
    );
    response_json(id, group, &OdataResponse::error(&e))
}

/// Runs a JSON batch. Returns the response body and the process events of
/// the writes that stayed committed.
pub fn execute_batch(
    shared: &Shared,
    client: &ClientSnapshot,
    body: &[u8],
    continue_on_error: bool,
) -> Result<(Value, Vec<ProcessEvent>), OdataError> {
    let batch: BatchBody = serde_json::from_slice(body).map_err(|e| {
        OdataError::bad_request(format!(
            "The batch body is not a JSON batch ({{\"requests\": [...]}}): {e}."
        ))
    })?;
    if batch.requests.len() > MAX_BATCH_REQUESTS {
        return Err(OdataError::bad_request(format!(
            "The current batch message contains too many parts. Only batch messages with a maximum \
             of '{MAX_BATCH_REQUESTS}' query operations and change sets are allowed; this one has {}.",
            batch.requests.len()
        )));
    }
    shared.stats.record_batch(batch.requests.len());
    let mut run = BatchRun {
        transactional: shared.batch_groups_transactional(),
        ..BatchRun::default()
    };
    for (index, sub) in batch.requests.into_iter().enumerate() {
        let id = sub
            .id
            .clone()
            .unwrap_or_else(|| Value::String(index.to_string()));
        let label = sub.atomicity_group.clone();
        let group_id = label.as_ref().map(|label| {
            run.group_ids
                .entry(label.clone())
                .or_insert_with(|| Uuid::new_v4().to_string())
                .clone()
        });
        if label
            .as_ref()
            .is_some_and(|g| run.failed_groups.contains(g))
        {
            // Not run. As a transaction the group answers it 424; as
            // ASP.NET's change set, not at all.
            if run.transactional {
                run.responses
                    .push(failed_dependency(&id, group_id.as_ref()));
            }
            continue;
        }
        let (response, undo, sub_events) = run_one(shared, client, sub);
        let ok = response.status.as_u16() < 400;
        run.responses
            .push(response_json(&id, group_id.as_ref(), &response));
        match (ok, label) {
            (true, Some(label)) => run.committed(label, undo, sub_events),
            (true, None) => run.events.extend(sub_events),
            (false, label) => {
                if let Some(label) = label {
                    run.fail_group(shared, label, group_id.as_ref());
                }
                if !continue_on_error {
                    break;
                }
            }
        }
    }
    let BatchRun {
        group_log,
        mut responses,
        mut events,
        ..
    } = run;
    events.extend(group_log.into_values().flatten().flat_map(|c| c.events));
    responses.retain(|r| !r.is_null());
    Ok((json!({ "responses": responses }), events))
}

/// A batch as it runs.
#[derive(Default)]
struct BatchRun {
    /// Whether an atomicity group rolls back as a transaction (Creatio
    /// 8.x) or keeps its earlier writes (ASP.NET's change set).
    transactional: bool,
    group_ids: HashMap<String, String>,
    failed_groups: Vec<String>,
    /// Per group label: its writes that succeeded so far.
    group_log: HashMap<String, Vec<Committed>>,
    responses: Vec<Value>,
    events: Vec<ProcessEvent>,
}

impl BatchRun {
    /// The last response's write succeeded inside group `label`.
    fn committed(&mut self, label: String, undo: Option<Undo>, events: Vec<ProcessEvent>) {
        self.group_log.entry(label).or_default().push(Committed {
            response_index: self.responses.len() - 1,
            undo,
            events,
        });
    }

    /// A request of group `label` failed: its group fails.
    fn fail_group(&mut self, shared: &Shared, label: String, group_id: Option<&String>) {
        if !self.transactional {
            // The earlier requests stay committed (their events fire) and
            // go unanswered: the group's answer is the failed response.
            for committed in self.group_log.remove(&label).unwrap_or_default() {
                self.responses[committed.response_index] = Value::Null;
                self.events.extend(committed.events);
            }
        } else {
            let mut store = shared.store.write().expect("store lock");
            for committed in self
                .group_log
                .remove(&label)
                .unwrap_or_default()
                .into_iter()
                .rev()
            {
                match committed.undo {
                    Some(Undo::Remove(entity, key)) => store.remove(entity, &key),
                    Some(Undo::Restore(entity, record)) => store.restore(entity, record),
                    None => {}
                }
                let at = committed.response_index;
                let rid = self.responses[at]["id"].clone();
                self.responses[at] = failed_dependency(&rid, group_id);
            }
        }
        self.failed_groups.push(label);
    }
}

/// Runs one sub-request as if sent alone; returns its response, how to
/// undo its write (for a rollback), and its process events.
fn run_one(
    shared: &Shared,
    client: &ClientSnapshot,
    sub: SubRequest,
) -> (OdataResponse, Option<Undo>, Vec<ProcessEvent>) {
    let (path, query) = relative(&sub.url);
    let method = match Method::from_bytes(sub.method.to_ascii_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => Method::OPTIONS,
    };
    let before: Option<(&'static str, Record)> = match (&method, target(path)) {
        (&Method::PATCH | &Method::DELETE, Some((entity, Some(key)))) => shared
            .store
            .read()
            .expect("store lock")
            .get(entity, &key)
            .cloned()
            .map(|r| (entity, r)),
        _ => None,
    };
    let minimal = sub
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("prefer") && v.contains("return=minimal"));
    let (response, events) = if path.starts_with("$batch") {
        let e = OdataError::bad_request("A $batch request cannot contain another $batch request.");
        (OdataResponse::error(&e), Vec::new())
    } else {
        execute(
            shared,
            client,
            OdataRequest {
                method: method.clone(),
                path,
                query,
                body: sub.body,
                return_minimal: minimal,
            },
        )
    };
    let undo = match (&method, before) {
        (&Method::POST, _) => match (&response.body, target(path)) {
            (Body::Json(b), Some((entity, _))) => b
                .get("Id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::try_parse(s).ok())
                .map(|k| Undo::Remove(entity, k)),
            _ => None,
        },
        (_, Some((entity, record))) => Some(Undo::Restore(entity, record)),
        _ => None,
    };
    (response, undo, events)
}
