//! `GET /v1/conversations`: the admin page's activity list — the org's
//! conversations, most recently changed first, with case number, state,
//! how far the sync got, and the filters' errors.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    recent_conversations_list_newest_first_with_their_case_and_sync_state,
    the_list_pages_with_a_cursor_and_finds_by_id_case_number_or_email,
);

fn message(event: &str, conversation: &str, text: &str) -> Value {
    json!({
        "id": event, "type": "message.created", "occurred_at": "2026-11-22T10:00:00Z",
        "conversation": {"id": conversation, "channel": "web",
                         "contact": {"name": "Ada Lovelace", "email": "ada@example.com"}},
        "message": {"id": format!("m_{event}"), "role": "customer", "text": text}
    })
}

fn ids(list: &Value) -> Vec<&str> {
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}

async fn recent_conversations_list_newest_first_with_their_case_and_sync_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let other = app.create_org("Other").await;
    app.connect(&org.key).await;

    let (status, empty) = app.get("/v1/conversations", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty, json!({"conversations": [], "next_cursor": null}));

    app.send(&org.key, message("e1", "c_a", "First question"))
        .await;
    app.settled(&org.key, "c_a").await;
    app.send(
        &org.key,
        json!([
            message("e2", "c_b", "Second question"),
            message("e3", "c_b", "More")
        ]),
    )
    .await;
    let b = app.settled(&org.key, "c_b").await;
    app.send(
        &org.key,
        json!({"id": "e4", "type": "conversation.handoff", "occurred_at": "2026-11-22T10:30:00Z",
               "conversation": {"id": "c_a", "channel": "web"},
               "handoff": {"summary": "Needs a person.", "reason": "asked for one"}}),
    )
    .await;
    app.settled(&org.key, "c_a").await;

    // The hand-off changed c_a last, so it comes first.
    let (status, list) = app.get("/v1/conversations", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list), ["c_a", "c_b"], "{list}");
    let listed_b = &list["conversations"][1];
    assert_eq!(listed_b["case_number"], b["case"]["number"], "{list}");
    assert_eq!(listed_b["case_id"], b["case"]["id"], "{list}");
    assert_eq!(listed_b["channel"], "web");
    assert_eq!(listed_b["state"], "open");
    assert_eq!(listed_b["mode"], "every_conversation");
    assert_eq!(listed_b["contact_name"], "Ada Lovelace");
    assert_eq!(listed_b["sync"], "synced", "{list}");
    assert_eq!(listed_b["messages"], json!({"received": 2, "written": 2}));
    assert_eq!(listed_b["jobs"], json!({"open": 0, "dead": 0, "moot": 0}));
    assert!(
        listed_b["last_event"].as_str().unwrap().contains("activit"),
        "{list}"
    );
    assert_ne!(
        list["conversations"][0]["case_number"], listed_b["case_number"],
        "one case each"
    );
    assert!(listed_b["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(list["conversations"][0]["state"], "handed_off");

    let (_, handed_off) = app
        .get("/v1/conversations?state=handed_off", &org.key)
        .await;
    assert_eq!(ids(&handed_off), ["c_a"]);
    let (_, open) = app
        .get("/v1/conversations?state=open&limit=5", &org.key)
        .await;
    assert_eq!(ids(&open), ["c_b"]);
    let (_, one) = app.get("/v1/conversations?limit=1", &org.key).await;
    assert_eq!(ids(&one), ["c_a"]);

    // While Creatio is down the new conversation shows as syncing, then synced.
    app.emulator_op(
        Method::POST,
        "faults",
        Some(json!({"kind": "outage", "duration_secs": 2})),
    )
    .await;
    app.send(&org.key, message("e5", "c_c", "During the outage"))
        .await;
    let (_, during) = app.get("/v1/conversations?limit=1", &org.key).await;
    assert_eq!(ids(&during), ["c_c"]);
    assert_eq!(during["conversations"][0]["sync"], "syncing", "{during}");
    assert_eq!(during["conversations"][0]["case_number"], Value::Null);
    assert!(during["conversations"][0]["jobs"]["open"].as_i64().unwrap() >= 1);
    app.settled(&org.key, "c_c").await;
    let (_, after) = app.get("/v1/conversations?limit=1", &org.key).await;
    assert_eq!(after["conversations"][0]["sync"], "synced", "{after}");
    assert!(after["conversations"][0]["case_number"].is_string());

    // Another org sees none of them.
    let (_, theirs) = app.get("/v1/conversations", &other.key).await;
    assert_eq!(theirs, json!({"conversations": [], "next_cursor": null}));

    for (query, hint) in [
        ("state=closed", "open, handed_off or resolved"),
        ("limit=0", "at most 200"),
        ("limit=201", "at most 200"),
        ("limit=ten", "at most 200"),
        ("page=2", "Filter with state"),
    ] {
        let (status, error) = app
            .get(&format!("/v1/conversations?{query}"), &org.key)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert!(
            error["error"]["hint"].as_str().unwrap().contains(hint),
            "{query}: {error}"
        );
    }
    let (status, _) = app.call(Method::GET, "/v1/conversations", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, ingest) = app
        .post("/v1/api-keys", &org.key, json!({"role": "ingest"}))
        .await;
    let (status, _) = app
        .get("/v1/conversations", ingest["key"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.finish().await;
}

async fn the_list_pages_with_a_cursor_and_finds_by_id_case_number_or_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let events: Vec<Value> = (0..5)
        .map(|i| {
            let mut m = message(&format!("e{i}"), &format!("c_{i}"), "Hello");
            m["conversation"]["contact"]["email"] = json!(format!("Person{i}@Example.com"));
            m
        })
        .collect();
    app.send(&org.key, json!(events)).await;
    for i in 0..5 {
        app.settled(&org.key, &format!("c_{i}")).await;
    }

    // Pages of two: every conversation once, in order, then no cursor.
    let (_, all) = app.get("/v1/conversations?limit=50", &org.key).await;
    let everything: Vec<String> = ids(&all).iter().map(|s| s.to_string()).collect();
    assert_eq!(everything.len(), 5);
    assert!(all["next_cursor"].is_null(), "{all}");
    let mut paged = Vec::new();
    let mut path = "/v1/conversations?limit=2".to_string();
    for _ in 0..5 {
        let (status, page) = app.get(&path, &org.key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.extend(ids(&page).iter().map(|s| s.to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/conversations?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, everything);

    // Search: an id's beginning, an exact id, an e-mail in any case, a case number.
    let (_, found) = app.get("/v1/conversations?q=c_", &org.key).await;
    assert_eq!(ids(&found).len(), 5);
    let (_, found) = app.get("/v1/conversations?q=c_3", &org.key).await;
    assert_eq!(ids(&found), ["c_3"]);
    let (_, found) = app
        .get("/v1/conversations?q=person2%40example.COM", &org.key)
        .await;
    assert_eq!(ids(&found), ["c_2"]);
    let number = app.settled(&org.key, "c_4").await["case"]["number"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, found) = app
        .get(&format!("/v1/conversations?q={number}"), &org.key)
        .await;
    assert_eq!(ids(&found), ["c_4"]);
    let (_, found) = app.get("/v1/conversations?q=nobody", &org.key).await;
    assert_eq!(ids(&found), Vec::<&str>::new());

    // A cursor this API did not give is refused with a hint.
    let (status, body) = app
        .get("/v1/conversations?cursor=not-a-cursor", &org.key)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("next_cursor"));
    app.finish().await;
}
