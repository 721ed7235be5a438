//! `/v1/creatio/connection`: read (secret masked), Test & Save, change,
//! disconnect, re-test, and the webhook token.

use axum::extract::State;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::{ApiError, ApiResult, Code};
use super::extract::{Admin, Body};
use super::openapi::ErrorBody;
use super::AppState;
use crate::connection::checks::{self, Report, Scope};
use crate::connection::{secret_context, RawSettings, Settings, StoredError};
use crate::domain::OrgId;
use crate::secrets::{random_token, token_hash};
use crate::storage::connections::{self, Connection, Status};
use crate::storage::{now_ms, rfc3339, webhook_tokens};

/// `Some(None)` for an explicit `null` (clear), `None` when absent (keep).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Test & Save body.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"instance_url": "https://acme.creatio.com", "client_id": "3F2504E04F8911D39A0C0305E82C3301",
    "client_secret": "…", "create_case_only_on_handoff": false}))]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    instance_url: Option<String>,
    identity_service_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    default_owner_id: Option<String>,
    default_group_id: Option<String>,
    resolved_status_id: Option<String>,
    #[serde(default)]
    create_case_only_on_handoff: bool,
    #[serde(default = "yes")]
    create_missing_contacts: bool,
    #[serde(default = "email_only")]
    case_append_channels: Vec<String>,
}

fn email_only() -> Vec<String> {
    vec!["email".into()]
}

fn yes() -> bool {
    true
}

/// PATCH body: absent keeps a value, `null` clears an optional one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    instance_url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    identity_service_url: Option<Option<String>>,
    client_id: Option<String>,
    client_secret: Option<String>,
    #[serde(default, deserialize_with = "present")]
    default_owner_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    default_group_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    resolved_status_id: Option<Option<String>>,
    create_case_only_on_handoff: Option<bool>,
    create_missing_contacts: Option<bool>,
    case_append_channels: Option<Vec<String>>,
}

/// Webhook token rotation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the previous URL keeps working (default one day).
    grace_period_secs: Option<u64>,
}

const DEFAULT_GRACE_SECS: u64 = 24 * 3600;
const MAX_GRACE_SECS: u64 = 30 * 24 * 3600;
const WEBHOOK_TOKEN_PREFIX: &str = "cbw_";

fn webhook_context(org_id: &OrgId) -> String {
    format!("webhook_token:{org_id}")
}

fn webhook_url(state: &AppState, token: &str) -> String {
    format!("{}/webhooks/creatio/{token}", state.public_url)
}

fn no_connection() -> ApiError {
    ApiError::not_found(
        "This org has no Creatio connection",
        "Connect with POST /v1/creatio/connection {\"instance_url\", \"client_id\", \"client_secret\"} (Test & Save).",
    )
}

fn disconnected() -> ApiError {
    ApiError::new(
        Code::Conflict,
        "The Creatio connection is disconnected",
        "Reconnect with POST /v1/creatio/connection (Test & Save) and the credentials.",
    )
}

async fn load(state: &AppState, org_id: &OrgId) -> ApiResult<Connection> {
    connections::get(&state.app.db, org_id)
        .await?
        .ok_or_else(no_connection)
}

/// The saved settings, secret opened, validated as when they were typed.
pub async fn stored_settings(state: &AppState, c: &Connection) -> ApiResult<Settings> {
    if c.status == Status::Disconnected {
        return Err(disconnected());
    }
    crate::connection::from_stored(&state.app.secrets, &state.app.policy, c)
        .await
        .map_err(|e| match e {
            StoredError::Unseal(e) => ApiError::internal("Opening the stored client secret", &e),
            StoredError::Invalid(errors) => ApiError::fields(errors),
        })
}

/// A Creatio client for the org's saved connection; 409 with a hint when
/// there is none.
pub async fn creatio_client(state: &AppState, org_id: &OrgId) -> ApiResult<creatio::Client> {
    let conn = connections::get(&state.app.db, org_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Code::Conflict,
                "This reads from your Creatio, and this org has no connection yet",
                "Connect first with POST /v1/creatio/connection (Test & Save).",
            )
        })?;
    let settings = stored_settings(state, &conn).await?;
    Ok(state.app.clients.get(&state.app.http, org_id, &settings))
}

/// The org's current webhook URL, if it has a token.
pub async fn current_webhook_url(state: &AppState, org_id: &OrgId) -> ApiResult<Option<String>> {
    match webhook_tokens::current(&state.app.db, org_id).await? {
        Some(sealed) => {
            let token = state
                .app
                .secrets
                .open(&sealed, &webhook_context(org_id))
                .map_err(|e| ApiError::internal("Opening the webhook token", &e))?;
            Ok(Some(webhook_url(state, token.expose_secret())))
        }
        None => Ok(None),
    }
}

/// The connection as an admin sees it: the secret masked.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionOut {
    /// `active`, `needs_attention` or `disconnected`.
    #[schema(value_type = String)]
    pub status: Status,
    /// Why it needs attention.
    pub status_detail: Option<String>,
    pub instance_url: String,
    pub identity_service_url: Option<String>,
    pub client_id: Option<String>,
    /// `••••••••` and the secret's last four characters.
    pub client_secret: Option<String>,
    pub default_owner_id: Option<String>,
    pub default_group_id: Option<String>,
    pub resolved_status_id: Option<String>,
    pub create_case_only_on_handoff: bool,
    pub create_missing_contacts: bool,
    pub case_append_channels: Vec<String>,
    /// The URL Creatio's business processes call.
    pub webhook_url: Option<String>,
    pub last_check_at: Option<String>,
    /// The last full check's report.
    #[schema(value_type = Option<Report>)]
    pub last_check: Option<Value>,
    /// Requests to this org's Creatio now. Absent in a process that runs
    /// no sync workers (`CASEBRIDGE_ROLE=api`); the metric
    /// `casebridge_creatio_concurrency_limit` has it from each worker.
    pub creatio_concurrency: Option<ConcurrencyOut>,
    pub created_at: String,
    pub updated_at: String,
}

/// An org's lane toward its Creatio (DESIGN §8): at most `limit` requests
/// at once, a limit that adapts between `floor` and `ceiling` to how fast
/// Creatio answers and whether it says it is overloaded.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConcurrencyOut {
    /// How many requests may be in flight now.
    pub limit: usize,
    /// How many are.
    pub in_flight: usize,
    /// `CASEBRIDGE_CREATIO_MIN_CONCURRENCY`.
    pub floor: usize,
    /// `CASEBRIDGE_CREATIO_MAX_CONCURRENCY`.
    pub ceiling: usize,
}

/// Test & Save passed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SavedOut {
    pub webhook_url: Option<String>,
    pub report: Report,
    pub connection: ConnectionOut,
}

/// A change saved.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChangedOut {
    /// The checks the change needed; absent when none did.
    pub report: Option<Report>,
    pub connection: ConnectionOut,
}

/// `POST /v1/creatio/connection/test`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetestedOut {
    #[schema(value_type = String)]
    pub status: Status,
    pub report: Report,
}

/// `POST /v1/creatio/webhook-token/rotate`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RotatedTokenOut {
    pub webhook_url: String,
    /// Until when the previous URL keeps working.
    pub previous_url_valid_until: Option<String>,
}

async fn view(state: &AppState, c: &Connection) -> ApiResult<ConnectionOut> {
    let webhook = current_webhook_url(state, &c.org_id).await?;
    let masked = c
        .client_secret_sealed
        .as_ref()
        .map(|_| match c.client_secret_last4.as_deref() {
            Some(l) if !l.is_empty() => format!("••••••••{l}"),
            _ => "••••••••".to_string(),
        });
    let report: Option<Value> = c
        .last_check_report
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    Ok(ConnectionOut {
        status: c.status,
        status_detail: c.status_detail.clone(),
        instance_url: c.instance_url.clone(),
        identity_service_url: c.identity_service_url.clone(),
        client_id: c.client_id.clone(),
        client_secret: masked,
        default_owner_id: c.default_owner_id.clone(),
        default_group_id: c.default_group_id.clone(),
        resolved_status_id: c.resolved_status_id.clone(),
        create_case_only_on_handoff: c.create_case_only_on_handoff,
        create_missing_contacts: c.create_missing_contacts,
        case_append_channels: c.case_append_channels.clone(),
        webhook_url: webhook,
        last_check_at: c.last_check_at.map(rfc3339),
        last_check: report,
        creatio_concurrency: state.lanes.as_ref().map(|lanes| {
            let lane = lanes.view(&c.org_id);
            ConcurrencyOut {
                limit: lane.limit,
                in_flight: lane.in_flight,
                floor: lane.floor,
                ceiling: lane.ceiling,
            }
        }),
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    })
}

pub(super) fn check_failed(report: &Report, what: &str) -> ApiError {
    let (message, hint) = match report.first_failure() {
        Some(f) => (
            format!("{what}: check '{}' failed: {}", f.name, f.message),
            f.hint.clone().unwrap_or_default(),
        ),
        None => (format!("{what}: a check failed"), String::new()),
    };
    ApiError::new(Code::CheckFailed, message, hint).with(
        "report",
        serde_json::to_value(report).unwrap_or(Value::Null),
    )
}

/// Writes settings that passed their checks, as an active connection.
async fn save_active(
    state: &AppState,
    org_id: &OrgId,
    settings: &Settings,
    previous: Option<&Connection>,
    outcome: Option<&checks::Outcome>,
) -> ApiResult<Connection> {
    let now = now_ms();
    let report_json = outcome.map(|o| serde_json::to_string(&o.report).unwrap_or_default());
    let conn = Connection {
        org_id: org_id.clone(),
        status: Status::Active,
        status_detail: None,
        instance_url: settings.instance.as_str().to_string(),
        identity_service_url: settings.identity_service_url.clone(),
        client_id: Some(settings.client_id.clone()),
        client_secret_sealed: Some(state.app.secrets.seal(
            settings.client_secret.expose_secret(),
            &secret_context(org_id),
        )),
        client_secret_last4: Some(settings.secret_last4()),
        default_owner_id: settings.default_owner_id.map(|u| u.to_string()),
        default_group_id: settings.default_group_id.map(|u| u.to_string()),
        resolved_status_id: settings.resolved_status_id.map(|u| u.to_string()),
        create_case_only_on_handoff: settings.create_case_only_on_handoff,
        create_missing_contacts: settings.create_missing_contacts,
        case_append_channels: settings.case_append_channels.clone(),
        technical_user_id: outcome
            .and_then(|o| o.technical_user_id.map(|u| u.to_string()))
            .or_else(|| previous.and_then(|p| p.technical_user_id.clone())),
        last_check_at: if outcome.is_some() {
            Some(now)
        } else {
            previous.and_then(|p| p.last_check_at)
        },
        last_check_report: report_json
            .or_else(|| previous.and_then(|p| p.last_check_report.clone())),
        created_at: previous.map(|p| p.created_at).unwrap_or(now),
        updated_at: now.max(previous.map(|p| p.updated_at + 1).unwrap_or(now)),
    };
    connections::save(&state.app.db, &conn).await?;
    Ok(conn)
}

/// Makes sure the org has a current webhook token (created at the first
/// successful Test & Save; kept across later saves so processes keep working).
async fn ensure_webhook_token(state: &AppState, org_id: &OrgId) -> ApiResult<()> {
    if webhook_tokens::current(&state.app.db, org_id)
        .await?
        .is_none()
    {
        let token = random_token(WEBHOOK_TOKEN_PREFIX);
        let sealed = state.app.secrets.seal(&token, &webhook_context(org_id));
        webhook_tokens::rotate(&state.app.db, org_id, &token_hash(&token), &sealed, 0).await?;
    }
    Ok(())
}

/// `GET /v1/creatio/connection`
#[utoipa::path(get, path = "/v1/creatio/connection", operation_id = "getConnection", tag = "connection", security(("api_key" = [])), responses((status = 200, body = ConnectionOut, description = "Settings (secret masked), status, webhook URL, last report"), (status = 404, description = "Not connected", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<ConnectionOut>> {
    let c = load(&state, &caller.org_id).await?;
    Ok(Json(view(&state, &c).await?))
}

/// `POST /v1/creatio/connection`: Test & Save. Nothing is stored unless
/// every required check passes.
#[utoipa::path(post, path = "/v1/creatio/connection", operation_id = "testAndSaveConnection", tag = "connection", request_body = ConnectionBody, security(("api_key" = [])), responses((status = 200, description = "Every check passed; saved and active; the report and the webhook URL", body = SavedOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 422, description = "A check failed; nothing saved; the report says which and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn test_and_save(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(body): Body<ConnectionBody>,
) -> ApiResult<Json<SavedOut>> {
    let raw = RawSettings {
        instance_url: body.instance_url,
        identity_service_url: body.identity_service_url,
        client_id: body.client_id,
        client_secret: body.client_secret.map(SecretString::from),
        default_owner_id: body.default_owner_id,
        default_group_id: body.default_group_id,
        resolved_status_id: body.resolved_status_id,
        create_case_only_on_handoff: body.create_case_only_on_handoff,
        create_missing_contacts: body.create_missing_contacts,
        case_append_channels: body.case_append_channels,
    };
    let settings = raw
        .validate(&state.app.policy)
        .await
        .map_err(ApiError::fields)?;
    let outcome = checks::run(&state.app.http, &settings, Scope::Full).await;
    if !outcome.report.ok {
        tracing::info!(org_id = %caller.org_id, instance = %settings.instance, "Test & Save failed; nothing saved.");
        return Err(check_failed(&outcome.report, "Test & Save"));
    }
    let previous = connections::get(&state.app.db, &caller.org_id).await?;
    let saved = save_active(
        &state,
        &caller.org_id,
        &settings,
        previous.as_ref(),
        Some(&outcome),
    )
    .await?;
    ensure_webhook_token(&state, &caller.org_id).await?;
    tracing::info!(org_id = %caller.org_id, instance = %settings.instance, "Test & Save passed; the Creatio connection is active.");
    let connection = view(&state, &saved).await?;
    Ok(Json(SavedOut {
        webhook_url: connection.webhook_url.clone(),
        report: outcome.report,
        connection,
    }))
}

/// `PATCH /v1/creatio/connection`: changes fields; re-tests everything
/// when the credentials or addresses change, the GUIDs when only they do.
/// A new secret is tested before it replaces the old one.
#[utoipa::path(patch, path = "/v1/creatio/connection", operation_id = "changeConnection", tag = "connection", request_body = ConnectionPatch, security(("api_key" = [])), responses((status = 200, description = "Changed (re-tested as needed)", body = ChangedOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 422, description = "A check failed; nothing changed", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn change(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(patch): Body<ConnectionPatch>,
) -> ApiResult<Json<ChangedOut>> {
    let current = load(&state, &caller.org_id).await?;
    let before = stored_settings(&state, &current).await?;
    let credentials_changed = patch.instance_url.is_some()
        || patch.identity_service_url.is_some()
        || patch.client_id.is_some()
        || patch.client_secret.is_some();
    let lookups_changed = patch.default_owner_id.is_some()
        || patch.default_group_id.is_some()
        || patch.resolved_status_id.is_some();
    let mut raw = RawSettings::of_connection(&current, Some(before.client_secret.clone()));
    if let Some(v) = patch.instance_url {
        raw.instance_url = Some(v);
    }
    if let Some(v) = patch.identity_service_url {
        raw.identity_service_url = v;
    }
    if let Some(v) = patch.client_id {
        raw.client_id = Some(v);
    }
    if let Some(v) = patch.client_secret {
        raw.client_secret = Some(SecretString::from(v));
    }
    if let Some(v) = patch.default_owner_id {
        raw.default_owner_id = v;
    }
    if let Some(v) = patch.default_group_id {
        raw.default_group_id = v;
    }
    if let Some(v) = patch.resolved_status_id {
        raw.resolved_status_id = v;
    }
    if let Some(v) = patch.create_case_only_on_handoff {
        raw.create_case_only_on_handoff = v;
    }
    if let Some(v) = patch.create_missing_contacts {
        raw.create_missing_contacts = v;
    }
    if let Some(v) = patch.case_append_channels {
        raw.case_append_channels = v;
    }
    let settings = raw
        .validate(&state.app.policy)
        .await
        .map_err(ApiError::fields)?;
    let scope = if credentials_changed {
        Some(Scope::Full)
    } else if lookups_changed {
        Some(Scope::LookupsOnly)
    } else {
        None
    };
    let outcome = match scope {
        Some(scope) => {
            let o = checks::run(&state.app.http, &settings, scope).await;
            if !o.report.ok {
                return Err(check_failed(&o.report, "The change was not saved"));
            }
            Some(o)
        }
        None => None,
    };
    // A lookups-only check says nothing about the credentials: keep the
    // last full report unless this one is full.
    let full = outcome.as_ref().filter(|_| scope == Some(Scope::Full));
    let saved = save_active(&state, &caller.org_id, &settings, Some(&current), full).await?;
    tracing::info!(org_id = %caller.org_id, credentials_changed, "Changed the Creatio connection.");
    Ok(Json(ChangedOut {
        report: outcome.map(|o| o.report),
        connection: view(&state, &saved).await?,
    }))
}

/// `DELETE /v1/creatio/connection`: disconnect. Credentials are deleted and
/// the webhook token revoked; links and logs stay; Creatio is not touched.
#[utoipa::path(delete, path = "/v1/creatio/connection", operation_id = "disconnectCreatio", tag = "connection", security(("api_key" = [])), responses((status = 200, description = "Disconnected: credentials deleted, webhook token revoked, jobs cancelled", body = ConnectionOut), (status = 404, description = "Not connected", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn disconnect(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<ConnectionOut>> {
    let current = load(&state, &caller.org_id).await?;
    if current.status != Status::Disconnected {
        connections::disconnect(&state.app.db, &caller.org_id).await?;
        state.app.clients.forget(&caller.org_id);
        tracing::info!(org_id = %caller.org_id, "Disconnected from Creatio; credentials deleted, webhook token revoked.");
    }
    let c = load(&state, &caller.org_id).await?;
    Ok(Json(view(&state, &c).await?))
}

/// `POST /v1/creatio/connection/test`: re-runs every check on the saved
/// settings; the status follows the outcome (a pass resumes a paused sync).
#[utoipa::path(post, path = "/v1/creatio/connection/test", operation_id = "retestConnection", tag = "connection", security(("api_key" = [])), responses((status = 200, description = "The report; the status follows it", body = RetestedOut), (status = 404, description = "Not connected", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn retest(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<RetestedOut>> {
    let current = load(&state, &caller.org_id).await?;
    let settings = stored_settings(&state, &current).await?;
    let outcome = checks::run(&state.app.http, &settings, Scope::Full).await;
    let (status, detail) = if outcome.report.ok {
        (Status::Active, None)
    } else {
        let f = outcome.report.first_failure();
        (
            Status::NeedsAttention,
            f.map(|f| format!("{}: {}", f.name, f.message)),
        )
    };
    let report_json = serde_json::to_string(&outcome.report).unwrap_or_default();
    connections::record_check(
        &state.app.db,
        &caller.org_id,
        status,
        detail.as_deref(),
        &report_json,
    )
    .await?;
    tracing::info!(org_id = %caller.org_id, ok = outcome.report.ok, "Re-tested the Creatio connection.");
    Ok(Json(RetestedOut {
        status,
        report: outcome.report,
    }))
}

/// `POST /v1/creatio/webhook-token/rotate`: a new webhook URL; the old one
/// keeps working for the grace period so processes can be updated.
#[utoipa::path(post, path = "/v1/creatio/webhook-token/rotate", operation_id = "rotateWebhookToken", tag = "connection", request_body = RotateBody, security(("api_key" = [])), responses((status = 200, description = "The new webhook URL; the old one works for the grace period", body = RotatedTokenOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn rotate_webhook_token(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(body): Body<RotateBody>,
) -> ApiResult<Json<RotatedTokenOut>> {
    let current = load(&state, &caller.org_id).await?;
    if current.status == Status::Disconnected {
        return Err(disconnected());
    }
    let grace = body.grace_period_secs.unwrap_or(DEFAULT_GRACE_SECS);
    if grace > MAX_GRACE_SECS {
        return Err(ApiError::invalid(
            format!("grace_period_secs is {grace}; the most is {MAX_GRACE_SECS} (30 days)"),
            "Give the seconds the old URL should keep working, e.g. 86400 for a day, or 0 to stop it now.",
        ));
    }
    let token = random_token(WEBHOOK_TOKEN_PREFIX);
    let sealed = state
        .app
        .secrets
        .seal(&token, &webhook_context(&caller.org_id));
    let until = webhook_tokens::rotate(
        &state.app.db,
        &caller.org_id,
        &token_hash(&token),
        &sealed,
        (grace * 1000) as i64,
    )
    .await?;
    tracing::info!(org_id = %caller.org_id, grace_secs = grace, "Rotated the Creatio webhook token.");
    Ok(Json(RotatedTokenOut {
        webhook_url: webhook_url(&state, &token),
        previous_url_valid_until: until.map(rfc3339),
    }))
}
