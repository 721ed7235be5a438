//! Chatwoot's webhooks as casebridge events (issue 26, first part): the
//! signature check and the mapping, both pure. What each payload holds, and
//! the Chatwoot version it was read from, is in `docs/reference/chatwoot.md`
//! (v4.15.1; its sections are cited below as §n).
//!
//! The connector's settings are in `storage::chatwoot`, the webhook endpoint
//! in `api::chatwoot`, the outbound half (replies and closures through
//! Chatwoot's API) in `deliver::chatwoot`.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// How far a signed request's timestamp may be from now: the five minutes
/// Chatwoot's signing PR tells receivers to allow (§2.1).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Why a signed request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no X-Chatwoot-Signature header; Chatwoot signs webhooks from v4.12.0 when the webhook has a secret")]
    Missing,
    #[error("the X-Chatwoot-Timestamp header is missing or not a Unix time")]
    BadTimestamp,
    #[error("the X-Chatwoot-Timestamp is {0} s away from now; more than {SIGNATURE_TOLERANCE_SECS} s is refused as a replay")]
    Stale(i64),
    #[error(
        "the X-Chatwoot-Signature does not match: check that casebridge has the webhook's secret"
    )]
    Mismatch,
}

/// Checks `X-Chatwoot-Signature` (`sha256=` and the hex HMAC-SHA256 of
/// `"{timestamp}.{body}"` with the webhook's secret) and the timestamp's age
/// (§2.1, `lib/webhooks/trigger.rb:54-63`).
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?;
    let timestamp = timestamp.ok_or(SignatureError::BadTimestamp)?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now_secs - at).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(SignatureError::Stale(now_secs - at));
    }
    let given = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|hex| hex::decode(hex).ok())
        .ok_or(SignatureError::Mismatch)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(timestamp.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    // Constant time.
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// Which status change is the hand-off to a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Handoff {
    /// The conversation leaves `pending` for `open`: the agent bot handed
    /// off (`bot_handoff!`, §4.2), or an agent took it from the bot.
    #[default]
    PendingToOpen,
    /// The conversation becomes `open` from any other status, or is first
    /// seen open: inboxes without a bot, where every conversation is for a
    /// person.
    AnyOpen,
}

impl Handoff {
    pub const WORDS: &'static [&'static str] = &["pending_to_open", "any_open"];

    pub fn parse(word: &str) -> Option<Handoff> {
        match word {
            "pending_to_open" => Some(Handoff::PendingToOpen),
            "any_open" => Some(Handoff::AnyOpen),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Handoff::PendingToOpen => "pending_to_open",
            Handoff::AnyOpen => "any_open",
        }
    }

    /// Whether becoming `open` from `previous` is the hand-off.
    fn is_handoff(self, previous: Option<&str>) -> bool {
        match self {
            Handoff::PendingToOpen => previous == Some("pending"),
            Handoff::AnyOpen => previous != Some("open"),
        }
    }
}

/// What casebridge knew of the conversation before this payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// The last status it saw.
    pub status: Option<&'a str>,
    /// The status it set itself through Chatwoot's API (a closure from
    /// Creatio), until Chatwoot reports another.
    pub set_by_casebridge: Option<&'a str>,
}

/// The contexts the connector's secrets are sealed under.
pub fn api_token_context(org_id: &crate::domain::OrgId) -> String {
    format!("chatwoot_api_token:{org_id}")
}
pub fn webhook_secret_context(org_id: &crate::domain::OrgId) -> String {
    format!("chatwoot_webhook_secret:{org_id}")
}
pub fn path_token_context(org_id: &crate::domain::OrgId) -> String {
    format!("chatwoot_path_token:{org_id}")
}

/// The events to tick on Chatwoot's webhook (Settings → Integrations →
/// Webhooks).
pub const EVENTS_TO_TICK: &[&str] = &[
    "message_created",
    "conversation_status_changed",
    "conversation_updated",
];

/// The start of the `source_id` of every message casebridge posts (the
/// delivery's id follows): with `content_attributes.casebridge`, how its
/// own message is told when Chatwoot's webhook reports it.
pub const SOURCE_ID_PREFIX: &str = "casebridge:";

/// What the org decided about Chatwoot's messages and hand-offs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub handoff: Handoff,
    /// Human agents' replies typed in Chatwoot go to Creatio as agent
    /// messages (else they are skipped).
    pub agent_messages: bool,
    /// A conversation custom attribute that holds the hand-off summary.
    pub summary_attribute: Option<String>,
}

/// What a webhook call becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// Events for `POST /v1/events` (one or more; their ids are Chatwoot's,
    /// so a repeated call is a duplicate).
    Events(Vec<Value>),
    /// Nothing to do, and why (answered 200: Chatwoot does not retry).
    Ignored(String),
}

/// Maps one Chatwoot webhook payload to casebridge events. Unknown events
/// and the ones casebridge does not use are `Ignored` with the reason.
pub fn map(payload: &Value, options: &Options, known: &Known) -> Mapped {
    let event = payload["event"].as_str().unwrap_or_default();
    match event {
        "message_created" => message(payload, options),
        "conversation_status_changed" | "conversation_updated" => status(payload, options, known),
        "" => Mapped::Ignored("the payload has no \"event\"".into()),
        other => Mapped::Ignored(format!("{other} is not an event casebridge uses")),
    }
}

/// What a payload says of its conversation's status: the conversation id
/// casebridge keeps, the status, and whether the payload is a status event
/// (a message's payload shows the status as it was when Chatwoot sent it,
/// §1.0; only status events move a known status on).
pub fn status_shown(payload: &Value) -> Option<(String, String, bool)> {
    let (conversation, status_event) = match payload["event"].as_str()? {
        "message_created" | "message_updated" => (&payload["conversation"], false),
        "conversation_status_changed" | "conversation_updated" | "conversation_created" => {
            (payload, true)
        }
        _ => return None,
    };
    Some((
        conversation_id(conversation)?,
        conversation["status"].as_str()?.to_string(),
        status_event,
    ))
}

/// The inbox a payload is about: `inbox.id` on messages, `inbox_id` on
/// conversations (§1.1, §1.2).
pub fn inbox_id(payload: &Value) -> Option<i64> {
    payload["inbox"]["id"]
        .as_i64()
        .or_else(|| payload["inbox_id"].as_i64())
        .or_else(|| payload["conversation"]["inbox_id"].as_i64())
}

/// Chatwoot's number of a conversation casebridge keeps as `cw-{id}`.
pub fn chatwoot_number(conversation_id: &str) -> Option<i64> {
    conversation_id.strip_prefix("cw-")?.parse().ok()
}

/// The conversation casebridge keeps for a Chatwoot conversation: its
/// per-account number (`conversation.id` is the display id, §1.1), so the
/// same in every event and in API paths.
fn conversation_id(conversation: &Value) -> Option<String> {
    conversation["id"].as_i64().map(|id| format!("cw-{id}"))
}

/// The channel word for an inbox's channel type (§5).
fn channel(channel_type: &str) -> &'static str {
    match channel_type {
        "Channel::WebWidget" => "web",
        "Channel::Api" => "api",
        "Channel::Email" => "email",
        "Channel::Whatsapp" => "whatsapp",
        // Twilio SMS and Twilio WhatsApp both: the payload does not say
        // which (the inbox's `medium` does).
        "Channel::Sms" | "Channel::TwilioSms" => "sms",
        "Channel::FacebookPage" => "messenger",
        "Channel::Instagram" => "instagram",
        "Channel::Telegram" => "telegram",
        _ => "chat",
    }
}

/// The conversation part of an event: id, channel, and the contact from
/// `meta.sender` (the contact's push data, §1.1).
fn conversation_json(conversation: &Value) -> Option<Value> {
    let id = conversation_id(conversation)?;
    let contact = &conversation["meta"]["sender"];
    let text = |v: &Value| {
        v.as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    Some(json!({
        "id": id,
        "channel": channel(conversation["channel"].as_str().unwrap_or_default()),
        "contact": {
            "name": text(&contact["name"]),
            "email": text(&contact["email"]),
            "phone": text(&contact["phone_number"]),
        },
    }))
}

/// Chatwoot's `created_at` (ISO in a message's webhook data, §1.2) as an
/// event's `occurred_at`.
fn occurred_at(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
}

fn message(payload: &Value, options: &Options) -> Mapped {
    if payload["private"].as_bool() == Some(true) {
        return Mapped::Ignored("a private note stays in Chatwoot".into());
    }
    let ours_by_source = payload["source_id"]
        .as_str()
        .is_some_and(|s| s.starts_with(SOURCE_ID_PREFIX));
    if payload["content_attributes"]["casebridge"].as_bool() == Some(true) || ours_by_source {
        return Mapped::Ignored(
            "casebridge wrote this message itself (an agent's reply from Creatio)".into(),
        );
    }
    let sender_type = payload["sender"]["type"].as_str();
    let role = match (payload["message_type"].as_str(), sender_type) {
        (Some("incoming"), _) => "customer",
        (Some("outgoing" | "template"), Some("agent_bot" | "captain_assistant")) => "ai",
        (Some("outgoing"), Some("user")) if options.agent_messages => "agent",
        (Some("outgoing"), Some("user")) => {
            return Mapped::Ignored("a human agent's message in Chatwoot; agent messages are not sent to Creatio (a setting)".into())
        }
        (Some(kind), _) => return Mapped::Ignored(format!("a {kind} message without a bot or agent sender")),
        (None, _) => return Mapped::Ignored("the message has no message_type".into()),
    };
    let Some(conversation) = conversation_json(&payload["conversation"]) else {
        return Mapped::Ignored("the message has no conversation id".into());
    };
    let Some(id) = payload["id"].as_i64() else {
        return Mapped::Ignored("the message has no id".into());
    };
    let attachments: Vec<Value> = payload["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let url = a["data_url"].as_str()?;
            let name = url
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("attachment");
            Some(json!({"name": name, "url": url}))
        })
        .collect();
    let text = payload["content"].as_str().unwrap_or_default();
    if text.trim().is_empty() && attachments.is_empty() {
        return Mapped::Ignored("the message has neither text nor attachments".into());
    }
    Mapped::Events(vec![json!({
        "id": format!("cw-message-{id}"),
        "type": "message.created",
        "occurred_at": occurred_at(&payload["created_at"]),
        "conversation": conversation,
        "message": {
            "id": format!("cw-{id}"),
            "role": role,
            "text": text,
            "attachments": attachments,
        },
    })])
}

/// The previous status of a conversation, where Chatwoot says it: only
/// `conversation_updated` carries it reliably (§1.4).
fn previous_status(payload: &Value) -> Option<&str> {
    payload["changed_attributes"]
        .as_array()?
        .iter()
        .find_map(|change| change["status"]["previous_value"].as_str())
}

fn status(payload: &Value, options: &Options, known: &Known) -> Mapped {
    let Some(conversation) = conversation_json(payload) else {
        return Mapped::Ignored("the conversation has no id".into());
    };
    // Chatwoot's number of the conversation (the event ids say it once).
    let id = payload["id"].as_i64().unwrap_or_default();
    // The change as the payload says it (only conversation_updated does,
    // §1.4), else the status casebridge saw last: with auto-assignment the
    // payload shows only the assignment (issue #9277, §4.3).
    let previous = previous_status(payload).or(known.status);
    match payload["status"].as_str() {
        Some("resolved") if known.set_by_casebridge == Some("resolved") => Mapped::Ignored(
            "casebridge resolved this conversation itself (the case was closed in Creatio)".into(),
        ),
        Some("resolved") if previous == Some("resolved") => {
            Mapped::Ignored("the conversation was resolved already".into())
        }
        Some("resolved") => Mapped::Events(vec![json!({
            // One per conversation and resolution: `updated_at` tells a
            // later resolution (after a reopen) from a repeat.
            "id": format!("cw-resolved-{id}-{}", payload["updated_at"].as_f64().unwrap_or_default() as i64),
            "type": "conversation.resolved",
            "conversation": conversation,
        })]),
        // The hand-off. Chatwoot sends it twice (conversation_status_changed
        // and conversation_updated); the id makes the pair one event.
        Some("open") if options.handoff.is_handoff(previous) => Mapped::Events(vec![json!({
            "id": format!("cw-handoff-{id}"),
            "type": "conversation.handoff",
            "conversation": conversation,
            "handoff": {
                "summary": summary(payload, options),
                "reason": "The Chatwoot agent bot handed the conversation to a person",
            },
        })]),
        Some("open") => Mapped::Ignored(format!(
            "the conversation is open, and was {}; the hand-off is {}",
            previous.unwrap_or("not seen before"),
            match options.handoff {
                Handoff::PendingToOpen => "pending → open",
                Handoff::AnyOpen => "any status → open",
            }
        )),
        Some(other) => Mapped::Ignored(format!(
            "the conversation is {other}; casebridge acts on a hand-off and on resolved"
        )),
        None => Mapped::Ignored("the conversation has no status".into()),
    }
}

/// The hand-off summary: the configured custom attribute, else the bot's
/// last message (the conversation's `messages` holds the last one, §1.1),
/// else a sentence.
fn summary(payload: &Value, options: &Options) -> String {
    let from_attribute = options
        .summary_attribute
        .as_deref()
        .and_then(|name| payload["custom_attributes"][name].as_str())
        .filter(|s| !s.trim().is_empty());
    let last_outgoing = payload["messages"]
        .as_array()
        .into_iter()
        .flatten()
        // In the push format message_type is an integer: 1 is outgoing.
        .filter(|m| m["message_type"].as_i64() == Some(1))
        .filter_map(|m| m["content"].as_str())
        .rfind(|s| !s.trim().is_empty());
    from_attribute
        .or(last_outgoing)
        .unwrap_or("Handed off by the Chatwoot agent bot (no summary given)")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Example A of docs/reference/chatwoot.md §1.2, trimmed to what the
    /// mapping reads (and some it must not).
    fn incoming() -> Value {
        json!({
            "account": {"id": 1, "name": "Acme Inc"},
            "additional_attributes": {},
            "content_attributes": {},
            "content_type": "text",
            "content": "Hi, where is my order #1042?",
            "conversation": {
                "channel": "Channel::WebWidget",
                "id": 123,
                "inbox_id": 3,
                "messages": [],
                "meta": {"sender": {"email": "maria@example.com", "id": 57, "name": "Maria Lopez",
                                    "phone_number": null, "type": "contact"},
                         "assignee": null},
                "status": "pending",
                "custom_attributes": {},
            },
            "created_at": "2026-06-17T10:15:30.123Z",
            "id": 4521,
            "inbox": {"id": 3, "name": "Acme Website"},
            "message_type": "incoming",
            "private": false,
            "sender": {"email": "maria@example.com", "id": 57, "name": "Maria Lopez"},
            "source_id": null,
            "event": "message_created"
        })
    }

    fn events(mapped: Mapped) -> Vec<Value> {
        match mapped {
            Mapped::Events(e) => e,
            Mapped::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn an_incoming_message_is_the_customers_and_parses_as_an_event() {
        let e = events(map(&incoming(), &Options::default(), &Known::default()));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0]["type"], "message.created");
        assert_eq!(e[0]["id"], "cw-message-4521");
        assert_eq!(e[0]["conversation"]["id"], "cw-123");
        assert_eq!(e[0]["conversation"]["channel"], "web");
        assert_eq!(
            e[0]["conversation"]["contact"]["email"],
            "maria@example.com"
        );
        assert_eq!(e[0]["message"]["role"], "customer");
        // What the mapping gives, casebridge's own parser takes.
        assert!(crate::sync::events::parse_body(&e[0]).is_ok(), "{}", e[0]);
    }

    #[test]
    fn senders_tell_the_bot_from_a_human_agent() {
        let mut bot = incoming();
        bot["message_type"] = json!("outgoing");
        bot["sender"] = json!({"id": 2, "name": "Order Bot", "type": "agent_bot"});
        assert_eq!(
            events(map(&bot, &Options::default(), &Known::default()))[0]["message"]["role"],
            "ai"
        );

        let mut human = incoming();
        human["message_type"] = json!("outgoing");
        human["sender"] =
            json!({"id": 5, "name": "Jane Agent", "email": "jane@acme.com", "type": "user"});
        assert!(matches!(
            map(&human, &Options::default(), &Known::default()),
            Mapped::Ignored(_)
        ));
        let with_agents = Options {
            agent_messages: true,
            ..Options::default()
        };
        assert_eq!(
            events(map(&human, &with_agents, &Known::default()))[0]["message"]["role"],
            "agent"
        );
    }

    #[test]
    fn private_notes_and_casebridges_own_messages_are_skipped() {
        let mut note = incoming();
        note["private"] = json!(true);
        assert!(
            matches!(map(&note, &Options::default(), &Known::default()), Mapped::Ignored(w) if w.contains("private"))
        );
        let mut ours = incoming();
        ours["message_type"] = json!("outgoing");
        ours["content_attributes"] = json!({"casebridge": true});
        assert!(
            matches!(map(&ours, &Options::default(), &Known::default()), Mapped::Ignored(w) if w.contains("itself"))
        );
        // A Chatwoot that drops unknown content_attributes keeps source_id.
        ours["content_attributes"] = json!({});
        ours["source_id"] = json!("casebridge:msg_01");
        assert!(
            matches!(map(&ours, &Options::default(), &Known::default()), Mapped::Ignored(w) if w.contains("itself"))
        );
    }

    #[test]
    fn attachments_become_links() {
        let mut m = incoming();
        m["content"] = json!("");
        m["attachments"] = json!([{"id": 77, "message_id": 4522, "file_type": "image", "account_id": 1,
            "extension": "png",
            "data_url": "https://chat.acme.com/rails/active_storage/blobs/redirect/abc/screenshot.png"}]);
        let e = events(map(&m, &Options::default(), &Known::default()));
        assert_eq!(e[0]["message"]["attachments"][0]["name"], "screenshot.png");
        assert!(crate::sync::events::parse_body(&e[0]).is_ok(), "{}", e[0]);
    }

    #[test]
    fn the_bots_handoff_and_a_resolution_become_events() {
        let mut updated = incoming()["conversation"].clone();
        updated["status"] = json!("open");
        updated["event"] = json!("conversation_updated");
        updated["changed_attributes"] =
            json!([{"status": {"previous_value": "pending", "current_value": "open"}}]);
        updated["messages"] =
            json!([{"message_type": 1, "content": "Let me get a person for the refund."}]);
        let e = events(map(&updated, &Options::default(), &Known::default()));
        assert_eq!(e[0]["type"], "conversation.handoff");
        assert_eq!(e[0]["id"], "cw-handoff-123");
        assert_eq!(
            e[0]["handoff"]["summary"],
            "Let me get a person for the refund."
        );
        assert!(crate::sync::events::parse_body(&e[0]).is_ok(), "{}", e[0]);

        // Its twin, conversation_status_changed, has no changed_attributes
        // and maps to the same event id: one hand-off.
        let mut changed = updated.clone();
        changed["event"] = json!("conversation_status_changed");
        changed["changed_attributes"] = Value::Null;
        let was_pending = Known {
            status: Some("pending"),
            ..Known::default()
        };
        assert_eq!(
            events(map(&changed, &Options::default(), &was_pending))[0]["id"],
            e[0]["id"]
        );
        // Without a known status, an open conversation there is no hand-off
        // under the default rule: a reopened one looks the same.
        assert!(matches!(
            map(&changed, &Options::default(), &Known::default()),
            Mapped::Ignored(_)
        ));

        // An assignment on an open conversation is no hand-off...
        let mut assigned = updated.clone();
        assigned["changed_attributes"] =
            json!([{"assignee_id": {"previous_value": null, "current_value": 5}}]);
        let was_open = Known {
            status: Some("open"),
            ..Known::default()
        };
        assert!(matches!(
            map(&assigned, &Options::default(), &was_open),
            Mapped::Ignored(_)
        ));
        // ...but when auto-assignment swallowed the status change (issue
        // #9277, §4.3), the status casebridge saw last says it.
        assert_eq!(
            events(map(&assigned, &Options::default(), &was_pending))[0]["type"],
            "conversation.handoff"
        );
        // A reopened conversation is no hand-off; under any_open it is.
        let was_resolved = Known {
            status: Some("resolved"),
            ..Known::default()
        };
        assert!(matches!(
            map(&changed, &Options::default(), &was_resolved),
            Mapped::Ignored(_)
        ));
        let any_open = Options {
            handoff: Handoff::AnyOpen,
            ..Options::default()
        };
        assert_eq!(
            events(map(&changed, &any_open, &was_resolved))[0]["type"],
            "conversation.handoff"
        );
        assert!(matches!(
            map(&changed, &any_open, &was_open),
            Mapped::Ignored(_)
        ));

        // A summary attribute, when the org names one, wins.
        let mut with_summary = updated.clone();
        with_summary["custom_attributes"] = json!({"handoff_summary": "Refund for order #1042"});
        let options = Options {
            summary_attribute: Some("handoff_summary".into()),
            ..Options::default()
        };
        assert_eq!(
            events(map(&with_summary, &options, &Known::default()))[0]["handoff"]["summary"],
            "Refund for order #1042"
        );

        let mut resolved = updated.clone();
        resolved["status"] = json!("resolved");
        resolved["event"] = json!("conversation_status_changed");
        resolved["updated_at"] = json!(1781691330.456);
        let e = events(map(&resolved, &Options::default(), &Known::default()));
        assert_eq!(e[0]["type"], "conversation.resolved");
        assert!(crate::sync::events::parse_body(&e[0]).is_ok(), "{}", e[0]);
        // casebridge's own toggle_status comes back: no echo.
        let ours = Known {
            status: Some("resolved"),
            set_by_casebridge: Some("resolved"),
        };
        assert!(
            matches!(map(&resolved, &Options::default(), &ours), Mapped::Ignored(w) if w.contains("itself"))
        );
    }

    #[test]
    fn other_events_are_ignored_with_the_reason() {
        let typing = json!({"event": "conversation_typing_on"});
        assert!(
            matches!(map(&typing, &Options::default(), &Known::default()), Mapped::Ignored(w) if w.contains("typing"))
        );
        assert!(matches!(
            map(&json!({}), &Options::default(), &Known::default()),
            Mapped::Ignored(_)
        ));
    }

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_and_body() {
        // The test vector of docs/reference/chatwoot.md §2.1.
        let body = br#"{"event":"message_created","id":4521}"#;
        let good = "sha256=dece6c7f39e1c73b6d8f4be3be4ed6f55befc9066c6d38cf8365f9df1902a328";
        let now = 1781691330;
        assert_eq!(
            verify("test-secret", Some("1781691330"), Some(good), body, now),
            Ok(())
        );
        assert_eq!(
            verify("other-secret", Some("1781691330"), Some(good), body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("test-secret", Some("1781691330"), Some(good), b"{}", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                "test-secret",
                Some("1781691330"),
                Some(good),
                body,
                now + 301
            ),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify("test-secret", Some("1781691330"), None, body, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify("test-secret", Some("soon"), Some(good), body, now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(
                "test-secret",
                Some("1781691330"),
                Some("sha256=zz"),
                body,
                now
            ),
            Err(SignatureError::Mismatch)
        );
    }
}
