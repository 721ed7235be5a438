//! The HTTP API (DESIGN.md §4): one module per resource, one error shape
//! ([`error::ApiError`]), extractors for bodies and callers ([`extract`]).

pub mod access;
pub mod admin_page;
pub mod ai_fields;
pub mod chatwoot;
pub mod connection;
pub mod conversations;
pub mod delivery;
pub mod erasure;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod lookups;
pub mod openapi;
pub mod orgs;
pub mod recovery;
pub mod webhooks;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use error::ApiError;

/// What every handler may use: the services shared with the workers, and
/// what only the HTTP side needs.
pub struct ApiState {
    pub app: App,
    /// Base of the URLs shown to admins, without a trailing slash.
    pub public_url: String,
    pub admin_token_hash: String,
    /// Limits calls to the Creatio webhook, per org.
    pub webhook_limiter: crate::webhook::limit::RateLimiter,
    /// Each org's lane toward its Creatio, in a process that runs the sync
    /// workers (none with `CASEBRIDGE_ROLE=api`: the lanes live where the
    /// requests are sent).
    pub lanes: Option<Arc<crate::sync::limiter::Lanes>>,
}

pub type AppState = Arc<ApiState>;

/// Serializes `(key, value)` pairs as a JSON object, keys in their order
/// (counts by state or by table, in the order the query gave them).
pub fn pairs_as_object<S, V>(pairs: &[(String, V)], s: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    V: serde::Serialize,
{
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// Only health and metrics: what a `worker`-role process serves.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(|| async {
            ApiError::not_found(
                "This process runs sync workers only (CASEBRIDGE_ROLE=worker)",
                "Send API requests to a process with CASEBRIDGE_ROLE=all or api.",
            )
        })
        .route_layer(axum::middleware::from_fn(access::note_route))
        .layer(axum::middleware::from_fn(error::framework_errors_as_json))
        .layer(axum::middleware::from_fn(access::request_id_and_access_log))
        .with_state(state)
}

/// Only `/metrics`, for `CASEBRIDGE_METRICS_LISTEN`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .fallback(|| async {
            ApiError::not_found(
                "This address serves only /metrics (CASEBRIDGE_METRICS_LISTEN)",
                "Send API requests to CASEBRIDGE_LISTEN.",
            )
        })
        .route_layer(axum::middleware::from_fn(access::note_route))
        .layer(axum::middleware::from_fn(error::framework_errors_as_json))
        .layer(axum::middleware::from_fn(access::request_id_and_access_log))
        .with_state(state)
}

/// The API: every route registered with its OpenAPI description, so the
/// document served at `/openapi.json` lists exactly what is served.
pub fn router(state: AppState) -> Router {
    let (router, doc) = documented_router().split_for_parts();
    let doc = openapi::Document(Arc::new(openapi::render(doc)));
    router
        .route_layer(axum::middleware::from_fn(access::note_route))
        .layer(axum::Extension(doc))
        .fallback(|| async {
            ApiError::not_found(
                "No such endpoint",
                "See GET /openapi.json or the README for the API's routes.",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                error::Code::MethodNotAllowed,
                "This endpoint does not take that method",
                "See GET /openapi.json for the methods each route accepts.",
            )
        })
        .layer(axum::middleware::from_fn(error::framework_errors_as_json))
        .layer(axum::middleware::from_fn(extract::refuse_nul_in_uri))
        .layer(axum::middleware::from_fn(access::request_id_and_access_log))
        .with_state(state)
}

/// The OpenAPI document as `/openapi.json` serves it (`casebridge openapi`
/// writes it to `docs/openapi.json`).
pub fn openapi_json() -> String {
    openapi::render(documented_router().split_for_parts().1)
}

/// The routes and their OpenAPI document, from one list.
pub fn documented_router() -> OpenApiRouter<AppState> {
    let events = OpenApiRouter::new()
        .routes(routes!(events::ingest))
        .layer(axum::extract::DefaultBodyLimit::max(events::MAX_BODY));
    let webhooks = OpenApiRouter::new()
        .routes(routes!(webhooks::creatio))
        .layer(axum::extract::DefaultBodyLimit::max(webhooks::MAX_BODY));
    let chatwoot_webhook = OpenApiRouter::new()
        .routes(routes!(chatwoot::webhook))
        .layer(axum::extract::DefaultBodyLimit::max(chatwoot::MAX_BODY));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(orgs::create_org, orgs::list_orgs))
        .routes(routes!(orgs::delete_org))
        .routes(routes!(orgs::create_key, orgs::list_keys))
        .routes(routes!(orgs::revoke_key))
        .routes(routes!(
            connection::read,
            connection::test_and_save,
            connection::change,
            connection::disconnect
        ))
        .routes(routes!(connection::retest))
        .routes(routes!(connection::rotate_webhook_token))
        .routes(routes!(lookups::list))
        .routes(routes!(ai_fields::read, ai_fields::put))
        .routes(routes!(ai_fields::preview))
        .routes(routes!(ai_fields::columns))
        .routes(routes!(ai_fields::rerun))
        .routes(routes!(events::conversation, erasure::erase_conversation))
        .routes(routes!(erasure::erase_contact))
        .routes(routes!(erasure::list))
        .routes(routes!(erasure::retention))
        .routes(routes!(conversations::list))
        .routes(routes!(webhooks::process_templates))
        .routes(routes!(delivery::read, delivery::put, delivery::delete))
        .routes(routes!(delivery::rotate_secret))
        .routes(routes!(chatwoot::read, chatwoot::put, chatwoot::delete))
        .routes(routes!(delivery::list))
        .routes(routes!(delivery::get))
        .routes(routes!(delivery::replay))
        .routes(routes!(recovery::retry_delivery))
        .routes(routes!(recovery::recover_deliveries))
        .routes(routes!(recovery::retry_job))
        .routes(routes!(recovery::retry_jobs))
        .routes(routes!(admin_page::index))
        .routes(routes!(admin_page::asset))
        .merge(events)
        .merge(webhooks)
        .merge(chatwoot_webhook)
}
