//! What each job does in Creatio (DESIGN.md §3): match or create the
//! Contact, create the Case with its deterministic Id, write each message as
//! an Activity in order, add the hand-off note, resolve the case.
//!
//! Every step is idempotent: re-running a job after a crash or a timeout
//! finds the records it already wrote (`AlreadyExists`) and goes on.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use creatio::ids::{activity_category, activity_status, activity_type, case_origin};
use creatio::models::{Activity, Case, Contact};
use creatio::query::{col, lookup, Filter, Query};
use creatio::{BatchOp, Client, Error as CreatioError};
use uuid::Uuid;

use serde_json::{Map, Value};

use super::events::{HandoffJson, JobPayload};
use super::triage::Triage;
use crate::api::Services;
use crate::connection::Settings;
use crate::storage::sync::{self, Conversation, Job, Message};
use crate::storage::StorageError;

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Creatio(#[from] CreatioError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// The job cannot run and never will as it is (corrupt payload, …).
    #[error("{0}")]
    Permanent(String),
    /// The org has no usable connection right now.
    #[error("{0}")]
    NotConnected(String),
}

/// What running a job needs.
pub struct Context<'a> {
    pub services: &'a Services,
    pub settings: Settings,
    pub client: Client,
    pub conversation: Conversation,
    /// The integration's own user in Creatio (`CreatedById` of what it
    /// writes), learned by Test & Save: the echo guard's second test.
    pub technical_user: Option<Uuid>,
}

const MAX_TITLE: usize = 250;

/// Runs one claimed job. `Ok(true)` when the job's completion was already
/// recorded with its writes (one transaction), `Ok(false)` when the caller
/// records it.
pub async fn run(ctx: &mut Context<'_>, job: &Job) -> Result<bool, JobError> {
    let payload: JobPayload = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
    match payload {
        JobPayload::Message { message_id, .. } => {
            if !ctx.conversation.case_created {
                let role = sync::unwritten_message_role(
                    &ctx.services.db,
                    &job.org_id,
                    &job.conversation_id,
                    job.seq,
                )
                .await?;
                if let Some(line) = stored_until_case(&ctx.settings, role.as_deref(), &message_id) {
                    timeline(ctx, "event", &line, job).await;
                    return Ok(false);
                }
                ensure_case(ctx, job, None, &Default::default()).await?;
            }
            write_messages(ctx, job).await
        }
        JobPayload::Handoff { event_id, handoff } => {
            // Decided (and stored) before any write, so a case created now
            // is created with its AI fields already set.
            let triage = super::triage::at_handoff(ctx, job, &event_id, &handoff).await?;
            let ai_columns = triage.case_columns();
            ensure_case(ctx, job, Some(&handoff), &ai_columns).await?;
            write_messages(ctx, job).await?;
            write_handoff(ctx, job, &event_id, &handoff, &triage).await?;
            sync::set_conversation_state(
                ctx.services.db.pool(),
                &job.org_id,
                &job.conversation_id,
                "handed_off",
            )
            .await?;
            Ok(false)
        }
        JobPayload::Resolve { .. } => resolve(ctx, job).await.map(|()| false),
        JobPayload::ReplyCheck { activity_id } => {
            super::replies::check_replies(ctx, job, activity_id)
                .await
                .map(|()| false)
        }
        JobPayload::ClosureCheck { status_id, .. } => {
            super::replies::check_closure(ctx, job, status_id)
                .await
                .map(|()| false)
        }
    }
}

/// A line that a loop of identical checks would repeat: counted on the
/// newest line when it says the same within a minute
/// ([`sync::add_or_repeat_timeline`]).
pub(super) async fn repeatable_timeline(ctx: &Context<'_>, kind: &str, summary: &str, job: &Job) {
    if let Err(e) = sync::add_or_repeat_timeline(
        &ctx.services.db,
        &job.org_id,
        &job.conversation_id,
        kind,
        summary,
        Some(job.attempts),
        60_000,
    )
    .await
    {
        tracing::warn!(org_id = %job.org_id, conversation_id = %job.conversation_id, error = %e, "Could not write the timeline.");
    }
}

pub(super) async fn timeline(ctx: &Context<'_>, kind: &str, summary: &str, job: &Job) {
    if let Err(e) = sync::add_timeline(
        ctx.services.db.pool(),
        &job.org_id,
        &job.conversation_id,
        kind,
        summary,
        Some(job.attempts),
    )
    .await
    {
        tracing::warn!(org_id = %job.org_id, conversation_id = %job.conversation_id, error = %e, "Could not write the timeline.");
    }
}

/// Why a message that has no case to go on is kept for later: the case is
/// created at hand-off, or with the first customer message. `None` when
/// the message (of `role`) opens the case.
pub(super) fn stored_until_case(
    settings: &Settings,
    role: Option<&str>,
    message_id: &str,
) -> Option<String> {
    let why = if settings.create_case_only_on_handoff {
        "the case is created at hand-off"
    } else if role != Some("customer") {
        "the case is created with the first customer message"
    } else {
        return None;
    };
    Some(format!("Message {message_id} stored; {why}"))
}

/// The conversation's Case Id (stored as text).
pub(super) fn case_uuid(c: &Conversation) -> Result<Uuid, JobError> {
    Uuid::parse_str(&c.case_id).map_err(|e| JobError::Permanent(format!("bad case id: {e}")))
}

/// The Creatio Contact linked to the conversation, if any.
pub(super) fn contact_uuid(c: &Conversation) -> Option<Uuid> {
    c.creatio_contact_id
        .as_deref()
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// A create with a deterministic Id succeeded, now or on an earlier run.
pub(super) fn created_once<T>(result: creatio::Result<T>) -> Result<(), JobError> {
    match result {
        Ok(_) | Err(CreatioError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn first_line(text: &str, max: usize) -> String {
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

/// Finds the customer's Contact by e-mail, then phone; creates it (with a
/// deterministic Id) when allowed and none matches.
async fn ensure_contact(ctx: &mut Context<'_>, job: &Job) -> Result<Option<Uuid>, JobError> {
    if let Some(id) = contact_uuid(&ctx.conversation) {
        return Ok(Some(id));
    }
    let c = ctx.conversation.clone();
    let found = match_contacts(&ctx.client, &[&c]).await?.remove(&c.id);
    let id = match (found, new_contact(&job.org_id, &c)) {
        (Some(id), _) => {
            timeline(ctx, "creatio", &matched_contact(id), job).await;
            Some(id)
        }
        (None, Some(contact)) if ctx.settings.create_missing_contacts => {
            let id = contact.id.expect("a new contact has its id");
            created_once(ctx.client.create(&contact).await)?;
            sync::remember_written(
                &ctx.services.db,
                &job.org_id,
                &id.to_string(),
                "Contact",
                Some(&job.conversation_id),
            )
            .await?;
            timeline(ctx, "creatio", &created_contact(id), job).await;
            Some(id)
        }
        _ => None,
    };
    if let Some(id) = id {
        sync::set_conversation_contact(
            &ctx.services.db,
            &job.org_id,
            &job.conversation_id,
            &id.to_string(),
        )
        .await?;
        ctx.conversation.creatio_contact_id = Some(id.to_string());
    }
    Ok(id)
}

/// Terms per Contact query: Creatio refuses filters over 100 nodes (~20
/// `eq` terms joined by `or`; reference §2.3).
const EMAILS_PER_QUERY: usize = 15;
const PHONES_PER_QUERY: usize = 7;

/// Finds the Contacts of `conversations` by e-mail, then phone: the oldest
/// match of each, by conversation id. Several e-mails per query.
pub(super) async fn match_contacts(
    client: &Client,
    conversations: &[&Conversation],
) -> Result<HashMap<String, Uuid>, CreatioError> {
    let mut found = HashMap::new();
    let emails: Vec<String> = unique(
        conversations
            .iter()
            .filter_map(|c| c.contact_email.as_deref()),
    );
    let mut by_email: HashMap<String, Uuid> = HashMap::new();
    for chunk in emails.chunks(EMAILS_PER_QUERY) {
        let hits = contacts_by_email(client, chunk).await?;
        for hit in hits {
            if let (Some(id), Some(email)) = (hit.id, hit.email) {
                by_email.entry(email.to_lowercase()).or_insert(id);
            }
        }
    }
    for c in conversations {
        if let Some(id) = c
            .contact_email
            .as_deref()
            .and_then(|e| by_email.get(&e.to_lowercase()))
        {
            found.insert(c.id.clone(), *id);
        }
    }
    let phones: Vec<String> = unique(
        conversations
            .iter()
            .filter(|c| !found.contains_key(&c.id))
            .filter_map(|c| c.contact_phone.as_deref()),
    );
    let mut by_phone: HashMap<String, Uuid> = HashMap::new();
    for chunk in phones.chunks(PHONES_PER_QUERY) {
        for (given, contact) in contacts_by_phone_digits(client, chunk).await? {
            by_phone.entry(given).or_insert(contact);
        }
    }
    // Tenants where SearchNumber is not filled or not readable: the number
    // exactly as the platform sent it.
    let left: Vec<String> = phones
        .iter()
        .filter(|p| !by_phone.contains_key(*p))
        .cloned()
        .collect();
    for chunk in left.chunks(PHONES_PER_QUERY) {
        let terms = || chunk.iter().map(String::as_str);
        let hits = contacts_where(
            client,
            col("Phone")
                .is_in(terms())
                .or(col("MobilePhone").is_in(terms())),
        )
        .await?;
        for hit in hits {
            let Some(id) = hit.id else { continue };
            for p in [hit.phone, hit.mobile_phone].into_iter().flatten() {
                by_phone.entry(p).or_insert(id);
            }
        }
    }
    for c in conversations {
        if found.contains_key(&c.id) {
            continue;
        }
        if let Some(id) = c.contact_phone.as_deref().and_then(|p| by_phone.get(p)) {
            found.insert(c.id.clone(), *id);
        }
    }
    Ok(found)
}

/// A phone number as written: whether it carries its country code (`+…`
/// or `00…`) and its digits (without the `00`, a trunk `0` or a `(0)`).
fn phone_digits(phone: &str) -> (bool, String) {
    let text = phone.trim().replace("(0)", "");
    let international = text.starts_with('+') || text.starts_with("00");
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    (international, digits.trim_start_matches('0').to_string())
}

/// Whether two phone numbers, written any way, are the same number (the
/// rule, documented in the README): two numbers written with their country
/// code (`+…`, `00…`), or two without, match when their digits are equal;
/// one with and one without match when the one without has at least 7
/// digits (less a trunk `0`) and is the end of the other, which has 1 to 3
/// more: the country code (`+44 20 7946 0958` and `020 7946 0958`,
/// `+1 617 440 2498` and `(617) 440-2498`).
pub fn same_phone(a: &str, b: &str) -> bool {
    let ((a_intl, a), (b_intl, b)) = (phone_digits(a), phone_digits(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    match (a_intl, b_intl) {
        (true, false) => national_of(&a, &b),
        (false, true) => national_of(&b, &a),
        _ => a == b,
    }
}

fn national_of(international: &str, national: &str) -> bool {
    national.len() >= 7
        && (1..=3).contains(&(international.len().saturating_sub(national.len())))
        && international.ends_with(national)
}

/// Whether Creatio answered a lookup by refusing the query itself (a
/// function or an object it does not serve, a right it lacks, a 500), so a
/// plainer query may be tried. Not answering at all (down, rate-limited,
/// token trouble, dead credentials) says nothing about the query: that is
/// retried as any failure is.
fn refused_the_query(e: &CreatioError) -> bool {
    !((e.is_retryable() && e.status() != Some(500)) || e.is_dead_credentials())
}

/// Contacts whose phone, as typed in Creatio, is one of `phones`: Creatio
/// stores phones as people type them (reference/creatio-evidence.md §5), so
/// an exact match of `+16174402498` misses `+1 617 440 2498`. Creatio's own
/// phone search goes through `ContactCommunication.SearchNumber`, the digits
/// reversed, with StartWith on the first 7 (INSTALL `PhoneNumberComparer`):
/// the same query, then [`same_phone`] on what comes back. Pairs of (phone
/// as given, contact). When Creatio does not answer it (no right, no such
/// object), nothing is found here and the exact match runs.
async fn contacts_by_phone_digits(
    client: &Client,
    phones: &[String],
) -> Result<Vec<(String, Uuid)>, CreatioError> {
    let mut prefixes: Vec<String> = phones
        .iter()
        .map(|p| phone_digits(p).1)
        .filter(|d| d.len() >= 7)
        .map(|d| d.chars().rev().take(7).collect())
        .collect();
    prefixes.sort();
    prefixes.dedup();
    if prefixes.is_empty() {
        return Ok(Vec::new());
    }
    let query = Query::new()
        .select(["ContactId", "Number"])
        .filter(Filter::Or(
            prefixes
                .into_iter()
                .map(|p| col("SearchNumber").starts_with(p))
                .collect(),
        ))
        .order_by_asc("CreatedOn");
    let rows = match client.list_values("ContactCommunication", &query).await {
        Ok(rows) => rows,
        Err(e) if !refused_the_query(&e) => return Err(e),
        Err(e) => {
            tracing::debug!(error = %e, "Could not search ContactCommunication by SearchNumber; matching phones exactly.");
            return Ok(Vec::new());
        }
    };
    let mut found = Vec::new();
    for row in rows {
        let (Some(number), Some(contact)) = (
            row["Number"].as_str(),
            row["ContactId"]
                .as_str()
                .and_then(|c| Uuid::parse_str(c).ok())
                .filter(|c| !c.is_nil()),
        ) else {
            continue;
        };
        for given in phones.iter().filter(|p| same_phone(p, number)) {
            found.push((given.clone(), contact));
        }
    }
    Ok(found)
}

/// Contacts whose e-mail is one of `emails`, whatever its case. A tenant on
/// PostgreSQL compares text case-sensitively (reference/creatio-evidence.md
/// §5), so the lookup folds case in Creatio with `tolower(Email)`. No live
/// tenant has been seen answering `tolower`, so when Creatio refuses it the
/// lookup asks for each address as written and in lower case, which finds
/// every Contact stored either way.
async fn contacts_by_email(
    client: &Client,
    emails: &[String],
) -> Result<Vec<Contact>, CreatioError> {
    let lower: Vec<String> = emails.iter().map(|e| e.to_lowercase()).collect();
    match contacts_where(
        client,
        col("Email")
            .lowercased()
            .is_in(lower.iter().map(String::as_str)),
    )
    .await
    {
        Ok(hits) => return Ok(hits),
        Err(e) if !refused_the_query(&e) => return Err(e),
        Err(e) => {
            tracing::debug!(error = %e, "Creatio refused tolower(Email); matching e-mails as written and in lower case.");
        }
    }
    let mut variants: Vec<&str> = Vec::new();
    for (given, low) in emails.iter().zip(&lower) {
        for v in [given.as_str(), low.as_str()] {
            if !variants.contains(&v) {
                variants.push(v);
            }
        }
    }
    let mut hits = Vec::new();
    for part in variants.chunks(EMAILS_PER_QUERY) {
        hits.extend(contacts_where(client, col("Email").is_in(part.iter().copied())).await?);
    }
    Ok(hits)
}

/// Contacts matching `filter`, oldest first (the first of several with one
/// e-mail is the one to link, as a single lookup would take).
async fn contacts_where(
    client: &Client,
    filter: creatio::query::Filter,
) -> Result<Vec<Contact>, CreatioError> {
    client
        .list(
            Query::new()
                .select(["Id", "Email", "Phone", "MobilePhone"])
                .filter(filter)
                .order_by_asc("CreatedOn"),
        )
        .await
}

fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .filter(|v| seen.insert(v.to_lowercase()))
        .map(str::to_string)
        .collect()
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
pub(super) fn new_contact(org_id: &str, c: &Conversation) -> Option<Contact> {
    let key = c
        .contact_email
        .as_deref()
        .map(|e| format!("email:{}", e.to_ascii_lowercase()))
        .or_else(|| c.contact_phone.as_deref().map(|p| format!("phone:{p}")))?;
    Some(Contact {
        id: Some(super::contact_id(org_id, &key)),
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

fn symptoms(c: &Conversation, lead: &str) -> String {
    let mut s = truncate(lead.trim(), 4000);
    s.push_str(&format!("\n\nConversation: {}", c.id));
    if let Some(url) = &c.url {
        s.push_str(&format!("\nView conversation: {url}"));
    }
    s
}

/// Creates the conversation's case unless it exists, with `ai_columns`
/// (AI field values decided at hand-off) set on it.
async fn ensure_case(
    ctx: &mut Context<'_>,
    job: &Job,
    handoff: Option<&HandoffJson>,
    ai_columns: &Map<String, Value>,
) -> Result<(), JobError> {
    if ctx.conversation.case_created {
        return Ok(());
    }
    let contact_id = ensure_contact(ctx, job).await?;
    if let Some(contact) = contact_id {
        if ctx
            .settings
            .case_append_channels
            .contains(&ctx.conversation.channel)
            && append_to_open_case(ctx, job, contact).await?
        {
            return Ok(());
        }
    }
    let c = ctx.conversation.clone();
    let first =
        sync::first_customer_text(&ctx.services.db, &job.org_id, &job.conversation_id).await?;
    let case = new_case(&c, &ctx.settings, first.as_deref(), handoff)?;
    let case_id = case_uuid(&c)?;
    let created = with_ai_text_fallback(ctx, job, ai_columns, |columns| {
        let client = ctx.client.clone();
        let case = case.clone();
        async move { create_case(&client, &case, &columns).await }
    })
    .await;
    let number = match created {
        Ok(number) => number,
        Err(CreatioError::AlreadyExists { .. }) => {
            let existing: Case = ctx.client.get(case_id).await?;
            existing.number
        }
        Err(e) => return Err(e.into()),
    };
    sync::remember_written(
        &ctx.services.db,
        &job.org_id,
        &c.case_id,
        "Case",
        Some(&c.id),
    )
    .await?;
    sync::link_case(
        &ctx.services.db,
        &job.org_id,
        &c.id,
        &c.case_id,
        number.as_deref(),
    )
    .await?;
    ctx.conversation.case_created = true;
    ctx.conversation.case_number = number.clone();
    announce_case(ctx, job).await?;
    timeline(
        ctx,
        "creatio",
        &created_case(number.as_deref(), case_id),
        job,
    )
    .await;
    Ok(())
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
        id: Some(case_uuid(c)?),
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

/// Runs a Case write with AI columns; when Creatio refuses a text value as
/// too long for its column (its `$metadata` does not tell the size, so a
/// mapping's `max_length` can be wrong), writes again with the text values
/// cut to [`crate::ai::DEFAULT_TEXT_LENGTH`], then without them, saying so
/// on the timeline. The hand-off completes; the error is never retried as
/// transient. Other failures are returned as they are.
async fn with_ai_text_fallback<T, F, Fut>(
    ctx: &Context<'_>,
    job: &Job,
    columns: &Map<String, Value>,
    write: F,
) -> Result<T, CreatioError>
where
    F: Fn(Map<String, Value>) -> Fut,
    Fut: std::future::Future<Output = Result<T, CreatioError>>,
{
    let mut columns = columns.clone();
    let mut tried = 0;
    loop {
        match write(columns.clone()).await {
            Err(e @ CreatioError::ValueTooLong { .. }) => {
                let Some((smaller, what)) = smaller_ai_text(&columns, tried) else {
                    return Err(e);
                };
                tracing::warn!(org_id = %job.org_id, conversation_id = %job.conversation_id, error = %e, "An AI text value was too long for its Creatio column; writing it shorter.");
                timeline(
                    ctx,
                    "warning",
                    &format!("Creatio refused an AI field's text as too long for its column ({e}); {what}. Set the field's max_length to the column's size."),
                    job,
                )
                .await;
                columns = smaller;
                tried += 1;
            }
            other => return other,
        }
    }
}

/// The AI columns to try after a "value too long": first the text values
/// cut to the smallest Creatio text size, then without text values; `None`
/// when nothing is left to change. Lookup values (GUIDs) are kept.
fn smaller_ai_text(
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

/// Creates `case` with extra columns; returns its number.
async fn create_case(
    client: &Client,
    case: &Case,
    extra: &Map<String, Value>,
) -> Result<Option<String>, CreatioError> {
    let created = client
        .create_value("Case", &case_body(case, extra)?)
        .await?;
    Ok(created["Number"].as_str().map(str::to_string))
}

/// Tells the platform which case the conversation has (`case.linked`), so
/// it can show the ticket number. Only for an org with a delivery URL: an
/// org that syncs one way only gets no queue of undeliverable notices.
async fn announce_case(ctx: &Context<'_>, job: &Job) -> Result<(), JobError> {
    let db = &ctx.services.db;
    if crate::storage::deliveries::endpoint(db, &job.org_id)
        .await?
        .is_none()
    {
        return Ok(());
    }
    let c = &ctx.conversation;
    let mut tx = db.begin_write(db.pool()).await?;
    let queued = crate::deliver::queue(
        &mut tx,
        &job.org_id,
        &c.id,
        &format!("linked:{}:{}", c.id, c.case_id),
        crate::deliver::CASE_LINKED,
        serde_json::json!({"conversation_id": c.id, "case_id": c.case_id, "case_number": c.case_number}),
    )
    .await?;
    tx.commit()
        .await
        .map_err(crate::storage::StorageError::from)?;
    if queued.is_some() {
        ctx.services.delivery_ready.notify_waiters();
    }
    Ok(())
}

/// Case-append: a returning contact whose latest case is still open gets
/// this conversation on that case. True when it did.
async fn append_to_open_case(
    ctx: &mut Context<'_>,
    job: &Job,
    contact: Uuid,
) -> Result<bool, JobError> {
    let open: Vec<Case> = ctx
        .client
        .list(
            Query::new()
                .select(["Id", "Number"])
                .filter(lookup("Contact").eq(contact))
                .filter(col("Status/IsFinal").eq(false))
                .filter(col("Status/IsResolved").eq(false))
                .order_by_desc("CreatedOn")
                .top(1),
        )
        .await?;
    let Some(case) = open.into_iter().next() else {
        return Ok(false);
    };
    let Some(case_id) = case.id else {
        return Ok(false);
    };
    sync::link_case(
        &ctx.services.db,
        &job.org_id,
        &job.conversation_id,
        &case_id.to_string(),
        case.number.as_deref(),
    )
    .await?;
    ctx.conversation.case_id = case_id.to_string();
    ctx.conversation.case_created = true;
    ctx.conversation.case_number = case.number.clone();
    announce_case(ctx, job).await?;
    timeline(
        ctx,
        "creatio",
        &format!(
            "Appended to the contact's open case {} ({case_id}) instead of opening another",
            case.number.as_deref().unwrap_or("?")
        ),
        job,
    )
    .await;
    Ok(true)
}

pub(super) fn activity_for(
    c: &Conversation,
    m: &Message,
    contact_id: Option<Uuid>,
    case_id: Uuid,
    first: bool,
) -> Activity {
    let label = match m.role.as_str() {
        "customer" => "Customer",
        "ai" => "AI",
        _ => "Agent",
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

/// Writes the conversation's unwritten messages up to the job, in order;
/// several at once go as one `$batch`.
async fn write_messages(ctx: &mut Context<'_>, job: &Job) -> Result<bool, JobError> {
    let db = &ctx.services.db;
    // A message job also writes the messages queued behind it (their own
    // jobs then find nothing to do): one $batch instead of many requests.
    // Never past a hand-off or resolution, which must come after them.
    let mut pending = if job.kind == "message" {
        sync::unwritten_messages_before_barrier(db, &job.org_id, &job.conversation_id, job.seq)
            .await?
    } else {
        sync::unwritten_messages(db, &job.org_id, &job.conversation_id, job.seq).await?
    };
    if pending.is_empty() {
        return Ok(false);
    }
    if job.attempts > 1 {
        // A retry: an earlier run may have written some of these before it
        // failed or its process died. Ask Creatio which exist, so the batch
        // below does not stop at the first duplicate again and again.
        let ids: Vec<Uuid> = pending
            .iter()
            .filter_map(|m| Uuid::parse_str(&m.activity_id).ok())
            .collect();
        let existing: Vec<Activity> = ctx.client.get_many(&ids).await?;
        let found: std::collections::HashSet<String> = existing
            .iter()
            .filter_map(|a| a.id.map(|i| i.to_string()))
            .collect();
        let (done, rest): (Vec<Message>, Vec<Message>) = pending
            .into_iter()
            .partition(|m| found.contains(&m.activity_id));
        if !done.is_empty() {
            sync::mark_written(db, &job.org_id, &job.conversation_id, &done).await?;
        }
        if rest.is_empty() {
            return Ok(false);
        }
        pending = rest;
    }
    let c = ctx.conversation.clone();
    let case_id = case_uuid(&c)?;
    let contact_id = contact_uuid(&c);
    let mut first = !sync::any_message_written(db, &job.org_id, &job.conversation_id).await?;
    let activities: Vec<Activity> = pending
        .iter()
        .map(|m| {
            let a = activity_for(&c, m, contact_id, case_id, first);
            first = false;
            a
        })
        .collect();
    if activities.len() == 1 {
        let body = serde_json::to_value(&activities[0])
            .map_err(|e| JobError::Permanent(format!("cannot encode an activity: {e}")))?;
        created_once(
            ctx.services
                .coalescer
                .create(&job.org_id, &ctx.client, "Activity", body)
                .await,
        )?;
    } else {
        let ops: Vec<BatchOp> = activities
            .iter()
            .map(BatchOp::create)
            .collect::<Result<_, _>>()?;
        metrics::counter!(crate::metrics::CREATIO_REQUESTS, "kind" => "batch").increment(1);
        metrics::histogram!(crate::metrics::BATCH_SIZE).record(ops.len() as f64);
        // Stop at the first failure: later activities must not overtake it.
        let results = ctx.client.batch_with(&ops, false).await;
        // Record what landed, up to the first failure, in one transaction.
        let mut landed = 0;
        let mut failure = None;
        for r in results {
            match r {
                Ok(_) | Err(CreatioError::AlreadyExists { .. }) => landed += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            sync::mark_written(db, &job.org_id, &job.conversation_id, &pending[..landed]).await?;
            return Err(e.into());
        }
    }
    let last = pending[pending.len() - 1].seq;
    let summary = wrote_activities(&pending);
    // Everything this write means, in one transaction: messages written,
    // the jobs of the messages that rode along done, and — for a message
    // job, which has nothing left to do — the job itself done.
    let finishes = job.kind == "message";
    sync::record_written(
        db,
        &job.org_id,
        &job.conversation_id,
        sync::Written {
            messages: &pending,
            finish_message_jobs_up_to: (last > job.seq).then_some(last),
            finish_job: finishes.then_some(job.id.as_str()),
            timeline: Some((&summary, job.attempts)),
        },
    )
    .await?;
    Ok(finishes)
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

async fn write_handoff(
    ctx: &mut Context<'_>,
    job: &Job,
    event_id: &str,
    h: &HandoffJson,
    triage: &Triage,
) -> Result<(), JobError> {
    let c = ctx.conversation.clone();
    let case_id = case_uuid(&c)?;
    let note_id = super::handoff_note_id(&job.org_id, &c.id, event_id);
    let mut notes = format!("Summary: {}", h.summary.trim());
    if !h.reason.trim().is_empty() {
        notes.push_str(&format!("\nReason: {}", h.reason.trim()));
    }
    notes.push_str(&format!("\nLanguage: {}", triage.language_line()));
    notes.push_str(&format!("\nSentiment: {}", triage.sentiment_line()));
    if let Some(e) = &triage.evaluation {
        for v in &e.values {
            notes.push_str(&format!(
                "\n{}: {}",
                v.title,
                v.value.as_deref().unwrap_or("(left empty)")
            ));
        }
    }
    if let Some(url) = &c.url {
        notes.push_str(&format!("\nView conversation: {url}"));
    }
    let reason = first_line(&h.reason, MAX_TITLE - 10);
    let note = Activity {
        id: Some(note_id),
        title: Some(if reason.is_empty() {
            "Hand-off to an agent".into()
        } else {
            format!("Hand-off: {reason}")
        }),
        notes: Some(notes),
        type_id: Some(activity_type::TASK),
        activity_category_id: Some(activity_category::TODO),
        status_id: Some(activity_status::COMPLETED),
        case_id: Some(case_id),
        contact_id: contact_uuid(&c),
        ..Default::default()
    };
    created_once(ctx.client.create(&note).await)?;
    sync::remember_written(
        &ctx.services.db,
        &job.org_id,
        &note_id.to_string(),
        "Activity",
        Some(&c.id),
    )
    .await?;
    let patch = Case {
        symptoms: Some(symptoms(&c, &h.summary)),
        owner_id: ctx.settings.default_owner_id,
        group_id: ctx.settings.default_group_id,
        ..Default::default()
    };
    let ai_columns = triage.case_columns();
    let ai_columns = with_ai_text_fallback(ctx, job, &ai_columns, |columns| {
        let client = ctx.client.clone();
        let body = case_body(&patch, &columns);
        async move {
            client.update_value("Case", case_id, &body?).await?;
            Ok(columns)
        }
    })
    .await?;
    let ai = if ai_columns.is_empty() {
        String::new()
    } else {
        format!(
            " and AI fields {}",
            ai_columns.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    timeline(
        ctx,
        "creatio",
        &format!("Wrote hand-off note {note_id} and updated the case summary, owner and group{ai}"),
        job,
    )
    .await;
    Ok(())
}

async fn resolve(ctx: &mut Context<'_>, job: &Job) -> Result<(), JobError> {
    let db = &ctx.services.db;
    sync::set_conversation_state(db.pool(), &job.org_id, &job.conversation_id, "resolved").await?;
    if !ctx.conversation.case_created {
        timeline(
            ctx,
            "warning",
            "Conversation resolved before any case existed; nothing to resolve in Creatio",
            job,
        )
        .await;
        return Ok(());
    }
    let Some(status) = ctx.settings.resolved_status_id else {
        timeline(
            ctx,
            "warning",
            "Conversation resolved, but no Resolved Status ID is set: the case was left as it is. Set resolved_status_id in the connection settings.",
            job,
        )
        .await;
        return Ok(());
    };
    let case_id = case_uuid(&ctx.conversation)?;
    ctx.client
        .update(
            case_id,
            &Case {
                status_id: Some(status),
                ..Default::default()
            },
        )
        .await?;
    sync::remember_written(
        db,
        &job.org_id,
        &format!("status:{case_id}:{status}"),
        "CaseStatus",
        Some(&job.conversation_id),
    )
    .await?;
    timeline(
        ctx,
        "creatio",
        &format!("Set case {case_id} to the resolved status {status}"),
        job,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn phones_are_the_same_number_however_written() {
        for (a, b) in [
            ("+16174402498", "+1 617 440 2498"),
            ("+16174402498", "(617) 440-2498"),
            ("+1 213 566 34 22", "+12135663422"),
            ("+44 20 7946 0958", "020 7946 0958"),
            ("0044 20 7946 0958", "+44 (0)20 7946 0958"),
            ("5550100", "555-0100"),
        ] {
            assert!(same_phone(a, b), "{a} = {b}");
            assert!(same_phone(b, a), "{b} = {a}");
        }
        for (a, b) in [
            ("+16174402498", "+16174402499"),
            ("+16174402498", "4402498"),
            ("12345", "912345"),
            ("", ""),
            ("+1 617 440 2498", "+33 1 617 440 2498"),
        ] {
            assert!(!same_phone(a, b), "{a} ≠ {b}");
        }
    }

    #[test]
    fn unique_ignores_case() {
        assert_eq!(
            unique(["A@x.com", "a@X.com", "b@x.com"].into_iter()),
            vec!["A@x.com".to_string(), "b@x.com".to_string()]
        );
    }
}
