//! `GET /v1/creatio/lookups/{kind}`: pick GUIDs by name, read from the
//! org's own Creatio.

use axum::extract::{Path, Query as QueryParams, State};
use axum::Json;
use creatio::models::{CaseStatus, Contact, SysAdminUnit};
use creatio::query::{col, Query};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::connection::creatio_client;
use super::error::{ApiError, ApiResult};
use super::extract::Admin;
use super::openapi::ErrorBody;
use super::AppState;

#[derive(Deserialize)]
pub struct Params {
    search: Option<String>,
}

const CONTACT_LIMIT: u32 = 25;

/// `GET /v1/creatio/lookups/{kind}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LookupOut {
    /// `case-statuses`, `groups` or `contacts`.
    pub kind: String,
    pub items: Vec<LookupItem>,
}

/// One row of a lookup, its fields by kind.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LookupItem {
    /// A case status.
    Status {
        id: Option<Uuid>,
        name: Option<String>,
        is_final: bool,
        is_resolved: bool,
    },
    /// A contact, with its e-mail to tell namesakes apart.
    Contact {
        id: Option<Uuid>,
        name: Option<String>,
        email: Option<String>,
    },
    /// A group (a Creatio role).
    Group {
        id: Option<Uuid>,
        name: Option<String>,
    },
}

#[utoipa::path(get, path = "/v1/creatio/lookups/{kind}", operation_id = "listLookups", tag = "connection", security(("api_key" = [])), params(("kind" = String, Path, description = "case-statuses, groups or contacts"), ("search" = Option<String>, Query, description = "contacts: part of the name")), responses((status = 200, description = "Ids and names from the org's Creatio", body = LookupOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 409, description = "Not connected", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(kind): Path<String>,
    QueryParams(params): QueryParams<Params>,
) -> ApiResult<Json<LookupOut>> {
    if !matches!(kind.as_str(), "case-statuses" | "groups" | "contacts") {
        return Err(ApiError::not_found(
            format!("There is no lookup {kind:?}"),
            "Use case-statuses, groups or contacts?search=<name>.",
        ));
    }
    let client = creatio_client(&state, &caller.org_id).await?;
    let items: Vec<LookupItem> = match kind.as_str() {
        "case-statuses" => client
            .list::<CaseStatus>(Query::new().order_by_asc("Name"))
            .await
            .map_err(|e| ApiError::creatio("Creatio refused the lookup", &e))?
            .into_iter()
            .map(|s| LookupItem::Status {
                id: s.id,
                name: s.name,
                is_final: s.is_final.unwrap_or(false),
                is_resolved: s.is_resolved.unwrap_or(false),
            })
            .collect(),
        "groups" => client
            .list::<SysAdminUnit>(
                Query::new()
                    // Roles: organisation (0), division (1), team (3) and
                    // functional (6); users (4) and portal users (5) are not.
                    .filter(col("SysAdminUnitTypeValue").is_in([0i64, 1, 2, 3, 6]))
                    .order_by_asc("Name"),
            )
            .await
            .map_err(|e| ApiError::creatio("Creatio refused the lookup", &e))?
            .into_iter()
            .map(|u| LookupItem::Group {
                id: u.id,
                name: u.name,
            })
            .collect(),
        _ => {
            let mut q = Query::new().order_by_asc("Name").top(CONTACT_LIMIT);
            if let Some(s) = params
                .search
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                if s.chars().count() > 100 {
                    return Err(ApiError::invalid(
                        "search must be at most 100 characters",
                        "Search by part of the contact's name.",
                    ));
                }
                q = q.filter(col("Name").contains(s));
            }
            client
                .list::<Contact>(q)
                .await
                .map_err(|e| ApiError::creatio("Creatio refused the lookup", &e))?
                .into_iter()
                .map(|c| LookupItem::Contact {
                    id: c.id,
                    name: c.name,
                    email: c.email,
                })
                .collect()
        }
    };
    Ok(Json(LookupOut { kind, items }))
}
