//! OData 4 under `/0/odata`: entity sets, keys, query options, CRUD, `$count`,
//! `$batch` and `$metadata`, with Creatio's response shapes (reference §2).
//!
//! [`execute`] runs one request against the store and is shared by the HTTP
//! routes and the `$batch` endpoint, so a sub-request behaves exactly like
//! the same request sent alone.

pub mod batch;
pub mod filter;
pub mod metadata;

pub use crate::error::{ErrorShape, OdataError};

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::identity::{ClientSnapshot, Operation};
use crate::processes::ProcessEvent;
use crate::schema::{self, ColType, EntitySchema, EMPTY_GUID};
use crate::store::{Actor, Record, Store};
use crate::Shared;
use filter::{Expr, OrderBy};

/// Creatio's `MaxEntityRowCount`: no response holds more rows than this.
pub const MAX_ROWS: usize = 20_000;

/// What an OData request produced.
#[derive(Debug)]
pub struct OdataResponse {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    Json(Value),
    Text(&'static str, String),
    Empty,
}

impl OdataResponse {
    /// `204 No Content`: what an update or a delete answers.
    fn no_content() -> Self {
        OdataResponse {
            status: StatusCode::NO_CONTENT,
            headers: vec![("odata-version", "4.0".into())],
            body: Body::Empty,
        }
    }

    fn json(status: StatusCode, body: Value) -> Self {
        OdataResponse {
            status,
            headers: vec![("odata-version", "4.0".into())],
            body: Body::Json(body),
        }
    }

    pub fn error(e: &OdataError) -> Self {
        let mut r = Self::json(e.status, e.body());
        match e.shape {
            ErrorShape::Routing => r.headers.clear(),
            ErrorShape::Empty => {
                r.headers.clear();
                r.body = Body::Empty;
            }
            // ASP.NET's plain JSON, not OData's, as for any refused bearer.
            ErrorShape::Denied => {
                r.headers = vec![
                    ("www-authenticate", "Bearer error=\"invalid_token\"".into()),
                    ("content-type", "application/json".into()),
                ];
            }
            ErrorShape::Odata => {}
        }
        r
    }
}

/// One OData request, already stripped of the `/0/odata/` prefix.
pub struct OdataRequest<'a> {
    pub method: Method,
    /// The resource path relative to the service root (`Case`, `Case(<id>)`, `Case/$count`).
    pub path: &'a str,
    pub query: &'a str,
    pub body: Option<Value>,
    /// `Prefer: return=minimal` was sent.
    pub return_minimal: bool,
}

/// The parsed resource path.
enum Resource {
    ServiceDocument,
    Collection(&'static EntitySchema),
    Entity(&'static EntitySchema, Uuid),
    Count(&'static EntitySchema),
}

fn parse_resource(path: &str, full_uri: &str) -> Result<Resource, OdataError> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Ok(Resource::ServiceDocument);
    }
    let (head, rest) = match path.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let (name, key) = match head.split_once('(') {
        Some((n, k)) => {
            let k = k.strip_suffix(')').ok_or_else(|| {
                OdataError::bad_request(format!("The key in '{head}' is not closed with ')'."))
            })?;
            (n, Some(k))
        }
        None => (head, None),
    };
    let schema = schema::find(name).ok_or_else(|| OdataError::routing(full_uri, name))?;
    let parse_key = |k: &str| {
        Uuid::try_parse(k).map_err(|_| {
            OdataError::bad_request(format!(
                "The key value '{k}' is not a valid Edm.Guid. Write the key as a bare GUID: {name}(<guid>)."
            ))
        })
    };
    match (key, rest) {
        (None, None) => Ok(Resource::Collection(schema)),
        (None, Some("$count")) => Ok(Resource::Count(schema)),
        // $batch sub-requests address entities as `City/<guid>`.
        (None, Some(k)) if !k.contains('/') => Ok(Resource::Entity(schema, parse_key(k)?)),
        (Some(k), None) => Ok(Resource::Entity(schema, parse_key(k)?)),
        _ => Err(OdataError::bad_request(format!(
            "The path '{path}' addresses a property or a function; the emulator serves entity sets, \
             entities by key and $count."
        ))),
    }
}

/// Parsed query options of a read.
#[derive(Default)]
struct QueryOptions {
    select: Option<Vec<String>>,
    filter: Option<Expr>,
    orderby: Vec<OrderBy>,
    top: Option<usize>,
    skip: usize,
    count: bool,
    expand: Vec<Expand>,
}

struct Expand {
    nav: String,
    field: String,
    target: &'static EntitySchema,
    select: Option<Vec<String>>,
}

fn parse_select(text: &str, schema: &EntitySchema) -> Result<Vec<String>, OdataError> {
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name == "*" {
            return Ok(schema.fields.clone());
        }
        if schema.column_by_field(name).is_none() {
            return Err(OdataError::bad_request(format!(
                "Could not find a property named '{name}' on type '{}'.",
                schema.qualified_name()
            )));
        }
        out.push(name.to_string());
    }
    Ok(out)
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_expand(text: &str, schema: &EntitySchema) -> Result<Vec<Expand>, OdataError> {
    let mut out = Vec::new();
    for item in split_top_level(text).into_iter().map(str::trim) {
        let (nav, options) = match item.split_once('(') {
            Some((n, o)) => (
                n.trim(),
                Some(o.strip_suffix(')').ok_or_else(|| {
                    OdataError::bad_request(format!(
                        "The $expand item '{item}' is not closed with ')'."
                    ))
                })?),
            ),
            None => (item, None),
        };
        let Some(column) = schema.navigation(nav) else {
            return Err(OdataError::bad_request(format!(
                "Could not find a navigation property named '{nav}' on type '{}'.",
                schema.qualified_name()
            )));
        };
        let ColType::Lookup(target) = column.ty else {
            unreachable!()
        };
        let target = schema::find(target).expect("lookup targets are emulated");
        let mut select = None;
        if let Some(options) = options {
            for option in options.split(';') {
                match option.trim().split_once('=') {
                    Some(("$select", list)) => select = Some(parse_select(list, target)?),
                    _ => {
                        return Err(OdataError::bad_request(format!(
                            "The nested query option '{option}' in $expand is not supported; only $select is."
                        )))
                    }
                }
            }
        }
        out.push(Expand {
            nav: nav.to_string(),
            field: column.field_name(),
            target,
            select,
        });
    }
    Ok(out)
}

fn parse_number(name: &str, text: &str) -> Result<usize, OdataError> {
    text.parse::<usize>().map_err(|_| {
        OdataError::bad_request(format!(
            "Invalid value '{text}' for {name} query option found. The {name} query option requires a \
             non-negative integer value."
        ))
    })
}

fn parse_options(query: &str, schema: &'static EntitySchema) -> Result<QueryOptions, OdataError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| OdataError::bad_request(format!("The query string is malformed: {e}.")))?;
    let mut seen = Vec::new();
    let mut options = QueryOptions::default();
    for (key, value) in pairs {
        if !key.starts_with('$') {
            continue;
        }
        if seen.contains(&key) {
            return Err(OdataError::bad_request(format!(
                "Query option '{key}' was specified more than once, but it must be specified at most once."
            )));
        }
        match key.as_str() {
            "$select" => options.select = Some(parse_select(&value, schema)?),
            "$filter" => options.filter = Some(filter::parse_filter(&value, schema)?),
            "$orderby" => options.orderby = filter::parse_orderby(&value, schema)?,
            "$top" => {
                let top = parse_number("$top", &value)?;
                if top > MAX_ROWS {
                    return Err(OdataError::bad_request(format!(
                        "The limit of '{MAX_ROWS}' for Top query has been exceeded. The value from the \
                         incoming request is '{top}'."
                    )));
                }
                options.top = Some(top);
            }
            "$skip" => options.skip = parse_number("$skip", &value)?,
            "$count" => {
                options.count = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(OdataError::bad_request(format!(
                            "'{value}' is not a valid count option; use true or false."
                        )))
                    }
                }
            }
            "$expand" => options.expand = parse_expand(&value, schema)?,
            other => {
                return Err(OdataError::bad_request(format!(
                    "The query parameter '{other}' is not supported."
                )))
            }
        }
        seen.push(key);
    }
    Ok(options)
}

/// Serialises a stored record for output, applying `$select` and `$expand`.
fn project(
    schema: &EntitySchema,
    record: &Record,
    select: Option<&[String]>,
    expand: &[Expand],
    store: &Store,
) -> Value {
    let mut out = Map::new();
    let id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
    for (column, field) in schema.columns.iter().zip(&schema.fields) {
        if select.is_some_and(|s| !s.contains(field)) {
            continue;
        }
        if column.ty == ColType::Media {
            let link = format!("{}({id})/{field}", schema.name);
            out.insert(
                format!("{field}@odata.mediaEditLink"),
                Value::String(link.clone()),
            );
            out.insert(format!("{field}@odata.mediaReadLink"), Value::String(link));
            out.insert(
                format!("{field}@odata.mediaContentType"),
                Value::String("application/octet-stream".into()),
            );
            continue;
        }
        if let Some(v) = record.get(field) {
            out.insert(field.clone(), v.clone());
        }
    }
    for e in expand {
        let target = record
            .get(&e.field)
            .and_then(Value::as_str)
            .filter(|id| *id != EMPTY_GUID)
            .and_then(|id| store.get_str(e.target.name, id));
        let value = match target {
            Some(t) => project(e.target, t, e.select.as_deref(), &[], store),
            None => Value::Null,
        };
        out.insert(e.nav.clone(), value);
    }
    Value::Object(out)
}

fn context(base: &str, schema: &EntitySchema, select: Option<&[String]>, entity: bool) -> String {
    let mut s = format!("{base}/0/odata/$metadata#{}", schema.name);
    if let Some(select) = select {
        s.push('(');
        s.push_str(&select.join(","));
        s.push(')');
    }
    if entity {
        s.push_str("/$entity");
    }
    s
}

/// Objects administrated by records (reference/creatio-evidence.md §1,
/// INSTALL `conf/content/{Case,Activity,Contact}.js`: `administratedByRecords:
/// true`): a user reads a record only if it created it, was granted it
/// (`POST /__emulator/record-grants`), or holds "View any data"
/// (`CanSelectEverything`, which overrides record rights). A record it may
/// not read is absent from lists and counts, and a 404 by key.
const ADMINISTRATED_BY_RECORDS: [&str; 3] = ["Case", "Activity", "Contact"];

fn visible(client: &ClientSnapshot, schema: &EntitySchema, record: &Record, store: &Store) -> bool {
    if !ADMINISTRATED_BY_RECORDS.contains(&schema.name)
        || client.system_operations.contains("CanSelectEverything")
    {
        return true;
    }
    created_or_granted(client, record, store)
}

/// Whether `client` created `record` or was granted it: the record rights
/// every user has on a record, whatever its system operations.
fn created_or_granted(client: &ClientSnapshot, record: &Record, store: &Store) -> bool {
    let mine = record.get("CreatedById").and_then(Value::as_str)
        == Some(client.contact_id.to_string().as_str());
    mine || record
        .get("Id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::try_parse(id).ok())
        .is_some_and(|id| {
            store
                .record_grants
                .contains(&(client.client_id.clone(), id))
        })
}

/// A write to one record of an object administrated by records.
#[derive(Clone, Copy)]
enum RecordRight {
    Edit,
    Delete,
}

/// Whether `client` may edit or delete the record `id`: as with reading,
/// its creator, a grantee and the holder of the matching system operation
/// ("Edit any data" `CanUpdateEverything`, "Delete any data"
/// `CanDeleteEverything`) may (reference/creatio-evidence.md §1). What
/// Creatio answers otherwise is not in the evidence; the emulator answers
/// as for a missing object right. A record it cannot even read is a 404.
fn record_right(
    client: &ClientSnapshot,
    schema: &EntitySchema,
    id: &Uuid,
    store: &Store,
    right: RecordRight,
) -> Result<(), OdataError> {
    let Some(record) = store.get(schema.name, id) else {
        return Ok(()); // the store answers the missing key
    };
    if !ADMINISTRATED_BY_RECORDS.contains(&schema.name) {
        return Ok(());
    }
    if !visible(client, schema, record, store) {
        return Err(OdataError::not_found(schema.name, id));
    }
    let (operation, verb) = match right {
        RecordRight::Edit => ("CanUpdateEverything", "edit"),
        RecordRight::Delete => ("CanDeleteEverything", "delete"),
    };
    if created_or_granted(client, record, store) || client.system_operations.contains(operation) {
        return Ok(());
    }
    Err(OdataError::forbidden(format!(
        "{OBJECT_RIGHT_MISSING} to {verb} this record of the \"{}\" object: it was created by another \
         user. Grant the technical user of this integration access to the record, or the system \
         operation {operation}.",
        schema.name
    )))
}

/// `RecordOperationRightLevels` of `client` on one record (RightsService's
/// `GetSchemaRecordRightLevel`): CanRead 1, CanEdit 4, CanDelete 16; 0 for
/// a record it cannot read or that does not exist.
pub fn record_right_level(
    client: &ClientSnapshot,
    schema: &EntitySchema,
    id: &Uuid,
    store: &Store,
) -> u32 {
    let Some(record) = store.get(schema.name, id) else {
        return 0;
    };
    if !visible(client, schema, record, store) {
        return 0;
    }
    let may = |right| record_right(client, schema, id, store, right).is_ok();
    1 + if may(RecordRight::Edit) { 4 } else { 0 } + if may(RecordRight::Delete) { 16 } else { 0 }
}

/// How a missing object right's message begins.
const OBJECT_RIGHT_MISSING: &str = "Insufficient permissions";

fn denied(client: &ClientSnapshot, schema: &EntitySchema, op: Operation) -> Option<OdataError> {
    if client.may(schema.name, op) {
        return None;
    }
    let verb = match op {
        Operation::Read => "read",
        Operation::Create => "add",
        Operation::Update => "edit",
        Operation::Delete => "delete",
    };
    Some(OdataError::forbidden(format!(
        "{OBJECT_RIGHT_MISSING} to {verb} records of the \"{}\" object. Grant the technical user \
         of this integration the \"{verb}\" permission on \"{}\".",
        schema.name, schema.name
    )))
}

/// Runs one OData request. Returns the response and the business-process
/// events the request caused (to be fired once the store lock is released).
pub fn execute(
    shared: &Shared,
    client: &ClientSnapshot,
    req: OdataRequest<'_>,
) -> (OdataResponse, Vec<ProcessEvent>) {
    let mut events = Vec::new();
    let response = match run(shared, client, req, &mut events) {
        Ok(r) => r,
        Err(e) if e.shape == ErrorShape::Routing && shared.unknown_entity_set_status() == 401 => {
            OdataResponse::error(&OdataError::denied())
        }
        Err(e)
            if e.status == StatusCode::FORBIDDEN
                && e.message.starts_with(OBJECT_RIGHT_MISSING)
                && shared.missing_object_right_status() == 500 =>
        {
            OdataResponse::error(&OdataError::internal("An error has occurred.", e.message))
        }
        Err(e) => OdataResponse::error(&e),
    };
    (response, events)
}

fn run(
    shared: &Shared,
    client: &ClientSnapshot,
    req: OdataRequest<'_>,
    events: &mut Vec<ProcessEvent>,
) -> Result<OdataResponse, OdataError> {
    let base = shared.base_url.as_str();
    let full_uri = format!("{base}/0/odata/{}", req.path);
    let resource = parse_resource(req.path, &full_uri)?;
    let actor = Actor {
        contact_id: client.contact_id,
    };
    let schema = match &resource {
        Resource::ServiceDocument => return Ok(service_document(base)),
        Resource::Collection(s) | Resource::Entity(s, _) | Resource::Count(s) => *s,
    };
    shared.stats.record_entity(schema.name, req.method.as_str());
    let operation = match req.method {
        Method::POST => Operation::Create,
        Method::PATCH => Operation::Update,
        Method::DELETE => Operation::Delete,
        _ => Operation::Read,
    };
    if let Some(e) = denied(client, schema, operation) {
        return Err(e);
    }
    let call = Call {
        shared,
        client,
        schema,
        base,
    };
    match (req.method.clone(), resource) {
        (Method::GET, Resource::Collection(_)) => call.read_collection(req.query),
        (Method::GET, Resource::Count(_)) => call.count(req.query),
        (Method::GET, Resource::Entity(_, id)) => call.read_entity(req.query, &id),
        (Method::POST, Resource::Collection(_)) => call.create(req, actor, events),
        (Method::PATCH, Resource::Entity(_, id)) => call.update(req, &id, actor, events),
        (Method::DELETE, Resource::Entity(_, id)) => call.delete(&id),
        (method, _) => Err(OdataError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "The HTTP method '{method}' is not allowed on '{}'. Collections take GET and POST; \
                 entities by key take GET, PATCH and DELETE.",
                req.path
            ),
        )),
    }
}

/// One request's context, for the operation it asks for.
struct Call<'a> {
    shared: &'a Shared,
    client: &'a ClientSnapshot,
    schema: &'static EntitySchema,
    /// The service's base URL, for `@odata.context` and `Location`.
    base: &'a str,
}

impl Call<'_> {
    /// `GET <set>`: the visible rows, filtered, ordered, paged, projected.
    fn read_collection(&self, query: &str) -> Result<OdataResponse, OdataError> {
        let Call {
            shared,
            client,
            schema,
            base,
        } = *self;
        let options = parse_options(query, schema)?;
        let store = shared.store.read().expect("store lock");
        let mut rows: Vec<&Record> = store
            .rows(schema.name)
            .filter(|r| visible(client, schema, r, &store))
            .filter(|r| {
                options
                    .filter
                    .as_ref()
                    .is_none_or(|f| filter::matches(f, r, &store))
            })
            .collect();
        if !options.orderby.is_empty() {
            rows.sort_by(|a, b| {
                for o in &options.orderby {
                    let ord = filter::read_path(&o.path, a, &store)
                        .sql_cmp(&filter::read_path(&o.path, b, &store), store.case_sensitive);
                    let ord = if o.descending { ord.reverse() } else { ord };
                    if ord.is_ne() {
                        return ord;
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
        let total = rows.len();
        // More than MaxEntityRowCount rows without $top: a live tenant
        // answers 500 rather than a first page (reference/
        // creatio-evidence.md §6, PYCLIENT
        // test_get_collection_error_over_20k).
        if options.top.is_none() && total.saturating_sub(options.skip) > MAX_ROWS {
            return Err(OdataError::internal(
                "An error has occurred.",
                format!(
                    "The query selects {total} rows, more than the {MAX_ROWS} a response may hold \
                 (MaxEntityRowCount); use $top and $skip."
                ),
            ));
        }
        let top = options.top.unwrap_or(MAX_ROWS);
        let value: Vec<Value> = rows
            .into_iter()
            .skip(options.skip)
            .take(top)
            .map(|r| {
                project(
                    schema,
                    r,
                    options.select.as_deref(),
                    &options.expand,
                    &store,
                )
            })
            .collect();
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            context(base, schema, options.select.as_deref(), false).into(),
        );
        if options.count {
            body.insert("@odata.count".into(), total.into());
        }
        body.insert("value".into(), Value::Array(value));
        Ok(OdataResponse::json(StatusCode::OK, Value::Object(body)))
    }

    /// `GET <set>/$count`.
    fn count(&self, query: &str) -> Result<OdataResponse, OdataError> {
        let Call {
            shared,
            client,
            schema,
            ..
        } = *self;
        let options = parse_options(query, schema)?;
        let store = shared.store.read().expect("store lock");
        let n = store
            .rows(schema.name)
            .filter(|r| visible(client, schema, r, &store))
            .filter(|r| {
                options
                    .filter
                    .as_ref()
                    .is_none_or(|f| filter::matches(f, r, &store))
            })
            .count();
        Ok(OdataResponse {
            status: StatusCode::OK,
            headers: vec![("odata-version", "4.0".into())],
            body: Body::Text("text/plain; charset=utf-8", n.to_string()),
        })
    }

    /// `GET <set>(<id>)`.
    fn read_entity(&self, query: &str, id: &Uuid) -> Result<OdataResponse, OdataError> {
        let Call {
            shared,
            client,
            schema,
            base,
        } = *self;
        let options = parse_options(query, schema)?;
        let store = shared.store.read().expect("store lock");
        let record = store
            .get(schema.name, id)
            .filter(|r| visible(client, schema, r, &store))
            .ok_or_else(|| OdataError::not_found(schema.name, id))?;
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            context(base, schema, options.select.as_deref(), true).into(),
        );
        if let Value::Object(fields) = project(
            schema,
            record,
            options.select.as_deref(),
            &options.expand,
            &store,
        ) {
            body.extend(fields);
        }
        Ok(OdataResponse::json(StatusCode::OK, Value::Object(body)))
    }

    /// `POST <set>`: a new record; an Activity starts the processes it
    /// signals.
    fn create(
        &self,
        req: OdataRequest<'_>,
        actor: Actor,
        events: &mut Vec<ProcessEvent>,
    ) -> Result<OdataResponse, OdataError> {
        let Call {
            shared,
            schema,
            base,
            ..
        } = *self;
        let body = req.body.unwrap_or(Value::Null);
        let mut store = shared.store.write().expect("store lock");
        let record = store.insert(schema, &body, actor, chrono::Utc::now())?;
        let id = record
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let location = format!("{base}/0/odata/{}({id})", schema.name);
        if schema.name == "Activity" {
            events.push(ProcessEvent::activity_added(&record, &store));
        }
        if req.return_minimal {
            return Ok(OdataResponse {
                status: StatusCode::NO_CONTENT,
                headers: vec![
                    ("odata-version", "4.0".into()),
                    ("location", location.clone()),
                    ("odata-entityid", location),
                ],
                body: Body::Empty,
            });
        }
        let mut out = Map::new();
        out.insert(
            "@odata.context".into(),
            context(base, schema, None, true).into(),
        );
        if let Value::Object(fields) = project(schema, &record, None, &[], &store) {
            out.extend(fields);
        }
        let mut response = OdataResponse::json(StatusCode::CREATED, Value::Object(out));
        response.headers.push(("location", location));
        Ok(response)
    }

    /// `PATCH <set>(<id>)`; a Case's status change signals its processes.
    fn update(
        &self,
        req: OdataRequest<'_>,
        id: &Uuid,
        actor: Actor,
        events: &mut Vec<ProcessEvent>,
    ) -> Result<OdataResponse, OdataError> {
        let Call {
            shared,
            client,
            schema,
            ..
        } = *self;
        let body = req.body.unwrap_or(Value::Null);
        let mut store = shared.store.write().expect("store lock");
        record_right(client, schema, id, &store, RecordRight::Edit)?;
        let (old, new) = store.update(schema, id, &body, actor, chrono::Utc::now())?;
        if schema.name == "Case" && old.get("StatusId") != new.get("StatusId") {
            events.push(ProcessEvent::CaseStatusChanged { case: new });
        }
        Ok(OdataResponse::no_content())
    }

    /// `DELETE <set>(<id>)`.
    fn delete(&self, id: &Uuid) -> Result<OdataResponse, OdataError> {
        let Call {
            shared,
            client,
            schema,
            ..
        } = *self;
        let mut store = shared.store.write().expect("store lock");
        record_right(client, schema, id, &store, RecordRight::Delete)?;
        store.delete(schema, id)?;
        Ok(OdataResponse::no_content())
    }
}

fn service_document(base: &str) -> OdataResponse {
    let sets: Vec<Value> = schema::all()
        .iter()
        .map(|s| json!({"name": s.name, "kind": "EntitySet", "url": s.name}))
        .collect();
    OdataResponse::json(
        StatusCode::OK,
        json!({"@odata.context": format!("{base}/0/odata/$metadata"), "value": sets}),
    )
}
