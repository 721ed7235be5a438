//! The sync engine, chat → Creatio (DESIGN.md §2–3, §7):
//!
//! - [`events`]: the event shapes the platform sends, validated field by
//!   field, and their ingest: event, message and outbox job written in one
//!   transaction before `202`.
//! - [`worker`]: tasks that claim jobs (one conversation at a time, in
//!   order), run them, and retry, pause or dead-letter by the delivery policy.
//! - [`round`]: message jobs of many conversations done together: shared
//!   Contact queries, `$batch` requests with one atomic group per
//!   conversation, one transaction to record them.
//! - [`coalesce`]: an org's concurrent creates merged into `$batch` requests.
//! - [`lifecycle`]: what a job does in Creatio: contact, case, activities,
//!   hand-off note, resolution.
//! - [`replies`]: the jobs Creatio's webhook calls queue: find agents'
//!   replies and closures on the case, skip casebridge's own writes, queue
//!   deliveries to the platform.
//! - [`triage`]: at hand-off, AI field values and language/sentiment,
//!   decided once and stored so a retry writes the same.
//!
//! Exactly-once effects come from deterministic ids: a conversation's Case
//! and each message's Activity have ids derived from the org and the
//! platform's ids, so a retried create finds its own record
//! ([`creatio::Error::AlreadyExists`]) instead of writing a second one.

pub mod coalesce;
pub mod events;
pub mod lifecycle;
pub mod replies;
pub mod round;
pub mod triage;
pub mod worker;

pub use lifecycle::same_phone;

use uuid::Uuid;

/// The namespace of casebridge's deterministic ids.
const NAMESPACE: Uuid = uuid::uuid!("6f0b4d55-5c8e-4d4b-9c57-2f3f3b0c6a11");

/// The Case Id of a conversation.
pub fn case_id(org_id: &str, conversation_id: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("case\n{org_id}\n{conversation_id}").as_bytes(),
    )
}

/// The Activity Id of a message.
pub fn activity_id(org_id: &str, conversation_id: &str, message_id: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("activity\n{org_id}\n{conversation_id}\n{message_id}").as_bytes(),
    )
}

/// The Activity Id of a hand-off note.
pub fn handoff_note_id(org_id: &str, conversation_id: &str, event_id: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("handoff\n{org_id}\n{conversation_id}\n{event_id}").as_bytes(),
    )
}

/// The Contact Id casebridge creates for a customer it could not match.
pub fn contact_id(org_id: &str, key: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("contact\n{org_id}\n{key}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(case_id("o", "c"), case_id("o", "c"));
        assert_ne!(case_id("o", "c"), case_id("o2", "c"));
        assert_ne!(activity_id("o", "c", "m1"), activity_id("o", "c", "m2"));
        // No ambiguity from joining: ("a", "b\nc") ≠ ("a\nb", "c") is not
        // needed (ids cannot contain newlines), but the kinds never collide.
        assert_ne!(
            case_id("o", "c").to_string(),
            handoff_note_id("o", "c", "").to_string()
        );
    }
}
