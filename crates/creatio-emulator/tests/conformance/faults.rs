//! Fault injection through the operator API.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn inject(app: &TestEmulator, fault: Value) {
    let r = app.operator(Method::POST, "/faults", Some(fault)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn server_errors_rate_limits_and_their_end() {
    let app = spawn_emulator().await;
    let token = app.token().await;
    inject(
        &app,
        json!({"kind": "server_errors", "rate": 1.0, "duration_secs": 0.3}),
    )
    .await;
    let r = app.odata_as(&token, Method::GET, "Case", None).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], "An error has occurred.");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        app.odata_as(&token, Method::GET, "Case", None)
            .await
            .status(),
        StatusCode::OK
    );

    inject(&app, json!({"kind": "rate_limit", "retry_after_secs": 7})).await;
    let r = app.odata_as(&token, Method::GET, "Case", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    let listed = app.operator_json(Method::GET, "/faults", None).await;
    assert_eq!(
        listed,
        json!([{"kind": "rate_limit", "retry_after_secs": 7, "rate": 1.0}])
    );
    app.operator(Method::DELETE, "/faults", None).await;
    assert_eq!(
        app.odata_as(&token, Method::GET, "Case", None)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.emulator.stats().faults_injected, 2);
}

#[tokio::test]
async fn outages_of_everything_or_of_the_token_endpoint_alone() {
    let app = spawn_emulator().await;
    let token = app.token().await;
    inject(&app, json!({"kind": "token_outage"})).await;
    let r = app
        .token_request(
            "/connect/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.odata_as(&token, Method::GET, "Case", None)
            .await
            .status(),
        StatusCode::OK
    );

    inject(&app, json!({"kind": "outage"})).await;
    let r = app.odata_as(&token, Method::GET, "Case", None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(
        app.operator(Method::GET, "/stats", None).await.status(),
        StatusCode::OK,
        "the operator API is never faulted"
    );
}

#[tokio::test]
async fn latency_delays_requests_by_at_least_the_configured_time() {
    let app = spawn_emulator().await;
    let token = app.token().await;
    inject(&app, json!({"kind": "latency", "ms": 150})).await;
    let started = Instant::now();
    assert_eq!(
        app.odata_as(&token, Method::GET, "Case", None)
            .await
            .status(),
        StatusCode::OK
    );
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the delay was applied"
    );
}

#[tokio::test]
async fn bad_fault_requests_are_refused_with_a_reason() {
    let app = spawn_emulator().await;
    for bad in [
        json!({"kind": "server_errors", "rate": 1.5}),
        json!({"kind": "earthquake"}),
        json!({"kind": "outage", "duration_secs": -1}),
    ] {
        let r = app
            .operator(Method::POST, "/faults", Some(bad.clone()))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(!body["error"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        app.operator_json(Method::GET, "/faults", None).await,
        json!([])
    );
}
