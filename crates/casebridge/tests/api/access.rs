//! Request ids and the access log: an id on every answer (the caller's
//! when usable), on every log line of the request, and one access line per
//! request naming the route's template, never the path with its token; the
//! HTTP metrics use the same labels.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{logs, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    every_answer_carries_a_request_id,
    the_access_log_names_the_route_not_the_path,
);

async fn every_answer_carries_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id_of = |resp: &reqwest::Response| {
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let resp = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    let generated = id_of(&resp).expect("a generated request id");
    assert_eq!(generated.len(), 32, "{generated}");
    assert!(
        generated.chars().all(|c| c.is_ascii_hexdigit()),
        "{generated}"
    );

    let resp = app
        .http
        .get(format!("{}/healthz", app.url))
        .header("x-request-id", "caller-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&resp).as_deref(), Some("caller-chosen-42"));

    // An error answer carries it too, and an unusable id is replaced.
    for unusable in ["has spaces in it", &"x".repeat(129)] {
        let resp = app
            .http
            .get(format!("{}/v1/nothing-here", app.url))
            .header("x-request-id", unusable)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let id = id_of(&resp).expect("an id on an error answer");
        assert_ne!(id, unusable);
        assert_eq!(id.len(), 32);
    }
    app.finish().await;
}

async fn the_access_log_names_the_route_not_the_path(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let rid = format!("rid-{}", uuid::Uuid::new_v4().simple());
    let (status, _) = app
        .call_with_request_id(
            reqwest::Method::POST,
            "/v1/events",
            &org.key,
            json!({"id": "e1", "type": "message.created",
                   "conversation": {"id": "c1", "channel": "web"},
                   "message": {"id": "m1", "role": "customer", "text": "hello"}}),
            &rid,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let secret = format!("cbw_notarealtoken{}", uuid::Uuid::new_v4().simple());
    let resp = app
        .http
        .post(format!("{}/webhooks/creatio/{secret}", app.url))
        .json(&json!({"event_type": "new_activity", "caseId": uuid::Uuid::new_v4()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The access lines are written once the answer is sent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = logs();
        if log.contains("POST /webhooks/creatio/{token} 404")
            || std::time::Instant::now() > deadline
        {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // The log holds every test's lines: look for this request's.
    let line = |needles: &[&str]| {
        log.lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no line with all of {needles:?} in the log"))
            .to_string()
    };
    let events = line(&["POST /v1/events 202", &rid]);
    assert!(events.contains("latency_ms="), "{events}");
    // The handler's own lines carry the request's id too.
    line(&["Accepted events.", &rid]);
    line(&["POST /webhooks/creatio/{token} 404"]);
    assert!(!log.contains(&secret), "the webhook token reached the log");
    // The same labels count and time the request in /metrics.
    let metrics = app.metrics_text().await;
    let counted = |route: &str, status: &str| {
        metrics.lines().any(|l| {
            l.starts_with("casebridge_http_requests_total{")
                && l.contains("method=\"POST\"")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(counted("/v1/events", "202"), "{metrics}");
    assert!(counted("/webhooks/creatio/{token}", "404"), "{metrics}");
    assert!(
        metrics.contains("casebridge_http_request_duration_seconds"),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&secret),
        "the webhook token reached /metrics"
    );
    app.finish().await;
}
