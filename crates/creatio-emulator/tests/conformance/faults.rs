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

/// The cost model: refused over the per-client limit (429 with
/// `Retry-After`, or 503), or queued so that never more than the limit
/// run at once; a bad model is refused and changes nothing; `DELETE` ends
/// it. Checked by answers and counts, not times.
#[tokio::test]
async fn the_cost_model_limits_each_clients_requests_in_flight() {
    let app = spawn_emulator().await;
    let token = app.token().await;
    let set = |model: Value| {
        let app = &app;
        async move { app.operator(Method::PUT, "/cost", Some(model)).await }
    };
    let r = set(json!({"base_ms": 100, "jitter": 2.0})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.operator_json(Method::GET, "/cost", None).await["model"],
        Value::Null
    );

    for (over_limit, status) in [
        ("429", StatusCode::TOO_MANY_REQUESTS),
        ("503", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let r = set(json!({"base_ms": 800, "max_concurrent": 1, "over_limit": over_limit, "retry_after_secs": 4})).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let (first, second) =
            tokio::join!(app.odata_as(&token, Method::GET, "Case", None), async {
                // The first is in flight for 800 ms; this one comes 100 ms in.
                tokio::time::sleep(Duration::from_millis(100)).await;
                app.odata_as(&token, Method::GET, "Case", None).await
            });
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(second.status(), status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(second.headers()["retry-after"], "4");
        }
    }

    set(json!({"base_ms": 20, "max_concurrent": 2, "over_limit": "queue"})).await;
    let all = futures_join_all(&app, &token, 6).await;
    assert!(all.iter().all(|s| *s == StatusCode::OK), "{all:?}");
    let load = app.operator_json(Method::GET, "/cost", None).await;
    assert_eq!(load["load"]["casebridge"]["peak"], 2, "{load}");
    assert_eq!(load["model"]["max_concurrent"], 2);

    app.operator(Method::DELETE, "/cost", None).await;
    assert_eq!(
        app.operator_json(Method::GET, "/cost", None).await["model"],
        Value::Null
    );
}

/// `n` reads at once; their statuses.
async fn futures_join_all(app: &TestEmulator, token: &str, n: usize) -> Vec<StatusCode> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let url = app.url("/0/odata/Case");
        let token = token.to_string();
        set.spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = set.join_next().await {
        statuses.push(s.unwrap());
    }
    statuses
}
