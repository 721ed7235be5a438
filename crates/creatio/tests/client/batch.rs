//! JSON `$batch`: per-operation results, continue-on-error, splitting.

use creatio::models::Contact;
use creatio::query::{col, Query};
use creatio::{BatchOp, Error};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{unique, Env};

fn contact(name: &str) -> Contact {
    Contact {
        id: Some(Uuid::new_v4()),
        name: Some(name.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_failing_operation_in_the_middle_fails_alone() {
    let env = Env::start().await;
    let first = contact("batch first");
    let last = contact("batch last");
    let missing = Uuid::new_v4();
    let ops = vec![
        BatchOp::create(&first).unwrap(),
        BatchOp::update_json("Contact", missing, json!({"Name": "ghost"})),
        BatchOp::create(&last).unwrap(),
    ];
    let results = env.client.batch(&ops).await;
    assert_eq!(results.len(), 3);
    let created = results[0].as_ref().expect("first create succeeds");
    assert_eq!(
        created.as_ref().and_then(|v| v["Id"].as_str()),
        Some(first.id.unwrap().to_string().as_str())
    );
    let failure = results[1].as_ref().unwrap_err();
    assert!(matches!(failure, Error::NotFound { .. }), "{failure:?}");
    assert!(results[2].is_ok(), "{:?}", results[2]);
    for c in [&first, &last] {
        assert!(env.client.exists("Contact", c.id.unwrap()).await.unwrap());
    }
    assert_eq!(env.stats().batch_requests, 1);
    env.shutdown().await;
}

#[tokio::test]
async fn without_continue_on_error_later_operations_are_not_executed() {
    let env = Env::start().await;
    let first = contact("stop first");
    let last = contact("stop last");
    let ops = vec![
        BatchOp::create(&first).unwrap(),
        BatchOp::update_json("Contact", Uuid::new_v4(), json!({"Name": "ghost"})),
        BatchOp::create(&last).unwrap(),
    ];
    let results = env.client.batch_with(&ops, false).await;
    assert!(results[0].is_ok());
    assert!(results[1].is_err());
    let skipped = results[2].as_ref().unwrap_err();
    assert!(matches!(skipped, Error::NotExecuted), "{skipped:?}");
    assert!(skipped.is_retryable());
    assert!(!env
        .client
        .exists("Contact", last.id.unwrap())
        .await
        .unwrap());
    env.shutdown().await;
}

#[tokio::test]
async fn large_sets_are_split_into_requests_of_one_hundred() {
    let env = Env::start().await;
    let marker = unique("bulk");
    let ops: Vec<_> = (0..250)
        .map(|i| BatchOp::create(&contact(&format!("{marker} {i}"))).unwrap())
        .collect();
    let results = env.client.batch(&ops).await;
    assert_eq!(results.len(), 250);
    assert!(results.iter().all(|r| r.is_ok()));
    let stats = env.stats();
    assert_eq!(stats.batch_requests, 3);
    assert_eq!(stats.batch_operations, 250);
    let n = env
        .client
        .count("Contact", Some(col("Name").starts_with(marker.as_str())))
        .await
        .unwrap();
    assert_eq!(n, 250);
    env.shutdown().await;
}

#[tokio::test]
async fn duplicate_ids_inside_a_batch_are_already_exists() {
    let env = Env::start().await;
    let existing = contact("already here");
    env.client.create(&existing).await.unwrap();
    let fresh = contact("new one");
    let ops = vec![
        BatchOp::create(&existing).unwrap(),
        BatchOp::create(&fresh).unwrap(),
    ];
    let results = env.client.batch(&ops).await;
    match &results[0] {
        Err(Error::AlreadyExists { entity_set, id }) => {
            assert_eq!(entity_set, "Contact");
            assert_eq!(Some(*id), existing.id);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(results[1].is_ok());
    let rows: Vec<Contact> = env
        .client
        .list(Query::new().filter(col("Id").eq(existing.id.unwrap())))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    env.shutdown().await;
}

#[tokio::test]
async fn deletes_and_updates_ride_in_a_batch() {
    let env = Env::start().await;
    let a = contact("to rename");
    let b = contact("to delete");
    env.client.create(&a).await.unwrap();
    env.client.create(&b).await.unwrap();
    let ops = vec![
        BatchOp::update(
            a.id.unwrap(),
            &Contact {
                name: Some("renamed".into()),
                ..Default::default()
            },
        )
        .unwrap(),
        BatchOp::delete::<Contact>(b.id.unwrap()),
    ];
    let results = env.client.batch(&ops).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let read: Contact = env.client.get(a.id.unwrap()).await.unwrap();
    assert_eq!(read.name.as_deref(), Some("renamed"));
    assert!(!env.client.exists("Contact", b.id.unwrap()).await.unwrap());
    env.shutdown().await;
}
