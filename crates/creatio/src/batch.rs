//! JSON `$batch` (reference §2.6): many writes in one HTTP request.
//!
//! Creatio takes at most 100 sub-requests per batch; [`Client::batch`]
//! splits larger sets and sends the chunks in order. Each operation gets its
//! own result, in the caller's order, however the server ordered or labelled
//! its answers. By default the batch carries `Prefer: continue-on-error`, so
//! one bad record does not hold back the others; without it, the operations
//! after the first failure are [`Error::NotExecuted`]. A create with a
//! caller-chosen `Id` that failed is read back, as for a single create, and
//! reported as [`Error::AlreadyExists`] when the record is there.

use std::collections::{BTreeMap, HashMap};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::client::{chosen_id, may_have_been_a_duplicate, Client};
use crate::error::{from_status, Error, Result};
use crate::models::Entity;
use crate::query::{col, Query};

/// Creatio's limit on sub-requests per `$batch`.
pub const MAX_BATCH_OPERATIONS: usize = 100;

/// Why a group of `n` operations cannot be sent, when it is too big for
/// one `$batch` (an atomic group cannot be split).
pub fn too_big(n: usize) -> Option<Error> {
    (n > MAX_BATCH_OPERATIONS).then(|| {
        Error::InvalidRequest(format!(
            "an atomic group of {n} operations does not fit one $batch (at most {MAX_BATCH_OPERATIONS})"
        ))
    })
}

/// Packs groups of `sizes` operations whole, in order, into requests of
/// at most [`MAX_BATCH_OPERATIONS`]: each request's group indexes. A group
/// that is [`too_big`] is in none; the caller refuses it unsent.
pub fn pack(sizes: impl IntoIterator<Item = usize>) -> Vec<Vec<usize>> {
    let mut requests: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut ops = 0;
    for (g, n) in sizes.into_iter().enumerate() {
        if too_big(n).is_some() {
            continue;
        }
        if ops + n > MAX_BATCH_OPERATIONS {
            requests.push(std::mem::take(&mut current));
            ops = 0;
        }
        current.push(g);
        ops += n;
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

/// One write inside a `$batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOp {
    method: Method,
    entity_set: String,
    id: Option<Uuid>,
    body: Option<Value>,
    /// The `atomicityGroup` label: operations sharing one succeed or fail
    /// together.
    group: Option<String>,
}

impl BatchOp {
    /// Creates `record`.
    pub fn create<E: Entity>(record: &E) -> Result<BatchOp> {
        let body = serde_json::to_value(record).map_err(|e| {
            Error::InvalidRequest(format!("cannot encode a {} record: {e}", E::SET))
        })?;
        Ok(BatchOp::create_json(E::SET, body))
    }

    /// Creates a record of any entity set from JSON.
    pub fn create_json(entity_set: impl Into<String>, body: Value) -> BatchOp {
        BatchOp {
            method: Method::POST,
            entity_set: entity_set.into(),
            id: None,
            body: Some(body),
            group: None,
        }
    }

    /// Changes the fields set in `patch`.
    pub fn update<E: Entity>(id: Uuid, patch: &E) -> Result<BatchOp> {
        let body = serde_json::to_value(patch).map_err(|e| {
            Error::InvalidRequest(format!("cannot encode a {} record: {e}", E::SET))
        })?;
        Ok(BatchOp::update_json(E::SET, id, body))
    }

    /// Changes a record of any entity set.
    pub fn update_json(entity_set: impl Into<String>, id: Uuid, body: Value) -> BatchOp {
        BatchOp {
            method: Method::PATCH,
            entity_set: entity_set.into(),
            id: Some(id),
            body: Some(body),
            group: None,
        }
    }

    pub fn delete<E: Entity>(id: Uuid) -> BatchOp {
        BatchOp::delete_in(E::SET, id)
    }

    pub fn delete_in(entity_set: impl Into<String>, id: Uuid) -> BatchOp {
        BatchOp {
            method: Method::DELETE,
            entity_set: entity_set.into(),
            id: Some(id),
            body: None,
            group: None,
        }
    }

    pub fn entity_set(&self) -> &str {
        &self.entity_set
    }

    fn url(&self) -> String {
        match self.id {
            Some(id) => format!("{}({id})", self.entity_set),
            None => self.entity_set.clone(),
        }
    }

    fn to_json(&self, index: usize) -> Value {
        let mut request = json!({
            "id": index.to_string(),
            "method": self.method.as_str(),
            "url": self.url(),
            "headers": {"Accept": "application/json"},
        });
        if let Some(body) = &self.body {
            request["headers"]["Content-Type"] = "application/json; charset=utf-8".into();
            request["body"] = body.clone();
        }
        if let Some(group) = &self.group {
            request["atomicityGroup"] = group.as_str().into();
        }
        request
    }

    /// The caller-chosen `Id` of a create.
    fn created_id(&self) -> Option<Uuid> {
        (self.method == Method::POST)
            .then(|| self.body.as_ref().and_then(chosen_id))
            .flatten()
    }
}

/// What one operation of a batch came to: the stored record for a create
/// (when the server returned one), nothing for an update or delete.
pub type BatchResult = Result<Option<Value>>;

#[derive(Deserialize)]
struct BatchResponse {
    responses: Vec<SubResponse>,
}

#[derive(Deserialize)]
struct SubResponse {
    id: Value,
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
}

impl Client {
    /// Runs groups of operations, each group all-or-nothing (one
    /// `atomicityGroup`), with `Prefer: continue-on-error` between groups, so
    /// one group's failure fails only that group. Groups are packed whole
    /// into requests of at most 100 operations, sent one after another;
    /// a group larger than that is refused without being sent. Returns the
    /// results group by group, operation by operation; in a failed group the
    /// operation that failed carries its error and the others
    /// [`Error::NotExecuted`] (the server rolled them back).
    pub async fn batch_groups(&self, groups: &[Vec<BatchOp>]) -> Vec<Vec<BatchResult>> {
        let mut results: Vec<Vec<BatchResult>> = groups
            .iter()
            .map(|ops| match too_big(ops.len()) {
                Some(e) => ops.iter().map(|_| Err(e.clone())).collect(),
                None => Vec::new(),
            })
            .collect();
        for members in pack(groups.iter().map(Vec::len)) {
            let request: Vec<BatchOp> = members
                .iter()
                .flat_map(|&g| {
                    groups[g].iter().map(move |op| BatchOp {
                        group: Some(format!("g{g}")),
                        ..op.clone()
                    })
                })
                .collect();
            if !request.is_empty() {
                self.send_groups(&request, &members, groups, &mut results)
                    .await;
            }
        }
        results
    }

    /// Sends one request of whole groups and deals its results out.
    async fn send_groups(
        &self,
        request: &[BatchOp],
        members: &[usize],
        groups: &[Vec<BatchOp>],
        results: &mut [Vec<BatchResult>],
    ) {
        let mut answers = self.batch_chunk(request, true).await.into_iter();
        for &g in members {
            results[g] = answers.by_ref().take(groups[g].len()).collect();
        }
    }

    /// Runs `ops` as JSON `$batch` requests with `Prefer: continue-on-error`
    /// and returns one result per operation, in order.
    pub async fn batch(&self, ops: &[BatchOp]) -> Vec<BatchResult> {
        self.batch_with(ops, true).await
    }

    /// Runs `ops` as JSON `$batch` requests. Without `continue_on_error` the
    /// server stops at the first failure and every later operation, in this
    /// chunk and the following ones, is [`Error::NotExecuted`].
    pub async fn batch_with(&self, ops: &[BatchOp], continue_on_error: bool) -> Vec<BatchResult> {
        let mut results: Vec<BatchResult> = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(MAX_BATCH_OPERATIONS) {
            let stopped = !continue_on_error && results.iter().any(|r| r.is_err());
            if stopped {
                results.extend(chunk.iter().map(|_| Err(Error::NotExecuted)));
                continue;
            }
            results.extend(self.batch_chunk(chunk, continue_on_error).await);
        }
        results
    }

    async fn batch_chunk(&self, ops: &[BatchOp], continue_on_error: bool) -> Vec<BatchResult> {
        if let Some(bad) = ops.iter().find(|op| !valid_set(&op.entity_set)) {
            let e = Error::InvalidRequest(format!(
                "'{}' is not an entity set name (letters, digits and '_')",
                bad.entity_set
            ));
            return ops.iter().map(|_| Err(e.clone())).collect();
        }
        let body = json!({
            "requests": ops.iter().enumerate().map(|(i, op)| op.to_json(i)).collect::<Vec<_>>()
        });
        let url = format!("{}/$batch", self.instance().odata_root());
        let prefer: &[(&str, &str)] = if continue_on_error {
            &[("Prefer", "continue-on-error")]
        } else {
            &[]
        };
        let answer = match self
            .send_with(Method::POST, &url, Some(&body), prefer)
            .await
        {
            Ok(a) => a,
            Err(e) => return ops.iter().map(|_| Err(e.clone())).collect(),
        };
        let parsed: BatchResponse = match serde_json::from_slice(&answer.body) {
            Ok(p) => p,
            Err(e) => {
                let e = Error::UnexpectedResponse {
                    status: answer.status,
                    detail: format!("a $batch answer this client cannot read ({e})"),
                };
                return ops.iter().map(|_| Err(e.clone())).collect();
            }
        };
        let mut by_index: HashMap<usize, SubResponse> = HashMap::new();
        for r in parsed.responses {
            let index = match &r.id {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.as_u64().map(|n| n as usize),
                _ => None,
            };
            if let Some(i) = index.filter(|i| *i < ops.len()) {
                by_index.insert(i, r);
            }
        }
        let mut results: Vec<BatchResult> = (0..ops.len())
            .map(|i| match by_index.remove(&i) {
                None => Err(Error::NotExecuted),
                Some(r) if (200..300).contains(&r.status) => Ok(r.body.filter(Value::is_object)),
                Some(r) => Err(sub_error(&r)),
            })
            .collect();
        self.confirm_duplicates(ops, &mut results).await;
        results
    }

    /// Reads back the failed creates that chose their `Id`, one query per
    /// entity set and chunk, and turns those found into `AlreadyExists`.
    async fn confirm_duplicates(&self, ops: &[BatchOp], results: &mut [BatchResult]) {
        let mut suspects: BTreeMap<&str, Vec<(usize, Uuid)>> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            if let (Some(id), Err(e)) = (op.created_id(), &results[i]) {
                if may_have_been_a_duplicate(e) && !matches!(e, Error::NotExecuted) {
                    suspects
                        .entry(op.entity_set.as_str())
                        .or_default()
                        .push((i, id));
                }
            }
        }
        for (set, items) in suspects {
            for chunk in items.chunks(15) {
                let q = Query::new()
                    .select(["Id"])
                    .filter(col("Id").is_in(chunk.iter().map(|(_, id)| *id)))
                    .top(chunk.len() as u32);
                let found = match self.list_page(set, &q).await {
                    Ok(values) => values,
                    Err(e) => {
                        tracing::debug!(entity_set = set, error = %e,
                            "Could not read back creates that failed in a $batch; keeping their errors.");
                        continue;
                    }
                };
                let found: Vec<Uuid> = found.iter().filter_map(chosen_id).collect();
                for (i, id) in chunk {
                    if found.contains(id) {
                        results[*i] = Err(Error::AlreadyExists {
                            entity_set: set.to_string(),
                            id: *id,
                        });
                    }
                }
            }
        }
    }
}

fn valid_set(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A failed sub-response classified like a top-level one.
fn sub_error(r: &SubResponse) -> Error {
    if r.status == 424 {
        // Failed Dependency: rolled back (or skipped) because another
        // operation of its atomicity group failed; not a failure of its own.
        return Error::NotExecuted;
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &r.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(k, v);
        }
    }
    let body = match &r.body {
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(v) => v.to_string().into_bytes(),
        None => Vec::new(),
    };
    from_status(r.status, &headers, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_packed_whole_into_requests_in_order() {
        assert_eq!(
            pack([60, 40, 1, 100, 101, 2]),
            vec![vec![0, 1], vec![2], vec![3], vec![5]],
            "a group of 101 is in no request"
        );
        assert!(too_big(101).is_some() && too_big(100).is_none());
        assert!(pack([]).is_empty());
    }

    #[test]
    fn sub_requests_use_service_relative_urls_and_bare_keys() {
        let id = Uuid::nil();
        let op = BatchOp::update_json("Case", id, json!({"Subject": "x"}));
        let j = op.to_json(3);
        assert_eq!(j["id"], "3");
        assert_eq!(j["method"], "PATCH");
        assert_eq!(j["url"], format!("Case({id})"));
        assert_eq!(j["body"]["Subject"], "x");
        let j = BatchOp::delete_in("Activity", id).to_json(0);
        assert!(j.get("body").is_none());
        assert_eq!(j["method"], "DELETE");
    }

    #[test]
    fn only_creates_with_a_chosen_id_are_read_back() {
        let id = Uuid::new_v4();
        assert_eq!(
            BatchOp::create_json("Case", json!({"Id": id.to_string()})).created_id(),
            Some(id)
        );
        assert_eq!(BatchOp::create_json("Case", json!({})).created_id(), None);
        assert_eq!(
            BatchOp::update_json("Case", id, json!({"Id": id.to_string()})).created_id(),
            None
        );
    }
}
