//! The Creatio connection of each org: settings, the sealed client secret,
//! status, and the last check report.

use sqlx::Row;

use super::{now_ms, Db, Result, WriteQuery};
use crate::domain::OrgId;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Checks passed; sync runs.
    Active,
    /// Creatio refused the credentials or a re-test failed: sync is paused,
    /// work stays queued until a successful Test & Save.
    NeedsAttention,
    /// The admin disconnected: credentials deleted, webhook token revoked.
    Disconnected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::NeedsAttention => "needs_attention",
            Status::Disconnected => "disconnected",
        }
    }

    fn parse(s: &str) -> Result<Status> {
        match s {
            "active" => Ok(Status::Active),
            "needs_attention" => Ok(Status::NeedsAttention),
            "disconnected" => Ok(Status::Disconnected),
            other => Err(super::StorageError::Corrupt(format!(
                "unknown connection status {other:?}"
            ))),
        }
    }
}

/// A stored connection. The secret stays sealed here; the caller opens it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub org_id: OrgId,
    pub status: Status,
    pub status_detail: Option<String>,
    pub instance_url: String,
    pub identity_service_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_sealed: Option<String>,
    pub client_secret_last4: Option<String>,
    pub default_owner_id: Option<String>,
    pub default_group_id: Option<String>,
    pub resolved_status_id: Option<String>,
    pub create_case_only_on_handoff: bool,
    /// Create a Creatio Contact when none matches the customer's e-mail or phone.
    pub create_missing_contacts: bool,
    /// Channels whose conversations append to a returning contact's open case.
    pub case_append_channels: Vec<String>,
    pub technical_user_id: Option<String>,
    pub last_check_at: Option<i64>,
    pub last_check_report: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "org_id, status, status_detail, instance_url, identity_service_url, \
    client_id, client_secret_sealed, client_secret_last4, default_owner_id, default_group_id, \
    resolved_status_id, create_case_only_on_handoff, technical_user_id, last_check_at, \
    last_check_report, created_at, updated_at, create_missing_contacts, case_append_channels";

fn from_row(r: sqlx::any::AnyRow) -> Result<Connection> {
    let status: String = r.try_get("status")?;
    let handoff: i64 = r.try_get("create_case_only_on_handoff")?;
    let create_contacts: i64 = r.try_get("create_missing_contacts")?;
    Ok(Connection {
        org_id: r.try_get("org_id")?,
        status: Status::parse(&status)?,
        status_detail: r.try_get("status_detail")?,
        instance_url: r.try_get("instance_url")?,
        identity_service_url: r.try_get("identity_service_url")?,
        client_id: r.try_get("client_id")?,
        client_secret_sealed: r.try_get("client_secret_sealed")?,
        client_secret_last4: r.try_get("client_secret_last4")?,
        default_owner_id: r.try_get("default_owner_id")?,
        default_group_id: r.try_get("default_group_id")?,
        resolved_status_id: r.try_get("resolved_status_id")?,
        create_case_only_on_handoff: handoff != 0,
        create_missing_contacts: create_contacts != 0,
        case_append_channels: split_channels(&r.try_get::<String, _>("case_append_channels")?),
        technical_user_id: r.try_get("technical_user_id")?,
        last_check_at: r.try_get("last_check_at")?,
        last_check_report: r.try_get("last_check_report")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn split_channels(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

pub async fn get(db: &Db, org_id: &OrgId) -> Result<Option<Connection>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM creatio_connections WHERE org_id = $1"
    ))
    .bind(org_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(from_row).transpose()
}

/// Connections by status (`active`, `needs_attention`, `disconnected`),
/// for the `casebridge_connections{status}` gauge.
pub async fn count_by_status(db: &Db) -> Result<Vec<(String, i64)>> {
    super::count_by(db, "creatio_connections", "status").await
}

/// Inserts or replaces the org's connection (Test & Save, PATCH).
pub async fn save(db: &Db, c: &Connection) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO creatio_connections ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
         ON CONFLICT (org_id) DO UPDATE SET status = excluded.status, \
         status_detail = excluded.status_detail, instance_url = excluded.instance_url, \
         identity_service_url = excluded.identity_service_url, client_id = excluded.client_id, \
         client_secret_sealed = excluded.client_secret_sealed, \
         client_secret_last4 = excluded.client_secret_last4, \
         default_owner_id = excluded.default_owner_id, default_group_id = excluded.default_group_id, \
         resolved_status_id = excluded.resolved_status_id, \
         create_case_only_on_handoff = excluded.create_case_only_on_handoff, \
         technical_user_id = excluded.technical_user_id, last_check_at = excluded.last_check_at, \
         last_check_report = excluded.last_check_report, updated_at = excluded.updated_at, \
         create_missing_contacts = excluded.create_missing_contacts, \
         case_append_channels = excluded.case_append_channels"
    ))
    .bind(&c.org_id)
    .bind(c.status.as_str())
    .bind(&c.status_detail)
    .bind(&c.instance_url)
    .bind(&c.identity_service_url)
    .bind(&c.client_id)
    .bind(&c.client_secret_sealed)
    .bind(&c.client_secret_last4)
    .bind(&c.default_owner_id)
    .bind(&c.default_group_id)
    .bind(&c.resolved_status_id)
    .bind(i64::from(c.create_case_only_on_handoff))
    .bind(&c.technical_user_id)
    .bind(c.last_check_at)
    .bind(&c.last_check_report)
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(i64::from(c.create_missing_contacts))
    .bind(c.case_append_channels.join(","))
    .write_on(db)
    .await?;
    Ok(())
}

/// Records the outcome of a re-test on the saved settings.
pub async fn record_check(
    db: &Db,
    org_id: &OrgId,
    status: Status,
    detail: Option<&str>,
    report_json: &str,
) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "UPDATE creatio_connections SET status = $1, status_detail = $2, last_check_at = $3, \
         last_check_report = $4, updated_at = $5 WHERE org_id = $6 AND status <> 'disconnected'",
    )
    .bind(status.as_str())
    .bind(detail)
    .bind(now)
    .bind(report_json)
    .bind(now)
    .bind(org_id)
    .write_on(db)
    .await?;
    Ok(())
}

/// Disconnects: the credentials are deleted, every webhook token revoked
/// and pending jobs cancelled (kept) in one transaction. Settings that are not secrets stay, so reconnecting
/// means typing the credentials only. Returns false when there was nothing
/// to disconnect.
pub async fn disconnect(db: &Db, org_id: &OrgId) -> Result<bool> {
    let now = now_ms();
    let mut tx = db.write().await?;
    let done = sqlx::query(
        "UPDATE creatio_connections SET status = 'disconnected', \
         status_detail = 'Disconnected by an admin.', client_id = NULL, \
         client_secret_sealed = NULL, client_secret_last4 = NULL, updated_at = $1 \
         WHERE org_id = $2",
    )
    .bind(now)
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM webhook_tokens WHERE org_id = $1")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    let cancelled = super::jobs::cancel_pending_jobs(&mut tx, org_id).await?;
    tx.commit().await?;
    if cancelled > 0 {
        tracing::info!(
            %org_id,
            cancelled,
            "Cancelled the org's pending sync jobs (kept, not deleted)."
        );
    }
    Ok(done.rows_affected() == 1)
}

/// Sets the status (e.g. the sync pausing an org on dead credentials).
pub async fn record_status(db: &Db, org_id: &OrgId, status: Status, detail: &str) -> Result<()> {
    sqlx::query(
        "UPDATE creatio_connections SET status = $1, status_detail = $2, updated_at = $3 \
         WHERE org_id = $4 AND status <> 'disconnected'",
    )
    .bind(status.as_str())
    .bind(detail)
    .bind(now_ms())
    .bind(org_id)
    .write_on(db)
    .await?;
    Ok(())
}
