//! Orgs, API keys, roles, tenant isolation and request validation.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    operator_creates_orgs_and_admins_mint_keys,
    ingest_keys_cannot_touch_settings,
    one_org_never_sees_another,
    bad_bodies_get_a_400_naming_the_field,
    health_and_unknown_routes,
    the_operator_lists_orgs_and_deletes_one_with_everything_it_held,
);

async fn operator_creates_orgs_and_admins_mint_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/orgs",
            None,
            Some(json!({"name": "Acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("CASEBRIDGE_ADMIN_TOKEN"));
    let (status, _) = app
        .post("/v1/orgs", "not-the-token", json!({"name": "Acme"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .post("/v1/orgs", &app.admin_token, json!({"name": "  "}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let org = app.create_org("Acme").await;
    assert!(org.key.starts_with("cbk_"));
    let (status, body) = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({"role": "ingest", "name": "chat platform"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ingest_key = body["key"].as_str().unwrap().to_string();
    assert_eq!(body["role"], "ingest");

    let (status, body) = app.get("/v1/api-keys", &org.key).await;
    assert_eq!(status, StatusCode::OK);
    let keys = body["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter().all(|k| k.get("key").is_none()),
        "keys are never listed: {body}"
    );
    assert!(!body.to_string().contains(&ingest_key));

    // Keys are stored hashed.
    let dump = app.database_dump().await;
    assert!(!crate::helpers::contains(&dump, &org.key));
    assert!(!crate::helpers::contains(&dump, &ingest_key));

    // The last admin key cannot be revoked; an ingest key can.
    let admin_id = keys.iter().find(|k| k["role"] == "admin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ingest_id = keys.iter().find(|k| k["role"] == "ingest").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = app
        .delete(&format!("/v1/api-keys/{admin_id}"), &org.key)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .delete(&format!("/v1/api-keys/{ingest_id}"), &org.key)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/v1/api-keys", &ingest_key).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked key is refused: {body}"
    );
    app.finish().await;
}

async fn ingest_keys_cannot_touch_settings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let (_, body) = app
        .post("/v1/api-keys", &org.key, json!({"role": "ingest"}))
        .await;
    let ingest = body["key"].as_str().unwrap().to_string();
    let (status, body) = app
        .post("/v1/creatio/connection", &ingest, app.connection_body())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("admin key"));
    for (method, path) in [
        (Method::GET, "/v1/creatio/connection"),
        (Method::PATCH, "/v1/creatio/connection"),
        (Method::DELETE, "/v1/creatio/connection"),
        (Method::POST, "/v1/creatio/webhook-token/rotate"),
        (Method::POST, "/v1/api-keys"),
        (Method::GET, "/v1/creatio/lookups/groups"),
    ] {
        let (status, _) = app
            .call(method.clone(), path, Some(&ingest), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let (status, _) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was saved");
    app.finish().await;
}

async fn one_org_never_sees_another(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_org("A").await;
    let b = app.create_org("B").await;
    app.connect(&a.key).await;
    let (_, keys_a) = app.get("/v1/api-keys", &a.key).await;
    let a_key_id = keys_a["api_keys"][0]["id"].as_str().unwrap().to_string();

    let (status, body) = app.get("/v1/creatio/connection", &b.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = app
        .delete(&format!("/v1/api-keys/{a_key_id}"), &b.key)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete("/v1/creatio/connection", &b.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, keys_b) = app.get("/v1/api-keys", &b.key).await;
    assert_eq!(keys_b["api_keys"].as_array().unwrap().len(), 1);
    assert!(!keys_b.to_string().contains(&a_key_id));

    let (status, body) = app.get("/v1/creatio/connection", &a.key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "active", "A's connection is untouched");
    app.finish().await;
}

async fn bad_bodies_get_a_400_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let (status, body) = app
        .post_raw("/v1/creatio/connection", &org.key, "{\"instance_url\": ")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{body}"
    );

    let mut wrong_type = app.connection_body();
    wrong_type["create_case_only_on_handoff"] = json!("yes");
    let (status, body) = app
        .post("/v1/creatio/connection", &org.key, wrong_type)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("create_case_only_on_handoff") && message.contains("boolean"),
        "{body}"
    );

    let mut unknown = app.connection_body();
    unknown["clientSecret"] = json!("x");
    let (status, body) = app.post("/v1/creatio/connection", &org.key, unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("clientSecret"),
        "{body}"
    );

    let (status, body) = app
        .post(
            "/v1/creatio/connection",
            &org.key,
            json!({"client_id": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<_> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    assert!(
        fields.contains(&"instance_url".to_string())
            && fields.contains(&"client_secret".to_string()),
        "{body}"
    );

    let mut bad_guid = app.connection_body();
    bad_guid["default_owner_id"] = json!("Sarah Lee");
    let (status, body) = app.post("/v1/creatio/connection", &org.key, bad_guid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["fields"][0]["field"], "default_owner_id", "{body}");
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("lookups/contacts"));

    let (status, body) = app
        .post("/v1/api-keys", &org.key, json!({"role": "owner"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("role"),
        "{body}"
    );

    let (status, body) = app
        .post("/v1/creatio/connection", &org.key, json!([1, 2]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was saved");
    app.finish().await;
}

async fn health_and_unknown_routes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    let (status, body) = app.call(Method::GET, "/v1/nothing", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = app.call(Method::PUT, "/v1/orgs", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    app.finish().await;
}

/// The tables of the database that have an `org_id` column, read from its
/// own catalogue (so a table added later cannot be missed).
async fn tables_with_org_id(app: &TestApp) -> Vec<String> {
    let sql = match app.backend {
        Backend::Sqlite => {
            "SELECT m.name AS t FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.name = 'org_id'"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) AS t FROM information_schema.columns \
             WHERE column_name = 'org_id' AND table_schema = current_schema()"
        }
    };
    let rows = sqlx::query(sql).fetch_all(app.db.pool()).await.unwrap();
    let mut tables: Vec<String> = rows.iter().map(|r| sqlx::Row::get(r, "t")).collect();
    tables.sort();
    tables
}

async fn rows_of(app: &TestApp, table: &str, org: &casebridge::domain::OrgId) -> i64 {
    let row = sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM {table} WHERE org_id = $1"
    ))
    .bind(org.as_str())
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    sqlx::Row::get(&row, "n")
}

/// `DELETE` of an org with its name as confirmation, with `token`.
async fn delete_confirmed(
    app: &TestApp,
    path: &str,
    token: &str,
) -> (StatusCode, serde_json::Value) {
    app.call(
        Method::DELETE,
        path,
        Some(token),
        Some(json!({"confirm": "Gone Ltd"})),
    )
    .await
}

async fn the_operator_lists_orgs_and_deletes_one_with_everything_it_held(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let gone = app.create_org("Gone Ltd").await;
    let kept = app.create_org("Kept Inc").await;
    for org in [&gone, &kept] {
        app.connect(&org.key).await;
        app.send(
            &org.key,
            json!([{"id": "e1", "type": "message.created", "occurred_at": "2026-11-22T10:00:00Z",
                    "conversation": {"id": "c1", "channel": "web",
                                     "contact": {"name": "Ada Lovelace", "email": "ada@example.com"}},
                    "message": {"id": "m1", "role": "customer", "text": "My printer is on fire"}}]),
        )
        .await;
        app.settled(&org.key, "c1").await;
    }
    let (_, conn) = app.get("/v1/creatio/connection", &gone.key).await;
    let webhook = conn["webhook_url"].as_str().unwrap().to_string();

    // Listed for the operator only.
    let (status, _) = app.get("/v1/orgs", &gone.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, list) = app.get("/v1/orgs", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Gone Ltd", "Kept Inc"]);
    assert_eq!(list["orgs"][0]["connection"], "active");
    assert_eq!(list["orgs"][0]["conversations"], 1);

    // Every table with an org_id is one the delete empties.
    let mut known: Vec<String> = casebridge::storage::orgs::ORG_TABLES
        .iter()
        .map(|t| t.to_string())
        .collect();
    known.sort();
    assert_eq!(tables_with_org_id(&app).await, known);

    // Confirmed by the name; a wrong one, or none, changes nothing.
    let path = format!("/v1/orgs/{}", gone.id);
    for body in [json!({"confirm": "Gone"}), json!({})] {
        let (status, answer) = app
            .call(Method::DELETE, &path, Some(&app.admin_token), Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
    let (status, answer) = delete_confirmed(&app, &path, &gone.key).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an org key deleted an org: {answer}"
    );
    assert_eq!(rows_of(&app, "conversations", &gone.id).await, 1);

    let (status, answer) = delete_confirmed(&app, &path, &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["rows"]["orgs"], 1, "{answer}");
    assert!(
        answer["rows"]["messages"].as_u64().unwrap() >= 1,
        "{answer}"
    );
    for table in &known {
        assert_eq!(rows_of(&app, table, &gone.id).await, 0, "{table} kept rows");
    }
    // The other org is whole.
    assert_eq!(rows_of(&app, "messages", &kept.id).await, 1);
    let (status, _) = app.get("/v1/conversations/c1", &kept.key).await;
    assert_eq!(status, StatusCode::OK);
    // The deleted org's key and webhook URL are refused.
    let (status, _) = app.get("/v1/conversations/c1", &gone.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let called = app
        .http
        .post(&webhook)
        .json(&json!({"event_type": "new_activity", "caseId": uuid::Uuid::new_v4()}))
        .send()
        .await
        .unwrap();
    assert_eq!(called.status(), StatusCode::NOT_FOUND);
    // Again: 404, and the list has one org.
    let (status, _) = delete_confirmed(&app, &path, &app.admin_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/orgs", &app.admin_token).await;
    assert_eq!(list["orgs"].as_array().unwrap().len(), 1, "{list}");
    app.finish().await;
}
