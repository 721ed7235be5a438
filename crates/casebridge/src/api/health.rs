//! Liveness and readiness.

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, ApiResult, Code};
use super::openapi::ErrorBody;
use super::AppState;

/// `/healthz` and `/readyz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthOut {
    /// `ok` (up) or `ready` (the database answers).
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "getHealth", tag = "ops", responses((status = 200, description = "The process is up", body = HealthOut)))]
pub async fn healthz() -> Json<HealthOut> {
    Json(HealthOut { status: "ok" })
}

/// The process can do its work: the database answers.
#[utoipa::path(get, path = "/readyz", operation_id = "getReadiness", tag = "ops", responses((status = 200, description = "The database answers", body = HealthOut), (status = 503, description = "The database does not answer", body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<HealthOut>> {
    state.app.db.ping().await.map_err(|e| {
        ApiError::new(
            Code::Unavailable,
            format!("The database does not answer: {e}"),
            "Check CASEBRIDGE_DATABASE_URL and that the database is running.",
        )
    })?;
    Ok(Json(HealthOut { status: "ready" }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "ops", responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::metrics::render(crate::sync::worker::report_stored_gauges(&state.app.db)).await,
    )
}

/// Middleware for the API's address when `CASEBRIDGE_METRICS_LISTEN` is set:
/// `/metrics` is served only there.
pub async fn metrics_elsewhere(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if request.uri().path() == "/metrics" {
        return ApiError::not_found(
            "Metrics are served on their own address",
            "Scrape the address in CASEBRIDGE_METRICS_LISTEN.",
        )
        .into_response();
    }
    next.run(request).await
}
