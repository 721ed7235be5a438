//! The OpenAI-compatible provider: one chat-completions request per
//! evaluation (all fields at once), asking for JSON that matches a schema
//! built from the mappings (`response_format: json_schema`, strict).
//!
//! Works with OpenAI, Azure OpenAI (`api-key` header, the deployment URL
//! with its `api-version` query as the base URL), vLLM, Ollama and the
//! llama.cpp server. A server that refuses `json_schema` is asked again
//! with `json_object`. Timeouts, 429 and 5xx are retried with backoff
//! (`Retry-After` honoured); whatever comes back is validated before use:
//! not JSON, a field missing, an option not in the list — each leaves its
//! field empty with the reason, never fails the hand-off.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, LOCATION, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use super::{Answer, FieldType, Mapping, Transcript, MAX_TRANSCRIPT_CHARS};

/// The longest `Retry-After` waited for; longer means "not now".
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

const SYSTEM_PROMPT: &str =
    "You fill in fields of a customer-support case in Creatio CRM from the \
conversation transcript, following each field's description. For a dropdown field answer exactly \
one of its listed options, spelled as listed, or null when the transcript does not let you decide. \
For a text field answer a short value taken from the transcript, or null when it is not there. \
Never invent values. Answer with one JSON object: one key per field name, each \
{\"value\": string or null, \"reason\": a short explanation}.";

pub struct Client {
    http: reqwest::Client,
    url: String,
    model: String,
    headers: HeaderMap,
    attempts: u32,
}

/// Settings for [`Client::new`], from `CASEBRIDGE_AI_*`.
pub struct Settings<'a> {
    pub base_url: &'a str,
    pub model: &'a str,
    pub api_key: Option<&'a SecretString>,
    pub timeout: Duration,
    pub attempts: u32,
}

impl Client {
    pub fn new(s: Settings<'_>) -> Result<Client, String> {
        let parsed = reqwest::Url::parse(s.base_url)
            .map_err(|e| format!("{:?} is not a URL: {e}", s.base_url))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{:?} must be an http(s) URL", s.base_url));
        }
        let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
        let azure =
            host.ends_with(".openai.azure.com") || host.ends_with(".cognitiveservices.azure.com");
        let mut url = parsed.clone();
        let path = parsed.path().trim_end_matches('/');
        if !path.ends_with("/chat/completions") {
            url.set_path(&format!("{path}/chat/completions"));
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = s.api_key {
            // Azure OpenAI takes its key in `api-key`; everyone else a bearer.
            let (name, value) = if azure {
                (
                    HeaderName::from_static("api-key"),
                    key.expose_secret().to_string(),
                )
            } else {
                (AUTHORIZATION, format!("Bearer {}", key.expose_secret()))
            };
            let mut v = HeaderValue::from_str(&value)
                .map_err(|_| "the API key has characters a header cannot carry".to_string())?;
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        // Redirects are not followed: the API key would go wherever the
        // answer points (an internal address included).
        let http = reqwest::Client::builder()
            .user_agent(concat!("casebridge/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(s.timeout)
            .connect_timeout(s.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("could not build the HTTP client: {e}"))?;
        Ok(Client {
            http,
            url: url.to_string(),
            model: s.model.to_string(),
            headers,
            attempts: s.attempts.max(1),
        })
    }

    /// Every mapping's answer, in order.
    pub async fn decide(&self, mappings: &[Mapping], transcript: &Transcript) -> Vec<Answer> {
        if mappings.is_empty() {
            return Vec::new();
        }
        match self.ask(mappings, transcript).await {
            Ok(object) => mappings.iter().map(|m| read_field(&object, m)).collect(),
            Err(why) => {
                tracing::warn!(url = %self.url, error = %why, "The AI provider gave no usable answer; AI fields left empty.");
                mappings.iter().map(|_| Answer::none(why.clone())).collect()
            }
        }
    }

    /// The answer's JSON object, or why there is none.
    async fn ask(
        &self,
        mappings: &[Mapping],
        transcript: &Transcript,
    ) -> Result<Map<String, Value>, String> {
        let mut body = json!({
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_prompt(mappings, transcript)},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "case_fields", "strict": true, "schema": schema(mappings)},
            },
        });
        let mut downgraded = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let failure = match self.send(&body, downgraded).await {
                Reply::Object(object) => {
                    record(started, "ok");
                    return Ok(object);
                }
                Reply::NoStructuredOutputs => {
                    // An older server without structured outputs: plain
                    // JSON mode, the schema is in the prompt.
                    downgraded = true;
                    body["response_format"] = json!({"type": "json_object"});
                    attempt -= 1;
                    record(started, "downgraded");
                    continue;
                }
                Reply::Failed(failure) => failure,
            };
            match failure {
                Failure::Final(why) => {
                    record(started, "refused");
                    return Err(format!("the AI provider {why}"));
                }
                Failure::Retry(why, after) => {
                    record(started, "failed");
                    if attempt >= self.attempts {
                        return Err(format!(
                            "the AI provider {why} ({attempt} attempt{})",
                            if attempt == 1 { "" } else { "s" }
                        ));
                    }
                    let backoff = Duration::from_millis(500 * 2u64.pow(attempt - 1));
                    let wait = after.map_or(backoff, |a| a.min(MAX_RETRY_AFTER).max(backoff));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One request, read to its end. `downgraded`: structured outputs were
    /// refused before, so a 400 about them is not asked about again.
    async fn send(&self, body: &Value, downgraded: bool) -> Reply {
        let sent = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .json(body)
            .send()
            .await;
        let resp = match sent {
            Err(e) => {
                let why = if e.is_timeout() {
                    "did not answer in time".to_string()
                } else {
                    format!("could not be reached ({})", creatio::transport_reason(&e))
                };
                return Reply::Failed(Failure::Retry(why, None));
            }
            Ok(resp) => resp,
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_else(|| "(no Location header)".into());
        Reply::Failed(match resp.text().await {
            Err(e) if e.is_timeout() => {
                Failure::Retry("did not finish its answer in time".into(), None)
            }
            Err(e) => Failure::Retry(format!("broke off its answer ({e})"), None),
            Ok(_) if status.is_redirection() => Failure::Final(format!(
                "answered HTTP {} with a redirect to {}; casebridge does not follow \
                 redirects, so set CASEBRIDGE_AI_BASE_URL to the final address",
                status.as_u16(),
                snippet(&location)
            )),
            Ok(text) if status.is_success() => match content(&text) {
                Ok(object) => return Reply::Object(object),
                Err(why) => Failure::Final(why),
            },
            Ok(text)
                if status.as_u16() == 400 && !downgraded && text.contains("response_format") =>
            {
                return Reply::NoStructuredOutputs
            }
            Ok(text) if status.as_u16() == 429 || status.is_server_error() => Failure::Retry(
                format!("answered HTTP {} ({})", status.as_u16(), snippet(&text)),
                retry_after,
            ),
            Ok(text) => Failure::Final(format!(
                "refused the request: HTTP {} ({}){}",
                status.as_u16(),
                snippet(&text),
                match status.as_u16() {
                    401 | 403 => "; check CASEBRIDGE_AI_API_KEY",
                    404 => "; check CASEBRIDGE_AI_BASE_URL and CASEBRIDGE_AI_MODEL",
                    _ => "",
                }
            )),
        })
    }
}

/// What one request came to.
enum Reply {
    Object(Map<String, Value>),
    /// The server refused structured outputs (an older server).
    NoStructuredOutputs,
    Failed(Failure),
}

enum Failure {
    Retry(String, Option<Duration>),
    Final(String),
}

fn record(started: Instant, outcome: &'static str) {
    metrics::counter!(crate::metrics::AI_REQUESTS, "outcome" => outcome).increment(1);
    metrics::histogram!(crate::metrics::AI_SECONDS).record(started.elapsed().as_secs_f64());
}

/// A short excerpt of what a server said, control characters blanked.
fn snippet(text: &str) -> String {
    let t: String = text
        .trim()
        .chars()
        .take(160)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if t.is_empty() {
        "empty body".into()
    } else {
        t
    }
}

fn user_prompt(mappings: &[Mapping], transcript: &Transcript) -> String {
    let mut p = String::from("Fields:\n");
    for m in mappings {
        match m.kind {
            FieldType::Dropdown => {
                let names: Vec<&str> = m.options.iter().map(|o| o.name.as_str()).collect();
                p.push_str(&format!(
                    "- {} ({}; dropdown, one of: {}): {}\n",
                    m.field_name,
                    m.title,
                    names.join(", "),
                    m.description.trim()
                ));
            }
            FieldType::Text => p.push_str(&format!(
                "- {} ({}; text{}): {}\n",
                m.field_name,
                m.title,
                m.max_length
                    .map(|n| format!(", at most {n} characters"))
                    .unwrap_or_default(),
                m.description.trim()
            )),
        }
    }
    p.push_str("\nTranscript:\n");
    p.push_str(&transcript.render(MAX_TRANSCRIPT_CHARS));
    p
}

/// The JSON schema of the answer: one required key per field, its value
/// restricted to the options (or `null`) for a dropdown.
pub fn schema(mappings: &[Mapping]) -> Value {
    let mut properties = Map::new();
    for m in mappings {
        let value = match m.kind {
            FieldType::Dropdown => {
                let mut options: Vec<Value> = m
                    .options
                    .iter()
                    .map(|o| Value::String(o.name.clone()))
                    .collect();
                options.push(Value::Null);
                json!({"type": ["string", "null"], "enum": options})
            }
            FieldType::Text => json!({"type": ["string", "null"]}),
        };
        properties.insert(
            m.field_name.clone(),
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["value", "reason"],
                "properties": {"value": value, "reason": {"type": "string"}},
            }),
        );
    }
    let required: Vec<&str> = mappings.iter().map(|m| m.field_name.as_str()).collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties,
    })
}

/// The JSON object inside a chat-completions answer.
fn content(body: &str) -> Result<Map<String, Value>, String> {
    let envelope: Value = serde_json::from_str(body)
        .map_err(|e| format!("answered with a body that is not JSON ({e})"))?;
    let choice = &envelope["choices"][0];
    let Some(text) = choice["message"]["content"].as_str() else {
        return Err(match choice["message"]["refusal"].as_str() {
            Some(r) => format!("refused to answer: {}", snippet(r)),
            None => "answered without a message (no choices[0].message.content)".into(),
        });
    };
    let text = text.trim();
    // Some servers wrap JSON in a Markdown fence despite JSON mode.
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(text)
        .trim();
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(format!(
            "answered JSON that is not an object: {}",
            snippet(text)
        )),
        Err(_) if choice["finish_reason"] == "length" => {
            Err("cut its answer off at the token limit before the JSON was complete".into())
        }
        Err(e) => Err(format!(
            "answered text that is not valid JSON ({e}): {}",
            snippet(text)
        )),
    }
}

/// One field's answer out of the object; a wrong shape leaves it empty.
fn read_field(object: &Map<String, Value>, m: &Mapping) -> Answer {
    // Keyed by the field name as mapped; a model that "corrects" it to the
    // column (`Category` → `CategoryId`) is understood too.
    let Some(entry) = object.get(&m.field_name).or_else(|| object.get(&m.column)) else {
        return Answer::none("the AI's answer did not include this field");
    };
    let (value, reason) = match entry {
        Value::Object(o) => (
            o.get("value").cloned().unwrap_or(Value::Null),
            o.get("reason").and_then(Value::as_str),
        ),
        other => (other.clone(), None),
    };
    let reason: String = reason
        .map(|r| {
            format!(
                "the AI said: {}",
                r.trim().chars().take(300).collect::<String>()
            )
        })
        .unwrap_or_else(|| "chosen by the AI".into());
    match value {
        Value::Null => Answer::none(format!("the AI could not decide ({reason})")),
        Value::String(s) => Answer {
            value: Some(s),
            reason,
        },
        Value::Number(n) => Answer {
            value: Some(n.to_string()),
            reason,
        },
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => Answer::none(format!(
            "the AI answered {} where a string was expected",
            snippet(&value.to_string())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::Choice;
    use uuid::Uuid;

    fn mapping() -> Mapping {
        Mapping {
            field_name: "PriorityId".into(),
            title: "Priority".into(),
            kind: FieldType::Dropdown,
            description: "High if urgent".into(),
            column: "PriorityId".into(),
            lookup: Some("CasePriority".into()),
            options: vec![Choice {
                name: "High".into(),
                id: Uuid::nil(),
            }],
            max_length: None,
        }
    }

    fn completion(content: &str) -> String {
        json!({"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}).to_string()
    }

    #[test]
    fn schema_limits_dropdowns_to_their_options() {
        let s = schema(&[mapping()]);
        assert_eq!(s["required"], json!(["PriorityId"]));
        assert_eq!(
            s["properties"]["PriorityId"]["properties"]["value"]["enum"],
            json!(["High", null])
        );
    }

    #[test]
    fn answers_are_read_defensively() {
        let o = content(&completion(
            "```json\n{\"PriorityId\": {\"value\": \"High\", \"reason\": \"outage\"}}\n```",
        ))
        .unwrap();
        let a = read_field(&o, &mapping());
        assert_eq!(a.value.as_deref(), Some("High"));
        assert_eq!(a.reason, "the AI said: outage");
        let o = content(&completion("{\"PriorityId\": \"High\"}")).unwrap();
        assert_eq!(read_field(&o, &mapping()).value.as_deref(), Some("High"));
        let mut by_column = mapping();
        by_column.field_name = "Priority".into();
        assert_eq!(
            read_field(&o, &by_column).value.as_deref(),
            Some("High"),
            "found under its column"
        );
        let o = content(&completion("{}")).unwrap();
        assert_eq!(
            read_field(&o, &mapping()).reason,
            "the AI's answer did not include this field"
        );
        let o = content(&completion("{\"PriorityId\": [1]}")).unwrap();
        assert_eq!(read_field(&o, &mapping()).value, None);
        assert!(content(&completion("{\"PriorityId\": "))
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(content("<html>").unwrap_err().contains("not JSON"));
        assert!(content(&json!({"choices": []}).to_string())
            .unwrap_err()
            .contains("without a message"));
    }

    #[test]
    fn urls_and_azure_keys() {
        let key = SecretString::from("k");
        let c = Client::new(Settings {
            base_url: "http://127.0.0.1:11434/v1/",
            model: "m",
            api_key: Some(&key),
            timeout: Duration::from_secs(1),
            attempts: 2,
        })
        .unwrap();
        assert_eq!(c.url, "http://127.0.0.1:11434/v1/chat/completions");
        assert_eq!(c.headers["authorization"], "Bearer k");
        let c = Client::new(Settings {
            base_url: "https://x.openai.azure.com/openai/deployments/gpt?api-version=2024-10-21",
            model: "m",
            api_key: Some(&key),
            timeout: Duration::from_secs(1),
            attempts: 2,
        })
        .unwrap();
        assert_eq!(c.url, "https://x.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=2024-10-21");
        assert_eq!(c.headers["api-key"], "k");
        assert!(Client::new(Settings {
            base_url: "ftp://x",
            model: "m",
            api_key: None,
            timeout: Duration::from_secs(1),
            attempts: 1
        })
        .is_err());
    }
}
