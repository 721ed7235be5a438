//! The `conversations` table: one row per platform conversation, with its
//! Creatio contact and case links, its state and its next message position.

use sqlx::Row;

use super::{
    for_backend, now_ms, rows_for, value_rows, Db, Result, WriteQuery, WriteTx, ROWS_PER_STATEMENT,
};
use crate::domain::ConversationState;
use crate::domain::{CaseId, ConversationId, OrgId};

/// A conversation as stored.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub org_id: OrgId,
    pub id: ConversationId,
    pub channel: String,
    pub url: Option<String>,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    pub state: ConversationState,
    pub case_id: CaseId,
    pub case_created: bool,
    pub case_number: Option<String>,
    pub creatio_contact_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When its personal data was erased (the row stays as a key).
    pub erased_at: Option<i64>,
}

pub(super) const CONVERSATION_COLUMNS: &str = "org_id, id, channel, url, contact_name, contact_email, \
    contact_phone, state, case_id, case_created, case_number, creatio_contact_id, created_at, updated_at, \
    erased_at";

pub(super) fn conversation_from(r: &sqlx::any::AnyRow) -> Result<Conversation> {
    let created: i64 = r.try_get("case_created")?;
    Ok(Conversation {
        org_id: r.try_get("org_id")?,
        id: r.try_get("id")?,
        channel: r.try_get("channel")?,
        url: r.try_get("url")?,
        contact_name: r.try_get("contact_name")?,
        contact_email: r.try_get("contact_email")?,
        contact_phone: r.try_get("contact_phone")?,
        state: super::stored(
            r.try_get("state")?,
            "conversations.state",
            ConversationState::parse,
        )?,
        case_id: super::stored(
            r.try_get("case_id")?,
            "conversations.case_id",
            CaseId::parse,
        )?,
        case_created: created != 0,
        case_number: r.try_get("case_number")?,
        creatio_contact_id: r.try_get("creatio_contact_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        erased_at: r.try_get("erased_at")?,
    })
}

/// A conversation as a request's events describe it, with how many job
/// positions they need.
pub struct ConversationIn<'a> {
    pub id: &'a ConversationId,
    pub channel: &'a str,
    pub url: Option<&'a str>,
    pub contact_name: Option<&'a str>,
    pub contact_email: Option<&'a str>,
    pub contact_phone: Option<&'a str>,
    pub case_id: CaseId,
    /// Job positions to take.
    pub seqs: i64,
}

/// Creates or refreshes conversations (details given replace stored ones,
/// details missing keep them) and takes `seqs` job positions for each;
/// returns each conversation's last position taken. Rows go in the given
/// order: callers sort them by id, so concurrent requests lock conversation
/// rows in one order (no deadlock on PostgreSQL) and each takes its
/// positions after the other's.
pub async fn upsert_conversations(
    tx: &mut WriteTx,
    org_id: &OrgId,
    rows: &[ConversationIn<'_>],
) -> Result<std::collections::HashMap<ConversationId, i64>> {
    let now = now_ms();
    let mut last = std::collections::HashMap::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO conversations (org_id, id, channel, url, contact_name, contact_email, contact_phone, \
             state, next_seq, case_id, case_created, created_at, updated_at) VALUES {} \
             ON CONFLICT (org_id, id) DO UPDATE SET \
             url = COALESCE(excluded.url, conversations.url), \
             contact_name = COALESCE(excluded.contact_name, conversations.contact_name), \
             contact_email = COALESCE(excluded.contact_email, conversations.contact_email), \
             contact_phone = COALESCE(excluded.contact_phone, conversations.contact_phone), \
             next_seq = conversations.next_seq + excluded.next_seq, \
             updated_at = excluded.updated_at, text_purged = 0 \
             RETURNING id, next_seq",
            value_rows("(?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 0, ?, ?)", chunk.len(), 1)
        );
        let sql = for_backend(tx, sql);
        let mut q = super::rows_query(&sql, chunk.len());
        for c in chunk {
            q = q
                .bind(org_id)
                .bind(c.id)
                .bind(c.channel)
                .bind(c.url)
                .bind(c.contact_name)
                .bind(c.contact_email)
                .bind(c.contact_phone)
                .bind(c.seqs)
                .bind(c.case_id.to_string())
                .bind(now)
                .bind(now);
        }
        for r in q.fetch_all(&mut **tx).await? {
            last.insert(
                r.try_get::<ConversationId, _>("id")?,
                r.try_get::<i64, _>("next_seq")?,
            );
        }
    }
    Ok(last)
}

/// The conversation's next job position. The row update serialises
/// concurrent writers of one conversation.
pub(super) async fn take_seq(
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation_id: &ConversationId,
) -> Result<i64> {
    let row = sqlx::query(
        "UPDATE conversations SET next_seq = next_seq + 1 WHERE org_id = $1 AND id = $2 RETURNING next_seq",
    )
    .bind(org_id)
    .bind(conversation_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("next_seq")?)
}

pub async fn get_conversation(
    db: &Db,
    org_id: &OrgId,
    id: &ConversationId,
) -> Result<Option<Conversation>> {
    let row = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(conversation_from).transpose()
}

pub async fn set_conversation_contact(
    db: &Db,
    org_id: &OrgId,
    id: &ConversationId,
    contact_id: &str,
) -> Result<()> {
    sqlx::query("UPDATE conversations SET creatio_contact_id = $1, updated_at = $2 WHERE org_id = $3 AND id = $4")
        .bind(contact_id)
        .bind(now_ms())
        .bind(org_id)
        .bind(id)
        .write_on(db)
        .await?;
    Ok(())
}

/// Links the conversation to its case: the one created with the
/// conversation's own id, or a contact's open case it was appended to.
pub async fn link_case(
    db: &Db,
    org_id: &OrgId,
    id: &ConversationId,
    case_id: CaseId,
    number: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE conversations SET case_id = $1, case_created = 1, case_number = COALESCE($2, case_number), \
         updated_at = $3 WHERE org_id = $4 AND id = $5",
    )
    .bind(case_id.to_string())
    .bind(number)
    .bind(now_ms())
    .bind(org_id)
    .bind(id)
    .write_on(db)
    .await?;
    Ok(())
}

/// Sets the conversation's state (inside a transaction or not).
pub async fn set_conversation_state(
    db: &Db,
    org_id: &OrgId,
    id: &ConversationId,
    state: ConversationState,
) -> Result<()> {
    let mut tx = db.write().await?;
    set_state_in(&mut tx, org_id, id, state).await?;
    tx.commit().await
}

/// [`set_conversation_state`] in the caller's transaction.
pub async fn set_state_in(
    tx: &mut WriteTx,
    org_id: &OrgId,
    id: &ConversationId,
    state: ConversationState,
) -> Result<()> {
    sqlx::query(
        "UPDATE conversations SET state = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
    )
    .bind(state.as_str())
    .bind(now_ms())
    .bind(org_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The org's conversations among `ids`, by id.
pub async fn conversations_among(
    db: &Db,
    org_id: &OrgId,
    ids: &[&ConversationId],
) -> Result<std::collections::HashMap<ConversationId, Conversation>> {
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 AND id IN ({{ids}})"
    );
    rows_for(db, &sql, org_id, ids)
        .await?
        .iter()
        .map(|r| conversation_from(r).map(|c| (c.id.clone(), c)))
        .collect()
}

/// The org's conversations that still hold a contact e-mail or phone, by
/// id: what an erasure by contact searches.
pub async fn conversations_with_contact_details(
    db: &Db,
    org_id: &OrgId,
) -> Result<Vec<Conversation>> {
    sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 \
         AND (contact_email IS NOT NULL OR contact_phone IS NOT NULL) ORDER BY id"
    ))
    .bind(org_id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(conversation_from)
    .collect()
}

/// The conversation a Creatio case belongs to: the latest one linked to it
/// (several share a case after case-append).
pub async fn conversation_for_case(
    db: &Db,
    org_id: &OrgId,
    case_id: CaseId,
) -> Result<Option<Conversation>> {
    let row = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE org_id = $1 AND case_id = $2 \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(case_id.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(conversation_from).transpose()
}
