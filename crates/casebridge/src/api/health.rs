//! Liveness and readiness.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, Code};
use super::AppState;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can do its work: the database answers.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.db.ping().await.map_err(|e| {
        ApiError::new(
            Code::Unavailable,
            format!("The database does not answer: {e}"),
            "Check CASEBRIDGE_DATABASE_URL and that the database is running.",
        )
    })?;
    Ok(Json(json!({"status": "ready"})))
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::metrics::render(&state.db).await,
    )
}
