//! The Chatwoot connector (issue 26): its settings with Test & Save
//! (`GET/PUT/DELETE /v1/connectors/chatwoot`) and Chatwoot's webhook
//! (`POST /v1/connectors/chatwoot/{token}`), which feeds the same durable
//! ingest as `POST /v1/events`.
//!
//! A deviation from DESIGN.md §2's single delivery endpoint: an org's
//! deliveries go either to a webhook receiver or to Chatwoot's API; the
//! endpoint row says which (`platform`), so both share one queue, one gate
//! and one set of recovery tools.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, ApiResult, Code};
use super::extract::{parse_json, Admin, Body};
use super::openapi::ErrorBody;
use super::AppState;
use crate::chatwoot::{self, Handoff, Known, Mapped, Options};
use crate::connection::checks::{Check, CheckStatus, Report};
use crate::connection::FieldError;
use crate::domain::{ConversationId, OrgId};
use crate::secrets::{last_four, random_token, token_hash, webhook_secret};
use crate::storage::chatwoot::{self as store, Connector};
use crate::storage::{connections, deliveries, now_ms, rfc3339, written};
use crate::sync::events;

const PATH_TOKEN_PREFIX: &str = "cbc_";
/// The largest webhook body taken (a message with its conversation is a
/// few kilobytes; Chatwoot caps message content at 150,000 characters).
pub const MAX_BODY: usize = 1024 * 1024;

/// `PUT /v1/connectors/chatwoot`: Test & Save.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatwootBody {
    /// The address Chatwoot is opened at, e.g. `https://chat.example.com`.
    pub base_url: String,
    /// The number in Chatwoot's URL: `/app/accounts/<id>/…`.
    pub account_id: i64,
    /// A Chatwoot user's access token (Profile settings → Access Token):
    /// required at the first save, kept when left out later.
    pub api_token: Option<String>,
    /// The secret Chatwoot shows for the webhook (v4.12.0 and later): calls
    /// without its signature are then refused. Left out: kept; `""`: removed.
    pub webhook_secret: Option<String>,
    /// Only these inboxes' conversations; empty or left out: every inbox.
    pub inbox_ids: Option<Vec<i64>>,
    /// `pending_to_open` (default: the agent bot's hand-off) or `any_open`
    /// (inboxes without a bot: a conversation that becomes open).
    pub handoff: Option<String>,
    /// Human agents' replies typed in Chatwoot go to Creatio as activities
    /// (default false).
    pub agent_messages: Option<bool>,
    /// A conversation custom attribute holding the hand-off summary (else
    /// the bot's last message is the summary). `""` removes it.
    pub summary_attribute: Option<String>,
}

/// The org's Chatwoot connector.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChatwootOut {
    pub base_url: String,
    pub account_id: i64,
    /// Masked: `••••••••` and the last four characters.
    pub api_token: String,
    /// Whether webhook calls must carry Chatwoot's signature.
    pub webhook_secret_set: bool,
    pub inbox_ids: Vec<i64>,
    pub handoff: String,
    pub agent_messages: bool,
    pub summary_attribute: Option<String>,
    /// What to paste into Chatwoot: Settings → Integrations → Webhooks.
    pub webhook_url: String,
    /// The events to tick on that webhook.
    pub events_to_tick: Vec<&'static str>,
    /// The last Test & Save's report.
    #[schema(value_type = Option<Object>)]
    pub last_check: Option<Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// The answer to Test & Save.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChatwootSavedOut {
    pub connector: ChatwootOut,
    pub report: Report,
}

/// The answer to a Chatwoot webhook call.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChatwootCallOut {
    /// `accepted`, `duplicate` (seen before: nothing stored) or `ignored`.
    pub status: &'static str,
    /// Why an ignored call was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The casebridge events it became, and what became of each.
    pub events: Vec<events::Ingested>,
}

fn not_connected() -> ApiError {
    ApiError::not_found(
        "This org has no Chatwoot connector",
        "Connect it with PUT /v1/connectors/chatwoot (base_url, account_id, api_token), or on the admin page's Chat platform card.",
    )
}

fn webhook_url(state: &AppState, token: &str) -> String {
    format!("{}/v1/connectors/chatwoot/{token}", state.public_url)
}

fn view(state: &AppState, c: &Connector) -> ApiResult<ChatwootOut> {
    let token = state
        .app
        .secrets
        .open(&c.token_sealed, &chatwoot::path_token_context(&c.org_id))
        .map_err(|e| ApiError::internal("Opening the Chatwoot webhook token", &e))?;
    Ok(ChatwootOut {
        base_url: c.base_url.clone(),
        account_id: c.account_id,
        api_token: format!("••••••••{}", c.api_token_last4),
        webhook_secret_set: c.webhook_secret_sealed.is_some(),
        inbox_ids: c.inbox_ids.clone(),
        handoff: c.handoff.clone(),
        agent_messages: c.agent_messages,
        summary_attribute: c.summary_attribute.clone(),
        webhook_url: webhook_url(state, token.expose_secret()),
        events_to_tick: chatwoot::EVENTS_TO_TICK.to_vec(),
        last_check: c
            .last_check_report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    })
}

/// `GET /v1/connectors/chatwoot`
#[utoipa::path(get, path = "/v1/connectors/chatwoot", operation_id = "getChatwootConnector", tag = "chatwoot", security(("api_key" = [])), responses((status = 200, description = "Settings (token masked), the webhook URL and the events to tick", body = ChatwootOut), (status = 404, description = "No Chatwoot connector", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<ChatwootOut>> {
    let c = store::get(&state.app.db, &caller.org_id)
        .await?
        .ok_or_else(not_connected)?;
    Ok(Json(view(&state, &c)?))
}

/// Settings that passed validation.
struct Valid {
    base_url: String,
    account_id: i64,
    api_token: String,
    webhook_secret: Option<String>,
    inbox_ids: Vec<i64>,
    handoff: Handoff,
    agent_messages: bool,
    summary_attribute: Option<String>,
}

async fn validate(
    state: &AppState,
    body: ChatwootBody,
    existing: Option<&Connector>,
) -> Result<Valid, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut fail = |field: &'static str, message: String, hint: &str| {
        errors.push(FieldError {
            field,
            message,
            hint: hint.to_string(),
        })
    };
    let base_url = body.base_url.trim().trim_end_matches('/').to_string();
    match reqwest::Url::parse(&base_url) {
        Err(e) => fail(
            "base_url",
            format!("base_url {base_url:?} is not an absolute URL ({e})"),
            "Give the address you open Chatwoot at, e.g. https://chat.example.com.",
        ),
        Ok(u) if !matches!(u.scheme(), "https" | "http") => fail(
            "base_url",
            format!("base_url uses {}:, not https: or http:", u.scheme()),
            "Give Chatwoot's https:// address.",
        ),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => fail(
            "base_url",
            "base_url contains a user name or password".into(),
            "Remove them; casebridge authenticates with the API access token.",
        ),
        Ok(u) if u.query().is_some() || u.fragment().is_some() || u.path().contains("/app/") => {
            fail(
                "base_url",
                format!("base_url {base_url:?} is a page of Chatwoot, not its base address"),
                "Keep only the scheme and host (and a path prefix if Chatwoot is served under one), e.g. https://chat.example.com.",
            )
        }
        Ok(_) => {
            if let Err(why) = state.app.policy.check_url(&base_url).await {
                fail(
                    "base_url",
                    format!("base_url is refused: {why}"),
                    "Use Chatwoot's public address; an operator running casebridge beside Chatwoot can allow private networks with CASEBRIDGE_ALLOW_PRIVATE_TARGETS.",
                );
            }
        }
    }
    if body.account_id <= 0 {
        fail(
            "account_id",
            format!("account_id {} is not an account number", body.account_id),
            "Use the number in Chatwoot's URL: /app/accounts/<id>/dashboard.",
        );
    }
    let given = body.api_token.as_deref().map(str::trim);
    let api_token = match given {
        Some(t) if !t.is_empty() && t.len() <= 256 && !t.chars().any(char::is_whitespace) => {
            Some(t.to_string())
        }
        Some(_) => {
            fail(
                "api_token",
                "api_token is empty, has spaces or is longer than 256 characters".into(),
                "Copy the access token from Chatwoot: Profile settings → Access Token.",
            );
            None
        }
        None => match existing {
            Some(c) => state
                .app
                .secrets
                .open(&c.api_token_sealed, &chatwoot::api_token_context(&c.org_id))
                .ok()
                .map(|t| t.expose_secret().to_string()),
            None => None,
        },
    };
    if api_token.is_none() && given.is_none() {
        fail(
            "api_token",
            "api_token is required".into(),
            "Copy the access token of a Chatwoot agent or administrator: Profile settings → Access Token.",
        );
    }
    let webhook_secret = match body.webhook_secret.as_deref().map(str::trim) {
        Some("") => None,
        Some(s) if s.len() <= 256 => Some(s.to_string()),
        Some(_) => {
            fail(
                "webhook_secret",
                "webhook_secret is longer than 256 characters".into(),
                "Copy the secret Chatwoot shows for the webhook.",
            );
            None
        }
        None => existing.and_then(|c| {
            let sealed = c.webhook_secret_sealed.as_ref()?;
            state
                .app
                .secrets
                .open(sealed, &chatwoot::webhook_secret_context(&c.org_id))
                .ok()
                .map(|s| s.expose_secret().to_string())
        }),
    };
    let inbox_ids = body
        .inbox_ids
        .or_else(|| existing.map(|c| c.inbox_ids.clone()))
        .unwrap_or_default();
    if inbox_ids.len() > 200 || inbox_ids.iter().any(|&i| i <= 0) {
        fail(
            "inbox_ids",
            "inbox_ids holds a number that is no inbox id, or more than 200".into(),
            "List the inbox ids from Chatwoot's URL (/settings/inboxes/<id>), or leave it empty for every inbox.",
        );
    }
    let handoff_word = body
        .handoff
        .or_else(|| existing.map(|c| c.handoff.clone()))
        .unwrap_or_else(|| Handoff::default().as_str().to_string());
    let handoff = Handoff::parse(&handoff_word).unwrap_or_else(|| {
        fail(
            "handoff",
            format!("handoff {handoff_word:?} is not a hand-off rule"),
            "Use pending_to_open (the agent bot hands off) or any_open (inboxes without a bot).",
        );
        Handoff::default()
    });
    let summary_attribute = match body.summary_attribute.as_deref().map(str::trim) {
        Some("") => None,
        Some(s)
            if s.len() <= 100
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Some(s.to_string())
        }
        Some(s) => {
            fail(
                "summary_attribute",
                format!("summary_attribute {s:?} is not a custom attribute key"),
                "Use the attribute's key from Chatwoot (Settings → Custom Attributes), e.g. handoff_summary.",
            );
            None
        }
        None => existing.and_then(|c| c.summary_attribute.clone()),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Valid {
        base_url,
        account_id: body.account_id,
        api_token: api_token.unwrap_or_default(),
        webhook_secret,
        inbox_ids,
        handoff,
        agent_messages: body
            .agent_messages
            .or(existing.map(|c| c.agent_messages))
            .unwrap_or(false),
        summary_attribute,
    })
}

fn check(name: &'static str, status: CheckStatus, message: String, hint: Option<&str>) -> Check {
    Check {
        name,
        status,
        message,
        hint: hint.map(str::to_string),
    }
}

/// The checks behind Test & Save: the token (`GET /api/v1/profile`, the
/// user's own answer, docs/reference/chatwoot.md §3.3), the account among
/// the user's, and whether webhook calls will be verified.
async fn run_checks(state: &AppState, v: &Valid) -> Report {
    let mut checks = Vec::new();
    let url = format!("{}/api/v1/profile", v.base_url);
    let answer = state
        .app
        .delivery_http
        .get(&url)
        .header("api_access_token", &v.api_token)
        .timeout(std::time::Duration::from_secs(15))
        .send()
        .await;
    let profile: Option<Value> = match answer {
        Err(e) => {
            checks.push(check(
                "chatwoot_token",
                CheckStatus::Fail,
                format!("Could not reach Chatwoot at {}: {}", v.base_url, creatio::transport_reason(&e)),
                Some("Check base_url (the address you open Chatwoot at) and that this server can reach it."),
            ));
            None
        }
        Ok(r) => {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let said = body["error"].as_str().unwrap_or("no reason given");
            match status {
                200 if body["accounts"].is_array() => {
                    checks.push(check(
                        "chatwoot_token",
                        CheckStatus::Pass,
                        format!(
                            "The token is {}'s ({})",
                            body["name"].as_str().unwrap_or("a user"),
                            body["email"].as_str().unwrap_or("no e-mail")
                        ),
                        None,
                    ));
                    Some(body)
                }
                200 => {
                    checks.push(check(
                        "chatwoot_token",
                        CheckStatus::Fail,
                        format!("{url} answered, but not as Chatwoot does (no accounts)"),
                        Some("Check that base_url is Chatwoot's address."),
                    ));
                    None
                }
                401 => {
                    checks.push(check(
                        "chatwoot_token",
                        CheckStatus::Fail,
                        format!("Chatwoot refused the API access token (401: {said})"),
                        Some("Copy the access token of a Chatwoot agent or administrator (Profile settings → Access Token). An agent bot's token is refused here, and replies sent with it would show as the bot's."),
                    ));
                    None
                }
                404 => {
                    checks.push(check(
                        "chatwoot_token",
                        CheckStatus::Fail,
                        format!("{url} answered 404: this is not Chatwoot's API"),
                        Some("Give Chatwoot's base address, e.g. https://chat.example.com, without a page path."),
                    ));
                    None
                }
                s => {
                    checks.push(check(
                        "chatwoot_token",
                        CheckStatus::Fail,
                        format!("Chatwoot answered {s} to {url}: {said}"),
                        Some("Try again in a moment; if it persists, check Chatwoot's log."),
                    ));
                    None
                }
            }
        }
    };
    match &profile {
        None => checks.push(check(
            "chatwoot_account",
            CheckStatus::Skip,
            "Not checked: the token was not accepted".into(),
            None,
        )),
        Some(p) => {
            let accounts = p["accounts"].as_array().cloned().unwrap_or_default();
            match accounts
                .iter()
                .find(|a| a["id"].as_i64() == Some(v.account_id))
            {
                Some(a) => checks.push(check(
                    "chatwoot_account",
                    CheckStatus::Pass,
                    format!(
                        "Account {} ({}); the token's user is {} there",
                        v.account_id,
                        a["name"].as_str().unwrap_or("unnamed"),
                        a["role"].as_str().unwrap_or("a member")
                    ),
                    None,
                )),
                None => {
                    let theirs: Vec<String> = accounts
                        .iter()
                        .map(|a| {
                            format!(
                                "{} ({})",
                                a["id"].as_i64().unwrap_or_default(),
                                a["name"].as_str().unwrap_or("unnamed")
                            )
                        })
                        .collect();
                    checks.push(check(
                        "chatwoot_account",
                        CheckStatus::Fail,
                        format!(
                            "The token's user is not a member of account {}; their accounts: {}",
                            v.account_id,
                            if theirs.is_empty() { "none".to_string() } else { theirs.join(", ") }
                        ),
                        Some("Set account_id to the number in Chatwoot's URL (/app/accounts/<id>/…), or use a token of a member of that account."),
                    ));
                }
            }
        }
    }
    checks.push(match v.webhook_secret {
        Some(_) => check(
            "chatwoot_webhook_signature",
            CheckStatus::Pass,
            "Webhook calls must carry Chatwoot's signature (X-Chatwoot-Signature, sent from Chatwoot v4.12.0)".into(),
            None,
        ),
        None => check(
            "chatwoot_webhook_signature",
            CheckStatus::Warn,
            "Webhook calls are taken unsigned: the URL's token is their only credential".into(),
            Some("On Chatwoot v4.12.0 or later, copy the secret Chatwoot shows for the webhook into webhook_secret."),
        ),
    });
    let ok = checks.iter().all(|c| c.status != CheckStatus::Fail);
    Report { ok, checks }
}

/// `PUT /v1/connectors/chatwoot`: Test & Save. Nothing is stored unless
/// every check passes. Chatwoot then takes the org's deliveries: agents'
/// replies become messages in the conversation, closures resolve it.
#[utoipa::path(put, path = "/v1/connectors/chatwoot", operation_id = "testAndSaveChatwootConnector", tag = "chatwoot", request_body = ChatwootBody, security(("api_key" = [])), responses((status = 200, description = "Every check passed; saved", body = ChatwootSavedOut), (status = 201, description = "Every check passed; connected", body = ChatwootSavedOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 409, description = "The org's deliveries go to a webhook receiver; remove it first", body = ErrorBody), (status = 422, description = "A check failed; nothing saved; the report says which and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Body(body): Body<ChatwootBody>,
) -> ApiResult<(StatusCode, Json<ChatwootSavedOut>)> {
    let org_id = &caller.org_id;
    let existing = store::get(&state.app.db, org_id).await?;
    let endpoint = deliveries::endpoint(&state.app.db, org_id).await?;
    if endpoint.as_ref().is_some_and(|e| e.platform != "chatwoot") {
        return Err(ApiError::new(
            Code::Conflict,
            "This org's deliveries go to a webhook receiver (PUT /v1/delivery); an org has one chat platform",
            "Remove the delivery URL first (DELETE /v1/delivery); queued deliveries then go to Chatwoot.",
        ));
    }
    let valid = validate(&state, body, existing.as_ref())
        .await
        .map_err(ApiError::fields)?;
    let report = run_checks(&state, &valid).await;
    if !report.ok {
        tracing::info!(%org_id, base_url = %valid.base_url, "Chatwoot Test & Save failed; nothing saved.");
        return Err(super::connection::check_failed(&report, "Test & Save"));
    }
    let secrets = &state.app.secrets;
    let (token_hash_, token_sealed) = match &existing {
        Some(c) => (c.token_hash.clone(), c.token_sealed.clone()),
        None => {
            let token = random_token(PATH_TOKEN_PREFIX);
            (
                token_hash(&token),
                secrets.seal(&token, &chatwoot::path_token_context(org_id)),
            )
        }
    };
    let now = now_ms();
    let connector = Connector {
        org_id: org_id.clone(),
        base_url: valid.base_url.clone(),
        account_id: valid.account_id,
        api_token_sealed: secrets.seal(&valid.api_token, &chatwoot::api_token_context(org_id)),
        api_token_last4: last_four(&valid.api_token),
        webhook_secret_sealed: valid
            .webhook_secret
            .as_ref()
            .map(|s| secrets.seal(s, &chatwoot::webhook_secret_context(org_id))),
        inbox_ids: valid.inbox_ids.clone(),
        handoff: valid.handoff.as_str().to_string(),
        agent_messages: valid.agent_messages,
        summary_attribute: valid.summary_attribute.clone(),
        token_hash: token_hash_,
        token_sealed,
        last_check_report: serde_json::to_string(&report).ok(),
        created_at: existing.as_ref().map(|c| c.created_at).unwrap_or(now),
        updated_at: now,
    };
    let endpoint_secret = match &endpoint {
        Some(e) => e.secret_sealed.clone(),
        None => secrets.seal(&webhook_secret(), &crate::deliver::secret_context(org_id)),
    };
    store::save(&state.app.db, &connector, &endpoint_secret).await?;
    tracing::info!(%org_id, base_url = %valid.base_url, account_id = valid.account_id, "Chatwoot connector saved; deliveries go to Chatwoot.");
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(ChatwootSavedOut {
            connector: view(&state, &connector)?,
            report,
        }),
    ))
}

/// `DELETE /v1/connectors/chatwoot`: disconnects Chatwoot. Its webhook URL
/// stops working; queued deliveries wait for a new destination.
#[utoipa::path(delete, path = "/v1/connectors/chatwoot", operation_id = "removeChatwootConnector", tag = "chatwoot", security(("api_key" = [])), responses((status = 204, description = "Disconnected; queued deliveries wait"), (status = 404, description = "No Chatwoot connector", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Admin(caller): Admin) -> ApiResult<StatusCode> {
    if !store::delete(&state.app.db, &caller.org_id).await? {
        return Err(not_connected());
    }
    tracing::info!(org_id = %caller.org_id, "Chatwoot connector removed.");
    Ok(StatusCode::NO_CONTENT)
}

/// Why a webhook call is refused before its payload is read.
fn refused(code: Code, message: String, hint: &str) -> Response {
    ApiError::new(code, message, hint.to_string()).into_response()
}

/// `POST /v1/connectors/chatwoot/{token}`: Chatwoot's account webhook.
/// Answered `200` only once what it brings is stored; unknown events,
/// private notes and casebridge's own messages are answered `200` and
/// ignored, with the reason (Chatwoot does not retry account webhooks).
#[utoipa::path(post, path = "/v1/connectors/chatwoot/{token}", operation_id = "chatwootWebhook", tag = "chatwoot", params(("token" = String, Path, description = "The org's Chatwoot webhook token (`cbc_…`): the URL is the webhook's credential, with the signature when a secret is set")), request_body(content = Object, description = "A Chatwoot webhook payload (message_created, conversation_status_changed, conversation_updated; others are ignored)"), responses((status = 200, description = "Stored (or a duplicate, or ignored with the reason)", body = ChatwootCallOut), (status = 400, description = "Not JSON, or a payload casebridge cannot take", body = ErrorBody), (status = 401, description = "The signature is missing, stale or wrong", body = ErrorBody), (status = 404, description = "Unknown webhook token", body = ErrorBody), (status = 409, description = "The org has never connected Creatio", body = ErrorBody), (status = 429, description = "Rate-limited; see Retry-After", body = ErrorBody)))]
pub async fn webhook(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match take(&state, &token, &headers, &body).await {
        Ok(out) => Json(out).into_response(),
        Err(r) => r,
    }
}

async fn take(
    state: &AppState,
    token: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ChatwootCallOut, Response> {
    let db = &state.app.db;
    let connector = store::by_token_hash(db, &token_hash(token))
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(|| {
            refused(
                Code::NotFound,
                "Unknown Chatwoot webhook token".into(),
                "Copy the webhook URL again (GET /v1/connectors/chatwoot, or the admin page's Chat platform card) into Chatwoot's webhook; it stops working when the connector is removed.",
            )
        })?;
    let org_id = &connector.org_id;
    if let Err(wait) = state.webhook_limiter.check(&format!("chatwoot:{org_id}")) {
        return Err(super::webhooks::rate_limited(
            "Too many Chatwoot webhook calls for this org",
            wait,
            "",
        ));
    }
    if let Some(sealed) = &connector.webhook_secret_sealed {
        let secret = state
            .app
            .secrets
            .open(sealed, &chatwoot::webhook_secret_context(org_id))
            .map_err(|e| {
                ApiError::internal("Opening the Chatwoot webhook secret", &e).into_response()
            })?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        chatwoot::verify(
            secret.expose_secret(),
            header("x-chatwoot-timestamp"),
            header("x-chatwoot-signature"),
            body,
            chrono::Utc::now().timestamp(),
        )
        .map_err(|e| {
            tracing::info!(%org_id, problem = %e, "Refused a Chatwoot webhook call.");
            refused(
                Code::Unauthorized,
                format!("Refused: {e}"),
                "Set the connector's webhook_secret to the secret Chatwoot shows for this webhook (PUT /v1/connectors/chatwoot), or remove it with \"\" if your Chatwoot does not sign (before v4.12.0).",
            )
        })?;
    }
    super::extract::refuse_nul(body, ("", "")).map_err(IntoResponse::into_response)?;
    let payload: Value = parse_json(body).map_err(IntoResponse::into_response)?;
    let ignored = |reason: String| ChatwootCallOut {
        status: "ignored",
        reason: Some(reason),
        events: vec![],
    };
    if !connector.inbox_ids.is_empty() {
        match chatwoot::inbox_id(&payload) {
            Some(inbox) if !connector.inbox_ids.contains(&inbox) => {
                return Ok(ignored(format!(
                    "inbox {inbox} is not among the connector's inboxes"
                )))
            }
            _ => {}
        }
    }
    if connections::get(db, org_id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .is_none()
    {
        return Err(refused(
            Code::Conflict,
            "This org has never connected Creatio, so conversations would have nowhere to go; nothing was stored".into(),
            "Connect Creatio first (POST /v1/creatio/connection, Test & Save). Chatwoot does not send this call again.",
        ));
    }
    accept(state, &connector, &payload)
        .await
        .map_err(|e| e.into_response())
}

/// Maps the payload with what casebridge knew of its conversation and
/// stores the events, the status it shows and the jobs in one transaction.
async fn accept(
    state: &AppState,
    connector: &Connector,
    payload: &Value,
) -> ApiResult<ChatwootCallOut> {
    let db = &state.app.db;
    let org_id = &connector.org_id;
    // casebridge's own message, by its id (the marks on it are checked by
    // the mapping).
    if payload["event"] == "message_created" {
        if let Some(id) = payload["id"].as_i64() {
            if written::was_written(db, org_id, &format!("cw-message-{id}")).await? {
                return Ok(ChatwootCallOut {
                    status: "ignored",
                    reason: Some(
                        "casebridge wrote this message itself (an agent's reply from Creatio)"
                            .into(),
                    ),
                    events: vec![],
                });
            }
        }
    }
    let options = Options {
        handoff: Handoff::parse(&connector.handoff).unwrap_or_default(),
        agent_messages: connector.agent_messages,
        summary_attribute: connector.summary_attribute.clone(),
    };
    let shown = chatwoot::status_shown(payload);
    let mut tx = db.write().await?;
    let seen = match &shown {
        Some((conversation, _, _)) => {
            store::seen(&mut tx, org_id, &ConversationId::from(conversation.clone())).await?
        }
        None => store::Seen::default(),
    };
    let known = Known {
        status: seen.status.as_deref(),
        set_by_casebridge: seen.set_by_casebridge.as_deref(),
    };
    let mapped = chatwoot::map(payload, &options, &known);
    if let Some((conversation, status, status_event)) = &shown {
        let conversation = ConversationId::from(conversation.clone());
        if *status_event {
            store::record_status(&mut tx, org_id, &conversation, status).await?;
        } else {
            store::seed_status(&mut tx, org_id, &conversation, status).await?;
        }
    }
    let (reason, answers) = match mapped {
        Mapped::Ignored(reason) => (Some(reason), vec![]),
        Mapped::Events(list) => {
            let parsed = events::parse_body(&Value::Array(list)).map_err(|errors| {
                let what = errors
                    .iter()
                    .take(3)
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                ApiError::invalid(
                    format!("The Chatwoot payload does not make a valid casebridge event, nothing was stored: {what}"),
                    "This is a payload casebridge does not take; the log has the event. Report it with the Chatwoot version.",
                )
            })?;
            (None, events::ingest_all(&mut tx, org_id, &parsed).await?)
        }
    };
    tx.commit().await?;
    let accepted = super::events::count_received(&answers);
    let out = ChatwootCallOut {
        status: match (&reason, accepted) {
            (Some(_), _) => "ignored",
            (None, 0) => "duplicate",
            _ => "accepted",
        },
        reason,
        events: answers,
    };
    tracing::debug!(%org_id, event = %payload["event"], status = out.status, reason = ?out.reason, "Took a Chatwoot webhook call.");
    Ok(out)
}

/// Whether the org's chat platform is Chatwoot (the delivery-URL endpoints
/// refuse to change it underneath).
pub async fn is_chatwoot(state: &AppState, org_id: &OrgId) -> ApiResult<bool> {
    Ok(deliveries::endpoint(&state.app.db, org_id)
        .await?
        .is_some_and(|e| e.platform == "chatwoot"))
}
