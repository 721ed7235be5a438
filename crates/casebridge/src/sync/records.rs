//! The records a job writes to Creatio, built from stored data alone: the
//! Contact for a customer casebridge could not match, the Case, each
//! message's Activity, the AI text to try after "value too long", and the
//! timeline lines that say what was written. No I/O, so each is tested
//! without the emulator.

use chrono::{DateTime, Utc};
use creatio::ids::{activity_category, activity_status, activity_type, case_origin};
use creatio::models::{Activity, Case, Contact};
use creatio::Error as CreatioError;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::context::{contact_uuid, JobError};
use super::events::HandoffJson;
use crate::connection::Settings;
use crate::domain::OrgId;
use crate::domain::{MessageId, MessageRole};
use crate::storage::conversations::Conversation;
use crate::storage::messages::Message;

pub(super) const MAX_TITLE: usize = 250;

/// Why a message that has no case to go on is kept for later: the case is
/// created at hand-off, or with the first customer message. `None` when
/// the message (of `role`) opens the case.
pub(super) fn stored_until_case(
    settings: &Settings,
    role: Option<MessageRole>,
    message_id: &MessageId,
) -> Option<String> {
    let why = if settings.create_case_only_on_handoff {
        "the case is created at hand-off"
    } else if role != Some(MessageRole::Customer) {
        "the case is created with the first customer message"
    } else {
        return None;
    };
    Some(format!("Message {message_id} stored; {why}"))
}

pub(super) fn first_line(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    truncate(line, max)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn origin(channel: &str) -> Uuid {
    match channel {
        "email" => case_origin::EMAIL,
        "phone" | "call" | "voice" => case_origin::CALL,
        "whatsapp" | "sms" | "messenger" | "telegram" | "instagram" | "facebook" => {
            case_origin::SOCIAL_NETWORKS
        }
        _ => case_origin::CHAT,
    }
}

pub(super) fn matched_contact(id: Uuid) -> String {
    format!("Matched Creatio contact {id}")
}

pub(super) fn created_contact(id: Uuid) -> String {
    format!("Created Creatio contact {id}")
}

/// The Contact casebridge creates for a customer no Contact matched: its
/// Id derived from the e-mail (else the phone), so every conversation of
/// that customer creates the same one. `None` without either.
pub(super) fn new_contact(org_id: &OrgId, c: &Conversation) -> Option<Contact> {
    let key = c
        .contact_email
        .as_deref()
        .map(|e| format!("email:{}", e.to_ascii_lowercase()))
        .or_else(|| c.contact_phone.as_deref().map(|p| format!("phone:{p}")))?;
    Some(Contact {
        id: Some(super::ids::contact_id(org_id, &key)),
        name: Some(truncate(
            c.contact_name
                .as_deref()
                .or(c.contact_email.as_deref())
                .or(c.contact_phone.as_deref())
                .unwrap_or("Customer"),
            250,
        )),
        email: c.contact_email.clone(),
        phone: c.contact_phone.clone(),
        ..Default::default()
    })
}

pub(super) fn symptoms(c: &Conversation, lead: &str) -> String {
    let mut s = truncate(lead.trim(), 4000);
    s.push_str(&format!("\n\nConversation: {}", c.id));
    if let Some(url) = &c.url {
        s.push_str(&format!("\nView conversation: {url}"));
    }
    s
}

/// The conversation's new Case: subject from the first customer message,
/// summary (the hand-off's, else that message), origin from the channel,
/// the linked Contact, default owner and group.
pub(super) fn new_case(
    c: &Conversation,
    settings: &Settings,
    first_customer_text: Option<&str>,
    handoff: Option<&HandoffJson>,
) -> Result<Case, JobError> {
    let subject = match first_customer_text
        .map(|t| first_line(t, MAX_TITLE))
        .filter(|s| !s.is_empty())
    {
        Some(s) => s,
        None => format!("Conversation {} ({})", c.id, c.channel),
    };
    let lead = handoff
        .map(|h| h.summary.as_str())
        .or(first_customer_text)
        .unwrap_or_default();
    Ok(Case {
        id: Some(c.case_id.0),
        subject: Some(subject),
        symptoms: Some(symptoms(c, lead)),
        origin_id: Some(origin(&c.channel)),
        contact_id: contact_uuid(c),
        owner_id: settings.default_owner_id,
        group_id: settings.default_group_id,
        ..Default::default()
    })
}

pub(super) fn created_case(number: Option<&str>, id: Uuid) -> String {
    format!("Created case {} ({id})", number.unwrap_or("?"))
}

/// A Case body (create or PATCH) with extra columns: AI fields, which may
/// be a tenant's own `Usr…` columns the typed model does not know.
pub(super) fn case_body(case: &Case, extra: &Map<String, Value>) -> Result<Value, CreatioError> {
    let mut body = serde_json::to_value(case)
        .map_err(|e| CreatioError::InvalidRequest(format!("cannot encode the case: {e}")))?;
    if let Some(o) = body.as_object_mut() {
        // The AI's owner or group, when mapped, wins over the defaults.
        o.extend(extra.clone());
    }
    Ok(body)
}

/// The AI columns to try after a "value too long": first the text values
/// cut to the smallest Creatio text size, then without text values; `None`
/// when nothing is left to change. Lookup values (GUIDs) are kept.
pub(super) fn smaller_ai_text(
    columns: &Map<String, Value>,
    tried: usize,
) -> Option<(Map<String, Value>, String)> {
    let limit = crate::ai::DEFAULT_TEXT_LENGTH;
    let is_text = |v: &Value| v.as_str().is_some_and(|s| Uuid::parse_str(s).is_err());
    let texts: Vec<&String> = columns
        .iter()
        .filter(|(_, v)| is_text(v))
        .map(|(k, _)| k)
        .collect();
    let long: Vec<&String> = columns
        .iter()
        .filter(|(_, v)| is_text(v) && v.as_str().is_some_and(|s| s.chars().count() > limit))
        .map(|(k, _)| k)
        .collect();
    if tried == 0 && !long.is_empty() {
        let shortened = columns
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) if is_text(v) && s.chars().count() > limit => {
                    let cut: String = s.chars().take(limit).collect();
                    (k.clone(), Value::String(cut.trim_end().to_string()))
                }
                _ => (k.clone(), v.clone()),
            })
            .collect();
        let names: Vec<&str> = long.iter().map(|k| k.as_str()).collect();
        return Some((
            shortened,
            format!("wrote {} cut to {limit} characters", names.join(", ")),
        ));
    }
    if texts.is_empty() {
        return None;
    }
    let kept = columns
        .iter()
        .filter(|(_, v)| !is_text(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let names: Vec<&str> = texts.iter().map(|k| k.as_str()).collect();
    Some((kept, format!("left {} empty", names.join(", "))))
}

pub(super) fn activity_for(
    c: &Conversation,
    m: &Message,
    contact_id: Option<Uuid>,
    case_id: Uuid,
    first: bool,
) -> Activity {
    let label = match m.role {
        MessageRole::Customer => "Customer",
        MessageRole::Ai => "AI",
        MessageRole::Agent => "Agent",
    };
    let mut notes = m.text.clone();
    if let Some(a) = m
        .attachments
        .as_deref()
        .and_then(|a| serde_json::from_str::<Vec<super::events::AttachmentJson>>(a).ok())
    {
        notes.push_str("\n\nAttachments:");
        for att in a {
            notes.push_str(&format!("\n- {}: {}", att.name, att.url));
        }
    }
    if first {
        if let Some(url) = &c.url {
            notes.push_str(&format!("\n\nView conversation: {url}"));
        }
    }
    let at: DateTime<Utc> = DateTime::from_timestamp_millis(m.occurred_at).unwrap_or_else(Utc::now);
    let line = first_line(&m.text, MAX_TITLE - label.len() - 2);
    Activity {
        id: Uuid::parse_str(&m.activity_id).ok(),
        title: Some(if line.is_empty() {
            format!("{label}: (attachment)")
        } else {
            format!("{label}: {line}")
        }),
        notes: Some(notes),
        type_id: Some(activity_type::TASK),
        activity_category_id: Some(activity_category::TODO),
        status_id: Some(activity_status::COMPLETED),
        case_id: Some(case_id),
        contact_id,
        start_date: Some(at),
        due_date: Some(at),
        ..Default::default()
    }
}

/// The timeline line for activities written (at least one).
pub(super) fn wrote_activities(written: &[Message]) -> String {
    match written {
        [one] => format!("Wrote activity {} for message {}", one.activity_id, one.id),
        _ => format!(
            "Wrote {} activities (messages {} to {}) in one $batch",
            written.len(),
            written[0].id,
            written[written.len() - 1].id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(only_on_handoff: bool) -> Settings {
        Settings {
            instance: creatio::InstanceUrl::parse("https://acme.creatio.com").unwrap(),
            identity_service_url: None,
            token_url: "https://acme.creatio.com/0/connect/token".into(),
            client_id: "id".into(),
            client_secret: "secret".to_string().into(),
            default_owner_id: Some(Uuid::from_u128(1)),
            default_group_id: Some(Uuid::from_u128(2)),
            resolved_status_id: None,
            create_case_only_on_handoff: only_on_handoff,
            create_missing_contacts: true,
            case_append_channels: Vec::new(),
        }
    }

    fn conversation(channel: &str) -> Conversation {
        Conversation {
            org_id: "org".into(),
            id: "conv-1".into(),
            channel: channel.into(),
            url: Some("https://chat.example.com/c/1".into()),
            contact_name: None,
            contact_email: Some("Ann@Example.com".into()),
            contact_phone: Some("+1 617 440 2498".into()),
            state: crate::domain::ConversationState::Open,
            case_id: crate::domain::CaseId(super::super::ids::case_id(
                &"org".into(),
                &"conv-1".into(),
            )),
            case_created: false,
            case_number: None,
            creatio_contact_id: Some(Uuid::from_u128(7).to_string()),
            created_at: 0,
            updated_at: 0,
            erased_at: None,
        }
    }

    fn message(id: &str, role: MessageRole, text: &str, attachments: Option<&str>) -> Message {
        Message {
            id: id.into(),
            seq: 1,
            role,
            text: text.into(),
            attachments: attachments.map(str::to_string),
            occurred_at: 1_700_000_000_000,
            activity_id: Uuid::from_u128(9).to_string(),
        }
    }

    #[test]
    fn a_case_is_named_by_the_first_customer_line_and_routed_by_the_settings() {
        let c = conversation("whatsapp");
        let text = "\n  My order never arrived  \nIt was due Monday.";
        let case = new_case(&c, &settings(false), Some(text), None).unwrap();
        assert_eq!(case.subject.as_deref(), Some("My order never arrived"));
        assert_eq!(
            case.id,
            Some(super::super::ids::case_id(&"org".into(), &"conv-1".into()))
        );
        assert_eq!(case.origin_id, Some(case_origin::SOCIAL_NETWORKS));
        assert_eq!(case.contact_id, Some(Uuid::from_u128(7)));
        assert_eq!(case.owner_id, Some(Uuid::from_u128(1)));
        assert_eq!(case.group_id, Some(Uuid::from_u128(2)));
        let symptoms = case.symptoms.unwrap();
        assert!(symptoms.starts_with("My order never arrived"), "{symptoms}");
        assert!(
            symptoms
                .ends_with("Conversation: conv-1\nView conversation: https://chat.example.com/c/1"),
            "{symptoms}"
        );
        // A hand-off's summary leads the symptoms; without customer text the
        // subject names the conversation.
        let handoff = HandoffJson {
            summary: "Refund wanted".into(),
            reason: String::new(),
            language: None,
            sentiment: None,
        };
        let case = new_case(
            &conversation("email"),
            &settings(true),
            None,
            Some(&handoff),
        )
        .unwrap();
        assert_eq!(case.subject.as_deref(), Some("Conversation conv-1 (email)"));
        assert!(case.symptoms.unwrap().starts_with("Refund wanted"));
        assert_eq!(case.origin_id, Some(case_origin::EMAIL));
    }

    #[test]
    fn a_long_first_line_is_cut_to_creatio_s_title_size() {
        let long = "x".repeat(400);
        let case = new_case(&conversation("web"), &settings(false), Some(&long), None).unwrap();
        let subject = case.subject.unwrap();
        assert_eq!(subject.chars().count(), MAX_TITLE);
        assert!(subject.ends_with('…'));
    }

    #[test]
    fn an_activity_is_titled_by_role_and_carries_attachments_and_the_link_once() {
        let c = conversation("web");
        let case_id = Uuid::from_u128(3);
        let attachments = r#"[{"name": "photo.jpg", "url": "https://files.example.com/p.jpg"}]"#;
        let m = message(
            "m1",
            MessageRole::Customer,
            "Screen cracked\nsee photo",
            Some(attachments),
        );
        let first = activity_for(&c, &m, Some(Uuid::from_u128(7)), case_id, true);
        assert_eq!(first.title.as_deref(), Some("Customer: Screen cracked"));
        assert_eq!(
            first.notes.as_deref(),
            Some("Screen cracked\nsee photo\n\nAttachments:\n- photo.jpg: https://files.example.com/p.jpg\n\nView conversation: https://chat.example.com/c/1")
        );
        assert_eq!(first.case_id, Some(case_id));
        assert_eq!(first.contact_id, Some(Uuid::from_u128(7)));
        assert_eq!(first.id, Some(Uuid::from_u128(9)));
        assert_eq!(first.status_id, Some(activity_status::COMPLETED));
        assert_eq!(
            first.start_date.map(|d| d.timestamp_millis()),
            Some(1_700_000_000_000)
        );
        let later = activity_for(
            &c,
            &message("m2", MessageRole::Ai, "", None),
            None,
            case_id,
            false,
        );
        assert_eq!(later.title.as_deref(), Some("AI: (attachment)"));
        assert_eq!(later.notes.as_deref(), Some(""));
        let agent = activity_for(
            &c,
            &message("m3", MessageRole::Agent, "On it", None),
            None,
            case_id,
            false,
        );
        assert_eq!(agent.title.as_deref(), Some("Agent: On it"));
    }

    #[test]
    fn an_unmatched_customer_becomes_a_contact_keyed_by_e_mail_else_phone() {
        let c = conversation("web");
        let by_email = new_contact(&"org".into(), &c).unwrap();
        assert_eq!(
            by_email.id,
            Some(super::super::ids::contact_id(
                &"org".into(),
                "email:ann@example.com"
            ))
        );
        assert_eq!(by_email.name.as_deref(), Some("Ann@Example.com"));
        let phone_only = Conversation {
            contact_email: None,
            contact_name: Some("Bob".into()),
            ..conversation("sms")
        };
        let by_phone = new_contact(&"org".into(), &phone_only).unwrap();
        assert_eq!(
            by_phone.id,
            Some(super::super::ids::contact_id(
                &"org".into(),
                "phone:+1 617 440 2498"
            ))
        );
        assert_eq!(by_phone.name.as_deref(), Some("Bob"));
        let anonymous = Conversation {
            contact_email: None,
            contact_phone: None,
            ..conversation("web")
        };
        assert!(new_contact(&"org".into(), &anonymous).is_none());
    }

    #[test]
    fn messages_wait_for_the_case_as_the_org_decided() {
        assert_eq!(
            stored_until_case(&settings(false), Some(MessageRole::Customer), &"m1".into()),
            None
        );
        assert_eq!(
            stored_until_case(&settings(false), Some(MessageRole::Ai), &"m1".into()).as_deref(),
            Some("Message m1 stored; the case is created with the first customer message")
        );
        assert_eq!(
            stored_until_case(&settings(true), Some(MessageRole::Customer), &"m1".into())
                .as_deref(),
            Some("Message m1 stored; the case is created at hand-off")
        );
    }

    #[test]
    fn the_timeline_says_which_activities_were_written() {
        let one = [message("m1", MessageRole::Customer, "hi", None)];
        assert_eq!(
            wrote_activities(&one),
            format!("Wrote activity {} for message m1", Uuid::from_u128(9))
        );
        let two = [
            one[0].clone(),
            message("m2", MessageRole::Ai, "hello", None),
        ];
        assert_eq!(
            wrote_activities(&two),
            "Wrote 2 activities (messages m1 to m2) in one $batch"
        );
        assert_eq!(
            created_case(Some("SR00042"), Uuid::from_u128(3)),
            format!("Created case SR00042 ({})", Uuid::from_u128(3))
        );
    }
    #[test]
    fn too_long_ai_text_is_cut_then_left_out_and_lookups_stay() {
        let guid = "8b700f24-f46b-1410-ee8c-0050ba5d6c38";
        let columns: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "PriorityId": guid, "UsrOrderNumber": "x".repeat(80), "UsrNote": "short"
        }))
        .unwrap();
        let (cut, what) = smaller_ai_text(&columns, 0).unwrap();
        assert_eq!(cut["UsrOrderNumber"].as_str().unwrap().len(), 50);
        assert_eq!(cut["UsrNote"], "short");
        assert_eq!(cut["PriorityId"], guid);
        assert_eq!(what, "wrote UsrOrderNumber cut to 50 characters");
        let (kept, what) = smaller_ai_text(&cut, 1).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept["PriorityId"], guid);
        assert_eq!(what, "left UsrOrderNumber, UsrNote empty");
        assert!(
            smaller_ai_text(&kept, 2).is_none(),
            "nothing left to change"
        );
    }
}
