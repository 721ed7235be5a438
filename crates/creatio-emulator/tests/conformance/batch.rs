//! JSON `$batch` (reference §2.6).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

async fn send_batch(
    app: &TestEmulator,
    requests: Value,
    continue_on_error: bool,
) -> (StatusCode, Value) {
    let token = app.token().await;
    let mut r = app
        .http
        .post(app.url("/0/odata/$batch"))
        .bearer_auth(token)
        .json(&json!({ "requests": requests }));
    if continue_on_error {
        r = r.header("Prefer", "continue-on-error");
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

fn three_with_a_bad_middle() -> Value {
    json!([
        {"id": "a", "method": "POST", "url": "Case", "body": {"Subject": "first"}},
        {"id": "b", "method": "POST", "url": "Case", "body": {"Subject": "second", "StatusId": "not-a-guid"}},
        {"id": "c", "method": "POST", "url": "Case", "body": {"Subject": "third"}},
    ])
}

#[tokio::test]
async fn batch_stops_at_the_first_error_by_default() {
    let app = spawn_emulator().await;
    let (status, body) = send_batch(&app, three_with_a_bad_middle(), false).await;
    assert_eq!(status, StatusCode::OK);
    let responses = body["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 2, "processing stopped after the failure");
    assert_eq!(
        (responses[0]["id"].clone(), responses[0]["status"].clone()),
        (json!("a"), json!(201))
    );
    assert_eq!(responses[1]["status"], 400);
    assert_eq!(app.count("Case").await, 1);
}

#[tokio::test]
async fn batch_continues_on_error_when_asked() {
    let app = spawn_emulator().await;
    let (_, body) = send_batch(&app, three_with_a_bad_middle(), true).await;
    let responses = body["responses"].as_array().unwrap();
    let statuses: Vec<&Value> = responses.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [&json!(201), &json!(400), &json!(201)]);
    assert!(responses[2]["headers"]["location"]
        .as_str()
        .unwrap()
        .contains("/0/odata/Case("));
    assert_eq!(responses[2]["body"]["Subject"], "third");
    assert!(responses[1]["body"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not-a-guid"));
    assert_eq!(app.count("Case").await, 2);

    let stats = app.emulator.stats();
    assert_eq!(stats.batch_requests, 1);
    assert_eq!(stats.batch_operations, 3);
}

#[tokio::test]
async fn batch_mixes_reads_updates_and_deletes_with_both_key_forms() {
    let app = spawn_emulator().await;
    let id = app.new_case("before").await;
    // A Case cannot be deleted once saved (its CaseLifecycle row, evidence
    // §4): the delete goes to a Contact.
    let contacts = app.count("Contact").await;
    let contact = app.create("Contact", json!({"Name": "Gone soon"})).await;
    let contact = contact["Id"].as_str().unwrap().to_string();
    let (_, body) = send_batch(
        &app,
        json!([
            {"id": "1", "method": "PATCH", "url": format!("Case({id})"), "body": {"Subject": "after"}},
            {"id": "2", "method": "GET", "url": format!("Case/{id}?$select=Subject")},
            {"id": "3", "method": "GET", "url": "Case/$count"},
            {"id": "4", "method": "DELETE", "url": format!("Contact({contact})")},
        ]),
        false,
    )
    .await;
    let r = body["responses"].as_array().unwrap();
    assert_eq!(r[0]["status"], 204);
    assert_eq!(r[1]["body"]["Subject"], "after");
    assert_eq!(r[2]["body"], "1");
    assert_eq!(r[3]["status"], 204);
    assert_eq!(app.count("Contact").await, contacts);
}

#[tokio::test]
async fn atomicity_group_commits_partially_and_answers_only_its_failure() {
    // ASP.NET OData's ChangeSetRequestItem (reference/creatio-evidence.md
    // §3): in order, no rollback, the failed response alone, the rest not run.
    let app = spawn_emulator().await;
    let (_, body) = send_batch(
        &app,
        json!([
            {"id": "1", "atomicityGroup": "g1", "method": "POST", "url": "Case", "body": {"Subject": "in group, before"}},
            {"id": "2", "atomicityGroup": "g1", "method": "POST", "url": "Case", "body": {"StatusId": "not-a-guid"}},
            {"id": "3", "atomicityGroup": "g1", "method": "POST", "url": "Case", "body": {"Subject": "in group, after"}},
            {"id": "4", "method": "POST", "url": "Case", "body": {"Subject": "outside"}},
        ]),
        true,
    )
    .await;
    let r = body["responses"].as_array().unwrap();
    assert_eq!(r.len(), 2, "one answer for the failed group: {body}");
    assert_eq!(r[0]["id"], "2");
    assert_eq!(r[0]["status"], 400);
    let group = r[0]["atomicityGroup"].as_str().unwrap();
    assert_ne!(group, "g1", "the server's own group id");
    assert_eq!(group.len(), 36);
    assert_eq!(r[1]["id"], "4");
    assert_eq!(r[1]["status"], 201);
    let subjects = app
        .get_json("Case?$select=Subject&$orderby=Subject")
        .await
        .1;
    let subjects: Vec<&str> = subjects["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["in group, before", "outside"],
        "the request before the failure stayed committed; the one after never ran"
    );
}

#[tokio::test]
async fn atomicity_group_as_a_transaction_when_the_operator_says_so() {
    // Whether Creatio wraps change sets in a transaction is unknown
    // (evidence §7): the other answer, chosen by the operator.
    let app = spawn_emulator().await;
    let r = app
        .operator(
            reqwest::Method::PUT,
            "/settings",
            Some(json!({"batch_groups": "transaction"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (_, body) = send_batch(
        &app,
        json!([
            {"id": "1", "atomicityGroup": "g1", "method": "POST", "url": "Case", "body": {"Subject": "in group"}},
            {"id": "2", "atomicityGroup": "g1", "method": "POST", "url": "Case", "body": {"StatusId": "not-a-guid"}},
            {"id": "3", "method": "POST", "url": "Case", "body": {"Subject": "outside"}},
        ]),
        true,
    )
    .await;
    let r = body["responses"].as_array().unwrap();
    assert_eq!(r[0]["status"], 424, "rolled back because its group failed");
    assert_eq!(r[1]["status"], 400);
    assert_eq!(r[2]["status"], 201);
    assert_eq!(
        app.count("Case").await,
        1,
        "only the request outside the group stayed"
    );
}

#[tokio::test]
async fn batch_over_100_operations_is_refused() {
    let app = spawn_emulator().await;
    let requests: Vec<Value> = (0..101)
        .map(|i| json!({"id": i.to_string(), "method": "POST", "url": "Case", "body": {"Subject": "x"}}))
        .collect();
    let (status, body) = send_batch(&app, json!(requests), true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("'100'"));
    assert_eq!(app.count("Case").await, 0);

    let hundred: Vec<Value> = (0..100)
        .map(|i| json!({"id": i.to_string(), "method": "POST", "url": "Case", "body": {"Subject": "x"}}))
        .collect();
    let (status, _) = send_batch(&app, json!(hundred), true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.count("Case").await, 100);
}

/// More than 20,000 rows without `$top` is a 500 on a live tenant
/// (reference/creatio-evidence.md §6, PYCLIENT
/// test_get_collection_error_over_20k); with `$top` the page comes.
#[tokio::test]
async fn over_20000_rows_without_top_is_a_500() {
    let app = spawn_emulator().await;
    let before = app.count("Account").await;
    let mut made = 0;
    while before + made <= 20_000 {
        let requests: Vec<Value> = (0..100)
            .map(|i| {
                json!({"id": i.to_string(), "method": "POST", "url": "Account",
                            "body": {"Name": format!("Account {made}-{i}")},
                            "headers": {"Prefer": "return=minimal"}})
            })
            .collect();
        let (status, _) = send_batch(&app, json!(requests), false).await;
        assert_eq!(status, StatusCode::OK);
        made += 100;
    }
    let r = app
        .odata(reqwest::Method::GET, "Account?$select=Id", None)
        .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.text().await.unwrap().contains("MaxEntityRowCount"));
    let (status, page) = app.get_json("Account?$select=Id&$top=20000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["value"].as_array().unwrap().len(), 20_000);
}
