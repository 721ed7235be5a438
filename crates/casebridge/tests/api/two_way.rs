//! Creatio → chat end to end: the emulator's business processes call the
//! webhook URL with casebridge's own process templates, casebridge looks in
//! Creatio, and signed deliveries reach a receiving test server.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use creatio::ids::case_status;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{logs, Backend, Org, TestApp};
use crate::on_both_backends;

on_both_backends!(
    agent_replies_and_closures_reach_the_platform_signed,
    the_minimal_body_works_and_a_repeated_webhook_delivers_once,
    a_resolution_from_the_platform_is_not_echoed,
    a_receiver_that_is_down_gets_the_delivery_later_with_the_same_id,
    gone_disables_the_endpoint_and_dead_letters_replay,
    a_pending_delivery_is_retried_now_behind_the_earlier_ones_of_its_conversation,
    dead_deliveries_are_recovered_since_a_time,
    a_technical_user_without_a_contact_gets_no_echo,
    an_agent_reply_is_visible_only_with_view_any_data,
    a_request_id_follows_its_jobs_into_the_deliveries,
);

#[tokio::test]
async fn bad_webhook_calls_are_refused_with_a_hint() {
    bad_webhook_calls(Backend::Sqlite).await
}

#[tokio::test]
async fn delivery_urls_are_checked_and_secrets_rotate() {
    delivery_settings(Backend::Sqlite).await
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_string()
    }
}

/// The chat platform's webhook receiver: records every request and answers
/// with the status it is set to.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let status = Arc::new(AtomicU16::new(200));
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let (s, g) = (status.clone(), got.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (s, g) = (s.clone(), g.clone());
                async move {
                    let answered = s.load(Ordering::SeqCst);
                    g.lock().unwrap().push(Received {
                        headers,
                        body,
                        answered,
                    });
                    StatusCode::from_u16(answered).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://{addr}/hook"),
            status,
            got,
        }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Requests of one type that the receiver accepted.
    fn accepted(&self, kind: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.kind() == kind && r.answered < 300)
            .collect()
    }

    /// Waits for the first request of a type, and returns it.
    async fn first(&self, kind: &str) -> Received {
        let all = self
            .wait_for(kind, |all| all.iter().any(|r| r.kind() == kind))
            .await;
        all.into_iter().find(|r| r.kind() == kind).unwrap()
    }

    /// Waits until `done` holds for what was received.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all = self.all();
            if done(&all) {
                return all;
            }
            if Instant::now() > deadline {
                let kinds: Vec<String> = all
                    .iter()
                    .map(|r| format!("{} ({})", r.kind(), r.answered))
                    .collect();
                panic!(
                    "the receiver never got {what}; it got {kinds:?}\nlog tail:\n{}",
                    crate::helpers::logs()
                        .lines()
                        .rev()
                        .take(30)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Verifies a delivery's signature with the `standardwebhooks` crate.
fn verify(r: &Received, secret: &str) {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(r.body.as_bytes(), &r.headers)
        .unwrap_or_else(|e| panic!("signature does not verify: {e}: {r:?}"));
}

fn customer(event: &str, conv: &str, text: &str) -> Value {
    json!({
        "id": event, "type": "message.created", "occurred_at": "2026-11-22T10:00:00Z",
        "conversation": {"id": conv, "channel": "web", "url": format!("https://chat.example.com/inbox/{conv}"),
                         "contact": {"name": "Ada Lovelace", "email": "ada@example.com"}},
        "message": {"id": format!("m-{event}"), "role": "customer", "text": text}
    })
}

/// An org connected to the emulator (with a resolved status), a delivery
/// URL at a fresh receiver, and the emulator's processes set up from
/// casebridge's templates. Returns the org, the receiver and the secret.
async fn two_way_org(app: &TestApp, minimal_bodies: bool) -> (Org, Receiver, String) {
    let org = app.create_org("Acme").await;
    let mut body = app.connection_body();
    body["resolved_status_id"] = json!(case_status::RESOLVED.to_string());
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let receiver = Receiver::start().await;
    let (status, delivery) = app
        .put("/v1/delivery", &org.key, json!({"url": receiver.url}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{delivery}");
    let secret = delivery["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{delivery}");
    install_processes(app, &org, minimal_bodies).await;
    (org, receiver, secret)
}

/// Defines the emulator's business processes exactly as the templates say
/// (`minimal`: only `event_type` and `caseId` in the body).
pub(crate) async fn install_processes(app: &TestApp, org: &Org, minimal: bool) {
    let (status, templates) = app.get("/v1/creatio/process-templates", &org.key).await;
    assert_eq!(status, StatusCode::OK, "{templates}");
    // The echo filter is part of the agent-reply process, with why.
    let filter = templates["processes"][0]["signal"]["filter"].to_string();
    assert!(
        filter.contains("Created by ≠ the integration user (")
            && filter.contains("required: without it"),
        "{filter}"
    );
    for p in templates["processes"].as_array().unwrap() {
        let call = &p["call_web_service"];
        let mut body = call["body"].clone();
        if minimal {
            body = json!({"event_type": body["event_type"], "caseId": body["caseId"]});
        }
        let def = json!({
            "name": p["name"], "trigger": p["signal"]["trigger"], "url": call["url"],
            "body": body, "retries": call["retries_on_failure"],
        });
        app.emulator_op(Method::POST, "processes", Some(def)).await;
    }
}

/// The emulator's process calls so far.
async fn process_calls(app: &TestApp) -> Vec<Value> {
    let calls = app.emulator_op(Method::GET, "process-calls", None).await;
    calls.as_array().unwrap().clone()
}

/// Waits until the emulator logged `n` process calls (each is logged after
/// casebridge answered it) and the conversation has no job left.
pub(crate) async fn calls_settled(app: &TestApp, org: &Org, conv: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let calls = process_calls(app).await;
        if calls.len() >= n {
            app.settled(&org.key, conv).await;
            return calls;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} process calls: {calls:?}",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends the first customer message of conversation c1 and waits until its
/// case exists and Creatio's process call for its activity was answered
/// and looked at; the case id.
async fn first_message(app: &TestApp, org: &Org, text: &str) -> String {
    app.send(&org.key, customer("e1", "c1", text)).await;
    let conv = app.settled(&org.key, "c1").await;
    calls_settled(app, org, "c1", 1).await;
    conv["case"]["id"].as_str().unwrap().to_string()
}

async fn deliveries(app: &TestApp, org: &Org, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/deliveries{query}"), &org.key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// Waits until every delivery has left the queue.
pub(crate) async fn deliveries_settled(app: &TestApp, org: &Org) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = deliveries(app, org, "").await;
        if all
            .iter()
            .all(|d| d["state"] == "delivered" || d["state"] == "dead")
        {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never settled: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the delivery is in `state`, and returns it.
async fn delivery_in_state(app: &TestApp, org: &Org, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, one) = app.get(&format!("/v1/deliveries/{id}"), &org.key).await;
        if one["state"] == state {
            return one;
        }
        assert!(Instant::now() < deadline, "never {state}: {one}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn agent_replies_and_closures_reach_the_platform_signed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, receiver, secret) = two_way_org(&app, false).await;
    app.send(
        &org.key,
        json!([customer("e1", "c1", "My printer is on fire"), {
            "id": "e2", "type": "message.created", "occurred_at": "2026-11-22T10:01:00Z",
            "conversation": {"id": "c1", "channel": "web"},
            "message": {"id": "m2", "role": "ai", "text": "Have you tried turning it off?"}}]),
    )
    .await;
    let conv = app.settled(&org.key, "c1").await;
    let case_id = conv["case"]["id"].as_str().unwrap().to_string();
    let number = conv["case"]["number"].as_str().unwrap().to_string();

    // The case number reaches the platform.
    let linked = receiver.first("case.linked").await;
    verify(&linked, &secret);
    assert_eq!(
        linked.json()["data"],
        json!({"conversation_id": "c1", "case_id": case_id, "case_number": number})
    );

    // casebridge's own two activities fired the agent-reply process twice;
    // neither became a delivery.
    let calls = calls_settled(&app, &org, "c1", 2).await;
    assert!(
        calls
            .iter()
            .all(|c| c["success"] == true && c["request_body"]["event_type"] == "new_activity"),
        "{calls:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.accepted("agent.reply").is_empty(), "echo!");
    // Those two looks found nothing new: counted, not written on the
    // timeline, where they read like a fault.
    let looked = app.settled(&org.key, "c1").await["timeline"].to_string();
    assert!(!looked.contains("agent reply"), "{looked}");
    assert!(
        app.metrics_text()
            .await
            .contains("casebridge_reply_checks_total{outcome=\"nothing_new\"}"),
        "the looks are not counted"
    );

    // An agent answers in Creatio (an e-mail with an HTML body).
    let reply = app.emulator_op(Method::POST, "agent-reply", Some(json!({"case_id": case_id, "text": "<p>Hello Ada,</p><p>unplug it &amp; step back.</p>"})),
    )
    .await;
    let delivered = receiver.first("agent.reply").await;
    verify(&delivered, &secret);
    let data = &delivered.json()["data"];
    assert_eq!(data["conversation_id"], "c1");
    assert_eq!(data["case_id"], case_id.as_str());
    assert_eq!(data["activity_id"], reply["Id"]);
    assert_eq!(data["text"], "Hello Ada,\n\nunplug it & step back.");
    assert_eq!(data["author"]["name"], "Sarah Lee");
    assert!(data["created_at"].as_str().unwrap().starts_with("20"));
    assert!(delivered.header("webhook-id").starts_with("msg_"));

    // The agent closes the case: one conversation.resolved.
    app.emulator_op(
        Method::POST,
        "case-status",
        Some(json!({"case_id": case_id, "status": "Closed"})),
    )
    .await;
    let closed = receiver.first("conversation.resolved").await;
    verify(&closed, &secret);
    assert_eq!(closed.json()["data"]["status"], "Closed");
    assert_eq!(closed.json()["data"]["case_id"], case_id.as_str());
    let conv = app.settled(&org.key, "c1").await;
    assert_eq!(conv["state"], "resolved", "{conv}");

    // Exactly one of each, all delivered, each with its attempts logged.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = deliveries_settled(&app, &org).await;
    let mut kinds: Vec<&str> = log.iter().map(|d| d["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["agent.reply", "case.linked", "conversation.resolved"]
    );
    assert_eq!(receiver.all().len(), 3, "{:?}", receiver.all());
    let id = log[0]["id"].as_str().unwrap();
    let (_, one) = app.get(&format!("/v1/deliveries/{id}"), &org.key).await;
    assert_eq!(one["attempt_log"][0]["status"], 200, "{one}");
    let timeline = conv["timeline"].to_string();
    assert!(timeline.contains("Agent reply"), "{timeline}");
    assert!(timeline.contains("Delivered agent.reply"), "{timeline}");
    let text = app.metrics_text().await;
    assert!(
        text.contains("casebridge_delivery_attempts_total"),
        "{text}"
    );
    every_metric_the_dashboard_and_alerts_name_exists(&text);
    app.finish().await;
}

/// Every metric that `deploy/grafana/casebridge.json`'s panels and
/// `deploy/prometheus/alerts.yaml`'s rules query is in `/metrics` after
/// the whole two-way story (a histogram by its `_bucket` series).
fn every_metric_the_dashboard_and_alerts_name_exists(metrics: &str) {
    let exported: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let names = regex::Regex::new(r"\b(?:casebridge|process)_[a-z_]+\b").unwrap();
    let dashboard: Value =
        serde_json::from_str(include_str!("../../../../deploy/grafana/casebridge.json"))
            .expect("the dashboard is JSON");
    let mut queries: Vec<(String, String)> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = format!("dashboard panel {:?}", panel["title"]);
            queries.push((title, target["expr"].as_str().unwrap().to_string()));
        }
    }
    let panels_with_queries = queries.len();
    assert!(panels_with_queries > 20, "{panels_with_queries} queries");
    let alerts = include_str!("../../../../deploy/prometheus/alerts.yaml");
    let mut alert = String::new();
    for line in alerts.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            alert = name.to_string();
        } else if !line.trim_start().starts_with('#') && !alert.is_empty() {
            queries.push((format!("alert {alert}"), line.to_string()));
        }
    }
    assert!(
        queries.len() > panels_with_queries + 8,
        "no alert rule read"
    );
    let mut checked = std::collections::BTreeSet::new();
    for (origin, query) in &queries {
        for name in names.find_iter(query) {
            let name = name.as_str();
            assert!(
                exported.contains(name),
                "{origin} queries {name}, which /metrics does not have:\n{metrics}"
            );
            checked.insert(name);
        }
    }
    assert!(checked.len() >= 20, "only {checked:?}");
}

/// A request's id goes with the work it caused: the events request's to
/// the jobs it queued (their log lines) and to the `case.linked` delivery
/// they queued (its `x-request-id`); Creatio's webhook call's to the reply
/// check it queued and to the `agent.reply` that check found.
async fn a_request_id_follows_its_jobs_into_the_deliveries(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, receiver, _) = two_way_org(&app, false).await;
    let rid = format!("events-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = app
        .call_with_request_id(
            Method::POST,
            "/v1/events",
            &org.key,
            json!([customer("e1", "c1", "My router is broken.")]),
            &rid,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let linked = receiver.first("case.linked").await;
    assert_eq!(linked.header("x-request-id"), rid);
    let log = deliveries_settled(&app, &org).await;
    let linked_out = log.iter().find(|d| d["type"] == "case.linked").unwrap();
    assert_eq!(linked_out["request_id"], rid.as_str(), "{linked_out}");
    // The job's own log line carries the id.
    let job_line = logs()
        .lines()
        .any(|l| l.contains("Running the job") && l.contains(&rid));
    assert!(job_line, "no log line of the request's job names {rid}");

    // An agent replies: Creatio's process calls the webhook (the id is
    // casebridge's own, as Creatio sends none), whose reply check finds
    // the reply; the delivery carries the webhook request's id.
    let conv = app.settled(&org.key, "c1").await;
    let case_id = conv["case"]["id"].as_str().unwrap().to_string();
    calls_settled(&app, &org, "c1", 1).await;
    app.emulator_op(
        Method::POST,
        "agent-reply",
        Some(json!({"case_id": case_id, "text": "Unplug it and wait."})),
    )
    .await;
    let reply = receiver.first("agent.reply").await;
    let reply_rid = reply.header("x-request-id");
    assert_ne!(reply_rid, rid);
    let access = logs()
        .lines()
        .any(|l| l.contains("POST /webhooks/creatio/{token} 20") && l.contains(&reply_rid));
    assert!(
        access,
        "no webhook call with request id {reply_rid} in the access log"
    );
    app.finish().await;
}

async fn the_minimal_body_works_and_a_repeated_webhook_delivers_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, receiver, _) = two_way_org(&app, true).await;
    let case_id = first_message(&app, &org, "Where is my order?").await;
    app.emulator_op(
        Method::POST,
        "agent-reply",
        Some(json!({"case_id": case_id, "text": "It ships today.", "kind": "task"})),
    )
    .await;
    receiver.first("agent.reply").await;
    // Creatio calls again (a retry, a second process): nothing new.
    let calls = process_calls(&app).await;
    let (_, templates) = app.get("/v1/creatio/process-templates", &org.key).await;
    let url = templates["webhook_url"].as_str().unwrap();
    for _ in 0..3 {
        let resp = reqwest::Client::new()
            .post(url)
            .json(&json!({"event_type": "new_activity", "caseId": case_id}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    // The customer's e-mail arriving on the case is an activity too, by a
    // user who is not casebridge: still not an agent reply.
    app.emulator_op(
        Method::POST,
        "agent-reply",
        Some(json!({"case_id": case_id, "text": "Thanks!", "kind": "incoming_email"})),
    )
    .await;
    calls_settled(&app, &org, "c1", calls.len() + 1).await;
    app.settled(&org.key, "c1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    deliveries_settled(&app, &org).await;
    assert_eq!(receiver.accepted("agent.reply").len(), 1);
    assert_eq!(
        receiver.accepted("agent.reply")[0].json()["data"]["text"],
        "It ships today."
    );
    assert_eq!(
        calls.last().unwrap()["request_body"],
        json!({"event_type": "new_activity", "caseId": case_id}),
        "the process sent the minimal body"
    );
    app.finish().await;
}

async fn a_resolution_from_the_platform_is_not_echoed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, receiver, _) = two_way_org(&app, false).await;
    first_message(&app, &org, "Thanks, all good now").await;
    app.send(
        &org.key,
        json!({"id": "e2", "type": "conversation.resolved", "conversation": {"id": "c1"}}),
    )
    .await;
    // casebridge sets the Resolved status; the closure process fires.
    let calls = calls_settled(&app, &org, "c1", 2).await;
    assert_eq!(
        calls[1]["request_body"]["event_type"], "case_status_changed",
        "{calls:?}"
    );
    let conv = app.settled(&org.key, "c1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        receiver.accepted("conversation.resolved").is_empty(),
        "echo of our own resolution"
    );
    assert_eq!(conv["state"], "resolved");
    assert!(
        conv["timeline"].to_string().contains("resolved already"),
        "{}",
        conv["timeline"]
    );
    app.finish().await;
}

async fn a_receiver_that_is_down_gets_the_delivery_later_with_the_same_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, receiver, secret) = two_way_org(&app, false).await;
    receiver.answer(503);
    let case_id = first_message(&app, &org, "Hello?").await;
    app.emulator_op(
        Method::POST,
        "agent-reply",
        Some(json!({"case_id": case_id, "text": "Hi, Sarah here."})),
    )
    .await;
    // Two failures (503 and a refused connection would be the same), then up.
    receiver
        .wait_for("two failed attempts", |all| {
            all.iter().filter(|r| r.answered == 503).count() >= 2
        })
        .await;
    receiver.answer(200);
    let got = receiver
        .wait_for("both deliveries", |all| {
            all.iter().filter(|r| r.answered == 200).count() == 2
        })
        .await;
    // In order: case.linked first, and the reply only after it.
    let ok: Vec<&Received> = got.iter().filter(|r| r.answered == 200).collect();
    assert_eq!(ok[0].kind(), "case.linked");
    assert_eq!(ok[1].kind(), "agent.reply");
    for r in &ok {
        verify(r, &secret);
        let attempts: Vec<&Received> = got
            .iter()
            .filter(|g| g.header("webhook-id") == r.header("webhook-id"))
            .collect();
        assert!(
            attempts.iter().all(|a| a.body == r.body),
            "same bytes every time"
        );
    }
    let linked_id = ok[0].header("webhook-id");
    assert!(
        got.iter()
            .filter(|g| g.header("webhook-id") == linked_id)
            .count()
            >= 3,
        "retried under one webhook-id: {got:?}"
    );
    let (_, one) = app
        .get(&format!("/v1/deliveries/{linked_id}"), &org.key)
        .await;
    let log = one["attempt_log"].as_array().unwrap();
    assert_eq!(log.first().unwrap()["status"], 503, "{one}");
    assert_eq!(log.last().unwrap()["status"], 200, "{one}");
    assert_eq!(one["state"], "delivered");
    app.finish().await;
}

async fn gone_disables_the_endpoint_and_dead_letters_replay(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, receiver, _) = two_way_org(&app, false).await;
    // 410: the endpoint is disabled at once, the delivery dead.
    receiver.answer(410);
    app.send(&org.key, customer("e1", "c1", "First")).await;
    app.settled(&org.key, "c1").await;
    receiver
        .wait_for("a 410", |all| all.iter().any(|r| r.answered == 410))
        .await;
    let dead = deliveries_settled(&app, &org).await;
    assert_eq!(dead[0]["state"], "dead", "{dead:?}");
    let (_, endpoint) = app.get("/v1/delivery", &org.key).await;
    assert_eq!(endpoint["state"], "disabled", "{endpoint}");
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{endpoint}"
    );
    // Nothing more is sent to a disabled endpoint.
    app.send(&org.key, customer("e2", "c2", "Second")).await;
    app.settled(&org.key, "c2").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.all().len(), 1);
    let pending = deliveries(&app, &org, "?status=pending").await;
    assert_eq!(pending.len(), 1, "held, not lost: {pending:?}");

    // Re-enabled by saving the URL again: the held one goes out.
    receiver.answer(200);
    let (status, endpoint) = app
        .put("/v1/delivery", &org.key, json!({"url": receiver.url}))
        .await;
    assert_eq!(status, StatusCode::OK, "{endpoint}");
    assert_eq!(endpoint["state"], "enabled");
    receiver
        .wait_for("the held delivery", |all| {
            all.iter().any(|r| r.answered == 200)
        })
        .await;

    // A dead letter is replayed with its webhook-id.
    let dead_id = dead[0]["id"].as_str().unwrap().to_string();
    let (status, answer) = app
        .post(
            &format!("/v1/deliveries/{dead_id}/replay"),
            &org.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    receiver
        .wait_for("the replayed delivery", |all| {
            all.iter()
                .any(|r| r.answered == 200 && r.header("webhook-id") == dead_id)
        })
        .await;
    // The receiver answered; casebridge records the attempt right after.
    let one = delivery_in_state(&app, &org, &dead_id, "delivered").await;
    assert_eq!(one["attempt_log"].as_array().unwrap().len(), 2, "{one}");

    // A receiver failing every attempt: dead after the schedule (3 retries
    // in tests), visible in the dead-letter list, replayable.
    receiver.answer(500);
    app.send(&org.key, customer("e3", "c3", "Third")).await;
    app.settled(&org.key, "c3").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = deliveries(&app, &org, "?status=dead&conversation_id=c3").await;
        if !dead.is_empty() {
            break dead;
        }
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead[0]["attempts"], 4, "{dead:?}");
    assert_eq!(dead[0]["last_status"], 500);
    let (status, again) = app
        .post(
            &format!("/v1/deliveries/{}/replay", dead[0]["id"].as_str().unwrap()),
            &org.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    let (status, conflict) = app
        .post(
            &format!("/v1/deliveries/{}/replay", dead[0]["id"].as_str().unwrap()),
            &org.key,
            json!({}),
        )
        .await;
    // Queued again (or already on its way): a second replay has nothing to do.
    assert!(
        status == StatusCode::CONFLICT || status == StatusCode::ACCEPTED,
        "{conflict}"
    );
    let (status, missing) = app
        .post("/v1/deliveries/msg_nope/replay", &org.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    app.finish().await;
}

async fn bad_webhook_calls(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, _receiver, _) = two_way_org(&app, false).await;
    let (_, templates) = app.get("/v1/creatio/process-templates", &org.key).await;
    let url = templates["webhook_url"].as_str().unwrap().to_string();
    let post = |body: Value, url: String| async move {
        let resp = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap())
    };
    // Placeholder Creatio did not substitute.
    let (status, body) = post(
        json!({"event_type": "new_activity", "caseId": "[#Case.Id#]"}),
        url.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("placeholder"),
        "{body}"
    );
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("process parameter"),
        "{body}"
    );
    // Not a GUID.
    let (status, body) = post(
        json!({"event_type": "new_activity", "CaseId": "SR0001"}),
        url.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Unknown or rotated-away token.
    let wrong = format!("{}x", url);
    let (status, body) = post(
        json!({"event_type": "new_activity", "caseId": uuid::Uuid::new_v4()}),
        wrong,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("webhook URL"),
        "{body}"
    );
    // A case casebridge does not know: fine, ignored.
    let (status, body) = post(
        json!({"event_type": "case_status_changed", "case_id": uuid::Uuid::new_v4()}),
        url.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ignored");
    // The templates carry this org's URL and both bodies.
    assert_eq!(templates["processes"].as_array().unwrap().len(), 2);
    assert_eq!(
        templates["processes"][0]["call_web_service"]["body"]["caseId"],
        "[#Case.Id#]"
    );
    // After disconnect the URL is dead.
    let (status, _) = app.delete("/v1/creatio/connection", &org.key).await;
    assert!(status.is_success());
    let (status, _) = post(
        json!({"event_type": "new_activity", "caseId": uuid::Uuid::new_v4()}),
        url,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.finish().await;
}

async fn delivery_settings(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let put = |url: &'static str| app.put("/v1/delivery", &org.key, json!({ "url": url }));
    // The SSRF guard: private, link-local and (not allowed here) IPv6
    // loopback addresses are refused with the setting that allows them.
    for url in [
        "http://10.0.0.5/hook",
        "http://192.168.1.20:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9000/hook",
    ] {
        let (status, body) = put(url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("CASEBRIDGE_ALLOW_PRIVATE_TARGETS"),
            "{body}"
        );
    }
    for (url, says) in [
        ("chat.example.com/hook", "not an absolute URL"),
        ("ftp://chat.example.com/hook", "not https"),
        (
            "https://user:pw@chat.example.com/hook",
            "user name or password",
        ),
    ] {
        let (status, body) = put(url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    let (status, _) = app.get("/v1/delivery", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was saved");

    // Save, then rotate: two signatures while the old secret is in grace.
    let receiver = Receiver::start().await;
    let (status, saved) = app
        .put("/v1/delivery", &org.key, json!({"url": receiver.url}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    let old = saved["secret"].as_str().unwrap().to_string();
    let (status, rotated) = app
        .post("/v1/delivery/secret/rotate", &org.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(old, new);
    let (_, read) = app.get("/v1/delivery", &org.key).await;
    let masked = read["secret"].as_str().unwrap();
    assert!(
        !masked.contains(&new[6..new.len() - 4]),
        "a read masks the secret: {read}"
    );
    assert!(
        masked.starts_with("whsec_••••") && masked.ends_with(&new[new.len() - 4..]),
        "{read}"
    );
    assert!(read["previous_secret_valid_until"].is_string(), "{read}");
    // Saving the URL again keeps the secret.
    let (status, again) = app
        .put("/v1/delivery", &org.key, json!({"url": receiver.url}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["secret"], new.as_str());

    // A delivery now carries both signatures; each secret verifies it.
    app.connect(&org.key).await;
    app.send(&org.key, customer("e1", "c1", "Hi")).await;
    app.settled(&org.key, "c1").await;
    let got = receiver
        .wait_for("case.linked", |all| !all.is_empty())
        .await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    verify(&got[0], &old);
    verify(&got[0], &new);

    // The log's filters are checked.
    let (status, body) = app.get("/v1/deliveries?status=lost", &org.key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app.get("/v1/deliveries?limit=0", &org.key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app.delete("/v1/delivery", &org.key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.finish().await;
}

/// A technical user without a Contact writes the empty GUID in `CreatedById`
/// (reference/creatio-evidence.md §6), so "created by us" cannot be told from
/// Creatio: casebridge's memory of what it wrote alone keeps its own
/// activities from coming back, and an agent's reply still does.
async fn a_technical_user_without_a_contact_gets_no_echo(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.emulator_op(
        Method::POST,
        "clients",
        Some(json!({"client_id": "nocontact", "client_secret": "nocontact-secret-1", "has_contact": false})),
    )
    .await;
    let org = app.create_org("Acme").await;
    let mut body = app.connection_body();
    body["client_id"] = json!("nocontact");
    body["client_secret"] = json!("nocontact-secret-1");
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let receiver = Receiver::start().await;
    let (status, delivery) = app
        .put("/v1/delivery", &org.key, json!({"url": receiver.url}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{delivery}");
    install_processes(&app, &org, true).await;

    app.send(
        &org.key,
        json!([customer("e1", "c1", "My printer is on fire"), {
            "id": "e2", "type": "message.created", "occurred_at": "2026-11-22T10:01:00Z",
            "conversation": {"id": "c1", "channel": "web"},
            "message": {"id": "m2", "role": "ai", "text": "Have you tried turning it off?"}}]),
    )
    .await;
    let conv = app.settled(&org.key, "c1").await;
    let case_id = conv["case"]["id"].as_str().unwrap().to_string();
    let case: Value = app
        .creatio()
        .get_value(
            "Case",
            case_id.parse().unwrap(),
            &creatio::query::Query::new().select(["CreatedById"]),
        )
        .await
        .unwrap();
    assert_eq!(case["CreatedById"], "00000000-0000-0000-0000-000000000000");
    // Its own two activities fired the process; neither came back.
    calls_settled(&app, &org, "c1", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.accepted("agent.reply").is_empty(), "echo!");
    // Its memory of what it wrote is what kept them back (logged at debug;
    // a look that finds nothing new writes no timeline line).
    app.settled(&org.key, "c1").await;
    let looked = crate::helpers::logs();
    assert!(
        looked
            .lines()
            .any(|l| l.contains("Looked for agents' replies")
                && l.contains(&format!("case_id={case_id}"))
                && l.contains("queued=0")
                && !l.contains("skipped_ours=0")),
        "no look that skipped casebridge's own activities on case {case_id}"
    );

    let reply = app
        .emulator_op(
            Method::POST,
            "agent-reply",
            Some(json!({"case_id": case_id, "text": "Unplug it."})),
        )
        .await;
    let delivered = receiver.first("agent.reply").await;
    assert_eq!(delivered.json()["data"]["activity_id"], reply["Id"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.accepted("agent.reply").len(), 1);
    app.finish().await;
}

/// Case, Activity and Contact are administrated by records
/// (reference/creatio-evidence.md §1): an agent's reply is another user's
/// record, invisible to a technical user without "View any data" — no error
/// anywhere, just no delivery. Test & Save refuses that setup
/// (`connection::missing_view_any_data_fails_test_and_save_naming_it`);
/// here the right is taken away after it, then granted again.
async fn an_agent_reply_is_visible_only_with_view_any_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, receiver, _) = two_way_org(&app, true).await;
    app.send(&org.key, customer("e1", "c1", "My printer is on fire"))
        .await;
    let conv = app.settled(&org.key, "c1").await;
    let case_id = conv["case"]["id"].as_str().unwrap().to_string();
    calls_settled(&app, &org, "c1", 1).await;

    app.change_creatio_client(json!({"system_operations": []}))
        .await;
    let hidden = app
        .emulator_op(
            Method::POST,
            "agent-reply",
            Some(json!({"case_id": case_id, "text": "Unplug it."})),
        )
        .await;
    calls_settled(&app, &org, "c1", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        receiver.accepted("agent.reply").is_empty(),
        "invisible without View any data"
    );

    app.change_creatio_client(json!({"system_operations": ["CanSelectEverything"]}))
        .await;
    app.emulator_op(
        Method::POST,
        "agent-reply",
        Some(json!({"case_id": case_id, "text": "Still there?"})),
    )
    .await;
    calls_settled(&app, &org, "c1", 3).await;
    let replies = |all: &[Received]| {
        all.iter()
            .filter(|r| r.kind() == "agent.reply")
            .map(|r| r.json()["data"]["activity_id"].clone())
            .collect::<Vec<Value>>()
    };
    let delivered = receiver
        .wait_for("two agent replies", |all| replies(all).len() >= 2)
        .await;
    let ids = replies(&delivered);
    assert!(
        ids.contains(&hidden["Id"]),
        "the earlier reply arrives once visible: {ids:?}"
    );
    app.finish().await;
}

/// A receiver that was down is fixed: the admin sends the waiting reply
/// now rather than in a minute. The conversation's earlier delivery
/// (case.linked), which holds it, goes first.
async fn a_pending_delivery_is_retried_now_behind_the_earlier_ones_of_its_conversation(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |c| {
        c.delivery.delays = vec![Duration::from_secs(60); 3];
    })
    .await;
    let (org, receiver, _) = two_way_org(&app, false).await;
    receiver.answer(503);
    let case_id = first_message(&app, &org, "Hello?").await;
    app.emulator_op(
        Method::POST,
        "agent-reply",
        Some(json!({"case_id": case_id, "text": "Hi, Sarah here."})),
    )
    .await;
    receiver
        .wait_for("a failed attempt", |all| {
            all.iter().any(|r| r.answered == 503)
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let reply = loop {
        let pending = deliveries(&app, &org, "?status=pending").await;
        if let Some(r) = pending.iter().find(|d| d["type"] == "agent.reply") {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no pending reply: {pending:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let reply_id = reply["id"].as_str().unwrap();

    receiver.answer(200);
    let (status, answer) = app
        .post(
            &format!("/v1/deliveries/{reply_id}/retry"),
            &org.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["earlier"], 1, "case.linked goes first: {answer}");
    // Both go out now, in order, long before the schedule's minute.
    let got = receiver
        .wait_for("both deliveries", |all| {
            all.iter().filter(|r| r.answered == 200).count() == 2
        })
        .await;
    let ok: Vec<&Received> = got.iter().filter(|r| r.answered == 200).collect();
    assert_eq!(ok[0].kind(), "case.linked");
    assert_eq!(ok[1].kind(), "agent.reply");
    let linked = delivery_in_state(&app, &org, &ok[0].header("webhook-id"), "delivered").await;
    assert_eq!(linked["attempts"], 2, "{linked}");
    assert_eq!(
        linked["attempt_log"].as_array().unwrap().len(),
        2,
        "{linked}"
    );
    let (_, c1) = app.get("/v1/conversations/c1", &org.key).await;
    assert!(
        c1["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["summary"]
                .as_str()
                .unwrap()
                .contains("retried now by an admin")),
        "{c1}"
    );

    // Delivered: nothing to retry (replay sends it again); unknown: 404.
    delivery_in_state(&app, &org, reply_id, "delivered").await;
    let (status, conflict) = app
        .post(
            &format!("/v1/deliveries/{reply_id}/retry"),
            &org.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert!(
        conflict["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("replay"),
        "{conflict}"
    );
    let (status, _) = app
        .post("/v1/deliveries/msg_nope/retry", &org.key, json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.finish().await;
}

/// Svix's "recover failed messages since": what died after the time is
/// queued again (and delivered once the receiver is back), what died
/// before stays dead; the attempt count goes on.
async fn dead_deliveries_are_recovered_since_a_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, receiver, _) = two_way_org(&app, false).await;
    receiver.answer(500);
    let dead_in = |conv: &'static str| {
        let (app, org) = (&app, &org);
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let dead =
                    deliveries(app, org, &format!("?status=dead&conversation_id={conv}")).await;
                if let Some(d) = dead.first() {
                    return d["id"].as_str().unwrap().to_string();
                }
                assert!(Instant::now() < deadline, "{conv} never dead-lettered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    app.send(&org.key, customer("e1", "c1", "Before")).await;
    let before = dead_in("c1").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    app.send(&org.key, customer("e2", "c2", "After")).await;
    let after = dead_in("c2").await;

    for (body, part) in [
        (json!({"since": "not a time"}), "RFC 3339"),
        (json!({"since": "2999-01-01T00:00:00Z"}), "in the future"),
        (json!({"since": since, "state": "dead"}), "state"),
    ] {
        let (status, answer) = app
            .post("/v1/deliveries/recover", &org.key, body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(part),
            "{answer}"
        );
    }

    receiver.answer(200);
    let (status, answer) = app
        .post("/v1/deliveries/recover", &org.key, json!({"since": since}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["recovered"], 1, "{answer}");
    let one = delivery_in_state(&app, &org, &after, "delivered").await;
    // Four failed attempts, then the recovered one: counted on, not from 1.
    assert_eq!(one["attempts"], 5, "{one}");
    assert_eq!(one["attempt_log"].as_array().unwrap().len(), 5, "{one}");
    let (_, still) = app.get(&format!("/v1/deliveries/{before}"), &org.key).await;
    assert_eq!(still["state"], "dead", "{still}");
    let (_, c2) = app.get("/v1/conversations/c2", &org.key).await;
    assert!(
        c2["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["summary"]
                .as_str()
                .unwrap()
                .contains("Recovered by an admin")),
        "{c2}"
    );
    app.finish().await;
}
