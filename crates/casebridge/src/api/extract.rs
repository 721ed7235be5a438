//! Request extractors: JSON bodies whose errors name the field, and the
//! callers (operator, org key, org admin key).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::{ApiError, Code};
use super::AppState;
use crate::secrets::token_hash;
use crate::storage::orgs::{self, Caller, Role};

/// A JSON body. Malformed JSON, a wrong type or an unknown field is a 400
/// that says where (`at client_secret: invalid type: …`).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let code = if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Code::PayloadTooLarge
            } else {
                Code::InvalidRequest
            };
            ApiError::new(
                code,
                format!("The request body could not be read: {e}"),
                "Send a JSON body of at most 2 MB.",
            )
        })?;
        if !content_type.is_empty() && !content_type.starts_with("application/json") {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                format!("Content-Type is {content_type:?}; this endpoint takes JSON"),
                "Send the body as JSON with Content-Type: application/json.",
            ));
        }
        // An empty body is an empty object, so endpoints whose fields are
        // all optional can be called without one.
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        parse_json(text).map(Body)
    }
}

/// Parses JSON, naming the offending field in the error. The body is one
/// JSON value and nothing after it (`{…}{…}` is refused, not half-read), and
/// no string in it holds NUL ([`refuse_nul`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json_named(bytes, ("", ""))
}

/// [`parse_json`], with NUL's place named from `roots`: what a top-level
/// array and a top-level object are called (`("events", "event")` gives
/// `events[3].message.text`, as the events validation does).
pub fn parse_json_named<T: DeserializeOwned>(
    bytes: &[u8],
    roots: (&str, &str),
) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(
                format!("The body is not valid JSON: {inner}"),
                "Check quotes, commas and braces; the body must be one JSON object.",
            )
        } else if path == "." || path.is_empty() {
            ApiError::invalid(
                format!("The body does not have the expected shape: {inner}"),
                "Send a JSON object with the documented fields.",
            )
        } else {
            ApiError::invalid(
                format!("at {path}: {inner}"),
                format!("Fix the value of {path}; see the API documentation for its type."),
            )
        }
    })?;
    de.end().map_err(|e| {
        ApiError::invalid(
            format!("The body has more after its JSON value: {e}"),
            "Send exactly one JSON value; several events go in one JSON array.",
        )
    })?;
    refuse_nul(bytes, roots)?;
    Ok(value)
}

/// Text casebridge does not accept anywhere: NUL (U+0000). PostgreSQL
/// cannot store it in text, and SQLite would; rather than have the two
/// backends differ, both refuse it at the door with the field named (the
/// whole request, as every validation error does: nothing is stored).
///
/// Raw JSON can only carry NUL as the escape `\u0000`, so bodies without
/// that sequence pass at the cost of one scan; others are parsed again to
/// find the field.
pub fn refuse_nul(bytes: &[u8], roots: (&str, &str)) -> Result<(), ApiError> {
    const ESCAPE: &[u8] = b"\\u0000";
    if !bytes.windows(ESCAPE.len()).any(|w| w == ESCAPE) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    let root = match value {
        serde_json::Value::Array(_) => roots.0,
        _ => roots.1,
    };
    match nul_path(&value, root.to_string()) {
        None => Ok(()),
        Some(path) => {
            let message = format!(
                "{} contains a NUL character (\\u0000), which casebridge does not accept",
                if path.is_empty() { "the body" } else { &path }
            );
            Err(ApiError::invalid(
                format!("{message}; nothing was stored"),
                "Remove NUL characters from the text (they are never meaningful in a message, a name or an address) and send the request again.",
            )
            .with_fields(vec![super::error::FieldProblem {
                field: path,
                message,
                hint: None,
            }]))
        }
    }
}

/// Where the first NUL is: `[3].message.text`, or a key's own path.
fn nul_path(value: &serde_json::Value, here: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then_some(here),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{here}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let at = if here.is_empty() {
                k.replace('\0', "\\u0000")
            } else {
                format!("{here}.{}", k.replace('\0', "\\u0000"))
            };
            if k.contains('\0') {
                Some(at)
            } else {
                nul_path(v, at)
            }
        }),
        _ => None,
    }
}

/// Middleware: a path or query holding `%00` (NUL) is refused before any
/// route sees it, on both backends alike ([`refuse_nul`] has the why).
pub async fn refuse_nul_in_uri(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = request.uri();
    let in_path = uri.path().contains("%00");
    let in_query = uri.query().is_some_and(|q| q.contains("%00"));
    if in_path || in_query {
        return ApiError::invalid(
            format!(
                "The {} contains %00 (a NUL character), which casebridge does not accept",
                if in_path { "path" } else { "query" }
            ),
            "Remove %00 from the URL; ids, tokens and search terms never contain it.",
        )
        .into_response();
    }
    next.run(request).await
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The operator, holding the admin token.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::new(
                Code::Unauthorized,
                "This endpoint needs the operator admin token",
                "Send Authorization: Bearer <CASEBRIDGE_ADMIN_TOKEN> (printed once at first start when not configured).",
            )
        })?;
        if token_hash(token) != state.admin_token_hash {
            return Err(ApiError::new(
                Code::Unauthorized,
                "The admin token is not valid",
                "Use the value of CASEBRIDGE_ADMIN_TOKEN, or the token printed at first start.",
            ));
        }
        Ok(Operator)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(parts).ok_or_else(|| {
            ApiError::new(
                Code::Unauthorized,
                "Missing API key",
                "Send Authorization: Bearer <API key>. An org's first admin key is returned by POST /v1/orgs.",
            )
        })?;
        orgs::caller_by_key_hash(&state.app.db, &token_hash(key))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unauthorized,
                    "Unknown or revoked API key",
                    "Check the key (it starts with cbk_); an org admin can mint a new one with POST /v1/api-keys.",
                )
            })
    }
}

/// A caller holding an `admin` key.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role != Role::Admin {
            return Err(ApiError::new(
                Code::Forbidden,
                "This key has the ingest role, which may only send events",
                "Use an admin key for settings; an org admin can mint one with POST /v1/api-keys {\"role\": \"admin\"}.",
            ));
        }
        Ok(Admin(caller))
    }
}

/// A query string as the list endpoints take it: known parameters only.
pub struct QueryParams<'a> {
    params: &'a std::collections::HashMap<String, String>,
}

impl<'a> QueryParams<'a> {
    /// `params`, refused with a 400 naming the first one not in `known`
    /// (`hint` says which are).
    pub fn known(
        params: &'a std::collections::HashMap<String, String>,
        known: &[&str],
        hint: &str,
    ) -> Result<Self, ApiError> {
        match params.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(ApiError::invalid(
                format!("Unknown query parameter {unknown:?}"),
                hint.to_string(),
            )),
            None => Ok(QueryParams { params }),
        }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.params.get(name).map(String::as_str)
    }

    /// A whole number from 1 to `max`, `default` when absent.
    pub fn count(&self, name: &str, max: i64, default: i64, hint: &str) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(
                        format!("{name} {text:?} is not a number from 1 to {max}"),
                        hint.to_string(),
                    )
                }),
        }
    }
}
