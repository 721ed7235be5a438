//! Retention: a purge pass deletes what is past its time and never what is
//! still needed (open jobs and their conversations' texts, undelivered
//! deliveries, the conversation↔case and contact links); the settings and
//! sizes are visible on the API and /metrics.

use std::time::Duration;

use casebridge::retention::{run_pass, Settings};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_purge_deletes_what_is_past_its_time_and_keeps_what_is_needed,
    retention_settings_and_sizes_are_visible,
    a_text_purge_batch_is_sized_in_messages,
);

fn message(event: &str, conv: &str, message: &str, text: &str) -> Value {
    json!({
        "id": event, "type": "message.created",
        "conversation": {"id": conv, "channel": "web",
                         "contact": {"name": format!("Customer {conv}"), "email": format!("{conv}@retention.example")}},
        "message": {"id": message, "role": "customer", "text": text}
    })
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

async fn exec(app: &TestApp, sql: &str) {
    sqlx::query(sql).execute(app.db.pool()).await.unwrap();
}

const DAY_MS: i64 = 86_400_000;

async fn a_purge_deletes_what_is_past_its_time_and_keeps_what_is_needed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    // c-old: synced long ago. c-open: a job still retrying (Creatio down).
    app.send(
        &org.key,
        json!([
            message("e1", "c-old", "m1", "old text one"),
            message("e2", "c-old", "m2", "old text two")
        ]),
    )
    .await;
    let old = app.settled(&org.key, "c-old").await;
    assert_eq!(old["messages"]["written"], 2, "{old}");
    app.creatio_outage(5).await;
    app.send(
        &org.key,
        json!([message("e3", "c-open", "m1", "still waiting")]),
    )
    .await;
    // Deliveries as the sender leaves them: delivered, dead, pending.
    let now = casebridge::storage::now_ms();
    for (id, state) in [
        ("d-done", "delivered"),
        ("d-dead", "dead"),
        ("d-wait", "pending"),
    ] {
        exec(&app, &format!(
            "INSERT INTO deliveries (id, org_id, conversation_id, seq, dedupe_key, event_type, payload, state, attempts, \
             next_attempt_at, created_at, updated_at, delivered_at) VALUES ('{id}', '{}', 'c-old', 1, 'k-{id}', 'agent.reply', \
             '{{\"text\": \"reply {id}\"}}', '{state}', 1, 0, 0, 0, {})",
            org.id,
            if state == "delivered" { "0" } else { "NULL" }
        ))
        .await;
        exec(
            &app,
            &format!(
            "INSERT INTO delivery_attempts (id, delivery_id, org_id, at, url, status, latency_ms) \
             VALUES ('a-{id}', '{id}', '{}', 0, 'http://127.0.0.1:9/x', 500, 3)",
            org.id
        ),
        )
        .await;
    }
    // Everything is a year old now, the open job too.
    let long_ago = now - 365 * DAY_MS;
    for sql in [
        format!("UPDATE conversations SET updated_at = {long_ago}"),
        format!("UPDATE events SET received_at = {long_ago}"),
        format!("UPDATE timeline SET at = {long_ago}"),
        // (Not created_at: a job that old is given up on at its next failure.)
        format!("UPDATE jobs SET updated_at = {long_ago}, run_after = {long_ago}"),
        format!("UPDATE written_records SET written_at = {long_ago}"),
    ] {
        exec(&app, &sql).await;
    }
    let open_jobs = "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')";
    assert!(count(&app, open_jobs).await >= 1);
    let settings = Settings {
        batch: 1, // every kind takes several batches
        ..Settings::default()
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let pass = run_pass(&app.db, &settings, &stopped).await;
    assert_eq!(pass.error, None, "{pass:?}");
    let deleted = |kind: &str| {
        pass.deleted
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, n)| *n)
    };
    assert_eq!(deleted("conversation_texts"), Some(1), "{pass:?}");
    assert_eq!(deleted("messages"), Some(2), "{pass:?}");
    assert_eq!(deleted("deliveries"), Some(1), "{pass:?}");

    // Past their time: c-old's texts, events, timeline, finished jobs, the
    // echo guard's memory, the delivered delivery and its attempt.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM messages WHERE conversation_id = 'c-old'"
        )
        .await,
        0
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM events").await, 0);
    // (c-open's job, retrying meanwhile, writes new lines: not past their time.)
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM timeline WHERE at < {now}")
        )
        .await,
        0
    );
    let finished = sqlx::query("SELECT conversation_id, kind, state, updated_at FROM jobs WHERE state NOT IN ('pending', 'running') AND updated_at < $1")
        .bind(now)
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    let finished: Vec<String> = finished
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.get::<String, _>(0),
                r.get::<String, _>(1),
                r.get::<String, _>(2),
                r.get::<i64, _>(3)
            )
        })
        .collect();
    assert!(finished.is_empty(), "{finished:?} (now {now})");
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM written_records WHERE written_at < {now}")
        )
        .await,
        0
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM deliveries WHERE id = 'd-done'").await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id = 'd-done'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM conversations WHERE id = 'c-old' AND contact_name IS NULL \
                     AND contact_email IS NULL AND text_purged = 1"
        )
        .await,
        1
    );
    // Still needed: the open job, its conversation's text and contact, the
    // undelivered deliveries with their attempts, c-old's case link.
    assert!(count(&app, open_jobs).await >= 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM messages WHERE conversation_id = 'c-open'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM conversations WHERE id = 'c-open' AND contact_email IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM deliveries WHERE id IN ('d-dead', 'd-wait')"
        )
        .await,
        2
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM delivery_attempts").await,
        2
    );
    let (_, kept) = app.get("/v1/conversations/c-old", &org.key).await;
    assert_eq!(kept["case"]["id"], old["case"]["id"], "{kept}");
    assert_eq!(kept["case"]["created"], true, "{kept}");
    assert_eq!(kept["contact_id"], old["contact_id"], "{kept}");

    // The open job still runs once Creatio is back, its text whole.
    let open = app.settled(&org.key, "c-open").await;
    assert_eq!(
        open["messages"],
        json!({"received": 1, "written": 1}),
        "{open}"
    );
    // c-old talks again: its details come back, the same case takes it.
    app.send(
        &org.key,
        json!([message("e4", "c-old", "m3", "back again")]),
    )
    .await;
    let again = app.settled(&org.key, "c-old").await;
    assert_eq!(again["case"]["id"], old["case"]["id"], "{again}");
    assert_eq!(
        again["messages"],
        json!({"received": 1, "written": 1}),
        "{again}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM conversations WHERE id = 'c-old' AND text_purged = 0 \
                     AND contact_email IS NOT NULL"
        )
        .await,
        1
    );
    // A second pass finds nothing new past its time.
    let pass = run_pass(&app.db, &Settings::default(), &stopped).await;
    assert!(pass.deleted.iter().all(|(_, n)| *n == 0), "{pass:?}");
    app.finish().await;
}

async fn retention_settings_and_sizes_are_visible(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.retention.messages = Some(Duration::from_secs(14 * 86_400));
        c.retention.interval = Some(Duration::from_secs(3_600));
    })
    .await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.send(&org.key, json!([message("e1", "c1", "m1", "hello")]))
        .await;
    app.settled(&org.key, "c1").await;
    let (status, body) = app.get("/v1/retention", &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["settings"]["messages"], "14d", "{body}");
    assert_eq!(body["settings"]["timeline"], "90d", "{body}");
    assert_eq!(body["settings"]["jobs"], "7d", "{body}");
    assert_eq!(body["settings"]["purge_interval"], "1h", "{body}");
    assert!(
        body["sizes"]["database_bytes"].as_i64().unwrap() > 0,
        "{body}"
    );
    assert_eq!(body["sizes"]["rows"]["messages"], 1, "{body}");
    assert_eq!(body["sizes"]["rows"]["conversations"], 1, "{body}");
    // The purge ran at start: its pass is shown.
    assert!(body["last_purge"]["started_at"].is_string(), "{body}");
    // An org key is not the operator's.
    let (status, _) = app.get("/v1/retention", &org.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("casebridge_stored_rows{table=\"messages\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("casebridge_database_bytes"), "{metrics}");
    app.finish().await;
}

/// A batch of conversations' texts holds at most `limit` messages (at
/// least one conversation), so one batch never holds SQLite's writer for
/// the messages of `limit` whole conversations.
async fn a_text_purge_batch_is_sized_in_messages(backend: Backend) {
    use casebridge::storage::retention::purge_conversation_texts;
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    for c in ["c1", "c2", "c3"] {
        let events: Vec<Value> = (1..=3)
            .map(|i| message(&format!("{c}-e{i}"), c, &format!("m{i}"), "some text"))
            .collect();
        app.send(&org.key, Value::Array(events)).await;
        app.settled(&org.key, c).await;
    }
    let cutoff = casebridge::storage::now_ms() + 1;
    // 3 messages fit in 4; the next conversation's 3 would not.
    let first = purge_conversation_texts(&app.db, cutoff, 4).await.unwrap();
    assert_eq!(
        (first.conversations, first.messages, first.more),
        (1, 3, true),
        "{first:?}"
    );
    // A conversation larger than the batch still goes, alone.
    let second = purge_conversation_texts(&app.db, cutoff, 2).await.unwrap();
    assert_eq!(
        (second.conversations, second.messages, second.more),
        (1, 3, true),
        "{second:?}"
    );
    let last = purge_conversation_texts(&app.db, cutoff, 100)
        .await
        .unwrap();
    assert_eq!(
        (last.conversations, last.messages, last.more),
        (1, 3, false),
        "{last:?}"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM messages").await, 0);
    app.finish().await;
}
