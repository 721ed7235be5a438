//! The one error shape of the HTTP API:
//! `{"error": {"code", "message", "hint"}}`, with the status derived from
//! the code in one place, and extra members (a check report, field errors)
//! beside `error` when a person needs them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::connection::FieldError;
use crate::storage::StorageError;

/// A stable machine-readable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    CheckFailed,
    CreatioError,
    Unavailable,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::RequestTimeout => "request_timeout",
            Code::Conflict => "conflict",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::RateLimited => "rate_limited",
            Code::CheckFailed => "check_failed",
            Code::CreatioError => "creatio_error",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidRequest => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::Conflict => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::CheckFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Code::CreatioError => StatusCode::BAD_GATEWAY,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
    /// Members beside `error`, boxed to keep `Result<_, ApiError>` small.
    extra: Box<Map<String, Value>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// One wrong field of a request, in an error's `fields` list.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    /// Where: `events[3].message.role`, `fields[0].field_name`, `url`.
    pub field: String,
    pub message: String,
    /// What to do, where it differs per field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            hint: Some(hint.into()),
            extra: Box::default(),
        }
    }

    /// Adds a member beside `error` (e.g. `report`).
    /// The `fields` list of an invalid request: every field that is wrong.
    pub fn with_fields(self, fields: Vec<FieldProblem>) -> Self {
        let list = serde_json::to_value(fields).unwrap_or(Value::Null);
        self.with("fields", list)
    }

    /// A member of the error body beside `code`, `message` and `hint`:
    /// the field at fault, the conversations still syncing.
    pub fn with_data<T: serde::Serialize + ?Sized>(self, key: &str, value: &T) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.with(key, value)
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    pub fn invalid(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::new(Code::InvalidRequest, message, hint)
    }

    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::new(Code::NotFound, message, hint)
    }

    /// Creatio failed what the request needed (`what`: "Creatio refused
    /// the lookup"); the hint is the error's own diagnosis.
    pub fn creatio(what: &str, e: &creatio::Error) -> Self {
        ApiError::new(Code::CreatioError, format!("{what}: {e}"), e.diagnosis())
    }

    /// Invalid fields, all of them, the first one's hint on top.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let message = errors
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; ");
        let hint = errors.first().map(|e| e.hint.clone()).unwrap_or_default();
        let list = errors
            .into_iter()
            .map(|e| FieldProblem {
                field: e.field.to_string(),
                message: e.message,
                hint: Some(e.hint),
            })
            .collect();
        ApiError::invalid(message, hint).with_fields(list)
    }

    /// A failure of casebridge itself. The details go to the log, with an
    /// id the person can quote; the answer says only what to do.
    pub fn internal(what: &str, detail: &dyn std::fmt::Display) -> Self {
        let incident = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(incident = %incident, error = %detail, "{what} failed.");
        ApiError::new(
            Code::Internal,
            format!("{what} failed because of an internal error (incident {incident})"),
            "Retry in a moment; if it keeps failing, the server log has the details under this incident id.",
        )
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::internal("The database request", &e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert(
            "error".into(),
            json!({"code": self.code.as_str(), "message": self.message, "hint": self.hint}),
        );
        body.extend(*self.extra);
        (self.code.status(), Json(Value::Object(body))).into_response()
    }
}

/// Middleware: an error the framework answered itself (a body over the
/// limit, a path or query that does not parse, a wrong content type) gets
/// the API's one error shape instead of plain text, with the same status.
pub async fn framework_errors_as_json(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let keep_alive = response
        .headers()
        .get(axum::http::header::CONNECTION)
        .cloned();
    // The framework's own words, a short line at most.
    let said = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| {
            String::from_utf8_lossy(&b)
                .trim()
                .chars()
                .take(300)
                .collect::<String>()
        })
        .unwrap_or_default();
    let said = if said.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        said
    };
    let (code, hint) = match status.as_u16() {
        400 | 422 => (
            Code::InvalidRequest,
            "Check the path, the query parameters and the body against GET /openapi.json.",
        ),
        404 => (
            Code::NotFound,
            "See GET /openapi.json for the API's routes.",
        ),
        405 => (
            Code::MethodNotAllowed,
            "See GET /openapi.json for the methods each route accepts.",
        ),
        408 => (Code::RequestTimeout, "Send the whole request promptly."),
        413 => (
            Code::PayloadTooLarge,
            "POST /v1/events takes at most 16 MB (send several requests of up to 1,000 events), \
             the Creatio webhook 64 KB, other endpoints 2 MB.",
        ),
        415 => (
            Code::UnsupportedMediaType,
            "Send the body as JSON with Content-Type: application/json.",
        ),
        _ if status.is_server_error() => (
            Code::Internal,
            "Retry in a moment; if it keeps failing, the server log has the details.",
        ),
        _ => (
            Code::InvalidRequest,
            "See GET /openapi.json for what the endpoint takes.",
        ),
    };
    let mut rewritten = ApiError::new(code, said, hint).into_response();
    // The framework's status stays, where the code's would differ
    // (a 422 answered as invalid_request).
    *rewritten.status_mut() = status;
    if let Some(v) = keep_alive {
        rewritten
            .headers_mut()
            .insert(axum::http::header::CONNECTION, v);
    }
    rewritten
}
