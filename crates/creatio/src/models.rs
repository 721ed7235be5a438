//! Typed records for the entities casebridge reads and writes.
//!
//! Creatio never sends JSON `null` for an unset column: an unset lookup is
//! the empty GUID, an unset date `0001-01-01T00:00:00Z`, an unset text `""`
//! (reference §2.8). Here each of those is `None`, so "not set" is checked
//! one way. The same structs are write bodies: `None` fields are left out,
//! so a PATCH built from `Case { subject: Some(…), ..Default::default() }`
//! changes only the subject, and columns the server owns (`Number`,
//! `CreatedOn`, `CreatedById`, …) are never sent.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// A Creatio entity with its entity-set name and the columns read by
/// default (Creatio needs an explicit `$select`, reference §2.3).
pub trait Entity: Serialize + DeserializeOwned + Send + Sync {
    /// The entity set, e.g. `Case`.
    const SET: &'static str;
    /// The columns [`crate::Client`] selects when the query names none.
    const COLUMNS: &'static [&'static str];
    /// The record's `Id`, when known.
    fn id(&self) -> Option<Uuid>;
}

fn empty_guid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    Ok(Option::<Uuid>::deserialize(d)?.filter(|g| !g.is_nil()))
}

fn empty_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn empty_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    // DateTime.MinValue; any year-1 date is "unset" whatever its precision.
    Ok(Option::<DateTime<Utc>>::deserialize(d)?.filter(|t| t.timestamp() > MIN_VALUE_CUTOFF))
}

/// Seconds of 0002-01-01T00:00:00Z: anything before it is DateTime.MinValue.
const MIN_VALUE_CUTOFF: i64 = -62_104_060_800;

/// A service case (reference §3.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// The record's key; may be chosen by the caller on create.
    #[serde(
        rename = "Id",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<Uuid>,
    /// `SR` + 8 digits, assigned by Creatio.
    #[serde(
        rename = "Number",
        default,
        deserialize_with = "empty_text",
        skip_serializing
    )]
    pub number: Option<String>,
    #[serde(
        rename = "Subject",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub subject: Option<String>,
    /// The description (HTML).
    #[serde(
        rename = "Symptoms",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub symptoms: Option<String>,
    #[serde(
        rename = "StatusId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub status_id: Option<Uuid>,
    #[serde(
        rename = "PriorityId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub priority_id: Option<Uuid>,
    #[serde(
        rename = "OriginId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub origin_id: Option<Uuid>,
    #[serde(
        rename = "CategoryId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub category_id: Option<Uuid>,
    #[serde(
        rename = "ContactId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub contact_id: Option<Uuid>,
    #[serde(
        rename = "AccountId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub account_id: Option<Uuid>,
    /// The assignee: a **Contact**, not a user.
    #[serde(
        rename = "OwnerId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub owner_id: Option<Uuid>,
    /// The assignee group: a `SysAdminUnit` role.
    #[serde(
        rename = "GroupId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_id: Option<Uuid>,
    #[serde(
        rename = "RegisteredOn",
        default,
        deserialize_with = "empty_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub registered_on: Option<DateTime<Utc>>,
    #[serde(
        rename = "Solution",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub solution: Option<String>,
    #[serde(
        rename = "ClosureCodeId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub closure_code_id: Option<Uuid>,
    #[serde(
        rename = "ClosureDate",
        default,
        deserialize_with = "empty_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub closure_date: Option<DateTime<Utc>>,
    #[serde(
        rename = "SolutionProvidedOn",
        default,
        deserialize_with = "empty_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub solution_provided_on: Option<DateTime<Utc>>,
    #[serde(
        rename = "CreatedOn",
        default,
        deserialize_with = "empty_date",
        skip_serializing
    )]
    pub created_on: Option<DateTime<Utc>>,
    /// The contact of the user (or OAuth technical user) that created it.
    #[serde(
        rename = "CreatedById",
        default,
        deserialize_with = "empty_guid",
        skip_serializing
    )]
    pub created_by_id: Option<Uuid>,
    #[serde(
        rename = "ModifiedOn",
        default,
        deserialize_with = "empty_date",
        skip_serializing
    )]
    pub modified_on: Option<DateTime<Utc>>,
    #[serde(
        rename = "ModifiedById",
        default,
        deserialize_with = "empty_guid",
        skip_serializing
    )]
    pub modified_by_id: Option<Uuid>,
}

impl Entity for Case {
    const SET: &'static str = "Case";
    const COLUMNS: &'static [&'static str] = &[
        "Id",
        "Number",
        "Subject",
        "Symptoms",
        "StatusId",
        "PriorityId",
        "OriginId",
        "CategoryId",
        "ContactId",
        "AccountId",
        "OwnerId",
        "GroupId",
        "RegisteredOn",
        "Solution",
        "ClosureCodeId",
        "ClosureDate",
        "SolutionProvidedOn",
        "CreatedOn",
        "CreatedById",
        "ModifiedOn",
        "ModifiedById",
    ];
    fn id(&self) -> Option<Uuid> {
        self.id
    }
}

/// An activity: here, one message of a conversation on a case (reference §3.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// The record's key; may be chosen by the caller on create.
    #[serde(
        rename = "Id",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<Uuid>,
    #[serde(
        rename = "Title",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<String>,
    #[serde(
        rename = "Notes",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub notes: Option<String>,
    #[serde(
        rename = "Body",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub body: Option<String>,
    #[serde(
        rename = "TypeId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_id: Option<Uuid>,
    #[serde(
        rename = "ActivityCategoryId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub activity_category_id: Option<Uuid>,
    #[serde(
        rename = "StatusId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub status_id: Option<Uuid>,
    #[serde(
        rename = "PriorityId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub priority_id: Option<Uuid>,
    #[serde(
        rename = "CaseId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub case_id: Option<Uuid>,
    #[serde(
        rename = "ContactId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub contact_id: Option<Uuid>,
    #[serde(
        rename = "OwnerId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub owner_id: Option<Uuid>,
    #[serde(
        rename = "AuthorId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub author_id: Option<Uuid>,
    #[serde(
        rename = "StartDate",
        default,
        deserialize_with = "empty_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_date: Option<DateTime<Utc>>,
    #[serde(
        rename = "DueDate",
        default,
        deserialize_with = "empty_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub due_date: Option<DateTime<Utc>>,
    /// An e-mail's direction (`EmailType`: incoming, outgoing); empty for tasks.
    #[serde(
        rename = "MessageTypeId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_type_id: Option<Uuid>,
    #[serde(
        rename = "CreatedOn",
        default,
        deserialize_with = "empty_date",
        skip_serializing
    )]
    pub created_on: Option<DateTime<Utc>>,
    /// The contact of the user (or OAuth technical user) that created it: how an integration recognises its own activities.
    #[serde(
        rename = "CreatedById",
        default,
        deserialize_with = "empty_guid",
        skip_serializing
    )]
    pub created_by_id: Option<Uuid>,
    #[serde(
        rename = "ModifiedOn",
        default,
        deserialize_with = "empty_date",
        skip_serializing
    )]
    pub modified_on: Option<DateTime<Utc>>,
    #[serde(
        rename = "ModifiedById",
        default,
        deserialize_with = "empty_guid",
        skip_serializing
    )]
    pub modified_by_id: Option<Uuid>,
}

impl Entity for Activity {
    const SET: &'static str = "Activity";
    const COLUMNS: &'static [&'static str] = &[
        "Id",
        "Title",
        "Notes",
        "Body",
        "TypeId",
        "ActivityCategoryId",
        "StatusId",
        "PriorityId",
        "CaseId",
        "ContactId",
        "OwnerId",
        "AuthorId",
        "StartDate",
        "DueDate",
        "MessageTypeId",
        "CreatedOn",
        "CreatedById",
        "ModifiedOn",
        "ModifiedById",
    ];
    fn id(&self) -> Option<Uuid> {
        self.id
    }
}

/// A person (reference §3.5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The record's key; may be chosen by the caller on create.
    #[serde(
        rename = "Id",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<Uuid>,
    #[serde(
        rename = "Name",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    #[serde(
        rename = "Email",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<String>,
    #[serde(
        rename = "Phone",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub phone: Option<String>,
    #[serde(
        rename = "MobilePhone",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub mobile_phone: Option<String>,
    #[serde(
        rename = "AccountId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub account_id: Option<Uuid>,
    #[serde(
        rename = "OwnerId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub owner_id: Option<Uuid>,
    #[serde(
        rename = "CreatedOn",
        default,
        deserialize_with = "empty_date",
        skip_serializing
    )]
    pub created_on: Option<DateTime<Utc>>,
    #[serde(
        rename = "CreatedById",
        default,
        deserialize_with = "empty_guid",
        skip_serializing
    )]
    pub created_by_id: Option<Uuid>,
}

impl Entity for Contact {
    const SET: &'static str = "Contact";
    const COLUMNS: &'static [&'static str] = &[
        "Id",
        "Name",
        "Email",
        "Phone",
        "MobilePhone",
        "AccountId",
        "OwnerId",
        "CreatedOn",
        "CreatedById",
    ];
    fn id(&self) -> Option<Uuid> {
        self.id
    }
}

/// A row of the `CaseStatus` lookup (reference §3.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseStatus {
    #[serde(
        rename = "Id",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<Uuid>,
    #[serde(
        rename = "Name",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    #[serde(rename = "IsFinal", default, skip_serializing_if = "Option::is_none")]
    pub is_final: Option<bool>,
    #[serde(
        rename = "IsResolved",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub is_resolved: Option<bool>,
    #[serde(rename = "IsPaused", default, skip_serializing_if = "Option::is_none")]
    pub is_paused: Option<bool>,
}

impl Entity for CaseStatus {
    const SET: &'static str = "CaseStatus";
    const COLUMNS: &'static [&'static str] = &["Id", "Name", "IsFinal", "IsResolved", "IsPaused"];
    fn id(&self) -> Option<Uuid> {
        self.id
    }
}

/// A user, role or org unit (reference §3.5). Case groups are roles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SysAdminUnit {
    #[serde(
        rename = "Id",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<Uuid>,
    #[serde(
        rename = "Name",
        default,
        deserialize_with = "empty_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// 0 organisation, 1 department, 2 manager, 3 team, 4 user, 5 portal user, 6 functional role.
    #[serde(
        rename = "SysAdminUnitTypeValue",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sys_admin_unit_type_value: Option<i64>,
    /// For a user: its contact.
    #[serde(
        rename = "ContactId",
        default,
        deserialize_with = "empty_guid",
        skip_serializing_if = "Option::is_none"
    )]
    pub contact_id: Option<Uuid>,
    #[serde(rename = "Active", default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl Entity for SysAdminUnit {
    const SET: &'static str = "SysAdminUnit";
    const COLUMNS: &'static [&'static str] =
        &["Id", "Name", "SysAdminUnitTypeValue", "ContactId", "Active"];
    fn id(&self) -> Option<Uuid> {
        self.id
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn creatio_empty_values_read_as_none() {
        let c: Case = serde_json::from_value(json!({
            "Id": "f3ed4f55-894b-42bc-b5a1-f10b9d0bc03f",
            "Number": "SR00000001",
            "Subject": "Printer on fire",
            "Symptoms": "",
            "OwnerId": "00000000-0000-0000-0000-000000000000",
            "ClosureDate": "0001-01-01T00:00:00Z",
            "RegisteredOn": "2020-05-18T17:50:39.2838673Z",
            "ProcessListeners": 0,
            "Unknown": [1, 2]
        }))
        .unwrap();
        assert_eq!(c.subject.as_deref(), Some("Printer on fire"));
        assert_eq!(c.symptoms, None);
        assert_eq!(c.owner_id, None);
        assert_eq!(c.closure_date, None);
        assert_eq!(
            c.registered_on.unwrap().to_rfc3339(),
            "2020-05-18T17:50:39.283867300+00:00"
        );
        assert_eq!(c.group_id, None, "absent columns are None too");
    }

    #[test]
    fn write_bodies_carry_only_what_is_set_and_never_server_columns() {
        let c = Case {
            subject: Some("Hello".into()),
            number: Some("SR1".into()),
            created_by_id: Some(Uuid::nil()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"Subject": "Hello"})
        );
    }

    #[test]
    fn columns_list_every_field() {
        assert_eq!(Case::COLUMNS.len(), 21);
        assert!(Activity::COLUMNS.contains(&"CreatedById"));
        assert_eq!(CaseStatus::SET, "CaseStatus");
    }
}
