//! What a hand-off adds to the case beyond the note: AI field values, and
//! the language and sentiment when the hand-off event lacks them.
//!
//! Decided once per hand-off event and stored before anything is written,
//! so a retried job writes the same values (a language model asked twice
//! may answer differently, and each question costs). The timeline gets one
//! line per field, saying the value and why, or why it stayed empty.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::context::{timeline, Context, JobError};
use super::events::HandoffJson;
use crate::ai::signals::{detect_language, detect_sentiment, two_letter, Language, Sentiment};
use crate::ai::{Evaluation, Transcript};
use crate::domain::EventId;
use crate::storage::ai_fields;
use crate::storage::jobs::Job;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Triage {
    /// `None` when the org maps no AI fields.
    pub evaluation: Option<Evaluation>,
    pub language: Option<Language>,
    pub sentiment: Option<Sentiment>,
}

impl Triage {
    /// The Case columns the AI decided.
    pub fn case_columns(&self) -> Map<String, Value> {
        self.evaluation
            .as_ref()
            .map(Evaluation::case_columns)
            .unwrap_or_default()
    }

    /// The hand-off note's language line.
    pub fn language_line(&self) -> String {
        self.language
            .as_ref()
            .map(Language::display)
            .unwrap_or_else(|| "not given, and too little text to detect".into())
    }

    pub fn sentiment_line(&self) -> String {
        self.sentiment
            .as_ref()
            .map(Sentiment::display)
            .unwrap_or_else(|| "not given, and no customer message to read".into())
    }
}

fn decode(stored: &str) -> Result<Triage, JobError> {
    serde_json::from_str(stored)
        .map_err(|e| JobError::Permanent(format!("unreadable stored AI evaluation: {e}")))
}

/// The hand-off's triage: the stored one when this job ran before, else
/// decided now (reading the messages before the hand-off) and stored.
pub async fn at_handoff(
    ctx: &Context<'_>,
    job: &Job,
    event_id: &EventId,
    h: &HandoffJson,
) -> Result<Triage, JobError> {
    let db = &ctx.services.db;
    if let Some(stored) =
        ai_fields::evaluation(db, &job.org_id, &job.conversation_id, event_id).await?
    {
        return decode(&stored);
    }
    let transcript = Transcript {
        lines: ai_fields::transcript_lines(db, &job.org_id, &job.conversation_id, Some(job.seq))
            .await?,
        summary: Some(h.summary.clone()).filter(|s| !s.trim().is_empty()),
        reason: Some(h.reason.clone()).filter(|s| !s.trim().is_empty()),
    };
    let (language, sentiment) = signals(h, &transcript);
    let mappings = ai_fields::mappings(db, &job.org_id).await?;
    let evaluation = if mappings.is_empty() {
        None
    } else {
        Some(ctx.services.ai.evaluate(&mappings, &transcript).await)
    };
    let triage = Triage {
        evaluation,
        language,
        sentiment,
    };
    let text = serde_json::to_string(&triage)
        .map_err(|e| JobError::Permanent(format!("cannot encode the AI evaluation: {e}")))?;
    if !ai_fields::save_evaluation(db, &job.org_id, &job.conversation_id, event_id, &text).await? {
        // Another run of this job stored its own first: that one stands.
        let stored = ai_fields::evaluation(db, &job.org_id, &job.conversation_id, event_id)
            .await?
            .unwrap_or(text);
        return decode(&stored);
    }
    explain(ctx, job, &triage).await;
    Ok(triage)
}

/// The language and sentiment the hand-off gives, else detected.
fn signals(h: &HandoffJson, transcript: &Transcript) -> (Option<Language>, Option<Sentiment>) {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let language = match given(&h.language) {
        Some(code) => Some(Language {
            code: two_letter(&code),
            name: None,
            source: "event".into(),
            confidence: None,
        }),
        None => detect_language(transcript),
    };
    let sentiment = match given(&h.sentiment) {
        Some(label) => Some(Sentiment {
            label,
            score: None,
            source: "event".into(),
        }),
        None => detect_sentiment(transcript),
    };
    (language, sentiment)
}

/// The timeline's lines for a triage decided now: each AI field's value
/// and why, and what was detected because the hand-off did not say.
async fn explain(ctx: &Context<'_>, job: &Job, triage: &Triage) {
    if let Some(e) = &triage.evaluation {
        for v in &e.values {
            timeline(
                ctx,
                "ai",
                &format!("{} [{}]", v.timeline_line(), e.provider),
                job,
            )
            .await;
        }
    }
    let detected: Vec<String> = [
        triage
            .language
            .as_ref()
            .filter(|l| l.source == "detected")
            .map(|l| format!("language {}", l.display())),
        triage
            .sentiment
            .as_ref()
            .filter(|s| s.source == "detected")
            .map(|s| format!("sentiment {}", s.display())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !detected.is_empty() {
        timeline(
            ctx,
            "ai",
            &format!(
                "The hand-off did not say; detected {}",
                detected.join(" and ")
            ),
            job,
        )
        .await;
    }
}
