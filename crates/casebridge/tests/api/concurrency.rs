//! Each org's adaptive limit on requests in flight to its Creatio, seen
//! from outside: `casebridge_creatio_concurrency_limit{org_id}` halves
//! when Creatio answers 429 or 503, shrinks when its latency jumps, and
//! grows again while it answers well. The steps are checked by the value
//! each one leads to, never by how long it took.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Backend, Org, TestApp};
use crate::on_both_backends;

on_both_backends!(
    the_limit_halves_on_429_and_503_shrinks_on_latency_and_grows_back,
    a_backlog_behind_a_slow_creatio_is_claimed_no_faster_than_its_lanes_send,
);

fn message(conv: &str) -> Value {
    json!([{
        "id": format!("{conv}-e1"), "type": "message.created",
        "conversation": {"id": conv, "channel": "web"},
        "message": {"id": "m1", "role": "customer", "text": format!("hello from {conv}")}
    }])
}

/// The org's current limit as `/metrics` shows it.
async fn limit(app: &TestApp, org: &Org) -> Option<u64> {
    let text = app.metrics_text().await;
    let prefix = format!(
        "casebridge_creatio_concurrency_limit{{org_id=\"{}\"}} ",
        org.id
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the org's limit is `want`.
async fn limit_becomes(app: &TestApp, org: &Org, want: u64, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = limit(app, org).await;
        if now == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {after} the limit is {now:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fault(app: &TestApp, fault: Value) {
    app.emulator_op(Method::POST, "faults", Some(fault)).await;
}

async fn the_limit_halves_on_429_and_503_shrinks_on_latency_and_grows_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;

    // Healthy: the limit starts at 2 and a good answer keeps it there.
    app.send(&org.key, message("c0")).await;
    app.settled(&org.key, "c0").await;
    limit_becomes(&app, &org, 2, "a good answer").await;

    // 429: halved. Once Creatio answers again, the retried job's good
    // answer raises it by one (+1/limit per answer).
    fault(
        &app,
        json!({"kind": "rate_limit", "retry_after_secs": 1, "duration_secs": 0.5}),
    )
    .await;
    app.send(&org.key, message("c1")).await;
    limit_becomes(&app, &org, 1, "a 429").await;
    app.settled(&org.key, "c1").await;
    limit_becomes(&app, &org, 2, "a good answer after the 429").await;

    // 503 (the token is cached; every OData request answers 503): halved.
    app.creatio_outage(1).await;
    app.send(&org.key, message("c2")).await;
    limit_becomes(&app, &org, 1, "a 503").await;
    app.emulator_op(Method::DELETE, "faults", None).await;
    app.settled(&org.key, "c2").await;
    limit_becomes(&app, &org, 2, "a good answer after the 503").await;

    // Latency far above the lowest seen: a tenth off, which from 2 is 1.
    fault(&app, json!({"kind": "latency", "ms": 400})).await;
    app.send(&org.key, message("c3")).await;
    app.settled(&org.key, "c3").await;
    limit_becomes(&app, &org, 1, "a slow answer").await;
    app.finish().await;
}

/// 400 conversations wait behind a Creatio that takes 300 ms a request,
/// with at most 2 requests in flight: the jobs claimed (running) at any
/// moment never exceed what 2 requests carry, so what a process holds is
/// bounded by its lanes, not by the backlog; the connection shows the lane
/// (in flight, within its limit). Counted, never timed.
async fn a_backlog_behind_a_slow_creatio_is_claimed_no_faster_than_its_lanes_send(
    backend: Backend,
) {
    use casebridge::sync::limiter::Bounds;
    use casebridge::sync::worker::ROUND;
    use sqlx::Row;
    let app = TestApp::spawn_with(backend, |c| {
        c.sync_policy.concurrency = Bounds {
            floor: 1,
            ceiling: 2,
        }
    })
    .await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.emulator_op(Method::PUT, "cost", Some(json!({"base_ms": 300})))
        .await;
    let backlog: Vec<Value> = (0..400)
        .flat_map(|c| {
            message(&format!("c{c}"))
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    app.send(&org.key, Value::Array(backlog)).await;
    let count = |state: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query(&format!(
                "SELECT COUNT(*) AS n FROM jobs WHERE state = '{state}'"
            ))
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get::<i64, _>("n")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut most = 0;
    let mut most_in_flight = 0;
    loop {
        let running = count("running").await;
        most = most.max(running);
        assert!(
            running <= (2 * ROUND) as i64,
            "{running} jobs claimed at once, more than 2 requests carry"
        );
        // The admin sees the lane: its requests in flight, within its limit.
        let (_, connection) = app.get("/v1/creatio/connection", &org.key).await;
        let lane = &connection["creatio_concurrency"];
        assert_eq!(
            (lane["floor"].as_u64(), lane["ceiling"].as_u64()),
            (Some(1), Some(2)),
            "{lane}"
        );
        let (in_flight, limit) = (
            lane["in_flight"].as_u64().unwrap(),
            lane["limit"].as_u64().unwrap(),
        );
        assert!((1..=2).contains(&limit) && in_flight <= limit, "{lane}");
        most_in_flight = most_in_flight.max(in_flight);
        if running == 0 && count("pending").await == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the backlog did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(most > 0, "the backlog was seen being worked");
    assert!(
        most_in_flight > 0,
        "the page never showed a request in flight"
    );
    assert_eq!(count("done").await, 400, "every job done");
    app.finish().await;
}
