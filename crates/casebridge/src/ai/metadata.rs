//! What an AI field may write, read from the org's `$metadata` (CSDL,
//! creatio-api.md §2.1): the `Case` entity type's properties (a text column
//! is `Edm.String`, maybe with `MaxLength`) and navigation properties (a
//! lookup `Priority` is the scalar `PriorityId` plus a `NavigationProperty`
//! whose type names the lookup entity).

use std::collections::HashMap;

/// A Case column an AI field may be mapped to.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `Edm.String`, written as is (trimmed to `max_length`).
    Text {
        name: String,
        max_length: Option<usize>,
    },
    /// A lookup: written as `<Name>Id` with a GUID of `entity_set`.
    Lookup { column: String, entity_set: String },
}

impl Column {
    /// The name an AI field's `field_name` takes.
    pub fn name(&self) -> &str {
        match self {
            Column::Text { name, .. } => name,
            Column::Lookup { column, .. } => column,
        }
    }
}

/// The `Case` entity type as `$metadata` describes it.
#[derive(Debug, Default)]
pub struct CaseSchema {
    /// Property name → (EDM type, MaxLength).
    properties: HashMap<String, (String, Option<usize>)>,
    /// Navigation property name → target entity set.
    navigations: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    #[error("Creatio's $metadata could not be read as CSDL: {0}")]
    NotCsdl(String),
    #[error("Creatio's $metadata has no Case entity (is the Service module installed?)")]
    NoCase,
}

impl CaseSchema {
    pub fn parse(csdl: &str) -> Result<CaseSchema, SchemaError> {
        let doc =
            roxmltree::Document::parse(csdl).map_err(|e| SchemaError::NotCsdl(e.to_string()))?;
        let local = |name: &str| name.rsplit('.').next().unwrap_or(name).to_string();
        // Entity type → entity set name (they are the same in Creatio, but
        // the container is the authority).
        let mut set_of: HashMap<String, String> = HashMap::new();
        for set in doc.descendants().filter(|n| n.has_tag_name("EntitySet")) {
            if let (Some(name), Some(ty)) = (set.attribute("Name"), set.attribute("EntityType")) {
                set_of.insert(local(ty), name.to_string());
            }
        }
        let case = doc
            .descendants()
            .find(|n| n.has_tag_name("EntityType") && n.attribute("Name") == Some("Case"))
            .ok_or(SchemaError::NoCase)?;
        let mut schema = CaseSchema::default();
        for child in case.children().filter(|n| n.is_element()) {
            let Some(name) = child.attribute("Name") else {
                continue;
            };
            if child.has_tag_name("Property") {
                let ty = child.attribute("Type").unwrap_or("").to_string();
                let max = child.attribute("MaxLength").and_then(|m| m.parse().ok());
                schema.properties.insert(name.to_string(), (ty, max));
            } else if child.has_tag_name("NavigationProperty") {
                let target = local(child.attribute("Type").unwrap_or(""));
                let set = set_of.get(&target).cloned().unwrap_or(target);
                schema.navigations.insert(name.to_string(), set);
            }
        }
        Ok(schema)
    }

    /// Every Case column an AI field can fill, by name: the text columns
    /// and the lookups (as `<Name>Id`).
    pub fn fillable(&self) -> Vec<Column> {
        let mut out: Vec<Column> = self
            .properties
            .iter()
            .filter(|(_, (ty, _))| ty == "Edm.String")
            .map(|(name, (_, max))| Column::Text {
                name: name.clone(),
                max_length: *max,
            })
            .chain(self.navigations.iter().map(|(nav, set)| Column::Lookup {
                column: format!("{nav}Id"),
                entity_set: set.clone(),
            }))
            .collect();
        out.sort_by(|a, b| a.name().cmp(b.name()));
        out
    }

    /// The column `field_name` (`PriorityId`, `Priority` or `UsrOrderNumber`)
    /// names, or an error that says what exists instead.
    pub fn column(&self, field_name: &str) -> Result<Column, String> {
        let lookup_name = field_name
            .strip_suffix("Id")
            .filter(|n| self.navigations.contains_key(*n));
        if let Some(nav) = lookup_name.or(self
            .navigations
            .contains_key(field_name)
            .then_some(field_name))
        {
            return Ok(Column::Lookup {
                column: format!("{nav}Id"),
                entity_set: self.navigations[nav].clone(),
            });
        }
        match self.properties.get(field_name) {
            Some((ty, max)) if ty == "Edm.String" => Ok(Column::Text {
                name: field_name.to_string(),
                max_length: *max,
            }),
            Some((ty, _)) => Err(format!(
                "Case.{field_name} is a {} column; AI fields fill text and lookup columns only",
                ty.trim_start_matches("Edm.")
            )),
            None => {
                let names: Vec<&str> = self
                    .properties
                    .keys()
                    .map(String::as_str)
                    .chain(self.navigations.keys().map(String::as_str))
                    .collect();
                let close = closest(field_name, names.iter().copied(), 3);
                Err(if close.is_empty() {
                    format!("Case has no column {field_name:?}")
                } else {
                    format!(
                        "Case has no column {field_name:?}; did you mean {}?",
                        close.join(", ")
                    )
                })
            }
        }
    }
}

/// The names most like `wanted` (Jaro–Winkler on lower case), best first;
/// only ones similar enough to be a plausible typo or variant.
pub fn closest<'a>(wanted: &str, names: impl Iterator<Item = &'a str>, n: usize) -> Vec<String> {
    let w = wanted.to_lowercase();
    let mut scored: Vec<(f64, &str)> = names
        .map(|name| {
            let l = name.to_lowercase();
            let mut s = strsim::jaro_winkler(&w, &l);
            if l.contains(&w) || w.contains(&l) {
                s = s.max(0.9);
            }
            (s, name)
        })
        .filter(|(s, _)| *s >= 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(n)
        .map(|(_, s)| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSDL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>
<Schema Namespace="Terrasoft.Configuration.OData" xmlns="http://docs.oasis-open.org/odata/ns/edm">
<EntityType Name="Case"><Key><PropertyRef Name="Id" /></Key>
<Property Name="Id" Type="Edm.Guid" Nullable="false" />
<Property Name="Subject" Type="Edm.String" Nullable="false" MaxLength="500" />
<Property Name="UsrOrderNumber" Type="Edm.String" Nullable="false" MaxLength="50" />
<Property Name="Notes" Type="Edm.String" Nullable="false" />
<Property Name="PriorityId" Type="Edm.Guid" Nullable="false" />
<Property Name="ResponseOverdue" Type="Edm.Boolean" Nullable="false" />
<NavigationProperty Name="Priority" Type="Terrasoft.Configuration.OData.CasePriority" />
</EntityType>
<EntityType Name="CasePriority"><Key><PropertyRef Name="Id" /></Key></EntityType>
<EntityContainer Name="Default"><EntitySet Name="CasePriority" EntityType="Terrasoft.Configuration.OData.CasePriority" /></EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"#;

    #[test]
    fn columns_are_found_by_any_spelling() {
        let s = CaseSchema::parse(CSDL).unwrap();
        let lookup = Column::Lookup {
            column: "PriorityId".into(),
            entity_set: "CasePriority".into(),
        };
        assert_eq!(s.column("PriorityId").unwrap(), lookup);
        assert_eq!(s.column("Priority").unwrap(), lookup);
        assert_eq!(
            s.column("UsrOrderNumber").unwrap(),
            Column::Text {
                name: "UsrOrderNumber".into(),
                max_length: Some(50)
            }
        );
        assert_eq!(
            s.column("Notes").unwrap(),
            Column::Text {
                name: "Notes".into(),
                max_length: None
            }
        );
    }

    #[test]
    fn wrong_columns_get_a_hint() {
        let s = CaseSchema::parse(CSDL).unwrap();
        let e = s.column("UsrOrderNo").unwrap_err();
        assert!(e.contains("did you mean UsrOrderNumber"), "{e}");
        let e = s.column("ResponseOverdue").unwrap_err();
        assert!(e.contains("is a Boolean column"), "{e}");
        let e = s.column("Zzz").unwrap_err();
        assert_eq!(e, "Case has no column \"Zzz\"");
    }

    #[test]
    fn not_csdl_or_no_case() {
        assert!(matches!(
            CaseSchema::parse("<html"),
            Err(SchemaError::NotCsdl(_))
        ));
        assert_eq!(
            CaseSchema::parse("<edmx:Edmx xmlns:edmx=\"x\"/>").unwrap_err(),
            SchemaError::NoCase
        );
    }

    #[test]
    fn closest_names() {
        let names = ["Critical", "High", "Medium", "Low"];
        assert_eq!(closest("Hgh", names.iter().copied(), 3), ["High"]);
        assert_eq!(
            closest("Urgent", names.iter().copied(), 3),
            Vec::<String>::new()
        );
        assert_eq!(closest("critcal", names.iter().copied(), 1), ["Critical"]);
    }
}
