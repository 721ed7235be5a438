//! Test helpers: a fresh emulator per test on 127.0.0.1:0, a typed HTTP
//! client for it, and a receiver that records what business processes POST.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::Json;
use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

pub const CLIENT_ID: &str = "casebridge";
pub const CLIENT_SECRET: &str = "s3cret-for-tests";

/// GUIDs of seeded rows the tests refer to.
pub const STATUS_NEW: &str = "ae5f2f10-f46b-1410-fd9a-0050ba5d6c38";
pub const STATUS_RESOLVED: &str = "ae7f411e-f46b-1410-009b-0050ba5d6c38";
pub const ACTIVITY_TYPE_EMAIL: &str = "e2831dec-cfc0-df11-b00f-001d60e938c6";
pub const EMPTY_GUID: &str = "00000000-0000-0000-0000-000000000000";

pub struct TestEmulator {
    pub emulator: Emulator,
    pub http: reqwest::Client,
}

pub async fn spawn_emulator() -> TestEmulator {
    let emulator = Emulator::start(EmulatorConfig {
        clients: vec![ClientConfig::new(CLIENT_ID, CLIENT_SECRET)],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts on a free port");
    TestEmulator {
        emulator,
        http: reqwest::Client::new(),
    }
}

impl TestEmulator {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.url())
    }

    /// POSTs a form to the token endpoint.
    pub async fn token_request(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("token endpoint answers")
    }

    pub async fn token_for(&self, id: &str, secret: &str) -> String {
        let r = self
            .token_request(
                "/connect/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", id),
                    ("client_secret", secret),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "token for {id}");
        let body: Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn token(&self) -> String {
        self.token_for(CLIENT_ID, CLIENT_SECRET).await
    }

    /// Sends an OData request with a fresh token of the default client.
    pub async fn odata(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let token = self.token().await;
        self.odata_as(&token, method, path, body).await
    }

    pub async fn odata_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut r = self
            .http
            .request(method, self.url(&format!("/0/odata/{path}")))
            .bearer_auth(token)
            .header("Accept", "application/json");
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("OData answers")
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.odata(reqwest::Method::GET, path, None).await;
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn create(&self, entity: &str, body: Value) -> Value {
        let r = self.odata(reqwest::Method::POST, entity, Some(body)).await;
        assert_eq!(r.status(), StatusCode::CREATED, "create {entity}");
        r.json().await.unwrap()
    }

    pub async fn count(&self, entity: &str) -> u64 {
        let r = self
            .odata(reqwest::Method::GET, &format!("{entity}/$count"), None)
            .await;
        r.text().await.unwrap().parse().unwrap()
    }

    pub async fn operator(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut r = self
            .http
            .request(method, self.url(&format!("/__emulator{path}")));
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("operator API answers")
    }

    pub async fn operator_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let r = self.operator(method, path, body).await;
        assert!(r.status().is_success(), "operator {path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// Polls the process-call log until `n` calls are there (or 5 s pass).
    pub async fn wait_for_process_calls(&self, n: usize) -> Vec<Value> {
        for _ in 0..100 {
            let calls = self
                .operator_json(reqwest::Method::GET, "/process-calls", None)
                .await;
            let calls = calls.as_array().cloned().unwrap_or_default();
            if calls.len() >= n {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} process calls within 5 s");
    }

    pub async fn new_case(&self, subject: &str) -> String {
        let case = self.create("Case", json!({"Subject": subject})).await;
        case["Id"].as_str().unwrap().to_string()
    }
}

/// A web service for business processes to call; records every JSON body.
pub struct Receiver {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<Value>>>,
}

pub async fn spawn_receiver() -> Receiver {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&bodies);
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(body);
                Json(json!({"ok": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url: format!("http://{addr}/hook"),
        bodies,
    }
}
