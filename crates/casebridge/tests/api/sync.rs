//! The sync engine end to end: events in, cases and activities in the
//! emulator, in order, exactly once, through outages and expired tokens.

use creatio::ids::{case_origin, case_status, sys_admin_unit};
use creatio::models::{Activity, Case, Contact};
use creatio::query::{col, lookup, Query};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    every_conversation_mode_end_to_end,
    handoff_only_mode_writes_the_transcript_at_handoff,
    replayed_events_change_nothing,
    contacts_are_matched_by_email_then_phone,
    a_differently_cased_email_finds_the_contact_on_a_case_sensitive_tenant,
    a_phone_written_another_way_finds_the_contact,
    resolution_without_a_resolved_status_warns,
    a_burst_over_many_conversations_arrives_complete_and_in_order,
    a_conversation_failing_inside_a_shared_batch_fails_alone,
    a_group_failing_midway_leaves_nothing_duplicated_or_lost,
    an_outage_delays_but_loses_nothing,
    rate_limits_and_short_tokens_fail_no_job,
    dead_credentials_pause_the_org_until_test_and_save,
    bad_events_are_refused_and_nothing_is_stored,
    returning_email_contacts_append_to_their_open_case,
    disconnect_cancels_pending_jobs_and_keeps_them,
    metrics_count_events_and_jobs,
);

fn msg(event: &str, conv: &str, message: &str, role: &str, text: &str, minute: u32) -> Value {
    json!({
        "id": event, "type": "message.created",
        "occurred_at": format!("2026-11-22T10:{minute:02}:00Z"),
        "conversation": {"id": conv, "channel": "web", "url": format!("https://chat.example.com/inbox/{conv}"),
                         "contact": {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+15550100"}},
        "message": {"id": message, "role": role, "text": text}
    })
}

fn handoff(event: &str, conv: &str) -> Value {
    json!({"id": event, "type": "conversation.handoff", "occurred_at": "2026-11-22T10:30:00Z",
           "conversation": {"id": conv, "channel": "web"},
           "handoff": {"summary": "Printer is on fire; AI could not help.", "reason": "needs a human",
                       "language": "en", "sentiment": "negative"}})
}

fn resolved(event: &str, conv: &str) -> Value {
    json!({"id": event, "type": "conversation.resolved", "conversation": {"id": conv}})
}

/// The case's activities in Creatio, oldest first.
pub(crate) async fn activities(app: &TestApp, case_id: Uuid) -> Vec<Activity> {
    app.creatio()
        .list(
            Query::new()
                .filter(lookup("Case").eq(case_id))
                .order_by_asc("CreatedOn")
                .order_by_asc("StartDate"),
        )
        .await
        .unwrap()
}

/// A customer's first message, from `contact`.
fn with_contact(event: &str, conv: &str, contact: Value) -> Value {
    let mut e = msg(event, conv, "m1", "customer", "hello", 1);
    e["conversation"]["contact"] = contact;
    e
}

/// The Contact on each conversation's case, once settled.
async fn case_contacts(app: &TestApp, key: &str, conversations: &[&str]) -> Vec<Uuid> {
    let mut contacts = Vec::new();
    for c in conversations {
        let conv = app.settled(key, c).await;
        let case: Case = app.creatio().get(case_id_of(&conv)).await.unwrap();
        contacts.push(
            case.contact_id
                .unwrap_or_else(|| panic!("{c} has no contact")),
        );
    }
    contacts
}

fn titles(list: &[Activity]) -> Vec<String> {
    list.iter()
        .map(|a| a.title.clone().unwrap_or_default())
        .collect()
}

/// The `key` text of each object in the array `list`.
fn texts<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap())
        .collect()
}

fn case_id_of(conv: &Value) -> Uuid {
    Uuid::parse_str(conv["case"]["id"].as_str().unwrap()).unwrap()
}

async fn connect_with(app: &TestApp, key: &str, extra: Value) {
    let mut body = app.connection_body();
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, answer) = app.post("/v1/creatio/connection", key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

async fn sarah(app: &TestApp) -> Uuid {
    let found: Vec<Contact> = app
        .creatio()
        .list(Query::new().filter(col("Name").eq("Sarah Lee")))
        .await
        .unwrap();
    found[0].id.unwrap()
}

async fn every_conversation_mode_end_to_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let owner = sarah(&app).await;
    connect_with(
        &app,
        &org.key,
        json!({
            "default_owner_id": owner.to_string(),
            "default_group_id": sys_admin_unit::CASE_GROUP_DEFAULT.to_string(),
            "resolved_status_id": case_status::RESOLVED.to_string(),
        }),
    )
    .await;
    app.send(
        &org.key,
        json!([
            msg(
                "e1",
                "c_42",
                "m1",
                "customer",
                "My printer is on fire\nIt smells too.",
                1
            ),
            msg(
                "e2",
                "c_42",
                "m2",
                "ai",
                "Have you tried turning it off?",
                2
            ),
        ]),
    )
    .await;
    let conv = app.settled(&org.key, "c_42").await;
    let case_id = case_id_of(&conv);
    assert_eq!(conv["case"]["created"], true, "{conv}");
    let number = conv["case"]["number"].as_str().unwrap().to_string();
    assert!(number.starts_with("SR"), "{conv}");

    let case: Case = app.creatio().get(case_id).await.unwrap();
    assert_eq!(case.subject.as_deref(), Some("My printer is on fire"));
    assert_eq!(case.origin_id, Some(case_origin::CHAT));
    assert_eq!(case.owner_id, Some(owner));
    assert_eq!(case.group_id, Some(sys_admin_unit::CASE_GROUP_DEFAULT));
    assert!(case
        .symptoms
        .as_deref()
        .unwrap()
        .contains("https://chat.example.com/inbox/c_42"));
    let contact: Contact = app
        .creatio()
        .get(case.contact_id.expect("a contact was linked"))
        .await
        .unwrap();
    assert_eq!(contact.email.as_deref(), Some("ada@example.com"));
    assert_eq!(contact.name.as_deref(), Some("Ada Lovelace"));

    app.send(
        &org.key,
        json!([
            msg("e3", "c_42", "m3", "customer", "Yes. Still burning.", 3),
            handoff("e4", "c_42"),
        ]),
    )
    .await;
    app.settled(&org.key, "c_42").await;
    let list = activities(&app, case_id).await;
    assert_eq!(
        titles(&list),
        vec![
            "Customer: My printer is on fire",
            "AI: Have you tried turning it off?",
            "Customer: Yes. Still burning.",
            "Hand-off: needs a human",
        ],
    );
    assert!(list[0]
        .notes
        .as_deref()
        .unwrap()
        .contains("View conversation: https://chat.example.com/inbox/c_42"));
    assert_eq!(
        list[0].notes.as_deref().unwrap().lines().next(),
        Some("My printer is on fire")
    );
    let note = list[3].notes.as_deref().unwrap();
    for part in [
        "Summary: Printer is on fire",
        "Reason: needs a human",
        "Language: en",
        "Sentiment: negative",
        "View conversation",
    ] {
        assert!(note.contains(part), "{part} in {note}");
    }
    assert!(list.iter().all(|a| a.contact_id == case.contact_id));
    let case: Case = app.creatio().get(case_id).await.unwrap();
    assert!(
        case.symptoms
            .as_deref()
            .unwrap()
            .starts_with("Printer is on fire"),
        "the summary replaces the first message"
    );

    app.send(&org.key, resolved("e5", "c_42")).await;
    let conv = app.settled(&org.key, "c_42").await;
    assert_eq!(conv["state"], "resolved");
    let case: Case = app.creatio().get(case_id).await.unwrap();
    assert_eq!(case.status_id, Some(case_status::RESOLVED));
    assert_eq!(conv["messages"], json!({"received": 3, "written": 3}));
    let timeline = conv["timeline"].to_string();
    assert!(
        timeline.contains(&format!("Created case {number}")),
        "{timeline}"
    );
    assert!(conv["jobs"]["done"].as_i64().unwrap() == 5, "{conv}");
    app.finish().await;
}

async fn handoff_only_mode_writes_the_transcript_at_handoff(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    connect_with(&app, &org.key, json!({"create_case_only_on_handoff": true})).await;
    app.send(
        &org.key,
        json!([
            msg("e1", "c1", "m1", "ai", "Hi! How can I help?", 1),
            msg("e2", "c1", "m2", "customer", "Refund please", 2),
            msg("e3", "c1", "m3", "ai", "Let me check.", 3),
        ]),
    )
    .await;
    let conv = app.settled(&org.key, "c1").await;
    assert_eq!(conv["mode"], "handoff_only");
    assert_eq!(conv["case"]["created"], false);
    assert!(
        !app.creatio()
            .exists("Case", case_id_of(&conv))
            .await
            .unwrap(),
        "no case before hand-off"
    );
    assert_eq!(conv["messages"]["written"], 0);

    app.send(&org.key, handoff("e4", "c1")).await;
    let conv = app.settled(&org.key, "c1").await;
    let case: Case = app.creatio().get(case_id_of(&conv)).await.unwrap();
    assert_eq!(
        case.subject.as_deref(),
        Some("Refund please"),
        "subject from the first customer message"
    );
    assert_eq!(
        titles(&activities(&app, case_id_of(&conv)).await),
        vec![
            "AI: Hi! How can I help?",
            "Customer: Refund please",
            "AI: Let me check.",
            "Hand-off: needs a human"
        ],
    );
    assert_eq!(conv["state"], "handed_off");
    app.finish().await;
}

async fn replayed_events_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let batch = json!([
        msg("e1", "c1", "m1", "customer", "one", 1),
        msg("e2", "c1", "m2", "ai", "two", 2),
    ]);
    let first = app.send(&org.key, batch.clone()).await;
    assert_eq!(
        (first["accepted"].as_i64(), first["duplicates"].as_i64()),
        (Some(2), Some(0))
    );
    app.settled(&org.key, "c1").await;
    let again = app.send(&org.key, batch).await;
    assert_eq!(
        (again["accepted"].as_i64(), again["duplicates"].as_i64()),
        (Some(0), Some(2)),
        "{again}"
    );
    assert_eq!(again["events"][0]["status"], "duplicate");
    // The same message under a new event id is not written twice either,
    // nor an event repeated inside one request, nor a message carried by
    // two new events of one request.
    let repeats = app
        .send(
            &org.key,
            json!([
                msg("e9", "c1", "m1", "customer", "one", 1),
                msg("e3", "c1", "m3", "customer", "three", 3),
                msg("e3", "c1", "m3", "customer", "three", 3),
                msg("e4", "c1", "m3", "customer", "three", 3),
            ]),
        )
        .await;
    assert_eq!(
        texts(&repeats["events"], "status"),
        vec!["accepted", "accepted", "duplicate", "accepted"],
        "{repeats}"
    );
    let conv = app.settled(&org.key, "c1").await;
    assert_eq!(
        titles(&activities(&app, case_id_of(&conv)).await),
        vec!["Customer: one", "AI: two", "Customer: three"]
    );
    let lines = texts(&conv["timeline"], "summary");
    for repeat in ["Event e9 repeats message m1", "Event e4 repeats message m3"] {
        assert!(
            lines.iter().any(|l| l.starts_with(repeat)),
            "{repeat}: {lines:?}"
        );
    }
    assert_eq!(conv["messages"]["received"], 3, "{conv}");
    let cases = app
        .creatio()
        .count("Case", Some(col("Subject").eq("one")))
        .await
        .unwrap();
    assert_eq!(cases, 1);
    app.finish().await;
}

async fn contacts_are_matched_by_email_then_phone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let by_email = app
        .creatio()
        .create(&Contact {
            name: Some("Known Email".into()),
            email: Some("known@example.com".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let by_phone = app
        .creatio()
        .create(&Contact {
            name: Some("Known Phone".into()),
            mobile_phone: Some("+15557654".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let e1 = with_contact(
        "e1",
        "c1",
        json!({"name": "Someone", "email": "known@example.com"}),
    );
    let e2 = with_contact("e2", "c2", json!({"name": "Someone", "phone": "+15557654"}));
    let e3 = with_contact(
        "e3",
        "c3",
        json!({"name": "New Person", "email": "new@example.com"}),
    );
    app.send(&org.key, json!([e1, e2, e3])).await;
    let contacts = case_contacts(&app, &org.key, &["c1", "c2", "c3"]).await;
    assert_eq!(contacts[0], by_email.id.unwrap());
    assert_eq!(contacts[1], by_phone.id.unwrap());
    let created: Contact = app.creatio().get(contacts[2]).await.unwrap();
    assert_eq!(created.name.as_deref(), Some("New Person"));
    assert_eq!(
        app.creatio()
            .count("Contact", Some(col("Email").eq("known@example.com")))
            .await
            .unwrap(),
        1
    );
    app.finish().await;
}

/// A tenant on PostgreSQL compares text case-sensitively
/// (reference/creatio-evidence.md §5): the Contact stored as
/// `Known@Example.COM` is still the one for `known@example.com`, in a round
/// and on the per-job path (a hand-off), and no second Contact is made.
async fn a_differently_cased_email_finds_the_contact_on_a_case_sensitive_tenant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.emulator_op(
        Method::PUT,
        "settings",
        Some(json!({"collation": "case_sensitive"})),
    )
    .await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let known = app
        .creatio()
        .create(&Contact {
            name: Some("Known Email".into()),
            email: Some("Known@Example.COM".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let e1 = with_contact(
        "e1",
        "c1",
        json!({"name": "Someone", "email": "known@example.com"}),
    );
    let e2 = with_contact(
        "e2",
        "c2",
        json!({"name": "Someone", "email": "KNOWN@example.com"}),
    );
    app.send(&org.key, json!([e1, e2])).await;
    // The hand-off path (a conversation whose case is made at hand-off).
    let mut e3 = handoff("e3", "c3");
    e3["conversation"]["contact"] = json!({"name": "Someone", "email": "kNoWn@EXAMPLE.com"});
    app.send(&org.key, e3).await;
    let contacts = case_contacts(&app, &org.key, &["c1", "c2", "c3"]).await;
    assert_eq!(contacts, vec![known.id.unwrap(); 3]);
    let all: Vec<Contact> = app
        .creatio()
        .list(Query::new().filter(col("Name").eq("Someone")))
        .await
        .unwrap();
    assert!(all.is_empty(), "no second Contact: {all:?}");
    app.finish().await;
}

/// Creatio stores phones as people typed them (reference/creatio-evidence.md
/// §5): the seeded `+1 617 440 2498` is the platform's `+16174402498`, a
/// national `(213) 566-34-22` is `+1 213 566 3422`; a different number makes
/// a new Contact. No second Contact for anyone.
async fn a_phone_written_another_way_finds_the_contact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let grace: Vec<Contact> = app
        .creatio()
        .list(Query::new().filter(col("Name").eq("Grace Hopper")))
        .await
        .unwrap();
    let formatted = app
        .creatio()
        .create(&Contact {
            name: Some("Formatted Phone".into()),
            mobile_phone: Some("(213) 566-34-22".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events = Vec::new();
    for (conv, phone) in [
        ("c1", "+16174402498"),
        ("c2", "+1 213 566 3422"),
        ("c3", "+12135663499"),
    ] {
        let mut e = msg(&format!("e-{conv}"), conv, "m1", "customer", "hello", 1);
        e["conversation"]["contact"] = json!({"name": format!("Caller {conv}"), "phone": phone});
        events.push(e);
    }
    app.send(&org.key, Value::Array(events)).await;
    let contacts = case_contacts(&app, &org.key, &["c1", "c2", "c3"]).await;
    assert_eq!(Some(contacts[0]), grace[0].id, "the seeded contact");
    assert_eq!(Some(contacts[1]), formatted.id);
    let created: Contact = app.creatio().get(contacts[2]).await.unwrap();
    assert_eq!(created.name.as_deref(), Some("Caller c3"));
    let callers: Vec<Contact> = app
        .creatio()
        .list(Query::new().filter(col("Name").starts_with("Caller")))
        .await
        .unwrap();
    assert_eq!(callers.len(), 1, "only the unknown number made a Contact");
    app.finish().await;
}

async fn resolution_without_a_resolved_status_warns(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.send(
        &org.key,
        json!([
            msg("e1", "c1", "m1", "customer", "hi", 1),
            resolved("e2", "c1")
        ]),
    )
    .await;
    let conv = app.settled(&org.key, "c1").await;
    assert_eq!(conv["state"], "resolved");
    let warning = conv["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "warning")
        .expect("a warning");
    assert!(
        warning["summary"]
            .as_str()
            .unwrap()
            .contains("no Resolved Status ID"),
        "{warning}"
    );
    let case: Case = app.creatio().get(case_id_of(&conv)).await.unwrap();
    assert_eq!(case.status_id, Some(case_status::NEW));
    app.finish().await;
}

async fn a_burst_over_many_conversations_arrives_complete_and_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    // 500 messages over 50 conversations, interleaved, in 5 requests.
    let mut all = Vec::new();
    for i in 0..10u32 {
        for c in 0..50 {
            let role = if i == 0 || i % 2 == 0 {
                "customer"
            } else {
                "ai"
            };
            all.push(msg(
                &format!("e{c}-{i}"),
                &format!("burst-{c}"),
                &format!("m{i}"),
                role,
                &format!("message {i:02}"),
                i,
            ));
        }
    }
    for chunk in all.chunks(100) {
        app.send(&org.key, Value::Array(chunk.to_vec())).await;
    }
    for c in 0..50 {
        let conv = app.settled(&org.key, &format!("burst-{c}")).await;
        let got = titles(&activities(&app, case_id_of(&conv)).await);
        let expected: Vec<String> = (0..10)
            .map(|i| {
                format!(
                    "{}: message {i:02}",
                    if i == 0 || i % 2 == 0 {
                        "Customer"
                    } else {
                        "AI"
                    }
                )
            })
            .collect();
        assert_eq!(got, expected, "conversation burst-{c}");
    }
    assert_eq!(
        app.creatio()
            .count("Activity", Some(col("Title").contains("message ")))
            .await
            .unwrap(),
        500
    );
    let stats = app.emulator.stats();
    assert!(stats.batch_operations > 0, "writes were batched: {stats:?}");
    let activity_requests = stats.odata_requests;
    assert!(
        activity_requests < 500,
        "fewer Creatio requests than messages: {activity_requests}"
    );
    app.finish().await;
}

/// Conversations share `$batch` requests, each its own atomic group: one
/// whose case create fails (an earlier run made the case and died before
/// recording it) has nothing of its group kept, runs again on its own and
/// ends complete, in order, once; the others are not held back.
async fn a_conversation_failing_inside_a_shared_batch_fails_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    let made_earlier = casebridge::sync::ids::case_id(&org.id, &"shared-0".into());
    app.creatio()
        .create(&Case {
            id: Some(made_earlier),
            subject: Some("made by an earlier run".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut all = Vec::new();
    for i in 0..3u32 {
        for c in 0..5 {
            all.push(msg(
                &format!("s{c}-{i}"),
                &format!("shared-{c}"),
                &format!("m{i}"),
                "customer",
                &format!("line {i}"),
                i,
            ));
        }
    }
    app.send(&org.key, Value::Array(all)).await;
    for c in 0..5 {
        let conv = app.settled(&org.key, &format!("shared-{c}")).await;
        assert_eq!(conv["jobs"]["done"], 3, "shared-{c}: {conv}");
        assert_eq!(
            titles(&activities(&app, case_id_of(&conv)).await),
            vec!["Customer: line 0", "Customer: line 1", "Customer: line 2"],
            "shared-{c}"
        );
        if c == 0 {
            assert_eq!(case_id_of(&conv), made_earlier);
            let lines = conv["timeline"].to_string();
            assert!(
                lines.contains("retrying"),
                "the failed group was retried: {lines}"
            );
        }
    }
    assert_eq!(
        app.creatio()
            .count("Activity", Some(col("Title").contains("line ")))
            .await
            .unwrap(),
        15
    );
    let stats = app.emulator.stats();
    assert!(stats.batch_operations >= 15, "one shared batch: {stats:?}");
    app.finish().await;
}

/// Atomicity groups are not transactions (reference/creatio-evidence.md §3,
/// the emulator's default): a conversation's group that fails on its second
/// activity leaves the first committed and the third never run. The ids are
/// deterministic, so the retry finds what exists and writes what is missing:
/// nothing duplicated, nothing lost, the rest in order.
async fn a_group_failing_midway_leaves_nothing_duplicated_or_lost(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.send(&org.key, msg("e0", "mid", "m0", "customer", "line 0", 0))
        .await;
    let case = case_id_of(&app.settled(&org.key, "mid").await);
    // A run that died after writing m2's activity, before recording it.
    let m2 = casebridge::sync::ids::activity_id(&org.id, &"mid".into(), &"m2".into());
    app.creatio()
        .create(&Activity {
            id: Some(m2),
            title: Some("Customer: line 2".into()),
            case_id: Some(case),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut all = Vec::new();
    for i in 1..=3u32 {
        all.push(msg(
            &format!("e{i}"),
            "mid",
            &format!("m{i}"),
            "customer",
            &format!("line {i}"),
            i,
        ));
        for c in 0..3 {
            all.push(msg(
                &format!("o{c}-{i}"),
                &format!("other-{c}"),
                &format!("m{i}"),
                "customer",
                &format!("other {i}"),
                i,
            ));
        }
    }
    app.send(&org.key, Value::Array(all)).await;
    let conv = app.settled(&org.key, "mid").await;
    assert_eq!(
        conv["messages"],
        json!({"received": 4, "written": 4}),
        "{conv}"
    );
    let written = activities(&app, case).await;
    let ids: Vec<Uuid> = written.iter().filter_map(|a| a.id).collect();
    let expected: Vec<Uuid> = (0..4)
        .map(|i| {
            casebridge::sync::ids::activity_id(&org.id, &"mid".into(), &format!("m{i}").into())
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(sorted, want, "each message once: {:?}", titles(&written));
    // The ones casebridge wrote now came in message order.
    let ours: Vec<String> = titles(&written)
        .into_iter()
        .filter(|t| t != "Customer: line 2")
        .collect();
    assert_eq!(
        ours,
        ["Customer: line 0", "Customer: line 1", "Customer: line 3"]
    );
    for c in 0..3 {
        let other = app.settled(&org.key, &format!("other-{c}")).await;
        assert_eq!(
            other["messages"],
            json!({"received": 3, "written": 3}),
            "{other}"
        );
        assert_eq!(activities(&app, case_id_of(&other)).await.len(), 3);
    }
    app.finish().await;
}

async fn an_outage_delays_but_loses_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.send(&org.key, msg("e0", "c1", "m0", "customer", "before", 0))
        .await;
    app.settled(&org.key, "c1").await;
    emulator_fault(&app, json!({"kind": "outage", "duration_secs": 2})).await;
    let events: Vec<Value> = (1..=20)
        .map(|i| {
            msg(
                &format!("e{i}"),
                "c1",
                &format!("m{i}"),
                "customer",
                &format!("during {i:02}"),
                i,
            )
        })
        .collect();
    app.send(&org.key, Value::Array(events)).await;
    let conv = app.settled(&org.key, "c1").await;
    assert_eq!(
        conv["messages"],
        json!({"received": 21, "written": 21}),
        "{conv}"
    );
    assert!(conv["jobs"].get("dead").is_none(), "{conv}");
    let got = titles(&activities(&app, case_id_of(&conv)).await);
    let mut expected = vec!["Customer: before".to_string()];
    expected.extend((1..=20).map(|i| format!("Customer: during {i:02}")));
    assert_eq!(got, expected, "complete, in order, nothing twice");
    assert!(
        conv["timeline"].to_string().contains("retrying in"),
        "the outage is visible: {conv}"
    );
    app.finish().await;
}

async fn emulator_fault(app: &TestApp, fault: Value) {
    app.emulator_op(Method::POST, "faults", Some(fault)).await;
}

async fn rate_limits_and_short_tokens_fail_no_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.emulator_op(
        Method::PUT,
        "settings",
        Some(json!({"token_lifetime_secs": 1})),
    )
    .await;
    emulator_fault(
        &app,
        json!({"kind": "rate_limit", "retry_after_secs": 1, "duration_secs": 1.5}),
    )
    .await;
    for round in 0..3u32 {
        let events: Vec<Value> = (0..5u32)
            .map(|i| {
                let n = round * 5 + i;
                msg(
                    &format!("e{n}"),
                    "c1",
                    &format!("m{n}"),
                    "customer",
                    &format!("text {n:02}"),
                    n,
                )
            })
            .collect();
        app.send(&org.key, Value::Array(events)).await;
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    }
    let conv = app.settled(&org.key, "c1").await;
    assert_eq!(
        conv["messages"],
        json!({"received": 15, "written": 15}),
        "{conv}"
    );
    assert!(conv["jobs"].get("dead").is_none(), "{conv}");
    assert!(
        conv["timeline"].to_string().contains("429"),
        "the rate limit was met: {conv}"
    );
    assert!(
        app.emulator.stats().token_requests >= 3,
        "tokens expired and were renewed"
    );
    app.finish().await;
}

async fn dead_credentials_pause_the_org_until_test_and_save(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    // The secret is regenerated in Creatio and old tokens die.
    let new_secret = format!("regenerated-{}", Uuid::new_v4().simple());
    app.change_creatio_client(json!({"client_secret": new_secret}))
        .await;
    app.client_secret = new_secret.clone();
    app.emulator_op(Method::POST, "tokens/revoke", Some(json!({})))
        .await;
    app.send(
        &org.key,
        json!([
            msg("e1", "c1", "m1", "customer", "hello", 1),
            msg("e2", "c1", "m2", "customer", "anyone?", 2)
        ]),
    )
    .await;
    let c = app.connection_when(&org.key, "needs_attention").await;
    assert_eq!(c["status"], "needs_attention", "never paused: {c}");
    assert!(
        c["status_detail"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{c}"
    );
    let (_, conv) = app.get("/v1/conversations/c1", &org.key).await;
    assert_eq!(conv["jobs"]["pending"], 2, "jobs are kept: {conv}");
    // Events keep being accepted while paused.
    app.send(&org.key, msg("e3", "c1", "m3", "customer", "hello?", 3))
        .await;

    let (status, answer) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"client_secret": new_secret}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["connection"]["status"], "active");
    let conv = app.settled(&org.key, "c1").await;
    assert_eq!(
        titles(&activities(&app, case_id_of(&conv)).await),
        vec!["Customer: hello", "Customer: anyone?", "Customer: hello?"]
    );
    app.finish().await;
}

async fn bad_events_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    let (status, body) = app
        .post(
            "/v1/events",
            &org.key,
            msg("e1", "c1", "m1", "customer", "hi", 1),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "no connection yet: {body}");
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("Test & Save"));
    app.connect(&org.key).await;
    let good = msg("e1", "c1", "m1", "customer", "hi", 1);
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut v = good.clone();
    v["message"]["role"] = json!("bot");
    cases.push((v, "message.role"));
    let mut v = good.clone();
    v["message"]["text"] = json!(5);
    cases.push((v, "message.text"));
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("conversation");
    cases.push((v, "conversation"));
    let mut v = good.clone();
    v["message"]["text"] = json!("x".repeat(100_001));
    cases.push((v, "message.text"));
    let mut v = good.clone();
    v["type"] = json!("message.deleted");
    cases.push((v, "type"));
    // A bad event in a batch refuses the whole batch.
    cases.push((json!([good.clone(), {"id": "e2", "type": "conversation.handoff", "conversation": {"id": "c1"}}]), "events[1].handoff"));
    for (body, field) in cases {
        let (status, answer) = app.post("/v1/events", &org.key, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    // Invalid UTF-8 and an oversized body.
    let resp = app
        .http
        .post(format!("{}/v1/events", app.url))
        .bearer_auth(&org.key)
        .header("content-type", "application/json")
        .body(b"{\"id\": \"\xff\xfe\"}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let huge = vec![b' '; 17 * 1024 * 1024];
    let resp = app
        .http
        .post(format!("{}/v1/events", app.url))
        .bearer_auth(&org.key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = app
        .call(Method::GET, "/v1/conversations/c1", Some(&org.key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
    app.finish().await;
}

fn email_msg(event: &str, conv: &str, channel: &str, text: &str) -> Value {
    let mut m = msg(event, conv, "m1", "customer", text, 1);
    m["conversation"]["channel"] = json!(channel);
    m
}

async fn returning_email_contacts_append_to_their_open_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    connect_with(
        &app,
        &org.key,
        json!({"resolved_status_id": case_status::RESOLVED.to_string()}),
    )
    .await;
    app.send(
        &org.key,
        email_msg("e1", "mail-1", "email", "First problem"),
    )
    .await;
    let first = case_id_of(&app.settled(&org.key, "mail-1").await);
    app.send(&org.key, email_msg("e2", "mail-2", "email", "Follow-up"))
        .await;
    let second = app.settled(&org.key, "mail-2").await;
    assert_eq!(case_id_of(&second), first, "appended: {second}");
    assert!(second["timeline"]
        .to_string()
        .contains("Appended to the contact's open case"));
    assert_eq!(
        titles(&activities(&app, first).await),
        vec!["Customer: First problem", "Customer: Follow-up"]
    );

    // Web chats are not appended by default.
    app.send(&org.key, email_msg("e3", "chat-1", "web", "Chat question"))
        .await;
    assert_ne!(case_id_of(&app.settled(&org.key, "chat-1").await), first);

    // Once the case is resolved, a new e-mail opens a new case.
    app.send(&org.key, resolved("e4", "mail-1")).await;
    app.settled(&org.key, "mail-1").await;
    app.send(&org.key, email_msg("e5", "mail-3", "email", "New problem"))
        .await;
    assert_ne!(case_id_of(&app.settled(&org.key, "mail-3").await), first);

    // Configurable per channel: [] turns it off.
    let (status, answer) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"case_append_channels": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    app.send(&org.key, email_msg("e6", "mail-4", "email", "Another"))
        .await;
    let fourth = case_id_of(&app.settled(&org.key, "mail-4").await);
    let third = case_id_of(&app.settled(&org.key, "mail-3").await);
    assert_ne!(fourth, third);
    let (status, answer) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"case_append_channels": ["e mail"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // A channel name casebridge does not know is refused, with the list.
    let (status, answer) = app
        .patch(
            "/v1/creatio/connection",
            &org.key,
            json!({"case_append_channels": ["email", "fax"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["fields"][0]["field"], "case_append_channels",
        "{answer}"
    );
    let hint = answer["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("whatsapp"), "{hint}");
    let (_, now) = app.get("/v1/creatio/connection", &org.key).await;
    assert_eq!(now["case_append_channels"], json!([]), "{now}");
    app.finish().await;
}

async fn disconnect_cancels_pending_jobs_and_keeps_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    // Pause the org so jobs stay pending.
    app.change_creatio_client(json!({"active": false})).await;
    app.emulator_op(Method::POST, "tokens/revoke", Some(json!({})))
        .await;
    app.send(
        &org.key,
        json!([
            msg("e1", "c1", "m1", "customer", "one", 1),
            msg("e2", "c1", "m2", "customer", "two", 2)
        ]),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.get("/v1/creatio/connection", &org.key).await.1["status"] != "needs_attention" {
        assert!(std::time::Instant::now() < deadline, "never paused");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _) = app.delete("/v1/creatio/connection", &org.key).await;
    assert_eq!(status, StatusCode::OK);
    let (_, conv) = app.get("/v1/conversations/c1", &org.key).await;
    assert_eq!(
        conv["jobs"],
        json!({"cancelled": 2}),
        "cancelled, kept: {conv}"
    );
    assert_eq!(
        conv["messages"]["received"], 2,
        "the conversation and its messages are kept"
    );
    let (status, body) = app
        .post(
            "/v1/events",
            &org.key,
            msg("e3", "c1", "m3", "customer", "three", 3),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    app.finish().await;
}

async fn metrics_count_events_and_jobs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    app.send(
        &org.key,
        json!([
            msg("e1", "c1", "m1", "customer", "one", 1),
            msg("e2", "c1", "m2", "ai", "two", 2)
        ]),
    )
    .await;
    app.settled(&org.key, "c1").await;
    let text = app.metrics_text().await;
    for needle in [
        "casebridge_events_received_total{outcome=\"accepted\"}",
        "casebridge_jobs{state=\"done\"}",
        "casebridge_sync_job_runs_total{kind=\"message\",outcome=\"done\"}",
        "casebridge_sync_queue_lag_seconds_bucket",
        "casebridge_creatio_write_requests_total",
        "casebridge_connections{status=\"active\"}",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let build_info = format!(
        "casebridge_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        casebridge::COMMIT
    );
    assert!(
        text.contains(&build_info),
        "{build_info} missing from:\n{text}"
    );
    app.finish().await;
}
