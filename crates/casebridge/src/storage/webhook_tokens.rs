//! Tokens in the URL Creatio's business processes call. Looked up by hash;
//! the token is also kept sealed so the admin page can show the URL again
//! (a deliberate addition to DESIGN.md §3's "stored hashed": without it an
//! admin who lost the URL would have to rotate and edit every process).

use sqlx::Row;

use super::{now_ms, Db, Result};
use crate::domain::OrgId;

/// The org's current token (sealed), if any.
pub async fn current(db: &Db, org_id: &OrgId) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT token_sealed FROM webhook_tokens WHERE org_id = $1 AND expires_at IS NULL \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(org_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|r| r.try_get("token_sealed")).transpose()?)
}

/// Makes a new token current; the previous current ones stay valid until
/// `grace_ms` from now. Returns when the previous one stops working.
pub async fn rotate(
    db: &Db,
    org_id: &OrgId,
    hash: &str,
    sealed: &str,
    grace_ms: i64,
) -> Result<Option<i64>> {
    let now = now_ms();
    let until = now + grace_ms;
    let mut tx = db.write().await?;
    let retired = sqlx::query(
        "UPDATE webhook_tokens SET expires_at = $1 WHERE org_id = $2 AND expires_at IS NULL",
    )
    .bind(until)
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO webhook_tokens (token_hash, org_id, token_sealed, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(hash)
    .bind(org_id)
    .bind(sealed)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // Expired tokens are of no use to anyone: drop them while here.
    sqlx::query("DELETE FROM webhook_tokens WHERE org_id = $1 AND expires_at <= $2")
        .bind(org_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((retired.rows_affected() > 0).then_some(until))
}

/// The org a webhook token belongs to, if it is current or in its grace period.
pub async fn org_for_token_hash(db: &Db, hash: &str) -> Result<Option<OrgId>> {
    let row = sqlx::query(
        "SELECT org_id FROM webhook_tokens WHERE token_hash = $1 \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(hash)
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|r| r.try_get("org_id")).transpose()?)
}
