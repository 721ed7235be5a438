//! `GET /openapi.json`: the OpenAPI document, generated from the handlers'
//! `#[utoipa::path]` annotations by the same router that serves them
//! (`utoipa_axum`), so a route cannot be served without being documented.

use std::sync::Arc;

use axum::extract::Extension;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The error shape every endpoint answers with.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the JSON built in `error.rs`
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_request`, `not_found`.
    code: String,
    /// What was wrong.
    message: String,
    /// What to do about it.
    hint: Option<String>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "operator_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "casebridge",
        description = "Bridges AI/customer-support conversations and Creatio CRM cases. Errors are {\"error\": {\"code\", \"message\", \"hint\"}}."
    ),
    modifiers(&Security),
    components(schemas(ErrorBody)),
    tags(
        (name = "ops", description = "Health, readiness, metrics, this document"),
        (name = "orgs", description = "Orgs and API keys"),
        (name = "connection", description = "The Creatio connection: Test & Save, change, disconnect, lookups"),
        (name = "sync", description = "Chat → Creatio: events and conversations"),
        (name = "two-way", description = "Creatio → chat: business-process webhooks and signed deliveries"),
        (name = "ai-fields", description = "Case columns filled from the transcript at hand-off: mappings, preview, re-run"),
        (name = "privacy", description = "Erasure of a conversation's or a contact's personal data, its audit, and retention"),
        (name = "admin", description = "The admin page (HTML, script, style sheet), served at /"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, pretty-printed with a final new line (as the
/// committed `docs/openapi.json` is).
pub fn render(doc: utoipa::openapi::OpenApi) -> String {
    let mut text = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The rendered document, shared with the handler.
#[derive(Clone)]
pub struct Document(pub Arc<String>);

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApiDocument", tag = "ops", responses((status = 200, description = "This OpenAPI 3.1 document")))]
pub async fn openapi_json(Extension(doc): Extension<Document>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_string(),
    )
}
