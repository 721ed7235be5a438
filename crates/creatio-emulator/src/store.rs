//! The in-memory database behind the emulator's OData endpoint.
//!
//! Records are JSON objects holding every column in schema order, with
//! Creatio's empty values (empty GUID, `""`, `0001-01-01T00:00:00Z`) rather
//! than `null`, so serialising a record *is* the OData representation.
//! Writes are validated the way Creatio's stack would reject them: malformed
//! values are 400s from the OData deserialiser; duplicate keys, dangling
//! lookups, over-long text and deleting a referenced row are 500s carrying the
//! SQL Server message, as a database error surfaces through Creatio.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::OdataError;
use crate::schema::{self, ColType, Column, Default, EntitySchema, EMPTY_DATE, EMPTY_GUID};

pub type Record = Map<String, Value>;

/// Who is writing: the contact stamped into `CreatedById`/`ModifiedById` and
/// used for "current user" defaults.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub contact_id: Uuid,
}

/// Formats a date-time the way Creatio returns it: UTC, `Z`, up to seven
/// fractional digits with trailing zeros removed.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    let ticks = t.timestamp_subsec_nanos() / 100;
    let base = t.to_rfc3339_opts(SecondsFormat::Secs, true);
    if ticks == 0 {
        return base;
    }
    let frac = format!("{ticks:07}");
    format!(
        "{}.{}Z",
        base.trim_end_matches('Z'),
        frac.trim_end_matches('0')
    )
}

#[derive(Default)]
struct Table {
    rows: IndexMap<Uuid, Record>,
}

/// All tables plus the case-number sequence.
#[derive(Default)]
pub struct Store {
    tables: HashMap<&'static str, Table>,
    case_sequence: u64,
    /// How the tenant's database compares text: case-insensitively (SQL
    /// Server's default collation, the default here) or case-sensitively
    /// (PostgreSQL, on which cloud tenants may run: reference/
    /// creatio-evidence.md §5). `eq`, `in`, `contains`, `startswith`,
    /// `endswith` and `$orderby` follow it.
    pub case_sensitive: bool,
    /// Records an OAuth client may read and edit although it did not create them:
    /// (client id, record id), set by the operator (a record's access
    /// rights in Creatio).
    pub record_grants: std::collections::HashSet<(String, Uuid)>,
}

fn database_error(message: String) -> OdataError {
    OdataError::internal("An error has occurred.", message)
}

fn convert_error(value: &Value, edm: &str) -> OdataError {
    let literal = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    OdataError::bad_request(format!(
        "Cannot convert the literal '{literal}' to the expected type '{edm}'."
    ))
}

/// Converts one incoming JSON value to its stored form for `column`.
fn convert(column: &Column, value: &Value) -> Result<Value, OdataError> {
    let field = column.field_name();
    match (column.ty, value) {
        (ColType::Lookup(_), Value::Null) => Ok(Value::String(EMPTY_GUID.into())),
        (ColType::DateTime, Value::Null) => Ok(Value::String(EMPTY_DATE.into())),
        (_, Value::Null) => Err(OdataError::bad_request(format!(
            "A null value was found for the property named '{field}', which has the expected type \
             'Edm.String[Nullable=False]'. The expected type does not allow null values."
        ))),
        (ColType::Guid | ColType::Lookup(_), Value::String(s)) => Uuid::try_parse(s)
            .map(|g| Value::String(g.to_string()))
            .map_err(|_| convert_error(value, "Edm.Guid")),
        (ColType::Text(_), Value::String(s)) => Ok(Value::String(s.clone())),
        (ColType::Bool, Value::Bool(_)) => Ok(value.clone()),
        (ColType::Int, Value::Number(n)) if n.is_i64() => Ok(value.clone()),
        (ColType::Float, Value::Number(_)) => Ok(value.clone()),
        (ColType::DateTime, Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|d| Value::String(format_datetime(d.with_timezone(&Utc))))
            .map_err(|_| convert_error(value, "Edm.DateTimeOffset")),
        (ColType::Media, _) => Err(OdataError::bad_request(format!(
            "The property '{field}' is a media stream; write it with PUT to its media link, not in the \
             entity body."
        ))),
        (ty, _) => Err(convert_error(
            value,
            match ty {
                ColType::Guid | ColType::Lookup(_) => "Edm.Guid",
                ColType::Text(_) => "Edm.String",
                ColType::Bool => "Edm.Boolean",
                ColType::Int => "Edm.Int32",
                ColType::Float => "Edm.Double",
                ColType::DateTime | ColType::Media => "Edm.DateTimeOffset",
            },
        )),
    }
}

fn empty_value(ty: ColType) -> Value {
    match ty {
        ColType::Guid | ColType::Lookup(_) => Value::String(EMPTY_GUID.into()),
        ColType::Text(_) | ColType::Media => Value::String(String::new()),
        ColType::Bool => Value::Bool(false),
        ColType::Int => Value::from(0),
        ColType::Float => Value::from(0.0),
        ColType::DateTime => Value::String(EMPTY_DATE.into()),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty() || s == EMPTY_GUID || s == EMPTY_DATE,
        Value::Null => true,
        _ => false,
    }
}

/// Body keys a client may send that are not columns and are ignored: OData
/// annotations, and navigation names — Creatio silently ignores `"Status": …`
/// in a write body (reference §2.4), saving the record with an empty lookup.
fn ignored_key(schema: &EntitySchema, key: &str) -> bool {
    key.starts_with('@') || key.contains("@odata.") || schema.navigation(key).is_some()
}

impl Store {
    fn table(&self, entity: &str) -> Option<&Table> {
        self.tables.get(entity)
    }

    pub fn get(&self, entity: &str, id: &Uuid) -> Option<&Record> {
        self.table(entity)?.rows.get(id)
    }

    pub fn get_str(&self, entity: &str, id: &str) -> Option<&Record> {
        self.get(entity, &Uuid::try_parse(id).ok()?)
    }

    pub fn rows(&self, entity: &str) -> impl Iterator<Item = &Record> {
        self.table(entity).into_iter().flat_map(|t| t.rows.values())
    }

    pub fn count(&self, entity: &str) -> usize {
        self.table(entity).map_or(0, |t| t.rows.len())
    }

    /// Checks the incoming body against the schema and converts its values.
    fn parse_body(
        schema: &'static EntitySchema,
        body: &Value,
    ) -> Result<Vec<(&'static Column, Value)>, OdataError> {
        let Value::Object(map) = body else {
            return Err(OdataError::bad_request(
                "The request body must be a JSON object describing the entity.",
            ));
        };
        let mut out = Vec::new();
        for (key, value) in map {
            if ignored_key(schema, key) {
                continue;
            }
            let Some(column) = schema.column_by_field(key) else {
                return Err(OdataError::bad_request(format!(
                    "The property '{key}' does not exist on type '{}'. Make sure to only use property \
                     names that are defined by the type.",
                    schema.qualified_name()
                )));
            };
            out.push((column, convert(column, value)?));
        }
        Ok(out)
    }

    /// Enforces what the database enforces: text column sizes and foreign keys.
    fn check_constraints(
        &self,
        schema: &EntitySchema,
        record: &Record,
        verb: &str,
    ) -> Result<(), OdataError> {
        for column in &schema.columns {
            let field = column.field_name();
            let value = record.get(&field);
            match (column.ty, value) {
                // Text past the column's size fails on the database, as an
                // error answer, never a silent truncation; `$metadata` does
                // not tell the size (reference/creatio-evidence.md §2).
                (ColType::Text(Some(max)), Some(Value::String(s))) if s.chars().count() > max => {
                    let shown: String = s.chars().take(40).collect();
                    return Err(database_error(format!(
                        "String or binary data would be truncated in table 'dbo.{}', column '{field}'. \
                         Truncated value: '{shown}'. The column holds at most {max} characters.",
                        schema.name
                    )));
                }
                (ColType::Lookup(target), Some(Value::String(id))) if id != EMPTY_GUID => {
                    // A record may point at itself (ParentCase is not, but a
                    // contact's Owner may be its own contact).
                    let own = record.get("Id").and_then(Value::as_str) == Some(id.as_str());
                    if !own && self.get_str(target, id).is_none() {
                        return Err(database_error(format!(
                            "The {verb} statement conflicted with the FOREIGN KEY constraint \
                             \"FK{}{}\". The conflict occurred in database \"creatio\", table \"dbo.{target}\", \
                             column 'Id'. (value {id})",
                            schema.name, column.name
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn required_check(schema: &EntitySchema, record: &Record) -> Result<(), OdataError> {
        for column in schema.columns.iter().filter(|c| c.required) {
            let field = column.field_name();
            if record.get(&field).is_none_or(is_empty) {
                return Err(OdataError::bad_request(format!(
                    "Field \"{field}\" of object \"{}\" is required and cannot be empty.",
                    schema.name
                )));
            }
        }
        Ok(())
    }

    /// Inserts a record from a create body; returns the full stored record.
    pub fn insert(
        &mut self,
        schema: &'static EntitySchema,
        body: &Value,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<Record, OdataError> {
        let given: HashMap<&str, Value> = Self::parse_body(schema, body)?
            .into_iter()
            .map(|(c, v)| (c.name, v))
            .collect();
        let id = match given.get("Id").and_then(Value::as_str) {
            Some(id) if id != EMPTY_GUID => Uuid::try_parse(id).expect("converted"),
            _ => Uuid::new_v4(),
        };
        if self.get(schema.name, &id).is_some() {
            return Err(database_error(format!(
                "Violation of PRIMARY KEY constraint 'PK{0}Id'. Cannot insert duplicate key in object \
                 'dbo.{0}'. The duplicate key value is ({id}).",
                schema.name
            )));
        }
        let now_text = format_datetime(now);
        let contact = actor.contact_id.to_string();
        let mut record = Record::new();
        for column in &schema.columns {
            let field = column.field_name();
            let value = match column.name {
                "Id" => Value::String(id.to_string()),
                "CreatedOn" | "ModifiedOn" => Value::String(now_text.clone()),
                "CreatedBy" | "ModifiedBy" => Value::String(contact.clone()),
                _ => match given.get(column.name) {
                    Some(v) if !(is_empty(v) && column.default != Default::Empty) => v.clone(),
                    _ => match column.default {
                        Default::Empty => empty_value(column.ty),
                        Default::Now => Value::String(now_text.clone()),
                        Default::Guid(g) => Value::String(g.to_string()),
                        Default::CurrentContact => Value::String(contact.clone()),
                        Default::Bool(b) => Value::Bool(b),
                        Default::CaseNumber => {
                            self.case_sequence += 1;
                            Value::String(format!("SR{:08}", self.case_sequence))
                        }
                    },
                },
            };
            record.insert(field, value);
        }
        if schema.name == "Contact" {
            derive_contact_names(&mut record);
        }
        if schema.name == "ContactCommunication" {
            fill_search_number(&mut record);
        }
        if schema.name == "Case" {
            copy_subject_into_symptoms(&mut record);
        }
        Self::required_check(schema, &record)?;
        self.check_constraints(schema, &record, "INSERT")?;
        self.tables
            .entry(schema.name)
            .or_default()
            .rows
            .insert(id, record.clone());
        if schema.name == "Contact" {
            self.sync_communications(&id, &record, actor, now);
        }
        if schema.name == "Case" {
            self.record_case_lifecycle(&id, &record, actor, now);
        }
        Ok(record)
    }

    /// Applies a PATCH body; returns the record before and after.
    pub fn update(
        &mut self,
        schema: &'static EntitySchema,
        id: &Uuid,
        body: &Value,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(Record, Record), OdataError> {
        let changes = Self::parse_body(schema, body)?;
        let Some(old) = self.get(schema.name, id).cloned() else {
            return Err(OdataError::not_found(schema.name, id));
        };
        let mut record = old.clone();
        for (column, value) in changes {
            match column.name {
                "Id" if value.as_str() != Some(id.to_string().as_str()) => {
                    return Err(OdataError::bad_request(
                        "The key property 'Id' cannot be changed by an update.",
                    ))
                }
                "Id" | "CreatedOn" | "CreatedBy" | "ModifiedOn" | "ModifiedBy" => {}
                _ => {
                    record.insert(column.field_name(), value);
                }
            }
        }
        record.insert("ModifiedOn".into(), Value::String(format_datetime(now)));
        record.insert(
            "ModifiedById".into(),
            Value::String(actor.contact_id.to_string()),
        );
        Self::required_check(schema, &record)?;
        self.check_constraints(schema, &record, "UPDATE")?;
        if schema.name == "Case" {
            self.apply_case_status_side_effects(&old, &mut record, now);
            if old.get("StatusId") != record.get("StatusId") {
                self.record_case_lifecycle(id, &record, actor, now);
            }
        }
        if schema.name == "ContactCommunication" {
            fill_search_number(&mut record);
        }
        if schema.name == "Contact" {
            self.sync_communications(id, &record, actor, now);
        }
        self.tables
            .entry(schema.name)
            .or_default()
            .rows
            .insert(*id, record.clone());
        Ok((old, record))
    }

    /// Creatio stamps the solution and closure dates, and the status's default
    /// closure code, when a case moves to a resolved or final status.
    fn apply_case_status_side_effects(
        &self,
        old: &Record,
        record: &mut Record,
        now: DateTime<Utc>,
    ) {
        if old.get("StatusId") == record.get("StatusId") {
            return;
        }
        let Some(status) = record
            .get("StatusId")
            .and_then(Value::as_str)
            .and_then(|s| self.get_str("CaseStatus", s))
        else {
            return;
        };
        let flag = |name: &str| status.get(name).and_then(Value::as_bool).unwrap_or(false);
        let now_text = Value::String(format_datetime(now));
        if (flag("IsResolved") || flag("IsFinal"))
            && record.get("SolutionProvidedOn").is_none_or(is_empty)
        {
            record.insert("SolutionProvidedOn".into(), now_text.clone());
        }
        // The closure code only for a final status (reference/
        // creatio-evidence.md §4, INSTALL `CaseClosureEventListener`).
        if flag("IsFinal") {
            if record.get("ClosureCodeId").is_none_or(is_empty) {
                if let Some(code) = status.get("ClosureCodeId") {
                    record.insert("ClosureCodeId".into(), code.clone());
                }
            }
            record.insert("ClosureDate".into(), now_text);
        }
    }

    /// Deletes a record. Like a database with restricting foreign keys, a row
    /// that other rows still point at cannot be deleted.
    pub fn delete(
        &mut self,
        schema: &'static EntitySchema,
        id: &Uuid,
    ) -> Result<Record, OdataError> {
        if self.get(schema.name, id).is_none() {
            return Err(OdataError::not_found(schema.name, id));
        }
        let key = id.to_string();
        if schema.name == "Contact" {
            // A contact's communications go with it (a detail of the
            // contact page), so they never block its deletion.
            if let Some(t) = self.tables.get_mut("ContactCommunication") {
                t.rows.retain(|_, r| {
                    r.get("ContactId").and_then(Value::as_str) != Some(key.as_str())
                });
            }
        }
        for other in schema::all() {
            for column in &other.columns {
                if column.ty != ColType::Lookup(schema.name)
                    || column.name == "CreatedBy"
                    || column.name == "ModifiedBy"
                {
                    continue;
                }
                let field = column.field_name();
                let referenced = self.rows(other.name).any(|r| {
                    r.get(&field).and_then(Value::as_str) == Some(key.as_str())
                        && r.get("Id").and_then(Value::as_str) != Some(key.as_str())
                });
                if referenced {
                    return Err(database_error(format!(
                        "The DELETE statement conflicted with the REFERENCE constraint \"FK{}{}\". The \
                         conflict occurred in database \"creatio\", table \"dbo.{}\", column '{field}'.",
                        other.name, column.name, other.name
                    )));
                }
            }
        }
        let removed = self
            .tables
            .get_mut(schema.name)
            .and_then(|t| t.rows.shift_remove(id))
            .expect("checked above");
        Ok(removed)
    }

    /// Puts a record back exactly as it was (used to roll back an atomicity group).
    pub fn restore(&mut self, entity: &'static str, record: Record) {
        let id = record
            .get("Id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::try_parse(s).ok())
            .expect("stored records have an Id");
        self.tables
            .entry(entity)
            .or_default()
            .rows
            .insert(id, record);
    }

    /// Removes a record without any checks (rollback of an insert).
    pub fn remove(&mut self, entity: &str, id: &Uuid) {
        if let Some(t) = self.tables.get_mut(entity) {
            t.rows.shift_remove(id);
        }
    }
}

/// A Case saved without `Symptoms` gets its `Subject` there
/// (reference/creatio-evidence.md §4, INSTALL `BaseCaseEntityEventListener`).
fn copy_subject_into_symptoms(record: &mut Record) {
    let subject = record.get("Subject").filter(|v| !is_empty(v)).cloned();
    if let (Some(subject), true) = (subject, record.get("Symptoms").is_none_or(is_empty)) {
        record.insert("Symptoms".into(), subject);
    }
}

/// What Creatio searches a communication by: a phone's digits reversed, an
/// e-mail in lower case (see the `ContactCommunication` schema).
pub fn search_number(number: &str) -> String {
    if number.contains('@') {
        number.trim().to_lowercase()
    } else {
        number.chars().filter(char::is_ascii_digit).rev().collect()
    }
}

fn fill_search_number(record: &mut Record) {
    let number = record
        .get("Number")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    record.insert("SearchNumber".into(), Value::String(search_number(&number)));
}

/// A row the store writes itself as a side effect of a save: every column
/// empty, the system columns filled as for `actor` at `now`.
fn side_effect_row(schema: &EntitySchema, id: Uuid, actor: Actor, now: DateTime<Utc>) -> Record {
    let now_text = format_datetime(now);
    let mut row = Record::new();
    for c in &schema.columns {
        row.insert(c.field_name(), empty_value(c.ty));
    }
    row.insert("Id".into(), Value::String(id.to_string()));
    for f in ["CreatedOn", "ModifiedOn"] {
        row.insert(f.into(), Value::String(now_text.clone()));
    }
    for f in ["CreatedById", "ModifiedById"] {
        row.insert(f.into(), Value::String(actor.contact_id.to_string()));
    }
    row
}

impl Store {
    /// SLM's row for a Case save (see the `CaseLifecycle` schema): written
    /// when the case is created and when its status changes.
    fn record_case_lifecycle(
        &mut self,
        case: &Uuid,
        record: &Record,
        actor: Actor,
        now: DateTime<Utc>,
    ) {
        let Some(schema) = schema::find("CaseLifecycle") else {
            return;
        };
        let id = Uuid::new_v4();
        let mut row = side_effect_row(schema, id, actor, now);
        row.insert("StartDate".into(), Value::String(format_datetime(now)));
        row.insert("CaseId".into(), Value::String(case.to_string()));
        if let Some(status) = record.get("StatusId") {
            row.insert("StatusId".into(), status.clone());
        }
        self.tables
            .entry(schema.name)
            .or_default()
            .rows
            .insert(id, row);
    }

    /// Keeps a contact's `ContactCommunication` rows in step with its
    /// `Phone`, `MobilePhone` and `Email`, as Creatio's communication
    /// synchroniser does (INSTALL `Contact.CrtBase.cs`
    /// `InitializeCommunicationSynchronizer`): one row per column, the
    /// number as typed.
    fn sync_communications(
        &mut self,
        contact: &Uuid,
        record: &Record,
        actor: Actor,
        now: DateTime<Utc>,
    ) {
        let Some(schema) = schema::find("ContactCommunication") else {
            return;
        };
        for column in ["Phone", "MobilePhone", "Email"] {
            let id = Uuid::new_v5(contact, column.as_bytes());
            let number = record
                .get(column)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_string();
            let table = self.tables.entry(schema.name).or_default();
            if number.is_empty() {
                table.rows.shift_remove(&id);
                continue;
            }
            let mut row = side_effect_row(schema, id, actor, now);
            row.insert("ContactId".into(), Value::String(contact.to_string()));
            row.insert("Number".into(), Value::String(number));
            row.insert("Primary".into(), Value::Bool(true));
            fill_search_number(&mut row);
            table.rows.insert(id, row);
        }
    }
}

/// Creating a contact with only `Name` derives `GivenName` and `Surname`.
fn derive_contact_names(record: &mut Record) {
    let name = record
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut parts = name.split_whitespace();
    let first = parts.next().unwrap_or("");
    let last = parts.last().unwrap_or("");
    for (field, value) in [("GivenName", first), ("Surname", last)] {
        if record.get(field).and_then(Value::as_str) == Some("") {
            record.insert(field.into(), Value::String(value.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_format_like_creatio() {
        let t = DateTime::parse_from_rfc3339("2020-05-18T17:50:39.2838673Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_datetime(t), "2020-05-18T17:50:39.2838673Z");
        let t = DateTime::parse_from_rfc3339("2024-02-07T21:35:26.683Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_datetime(t), "2024-02-07T21:35:26.683Z");
        let t = DateTime::parse_from_rfc3339("2019-08-19T15:46:11+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_datetime(t), "2019-08-19T13:46:11Z");
    }
}
