//! `$filter` and `$orderby` expressions: lexer, parser, binder and evaluator.
//!
//! The grammar is the OData 4 subset Creatio is seen to accept (reference
//! §2.3): `eq ne gt ge lt le and or not`, parentheses, `contains`,
//! `startswith`, `endswith`, `tolower`, `toupper`, navigation paths
//! (`Case/Id`, `Status/Name`), and literals: bare GUIDs, single-quoted
//! strings with `''` escaping, unquoted date-times, numbers, booleans, `null`.
//!
//! The binder reproduces Creatio's pitfalls on purpose, because the emulator
//! exists to catch client bugs: a flat lookup column (`CaseId eq …`) fails
//! with the 500 "Column by path … not found in schema" Creatio answers;
//! `guid'…'` literals are a syntax error; a quoted date compared with a
//! date-time column is the 400 "incompatible types" error; more than 100
//! expression nodes is the ASP.NET `MaxNodeCount` error.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::OdataError;
use crate::schema::{ColType, EntitySchema, EMPTY_DATE, EMPTY_GUID};
use crate::store::{Record, Store};

/// ASP.NET OData's default `MaxNodeCount`.
pub const MAX_NODE_COUNT: usize = 100;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Guid(Uuid),
    DateTime(DateTime<Utc>),
    Slash,
    Open,
    Close,
    Comma,
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn syntax_error(pos: usize, text: &str) -> OdataError {
    OdataError::bad_request(format!("Syntax error at position {pos} in '{text}'."))
}

/// The `$filter` text as tokens. Long because it is a lexer: one arm per
/// kind of token (strings with doubled quotes, numbers, GUIDs, dates,
/// keywords, punctuation), each where the next character decides it.
fn lex(text: &str) -> Result<Vec<(usize, Token)>, OdataError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let simple = match c {
            '/' => Some(Token::Slash),
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            ',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(t) = simple {
            out.push((start, t));
            i += 1;
            continue;
        }
        if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(syntax_error(start, text)),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push((start, Token::Str(s)));
            continue;
        }
        // A "word": everything up to a delimiter. GUIDs, date-times and
        // numbers are recognised from the whole word before identifiers.
        let mut j = i;
        while j < chars.len() && !matches!(chars[j], ' ' | '\t' | '(' | ')' | ',' | '/' | '\'') {
            j += 1;
        }
        let word: String = chars[i..j].iter().collect();
        if chars.get(j) == Some(&'\'') {
            // Typed literals such as guid'…' or datetime'…' are OData 3 syntax
            // that Creatio's OData 4 endpoint rejects.
            return Err(syntax_error(start, text));
        }
        let token = if let Some(g) = Uuid::try_parse(&word).ok().filter(|_| word.len() == 36) {
            Token::Guid(g)
        } else if word.len() >= 10 && word.as_bytes()[4] == b'-' && word.contains('T') {
            match DateTime::parse_from_rfc3339(&word) {
                Ok(d) => Token::DateTime(d.with_timezone(&Utc)),
                Err(_) => return Err(syntax_error(start, text)),
            }
        } else if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            if let Ok(n) = word.parse::<i64>() {
                Token::Int(n)
            } else if let Ok(f) = word.trim_end_matches(['m', 'M', 'd', 'D']).parse::<f64>() {
                Token::Float(f)
            } else {
                return Err(syntax_error(start, text));
            }
        } else if word.chars().all(is_ident_char) && !word.is_empty() {
            Token::Ident(word)
        } else {
            return Err(syntax_error(start, text));
        };
        out.push((start, token));
        i = j;
    }
    Ok(out)
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn parse(word: &str) -> Option<CmpOp> {
        Some(match word {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "gt" => CmpOp::Gt,
            "ge" => CmpOp::Ge,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            _ => return None,
        })
    }

    /// The operator's name in ASP.NET OData error messages.
    fn kind_name(self) -> &'static str {
        match self {
            CmpOp::Eq => "Equal",
            CmpOp::Ne => "NotEqual",
            CmpOp::Gt => "GreaterThan",
            CmpOp::Ge => "GreaterThanOrEqual",
            CmpOp::Lt => "LessThan",
            CmpOp::Le => "LessThanOrEqual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Contains,
    StartsWith,
    EndsWith,
    ToLower,
    ToUpper,
}

/// Types of bound expressions (the EDM primitive types Creatio exposes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edm {
    Guid,
    String,
    Boolean,
    Int32,
    Double,
    DateTimeOffset,
    Null,
}

impl Edm {
    fn name(self) -> &'static str {
        match self {
            Edm::Guid => "Edm.Guid",
            Edm::String => "Edm.String",
            Edm::Boolean => "Edm.Boolean",
            Edm::Int32 => "Edm.Int32",
            Edm::Double => "Edm.Double",
            Edm::DateTimeOffset => "Edm.DateTimeOffset",
            Edm::Null => "null",
        }
    }

    fn compatible(self, other: Edm) -> bool {
        let numeric = |t| matches!(t, Edm::Int32 | Edm::Double);
        self == other
            || self == Edm::Null
            || other == Edm::Null
            || (numeric(self) && numeric(other))
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Guid(Uuid),
    Date(DateTime<Utc>),
}

impl Val {
    fn truthy(&self) -> bool {
        matches!(self, Val::Bool(true))
    }

    /// Orders two values the way the tenant's database does: NULL first,
    /// strings by its collation ([`Store::case_sensitive`]).
    pub fn sql_cmp(&self, other: &Val, case_sensitive: bool) -> Ordering {
        match (self, other) {
            (Val::Null, Val::Null) => Ordering::Equal,
            (Val::Null, _) => Ordering::Less,
            (_, Val::Null) => Ordering::Greater,
            (Val::Bool(a), Val::Bool(b)) => a.cmp(b),
            (Val::Num(a), Val::Num(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Val::Str(a), Val::Str(b)) if case_sensitive => a.cmp(b),
            (Val::Str(a), Val::Str(b)) => a.to_lowercase().cmp(&b.to_lowercase()),
            (Val::Guid(a), Val::Guid(b)) => a.cmp(b),
            (Val::Date(a), Val::Date(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

/// A property reached from the record being filtered: zero or more lookup
/// hops (scalar `<Nav>Id` fields) and a final field.
#[derive(Debug, Clone)]
pub struct PropPath {
    /// `(scalar lookup field, target entity)` per navigation step.
    hops: Vec<(String, &'static str)>,
    field: String,
    ty: ColType,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
    Prop(PropPath),
    Lit(Val),
}

struct Parser<'a> {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    text: &'a str,
    schema: &'static EntitySchema,
    nodes: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map(|(p, _)| *p)
            .unwrap_or(self.text.len())
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == word)
    }

    fn node(&mut self) -> Result<(), OdataError> {
        self.nodes += 1;
        if self.nodes > MAX_NODE_COUNT {
            return Err(OdataError::bad_request(format!(
                "The node count limit of '{MAX_NODE_COUNT}' has been exceeded. To increase the limit, \
                 set the 'MaxNodeCount' property on EnableQueryAttribute or ODataValidationSettings."
            )));
        }
        Ok(())
    }

    fn expect(&mut self, want: Token) -> Result<(), OdataError> {
        let at = self.at();
        match self.next() {
            Some(t) if t == want => Ok(()),
            _ => Err(syntax_error(at, self.text)),
        }
    }

    fn or_expr(&mut self) -> Result<(Expr, Edm), OdataError> {
        let mut left = self.and_expr()?;
        while self.keyword("or") {
            self.pos += 1;
            self.node()?;
            let right = self.and_expr()?;
            left = (
                Expr::Or(
                    Box::new(self.boolean(left, "Or")?),
                    Box::new(self.boolean(right, "Or")?),
                ),
                Edm::Boolean,
            );
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<(Expr, Edm), OdataError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            self.node()?;
            let right = self.unary()?;
            left = (
                Expr::And(
                    Box::new(self.boolean(left, "And")?),
                    Box::new(self.boolean(right, "And")?),
                ),
                Edm::Boolean,
            );
        }
        Ok(left)
    }

    fn boolean(&self, (e, t): (Expr, Edm), op: &str) -> Result<Expr, OdataError> {
        if t == Edm::Boolean {
            Ok(e)
        } else {
            Err(OdataError::bad_request(format!(
                "A binary operator with incompatible types was detected. Found operand types '{}' and \
                 'Edm.Boolean' for operator kind '{op}'.",
                t.name()
            )))
        }
    }

    fn unary(&mut self) -> Result<(Expr, Edm), OdataError> {
        if self.keyword("not") {
            self.pos += 1;
            self.node()?;
            let inner = self.unary()?;
            return Ok((
                Expr::Not(Box::new(self.boolean(inner, "Not")?)),
                Edm::Boolean,
            ));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<(Expr, Edm), OdataError> {
        let (left, lt) = self.primary()?;
        let op = match self.peek() {
            Some(Token::Ident(w)) => CmpOp::parse(w),
            _ => None,
        };
        let Some(op) = op else {
            return Ok((left, lt));
        };
        self.pos += 1;
        self.node()?;
        let (right, rt) = self.primary()?;
        if !lt.compatible(rt) {
            return Err(OdataError::bad_request(format!(
                "A binary operator with incompatible types was detected. Found operand types '{}' and \
                 '{}' for operator kind '{}'.",
                lt.name(),
                rt.name(),
                op.kind_name()
            )));
        }
        Ok((Expr::Cmp(op, Box::new(left), Box::new(right)), Edm::Boolean))
    }

    fn primary(&mut self) -> Result<(Expr, Edm), OdataError> {
        let at = self.at();
        let token = self.next().ok_or_else(|| syntax_error(at, self.text))?;
        self.node()?;
        match token {
            Token::Open => {
                let inner = self.or_expr()?;
                self.expect(Token::Close)?;
                Ok(inner)
            }
            Token::Str(s) => Ok((Expr::Lit(Val::Str(s)), Edm::String)),
            Token::Int(n) => Ok((Expr::Lit(Val::Num(n as f64)), Edm::Int32)),
            Token::Float(f) => Ok((Expr::Lit(Val::Num(f)), Edm::Double)),
            Token::Guid(g) => Ok((Expr::Lit(Val::Guid(g)), Edm::Guid)),
            Token::DateTime(d) => Ok((Expr::Lit(Val::Date(d)), Edm::DateTimeOffset)),
            Token::Ident(w) if w == "null" => Ok((Expr::Lit(Val::Null), Edm::Null)),
            Token::Ident(w) if w == "true" || w == "false" => {
                Ok((Expr::Lit(Val::Bool(w == "true")), Edm::Boolean))
            }
            Token::Ident(w) if self.peek() == Some(&Token::Open) => self.call(&w, at),
            Token::Ident(w) => {
                let mut segments = vec![w];
                while self.peek() == Some(&Token::Slash) {
                    self.pos += 1;
                    let at = self.at();
                    match self.next() {
                        Some(Token::Ident(seg)) => segments.push(seg),
                        _ => return Err(syntax_error(at, self.text)),
                    }
                }
                // One node for the range variable ($it) and one per segment,
                // as ASP.NET OData's validator counts them.
                for _ in 0..segments.len() {
                    self.node()?;
                }
                let path = bind_path(self.schema, &segments)?;
                let ty = edm_of(path.ty);
                Ok((Expr::Prop(path), ty))
            }
            _ => Err(syntax_error(at, self.text)),
        }
    }

    fn call(&mut self, name: &str, at: usize) -> Result<(Expr, Edm), OdataError> {
        let func = match name {
            "contains" => Func::Contains,
            "startswith" => Func::StartsWith,
            "endswith" => Func::EndsWith,
            "tolower" => Func::ToLower,
            "toupper" => Func::ToUpper,
            _ => {
                return Err(OdataError::bad_request(format!(
                    "An unknown function with name '{name}' was found. This may also be a function \
                     import or a key lookup on a navigation property, which is not allowed."
                )))
            }
        };
        self.expect(Token::Open)?;
        let mut args = Vec::new();
        loop {
            args.push(self.or_expr()?);
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::Close) => break,
                _ => return Err(syntax_error(at, self.text)),
            }
        }
        let arity = match func {
            Func::Contains | Func::StartsWith | Func::EndsWith => 2,
            Func::ToLower | Func::ToUpper => 1,
        };
        if args.len() != arity
            || args
                .iter()
                .any(|(_, t)| !matches!(t, Edm::String | Edm::Null))
        {
            return Err(OdataError::bad_request(format!(
                "No function signature for the function with name '{name}' matches the specified \
                 arguments. The function signatures considered are: {name}(Edm.String Nullable=true{}).",
                if arity == 2 { ", Edm.String Nullable=true" } else { "" }
            )));
        }
        let ty = if arity == 2 {
            Edm::Boolean
        } else {
            Edm::String
        };
        Ok((
            Expr::Call(func, args.into_iter().map(|(e, _)| e).collect()),
            ty,
        ))
    }
}

fn edm_of(ty: ColType) -> Edm {
    match ty {
        ColType::Guid | ColType::Lookup(_) => Edm::Guid,
        ColType::Text(_) | ColType::Media => Edm::String,
        ColType::Bool => Edm::Boolean,
        ColType::Int => Edm::Int32,
        ColType::Float => Edm::Double,
        ColType::DateTime => Edm::DateTimeOffset,
    }
}

fn no_property(schema: &EntitySchema, name: &str) -> OdataError {
    OdataError::bad_request(format!(
        "Could not find a property named '{name}' on type '{}'.",
        schema.qualified_name()
    ))
}

/// Resolves `Nav/Nav/Field` against the schema.
///
/// Creatio does not let a filter or sort address a lookup by its flat scalar
/// column (`CaseId`); it answers 500 "Column by path … not found in schema".
pub fn bind_path(root: &'static EntitySchema, segments: &[String]) -> Result<PropPath, OdataError> {
    let mut schema = root;
    let mut hops = Vec::new();
    let (last, navs) = segments
        .split_last()
        .expect("a path has at least one segment");
    for nav in navs {
        let Some(column) = schema.navigation(nav) else {
            return Err(no_property(schema, nav));
        };
        let ColType::Lookup(target) = column.ty else {
            unreachable!("navigation() only returns lookups")
        };
        hops.push((format!("{nav}Id"), target));
        schema = crate::schema::find(target).expect("lookup targets are emulated entities");
    }
    if let Some(column) = schema.column_by_field(last) {
        if matches!(column.ty, ColType::Lookup(_)) {
            return Err(OdataError::internal(
                "An error has occurred.",
                format!("Column by path {last} not found in schema {}.", schema.name),
            ));
        }
        return Ok(PropPath {
            hops,
            field: last.clone(),
            ty: column.ty,
        });
    }
    if schema.navigation(last).is_some() {
        return Err(OdataError::bad_request(format!(
            "The navigation property '{last}' cannot be used as a single value here; address a column \
             of it, for example '{last}/Id' or '{last}/Name'."
        )));
    }
    Err(no_property(schema, last))
}

/// Parses and binds a `$filter` expression for `schema`.
pub fn parse_filter(text: &str, schema: &'static EntitySchema) -> Result<Expr, OdataError> {
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        text,
        schema,
        nodes: 0,
    };
    let (expr, ty) = p.or_expr()?;
    if p.pos < p.tokens.len() {
        return Err(syntax_error(p.at(), text));
    }
    if ty != Edm::Boolean {
        return Err(OdataError::bad_request(
            "The $filter expression must evaluate to a single boolean value.",
        ));
    }
    Ok(expr)
}

/// One `$orderby` item.
#[derive(Debug, Clone)]
pub struct OrderBy {
    pub path: PropPath,
    pub descending: bool,
}

/// Parses `$orderby=Prop [asc|desc], Nav/Prop desc`.
pub fn parse_orderby(
    text: &str,
    schema: &'static EntitySchema,
) -> Result<Vec<OrderBy>, OdataError> {
    let mut out = Vec::new();
    for item in text.split(',') {
        let mut words = item.split_whitespace();
        let Some(path) = words.next() else {
            return Err(syntax_error(0, text));
        };
        let descending = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(syntax_error(0, text)),
        };
        if words.next().is_some() {
            return Err(syntax_error(0, text));
        }
        let segments: Vec<String> = path.split('/').map(str::to_string).collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || !s.chars().all(is_ident_char))
        {
            return Err(syntax_error(0, text));
        }
        out.push(OrderBy {
            path: bind_path(schema, &segments)?,
            descending,
        });
    }
    Ok(out)
}

/// Reads a property of a record, following lookup hops through the store.
/// Unset lookups and dates read as NULL, as they are NULL in Creatio's database.
pub fn read_path(path: &PropPath, record: &Record, store: &Store) -> Val {
    let mut current = record;
    for (field, target) in &path.hops {
        let Some(id) = current.get(field).and_then(|v| v.as_str()) else {
            return Val::Null;
        };
        let Some(next) = store.get_str(target, id) else {
            return Val::Null;
        };
        current = next;
    }
    json_to_val(current.get(&path.field), path.ty)
}

fn json_to_val(v: Option<&serde_json::Value>, ty: ColType) -> Val {
    use serde_json::Value as J;
    match (v, ty) {
        (None | Some(J::Null), _) => Val::Null,
        (Some(J::String(s)), ColType::Guid | ColType::Lookup(_)) => {
            if s == EMPTY_GUID {
                Val::Null
            } else {
                Uuid::try_parse(s).map(Val::Guid).unwrap_or(Val::Null)
            }
        }
        (Some(J::String(s)), ColType::DateTime) => {
            if s == EMPTY_DATE {
                Val::Null
            } else {
                DateTime::parse_from_rfc3339(s)
                    .map(|d| Val::Date(d.with_timezone(&Utc)))
                    .unwrap_or(Val::Null)
            }
        }
        (Some(J::String(s)), _) => Val::Str(s.clone()),
        (Some(J::Bool(b)), _) => Val::Bool(*b),
        (Some(J::Number(n)), _) => Val::Num(n.as_f64().unwrap_or_default()),
        _ => Val::Null,
    }
}

fn eval(expr: &Expr, record: &Record, store: &Store) -> Val {
    match expr {
        Expr::Or(a, b) => {
            Val::Bool(eval(a, record, store).truthy() || eval(b, record, store).truthy())
        }
        Expr::And(a, b) => {
            Val::Bool(eval(a, record, store).truthy() && eval(b, record, store).truthy())
        }
        Expr::Not(a) => Val::Bool(!eval(a, record, store).truthy()),
        Expr::Lit(v) => v.clone(),
        Expr::Prop(p) => read_path(p, record, store),
        Expr::Cmp(op, a, b) => {
            let (a, b) = (eval(a, record, store), eval(b, record, store));
            // SQL semantics: a comparison with NULL is only true for eq null / ne null.
            let result = match (&a, &b) {
                (Val::Null, Val::Null) => matches!(op, CmpOp::Eq | CmpOp::Le | CmpOp::Ge),
                (Val::Null, _) | (_, Val::Null) => *op == CmpOp::Ne,
                _ => {
                    let ord = a.sql_cmp(&b, store.case_sensitive);
                    match op {
                        CmpOp::Eq => ord == Ordering::Equal,
                        CmpOp::Ne => ord != Ordering::Equal,
                        CmpOp::Gt => ord == Ordering::Greater,
                        CmpOp::Ge => ord != Ordering::Less,
                        CmpOp::Lt => ord == Ordering::Less,
                        CmpOp::Le => ord != Ordering::Greater,
                    }
                }
            };
            Val::Bool(result)
        }
        Expr::Call(func, args) => {
            let vals: Vec<Val> = args.iter().map(|a| eval(a, record, store)).collect();
            let text = |v: &Val| match v {
                Val::Str(s) if store.case_sensitive => Some(s.clone()),
                Val::Str(s) => Some(s.to_lowercase()),
                _ => None,
            };
            match func {
                Func::ToLower | Func::ToUpper => match &vals[0] {
                    Val::Str(s) if *func == Func::ToLower => Val::Str(s.to_lowercase()),
                    Val::Str(s) => Val::Str(s.to_uppercase()),
                    _ => Val::Null,
                },
                _ => match (text(&vals[0]), text(&vals[1])) {
                    (Some(h), Some(n)) => Val::Bool(match func {
                        Func::Contains => h.contains(&n),
                        Func::StartsWith => h.starts_with(&n),
                        _ => h.ends_with(&n),
                    }),
                    _ => Val::Bool(false),
                },
            }
        }
    }
}

/// True when `record` satisfies the bound filter.
pub fn matches(expr: &Expr, record: &Record, store: &Store) -> bool {
    eval(expr, record, store).truthy()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn activity() -> &'static EntitySchema {
        schema::find("Activity").unwrap()
    }

    #[test]
    fn navigation_path_binds_and_flat_lookup_fails_like_creatio() {
        assert!(parse_filter(
            "Case/Id eq ae5f2f10-f46b-1410-fd9a-0050ba5d6c38",
            activity()
        )
        .is_ok());
        let err =
            parse_filter("CaseId eq ae5f2f10-f46b-1410-fd9a-0050ba5d6c38", activity()).unwrap_err();
        assert_eq!(err.status.as_u16(), 500);
        assert!(err
            .inner
            .unwrap()
            .contains("Column by path CaseId not found in schema Activity"));
    }

    #[test]
    fn typed_guid_literal_is_a_syntax_error() {
        let err = parse_filter(
            "Id eq guid'ae5f2f10-f46b-1410-fd9a-0050ba5d6c38'",
            activity(),
        )
        .unwrap_err();
        assert_eq!(err.status.as_u16(), 400);
        assert!(err.message.contains("Syntax error"));
    }

    #[test]
    fn quoted_date_literal_is_incompatible() {
        let err = parse_filter("CreatedOn ge '2024-01-01T00:00:00Z'", activity()).unwrap_err();
        assert!(
            err.message
                .contains("'Edm.DateTimeOffset' and 'Edm.String'"),
            "{}",
            err.message
        );
        assert!(parse_filter("CreatedOn ge 2024-01-01T00:00:00Z", activity()).is_ok());
    }

    #[test]
    fn string_escapes_and_functions_parse() {
        assert!(parse_filter("Title eq 'O''Brien' and contains(Notes, 'x')", activity()).is_ok());
        assert!(parse_filter(
            "not (startswith(tolower(Title), 'ag') or endswith(Title, '!'))",
            activity()
        )
        .is_ok());
    }

    #[test]
    fn node_limit_matches_observed_behaviour() {
        let term = "Case/Id eq ae5f2f10-f46b-1410-fd9a-0050ba5d6c38";
        let fifteen = vec![term; 15].join(" or ");
        assert!(parse_filter(&fifteen, activity()).is_ok());
        let twenty = vec![term; 20].join(" or ");
        let err = parse_filter(&twenty, activity()).unwrap_err();
        assert!(err.message.contains("node count limit of '100'"));
    }

    #[test]
    fn unknown_property_is_named() {
        let err = parse_filter("Nope eq 1", activity()).unwrap_err();
        assert!(
            err.message.contains("'Nope'")
                && err
                    .message
                    .contains("Terrasoft.Configuration.OData.Activity")
        );
    }
}
