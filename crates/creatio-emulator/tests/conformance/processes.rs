//! Business processes calling a web service (reference §4.2).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn add_process(app: &TestEmulator, trigger: Value, url: &str, body: Value) -> Value {
    let r = app
        .operator(
            Method::POST,
            "/processes",
            Some(json!({"name": "casebridge", "trigger": trigger, "url": url, "body": body})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

#[tokio::test]
async fn agent_reply_fires_the_activity_process_with_the_templated_body() {
    let app = spawn_emulator().await;
    let receiver = spawn_receiver().await;
    add_process(
        &app,
        json!({"kind": "activity_added", "only_case_activities": true}),
        &receiver.url,
        json!({"event_type": "new_activity", "caseId": "[#Case.Id#]", "activityId": "[#Activity.Id#]"}),
    )
    .await;
    let case = app.new_case("Where is my order?").await;

    let r = app
        .operator(
            Method::POST,
            "/agent-reply",
            Some(json!({"case_id": case, "text": "It ships today."})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let activity: Value = r.json().await.unwrap();
    assert_eq!(activity["Body"], "It ships today.");
    assert_eq!(activity["TypeId"], ACTIVITY_TYPE_EMAIL);
    assert_eq!(
        activity["CreatedById"], "c4ed336c-3e9b-40fe-8b82-5632476472b4",
        "written by a human agent"
    );

    let calls = app.wait_for_process_calls(1).await;
    assert_eq!(calls[0]["success"], true);
    assert_eq!(calls[0]["attempts"][0]["status"], 200);
    let expected =
        json!({"event_type": "new_activity", "caseId": case, "activityId": activity["Id"]});
    assert_eq!(calls[0]["request_body"], expected);
    assert_eq!(receiver.bodies.lock().unwrap().clone(), vec![expected]);
}

#[tokio::test]
async fn activities_written_over_odata_fire_the_process_too_and_filters_apply() {
    let app = spawn_emulator().await;
    let receiver = spawn_receiver().await;
    add_process(
        &app,
        json!({"kind": "activity_added", "type_id": ACTIVITY_TYPE_EMAIL}),
        &receiver.url,
        json!({"caseId": "[#Case.Id#]"}),
    )
    .await;
    let case = app.new_case("x").await;
    // A task does not match the type filter; an e-mail written by the
    // integration itself does — that is the echo a client must guard against.
    app.create("Activity", json!({"Title": "task", "CaseId": case}))
        .await;
    app.create(
        "Activity",
        json!({"Title": "mail", "CaseId": case, "TypeId": ACTIVITY_TYPE_EMAIL}),
    )
    .await;
    let calls = app.wait_for_process_calls(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        receiver.bodies.lock().unwrap().clone(),
        vec![json!({"caseId": case})]
    );
}

#[tokio::test]
async fn status_change_fires_the_closure_process_only_for_the_filtered_status() {
    let app = spawn_emulator().await;
    let receiver = spawn_receiver().await;
    add_process(
        &app,
        json!({"kind": "case_status_changed", "status_id": STATUS_RESOLVED}),
        &receiver.url,
        json!({"event_type": "case_resolved", "caseId": "[#Case.Id#]", "statusId": "[#Case.StatusId#]",
               "typo": "[#Case.Nope#]"}),
    )
    .await;
    let case = app.new_case("Closing soon").await;
    let r = app
        .operator(
            Method::POST,
            "/case-status",
            Some(json!({"case_id": case, "status": "In progress"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .operator(
            Method::POST,
            "/case-status",
            Some(json!({"case_id": case, "status_id": STATUS_RESOLVED})),
        )
        .await;
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["StatusId"], STATUS_RESOLVED);
    let calls = app.wait_for_process_calls(1).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0]["request_body"],
        json!({"event_type": "case_resolved", "caseId": case, "statusId": STATUS_RESOLVED,
               "typo": "[#Case.Nope#]"}),
        "an unknown placeholder is sent as written"
    );
}

#[tokio::test]
async fn a_failing_web_service_is_logged_with_its_status_and_retried_when_configured() {
    let app = spawn_emulator().await;
    let r = app
        .operator(
            Method::POST,
            "/processes",
            Some(
                json!({"trigger": {"kind": "activity_added"}, "url": app.url("/nowhere"),
                        "body": {"x": 1}, "retries": 1}),
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let case = app.new_case("x").await;
    app.operator(
        Method::POST,
        "/agent-reply",
        Some(json!({"case_id": case, "text": "hi", "kind": "task"})),
    )
    .await;
    let calls = app.wait_for_process_calls(1).await;
    assert_eq!(calls[0]["success"], false);
    let attempts = calls[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|a| a["status"] == 404));
}
