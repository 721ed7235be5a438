//! Orgs, their API keys, and the operator's admin token.

use sqlx::Row;

use super::{now_ms, Db, Result, WriteQuery, WriteTx};
use crate::domain::OrgId;

/// What an API key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in its org, including settings and new keys.
    Admin,
    /// Sending events only.
    Ingest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ingest => "ingest",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "ingest" => Some(Role::Ingest),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: i64,
}

/// A key as listed (never the key itself).
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub org_id: OrgId,
    pub role: Role,
    pub name: Option<String>,
    pub prefix: String,
    pub created_at: i64,
}

/// The key a request authenticated with.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: OrgId,
    pub key_id: String,
    pub role: Role,
}

/// A new key: the row, and the hash of the secret shown once.
pub struct NewKey<'a> {
    pub id: &'a str,
    pub role: Role,
    pub name: Option<&'a str>,
    pub hash: &'a str,
    pub prefix: &'a str,
}

/// Creates an org with its first key, in one transaction.
pub async fn create_org(db: &Db, id: &OrgId, name: &str, first_key: NewKey<'_>) -> Result<Org> {
    let now = now_ms();
    let mut tx = db.write().await?;
    sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    insert_key(&mut tx, id, &first_key, now).await?;
    tx.commit().await?;
    Ok(Org {
        id: id.clone(),
        name: name.into(),
        created_at: now,
    })
}

async fn insert_key(tx: &mut WriteTx, org_id: &OrgId, key: &NewKey<'_>, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, role, name, key_hash, key_prefix, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(key.id)
    .bind(org_id)
    .bind(key.role.as_str())
    .bind(key.name)
    .bind(key.hash)
    .bind(key.prefix)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn create_key(db: &Db, org_id: &OrgId, key: NewKey<'_>) -> Result<ApiKey> {
    let now = now_ms();
    let mut tx = db.write().await?;
    insert_key(&mut tx, org_id, &key, now).await?;
    tx.commit().await?;
    Ok(ApiKey {
        id: key.id.into(),
        org_id: org_id.clone(),
        role: key.role,
        name: key.name.map(Into::into),
        prefix: key.prefix.into(),
        created_at: now,
    })
}

/// The caller behind a key hash, if the key exists and is not revoked.
pub async fn caller_by_key_hash(db: &Db, hash: &str) -> Result<Option<Caller>> {
    let row = sqlx::query(
        "SELECT id, org_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        let role: String = r.try_get("role")?;
        Ok(Caller {
            key_id: r.try_get("id")?,
            org_id: r.try_get("org_id")?,
            role: Role::parse(&role).ok_or_else(|| {
                super::StorageError::Corrupt(format!("unknown key role {role:?}"))
            })?,
        })
    })
    .transpose()
}

pub async fn list_keys(db: &Db, org_id: &OrgId) -> Result<Vec<ApiKey>> {
    let rows = sqlx::query(
        "SELECT id, org_id, role, name, key_prefix, created_at FROM api_keys \
         WHERE org_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
    )
    .bind(org_id)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|r| {
            let role: String = r.try_get("role")?;
            Ok(ApiKey {
                id: r.try_get("id")?,
                org_id: r.try_get("org_id")?,
                role: Role::parse(&role).ok_or_else(|| {
                    super::StorageError::Corrupt(format!("unknown key role {role:?}"))
                })?,
                name: r.try_get("name")?,
                prefix: r.try_get("key_prefix")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Revokes a key of `org_id`. False when the org has no such live key.
pub async fn revoke_key(db: &Db, org_id: &OrgId, key_id: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(key_id)
    .bind(org_id)
    .write_on(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many live admin keys the org has (the last one may not be revoked).
pub async fn count_admin_keys(db: &Db, org_id: &OrgId) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM api_keys WHERE org_id = $1 AND role = 'admin' AND revoked_at IS NULL",
    )
    .bind(org_id)
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get("n")?)
}

pub async fn get_org(db: &Db, org_id: &OrgId) -> Result<Option<Org>> {
    let row = sqlx::query("SELECT id, name, created_at FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| {
        Ok(Org {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .transpose()
}

/// An org as the operator lists it.
#[derive(Debug, Clone)]
pub struct OrgListed {
    pub org: Org,
    /// The Creatio connection's status; `None` before the first Test & Save.
    pub connection: Option<String>,
    pub conversations: i64,
}

/// Every org, oldest first, with its connection's status and how many
/// conversations it holds.
pub async fn list_orgs(db: &Db) -> Result<Vec<OrgListed>> {
    let rows = sqlx::query(
        "SELECT o.id, o.name, o.created_at, c.status, \
         (SELECT COUNT(*) FROM conversations v WHERE v.org_id = o.id) AS conversations \
         FROM orgs o LEFT JOIN creatio_connections c ON c.org_id = o.id \
         ORDER BY o.created_at, o.id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OrgListed {
                org: Org {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                },
                connection: r.try_get("status")?,
                conversations: r.try_get("conversations")?,
            })
        })
        .collect()
}

/// Every table that holds an org's rows (each has `org_id`), those that
/// refer to others first. A test checks that no table with an `org_id`
/// column is missing from it.
pub const ORG_TABLES: &[&str] = &[
    "chatwoot_statuses",
    "chatwoot_connectors",
    "delivery_attempts",
    "deliveries",
    "delivery_endpoints",
    "ai_evaluations",
    "ai_fields",
    "written_records",
    "timeline",
    "jobs",
    "messages",
    "events",
    "conversations",
    "erasures",
    "webhook_tokens",
    "api_keys",
    "creatio_connections",
];

/// Deletes an org and every row it has, in one transaction; returns the
/// rows deleted per table (the org's own row last, as `orgs`). `None` when
/// there is no such org.
pub async fn delete_org(db: &Db, org_id: &OrgId) -> Result<Option<Vec<(&'static str, u64)>>> {
    let mut tx = db.write().await?;
    let mut deleted = Vec::with_capacity(ORG_TABLES.len() + 1);
    for table in ORG_TABLES {
        let sql = format!("DELETE FROM {table} WHERE org_id = $1");
        let n = sqlx::query(&sql)
            .bind(org_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        deleted.push((*table, n));
    }
    let n = sqlx::query("DELETE FROM orgs WHERE id = $1")
        .bind(org_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        // Nothing was there to delete; nothing changes.
        return Ok(None);
    }
    deleted.push(("orgs", n));
    tx.commit().await?;
    Ok(Some(deleted))
}

/// The stored hash of the generated operator token, if one was generated.
pub async fn admin_token_hash(db: &Db) -> Result<Option<String>> {
    let row = sqlx::query("SELECT value FROM instance_settings WHERE name = 'admin_token_hash'")
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| r.try_get("value")).transpose()?)
}

/// Stores the hash of a generated operator token unless one exists already
/// (another instance may have won the race). Returns the hash in force.
pub async fn init_admin_token_hash(db: &Db, hash: &str) -> Result<String> {
    sqlx::query(
        "INSERT INTO instance_settings (name, value) VALUES ('admin_token_hash', $1) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(hash)
    .write_on(db)
    .await?;
    Ok(admin_token_hash(db)
        .await?
        .unwrap_or_else(|| hash.to_string()))
}
