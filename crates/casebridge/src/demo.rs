//! `casebridge demo`: the whole story on loopback, nothing to set up.
//!
//! Starts the Creatio emulator, the service (SQLite in a temporary
//! directory) and a delivery receiver standing in for the chat platform,
//! then does what an admin and a platform do, through the public HTTP API
//! only: create an org, Test & Save, pick GUIDs by name, set the delivery
//! URL, build Creatio's business processes from casebridge's own templates,
//! and play a conversation. Each step prints one line with the ids involved
//! and what was checked — in Creatio (read back with the `creatio` client)
//! or at the receiver (signatures verified with `standardwebhooks`). The
//! run succeeds only if every step verified.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use axum::http::HeaderMap;
use creatio::models::{Activity, Case};
use creatio::query::{lookup, Query};
use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig};
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::{Config, SecretKeySource};

const CLIENT_ID: &str = "casebridge-demo";
const CONVERSATION: &str = "demo-conversation-1";
const WAIT: Duration = Duration::from_secs(30);

/// How the demo ran.
pub struct Options {
    /// Leave everything running after the story, until Ctrl-C.
    pub keep_running: bool,
}

/// One request the stand-in platform received, signature checked.
#[derive(Clone)]
struct Delivered {
    webhook_id: String,
    kind: String,
    data: Value,
    signature_ok: bool,
}

/// The chat platform's receiving end: verifies each delivery with the
/// `standardwebhooks` crate and keeps it.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivered>>>,
    secret: Arc<Mutex<Option<String>>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Receiver> {
        let got: Arc<Mutex<Vec<Delivered>>> = Arc::default();
        let secret: Arc<Mutex<Option<String>>> = Arc::default();
        let (g, s) = (got.clone(), secret.clone());
        let app = axum::Router::new().route(
            "/hooks/casebridge",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (g, s) = (g.clone(), s.clone());
                async move {
                    let secret = s.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let signature_ok = secret.is_some_and(|secret| {
                        standardwebhooks::Webhook::new(&secret)
                            .and_then(|w| w.verify(body.as_bytes(), &headers))
                            .is_ok()
                    });
                    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    g.lock().unwrap_or_else(|p| p.into_inner()).push(Delivered {
                        webhook_id: headers
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string(),
                        kind: value["type"].as_str().unwrap_or_default().to_string(),
                        data: value["data"].clone(),
                        signature_ok,
                    });
                    if signature_ok {
                        axum::http::StatusCode::NO_CONTENT
                    } else {
                        axum::http::StatusCode::UNAUTHORIZED
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver {
            url: format!("http://{addr}/hooks/casebridge"),
            got,
            secret,
        })
    }

    fn of_kind(&self, kind: &str) -> Vec<Delivered> {
        self.got
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|d| d.kind == kind)
            .cloned()
            .collect()
    }

    async fn wait_for(&self, kind: &str) -> anyhow::Result<Delivered> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(d) = self.of_kind(kind).into_iter().next() {
                if !d.signature_ok {
                    bail!("a {kind} delivery arrived with a signature that does not verify");
                }
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!("no {kind} delivery arrived within {} s", WAIT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The service's API as the admin and the platform use it.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{path} answered {text}"))?
        };
        Ok((status, value))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(method, path, body).await?;
        if status != want {
            bail!("{path} answered {status}, not {want}: {value}");
        }
        Ok(value)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.expect(reqwest::Method::GET, path, None, 200).await
    }

    /// Waits until the conversation has no job left, and returns it.
    async fn settled(&self) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let conv = self
                .get(&format!("/v1/conversations/{CONVERSATION}"))
                .await?;
            let busy =
                conv["jobs"].get("pending").is_some() || conv["jobs"].get("running").is_some();
            if !busy {
                if let Some(dead) = conv["jobs"].get("dead") {
                    bail!("{dead} sync job(s) failed: {}", conv["open_jobs"]);
                }
                return Ok(conv);
            }
            if Instant::now() > deadline {
                bail!(
                    "the conversation's jobs did not finish within {} s: {}",
                    WAIT.as_secs(),
                    conv["open_jobs"]
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Prints a step's line.
struct Story {
    steps: usize,
}

impl Story {
    fn ok(&mut self, step: &str, what: impl AsRef<str>) {
        self.steps += 1;
        println!("  [ok] {step:<13} {}", what.as_ref());
    }
}

fn event(id: &str, body: Value) -> Value {
    let mut e = json!({
        "id": id,
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "conversation": {"id": CONVERSATION, "channel": "web",
            "url": format!("https://chat.example.com/inbox/{CONVERSATION}"),
            "contact": {"name": "Ada Lovelace", "email": "ada.demo@example.com", "phone": "+15550100"}},
    });
    for (k, v) in body.as_object().into_iter().flatten() {
        e[k] = v.clone();
    }
    e
}

fn message(id: &str, role: &str, text: &str) -> Value {
    event(
        &format!("evt-{id}"),
        json!({"type": "message.created", "message": {"id": id, "role": role, "text": text}}),
    )
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Runs the demo; `Ok(true)` when every step verified.
pub async fn run(options: Options) -> anyhow::Result<bool> {
    let dir = std::env::temp_dir().join(format!("casebridge-demo-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let result = story(&dir, &options).await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => Ok(true),
        Err(e) => {
            println!("  [FAIL] {e:#}");
            println!("The demo stopped at the step above; nothing was verified beyond it.");
            Ok(false)
        }
    }
}

async fn story(dir: &std::path::Path, options: &Options) -> anyhow::Result<()> {
    println!("casebridge demo: Creatio emulator, casebridge and a chat platform's receiver, all on loopback");
    let mut story = Story { steps: 0 };

    let client_secret = Uuid::new_v4().simple().to_string();
    let emulator = Emulator::start(EmulatorConfig {
        listen: "127.0.0.1:0".parse()?,
        token_lifetime: Duration::from_secs(3600),
        // The technical user holds what the README's Creatio-side setup
        // asks for: OData access, View any data, and (the emulator's
        // default) read, add and edit on Case, Activity and Contact.
        clients: vec![ClientConfig {
            can_use_odata: true,
            system_operations: ["CanSelectEverything".to_string()].into(),
            ..ClientConfig::new(CLIENT_ID, client_secret.clone())
        }],
    })
    .await
    .context("could not start the Creatio emulator")?;
    story.ok(
        "emulator",
        format!("Creatio at {} (OAuth client {CLIENT_ID})", emulator.url()),
    );

    let admin_token = crate::secrets::random_token("cba_");
    let db_path: PathBuf = dir.join("casebridge.db");
    let mut config = Config::loopback(
        format!("sqlite://{}", db_path.display()),
        SecretKeySource::File(dir.join("casebridge.key")),
        SecretString::from(admin_token.clone()),
    );
    config.workers = 4;
    let running = crate::server::start(config)
        .await
        .context("could not start casebridge")?;
    let base = format!("http://{}", running.addr);
    story.ok(
        "service",
        format!("casebridge at {base}, SQLite {}", db_path.display()),
    );

    let http = reqwest::Client::new();
    let operator = Api {
        http: http.clone(),
        base: base.clone(),
        key: admin_token,
    };
    let org = operator
        .expect(
            reqwest::Method::POST,
            "/v1/orgs",
            Some(json!({"name": "Demo Support"})),
            201,
        )
        .await?;
    let api = Api {
        http: http.clone(),
        base: base.clone(),
        key: org["api_key"]["key"]
            .as_str()
            .ok_or_else(|| anyhow!("no key in {org}"))?
            .to_string(),
    };
    story.ok(
        "org",
        format!(
            "\"Demo Support\" ({}), admin API key created",
            org["org"]["id"].as_str().unwrap_or("?")
        ),
    );

    // Test & Save: first with a wrong secret (refused, with a hint), then right.
    let mut settings = json!({"instance_url": emulator.url(), "client_id": CLIENT_ID, "client_secret": "not-the-secret"});
    let (status, refused) = api
        .call(
            reqwest::Method::POST,
            "/v1/creatio/connection",
            Some(settings.clone()),
        )
        .await?;
    if status != 422 {
        bail!("Test & Save with a wrong secret answered {status}: {refused}");
    }
    let failed = refused["report"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["status"] == "fail"))
        .cloned()
        .unwrap_or(Value::Null);
    settings["client_secret"] = json!(client_secret);
    let saved = api
        .expect(
            reqwest::Method::POST,
            "/v1/creatio/connection",
            Some(settings),
            200,
        )
        .await?;
    let passed = saved["report"]["checks"]
        .as_array()
        .map_or(0, |c| c.iter().filter(|c| c["status"] == "pass").count());
    story.ok(
        "test & save",
        format!(
            "wrong secret refused ({}: {}); right one: {passed} checks passed, status {}",
            failed["name"].as_str().unwrap_or("?"),
            failed["hint"].as_str().unwrap_or("?"),
            saved["connection"]["status"]
                .as_str()
                .or(saved["status"].as_str())
                .unwrap_or("?"),
        ),
    );

    // GUIDs picked by name, as an admin does on the settings page.
    let pick = |list: &Value, name: &str| -> anyhow::Result<String> {
        list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["name"] == name))
            .and_then(|i| i["id"].as_str().map(str::to_string))
            .ok_or_else(|| anyhow!("no {name:?} among {list}"))
    };
    let resolved = pick(
        &api.get("/v1/creatio/lookups/case-statuses").await?,
        "Resolved",
    )?;
    let group = pick(
        &api.get("/v1/creatio/lookups/groups").await?,
        "1st-line support",
    )?;
    let owner = pick(
        &api.get("/v1/creatio/lookups/contacts?search=Sarah").await?,
        "Sarah Lee",
    )?;
    api.expect(
        reqwest::Method::PATCH,
        "/v1/creatio/connection",
        Some(json!({"resolved_status_id": resolved, "default_group_id": group, "default_owner_id": owner})),
        200,
    )
    .await?;
    story.ok(
        "lookups",
        format!(
            "by name: status Resolved = {}, group 1st-line support = {}, owner Sarah Lee = {}",
            short(&resolved),
            short(&group),
            short(&owner)
        ),
    );

    let receiver = Receiver::start().await?;
    let delivery = api
        .expect(
            reqwest::Method::PUT,
            "/v1/delivery",
            Some(json!({"url": receiver.url})),
            201,
        )
        .await?;
    let secret = delivery["secret"]
        .as_str()
        .ok_or_else(|| anyhow!("no secret in {delivery}"))?
        .to_string();
    *receiver.secret.lock().unwrap_or_else(|p| p.into_inner()) = Some(secret);
    story.ok(
        "delivery",
        format!(
            "platform receiver at {}, signing secret whsec_… issued",
            receiver.url
        ),
    );

    let saved = api
        .expect(
            reqwest::Method::PUT,
            "/v1/creatio/ai-fields",
            Some(json!({"fields": [
                {"field_name": "PriorityId", "title": "Priority", "type": "dropdown",
                 "description": "Critical if the service is down for everyone, data loss or a security breach\n\
                                 High if a product arrived broken, does not turn on, or payments fail\n\
                                 Medium for general bugs and errors\n\
                                 Low for questions and feature requests"},
                {"field_name": "UsrOrderNumber", "title": "Order number", "type": "text",
                 "description": "The customer's order number, like #A-1234"},
            ]})),
            200,
        )
        .await?;
    let resolved_options = saved["fields"][0]["options"].as_array().map_or(0, Vec::len);
    if resolved_options != 4 {
        bail!("the priority mapping resolved {resolved_options} options, not 4: {saved}");
    }
    story.ok(
        "ai fields",
        format!(
            "Priority → PriorityId ({resolved_options} options resolved to GUIDs by name), Order number → UsrOrderNumber ({} characters); provider {}",
            saved["fields"][1]["max_length"], saved["provider"].as_str().unwrap_or("?")
        ),
    );

    let templates = api.get("/v1/creatio/process-templates").await?;
    let mut names = Vec::new();
    for p in templates["processes"].as_array().into_iter().flatten() {
        let call = &p["call_web_service"];
        let def = json!({"name": p["name"], "trigger": p["signal"]["trigger"], "url": call["url"],
                         "body": call["body"], "retries": call["retries_on_failure"]});
        let resp = http
            .post(format!("{}/__emulator/processes", emulator.url()))
            .json(&def)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!(
                "the emulator refused process {}: {}",
                p["name"],
                resp.text().await?
            );
        }
        names.push(p["key"].as_str().unwrap_or("?").to_string());
    }
    if names.len() != 2 {
        bail!("expected two process templates, got {templates}");
    }
    story.ok(
        "processes",
        format!(
            "Creatio processes {} built from GET /v1/creatio/process-templates",
            names.join(" and ")
        ),
    );

    // The conversation.
    let creatio = {
        let instance = creatio::InstanceUrl::parse(emulator.url())?;
        let credentials =
            creatio::Credentials::new(emulator.token_url(), CLIENT_ID, client_secret.clone());
        creatio::Client::new(
            http.clone(),
            instance,
            creatio::TokenSource::new(http.clone(), credentials),
        )
    };
    api.expect(
        reqwest::Method::POST,
        "/v1/events",
        Some(json!([
            message("m1", "customer", "My order #A-1042 arrived broken."),
            message(
                "m2",
                "customer",
                "The screen is cracked and it will not turn on."
            ),
        ])),
        202,
    )
    .await?;
    let conv = api.settled().await?;
    let case_id: Uuid = conv["case"]["id"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .context("no case id")?;
    let number = conv["case"]["number"].as_str().unwrap_or("?").to_string();
    let case: Case = creatio
        .get(case_id)
        .await
        .context("the case is not in Creatio")?;
    let activities = |creatio: creatio::Client| async move {
        creatio
            .list::<Activity>(
                Query::new()
                    .filter(lookup("Case").eq(case_id))
                    .order_by_asc("CreatedOn"),
            )
            .await
            .context("reading the case's activities")
    };
    let list = activities(creatio.clone()).await?;
    if list.len() != 2 {
        bail!(
            "expected 2 activities on case {number}, found {}",
            list.len()
        );
    }
    story.ok(
        "customer",
        format!(
            "2 customer messages → case {number} ({}), subject \"{}\", 2 activities in order",
            short(&case_id.to_string()),
            case.subject.unwrap_or_default()
        ),
    );

    api.expect(
        reqwest::Method::POST,
        "/v1/events",
        Some(message(
            "m3",
            "ai",
            "Sorry to hear that! Could you send a photo of the damage?",
        )),
        202,
    )
    .await?;
    api.settled().await?;
    let list = activities(creatio.clone()).await?;
    let last = list
        .last()
        .and_then(|a| a.title.clone())
        .unwrap_or_default();
    if list.len() != 3 || !last.starts_with("AI:") {
        bail!(
            "expected the AI reply as the 3rd activity, found {} ending with {last:?}",
            list.len()
        );
    }
    story.ok(
        "ai reply",
        format!("→ activity \"{last}\"; 3 activities, in message order"),
    );

    let linked = receiver.wait_for("case.linked").await?;
    if linked.data["case_number"] != number.as_str() {
        bail!("case.linked carried {}, not {number}", linked.data);
    }
    story.ok(
        "case.linked",
        format!(
            "the platform learned case {number} ({}), signature verified",
            linked.webhook_id
        ),
    );

    // casebridge's own activities fired the agent-reply process: wait until
    // those calls were answered and looked at, then check nothing was sent.
    let deadline = Instant::now() + WAIT;
    let calls = loop {
        let calls: Vec<Value> = http
            .get(format!("{}/__emulator/process-calls", emulator.url()))
            .send()
            .await?
            .json()
            .await?;
        if calls.len() >= 3 {
            break calls;
        }
        if Instant::now() > deadline {
            bail!(
                "Creatio's process called casebridge {} times, expected 3",
                calls.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    api.settled().await?;
    if calls.iter().any(|c| c["success"] != true) {
        bail!("a process call failed: {calls:?}");
    }
    if !receiver.of_kind("agent.reply").is_empty() {
        bail!("casebridge echoed its own activity back as an agent reply");
    }
    story.ok(
        "echo guard",
        format!(
            "{} process calls for casebridge's own activities → 0 agent replies",
            calls.len()
        ),
    );

    api.expect(
        reqwest::Method::POST,
        "/v1/events",
        Some(event(
            "evt-handoff",
            json!({"type": "conversation.handoff", "handoff": {
                "summary": "Order #A-1042 arrived with a cracked screen and does not power on; customer wants a replacement.",
                "reason": "Replacement needs a human decision", "language": "en", "sentiment": "negative"}}),
        )),
        202,
    )
    .await?;
    let conv = api.settled().await?;
    let case: Case = creatio.get(case_id).await?;
    let list = activities(creatio.clone()).await?;
    let note = list
        .iter()
        .find(|a| {
            a.title
                .as_deref()
                .unwrap_or_default()
                .to_lowercase()
                .contains("hand-off")
        })
        .ok_or_else(|| {
            anyhow!(
                "no hand-off note among {:?}",
                list.iter().map(|a| &a.title).collect::<Vec<_>>()
            )
        })?;
    let notes = note.notes.clone().unwrap_or_default();
    if !notes.contains("Language: en") || !notes.contains("Sentiment: negative") {
        bail!("the hand-off note lacks the language or the sentiment: {notes}");
    }
    if case.owner_id.map(|o| o.to_string()) != Some(owner.clone())
        || case.group_id.map(|g| g.to_string()) != Some(group.clone())
    {
        bail!(
            "the case's owner/group are {:?}/{:?}",
            case.owner_id,
            case.group_id
        );
    }
    let fields = creatio.get_value("Case", case_id, &Query::new()).await?;
    if case.priority_id != Some(creatio::ids::case_priority::HIGH)
        || fields["UsrOrderNumber"] != "A-1042"
    {
        bail!(
            "the AI fields were not set on the case: priority {:?}, order number {}; timeline: {}",
            case.priority_id,
            fields["UsrOrderNumber"],
            conv["timeline"]
        );
    }
    story.ok(
        "hand-off",
        format!("note \"{}\" with summary, reason, language en, sentiment negative; AI fields Priority = High, Order number = A-1042; owner Sarah Lee, group 1st-line support; state {}",
            note.title.clone().unwrap_or_default(), conv["state"].as_str().unwrap_or("?")),
    );

    let reply: Value = http
        .post(format!("{}/__emulator/agent-reply", emulator.url()))
        .json(&json!({"case_id": case_id, "text": "<p>Hi Ada,</p><p>so sorry! A replacement ships today; no need to return the broken one.</p>"}))
        .send()
        .await?
        .json()
        .await?;
    let delivered = receiver.wait_for("agent.reply").await?;
    if delivered.data["activity_id"] != reply["Id"] {
        bail!(
            "agent.reply carried {}, not activity {}",
            delivered.data,
            reply["Id"]
        );
    }
    story.ok(
        "agent reply",
        format!(
            "Sarah answered in Creatio → agent.reply {} by {}, signature verified: \"{}\"",
            delivered.webhook_id,
            delivered.data["author"]["name"].as_str().unwrap_or("?"),
            delivered.data["text"]
                .as_str()
                .unwrap_or_default()
                .replace('\n', " ")
        ),
    );

    let resp = http
        .post(format!("{}/__emulator/case-status", emulator.url()))
        .json(&json!({"case_id": case_id, "status": "Resolved"}))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "the emulator refused the status change: {}",
            resp.text().await?
        );
    }
    let closed = receiver.wait_for("conversation.resolved").await?;
    let conv = api.settled().await?;
    if conv["state"] != "resolved" {
        bail!("the conversation is {} after the closure", conv["state"]);
    }
    story.ok(
        "resolution",
        format!(
            "Sarah resolved the case → conversation.resolved {} (status {}); conversation resolved",
            closed.webhook_id,
            closed.data["status"].as_str().unwrap_or("?")
        ),
    );

    // Summary: what was written, and that nothing was written twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cases: Vec<Case> = creatio
        .list(Query::new().filter(lookup("Contact").eq(case.contact_id.unwrap_or_default())))
        .await?;
    let list = activities(creatio.clone()).await?;
    let agent_activity = reply["Id"].as_str().unwrap_or_default().to_string();
    let ours: Vec<&Activity> = list
        .iter()
        .filter(|a| a.id.map(|i| i.to_string()) != Some(agent_activity.clone()))
        .collect();
    let mut ids: Vec<Uuid> = list.iter().filter_map(|a| a.id).collect();
    ids.sort();
    ids.dedup();
    let all = receiver
        .got
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut hook_ids: Vec<&str> = all.iter().map(|d| d.webhook_id.as_str()).collect();
    hook_ids.sort();
    hook_ids.dedup();
    let kinds = ["case.linked", "agent.reply", "conversation.resolved"];
    let once = kinds.iter().all(|k| receiver.of_kind(k).len() == 1);
    if cases.len() != 1
        || ids.len() != list.len()
        || ours.len() != 4
        || !once
        || hook_ids.len() != all.len()
    {
        bail!(
            "duplicates or gaps: {} case(s) for the contact, {} activities ({} distinct, {} by casebridge), deliveries {:?}",
            cases.len(), list.len(), ids.len(), ours.len(), all.iter().map(|d| &d.kind).collect::<Vec<_>>()
        );
    }
    story.ok(
        "summary",
        format!("1 case, {} activities by casebridge (3 messages + hand-off note) and 1 by the agent, 0 duplicates; {} deliveries, each once, all signed",
            ours.len(), all.len()),
    );
    println!("All {} steps verified.", story.steps);

    if options.keep_running {
        println!();
        println!("Everything stays up until Ctrl-C:");
        println!("  admin page:       {base}/   (sign in with the API key below)");
        println!("  casebridge API:   {base}   (API key {})", api.key);
        println!("  conversation:     curl -H 'Authorization: Bearer {}' {base}/v1/conversations/{CONVERSATION}", api.key);
        println!("  Creatio emulator: {}   (client {CLIENT_ID}, secret {client_secret}; operator API {}/__emulator/)", emulator.url(), emulator.url());
        println!("  receiver:         {}", receiver.url);
        tokio::signal::ctrl_c()
            .await
            .context("could not wait for Ctrl-C")?;
    }
    running.shutdown().await?;
    emulator.shutdown().await;
    Ok(())
}
