//! `GET /openapi.json` describes exactly the routes the service serves.
//!
//! The router is built from the annotated handlers (`utoipa_axum`), so a
//! route is documented by construction; this test checks the other
//! direction and the contract: the document lists DESIGN.md §4's routes
//! (plus those added since), and every documented operation is served —
//! answered by its handler, not by the "no such endpoint" fallback.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

/// Every operation of the HTTP contract.
const CONTRACT: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/orgs"),
    ("GET", "/v1/orgs"),
    ("DELETE", "/v1/orgs/{id}"),
    ("POST", "/v1/api-keys"),
    ("GET", "/v1/api-keys"),
    ("DELETE", "/v1/api-keys/{id}"),
    ("GET", "/v1/creatio/connection"),
    ("POST", "/v1/creatio/connection"),
    ("PATCH", "/v1/creatio/connection"),
    ("DELETE", "/v1/creatio/connection"),
    ("POST", "/v1/creatio/connection/test"),
    ("POST", "/v1/creatio/webhook-token/rotate"),
    ("GET", "/v1/creatio/lookups/{kind}"),
    ("GET", "/v1/creatio/process-templates"),
    ("GET", "/v1/creatio/ai-fields"),
    ("PUT", "/v1/creatio/ai-fields"),
    ("POST", "/v1/creatio/ai-fields/preview"),
    ("GET", "/v1/creatio/ai-fields/columns"),
    ("POST", "/v1/conversations/{id}/ai-fields/rerun"),
    ("POST", "/v1/events"),
    ("GET", "/v1/conversations/{id}"),
    ("GET", "/v1/conversations"),
    ("GET", "/"),
    ("GET", "/admin/{asset}"),
    ("POST", "/webhooks/creatio/{token}"),
    ("GET", "/v1/delivery"),
    ("PUT", "/v1/delivery"),
    ("DELETE", "/v1/delivery"),
    ("POST", "/v1/delivery/secret/rotate"),
    ("GET", "/v1/connectors/chatwoot"),
    ("PUT", "/v1/connectors/chatwoot"),
    ("DELETE", "/v1/connectors/chatwoot"),
    ("POST", "/v1/connectors/chatwoot/{token}"),
    ("GET", "/v1/deliveries"),
    ("GET", "/v1/deliveries/{id}"),
    ("POST", "/v1/deliveries/{id}/replay"),
    ("POST", "/v1/deliveries/{id}/retry"),
    ("POST", "/v1/deliveries/recover"),
    ("POST", "/v1/jobs/{id}/retry"),
    ("POST", "/v1/jobs/retry"),
    ("DELETE", "/v1/conversations/{id}"),
    ("POST", "/v1/erasure"),
    ("GET", "/v1/erasures"),
    ("GET", "/v1/retention"),
];

#[tokio::test]
async fn the_document_matches_the_routes_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let resp = reqwest::get(format!("{}/openapi.json", app.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut contract: Vec<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    contract.sort();
    assert_eq!(documented, contract, "the document and the contract differ");

    // Every documented operation reaches its handler: whatever the handler
    // says (401, 400, 404 for a missing record…), it is not the router's
    // "no such endpoint" or "method not allowed".
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", "x1")
            .replace("{kind}", "groups")
            .replace("{token}", "cbw_nope")
            .replace("{asset}", "app.js");
        let resp = app
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{concrete}", app.url),
            )
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert!(
            !body.contains("No such endpoint"),
            "{method} {path} is documented but not served: {body}"
        );
        // Each operation documents the statuses it answers with.
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
    // And the fallback is what an unknown route gets.
    let (status, body) = app.call(Method::GET, "/v1/nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("openapi.json"));
    app.finish().await;
}

/// The document in the repository (`docs/openapi.json`, what integrators
/// generate clients from) is the one the code serves, byte for byte.
#[tokio::test]
async fn the_committed_document_is_the_served_one() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served = reqwest::get(format!("{}/openapi.json", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        served == committed,
        "docs/openapi.json differs from the document the code serves: \
         run `cargo run -- openapi --out docs/openapi.json` and commit it"
    );
    app.finish().await;
}

/// Each operation has a unique, camelCase operationId (a generated
/// client's method name) and one tag (its module).
#[test]
fn operation_ids_are_unique_and_meaningful() {
    let doc: Value = serde_json::from_str(&casebridge::api::openapi_json()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                id.len() > 3
                    && id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{method} {path}: operationId {id:?} is not camelCase"
            );
            assert!(seen.insert(id.to_string()), "{method} {path}: {id} twice");
            assert_eq!(
                op["tags"].as_array().map(Vec::len),
                Some(1),
                "{method} {path}"
            );
        }
    }
    assert_eq!(seen.len(), CONTRACT.len());
    // The event body is typed: a union discriminated by `type`, each
    // member with its required part, with limits.
    let schemas = &doc["components"]["schemas"];
    let union = &schemas["TypedEvent"];
    assert_eq!(union["discriminator"]["propertyName"], "type");
    for (event_type, member, part) in [
        ("message.created", "MessageCreatedEvent", Some("message")),
        (
            "conversation.handoff",
            "ConversationHandoffEvent",
            Some("handoff"),
        ),
        ("conversation.resolved", "ConversationResolvedEvent", None),
    ] {
        assert_eq!(
            union["discriminator"]["mapping"][event_type],
            format!("#/components/schemas/{member}")
        );
        let required = schemas[member]["required"].to_string();
        for field in ["id", "type", "conversation"].into_iter().chain(part) {
            assert!(
                required.contains(&format!("\"{field}\"")),
                "{member} needs {field}"
            );
        }
    }
    assert_eq!(
        schemas["EventMessage"]["properties"]["text"]["maxLength"],
        100000
    );
    // The deliveries casebridge sends, with their headers and payloads.
    for (event_type, schema) in [
        ("agent.reply", "AgentReply"),
        ("conversation.resolved", "ConversationResolved"),
        ("case.linked", "CaseLinked"),
    ] {
        let hook = &doc["webhooks"][event_type]["post"];
        let body = &hook["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["properties"]["type"]["const"], event_type);
        assert_eq!(
            body["properties"]["data"]["$ref"],
            format!("#/components/schemas/{schema}")
        );
        assert!(schemas[schema]["properties"].is_object(), "{schema}");
        let headers: Vec<&str> = hook["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            headers,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        assert!(hook["responses"]["410"].is_object());
    }
}

/// Every answer is typed: each documented status other than 204 and 304
/// has content with a schema (so a generated client never gets `Any`), and
/// no handler builds its JSON by hand (`json!`): an answer is a type the
/// document describes. Errors are the one shape `error.rs` renders.
#[test]
fn every_answer_has_a_schema_and_no_handler_builds_json_by_hand() {
    let doc: Value = serde_json::from_str(&casebridge::api::openapi_json()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, answer) in op["responses"].as_object().unwrap() {
                if status == "204" || status == "304" {
                    continue;
                }
                let content = answer["content"].as_object();
                assert!(
                    content.is_some_and(
                        |c| !c.is_empty() && c.values().all(|m| m["schema"].is_object())
                    ),
                    "{method} {path} {status} has no schema: {answer}"
                );
            }
        }
    }
    let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    for entry in std::fs::read_dir(&api).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // error.rs renders the one error shape; openapi.rs writes the
        // document's `webhooks`, which utoipa does not model.
        if name == "error.rs" || name == "openapi.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        // A schema's example (`#[schema(example = json!(…))]`) is no answer.
        let by_hand = code
            .lines()
            .any(|l| l.contains("json!(") && !l.contains("example = json!("));
        assert!(!by_hand, "src/api/{name} builds JSON with json!");
    }
}
