//! Orgs (created by the operator) and their API keys (minted by org admins).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, Code};
use super::extract::{Admin, Body, Operator};
use super::openapi::ErrorBody;
use super::AppState;
use crate::secrets::{random_token, token_hash};
use crate::storage::orgs::{self, ApiKey, NewKey, Role};
use crate::storage::rfc3339;

const KEY_PREFIX: &str = "cbk_";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    role: Role,
    #[serde(default)]
    name: Option<String>,
}

fn key_json(key: &ApiKey) -> Value {
    json!({
        "id": key.id, "role": key.role, "name": key.name,
        "prefix": key.prefix, "created_at": rfc3339(key.created_at),
    })
}

fn check_name(field: &str, name: &str, max: usize) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > max {
        return Err(ApiError::invalid(
            format!("{field} must be 1 to {max} characters"),
            format!("Give a {field} a person will recognise, e.g. the company name."),
        ));
    }
    Ok(name.to_string())
}

/// Mints a key: the secret once, its hash for the database.
fn mint() -> (String, String, String) {
    let key = random_token(KEY_PREFIX);
    let prefix: String = key.chars().take(KEY_PREFIX.len() + 6).collect();
    let hash = token_hash(&key);
    (key, prefix, hash)
}

/// `POST /v1/orgs`: a new org and its first admin key.
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", security(("operator_token" = [])), responses((status = 201, description = "The org and its first admin API key (shown once)"), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 401, description = "Missing or wrong operator token", body = ErrorBody)))]
pub async fn create_org(
    State(state): State<AppState>,
    _: Operator,
    Body(body): Body<NewOrg>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = check_name("name", &body.name, 200)?;
    let org_id = format!("org_{}", uuid::Uuid::new_v4().simple());
    let key_id = format!("key_{}", uuid::Uuid::new_v4().simple());
    let (key, prefix, hash) = mint();
    let org = orgs::create_org(
        &state.app.db,
        &org_id,
        &name,
        NewKey {
            id: &key_id,
            role: Role::Admin,
            name: Some("first admin key"),
            hash: &hash,
            prefix: &prefix,
        },
    )
    .await?;
    tracing::info!(org_id = %org.id, "Created org {:?} with its first admin key {key_id}.", org.name);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "org": {"id": org.id, "name": org.name, "created_at": rfc3339(org.created_at)},
            "api_key": {"id": key_id, "role": "admin", "key": key, "prefix": prefix,
                        "note": "Store this key now: it is shown only once."},
        })),
    ))
}

/// `POST /v1/api-keys`: a new key for the caller's org.
#[utoipa::path(post, path = "/v1/api-keys", tag = "orgs", security(("api_key" = [])), responses((status = 201, description = "The new key (shown once)"), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(body): Body<NewApiKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = body
        .name
        .as_deref()
        .map(|n| check_name("name", n, 200))
        .transpose()?;
    let key_id = format!("key_{}", uuid::Uuid::new_v4().simple());
    let (key, prefix, hash) = mint();
    let stored = orgs::create_key(
        &state.app.db,
        &caller.org_id,
        NewKey {
            id: &key_id,
            role: body.role,
            name: name.as_deref(),
            hash: &hash,
            prefix: &prefix,
        },
    )
    .await?;
    tracing::info!(org_id = %caller.org_id, key_id = %key_id, role = body.role.as_str(), "Minted an API key.");
    let mut answer = key_json(&stored);
    answer["key"] = json!(key);
    answer["note"] = json!("Store this key now: it is shown only once.");
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `GET /v1/api-keys`: the org's live keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/api-keys", tag = "orgs", security(("api_key" = [])), responses((status = 200, description = "The org's keys, without their secrets"), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn list_keys(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<Value>> {
    let keys = orgs::list_keys(&state.app.db, &caller.org_id).await?;
    Ok(Json(
        json!({"api_keys": keys.iter().map(key_json).collect::<Vec<_>>()}),
    ))
}

/// `DELETE /v1/api-keys/{id}`: revokes a key of the caller's org.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "orgs", security(("api_key" = [])), params(("id" = String, Path, description = "The key's id")), responses((status = 204, description = "Revoked"), (status = 404, description = "No such key", body = ErrorBody), (status = 409, description = "The last admin key cannot be revoked", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    let keys = orgs::list_keys(&state.app.db, &caller.org_id).await?;
    let Some(key) = keys.iter().find(|k| k.id == key_id) else {
        return Err(ApiError::not_found(
            format!("This org has no live API key {key_id}"),
            "List the org's keys with GET /v1/api-keys.",
        ));
    };
    if key.role == Role::Admin && orgs::count_admin_keys(&state.app.db, &caller.org_id).await? <= 1
    {
        return Err(ApiError::new(
            Code::Conflict,
            "This is the org's last admin key",
            "Mint another admin key first (POST /v1/api-keys), so the org is not locked out.",
        ));
    }
    orgs::revoke_key(&state.app.db, &caller.org_id, &key_id).await?;
    tracing::info!(org_id = %caller.org_id, key_id = %key_id, "Revoked an API key.");
    Ok(StatusCode::NO_CONTENT)
}
