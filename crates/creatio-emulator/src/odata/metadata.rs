//! `GET /0/odata/$metadata`: the CSDL (`edmx:Edmx Version="4.0"`) of the
//! emulated entity types, in the shape Creatio publishes (reference §2.1):
//! namespace `Terrasoft.Configuration.OData`, key `Id`, each lookup as a
//! scalar `<Name>Id` plus a `NavigationProperty`, text as
//! `Edm.String Nullable="false"`, no `DefaultValue` facets.
//!
//! Like real Creatio, text columns carry **no `MaxLength`** and Guid columns
//! (lookups) no `Nullable` facet: a live probe's CSDL reads
//! `<Property Name="Name" Type="Edm.String" Nullable="false" />` and
//! `<Property Name="UsrColorId" Type="Edm.Guid" />`
//! (`reference/creatio-evidence.md` §2, CLIO
//! `spec/read-column-default-values/read-column-default-values-odata-probe.md`).
//! A client cannot learn a column's size here; the store still enforces
//! the sizes, and a longer value fails as a database error
//! ([`crate::store`], evidence §2).

use std::fmt::Write;

use crate::schema::{self, ColType, NAMESPACE};

pub fn csdl() -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n\
         <edmx:DataServices>\n",
    );
    let _ = writeln!(
        x,
        "<Schema Namespace=\"{NAMESPACE}\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">"
    );
    for entity in schema::all() {
        let _ = writeln!(x, "<EntityType Name=\"{}\">", entity.name);
        x.push_str("<Key><PropertyRef Name=\"Id\" /></Key>\n");
        for (column, field) in entity.columns.iter().zip(&entity.fields) {
            let (ty, facets) = match column.ty {
                // The key is never null; other Guid columns carry no facet.
                ColType::Guid => ("Edm.Guid", " Nullable=\"false\"".to_string()),
                ColType::Lookup(_) => ("Edm.Guid", String::new()),
                ColType::Text(_) => ("Edm.String", " Nullable=\"false\"".to_string()),
                ColType::Bool => ("Edm.Boolean", " Nullable=\"false\"".to_string()),
                ColType::Int => ("Edm.Int32", " Nullable=\"false\"".to_string()),
                ColType::Float => (
                    "Edm.Decimal",
                    " Nullable=\"false\" Precision=\"18\" Scale=\"2\"".to_string(),
                ),
                ColType::DateTime => ("Edm.DateTimeOffset", " Nullable=\"false\"".to_string()),
                ColType::Media => ("Edm.Stream", String::new()),
            };
            let _ = writeln!(x, "<Property Name=\"{field}\" Type=\"{ty}\"{facets} />");
        }
        for column in &entity.columns {
            if let ColType::Lookup(target) = column.ty {
                let _ = writeln!(
                    x,
                    "<NavigationProperty Name=\"{}\" Type=\"{NAMESPACE}.{target}\" />",
                    column.name
                );
            }
        }
        x.push_str("</EntityType>\n");
    }
    x.push_str("<EntityContainer Name=\"Default\">\n");
    for entity in schema::all() {
        let _ = writeln!(
            x,
            "<EntitySet Name=\"{0}\" EntityType=\"{NAMESPACE}.{0}\">",
            entity.name
        );
        for column in &entity.columns {
            if let ColType::Lookup(target) = column.ty {
                let _ = writeln!(
                    x,
                    "<NavigationPropertyBinding Path=\"{}\" Target=\"{target}\" />",
                    column.name
                );
            }
        }
        x.push_str("</EntitySet>\n");
    }
    x.push_str("</EntityContainer>\n</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n");
    x
}
