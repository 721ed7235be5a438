//! AI fields end to end: mappings checked against the emulator's
//! `$metadata` and lookups at save; values decided at hand-off by a fake
//! OpenAI-compatible server (canned answers: good, malformed, out of the
//! list, too slow) or the offline provider, and landing on the case as
//! GUIDs and trimmed text; preview and re-run.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::Json;
use casebridge::config::AiSettings;
use creatio::ids::{case_category, case_priority};
use creatio::query::Query;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    openai_values_land_on_the_case_as_guids_and_trimmed_text,
    a_text_longer_than_its_column_is_shortened_and_the_handoff_completes,
);

#[tokio::test]
async fn malformed_or_out_of_list_answers_leave_fields_empty_and_the_handoff_goes_on() {
    malformed_or_out_of_list(Backend::Sqlite).await
}

#[tokio::test]
async fn a_provider_that_times_out_never_fails_the_handoff() {
    provider_timeout(Backend::Sqlite).await
}

#[tokio::test]
async fn mappings_are_checked_against_creatio_at_save() {
    checked_at_save(Backend::Sqlite).await
}

#[tokio::test]
async fn offline_provider_fills_the_case_created_at_handoff_and_detects_language() {
    offline_at_handoff(Backend::Sqlite).await
}

#[tokio::test]
async fn preview_writes_nothing_and_rerun_patches_the_case() {
    preview_and_rerun(Backend::Sqlite).await
}

const PRIORITY: &str = "How urgent the case is.\n\
    Critical if the whole service is down, an outage, data loss or a security breach\n\
    High if a key feature is broken, payments fail or the customer cannot work\n\
    Medium for general bugs, errors and wrong behaviour\n\
    Low for feature requests, questions and feedback";

fn mappings() -> Value {
    json!({"fields": [
        {"field_name": "PriorityId", "title": "Priority", "type": "dropdown", "description": PRIORITY},
        {"field_name": "Category", "title": "Category", "type": "dropdown",
         "description": "Incident when something is broken\nService request when they ask for something",
         "options": ["incident", "Service Request"]},
        {"field_name": "UsrOrderNumber", "title": "Order number", "type": "text",
         "description": "The customer's order number, like ORD-123456"},
    ]})
}

/// A chat-completions server that answers from a script.
#[derive(Clone)]
enum Reply {
    /// A completion whose message content is this text.
    Content(String),
    /// Answer only after this long.
    Slow(Duration),
}

#[derive(Clone, Default)]
struct FakeAi {
    script: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeAi {
    async fn start() -> (FakeAi, String) {
        let fake = FakeAi::default();
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, url)
    }

    fn push(&self, reply: Reply) {
        self.script.lock().unwrap().push_back(reply);
    }

    fn answer(&self, content: Value) {
        self.push(Reply::Content(content.to_string()));
    }

    fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

async fn complete(
    State(fake): State<FakeAi>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    fake.requests.lock().unwrap().push(body);
    let next = fake.script.lock().unwrap().pop_front();
    match next {
        Some(Reply::Content(text)) => (
            StatusCode::OK,
            Json(json!({"id": "chatcmpl-1", "object": "chat.completion",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}]})),
        ),
        Some(Reply::Slow(d)) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, Json(json!({"choices": []})))
        }
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "no scripted answer"}})),
        ),
    }
}

fn openai(url: &str, timeout: Duration, attempts: u32) -> AiSettings {
    AiSettings {
        provider: "openai".into(),
        base_url: Some(url.into()),
        model: Some("fake-model".into()),
        api_key: Some("sk-test".to_string().into()),
        timeout,
        attempts,
    }
}

fn msg(event: &str, conv: &str, message: &str, role: &str, text: &str) -> Value {
    json!({"id": event, "type": "message.created", "occurred_at": "2026-11-22T10:00:00Z",
           "conversation": {"id": conv, "channel": "web",
                            "contact": {"name": "Grace Hopper", "email": "grace@example.com"}},
           "message": {"id": message, "role": role, "text": text}})
}

fn handoff(event: &str, conv: &str, language: Option<&str>) -> Value {
    let mut h = json!({"summary": "The customer's order has not arrived and they are upset.",
                       "reason": "needs a human"});
    if let Some(l) = language {
        h["language"] = json!(l);
        h["sentiment"] = json!("negative");
    }
    json!({"id": event, "type": "conversation.handoff", "conversation": {"id": conv, "channel": "web"},
           "handoff": h})
}

async fn case_of(app: &TestApp, key: &str, conv: &str) -> (Uuid, Value, Value) {
    let c = app.settled(key, conv).await;
    assert_eq!(c["case"]["created"], true, "{c}");
    let id: Uuid = c["case"]["id"].as_str().unwrap().parse().unwrap();
    let case = app
        .creatio()
        .get_value("Case", id, &Query::new())
        .await
        .unwrap();
    (id, case, c)
}

async fn handoff_note(app: &TestApp, case_id: Uuid) -> String {
    let found = app
        .creatio()
        .list_values(
            "Activity",
            &Query::new().filter(creatio::query::lookup("Case").eq(case_id)),
        )
        .await
        .unwrap();
    found
        .iter()
        .filter_map(|a| a["Notes"].as_str())
        .find(|n| n.starts_with("Summary:"))
        .expect("a hand-off note")
        .to_string()
}

async fn openai_values_land_on_the_case_as_guids_and_trimmed_text(backend: Backend) {
    let (fake, url) = FakeAi::start().await;
    let app =
        TestApp::spawn_with(backend, |c| c.ai = openai(&url, Duration::from_secs(5), 2)).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;

    let (status, saved) = app.put("/v1/creatio/ai-fields", &org.key, mappings()).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["provider"], "openai");
    let fields = saved["fields"].as_array().unwrap();
    assert_eq!(fields[0]["column"], "PriorityId");
    assert_eq!(fields[0]["lookup"], "CasePriority");
    let options: Vec<(&str, &str)> = fields[0]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        options,
        [
            ("Critical", "afb33208-f46b-1410-ec8c-0050ba5d6c38"),
            ("High", "8b700f24-f46b-1410-ee8c-0050ba5d6c38"),
            ("Medium", "d9bd322c-f46b-1410-ee8c-0050ba5d6c38"),
            ("Low", "cbb93036-f46b-1410-ef8c-0050ba5d6c38"),
        ],
        "options named in the description, resolved by name"
    );
    assert_eq!(fields[1]["column"], "CategoryId", "Category → CategoryId");
    assert_eq!(
        fields[1]["options"][1]["name"], "Service request",
        "Creatio's spelling"
    );
    assert_eq!(fields[2]["max_length"], 50);
    let (_, read) = app.get("/v1/creatio/ai-fields", &org.key).await;
    assert_eq!(read, saved);

    let long_order = format!("ORD-{}", "7".repeat(60));
    fake.answer(json!({
        "PriorityId": {"value": "High", "reason": "payments fail"},
        "Category": {"value": "Incident", "reason": "something is broken"},
        "UsrOrderNumber": {"value": format!("  {long_order}  "), "reason": "given by the customer"},
    }));
    app.send(
        &org.key,
        json!([
            msg(
                "e1",
                "c1",
                "m1",
                "customer",
                &format!("Payment failed for order {long_order}")
            ),
            msg(
                "e2",
                "c1",
                "m2",
                "ai",
                "Sorry about that, let me get a human."
            ),
            handoff("e3", "c1", Some("en")),
        ]),
    )
    .await;
    let (case_id, case, conv) = case_of(&app, &org.key, "c1").await;
    assert_eq!(case["PriorityId"], case_priority::HIGH.to_string());
    assert_eq!(case["CategoryId"], case_category::INCIDENT.to_string());
    assert_eq!(
        case["UsrOrderNumber"].as_str().unwrap(),
        &long_order[..50],
        "trimmed to the column's 50 characters"
    );
    let timeline = conv["timeline"].to_string();
    for part in [
        "AI field Priority (PriorityId) = \\\"High\\\": the AI said: payments fail [openai]",
        "trimmed to the column's 50 characters",
        "and AI fields PriorityId, CategoryId, UsrOrderNumber",
    ] {
        assert!(timeline.contains(part), "{part} in {timeline}");
    }
    let note = handoff_note(&app, case_id).await;
    assert!(note.contains("\nPriority: High\n"), "{note}");
    assert!(
        note.contains("Language: en\nSentiment: negative"),
        "given ones are kept: {note}"
    );

    // What the provider was asked: the model, the transcript, and a strict
    // schema that allows only the options.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one request per hand-off");
    let r = &requests[0];
    assert_eq!(r["model"], "fake-model");
    let schema = &r["response_format"]["json_schema"]["schema"];
    assert_eq!(
        schema["properties"]["PriorityId"]["properties"]["value"]["enum"],
        json!(["Critical", "High", "Medium", "Low", null])
    );
    let prompt = r["messages"][1]["content"].as_str().unwrap();
    assert!(
        prompt.contains("Customer: Payment failed for order"),
        "{prompt}"
    );
    assert!(
        prompt.contains("Hand-off summary: The customer's order"),
        "{prompt}"
    );
    app.finish().await;
}

async fn malformed_or_out_of_list(backend: Backend) {
    let (fake, url) = FakeAi::start().await;
    let app =
        TestApp::spawn_with(backend, |c| c.ai = openai(&url, Duration::from_secs(5), 2)).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let (status, body) = app.put("/v1/creatio/ai-fields", &org.key, mappings()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Not JSON at all: every field empty, the hand-off done anyway.
    fake.push(Reply::Content(
        "{\"PriorityId\": {\"value\": \"High\"".into(),
    ));
    app.send(
        &org.key,
        json!([
            msg("e1", "c1", "m1", "customer", "It broke"),
            handoff("e2", "c1", Some("en"))
        ]),
    )
    .await;
    let (case_id, case, conv) = case_of(&app, &org.key, "c1").await;
    assert_eq!(conv["state"], "handed_off", "{conv}");
    assert_eq!(
        case["PriorityId"],
        case_priority::MEDIUM.to_string(),
        "left as Creatio had it"
    );
    assert_eq!(case["UsrOrderNumber"], "");
    let timeline = conv["timeline"].to_string();
    assert!(
        timeline.contains("AI field Priority (PriorityId) left empty: the AI provider answered text that is not valid JSON"),
        "{timeline}"
    );
    assert!(handoff_note(&app, case_id)
        .await
        .contains("Priority: (left empty)"));

    // An option that is not in the list: that field empty, the rest written.
    fake.answer(json!({
        "PriorityId": {"value": "Urgent", "reason": "sounds urgent"},
        "CategoryId": {"value": "Service request", "reason": "asks"},
        "UsrOrderNumber": {"value": null, "reason": "none given"},
    }));
    app.send(
        &org.key,
        json!([
            msg("e3", "c2", "m1", "customer", "Please help"),
            handoff("e4", "c2", Some("en"))
        ]),
    )
    .await;
    let (_, case, conv) = case_of(&app, &org.key, "c2").await;
    assert_eq!(conv["state"], "handed_off");
    assert_eq!(case["PriorityId"], case_priority::MEDIUM.to_string());
    assert_eq!(
        case["CategoryId"],
        case_category::SERVICE_REQUEST.to_string()
    );
    let timeline = conv["timeline"].to_string();
    for part in [
        "left empty: the answer \\\"Urgent\\\" is not one of the options (Critical, High, Medium, Low)",
        "AI field Order number (UsrOrderNumber) left empty: the AI could not decide (the AI said: none given)",
    ] {
        assert!(timeline.contains(part), "{part} in {timeline}");
    }
    app.finish().await;
}

async fn provider_timeout(backend: Backend) {
    let (fake, url) = FakeAi::start().await;
    let app = TestApp::spawn_with(backend, |c| {
        c.ai = openai(&url, Duration::from_millis(500), 2)
    })
    .await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let (status, body) = app.put("/v1/creatio/ai-fields", &org.key, mappings()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    fake.push(Reply::Slow(Duration::from_secs(3)));
    fake.push(Reply::Slow(Duration::from_secs(3)));
    app.send(
        &org.key,
        json!([msg("e1", "c1", "m1", "customer", "Our whole site has been down since nine this morning and none of our customers can log in. This is a total outage!"),
               handoff("e2", "c1", None)]),
    )
    .await;
    let (case_id, case, conv) = case_of(&app, &org.key, "c1").await;
    assert_eq!(conv["state"], "handed_off", "{conv}");
    assert_eq!(case["PriorityId"], case_priority::MEDIUM.to_string());
    let timeline = conv["timeline"].to_string();
    assert!(
        timeline.contains("left empty: the AI provider did not answer in time (2 attempts)"),
        "{timeline}"
    );
    assert_eq!(fake.requests().len(), 2, "retried once, then gave up");
    // The hand-off said neither language nor sentiment: detected.
    let note = handoff_note(&app, case_id).await;
    assert!(note.contains("Language: English (en, detected)"), "{note}");
    assert!(note.contains("Sentiment: negative ("), "{note}");
    app.finish().await;
}

async fn checked_at_save(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let (status, body) = app.put("/v1/creatio/ai-fields", &org.key, mappings()).await;
    assert_eq!(status, StatusCode::CONFLICT, "not connected yet: {body}");
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("Test & Save"));
    let (status, _) = app.get("/v1/creatio/ai-fields/columns", &org.key).await;
    assert_eq!(status, StatusCode::CONFLICT, "columns before a connection");
    app.connect(&org.key).await;

    // The column picker: Case's text and lookup columns from $metadata.
    let (status, columns) = app.get("/v1/creatio/ai-fields/columns", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{columns}");
    let find = |name: &str| {
        columns["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["field_name"] == name)
            .cloned()
    };
    assert_eq!(
        find("PriorityId"),
        Some(
            json!({"field_name": "PriorityId", "type": "dropdown", "lookup": "CasePriority", "max_length": null})
        )
    );
    assert_eq!(find("UsrOrderNumber").unwrap()["type"], "text");
    assert_eq!(find("Subject").unwrap()["type"], "text");
    assert!(find("CreatedOn").is_none(), "a date column is not offered");

    let refused = [
        (
            json!({"field_name": "UsrOrderNo", "type": "text", "description": "The order number"}),
            "Case has no column \"UsrOrderNo\"; did you mean UsrOrderNumber",
        ),
        (
            json!({"field_name": "PriorityId", "type": "dropdown", "description": "Hgh if urgent\nLow otherwise"}),
            "\"Hgh\" is not a CasePriority value; closest: High",
        ),
        (
            json!({"field_name": "PriorityId", "type": "dropdown", "description": "x", "options": ["Urgent"]}),
            "\"Urgent\" is not a CasePriority value; the values are: Critical, High, Low, Medium",
        ),
        (
            json!({"field_name": "PriorityId", "type": "text", "description": "The priority"}),
            "Case.PriorityId is a lookup of CasePriority",
        ),
        (
            json!({"field_name": "UsrOrderNumber", "type": "dropdown", "description": "A if b"}),
            "Case.UsrOrderNumber is a text column, not a lookup",
        ),
        (
            json!({"field_name": "ResponseOverdue", "type": "text", "description": "x"}),
            "Case.ResponseOverdue is a Boolean column",
        ),
        (
            json!({"field_name": "StatusId", "type": "dropdown", "description": "New if new"}),
            "Case.StatusId is written by casebridge itself",
        ),
        (
            json!({"field_name": "PriorityId", "type": "dropdown", "description": "Pick one that fits."}),
            "fields[0].description: names no options",
        ),
        (
            json!({"field_name": "Order Number", "type": "text", "description": "x"}),
            "\"Order Number\" is not a column name",
        ),
        (
            json!({"field_name": "UsrOrderNumber", "type": "text", "description": "  "}),
            "fields[0].description: must have 1 to 4000 characters",
        ),
    ];
    for (mapping, expected) in refused {
        let (status, body) = app
            .put(
                "/v1/creatio/ai-fields",
                &org.key,
                json!({"fields": [mapping]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mapping}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{expected} in {message}");
        assert!(!body["error"]["hint"].as_str().unwrap().is_empty());
    }
    // Every problem is reported at once, each with its place.
    let (status, body) = app
        .put(
            "/v1/creatio/ai-fields",
            &org.key,
            json!({"fields": [
                {"field_name": "UsrOrderNo", "type": "text", "description": "x"},
                {"field_name": "PriorityId", "type": "dropdown", "description": "x", "options": ["High", "Hihg"]},
                {"field_name": "Priority", "type": "dropdown", "description": "x", "options": ["High"]},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let places: Vec<&str> = body["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        places,
        [
            "fields[0].field_name",
            "fields[1].options",
            "fields[2].field_name"
        ]
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("mapped already by fields[1]"));
    // Unknown keys and wrong types are named.
    let (status, body) = app
        .put(
            "/v1/creatio/ai-fields",
            &org.key,
            json!({"fields": [{"field_name": "X", "type": "number", "description": "x"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fields[0].type"),
        "{body}"
    );
    // Nothing refused was stored.
    let (_, read) = app.get("/v1/creatio/ai-fields", &org.key).await;
    assert_eq!(read["fields"], json!([]));
    app.finish().await;
}

async fn offline_at_handoff(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let mut body = app.connection_body();
    body["create_case_only_on_handoff"] = json!(true);
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, saved) = app.put("/v1/creatio/ai-fields", &org.key, mappings()).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["provider"], "offline");
    app.send(
        &org.key,
        json!([
            msg(
                "e1",
                "c1",
                "m1",
                "customer",
                "Your whole service is down, I can't log in. Total outage! This is terrible."
            ),
            msg(
                "e2",
                "c1",
                "m2",
                "ai",
                "I'm sorry. Can you give me your order number?"
            ),
            msg("e3", "c1", "m3", "customer", "It is ORD-482913."),
            handoff("e4", "c1", None),
        ]),
    )
    .await;
    let (case_id, case, conv) = case_of(&app, &org.key, "c1").await;
    assert_eq!(
        case["PriorityId"],
        case_priority::CRITICAL.to_string(),
        "{conv}"
    );
    assert_eq!(case["UsrOrderNumber"], "ORD-482913");
    // "something is broken" / "ask for something": neither said clearly.
    assert_eq!(
        case["CategoryId"],
        case_category::SERVICE_REQUEST.to_string(),
        "default kept"
    );
    let timeline = conv["timeline"].to_string();
    assert!(
        timeline.contains(
            "AI field Priority (PriorityId) = \\\"Critical\\\": the conversation mentions"
        ),
        "{timeline}"
    );
    assert!(
        timeline.contains("AI field Category (CategoryId) left empty"),
        "{timeline}"
    );
    assert!(timeline.contains("The hand-off did not say; detected language English (en, detected) and sentiment negative"), "{timeline}");
    let note = handoff_note(&app, case_id).await;
    assert!(note.contains("Order number: ORD-482913"), "{note}");
    app.finish().await;
}

async fn preview_and_rerun(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let transcript = "Customer: Hi, I'd love a dark mode, just a feature request.\n\
                      AI: Thanks for the feedback!\n\
                      Customer: My order is ORD-100200 by the way, it was great.";
    let (status, body) = app
        .post(
            "/v1/creatio/ai-fields/preview",
            &org.key,
            json!({"transcript": transcript}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "no mappings yet: {body}");
    // Unsaved mappings can be tried.
    let (status, preview) = app
        .post(
            "/v1/creatio/ai-fields/preview",
            &org.key,
            json!({"transcript": transcript, "fields": mappings()["fields"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["values"][0]["value"], "Low");
    assert_eq!(preview["values"][0]["id"], case_priority::LOW.to_string());
    assert!(
        preview["values"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("'feature requests'"),
        "{preview}"
    );
    assert_eq!(preview["values"][2]["value"], "ORD-100200");
    assert_eq!(preview["sentiment"]["label"], "positive");
    assert_eq!(preview["language"]["code"], "en");
    assert!(preview["warning"].is_null(), "{preview}");
    // The offline provider reads English only, and says so.
    let (status, german) = app
        .post(
            "/v1/creatio/ai-fields/preview",
            &org.key,
            json!({"transcript": "Customer: Meine Bestellung ist nie angekommen und niemand beantwortet meine E-Mails.",
                   "fields": mappings()["fields"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{german}");
    assert_eq!(german["language"]["code"], "de");
    let warning = german["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("English only") && warning.contains("German"),
        "{german}"
    );
    let (_, read) = app.get("/v1/creatio/ai-fields", &org.key).await;
    assert_eq!(read["fields"], json!([]), "a preview saves nothing");
    let (status, body) = app
        .post(
            "/v1/creatio/ai-fields/preview",
            &org.key,
            json!({"transcript": [{"role": "bot", "text": "x"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("transcript[0].role"),
        "{body}"
    );

    // A case made before any mapping existed: re-run fills it.
    app.send(
        &org.key,
        json!([msg(
            "e1",
            "c1",
            "m1",
            "customer",
            "Payments fail at checkout, I cannot work. Order ORD-555111."
        )]),
    )
    .await;
    let (case_id, case, _) = case_of(&app, &org.key, "c1").await;
    assert_eq!(case["PriorityId"], case_priority::MEDIUM.to_string());
    let (status, body) = app
        .post("/v1/conversations/c1/ai-fields/rerun", &org.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "no mappings: {body}");
    let (status, _) = app.put("/v1/creatio/ai-fields", &org.key, mappings()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, rerun) = app
        .post("/v1/conversations/c1/ai-fields/rerun", &org.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rerun}");
    assert_eq!(rerun["written"], json!(["PriorityId", "UsrOrderNumber"]));
    let case = app
        .creatio()
        .get_value("Case", case_id, &Query::new())
        .await
        .unwrap();
    assert_eq!(case["PriorityId"], case_priority::HIGH.to_string());
    assert_eq!(case["UsrOrderNumber"], "ORD-555111");
    let (_, conv) = app.get("/v1/conversations/c1", &org.key).await;
    assert!(
        conv["timeline"]
            .to_string()
            .contains("AI fields re-run by an admin (offline): 2 written"),
        "{conv}"
    );
    let (status, _) = app
        .post(
            "/v1/conversations/nope/ai-fields/rerun",
            &org.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.finish().await;
}

/// Creatio's `$metadata` does not tell a column's size, so an admin's
/// max_length can be too large: the write fails as "would be truncated",
/// the value is written shorter, and the hand-off completes.
async fn a_text_longer_than_its_column_is_shortened_and_the_handoff_completes(backend: Backend) {
    let (fake, url) = FakeAi::start().await;
    let app =
        TestApp::spawn_with(backend, |c| c.ai = openai(&url, Duration::from_secs(5), 2)).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let fields = json!({"fields": [
        {"field_name": "PriorityId", "title": "Priority", "type": "dropdown", "description": PRIORITY},
        {"field_name": "UsrOrderNumber", "title": "Order number", "type": "text",
         "description": "The customer's order number", "max_length": 250},
    ]});
    let (status, saved) = app.put("/v1/creatio/ai-fields", &org.key, fields).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        saved["fields"][1]["max_length"], 250,
        "the admin's size is kept"
    );
    let (status, refused) = app
        .put(
            "/v1/creatio/ai-fields",
            &org.key,
            json!({"fields": [{"field_name": "PriorityId", "type": "dropdown",
                               "description": PRIORITY, "max_length": 10}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused.to_string().contains("fields[0].max_length"),
        "{refused}"
    );

    let long_order = format!("ORD-{}", "9".repeat(116));
    fake.answer(json!({
        "PriorityId": {"value": "High", "reason": "payments fail"},
        "UsrOrderNumber": {"value": long_order, "reason": "given by the customer"},
    }));
    app.send(
        &org.key,
        json!([
            msg("e1", "c1", "m1", "customer", "My payment failed"),
            handoff("e2", "c1", Some("en")),
        ]),
    )
    .await;
    let (_, case, conv) = case_of(&app, &org.key, "c1").await;
    assert_eq!(
        conv["state"], "handed_off",
        "the hand-off completed: {conv}"
    );
    assert!(conv["jobs"].get("dead").is_none(), "{conv}");
    assert_eq!(case["PriorityId"], case_priority::HIGH.to_string());
    assert_eq!(
        case["UsrOrderNumber"].as_str().unwrap(),
        &long_order[..50],
        "written cut to the smallest Creatio text size"
    );
    let timeline = conv["timeline"].to_string();
    for part in [
        "too long for its column",
        "wrote UsrOrderNumber cut to 50 characters",
        "max_length",
    ] {
        assert!(timeline.contains(part), "{part} in {timeline}");
    }
    app.finish().await;
}
