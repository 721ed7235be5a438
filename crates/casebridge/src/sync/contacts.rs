//! The conversation's customer as a Creatio Contact: matched by e-mail,
//! then by phone (digits, however written), in as few queries as Creatio's
//! filter limits allow; created when nothing matches and the org allows it.

use std::collections::{HashMap, HashSet};

use creatio::models::Contact;
use creatio::query::{col, Filter, Query};
use creatio::{Client, Error as CreatioError};
use uuid::Uuid;

use super::context::{contact_uuid, created_once};
use super::context::{timeline, Context, JobError};
use super::records::{created_contact, matched_contact, new_contact};
use crate::domain::ConversationId;
use crate::storage::conversations;
use crate::storage::conversations::Conversation;
use crate::storage::jobs::Job;
use crate::storage::written;

/// Finds the customer's Contact by e-mail, then phone; creates it (with a
/// deterministic Id) when allowed and none matches.
pub(super) async fn ensure_contact(
    ctx: &mut Context<'_>,
    job: &Job,
) -> Result<Option<Uuid>, JobError> {
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
            written::remember_written(
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
        conversations::set_conversation_contact(
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
) -> Result<HashMap<ConversationId, Uuid>, CreatioError> {
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

#[cfg(test)]
mod tests {
    use super::*;
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
