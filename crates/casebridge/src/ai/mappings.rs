//! AI field mappings as an admin writes them, checked: first their shape
//! (what can be checked without Creatio), then against the org's Creatio
//! (`$metadata` and the lookups). The problems come back all at once, each
//! naming its mapping's field, with the closest names Creatio has; the API
//! (`api/ai_fields.rs`) turns them into its answer.

use std::collections::HashMap;

use creatio::query::Query;
use creatio::Client;
use uuid::Uuid;

use super::metadata::{closest, CaseSchema, Column};
use super::{offline, same_name, Choice, FieldType, Mapping, MAX_MAPPINGS};

/// Columns casebridge itself manages on a case: an AI value there would
/// fight the sync (the status drives the two-way closure, the description
/// carries the summary and the deep link).
const MANAGED_COLUMNS: &[&str] = &[
    "Id",
    "Number",
    "StatusId",
    "Symptoms",
    "CreatedOn",
    "CreatedById",
    "ModifiedOn",
    "ModifiedById",
    "ProcessListeners",
];
const MAX_DESCRIPTION: usize = 4000;
const MAX_TITLE: usize = 100;
const MAX_OPTIONS: usize = 100;
/// The largest `max_length` of a text field (unlimited columns take more,
/// but an AI value that long is not a field value).
const MAX_TEXT_LENGTH: usize = 100_000;
/// Lookup rows read to resolve option names (a dropdown of more options
/// than this is not a dropdown people can describe).
const MAX_LOOKUP_ROWS: u32 = 2000;

/// One mapping as an admin writes it.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingIn {
    /// A Case column: `PriorityId` (or `Priority`), `UsrOrderNumber`.
    pub field_name: String,
    /// The label people see; the field name when absent.
    #[serde(default)]
    pub title: Option<String>,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// How to choose the value. For a dropdown, one line per option:
    /// `High if a key feature is broken`.
    pub description: String,
    /// A dropdown's option names, when the description does not name them
    /// one per line.
    #[serde(default)]
    pub options: Option<Vec<String>>,
    /// A text field's longest value, in characters: the Creatio column's
    /// size (50, 250 or 500; unlimited columns take any). Creatio's
    /// `$metadata` does not tell it, so the default is 50, the smallest.
    #[serde(default)]
    pub max_length: Option<usize>,
}

/// Why mappings were refused.
#[derive(Debug)]
pub enum Refused {
    /// More mappings than [`MAX_MAPPINGS`].
    TooMany(usize),
    /// What is wrong with each mapping, all of them.
    Problems(Vec<Problem>),
    /// Creatio could not be read (`what` says what casebridge was reading).
    Creatio { what: String, error: creatio::Error },
    /// Creatio's `$metadata` has no usable Case.
    Schema(String),
}

/// One problem with one mapping, for the error's `fields` list.
#[derive(Debug)]
pub struct Problem {
    pub field: String,
    pub message: String,
    pub hint: String,
}

fn problem(i: usize, what: &str, message: String, hint: &str) -> Problem {
    Problem {
        field: format!("fields[{i}].{what}"),
        message,
        hint: hint.into(),
    }
}

/// Checks what can be checked without Creatio.
pub fn check_shape(fields: &[MappingIn]) -> Result<(), Refused> {
    let mut problems = Vec::new();
    if fields.len() > MAX_MAPPINGS {
        return Err(Refused::TooMany(fields.len()));
    }
    for (i, f) in fields.iter().enumerate() {
        check_field(i, f, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refused::Problems(problems))
    }
}

/// What is wrong with mapping `i`, as far as it shows without Creatio.
fn check_field(i: usize, f: &MappingIn, problems: &mut Vec<Problem>) {
    match (f.kind, f.max_length) {
        (FieldType::Dropdown, Some(_)) => problems.push(problem(
            i,
            "max_length",
            "max_length is for text fields; a dropdown's value is an option".to_string(),
            "Leave max_length out of dropdown fields.",
        )),
        (FieldType::Text, Some(n)) if !(1..=MAX_TEXT_LENGTH).contains(&n) => {
            problems.push(problem(
                i,
                "max_length",
                format!("max_length {n} is not from 1 to {MAX_TEXT_LENGTH}"),
                "Give the Creatio column's size: 50, 250 or 500 characters (the object designer shows the text type).",
            ))
        }
        _ => {}
    }
    let name = f.field_name.trim();
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        problems.push(problem(
            i,
            "field_name",
            format!("{name:?} is not a column name"),
            "Use the column's code as Creatio's object designer shows it (PriorityId, UsrOrderNumber), not its caption.",
        ));
    }
    if f.title
        .as_deref()
        .is_some_and(|t| t.chars().count() > MAX_TITLE)
    {
        problems.push(problem(
            i,
            "title",
            format!("is longer than {MAX_TITLE} characters"),
            "Use a short label such as Priority.",
        ));
    }
    let d = f.description.trim();
    if d.is_empty() || d.chars().count() > MAX_DESCRIPTION {
        problems.push(problem(
            i,
            "description",
            format!("must have 1 to {MAX_DESCRIPTION} characters"),
            "Describe how to choose the value; for a dropdown one line per option, like \"High if a key feature is broken\".",
        ));
    }
    match (&f.options, f.kind) {
        (Some(_), FieldType::Text) => problems.push(problem(
            i,
            "options",
            "a text field has no options".into(),
            "Remove options, or make the field a dropdown.",
        )),
        (Some(o), FieldType::Dropdown)
            if o.is_empty()
                || o.len() > MAX_OPTIONS
                || o.iter()
                    .any(|n| n.trim().is_empty() || n.chars().count() > 250) =>
        {
            problems.push(problem(
                i,
                "options",
                format!("must list 1 to {MAX_OPTIONS} non-empty names"),
                "List the lookup values by name, as Creatio shows them.",
            ))
        }
        _ => {}
    }
}

/// The org's Case entity as its `$metadata` describes it.
pub async fn case_schema(client: &Client) -> Result<CaseSchema, Refused> {
    let csdl = client.metadata().await.map_err(|error| Refused::Creatio {
        what: "Could not read Creatio's $metadata to check the columns".into(),
        error,
    })?;
    CaseSchema::parse(&csdl).map_err(|e| Refused::Schema(e.to_string()))
}

/// Checks the mappings (already [`check_shape`]d) against the org's
/// Creatio: each column exists on Case and suits its type, each dropdown
/// option is a row of the lookup. Returns them resolved: columns, lookups,
/// option GUIDs and sizes.
pub async fn resolve(client: &Client, fields: Vec<MappingIn>) -> Result<Vec<Mapping>, Refused> {
    let schema = case_schema(client).await?;
    let mut problems = Vec::new();
    let mut lookups = Lookups::new(client);
    let mut out = Vec::new();
    let mut columns_seen: HashMap<String, usize> = HashMap::new();
    for (i, f) in fields.into_iter().enumerate() {
        let field_name = f.field_name.trim().to_string();
        let (column_name, lookup, max_length) = match column_for(&schema, i, &f, &field_name) {
            Ok(c) => c,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        if let Some(earlier) = columns_seen.insert(column_name.clone(), i) {
            problems.push(problem(
                i,
                "field_name",
                format!("Case.{column_name} is mapped already by fields[{earlier}]"),
                "Map each column once.",
            ));
            continue;
        }
        let options = match &lookup {
            None => Vec::new(),
            Some(set) => match lookups.options(i, &f, set).await? {
                Ok(options) => options,
                Err(found) => {
                    problems.extend(found);
                    continue;
                }
            },
        };
        out.push(Mapping {
            title: f
                .title
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| field_name.clone()),
            field_name,
            kind: f.kind,
            description: f.description.trim().to_string(),
            column: column_name,
            lookup,
            options,
            max_length,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Refused::Problems(problems))
    }
}

/// The Case column mapping `i` names, if it suits the field's type and
/// casebridge does not manage it: its name, its lookup's entity set (a
/// dropdown) and its size (a text).
fn column_for(
    schema: &CaseSchema,
    i: usize,
    f: &MappingIn,
    field_name: &str,
) -> Result<(String, Option<String>, Option<usize>), Problem> {
    let column = schema.column(field_name).map_err(|message| {
        problem(
            i,
            "field_name",
            message,
            "Use a column of the Case object: its code as the object designer shows it.",
        )
    })?;
    let found = match (&column, f.kind) {
        // The admin's size, else one $metadata gives (real Creatio
        // gives none), else the smallest Creatio text size.
        (Column::Text { name, max_length }, FieldType::Text) => (
            name.clone(),
            None,
            Some(
                f.max_length
                    .or(*max_length)
                    .unwrap_or(crate::ai::DEFAULT_TEXT_LENGTH),
            ),
        ),
        (Column::Lookup { column, entity_set }, FieldType::Dropdown) => {
            (column.clone(), Some(entity_set.clone()), None)
        }
        (Column::Text { name, .. }, FieldType::Dropdown) => {
            return Err(problem(
                i,
                "type",
                format!("Case.{name} is a text column, not a lookup"),
                "Make the field type text, or map a lookup column (one whose values come from a list).",
            ));
        }
        (Column::Lookup { column, entity_set }, FieldType::Text) => {
            return Err(problem(
                i,
                "type",
                format!("Case.{column} is a lookup of {entity_set}, so its value must be one of its rows"),
                "Make the field type dropdown and name its options.",
            ));
        }
    };
    if MANAGED_COLUMNS.contains(&found.0.as_str()) {
        return Err(problem(
            i,
            "field_name",
            format!("Case.{} is written by casebridge itself", found.0),
            "Map another column; the status follows the conversation's resolution and the description carries the summary.",
        ));
    }
    Ok(found)
}

/// The rows of the lookups the mappings name, each read once.
struct Lookups<'c> {
    client: &'c Client,
    rows: HashMap<String, Vec<Choice>>,
}

impl<'c> Lookups<'c> {
    fn new(client: &'c Client) -> Self {
        Lookups {
            client,
            rows: HashMap::new(),
        }
    }

    /// The rows of entity set `set`.
    async fn rows(&mut self, set: &str) -> Result<&[Choice], Refused> {
        if !self.rows.contains_key(set) {
            let found = self
                .client
                .list_values(
                    set,
                    &Query::new()
                        .select(["Id", "Name"])
                        .order_by_asc("Name")
                        .top(MAX_LOOKUP_ROWS),
                )
                .await
                .map_err(|error| Refused::Creatio {
                    what: format!("Could not read the {set} lookup"),
                    error,
                })?;
            let choices = found
                .iter()
                .filter_map(|r| {
                    Some(Choice {
                        name: r["Name"].as_str()?.to_string(),
                        id: r["Id"].as_str()?.parse::<Uuid>().ok()?,
                    })
                })
                .collect();
            self.rows.insert(set.to_string(), choices);
        }
        Ok(&self.rows[set])
    }

    /// A dropdown's options (listed, or named by its description's lines)
    /// as rows of `set`; the problems when a name is none of them.
    async fn options(
        &mut self,
        i: usize,
        f: &MappingIn,
        set: &str,
    ) -> Result<Result<Vec<Choice>, Vec<Problem>>, Refused> {
        let names: Vec<String> = match &f.options {
            Some(list) => list.iter().map(|n| n.trim().to_string()).collect(),
            None => offline::criteria(&f.description)
                .into_iter()
                .map(|c| c.option)
                .collect(),
        };
        let mut unique: Vec<String> = Vec::new();
        for n in names {
            if !unique.iter().any(|u| same_name(u, &n)) {
                unique.push(n);
            }
        }
        if unique.is_empty() {
            return Ok(Err(vec![problem(
                i,
                "description",
                "names no options".into(),
                "Write one line per option (\"High if a key feature is broken\"), or list them in options.",
            )]));
        }
        let available = self.rows(set).await?;
        let mut options = Vec::new();
        let mut problems = Vec::new();
        for name in unique {
            match available.iter().find(|c| same_name(&c.name, &name)) {
                Some(c) => options.push(c.clone()),
                None => {
                    let close = closest(&name, available.iter().map(|c| c.name.as_str()), 3);
                    let all: Vec<&str> =
                        available.iter().take(12).map(|c| c.name.as_str()).collect();
                    problems.push(problem(
                        i,
                        "options",
                        if close.is_empty() {
                            format!("{name:?} is not a {set} value; the values are: {}", all.join(", "))
                        } else {
                            format!("{name:?} is not a {set} value; closest: {}", close.join(", "))
                        },
                        "Name the options exactly as Creatio lists them (case does not matter), or add the value to the lookup in Creatio first. A description line of the form \"X: …\" or \"X if …\" names an option X; list the options in options when a line is not one.",
                    ));
                }
            }
        }
        Ok(if problems.is_empty() {
            Ok(options)
        } else {
            Err(problems)
        })
    }
}
