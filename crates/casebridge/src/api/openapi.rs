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
    /// 400 on a request with wrong fields: every one, each with what to do.
    fields: Option<Vec<super::error::FieldProblem>>,
    /// 422 from Test & Save or a change: the check report, one line per
    /// check, with the hint for each that failed.
    report: Option<crate::connection::checks::Report>,
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
    components(schemas(
        ErrorBody,
        crate::deliver::AgentReply,
        crate::deliver::ReplyAuthor,
        crate::deliver::ConversationResolved,
        crate::deliver::CaseLinked
    )),
    tags(
        (name = "ops", description = "Health, readiness, metrics, this document"),
        (name = "orgs", description = "Orgs and API keys"),
        (name = "connection", description = "The Creatio connection: Test & Save, change, disconnect, lookups"),
        (name = "sync", description = "Chat → Creatio: events and conversations"),
        (name = "two-way", description = "Creatio → chat: business-process webhooks and signed deliveries"),
        (name = "chatwoot", description = "The Chatwoot connector: settings with Test & Save, and Chatwoot's webhook"),
        (name = "ai-fields", description = "Case columns filled from the transcript at hand-off: mappings, preview, re-run"),
        (name = "privacy", description = "Erasure of a conversation's or a contact's personal data, its audit, and retention"),
        (name = "admin", description = "The admin page (HTML, script, style sheet), served at /"),
        (name = "webhooks", description = "What casebridge sends to the org's delivery URL, signed per Standard Webhooks"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, pretty-printed with a final new line (as the
/// committed `docs/openapi.json` is), with the `webhooks` casebridge sends
/// (OpenAPI 3.1; utoipa has no model of them, so they are added here from
/// the payload types' schemas and the delivery schedule).
pub fn render(doc: utoipa::openapi::OpenApi) -> String {
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("webhooks".into(), webhooks());
    }
    let mut text =
        serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The deliveries casebridge sends to the org's delivery URL, one per
/// `type`, with the Standard Webhooks headers and what each answer means.
fn webhooks() -> serde_json::Value {
    use crate::deliver::{self, Schedule};
    let delays: Vec<String> = Schedule::default()
        .delays
        .iter()
        .map(|d| match d.as_secs() {
            s if s < 60 => format!("{s} s"),
            s if s < 3600 => format!("{} min", s / 60),
            s => format!("{} h", s / 3600),
        })
        .collect();
    let schedule = format!(
        "A delivery not answered 2xx is tried again after {} (each ±20 %, a `Retry-After` honoured up to twice the delay), then dead-lettered; an admin can replay it (`replayDelivery`) or recover every dead one since a time (`recoverDeliveries`). A conversation's deliveries arrive in order: a later one waits for the earlier ones.",
        delays.join(", ")
    );
    let header = |name: &str, description: &str, example: &str| {
        serde_json::json!({
            "name": name, "in": "header", "required": true, "description": description,
            "schema": {"type": "string"}, "example": example,
        })
    };
    let headers = [
        header("webhook-id", "The delivery's id: the same on every retry and replay, so a receiver can drop a repeat.", "msg_01a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6"),
        header("webhook-timestamp", "Unix seconds of this attempt; refuse one more than 5 minutes off.", "1764669600"),
        header("webhook-signature", "Space-separated `v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{body}` with the `whsec_` signing secret: two while a rotated-out secret is in its 24 h grace period. Verify with the `standardwebhooks` package.", "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="),
    ];
    let responses = serde_json::json!({
        "2XX": {"description": "Delivered: not sent again."},
        "410": {"description": "Gone: the endpoint is disabled and this delivery dead-lettered; saving the delivery URL again (`putDeliveryEndpoint`) enables it."},
        "408": {"description": "Timed out: tried again on the schedule."},
        "429": {"description": "Too many: tried again on the schedule (its `Retry-After` honoured)."},
        "4XX": {"description": "Refused for good: dead-lettered at once, not retried (fix the receiver, then replay). A 3xx is treated the same: redirects are not followed."},
        "501": {"description": "Not implemented: dead-lettered at once."},
        "5XX": {"description": "Failed: tried again on the schedule, as a timeout (15 s) or no answer are."},
    });
    let mut hooks = serde_json::Map::new();
    for (event_type, schema, operation, summary) in [
        (
            deliver::AGENT_REPLY,
            "AgentReply",
            "agentReplyWebhook",
            "An agent answered the customer in Creatio",
        ),
        (
            deliver::CONVERSATION_RESOLVED,
            "ConversationResolved",
            "conversationResolvedWebhook",
            "The case was closed or resolved in Creatio",
        ),
        (
            deliver::CASE_LINKED,
            "CaseLinked",
            "caseLinkedWebhook",
            "The conversation has its Creatio case",
        ),
    ] {
        hooks.insert(
            event_type.to_string(),
            serde_json::json!({"post": {
                "operationId": operation,
                "tags": ["webhooks"],
                "summary": summary,
                "description": schedule,
                "parameters": headers,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["type", "timestamp", "data"],
                    "properties": {
                        "type": {"type": "string", "const": event_type},
                        "timestamp": {"type": "string", "format": "date-time", "description": "When casebridge queued it."},
                        "data": {"$ref": format!("#/components/schemas/{schema}")},
                    },
                }}}},
                "responses": responses,
            }}),
        );
    }
    serde_json::Value::Object(hooks)
}

/// The rendered document, shared with the handler.
#[derive(Clone)]
pub struct Document(pub Arc<String>);

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApiDocument", tag = "ops", responses((status = 200, description = "This OpenAPI 3.1 document", body = Object, content_type = "application/json")))]
pub async fn openapi_json(Extension(doc): Extension<Document>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_string(),
    )
}
