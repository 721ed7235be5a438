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

    let transactional = shared.batch_groups_transactional();
    let mut group_ids: HashMap<String, String> = HashMap::new();
    let mut failed_groups: Vec<String> = Vec::new();
    // Per group label: its writes that succeeded so far.
    let mut group_log: HashMap<String, Vec<Committed>> = HashMap::new();
    let mut responses: Vec<Value> = Vec::new();
    let mut events: Vec<ProcessEvent> = Vec::new();

    for (index, sub) in batch.requests.into_iter().enumerate() {
        let id = sub
            .id
            .clone()
            .unwrap_or_else(|| Value::String(index.to_string()));
        let group_label = sub.atomicity_group.clone();
        let group_id = group_label.as_ref().map(|label| {
            group_ids
                .entry(label.clone())
                .or_insert_with(|| Uuid::new_v4().to_string())
                .clone()
        });
        if group_label
            .as_ref()
            .is_some_and(|g| failed_groups.contains(g))
        {
            // Not run. As a transaction the group answers it 424; as
            // ASP.NET's change set, not at all.
            if transactional {
                responses.push(failed_dependency(&id, group_id.as_ref()));
            }
            continue;
        }
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
        let (response, sub_events) = if path.starts_with("$batch") {
            let e =
                OdataError::bad_request("A $batch request cannot contain another $batch request.");
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
        let ok = response.status.as_u16() < 400;
        responses.push(response_json(&id, group_id.as_ref(), &response));
        if ok {
            match &group_label {
                Some(label) => {
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
                    group_log.entry(label.clone()).or_default().push(Committed {
                        response_index: responses.len() - 1,
                        undo,
                        events: sub_events,
                    });
                }
                None => events.extend(sub_events),
            }
            continue;
        }
        if let (Some(label), false) = (&group_label, transactional) {
            // The earlier requests stay committed (their events fire) and
            // go unanswered: the group's answer is the failed response.
            for committed in group_log.remove(label).unwrap_or_default() {
                responses[committed.response_index] = Value::Null;
                events.extend(committed.events);
            }
            failed_groups.push(label.clone());
        } else if let Some(label) = group_label {
            let mut store = shared.store.write().expect("store lock");
            for committed in group_log
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
                let rid = responses[at]["id"].clone();
                responses[at] = failed_dependency(&rid, group_id.as_ref());
            }
            failed_groups.push(label);
        }
        if !continue_on_error {
            break;
        }
    }
    events.extend(group_log.into_values().flatten().flat_map(|c| c.events));
    responses.retain(|r| !r.is_null());
    Ok((json!({ "responses": responses }), events))
}
