//! The org's Chatwoot connector (its settings, sealed secrets, webhook path
//! token) and the last status casebridge saw of each Chatwoot conversation.

use sqlx::Row;

use super::{now_ms, Db, Result, WriteQuery, WriteTx};
use crate::domain::{ConversationId, OrgId};

/// The connector as stored.
#[derive(Debug, Clone)]
pub struct Connector {
    pub org_id: OrgId,
    pub base_url: String,
    pub account_id: i64,
    pub api_token_sealed: String,
    pub api_token_last4: String,
    pub webhook_secret_sealed: Option<String>,
    /// Empty: every inbox.
    pub inbox_ids: Vec<i64>,
    /// `pending_to_open` or `any_open`.
    pub handoff: String,
    pub agent_messages: bool,
    pub summary_attribute: Option<String>,
    pub token_hash: String,
    pub token_sealed: String,
    pub last_check_report: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "org_id, base_url, account_id, api_token_sealed, api_token_last4, \
    webhook_secret_sealed, inbox_ids, handoff, agent_messages, summary_attribute, token_hash, \
    token_sealed, last_check_report, created_at, updated_at";

fn from_row(r: sqlx::any::AnyRow) -> Result<Connector> {
    let inboxes: String = r.try_get("inbox_ids")?;
    let agent_messages: i64 = r.try_get("agent_messages")?;
    Ok(Connector {
        org_id: r.try_get("org_id")?,
        base_url: r.try_get("base_url")?,
        account_id: r.try_get("account_id")?,
        api_token_sealed: r.try_get("api_token_sealed")?,
        api_token_last4: r.try_get("api_token_last4")?,
        webhook_secret_sealed: r.try_get("webhook_secret_sealed")?,
        inbox_ids: inboxes
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        handoff: r.try_get("handoff")?,
        agent_messages: agent_messages != 0,
        summary_attribute: r.try_get("summary_attribute")?,
        token_hash: r.try_get("token_hash")?,
        token_sealed: r.try_get("token_sealed")?,
        last_check_report: r.try_get("last_check_report")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub async fn get(db: &Db, org_id: &OrgId) -> Result<Option<Connector>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM chatwoot_connectors WHERE org_id = $1"
    ))
    .bind(org_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(from_row).transpose()
}

/// The connector whose webhook path token hashes to `hash`.
pub async fn by_token_hash(db: &Db, hash: &str) -> Result<Option<Connector>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM chatwoot_connectors WHERE token_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(db.pool())
    .await?;
    row.map(from_row).transpose()
}

/// Saves the connector and makes Chatwoot the org's delivery endpoint
/// (enabled), in one transaction. `endpoint_secret` seals a first
/// endpoint's signing secret (unused toward Chatwoot; the column is
/// required and a later switch back to a webhook receiver keeps it).
pub async fn save(db: &Db, c: &Connector, endpoint_secret: &str) -> Result<()> {
    let mut tx = db.write().await?;
    sqlx::query(&format!(
        "INSERT INTO chatwoot_connectors ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (org_id) DO UPDATE SET base_url = excluded.base_url, \
         account_id = excluded.account_id, api_token_sealed = excluded.api_token_sealed, \
         api_token_last4 = excluded.api_token_last4, \
         webhook_secret_sealed = excluded.webhook_secret_sealed, inbox_ids = excluded.inbox_ids, \
         handoff = excluded.handoff, agent_messages = excluded.agent_messages, \
         summary_attribute = excluded.summary_attribute, \
         last_check_report = excluded.last_check_report, updated_at = excluded.updated_at"
    ))
    .bind(&c.org_id)
    .bind(&c.base_url)
    .bind(c.account_id)
    .bind(&c.api_token_sealed)
    .bind(&c.api_token_last4)
    .bind(&c.webhook_secret_sealed)
    .bind(
        c.inbox_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    )
    .bind(&c.handoff)
    .bind(i64::from(c.agent_messages))
    .bind(&c.summary_attribute)
    .bind(&c.token_hash)
    .bind(&c.token_sealed)
    .bind(&c.last_check_report)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(&mut *tx)
    .await?;
    super::deliveries::upsert_endpoint(
        &mut tx,
        &c.org_id,
        &c.base_url,
        endpoint_secret,
        "chatwoot",
    )
    .await?;
    tx.commit().await
}

/// Removes the connector, its conversations' statuses and the Chatwoot
/// delivery endpoint; queued deliveries wait for a new destination.
pub async fn delete(db: &Db, org_id: &OrgId) -> Result<bool> {
    let mut tx = db.write().await?;
    let done = sqlx::query("DELETE FROM chatwoot_connectors WHERE org_id = $1")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM chatwoot_statuses WHERE org_id = $1")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM delivery_endpoints WHERE org_id = $1 AND platform = 'chatwoot'")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// What casebridge knows of a Chatwoot conversation's status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub status: Option<String>,
    /// The status casebridge set through Chatwoot's API, until Chatwoot
    /// reports another one.
    pub set_by_casebridge: Option<String>,
}

pub async fn seen(tx: &mut WriteTx, org_id: &OrgId, conversation: &ConversationId) -> Result<Seen> {
    let row = sqlx::query(
        "SELECT status, set_by_casebridge FROM chatwoot_statuses WHERE org_id = $1 AND conversation_id = $2",
    )
    .bind(org_id)
    .bind(conversation)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(r) => Seen {
            status: r.try_get("status")?,
            set_by_casebridge: r.try_get("set_by_casebridge")?,
        },
        None => Seen::default(),
    })
}

/// Records the status a status event reported. The mark of casebridge's
/// own change stays while the status is the one it set.
pub async fn record_status(
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation: &ConversationId,
    status: &str,
) -> Result<()> {
    write_status(
        tx,
        org_id,
        conversation,
        status,
        "DO UPDATE SET status = excluded.status, \
         set_by_casebridge = CASE WHEN chatwoot_statuses.set_by_casebridge = excluded.status \
           THEN chatwoot_statuses.set_by_casebridge ELSE NULL END, updated_at = excluded.updated_at",
    )
    .await
}

/// Records the status a message's payload shows, only when casebridge has
/// none yet: a message's payload is read when Chatwoot sends it, so it may
/// be older or newer than the status events (docs/reference/chatwoot.md
/// §1.0), and only those move a known status on.
pub async fn seed_status(
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation: &ConversationId,
    status: &str,
) -> Result<()> {
    write_status(tx, org_id, conversation, status, "DO NOTHING").await
}

/// Inserts a conversation's status; `on_conflict` says what becomes of a
/// known one.
async fn write_status(
    tx: &mut WriteTx,
    org_id: &OrgId,
    conversation: &ConversationId,
    status: &str,
    on_conflict: &str,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO chatwoot_statuses (org_id, conversation_id, status, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org_id, conversation_id) {on_conflict}"
    ))
    .bind(org_id)
    .bind(conversation)
    .bind(status)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// casebridge set the conversation's status through Chatwoot's API.
pub async fn set_by_casebridge(
    db: &Db,
    org_id: &OrgId,
    conversation: &ConversationId,
    status: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO chatwoot_statuses (org_id, conversation_id, status, set_by_casebridge, updated_at) \
         VALUES ($1, $2, $3, $3, $4) \
         ON CONFLICT (org_id, conversation_id) DO UPDATE SET status = excluded.status, \
         set_by_casebridge = excluded.set_by_casebridge, updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(conversation)
    .bind(status)
    .bind(now_ms())
    .write_on(db)
    .await?;
    Ok(())
}
