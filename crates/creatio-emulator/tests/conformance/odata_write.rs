//! Writing through OData 4: create, update, delete, and the ways Creatio
//! refuses a write (reference §2.4, §2.5, §3).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn create_returns_201_location_and_the_full_record_with_defaults() {
    let app = spawn_emulator().await;
    let r = app
        .odata(
            Method::POST,
            "Case",
            Some(json!({"Subject": "Printer on fire", "Symptoms": "<p>smoke</p>"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["odata-version"], "4.0");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let case: Value = r.json().await.unwrap();
    let id = case["Id"].as_str().unwrap();
    assert_eq!(location, app.url(&format!("/0/odata/Case({id})")));
    assert_eq!(
        case["@odata.context"],
        app.url("/0/odata/$metadata#Case/$entity")
    );
    assert_eq!(case["Number"], "SR00000001");
    assert_eq!(case["StatusId"], STATUS_NEW);
    assert_eq!(case["PriorityId"], "d9bd322c-f46b-1410-ee8c-0050ba5d6c38");
    assert_eq!(case["OriginId"], "5e5e202a-f46b-1410-3692-0050ba5d6c38");
    assert_eq!(case["CategoryId"], "1c0bc159-150a-e111-a31b-00155d04c01d");
    assert_eq!(case["ContactId"], EMPTY_GUID);
    assert_eq!(case["ClosureDate"], "0001-01-01T00:00:00Z");
    assert_eq!(case["Solution"], "");
    let created = case["CreatedOn"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() <= "2020-05-18T17:50:39.2838673Z".len());
    assert_eq!(case["RegisteredOn"], case["CreatedOn"]);

    let second = app.create("Case", json!({"Subject": "Second"})).await;
    assert_eq!(second["Number"], "SR00000002");

    let activity = app
        .create(
            "Activity",
            json!({"Title": "Customer: hello", "CaseId": id, "Notes": "hello"}),
        )
        .await;
    assert_eq!(
        activity["TypeId"], "fbe0acdc-cfc0-df11-b00f-001d60e938c6",
        "Task by default"
    );
    assert_eq!(
        activity["StatusId"], "384d4b84-58e6-df11-971b-001d60e938c6",
        "Not started by default"
    );
    assert_eq!(
        activity["ActivityCategoryId"],
        "f51c4643-58e6-df11-971b-001d60e938c6"
    );
    assert_eq!(
        activity["OwnerId"], activity["CreatedById"],
        "owner defaults to the current user's contact"
    );

    let (status, read) = app.get_json(&format!("Case({id})")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["Subject"], "Printer on fire");

    let contact = app
        .create("Contact", json!({"Name": "Ada King Lovelace"}))
        .await;
    assert_eq!(
        (contact["GivenName"].clone(), contact["Surname"].clone()),
        (json!("Ada"), json!("Lovelace"))
    );
}

#[tokio::test]
async fn return_minimal_answers_204_with_the_entity_id() {
    let app = spawn_emulator().await;
    let token = app.token().await;
    let r = app
        .http
        .post(app.url("/0/odata/Case"))
        .bearer_auth(&token)
        .header("Prefer", "return=minimal")
        .json(&json!({"Subject": "quiet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers()["odata-entityid"]
        .to_str()
        .unwrap()
        .contains("/0/odata/Case("));
}

#[tokio::test]
async fn client_supplied_id_is_honoured_and_a_duplicate_fails_like_a_database() {
    let app = spawn_emulator().await;
    let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let case = app
        .create("Case", json!({"Id": id, "Subject": "first"}))
        .await;
    assert_eq!(case["Id"], id);

    let r = app
        .odata(
            Method::POST,
            "Case",
            Some(json!({"Id": id, "Subject": "second"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = r.json().await.unwrap();
    let inner = body["error"]["innererror"]["message"].as_str().unwrap();
    assert!(
        inner.contains("Violation of PRIMARY KEY constraint") && inner.contains(id),
        "{inner}"
    );
    assert_eq!(app.count("Case").await, 1, "the duplicate created nothing");
    let (_, read) = app.get_json(&format!("Case({id})")).await;
    assert_eq!(read["Subject"], "first", "the original is untouched");
}

/// An OData insert of a Case without `Subject` succeeds on a live tenant
/// (reference/creatio-evidence.md §4, PYCLIENT README: 201 with a
/// number), and a saved Case gets its Subject as Symptoms when it has none
/// (`BaseCaseEntityEventListener`). The emulator keeps a required column
/// where the evidence is silent: a Contact's Name.
#[tokio::test]
async fn a_case_needs_no_subject_and_takes_its_subject_as_symptoms() {
    let app = spawn_emulator().await;
    let bare = app.create("Case", json!({})).await;
    assert!(bare["Number"].as_str().unwrap().starts_with("SR"));
    let named = app
        .create("Case", json!({"Subject": "Printer on fire"}))
        .await;
    assert_eq!(named["Symptoms"], "Printer on fire");
    let r = app
        .odata(
            Method::POST,
            "Contact",
            Some(json!({"Email": "x@example.com"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("is required"));
}

#[tokio::test]
async fn invalid_writes_are_refused_and_change_nothing() {
    let app = spawn_emulator().await;
    let cases = [
        (
            json!({"Subject": "x", "Nope": 1}),
            StatusCode::BAD_REQUEST,
            "'Nope' does not exist",
        ),
        (
            json!({"Subject": "x", "StatusId": "not-a-guid"}),
            StatusCode::BAD_REQUEST,
            "Edm.Guid",
        ),
        (
            json!({"Subject": "x", "ResponseOverdue": "yes"}),
            StatusCode::BAD_REQUEST,
            "Edm.Boolean",
        ),
        (
            json!({"Subject": "x", "ResponseDate": "yesterday"}),
            StatusCode::BAD_REQUEST,
            "Edm.DateTimeOffset",
        ),
        (
            json!({"Subject": null}),
            StatusCode::BAD_REQUEST,
            "null value",
        ),
        (
            json!({"Subject": "x", "OwnerId": STATUS_NEW}),
            StatusCode::INTERNAL_SERVER_ERROR,
            "FOREIGN KEY",
        ),
        (
            json!({"Subject": "x".repeat(501)}),
            StatusCode::INTERNAL_SERVER_ERROR,
            "would be truncated",
        ),
        (
            json!(["not", "an", "object"]),
            StatusCode::BAD_REQUEST,
            "JSON object",
        ),
    ];
    for (body, status, needle) in cases {
        let r = app.odata(Method::POST, "Case", Some(body.clone())).await;
        assert_eq!(r.status(), status, "{body}");
        let error: Value = r.json().await.unwrap();
        let text = error.to_string();
        assert!(text.contains(needle), "{body} → {text}");
    }
    assert_eq!(app.count("Case").await, 0);

    let token = app.token().await;
    let not_json = app
        .http
        .post(app.url("/0/odata/Case"))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn navigation_names_in_a_write_body_are_silently_ignored() {
    let app = spawn_emulator().await;
    let case = app
        .create(
            "Case",
            json!({"Subject": "x", "Owner": "410006e1-ca4e-4502-a9ec-e54d922d2c00"}),
        )
        .await;
    assert_eq!(case["OwnerId"], EMPTY_GUID);
}

#[tokio::test]
async fn patch_and_delete_answer_204() {
    let app = spawn_emulator().await;
    let id = app.new_case("Before").await;
    let (_, before) = app.get_json(&format!("Case({id})")).await;
    let r = app
        .odata(
            Method::PATCH,
            &format!("Case({id})"),
            Some(json!({"Subject": "After", "StatusId": STATUS_RESOLVED})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.text().await.unwrap(), "");
    let (_, after) = app.get_json(&format!("Case({id})")).await;
    assert_eq!(after["Subject"], "After");
    assert_eq!(after["StatusId"], STATUS_RESOLVED);
    assert_eq!(
        after["ClosureCodeId"], EMPTY_GUID,
        "the closure code only for a final status (evidence §4, CaseClosureEventListener)"
    );
    assert_ne!(after["SolutionProvidedOn"], "0001-01-01T00:00:00Z");
    assert_eq!(after["CreatedOn"], before["CreatedOn"]);
    assert!(after["ModifiedOn"].as_str() >= before["ModifiedOn"].as_str());

    let bad = app
        .odata(
            Method::PATCH,
            &format!("Case({id})"),
            Some(json!({"PriorityId": "nope"})),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let missing = app
        .odata(
            Method::PATCH,
            &format!("Case({STATUS_NEW})"),
            Some(json!({"Subject": "x"})),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // A saved Case has SLM's CaseLifecycle row, so it cannot be deleted
    // (reference/creatio-evidence.md §4: PYCLIENT expects the FK error).
    let blocked = app
        .odata(Method::DELETE, &format!("Case({id})"), None)
        .await;
    assert_eq!(blocked.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(blocked
        .text()
        .await
        .unwrap()
        .contains("REFERENCE constraint"));
    let (_, lifecycle) = app
        .get_json(&format!(
            "CaseLifecycle?$filter=Case/Id eq {id}&$select=StatusId"
        ))
        .await;
    assert_eq!(
        lifecycle["value"].as_array().unwrap().len(),
        2,
        "one row at creation, one at the status change: {lifecycle}"
    );

    // Other records delete: 204, unless referenced.
    let contact = app.create("Contact", json!({"Name": "Someone"})).await;
    let contact_id = contact["Id"].as_str().unwrap();
    let activity = app
        .create(
            "Activity",
            json!({"Title": "note", "ContactId": contact_id}),
        )
        .await;
    let blocked = app
        .odata(Method::DELETE, &format!("Contact({contact_id})"), None)
        .await;
    assert_eq!(
        blocked.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "a contact with activities is referenced"
    );
    let activity_id = activity["Id"].as_str().unwrap();
    assert_eq!(
        app.odata(Method::DELETE, &format!("Activity({activity_id})"), None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let r = app
        .odata(Method::DELETE, &format!("Contact({contact_id})"), None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _) = app.get_json(&format!("Contact({contact_id})")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.odata(Method::DELETE, &format!("Contact({contact_id})"), None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
