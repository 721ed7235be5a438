//! The Identity Service token endpoint and bearer authentication (reference §1).

use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const GRANT: (&str, &str) = ("grant_type", "client_credentials");

#[tokio::test]
async fn token_response_has_the_documented_shape_and_no_cache_headers() {
    let app = spawn_emulator().await;
    for path in ["/connect/token", "/0/connect/token"] {
        let r = app
            .token_request(
                path,
                &[
                    GRANT,
                    ("client_id", CLIENT_ID),
                    ("client_secret", CLIENT_SECRET),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h["cache-control"], "no-store, no-cache, max-age=0");
        assert_eq!(h["pragma"], "no-cache");
        let body: Value = r.json().await.unwrap();
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["access_token", "expires_in", "token_type", "scope"]);
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["scope"]
            .as_str()
            .unwrap()
            .starts_with("ApplicationAccess_"));
        assert!(body["access_token"].as_str().unwrap().len() >= 40);
    }
}

#[tokio::test]
async fn client_authentication_by_http_basic_is_accepted() {
    let app = spawn_emulator().await;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let r = app
        .http
        .post(app.url("/connect/token"))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[GRANT])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn token_error(app: &TestEmulator, form: &[(&str, &str)]) -> Value {
    let r = app.token_request("/connect/token", form).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.headers()["cache-control"],
        "no-store, no-cache, max-age=0"
    );
    r.json().await.unwrap()
}

#[tokio::test]
async fn token_errors_are_identityserver_400s() {
    let app = spawn_emulator().await;
    let wrong_secret = token_error(
        &app,
        &[GRANT, ("client_id", CLIENT_ID), ("client_secret", "nope")],
    )
    .await;
    assert_eq!(
        wrong_secret,
        json!({"error": "invalid_client"}),
        "no error_description, as IS4 writes it"
    );
    let unknown = token_error(&app, &[GRANT, ("client_id", "who"), ("client_secret", "x")]).await;
    assert_eq!(unknown, json!({"error": "invalid_client"}));
    let no_auth = token_error(&app, &[GRANT]).await;
    assert_eq!(no_auth, json!({"error": "invalid_client"}));
    let no_grant = token_error(
        &app,
        &[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
    )
    .await;
    assert_eq!(no_grant, json!({"error": "unsupported_grant_type"}));
    let odd_grant = token_error(
        &app,
        &[
            ("grant_type", "urn:custom"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(odd_grant, json!({"error": "unsupported_grant_type"}));
    let bad_scope = token_error(
        &app,
        &[
            GRANT,
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "offline_access"),
        ],
    )
    .await;
    assert_eq!(bad_scope, json!({"error": "invalid_scope"}));

    let as_json = app
        .http
        .post(app.url("/connect/token"))
        .json(&json!({"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(as_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        as_json.json::<Value>().await.unwrap(),
        json!({"error": "invalid_request"})
    );
    let get = app
        .http
        .get(app.url("/connect/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get.json::<Value>().await.unwrap(),
        json!({"error": "invalid_request"})
    );
}

#[tokio::test]
async fn inactive_client_and_client_without_the_grant_are_refused() {
    let app = spawn_emulator().await;
    let creds = [
        GRANT,
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    app.operator_json(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(
        token_error(&app, &creds).await,
        json!({"error": "invalid_client"})
    );

    app.operator_json(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        Some(json!({"active": true, "client_credentials_grant": false})),
    )
    .await;
    assert_eq!(
        token_error(&app, &creds).await,
        json!({"error": "unauthorized_client"})
    );
}

#[tokio::test]
async fn odata_without_a_valid_bearer_is_401() {
    let app = spawn_emulator().await;
    let none = app.http.get(app.url("/0/odata/Case")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let unknown = app.odata_as("not-a-token", Method::GET, "Case", None).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    let token = app.token().await;
    assert_eq!(
        app.odata_as(&token, Method::GET, "Case", None)
            .await
            .status(),
        StatusCode::OK
    );
    let revoked = app
        .operator_json(Method::POST, "/tokens/revoke", Some(json!({})))
        .await;
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(
        app.odata_as(&token, Method::GET, "Case", None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.emulator.stats().unauthorized, 3);
}

#[tokio::test]
async fn tokens_expire_after_the_configured_lifetime() {
    let app = spawn_emulator().await;
    app.operator_json(
        Method::PUT,
        "/settings",
        Some(json!({"token_lifetime_secs": 1})),
    )
    .await;
    let r = app
        .token_request(
            "/connect/token",
            &[
                GRANT,
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        app.odata_as(&token, Method::GET, "CaseStatus", None)
            .await
            .status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = app.odata_as(&token, Method::GET, "CaseStatus", None).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_odata_right_is_403_and_object_rights_are_enforced() {
    let app = spawn_emulator().await;
    app.operator_json(
        Method::POST,
        "/clients",
        Some(json!({"client_id": "no-odata", "client_secret": "x", "can_use_odata": false})),
    )
    .await;
    let token = app.token_for("no-odata", "x").await;
    let r = app.odata_as(&token, Method::GET, "Case", None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sufficient permissions to use OData"));

    app.operator_json(
        Method::POST,
        "/clients",
        Some(json!({"client_id": "read-only", "client_secret": "y",
            "rights": {"Case": {"create": false}, "Activity": {"update": false}}})),
    )
    .await;
    let token = app.token_for("read-only", "y").await;
    assert_eq!(
        app.odata_as(&token, Method::GET, "Case", None)
            .await
            .status(),
        StatusCode::OK
    );
    let denied = app
        .odata_as(&token, Method::POST, "Case", Some(json!({"Subject": "x"})))
        .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let message = denied.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("\"Case\""), "{message}");
    assert_eq!(
        app.count("Case").await,
        0,
        "a refused create writes nothing"
    );

    let case = app.new_case("Created by the full client").await;
    let activity = app
        .create("Activity", json!({"Title": "note", "CaseId": case}))
        .await;
    let id = activity["Id"].as_str().unwrap();
    let patch = app
        .odata_as(
            &token,
            Method::PATCH,
            &format!("Activity({id})"),
            Some(json!({"Title": "changed"})),
        )
        .await;
    assert_eq!(patch.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn records_carry_the_clients_technical_user() {
    let app = spawn_emulator().await;
    let clients = app.operator_json(Method::GET, "/clients", None).await;
    let contact = clients[0]["contact_id"].as_str().unwrap().to_string();
    let unit = clients[0]["admin_unit_id"].as_str().unwrap().to_string();

    let case = app.create("Case", json!({"Subject": "Who made me?"})).await;
    assert_eq!(case["CreatedById"], contact);
    assert_eq!(case["ModifiedById"], contact);

    let (status, user) = app.get_json(&format!("SysAdminUnit({unit})")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["SysAdminUnitTypeValue"], 4);
    assert_eq!(user["ContactId"], contact);
    let (status, person) = app.get_json(&format!("Contact({contact})")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(person["Name"].as_str().unwrap().contains("technical user"));
}

/// A technical user without a Contact (its page has Name, Language and Time
/// zone only): what it writes carries the empty GUID in `CreatedById`
/// (reference/creatio-evidence.md §6, ACADEMY technical users).
#[tokio::test]
async fn a_technical_user_without_a_contact_writes_an_empty_created_by() {
    let app = spawn_emulator().await;
    let added = app
        .operator_json(
            Method::POST,
            "/clients",
            Some(json!({"client_id": "nocontact", "client_secret": "s3cret-value", "has_contact": false})),
        )
        .await;
    let empty = "00000000-0000-0000-0000-000000000000";
    assert_eq!(added["contact_id"], empty);
    let token = app.token_for("nocontact", "s3cret-value").await;
    let r = app
        .odata_as(
            &token,
            Method::POST,
            "Case",
            Some(json!({"Subject": "Who made me?"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let case: Value = r.json().await.unwrap();
    assert_eq!(case["CreatedById"], empty);
    assert_eq!(case["ModifiedById"], empty);
    let unit = added["admin_unit_id"].as_str().unwrap();
    let (status, user) = app.get_json(&format!("SysAdminUnit({unit})")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["ContactId"], empty);
}

/// A missing object right is 403 by default; whether Creatio sends 403 or
/// 500 is unknown (reference/creatio-evidence.md §7), so the operator can
/// make it a 500 with the same words.
#[tokio::test]
async fn a_missing_object_right_can_be_a_500() {
    let app = spawn_emulator().await;
    app.operator_json(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        Some(json!({"rights": {"Contact": {"create": false}}})),
    )
    .await;
    for (setting, status) in [
        (403, StatusCode::FORBIDDEN),
        (500, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        app.operator_json(
            Method::PUT,
            "/settings",
            Some(json!({"missing_object_right_status": setting})),
        )
        .await;
        let r = app
            .odata(Method::POST, "Contact", Some(json!({"Name": "Nope"})))
            .await;
        assert_eq!(r.status(), status);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("Insufficient permissions to add"));
    }
}

/// RightsService answers the caller's rights without writing anything
/// (reference/creatio-evidence.md §1; the contract from INSTALL
/// `RightsService.CrtNUI.cs`: wrapped JSON, `{"<Method>Result": …}`; the
/// bits from `RightUtilities.js`: CanRead 1, CanAppend 2, CanEdit 4,
/// CanDelete 8).
#[tokio::test]
async fn rights_service_answers_the_callers_rights() {
    let app = spawn_emulator().await;
    let token = app.token().await;
    let ask = |method: &'static str, body: Value| {
        let http = app.http.clone();
        let url = app.url(&format!("/0/rest/RightsService/{method}"));
        let token = token.clone();
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, v) = ask(
        "GetCanExecuteOperation",
        json!({"operation": "CanUseODataService"}),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"GetCanExecuteOperationResult": true})
        )
    );
    let (_, v) = ask(
        "GetCanExecuteOperation",
        json!({"operation": "CanSelectEverything"}),
    )
    .await;
    assert_eq!(
        v["GetCanExecuteOperationResult"], true,
        "the README's grant is the fixture's"
    );
    let (_, v) = ask(
        "GetCanExecuteOperation",
        json!({"operation": "CanDeleteEverything"}),
    )
    .await;
    assert_eq!(v["GetCanExecuteOperationResult"], false);
    let (s, _) = ask("GetCanExecuteOperation", json!({"operation": "CanFly"})).await;
    assert_eq!(
        s,
        StatusCode::INTERNAL_SERVER_ERROR,
        "an unknown operation is not found"
    );
    let (_, v) = ask(
        "GetCanExecuteOperations",
        json!({"operations": ["CanSelectEverything", "CanFly"]}),
    )
    .await;
    assert_eq!(
        v["GetCanExecuteOperationsResult"],
        json!([{"Key": "CanSelectEverything", "Value": true}, {"Key": "CanFly", "Value": false}])
    );
    let (_, v) = ask(
        "GetSchemaOperationRightLevel",
        json!({"schemaName": "Case"}),
    )
    .await;
    assert_eq!(v["GetSchemaOperationRightLevelResult"], 15);

    app.operator_json(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        Some(
            json!({"rights": {"Contact": {"create": false}, "Case": {"delete": false}},
                    "system_operations": []}),
        ),
    )
    .await;
    let (_, v) = ask(
        "GetSchemaOperationRightLevel",
        json!({"schemaName": "Contact"}),
    )
    .await;
    assert_eq!(v["GetSchemaOperationRightLevelResult"], 1 + 4 + 8);
    let (_, v) = ask(
        "GetSchemaOperationRightLevel",
        json!({"schemaName": "Case"}),
    )
    .await;
    assert_eq!(v["GetSchemaOperationRightLevelResult"], 1 + 2 + 4);
    let (_, v) = ask(
        "GetCanExecuteOperation",
        json!({"operation": "CanSelectEverything"}),
    )
    .await;
    assert_eq!(v["GetCanExecuteOperationResult"], false);
    let r = app
        .operator(
            Method::PATCH,
            &format!("/clients/{CLIENT_ID}"),
            Some(json!({"system_operations": ["CanFly"]})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .http
        .post(app.url("/0/rest/RightsService/GetCanExecuteOperation"))
        .json(&json!({"operation": "CanSelectEverything"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Case, Activity and Contact are administrated by records
/// (reference/creatio-evidence.md §1): a client reads what it created, what
/// it was granted, or everything with "View any data" (CanSelectEverything).
#[tokio::test]
async fn records_are_visible_to_their_creator_a_grantee_or_view_any_data() {
    let app = spawn_emulator().await;
    app.operator_json(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        Some(json!({"system_operations": []})),
    )
    .await;
    let case = app.create("Case", json!({"Subject": "mine"})).await;
    let case_id = case["Id"].as_str().unwrap().to_string();
    let reply = app
        .operator_json(
            Method::POST,
            "/agent-reply",
            Some(json!({"case_id": case_id, "text": "From an agent"})),
        )
        .await;
    let reply_id = reply["Id"].as_str().unwrap().to_string();
    let titles = |v: &Value| v["value"].as_array().unwrap().len();

    let (_, grace) = app.get_json("Contact?$filter=Name eq 'Grace Hopper'").await;
    assert_eq!(
        titles(&grace),
        0,
        "a seeded contact is someone else's record"
    );
    let (_, mine) = app.get_json("Case?$filter=Subject eq 'mine'").await;
    assert_eq!(titles(&mine), 1, "its own case");
    let (_, acts) = app
        .get_json(&format!("Activity?$filter=Case/Id eq {case_id}"))
        .await;
    assert_eq!(
        titles(&acts),
        0,
        "the agent's reply on its own case is invisible"
    );
    let (s, _) = app.get_json(&format!("Activity({reply_id})")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A record grant opens that one record.
    let r = app
        .operator(
            Method::POST,
            "/record-grants",
            Some(json!({"client_id": CLIENT_ID, "record_id": reply_id})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let (_, acts) = app
        .get_json(&format!("Activity?$filter=Case/Id eq {case_id}"))
        .await;
    assert_eq!(titles(&acts), 1);

    // "View any data" opens everything.
    app.operator_json(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        Some(json!({"system_operations": ["CanSelectEverything"]})),
    )
    .await;
    let (_, grace) = app.get_json("Contact?$filter=Name eq 'Grace Hopper'").await;
    assert_eq!(titles(&grace), 1);
}

/// Editing or deleting someone else's record needs a grant or the matching
/// system operation (reference/creatio-evidence.md §1).
#[tokio::test]
async fn others_records_need_a_grant_or_edit_any_data_to_change() {
    let app = spawn_emulator().await;
    let (_, grace) = app
        .get_json("Contact?$filter=Name eq 'Grace Hopper'&$select=Id")
        .await;
    let grace = grace["value"][0]["Id"].as_str().unwrap().to_string();
    let path = format!("Contact({grace})");
    let patch = || app.odata(Method::PATCH, &path, Some(json!({"JobTitle": "Admiral"})));
    let r = patch().await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "visible (View any data), not editable"
    );
    assert!(r.text().await.unwrap().contains("CanUpdateEverything"));
    app.operator_json(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        Some(json!({"system_operations": ["CanSelectEverything", "CanUpdateEverything"]})),
    )
    .await;
    assert_eq!(patch().await.status(), StatusCode::NO_CONTENT);
    let own = app.create("Contact", json!({"Name": "Mine"})).await;
    let r = app
        .odata(
            Method::DELETE,
            &format!("Contact({})", own["Id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "its own record");
}

/// `GetSchemaRecordRightLevel` (INSTALL `RightsService.CrtNUI.cs`; bits of
/// `RecordOperationRightLevels` in `RightUtilities.js`: CanRead 1, CanEdit 4,
/// CanDelete 16).
#[tokio::test]
async fn rights_service_answers_a_records_rights() {
    let app = spawn_emulator().await;
    let token = app.token().await;
    let own = app.create("Contact", json!({"Name": "Mine"})).await;
    let (_, grace) = app
        .get_json("Contact?$filter=Name eq 'Grace Hopper'&$select=Id")
        .await;
    for (id, expected) in [
        (own["Id"].as_str().unwrap().to_string(), 1 + 4 + 16),
        (grace["value"][0]["Id"].as_str().unwrap().to_string(), 1),
        (uuid::Uuid::new_v4().to_string(), 0),
    ] {
        let v: Value = app
            .http
            .post(app.url("/0/rest/RightsService/GetSchemaRecordRightLevel"))
            .bearer_auth(&token)
            .json(&json!({"schemaName": "Contact", "primaryColumnValue": id}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            v,
            json!({"GetSchemaRecordRightLevelResult": expected}),
            "{id}"
        );
    }
}
