//! AI fields (issue 7): Case columns an admin maps to a natural-language
//! description, filled from the transcript at hand-off.
//!
//! - [`Mapping`]: one saved mapping, already checked against the org's
//!   Creatio ([`metadata`]): the OData column written, its size, and for a
//!   lookup the options with their GUIDs.
//! - [`Provider`]: who decides the values — the [`offline`] default (the
//!   description's "value if criterion" lines scored against the transcript,
//!   and pattern extraction for order numbers, e-mails and phone numbers) or
//!   any OpenAI-compatible chat-completions server ([`openai`]).
//! - Every answer goes through [`settle`]: a dropdown only ever takes one of
//!   its configured options, text is trimmed to the column, and a field
//!   nobody could decide stays empty with the reason said.
//! - [`signals`]: language and sentiment when the hand-off lacks them.

pub mod mappings;
pub mod metadata;
pub mod offline;
pub mod openai;
pub mod signals;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// How many mappings one org may have: each is a question to the AI and a
/// column on every handed-off case.
pub const MAX_MAPPINGS: usize = 30;
/// The transcript a provider reads: the newest part when longer.
pub const MAX_TRANSCRIPT_CHARS: usize = 24_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Dropdown,
}

/// One lookup option of a dropdown, resolved by name in the org's Creatio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Choice {
    pub name: String,
    pub id: Uuid,
}

/// A saved mapping: what the admin wrote plus what Creatio told us at save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mapping {
    /// As the admin wrote it: `PriorityId`, `UsrOrderNumber`.
    pub field_name: String,
    /// The label people see (`Priority`).
    pub title: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// How to choose the value; for a dropdown, one line per option
    /// ("High if …").
    pub description: String,
    /// The OData property written: `PriorityId` for the lookup `Priority`.
    pub column: String,
    /// The lookup's entity set, for a dropdown.
    pub lookup: Option<String>,
    /// A dropdown's options (never empty for one).
    #[serde(default)]
    pub options: Vec<Choice>,
    /// A text field's longest value: the admin's `max_length`, else the
    /// column's `MaxLength` in `$metadata` (real Creatio gives none), else
    /// [`DEFAULT_TEXT_LENGTH`].
    pub max_length: Option<usize>,
}

/// A text field's longest value when nobody said: the smallest size of a
/// Creatio text column (50, 250, 500 or unlimited), so the value fits any.
/// Creatio's `$metadata` has no `MaxLength` (reference/creatio-evidence.md
/// §2), and a longer value fails the write.
pub const DEFAULT_TEXT_LENGTH: usize = 50;

/// Who wrote a line of the transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Customer,
    Ai,
    Agent,
}

impl Speaker {
    pub fn parse(role: &str) -> Speaker {
        match role {
            "ai" => Speaker::Ai,
            "agent" => Speaker::Agent,
            _ => Speaker::Customer,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Speaker::Customer => "Customer",
            Speaker::Ai => "AI",
            Speaker::Agent => "Agent",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Line {
    pub speaker: Speaker,
    pub text: String,
}

/// The whole conversation as the AI reads it, plus the hand-off's own words.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub lines: Vec<Line>,
    pub summary: Option<String>,
    pub reason: Option<String>,
}

impl Transcript {
    /// A pasted transcript (the preview): one message per line, `Customer:`,
    /// `AI:` or `Agent:` in front (a line without one continues the previous
    /// message, or is the customer's when it is the first).
    pub fn parse(text: &str) -> Transcript {
        let mut lines: Vec<Line> = Vec::new();
        for raw in text.lines() {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let (speaker, rest) = match raw.split_once(':') {
                Some((who, rest)) => match who.trim().to_ascii_lowercase().as_str() {
                    "customer" | "user" | "client" | "visitor" => (Some(Speaker::Customer), rest),
                    "ai" | "bot" | "assistant" => (Some(Speaker::Ai), rest),
                    "agent" | "support" => (Some(Speaker::Agent), rest),
                    _ => (None, raw),
                },
                None => (None, raw),
            };
            match (speaker, lines.last_mut()) {
                (None, Some(last)) => {
                    last.text.push('\n');
                    last.text.push_str(rest.trim());
                }
                (speaker, _) => lines.push(Line {
                    speaker: speaker.unwrap_or(Speaker::Customer),
                    text: rest.trim().to_string(),
                }),
            }
        }
        Transcript {
            lines,
            ..Default::default()
        }
    }

    /// What the customer wrote, message by message.
    pub fn customer_texts(&self) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter(|l| l.speaker == Speaker::Customer)
            .map(|l| l.text.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.summary.is_none()
    }

    /// The transcript as one text, newest part kept when over `max_chars`.
    pub fn render(&self, max_chars: usize) -> String {
        let mut out = String::new();
        if let Some(s) = self.summary.as_deref().filter(|s| !s.trim().is_empty()) {
            out.push_str(&format!("Hand-off summary: {}\n", s.trim()));
        }
        if let Some(r) = self.reason.as_deref().filter(|s| !s.trim().is_empty()) {
            out.push_str(&format!("Hand-off reason: {}\n", r.trim()));
        }
        let mut body: Vec<String> = Vec::new();
        let mut used = out.chars().count();
        for line in self.lines.iter().rev() {
            let l = format!("{}: {}\n", line.speaker.label(), line.text.trim());
            let n = l.chars().count();
            if used + n > max_chars {
                body.push("[earlier messages left out]\n".into());
                break;
            }
            used += n;
            body.push(l);
        }
        body.reverse();
        out.extend(body);
        out
    }
}

/// What one mapping got, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldValue {
    pub field_name: String,
    pub title: String,
    /// The OData property written.
    pub column: String,
    /// The value (a dropdown's option name); `null` when left empty.
    pub value: Option<String>,
    /// A dropdown's option GUID.
    pub id: Option<Uuid>,
    /// Why this value, or why none.
    pub reason: String,
}

impl FieldValue {
    /// The timeline line for this field.
    pub fn timeline_line(&self) -> String {
        match &self.value {
            Some(v) => format!(
                "AI field {} ({}) = {v:?}: {}",
                self.title, self.column, self.reason
            ),
            None => format!(
                "AI field {} ({}) left empty: {}",
                self.title, self.column, self.reason
            ),
        }
    }
}

/// The values every mapping got from one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evaluation {
    /// `offline` or `openai`.
    pub provider: String,
    pub values: Vec<FieldValue>,
}

impl Evaluation {
    /// The Case columns to write: decided values only (an empty field is
    /// left as Creatio has it).
    pub fn case_columns(&self) -> Map<String, Value> {
        self.values
            .iter()
            .filter_map(|v| {
                let value = match (v.id, &v.value) {
                    (Some(id), _) => Value::String(id.to_string()),
                    (None, Some(text)) => Value::String(text.clone()),
                    (None, None) => return None,
                };
                Some((v.column.clone(), value))
            })
            .collect()
    }
}

/// A provider's raw answer for one field, before [`settle`].
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub value: Option<String>,
    pub reason: String,
}

impl Answer {
    pub fn none(reason: impl Into<String>) -> Answer {
        Answer {
            value: None,
            reason: reason.into(),
        }
    }
}

/// Compares option names the way people mean them: case, spacing and
/// surrounding quotes do not matter.
pub fn same_name(a: &str, b: &str) -> bool {
    normalize_name(a) == normalize_name(b)
}

pub fn normalize_name(s: &str) -> String {
    s.trim()
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | '*' | '“' | '”'))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Holds a provider's answer to the mapping's rules: a dropdown takes only
/// one of its options (anything else leaves it empty, saying what came
/// back), text is trimmed to the column's size.
pub fn settle(m: &Mapping, answer: Answer) -> FieldValue {
    let mut out = FieldValue {
        field_name: m.field_name.clone(),
        title: m.title.clone(),
        column: m.column.clone(),
        value: None,
        id: None,
        reason: answer.reason,
    };
    let Some(raw) = answer
        .value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return out;
    };
    match m.kind {
        FieldType::Dropdown => match m.options.iter().find(|o| same_name(&o.name, &raw)) {
            Some(choice) => {
                out.value = Some(choice.name.clone());
                out.id = Some(choice.id);
            }
            None => {
                let names: Vec<&str> = m.options.iter().map(|o| o.name.as_str()).collect();
                out.reason = format!(
                    "the answer {raw:?} is not one of the options ({}), so the field was left empty",
                    names.join(", ")
                );
            }
        },
        FieldType::Text => {
            let limit = m.max_length.unwrap_or(DEFAULT_TEXT_LENGTH);
            if raw.chars().count() > limit {
                let cut: String = raw.chars().take(limit).collect();
                out.reason = format!(
                    "{} (trimmed to the column's {limit} characters)",
                    out.reason
                );
                out.value = Some(cut.trim_end().to_string());
            } else {
                out.value = Some(raw);
            }
        }
    }
    out
}

/// The configured provider.
pub enum Provider {
    Offline,
    OpenAi(openai::Client),
}

impl Provider {
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Offline => "offline",
            Provider::OpenAi(_) => "openai",
        }
    }

    /// Whether the provider understands English only (the offline one's
    /// stemmer, stop words and negations are English).
    pub fn english_only(&self) -> bool {
        matches!(self, Provider::Offline)
    }

    /// Decides every mapping's value. Never fails: a provider that cannot
    /// answer leaves the fields empty and says why, so a hand-off is never
    /// held up by the AI.
    pub async fn evaluate(&self, mappings: &[Mapping], transcript: &Transcript) -> Evaluation {
        let answers: Vec<Answer> = if transcript.is_empty() {
            mappings
                .iter()
                .map(|_| Answer::none("the conversation has no messages to read"))
                .collect()
        } else {
            match self {
                Provider::Offline => mappings
                    .iter()
                    .map(|m| offline::decide(m, transcript))
                    .collect(),
                Provider::OpenAi(client) => client.decide(mappings, transcript).await,
            }
        };
        Evaluation {
            provider: self.name().into(),
            values: mappings
                .iter()
                .zip(answers)
                .map(|(m, a)| settle(m, a))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priority() -> Mapping {
        Mapping {
            field_name: "PriorityId".into(),
            title: "Priority".into(),
            kind: FieldType::Dropdown,
            description: "High if urgent\nLow otherwise".into(),
            column: "PriorityId".into(),
            lookup: Some("CasePriority".into()),
            options: vec![
                Choice {
                    name: "High".into(),
                    id: Uuid::from_u128(1),
                },
                Choice {
                    name: "Low".into(),
                    id: Uuid::from_u128(2),
                },
            ],
            max_length: None,
        }
    }

    #[test]
    fn a_dropdown_takes_only_its_options() {
        let v = settle(
            &priority(),
            Answer {
                value: Some(" high ".into()),
                reason: "r".into(),
            },
        );
        assert_eq!(v.value.as_deref(), Some("High"));
        assert_eq!(v.id, Some(Uuid::from_u128(1)));
        let v = settle(
            &priority(),
            Answer {
                value: Some("Urgent".into()),
                reason: "r".into(),
            },
        );
        assert_eq!(v.value, None);
        assert_eq!(v.id, None);
        assert!(
            v.reason
                .contains("\"Urgent\" is not one of the options (High, Low)"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn text_is_trimmed_to_the_column() {
        let m = Mapping {
            kind: FieldType::Text,
            options: vec![],
            lookup: None,
            max_length: Some(5),
            column: "UsrOrderNumber".into(),
            ..priority()
        };
        let v = settle(
            &m,
            Answer {
                value: Some("ABCDEFGH".into()),
                reason: "found".into(),
            },
        );
        assert_eq!(v.value.as_deref(), Some("ABCDE"));
        assert!(v.reason.contains("trimmed to the column's 5 characters"));
        let v = settle(
            &m,
            Answer {
                value: Some("  ".into()),
                reason: "nothing".into(),
            },
        );
        assert_eq!(v.value, None);
        let e = Evaluation {
            provider: "offline".into(),
            values: vec![v],
        };
        assert!(e.case_columns().is_empty());
    }

    #[test]
    fn a_pasted_transcript_keeps_speakers_and_continuations() {
        let t = Transcript::parse("Hi, my order is late\nCustomer: order ORD-1\nAI: Let me check\nit may take a day\nAgent: Sorry");
        assert_eq!(t.lines.len(), 4);
        assert_eq!(t.lines[0].speaker, Speaker::Customer);
        assert_eq!(t.lines[2].speaker, Speaker::Ai);
        assert_eq!(t.lines[2].text, "Let me check\nit may take a day");
        assert_eq!(t.lines[3].speaker, Speaker::Agent);
        assert_eq!(t.customer_texts().count(), 2);
    }

    #[test]
    fn rendering_keeps_the_newest_messages() {
        let mut t =
            Transcript::parse("Customer: first message here\nAI: second\nCustomer: third and last");
        t.summary = Some("S".into());
        let full = t.render(10_000);
        assert!(full.starts_with("Hand-off summary: S\n"));
        assert!(full.contains("Customer: first message here"));
        let short = t.render(60);
        assert!(!short.contains("first message"), "{short}");
        assert!(short.contains("third and last"));
        assert!(short.contains("[earlier messages left out]"));
    }
}
