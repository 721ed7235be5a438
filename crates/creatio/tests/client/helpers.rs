//! Starting an emulator and a client for it, and small operator calls.

use creatio::{http_client_builder, Client, Credentials, InstanceUrl, TokenSource};
use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig, StatsSnapshot};
use serde_json::Value;
use std::time::Duration;

pub const CLIENT_ID: &str = "casebridge-test";
pub const CLIENT_SECRET: &str = "s3cret-never-printed";

/// An emulator with one OAuth client and a `creatio::Client` signed in as it.
pub struct Env {
    pub emulator: Emulator,
    pub http: reqwest::Client,
    pub client: Client,
}

impl Env {
    pub async fn start() -> Env {
        Env::with_lifetime(Duration::from_secs(3600)).await
    }

    pub async fn with_lifetime(token_lifetime: Duration) -> Env {
        let emulator = Emulator::start(EmulatorConfig {
            clients: vec![ClientConfig::new(CLIENT_ID, CLIENT_SECRET)],
            token_lifetime,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        let http = http_client_builder().build().expect("http client");
        let client = client_for(&http, &emulator, CLIENT_ID, CLIENT_SECRET);
        Env {
            emulator,
            http,
            client,
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.emulator.stats()
    }

    /// Entity operations of one kind the emulator has seen.
    pub fn ops(&self, entity: &str, method: &str) -> u64 {
        self.stats()
            .by_entity
            .get(entity)
            .and_then(|m| m.get(method))
            .copied()
            .unwrap_or(0)
    }

    /// Calls the emulator's operator API and returns its JSON answer.
    pub async fn operator(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}/__emulator{path}", self.emulator.url()))
            .json(&body)
            .send()
            .await
            .expect("operator API reachable");
        assert!(
            response.status().is_success(),
            "operator call {path} failed: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    pub async fn shutdown(self) {
        self.emulator.shutdown().await;
    }
}

/// A client for `emulator` signed in with the given credentials.
pub fn client_for(http: &reqwest::Client, emulator: &Emulator, id: &str, secret: &str) -> Client {
    let instance = InstanceUrl::parse(emulator.url()).expect("emulator URL is valid");
    let credentials = Credentials::new(
        instance.token_url(None).expect("token URL"),
        id,
        secret.to_string(),
    );
    Client::new(
        http.clone(),
        instance,
        TokenSource::new(http.clone(), credentials),
    )
}

/// A name no other test uses, for records this test looks up by name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix} {}", uuid::Uuid::new_v4().simple())
}
