//! Entity schemas: which entity sets exist, their columns, types, defaults and
//! required flags, as Creatio's own client schemas describe them
//! (reference §3). The OData layer, the `$metadata` document and record
//! validation are all driven from these tables, so a column added here is
//! readable, writable, filterable and described in CSDL at once.

use std::sync::OnceLock;

/// The empty GUID Creatio writes for an unset lookup.
pub const EMPTY_GUID: &str = "00000000-0000-0000-0000-000000000000";
/// The value Creatio writes for an unset date-time (`DateTime.MinValue`).
pub const EMPTY_DATE: &str = "0001-01-01T00:00:00Z";
/// Namespace of entity types in Creatio's CSDL.
pub const NAMESPACE: &str = "Terrasoft.Configuration.OData";

/// The type of a column, as OData sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// A plain `Edm.Guid` column that is not a lookup (the key `Id`).
    Guid,
    /// A lookup: scalar `<Name>Id` (`Edm.Guid`) plus navigation `<Name>` to the entity.
    Lookup(&'static str),
    /// `Edm.String`; `Some(n)` is the database column size, `None` is unlimited.
    Text(Option<usize>),
    Bool,
    Int,
    Float,
    DateTime,
    /// A binary (image) column, exposed only as media-link annotations.
    Media,
}

/// How a column is filled when a create request leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// Creatio's empty value for the type.
    Empty,
    /// The current date-time.
    Now,
    /// A fixed lookup GUID (a system-setting default such as `CaseStatusDef`).
    Guid(&'static str),
    /// The contact of the user making the request (`OwnerId`, `AuthorId`).
    CurrentContact,
    Bool(bool),
    /// The case number sequence: `SR` + 8 digits.
    CaseNumber,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The column name; for a lookup this is the navigation name (`Status`),
    /// the scalar being `StatusId`.
    pub name: &'static str,
    pub ty: ColType,
    pub required: bool,
    pub default: Default,
}

impl Column {
    /// The name the column has in a JSON record (`StatusId` for lookup `Status`).
    pub fn field_name(&self) -> String {
        match self.ty {
            ColType::Lookup(_) => format!("{}Id", self.name),
            _ => self.name.to_string(),
        }
    }
}

#[derive(Debug)]
pub struct EntitySchema {
    pub name: &'static str,
    pub columns: Vec<Column>,
    /// Field names (scalar form) in serialisation order, precomputed.
    pub fields: Vec<String>,
}

impl EntitySchema {
    /// Finds a column by its JSON field name (`Subject`, `StatusId`).
    pub fn column_by_field(&self, field: &str) -> Option<&Column> {
        self.fields
            .iter()
            .position(|f| f == field)
            .map(|i| &self.columns[i])
    }

    /// Finds a lookup column by its navigation name (`Status`).
    pub fn navigation(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name == name && matches!(c.ty, ColType::Lookup(_)))
    }

    pub fn qualified_name(&self) -> String {
        format!("{NAMESPACE}.{}", self.name)
    }
}

const fn col(name: &'static str, ty: ColType) -> Column {
    Column {
        name,
        ty,
        required: false,
        default: Default::Empty,
    }
}

const fn req(name: &'static str, ty: ColType, default: Default) -> Column {
    Column {
        name,
        ty,
        required: true,
        default,
    }
}

const fn dflt(name: &'static str, ty: ColType, default: Default) -> Column {
    Column {
        name,
        ty,
        required: false,
        default,
    }
}

use ColType::{Bool, DateTime, Float, Int, Lookup, Media, Text};

const SHORT: ColType = Text(Some(50));
const MEDIUM: ColType = Text(Some(250));
const LONG: ColType = Text(Some(500));
const MAX: ColType = Text(None);

fn system_columns() -> Vec<Column> {
    vec![
        col("Id", ColType::Guid),
        dflt("CreatedOn", DateTime, Default::Now),
        dflt("CreatedBy", Lookup("Contact"), Default::CurrentContact),
        dflt("ModifiedOn", DateTime, Default::Now),
        dflt("ModifiedBy", Lookup("Contact"), Default::CurrentContact),
        col("ProcessListeners", Int),
    ]
}

fn lookup_columns() -> Vec<Column> {
    vec![
        req("Name", MEDIUM, Default::Empty),
        col("Description", MEDIUM),
    ]
}

fn entity(name: &'static str, own: Vec<Column>) -> EntitySchema {
    let mut columns = system_columns();
    columns.extend(own);
    let fields = columns.iter().map(Column::field_name).collect();
    EntitySchema {
        name,
        columns,
        fields,
    }
}

/// Well-known lookup defaults (Creatio system settings `CaseStatusDef`, …).
pub mod defaults {
    pub const CASE_STATUS_NEW: &str = "ae5f2f10-f46b-1410-fd9a-0050ba5d6c38";
    pub const CASE_PRIORITY_MEDIUM: &str = "d9bd322c-f46b-1410-ee8c-0050ba5d6c38";
    pub const CASE_ORIGIN_CALL: &str = "5e5e202a-f46b-1410-3692-0050ba5d6c38";
    pub const CASE_CATEGORY_SERVICE_REQUEST: &str = "1c0bc159-150a-e111-a31b-00155d04c01d";
    pub const ACTIVITY_TYPE_TASK: &str = "fbe0acdc-cfc0-df11-b00f-001d60e938c6";
    pub const ACTIVITY_TYPE_EMAIL: &str = "e2831dec-cfc0-df11-b00f-001d60e938c6";
    pub const EMAIL_TYPE_INCOMING: &str = "7f9d1f86-f36b-1410-068c-20cf30b39373";
    pub const EMAIL_TYPE_OUTGOING: &str = "7f6d3f94-f36b-1410-068c-20cf30b39373";
    pub const ACTIVITY_CATEGORY_TODO: &str = "f51c4643-58e6-df11-971b-001d60e938c6";
    pub const ACTIVITY_CATEGORY_EMAIL: &str = "8038a396-7825-e011-8165-00155d043204";
    pub const ACTIVITY_STATUS_NOT_STARTED: &str = "384d4b84-58e6-df11-971b-001d60e938c6";
    pub const ACTIVITY_STATUS_COMPLETED: &str = "4bdbb88f-58e6-df11-971b-001d60e938c6";
    pub const ACTIVITY_PRIORITY_MEDIUM: &str = "ab96fa02-7fe6-df11-971b-001d60e938c6";
}

/// The entities and their columns, one literal per entity. Long because it
/// is data: every column with the evidence for its type and default beside
/// it, in the order Creatio's `$metadata` lists them.
fn build() -> Vec<EntitySchema> {
    use defaults::*;
    vec![
        entity(
            "Case",
            vec![
                dflt("Number", MEDIUM, Default::CaseNumber),
                req("RegisteredOn", DateTime, Default::Now),
                // Not required on an OData insert: a live tenant created a
                // Case without it (201, reference/creatio-evidence.md §4,
                // PYCLIENT README); "required" is a page rule.
                col("Subject", LONG),
                col("Symptoms", MAX),
                req(
                    "Status",
                    Lookup("CaseStatus"),
                    Default::Guid(CASE_STATUS_NEW),
                ),
                dflt(
                    "Priority",
                    Lookup("CasePriority"),
                    Default::Guid(CASE_PRIORITY_MEDIUM),
                ),
                dflt(
                    "Origin",
                    Lookup("CaseOrigin"),
                    Default::Guid(CASE_ORIGIN_CALL),
                ),
                dflt(
                    "Category",
                    Lookup("CaseCategory"),
                    Default::Guid(CASE_CATEGORY_SERVICE_REQUEST),
                ),
                col("Contact", Lookup("Contact")),
                col("Account", Lookup("Account")),
                col("Owner", Lookup("Contact")),
                col("Group", Lookup("SysAdminUnit")),
                col("ResponseDate", DateTime),
                col("SolutionDate", DateTime),
                col("RespondedOn", DateTime),
                col("SolutionProvidedOn", DateTime),
                col("FirstSolutionProvidedOn", DateTime),
                col("ClosureDate", DateTime),
                col("ClosureCode", Lookup("ClosureCode")),
                col("Solution", MAX),
                col("Notes", MAX),
                col("ResponseOverdue", Bool),
                col("SolutionOverdue", Bool),
                col("SolutionRemains", Float),
                col("ParentCase", Lookup("Case")),
                // A tenant customisation (custom columns carry the `Usr` prefix):
                // the emulated tenant tracks order numbers on cases, which is what
                // an admin maps an AI text field to.
                col("UsrOrderNumber", SHORT),
            ],
        ),
        entity(
            "Activity",
            vec![
                req("Title", LONG, Default::Empty),
                req("StartDate", DateTime, Default::Now),
                req("DueDate", DateTime, Default::Now),
                dflt(
                    "Type",
                    Lookup("ActivityType"),
                    Default::Guid(ACTIVITY_TYPE_TASK),
                ),
                req(
                    "ActivityCategory",
                    Lookup("ActivityCategory"),
                    Default::Guid(ACTIVITY_CATEGORY_TODO),
                ),
                req(
                    "Status",
                    Lookup("ActivityStatus"),
                    Default::Guid(ACTIVITY_STATUS_NOT_STARTED),
                ),
                req(
                    "Priority",
                    Lookup("ActivityPriority"),
                    Default::Guid(ACTIVITY_PRIORITY_MEDIUM),
                ),
                dflt("Owner", Lookup("Contact"), Default::CurrentContact),
                dflt("Author", Lookup("Contact"), Default::CurrentContact),
                col("Case", Lookup("Case")),
                col("Contact", Lookup("Contact")),
                col("Account", Lookup("Account")),
                col("Notes", MAX),
                col("Body", MAX),
                col("IsHtmlBody", Bool),
                col("Sender", LONG),
                col("MessageType", Lookup("EmailType")),
                col("Recepient", MAX),
                col("DetailedResult", MAX),
                dflt("ShowInScheduler", Bool, Default::Bool(true)),
                col("DurationInMinutes", Int),
            ],
        ),
        entity(
            "Contact",
            vec![
                req("Name", MEDIUM, Default::Empty),
                dflt("Owner", Lookup("Contact"), Default::CurrentContact),
                col("Account", Lookup("Account")),
                col("GivenName", SHORT),
                col("Surname", SHORT),
                col("MiddleName", SHORT),
                col("JobTitle", MEDIUM),
                col("Email", MEDIUM),
                col("Phone", MEDIUM),
                col("MobilePhone", MEDIUM),
                col("BirthDate", DateTime),
                col("Notes", MAX),
                col("Photo", Media),
            ],
        ),
        // Written by SLM on every Case save (reference/creatio-evidence.md §4,
        // INSTALL `CaseSLMEventListener.CrtSLM.cs`, `conf/content/
        // CaseLifecycle.js`): it references the case, so a freshly created
        // Case cannot be deleted (the FK error PYCLIENT expects).
        entity(
            "CaseLifecycle",
            vec![
                req("Case", Lookup("Case"), Default::Empty),
                col("Status", Lookup("CaseStatus")),
                dflt("StartDate", DateTime, Default::Now),
                col("EndDate", DateTime),
            ],
        ),
        // A contact's phones and e-mails, one row each. `SearchNumber` is
        // what Creatio searches by: a phone's digits reversed (Creatio's
        // CTI matches the first 7 with StartWith, so the last 7 digits of
        // the number), an e-mail in lower case (reference/
        // creatio-evidence.md §5; INSTALL `BaseCommunicationSchema`,
        // `ContactUtilities.PrepareSearchNumber`, `PhoneNumberComparer`,
        // `BaseContactUtilities`). The type lookup is left out.
        entity(
            "ContactCommunication",
            vec![
                req("Contact", Lookup("Contact"), Default::Empty),
                req("Number", MEDIUM, Default::Empty),
                col("SearchNumber", MEDIUM),
                col("Primary", Bool),
                col("NonActual", Bool),
            ],
        ),
        entity(
            "Account",
            vec![
                req("Name", MEDIUM, Default::Empty),
                dflt("Owner", Lookup("Contact"), Default::CurrentContact),
                col("PrimaryContact", Lookup("Contact")),
                col("Code", SHORT),
                col("Phone", MEDIUM),
                col("Web", MEDIUM),
                col("Address", LONG),
                col("Notes", MAX),
                col("Logo", Media),
            ],
        ),
        entity("CaseStatus", {
            let mut c = lookup_columns();
            c.extend([
                col("IsFinal", Bool),
                col("IsResolved", Bool),
                col("IsPaused", Bool),
                col("StageNumber", Int),
                col("ClosureCode", Lookup("ClosureCode")),
                dflt("IsDisplayed", Bool, Default::Bool(true)),
            ]);
            c
        }),
        entity("CasePriority", {
            let mut c = lookup_columns();
            c.push(col("Priority", Int));
            c
        }),
        entity("CaseOrigin", lookup_columns()),
        entity("CaseCategory", lookup_columns()),
        entity("ClosureCode", lookup_columns()),
        entity("ActivityType", lookup_columns()),
        entity("ActivityCategory", {
            let mut c = lookup_columns();
            c.push(col("ActivityType", Lookup("ActivityType")));
            c
        }),
        entity("ActivityStatus", {
            let mut c = lookup_columns();
            c.extend([col("Finish", Bool), col("Code", SHORT)]);
            c
        }),
        entity("ActivityPriority", lookup_columns()),
        entity("EmailType", lookup_columns()),
        entity(
            "SysAdminUnit",
            vec![
                req("Name", MEDIUM, Default::Empty),
                col("Description", MEDIUM),
                col("SysAdminUnitTypeValue", Int),
                col("ParentRole", Lookup("SysAdminUnit")),
                col("Contact", Lookup("Contact")),
                col("Account", Lookup("Account")),
                dflt("Active", Bool, Default::Bool(true)),
                col("ConnectionType", Int),
                col("Email", MEDIUM),
            ],
        ),
    ]
}

/// All entity schemas, built once.
pub fn all() -> &'static [EntitySchema] {
    static SCHEMAS: OnceLock<Vec<EntitySchema>> = OnceLock::new();
    SCHEMAS.get_or_init(build)
}

/// Finds an entity schema by its entity-set name (case-sensitive, as in Creatio).
pub fn find(name: &str) -> Option<&'static EntitySchema> {
    all().iter().find(|s| s.name == name)
}
