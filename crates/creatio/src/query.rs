//! A typed OData 4 query builder that writes only what Creatio accepts.
//!
//! Creatio's OData has pitfalls that a hand-written query string falls into
//! (reference §2.3): a lookup filtered by its flat column (`CaseId eq …`) is a
//! 500 "Column by path … not found"; `guid'…'` literals are a syntax error; a
//! quoted date-time compared with a date column is a 400; `in (…)` is not
//! supported. Here a filter is built from [`Path`]s and [`Literal`]s, and the
//! encoder writes each literal in the one form Creatio takes: GUIDs bare,
//! strings single-quoted with `''` escaping, date-times unquoted in UTC.
//! Lookups are addressed through their navigation property with
//! [`lookup`] (`Case/Id eq …`); comparing a flat `<Name>Id` column with a
//! GUID is refused with an error naming the right path, so the pitfall cannot
//! be written by accident.
//!
//! ```
//! use creatio::query::{col, lookup, Query};
//! use uuid::Uuid;
//!
//! let case = Uuid::nil();
//! let q = Query::new()
//!     .select(["Id", "Title"])
//!     .filter(lookup("Case").eq(case).and(col("Title").contains("O'Brien")))
//!     .order_by_asc("CreatedOn")
//!     .top(50);
//! assert_eq!(
//!     q.to_query_string().unwrap(),
//!     "$select=Id,Title&$filter=Case/Id%20eq%2000000000-0000-0000-0000-000000000000%20and%20contains(Title,'O''Brien')&$orderby=CreatedOn%20asc&$top=50"
//! );
//! ```

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use uuid::Uuid;

use crate::error::Error;

/// A column or navigation path in a filter or `$orderby`, e.g. `Subject` or
/// `Status/Name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    path: String,
    kind: PathKind,
    /// Compared through `tolower(…)`, for matching text whatever its case
    /// on a tenant whose database compares case-sensitively (PostgreSQL;
    /// reference/creatio-evidence.md §5). A standard OData 4 function of
    /// the ASP.NET OData server Creatio is built on; callers keep a plain
    /// fallback, as no live tenant has been seen answering it.
    lowercase: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    /// A column or a navigation path to one (`Status/IsFinal`).
    Column,
    /// `<Navigation>/Id`: how Creatio filters a lookup.
    Lookup,
    /// A GUID column that is not a lookup (e.g. `SocialMessage.EntityId`).
    GuidColumn,
}

/// A column, or a path through navigation properties (`Status/Name`).
/// Compare a lookup with [`lookup`], not with its `<Name>Id` column.
pub fn col(path: impl Into<String>) -> Path {
    Path {
        path: path.into(),
        kind: PathKind::Column,
        lowercase: false,
    }
}

/// A lookup, addressed as Creatio requires: `lookup("Case")` is `Case/Id`.
/// A trailing `Id` is tolerated (`lookup("CaseId")` is also `Case/Id`), so
/// a column name copied from a record works too.
pub fn lookup(navigation: impl Into<String>) -> Path {
    let mut nav: String = navigation.into();
    if let Some(stripped) = nav.strip_suffix("/Id") {
        nav = stripped.to_string();
    } else if nav.len() > 2 && nav.ends_with("Id") {
        nav.truncate(nav.len() - 2);
    }
    Path {
        path: format!("{nav}/Id"),
        kind: PathKind::Lookup,
        lowercase: false,
    }
}

/// A GUID column that is *not* a lookup and so is filtered directly, such
/// as `SocialMessage.EntityId` (reference §2.3).
pub fn guid_column(name: impl Into<String>) -> Path {
    Path {
        path: name.into(),
        kind: PathKind::GuidColumn,
        lowercase: false,
    }
}

/// A literal value in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Guid(Uuid),
    String(String),
    DateTime(DateTime<Utc>),
    Bool(bool),
    Int(i64),
    Float(f64),
    Null,
}

impl From<Uuid> for Literal {
    fn from(v: Uuid) -> Self {
        Literal::Guid(v)
    }
}
impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::String(v.to_string())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::String(v)
    }
}
impl From<&String> for Literal {
    fn from(v: &String) -> Self {
        Literal::String(v.clone())
    }
}
impl From<DateTime<Utc>> for Literal {
    fn from(v: DateTime<Utc>) -> Self {
        Literal::DateTime(v)
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Bool(v)
    }
}
impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int(v)
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Literal::Int(v.into())
    }
}
impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Literal::Float(v)
    }
}

impl Literal {
    fn write(&self, out: &mut String) -> Result<(), Error> {
        match self {
            // Bare: `guid'…'` is a syntax error on Creatio.
            Literal::Guid(g) => write!(out, "{}", g.hyphenated()).ok(),
            Literal::String(s) => {
                out.push('\'');
                out.push_str(&s.replace('\'', "''"));
                out.push('\'');
                Some(())
            }
            // Unquoted: a quoted date-time is compared as a string and refused.
            Literal::DateTime(d) => {
                out.push_str(&d.to_rfc3339_opts(SecondsFormat::AutoSi, true));
                Some(())
            }
            Literal::Bool(b) => write!(out, "{b}").ok(),
            Literal::Int(i) => write!(out, "{i}").ok(),
            Literal::Float(f) if f.is_finite() => write!(out, "{f:?}").ok(),
            Literal::Float(f) => {
                return Err(Error::InvalidRequest(format!(
                    "{f} cannot be written as an OData number"
                )))
            }
            Literal::Null => {
                out.push_str("null");
                Some(())
            }
        };
        Ok(())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn keyword(self) -> &'static str {
        match self {
            Cmp::Eq => "eq",
            Cmp::Ne => "ne",
            Cmp::Gt => "gt",
            Cmp::Ge => "ge",
            Cmp::Lt => "lt",
            Cmp::Le => "le",
        }
    }
}

/// A string function Creatio supports in filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFn {
    Contains,
    StartsWith,
    EndsWith,
}

/// A `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(Path, Cmp, Literal),
    Function(StringFn, Path, String),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

impl Path {
    /// The text column compared in lower case: `tolower(Email) eq 'a@b.c'`
    /// (give the value in lower case too).
    pub fn lowercased(mut self) -> Path {
        self.lowercase = true;
        self
    }

    fn write_path(&self, out: &mut String) {
        if self.lowercase {
            out.push_str("tolower(");
            out.push_str(&self.path);
            out.push(')');
        } else {
            out.push_str(&self.path);
        }
    }

    pub fn compare(self, op: Cmp, value: impl Into<Literal>) -> Filter {
        Filter::Compare(self, op, value.into())
    }
    pub fn eq(self, value: impl Into<Literal>) -> Filter {
        self.compare(Cmp::Eq, value)
    }
    pub fn ne(self, value: impl Into<Literal>) -> Filter {
        self.compare(Cmp::Ne, value)
    }
    pub fn gt(self, value: impl Into<Literal>) -> Filter {
        self.compare(Cmp::Gt, value)
    }
    pub fn ge(self, value: impl Into<Literal>) -> Filter {
        self.compare(Cmp::Ge, value)
    }
    pub fn lt(self, value: impl Into<Literal>) -> Filter {
        self.compare(Cmp::Lt, value)
    }
    pub fn le(self, value: impl Into<Literal>) -> Filter {
        self.compare(Cmp::Le, value)
    }
    pub fn is_null(self) -> Filter {
        self.compare(Cmp::Eq, Literal::Null)
    }
    pub fn contains(self, text: impl Into<String>) -> Filter {
        Filter::Function(StringFn::Contains, self, text.into())
    }
    pub fn starts_with(self, text: impl Into<String>) -> Filter {
        Filter::Function(StringFn::StartsWith, self, text.into())
    }
    pub fn ends_with(self, text: impl Into<String>) -> Filter {
        Filter::Function(StringFn::EndsWith, self, text.into())
    }
    /// `self eq v1 or self eq v2 …`: Creatio has no `in` operator. Keep the
    /// list short (Creatio refuses filters of more than 100 nodes; about 15
    /// comparisons fit) or use [`crate::Client::get_many`], which chunks.
    pub fn is_in<L: Into<Literal>>(self, values: impl IntoIterator<Item = L>) -> Filter {
        Filter::Or(
            values
                .into_iter()
                .map(|v| self.clone().compare(Cmp::Eq, v))
                .collect(),
        )
    }

    /// The path as written in the URL.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    fn check(&self, value: &Literal) -> Result<(), Error> {
        if self.path.trim().is_empty() || self.path.chars().any(|c| !is_path_char(c)) {
            return Err(Error::InvalidRequest(format!(
                "'{}' is not a column or navigation path (letters, digits, '_' and '/')",
                self.path
            )));
        }
        let last = self.path.rsplit('/').next().unwrap_or_default();
        let flat_lookup = self.kind == PathKind::Column
            && last.len() > 2
            && last.ends_with("Id")
            && matches!(value, Literal::Guid(_));
        if flat_lookup {
            let nav = &self.path[..self.path.len() - 2];
            return Err(Error::InvalidRequest(format!(
                "filtering the lookup column '{}' by GUID fails on Creatio (\"Column by path … not \
                 found\"); filter through its navigation property instead: lookup(\"{nav}\") writes \
                 '{nav}/Id'. If '{}' is a plain GUID column, not a lookup, use guid_column(\"{}\")",
                self.path, self.path, self.path
            )));
        }
        Ok(())
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '/'
}

impl Filter {
    /// Both conditions.
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut all) => {
                all.push(other);
                Filter::And(all)
            }
            first => Filter::And(vec![first, other]),
        }
    }

    /// Either condition.
    pub fn or(self, other: Filter) -> Filter {
        match self {
            Filter::Or(mut any) => {
                any.push(other);
                Filter::Or(any)
            }
            first => Filter::Or(vec![first, other]),
        }
    }

    /// The opposite condition.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// The expression as it goes into `$filter=` (before URL encoding).
    pub fn to_odata(&self) -> Result<String, Error> {
        let mut out = String::new();
        self.write(&mut out, false)?;
        Ok(out)
    }

    fn write(&self, out: &mut String, nested: bool) -> Result<(), Error> {
        match self {
            Filter::Compare(path, op, value) => {
                path.check(value)?;
                path.write_path(out);
                out.push(' ');
                out.push_str(op.keyword());
                out.push(' ');
                value.write(out)?;
            }
            Filter::Function(f, path, text) => {
                let value = Literal::String(text.clone());
                path.check(&value)?;
                out.push_str(match f {
                    StringFn::Contains => "contains(",
                    StringFn::StartsWith => "startswith(",
                    StringFn::EndsWith => "endswith(",
                });
                path.write_path(out);
                out.push(',');
                value.write(out)?;
                out.push(')');
            }
            Filter::And(parts) | Filter::Or(parts) => {
                let joiner = if matches!(self, Filter::And(_)) {
                    " and "
                } else {
                    " or "
                };
                match parts.as_slice() {
                    [] => {
                        return Err(Error::InvalidRequest(
                            "an empty and/or filter has no meaning in OData".into(),
                        ))
                    }
                    [only] => return only.write(out, nested),
                    _ => {}
                }
                if nested {
                    out.push('(');
                }
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(joiner);
                    }
                    part.write(out, true)?;
                }
                if nested {
                    out.push(')');
                }
            }
            Filter::Not(inner) => {
                out.push_str("not (");
                inner.write(out, false)?;
                out.push(')');
            }
        }
        Ok(())
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// A navigation property to expand, with the columns to read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expand {
    navigation: String,
    select: Vec<String>,
}

/// The query options of a read: `$select`, `$filter`, `$orderby`, `$top`,
/// `$skip`, `$expand`, `$count`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub(crate) select: Vec<String>,
    pub(crate) filter: Option<Filter>,
    pub(crate) order_by: Vec<(String, Order)>,
    pub(crate) top: Option<u32>,
    pub(crate) skip: Option<u32>,
    expand: Vec<Expand>,
    count: bool,
}

/// Characters escaped in a query option value: everything but unreserved
/// characters and the few OData punctuation marks that travel as they are.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'=');

impl Query {
    pub fn new() -> Self {
        Query::default()
    }

    /// The columns to read. Always select: an all-columns read fails on
    /// tenants whose published model drifted (reference §2.3).
    pub fn select<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.select.extend(columns.into_iter().map(Into::into));
        self
    }

    /// Adds a condition (combined with `and` with any earlier one).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(f) => f.and(filter),
            None => filter,
        });
        self
    }

    pub fn order_by(mut self, path: impl Into<String>, order: Order) -> Self {
        self.order_by.push((path.into(), order));
        self
    }

    pub fn order_by_asc(self, path: impl Into<String>) -> Self {
        self.order_by(path, Order::Asc)
    }

    pub fn order_by_desc(self, path: impl Into<String>) -> Self {
        self.order_by(path, Order::Desc)
    }

    /// At most this many records (for [`crate::Client::list`], in total).
    pub fn top(mut self, n: u32) -> Self {
        self.top = Some(n);
        self
    }

    pub fn skip(mut self, n: u32) -> Self {
        self.skip = Some(n);
        self
    }

    /// Expands a navigation property, reading `columns` of it (all of them
    /// when empty). Nested `$select` is version-dependent on Creatio
    /// (reference §2.3); select few columns, or read the lookup separately.
    pub fn expand<S: Into<String>>(
        mut self,
        navigation: impl Into<String>,
        columns: impl IntoIterator<Item = S>,
    ) -> Self {
        self.expand.push(Expand {
            navigation: navigation.into(),
            select: columns.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Asks for `@odata.count`, the number of matching records.
    pub fn count(mut self) -> Self {
        self.count = true;
        self
    }

    /// The encoded query string, without the leading `?`.
    pub fn to_query_string(&self) -> Result<String, Error> {
        let mut parts: Vec<String> = Vec::new();
        let enc = |s: &str| utf8_percent_encode(s, QUERY_VALUE).to_string();
        let names = |items: &[String], what: &str| -> Result<String, Error> {
            for item in items {
                if item.is_empty() || !item.chars().all(is_path_char) {
                    return Err(Error::InvalidRequest(format!(
                        "'{item}' is not a valid {what} (letters, digits, '_' and '/')"
                    )));
                }
            }
            Ok(items.join(","))
        };
        if !self.select.is_empty() {
            parts.push(format!("$select={}", names(&self.select, "column")?));
        }
        if let Some(f) = &self.filter {
            parts.push(format!("$filter={}", enc(&f.to_odata()?)));
        }
        if !self.order_by.is_empty() {
            let mut terms = Vec::new();
            for (path, order) in &self.order_by {
                names(std::slice::from_ref(path), "sort column")?;
                let dir = match order {
                    Order::Asc => "asc",
                    Order::Desc => "desc",
                };
                terms.push(format!("{path} {dir}"));
            }
            parts.push(format!("$orderby={}", enc(&terms.join(","))));
        }
        if let Some(n) = self.top {
            parts.push(format!("$top={n}"));
        }
        if let Some(n) = self.skip {
            parts.push(format!("$skip={n}"));
        }
        if !self.expand.is_empty() {
            let mut items = Vec::new();
            for e in &self.expand {
                names(std::slice::from_ref(&e.navigation), "navigation property")?;
                if e.select.is_empty() {
                    items.push(e.navigation.clone());
                } else {
                    items.push(format!(
                        "{}($select={})",
                        e.navigation,
                        names(&e.select, "column")?
                    ));
                }
            }
            parts.push(format!("$expand={}", enc(&items.join(","))));
        }
        if self.count {
            parts.push("$count=true".into());
        }
        Ok(parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::uuid;

    const G: Uuid = uuid!("f3ed4f55-894b-42bc-b5a1-f10b9d0bc03f");

    fn odata(f: Filter) -> String {
        f.to_odata().unwrap()
    }

    #[test]
    fn strings_are_quoted_with_doubled_quotes() {
        assert_eq!(odata(col("Name").eq("O'Brien")), "Name eq 'O''Brien'");
        assert_eq!(odata(col("Name").eq("''")), "Name eq ''''''");
        assert_eq!(
            odata(col("Email").ends_with("@example.com")),
            "endswith(Email,'@example.com')"
        );
    }

    #[test]
    fn a_lowercased_column_is_compared_through_tolower() {
        assert_eq!(
            odata(col("Email").lowercased().is_in(["a@x.com", "b@x.com"])),
            "tolower(Email) eq 'a@x.com' or tolower(Email) eq 'b@x.com'"
        );
        assert_eq!(
            odata(col("Email").lowercased().contains("x.com")),
            "contains(tolower(Email),'x.com')"
        );
    }

    #[test]
    fn guids_are_bare_and_lookups_use_the_navigation_path() {
        assert_eq!(odata(col("Id").eq(G)), format!("Id eq {G}"));
        assert_eq!(odata(lookup("Case").eq(G)), format!("Case/Id eq {G}"));
        assert_eq!(odata(lookup("CaseId").eq(G)), format!("Case/Id eq {G}"));
        assert_eq!(odata(lookup("Case/Id").eq(G)), format!("Case/Id eq {G}"));
        assert_eq!(
            odata(guid_column("EntityId").eq(G)),
            format!("EntityId eq {G}")
        );
    }

    #[test]
    fn a_flat_lookup_column_compared_with_a_guid_is_refused_with_the_fix() {
        let e = col("CaseId").eq(G).to_odata().unwrap_err().to_string();
        assert!(e.contains("lookup(\"Case\")"), "{e}");
        assert!(e.contains("Case/Id"), "{e}");
        // Inside a larger expression too.
        assert!(col("Subject")
            .eq("x")
            .and(col("Status/ModifiedById").eq(G))
            .to_odata()
            .is_err());
    }

    #[test]
    fn date_times_are_unquoted_utc() {
        let d = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            odata(col("CreatedOn").ge(d)),
            "CreatedOn ge 2024-01-01T00:00:00Z"
        );
        let d = d + chrono::Duration::milliseconds(683);
        assert_eq!(
            odata(col("CreatedOn").lt(d)),
            "CreatedOn lt 2024-01-01T00:00:00.683Z"
        );
    }

    #[test]
    fn other_literals() {
        assert_eq!(
            odata(col("Status/IsFinal").eq(true)),
            "Status/IsFinal eq true"
        );
        assert_eq!(odata(col("Priority").le(3)), "Priority le 3");
        assert_eq!(
            odata(col("SolutionRemains").gt(1.5)),
            "SolutionRemains gt 1.5"
        );
        assert_eq!(
            odata(col("SolutionRemains").gt(2.0)),
            "SolutionRemains gt 2.0"
        );
        assert_eq!(odata(col("Email").is_null()), "Email eq null");
        assert!(col("X").gt(f64::NAN).to_odata().is_err());
    }

    #[test]
    fn boolean_combinations_are_parenthesised_when_nested() {
        let f = col("A")
            .eq(1)
            .and(col("B").eq(2).or(col("C").eq(3)))
            .and(col("D").eq(4).not());
        assert_eq!(odata(f), "A eq 1 and (B eq 2 or C eq 3) and not (D eq 4)");
        let f = lookup("Case").is_in([G, Uuid::nil()]);
        assert_eq!(
            odata(f),
            format!("Case/Id eq {G} or Case/Id eq {}", Uuid::nil())
        );
        assert!(Filter::Or(vec![]).to_odata().is_err());
    }

    #[test]
    fn paths_with_injection_are_refused() {
        assert!(col("Name eq 'x' or Id").eq("y").to_odata().is_err());
        assert!(Query::new().select(["Id,Name"]).to_query_string().is_err());
        assert!(Query::new()
            .order_by_asc("CreatedOn desc")
            .to_query_string()
            .is_err());
    }

    #[test]
    fn query_string_encodes_values_not_structure() {
        let q = Query::new()
            .select(["Id", "Subject"])
            .filter(col("Subject").eq("a&b=c+d #1 100%"))
            .expand("Status", ["Name", "IsFinal"])
            .order_by_desc("CreatedOn")
            .top(10)
            .skip(20)
            .count();
        assert_eq!(
            q.to_query_string().unwrap(),
            "$select=Id,Subject&$filter=Subject%20eq%20'a%26b%3Dc%2Bd%20%231%20100%25'\
             &$orderby=CreatedOn%20desc&$top=10&$skip=20&$expand=Status($select%3DName,IsFinal)&$count=true"
        );
        assert_eq!(Query::new().to_query_string().unwrap(), "");
    }

    #[test]
    fn a_second_filter_is_anded() {
        let q = Query::new().filter(col("A").eq(1)).filter(col("B").eq(2));
        assert_eq!(
            q.to_query_string().unwrap(),
            "$filter=A%20eq%201%20and%20B%20eq%202"
        );
    }
}
