//! The Chatwoot connector end to end: the Chatwoot stand-in (Chatwoot
//! v4.15.1's payloads, signing and API answers) sends its account webhook
//! to casebridge over HTTP, casebridge writes the Creatio emulator's case,
//! and agents' replies and closures go back through Chatwoot's API.

use std::time::{Duration, Instant};

use chatwoot_standin::{Contact, Inbox, StandIn};
use creatio::ids::case_status;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{Backend, Org, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_chatwoot_conversation_becomes_a_case_and_replies_go_back_once,
    bad_tokens_signatures_and_settings_are_refused,
    a_reply_waits_while_chatwoot_is_down,
);

const TOKEN: &str = "cw-agent-token-0123456789";
const SECRET: &str = "cw-webhook-secret";

/// An org connected to the emulator's Creatio (with its processes) and to
/// a Chatwoot stand-in whose webhook points at casebridge, signed.
async fn chatwoot_org(app: &TestApp) -> (Org, StandIn, String) {
    let org = app.create_org("Acme").await;
    let mut body = app.connection_body();
    body["resolved_status_id"] = json!(case_status::RESOLVED.to_string());
    let (status, answer) = app.post("/v1/creatio/connection", &org.key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    crate::two_way::install_processes(app, &org, false).await;
    let chatwoot = StandIn::start(TOKEN).await.unwrap();
    let (status, saved) = app
        .put(
            "/v1/connectors/chatwoot",
            &org.key,
            json!({"base_url": chatwoot.url(), "account_id": 1, "api_token": TOKEN,
                   "webhook_secret": SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    assert_eq!(saved["report"]["ok"], true, "{saved}");
    let connector = &saved["connector"];
    assert_eq!(connector["api_token"], "••••••••6789", "{connector}");
    assert_eq!(
        connector["events_to_tick"],
        json!([
            "message_created",
            "conversation_status_changed",
            "conversation_updated"
        ])
    );
    let url = connector["webhook_url"].as_str().unwrap().to_string();
    assert!(url.contains("/v1/connectors/chatwoot/cbc_"), "{url}");
    chatwoot.set_webhook(&url, Some(SECRET));
    (org, chatwoot, url)
}

fn maria() -> Contact {
    Contact {
        name: "Maria Lopez".into(),
        email: Some("maria@example.com".into()),
        phone: Some("+34600111222".into()),
    }
}

/// casebridge's answer to the stand-in's last webhook call.
fn last_answer(chatwoot: &StandIn) -> Value {
    let sent = chatwoot.sent();
    let last = sent.last().expect("a webhook was sent");
    serde_json::from_str(last.answer.as_deref().unwrap_or("null")).unwrap_or(Value::Null)
}

/// Waits until `done` holds for the stand-in's webhook calls.
async fn wait_sent(
    chatwoot: &StandIn,
    what: &str,
    done: impl Fn(&[chatwoot_standin::Sent]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&chatwoot.sent()) {
        assert!(
            Instant::now() < deadline,
            "never: {what}; sent {:?}",
            chatwoot.sent()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn titles(list: &[creatio::models::Activity]) -> Vec<String> {
    list.iter()
        .map(|a| a.title.clone().unwrap_or_default())
        .collect()
}

async fn a_chatwoot_conversation_becomes_a_case_and_replies_go_back_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, chatwoot, _) = chatwoot_org(&app).await;
    let conv = chatwoot.open_conversation(Inbox::website_with_bot(), maria());
    let id = format!("cw-{conv}");

    assert_eq!(
        chatwoot
            .customer_says(conv, "Hi, where is my order #1042? It should have arrived last week and nobody answers my e-mails.")
            .await,
        Some(200)
    );
    assert_eq!(last_answer(&chatwoot)["status"], "accepted");
    // Chatwoot sends it again (a redelivery): nothing twice.
    assert_eq!(chatwoot.resend_last().await, Some(200));
    assert_eq!(
        last_answer(&chatwoot)["status"],
        "duplicate",
        "{:?}",
        chatwoot.sent()
    );
    chatwoot
        .bot_says(conv, "Let me get a person to look at the refund.")
        .await;
    // A private note stays in Chatwoot.
    chatwoot.private_note(conv, "VIP customer").await;
    assert_eq!(last_answer(&chatwoot)["status"], "ignored");
    // The bot hands off: conversation_status_changed and
    // conversation_updated, one hand-off.
    assert_eq!(chatwoot.bot_hands_off(conv).await, [Some(200), Some(200)]);
    let sent = chatwoot.sent();
    let answers: Vec<Value> = sent[sent.len() - 2..]
        .iter()
        .map(|s| serde_json::from_str(s.answer.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(
        answers[0]["events"][0]["id"], "cw-handoff-123",
        "{answers:?}"
    );
    assert_eq!(answers[1]["status"], "duplicate", "{answers:?}");

    let settled = app.settled(&org.key, &id).await;
    assert_eq!(settled["state"], "handed_off", "{settled}");
    assert_eq!(settled["channel"], "web");
    let case_id = Uuid::parse_str(settled["case"]["id"].as_str().unwrap()).unwrap();
    let activities = crate::sync::activities(&app, case_id).await;
    assert_eq!(
        titles(&activities),
        [
            "Customer: Hi, where is my order #1042? It should have arrived last week and nobody answers my e-mails.",
            "AI: Let me get a person to look at the refund.",
            "Hand-off: The Chatwoot agent bot handed the conversation to a person"
        ],
        "in order, with the hand-off note"
    );
    // Chatwoot sends no language or sentiment: casebridge detects them.
    let note = activities[2].notes.clone().unwrap_or_default();
    assert!(
        note.contains("Language: English (en, detected)")
            && note.contains("Sentiment: ")
            && note.matches("detected)").count() == 2,
        "{note}"
    );
    let case: creatio::models::Case = app.creatio().get(case_id).await.unwrap();
    assert!(
        case.symptoms
            .as_deref()
            .unwrap_or_default()
            .contains("Let me get a person to look at the refund."),
        "the bot's last message is the summary: {:?}",
        case.symptoms
    );
    crate::two_way::calls_settled(&app, &org, &id, 3).await;
    let written = activities.len();

    // An agent answers in Creatio: one outgoing message in Chatwoot, and
    // its own message_created is not sent back.
    app.emulator_op(
        Method::POST,
        "agent-reply",
        Some(json!({"case_id": case_id, "text": "<p>Your refund is on its way.</p>"})),
    )
    .await;
    wait_sent(&chatwoot, "the reply's own message_created", |sent| {
        sent.iter()
            .any(|s| s.event == "message_created" && s.body.contains("casebridge:msg_"))
    })
    .await;
    let echo = chatwoot
        .sent()
        .into_iter()
        .find(|s| s.body.contains("casebridge:msg_"))
        .unwrap();
    assert_eq!(echo.status, Some(200));
    assert!(
        echo.answer.as_deref().unwrap().contains("itself"),
        "{echo:?}"
    );
    let messages = chatwoot.conversation(conv).unwrap().messages;
    let outgoing: Vec<_> = messages
        .iter()
        .filter(|m| m.content == "Your refund is on its way.")
        .collect();
    assert_eq!(outgoing.len(), 1, "{messages:?}");
    assert_eq!(outgoing[0].message_type, "outgoing");
    assert_eq!(outgoing[0].content_attributes["casebridge"], true);

    // The agent closes the case: Chatwoot's conversation is resolved, and
    // Chatwoot's two status webhooks are casebridge's own doing.
    app.emulator_op(
        Method::POST,
        "case-status",
        Some(json!({"case_id": case_id, "status": "Closed"})),
    )
    .await;
    wait_sent(&chatwoot, "the resolution's webhooks", |sent| {
        sent.iter()
            .filter(|s| s.event.starts_with("conversation_") && s.body.contains("\"resolved\""))
            .count()
            == 2
    })
    .await;
    assert_eq!(chatwoot.conversation(conv).unwrap().status, "resolved");
    for s in chatwoot
        .sent()
        .iter()
        .filter(|s| s.body.contains("\"resolved\""))
    {
        assert!(
            s.answer.as_deref().unwrap().contains("itself"),
            "echo of casebridge's own resolution: {s:?}"
        );
    }
    let log = crate::two_way::deliveries_settled(&app, &org).await;
    let mut kinds: Vec<(&str, &str)> = log
        .iter()
        .map(|d| (d["type"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("agent.reply", "delivered"),
            ("case.linked", "delivered"),
            ("conversation.resolved", "delivered")
        ]
    );
    let calls: Vec<String> = chatwoot
        .calls()
        .iter()
        .map(|c| format!("{} {} {}", c.method, c.path, c.status))
        .collect();
    assert_eq!(
        calls,
        [
            "GET /api/v1/profile 200",
            "POST /api/v1/accounts/1/conversations/123/messages 200",
            "POST /api/v1/accounts/1/conversations/123/toggle_status 200"
        ]
    );
    let settled = app.settled(&org.key, &id).await;
    assert_eq!(settled["state"], "resolved");
    assert_eq!(
        crate::sync::activities(&app, case_id).await.len(),
        written + 1,
        "the agent's reply and nothing more"
    );
    let (_, delivery) = app.get("/v1/delivery", &org.key).await;
    assert_eq!(delivery["platform"], "chatwoot", "{delivery}");
    chatwoot.shutdown().await;
    app.finish().await;
}

async fn bad_tokens_signatures_and_settings_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (org, chatwoot, url) = chatwoot_org(&app).await;
    let conv = chatwoot.open_conversation(Inbox::website_with_bot(), maria());
    chatwoot.customer_says(conv, "hello").await;
    let payload = chatwoot.sent().last().unwrap().body.clone();
    let http = reqwest::Client::new();
    let post = |url: String, headers: Vec<(&'static str, String)>| {
        let mut r = http
            .post(url)
            .header("content-type", "application/json")
            .body(payload.replace("hello", "forged"));
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    let unknown = url.replace("cbc_", "cbc_x");
    let r = post(unknown, vec![]).await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("webhook URL again"));
    let r = post(url.clone(), vec![]).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("X-Chatwoot-Signature"));
    // A wrong secret, and the right one on a timestamp 10 minutes old.
    let forged = payload.replace("hello", "forged");
    let now = chrono::Utc::now().timestamp();
    for (secret, at, says) in [
        ("not-the-secret", now, "does not match"),
        (SECRET, now - 600, "replay"),
    ] {
        let at = at.to_string();
        let signature = chatwoot_standin::sign(secret, &at, &forged);
        let r = post(
            url.clone(),
            vec![
                ("x-chatwoot-signature", signature),
                ("x-chatwoot-timestamp", at),
            ],
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    let settled = app.settled(&org.key, &format!("cw-{conv}")).await;
    assert_eq!(
        settled["messages"]["received"], 1,
        "nothing forged stored: {settled}"
    );

    // Settings: bad fields, a refused token, a wrong account.
    let base = chatwoot.url().to_string();
    let (status, e) = app
        .put(
            "/v1/connectors/chatwoot",
            &org.key,
            json!({"base_url": format!("{base}/app/accounts/1/dashboard"), "account_id": 0, "handoff": "soon"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let fields: Vec<&str> = e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["base_url", "account_id", "handoff"], "{e}");
    let (status, e) = app
        .put(
            "/v1/connectors/chatwoot",
            &org.key,
            json!({"base_url": base, "account_id": 1, "api_token": "wrong-token-0000"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused the API access token"),
        "{e}"
    );
    assert_eq!(e["report"]["checks"][1]["status"], "skip", "{e}");
    let (status, e) = app
        .put(
            "/v1/connectors/chatwoot",
            &org.key,
            json!({"base_url": base, "account_id": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("their accounts: 1 (Acme Inc)"),
        "{e}"
    );
    // Nothing changed: the saved connector still works.
    let (_, read) = app.get("/v1/connectors/chatwoot", &org.key).await;
    assert_eq!(read["account_id"], 1, "{read}");
    assert_eq!(read["webhook_secret_set"], true);
    // Only the connector's inboxes: a conversation of another is ignored.
    let (status, saved) = app
        .put(
            "/v1/connectors/chatwoot",
            &org.key,
            json!({"base_url": base, "account_id": 1, "inbox_ids": [99]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(chatwoot.customer_says(conv, "other inbox").await, Some(200));
    assert_eq!(
        last_answer(&chatwoot)["reason"],
        "inbox 3 is not among the connector's inboxes"
    );
    let settled = app.settled(&org.key, &format!("cw-{conv}")).await;
    assert_eq!(settled["messages"]["received"], 1, "{settled}");
    // One chat platform per org.
    let (status, e) = app
        .put(
            "/v1/delivery",
            &org.key,
            json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    // Removing the connector retires its webhook URL.
    let (status, _) = app.delete("/v1/connectors/chatwoot", &org.key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        chatwoot.customer_says(conv, "still there?").await,
        Some(404)
    );
    let (status, _) = app.get("/v1/connectors/chatwoot", &org.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    chatwoot.shutdown().await;
    app.finish().await;
}

async fn a_reply_waits_while_chatwoot_is_down(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        // Retries far enough apart to bring Chatwoot back in between.
        c.delivery.delays = vec![Duration::from_millis(500); 6];
    })
    .await;
    let (org, chatwoot, _) = chatwoot_org(&app).await;
    let conv = chatwoot.open_conversation(
        Inbox {
            id: 4,
            name: "Support API".into(),
            channel_type: "Channel::Api".into(),
            bot: false,
        },
        maria(),
    );
    let id = format!("cw-{conv}");
    chatwoot.customer_says(conv, "Is anyone there?").await;
    let settled = app.settled(&org.key, &id).await;
    assert_eq!(settled["channel"], "api");
    let case_id = settled["case"]["id"].as_str().unwrap().to_string();
    crate::two_way::calls_settled(&app, &org, &id, 1).await;

    chatwoot.set_down(true);
    app.emulator_op(
        Method::POST,
        "agent-reply",
        Some(json!({"case_id": case_id, "text": "Yes, I am here."})),
    )
    .await;
    // It fails on 503 and waits for its retry.
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivery = loop {
        let (_, body) = app.get("/v1/deliveries?status=pending", &org.key).await;
        let failed = body["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["type"] == "agent.reply" && d["last_status"] == 503)
            .cloned();
        if let Some(d) = failed {
            break d;
        }
        assert!(Instant::now() < deadline, "never failed: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    chatwoot.set_down(false);
    let log = crate::two_way::deliveries_settled(&app, &org).await;
    let reply = log.iter().find(|d| d["id"] == delivery["id"]).unwrap();
    assert_eq!(reply["state"], "delivered", "{reply}");
    let (_, one) = app
        .get(
            &format!("/v1/deliveries/{}", delivery["id"].as_str().unwrap()),
            &org.key,
        )
        .await;
    let statuses: Vec<i64> = one["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&503), "{one}");
    assert_eq!(statuses.last(), Some(&200), "{one}");
    let replies: Vec<_> = chatwoot
        .conversation(conv)
        .unwrap()
        .messages
        .into_iter()
        .filter(|m| m.content == "Yes, I am here.")
        .collect();
    assert_eq!(replies.len(), 1, "delivered once");
    chatwoot.shutdown().await;
    app.finish().await;
}
