//! The storage layer's promises, on both backends: a write transaction
//! wakes the workers only once it commits (and SQLite's writers take turns),
//! and the two outbox queues, jobs and deliveries: claim (a conversation's
//! first unfinished item only), lease, reap. The service runs with
//! `CASEBRIDGE_ROLE=api`, so no worker of its own claims what a test claims.

use std::time::Duration;

use casebridge::config::Role;
use casebridge::storage::{deliveries, jobs, outbox};
use serde_json::{json, Value};

use crate::helpers::{Backend, Org, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_write_wakes_the_workers_only_when_it_commits,
    jobs_are_claimed_in_order_leased_and_reaped,
    deliveries_are_claimed_in_order_leased_and_reaped,
    a_claimed_item_is_settled_once,
    a_backlog_in_one_org_takes_no_claims_from_another_whose_lane_has_room,
);

/// A service without workers, and a connected org.
async fn api_only(backend: Backend) -> (TestApp, Org) {
    let app = TestApp::spawn_with(backend, |c| c.role = Role::Api).await;
    let org = app.create_org("Acme").await;
    app.connect(&org.key).await;
    (app, org)
}

fn message(conv: &str, i: u32) -> Value {
    json!({
        "id": format!("{conv}-e{i}"), "type": "message.created",
        "conversation": {"id": conv, "channel": "web", "contact": {"email": "ada@example.com"}},
        "message": {"id": format!("m{i}"), "role": "customer", "text": format!("message {i}")}
    })
}

fn parsed(events: Value) -> Vec<casebridge::sync::events::Event> {
    casebridge::sync::events::parse_body(&events).expect("valid events")
}

const SHORT: Duration = Duration::from_millis(200);

async fn a_write_wakes_the_workers_only_when_it_commits(backend: Backend) {
    let (app, org) = api_only(backend).await;
    let db = &app.db.clone();

    let woken = db.jobs_queued();
    tokio::pin!(woken);
    woken.as_mut().enable();
    // Rolled back (dropped): nothing to wake anyone for.
    {
        let mut tx = db.write().await.unwrap();
        casebridge::sync::events::ingest_all(&mut tx, &org.id, &parsed(json!([message("a", 1)])))
            .await
            .unwrap();
    }
    assert!(
        tokio::time::timeout(SHORT, woken.as_mut()).await.is_err(),
        "a rolled-back write woke the job workers"
    );
    let mut tx = db.write().await.unwrap();
    casebridge::sync::events::ingest_all(&mut tx, &org.id, &parsed(json!([message("a", 2)])))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(SHORT, woken.as_mut()).await.is_err(),
        "the job workers were woken before the commit"
    );
    let deliveries_woken = db.deliveries_queued();
    tokio::pin!(deliveries_woken);
    deliveries_woken.as_mut().enable();
    tx.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("the commit woke the job workers");
    assert!(
        tokio::time::timeout(SHORT, deliveries_woken.as_mut())
            .await
            .is_err(),
        "queuing jobs woke the delivery senders"
    );

    // A queued delivery wakes the senders, on commit.
    let mut tx = db.write().await.unwrap();
    let queued = casebridge::deliver::queue(&mut tx, &org.id, &"a".into(), "reply:1", linked("a"))
        .await
        .unwrap();
    assert!(queued.is_some());
    tx.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), deliveries_woken)
        .await
        .expect("the commit woke the delivery senders");

    if backend == Backend::Sqlite {
        // SQLite has one writer: a second write waits for the first's turn.
        let first = db.write().await.unwrap();
        let second = tokio::spawn({
            let db = db.clone();
            async move { db.write().await.map(drop) }
        });
        tokio::time::sleep(SHORT).await;
        assert!(!second.is_finished(), "two SQLite writes at once");
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second write gets its turn")
            .unwrap()
            .unwrap();
    }
    app.finish().await;
}

async fn jobs_are_claimed_in_order_leased_and_reaped(backend: Backend) {
    let (app, org) = api_only(backend).await;
    let db = &app.db.clone();
    app.send(
        &org.key,
        json!([message("a", 1), message("a", 2), message("b", 1)]),
    )
    .await;
    let first_of = |claimed: &[jobs::Job]| {
        let mut v: Vec<(String, i64, i64)> = claimed
            .iter()
            .map(|j| (j.conversation_id.to_string(), j.seq, j.attempts))
            .collect();
        v.sort();
        v
    };

    let one = jobs::claim_batch(db, 60_000, 1, false).await.unwrap();
    assert_eq!(one.len(), 1, "a claim takes no more than its limit");
    jobs::unclaim(db, &[one[0].id.as_str()]).await.unwrap();

    // A lease that has run out already, as if the worker died at once.
    let claimed = jobs::claim_batch(db, -1_000, 10, false).await.unwrap();
    assert_eq!(
        first_of(&claimed),
        [("a".into(), 1, 1), ("b".into(), 1, 1)],
        "one job per conversation, its first"
    );
    assert!(
        jobs::claim_batch(db, 60_000, 10, false)
            .await
            .unwrap()
            .is_empty(),
        "a conversation's later job waits while its first runs"
    );
    assert_eq!(outbox::JOBS.reap(db).await.unwrap(), 2);

    // Reaped: claimable again, as a second attempt.
    let claimed = jobs::claim_batch(db, 60_000, 10, false).await.unwrap();
    assert_eq!(first_of(&claimed), [("a".into(), 1, 2), ("b".into(), 1, 2)]);
    assert_eq!(
        outbox::JOBS.reap(db).await.unwrap(),
        0,
        "a live lease is not reaped"
    );
    // `first_messages` (a round's claim) takes only first attempts.
    let a1 = claimed
        .iter()
        .find(|j| j.conversation_id.as_str() == "a")
        .unwrap();
    jobs::finish_job(db, &a1.id).await.unwrap();
    let claimed = jobs::claim_batch(db, 60_000, 10, true).await.unwrap();
    assert_eq!(first_of(&claimed), [("a".into(), 2, 1)]);
    app.finish().await;
}

/// A delivery to queue: what it says does not matter here.
fn linked(conversation: &str) -> casebridge::deliver::Delivered {
    casebridge::deliver::Delivered::CaseLinked(casebridge::deliver::CaseLinked {
        conversation_id: conversation.into(),
        case_id: "00000000-0000-0000-0000-000000000001".into(),
        case_number: None,
    })
}

async fn deliveries_are_claimed_in_order_leased_and_reaped(backend: Backend) {
    let (app, org) = api_only(backend).await;
    let db = &app.db.clone();
    let mut tx = db.write().await.unwrap();
    for (conv, key) in [("a", "k1"), ("a", "k2"), ("b", "k3")] {
        casebridge::deliver::queue(&mut tx, &org.id, &conv.into(), key, linked(conv))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert!(
        deliveries::claim_next(db, 60_000).await.unwrap().is_none(),
        "no delivery goes out before the org has a delivery URL"
    );
    deliveries::put_endpoint(db, &org.id, "https://receiver.example.com/hook", "sealed")
        .await
        .unwrap();

    let mut claimed = Vec::new();
    while let Some(d) = deliveries::claim_next(db, -1_000).await.unwrap() {
        claimed.push((d.conversation_id.to_string(), d.seq, d.attempts));
    }
    claimed.sort();
    assert_eq!(
        claimed,
        [("a".into(), 1, 1), ("b".into(), 1, 1)],
        "one delivery per conversation, its first"
    );
    assert_eq!(outbox::DELIVERIES.reap(db).await.unwrap(), 2);
    let again = deliveries::claim_next(db, 60_000).await.unwrap().unwrap();
    assert_eq!(
        again.attempts, 2,
        "reaped, then claimed as a second attempt"
    );
    assert_eq!(
        outbox::DELIVERIES.reap(db).await.unwrap(),
        0,
        "a live lease is not reaped"
    );
    app.finish().await;
}

async fn a_claimed_item_is_settled_once(backend: Backend) {
    let (app, org) = api_only(backend).await;
    let db = &app.db.clone();
    app.send(&org.key, json!([message("a", 1), message("b", 1)]))
        .await;
    let claimed = jobs::claim_batch(db, 60_000, 10, false).await.unwrap();
    let id = |conv: &str| {
        claimed
            .iter()
            .find(|j| j.conversation_id.as_str() == conv)
            .unwrap()
            .id
            .clone()
    };
    let (a, b) = (id("a"), id("b"));

    // A retry that gives its attempt back, due in a minute.
    let later = outbox::Verdict::Retry {
        at: casebridge::storage::now_ms() + 60_000,
        error: Some("org paused"),
        keep_attempt: false,
    };
    assert!(outbox::JOBS.settle_alone(db, &a, later).await.unwrap());
    assert!(
        !outbox::JOBS
            .settle_alone(db, &a, outbox::Verdict::Done)
            .await
            .unwrap(),
        "an item no longer claimed is not settled"
    );
    let dead = outbox::Verdict::Dead {
        error: Some("refused"),
    };
    assert!(outbox::JOBS.settle_alone(db, &b, dead).await.unwrap());
    assert!(!outbox::JOBS.settle_alone(db, &b, dead).await.unwrap());
    assert!(
        jobs::claim_batch(db, 60_000, 10, false)
            .await
            .unwrap()
            .is_empty(),
        "nothing due: one retry waits, one is dead"
    );
    let mut counts = jobs::job_counts_by_state(db).await.unwrap();
    counts.sort();
    assert_eq!(counts, [("dead".into(), 1), ("pending".into(), 1)]);
    let (_, conversation) = app.get("/v1/conversations/a", &org.key).await;
    assert_eq!(
        conversation["open_jobs"][0]["attempts"], 0,
        "{conversation}"
    );
    app.finish().await;
}

/// Org A has a backlog of 300 conversations, older than org B's 5. A
/// claim across orgs takes the oldest first, so A would have every claim;
/// claimed per org with room, A gets its lane's worth and B all of its
/// own, and with A's lane full A gets nothing and B still all. Counted,
/// not timed; what is claimed is bounded by the lanes, not the backlog.
async fn a_backlog_in_one_org_takes_no_claims_from_another_whose_lane_has_room(backend: Backend) {
    use casebridge::sync::limiter::{Bounds, Lanes};
    use casebridge::sync::worker::{claim_with_room, ROUND};
    let (app, a) = api_only(backend).await;
    let b = app.create_org("Beta").await;
    app.connect(&b.key).await;
    let db = &app.db.clone();
    let backlog: Vec<Value> = (0..300).map(|c| message(&format!("a{c}"), 1)).collect();
    app.send(&a.key, Value::Array(backlog)).await;
    let fresh: Vec<Value> = (0..5).map(|c| message(&format!("b{c}"), 1)).collect();
    app.send(&b.key, Value::Array(fresh)).await;
    let orgs_of = |claimed: &[jobs::Job]| {
        let from_a = claimed.iter().filter(|j| j.org_id == a.id).count();
        (from_a, claimed.len() - from_a)
    };
    let give_back = |claimed: Vec<jobs::Job>| async move {
        let ids: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
        jobs::unclaim(db, &ids).await.unwrap();
    };

    // Across orgs: the oldest 100 are all A's.
    let claimed = jobs::claim_batch(db, 60_000, 100, false).await.unwrap();
    assert_eq!(orgs_of(&claimed), (100, 0), "bounded by the limit, all A's");
    give_back(claimed).await;

    // Per org with room: A's lane (1 request) bounds A's claim, and B's
    // jobs all go.
    let lanes = Lanes::new(Bounds {
        floor: 1,
        ceiling: 1,
    });
    let claimed = claim_with_room(db, &lanes, 60_000, false).await.unwrap();
    assert_eq!(
        orgs_of(&claimed),
        (ROUND, 5),
        "a lane's worth of A's, all of B's"
    );
    give_back(claimed).await;

    // A's lane full (a limit of 1 with one round in flight): none of A's.
    let _in_flight = lanes.try_acquire(&a.id).expect("room for one");
    assert!(lanes.try_acquire(&a.id).is_none());
    assert_eq!(lanes.room(&b.id), 1, "B's lane is its own");
    let claimed = claim_with_room(db, &lanes, 60_000, false).await.unwrap();
    assert_eq!(orgs_of(&claimed), (0, 5), "every one of B's, none of A's");
    app.finish().await;
}
