//! Orgs (created by the operator) and their API keys (minted by org admins).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult, Code};
use super::extract::{Admin, Body, Operator};
use super::openapi::ErrorBody;
use super::AppState;
use crate::connection::FieldError;
use crate::domain::OrgId;
use crate::secrets::{random_token, token_hash};
use crate::storage::connections;
use crate::storage::orgs::{self, ApiKey, NewKey, Role};
use crate::storage::rfc3339;

const KEY_PREFIX: &str = "cbk_";

/// A new org.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    name: String,
}

/// A new API key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    role: Role,
    #[serde(default)]
    name: Option<String>,
}

/// `DELETE /v1/orgs/{id}`: the org's name, typed again, as confirmation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteOrg {
    /// The org's name, exactly.
    confirm: String,
}

/// An org as the operator lists it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgListedOut {
    pub id: OrgId,
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// The Creatio connection: `active`, `needs_attention`,
    /// `disconnected`, or `none` before the first Test & Save.
    pub connection: String,
    pub conversations: i64,
}

/// `GET /v1/orgs`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgsOut {
    pub orgs: Vec<OrgListedOut>,
}

/// `DELETE /v1/orgs/{id}`: what was deleted.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeletedOrgOut {
    pub id: OrgId,
    pub name: String,
    /// Rows deleted, per table.
    pub rows: std::collections::BTreeMap<String, u64>,
    pub note: &'static str,
}

/// An org.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgOut {
    pub id: OrgId,
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
}

/// An API key as listed: never the key itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyOut {
    pub id: String,
    /// `admin` or `ingest`.
    pub role: String,
    pub name: Option<String>,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&ApiKey> for ApiKeyOut {
    fn from(key: &ApiKey) -> Self {
        ApiKeyOut {
            id: key.id.clone(),
            role: key.role.as_str().to_string(),
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            created_at: rfc3339(key.created_at),
        }
    }
}

/// A key just minted: the only time the key itself is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewKeyOut {
    #[serde(flatten)]
    pub listed: ApiKeyOut,
    /// The key, for the `Authorization: Bearer` header.
    pub key: String,
    pub note: &'static str,
}

/// `POST /v1/orgs`: the org and its first admin key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedOrg {
    pub org: OrgOut,
    pub api_key: FirstKeyOut,
}

/// The org's first admin key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FirstKeyOut {
    pub id: String,
    /// Always `admin`.
    pub role: &'static str,
    pub key: String,
    pub prefix: String,
    pub note: &'static str,
}

/// `GET /v1/api-keys`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeysOut {
    pub api_keys: Vec<ApiKeyOut>,
}

const SHOWN_ONCE: &str = "Store this key now: it is shown only once.";

fn check_name(field: &'static str, name: &str, max: usize) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > max {
        return Err(ApiError::fields(vec![FieldError {
            field,
            message: format!("{field} must be 1 to {max} characters"),
            hint: format!("Give a {field} a person will recognise, e.g. the company name."),
        }]));
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
#[utoipa::path(post, path = "/v1/orgs", operation_id = "createOrg", tag = "orgs", request_body = NewOrg, security(("operator_token" = [])), responses((status = 201, description = "The org and its first admin API key (shown once)", body = CreatedOrg), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 401, description = "Missing or wrong operator token", body = ErrorBody)))]
pub async fn create_org(
    State(state): State<AppState>,
    _: Operator,
    Body(body): Body<NewOrg>,
) -> ApiResult<(StatusCode, Json<CreatedOrg>)> {
    let name = check_name("name", &body.name, 200)?;
    let org_id = OrgId::generate();
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
        Json(CreatedOrg {
            org: OrgOut {
                id: org.id,
                name: org.name,
                created_at: rfc3339(org.created_at),
            },
            api_key: FirstKeyOut {
                id: key_id,
                role: "admin",
                key,
                prefix,
                note: SHOWN_ONCE,
            },
        }),
    ))
}

/// `GET /v1/orgs`: every org, for the operator.
#[utoipa::path(get, path = "/v1/orgs", operation_id = "listOrgs", tag = "orgs", security(("operator_token" = [])), responses((status = 200, description = "Every org, oldest first, with its connection's status", body = OrgsOut), (status = 401, description = "Missing or wrong operator token", body = ErrorBody)))]
pub async fn list_orgs(State(state): State<AppState>, _: Operator) -> ApiResult<Json<OrgsOut>> {
    let listed = orgs::list_orgs(&state.app.db).await?;
    Ok(Json(OrgsOut {
        orgs: listed
            .into_iter()
            .map(|o| OrgListedOut {
                id: o.org.id,
                name: o.org.name,
                created_at: rfc3339(o.org.created_at),
                connection: o.connection.unwrap_or_else(|| "none".into()),
                conversations: o.conversations,
            })
            .collect(),
    }))
}

/// `DELETE /v1/orgs/{id}`: disconnects the org from Creatio, then deletes
/// it and everything casebridge holds for it (conversations, messages,
/// contacts' names and addresses, events, jobs, deliveries, keys,
/// settings, the erasure log) in one transaction. Creatio is not touched:
/// its cases stay. Confirmed by the org's name in the body.
#[utoipa::path(delete, path = "/v1/orgs/{id}", operation_id = "deleteOrg", tag = "orgs", security(("operator_token" = [])), params(("id" = String, Path, description = "The org's id")), request_body = DeleteOrg, responses((status = 200, description = "Deleted: the rows removed per table", body = DeletedOrgOut), (status = 400, description = "No confirmation, or not the org's name", body = ErrorBody), (status = 404, description = "No such org", body = ErrorBody), (status = 401, description = "Missing or wrong operator token", body = ErrorBody)))]
pub async fn delete_org(
    State(state): State<AppState>,
    _: Operator,
    Path(org_id): Path<String>,
    Body(body): Body<DeleteOrg>,
) -> ApiResult<Json<DeletedOrgOut>> {
    let org_id = OrgId::from(org_id);
    let Some(org) = orgs::get_org(&state.app.db, &org_id).await? else {
        return Err(ApiError::not_found(
            format!("There is no org {org_id}"),
            "List the orgs with GET /v1/orgs.",
        ));
    };
    if body.confirm != org.name {
        return Err(ApiError::fields(vec![FieldError {
            field: "confirm",
            message: format!("confirm must be the org's name, {:?}, to delete it", org.name),
            hint: "Deleting an org removes everything casebridge holds for it and cannot be undone: type its name in confirm.".into(),
        }]));
    }
    // Disconnect first: no worker starts another job of the org, and the
    // webhook URL answers 404, before its rows go.
    if connections::disconnect(&state.app.db, &org_id).await? {
        state.app.clients.forget(&org_id);
    }
    let Some(deleted) = orgs::delete_org(&state.app.db, &org_id).await? else {
        return Err(ApiError::not_found(
            format!("There is no org {org_id}"),
            "It was deleted meanwhile; list the orgs with GET /v1/orgs.",
        ));
    };
    let total: u64 = deleted.iter().map(|(_, n)| n).sum();
    tracing::info!(org_id = %org_id, rows = total, "Deleted an org and everything casebridge held for it.");
    Ok(Json(DeletedOrgOut {
        id: org.id,
        name: org.name,
        rows: deleted
            .into_iter()
            .map(|(table, n)| (table.to_string(), n))
            .collect(),
        note: "Everything casebridge held for this org is deleted. Creatio was not touched: its cases and activities stay.",
    }))
}

/// `POST /v1/api-keys`: a new key for the caller's org.
#[utoipa::path(post, path = "/v1/api-keys", operation_id = "createApiKey", tag = "orgs", request_body = NewApiKey, security(("api_key" = [])), responses((status = 201, description = "The new key (shown once)", body = NewKeyOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(body): Body<NewApiKey>,
) -> ApiResult<(StatusCode, Json<NewKeyOut>)> {
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
    Ok((
        StatusCode::CREATED,
        Json(NewKeyOut {
            listed: ApiKeyOut::from(&stored),
            key,
            note: SHOWN_ONCE,
        }),
    ))
}

/// `GET /v1/api-keys`: the org's live keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/api-keys", operation_id = "listApiKeys", tag = "orgs", security(("api_key" = [])), responses((status = 200, description = "The org's keys, without their secrets", body = ApiKeysOut), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn list_keys(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<ApiKeysOut>> {
    let keys = orgs::list_keys(&state.app.db, &caller.org_id).await?;
    Ok(Json(ApiKeysOut {
        api_keys: keys.iter().map(ApiKeyOut::from).collect(),
    }))
}

/// `DELETE /v1/api-keys/{id}`: revokes a key of the caller's org.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", operation_id = "revokeApiKey", tag = "orgs", security(("api_key" = [])), params(("id" = String, Path, description = "The key's id")), responses((status = 204, description = "Revoked"), (status = 404, description = "No such key", body = ErrorBody), (status = 409, description = "The last admin key cannot be revoked", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
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
