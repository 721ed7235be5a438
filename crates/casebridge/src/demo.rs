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

use crate::client::{Answer, ApiClient};
use crate::config::{Config, SecretKeySource};

const CLIENT_ID: &str = "casebridge-demo";
const CONVERSATION: &str = "demo-conversation-1";
const WAIT: Duration = Duration::from_secs(30);

/// How the demo ran.
pub struct Options {
    /// Leave everything running after the story, until Ctrl-C.
    pub keep_running: bool,
    /// With `keep_running`: where to write the addresses and keys as
    /// `NAME=value` lines, for scripts and the examples (`examples/`).
    pub write_env: Option<PathBuf>,
    /// The chat platform of the story.
    pub platform: Platform,
}

/// Which chat platform the demo's conversation comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    /// Any platform, through `POST /v1/events` and signed deliveries to a
    /// receiver.
    #[default]
    Webhooks,
    /// Chatwoot, through the connector: a stand-in Chatwoot (v4.15.1's
    /// payloads and API) sends its webhooks and takes the replies.
    Chatwoot,
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

/// The service's API as the org's admin and the platform use it.
struct Api {
    client: ApiClient,
    key: String,
}

/// The body of `answer`, which must have status `want`.
fn want(answer: Answer, want: u16) -> anyhow::Result<Value> {
    let status = reqwest::StatusCode::from_u16(want)?;
    Ok(answer.expect(status)?)
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        want(self.client.get(path, &self.key).await?, 200)
    }

    /// Sends events as the platform does; they must be accepted.
    async fn send(&self, events: Value) -> anyhow::Result<Value> {
        want(self.client.send_events(&self.key, &events).await?, 202)
    }

    /// Waits until the conversation has no job left, and returns it.
    async fn settled(&self) -> anyhow::Result<Value> {
        self.settled_one(CONVERSATION).await
    }

    /// Waits until conversation `id` has no job left, and returns it.
    async fn settled_one(&self, id: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let conv = want(self.client.conversation(&self.key, id).await?, 200)?;
            let busy =
                conv["jobs"].get("pending").is_some() || conv["jobs"].get("running").is_some();
            if !busy {
                if let Some(dead) = conv["jobs"].get("dead") {
                    bail!("{dead} sync job(s) failed: {}", conv["open_jobs"]);
                }
                // The conversation row and its job counts are read one
                // after the other, so the row may predate the last job's
                // commit (its case number still unknown): read once more.
                return want(self.client.conversation(&self.key, id).await?, 200);
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

/// The story, chapter by chapter; each chapter prints its step and checks
/// what it claims.
async fn story(dir: &std::path::Path, options: &Options) -> anyhow::Result<()> {
    if options.platform == Platform::Chatwoot {
        return chatwoot_story(dir).await;
    }
    println!("casebridge demo: Creatio emulator, casebridge and a chat platform's receiver, all on loopback");
    let mut demo = Demo::start(dir).await?;
    demo.test_and_save().await?;
    let defaults = demo.pick_defaults().await?;
    let receiver = demo.delivery_url().await?;
    demo.ai_fields().await?;
    demo.processes().await?;
    let case = demo.customer_writes().await?;
    demo.ai_replies(&case).await?;
    demo.case_linked(&receiver, &case).await?;
    demo.echo_guard(&receiver).await?;
    demo.handoff(&case, &defaults).await?;
    let reply = demo.agent_replies(&receiver, &case).await?;
    demo.resolution(&receiver, &case).await?;
    demo.summary(&receiver, &case, &reply).await?;
    println!("All {} steps verified.", demo.story.steps);
    if options.keep_running {
        demo.keep_running(&receiver, options.write_env.as_deref())
            .await?;
    }
    demo.running.shutdown().await?;
    demo.emulator.shutdown().await;
    Ok(())
}

/// The story with Chatwoot as the chat platform: the connector instead of
/// `/v1/events` and a delivery URL.
async fn chatwoot_story(dir: &std::path::Path) -> anyhow::Result<()> {
    println!(
        "casebridge demo: Creatio emulator, casebridge and a Chatwoot stand-in, all on loopback"
    );
    let mut demo = Demo::start(dir).await?;
    demo.test_and_save().await?;
    demo.pick_defaults().await?;
    let chatwoot = demo.chatwoot_connect().await?;
    demo.processes().await?;
    let (conversation, case) = demo.chatwoot_conversation(&chatwoot).await?;
    demo.chatwoot_reply(&chatwoot, conversation, &case).await?;
    demo.chatwoot_resolution(&chatwoot, conversation, &case)
        .await?;
    println!("All {} steps verified.", demo.story.steps);
    chatwoot.shutdown().await;
    demo.running.shutdown().await?;
    demo.emulator.shutdown().await;
    Ok(())
}

/// The stand-in's agent token.
const CHATWOOT_TOKEN: &str = "demo-chatwoot-agent-token";
const CHATWOOT_SECRET: &str = "demo-chatwoot-webhook-secret";

/// casebridge's answer to the stand-in's last webhook call.
fn chatwoot_answer(sent: Option<&chatwoot_standin::Sent>) -> Value {
    sent.and_then(|s| s.answer.as_deref())
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or(Value::Null)
}

/// What the chapters share: the emulator, the service, the org's API.
struct Demo {
    story: Story,
    http: reqwest::Client,
    emulator: Emulator,
    client_secret: String,
    running: crate::server::Running,
    base: String,
    /// The operator token the demo's service was started with.
    admin_token: String,
    api: Api,
    /// The demo's own view of Creatio, to check what casebridge wrote.
    creatio: creatio::Client,
}

/// The GUIDs an admin picked by name.
struct Defaults {
    owner: String,
    group: String,
}

/// The conversation's case.
struct CaseRef {
    id: Uuid,
    number: String,
}

impl Demo {
    /// The emulator, the service on SQLite, an org and its admin key.
    async fn start(dir: &std::path::Path) -> anyhow::Result<Demo> {
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

        let client = ApiClient::new(base.clone());
        let org = want(client.create_org(&admin_token, "Demo Support").await?, 201)?;
        let api = Api {
            client,
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
        let http = reqwest::Client::new();
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
        Ok(Demo {
            story,
            http,
            emulator,
            client_secret,
            running,
            base,
            admin_token,
            api,
            creatio,
        })
    }

    /// Test & Save: first with a wrong secret (refused, with a hint), then
    /// right.
    async fn test_and_save(&mut self) -> anyhow::Result<()> {
        let api = &self.api;
        let mut settings = json!({"instance_url": self.emulator.url(), "client_id": CLIENT_ID, "client_secret": "not-the-secret"});
        let answer = api.client.test_and_save(&api.key, &settings).await?;
        let (status, refused) = (answer.status, answer.body);
        if status != 422 {
            bail!("Test & Save with a wrong secret answered {status}: {refused}");
        }
        let failed = refused["report"]["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["status"] == "fail"))
            .cloned()
            .unwrap_or(Value::Null);
        settings["client_secret"] = json!(self.client_secret);
        let saved = want(api.client.test_and_save(&api.key, &settings).await?, 200)?;
        let passed = saved["report"]["checks"]
            .as_array()
            .map_or(0, |c| c.iter().filter(|c| c["status"] == "pass").count());
        self.story.ok(
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
        Ok(())
    }

    /// GUIDs picked by name, as an admin does on the settings page.
    async fn pick_defaults(&mut self) -> anyhow::Result<Defaults> {
        let api = &self.api;
        let by_name = |kind: &'static str, search: Option<&'static str>, name: &'static str| async move {
            let list = want(api.client.lookup(&api.key, kind, search).await?, 200)?;
            list["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["name"] == name))
                .and_then(|i| i["id"].as_str().map(str::to_string))
                .ok_or_else(|| anyhow!("no {name:?} among {list}"))
        };
        let resolved = by_name("case-statuses", None, "Resolved").await?;
        let group = by_name("groups", None, "1st-line support").await?;
        let owner = by_name("contacts", Some("Sarah"), "Sarah Lee").await?;
        let change = json!({"resolved_status_id": resolved, "default_group_id": group, "default_owner_id": owner});
        want(api.client.change_connection(&api.key, &change).await?, 200)?;
        self.story.ok(
            "lookups",
            format!(
                "by name: status Resolved = {}, group 1st-line support = {}, owner Sarah Lee = {}",
                short(&resolved),
                short(&group),
                short(&owner)
            ),
        );
        Ok(Defaults { owner, group })
    }

    /// The platform's receiver, and its URL saved as the delivery URL.
    async fn delivery_url(&mut self) -> anyhow::Result<Receiver> {
        let receiver = Receiver::start().await?;
        let api = &self.api;
        let delivery = want(api.client.put_delivery(&api.key, &receiver.url).await?, 201)?;
        let secret = delivery["secret"]
            .as_str()
            .ok_or_else(|| anyhow!("no secret in {delivery}"))?
            .to_string();
        *receiver.secret.lock().unwrap_or_else(|p| p.into_inner()) = Some(secret);
        self.story.ok(
            "delivery",
            format!(
                "platform receiver at {}, signing secret whsec_… issued",
                receiver.url
            ),
        );
        Ok(receiver)
    }

    /// Two AI fields: a dropdown whose options resolve to GUIDs, a text.
    async fn ai_fields(&mut self) -> anyhow::Result<()> {
        let fields = json!([
            {"field_name": "PriorityId", "title": "Priority", "type": "dropdown",
             "description": "Critical if the service is down for everyone, data loss or a security breach\n\
                             High if a product arrived broken, does not turn on, or payments fail\n\
                             Medium for general bugs and errors\n\
                             Low for questions and feature requests"},
            {"field_name": "UsrOrderNumber", "title": "Order number", "type": "text",
             "description": "The customer's order number, like #A-1234"},
        ]);
        let api = &self.api;
        let saved = want(api.client.put_ai_fields(&api.key, &fields).await?, 200)?;
        let resolved_options = saved["fields"][0]["options"].as_array().map_or(0, Vec::len);
        if resolved_options != 4 {
            bail!("the priority mapping resolved {resolved_options} options, not 4: {saved}");
        }
        self.story.ok(
            "ai fields",
            format!(
                "Priority → PriorityId ({resolved_options} options resolved to GUIDs by name), Order number → UsrOrderNumber ({} characters); provider {}",
                saved["fields"][1]["max_length"], saved["provider"].as_str().unwrap_or("?")
            ),
        );
        Ok(())
    }

    /// Creatio's two business processes, built from the templates.
    async fn processes(&mut self) -> anyhow::Result<()> {
        let templates = self.api.get("/v1/creatio/process-templates").await?;
        let mut names = Vec::new();
        for p in templates["processes"].as_array().into_iter().flatten() {
            let call = &p["call_web_service"];
            let def = json!({"name": p["name"], "trigger": p["signal"]["trigger"], "url": call["url"],
                             "body": call["body"], "retries": call["retries_on_failure"]});
            let resp = self
                .http
                .post(format!("{}/__emulator/processes", self.emulator.url()))
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
        self.story.ok(
            "processes",
            format!(
                "Creatio processes {} built from GET /v1/creatio/process-templates",
                names.join(" and ")
            ),
        );
        Ok(())
    }

    /// The case's activities, oldest first.
    async fn activities(&self, case_id: Uuid) -> anyhow::Result<Vec<Activity>> {
        self.creatio
            .list::<Activity>(
                Query::new()
                    .filter(lookup("Case").eq(case_id))
                    .order_by_asc("CreatedOn"),
            )
            .await
            .context("reading the case's activities")
    }

    /// The customer writes twice: a case and two activities, in order.
    async fn customer_writes(&mut self) -> anyhow::Result<CaseRef> {
        self.api
            .send(json!([
                message("m1", "customer", "My order #A-1042 arrived broken."),
                message(
                    "m2",
                    "customer",
                    "The screen is cracked and it will not turn on."
                ),
            ]))
            .await?;
        let conv = self.api.settled().await?;
        let case_id: Uuid = conv["case"]["id"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .context("no case id")?;
        let number = conv["case"]["number"].as_str().unwrap_or("?").to_string();
        let case: Case = self
            .creatio
            .get(case_id)
            .await
            .context("the case is not in Creatio")?;
        let list = self.activities(case_id).await?;
        if list.len() != 2 {
            bail!(
                "expected 2 activities on case {number}, found {}",
                list.len()
            );
        }
        self.story.ok(
            "customer",
            format!(
                "2 customer messages → case {number} ({}), subject \"{}\", 2 activities in order",
                short(&case_id.to_string()),
                case.subject.unwrap_or_default()
            ),
        );
        Ok(CaseRef {
            id: case_id,
            number,
        })
    }

    /// The AI answers: a third activity, after the others.
    async fn ai_replies(&mut self, case: &CaseRef) -> anyhow::Result<()> {
        self.api
            .send(message(
                "m3",
                "ai",
                "Sorry to hear that! Could you send a photo of the damage?",
            ))
            .await?;
        self.api.settled().await?;
        let list = self.activities(case.id).await?;
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
        self.story.ok(
            "ai reply",
            format!("→ activity \"{last}\"; 3 activities, in message order"),
        );
        Ok(())
    }

    /// The platform learns the case number.
    async fn case_linked(&mut self, receiver: &Receiver, case: &CaseRef) -> anyhow::Result<()> {
        let linked = receiver.wait_for("case.linked").await?;
        if linked.data["case_number"] != case.number.as_str() {
            bail!("case.linked carried {}, not {}", linked.data, case.number);
        }
        self.story.ok(
            "case.linked",
            format!(
                "the platform learned case {} ({}), signature verified",
                case.number, linked.webhook_id
            ),
        );
        Ok(())
    }

    /// casebridge's own activities fired the agent-reply process: wait
    /// until those calls were answered and looked at, then check nothing
    /// was sent.
    async fn echo_guard(&mut self, receiver: &Receiver) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        let calls = loop {
            let calls: Vec<Value> = self
                .http
                .get(format!("{}/__emulator/process-calls", self.emulator.url()))
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
        self.api.settled().await?;
        if calls.iter().any(|c| c["success"] != true) {
            bail!("a process call failed: {calls:?}");
        }
        if !receiver.of_kind("agent.reply").is_empty() {
            bail!("casebridge echoed its own activity back as an agent reply");
        }
        self.story.ok(
            "echo guard",
            format!(
                "{} process calls for casebridge's own activities → 0 agent replies",
                calls.len()
            ),
        );
        Ok(())
    }

    /// The AI hands off: the note, the AI fields, the owner and group.
    async fn handoff(&mut self, case_ref: &CaseRef, defaults: &Defaults) -> anyhow::Result<()> {
        self.api.send(event(
            "evt-handoff",
            json!({"type": "conversation.handoff", "handoff": {
                "summary": "Order #A-1042 arrived with a cracked screen and does not power on; customer wants a replacement.",
                "reason": "Replacement needs a human decision", "language": "en", "sentiment": "negative"}}),
        )).await?;
        let conv = self.api.settled().await?;
        let case: Case = self.creatio.get(case_ref.id).await?;
        let list = self.activities(case_ref.id).await?;
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
        if case.owner_id.map(|o| o.to_string()) != Some(defaults.owner.clone())
            || case.group_id.map(|g| g.to_string()) != Some(defaults.group.clone())
        {
            bail!(
                "the case's owner/group are {:?}/{:?}",
                case.owner_id,
                case.group_id
            );
        }
        let fields = self
            .creatio
            .get_value("Case", case_ref.id, &Query::new())
            .await?;
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
        self.story.ok(
            "hand-off",
            format!("note \"{}\" with summary, reason, language en, sentiment negative; AI fields Priority = High, Order number = A-1042; owner Sarah Lee, group 1st-line support; state {}",
                note.title.clone().unwrap_or_default(), conv["state"].as_str().unwrap_or("?")),
        );
        Ok(())
    }

    /// Sarah answers in Creatio; the platform gets `agent.reply`. Returns
    /// the agent's activity as Creatio stored it.
    async fn agent_replies(
        &mut self,
        receiver: &Receiver,
        case: &CaseRef,
    ) -> anyhow::Result<Value> {
        let reply: Value = self
            .http
            .post(format!("{}/__emulator/agent-reply", self.emulator.url()))
            .json(&json!({"case_id": case.id, "text": "<p>Hi Ada,</p><p>so sorry! A replacement ships today; no need to return the broken one.</p>"}))
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
        self.story.ok(
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
        Ok(reply)
    }

    /// Sarah resolves the case; the conversation is resolved.
    async fn resolution(&mut self, receiver: &Receiver, case: &CaseRef) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(format!("{}/__emulator/case-status", self.emulator.url()))
            .json(&json!({"case_id": case.id, "status": "Resolved"}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!(
                "the emulator refused the status change: {}",
                resp.text().await?
            );
        }
        let closed = receiver.wait_for("conversation.resolved").await?;
        let conv = self.api.settled().await?;
        if conv["state"] != "resolved" {
            bail!("the conversation is {} after the closure", conv["state"]);
        }
        self.story.ok(
            "resolution",
            format!(
                "Sarah resolved the case → conversation.resolved {} (status {}); conversation resolved",
                closed.webhook_id,
                closed.data["status"].as_str().unwrap_or("?")
            ),
        );
        Ok(())
    }

    /// What was written, and that nothing was written twice.
    async fn summary(
        &mut self,
        receiver: &Receiver,
        case_ref: &CaseRef,
        reply: &Value,
    ) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let case: Case = self.creatio.get(case_ref.id).await?;
        let cases: Vec<Case> = self
            .creatio
            .list(Query::new().filter(lookup("Contact").eq(case.contact_id.unwrap_or_default())))
            .await?;
        let list = self.activities(case_ref.id).await?;
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
        self.story.ok(
            "summary",
            format!("1 case, {} activities by casebridge (3 messages + hand-off note) and 1 by the agent, 0 duplicates; {} deliveries, each once, all signed",
                ours.len(), all.len()),
        );
        Ok(())
    }

    /// Chatwoot connected: a wrong token refused with its hint, the right
    /// one checked against the stand-in's API; its webhook points here.
    async fn chatwoot_connect(&mut self) -> anyhow::Result<chatwoot_standin::StandIn> {
        let chatwoot = chatwoot_standin::StandIn::start(CHATWOOT_TOKEN)
            .await
            .context("could not start the Chatwoot stand-in")?;
        let api = &self.api;
        let mut settings = json!({"base_url": chatwoot.url(), "account_id": chatwoot.account_id(),
                                  "api_token": "not-the-token", "webhook_secret": CHATWOOT_SECRET});
        let refused = api
            .client
            .call(
                reqwest::Method::PUT,
                "/v1/connectors/chatwoot",
                Some(&api.key),
                Some(&settings),
            )
            .await?;
        if refused.status != 422 {
            bail!(
                "a wrong Chatwoot token answered {}: {}",
                refused.status,
                refused.body
            );
        }
        settings["api_token"] = json!(CHATWOOT_TOKEN);
        let saved = want(
            api.client
                .call(
                    reqwest::Method::PUT,
                    "/v1/connectors/chatwoot",
                    Some(&api.key),
                    Some(&settings),
                )
                .await?,
            201,
        )?;
        let url = saved["connector"]["webhook_url"]
            .as_str()
            .ok_or_else(|| anyhow!("no webhook URL in {saved}"))?;
        chatwoot.set_webhook(url, Some(CHATWOOT_SECRET));
        self.story.ok(
            "chatwoot",
            format!(
                "wrong token refused ({}); right one: {} (account {}); Chatwoot's webhook → {}…, events {}",
                refused.body["error"]["message"].as_str().unwrap_or("?"),
                saved["report"]["checks"][0]["message"].as_str().unwrap_or("?"),
                chatwoot.account_id(),
                &url[..url.find("cbc_").map_or(url.len(), |i| i + 4)],
                saved["connector"]["events_to_tick"]
            ),
        );
        Ok(chatwoot)
    }

    /// A Chatwoot conversation: the customer writes, the bot answers and
    /// hands off; a case with the activities in order and the note.
    async fn chatwoot_conversation(
        &mut self,
        chatwoot: &chatwoot_standin::StandIn,
    ) -> anyhow::Result<(i64, CaseRef)> {
        let conversation = chatwoot.open_conversation(
            chatwoot_standin::Inbox::website_with_bot(),
            chatwoot_standin::Contact {
                name: "Maria Lopez".into(),
                email: Some("maria.demo@example.com".into()),
                phone: None,
            },
        );
        let id = format!("cw-{conversation}");
        chatwoot
            .customer_says(
                conversation,
                "My order #A-1042 arrived broken, the screen is cracked.",
            )
            .await;
        chatwoot.resend_last().await;
        let repeated = chatwoot_answer(chatwoot.sent().last());
        if repeated["status"] != "duplicate" {
            bail!("a repeated Chatwoot webhook was not a duplicate: {repeated}");
        }
        chatwoot
            .bot_says(
                conversation,
                "I'm sorry! A replacement needs a person; I'm handing you over.",
            )
            .await;
        let answers = chatwoot.bot_hands_off(conversation).await;
        if answers != [Some(200), Some(200)] {
            bail!("the hand-off's webhooks were answered {answers:?}");
        }
        let conv = self.api.settled_one(&id).await?;
        let case_id: Uuid = conv["case"]["id"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("no case for {id}: {conv}"))?;
        let titles: Vec<String> = self
            .activities(case_id)
            .await?
            .iter()
            .map(|a| a.title.clone().unwrap_or_default())
            .collect();
        if titles.len() != 3
            || !titles[0].starts_with("Customer:")
            || !titles[1].starts_with("AI:")
            || !titles[2].starts_with("Hand-off")
        {
            bail!("the case's activities are {titles:?}");
        }
        self.story.ok(
            "chatwoot chat",
            format!(
                "customer, bot, bot hand-off in Chatwoot conversation {conversation} → case {} with {} (a repeated webhook: duplicate); state {}",
                conv["case"]["number"].as_str().unwrap_or("?"),
                titles.join(" | "),
                conv["state"].as_str().unwrap_or("?")
            ),
        );
        Ok((
            conversation,
            CaseRef {
                id: case_id,
                number: conv["case"]["number"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            },
        ))
    }

    /// Sarah answers in Creatio: one outgoing message in Chatwoot; its own
    /// `message_created` comes back and is not echoed.
    async fn chatwoot_reply(
        &mut self,
        chatwoot: &chatwoot_standin::StandIn,
        conversation: i64,
        case: &CaseRef,
    ) -> anyhow::Result<()> {
        let text = "A replacement ships today; no need to return the broken one.";
        self.http
            .post(format!("{}/__emulator/agent-reply", self.emulator.url()))
            .json(&json!({"case_id": case.id, "text": format!("<p>{text}</p>")}))
            .send()
            .await?
            .error_for_status()?;
        let deadline = Instant::now() + WAIT;
        let echo = loop {
            let echo = chatwoot
                .sent()
                .into_iter()
                .find(|s| s.body.contains("casebridge:msg_") && s.answer.is_some());
            if let Some(e) = echo {
                break e;
            }
            if Instant::now() > deadline {
                bail!(
                    "the reply never reached Chatwoot: calls {:?}",
                    chatwoot
                        .calls()
                        .iter()
                        .map(|c| format!("{} {}", c.path, c.status))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let answer = chatwoot_answer(Some(&echo));
        let copies = chatwoot.conversation(conversation).map_or(0, |c| {
            c.messages.iter().filter(|m| m.content == text).count()
        });
        if copies != 1 || answer["status"] != "ignored" {
            bail!("{copies} copies of the reply in Chatwoot; its webhook was answered {answer}");
        }
        self.story.ok(
            "agent reply",
            format!(
                "Sarah answered in Creatio → one outgoing message in Chatwoot conversation {conversation}; its message_created came back and was ignored ({})",
                answer["reason"].as_str().unwrap_or("?")
            ),
        );
        Ok(())
    }

    /// Sarah resolves the case: Chatwoot's conversation is resolved, and
    /// Chatwoot's own status webhooks are not echoed.
    async fn chatwoot_resolution(
        &mut self,
        chatwoot: &chatwoot_standin::StandIn,
        conversation: i64,
        case: &CaseRef,
    ) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/__emulator/case-status", self.emulator.url()))
            .json(&json!({"case_id": case.id, "status": "Resolved"}))
            .send()
            .await?
            .error_for_status()?;
        let deadline = Instant::now() + WAIT;
        loop {
            let answered: Vec<Value> = chatwoot
                .sent()
                .iter()
                .filter(|s| s.event.starts_with("conversation_") && s.body.contains("\"resolved\""))
                .map(|s| chatwoot_answer(Some(s)))
                .collect();
            if answered.len() == 2 && answered.iter().all(|a| !a.is_null()) {
                if answered.iter().any(|a| a["status"] != "ignored") {
                    bail!("casebridge's own resolution came back as news: {answered:?}");
                }
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "Chatwoot's conversation was not resolved: {:?}",
                    chatwoot.conversation(conversation).map(|c| c.status)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let conv = self.api.settled_one(&format!("cw-{conversation}")).await?;
        self.story.ok(
            "resolution",
            format!(
                "Sarah resolved case {} → Chatwoot conversation {conversation} resolved (toggle_status); its two status webhooks were casebridge's own, not echoed; conversation {}",
                case.number,
                conv["state"].as_str().unwrap_or("?")
            ),
        );
        Ok(())
    }

    /// `--keep-running`: where everything is, until Ctrl-C.
    async fn keep_running(
        &self,
        receiver: &Receiver,
        write_env: Option<&std::path::Path>,
    ) -> anyhow::Result<()> {
        let (base, key) = (&self.base, &self.api.key);
        let (emulator, secret) = (self.emulator.url(), &self.client_secret);
        if let Some(path) = write_env {
            let lines = [
                ("CASEBRIDGE_URL", base.as_str()),
                ("CASEBRIDGE_OPERATOR_TOKEN", self.admin_token.as_str()),
                ("CASEBRIDGE_API_KEY", key.as_str()),
                ("CREATIO_URL", emulator),
                ("CREATIO_CLIENT_ID", CLIENT_ID),
                ("CREATIO_CLIENT_SECRET", secret.as_str()),
            ]
            .map(|(name, value)| format!("{name}={value}\n"))
            .concat();
            std::fs::write(path, lines)
                .with_context(|| format!("could not write {}", path.display()))?;
            println!("  written to {}: CASEBRIDGE_URL, CASEBRIDGE_OPERATOR_TOKEN, CASEBRIDGE_API_KEY, CREATIO_URL, CREATIO_CLIENT_ID, CREATIO_CLIENT_SECRET", path.display());
        }
        println!();
        println!("Everything stays up until Ctrl-C:");
        println!("  admin page:       {base}/   (sign in with the API key below)");
        println!("  casebridge API:   {base}   (API key {key})");
        println!("  conversation:     curl -H 'Authorization: Bearer {key}' {base}/v1/conversations/{CONVERSATION}");
        println!("  Creatio emulator: {emulator}   (client {CLIENT_ID}, secret {secret}; operator API {emulator}/__emulator/)");
        println!("  receiver:         {}", receiver.url);
        tokio::signal::ctrl_c()
            .await
            .context("could not wait for Ctrl-C")
    }
}
