//! Test & Save, the check report, rotation, disconnect, webhook tokens and
//! lookups, against the emulator.

use creatio::ids::{case_status, sys_admin_unit};
use creatio::models::Case;
use creatio::query::{col, Query};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{contains, logs, Backend, TestApp};
use crate::on_both_backends;
use casebridge::secrets::token_hash;
use casebridge::storage::webhook_tokens;

on_both_backends!(
    test_and_save_activates_and_returns_the_webhook_url,
    wrong_secret_is_refused_with_the_cause_and_nothing_stored,
    missing_odata_right_is_reported,
    missing_view_any_data_fails_test_and_save_naming_it,
    missing_contact_create_right_fails_test_and_save_naming_it,
    pasted_paths_and_trailing_slashes_are_normalised,
    plain_http_to_a_remote_host_is_refused,
    unknown_owner_guid_fails_with_a_hint,
    non_final_resolved_status_is_a_warning,
    the_secret_never_leaves_in_clear,
    secret_rotation_is_tested_before_it_replaces_the_old_one,
    disconnect_deletes_credentials_and_revokes_the_webhook_token,
    webhook_token_rotation_keeps_the_old_url_for_the_grace_period,
    lookups_pick_guids_by_name,
    retest_flags_broken_credentials,
);

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

/// `POST /v1/creatio/connection/test`, which answers 200 whatever the outcome.
async fn retest(app: &TestApp, key: &str) -> Value {
    let (status, body) = app
        .post("/v1/creatio/connection/test", key, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The check cases in Creatio: none may be open.
async fn check_cases(app: &TestApp) -> Vec<Case> {
    app.creatio()
        .list(Query::new().filter(col("Subject").starts_with("casebridge connection check")))
        .await
        .unwrap()
}

async fn test_and_save_activates_and_returns_the_webhook_url(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let body = app.connect(&org.key).await;
    let url = body["webhook_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/webhooks/creatio/cbw_", app.url)),
        "{url}"
    );
    assert_eq!(body["connection"]["status"], "active");
    assert_eq!(body["report"]["ok"], true);
    for name in [
        "instance_url",
        "token",
        "odata",
        "read_case",
        "write_case",
        "write_activity",
    ] {
        assert_eq!(
            check(&body["report"], name)["status"],
            "pass",
            "{name}: {body}"
        );
    }
    // A saved Case cannot be deleted on Creatio (reference/creatio-evidence.md
    // §4): the check leaves one case, named as what it is and cancelled.
    let cases = check_cases(&app).await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(
        cases[0].subject.as_deref(),
        Some("casebridge connection check — safe to delete")
    );
    assert_eq!(
        cases[0].status_id,
        Some(case_status::CANCELED),
        "not left open"
    );
    assert!(
        check(&body["report"], "write_case")["message"]
            .as_str()
            .unwrap()
            .contains("reused by every later check"),
        "{body}"
    );
    assert_eq!(
        app.creatio()
            .count(
                "Activity",
                Some(col("Title").starts_with("casebridge connection check"))
            )
            .await
            .unwrap(),
        0
    );

    let (status, read) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["status"], "active");
    assert_eq!(read["webhook_url"], url, "the URL can be shown again");
    assert_eq!(read["create_case_only_on_handoff"], false);
    assert!(read["client_secret"].as_str().unwrap().starts_with("••••"));

    // Saving again keeps the webhook URL, so Creatio's processes keep working,
    // and reuses the check case: still one, still cancelled.
    let again = app.connect(&org.key).await;
    assert_eq!(again["webhook_url"], url);
    let cases = check_cases(&app).await;
    assert_eq!(
        cases.len(),
        1,
        "Test & Save twice: one check case: {cases:?}"
    );
    assert_eq!(cases[0].status_id, Some(case_status::CANCELED));
    assert!(
        check(&again["report"], "write_case")["message"]
            .as_str()
            .unwrap()
            .contains("created by an earlier check"),
        "{again}"
    );
    app.finish().await;
}

async fn wrong_secret_is_refused_with_the_cause_and_nothing_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let mut body = app.connection_body();
    body["client_secret"] = json!("wrong-secret-value");
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "check_failed");
    let token = check(&answer["report"], "token");
    assert_eq!(token["status"], "fail");
    assert!(
        token["message"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{token}"
    );
    assert!(token["hint"]
        .as_str()
        .unwrap()
        .contains("OAuth 2.0 integrated applications"));
    assert!(answer["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("Client Secret"));
    assert_eq!(check(&answer["report"], "odata")["status"], "skip");
    let (status, _) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");
    app.finish().await;
}

/// A new technical user has no rights (reference/creatio-evidence.md §1);
/// Test & Save asks RightsService, writing nothing, and names what is
/// missing. Without "View any data" agents' replies would be invisible.
async fn missing_view_any_data_fails_test_and_save_naming_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.change_creatio_client(json!({"system_operations": []}))
        .await;
    let (status, answer) = app
        .post("/v1/creatio/connection", &org.key, app.connection_body())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let view = check(&answer["report"], "view_any_data");
    assert_eq!(view["status"], "fail", "{answer}");
    assert!(view["message"]
        .as_str()
        .unwrap()
        .contains("CanSelectEverything"));
    assert!(view["hint"]
        .as_str()
        .unwrap()
        .contains("Operation permissions → \"View any data\""));
    let (status, _) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");

    // Granted, as the README says: Test & Save passes.
    app.change_creatio_client(json!({"system_operations": ["CanSelectEverything"]}))
        .await;
    let saved = app.connect(&org.key).await;
    assert_eq!(check(&saved["report"], "view_any_data")["status"], "pass");
    for name in ["rights_case", "rights_activity", "rights_contact"] {
        assert_eq!(
            check(&saved["report"], name)["status"],
            "pass",
            "{name}: {saved}"
        );
    }
    app.finish().await;
}

async fn missing_contact_create_right_fails_test_and_save_naming_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.change_creatio_client(json!({"rights": {"Contact": {"create": false}}}))
        .await;
    let (status, answer) = app
        .post("/v1/creatio/connection", &org.key, app.connection_body())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let contact = check(&answer["report"], "rights_contact");
    assert_eq!(contact["status"], "fail", "{answer}");
    assert!(
        contact["message"]
            .as_str()
            .unwrap()
            .contains("may not add Contact"),
        "{contact}"
    );
    assert!(
        contact["hint"]
            .as_str()
            .unwrap()
            .contains("Object permissions → Contact"),
        "{contact}"
    );
    // Without contact creation, the right is not needed.
    let mut body = app.connection_body();
    body["create_missing_contacts"] = json!(false);
    let (status, saved) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        check(&saved["report"], "rights_contact")["message"],
        "May read Contact"
    );
    app.finish().await;
}

async fn missing_odata_right_is_reported(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.change_creatio_client(json!({"can_use_odata": false}))
        .await;
    let (status, answer) = app
        .post("/v1/creatio/connection", &org.key, app.connection_body())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(check(&answer["report"], "token")["status"], "pass");
    let odata = check(&answer["report"], "odata");
    assert_eq!(odata["status"], "fail");
    assert!(
        odata["hint"]
            .as_str()
            .unwrap()
            .contains("CanUseODataService"),
        "{odata}"
    );
    app.finish().await;
}

async fn pasted_paths_and_trailing_slashes_are_normalised(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    for pasted in [
        format!("{}/", app.emulator.url()),
        format!("{}/0/", app.emulator.url()),
    ] {
        let mut body = app.connection_body();
        body["instance_url"] = json!(pasted);
        let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let line = check(&answer["report"], "instance_url");
        assert!(
            line["message"].as_str().unwrap().contains("removed"),
            "{line}"
        );
        assert_eq!(answer["connection"]["instance_url"], app.emulator.url());
    }
    app.finish().await;
}

async fn plain_http_to_a_remote_host_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let mut body = app.connection_body();
    body["instance_url"] = json!("http://mycompany.creatio.com");
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["fields"][0]["field"], "instance_url");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https"),
        "{answer}"
    );
    assert_eq!(app.emulator.stats().token_requests, 0, "nothing was tried");
    app.finish().await;
}

async fn unknown_owner_guid_fails_with_a_hint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let mut body = app.connection_body();
    body["default_owner_id"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let owner = check(&answer["report"], "default_owner");
    assert_eq!(owner["status"], "fail");
    assert!(
        owner["hint"]
            .as_str()
            .unwrap()
            .contains("/v1/creatio/lookups/contacts"),
        "{owner}"
    );

    // The usual mistake: a role's GUID where a Contact is wanted.
    let mut body = app.connection_body();
    body["default_owner_id"] = json!(sys_admin_unit::CASE_GROUP_DEFAULT.to_string());
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let owner = check(&answer["report"], "default_owner");
    assert!(
        owner["message"]
            .as_str()
            .unwrap()
            .contains("is a SysAdminUnit record"),
        "{owner}"
    );

    // And the other way round: a contact where a group is wanted.
    let mut body = app.connection_body();
    body["default_group_id"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(check(&answer["report"], "default_group")["hint"]
        .as_str()
        .unwrap()
        .contains("lookups/groups"));
    let (status, _) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.finish().await;
}

async fn non_final_resolved_status_is_a_warning(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let mut body = app.connection_body();
    body["resolved_status_id"] = json!(case_status::IN_PROGRESS.to_string());
    body["default_group_id"] = json!(sys_admin_unit::CASE_GROUP_DEFAULT.to_string());
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a warning does not block saving: {answer}"
    );
    let line = check(&answer["report"], "resolved_status");
    assert_eq!(line["status"], "warn");
    assert!(
        line["message"].as_str().unwrap().contains("In progress"),
        "{line}"
    );
    assert_eq!(check(&answer["report"], "default_group")["status"], "pass");

    let (status, answer) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"resolved_status_id": case_status::RESOLVED.to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        check(&answer["report"], "resolved_status")["status"],
        "pass"
    );
    assert_eq!(
        answer["connection"]["resolved_status_id"],
        case_status::RESOLVED.to_string()
    );
    app.finish().await;
}

async fn the_secret_never_leaves_in_clear(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let saved = app.connect(&org.key).await;
    let (_, read) = app.get("/v1/creatio/connection", &org.key).await;
    let (_, retest) = app
        .post("/v1/creatio/connection/test", &org.key, json!({}))
        .await;
    let (_, lookups) = app.get("/v1/creatio/lookups/case-statuses", &org.key).await;
    let mut wrong = app.connection_body();
    wrong["client_secret"] = json!(format!("{}-typo", app.client_secret));
    let (_, refused) = app.post("/v1/creatio/connection", &org.key, wrong).await;
    for answer in [&saved, &read, &retest, &lookups, &refused] {
        assert!(!answer.to_string().contains(&app.client_secret), "{answer}");
    }
    assert!(
        !logs().contains(&app.client_secret),
        "the secret is in the logs"
    );
    let dump = app.database_dump().await;
    assert!(!dump.is_empty());
    assert!(
        !contains(&dump, &app.client_secret),
        "the secret is in the database in clear"
    );
    let webhook_token = read["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        !contains(&dump, &webhook_token),
        "the webhook token is in the database in clear"
    );
    app.finish().await;
}

async fn secret_rotation_is_tested_before_it_replaces_the_old_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let (_, before) = app.get("/v1/creatio/connection", &org.key).await;

    // A typo in the new secret: refused, the old one stays in force.
    let (status, answer) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"client_secret": "new-secret-with-a-typo"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(retest(&app, &org.key).await["report"]["ok"], true);

    // Sync work holds the org's client and its token...
    let (status, _) = app.get("/v1/creatio/lookups/case-statuses", &org.key).await;
    assert_eq!(status, StatusCode::OK);
    // ...when the admin regenerates the secret in Creatio, then rotates.
    let new_secret = format!("rotated-{}", uuid::Uuid::new_v4().simple());
    app.change_creatio_client(json!({"client_secret": new_secret}))
        .await;
    // Work in flight keeps going with the token it has.
    let (status, _) = app.get("/v1/creatio/lookups/case-statuses", &org.key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"client_secret": new_secret}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["report"]["ok"], true);
    let after = &answer["connection"];
    assert_ne!(
        after["client_secret"], before["client_secret"],
        "the mask shows the new secret's last characters"
    );
    assert_eq!(after["webhook_url"], before["webhook_url"]);
    assert_eq!(retest(&app, &org.key).await["report"]["ok"], true);
    let (status, _) = app.get("/v1/creatio/lookups/case-statuses", &org.key).await;
    assert_eq!(status, StatusCode::OK, "lookups use the new credentials");
    assert!(!logs().contains(&new_secret));
    app.finish().await;
}

async fn disconnect_deletes_credentials_and_revokes_the_webhook_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let saved = app.connect(&org.key).await;
    let token = saved["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        webhook_tokens::org_for_token_hash(&app.db, &token_hash(&token))
            .await
            .unwrap()
            .is_some()
    );
    let cases_before = app.creatio().count("Case", None).await.unwrap();
    let stats_before = app.emulator.stats();

    let (status, answer) = app.delete("/v1/creatio/connection", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "disconnected");
    assert_eq!(answer["client_secret"], Value::Null);
    assert_eq!(answer["client_id"], Value::Null);
    assert_eq!(answer["webhook_url"], Value::Null);
    assert_eq!(
        answer["instance_url"],
        app.emulator.url(),
        "non-secret settings stay for reconnecting"
    );
    assert!(
        webhook_tokens::org_for_token_hash(&app.db, &token_hash(&token))
            .await
            .unwrap()
            .is_none()
    );
    let after = app.emulator.stats();
    assert_eq!(
        after.by_entity, stats_before.by_entity,
        "Creatio was not touched"
    );
    assert_eq!(
        app.creatio().count("Case", None).await.unwrap(),
        cases_before
    );
    let dump = app.database_dump().await;
    assert!(
        !contains(&dump, "client_secret_sealed\":\"v1."),
        "sealed secret deleted too"
    );

    let (status, body) = app
        .post("/v1/creatio/connection/test", &org.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("Test & Save"));
    let (status, _) = app.get("/v1/creatio/lookups/groups", &org.key).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, again) = app.delete("/v1/creatio/connection", &org.key).await;
    assert_eq!(
        (status, &again["status"]),
        (StatusCode::OK, &json!("disconnected")),
        "idempotent"
    );

    // Reconnecting is Test & Save again, with a new webhook URL.
    let back = app.connect(&org.key).await;
    assert_eq!(back["connection"]["status"], "active");
    assert_ne!(back["webhook_url"], saved["webhook_url"]);
    app.finish().await;
}

async fn webhook_token_rotation_keeps_the_old_url_for_the_grace_period(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let saved = app.connect(&org.key).await;
    let token_of = |v: &Value| v.as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let first = token_of(&saved["webhook_url"]);

    let (status, rotated) = app
        .post("/v1/creatio/webhook-token/rotate", &org.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second = token_of(&rotated["webhook_url"]);
    assert_ne!(first, second);
    assert!(rotated["previous_url_valid_until"].is_string());
    for t in [&first, &second] {
        assert_eq!(
            webhook_tokens::org_for_token_hash(&app.db, &token_hash(t))
                .await
                .unwrap()
                .as_ref(),
            Some(&org.id)
        );
    }
    let (_, read) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(read["webhook_url"], rotated["webhook_url"]);

    let (status, body) = app
        .post(
            "/v1/creatio/webhook-token/rotate",
            &org.key,
            json!({"grace_period_secs": 99_999_999}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, third) = app
        .post(
            "/v1/creatio/webhook-token/rotate",
            &org.key,
            json!({"grace_period_secs": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let third = token_of(&third["webhook_url"]);
    assert!(
        webhook_tokens::org_for_token_hash(&app.db, &token_hash(&second))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        webhook_tokens::org_for_token_hash(&app.db, &token_hash(&third))
            .await
            .unwrap()
            .is_some()
    );
    app.finish().await;
}

async fn lookups_pick_guids_by_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let (status, body) = app.get("/v1/creatio/lookups/case-statuses", &org.key).await;
    assert_eq!(status, StatusCode::CONFLICT, "no connection yet: {body}");
    app.connect(&org.key).await;

    let (status, body) = app.get("/v1/creatio/lookups/case-statuses", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resolved = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Resolved")
        .unwrap();
    assert_eq!(resolved["id"], case_status::RESOLVED.to_string());
    assert_eq!(resolved["is_resolved"], true);

    let (_, body) = app.get("/v1/creatio/lookups/groups", &org.key).await;
    let names: Vec<_> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"1st-line support".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "Sarah Lee"),
        "users are not groups: {names:?}"
    );

    let (_, body) = app
        .get("/v1/creatio/lookups/contacts?search=sarah", &org.key)
        .await;
    let sarah = &body["items"][0];
    assert_eq!(sarah["name"], "Sarah Lee", "{body}");
    let sarah_id = sarah["id"].as_str().unwrap().to_string();

    // Picked by name, saved by GUID, verified as a Contact.
    let (status, answer) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"default_owner_id": sarah_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(check(&answer["report"], "default_owner")["message"]
        .as_str()
        .unwrap()
        .contains("Sarah Lee"));
    let (status, answer) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"default_owner_id": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["connection"]["default_owner_id"], Value::Null);

    let (status, _) = app.get("/v1/creatio/lookups/priorities", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let existing = app
        .creatio()
        .list_values("Contact", &Query::new().top(1))
        .await
        .unwrap();
    assert!(!existing.is_empty());
    app.finish().await;
}

async fn retest_flags_broken_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.change_creatio_client(json!({"active": false})).await;
    let body = retest(&app, &org.key).await;
    assert_eq!(body["status"], "needs_attention", "{body}");
    let (_, read) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(read["status"], "needs_attention");
    assert!(
        read["status_detail"].as_str().unwrap().contains("token"),
        "{read}"
    );

    app.change_creatio_client(json!({"active": true})).await;
    let (_, body) = app
        .post("/v1/creatio/connection/test", &org.key, json!({}))
        .await;
    assert_eq!(
        body["status"], "active",
        "a passing re-test resumes: {body}"
    );
    app.finish().await;
}
