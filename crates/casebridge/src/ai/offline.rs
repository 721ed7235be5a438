//! The offline provider: no network, no model, and honest about it.
//!
//! - A dropdown's description is read as "value if criterion" lines
//!   (`Critical if the service is down, data loss or a security breach`).
//!   Each criterion is split into phrases; a phrase counts when its words
//!   (lightly stemmed) occur in the transcript and are not negated ("not
//!   urgent"). Words that several options share weigh less. The best option
//!   wins only with a clear score and a clear lead over the runner-up;
//!   otherwise the field stays empty and the reason names the tie.
//! - A text field is filled only when it asks for something with a shape:
//!   an order/invoice/ticket/tracking number (the description's example,
//!   like `ORD-123456`, gives the shape), an e-mail address or a phone
//!   number. Free text ("a short product name") needs a language model;
//!   the offline provider says so and leaves the field empty.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;

use super::{Answer, FieldType, Mapping, Speaker, Transcript};

/// One "value if criterion" line of a description.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    pub option: String,
    pub text: String,
}

/// Separators between an option and its criterion, in the order tried.
const SEPARATORS: &[&str] = &[
    " if ", " when ", " for ", " => ", " -> ", " — ", " – ", " - ", ": ", " = ",
];

/// Reads the "value if criterion" lines of a description. A line whose
/// left part is long is prose, not an option.
pub fn criteria(description: &str) -> Vec<Criterion> {
    let mut out = Vec::new();
    for raw in description.lines().flat_map(|l| l.split(';')) {
        let line = strip_list_marker(raw.trim());
        if line.is_empty() {
            continue;
        }
        // ASCII lower case keeps byte offsets (full lower case does not:
        // "İ" grows), and every separator is ASCII.
        let lower = line.to_ascii_lowercase();
        let Some((at, sep)) = SEPARATORS
            .iter()
            .filter_map(|s| lower.find(s).map(|i| (i, *s)))
            .min_by_key(|(i, _)| *i)
        else {
            continue;
        };
        let mut option = line[..at].trim();
        for verb in ["use ", "choose ", "pick ", "select ", "set "] {
            if option
                .get(..verb.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(verb))
            {
                option = option[verb.len()..].trim();
            }
        }
        let option = option
            .trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | '*' | '“' | '”'))
            .trim();
        let text = line[at + sep.len()..].trim();
        if option.is_empty()
            || text.is_empty()
            || option.chars().count() > 60
            || option.split_whitespace().count() > 5
        {
            continue;
        }
        out.push(Criterion {
            option: option.to_string(),
            text: text.to_string(),
        });
    }
    out
}

fn strip_list_marker(line: &str) -> &str {
    let line = line.trim_start_matches(['-', '*', '•', '·']).trim_start();
    // "1." / "2)" numbering.
    let digits = line.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && digits < 3 {
        let rest = &line[digits..];
        if let Some(rest) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(')')) {
            return rest.trim_start();
        }
    }
    line
}

/// Decides one mapping's value from the transcript.
pub fn decide(m: &Mapping, t: &Transcript) -> Answer {
    match m.kind {
        FieldType::Dropdown => choose_option(m, t),
        FieldType::Text => extract_text(m, t),
    }
}

// ---- dropdowns ---------------------------------------------------------

/// Below this an option's evidence is too thin to act on: half of a
/// two-word phrase ("bug" of "general bugs") is just enough when no other
/// option comes close.
const MIN_SCORE: f64 = 0.5;
/// The winner must lead the runner-up by this much.
const MIN_LEAD: f64 = 0.25;

#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "by", "with", "is", "are",
    "be", "it", "its", "this", "that", "as", "any", "some", "their", "they", "them", "our", "we",
    "you", "your", "i", "my", "me", "can", "from", "about", "if", "when", "e", "g", "eg", "etc",
    "ie", "such", "like", "there", "has", "have", "had", "was", "were", "been", "do", "does",
    "did", "so", "but", "other", "else", "only", "just", "more", "than", "very", "also", "into",
    "customer", "customers", "user", "users", "someone", "something",
];

#[rustfmt::skip]
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "neither", "without", "cannot", "unable", "nothing", "nor", "hardly",
    "isnt", "arent", "wasnt", "werent", "dont", "doesnt", "didnt", "cant", "wont", "couldnt",
    "shouldnt", "wouldnt", "havent", "hasnt",
];

/// A crude stemmer, the same for criteria and transcript: enough that
/// "crashed", "crashes" and "crashing", or "issue" and "issues", meet.
fn stem(word: &str) -> String {
    let w = word.trim_matches('\'');
    let mut b = w.to_string();
    let n = w.chars().count();
    if n > 4 {
        if let Some(base) = w.strip_suffix("ies") {
            b = format!("{base}y");
        } else if let Some(base) = w.strip_suffix("ing") {
            b = base.to_string();
        } else if let Some(base) = w.strip_suffix("ed") {
            b = base.to_string();
        } else if let Some(base) = w.strip_suffix("ly") {
            b = base.to_string();
        } else if let Some(base) = w
            .strip_suffix("es")
            .filter(|b| b.ends_with(['s', 'x', 'z']) || b.ends_with("ch") || b.ends_with("sh"))
        {
            b = base.to_string();
        }
    }
    if b == w && n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        b.pop();
    }
    // "delete" / "deleted" → "delet"; "stopped" → "stop".
    if b.chars().count() > 4 && b.ends_with('e') {
        b.pop();
    }
    let cs: Vec<char> = b.chars().collect();
    if cs.len() > 4
        && cs[cs.len() - 1] == cs[cs.len() - 2]
        && !matches!(cs[cs.len() - 1], 's' | 'l')
    {
        b.pop();
    }
    b
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace(['\'', '’'], ""))
        .collect()
}

/// A text's terms: stems, with those said negated ("never arrived", "no
/// data loss": up to three words after a negation) marked `!`, so that
/// a criterion "order never arrived" meets "my order never arrived" and
/// "data loss" does not meet "no data loss".
fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // A negation reaches to the end of its clause, three words at most.
    for clause in text.split(['.', ',', ';', ':', '!', '?', '\n']) {
        let mut negated_for = 0usize;
        for w in words(clause) {
            if NEGATIONS.contains(&w.as_str()) {
                negated_for = 3;
                continue;
            }
            let negated = negated_for > 0;
            negated_for = negated_for.saturating_sub(1);
            if STOPWORDS.contains(&w.as_str()) || w.chars().count() < 2 {
                continue;
            }
            let s = stem(&w);
            out.push(if negated { format!("!{s}") } else { s });
        }
    }
    out
}

/// The transcript's terms with the weight of who wrote them.
fn transcript_terms(t: &Transcript) -> HashMap<String, f64> {
    let mut out: HashMap<String, f64> = HashMap::new();
    let mut add = |text: &str, weight: f64| {
        for term in terms(text) {
            let e = out.entry(term).or_insert(0.0);
            *e = e.max(weight);
        }
    };
    for line in &t.lines {
        // The AI's words may merely restate options ("this is not a
        // security issue"); the customer's and the agent's count fully.
        let weight = if line.speaker == Speaker::Ai {
            0.5
        } else {
            1.0
        };
        add(&line.text, weight);
    }
    for s in [&t.summary, &t.reason].into_iter().flatten() {
        add(s, 1.0);
    }
    out
}

/// A criterion phrase: its words as written (for the reason) and its terms.
struct Phrase {
    text: String,
    terms: Vec<String>,
}

/// A criterion's phrases: "the service is down, data loss or a security
/// breach" → "the service is down", "data loss", "a security breach".
fn phrases(criterion: &str) -> Vec<Phrase> {
    let lower = criterion.to_lowercase();
    let mut parts: Vec<String> = vec![lower];
    for sep in [",", ";", "/", "(", ")", " or ", " and ", " but ", "."] {
        parts = parts
            .iter()
            .flat_map(|p| p.split(sep).map(str::to_string).collect::<Vec<_>>())
            .collect();
    }
    parts
        .iter()
        .map(|p| Phrase {
            text: p.trim().to_string(),
            terms: terms(p),
        })
        .filter(|p| !p.terms.is_empty())
        .collect()
}

struct Scored {
    option: String,
    score: f64,
    matched: Vec<String>,
}

fn choose_option(m: &Mapping, t: &Transcript) -> Answer {
    let lines = criteria(&m.description);
    // Criteria for the configured options only (by name); an option with
    // no line cannot be chosen offline.
    let per_option: Vec<(String, Vec<Phrase>)> = m
        .options
        .iter()
        .map(|o| {
            let ps = lines
                .iter()
                .filter(|c| super::same_name(&c.option, &o.name))
                .flat_map(|c| phrases(&c.text))
                .collect();
            (o.name.clone(), ps)
        })
        .collect();
    if per_option.iter().all(|(_, ps)| ps.is_empty()) {
        return Answer::none(
            "the description has no \"Option if criterion\" lines for the offline provider to score",
        );
    }
    // How many options mention each stem: shared words tell options apart
    // less well.
    let mut spread: HashMap<&str, usize> = HashMap::new();
    for (_, ps) in &per_option {
        let uniq: HashSet<&str> = ps
            .iter()
            .flat_map(|p| &p.terms)
            .map(String::as_str)
            .collect();
        for s in uniq {
            *spread.entry(s).or_insert(0) += 1;
        }
    }
    let seen = transcript_terms(t);
    let mut scored: Vec<Scored> = per_option
        .iter()
        .map(|(option, ps)| score(option, ps, &spread, &seen))
        .collect();
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    let best = &scored[0];
    let runner = scored.get(1);
    if best.score < MIN_SCORE {
        return Answer::none(
            "no option's criteria match the conversation clearly enough to choose",
        );
    }
    if let Some(r) = runner.filter(|r| best.score - r.score < MIN_LEAD) {
        return Answer::none(format!(
            "the conversation fits {:?} ({}) and {:?} ({}) about equally; left for an agent to decide",
            best.option,
            quoted(&best.matched),
            r.option,
            quoted(&r.matched)
        ));
    }
    Answer {
        value: Some(best.option.clone()),
        reason: format!("the conversation mentions {}", quoted(&best.matched)),
    }
}

/// How well the transcript's terms (`seen`, with their weights) meet an
/// option's criteria phrases; `spread` is how many options mention each
/// stem. The best phrase counts in full, the others a little.
fn score(
    option: &str,
    phrases: &[Phrase],
    spread: &HashMap<&str, usize>,
    seen: &HashMap<String, f64>,
) -> Scored {
    let mut phrase_scores: Vec<(f64, String)> = phrases
        .iter()
        .filter_map(|phrase| {
            let p = &phrase.terms;
            let idf = |s: &String| 1.0 / spread[s.as_str()] as f64;
            let found: Vec<&String> = p.iter().filter(|s| seen.contains_key(*s)).collect();
            // Half the words of a phrase make a partial match (its score
            // is its coverage), so "bug" meets "general bugs", but only
            // with the phrase's last word, its head in English: "single"
            // alone is no evidence of "a single user affected" ("every
            // single record is gone" is not about one user).
            let needed = p.len().div_ceil(2);
            let partial = found.len() < p.len();
            if found.len() < needed || (partial && !p.last().is_some_and(|h| seen.contains_key(h)))
            {
                return None;
            }
            let coverage = found.iter().map(|s| seen[*s] * idf(s)).sum::<f64>()
                / p.iter().map(idf).sum::<f64>();
            // A phrase made only of words other options share says little
            // about this one.
            let distinct = found.iter().map(|s| idf(s)).fold(0.0, f64::max);
            let length = if p.len() == 1 { 0.8 } else { 1.0 };
            Some((coverage * distinct * length, phrase.text.clone()))
        })
        .collect();
    phrase_scores.sort_by(|a, b| b.0.total_cmp(&a.0));
    let score = phrase_scores
        .iter()
        .enumerate()
        .map(|(i, (s, _))| if i == 0 { *s } else { s * 0.3 })
        .sum();
    Scored {
        option: option.to_string(),
        score,
        matched: phrase_scores.into_iter().map(|(_, p)| p).collect(),
    }
}

fn quoted(phrases: &[String]) -> String {
    phrases
        .iter()
        .take(3)
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- text fields -------------------------------------------------------

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b").expect("regex")
});
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\(?\d[\d ().-]{5,}\d").expect("regex"));
/// An identifier-like token: letters, digits and inner dashes, with at
/// least three digits.
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"#?\b[A-Za-z]{0,6}[-_/]?\d[\dA-Za-z]*(?:[-_/][\dA-Za-z]+)*\b").expect("regex")
});

enum Shape {
    Email,
    Phone,
    Identifier { noun: &'static str },
}

fn shape_of(m: &Mapping) -> Option<Shape> {
    let d = format!("{} {} {}", m.title, m.field_name, m.description).to_lowercase();
    if d.contains("e-mail") || d.contains("email") {
        return Some(Shape::Email);
    }
    if d.contains("phone") || d.contains("mobile") || d.contains("telephone") {
        return Some(Shape::Phone);
    }
    for noun in [
        "order",
        "invoice",
        "ticket",
        "tracking",
        "booking",
        "reservation",
        "reference",
        "account",
        "contract",
        "serial",
        "policy",
        "shipment",
        "subscription",
        "transaction",
    ] {
        if d.contains(noun) {
            return Some(Shape::Identifier { noun });
        }
    }
    None
}

fn extract_text(m: &Mapping, t: &Transcript) -> Answer {
    let Some(shape) = shape_of(m) else {
        return Answer::none(
            "the offline provider fills only text fields with a shape (order, invoice, ticket or tracking numbers, e-mail addresses, phone numbers); set CASEBRIDGE_AI_PROVIDER=openai for free text",
        );
    };
    // The customer's words first: an AI that repeats a number back adds
    // no evidence, but one it asked for and the customer gave does.
    let ordered: Vec<&str> = t
        .lines
        .iter()
        .filter(|l| l.speaker == Speaker::Customer)
        .chain(t.lines.iter().filter(|l| l.speaker != Speaker::Customer))
        .map(|l| l.text.as_str())
        .chain(t.summary.as_deref())
        .collect();
    match shape {
        Shape::Email => single(
            ordered
                .iter()
                .flat_map(|text| EMAIL.find_iter(text).map(|x| x.as_str().to_string())),
            "e-mail address",
        ),
        Shape::Phone => single(
            ordered.iter().flat_map(|text| {
                PHONE
                    .find_iter(text)
                    .map(|x| x.as_str().trim().to_string())
                    .filter(|p| (7..=15).contains(&p.chars().filter(char::is_ascii_digit).count()))
            }),
            "phone number",
        ),
        Shape::Identifier { noun } => identifier(m, noun, &ordered),
    }
}

/// The one distinct value found; several distinct ones are a question for
/// an agent, not a guess.
fn single(found: impl Iterator<Item = String>, what: &str) -> Answer {
    let mut distinct: Vec<String> = Vec::new();
    for f in found {
        if !distinct.iter().any(|d| d.eq_ignore_ascii_case(&f)) {
            distinct.push(f);
        }
    }
    match distinct.len() {
        0 => Answer::none(format!("no {what} in the conversation")),
        1 => Answer {
            value: distinct.pop(),
            reason: format!("the {what} found in the conversation"),
        },
        _ => Answer::none(format!(
            "several {what}s in the conversation ({}); left for an agent to pick",
            distinct.join(", ")
        )),
    }
}

/// The description's example identifiers (`like ORD-123456`): tokens with
/// letters and digits, or long digit runs.
fn examples(description: &str) -> Vec<String> {
    IDENTIFIER
        .find_iter(description)
        .map(|x| x.as_str().trim_start_matches('#').to_string())
        .filter(|x| x.chars().filter(char::is_ascii_digit).count() >= 3)
        .collect()
}

/// A token's shape: its letter prefix (upper-cased) and digit count.
fn token_shape(token: &str) -> (String, usize) {
    let prefix: String = token
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_uppercase();
    (prefix, token.chars().filter(char::is_ascii_digit).count())
}

fn identifier(m: &Mapping, noun: &str, texts: &[&str]) -> Answer {
    let examples = examples(&m.description);
    let shapes: Vec<(String, usize)> = examples.iter().map(|e| token_shape(e)).collect();
    let mut candidates: Vec<String> = Vec::new();
    for text in texts {
        // Byte offsets of `text` index it: ASCII lower case keeps them.
        let lower = text.to_ascii_lowercase();
        for x in IDENTIFIER.find_iter(text) {
            let token = x.as_str().trim_start_matches('#');
            let (prefix, digits) = token_shape(token);
            if digits < 3 {
                continue;
            }
            let fits = if shapes.is_empty() {
                // No example: the token must follow the noun closely
                // ("order 12345", "order number is #A-1234").
                let before = &lower[..x.start()];
                let window: Vec<&str> = before.split_whitespace().rev().take(5).collect();
                window.iter().any(|w| w.starts_with(noun))
                    && !looks_like_date_or_money(text, x.start(), x.end())
            } else {
                shapes
                    .iter()
                    .any(|(p, d)| *p == prefix && digits + 2 >= *d && digits <= d + 2)
            };
            if fits && !candidates.iter().any(|c| c.eq_ignore_ascii_case(token)) {
                candidates.push(token.to_string());
            }
        }
    }
    let what = format!("{noun} number");
    match candidates.len() {
        0 if shapes.is_empty() => Answer::none(format!(
            "no {what} in the conversation (tip: give an example in the description, like \"{} number, like ORD-123456\", so its shape is known)",
            capitalize(noun)
        )),
        0 => Answer::none(format!(
            "no {what} shaped like {} in the conversation",
            examples.join(" or ")
        )),
        1 => Answer {
            value: candidates.pop(),
            reason: format!("the {what} the customer gave"),
        },
        _ => Answer::none(format!(
            "several {what}s in the conversation ({}); left for an agent to pick",
            candidates.join(", ")
        )),
    }
}

fn looks_like_date_or_money(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    matches!(before, Some('$' | '€' | '£'))
        || matches!(after, Some('.' | ','))
            && text[end..]
                .chars()
                .nth(1)
                .is_some_and(|c| c.is_ascii_digit())
        || text[start..end].contains('/')
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::{Choice, Mapping};
    use uuid::Uuid;

    const PRIORITY: &str = "Pick the urgency.\n\
        - Critical if the whole service is down, an outage, data loss or a security breach\n\
        - High if a key feature is broken, payments fail or the customer cannot work\n\
        - Medium for general bugs, errors and wrong behaviour\n\
        - Low for feature requests, questions and feedback";

    fn priority() -> Mapping {
        Mapping {
            field_name: "PriorityId".into(),
            title: "Priority".into(),
            kind: FieldType::Dropdown,
            description: PRIORITY.into(),
            column: "PriorityId".into(),
            lookup: Some("CasePriority".into()),
            options: ["Critical", "High", "Medium", "Low"]
                .iter()
                .enumerate()
                .map(|(i, n)| Choice {
                    name: n.to_string(),
                    id: Uuid::from_u128(i as u128),
                })
                .collect(),
            max_length: None,
        }
    }

    fn order() -> Mapping {
        Mapping {
            field_name: "UsrOrderNumber".into(),
            title: "Order number".into(),
            kind: FieldType::Text,
            description: "The customer's order number, like ORD-123456".into(),
            column: "UsrOrderNumber".into(),
            lookup: None,
            options: vec![],
            max_length: Some(50),
        }
    }

    #[test]
    fn criteria_lines_are_read() {
        let c = criteria(PRIORITY);
        let names: Vec<&str> = c.iter().map(|c| c.option.as_str()).collect();
        assert_eq!(names, ["Critical", "High", "Medium", "Low"]);
        assert_eq!(c[3].text, "feature requests, questions and feedback");
        let c = criteria("Use \"High\" for data loss\n1. Low: anything else\nThis line is prose without a separator\nA very long left part that is clearly a sentence if it goes on");
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].option, "High");
        assert_eq!(c[1].option, "Low");
    }

    #[test]
    fn priority_follows_the_criteria() {
        let t = Transcript::parse("Customer: Our whole site is down since 9am, total outage!");
        assert_eq!(decide(&priority(), &t).value.as_deref(), Some("Critical"));
        let t = Transcript::parse(
            "Customer: Would be nice to have a dark mode. Just a feature request.",
        );
        assert_eq!(decide(&priority(), &t).value.as_deref(), Some("Low"));
        let t = Transcript::parse("Customer: hello?");
        let a = decide(&priority(), &t);
        assert_eq!(a.value, None, "{a:?}");
    }

    #[test]
    fn a_modifier_alone_is_no_evidence_for_a_phrase() {
        let mut m = priority();
        m.description = "Pick the urgency.\n\
            - Critical if data loss or a security breach\n\
            - Medium if a single user affected or general bugs"
            .into();
        m.options.truncate(1);
        m.options.push(Choice {
            name: "Medium".into(),
            id: Uuid::from_u128(9),
        });
        // "single" is only the modifier of "a single user affected".
        let t = Transcript::parse("Customer: every single record in our account is gone!");
        let a = decide(&m, &t);
        assert_ne!(a.value.as_deref(), Some("Medium"), "{a:?}");
        // The head word still meets its phrase: "bugs" of "general bugs".
        let t = Transcript::parse("Customer: I found some bugs in the export");
        assert_eq!(decide(&m, &t).value.as_deref(), Some("Medium"));
    }

    #[test]
    fn negated_words_do_not_count() {
        let t = Transcript::parse("Customer: There was no data loss and no outage, I just have a question about invoices.");
        assert_eq!(decide(&priority(), &t).value.as_deref(), Some("Low"));
    }

    #[test]
    fn order_numbers_take_the_examples_shape() {
        let t = Transcript::parse("Customer: My order ORD-884213 never arrived. I paid $129.99 on 12/03.\nAI: Sorry to hear that about ord-884213.");
        assert_eq!(decide(&order(), &t).value.as_deref(), Some("ORD-884213"));
        let t =
            Transcript::parse("Customer: I ordered twice: ORD-100001 and ORD-100002, both late");
        let a = decide(&order(), &t);
        assert_eq!(a.value, None);
        assert!(a.reason.contains("ORD-100001, ORD-100002"), "{}", a.reason);
        let t = Transcript::parse("Customer: where is my parcel?");
        assert_eq!(decide(&order(), &t).value, None);
    }

    #[test]
    fn without_an_example_the_number_must_follow_the_noun() {
        let mut m = order();
        m.description = "The order number the customer mentions".into();
        let t = Transcript::parse("Customer: my order number is 55123 and it costs $4500");
        assert_eq!(decide(&m, &t).value.as_deref(), Some("55123"));
    }

    #[test]
    fn emails_and_phones() {
        let mut m = order();
        m.title = "Contact e-mail".into();
        m.description = "The e-mail the customer wants replies at".into();
        let t = Transcript::parse("Customer: please write to ada.l@example.co.uk, thanks");
        assert_eq!(decide(&m, &t).value.as_deref(), Some("ada.l@example.co.uk"));
        m.title = "Callback phone".into();
        m.description = "Phone number for a callback".into();
        let t = Transcript::parse("Customer: call me on +44 20 7946 0958 after 5");
        assert_eq!(decide(&m, &t).value.as_deref(), Some("+44 20 7946 0958"));
    }

    #[test]
    fn text_whose_lower_case_is_longer_never_panics() {
        // "İ" is 2 bytes and lower-cases to 3; the Kelvin sign "K" (3
        // bytes) lower-cases to ASCII "k".
        let c = criteria("İİİ High if İstanbul office is down\npic\u{212A} Low for questions");
        assert_eq!(c[0].option, "İİİ High");
        let mut m = order();
        m.description = "The order number".into();
        let t = Transcript::parse("Customer: İİİİ order İİ 55123 İİ");
        assert_eq!(decide(&m, &t).value.as_deref(), Some("55123"));
        let t = Transcript::parse("Customer: \u{212A}\u{212A} ORD-123456 İ");
        assert_eq!(decide(&order(), &t).value.as_deref(), Some("ORD-123456"));
    }

    #[test]
    fn free_text_is_not_guessed() {
        let mut m = order();
        m.title = "Product".into();
        m.field_name = "UsrProduct".into();
        m.description = "The product the customer is talking about".into();
        let t = Transcript::parse("Customer: my blender broke");
        let a = decide(&m, &t);
        assert_eq!(a.value, None);
        assert!(a.reason.contains("CASEBRIDGE_AI_PROVIDER=openai"));
    }
}
