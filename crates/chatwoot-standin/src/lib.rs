//! A Chatwoot stand-in for casebridge's tests and its demo: one account,
//! its conversations, the account webhook and the three Application API
//! calls casebridge makes. It is a test fixture, not casebridge code.
//!
//! Every shape is Chatwoot v4.15.1's, read from its source; the notes in
//! `docs/reference/chatwoot.md` (§n below) give the file and line of each:
//! - webhook payloads: `Message#webhook_data` (§1.2), `Conversation#webhook_data`
//!   through `Conversations::EventDataPresenter` (§1.1), `changed_attributes` as
//!   `BaseListener#extract_changed_attributes` builds it (§1.4);
//! - signing: `X-Chatwoot-Signature: sha256=<hex HMAC-SHA256 of "ts.body">`,
//!   `X-Chatwoot-Timestamp`, `X-Chatwoot-Delivery` (`lib/webhooks/trigger.rb:54-63`, §2.1);
//! - the API: `GET /api/v1/profile` (§3.3), `POST …/conversations/{id}/messages`
//!   (§3.1) and `POST …/conversations/{id}/toggle_status` (§3.2), with the
//!   `api_access_token` header and `{"error": …}` bodies (§3 Auth).
//!
//! What the stand-in leaves out: everything casebridge does not read or call
//! (contacts API, inboxes API, labels, teams, typing events, the widget).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// An inbox: its id, name and channel class (`Channel::WebWidget`, …, §5).
#[derive(Debug, Clone)]
pub struct Inbox {
    pub id: i64,
    pub name: String,
    pub channel_type: String,
    /// An agent bot answers first: new conversations start `pending`
    /// (`determine_conversation_status`, `conversation.rb:280-287`).
    pub bot: bool,
}

impl Inbox {
    /// A website inbox with an agent bot, as in §1.2's example A.
    pub fn website_with_bot() -> Inbox {
        Inbox {
            id: 3,
            name: "Acme Website".into(),
            channel_type: "Channel::WebWidget".into(),
            bot: true,
        }
    }
}

/// The conversation's contact.
#[derive(Debug, Clone)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A message as the stand-in keeps it.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: i64,
    pub content: String,
    /// `incoming`, `outgoing` or `template` (`message.rb:87`).
    pub message_type: String,
    pub private: bool,
    /// The sender's `webhook_data` (§1.1), `null` for none.
    pub sender: Value,
    pub content_attributes: Value,
    pub source_id: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Attachments in their push form (§1.1).
    pub attachments: Vec<Value>,
}

/// A conversation as the stand-in keeps it.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// The display id: the `id` of payloads and API paths (§1.1).
    pub id: i64,
    pub inbox: Inbox,
    pub contact: Contact,
    pub contact_id: i64,
    /// `open`, `pending`, `resolved` or `snoozed`.
    pub status: String,
    pub messages: Vec<Message>,
    pub custom_attributes: Value,
    pub updated_at: f64,
}

/// One webhook call the stand-in made, and what casebridge answered.
#[derive(Debug, Clone)]
pub struct Sent {
    pub event: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub status: Option<u16>,
    /// casebridge's answer.
    pub answer: Option<String>,
}

/// One Application API call casebridge made.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub method: String,
    pub path: String,
    pub body: Value,
    pub status: u16,
}

struct Account {
    id: i64,
    name: String,
    token: String,
    webhook: Option<(String, Option<String>)>,
    conversations: BTreeMap<i64, Conversation>,
    next_message_id: i64,
    next_conversation_id: i64,
    /// Every API answer is 503 (Chatwoot down) while set.
    down: bool,
    sent: Vec<Sent>,
    calls: Vec<ApiCall>,
}

type Shared = Arc<Mutex<Account>>;

/// The agent whose access token casebridge holds (`User#webhook_data`, §1.1).
const AGENT: (i64, &str, &str) = (5, "Jane Agent", "jane@acme.example");
/// The agent bot of bot inboxes (`AgentBot#webhook_data`, §1.1).
const BOT: (i64, &str) = (2, "Order Bot");

/// A running stand-in.
pub struct StandIn {
    shared: Shared,
    url: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl StandIn {
    /// Serves account 1 ("Acme Inc") on a loopback port; `token` is the
    /// agent's API access token.
    pub async fn start(token: &str) -> std::io::Result<StandIn> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Mutex::new(Account {
            id: 1,
            name: "Acme Inc".into(),
            token: token.to_string(),
            webhook: None,
            conversations: BTreeMap::new(),
            next_message_id: 4521,
            next_conversation_id: 123,
            down: false,
            sent: Vec::new(),
            calls: Vec::new(),
        }));
        let http = reqwest::Client::builder()
            // Chatwoot's WEBHOOK_TIMEOUT default (`trigger.rb:118-123`).
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(std::io::Error::other)?;
        let app = Router::new()
            .route("/api/v1/profile", get(profile))
            .route(
                "/api/v1/accounts/{account}/conversations/{id}/messages",
                post(create_message),
            )
            .route(
                "/api/v1/accounts/{account}/conversations/{id}/toggle_status",
                post(toggle_status),
            )
            .fallback(|| async {
                // RecordNotFound's body (`request_exception_handler.rb`).
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({"error": "Resource could not be found"})),
                )
            })
            .with_state(Hooks {
                shared: shared.clone(),
                http: http.clone(),
            });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(StandIn {
            shared,
            url,
            http,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The base URL an admin gives casebridge.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn account_id(&self) -> i64 {
        self.lock().id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Account> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The account webhook: its URL and secret (none: unsigned, as before
    /// v4.12.0, §2.3).
    pub fn set_webhook(&self, url: &str, secret: Option<&str>) {
        self.lock().webhook = Some((url.to_string(), secret.map(str::to_string)));
    }

    /// While down, every API call is answered 503.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// A new conversation; `pending` in an inbox with a bot, else `open`.
    pub fn open_conversation(&self, inbox: Inbox, contact: Contact) -> i64 {
        let mut a = self.lock();
        let id = a.next_conversation_id;
        a.next_conversation_id += 1;
        let status = if inbox.bot { "pending" } else { "open" };
        a.conversations.insert(
            id,
            Conversation {
                id,
                inbox,
                contact,
                contact_id: 57 + id,
                status: status.into(),
                messages: Vec::new(),
                custom_attributes: json!({}),
                updated_at: now_float(),
            },
        );
        id
    }

    /// A conversation as it stands.
    pub fn conversation(&self, id: i64) -> Option<Conversation> {
        self.lock().conversations.get(&id).cloned()
    }

    /// Every webhook call made so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// Every API call casebridge made so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.lock().calls.clone()
    }

    /// The customer writes; the `message_created` webhook's HTTP status.
    pub async fn customer_says(&self, conversation: i64, text: &str) -> Option<u16> {
        self.says(conversation, text, "incoming", false, Value::Null, vec![])
            .await
    }

    /// The customer sends a file (an image attachment, §1.2 example C).
    pub async fn customer_sends_image(
        &self,
        conversation: i64,
        text: &str,
        file: &str,
    ) -> Option<u16> {
        let attachment = json!({
            "id": 77, "file_type": "image", "account_id": 1, "extension": "png",
            "data_url": format!("{}/rails/active_storage/blobs/redirect/eyJfcmFpbHMi/{file}", self.url),
            "thumb_url": format!("{}/rails/active_storage/representations/redirect/eyJfcmFpbHMi/{file}", self.url),
            "file_size": 48213, "width": 1280, "height": 720
        });
        self.says(
            conversation,
            text,
            "incoming",
            false,
            Value::Null,
            vec![attachment],
        )
        .await
    }

    /// The agent bot answers.
    pub async fn bot_says(&self, conversation: i64, text: &str) -> Option<u16> {
        let bot = json!({"id": BOT.0, "name": BOT.1, "type": "agent_bot"});
        self.says(conversation, text, "outgoing", false, bot, vec![])
            .await
    }

    /// A human agent answers in Chatwoot.
    pub async fn agent_says(&self, conversation: i64, text: &str) -> Option<u16> {
        self.says(conversation, text, "outgoing", false, agent(), vec![])
            .await
    }

    /// A human agent leaves a private note (delivered too, §1.0).
    pub async fn private_note(&self, conversation: i64, text: &str) -> Option<u16> {
        self.says(conversation, text, "outgoing", true, agent(), vec![])
            .await
    }

    async fn says(
        &self,
        conversation: i64,
        text: &str,
        message_type: &str,
        private: bool,
        sender: Value,
        attachments: Vec<Value>,
    ) -> Option<u16> {
        let payload = {
            let mut a = self.lock();
            let (account_id, account_name) = (a.id, a.name.clone());
            let id = a.next_message_id;
            a.next_message_id += 1;
            let c = a.conversations.get_mut(&conversation)?;
            let sender = if message_type == "incoming" {
                contact_webhook_data(c, account_id, &account_name)
            } else {
                sender
            };
            let m = Message {
                id,
                content: text.into(),
                message_type: message_type.into(),
                private,
                sender,
                content_attributes: json!({}),
                source_id: None,
                created_at: chrono::Utc::now(),
                attachments,
            };
            c.messages.push(m.clone());
            c.updated_at = now_float();
            message_webhook_data(&m, c, account_id, &account_name, "message_created")
        };
        self.webhook(payload).await
    }

    /// The agent bot hands off: `toggle_status` `open` by the bot on a
    /// pending conversation, `bot_handoff!` (§4.2). Chatwoot then sends
    /// `conversation_status_changed` (`changed_attributes` null, §1.4) and
    /// `conversation_updated` (with the status change). Their HTTP statuses.
    pub async fn bot_hands_off(&self, conversation: i64) -> Vec<Option<u16>> {
        self.change_status(conversation, "open").await
    }

    /// An agent resolves the conversation in Chatwoot.
    pub async fn resolve(&self, conversation: i64) -> Vec<Option<u16>> {
        self.change_status(conversation, "resolved").await
    }

    async fn change_status(&self, conversation: i64, status: &str) -> Vec<Option<u16>> {
        let payloads = status_change(&self.shared, conversation, status);
        let mut answers = Vec::new();
        for p in payloads {
            answers.push(self.webhook(p).await);
        }
        answers
    }

    /// Sends the last webhook again, byte for byte but newly signed (an
    /// admin's redelivery, or a proxy's retry).
    pub async fn resend_last(&self) -> Option<u16> {
        let last = self.lock().sent.last()?.body.clone();
        let payload: Value = serde_json::from_str(&last).ok()?;
        self.webhook(payload).await
    }

    async fn webhook(&self, payload: Value) -> Option<u16> {
        send_webhook(&self.shared, &self.http, payload).await
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn agent() -> Value {
    json!({"id": AGENT.0, "name": AGENT.1, "email": AGENT.2, "type": "user"})
}

fn now_float() -> f64 {
    chrono::Utc::now().timestamp_micros() as f64 / 1e6
}

fn iso(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `Contact#webhook_data` (§1.1): no `type` key.
fn contact_webhook_data(c: &Conversation, account_id: i64, account_name: &str) -> Value {
    json!({
        "account": {"id": account_id, "name": account_name},
        "additional_attributes": {}, "avatar": "", "custom_attributes": {},
        "email": c.contact.email, "id": c.contact_id, "identifier": null,
        "name": c.contact.name, "phone_number": c.contact.phone,
        "thumbnail": "", "blocked": false
    })
}

/// `Contact#push_event_data` (§1.1), as in `meta.sender`: with `type`.
fn contact_push_data(c: &Conversation) -> Value {
    json!({
        "additional_attributes": {}, "custom_attributes": {},
        "email": c.contact.email, "id": c.contact_id, "identifier": null,
        "name": c.contact.name, "phone_number": c.contact.phone,
        "thumbnail": "", "blocked": false, "type": "contact"
    })
}

/// `Message#push_event_data` (§1.1): integer `message_type`, unix
/// `created_at`.
fn message_push_data(m: &Message, c: &Conversation, account_id: i64) -> Value {
    let kind = match m.message_type.as_str() {
        "incoming" => 0,
        "outgoing" => 1,
        "activity" => 2,
        _ => 3,
    };
    json!({
        "id": m.id, "content": m.content, "account_id": account_id, "inbox_id": c.inbox.id,
        "conversation_id": c.id, "message_type": kind, "created_at": m.created_at.timestamp(),
        "updated_at": iso(&m.created_at), "private": m.private, "status": "sent",
        "source_id": m.source_id, "content_type": "text", "content_attributes": m.content_attributes,
        "processed_message_content": m.content, "sender": m.sender,
        "conversation": {"assignee_id": null, "unread_count": 1, "last_activity_at": m.created_at.timestamp()}
    })
}

/// `Conversation#webhook_data` (§1.1). `messages` holds only the last
/// message that is neither private nor an activity.
fn conversation_webhook_data(c: &Conversation, account_id: i64, account_name: &str) -> Value {
    let last: Vec<Value> = c
        .messages
        .iter()
        .rev()
        .find(|m| !m.private)
        .map(|m| message_push_data(m, c, account_id))
        .into_iter()
        .collect();
    json!({
        "additional_attributes": {}, "can_reply": true, "channel": c.inbox.channel_type,
        "contact_inbox": {"id": 88, "contact_id": c.contact_id, "inbox_id": c.inbox.id,
                          "source_id": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &c.id.to_be_bytes()).to_string()},
        "id": c.id, "inbox_id": c.inbox.id, "messages": last, "labels": [],
        "meta": {"sender": contact_push_data(c), "assignee": null, "assignee_type": null, "team": null, "hmac_verified": false},
        "status": c.status, "custom_attributes": c.custom_attributes, "snoozed_until": null,
        "unread_count": 1, "first_reply_created_at": null, "priority": null, "waiting_since": 0,
        "agent_last_seen_at": 0, "contact_last_seen_at": 0,
        "last_activity_at": c.updated_at as i64, "timestamp": c.updated_at as i64,
        "created_at": c.updated_at as i64, "updated_at": c.updated_at,
        // Since v4.14.2 (§1.1).
        "account": {"id": account_id, "name": account_name}
    })
}

/// `Message#webhook_data` and the listener's `event` (§1.2).
fn message_webhook_data(
    m: &Message,
    c: &Conversation,
    account_id: i64,
    account_name: &str,
    event: &str,
) -> Value {
    let mut data = json!({
        "account": {"id": account_id, "name": account_name},
        "additional_attributes": {}, "content_attributes": m.content_attributes,
        "content_type": "text", "content": m.content,
        "conversation": conversation_webhook_data(c, account_id, account_name),
        "created_at": iso(&m.created_at), "id": m.id,
        "inbox": {"id": c.inbox.id, "name": c.inbox.name},
        "message_type": m.message_type, "private": m.private,
        "sender": m.sender, "source_id": m.source_id, "event": event
    });
    // Only when present (`message.rb:196`).
    if !m.attachments.is_empty() {
        let attachments: Vec<Value> = m
            .attachments
            .iter()
            .map(|a| {
                let mut a = a.clone();
                a["message_id"] = json!(m.id);
                a
            })
            .collect();
        data["attachments"] = json!(attachments);
    }
    data
}

/// Changes a conversation's status and builds what Chatwoot sends about it:
/// `conversation_status_changed` with `changed_attributes: null` (as it is in
/// practice, §1.4), then `conversation_updated` with the status change as
/// `[{"status": {"previous_value", "current_value"}}, …]`. Nothing when the
/// status does not change.
fn status_change(shared: &Shared, conversation: i64, status: &str) -> Vec<Value> {
    let mut a = shared.lock().unwrap_or_else(|e| e.into_inner());
    let (account_id, account_name) = (a.id, a.name.clone());
    let Some(c) = a.conversations.get_mut(&conversation) else {
        return vec![];
    };
    if c.status == status {
        return vec![];
    }
    let previous = std::mem::replace(&mut c.status, status.to_string());
    let before = c.updated_at;
    c.updated_at = now_float();
    let data = conversation_webhook_data(c, account_id, account_name.as_str());
    let with = |event: &str, changed: Value| {
        let mut p = data.clone();
        p["event"] = json!(event);
        p["changed_attributes"] = changed;
        p
    };
    vec![
        with("conversation_status_changed", Value::Null),
        with(
            "conversation_updated",
            json!([
                {"status": {"previous_value": previous, "current_value": status}},
                {"updated_at": {"previous_value": before, "current_value": c.updated_at}}
            ]),
        ),
    ]
}

/// POSTs one payload to the account webhook, signed when it has a secret
/// (§2.1); the HTTP status, `None` when it did not answer. Chatwoot does
/// not retry account webhooks (§1.0), and neither does the stand-in.
async fn send_webhook(shared: &Shared, http: &reqwest::Client, payload: Value) -> Option<u16> {
    let event = payload["event"].as_str().unwrap_or_default().to_string();
    let (url, secret) = shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .webhook
        .clone()?;
    let body = payload.to_string();
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Accept".to_string(), "application/json".to_string()),
    ];
    if let Some(secret) = secret {
        let ts = chrono::Utc::now().timestamp().to_string();
        headers.push(("X-Chatwoot-Signature".into(), sign(&secret, &ts, &body)));
        headers.push(("X-Chatwoot-Timestamp".into(), ts));
        headers.push((
            "X-Chatwoot-Delivery".into(),
            uuid::Uuid::new_v4().to_string(),
        ));
    }
    let mut request = http.post(&url).body(body.clone());
    for (k, v) in &headers {
        request = request.header(k, v);
    }
    let (status, answer) = match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (Some(status), r.text().await.ok())
        }
        Err(_) => (None, None),
    };
    shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .sent
        .push(Sent {
            event,
            body,
            headers,
            status,
            answer,
        });
    status
}

/// `sha256=` and the hex HMAC-SHA256 of `"{ts}.{body}"` (§2.1).
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Clone)]
struct Hooks {
    shared: Shared,
    http: reqwest::Client,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The `api_access_token` check (`access_token_auth_helper.rb:9-21`) and
/// the account check (`ensure_current_account_helper.rb`), or the answer.
/// `Some(answer)` when the call is refused.
fn authorise(a: &Account, headers: &HeaderMap, account: Option<i64>) -> Option<Response> {
    refusal(a, headers, account)
        .err()
        .map(|(status, message)| error(status, message))
}

fn refusal(
    a: &Account,
    headers: &HeaderMap,
    account: Option<i64>,
) -> Result<(), (StatusCode, &'static str)> {
    if a.down {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"));
    }
    let token = headers
        .get("api_access_token")
        .and_then(|v| v.to_str().ok());
    if token != Some(a.token.as_str()) {
        return Err((StatusCode::UNAUTHORIZED, "Invalid Access Token"));
    }
    if let Some(account) = account {
        if account != a.id {
            return Err((
                StatusCode::UNAUTHORIZED,
                "You are not authorized to access this account",
            ));
        }
    }
    Ok(())
}

fn record(a: &mut Account, method: &str, path: String, body: Value, status: StatusCode) {
    a.calls.push(ApiCall {
        method: method.into(),
        path,
        body,
        status: status.as_u16(),
    });
}

/// `GET /api/v1/profile` (§3.3, `api/v1/models/_user.json.jbuilder`).
async fn profile(State(h): State<Hooks>, headers: HeaderMap) -> Response {
    let mut a = h.shared.lock().unwrap_or_else(|e| e.into_inner());
    let answer = match authorise(&a, &headers, None) {
        Some(r) => r,
        None => Json(json!({
            "id": AGENT.0, "name": AGENT.1, "email": AGENT.2, "available_name": "Jane",
            "role": "administrator", "account_id": a.id, "type": null, "confirmed": true,
            "display_name": null, "message_signature": null, "provider": "email",
            "uid": AGENT.2, "ui_settings": {}, "avatar_url": "", "pubsub_token": "stand-in",
            "accounts": [{"id": a.id, "name": a.name, "status": "active", "role": "administrator",
                          "availability": "online", "availability_status": "online",
                          "auto_offline": true, "active_at": iso(&chrono::Utc::now()),
                          "permissions": ["administrator"], "onboarding_step": null}]
        }))
        .into_response(),
    };
    record(
        &mut a,
        "GET",
        "/api/v1/profile".into(),
        Value::Null,
        answer.status(),
    );
    answer
}

/// `POST /api/v1/accounts/{a}/conversations/{id}/messages` (§3.1,
/// `Messages::MessageBuilder`): the answer is `_message.json.jbuilder`, and
/// the message's `message_created` webhook follows asynchronously.
async fn create_message(
    State(h): State<Hooks>,
    Path((account, id)): Path<(i64, i64)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let input: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut a = h.shared.lock().unwrap_or_else(|e| e.into_inner());
    let path = format!("/api/v1/accounts/{account}/conversations/{id}/messages");
    if let Some(r) = authorise(&a, &headers, Some(account)) {
        record(&mut a, "POST", path, input, r.status());
        return r;
    }
    let (account_id, account_name) = (a.id, a.name.clone());
    let message_id = a.next_message_id;
    let Some(c) = a.conversations.get_mut(&id) else {
        let r = error(StatusCode::NOT_FOUND, "Resource could not be found");
        record(&mut a, "POST", path, input, r.status());
        return r;
    };
    let message_type = input["message_type"].as_str().unwrap_or("outgoing");
    if message_type == "incoming" && c.inbox.channel_type != "Channel::Api" {
        let r = error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Incoming messages are only allowed in Api inboxes",
        );
        record(&mut a, "POST", path, input, r.status());
        return r;
    }
    // An object, or a JSON string that is parsed (message_builder.rb:41-49).
    let content_attributes = match &input["content_attributes"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(json!({})),
        Value::Object(o) => Value::Object(o.clone()),
        _ => json!({}),
    };
    let m = Message {
        id: message_id,
        content: input["content"].as_str().unwrap_or_default().to_string(),
        message_type: message_type.into(),
        private: input["private"].as_bool().unwrap_or(false),
        sender: agent(),
        content_attributes,
        source_id: input["source_id"].as_str().map(str::to_string),
        created_at: chrono::Utc::now(),
        attachments: vec![],
    };
    c.messages.push(m.clone());
    c.updated_at = now_float();
    let hook = message_webhook_data(&m, c, account_id, &account_name, "message_created");
    let answer = json!({
        "id": m.id, "content": m.content, "inbox_id": c.inbox.id, "conversation_id": c.id,
        "message_type": if m.message_type == "incoming" { 0 } else { 1 },
        "content_type": "text", "status": "sent", "content_attributes": m.content_attributes,
        "created_at": m.created_at.timestamp(), "private": m.private, "source_id": m.source_id,
        "sender": {"id": AGENT.0, "name": AGENT.1, "available_name": "Jane", "avatar_url": "",
                   "type": "user", "availability_status": "online", "thumbnail": ""}
    });
    a.next_message_id += 1;
    record(&mut a, "POST", path, input, StatusCode::OK);
    drop(a);
    // Webhooks go out from a background job (`AsyncDispatcher`, §1.0).
    let (shared, http) = (h.shared.clone(), h.http.clone());
    tokio::spawn(async move {
        send_webhook(&shared, &http, hook).await;
    });
    Json(answer).into_response()
}

/// `POST …/toggle_status` (§3.2): `{"status": …}` sets it; the answer is
/// `toggle_status.json.jbuilder`; the status webhooks follow.
async fn toggle_status(
    State(h): State<Hooks>,
    Path((account, id)): Path<(i64, i64)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let input: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let path = format!("/api/v1/accounts/{account}/conversations/{id}/toggle_status");
    let current = {
        let mut a = h.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = authorise(&a, &headers, Some(account)) {
            record(&mut a, "POST", path, input, r.status());
            return r;
        }
        let Some(c) = a.conversations.get(&id) else {
            let r = error(StatusCode::NOT_FOUND, "Resource could not be found");
            record(&mut a, "POST", path, input, r.status());
            return r;
        };
        let current = c.status.clone();
        record(&mut a, "POST", path, input.clone(), StatusCode::OK);
        current
    };
    // Without a status it toggles: open → resolved, anything else → open.
    let wanted = match input["status"].as_str() {
        Some(s @ ("open" | "resolved" | "pending" | "snoozed")) => s.to_string(),
        Some(_) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "'status' is not a valid status",
            )
        }
        None if current == "open" => "resolved".into(),
        None => "open".into(),
    };
    let hooks = status_change(&h.shared, id, &wanted);
    let (shared, http) = (h.shared.clone(), h.http.clone());
    tokio::spawn(async move {
        for p in hooks {
            send_webhook(&shared, &http, p).await;
        }
    });
    Json(
        json!({"meta": {}, "payload": {"success": true, "conversation_id": id,
                                        "current_status": wanted, "snoozed_until": null}}),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_api_refuses_a_wrong_token_and_a_wrong_account() {
        let s = StandIn::start("tok").await.unwrap();
        let c = reqwest::Client::new();
        let r = c
            .get(format!("{}/api/v1/profile", s.url()))
            .header("api_access_token", "nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let id = s.open_conversation(
            Inbox::website_with_bot(),
            Contact {
                name: "M".into(),
                email: None,
                phone: None,
            },
        );
        let r = c
            .post(format!(
                "{}/api/v1/accounts/9/conversations/{id}/messages",
                s.url()
            ))
            .header("api_access_token", "tok")
            .json(&json!({"content": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = c
            .post(format!(
                "{}/api/v1/accounts/1/conversations/{id}/toggle_status",
                s.url()
            ))
            .header("api_access_token", "tok")
            .json(&json!({"status": "resolved"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(s.conversation(id).unwrap().status, "resolved");
        s.shutdown().await;
    }
}
