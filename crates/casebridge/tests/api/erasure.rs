//! Erasure (DELETE /v1/conversations/{id}, POST /v1/erasure): the personal
//! data casebridge holds goes, from every table and from the files on disk
//! (the SQLite file, a pg_dump), an audit line records it without the data,
//! Creatio is untouched, and a conversation still syncing is refused.

use creatio::models::Activity;
use creatio::query::{lookup, Query};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    erasing_a_conversation_leaves_no_personal_data,
    erasing_a_contact_erases_all_its_conversations,
    a_conversation_still_syncing_is_refused_and_nothing_changes,
    erasure_requests_are_validated,
);

/// What must be gone after erasing Zelda: every piece of her personal data.
const ZELDA: &[&str] = &[
    "Quokkaface",
    "zelda.quokka@erase.example",
    "617 555 0199",
    "parcel 7731",
    "refund for parcel",
    "chat.example.com/inbox/zelda",
];

fn zelda(event: &str, conv: &str, message: &str, text: &str) -> Value {
    json!({
        "id": event, "type": "message.created",
        "conversation": {"id": conv, "channel": "web", "url": format!("https://chat.example.com/inbox/zelda-{conv}"),
                         "contact": {"name": "Zelda Quokkaface", "email": "zelda.quokka@erase.example", "phone": "+1 617 555 0199"}},
        "message": {"id": message, "role": "customer", "text": text}
    })
}

fn other(event: &str, conv: &str) -> Value {
    json!({
        "id": event, "type": "message.created",
        "conversation": {"id": conv, "channel": "web",
                         "contact": {"name": "Otto Keepme", "email": "otto.keepme@stay.example"}},
        "message": {"id": "m1", "role": "customer", "text": "otto's lamp 4410 flickers"}
    })
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Everything the database holds, as bytes: the SQLite files themselves,
/// or a real `pg_dump` of the PostgreSQL database.
async fn on_disk(app: &TestApp) -> Vec<u8> {
    match app.backend {
        Backend::Sqlite => app.database_dump().await,
        Backend::Postgres => app.pg_dump().await,
    }
}

async fn activities(app: &TestApp, case_id: &str) -> Vec<Activity> {
    app.creatio()
        .list(Query::new().filter(lookup("Case").eq(case_id.parse::<Uuid>().unwrap())))
        .await
        .unwrap()
}

async fn erasing_a_conversation_leaves_no_personal_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.send(
        &org.key,
        json!([
            zelda("e1", "c1", "m1", "my parcel 7731 is late"),
            zelda("e2", "c1", "m2", "I want a refund for parcel 7731"),
            {"id": "e3", "type": "conversation.handoff", "conversation": {"id": "c1"},
             "handoff": {"summary": "Zelda Quokkaface wants a refund for parcel 7731", "reason": "refund"}},
            other("e4", "c2"),
        ]),
    )
    .await;
    let before = app.settled(&org.key, "c1").await;
    app.settled(&org.key, "c2").await;
    let case_id = before["case"]["id"].as_str().unwrap().to_string();
    let written = activities(&app, &case_id).await.len();
    assert!(written >= 2, "{before}");
    let disk = on_disk(&app).await;
    for needle in ZELDA.iter().chain(&["otto's lamp 4410"]) {
        assert!(
            contains(&disk, needle),
            "the check must see {needle:?} before the erasure"
        );
    }

    let (status, answer) = app.delete("/v1/conversations/c1", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["erased"]["conversations"], json!(["c1"]), "{answer}");
    assert_eq!(answer["erased"]["removed"]["messages"], 2, "{answer}");
    assert!(
        answer["erased"]["removed"]["events"].as_u64().unwrap() >= 3,
        "{answer}"
    );
    assert!(
        answer["erased"]["removed"]["jobs"].as_u64().unwrap() >= 1,
        "{answer}"
    );
    assert_eq!(answer["creatio"]["changed"], false, "{answer}");
    assert_eq!(answer["creatio"]["cases"], json!([case_id]), "{answer}");
    assert!(
        answer["creatio"]["hint"]
            .as_str()
            .unwrap()
            .contains("Creatio"),
        "{answer}"
    );
    let audit_id = answer["audit_id"].as_str().unwrap().to_string();

    let disk = on_disk(&app).await;
    for needle in ZELDA {
        assert!(
            !contains(&disk, needle),
            "{needle:?} is still in the database after the erasure"
        );
    }
    assert!(
        contains(&disk, "otto's lamp 4410"),
        "another contact's data must stay"
    );

    // The key row stays: the same case, no texts, the erasure on its timeline.
    let (status, after) = app.get("/v1/conversations/c1", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["case"]["id"], before["case"]["id"]);
    assert_eq!(
        after["messages"],
        json!({"received": 0, "written": 0}),
        "{after}"
    );
    assert!(after["erased_at"].is_string(), "{after}");
    let timeline = after["timeline"].to_string();
    assert!(timeline.contains(&audit_id), "{timeline}");
    // The audit line: who, when, what count; no personal data.
    let (status, audit) = app.get("/v1/erasures", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let line = &audit["erasures"][0];
    assert_eq!(line["id"], audit_id.as_str(), "{audit}");
    assert_eq!(line["scope"], "conversation");
    assert_eq!(line["conversation_id"], "c1");
    assert!(
        line["actor"].as_str().unwrap().starts_with("API key "),
        "{audit}"
    );
    assert_eq!(line["counts"]["removed"]["messages"], 2, "{audit}");
    for needle in ZELDA {
        assert!(!audit.to_string().contains(needle), "{audit}");
    }
    // Creatio is untouched.
    assert_eq!(activities(&app, &case_id).await.len(), written);

    // The platform writes again: the same case, no second one.
    app.send(&org.key, json!([zelda("e9", "c1", "m9", "hello again")]))
        .await;
    let again = app.settled(&org.key, "c1").await;
    assert_eq!(again["case"]["id"], before["case"]["id"], "{again}");
    assert_eq!(
        again["messages"],
        json!({"received": 1, "written": 1}),
        "{again}"
    );
    assert_eq!(activities(&app, &case_id).await.len(), written + 1);
    app.finish().await;
}

async fn erasing_a_contact_erases_all_its_conversations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let mut by_phone = zelda("e3", "c3", "m1", "parcel 7731, third time");
    by_phone["conversation"]["contact"] = json!({"phone": "(617) 555-0199"});
    app.send(
        &org.key,
        json!([
            zelda("e1", "c1", "m1", "my parcel 7731 is late"),
            zelda("e2", "c2", "m1", "a refund for parcel 7731 please"),
            by_phone,
            other("e4", "c4"),
        ]),
    )
    .await;
    for c in ["c1", "c2", "c3", "c4"] {
        app.settled(&org.key, c).await;
    }
    // By e-mail, in any case: c1 and c2 (c3 has only the phone).
    let (status, answer) = app
        .post(
            "/v1/erasure",
            &org.key,
            json!({"email": "  ZELDA.Quokka@erase.example "}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["erased"]["conversations"],
        json!(["c1", "c2"]),
        "{answer}"
    );
    assert_eq!(
        answer["creatio"]["contacts"].as_array().unwrap().len(),
        1,
        "{answer}"
    );
    // By phone, written another way: c3.
    let (status, answer) = app
        .post("/v1/erasure", &org.key, json!({"phone": "+1 617-555-0199"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["erased"]["conversations"], json!(["c3"]), "{answer}");
    let disk = on_disk(&app).await;
    for needle in ZELDA.iter().chain(&["(617) 555-0199"]) {
        assert!(
            !contains(&disk, needle),
            "{needle:?} is still in the database"
        );
    }
    assert!(contains(&disk, "otto.keepme@stay.example"));
    // Nobody with that address: answered, recorded, nothing removed.
    let (status, answer) = app
        .post(
            "/v1/erasure",
            &org.key,
            json!({"email": "nobody@erase.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["erased"]["conversations"], json!([]), "{answer}");
    let (_, audit) = app.get("/v1/erasures", &org.key).await;
    let scopes: Vec<&str> = audit["erasures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["contact", "contact", "contact"], "{audit}");
    assert!(audit["erasures"][2]["conversation_id"].is_null());
    app.finish().await;
}

async fn a_conversation_still_syncing_is_refused_and_nothing_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    // Creatio is down: the conversation's first job keeps retrying.
    app.creatio_outage(3).await;
    app.send(
        &org.key,
        json!([zelda("e1", "c1", "m1", "my parcel 7731 is late")]),
    )
    .await;
    let (status, answer) = app.delete("/v1/conversations/c1", &org.key).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Nothing was erased"),
        "{answer}"
    );
    assert!(
        answer["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("open_jobs"),
        "{answer}"
    );
    assert_eq!(
        answer["still_syncing"][0]["conversation_id"], "c1",
        "{answer}"
    );
    assert!(answer["still_syncing"][0]["open_jobs"].as_i64().unwrap() >= 1);
    // The same through the contact: all or nothing.
    let (status, _) = app
        .post(
            "/v1/erasure",
            &org.key,
            json!({"email": "zelda.quokka@erase.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, audit) = app.get("/v1/erasures", &org.key).await;
    assert_eq!(
        audit["erasures"],
        json!([]),
        "a refusal erases and records nothing"
    );
    // Once Creatio is back and the job done, the message reached Creatio
    // whole, and the erasure goes through.
    let settled = app.settled(&org.key, "c1").await;
    assert_eq!(settled["messages"]["written"], 1, "{settled}");
    let (status, answer) = app.delete("/v1/conversations/c1", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["erased"]["removed"]["messages"], 1, "{answer}");
    app.finish().await;
}

async fn erasure_requests_are_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.send(
        &org.key,
        json!([zelda("e1", "c1", "m1", "my parcel 7731 is late")]),
    )
    .await;
    app.settled(&org.key, "c1").await;
    for (body, says) in [
        (json!({}), "exactly one"),
        (
            json!({"email": "zelda.quokka@erase.example", "phone": "+16175550199"}),
            "exactly one",
        ),
        (json!({"email": "not-an-address"}), "e-mail"),
        (json!({"phone": "12"}), "phone"),
        (json!({"name": "Zelda"}), "name"),
        (json!({"email": 5}), "email"),
    ] {
        let (status, answer) = app.post("/v1/erasure", &org.key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let text = answer["error"].to_string();
        assert!(text.contains(says), "{body}: {answer}");
        assert!(answer["error"]["hint"].is_string(), "{answer}");
    }
    let (status, answer) = app.delete("/v1/conversations/nope", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    // An ingest key may send events, not erase.
    let (_, minted) = app
        .post("/v1/api-keys", &org.key, json!({"role": "ingest"}))
        .await;
    let ingest = minted["key"].as_str().unwrap();
    let (status, _) = app.delete("/v1/conversations/c1", ingest).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nothing of the above changed anything.
    let (_, c1) = app.get("/v1/conversations/c1", &org.key).await;
    assert_eq!(c1["messages"]["received"], 1, "{c1}");
    let (_, audit) = app.get("/v1/erasures", &org.key).await;
    assert_eq!(audit["erasures"], json!([]));
    app.finish().await;
}
