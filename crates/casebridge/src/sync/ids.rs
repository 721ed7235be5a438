//! The deterministic ids of what casebridge writes to Creatio (UUID v5 of
//! the org's and the platform's ids): a retried create finds its own record
//! instead of writing a second one.

use crate::domain::{ConversationId, EventId, MessageId, OrgId};
use uuid::Uuid;

/// The namespace of casebridge's deterministic ids.
const NAMESPACE: Uuid = uuid::uuid!("6f0b4d55-5c8e-4d4b-9c57-2f3f3b0c6a11");

/// The Case Id of a conversation.
pub fn case_id(org_id: &OrgId, conversation_id: &ConversationId) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("case\n{org_id}\n{conversation_id}").as_bytes(),
    )
}

/// The Activity Id of a message.
pub fn activity_id(
    org_id: &OrgId,
    conversation_id: &ConversationId,
    message_id: &MessageId,
) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("activity\n{org_id}\n{conversation_id}\n{message_id}").as_bytes(),
    )
}

/// The Activity Id of a hand-off note.
pub fn handoff_note_id(
    org_id: &OrgId,
    conversation_id: &ConversationId,
    event_id: &EventId,
) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("handoff\n{org_id}\n{conversation_id}\n{event_id}").as_bytes(),
    )
}

/// The Contact Id casebridge creates for a customer it could not match.
pub fn contact_id(org_id: &OrgId, key: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("contact\n{org_id}\n{key}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(
            case_id(&"o".into(), &"c".into()),
            case_id(&"o".into(), &"c".into())
        );
        assert_ne!(
            case_id(&"o".into(), &"c".into()),
            case_id(&"o2".into(), &"c".into())
        );
        assert_ne!(
            activity_id(&"o".into(), &"c".into(), &"m1".into()),
            activity_id(&"o".into(), &"c".into(), &"m2".into())
        );
        // No ambiguity from joining: ("a", "b\nc") ≠ ("a\nb", "c") is not
        // needed (ids cannot contain newlines), but the kinds never collide.
        assert_ne!(
            case_id(&"o".into(), &"c".into()).to_string(),
            handoff_note_id(&"o".into(), &"c".into(), &"".into()).to_string()
        );
    }
}
