//! What both kinds of delivery share: the services a sender uses, what an
//! attempt's request came to, and making that request.

use std::sync::Arc;
use std::time::Duration;

use super::Schedule;
use crate::app::App;
use crate::outbound::TargetPolicy;
use crate::secrets::SecretBox;
use crate::storage::Db;

/// How much of a receiver's answer is kept with the attempt.
const KEEP_RESPONSE: usize = 500;

/// What the delivery senders use of the app's services.
pub struct Services {
    pub db: Db,
    pub secrets: Arc<SecretBox>,
    /// The HTTP client for delivery URLs: SSRF-guarded, no redirects.
    pub http: reqwest::Client,
    pub policy: TargetPolicy,
}

impl Services {
    pub fn of(app: &App) -> Services {
        Services {
            db: app.db.clone(),
            secrets: app.secrets.clone(),
            http: app.delivery_http.clone(),
            policy: app.policy.clone(),
        }
    }
}

/// What one POST came to.
#[derive(Default)]
pub(super) struct Answer {
    pub(super) status: Option<u16>,
    pub(super) retry_after: Option<Duration>,
    pub(super) error: Option<String>,
    pub(super) response: Option<String>,
    /// Not sent, and sending again would not help (a setting is wrong).
    pub(super) unsendable: bool,
    /// Nothing to send for this platform (Chatwoot has no place for a
    /// `case.linked`): done without a request, and why.
    pub(super) nothing_to_send: Option<&'static str>,
}

impl Answer {
    pub(super) fn unsendable(why: String) -> Answer {
        Answer {
            error: Some(why),
            unsendable: true,
            ..Answer::default()
        }
    }

    /// Not sent this time; worth another attempt.
    pub(super) fn failed(why: String) -> Answer {
        Answer {
            error: Some(why),
            ..Answer::default()
        }
    }

    pub(super) fn nothing_to_send(why: &'static str) -> Answer {
        Answer {
            nothing_to_send: Some(why),
            ..Answer::default()
        }
    }
}

/// Sends a request and reads its answer: the status, `Retry-After`, the
/// start of the body (and the body as JSON, when it is).
pub(super) async fn call(
    request: reqwest::RequestBuilder,
    schedule: &Schedule,
) -> (Answer, Option<serde_json::Value>) {
    let span = tracing::Span::current();
    let sent = request.send().await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            span.record("http.response.status_code", status);
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().await.unwrap_or_default();
            let json = serde_json::from_str(&text).ok();
            let response = (!text.is_empty()).then(|| text.chars().take(KEEP_RESPONSE).collect());
            (
                Answer {
                    status: Some(status),
                    retry_after,
                    response,
                    ..Answer::default()
                },
                json,
            )
        }
        Err(e) => {
            let error = if e.is_timeout() {
                format!(
                    "no answer within {} s",
                    schedule.timeout.as_secs_f64().round()
                )
            } else if e.is_connect() {
                format!("could not connect: {}", creatio::transport_reason(&e))
            } else {
                format!("the request failed: {}", creatio::transport_reason(&e))
            };
            (Answer::failed(error), None)
        }
    }
}
