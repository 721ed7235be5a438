//! `TestApp::spawn`: the service, a fresh database and an emulator; small
//! typed helpers so tests read like the story they check.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use casebridge::client::ApiClient;
use casebridge::config::{Config, SecretKeySource};
use casebridge::server::Running;
use casebridge::storage::Db;
use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::Connection;

pub const CLIENT_ID: &str = "casebridge";

/// Runs a scenario once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Everything the service logged in this test binary.
pub fn logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=warn,hyper_util=warn,h2=warn,rustls=warn,sqlx=warn")
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The PostgreSQL server tests create their databases on.
fn postgres_admin_url() -> String {
    std::env::var("CASEBRIDGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    /// The service's API, through the client `casebridge demo` uses too.
    pub api: ApiClient,
    pub emulator: Emulator,
    pub client_secret: String,
    pub admin_token: String,
    pub backend: Backend,
    pub db: Db,
    config: Config,
    /// The service; a mutex so that [`TestApp::stop`] works through `&self`.
    running: tokio::sync::Mutex<Option<Running>>,
    sqlite_dir: Option<tempfile::TempDir>,
    postgres_db: Option<String>,
}

/// An org and its first admin key.
pub struct Org {
    pub id: casebridge::domain::OrgId,
    pub key: String,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with the service's configuration changed by
    /// `tweak` first (an AI provider, say).
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        log_buffer();
        let client_secret = format!("sekret-{}", uuid::Uuid::new_v4().simple());
        let emulator = Emulator::start(EmulatorConfig {
            clients: vec![ClientConfig::new(CLIENT_ID, client_secret.clone())],
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        let (database_url, sqlite_dir, postgres_db) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("casebridge.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let (url, name) = create_postgres_database().await;
                (url, None, Some(name))
            }
        };
        let admin_token = format!("operator-{}", uuid::Uuid::new_v4().simple());
        let key = base64_key();
        let mut config = Config::loopback(
            database_url,
            SecretKeySource::Inline(SecretString::from(key)),
            SecretString::from(admin_token.clone()),
        );
        config.workers = 4;
        config.log = "debug".into();
        // Quick retries, so outage tests finish in seconds.
        config.sync_policy = casebridge::sync::settle::Policy {
            base_delay_ms: 100,
            max_delay_ms: 1_000,
            ..Default::default()
        };
        // Deliveries retry within a second, so receiver-down tests are quick.
        config.delivery.delays = vec![
            Duration::from_millis(200),
            Duration::from_millis(400),
            Duration::from_millis(800),
        ];
        tweak(&mut config);
        let running = casebridge::server::start(config.clone())
            .await
            .expect("service starts");
        TestApp {
            url: format!("http://{}", running.addr),
            http: reqwest::Client::new(),
            api: ApiClient::new(format!("http://{}", running.addr)),
            emulator,
            client_secret,
            admin_token,
            backend,
            db: running.db.clone(),
            config,
            running: tokio::sync::Mutex::new(Some(running)),
            sqlite_dir,
            postgres_db,
        }
    }

    /// Stops the service and starts it again on the same database, secret
    /// key and emulator, with its configuration changed by `tweak` (as an
    /// operator's restart with new settings).
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        if let Some(r) = self.running.get_mut().take() {
            r.shutdown().await.unwrap();
        }
        tweak(&mut self.config);
        let running = casebridge::server::start(self.config.clone())
            .await
            .expect("service starts again");
        self.url = format!("http://{}", running.addr);
        self.api = ApiClient::new(self.url.clone());
        self.db = running.db.clone();
        self.running = tokio::sync::Mutex::new(Some(running));
        self
    }

    /// The org's connection once its status is `status` (within 20 s; the
    /// last one seen otherwise, for the caller's assertion to show).
    pub async fn connection_when(&self, key: &str, status: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, c) = self.get("/v1/creatio/connection", key).await;
            if c["status"] == status || std::time::Instant::now() > deadline {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let answer = self
            .api
            .call(method, path, key, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (answer.status, answer.body)
    }

    /// A request with a JSON body and the caller's own `x-request-id`.
    pub async fn call_with_request_id(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Value,
        request_id: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key)
            .header("x-request-id", request_id)
            .json(&body)
            .send()
            .await
            .expect("service answers");
        let status = resp.status();
        assert_eq!(
            resp.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            Some(request_id),
            "the answer carries the caller's request id"
        );
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    /// Sends raw bytes as a JSON body.
    pub async fn post_raw(&self, path: &str, key: &str, body: &'static str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    pub async fn create_org(&self, name: &str) -> Org {
        let body = self
            .api
            .create_org(&self.admin_token, name)
            .await
            .and_then(|a| a.expect(StatusCode::CREATED))
            .unwrap_or_else(|e| panic!("{e}"));
        Org {
            id: body["org"]["id"].as_str().unwrap().into(),
            key: body["api_key"]["key"].as_str().unwrap().into(),
        }
    }

    /// The Test & Save body for the emulator's OAuth app.
    pub fn connection_body(&self) -> Value {
        json!({
            "instance_url": self.emulator.url(),
            "client_id": CLIENT_ID,
            "client_secret": self.client_secret,
        })
    }

    /// Test & Save that must pass.
    pub async fn connect(&self, key: &str) -> Value {
        self.api
            .test_and_save(key, &self.connection_body())
            .await
            .and_then(|a| a.expect(StatusCode::OK))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends events with `key`; they must be accepted.
    pub async fn send(&self, key: &str, events: Value) -> Value {
        self.api
            .send_events(key, &events)
            .await
            .and_then(|a| a.expect(StatusCode::ACCEPTED))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until the conversation has no job left to run, and returns it.
    pub async fn settled(&self, key: &str, conversation_id: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (status, body) = self
                .get(&format!("/v1/conversations/{conversation_id}"), key)
                .await;
            let busy = status != StatusCode::OK
                || body["jobs"].get("pending").is_some()
                || body["jobs"].get("running").is_some();
            if !busy {
                // The conversation row and its job counts are read one after
                // the other: read once more, so the state is from after the
                // last job finished.
                return self
                    .get(&format!("/v1/conversations/{conversation_id}"), key)
                    .await
                    .1;
            }
            if std::time::Instant::now() > deadline {
                let (_, connection) = self.get("/v1/creatio/connection", key).await;
                let logs = logs();
                let tail: Vec<&str> = logs.lines().rev().take(40).collect();
                panic!(
                    "conversation {conversation_id} never settled: {body}\nconnection: {connection}\nlast log lines (newest first):\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Calls the emulator's operator API (`/__emulator/<path>`), which must
    /// succeed; its JSON answer, or null.
    pub async fn emulator_op(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/__emulator/{path}", self.emulator.url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creatio answers 503 to everything for `secs` seconds.
    pub async fn creatio_outage(&self, secs: u64) {
        self.emulator_op(
            Method::POST,
            "faults",
            Some(json!({"kind": "outage", "duration_secs": secs})),
        )
        .await;
    }

    /// The `/metrics` exposition text.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Changes the emulator's OAuth client through its operator API.
    pub async fn change_creatio_client(&self, change: Value) {
        self.emulator_op(Method::PATCH, &format!("clients/{CLIENT_ID}"), Some(change))
            .await;
    }

    /// A Creatio client signed in as the integration, to look at Creatio.
    pub fn creatio(&self) -> creatio::Client {
        let http = reqwest::Client::new();
        let instance = creatio::InstanceUrl::parse(self.emulator.url()).unwrap();
        let credentials = creatio::Credentials::new(
            self.emulator.token_url(),
            CLIENT_ID,
            self.client_secret.clone(),
        );
        creatio::Client::new(
            http.clone(),
            instance,
            creatio::TokenSource::new(http, credentials),
        )
    }

    /// Everything the database holds, as text (to look for secrets in clear).
    pub async fn database_dump(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let dir = self.sqlite_dir.as_ref().unwrap().path();
                let mut all = Vec::new();
                for entry in std::fs::read_dir(dir).unwrap() {
                    all.extend(std::fs::read(entry.unwrap().path()).unwrap());
                }
                all
            }
            Backend::Postgres => {
                let mut all = Vec::new();
                for table in [
                    "orgs",
                    "api_keys",
                    "creatio_connections",
                    "webhook_tokens",
                    "instance_settings",
                ] {
                    let rows = sqlx::query(&format!(
                        "SELECT CAST(row_to_json(t) AS TEXT) AS j FROM {table} t"
                    ))
                    .fetch_all(self.db.pool())
                    .await
                    .unwrap();
                    for r in rows {
                        let j: String = sqlx::Row::get(&r, "j");
                        all.extend(j.into_bytes());
                    }
                }
                all
            }
        }
    }

    /// The whole PostgreSQL database as `pg_dump` writes it (schema and
    /// every row), to look for what must not be there.
    pub async fn pg_dump(&self) -> Vec<u8> {
        let url = self.config.database_url.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("pg_dump")
                .arg("--no-owner")
                .arg(&url)
                .output()
        })
        .await
        .unwrap()
        .expect("pg_dump (package postgresql-client) must be installed for these tests");
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The configuration the service runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn database_url(&self) -> &str {
        &self.config.database_url
    }

    /// Stops the service, as a crash or an operator would: its address
    /// answers nothing from now on (the database and emulator stay).
    #[allow(dead_code)] // for the browser tests' server-down state
    pub async fn stop(&self) {
        if let Some(r) = self.running.lock().await.take() {
            r.shutdown().await.unwrap();
        }
    }

    pub async fn finish(mut self) {
        if let Some(r) = self.running.get_mut().take() {
            r.shutdown().await.unwrap();
        }
        if let Some(name) = self.postgres_db.take() {
            drop_postgres_database(&name).await;
        }
    }
}

/// A new, empty PostgreSQL database: its URL and name.
pub async fn create_postgres_database() -> (String, String) {
    let name = format!("cbtest_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (user postgres) must be running for these tests");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = postgres_admin_url();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    (url, name)
}

pub async fn drop_postgres_database(name: &str) {
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

fn base64_key() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(uuid::Uuid::new_v4().as_bytes())
        .copied()
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether `haystack` contains `needle` anywhere.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
