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
            ApiError::invalid(
                format!("The request body could not be read: {e}"),
                "Send a JSON body of at most 2 MB.",
            )
        })?;
        if !content_type.is_empty() && !content_type.starts_with("application/json") {
            return Err(ApiError::invalid(
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

/// Parses JSON, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
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
    })
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
        orgs::caller_by_key_hash(&state.db, &token_hash(key))
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
