//! The hardening of issue 19, as an attacker or a careless client meets it:
//! redirects are never followed, slow and idle connections are closed,
//! NUL and trailing data are refused with the field named, a webhook loop
//! costs a handful of reads, framework errors keep the JSON shape.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    redirects_from_the_instance_are_never_followed,
    nul_is_refused_in_every_text_field_with_the_field_named,
    trailing_data_after_the_json_value_is_refused,
    a_webhook_loop_costs_a_handful_of_reads_and_lines,
    a_saved_url_the_guard_now_refuses_pauses_the_org,
);

/// A loopback server that counts what reaches it and answers every request
/// the same way.
struct Target {
    url: String,
    hits: Arc<AtomicUsize>,
}

impl Target {
    async fn start(status: u16, location: Option<String>, body: &'static str) -> Target {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            let location = location.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut headers = HeaderMap::new();
                headers.insert("content-type", HeaderValue::from_static("application/json"));
                if let Some(l) = location {
                    headers.insert("location", HeaderValue::from_str(&l).unwrap());
                }
                (StatusCode::from_u16(status).unwrap(), headers, body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Target { url, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

const INTERNAL_TEXT: &str = "INTERNAL-ONLY-TEXT";

/// An internal service (a loopback port no tenant URL names) and a
/// redirector pointing at `path` on it.
async fn internal_and_redirector(path: &str) -> (Target, Target) {
    let internal = Target::start(
        200,
        None,
        r#"{"error":"internal_error","error_description":"INTERNAL-ONLY-TEXT","access_token":"x"}"#,
    )
    .await;
    let redirector = Target::start(
        307,
        Some(format!("{}{path}", internal.url)),
        r#"{"error":"redirect_body","error_description":"REDIRECT-BODY-TEXT"}"#,
    )
    .await;
    (internal, redirector)
}

async fn redirects_from_the_instance_are_never_followed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;

    // The token request (it carries the client secret) is redirected.
    let (internal, redirector) = internal_and_redirector("/0/connect/token").await;
    let mut body = app.connection_body();
    body["instance_url"] = json!(redirector.url);
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(redirector.hits(), 1, "the redirect was asked once");
    assert_eq!(internal.hits(), 0, "no request followed the redirect");
    let text = answer.to_string();
    assert!(text.contains("redirect"), "{text}");
    assert!(text.contains("final address"), "{text}");
    assert!(!text.contains(INTERNAL_TEXT), "{text}");
    assert!(!text.contains("REDIRECT-BODY-TEXT"), "{text}");

    // OData requests (they carry a bearer token) are redirected: the token
    // comes from the real token endpoint.
    let (internal, redirector) = internal_and_redirector("/0/odata/CaseStatus").await;
    let mut body = app.connection_body();
    body["instance_url"] = json!(redirector.url);
    body["identity_service_url"] = json!(app.emulator.token_url());
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(redirector.hits() >= 1);
    assert_eq!(internal.hits(), 0, "no request followed the redirect");
    let odata = answer["report"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "odata")
        .unwrap()
        .clone();
    assert_eq!(odata["status"], "fail", "{answer}");
    assert!(
        odata["hint"]
            .as_str()
            .unwrap()
            .contains("final address as the Instance URL"),
        "{odata}"
    );
    assert!(!answer.to_string().contains(INTERNAL_TEXT));
    let (status, _) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");
    app.finish().await;
}

#[tokio::test]
async fn redirects_from_the_ai_provider_are_never_followed() {
    let (internal, redirector) = internal_and_redirector("/v1/chat/completions").await;
    let base = format!("{}/v1", redirector.url);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.ai = casebridge::config::AiSettings {
            provider: "openai".into(),
            base_url: Some(base),
            model: Some("fake-model".into()),
            api_key: Some("sk-test".to_string().into()),
            timeout: Duration::from_secs(5),
            attempts: 2,
        };
    })
    .await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let fields = json!([{"field_name": "UsrOrderNumber", "title": "Order number", "type": "text",
                         "description": "The customer's order number, like ORD-123456"}]);
    let (status, preview) = app
        .post(
            "/v1/creatio/ai-fields/preview",
            &org.key,
            json!({"transcript": "Customer: where is ORD-100200?", "fields": fields}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(redirector.hits(), 1, "a redirect is final, not retried");
    assert_eq!(internal.hits(), 0, "no request followed the redirect");
    let reason = preview["values"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("redirect"), "{preview}");
    assert!(reason.contains("CASEBRIDGE_AI_BASE_URL"), "{preview}");
    assert!(!preview.to_string().contains(INTERNAL_TEXT));
    app.finish().await;
}

/// Reads until the server closes the connection; what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(String::from_utf8_lossy(&all).into_owned())
}

fn short_limits(c: &mut casebridge::config::Config) {
    c.http.header_timeout = Duration::from_secs(1);
    c.http.body_timeout = Duration::from_secs(1);
    c.http.keepalive_timeout = Duration::from_secs(1);
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected_within_the_limits() {
    let app = TestApp::spawn_with(Backend::Sqlite, short_limits).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let addr = app.url.trim_start_matches("http://").to_string();
    // Well past the 1 s limits, far below "never".
    let within = Duration::from_secs(10);

    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut half_header = TcpStream::connect(&addr).await.unwrap();
    half_header
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut half_body = TcpStream::connect(&addr).await.unwrap();
    half_body
        .write_all(
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"id\":",
                org.key
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut kept_alive = TcpStream::connect(&addr).await.unwrap();
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    assert_eq!(
        read_until_closed(&mut silent, within).await.as_deref(),
        Some(""),
        "a connection that sends nothing is closed"
    );
    assert!(
        read_until_closed(&mut half_header, within).await.is_some(),
        "half a header is closed"
    );
    let answer = read_until_closed(&mut half_body, within)
        .await
        .expect("half a body is closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    let answer = read_until_closed(&mut kept_alive, within)
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Nothing of the half-sent events was stored.
    let (status, _) = app.get("/v1/conversations/c1", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.finish().await;
}

#[tokio::test]
async fn healthz_answers_while_hostile_clients_hold_every_connection() {
    // Timeouts long enough that the hostile connections stay for the whole
    // test: only the cap's eviction can make room.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.http.header_timeout = Duration::from_secs(120);
        c.http.max_connections = 16;
    })
    .await;
    let addr = app.url.trim_start_matches("http://").to_string();
    let mut hostile = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        hostile.push(s);
    }
    for _ in 0..5 {
        let health = tokio::time::timeout(
            Duration::from_secs(10),
            reqwest::Client::new()
                .get(format!("{}/healthz", app.url))
                .send(),
        )
        .await
        .expect("/healthz answers with every connection held")
        .expect("/healthz answers");
        assert_eq!(health.status(), StatusCode::OK);
    }
    drop(hostile);
    app.finish().await;
}

fn event(id: &str, conv: &str, text: &str) -> Value {
    json!({"id": id, "type": "message.created", "occurred_at": "2026-11-22T10:00:00Z",
           "conversation": {"id": conv, "channel": "web",
                            "contact": {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+16174402498"}},
           "message": {"id": format!("m-{id}"), "role": "customer", "text": text}})
}

/// The refusal of a NUL: 400, the field named, nothing stored.
fn assert_nul_refused(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    let text = body.to_string();
    assert!(text.contains("NUL"), "{field}: {text}");
    assert!(text.contains(field), "{field} not named: {text}");
}

async fn nul_is_refused_in_every_text_field_with_the_field_named(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let connected = app.connect(&org.key).await;

    for (pointer, field) in [
        ("/message/text", "event.message.text"),
        ("/message/id", "event.message.id"),
        ("/id", "event.id"),
        ("/conversation/id", "event.conversation.id"),
        (
            "/conversation/contact/name",
            "event.conversation.contact.name",
        ),
        (
            "/conversation/contact/email",
            "event.conversation.contact.email",
        ),
        (
            "/conversation/contact/phone",
            "event.conversation.contact.phone",
        ),
    ] {
        let mut e = event("e1", "c1", "hello");
        *e.pointer_mut(pointer).unwrap() = json!("a\u{0}b");
        let (status, body) = app.post("/v1/events", &org.key, e).await;
        assert_nul_refused(status, &body, field);
    }
    // A key inside an object is text too.
    let mut e = event("e1", "c1", "hello");
    e["conversation"]["metadata"] = json!({"x\u{0}y": 1});
    let (status, body) = app.post("/v1/events", &org.key, e).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // One bad event among 1,000: that event's field is named, none stored.
    let batch: Vec<Value> = (0..1000)
        .map(|i| {
            let text = if i == 417 { "bad\u{0}text" } else { "fine" };
            event(&format!("e{i}"), &format!("c{}", i % 50), text)
        })
        .collect();
    let (status, body) = app.post("/v1/events", &org.key, json!(batch)).await;
    assert_nul_refused(status, &body, "events[417].message.text");
    for conv in ["c0", "c17"] {
        let (status, _) = app
            .get(&format!("/v1/conversations/{conv}"), &org.key)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");
    }

    // Names of orgs and keys, settings.
    let (status, body) = app
        .post(
            "/v1/orgs",
            &app.admin_token.clone(),
            json!({"name": "Ac\u{0}me"}),
        )
        .await;
    assert_nul_refused(status, &body, "name");
    let (status, body) = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({"name": "k\u{0}", "role": "ingest"}),
        )
        .await;
    assert_nul_refused(status, &body, "name");
    let (status, body) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"client_id": "x\u{0}"}),
        )
        .await;
    assert_nul_refused(status, &body, "client_id");

    // Paths and queries.
    for path in [
        "/v1/conversations/c%001",
        "/v1/creatio/lookups/contacts?search=a%00b",
        "/v1/deliveries?state=dead%00",
    ] {
        let (status, body) = app.get(path, &org.key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("%00"),
            "{body}"
        );
    }
    let webhook = connected["webhook_url"].as_str().unwrap();
    let resp = app
        .http
        .post(format!("{webhook}%00"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = app
        .http
        .post(webhook)
        .json(&json!({"event_type": "new\u{0}_activity", "caseId": uuid::Uuid::new_v4()}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_nul_refused(status, &body, "event_type");

    // The same request without the NUL goes through: the refusal was about
    // the NUL alone.
    app.send(&org.key, event("e1", "c1", "hello")).await;
    app.settled(&org.key, "c1").await;
    app.finish().await;
}

async fn trailing_data_after_the_json_value_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let one = event("e1", "c1", "hello").to_string();
    let two = format!("{one}{}", event("e2", "c1", "again"));
    let garbage = format!("{one}garbage");
    for body in [two, garbage, format!("{one} ,")] {
        let body: &'static str = Box::leak(body.into_boxed_str());
        let (status, answer) = app.post_raw("/v1/events", &org.key, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("more after"),
            "{answer}"
        );
    }
    let (status, answer) = app
        .post_raw(
            "/v1/api-keys",
            &org.key,
            r#"{"role": "ingest"} {"role": "admin"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = app.get("/v1/conversations/c1", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");
    // Whitespace after the value is fine.
    let spaced: &'static str = Box::leak(format!("{one} \n").into_boxed_str());
    let (status, answer) = app.post_raw("/v1/events", &org.key, spaced).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    app.finish().await;
}

async fn a_webhook_loop_costs_a_handful_of_reads_and_lines(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let connected = app.connect(&org.key).await;
    let webhook = connected["webhook_url"].as_str().unwrap().to_string();
    app.send(&org.key, event("e1", "c1", "My printer is on fire"))
        .await;
    let conv = app.settled(&org.key, "c1").await;
    let case_id = conv["case"]["id"].as_str().unwrap().to_string();
    let lines_before = conv["timeline"].as_array().unwrap().len();
    let reads_before = app.emulator_op(Method::GET, "stats", None).await["odata_requests"]
        .as_u64()
        .unwrap();

    // 100 calls for the case in 2 s, as a process calling in a loop does.
    let mut answered = 0;
    for _ in 0..100 {
        let resp = app
            .http
            .post(&webhook)
            .json(&json!({"event_type": "new_activity", "caseId": case_id}))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status() == StatusCode::OK || resp.status() == StatusCode::TOO_MANY_REQUESTS,
            "{}",
            resp.status()
        );
        answered += usize::from(resp.status() == StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        answered >= 50,
        "most calls are within the rate limit: {answered}"
    );
    // Let the last follow-up run.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let conv = app.settled(&org.key, "c1").await;
    let reads = app.emulator_op(Method::GET, "stats", None).await["odata_requests"]
        .as_u64()
        .unwrap()
        - reads_before;
    let timeline = conv["timeline"].as_array().unwrap();
    let added = timeline.len() - lines_before;
    assert!(reads <= 12, "{answered} calls cost {reads} Creatio reads");
    assert!(
        added <= 8,
        "{answered} calls added {added} timeline lines: {timeline:#?}"
    );
    let counted = timeline
        .iter()
        .filter(|t| t["kind"] == "webhook")
        .map(|t| t["attempts"].as_i64().unwrap())
        .sum::<i64>();
    assert_eq!(
        counted as usize, answered,
        "every call is counted: {timeline:#?}"
    );
    println!("{answered} webhook calls in 2 s: {reads} Creatio reads, {added} timeline lines:");
    for t in &timeline[lines_before..] {
        println!("  {} {}", t["kind"], t["summary"]);
    }

    // The timeline pages.
    let (status, page) = app
        .get("/v1/conversations/c1?timeline_limit=2", &org.key)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["timeline"].as_array().unwrap().len(), 2);
    let before = page["timeline_older"]["before"].as_str().unwrap();
    let (status, older) = app
        .get(
            &format!("/v1/conversations/c1?timeline_limit=2&timeline_before={before}"),
            &org.key,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{older}");
    assert!(older["timeline"][1]["id"].as_str().unwrap() < before);
    let (status, bad) = app
        .get("/v1/conversations/c1?timeline_limit=0", &org.key)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    app.finish().await;
}

async fn a_saved_url_the_guard_now_refuses_pauses_the_org(backend: Backend) {
    // Saved while loopback was allowed; the operator then narrows the
    // allow list and restarts.
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let narrowed = app
        .restart_with(|c| c.allow_private_targets = Vec::new())
        .await;
    narrowed.send(&org.key, event("e1", "c1", "hello")).await;
    let connection = narrowed.connection_when(&org.key, "needs_attention").await;
    assert_eq!(connection["status"], "needs_attention", "{connection}");
    let detail = connection["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("CASEBRIDGE_ALLOW_PRIVATE_TARGETS"),
        "{detail}"
    );
    let (_, conv) = narrowed.get("/v1/conversations/c1", &org.key).await;
    let last_error = conv["open_jobs"][0]["last_error"].as_str().unwrap_or("");
    assert!(
        !last_error.contains("FieldError") && !last_error.contains('{'),
        "a sentence, not Debug text: {last_error}"
    );
    narrowed.finish().await;
}

/// Sends `head` and then `body_len` bytes of body while reading the
/// answer (the server may answer and close before the body is all sent).
async fn raw(app: &TestApp, head: String, body_len: usize) -> String {
    let s = TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut reader, mut writer) = s.into_split();
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..body_len.div_ceil(chunk.len()) {
            writer.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut all)).await;
    writing.abort();
    assert!(read.is_ok(), "answered and closed");
    String::from_utf8_lossy(&all).into_owned()
}

/// The JSON body of a raw HTTP/1.1 answer.
fn json_of(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer}"))
}

#[tokio::test]
async fn framework_errors_answer_in_the_json_shape() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    // Over the 16 MB limit of POST /v1/events, and the 2 MB of a settings
    // endpoint.
    for (path, hint) in [("/v1/events", "16 MB"), ("/v1/api-keys", "2 MB")] {
        let answer = raw(
            &app,
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                org.key,
                17 * 1024 * 1024
            ),
            17 * 1024 * 1024,
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        let body = json_of(&answer);
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
        assert!(
            body["error"]["hint"].as_str().unwrap().contains(hint),
            "{body}"
        );
    }
    // Not JSON.
    let resp = app
        .http
        .post(format!("{}/v1/api-keys", app.url))
        .bearer_auth(&org.key)
        .header("content-type", "text/plain")
        .body("role=ingest")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = resp.json().await.expect("415 in JSON");
    assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
    // A method not served, a path not served.
    for (method, path, status) in [
        (Method::PUT, "/healthz", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/v2/nothing", StatusCode::NOT_FOUND),
    ] {
        let resp = app
            .http
            .request(method, format!("{}{path}", app.url))
            .bearer_auth(&org.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let body: Value = resp.json().await.expect("JSON");
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body["error"]["hint"].is_string(), "{body}");
    }
    app.finish().await;
}

#[tokio::test]
async fn the_delivery_secret_is_shown_by_put_and_rotate_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let org = app.create_org("Acme").await;
    let receiver = Target::start(204, None, "").await;
    let (status, saved) = app
        .put("/v1/delivery", &org.key, json!({"url": receiver.url}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    let secret = saved["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 30, "{saved}");
    let (_, read) = app.get("/v1/delivery", &org.key).await;
    let body = read.to_string();
    assert!(!body.contains(&secret[6..]), "GET shows the secret: {body}");
    assert!(
        !body.contains(&secret[6..20]),
        "GET shows part of the secret: {body}"
    );
    app.finish().await;
}

#[tokio::test]
async fn metrics_can_move_to_their_own_address() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.metrics_listen = Some(([127, 0, 0, 1], port).into());
    })
    .await;
    let resp = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("CASEBRIDGE_METRICS_LISTEN"));
    let text = app
        .http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("casebridge_jobs"), "{text}");
    app.finish().await;
}
