//! The admin page in a real browser: headless Chromium, driven through
//! chromedriver with fantoccini, against the real service (fresh SQLite
//! database, fresh Creatio emulator) — what a CRM admin does, click by
//! click. A failing test leaves a screenshot in `target/browser-screenshots/`.
//!
//! Needs `chromium` and `chromium-driver` (Debian); `.ci/run` installs them.
//! `cargo test -p casebridge --test browser -- --ignored screenshots`
//! regenerates the README's screenshots in `docs/screenshots/`.

#[path = "browser/harness.rs"]
mod harness;
#[allow(dead_code)] // the API tests' helpers; this binary uses some of them
#[path = "api/helpers.rs"]
mod helpers;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use axum::http::{HeaderMap, StatusCode};
use creatio::ids::case_status;
use creatio_emulator::seed::demo::AGENT_SARAH;
use fantoccini::Locator;
use serde_json::{json, Value};

use harness::{connection, run, run_checked, run_with, Session};

fn message(event: &str, conversation: &str, id: &str, text: &str) -> Value {
    json!({
        "id": event, "type": "message.created", "occurred_at": "2026-11-22T10:00:00Z",
        "conversation": {"id": conversation, "channel": "web",
                         "contact": {"name": "Ada Lovelace", "email": "ada@example.com"}},
        "message": {"id": id, "role": "customer", "text": text}
    })
}

#[tokio::test]
async fn signing_in_shows_the_settings_and_signing_out_forgets_the_key() {
    run("sign_in", |s| async move {
        let page = &s.page;
        page.open("/").await?;
        ensure!(page.browser.title().await? == "Creatio integration · casebridge");
        page.fill("#api-key", "cbk_not_a_key").await?;
        page.click("#sign-in-button").await?;
        page.wait_text("#sign-in-result", "Unknown or revoked API key")
            .await?;

        // From the keyboard: the refused key's field has the focus again;
        // type the right one and press Enter.
        let field = page.browser.active_element().await?;
        ensure!(field.attr("id").await?.as_deref() == Some("api-key"));
        field.clear().await?;
        field.send_keys(&format!("{}\u{E007}", s.org.key)).await?;
        page.visible("#connection-title").await?;
        let unnamed = page.unnamed_controls().await?;
        ensure!(unnamed.is_empty(), "controls without a name: {unnamed:?}");
        page.wait_text("#status-badge", "Not connected").await?;
        // The lists come from Creatio, so they wait for a connection.
        ensure!(page
            .find("#lookups")
            .await?
            .attr("disabled")
            .await?
            .is_some());
        page.wait_text("#lookups-help", "Connect first").await?;
        // (The name check does see a control without a name.)
        let probe = "const i = document.createElement('input'); i.id = 'probe'; \
                     document.body.append(i);";
        page.browser.execute(probe, vec![]).await?;
        ensure!(page.unnamed_controls().await? == ["probe"]);

        // The key lives in this tab's sessionStorage: a reload stays signed in.
        page.browser.refresh().await?;
        page.wait_text("#status-badge", "Not connected").await?;

        page.click("#sign-out").await?;
        page.visible("#sign-in-form").await?;
        let stored = page
            .browser
            .execute("return sessionStorage.length;", vec![])
            .await?;
        ensure!(stored == json!(0), "sessionStorage still holds {stored}");
        page.browser.refresh().await?;
        page.visible("#sign-in-form").await?;
        ensure!(!page.find("#app-view").await?.is_displayed().await?);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn test_and_save_shows_the_hint_for_a_wrong_secret_then_active_and_the_webhook_url() {
    run("test_and_save", |s| async move {
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.fill("#instance-url", s.app.emulator.url()).await?;
        page.fill("#client-id", helpers::CLIENT_ID).await?;
        page.fill("#client-secret", "not-the-secret").await?;
        page.click("#save-connection").await?;

        let failed = "#check-report li[data-check='token'][data-status='fail']";
        page.wait_text(failed, "invalid_client").await?;
        page.wait_text(&format!("{failed} .hint"), "regenerate the secret")
            .await?;
        page.wait_text("#connection-result", "check 'token' failed")
            .await?;
        page.wait_text("#status-badge", "Not connected").await?;

        page.fill("#client-secret", &s.app.client_secret).await?;
        page.click("#save-connection").await?;
        page.wait_text("#status-badge", "Active").await?;
        page.wait_text("#connection-result", "Connected").await?;
        // How much of Creatio casebridge uses: the lane starts at 2.
        page.wait_text("#creatio-concurrency", "limit 2 (adapts between 1 and 8")
            .await?;
        let passed = page
            .find("#check-report li[data-check='write_activity'][data-status='pass']")
            .await;
        ensure!(passed.is_ok(), "the report has no passed write_activity");
        let webhook = connection(&s).await["webhook_url"]
            .as_str()
            .context("the API has no webhook URL")?
            .to_string();
        ensure!(webhook.starts_with(&format!("{}/webhooks/creatio/cbw_", s.app.url)));
        page.wait_text("#saved-webhook-url", &webhook).await?;
        // The secret is write-only: the field is empty, a mask says it is saved.
        ensure!(page.value("#client-secret").await?.is_empty());
        let placeholder = page
            .find("#client-secret")
            .await?
            .attr("placeholder")
            .await?;
        ensure!(
            !placeholder
                .clone()
                .unwrap_or_default()
                .contains(&s.app.client_secret),
            "{placeholder:?}"
        );

        // The webhook panel has the URL to copy and the processes to paste.
        page.click("a[data-tab='webhook']").await?;
        page.visible("#webhook-url").await?;
        ensure!(page.value("#webhook-url").await? == webhook);
        page.wait_text("#template-agent_reply", "new_activity")
            .await?;
        page.wait_text("#template-closure", "case_status_changed")
            .await?;
        page.wait_text("#template-closure", &webhook).await?;

        // Disconnect asks first; cancelling keeps the connection.
        page.click("a[data-tab='connection']").await?;
        page.click("#disconnect").await?;
        page.click("#disconnect-cancel").await?;
        page.wait_text("#status-badge", "Active").await?;
        page.click("#disconnect").await?;
        page.click("#disconnect-confirm").await?;
        page.wait_text("#status-badge", "Disconnected").await?;
        ensure!(connection(&s).await["status"] == "disconnected");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn owner_and_resolved_status_are_picked_by_name_and_saved_by_guid() {
    run("pick_by_name", |s| async move {
        s.app.connect(&s.org.key).await;
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.wait_text("#status-badge", "Active").await?;

        page.choose("#resolved-status-select", "Resolved (resolved)")
            .await?;
        let resolved = case_status::RESOLVED.to_string();
        page.wait_text("#resolved-status-guid", &resolved).await?;

        page.fill("#owner-search", "Sarah").await?;
        page.click("#owner-search-button").await?;
        page.wait_text("#lookups-result", "1 contact(s) found")
            .await?;
        page.choose("#owner-select", "Sarah Lee <sarah.lee@ourcompany.example>")
            .await?;
        page.wait_text("#owner-guid", AGENT_SARAH).await?;

        page.click("#save-connection").await?;
        page.wait_text("#connection-result", "Saved.").await?;
        page.wait_text(
            "#check-report li[data-check='resolved_status'][data-status='pass']",
            "",
        )
        .await?;
        let saved = connection(&s).await;
        ensure!(saved["resolved_status_id"] == resolved.as_str(), "{saved}");
        ensure!(saved["default_owner_id"] == AGENT_SARAH, "{saved}");

        // After a reload the saved choices show by name again.
        page.browser.refresh().await?;
        page.wait_text("#resolved-status-guid", &resolved).await?;
        let shown = page
            .find("#resolved-status-select option:checked")
            .await?
            .text()
            .await?;
        ensure!(shown == "Resolved (resolved)", "{shown:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn events_sent_through_the_api_appear_with_their_case_number() {
    run("conversation_appears", |s| async move {
        s.app.connect(&s.org.key).await;
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.click("a[data-tab='activity']").await?;
        page.wait_text("#conversations-empty", "No conversations yet")
            .await?;

        s.app
            .send(
                &s.org.key,
                json!([
                    message("evt_b1", "c_browser", "m_1", "My printer is on fire."),
                    message("evt_b2", "c_browser", "m_2", "It is still on fire."),
                ]),
            )
            .await;
        let settled = s.app.settled(&s.org.key, "c_browser").await;
        let number = settled["case"]["number"]
            .as_str()
            .context("the case has no number")?
            .to_string();

        // The page polls: no click needed for it to appear.
        let row = "#conversations tr[data-conversation='c_browser']";
        page.wait_text(&format!("{row} .case-number"), &number)
            .await?;
        page.wait_text(&format!("{row} .sync"), "Synced").await?;
        page.wait_text(row, "2 of 2").await?;

        page.click(&format!("{row} button.link")).await?;
        page.wait_text("#conversation-facts", &number).await?;
        page.wait_text("#conversation-timeline", "case").await?;
        Ok(())
    })
    .await
}

const PRIORITY: &str = "How urgent the case is.
Critical if the whole service is down, an outage or data loss
High if payments fail or the customer cannot work
Medium for general bugs and wrong behaviour
Low for questions and feedback";

/// Types the Priority and Order number mappings into the editor and saves.
async fn save_priority_and_order_number(s: &Session) -> Result<()> {
    add_ai_field(s, "Dropdown", "PriorityId", "Priority", PRIORITY).await?;
    add_ai_field(
        s,
        "Text",
        "UsrOrderNumber",
        "Order number",
        "The customer's order number, like ORD-123456",
    )
    .await?;
    s.page.click("#ai-save").await?;
    s.page
        .wait_text("#ai-result", "Saved 2 AI field(s)")
        .await?;
    Ok(())
}

/// Adds a field in the AI fields editor, as an admin types it.
async fn add_ai_field(
    s: &Session,
    kind: &str,
    name: &str,
    title: &str,
    description: &str,
) -> Result<()> {
    let page = &s.page;
    let before = page
        .browser
        .find_all(Locator::Css("#ai-field-list .ai-field"))
        .await?
        .len();
    page.click("#ai-add").await?;
    let row = format!("#ai-field-list .ai-field:nth-of-type({})", before + 1);
    page.fill(&format!("{row} [data-key='field_name']"), name)
        .await?;
    page.fill(&format!("{row} [data-key='title']"), title)
        .await?;
    page.find(&format!("{row} [data-key='type']"))
        .await?
        .select_by_label(kind)
        .await?;
    page.fill(&format!("{row} [data-key='description']"), description)
        .await?;
    Ok(())
}

#[tokio::test]
async fn ai_fields_are_saved_and_previewed_from_the_page() {
    run("ai_fields", |s| async move {
        s.app.connect(&s.org.key).await;
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.click("a[data-tab='ai-fields']").await?;
        page.wait_text("#ai-provider", "offline").await?;
        // The column picker offers Case's columns; picking a lookup makes
        // the field a dropdown.
        page.wait_attr("#case-columns option[value='PriorityId']", "value", "PriorityId")
            .await?;
        page.click("#ai-add").await?;
        let first = "#ai-field-list .ai-field:nth-of-type(1)";
        page.find(&format!("{first} [data-key='type']"))
            .await?
            .select_by_label("Text")
            .await?;
        page.fill(&format!("{first} [data-key='field_name']"), "PriorityId")
            .await?;
        page.click(&format!("{first} [data-key='title']")).await?;
        ensure!(page.value(&format!("{first} [data-key='type']")).await? == "dropdown");
        page.click(&format!("{first} .actions button")).await?;
        save_priority_and_order_number(&s).await?;
        // Saved mappings come back resolved against Creatio.
        page.wait_text("#ai-field-list", "Lookup CasePriority").await?;
        let unnamed = page.unnamed_controls().await?;
        ensure!(unnamed.is_empty(), "controls without a name: {unnamed:?}");
        let saved = s.app.get("/v1/creatio/ai-fields", &s.org.key).await.1;
        ensure!(saved["fields"].as_array().map(Vec::len) == Some(2), "{saved}");
        ensure!(saved["fields"][1]["max_length"] == 50, "the default size: {saved}");
        page.wait_text("#ai-field-list", "Text, at most 50 characters")
            .await?;
        // The admin knows the column is 250 characters: the size is typed,
        // saved and shown.
        page.fill(
            "#ai-field-list .ai-field:nth-of-type(2) [data-key='max_length']",
            "250",
        )
        .await?;
        page.click("#ai-save").await?;
        page.wait_text("#ai-field-list", "Text, at most 250 characters")
            .await?;
        let saved = s.app.get("/v1/creatio/ai-fields", &s.org.key).await.1;
        ensure!(saved["fields"][1]["max_length"] == 250, "{saved}");

        page.fill(
            "#ai-transcript",
            "Customer: My payments fail and I cannot work. Order ORD-482913.\nAI: Let me get a person.",
        )
        .await?;
        page.click("#ai-preview").await?;
        page.wait_text("#ai-preview-result", "nothing was written").await?;
        page.wait_text("#ai-preview-values tr[data-field='UsrOrderNumber']", "ORD-482913")
            .await?;
        let priority = page
            .find("#ai-preview-values tr[data-field='PriorityId']")
            .await?
            .text()
            .await?;
        ensure!(priority.contains("High"), "{priority:?}");
        Ok(())
    })
    .await
}

/// The chat platform's webhook receiver, answering with a status it is set to.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    /// (webhook-id, type, status answered) of every request.
    got: Arc<Mutex<Vec<(String, String, u16)>>>,
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let status = Arc::new(AtomicU16::new(status));
        let got: Arc<Mutex<Vec<(String, String, u16)>>> = Arc::default();
        let (answer, log) = (status.clone(), got.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| async move {
                let code = answer.load(Ordering::SeqCst);
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let kind = serde_json::from_str::<Value>(&body).unwrap_or_default()["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                log.lock().unwrap().push((id, kind, code));
                StatusCode::from_u16(code).unwrap()
            }),
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, status, got }
    }
}

#[tokio::test]
async fn a_dead_delivery_is_replayed_from_the_page_and_then_delivered() {
    run("replay", |s| async move {
        // 400 is never retried: the first delivery is a dead letter at once.
        let receiver = Receiver::start(400).await;
        s.app.connect(&s.org.key).await;
        let page = &s.page;
        page.sign_in(&s.org.key).await?;

        page.click("a[data-tab='webhook']").await?;
        page.fill("#delivery-url", &receiver.url).await?;
        page.click("#save-delivery").await?;
        page.wait_text("#delivery-result", "Saved").await?;
        let secret = page.value("#delivery-secret-value").await?;
        ensure!(secret.starts_with("whsec_"), "{secret:?}");

        s.app
            .send(
                &s.org.key,
                json!(message("evt_r1", "c_replay", "m_1", "Hello?")),
            )
            .await;

        page.click("a[data-tab='activity']").await?;
        page.find("#delivery-filter")
            .await?
            .select_by_label("Dead letters")
            .await?;
        let dead = "#deliveries tr[data-state='dead']";
        page.wait_text(dead, "case.linked").await?;
        page.wait_text(dead, "HTTP 400").await?;
        let id = page
            .find(dead)
            .await?
            .attr("data-delivery")
            .await?
            .context("the row names no delivery")?;

        let unnamed = page.unnamed_controls().await?;
        ensure!(unnamed.is_empty(), "controls without a name: {unnamed:?}");

        receiver.status.store(200, Ordering::SeqCst);
        page.find("#delivery-filter")
            .await?
            .select_by_label("All")
            .await?;
        let row = format!("#deliveries tr[data-delivery='{id}']");
        page.click(&format!("{row} button.replay")).await?;
        page.wait_text("#deliveries-result", "Replay queued")
            .await?;
        page.wait_attr(&row, "data-state", "delivered").await?;
        page.wait_text(&format!("{row} .state"), "Delivered")
            .await?;

        // The receiver got the same delivery twice: refused, then accepted.
        let got = receiver.got.lock().unwrap().clone();
        let ours: Vec<u16> = got
            .iter()
            .filter(|(webhook_id, _, _)| *webhook_id == id)
            .map(|(_, _, status)| *status)
            .collect();
        ensure!(ours == [400, 200], "the receiver got {got:?}");

        page.click(&format!("{row} button[aria-label^='Attempts']"))
            .await?;
        page.wait_text("#delivery-attempts", "HTTP 200").await?;
        page.wait_text("#delivery-attempts", "HTTP 400").await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_dead_job_is_retried_from_the_page_after_the_cause_is_fixed() {
    run("retry_job", |s| async move {
        s.app.connect(&s.org.key).await;
        // The integration user lost the right to add activities: the
        // message's job fails for good.
        s.app
            .change_creatio_client(json!({"rights": {"Activity": {"create": false}}}))
            .await;
        s.app
            .send(
                &s.org.key,
                json!([message("evt_j1", "c_retry", "m_1", "Where is my parcel?")]),
            )
            .await;
        s.app.settled(&s.org.key, "c_retry").await;

        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.click("a[data-tab='activity']").await?;
        let row = "#conversations tr[data-conversation='c_retry']";
        page.wait_text(&format!("{row} .sync"), "Failed").await?;
        page.click(&format!("{row} button.link")).await?;
        let dead = "#conversation-jobs li[data-state='dead']";
        page.wait_text(dead, "Failed").await?;
        page.wait_text(dead, "Message #").await?;

        // Fixed in Creatio; retried from the page; synced.
        s.app
            .change_creatio_client(json!({"rights": {"Activity": {"create": true}}}))
            .await;
        page.click(&format!("{dead} button")).await?;
        page.wait_text("#conversation-jobs-result", "Queued again")
            .await?;
        page.wait_text(&format!("{row} .sync"), "Synced").await?;
        page.wait_text("#conversation-timeline", "Retried by an admin")
            .await?;
        ensure!(
            !page
                .find("#conversation-jobs-box")
                .await?
                .is_displayed()
                .await?,
            "jobs are still listed as not done"
        );
        let c = s.app.settled(&s.org.key, "c_retry").await;
        ensure!(c["messages"]["written"] == 1, "{c}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_pending_delivery_is_sent_now_from_the_page() {
    // The schedule's next try is an hour after a failure.
    let hour = |c: &mut casebridge::config::Config| {
        c.delivery.delays = vec![std::time::Duration::from_secs(3600); 3]
    };
    run_with("retry_delivery", hour, |s| async move {
        // The receiver is down.
        let receiver = Receiver::start(503).await;
        let app = &s.app;
        app.connect(&s.org.key).await;
        let (status, saved) = app
            .put("/v1/delivery", &s.org.key, json!({"url": receiver.url}))
            .await;
        ensure!(status.is_success(), "{saved}");
        app.send(
            &s.org.key,
            json!([message("evt_d1", "c_now", "m_1", "Hello?")]),
        )
        .await;

        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.click("a[data-tab='activity']").await?;
        let pending = "#deliveries tr[data-state='pending']";
        page.wait_text(pending, "HTTP 503").await?;
        let id = page
            .find(pending)
            .await?
            .attr("data-delivery")
            .await?
            .context("the row names no delivery")?;

        receiver.status.store(200, Ordering::SeqCst);
        let row = format!("#deliveries tr[data-delivery='{id}']");
        page.click(&format!("{row} button.retry-now")).await?;
        page.wait_text("#deliveries-result", "Sending").await?;
        page.wait_attr(&row, "data-state", "delivered").await?;
        let got = receiver.got.lock().unwrap().clone();
        let ours: Vec<u16> = got
            .iter()
            .filter(|(webhook_id, _, _)| *webhook_id == id)
            .map(|(_, _, status)| *status)
            .collect();
        ensure!(ours == [503, 200], "the receiver got {got:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn api_keys_are_created_shown_once_and_revoked_from_the_page() {
    run("api_keys", |s| async move {
        s.app.connect(&s.org.key).await;
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.click("a[data-tab='keys']").await?;
        page.wait_text("#keys tbody", "this page is signed in with it")
            .await?;

        // An ingest key for the chat platform, shown once.
        page.fill("#key-name", "Chat platform (production)").await?;
        page.choose("#key-role", "Ingest: send events only").await?;
        page.click("#create-key").await?;
        page.wait_text("#key-result", "Created ingest key").await?;
        page.wait_text("#key-result", "shown only once").await?;
        let key = page.value("#new-key-value").await?;
        ensure!(key.starts_with("cbk_"), "{key:?}");
        page.wait_text("#keys tbody", "Chat platform (production)")
            .await?;

        // It sends events, and nothing else.
        let (status, body) = s
            .app
            .post(
                "/v1/events",
                &key,
                json!([message("evt_k1", "c_k", "m_1", "Hi")]),
            )
            .await;
        ensure!(status == StatusCode::ACCEPTED, "{status} {body}");
        let (status, _) = s.app.get("/v1/creatio/connection", &key).await;
        ensure!(
            status == StatusCode::FORBIDDEN,
            "an ingest key read settings: {status}"
        );

        // Revoked after a confirmation: refused from then on.
        let (_, keys) = s.app.get("/v1/api-keys", &s.org.key).await;
        let id = keys["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["role"] == "ingest")
            .context("no ingest key listed")?["id"]
            .as_str()
            .unwrap()
            .to_string();
        let revoke = format!("#keys tr[data-key='{id}'] button");
        page.click(&revoke).await?;
        page.wait_text("#revoke-text", "refused from now on")
            .await?;
        page.click("#revoke-cancel").await?;
        let (status, _) = s.app.post("/v1/events", &key, json!([])).await;
        ensure!(status != StatusCode::UNAUTHORIZED, "cancel revoked the key");
        page.click(&revoke).await?;
        page.click("#revoke-confirm").await?;
        page.wait_text("#key-result", "Revoked").await?;
        let (status, _) = s
            .app
            .post(
                "/v1/events",
                &key,
                json!([message("evt_k2", "c_k", "m_2", "Hi")]),
            )
            .await;
        ensure!(
            status == StatusCode::UNAUTHORIZED,
            "a revoked key: {status}"
        );
        ensure!(
            !page
                .find("#keys tbody")
                .await?
                .text()
                .await?
                .contains("Chat platform"),
            "the revoked key is still listed"
        );

        // The org's last admin key cannot go: the page says why.
        let mine = "#keys tbody tr button";
        page.click(mine).await?;
        page.wait_text("#revoke-text", "you will be signed out")
            .await?;
        page.click("#revoke-confirm").await?;
        page.wait_text("#key-result", "last admin key").await?;

        // Shown once: after signing in again it is gone.
        page.click("#sign-out").await?;
        page.sign_in(&s.org.key).await?;
        page.click("a[data-tab='keys']").await?;
        ensure!(page.value("#new-key-value").await?.is_empty());
        ensure!(
            s.page
                .eval("document.getElementById('new-key').hidden")
                .await?
                == json!(true)
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn connection_errors_are_shown_beside_each_field_in_words() {
    run("inline_errors", |s| async move {
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.click("#save-connection").await?;
        page.wait_text("#instance-url-error", "Instance URL is required.")
            .await?;
        page.wait_text(
            "#instance-url-error",
            "Use the address of your Creatio site",
        )
        .await?;
        page.wait_text("#client-id-error", "Client ID is required.")
            .await?;
        page.wait_text("#client-secret-error", "Client Secret is required.")
            .await?;
        page.wait_attr("#instance-url", "aria-invalid", "true")
            .await?;
        let describedby = page
            .find("#instance-url")
            .await?
            .attr("aria-describedby")
            .await?
            .unwrap_or_default();
        ensure!(
            describedby.starts_with("instance-url-error"),
            "{describedby:?}"
        );
        let result = page
            .wait_text("#connection-result", "3 fields need a change")
            .await?;
        ensure!(!result.contains("instance_url"), "raw names: {result}");
        ensure!(
            s.page.eval("document.activeElement.id").await? == json!("instance-url"),
            "focus is not on the first wrong field"
        );

        // A channel the page offers is valid; the Identity Service URL is
        // checked too, beside its own field.
        page.fill("#instance-url", s.app.emulator.url()).await?;
        page.fill("#identity-service-url", "not a url").await?;
        page.fill("#client-id", helpers::CLIENT_ID).await?;
        page.fill("#client-secret", &s.app.client_secret).await?;
        page.click("#save-connection").await?;
        page.wait_attr("#identity-service-url", "aria-invalid", "true")
            .await?;
        page.wait_text("#identity-service-url-error", "OAuth20IdentityServerUrl")
            .await?;
        ensure!(
            s.page
                .eval("document.getElementById('instance-url-error').hidden")
                .await?
                == json!(true),
            "a fixed field still shows its error"
        );
        page.wait_text("#connection-result", "one field needs a change")
            .await?;

        page.fill("#identity-service-url", "").await?;
        page.click("#save-connection").await?;
        page.wait_text("#status-badge", "Active").await?;
        page.wait_text("#connection-result", "pick the case defaults")
            .await?;
        ensure!(
            s.page
                .eval("document.querySelectorAll('[aria-invalid=\"true\"]').length")
                .await?
                == json!(0),
            "fields are still marked"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn chatwoot_is_connected_from_the_chat_platform_card() {
    run("chatwoot_card", |s| async move {
        s.app.connect(&s.org.key).await;
        let token = "cw-browser-token-0001";
        let chatwoot = chatwoot_standin::StandIn::start(token).await?;
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.wait_text("#status-badge", "Active").await?;
        page.click("a[data-tab='webhook']").await?;
        page.click("#platform-chatwoot").await?;
        page.wait_eval(
            "document.getElementById('delivery-card').hidden",
            json!(true),
        )
        .await?;
        page.fill("#chatwoot-base-url", chatwoot.url()).await?;
        page.fill("#chatwoot-account-id", "1").await?;
        page.fill("#chatwoot-token", "not-the-token").await?;
        page.click("#save-chatwoot").await?;
        page.wait_text("#chatwoot-result", "refused the API access token")
            .await?;
        page.fill("#chatwoot-base-url", "ftp://chat.example.com")
            .await?;
        page.click("#save-chatwoot").await?;
        page.wait_text("#chatwoot-base-url-error", "Chatwoot URL uses ftp:")
            .await?;
        page.fill("#chatwoot-base-url", chatwoot.url()).await?;
        page.wait_text("#chatwoot-report", "Profile settings → Access Token")
            .await?;
        page.fill("#chatwoot-token", token).await?;
        page.fill("#chatwoot-inboxes", "3, x").await?;
        page.click("#save-chatwoot").await?;
        page.wait_attr("#chatwoot-inboxes", "aria-invalid", "true")
            .await?;
        page.fill("#chatwoot-inboxes", "3").await?;
        page.click("#save-chatwoot").await?;
        page.wait_text(
            "#chatwoot-result",
            "Agents' replies and closures now go to Chatwoot",
        )
        .await?;
        page.wait_text(
            "#chatwoot-events",
            "Message created, Conversation status changed, Conversation updated",
        )
        .await?;
        let url = page.value("#chatwoot-webhook-url").await?;
        ensure!(url.contains("/v1/connectors/chatwoot/cbc_"), "{url}");
        ensure!(
            page.eval("document.getElementById('platform-webhooks').disabled")
                .await?
                == json!(true),
            "one chat platform per org"
        );
        let (_, c) = s.app.get("/v1/connectors/chatwoot", &s.org.key).await;
        ensure!(
            c["account_id"] == 1 && c["inbox_ids"] == json!([3]) && c["webhook_url"] == url,
            "{c}"
        );
        // The URL the page shows is the one Chatwoot calls.
        chatwoot.set_webhook(&url, None);
        let conversation = chatwoot.open_conversation(
            chatwoot_standin::Inbox::website_with_bot(),
            chatwoot_standin::Contact {
                name: "Maria Lopez".into(),
                email: None,
                phone: None,
            },
        );
        ensure!(chatwoot.customer_says(conversation, "hello").await == Some(200));
        // Disconnecting brings the delivery URL back.
        page.eval("window.confirm = () => true").await?;
        page.click("#remove-chatwoot").await?;
        page.wait_text("#chatwoot-result", "Chatwoot disconnected")
            .await?;
        page.click("#platform-webhooks").await?;
        page.wait_eval(
            "document.getElementById('delivery-card').hidden",
            json!(false),
        )
        .await?;
        chatwoot.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn contact_creation_and_case_append_channels_are_set_from_the_page() {
    run("contact_settings", |s| async move {
        s.app.connect(&s.org.key).await;
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.wait_text("#status-badge", "Active").await?;
        ensure!(
            s.page
                .eval("document.getElementById('create-contacts').checked")
                .await?
                == json!(true)
        );
        ensure!(
            s.page
                .eval("document.querySelector('input[name=append-channel][value=email]').checked")
                .await?
                == json!(true)
        );
        page.click("#create-contacts").await?;
        page.click("input[name='append-channel'][value='whatsapp']")
            .await?;
        page.click("#save-connection").await?;
        page.wait_text("#connection-result", "Saved").await?;
        let c = connection(&s).await;
        ensure!(c["create_missing_contacts"] == false, "{c}");
        ensure!(
            c["case_append_channels"] == json!(["email", "whatsapp"]),
            "{c}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn needs_attention_shows_the_problem_not_the_passing_report_from_before() {
    run("needs_attention", |s| async move {
        let app = &s.app;
        app.connect(&s.org.key).await;
        // The OAuth app is switched off in Creatio: the next job pauses the org.
        app.change_creatio_client(json!({"active": false})).await;
        app.emulator_op(axum::http::Method::POST, "tokens/revoke", Some(json!({})))
            .await;
        app.send(
            &s.org.key,
            json!([message("evt_n1", "c_n", "m_1", "Hello")]),
        )
        .await;
        let c = app.connection_when(&s.org.key, "needs_attention").await;
        ensure!(
            c["status"] == "needs_attention",
            "never needs attention: {c}"
        );

        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.wait_text("#status-badge", "Needs attention").await?;
        let detail = page
            .wait_text("#status-detail", "Sync is paused until")
            .await?;
        ensure!(!detail.contains(".."), "{detail}");
        page.wait_text("#report-empty", "passed, but since then")
            .await?;
        ensure!(
            s.page
                .eval("document.querySelectorAll('#check-report li').length")
                .await?
                == json!(0),
            "the old all-pass report stands beside the warning"
        );

        // Fixed in Creatio; Re-test shows a fresh report and Active.
        app.change_creatio_client(json!({"active": true})).await;
        page.click("#retest").await?;
        page.wait_text("#status-badge", "Active").await?;
        page.find("#check-report li[data-check='token'][data-status='pass']")
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn when_the_server_is_down_the_page_says_so_and_claims_no_empty_lists() {
    run("server_down", |s| async move {
        s.app.connect(&s.org.key).await;
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.click("a[data-tab='activity']").await?;
        page.wait_text("#status-badge", "Active").await?;
        page.wait_text("#deliveries-empty", "No deliveries yet")
            .await?;

        s.app.stop().await;
        page.wait_text("#status-badge", "Not answering").await?;
        page.wait_text("#status-detail", "not answering this page")
            .await?;
        page.wait_text("#deliveries-result", "could not be read")
            .await?;
        page.wait_text("#conversations-result", "could not be read")
            .await?;
        for empty in ["deliveries-empty", "conversations-empty"] {
            ensure!(
                s.page
                    .eval(&format!("document.getElementById('{empty}').hidden"))
                    .await?
                    == json!(true),
                "{empty} claims an empty list under an error"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn at_390_px_wide_no_tab_scrolls_sideways() {
    run("narrow", |s| async move {
        let app = &s.app;
        app.connect(&s.org.key).await;
        app.send(
            &s.org.key,
            json!([message("evt_w1", "conversation-with-a-rather-long-identifier-0001", "m_1", "Hello")]),
        )
        .await;
        app.settled(&s.org.key, "conversation-with-a-rather-long-identifier-0001")
            .await;
        let page = &s.page;
        page.browser.set_window_size(390, 844).await?;
        page.sign_in(&s.org.key).await?;
        let inner = s.page.eval("window.innerWidth").await?;
        ensure!(inner.as_u64().is_some_and(|w| w <= 390), "innerWidth {inner}");
        for tab in ["connection", "webhook", "ai-fields", "activity", "keys"] {
            page.click(&format!("a[data-tab='{tab}']")).await?;
            page.visible(&format!("#panel-{tab} h2")).await?;
            // Let the tab's data arrive and render.
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            let widths = s.page.eval(
                "[document.documentElement.scrollWidth, window.innerWidth, \
                 [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && e.parentElement.getBoundingClientRect().right <= window.innerWidth + 1).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)]",
            )
            .await?;
            ensure!(
                widths[0].as_u64() <= widths[1].as_u64(),
                "the {tab} tab scrolls sideways at 390 px: scrollWidth {} > innerWidth {}; too wide: {}",
                widths[0],
                widths[1],
                widths[2]
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_conversation_list_shows_more_and_finds_one() {
    run("conversation_paging", |s| async move {
        s.app.connect(&s.org.key).await;
        let events: Vec<Value> = (0..52)
            .map(|i| {
                message(
                    &format!("evt_p{i}"),
                    &format!("c_page_{i:02}"),
                    &format!("m_{i}"),
                    "Hello",
                )
            })
            .collect();
        s.app.send(&s.org.key, json!(events)).await;
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.click("a[data-tab='activity']").await?;
        let rows = "document.querySelectorAll('#conversations tbody tr').length";
        page.visible("#conversations-more").await?;
        ensure!(
            s.page.eval(rows).await? == json!(50),
            "{}",
            s.page.eval(rows).await?
        );
        page.click("#conversations-more").await?;
        page.wait_eval(rows, json!(52)).await?;
        ensure!(
            s.page
                .eval("document.getElementById('conversations-more').hidden")
                .await?
                == json!(true),
            "Show more after the last page"
        );

        page.fill("#conversation-search", "c_page_07").await?;
        page.click("#conversation-search-button").await?;
        page.wait_eval(rows, json!(1)).await?;
        page.wait_text("#conversations tbody", "c_page_07").await?;
        page.fill("#conversation-search", "nobody@example.com")
            .await?;
        page.click("#conversation-search-button").await?;
        page.wait_text("#conversations-empty", "No conversation matches")
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn before_a_connection_the_webhook_and_ai_tabs_say_to_connect_first() {
    run("not_connected", |s| async move {
        let page = &s.page;
        page.sign_in(&s.org.key).await?;
        page.wait_text("#status-badge", "Not connected").await?;
        page.click("a[data-tab='webhook']").await?;
        page.wait_text("#webhook-unavailable", "Connect Creatio first")
            .await?;
        ensure!(
            s.page
                .eval("document.getElementById('templates-card').hidden")
                .await?
                == json!(true),
            "an empty process card before a connection"
        );
        page.click("a[data-tab='ai-fields']").await?;
        page.wait_text("#ai-unavailable", "Connect Creatio first")
            .await?;
        for button in ["ai-add", "ai-save"] {
            ensure!(
                s.page
                    .eval(&format!("document.getElementById('{button}').disabled"))
                    .await?
                    == json!(true),
                "{button} works without a connection"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_failing_or_panicking_browser_test_leaves_a_screenshot() {
    let name = "deliberately_failing";
    let path = harness::failure_screenshot_dir().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    let outcome = run_checked(name, |s| async move {
        s.page.open("/").await?;
        s.page.visible("#sign-in-form").await?;
        anyhow::bail!("this test fails on purpose")
    })
    .await;
    let why = outcome.expect_err("the body failed, so the run fails");
    ensure_contains(&why, "this test fails on purpose");
    ensure_contains(&why, &path.display().to_string());
    let png = std::fs::read(&path).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::remove_file(&path).unwrap();

    // A panic (a failed assert!) is caught the same way.
    let name = "deliberately_panicking";
    let path = harness::failure_screenshot_dir().join(format!("{name}.png"));
    let outcome = run_checked(name, |s| async move {
        s.page.open("/").await?;
        panic!("this test panics on purpose")
    })
    .await;
    let why = outcome.expect_err("the body panicked, so the run fails");
    ensure_contains(&why, "this test panics on purpose");
    assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));
    std::fs::remove_file(&path).unwrap();
}

fn ensure_contains(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} is not in {text:?}");
}

/// Regenerates `docs/screenshots/*.png` for the README: the main screens
/// with realistic data. Run on purpose, not in CI:
/// `cargo test -p casebridge --test browser -- --ignored screenshots`.
#[tokio::test]
#[ignore = "writes docs/screenshots; run on purpose"]
async fn screenshots() {
    run("screenshots", |s| async move {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&out)?;
        let page = &s.page;
        let shot = |name: &'static str| {
            let path = out.join(name);
            async move {
                page.fit_to_content(1280).await?;
                page.save_screenshot(&path).await
            }
        };

        page.open("/").await?;
        page.visible("#sign-in-form").await?;
        shot("sign-in.png").await?;

        // Connection: a failed Test & Save, then a good one, names picked.
        page.fill("#api-key", &s.org.key).await?;
        page.click("#sign-in-button").await?;
        page.fill("#instance-url", s.app.emulator.url()).await?;
        page.fill("#client-id", helpers::CLIENT_ID).await?;
        page.fill("#client-secret", "not-the-secret").await?;
        page.click("#save-connection").await?;
        page.wait_text("#connection-result", "check 'token' failed").await?;
        shot("connection-failed-check.png").await?;
        page.fill("#client-secret", &s.app.client_secret).await?;
        page.click("#save-connection").await?;
        page.wait_text("#status-badge", "Active").await?;
        page.choose("#resolved-status-select", "Resolved (resolved)")
            .await?;
        page.choose("#group-select", "1st-line support").await?;
        page.fill("#owner-search", "Sarah").await?;
        page.click("#owner-search-button").await?;
        page.choose("#owner-select", "Sarah Lee <sarah.lee@ourcompany.example>")
            .await?;
        page.click("#save-connection").await?;
        page.wait_text("#connection-result", "Saved.").await?;
        shot("connection.png").await?;

        // Webhook and delivery.
        let receiver = Receiver::start(400).await;
        page.click("a[data-tab='webhook']").await?;
        page.wait_text("#template-closure", "case_status_changed").await?;
        page.fill("#delivery-url", &receiver.url).await?;
        page.click("#save-delivery").await?;
        page.wait_text("#delivery-result", "Saved").await?;
        shot("webhook.png").await?;

        // AI fields: two mappings typed into the editor, and a preview.
        page.click("a[data-tab='ai-fields']").await?;
        page.wait_text("#ai-provider", "offline").await?;
        save_priority_and_order_number(&s).await?;
        page.fill(
            "#ai-transcript",
            "Customer: Since this morning my payments fail and nobody here can work.\nAI: I am sorry! Which order is it about?\nCustomer: Order ORD-482913, please hurry.",
        )
        .await?;
        page.click("#ai-preview").await?;
        page.wait_text("#ai-preview-result", "nothing was written").await?;
        shot("ai-fields.png").await?;

        // Activity: a few conversations, one delivery dead, then replayed.
        for (n, text) in [
            "My printer is on fire.",
            "How do I reset my password?",
            "The invoice total looks wrong.",
        ]
        .iter()
        .enumerate()
        {
            let conversation = format!("c_{}", 1041 + n);
            s.app
                .send(
                    &s.org.key,
                    json!(message(&format!("evt_s{n}"), &conversation, "m_1", text)),
                )
                .await;
            s.app.settled(&s.org.key, &conversation).await;
        }
        page.click("a[data-tab='activity']").await?;
        page.wait_text("#conversations", "c_1043").await?;
        page.wait_text("#deliveries", "Dead letter").await?;
        receiver.status.store(200, Ordering::SeqCst);
        page.click("#deliveries button.replay").await?;
        page.wait_text("#deliveries", "Delivered").await?;
        page.click("#conversations tr[data-conversation='c_1041'] button.link")
            .await?;
        page.wait_text("#conversation-timeline", "case").await?;
        shot("activity.png").await?;

        // API keys: an ingest key just created, shown once.
        page.click("a[data-tab='keys']").await?;
        page.fill("#key-name", "Chat platform (production)").await?;
        page.click("#create-key").await?;
        page.wait_text("#key-result", "Created ingest key").await?;
        shot("api-keys.png").await?;

        // A phone: the connection tab at 390 px.
        page.click("a[data-tab='connection']").await?;
        page.visible("#connection-title").await?;
        page.fit_to_content(390).await?;
        page.save_screenshot(&out.join("connection-390.png")).await?;
        Ok(())
    })
    .await
}
