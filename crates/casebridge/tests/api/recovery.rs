//! Recovery of dead Creatio jobs (issue "When things go wrong"): one job
//! retried after its cause is fixed, a bulk retry of what died since a
//! time, each conversation in order, and a dead job that a later success
//! made moot. Deliveries' retry-now and recover are in `two_way`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Backend, Org, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_dead_job_is_retried_after_its_cause_is_fixed_and_ends_synced,
    a_bulk_retry_takes_what_died_since_in_conversation_order_and_leaves_moot_jobs,
    bad_retry_requests_are_refused_and_change_nothing,
);

fn message(event: &str, conv: &str, text: &str) -> Value {
    json!([{
        "id": event, "type": "message.created",
        "conversation": {"id": conv, "channel": "web"},
        "message": {"id": format!("m-{event}"), "role": "customer", "text": text}
    }])
}

/// Creatio refuses the integration's activity inserts (its technical user
/// lost the right), or grants them again.
async fn activity_inserts(app: &TestApp, allowed: bool) {
    app.change_creatio_client(json!({"rights": {"Activity": {"create": allowed}}}))
        .await;
}

/// Waits until the conversation has settled with `dead` dead jobs.
async fn dead_jobs(app: &TestApp, org: &Org, conv: &str, dead: u64) -> Value {
    let c = app.settled(&org.key, conv).await;
    assert_eq!(c["jobs"]["dead"].as_u64(), Some(dead), "{c}");
    c
}

fn dead_ids(c: &Value) -> Vec<String> {
    c["open_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["state"] == "dead")
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

async fn listed(app: &TestApp, org: &Org, conv: &str) -> Value {
    let (_, list) = app.get("/v1/conversations", &org.key).await;
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conv)
        .cloned()
        .unwrap_or_else(|| panic!("{conv} is not listed: {list}"))
}

fn timeline_has(c: &Value, part: &str) -> bool {
    c["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["summary"].as_str().unwrap_or("").contains(part))
}

async fn a_dead_job_is_retried_after_its_cause_is_fixed_and_ends_synced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    activity_inserts(&app, false).await;
    app.send(&org.key, message("e1", "c1", "My order is late"))
        .await;
    let c = dead_jobs(&app, &org, "c1", 1).await;
    assert_eq!(listed(&app, &org, "c1").await["sync"], "failed");
    let id = dead_ids(&c).pop().unwrap();
    assert_eq!(c["messages"]["written"], 0, "{c}");

    // The cause is fixed in Creatio; the admin retries the job.
    activity_inserts(&app, true).await;
    let (status, retried) = app
        .post(&format!("/v1/jobs/{id}/retry"), &org.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_eq!(retried["state"], "pending");
    assert_eq!(retried["moot"], false);
    assert!(
        retried["attempts_before"].as_i64().unwrap() >= 1,
        "{retried}"
    );
    assert!(retried["warning"].is_null(), "{retried}");
    let c = app.settled(&org.key, "c1").await;
    assert!(c["jobs"].get("dead").is_none(), "{c}");
    assert_eq!(c["messages"]["written"], 1, "{c}");
    assert!(timeline_has(&c, "Retried by an admin"), "{c}");
    assert_eq!(listed(&app, &org, "c1").await["sync"], "synced");

    // It is done now: a second retry has nothing to do.
    let (status, again) = app
        .post(&format!("/v1/jobs/{id}/retry"), &org.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is done"),
        "{again}"
    );
    app.finish().await;
}

async fn a_bulk_retry_takes_what_died_since_in_conversation_order_and_leaves_moot_jobs(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    activity_inserts(&app, false).await;
    // c0 dies before the recovery's time, c1 (two messages) and c2 after.
    app.send(&org.key, message("e0", "c0", "Before")).await;
    dead_jobs(&app, &org, "c0", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.send(&org.key, message("e1", "c1", "First")).await;
    dead_jobs(&app, &org, "c1", 1).await;
    app.send(&org.key, message("e2", "c1", "Second")).await;
    dead_jobs(&app, &org, "c1", 2).await;
    app.send(&org.key, message("e3", "c2", "Lost")).await;
    dead_jobs(&app, &org, "c2", 1).await;

    // c2's message goes through with a later one: its dead job is moot.
    activity_inserts(&app, true).await;
    app.send(&org.key, message("e4", "c2", "Anyone?")).await;
    let c2 = app.settled(&org.key, "c2").await;
    assert_eq!(c2["messages"]["written"], 2, "{c2}");
    assert!(c2["jobs"].get("dead").is_some(), "still dead: {c2}");
    let moot: Vec<&Value> = c2["open_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["moot"] == true)
        .collect();
    assert_eq!(moot.len(), 1, "{c2}");
    let summary = listed(&app, &org, "c2").await;
    assert_eq!(summary["sync"], "synced", "{summary}");
    assert_eq!(summary["jobs"]["moot"], 1, "{summary}");
    assert_eq!(summary["jobs"]["dead"], 0, "{summary}");

    let (status, done) = app
        .post(
            "/v1/jobs/retry",
            &org.key,
            json!({"state": "dead", "since": since}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{done}");
    assert_eq!(done["retried"], 2, "c1's two, not c0's: {done}");
    assert_eq!(done["conversations"], 1, "{done}");
    assert_eq!(done["moot_left"], 1, "c2's: {done}");

    // c1's messages are written in their order.
    let c1 = app.settled(&org.key, "c1").await;
    assert_eq!(c1["messages"]["written"], 2, "{c1}");
    assert!(c1["jobs"].get("dead").is_none(), "{c1}");
    assert!(timeline_has(&c1, "recovery since"), "{c1}");
    let case_id: uuid::Uuid = c1["case"]["id"].as_str().unwrap().parse().unwrap();
    let activities = crate::sync::activities(&app, case_id).await;
    let titles: Vec<String> = activities
        .iter()
        .map(|a| a.title.clone().unwrap_or_default())
        .collect();
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert!(
        titles[0].ends_with("First") && titles[1].ends_with("Second"),
        "{titles:?}"
    );

    // c0 died before `since`: still dead, until a wider recovery.
    let c0 = app.settled(&org.key, "c0").await;
    assert_eq!(c0["jobs"]["dead"], 1, "{c0}");
    let (status, done) = app
        .post(
            "/v1/jobs/retry",
            &org.key,
            json!({"state": "dead", "since": "2020-01-01T00:00:00Z", "conversation_id": "c0"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{done}");
    assert_eq!(done["retried"], 1, "{done}");
    let c0 = app.settled(&org.key, "c0").await;
    assert_eq!(c0["messages"]["written"], 1, "{c0}");
    app.finish().await;
}

async fn bad_retry_requests_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    activity_inserts(&app, false).await;
    app.send(&org.key, message("e1", "c1", "Hello")).await;
    dead_jobs(&app, &org, "c1", 1).await;
    let cases = [
        (
            json!({"state": "pending", "since": "2020-01-01T00:00:00Z"}),
            "cannot be retried",
        ),
        (json!({"state": "dead", "since": "yesterday"}), "RFC 3339"),
        (
            json!({"state": "dead", "since": "2999-01-01T00:00:00Z"}),
            "in the future",
        ),
        (json!({"state": "dead"}), "since"),
        (
            json!({"state": "dead", "since": "2020-01-01T00:00:00Z", "limit": 5}),
            "limit",
        ),
    ];
    for (body, part) in cases {
        let (status, answer) = app.post("/v1/jobs/retry", &org.key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(part),
            "{body}: {answer}"
        );
        assert!(
            !answer["error"]["hint"].as_str().unwrap().is_empty(),
            "{answer}"
        );
    }
    let (status, answer) = app.post("/v1/jobs/nope/retry", &org.key, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    // Another org's job is not found either.
    let other = app.create_org("Other").await;
    let id = dead_ids(&app.settled(&org.key, "c1").await).pop().unwrap();
    let (status, _) = app
        .post(&format!("/v1/jobs/{id}/retry"), &other.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing changed.
    let c = app.settled(&org.key, "c1").await;
    assert_eq!(c["jobs"]["dead"], 1, "{c}");
    app.finish().await;
}
