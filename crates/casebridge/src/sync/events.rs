//! `POST /v1/events`: what the chat platform sends, validated so that every
//! mistake gets a 400 naming the field, and ingested in one transaction.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::domain::{CaseId, ConversationId, EventId, MessageId, OrgId};
use crate::domain::{JobKind, MessageRole};
use crate::storage::conversations;
use crate::storage::conversations::ConversationIn;
use crate::storage::events;
use crate::storage::jobs;
use crate::storage::messages;
use crate::storage::messages::MessageIn;
use crate::storage::timeline;
use crate::storage::Result as StorageResult;
use crate::storage::WriteTx;

/// At most this many events per request.
pub const MAX_EVENTS: usize = 1000;
/// Longest message text accepted (characters).
pub const MAX_TEXT: usize = 100_000;
const MAX_ID: usize = 200;

/// One event, as `POST /v1/events` takes it and `parse_body` reads it
/// (the OpenAPI document describes it by type: [`TypedEvent`]).
#[derive(Debug, Deserialize)]
pub struct EventIn {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub occurred_at: Option<String>,
    pub conversation: ConversationJson,
    /// Required for `message.created`.
    #[serde(default)]
    pub message: Option<MessageJson>,
    /// Required for `conversation.handoff`.
    #[serde(default)]
    pub handoff: Option<HandoffJson>,
}

/// `POST /v1/events` takes one event or an array of 1 to 1,000 (16 MB at
/// most).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // the shapes `parse_body` accepts, for the OpenAPI document
pub enum EventsIn {
    One(Box<TypedEvent>),
    Many(Vec<TypedEvent>),
}

/// An event, by its `type`: the OpenAPI document's discriminated union of
/// what [`EventIn`] takes (`check_body` requires each type's part; a test
/// holds these to `EventIn`'s fields).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "type", mapping(
    ("message.created" = "#/components/schemas/MessageCreatedEvent"),
    ("conversation.handoff" = "#/components/schemas/ConversationHandoffEvent"),
    ("conversation.resolved" = "#/components/schemas/ConversationResolvedEvent"),
)))]
#[allow(dead_code)] // for the OpenAPI document; `parse_body` reads EventIn
pub enum TypedEvent {
    MessageCreated(MessageCreatedEvent),
    ConversationHandoff(ConversationHandoffEvent),
    ConversationResolved(ConversationResolvedEvent),
}

/// A union member's `type`: one value each.
macro_rules! event_type {
    ($name:ident, $text:literal) => {
        #[derive(Deserialize, utoipa::ToSchema)]
        #[allow(dead_code)]
        pub enum $name {
            #[serde(rename = $text)]
            #[schema(rename = $text)]
            Only,
        }
    };
}
event_type!(MessageCreatedType, "message.created");
event_type!(ConversationHandoffType, "conversation.handoff");
event_type!(ConversationResolvedType, "conversation.resolved");

/// `message.created`: a message in the conversation (the customer's, the
/// AI's or an agent's on the platform).
// The examples are the demo's own events (`casebridge demo`).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "evt-m1", "type": "message.created", "occurred_at": "2026-12-01T10:00:00Z",
    "conversation": {"id": "demo-conversation-1", "channel": "web",
        "url": "https://chat.example.com/inbox/demo-conversation-1",
        "contact": {"name": "Ada Lovelace", "email": "ada.demo@example.com", "phone": "+15550100"}},
    "message": {"id": "m1", "role": "customer", "text": "My order #A-1042 arrived broken."}}))]
#[allow(dead_code)]
pub struct MessageCreatedEvent {
    /// The platform's id of the event, 1 to 200 printable characters: a
    /// repeated id is a duplicate, stored once.
    #[schema(min_length = 1, max_length = 200)]
    id: String,
    #[serde(rename = "type")]
    kind: MessageCreatedType,
    /// RFC 3339; when absent, the time casebridge received it.
    #[schema(format = DateTime)]
    occurred_at: Option<String>,
    conversation: ConversationJson,
    message: MessageJson,
}

/// `conversation.handoff`: the AI hands the conversation to a person.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "evt-handoff", "type": "conversation.handoff", "occurred_at": "2026-12-01T10:03:00Z",
    "conversation": {"id": "demo-conversation-1", "channel": "web",
        "url": "https://chat.example.com/inbox/demo-conversation-1",
        "contact": {"name": "Ada Lovelace", "email": "ada.demo@example.com", "phone": "+15550100"}},
    "handoff": {"summary": "Order #A-1042 arrived with a cracked screen and does not power on; customer wants a replacement.",
                "reason": "Replacement needs a human decision", "language": "en", "sentiment": "negative"}}))]
#[allow(dead_code)]
pub struct ConversationHandoffEvent {
    /// The platform's id of the event, 1 to 200 printable characters.
    #[schema(min_length = 1, max_length = 200)]
    id: String,
    #[serde(rename = "type")]
    kind: ConversationHandoffType,
    /// RFC 3339; when absent, the time casebridge received it.
    #[schema(format = DateTime)]
    occurred_at: Option<String>,
    conversation: ConversationJson,
    handoff: HandoffJson,
}

/// `conversation.resolved`: the conversation was resolved on the platform.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "evt-resolved", "type": "conversation.resolved", "occurred_at": "2026-12-01T10:09:00Z",
    "conversation": {"id": "demo-conversation-1", "channel": "web",
        "url": "https://chat.example.com/inbox/demo-conversation-1",
        "contact": {"name": "Ada Lovelace", "email": "ada.demo@example.com", "phone": "+15550100"}}}))]
#[allow(dead_code)]
pub struct ConversationResolvedEvent {
    /// The platform's id of the event, 1 to 200 printable characters.
    #[schema(min_length = 1, max_length = 200)]
    id: String,
    #[serde(rename = "type")]
    kind: ConversationResolvedType,
    /// RFC 3339; when absent, the time casebridge received it.
    #[schema(format = DateTime)]
    occurred_at: Option<String>,
    conversation: ConversationJson,
}

/// The conversation an event belongs to.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = EventConversation)]
pub struct ConversationJson {
    /// The platform's conversation id, 1 to 200 printable characters.
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub id: ConversationId,
    /// A short word (letters, digits, `_`, `-`; at most 32), `web` when
    /// absent: web, email, phone, whatsapp, sms, … (it sets the case's
    /// origin).
    #[serde(default)]
    #[schema(max_length = 32, example = "web")]
    pub channel: Option<String>,
    /// Where an agent opens the conversation on the platform: http(s), at
    /// most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[serde(default)]
    pub contact: Option<ContactJson>,
}

/// The customer, as the platform knows them: matched to a Creatio
/// contact by e-mail, then phone.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = EventContact)]
pub struct ContactJson {
    #[serde(default)]
    #[schema(max_length = 250)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(format = Email, max_length = 250)]
    pub email: Option<String>,
    #[serde(default)]
    #[schema(max_length = 50)]
    pub phone: Option<String>,
}

/// A `message.created` event's message: text, attachments or both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = EventMessage)]
pub struct MessageJson {
    /// The platform's message id, 1 to 200 printable characters.
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub id: MessageId,
    /// `customer`, `ai` or `agent`.
    #[schema(example = "customer")]
    pub role: String,
    /// At most 100,000 characters.
    #[serde(default)]
    #[schema(max_length = 100000)]
    pub text: String,
    /// At most 50.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub attachments: Vec<AttachmentJson>,
}

/// A file attached to a message, by link.
#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[schema(as = EventAttachment)]
pub struct AttachmentJson {
    #[schema(max_length = 250)]
    pub name: String,
    #[schema(max_length = 2000)]
    pub url: String,
}

/// A `conversation.handoff` event's hand-off to a person.
#[derive(Debug, Deserialize, serde::Serialize, Clone, utoipa::ToSchema)]
#[schema(as = EventHandoff)]
pub struct HandoffJson {
    /// For the agent, 1 to 20,000 characters.
    #[schema(min_length = 1, max_length = 20000)]
    pub summary: String,
    /// Why the AI handed over, at most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: String,
    /// A language code (`en`, `pt-BR`); detected when absent.
    #[serde(default)]
    #[schema(max_length = 50)]
    pub language: Option<String>,
    /// `positive`, `neutral` or `negative`; detected when absent.
    #[serde(default)]
    #[schema(max_length = 50)]
    pub sentiment: Option<String>,
}

/// What a job needs to know about its event.
#[derive(Debug, serde::Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobPayload {
    Message {
        event_id: EventId,
        message_id: MessageId,
    },
    Handoff {
        event_id: EventId,
        handoff: HandoffJson,
    },
    Resolve {
        event_id: EventId,
    },
    /// Creatio said an activity was added to the case: look for agent replies.
    ReplyCheck {
        #[serde(default)]
        activity_id: Option<uuid::Uuid>,
    },
    /// Creatio said the case's status changed: look whether it is closed.
    ClosureCheck {
        event_type: String,
        #[serde(default)]
        status_id: Option<uuid::Uuid>,
    },
}

impl JobPayload {
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::Message { .. } => JobKind::Message,
            JobPayload::Handoff { .. } => JobKind::Handoff,
            JobPayload::Resolve { .. } => JobKind::Resolve,
            JobPayload::ReplyCheck { .. } => JobKind::ReplyCheck,
            JobPayload::ClosureCheck { .. } => JobKind::ClosureCheck,
        }
    }
}

/// A field problem: where, and what to do.
#[derive(Debug, Clone)]
pub struct Invalid {
    pub path: String,
    pub message: String,
}

/// An event that passed validation.
#[derive(Debug)]
pub struct Event {
    pub id: EventId,
    pub occurred_at: DateTime<Utc>,
    pub conversation: ConversationJson,
    /// The conversation's channel, lower-cased (`web` when not given).
    pub channel: String,
    pub body: EventBody,
}

impl Event {
    /// The message of a `message.created` event, and who wrote it.
    pub fn message(&self) -> Option<(MessageRole, &MessageJson)> {
        match &self.body {
            EventBody::Message { role, message } => Some((*role, message)),
            _ => None,
        }
    }
}

/// What an event says, by its `type`.
#[derive(Debug)]
pub enum EventBody {
    /// `message.created`: the message, and who wrote it.
    Message {
        role: MessageRole,
        message: MessageJson,
    },
    /// `conversation.handoff`
    Handoff(HandoffJson),
    /// `conversation.resolved`
    Resolved,
}

impl EventBody {
    /// The event's `type`, as the platform sends it.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::Message { .. } => "message.created",
            EventBody::Handoff(_) => "conversation.handoff",
            EventBody::Resolved => "conversation.resolved",
        }
    }
}

fn check_id(path: &str, value: &str, errors: &mut Vec<Invalid>) {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > MAX_ID || v.chars().any(char::is_control) {
        errors.push(Invalid {
            path: path.into(),
            message: format!("must be 1 to {MAX_ID} printable characters"),
        });
    }
}

fn check_len(path: &str, value: Option<&str>, max: usize, errors: &mut Vec<Invalid>) {
    if let Some(v) = value {
        if v.chars().count() > max {
            errors.push(Invalid {
                path: path.into(),
                message: format!("is longer than {max} characters"),
            });
        }
    }
}

fn check_url(path: &str, value: Option<&str>, errors: &mut Vec<Invalid>) {
    if let Some(v) = value {
        let ok = reqwest::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok || v.len() > 2000 {
            errors.push(Invalid {
                path: path.into(),
                message: format!("must be an http(s) URL of at most 2000 characters, got {v:?}"),
            });
        }
    }
}

/// Validates one event; `at` is its place in the request (`events[3]`).
pub fn validate(at: &str, e: EventIn) -> Result<Event, Vec<Invalid>> {
    let mut errors = Vec::new();
    let EventIn {
        id,
        kind,
        occurred_at,
        conversation,
        message,
        handoff,
    } = e;
    check_id(&format!("{at}.id"), id.as_str(), &mut errors);
    let channel = check_conversation(at, &conversation, &mut errors);
    let occurred_at = match occurred_at.as_deref() {
        None => Utc::now(),
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(d) => d.with_timezone(&Utc),
            Err(_) => {
                errors.push(Invalid {
                    path: format!("{at}.occurred_at"),
                    message: format!("{t:?} is not an RFC 3339 time such as 2026-11-22T10:00:00Z"),
                });
                Utc::now()
            }
        },
    };
    let body = check_body(at, &kind, message, handoff, &mut errors);
    match body {
        Some(body) if errors.is_empty() => Ok(Event {
            id,
            occurred_at,
            conversation,
            channel,
            body,
        }),
        _ => Err(errors),
    }
}

/// Checks the conversation's id, channel, URL and contact; returns the
/// channel, lower-cased (`web` when not given).
fn check_conversation(
    at: &str,
    conversation: &ConversationJson,
    errors: &mut Vec<Invalid>,
) -> String {
    check_id(
        &format!("{at}.conversation.id"),
        conversation.id.as_str(),
        errors,
    );
    let channel = conversation
        .channel
        .as_deref()
        .unwrap_or("web")
        .trim()
        .to_ascii_lowercase();
    if channel.is_empty()
        || channel.len() > 32
        || !channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        errors.push(Invalid {
            path: format!("{at}.conversation.channel"),
            message: "must be a short word such as web, email, phone, whatsapp or sms".into(),
        });
    }
    check_url(
        &format!("{at}.conversation.url"),
        conversation.url.as_deref(),
        errors,
    );
    if let Some(c) = &conversation.contact {
        check_len(
            &format!("{at}.conversation.contact.name"),
            c.name.as_deref(),
            250,
            errors,
        );
        check_len(
            &format!("{at}.conversation.contact.phone"),
            c.phone.as_deref(),
            50,
            errors,
        );
        if let Some(email) = c.email.as_deref() {
            let parts: Vec<&str> = email.trim().split('@').collect();
            if parts.len() != 2
                || parts[0].is_empty()
                || !parts[1].contains('.')
                || email.len() > 250
            {
                errors.push(Invalid {
                    path: format!("{at}.conversation.contact.email"),
                    message: format!("{email:?} is not an e-mail address"),
                });
            }
        }
    }
    channel
}

/// What the event says by its `type`, with the part that type requires.
fn check_body(
    at: &str,
    kind: &str,
    message: Option<MessageJson>,
    handoff: Option<HandoffJson>,
    errors: &mut Vec<Invalid>,
) -> Option<EventBody> {
    match kind {
        "message.created" => match message {
            None => {
                errors.push(Invalid {
                    path: format!("{at}.message"),
                    message: "is required for message.created".into(),
                });
                None
            }
            Some(m) => check_message(at, m, errors),
        },
        "conversation.handoff" => match handoff {
            None => {
                errors.push(Invalid {
                    path: format!("{at}.handoff"),
                    message: "is required for conversation.handoff (summary, reason, optional language and sentiment)".into(),
                });
                None
            }
            Some(h) => {
                check_handoff(at, &h, errors);
                Some(EventBody::Handoff(h))
            }
        },
        "conversation.resolved" => Some(EventBody::Resolved),
        other => {
            errors.push(Invalid {
                path: format!("{at}.type"),
                message: format!("{other:?} is not an event type; use message.created, conversation.handoff or conversation.resolved"),
            });
            None
        }
    }
}

/// Checks a `message.created` event's message; its body when the role is
/// one casebridge knows.
fn check_message(at: &str, m: MessageJson, errors: &mut Vec<Invalid>) -> Option<EventBody> {
    check_id(&format!("{at}.message.id"), m.id.as_str(), errors);
    let role = MessageRole::parse(&m.role);
    if role.is_none() {
        errors.push(Invalid {
            path: format!("{at}.message.role"),
            message: format!("{:?} is not a role; use {}", m.role, MessageRole::listed()),
        });
    }
    if m.text.trim().is_empty() && m.attachments.is_empty() {
        errors.push(Invalid {
            path: format!("{at}.message.text"),
            message: "is empty; a message needs text or attachments".into(),
        });
    }
    check_len(
        &format!("{at}.message.text"),
        Some(&m.text),
        MAX_TEXT,
        errors,
    );
    if m.attachments.len() > 50 {
        errors.push(Invalid {
            path: format!("{at}.message.attachments"),
            message: "has more than 50 attachments".into(),
        });
    }
    for (i, a) in m.attachments.iter().enumerate() {
        check_len(
            &format!("{at}.message.attachments[{i}].name"),
            Some(&a.name),
            250,
            errors,
        );
        check_url(
            &format!("{at}.message.attachments[{i}].url"),
            Some(&a.url),
            errors,
        );
    }
    role.map(|role| EventBody::Message { role, message: m })
}

/// Checks a hand-off's fields.
fn check_handoff(at: &str, h: &HandoffJson, errors: &mut Vec<Invalid>) {
    if h.summary.trim().is_empty() {
        errors.push(Invalid {
            path: format!("{at}.handoff.summary"),
            message: "is empty; summarise the conversation for the agent".into(),
        });
    }
    check_len(
        &format!("{at}.handoff.summary"),
        Some(&h.summary),
        20_000,
        errors,
    );
    check_len(
        &format!("{at}.handoff.reason"),
        Some(&h.reason),
        2_000,
        errors,
    );
    check_len(
        &format!("{at}.handoff.language"),
        h.language.as_deref(),
        50,
        errors,
    );
    check_len(
        &format!("{at}.handoff.sentiment"),
        h.sentiment.as_deref(),
        50,
        errors,
    );
}

/// Parses a request body: one event or an array of them.
pub fn parse_body(body: &Value) -> Result<Vec<Event>, Vec<Invalid>> {
    let items: Vec<(String, &Value)> = match body {
        Value::Array(a) if a.is_empty() => {
            return Err(vec![Invalid {
                path: "events".into(),
                message: "the array is empty; send at least one event".into(),
            }])
        }
        Value::Array(a) if a.len() > MAX_EVENTS => {
            return Err(vec![Invalid {
                path: "events".into(),
                message: format!(
                    "{} events in one request; send at most {MAX_EVENTS}",
                    a.len()
                ),
            }])
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("events[{i}]"), v))
            .collect(),
        Value::Object(_) => vec![("event".to_string(), body)],
        _ => {
            return Err(vec![Invalid {
                path: "event".into(),
                message: "the body must be an event object or an array of events".into(),
            }])
        }
    };
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (at, v) in items {
        match serde_path_to_error::deserialize::<_, EventIn>(v) {
            Err(e) => errors.push(Invalid {
                path: format!("{at}.{}", e.path())
                    .replace(".?", "")
                    .trim_end_matches('.')
                    .to_string(),
                message: e.into_inner().to_string(),
            }),
            Ok(raw) => match validate(&at, raw) {
                Ok(ev) => events.push(ev),
                Err(mut es) => errors.append(&mut es),
            },
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

/// The outcome of ingesting one event.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Ingested {
    pub id: EventId,
    /// `accepted`, or `duplicate` for an event id seen before.
    pub status: &'static str,
}

/// A trimmed, non-empty contact detail.
fn detail(value: Option<&String>) -> Option<&str> {
    value.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// Writes a request's events, messages, jobs and timeline lines inside
/// `tx`, a few multi-row statements for the whole request. Answers one
/// [`Ingested`] per event, in order: an event id the org has seen (or seen
/// earlier in this request) is a `duplicate` and changes nothing; a message
/// the conversation has already, under a new event id, is noted on the
/// timeline and queues nothing.
pub async fn ingest_all(
    tx: &mut WriteTx,
    org_id: &OrgId,
    events: &[Event],
) -> StorageResult<Vec<Ingested>> {
    let (answers, fresh) = record_events(tx, org_id, events).await?;
    if fresh.is_empty() {
        return Ok(answers);
    }
    let seqs = take_positions(tx, org_id, &fresh).await?;
    let (stored, carries) = store_messages(tx, org_id, &fresh, &seqs).await?;
    queue_jobs(
        tx,
        org_id,
        &fresh,
        &seqs,
        |i, conversation_id, message_id| {
            carries[i] && stored.contains(&(conversation_id.clone(), message_id.clone()))
        },
    )
    .await?;
    Ok(answers)
}

/// Records the event ids; answers every event (`accepted` or `duplicate`)
/// and returns the new ones, first occurrences in request order.
async fn record_events<'e>(
    tx: &mut WriteTx,
    org_id: &OrgId,
    events: &'e [Event],
) -> StorageResult<(Vec<Ingested>, Vec<&'e Event>)> {
    let mut answers: Vec<Ingested> = events
        .iter()
        .map(|e| Ingested {
            id: e.id.clone(),
            status: "duplicate",
        })
        .collect();
    let mut seen = HashSet::new();
    let firsts: Vec<usize> = (0..events.len())
        .filter(|&i| seen.insert(events[i].id.as_str()))
        .collect();
    let rows: Vec<events::EventRow> = firsts
        .iter()
        .map(|&i| events::EventRow {
            id: &events[i].id,
            conversation_id: &events[i].conversation.id,
            kind: events[i].body.type_name(),
        })
        .collect();
    let new_ids = events::insert_events(tx, org_id, &rows).await?;
    let mut fresh: Vec<&Event> = Vec::new();
    for i in firsts {
        if new_ids.contains(&events[i].id) {
            answers[i].status = "accepted";
            fresh.push(&events[i]);
        }
    }
    Ok((answers, fresh))
}

/// Creates or refreshes each conversation once, in id order, with what the
/// events say of it (a later event's details replace an earlier one's),
/// and takes one job position per event; returns each event's position.
async fn take_positions(
    tx: &mut WriteTx,
    org_id: &OrgId,
    fresh: &[&Event],
) -> StorageResult<Vec<i64>> {
    let case_ids: BTreeMap<&ConversationId, CaseId> = fresh
        .iter()
        .map(|e| {
            let id = &e.conversation.id;
            (id, CaseId(super::ids::case_id(org_id, id)))
        })
        .collect();
    let mut conversations: BTreeMap<&ConversationId, ConversationIn> = BTreeMap::new();
    for e in fresh {
        let c = &e.conversation;
        let contact = c.contact.as_ref();
        let row = conversations.entry(&c.id).or_insert(ConversationIn {
            id: &c.id,
            channel: &e.channel,
            url: None,
            contact_name: None,
            contact_email: None,
            contact_phone: None,
            case_id: case_ids[&c.id],
            seqs: 0,
        });
        row.seqs += 1;
        row.url = c.url.as_deref().or(row.url);
        row.contact_name = detail(contact.and_then(|c| c.name.as_ref())).or(row.contact_name);
        row.contact_email = detail(contact.and_then(|c| c.email.as_ref())).or(row.contact_email);
        row.contact_phone = detail(contact.and_then(|c| c.phone.as_ref())).or(row.contact_phone);
    }
    let rows: Vec<ConversationIn> = conversations.into_values().collect();
    let last_seq = conversations::upsert_conversations(tx, org_id, &rows).await?;
    let mut next_seq: HashMap<&ConversationId, i64> = rows
        .iter()
        .map(|c| (c.id, last_seq.get(c.id).copied().unwrap_or(0) - c.seqs + 1))
        .collect();
    Ok(fresh
        .iter()
        .map(|e| {
            let n = next_seq
                .get_mut(&e.conversation.id)
                .expect("every conversation was upserted");
            *n += 1;
            *n - 1
        })
        .collect())
}

/// Stores the events' messages, each once per conversation. Returns the
/// `(conversation, message)` ids that were new, and which events carried
/// the copy that was stored.
async fn store_messages(
    tx: &mut WriteTx,
    org_id: &OrgId,
    fresh: &[&Event],
    seqs: &[i64],
) -> StorageResult<(HashSet<(ConversationId, MessageId)>, Vec<bool>)> {
    let attachments: Vec<Option<String>> = fresh
        .iter()
        .map(|e| {
            e.message()
                .filter(|(_, m)| !m.attachments.is_empty())
                .map(|(_, m)| serde_json::to_string(&m.attachments).unwrap_or_default())
        })
        .collect();
    let activity_ids: Vec<Option<String>> = fresh
        .iter()
        .map(|e| {
            e.message().map(|(_, m)| {
                super::ids::activity_id(org_id, &e.conversation.id, &m.id).to_string()
            })
        })
        .collect();
    let mut in_request = HashSet::new();
    let mut messages = Vec::new();
    let mut carries = vec![false; fresh.len()];
    for (i, e) in fresh.iter().enumerate() {
        let (Some((role, m)), Some(activity_id)) = (e.message(), activity_ids[i].as_deref()) else {
            continue;
        };
        if !in_request.insert((e.conversation.id.as_str(), m.id.as_str())) {
            continue;
        }
        carries[i] = true;
        messages.push(MessageIn {
            conversation_id: &e.conversation.id,
            id: &m.id,
            seq: seqs[i],
            role,
            text: &m.text,
            attachments: attachments[i].as_deref(),
            occurred_at: e.occurred_at.timestamp_millis(),
            activity_id,
        });
    }
    let stored = messages::insert_messages(tx, org_id, &messages).await?;
    Ok((stored, carries))
}

/// A job and a timeline line per event; a message stored before (`new`
/// says which are not) gets only a line saying it was ignored.
async fn queue_jobs(
    tx: &mut WriteTx,
    org_id: &OrgId,
    fresh: &[&Event],
    seqs: &[i64],
    new: impl Fn(usize, &ConversationId, &MessageId) -> bool,
) -> StorageResult<()> {
    let mut jobs = Vec::new();
    let mut lines = Vec::new();
    for (i, e) in fresh.iter().enumerate() {
        let conversation_id = &e.conversation.id;
        let (payload, summary) = match &e.body {
            EventBody::Message { role, message: m } => {
                if !new(i, conversation_id, &m.id) {
                    // Same message under a new event id: nothing more to write.
                    lines.push(timeline::TimelineIn {
                        conversation_id,
                        kind: "event",
                        summary: format!("Event {} repeats message {}; ignored", e.id, m.id),
                        attempts: None,
                    });
                    continue;
                }
                (
                    JobPayload::Message {
                        event_id: e.id.clone(),
                        message_id: m.id.clone(),
                    },
                    format!("Received {role} message {} (event {})", m.id, e.id),
                )
            }
            EventBody::Handoff(handoff) => (
                JobPayload::Handoff {
                    event_id: e.id.clone(),
                    handoff: handoff.clone(),
                },
                format!("Received hand-off (event {})", e.id),
            ),
            EventBody::Resolved => (
                JobPayload::Resolve {
                    event_id: e.id.clone(),
                },
                format!("Received resolution (event {})", e.id),
            ),
        };
        jobs.push(jobs::JobIn {
            conversation_id,
            seq: seqs[i],
            kind: payload.kind(),
            payload: serde_json::to_string(&payload).unwrap_or_default(),
        });
        lines.push(timeline::TimelineIn {
            conversation_id,
            kind: "event",
            summary,
            attempts: None,
        });
    }
    jobs::insert_jobs(tx, org_id, &jobs).await?;
    timeline::add_timelines(tx, org_id, &lines).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The OpenAPI union ([`TypedEvent`]) and the parser ([`parse_body`])
    /// take the same events and refuse the same: each type with its part,
    /// and none without it.
    #[test]
    fn the_documented_union_and_the_parser_agree() {
        let conversation = json!({"id": "c1", "channel": "web",
                                  "contact": {"name": "Ada", "email": "ada@example.com"}});
        let good = [
            json!({"id": "e1", "type": "message.created", "occurred_at": "2026-11-22T10:00:00Z",
                   "conversation": conversation,
                   "message": {"id": "m1", "role": "customer", "text": "My printer is on fire"}}),
            json!({"id": "e2", "type": "conversation.handoff", "conversation": conversation,
                   "handoff": {"summary": "Needs a person", "reason": "asked for one"}}),
            json!({"id": "e3", "type": "conversation.resolved", "conversation": conversation}),
        ];
        for e in &good {
            assert!(
                serde_json::from_value::<TypedEvent>(e.clone()).is_ok(),
                "{e}"
            );
            assert!(parse_body(e).is_ok(), "{e}");
        }
        let bad = [
            json!({"id": "e4", "type": "message.created", "conversation": conversation}),
            json!({"id": "e5", "type": "conversation.handoff", "conversation": conversation}),
            json!({"id": "e6", "type": "case.closed", "conversation": conversation}),
        ];
        for e in &bad {
            assert!(
                serde_json::from_value::<TypedEvent>(e.clone()).is_err(),
                "{e}"
            );
            assert!(parse_body(e).is_err(), "{e}");
        }
        // The document's examples are events the parser takes.
        use utoipa::PartialSchema;
        for schema in [
            MessageCreatedEvent::schema(),
            ConversationHandoffEvent::schema(),
            ConversationResolvedEvent::schema(),
        ] {
            let example = serde_json::to_value(schema).unwrap()["example"].clone();
            assert!(example.is_object(), "no example");
            assert!(parse_body(&example).is_ok(), "{example}");
            assert!(serde_json::from_value::<TypedEvent>(example).is_ok());
        }
    }

    fn message(role: &str, text: &str) -> Value {
        json!({"id": "e1", "type": "message.created", "occurred_at": "2026-11-22T10:00:00Z",
               "conversation": {"id": "c1", "channel": "web", "contact": {"email": "ada@example.com"}},
               "message": {"id": "m1", "role": role, "text": text}})
    }

    #[test]
    fn a_valid_message_passes() {
        let events = parse_body(&message("customer", "hello")).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].channel, "web");
    }

    #[test]
    fn errors_name_the_field_and_the_position() {
        let body = json!([message("customer", "ok"), message("bot", "x")]);
        let errors = parse_body(&body).unwrap_err();
        assert_eq!(errors[0].path, "events[1].message.role");
        assert!(errors[0].message.contains("customer, ai or agent"));

        let mut wrong_type = message("customer", "x");
        wrong_type["message"]["text"] = json!(42);
        let errors = parse_body(&wrong_type).unwrap_err();
        assert_eq!(errors[0].path, "event.message.text", "{errors:?}");

        let mut missing = message("customer", "x");
        missing["conversation"]
            .as_object_mut()
            .unwrap()
            .remove("id");
        let errors = parse_body(&missing).unwrap_err();
        assert!(
            errors[0].message.contains("missing field `id`"),
            "{errors:?}"
        );

        let long = "x".repeat(MAX_TEXT + 1);
        let errors = parse_body(&message("customer", &long)).unwrap_err();
        assert_eq!(errors[0].path, "event.message.text");

        let mut bad_time = message("customer", "x");
        bad_time["occurred_at"] = json!("yesterday");
        assert_eq!(
            parse_body(&bad_time).unwrap_err()[0].path,
            "event.occurred_at"
        );

        let handoff =
            json!({"id": "e2", "type": "conversation.handoff", "conversation": {"id": "c1"}});
        assert_eq!(parse_body(&handoff).unwrap_err()[0].path, "event.handoff");
        assert!(parse_body(&json!([])).is_err());
        assert!(parse_body(&json!("x")).is_err());
    }
}
