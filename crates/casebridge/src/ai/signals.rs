//! Language and sentiment of a conversation, for the hand-off note when the
//! platform's hand-off event does not carry them: language by `whatlang`
//! (trigram statistics), sentiment by VADER (a lexicon with rules for
//! negation, boosters and emphasis). Both read only what the customer
//! wrote: the AI's and agents' words say nothing about the customer's mood.

use serde::Serialize;
use vader_sentimental::SentimentIntensityAnalyzer;

use super::Transcript;

/// Fewer letters than this and a language guess is noise.
const MIN_LETTERS_FOR_LANGUAGE: usize = 12;

/// whatlang's confidence below which no language is named.
const MIN_CONFIDENCE: f64 = 0.5;

/// VADER's own thresholds on the compound score.
const POSITIVE_AT: f64 = 0.05;
const NEGATIVE_AT: f64 = -0.05;

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Language {
    /// ISO 639-1 code (`en`, `de`, …), the form platforms send (BCP 47's
    /// primary subtag); ISO 639-3 for a language without a two-letter code.
    /// What the platform sent when given, a three-letter code made two.
    pub code: String,
    /// English name of the language, when known.
    pub name: Option<String>,
    /// `event` (the hand-off event said so) or `detected`.
    pub source: String,
    /// whatlang's confidence, 0 to 1, when detected.
    pub confidence: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Sentiment {
    /// `positive`, `neutral` or `negative` when detected; what the platform
    /// sent when given.
    pub label: String,
    /// VADER's compound score, -1 (most negative) to 1, when detected.
    pub score: Option<f64>,
    /// `event` or `detected`.
    pub source: String,
}

impl Language {
    /// How the hand-off note shows it.
    pub fn display(&self) -> String {
        match (&self.name, self.source.as_str()) {
            (Some(name), "detected") => format!("{name} ({}, detected)", self.code),
            (Some(name), _) => format!("{name} ({})", self.code),
            (None, _) => self.code.clone(),
        }
    }
}

impl Sentiment {
    pub fn display(&self) -> String {
        match (self.score, self.source.as_str()) {
            (Some(score), "detected") => format!("{} ({score:+.2}, detected)", self.label),
            _ => self.label.clone(),
        }
    }
}

/// The language the customer wrote in, or `None` when there is too little
/// text or whatlang is not sure (a wrong language on a case misroutes it;
/// none does not).
pub fn detect_language(t: &Transcript) -> Option<Language> {
    let text = t.customer_texts().collect::<Vec<_>>().join("\n");
    let text = text.as_str();
    if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS_FOR_LANGUAGE {
        return None;
    }
    let info = whatlang::detect(text)?;
    // whatlang's own `is_reliable` (above 0.9) refuses most short but
    // clear chat messages; below a half it is a coin toss.
    if info.confidence() < MIN_CONFIDENCE {
        return None;
    }
    Some(Language {
        code: two_letter(info.lang().code()),
        name: Some(info.lang().eng_name().to_string()),
        source: "detected".into(),
        confidence: Some((info.confidence() * 100.0).round() / 100.0),
    })
}

/// An ISO 639-3 code (`eng`) as ISO 639-1 (`en`) when the language has
/// one; anything else (`en`, `pt-BR`, a code isolang does not know) as it
/// is.
pub fn two_letter(code: &str) -> String {
    if code.len() == 3 {
        if let Some(two) =
            isolang::Language::from_639_3(&code.to_ascii_lowercase()).and_then(|l| l.to_639_1())
        {
            return two.to_string();
        }
    }
    code.to_string()
}

/// The customer's sentiment over their messages: the mean of VADER's
/// compound score per message, so one long message does not drown the
/// rest and the latest mood counts as much as the first.
pub fn detect_sentiment(t: &Transcript) -> Option<Sentiment> {
    let analyzer = SentimentIntensityAnalyzer::new();
    let scores: Vec<f64> = t
        .customer_texts()
        .filter(|m| !m.trim().is_empty())
        .map(|m| analyzer.polarity_scores(m).compound)
        .collect();
    if scores.is_empty() {
        return None;
    }
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let label = if mean >= POSITIVE_AT {
        "positive"
    } else if mean <= NEGATIVE_AT {
        "negative"
    } else {
        "neutral"
    };
    Some(Sentiment {
        label: label.into(),
        score: Some((mean * 100.0).round() / 100.0),
        source: "detected".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::{Line, Speaker};

    /// A transcript of the customer's messages.
    fn said(messages: &[&str]) -> Transcript {
        Transcript {
            lines: messages
                .iter()
                .map(|m| Line {
                    speaker: Speaker::Customer,
                    text: m.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn english_and_german_are_told_apart() {
        let en = detect_language(&said(&[
            "My order never arrived and nobody answers my e-mails about it.",
        ]))
        .unwrap();
        assert_eq!(en.code, "en");
        assert_eq!(en.display(), "English (en, detected)");
        let de = detect_language(&said(&[
            "Meine Bestellung ist nie angekommen und niemand beantwortet meine E-Mails.",
        ]))
        .unwrap();
        assert_eq!(de.code, "de");
    }

    #[test]
    fn three_letter_codes_become_two_and_others_stay() {
        assert_eq!(two_letter("eng"), "en");
        assert_eq!(two_letter("DEU"), "de");
        assert_eq!(two_letter("en"), "en");
        assert_eq!(two_letter("pt-BR"), "pt-BR");
        // No two-letter code (Hawaiian): the three letters stay.
        assert_eq!(two_letter("haw"), "haw");
    }

    #[test]
    fn too_little_text_is_not_guessed() {
        assert_eq!(detect_language(&said(&["ok thx"])), None);
        // Short and mixed with an id: whatlang is unsure, so no language.
        assert_eq!(
            detect_language(&said(&[
                "Hi, my order ORD-123 is late. Can you check it please?"
            ])),
            None
        );
        assert_eq!(detect_language(&said(&[""])), None);
    }

    #[test]
    fn sentiment_follows_the_customer() {
        let angry = detect_sentiment(&said(&[
            "This is terrible, the app crashed again and I lost all my work!",
            "I am really angry, nothing works.",
        ]))
        .unwrap();
        assert_eq!(angry.label, "negative");
        assert!(angry.score.unwrap() < -0.5, "{angry:?}");
        let happy = detect_sentiment(&said(&["Thanks, that was great help, I love it!"])).unwrap();
        assert_eq!(happy.label, "positive");
        let flat = detect_sentiment(&said(&["What are your opening hours on Monday?"])).unwrap();
        assert_eq!(flat.label, "neutral");
        assert_eq!(detect_sentiment(&said(&["  "])), None);
        assert_eq!(
            angry.display(),
            format!("negative ({:+.2}, detected)", angry.score.unwrap())
        );
    }
}
