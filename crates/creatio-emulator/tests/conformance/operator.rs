//! Statistics and reset.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn stats_count_tokens_requests_and_operations_by_entity() {
    let app = spawn_emulator().await;
    let token = app.token().await;
    for _ in 0..3 {
        app.odata_as(&token, Method::POST, "Case", Some(json!({"Subject": "x"})))
            .await;
    }
    app.odata_as(&token, Method::GET, "Case", None).await;
    let stats = app.operator_json(Method::GET, "/stats", None).await;
    assert_eq!(stats["token_requests"], 1);
    assert_eq!(stats["tokens_issued"], 1);
    assert_eq!(stats["odata_requests"], 4);
    assert_eq!(stats["by_entity"]["Case"], json!({"GET": 1, "POST": 3}));

    app.operator(Method::DELETE, "/stats", None).await;
    assert_eq!(app.emulator.stats().odata_requests, 0);
}

#[tokio::test]
async fn reset_returns_to_a_freshly_seeded_tenant() {
    let app = spawn_emulator().await;
    app.new_case("to be forgotten").await;
    app.operator_json(
        Method::POST,
        "/clients",
        Some(json!({"client_id": "extra", "client_secret": "z"})),
    )
    .await;
    let r = app.operator(Method::POST, "/reset", None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("Case").await, 0);
    assert_eq!(app.count("CaseStatus").await, 7);
    let clients = app.operator_json(Method::GET, "/clients", None).await;
    assert_eq!(
        clients.as_array().unwrap().len(),
        1,
        "only the clients the emulator started with"
    );
}

#[tokio::test]
async fn operator_requests_are_validated() {
    let app = spawn_emulator().await;
    let r = app
        .operator(
            Method::PATCH,
            "/clients/nobody",
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .operator(
            Method::PATCH,
            &format!("/clients/{CLIENT_ID}"),
            Some(json!({"actve": false})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .operator(
            Method::POST,
            "/agent-reply",
            Some(json!({"case_id": STATUS_NEW, "text": "hi"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .operator(
            Method::POST,
            "/processes",
            Some(json!({"trigger": {"kind": "activity_added"}, "url": "not a url", "body": {}})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .operator(
            Method::PUT,
            "/settings",
            Some(json!({"token_lifetime_secs": u64::MAX})),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "an unrepresentable lifetime is refused"
    );
    let r = app
        .operator(
            Method::POST,
            "/processes",
            Some(json!({"trigger": {"kind": "activity_added"},
            "url": "http://127.0.0.1:9/x", "body": {}, "retries": 4_000_000_000u64})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "retries are bounded");
    let r = app
        .operator(
            Method::POST,
            "/faults",
            Some(json!({"kind": "latency", "ms": 1, "duration_secs": 1e300})),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "an enormous duration means forever, not a crash"
    );
}
