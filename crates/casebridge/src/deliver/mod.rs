//! Creatio → chat: deliveries to the org's endpoint (DESIGN.md §2, §7).
//!
//! What casebridge learns in Creatio (an agent's reply, a closure, the case
//! a conversation got) is queued as a delivery ([`queue`]) in the database,
//! once per thing it reports, and sent by [`sender`] tasks as a Standard
//! Webhooks request: the `webhook-id` is the delivery's id (stable across
//! retries and replays), `webhook-timestamp` is the attempt's time, and
//! `webhook-signature` carries one `v1,` HMAC per signing secret (two while
//! a rotated-out secret is still in its grace period).
//!
//! Payloads follow the spec's recommended envelope:
//! `{"type": "agent.reply", "timestamp": "…", "data": {…}}`. (A deviation
//! from issue 6's flat field lists: the fields it names are all there,
//! inside `data`, so receivers dispatch on `type` as the spec suggests.)

mod chatwoot;
mod http;
pub mod sender;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::domain::{ConversationId, OrgId};
use crate::storage::deliveries::{self, NewDelivery};
use crate::storage::{Result, WriteTx};

pub const AGENT_REPLY: &str = "agent.reply";
pub const CONVERSATION_RESOLVED: &str = "conversation.resolved";
pub const CASE_LINKED: &str = "case.linked";

/// What a delivery reports: the `data` of each `type` (their OpenAPI
/// schemas, under `webhooks` in the document, come from these types).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Delivered {
    AgentReply(AgentReply),
    ConversationResolved(ConversationResolved),
    CaseLinked(CaseLinked),
}

impl Delivered {
    /// The envelope's `type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Delivered::AgentReply(_) => AGENT_REPLY,
            Delivered::ConversationResolved(_) => CONVERSATION_RESOLVED,
            Delivered::CaseLinked(_) => CASE_LINKED,
        }
    }
}

/// `agent.reply`: an agent answered on the case in Creatio.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AgentReply {
    pub conversation_id: ConversationId,
    pub case_id: uuid::Uuid,
    pub case_number: Option<String>,
    /// The Creatio activity that holds the reply: one delivery per activity.
    pub activity_id: uuid::Uuid,
    /// The reply as plain text (an HTML e-mail body laid out as text), at
    /// most 16,000 characters (a longer one is cut with a note).
    pub text: String,
    /// Who wrote it in Creatio; `null` when Creatio does not say.
    pub author: Option<ReplyAuthor>,
    /// When the activity was created in Creatio (RFC 3339).
    pub created_at: Option<String>,
}

/// The agent who wrote a reply.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReplyAuthor {
    /// The agent's Creatio contact.
    pub contact_id: uuid::Uuid,
    /// `null` when the contact is gone.
    pub name: Option<String>,
}

/// `conversation.resolved`: the case was closed or resolved in Creatio.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ConversationResolved {
    pub conversation_id: ConversationId,
    pub case_id: uuid::Uuid,
    pub case_number: Option<String>,
    /// The status's name in Creatio ("Closed", "Resolved").
    pub status: String,
    pub status_id: Option<uuid::Uuid>,
    pub is_final: bool,
    pub is_resolved: bool,
}

/// `case.linked`: the conversation has a Creatio case (once per case).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CaseLinked {
    pub conversation_id: ConversationId,
    pub case_id: String,
    /// The case's number ("SR00001234"), when Creatio gave one.
    pub case_number: Option<String>,
}

/// The context a delivery secret is sealed under.
pub fn secret_context(org_id: &OrgId) -> String {
    format!("delivery_secret:{org_id}")
}

/// The envelope a delivery is sent in (Standard Webhooks' recommended
/// shape): what `webhooks` in the OpenAPI document describes.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    event_type: &'static str,
    timestamp: String,
    data: &'a Delivered,
}

impl Delivered {
    /// The bytes sent: the envelope around this `data`, stamped now.
    pub fn payload(&self) -> String {
        let envelope = Envelope {
            event_type: self.event_type(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            data: self,
        };
        // Plain structs of strings, ids and bools: serialising cannot fail.
        serde_json::to_string(&envelope).expect("a delivery serialises")
    }
}

/// Queues a delivery of `what` unless `dedupe_key` was queued before; the
/// new delivery's id when it was queued.
pub async fn queue(
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    dedupe_key: &str,
    what: Delivered,
) -> Result<Option<String>> {
    deliveries::enqueue(
        tx,
        &NewDelivery {
            org_id,
            conversation_id,
            dedupe_key,
            event_type: what.event_type(),
            payload: &what.payload(),
        },
    )
    .await
}

/// Queues `case.linked` for a conversation's case: once per case (the
/// dedupe key names both), with the number when Creatio gave one.
pub async fn queue_case_linked(
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation_id: &ConversationId,
    case_id: &str,
    case_number: Option<&str>,
) -> Result<Option<String>> {
    queue(
        tx,
        org_id,
        conversation_id,
        &format!("linked:{conversation_id}:{case_id}"),
        Delivered::CaseLinked(CaseLinked {
            conversation_id: conversation_id.clone(),
            case_id: case_id.to_string(),
            case_number: case_number.map(str::to_string),
        }),
    )
    .await
}

/// The `webhook-signature` value: one signature per secret, space separated.
pub fn signature(
    secrets: &[SecretString],
    msg_id: &str,
    timestamp: i64,
    payload: &str,
) -> std::result::Result<String, standardwebhooks::WebhookError> {
    let mut parts = Vec::with_capacity(secrets.len());
    for s in secrets {
        let hook = standardwebhooks::Webhook::new(s.expose_secret())?;
        parts.push(hook.sign(msg_id, timestamp, payload.as_bytes())?);
    }
    Ok(parts.join(" "))
}

/// When a failed delivery is tried again (DESIGN.md §7, Svix's schedule).
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The delay before each retry; after the last, the delivery is dead.
    pub delays: Vec<Duration>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// How long a claim lasts before another sender may take it over.
    pub lease: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            delays: [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            timeout: Duration::from_secs(15),
            lease: Duration::from_secs(120),
        }
    }
}

impl Schedule {
    /// The delay after attempt number `attempts` (1-based) failed, or
    /// `None` when the schedule is spent. ±20 % jitter; a `Retry-After`
    /// is honoured within [scheduled, 2 × scheduled], so a receiver can
    /// neither pull retries in nor push them out for ever.
    pub fn next_delay(&self, attempts: i64, retry_after: Option<Duration>) -> Option<Duration> {
        let index = usize::try_from(attempts.max(1) - 1).ok()?;
        let scheduled = *self.delays.get(index)?;
        if let Some(ra) = retry_after {
            return Some(ra.clamp(scheduled, scheduled * 2));
        }
        let jitter = 0.8 + fastrand::f64() * 0.4;
        Some(scheduled.mul_f64(jitter))
    }

    /// Parses `5,300,1800` (seconds, fractions allowed) as a schedule's delays.
    pub fn parse_delays(text: &str) -> std::result::Result<Vec<Duration>, String> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0 && *v <= 7.0 * 86_400.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        format!("{s:?} is not a delay in seconds between 0 and 604800 (7 days)")
                    })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if delays.is_empty() || delays.len() > 20 {
            return Err(
                "give 1 to 20 delays in seconds, e.g. 5,300,1800,7200,18000,36000,36000".into(),
            );
        }
        Ok(delays)
    }
}

/// How an attempt's answer is treated (DESIGN.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt (408, 429, 5xx but 501, timeouts, connection errors).
    Retry,
    /// The receiver refused it for good (other 4xx, 501, a redirect).
    Refused(String),
    /// 410: the endpoint is gone; disable it.
    Gone,
}

impl Verdict {
    pub fn of_status(status: u16) -> Verdict {
        match status {
            200..=299 => Verdict::Delivered,
            410 => Verdict::Gone,
            408 | 429 => Verdict::Retry,
            501 => Verdict::Refused(
                "the receiver answered 501 Not Implemented; it does not take these requests".into(),
            ),
            500..=599 => Verdict::Retry,
            300..=399 => Verdict::Refused(format!(
                "the receiver answered {status}, a redirect; casebridge does not follow redirects \
                 with signed payloads. Set the delivery URL to the final address (PUT /v1/delivery)"
            )),
            _ => Verdict::Refused(format!(
                "the receiver answered {status}; other 4xx answers are not retried. Check the \
                 receiver's log for why it refused the request, then replay the delivery"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_the_policy_says() {
        assert_eq!(Verdict::of_status(200), Verdict::Delivered);
        assert_eq!(Verdict::of_status(204), Verdict::Delivered);
        assert_eq!(Verdict::of_status(410), Verdict::Gone);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(Verdict::of_status(s), Verdict::Retry, "{s}");
        }
        for s in [301, 400, 401, 404, 422, 501] {
            assert!(matches!(Verdict::of_status(s), Verdict::Refused(_)), "{s}");
        }
    }

    #[test]
    fn the_schedule_jitters_clamps_retry_after_and_ends() {
        let s = Schedule::default();
        for (i, base) in [5u64, 300, 1_800, 7_200, 18_000, 36_000, 36_000]
            .into_iter()
            .enumerate()
        {
            let d = s.next_delay(i as i64 + 1, None).unwrap().as_secs_f64();
            let base = base as f64;
            assert!(d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9, "{i}: {d}");
        }
        assert_eq!(s.next_delay(8, None), None, "spent after 7 retries");
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(5)),
            "pulled in: raised to the schedule"
        );
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(3_600))),
            Some(Duration::from_secs(10)),
            "pushed out: capped at twice the schedule"
        );
        assert_eq!(
            s.next_delay(2, Some(Duration::from_secs(400))),
            Some(Duration::from_secs(400))
        );
    }

    #[test]
    fn delays_parse_with_clear_errors() {
        assert_eq!(
            Schedule::parse_delays("5, 300,0.5").unwrap(),
            vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_millis(500)
            ]
        );
        assert!(Schedule::parse_delays("5,soon")
            .unwrap_err()
            .contains("\"soon\""));
        assert!(Schedule::parse_delays("").is_err());
        assert!(Schedule::parse_delays("-1").is_err());
    }

    #[test]
    fn signatures_verify_with_the_standardwebhooks_crate_for_every_secret() {
        let old = SecretString::from(crate::secrets::webhook_secret());
        let new = SecretString::from(crate::secrets::webhook_secret());
        let body = Delivered::CaseLinked(CaseLinked {
            conversation_id: "c1".into(),
            case_id: "00000000-0000-0000-0000-000000000001".into(),
            case_number: None,
        })
        .payload();
        let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(sent["type"], CASE_LINKED);
        assert_eq!(sent["data"]["conversation_id"], "c1");
        let ts = chrono::Utc::now().timestamp();
        let sig = signature(&[new.clone(), old.clone()], "msg_1", ts, &body).unwrap();
        assert_eq!(sig.split(' ').count(), 2);
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        headers.insert("webhook-signature", sig.parse().unwrap());
        for secret in [&new, &old] {
            standardwebhooks::Webhook::new(secret.expose_secret())
                .unwrap()
                .verify(body.as_bytes(), &headers)
                .unwrap();
        }
        let other = SecretString::from(crate::secrets::webhook_secret());
        assert!(standardwebhooks::Webhook::new(other.expose_secret())
            .unwrap()
            .verify(body.as_bytes(), &headers)
            .is_err());
    }
}
