//! The operator API under `/__emulator/` — not part of Creatio. It lets a
//! test, the demo or a person play the other side of the integration:
//! register and restrict OAuth clients, revoke tokens, change the token
//! lifetime, define business processes and read their call log, act as a
//! support agent (reply on a case, change its status), inject faults, read
//! request statistics and reset the tenant.
//!
//! | method, path | what |
//! |---|---|
//! | `GET/POST /clients`, `PATCH /clients/{id}` | list, add, change OAuth clients |
//! | `POST /tokens/revoke` | invalidate issued tokens (`{"client_id"}` optional) |
//! | `POST /record-grants` | `{"client_id", "record_id"}`: the client may read that record |
//! | `PUT /settings` | `{"token_lifetime_secs"?, "unknown_entity_set_status"?: 401 \| 404, "batch_groups"?: "partial" \| "transaction", "collation"?: "case_insensitive" \| "case_sensitive", "missing_object_right_status"?: 403 \| 500}` |
//! | `GET/POST/DELETE /processes`, `DELETE /processes/{id}` | business processes |
//! | `GET/DELETE /process-calls` | what the processes sent and got back |
//! | `POST /agent-reply` | an agent adds an activity to a case (fires processes) |
//! | `POST /case-status` | an agent changes a case's status (fires processes) |
//! | `GET/POST/DELETE /faults` | fault injection |
//! | `GET/PUT/DELETE /cost` | the cost model ([`crate::cost`]): time per request and per `$batch` operation, a per-client concurrency limit (queue, 429 or 503), slowdown past a knee; `GET` adds each client's load |
//! | `GET/DELETE /stats` | request counters |
//! | `POST /reset` | back to a freshly seeded tenant |

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::faults::FaultRequest;
use crate::identity::{ClientConfig, EntityRights};
use crate::processes::{self, ProcessDef, ProcessEvent};
use crate::schema::{self, defaults, EMPTY_GUID};
use crate::seed::demo;
use crate::store::Actor;
use crate::Shared;

type AppState = State<Arc<Shared>>;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route("/clients", get(list_clients).post(add_client))
        .route("/clients/{client_id}", patch(change_client))
        .route("/tokens/revoke", post(revoke_tokens))
        .route("/record-grants", post(grant_record))
        .route("/settings", put(change_settings))
        .route(
            "/processes",
            get(list_processes)
                .post(add_process)
                .delete(clear_processes),
        )
        .route("/processes/{id}", delete(remove_process))
        .route("/process-calls", get(list_calls).delete(clear_calls))
        .route("/agent-reply", post(agent_reply))
        .route("/case-status", post(case_status))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/cost", get(get_cost).put(put_cost).delete(clear_cost))
        .route("/stats", get(stats).delete(reset_stats))
        .route("/reset", post(reset))
}

/// The operator API's error: a status and a sentence, sent as `{"error": …}`.
pub struct Fail(StatusCode, String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

/// A refused store write: the operator sees the most specific message
/// (the database error inside, when there is one).
impl From<crate::error::OdataError> for Fail {
    fn from(e: crate::error::OdataError) -> Self {
        Fail(e.status, e.inner.unwrap_or(e.message))
    }
}

fn fail(status: StatusCode, message: impl Into<String>) -> Fail {
    Fail(status, message.into())
}

type Answer = Result<Response, Fail>;

/// Parses a JSON body, answering 400 with serde's explanation when it is wrong.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Fail> {
    serde_json::from_slice(body).map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        )
    })
}

async fn index() -> Json<Value> {
    Json(json!({
        "emulator": "casebridge Creatio emulator",
        "endpoints": ["/clients", "/tokens/revoke", "/settings", "/processes", "/process-calls",
            "/agent-reply", "/case-status", "/faults", "/cost", "/stats", "/reset"],
    }))
}

async fn list_clients(State(shared): AppState) -> Json<Value> {
    let identity = shared.identity.read().expect("identity lock");
    let mut clients: Vec<_> = identity.clients.values().collect();
    clients.sort_by(|a, b| a.config.client_id.cmp(&b.config.client_id));
    Json(json!(clients))
}

#[derive(Deserialize)]
struct NewClient {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    /// A technical user without a Contact (set at creation only: the
    /// Contact is made then). Evidence §6: `CreatedById` may be empty.
    #[serde(default)]
    has_contact: Option<bool>,
    #[serde(flatten)]
    rest: ClientChange,
}

/// Fields of a client that may be changed.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ClientChange {
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    client_credentials_grant: Option<bool>,
    #[serde(default)]
    can_use_odata: Option<bool>,
    #[serde(default)]
    rights: Option<HashMap<String, EntityRights>>,
    #[serde(default)]
    system_operations: Option<std::collections::BTreeSet<String>>,
}

impl ClientChange {
    fn apply(self, config: &mut ClientConfig) -> Result<(), String> {
        if let Some(rights) = &self.rights {
            if let Some(unknown) = rights.keys().find(|e| schema::find(e).is_none()) {
                return Err(format!(
                    "rights name an entity the emulator does not have: {unknown}"
                ));
            }
        }
        if let Some(ops) = &self.system_operations {
            if let Some(unknown) = ops
                .iter()
                .find(|o| !crate::identity::SYSTEM_OPERATIONS.contains(&o.as_str()))
            {
                return Err(format!(
                    "system_operations names {unknown:?}; the emulator knows {} (CanUseODataService is can_use_odata)",
                    crate::identity::SYSTEM_OPERATIONS.join(", ")
                ));
            }
        }
        if let Some(v) = self.system_operations {
            config.system_operations = v;
        }
        if let Some(v) = self.client_secret {
            config.client_secret = v;
        }
        if let Some(v) = self.name {
            config.name = v;
        }
        if let Some(v) = self.active {
            config.active = v;
        }
        if let Some(v) = self.client_credentials_grant {
            config.client_credentials_grant = v;
        }
        if let Some(v) = self.can_use_odata {
            config.can_use_odata = v;
        }
        if let Some(v) = self.rights {
            config.rights = v;
        }
        Ok(())
    }
}

async fn add_client(State(shared): AppState, body: axum::body::Bytes) -> Answer {
    let new: NewClient = parse(&body)?;
    let client_id = new
        .client_id
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string().to_uppercase());
    let secret = new
        .client_secret
        .or(new.rest.client_secret.clone())
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string());
    let mut config = ClientConfig::new(client_id, secret);
    if let Some(has_contact) = new.has_contact {
        config.has_contact = has_contact;
    }
    if let Err(e) = new.rest.apply(&mut config) {
        return Err(fail(StatusCode::BAD_REQUEST, e));
    }
    let client = shared.register_client(config);
    Ok((StatusCode::CREATED, Json(json!(client))).into_response())
}

async fn change_client(
    State(shared): AppState,
    Path(client_id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let change: ClientChange = parse(&body)?;
    let mut identity = shared.identity.write().expect("identity lock");
    let Some(client) = identity.clients.get_mut(&client_id) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no client with id {client_id}"),
        ));
    };
    if let Err(e) = change.apply(&mut client.config) {
        return Err(fail(StatusCode::BAD_REQUEST, e));
    }
    Ok(Json(json!(client)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordGrant {
    client_id: String,
    record_id: Uuid,
}

/// Lets a client read one record it did not create (Case, Activity and
/// Contact are administrated by records: see `odata::visible`).
async fn grant_record(State(shared): AppState, body: axum::body::Bytes) -> Answer {
    let grant: RecordGrant = parse(&body)?;
    if !shared
        .identity
        .read()
        .expect("identity lock")
        .clients
        .contains_key(&grant.client_id)
    {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no client with id {}", grant.client_id),
        ));
    }
    shared
        .store
        .write()
        .expect("store lock")
        .record_grants
        .insert((grant.client_id.clone(), grant.record_id));
    Ok((
        StatusCode::CREATED,
        Json(json!({"client_id": grant.client_id, "record_id": grant.record_id})),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
struct Revoke {
    #[serde(default)]
    client_id: Option<String>,
}

async fn revoke_tokens(State(shared): AppState, body: axum::body::Bytes) -> Answer {
    let revoke: Revoke = if body.is_empty() {
        Revoke::default()
    } else {
        parse(&body)?
    };
    let n = shared
        .identity
        .write()
        .expect("identity lock")
        .revoke(revoke.client_id.as_deref());
    Ok(Json(json!({"revoked": n})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    token_lifetime_secs: Option<u64>,
    #[serde(default)]
    unknown_entity_set_status: Option<u16>,
    #[serde(default)]
    batch_groups: Option<String>,
    #[serde(default)]
    collation: Option<String>,
    #[serde(default)]
    missing_object_right_status: Option<u16>,
}

async fn change_settings(State(shared): AppState, body: axum::body::Bytes) -> Answer {
    let settings: Settings = parse(&body)?;
    let max = crate::identity::MAX_TOKEN_LIFETIME.as_secs();
    if let Some(secs) = settings.token_lifetime_secs {
        if !(1..=max).contains(&secs) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("token_lifetime_secs must be between 1 and {max}"),
            ));
        }
    }
    if let Some(status) = settings.unknown_entity_set_status {
        if !matches!(status, 401 | 404) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "unknown_entity_set_status must be 401 (a live tenant's answer) or 404 (ASP.NET routing)",
            ));
        }
    }
    let transactional = match settings.batch_groups.as_deref() {
        None => None,
        Some("partial") => Some(false),
        Some("transaction") => Some(true),
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!(
                    "batch_groups {other:?} must be partial (ASP.NET's change sets) or transaction"
                ),
            ))
        }
    };
    let case_sensitive = match settings.collation.as_deref() {
        None => None,
        Some("case_insensitive") => Some(false),
        Some("case_sensitive") => Some(true),
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("collation {other:?} must be case_insensitive (SQL Server) or case_sensitive (PostgreSQL)"),
            ))
        }
    };
    if let Some(status) = settings.missing_object_right_status {
        if !matches!(status, 403 | 500) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "missing_object_right_status must be 403 or 500",
            ));
        }
    }
    // Everything is checked: now applied, all or nothing.
    if let Some(status) = settings.unknown_entity_set_status {
        shared.set_unknown_entity_set_status(status);
    }
    if let Some(t) = transactional {
        shared.set_batch_groups_transactional(t);
    }
    if let Some(status) = settings.missing_object_right_status {
        shared.set_missing_object_right_status(status);
    }
    if let Some(cs) = case_sensitive {
        shared.store.write().expect("store lock").case_sensitive = cs;
    }
    if let Some(secs) = settings.token_lifetime_secs {
        shared
            .token_lifetime_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(Json(json!({
        "token_lifetime_secs": shared.token_lifetime().as_secs(),
        "unknown_entity_set_status": shared.unknown_entity_set_status(),
        "batch_groups": if shared.batch_groups_transactional() { "transaction" } else { "partial" },
        "collation": if shared.store.read().expect("store lock").case_sensitive { "case_sensitive" } else { "case_insensitive" },
        "missing_object_right_status": shared.missing_object_right_status(),
    }))
    .into_response())
}

async fn list_processes(State(shared): AppState) -> Json<Value> {
    Json(json!(*shared.processes.lock().expect("process lock")))
}

async fn add_process(State(shared): AppState, body: axum::body::Bytes) -> Answer {
    let def: ProcessDef = parse(&body)?;
    if def.retries > processes::MAX_RETRIES {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("retries must be at most {}", processes::MAX_RETRIES),
        ));
    }
    if reqwest::Url::parse(&def.url).is_err() {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("url is not an absolute URL: {}", def.url),
        ));
    }
    shared
        .processes
        .lock()
        .expect("process lock")
        .push(def.clone());
    Ok((StatusCode::CREATED, Json(json!(def))).into_response())
}

async fn clear_processes(State(shared): AppState) -> StatusCode {
    shared.processes.lock().expect("process lock").clear();
    StatusCode::NO_CONTENT
}

async fn remove_process(State(shared): AppState, Path(id): Path<Uuid>) -> Answer {
    let mut defs = shared.processes.lock().expect("process lock");
    let before = defs.len();
    defs.retain(|d| d.id != id);
    if defs.len() == before {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no process with id {id}"),
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_calls(State(shared): AppState) -> Json<Value> {
    Json(json!(*shared.process_calls.lock().expect("call log lock")))
}

async fn clear_calls(State(shared): AppState) -> StatusCode {
    shared.process_calls.lock().expect("call log lock").clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReplyKind {
    /// An outgoing e-mail on the case (how agents usually answer).
    Email,
    /// A task activity with the text in Notes.
    Task,
    /// The customer's e-mail arriving on the case (mail sync saves it as
    /// the mailbox's user): not an agent reply, though it is an activity.
    IncomingEmail,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentReply {
    case_id: Uuid,
    text: String,
    #[serde(default)]
    agent_contact_id: Option<Uuid>,
    #[serde(default)]
    kind: Option<ReplyKind>,
}

fn agent(id: Option<Uuid>) -> Actor {
    Actor {
        contact_id: id.unwrap_or_else(|| Uuid::parse_str(demo::AGENT_SARAH).expect("constant")),
    }
}

async fn agent_reply(State(shared): AppState, body: axum::body::Bytes) -> Answer {
    let reply: AgentReply = parse(&body)?;
    if reply.text.trim().is_empty() {
        return Err(fail(StatusCode::BAD_REQUEST, "text must not be empty"));
    }
    let actor = agent(reply.agent_contact_id);
    let (record, event) = {
        let mut store = shared.store.write().expect("store lock");
        let Some(case) = store.get("Case", &reply.case_id).cloned() else {
            return Err(fail(
                StatusCode::NOT_FOUND,
                format!("no case with id {}", reply.case_id),
            ));
        };
        let subject = case
            .get("Subject")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let contact = case.get("ContactId").cloned().unwrap_or(json!(EMPTY_GUID));
        let first_line: String = reply
            .text
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(250)
            .collect();
        let body = match reply.kind.unwrap_or(ReplyKind::Email) {
            ReplyKind::Email => json!({
                "Title": format!("Re: {subject}").chars().take(500).collect::<String>(),
                "TypeId": defaults::ACTIVITY_TYPE_EMAIL,
                "ActivityCategoryId": defaults::ACTIVITY_CATEGORY_EMAIL,
                "MessageTypeId": defaults::EMAIL_TYPE_OUTGOING,
                "Body": reply.text,
            }),
            ReplyKind::IncomingEmail => json!({
                "Title": format!("Re: {subject}").chars().take(500).collect::<String>(),
                "TypeId": defaults::ACTIVITY_TYPE_EMAIL,
                "ActivityCategoryId": defaults::ACTIVITY_CATEGORY_EMAIL,
                "MessageTypeId": defaults::EMAIL_TYPE_INCOMING,
                "Body": reply.text,
            }),
            ReplyKind::Task => json!({"Title": first_line, "Notes": reply.text}),
        };
        let mut body = body;
        body["CaseId"] = json!(reply.case_id);
        body["ContactId"] = contact;
        body["StatusId"] = json!(defaults::ACTIVITY_STATUS_COMPLETED);
        let schema = schema::find("Activity").expect("emulated");
        let record = store.insert(schema, &body, actor, chrono::Utc::now())?;
        let event = ProcessEvent::activity_added(&record, &store);
        (record, event)
    };
    processes::fire(&shared, vec![event]);
    Ok((StatusCode::CREATED, Json(Value::Object(record))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseStatusChange {
    case_id: Uuid,
    /// The new status by Id…
    #[serde(default)]
    status_id: Option<Uuid>,
    /// …or by name (`Resolved`, `Closed`).
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    agent_contact_id: Option<Uuid>,
}

async fn case_status(State(shared): AppState, body: axum::body::Bytes) -> Answer {
    let change: CaseStatusChange = parse(&body)?;
    let actor = agent(change.agent_contact_id);
    let (record, event) = {
        let mut store = shared.store.write().expect("store lock");
        let status_id = match (change.status_id, &change.status) {
            (Some(id), _) => id.to_string(),
            (None, Some(name)) => {
                let found = store
                    .rows("CaseStatus")
                    .find(|r| {
                        r.get("Name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    })
                    .and_then(|r| r.get("Id").and_then(Value::as_str).map(str::to_string));
                match found {
                    Some(id) => id,
                    None => {
                        return Err(fail(
                            StatusCode::BAD_REQUEST,
                            format!("no case status named {name:?}"),
                        ))
                    }
                }
            }
            (None, None) => {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "give status_id or status (a name)",
                ))
            }
        };
        let schema = schema::find("Case").expect("emulated");
        let (old, new) = store.update(
            schema,
            &change.case_id,
            &json!({"StatusId": status_id}),
            actor,
            chrono::Utc::now(),
        )?;
        let changed = old.get("StatusId") != new.get("StatusId");
        (
            new.clone(),
            changed.then_some(ProcessEvent::CaseStatusChanged { case: new }),
        )
    };
    processes::fire(&shared, event.into_iter().collect());
    Ok(Json(Value::Object(record)).into_response())
}

async fn list_faults(State(shared): AppState) -> Json<Value> {
    Json(json!(shared.faults.lock().expect("fault lock").list()))
}

async fn add_fault(State(shared): AppState, body: axum::body::Bytes) -> Answer {
    let request: FaultRequest = parse(&body)?;
    shared
        .faults
        .lock()
        .expect("fault lock")
        .add(request)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    Ok(StatusCode::CREATED.into_response())
}

/// The cost model in force (`null`: off) and each client's requests in
/// flight now and at most since it was set.
async fn get_cost(State(shared): AppState) -> Json<Value> {
    let load: serde_json::Map<String, Value> = shared
        .cost
        .load()
        .into_iter()
        .map(|(client, (now, peak))| (client, json!({"in_flight": now, "peak": peak})))
        .collect();
    Json(json!({"model": shared.cost.model(), "load": load}))
}

async fn put_cost(State(shared): AppState, body: axum::body::Bytes) -> Answer {
    let model: crate::cost::CostModel = parse(&body)?;
    model
        .check()
        .map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    shared.cost.set(Some(model));
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn clear_cost(State(shared): AppState) -> StatusCode {
    shared.cost.set(None);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(shared): AppState) -> StatusCode {
    shared.faults.lock().expect("fault lock").clear();
    StatusCode::NO_CONTENT
}

async fn stats(State(shared): AppState) -> Json<Value> {
    Json(json!(shared.stats.snapshot()))
}

async fn reset_stats(State(shared): AppState) -> StatusCode {
    shared.stats.reset();
    StatusCode::NO_CONTENT
}

async fn reset(State(shared): AppState) -> StatusCode {
    shared.reset();
    StatusCode::NO_CONTENT
}
