//! casebridge's domain words as types.
//!
//! - [`OrgId`] and [`ConversationId`]: which tenant, and which of its
//!   conversations, a row, a job or a request belongs to; [`CaseId`]: the
//!   Creatio Case a conversation is on; [`EventId`] and [`MessageId`]: the
//!   platform's events and messages. Each a type of its own so that one
//!   cannot be passed where another is meant.
//! - The closed sets: who wrote a message, where a conversation stands,
//!   what a job does. Each is stored and sent as the same lower-case word
//!   (`handed_off`, `reply_check`), parsed once where it comes in (a
//!   request, a row), so code past that point matches on variants instead
//!   of comparing strings.
//! - [`Cause`]: the request whose work a task does, which what it queues
//!   records (its id, and its trace context with traces on).

/// An id as stored and sent: a type of its own per kind, so one kind of
/// id cannot be passed where another is meant.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            sqlx::Type,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_string())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// An org's id (`org_` and 32 hex digits).
    OrgId
);

text_id!(
    /// A conversation's id, as the platform names it (unique in its org).
    ConversationId
);

/// A Creatio Case's Id: the conversation's own (derived from the org and
/// conversation ids, [`crate::sync::ids`]) or, after a case append, the
/// contact's open case.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct CaseId(pub uuid::Uuid);

impl CaseId {
    /// A stored id (text), if it is one.
    pub fn parse(text: &str) -> Option<CaseId> {
        uuid::Uuid::parse_str(text).ok().map(CaseId)
    }
}

impl From<uuid::Uuid> for CaseId {
    fn from(id: uuid::Uuid) -> Self {
        CaseId(id)
    }
}

impl std::fmt::Display for CaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

text_id!(
    /// A platform event's id: its idempotency key (unique in its org).
    EventId
);

text_id!(
    /// A message's id, as the platform names it (unique in its
    /// conversation).
    MessageId
);

impl OrgId {
    /// A new org's id.
    pub fn generate() -> OrgId {
        OrgId(format!("org_{}", uuid::Uuid::new_v4().simple()))
    }
}

/// A closed set of words: the enum, its text form, parsing and display.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        // utoipa does not see the variants' renames through this macro; the
        // words are the variants in snake_case, which it does see (a test
        // holds the schema to the words).
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the order the words are listed to people.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value a word names; `None` for any other word.
            pub fn parse(word: &str) -> Option<$name> {
                match word {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The words, as an error message lists them: `a, b or c`.
            pub fn listed() -> String {
                let words: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                match words.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                    _ => words.join(""),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// Who wrote a message in the conversation.
    MessageRole {
        Customer = "customer",
        /// The platform's AI agent.
        Ai = "ai",
        /// A human agent, on the platform's side.
        Agent = "agent",
    }
);

word_enum!(
    /// Where a conversation stands.
    ConversationState {
        Open = "open",
        /// The AI handed it to a human; the case holds the hand-off note.
        HandedOff = "handed_off",
        /// Resolved on the platform, or its case was closed in Creatio.
        Resolved = "resolved",
    }
);

word_enum!(
    /// What a sync job does.
    JobKind {
        /// Write a message (and those waiting before it) as activities.
        Message = "message",
        Handoff = "handoff",
        Resolve = "resolve",
        /// Creatio said an activity was added: look for agents' replies.
        ReplyCheck = "reply_check",
        /// Creatio said the case's status changed: look whether it closed.
        ClosureCheck = "closure_check",
    }
);

/// The request whose work the current task does: its id
/// (`x-request-id`) and its trace context (a W3C `traceparent`, when
/// traces are on). Set by the API for each request, and by the workers
/// for a job or delivery the request caused, so that what that work
/// queues in turn records the same cause without every function in
/// between passing it on.
#[derive(Debug, Clone, Default)]
pub struct Cause {
    pub request_id: Option<String>,
    /// The span the queued work's span becomes a child of.
    pub traceparent: Option<String>,
}

tokio::task_local! {
    static CAUSE: Cause;
}

/// The cause of the work being done (empty outside such work).
pub fn current_cause() -> Cause {
    CAUSE.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `work` as work `cause` caused.
pub async fn with_cause<F: std::future::Future>(cause: Cause, work: F) -> F::Output {
    CAUSE.scope(cause, work).await
}

/// The channels casebridge knows, as events name them: each maps to a
/// Creatio case origin (`sync::records`), and a setting that lists
/// channels (`case_append_channels`) takes only these. An event may name
/// another channel: its case's origin is Chat.
pub const KNOWN_CHANNELS: &[&str] = &[
    "web",
    "chat",
    "api",
    "email",
    "phone",
    "call",
    "voice",
    "whatsapp",
    "sms",
    "messenger",
    "telegram",
    "instagram",
    "facebook",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A word enum's words as its OpenAPI schema lists them, and as
    /// `as_str` says them.
    fn schema_words<T: utoipa::PartialSchema + std::fmt::Display>(
        all: &[T],
    ) -> (Vec<String>, Vec<String>) {
        let schema = serde_json::to_value(T::schema()).unwrap();
        let listed = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        (listed, all.iter().map(|v| v.to_string()).collect())
    }

    #[tokio::test]
    async fn a_cause_holds_within_its_work_only() {
        assert!(current_cause().request_id.is_none());
        let cause = Cause {
            request_id: Some("r1".into()),
            traceparent: None,
        };
        let seen = with_cause(cause, async { current_cause().request_id }).await;
        assert_eq!(seen.as_deref(), Some("r1"));
        assert!(current_cause().request_id.is_none());
    }

    #[test]
    fn every_word_parses_back_to_its_value() {
        for role in MessageRole::ALL {
            assert_eq!(MessageRole::parse(role.as_str()), Some(*role));
        }
        for state in ConversationState::ALL {
            assert_eq!(ConversationState::parse(state.as_str()), Some(*state));
        }
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(MessageRole::parse("bot"), None);
        assert_eq!(MessageRole::parse("Customer"), None, "words are exact");
        assert_eq!(MessageRole::listed(), "customer, ai or agent");
        assert_eq!(ConversationState::HandedOff.to_string(), "handed_off");
        // The OpenAPI schema lists the same words.
        for words in [
            schema_words::<ConversationState>(ConversationState::ALL),
            schema_words::<MessageRole>(MessageRole::ALL),
            schema_words::<JobKind>(JobKind::ALL),
        ] {
            assert_eq!(words.0, words.1);
        }
    }
}
