//! A client of casebridge's own HTTP API, as an operator, an org admin and
//! a chat platform call it. `casebridge demo` and the integration tests
//! both use it, so the requests they send are built in one place, each
//! operation by its name, and the answers are read the same way.
//!
//! Answers are JSON values ([`Answer::body`]; [`Answer::expect_as`] reads
//! one as a type of the caller's). The API's answer structs serialize only:
//! several carry `&'static str` constants, and typed answers for
//! integrators come from the OpenAPI document's generated clients.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// What went wrong talking to the service.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("calling {path}: {error}")]
    Transport { path: String, error: reqwest::Error },
    #[error("{path} answered something that is not JSON: {text}")]
    NotJson { path: String, text: String },
    #[error("{path} answered {status}, not {want}: {body}")]
    Unexpected {
        path: String,
        status: StatusCode,
        want: StatusCode,
        body: Value,
    },
    #[error("{path} answered a body of another shape: {error}")]
    Shape {
        path: String,
        error: serde_json::Error,
    },
}

/// An answer: its status and JSON body (`null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub path: String,
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The body, if the status is `want`.
    pub fn expect(self, want: StatusCode) -> Result<Value, ClientError> {
        if self.status == want {
            Ok(self.body)
        } else {
            Err(ClientError::Unexpected {
                path: self.path,
                status: self.status,
                want,
                body: self.body,
            })
        }
    }

    /// The body as `T`, if the status is `want`.
    pub fn expect_as<T: DeserializeOwned>(self, want: StatusCode) -> Result<T, ClientError> {
        let path = self.path.clone();
        serde_json::from_value(self.expect(want)?)
            .map_err(|error| ClientError::Shape { path, error })
    }
}

/// The service at one base URL.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
}

impl ApiClient {
    /// `base` without a trailing slash: `http://127.0.0.1:8080`.
    pub fn new(base: impl Into<String>) -> ApiClient {
        ApiClient {
            http: reqwest::Client::new(),
            base: base.into(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Any request: `key` is an API key or the operator token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |error| ClientError::Transport {
            path: path.to_string(),
            error,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let text = resp.text().await.map_err(transport)?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| ClientError::NotJson {
                path: path.to_string(),
                text,
            })?
        };
        Ok(Answer {
            path: path.to_string(),
            status,
            body,
        })
    }

    pub async fn get(&self, path: &str, key: &str) -> Result<Answer, ClientError> {
        self.call(Method::GET, path, Some(key), None).await
    }

    /// `POST /v1/orgs` with the operator token.
    pub async fn create_org(
        &self,
        operator_token: &str,
        name: &str,
    ) -> Result<Answer, ClientError> {
        let body = json!({ "name": name });
        self.call(Method::POST, "/v1/orgs", Some(operator_token), Some(&body))
            .await
    }

    /// `POST /v1/creatio/connection`: Test & Save.
    pub async fn test_and_save(&self, key: &str, settings: &Value) -> Result<Answer, ClientError> {
        self.call(
            Method::POST,
            "/v1/creatio/connection",
            Some(key),
            Some(settings),
        )
        .await
    }

    /// `PATCH /v1/creatio/connection`.
    pub async fn change_connection(
        &self,
        key: &str,
        change: &Value,
    ) -> Result<Answer, ClientError> {
        self.call(
            Method::PATCH,
            "/v1/creatio/connection",
            Some(key),
            Some(change),
        )
        .await
    }

    /// `GET /v1/creatio/lookups/{kind}`, contacts by part of their name.
    pub async fn lookup(
        &self,
        key: &str,
        kind: &str,
        search: Option<&str>,
    ) -> Result<Answer, ClientError> {
        let path = match search {
            Some(s) => format!("/v1/creatio/lookups/{kind}?search={s}"),
            None => format!("/v1/creatio/lookups/{kind}"),
        };
        self.get(&path, key).await
    }

    /// `PUT /v1/delivery`.
    pub async fn put_delivery(&self, key: &str, url: &str) -> Result<Answer, ClientError> {
        let body = json!({ "url": url });
        self.call(Method::PUT, "/v1/delivery", Some(key), Some(&body))
            .await
    }

    /// `PUT /v1/creatio/ai-fields`.
    pub async fn put_ai_fields(&self, key: &str, fields: &Value) -> Result<Answer, ClientError> {
        let body = json!({ "fields": fields });
        self.call(Method::PUT, "/v1/creatio/ai-fields", Some(key), Some(&body))
            .await
    }

    /// `POST /v1/events`: one event or an array of them.
    pub async fn send_events(&self, key: &str, events: &Value) -> Result<Answer, ClientError> {
        self.call(Method::POST, "/v1/events", Some(key), Some(events))
            .await
    }

    /// `GET /v1/conversations/{id}`.
    pub async fn conversation(&self, key: &str, id: &str) -> Result<Answer, ClientError> {
        self.get(&format!("/v1/conversations/{id}"), key).await
    }
}
