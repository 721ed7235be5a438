//! The HTTP API (DESIGN.md §4): one module per resource, one error shape
//! ([`error::ApiError`]), extractors for bodies and callers ([`extract`]).

pub mod connection;
pub mod delivery;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod lookups;
pub mod orgs;
pub mod webhooks;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::connection::clients::Clients;
use crate::outbound::TargetPolicy;
use crate::secrets::SecretBox;
use crate::storage::Db;
use error::ApiError;

/// What every handler may use.
pub struct Services {
    pub db: Db,
    pub secrets: SecretBox,
    /// The one HTTP client for tenant-supplied URLs (pooled, SSRF-guarded).
    pub http: reqwest::Client,
    pub policy: TargetPolicy,
    pub clients: Clients,
    /// Base of the URLs shown to admins, without a trailing slash.
    pub public_url: String,
    pub admin_token_hash: String,
    /// Wakes this process's sync workers when jobs were queued.
    pub work_ready: tokio::sync::Notify,
    /// Merges concurrent Creatio creates per org into `$batch` requests.
    pub coalescer: crate::sync::coalesce::Coalescer,
    /// The HTTP client for delivery URLs: SSRF-guarded, no redirects.
    pub delivery_http: reqwest::Client,
    /// Wakes this process's delivery senders when deliveries were queued.
    pub delivery_ready: tokio::sync::Notify,
    /// Limits calls to the Creatio webhook, per org.
    pub webhook_limiter: crate::webhook::RateLimiter,
}

pub type AppState = Arc<Services>;

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
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/orgs", post(orgs::create_org))
        .route("/v1/api-keys", post(orgs::create_key).get(orgs::list_keys))
        .route("/v1/api-keys/{id}", axum::routing::delete(orgs::revoke_key))
        .route(
            "/v1/creatio/connection",
            get(connection::read)
                .post(connection::test_and_save)
                .patch(connection::change)
                .delete(connection::disconnect),
        )
        .route("/v1/creatio/connection/test", post(connection::retest))
        .route(
            "/v1/creatio/webhook-token/rotate",
            post(connection::rotate_webhook_token),
        )
        .route("/v1/creatio/lookups/{kind}", get(lookups::list))
        .route(
            "/v1/events",
            post(events::ingest).layer(axum::extract::DefaultBodyLimit::max(events::MAX_BODY)),
        )
        .route("/v1/conversations/{id}", get(events::conversation))
        .route(
            "/v1/creatio/process-templates",
            get(webhooks::process_templates),
        )
        .route(
            "/webhooks/creatio/{token}",
            post(webhooks::creatio).layer(axum::extract::DefaultBodyLimit::max(webhooks::MAX_BODY)),
        )
        .route(
            "/v1/delivery",
            get(delivery::read)
                .put(delivery::put)
                .delete(delivery::delete),
        )
        .route("/v1/delivery/secret/rotate", post(delivery::rotate_secret))
        .route("/v1/deliveries", get(delivery::list))
        .route("/v1/deliveries/{id}", get(delivery::get))
        .route("/v1/deliveries/{id}/replay", post(delivery::replay))
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
                "See the README for the methods each route accepts.",
            )
        })
        .with_state(state)
}
