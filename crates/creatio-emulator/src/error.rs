//! The errors the OData endpoint answers with, in the shapes a Creatio
//! tenant gives them (reference/creatio-api.md §2, creatio-evidence.md §6).
//! Its own module because the store refuses values with them too.

use axum::http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// How an error body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error":{"code":"","message":…,"innererror":…}}` (ASP.NET OData).
    Odata,
    /// `{"Message":…,"MessageDetail":…}` (ASP.NET Web API routing).
    Routing,
    /// No body at all: a missing key (reference/creatio-evidence.md §6,
    /// PYCLIENT README: "404 with an empty body").
    Empty,
    /// `{"Message": "Authorization has been denied for this request."}`
    /// with `WWW-Authenticate`, as a refused bearer gets.
    Denied,
}

/// An error the OData endpoint answers with.
#[derive(Debug, Clone)]
pub struct OdataError {
    pub status: StatusCode,
    pub message: String,
    /// The inner exception message (what Creatio puts in `innererror`).
    pub inner: Option<String>,
    pub shape: ErrorShape,
}

impl OdataError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        OdataError {
            status,
            message: message.into(),
            inner: None,
            shape: ErrorShape::Odata,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 500 whose detail is in `innererror`, as server-side failures are.
    pub fn internal(message: impl Into<String>, inner: impl Into<String>) -> Self {
        OdataError {
            inner: Some(inner.into()),
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
        }
    }

    /// A missing key: 404 with an empty body, as a live tenant answers
    /// (reference/creatio-evidence.md §6, PYCLIENT README). The message
    /// stays for `$batch` answers and logs.
    pub fn not_found(entity: &str, id: &Uuid) -> Self {
        OdataError {
            shape: ErrorShape::Empty,
            ..Self::new(
                StatusCode::NOT_FOUND,
                format!("No {entity} record with Id {id} was found."),
            )
        }
    }

    /// A refused bearer token's 401 — also what an unknown entity set gets
    /// when the tenant answers 401 (reference/creatio-evidence.md §6).
    pub fn denied() -> Self {
        OdataError {
            shape: ErrorShape::Denied,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "Authorization has been denied for this request.",
            )
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub(crate) fn routing(uri: &str, controller: &str) -> Self {
        OdataError {
            status: StatusCode::NOT_FOUND,
            message: format!("No HTTP resource was found that matches the request URI '{uri}'."),
            inner: Some(format!(
                "No type was found that matches the controller named '{controller}'."
            )),
            shape: ErrorShape::Routing,
        }
    }

    pub fn body(&self) -> Value {
        match self.shape {
            ErrorShape::Empty => Value::Null,
            ErrorShape::Denied => json!({"Message": self.message}),
            ErrorShape::Routing => json!({
                "Message": self.message,
                "MessageDetail": self.inner.clone().unwrap_or_default(),
            }),
            ErrorShape::Odata => {
                let mut error = json!({"code": "", "message": self.message});
                if let Some(inner) = &self.inner {
                    error["innererror"] = json!({"message": inner, "type": "", "stacktrace": ""});
                }
                json!({ "error": error })
            }
        }
    }
}
