//! The org's delivery endpoint (`GET/PUT/DELETE /v1/delivery`, secret
//! rotation) and the delivery log (`GET /v1/deliveries`, one delivery with
//! its attempts, replay).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, ApiResult, Code};
use super::extract::{parse_json, Admin, QueryParams};
use super::openapi::ErrorBody;
use super::AppState;
use crate::deliver::secret_context;
use crate::domain::ConversationId;
use crate::secrets::webhook_secret;
use crate::storage::deliveries::{self, Delivery, Endpoint, ListFilter};
use crate::storage::{now_ms, rfc3339};

/// How long a rotated-out secret keeps signing.
const ROTATION_GRACE_MS: i64 = 24 * 3_600_000;
const STATES: &[&str] = &["pending", "delivering", "delivered", "dead"];

/// Where deliveries go.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDelivery {
    /// The receiver's URL (https, or http on an allowed private network).
    url: String,
}

/// The delivery URL's endpoints leave a Chatwoot org's platform alone.
async fn refuse_if_chatwoot(state: &AppState, org_id: &crate::domain::OrgId) -> ApiResult<()> {
    if super::chatwoot::is_chatwoot(state, org_id).await? {
        return Err(ApiError::new(
            Code::Conflict,
            "This org's deliveries go to Chatwoot (its connector); an org has one chat platform",
            "Remove the Chatwoot connector first (DELETE /v1/connectors/chatwoot) to send deliveries to a URL instead.",
        ));
    }
    Ok(())
}

fn no_endpoint() -> ApiError {
    ApiError::not_found(
        "This org has no delivery URL",
        "Set one with PUT /v1/delivery {\"url\": \"https://…\"}: agents' replies and closures are sent there.",
    )
}

/// Whether an answer carries the signing secret in clear: only the answers
/// of `PUT` (which the admin page shows once) and of the rotation do; a
/// read shows it masked, so a leaked read-only view or a log of answers does
/// not hold the key that forges deliveries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Secret {
    Shown,
    Masked,
}

/// The org's delivery URL.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointOut {
    /// `webhook` (signed deliveries to `url`) or `chatwoot` (the Chatwoot
    /// connector's API at `url`; see GET /v1/connectors/chatwoot).
    pub platform: String,
    pub url: String,
    /// `enabled`, or `disabled` after the receiver answered 410.
    pub state: String,
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`): in clear in the answers of `PUT`
    /// and of the rotation, masked otherwise.
    pub secret: String,
    /// Until when the previous secret signs too, after a rotation.
    pub previous_secret_valid_until: Option<String>,
    /// Deliveries by state.
    #[serde(serialize_with = "super::pairs_as_object")]
    #[schema(value_type = HashMap<String, i64>)]
    pub deliveries: Vec<(String, i64)>,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /v1/delivery/secret/rotate`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RotatedSecretOut {
    pub secret: String,
    pub previous_secret_valid_until: String,
    pub hint: &'static str,
}

/// A delivery to the platform.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    /// Also its `webhook-id`.
    pub id: String,
    pub conversation_id: ConversationId,
    /// `agent.reply`, `conversation.resolved` or `case.linked`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivering`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i64,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    /// The body sent: the Standard Webhooks envelope.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: String,
    pub updated_at: String,
    pub delivered_at: Option<String>,
    /// The request whose work queued it (`x-request-id`, sent on with it).
    pub request_id: Option<String>,
}

impl From<&Delivery> for DeliveryOut {
    fn from(d: &Delivery) -> Self {
        DeliveryOut {
            id: d.id.clone(),
            conversation_id: d.conversation_id.clone(),
            event_type: d.event_type.clone(),
            state: d.state.clone(),
            attempts: d.attempts,
            next_attempt_at: (d.state == "pending").then(|| rfc3339(d.next_attempt_at)),
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            payload: serde_json::from_str(&d.payload).unwrap_or(Value::Null),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            delivered_at: d.delivered_at.map(rfc3339),
            request_id: d.request_id.clone(),
        }
    }
}

/// `GET /v1/deliveries`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveriesOut {
    pub deliveries: Vec<DeliveryOut>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<String>,
}

/// `GET /v1/deliveries/{id}`: the delivery and every attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryWithAttemptsOut {
    #[serde(flatten)]
    pub delivery: DeliveryOut,
    pub attempt_log: Vec<AttemptOut>,
}

/// One attempt to deliver.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptOut {
    pub at: String,
    pub url: String,
    /// The receiver's status; absent when it did not answer.
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response: Option<String>,
}

/// `POST /v1/deliveries/{id}/replay`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReplayedOut {
    pub id: String,
    /// Always `pending`.
    pub state: &'static str,
    /// Why it may still wait (no URL, or a disabled one).
    pub warning: Option<&'static str>,
}

async fn endpoint_view(state: &AppState, e: &Endpoint, show: Secret) -> ApiResult<EndpointOut> {
    let context = secret_context(&e.org_id);
    let secret = state
        .app
        .secrets
        .open(&e.secret_sealed, &context)
        .map_err(|err| ApiError::internal("Opening the delivery signing secret", &err))?;
    let previous_until = e.previous_until.filter(|u| *u > now_ms());
    let counts = deliveries::counts(&state.app.db, &e.org_id).await?;
    Ok(EndpointOut {
        platform: e.platform.clone(),
        url: e.url.clone(),
        state: e.state.clone(),
        disabled_reason: e.disabled_reason.clone(),
        secret: match show {
            Secret::Shown => secret.expose_secret().to_string(),
            Secret::Masked => masked(secret.expose_secret()),
        },
        previous_secret_valid_until: previous_until.map(rfc3339),
        deliveries: counts,
        created_at: rfc3339(e.created_at),
        updated_at: rfc3339(e.updated_at),
    })
}

/// `whsec_••••••••` and the last four characters, to tell secrets apart.
fn masked(secret: &str) -> String {
    format!("whsec_••••••••{}", crate::secrets::last_four(secret))
}

/// `GET /v1/delivery`: the signing secret masked (it is shown in the
/// answers of `PUT` and of the rotation).
#[utoipa::path(get, path = "/v1/delivery", operation_id = "getDeliveryEndpoint", tag = "two-way", security(("api_key" = [])), responses((status = 200, description = "URL, state, the signing secret masked, delivery counts", body = EndpointOut), (status = 404, description = "No delivery URL", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<EndpointOut>> {
    let e = deliveries::endpoint(&state.app.db, &caller.org_id)
        .await?
        .ok_or_else(no_endpoint)?;
    Ok(Json(endpoint_view(&state, &e, Secret::Masked).await?))
}

/// Checks a delivery URL: absolute http(s), no credentials in it, and not
/// pointing at a private network unless the operator allows it.
async fn check_url(state: &AppState, raw: &str) -> ApiResult<String> {
    let text = raw.trim();
    let invalid = |message: String, hint: &str| {
        ApiError::invalid(message, hint.to_string()).with_data("field", "url")
    };
    let url = reqwest::Url::parse(text).map_err(|e| {
        invalid(
            format!("url {text:?} is not an absolute URL ({e})"),
            "Give the full address of your receiver, e.g. https://chat.example.com/hooks/casebridge.",
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid(
            format!("url uses {}:, not https: or http:", url.scheme()),
            "Give an https:// address of your receiver.",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "url contains a user name or password".into(),
            "Remove the credentials from the URL; deliveries are authenticated by their signature (webhook-signature).",
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid(
            "url has a #fragment, which is never sent".into(),
            "Remove the part from # on.",
        ));
    }
    state.app.policy.check_url(url.as_str()).await.map_err(|why| {
        invalid(
            format!("url is refused: {why}"),
            "Use your receiver's public address; an operator running casebridge beside the receiver can allow private networks with CASEBRIDGE_ALLOW_PRIVATE_TARGETS.",
        )
    })?;
    Ok(url.to_string())
}

/// `PUT /v1/delivery`: sets the URL (and re-enables a disabled endpoint).
/// The first save creates the signing secret; later saves keep it.
#[utoipa::path(put, path = "/v1/delivery", operation_id = "putDeliveryEndpoint", tag = "two-way", request_body = PutDelivery, security(("api_key" = [])), responses((status = 200, description = "Changed (and enabled)", body = EndpointOut), (status = 201, description = "Created, with a new whsec_ secret", body = EndpointOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Admin(caller): Admin,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let input: PutDelivery = parse_json(&body)?;
    let url = check_url(&state, &input.url).await?;
    refuse_if_chatwoot(&state, &caller.org_id).await?;
    let existing = deliveries::endpoint(&state.app.db, &caller.org_id).await?;
    // A first save creates the secret; later saves keep the stored one.
    let sealed = match &existing {
        Some(e) => e.secret_sealed.clone(),
        None => state
            .app
            .secrets
            .seal(&webhook_secret(), &secret_context(&caller.org_id)),
    };
    deliveries::put_endpoint(&state.app.db, &caller.org_id, &url, &sealed).await?;
    let saved = deliveries::endpoint(&state.app.db, &caller.org_id)
        .await?
        .ok_or_else(no_endpoint)?;
    tracing::info!(org_id = %caller.org_id, %url, "Delivery URL saved.");
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(endpoint_view(&state, &saved, Secret::Shown).await?),
    ))
}

/// `DELETE /v1/delivery`: stops deliveries; queued ones wait for a new URL.
#[utoipa::path(delete, path = "/v1/delivery", operation_id = "removeDeliveryEndpoint", tag = "two-way", security(("api_key" = [])), responses((status = 204, description = "Removed; queued deliveries wait"), (status = 404, description = "No delivery URL", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Admin(caller): Admin) -> ApiResult<StatusCode> {
    refuse_if_chatwoot(&state, &caller.org_id).await?;
    if !deliveries::delete_endpoint(&state.app.db, &caller.org_id).await? {
        return Err(no_endpoint());
    }
    tracing::info!(org_id = %caller.org_id, "Delivery URL removed.");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/delivery/secret/rotate`: a new secret; the old one keeps
/// signing (a second signature) for 24 hours, so the receiver can switch
/// without losing a delivery.
#[utoipa::path(post, path = "/v1/delivery/secret/rotate", operation_id = "rotateDeliverySecret", tag = "two-way", security(("api_key" = [])), responses((status = 200, description = "The new secret; the old one signs too for 24 h", body = RotatedSecretOut), (status = 404, description = "No delivery URL", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> ApiResult<Json<RotatedSecretOut>> {
    refuse_if_chatwoot(&state, &caller.org_id).await?;
    let secret = webhook_secret();
    let sealed = state
        .app
        .secrets
        .seal(&secret, &secret_context(&caller.org_id));
    let until = now_ms() + ROTATION_GRACE_MS;
    if !deliveries::rotate_secret(&state.app.db, &caller.org_id, &sealed, until).await? {
        return Err(no_endpoint());
    }
    tracing::info!(org_id = %caller.org_id, "Delivery signing secret rotated.");
    Ok(Json(RotatedSecretOut {
        secret,
        previous_secret_valid_until: rfc3339(until),
        hint: "Deliveries carry signatures by both secrets until then; switch your receiver to the new secret.",
    }))
}

/// `GET /v1/deliveries?status=&conversation_id=&before=&limit=`.
#[utoipa::path(get, path = "/v1/deliveries", operation_id = "listDeliveries", tag = "two-way", security(("api_key" = [])), params(("status" = Option<String>, Query, description = "pending, delivering, delivered or dead"), ("conversation_id" = Option<String>, Query), ("before" = Option<String>, Query, description = "a delivery id, for paging"), ("limit" = Option<i64>, Query, description = "1 to 500, default 50")), responses((status = 200, description = "Deliveries, newest first", body = DeliveriesOut), (status = 400, description = "Invalid input; the error names the field and how to fix it", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<DeliveriesOut>> {
    let params = QueryParams::known(
        &params,
        &["status", "conversation_id", "before", "limit"],
        "Filter with status, conversation_id, before (a delivery id, for paging) and limit.",
    )?;
    let status = params.get("status");
    if let Some(s) = status {
        if !STATES.contains(&s) {
            return Err(ApiError::invalid(
                format!("status {s:?} is not a delivery state"),
                "Use pending, delivering, delivered or dead.",
            ));
        }
    }
    let limit = params.count(
        "limit",
        500,
        50,
        "Ask for at most 500 deliveries at a time; page with before=<last id>.",
    )?;
    let found = deliveries::list(
        &state.app.db,
        &caller.org_id,
        &ListFilter {
            state: status,
            conversation_id: params.get("conversation_id"),
            before: params.get("before"),
            limit,
        },
    )
    .await?;
    let next = (found.len() as i64 == limit)
        .then(|| found.last().map(|d| d.id.clone()))
        .flatten();
    Ok(Json(DeliveriesOut {
        deliveries: found.iter().map(DeliveryOut::from).collect(),
        next_before: next,
    }))
}

/// Why a queued delivery may still wait: no URL, or a disabled one.
pub(super) async fn waiting_warning(
    state: &AppState,
    org_id: &crate::domain::OrgId,
) -> ApiResult<Option<&'static str>> {
    Ok(match deliveries::endpoint(&state.app.db, org_id).await? {
        None => Some("This org has no delivery URL; the delivery waits until one is set (PUT /v1/delivery)."),
        Some(e) if e.state != "enabled" => Some("The delivery URL is disabled (the receiver answered 410); the delivery waits until it is set again (PUT /v1/delivery)."),
        _ => None,
    })
}

pub(super) fn no_delivery(id: &str) -> ApiError {
    ApiError::not_found(
        format!("This org has no delivery {id:?}"),
        "List deliveries with GET /v1/deliveries; ids start with msg_.",
    )
}

/// `GET /v1/deliveries/{id}`: the delivery and every attempt.
#[utoipa::path(get, path = "/v1/deliveries/{id}", operation_id = "getDelivery", tag = "two-way", security(("api_key" = [])), params(("id" = String, Path, description = "The delivery's id (its webhook-id)")), responses((status = 200, description = "The delivery and every attempt", body = DeliveryWithAttemptsOut), (status = 404, description = "No such delivery", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryWithAttemptsOut>> {
    let d = deliveries::get(&state.app.db, &caller.org_id, &id)
        .await?
        .ok_or_else(|| no_delivery(&id))?;
    let attempt_log = deliveries::attempts(&state.app.db, &caller.org_id, &id)
        .await?
        .into_iter()
        .map(|a| AttemptOut {
            at: rfc3339(a.at),
            url: a.url,
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error,
            response: a.response,
        })
        .collect();
    Ok(Json(DeliveryWithAttemptsOut {
        delivery: DeliveryOut::from(&d),
        attempt_log,
    }))
}

/// `POST /v1/deliveries/{id}/replay`: sends a dead (or delivered) delivery
/// again, same `webhook-id`, fresh schedule.
#[utoipa::path(post, path = "/v1/deliveries/{id}/replay", operation_id = "replayDelivery", tag = "two-way", security(("api_key" = [])), params(("id" = String, Path, description = "The delivery's id")), responses((status = 202, description = "Queued again, same webhook-id", body = ReplayedOut), (status = 404, description = "No such delivery", body = ErrorBody), (status = 409, description = "Still queued", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<ReplayedOut>)> {
    match deliveries::replay(&state.app.db, &caller.org_id, &id).await? {
        None => Err(no_delivery(&id)),
        Some(false) => Err(ApiError::new(
            Code::Conflict,
            format!("Delivery {id} is still queued; there is nothing to replay"),
            "Replay dead or delivered deliveries; a queued one goes out on its schedule.",
        )),
        Some(true) => {
            let warning = waiting_warning(&state, &caller.org_id).await?;
            tracing::info!(org_id = %caller.org_id, delivery_id = %id, "Delivery replayed.");
            Ok((
                StatusCode::ACCEPTED,
                Json(ReplayedOut {
                    id,
                    state: "pending",
                    warning,
                }),
            ))
        }
    }
}
