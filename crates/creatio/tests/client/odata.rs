//! CRUD round trips, filter encoding, paging, and OData failures.

use std::time::Duration;

use chrono::Utc;
use creatio::ids::case_status;
use creatio::models::{Activity, Case, Contact};
use creatio::query::{col, lookup, Query};
use creatio::Error;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{client_for, unique, Env, CLIENT_ID, CLIENT_SECRET};

#[tokio::test]
async fn case_round_trip_maps_empty_values_to_none() {
    let env = Env::start().await;
    let id = Uuid::new_v4();
    let created = env
        .client
        .create(&Case {
            id: Some(id),
            subject: Some("Printer on fire".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.id, Some(id), "the caller-chosen Id is kept");
    assert_eq!(created.subject.as_deref(), Some("Printer on fire"));
    assert!(created.number.is_some(), "Creatio numbers new cases");
    assert!(created.created_on.is_some());
    // Columns Creatio fills with empty GUIDs, "" and 0001-01-01 read as None.
    assert_eq!(created.solution, None);
    assert_eq!(
        created.symptoms.as_deref(),
        Some("Printer on fire"),
        "a case without symptoms takes its subject (evidence §4)"
    );
    assert_eq!(created.closure_code_id, None);
    assert_eq!(created.closure_date, None);
    assert_eq!(created.solution_provided_on, None);

    env.client
        .update(
            id,
            &Case {
                subject: Some("Printer no longer on fire".into()),
                status_id: Some(case_status::IN_PROGRESS),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let read: Case = env.client.get(id).await.unwrap();
    assert_eq!(read.subject.as_deref(), Some("Printer no longer on fire"));
    assert_eq!(read.status_id, Some(case_status::IN_PROGRESS));
    assert_eq!(
        read.number, created.number,
        "PATCH leaves other columns alone"
    );

    // A saved Case cannot be deleted on Creatio (SLM's CaseLifecycle row,
    // reference/creatio-evidence.md §4): the FK error, not retryable.
    let kept = env.client.delete::<Case>(id).await.unwrap_err();
    assert!(!kept.is_retryable(), "{kept:?}");
    assert!(env.client.exists("Case", id).await.unwrap());
    let contact = env
        .client
        .create(&Contact {
            name: Some("Short-lived".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let contact_id = contact.id.unwrap();
    env.client.delete::<Contact>(contact_id).await.unwrap();
    let gone = env.client.get::<Contact>(contact_id).await.unwrap_err();
    assert!(matches!(gone, Error::NotFound { .. }), "{gone:?}");
    assert!(!gone.is_retryable());
    assert!(!env.client.exists("Contact", contact_id).await.unwrap());
    env.shutdown().await;
}

#[tokio::test]
async fn activity_and_contact_round_trip() {
    let env = Env::start().await;
    let contact = env
        .client
        .create(&Contact {
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(contact.phone, None);
    assert_eq!(contact.account_id, None);
    let case = env
        .client
        .create(&Case {
            subject: Some("Round trip".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let activity = env
        .client
        .create(&Activity {
            title: Some("Customer: hello".into()),
            case_id: case.id,
            contact_id: contact.id,
            ..Default::default()
        })
        .await
        .unwrap();
    let read: Activity = env.client.get(activity.id.unwrap()).await.unwrap();
    assert_eq!(read.case_id, case.id);
    assert_eq!(read.contact_id, contact.id);
    assert_eq!(read.title.as_deref(), Some("Customer: hello"));
    env.shutdown().await;
}

#[tokio::test]
async fn filters_encode_quotes_guids_dates_and_lookup_paths() {
    let env = Env::start().await;
    let before = Utc::now() - chrono::Duration::seconds(1);
    let name = unique("O'Brien & Sons #1 100%");
    let contact = env
        .client
        .create(&Contact {
            name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let contact_id = contact.id.unwrap();

    // A string with a quote (and characters that need percent-encoding).
    let found: Vec<Contact> = env
        .client
        .list(Query::new().filter(col("Name").eq(name.as_str())))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, Some(contact_id));

    // A bare GUID, and a date-time, and both together.
    let found: Vec<Contact> = env
        .client
        .list(
            Query::new()
                .filter(col("Id").eq(contact_id))
                .filter(col("CreatedOn").ge(before)),
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let none: Vec<Contact> = env
        .client
        .list(
            Query::new()
                .filter(col("Id").eq(contact_id))
                .filter(col("CreatedOn").lt(before)),
        )
        .await
        .unwrap();
    assert!(none.is_empty());

    // A lookup through its navigation path.
    let case = env
        .client
        .create(&Case {
            subject: Some("Lookup path".into()),
            contact_id: Some(contact_id),
            ..Default::default()
        })
        .await
        .unwrap();
    let cases: Vec<Case> = env
        .client
        .list(Query::new().filter(lookup("Contact").eq(contact_id)))
        .await
        .unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].id, case.id);
    // The Creatio pitfall (`ContactId eq <guid>`) is refused before sending.
    let sent = env.stats().odata_requests;
    let e = env
        .client
        .list::<Case>(Query::new().filter(col("ContactId").eq(contact_id)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    assert!(e.to_string().contains("lookup(\"Contact\")"), "{e}");
    assert_eq!(env.stats().odata_requests, sent, "nothing was sent");
    env.shutdown().await;
}

#[tokio::test]
async fn list_pages_past_the_page_size() {
    let env = Env::start().await;
    let marker = unique("paging");
    for i in 0..12 {
        env.client
            .create(&Contact {
                name: Some(format!("{marker} {i:02}")),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let client = env.client.clone().with_page_size(5);
    let by_marker = || Query::new().filter(col("Name").starts_with(marker.as_str()));

    let before = env.ops("Contact", "GET");
    let all: Vec<Contact> = client.list(by_marker()).await.unwrap();
    assert_eq!(all.len(), 12);
    let mut ids: Vec<_> = all.iter().map(|c| c.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "no record twice across pages");
    assert_eq!(env.ops("Contact", "GET") - before, 3, "pages of 5, 5 and 2");

    // A caller's $top larger than a page is honoured across pages.
    let seven: Vec<Contact> = client
        .list(by_marker().order_by_asc("Name").top(7))
        .await
        .unwrap();
    let names: Vec<_> = seven.iter().filter_map(|c| c.name.clone()).collect();
    let expected: Vec<_> = (0..7).map(|i| format!("{marker} {i:02}")).collect();
    assert_eq!(names, expected);

    assert_eq!(
        client
            .count("Contact", Some(col("Name").starts_with(marker.as_str())))
            .await
            .unwrap(),
        12
    );
    env.shutdown().await;
}

#[tokio::test]
async fn get_many_reads_records_by_id() {
    let env = Env::start().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let c = env
            .client
            .create(&Contact {
                name: Some(format!("many {i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(c.id.unwrap());
    }
    ids.push(Uuid::new_v4()); // unknown ids are simply absent
    let found: Vec<Contact> = env.client.get_many(&ids).await.unwrap();
    assert_eq!(found.len(), 20);
    env.shutdown().await;
}

#[tokio::test]
async fn duplicate_id_is_already_exists() {
    let env = Env::start().await;
    let id = Uuid::new_v4();
    let contact = Contact {
        id: Some(id),
        name: Some("Twice".into()),
        ..Default::default()
    };
    env.client.create(&contact).await.unwrap();
    let e = env.client.create(&contact).await.unwrap_err();
    match &e {
        Error::AlreadyExists {
            entity_set,
            id: got,
        } => {
            assert_eq!(entity_set, "Contact");
            assert_eq!(*got, id);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(!e.is_retryable());
    let twins: Vec<Contact> = env
        .client
        .list(Query::new().filter(col("Id").eq(id)))
        .await
        .unwrap();
    assert_eq!(twins.len(), 1);
    env.shutdown().await;
}

#[tokio::test]
async fn rate_limit_is_retryable_with_the_server_delay() {
    let env = Env::start().await;
    env.operator(
        Method::POST,
        "/faults",
        json!({"kind": "rate_limit", "retry_after_secs": 7}),
    )
    .await;
    let e = env.client.count("Case", None).await.unwrap_err();
    assert_eq!(e.status(), Some(429), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(e.diagnosis().contains("after 7 s"), "{}", e.diagnosis());
    env.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let env = Env::start().await;
    env.operator(
        Method::POST,
        "/faults",
        json!({"kind": "server_errors", "rate": 1.0}),
    )
    .await;
    let e = env.client.count("Case", None).await.unwrap_err();
    assert_eq!(e.status(), Some(500), "{e:?}");
    assert!(e.is_retryable());
    env.shutdown().await;
}

#[tokio::test]
async fn missing_odata_right_is_diagnosed() {
    let env = Env::start().await;
    env.operator(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        json!({"can_use_odata": false}),
    )
    .await;
    let client = client_for(&env.http, &env.emulator, CLIENT_ID, CLIENT_SECRET);
    let e = client.count("Case", None).await.unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
    assert!(!e.is_retryable());
    assert!(
        e.diagnosis()
            .contains("'Access to OData' (CanUseODataService)"),
        "{}",
        e.diagnosis()
    );
    env.shutdown().await;
}

/// A live tenant answers 401 for an entity set it does not have
/// (reference/creatio-evidence.md §6); ASP.NET routing answers 404. Either
/// way the client says "no such object", not "wrong token endpoint": after
/// a 401 with a fresh token it checks that the token reads `$metadata`.
#[tokio::test]
async fn unknown_entity_set_is_not_retryable_nor_blamed_on_the_token() {
    let env = Env::start().await;
    for status in [401, 404] {
        env.operator(
            reqwest::Method::PUT,
            "/settings",
            serde_json::json!({"unknown_entity_set_status": status}),
        )
        .await;
        let e = env
            .client
            .list_values("UsrNoSuchThing", &Query::new())
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::UnknownEntitySet { .. }),
            "{status}: {e:?}"
        );
        assert!(!e.is_retryable());
        assert!(!e.diagnosis().contains("Identity Service"), "{e:?}");
    }
    env.shutdown().await;
}

/// Whether Creatio answers a missing object right 403 or 500 is unknown
/// (reference/creatio-evidence.md §7): either way it is `Forbidden`, never
/// retried.
#[tokio::test]
async fn a_missing_object_right_is_forbidden_whether_403_or_500() {
    let env = Env::start().await;
    env.operator(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        json!({"rights": {"Contact": {"create": false}}}),
    )
    .await;
    for status in [403, 500] {
        env.operator(
            Method::PUT,
            "/settings",
            json!({"missing_object_right_status": status}),
        )
        .await;
        let e = env
            .client
            .create(&Contact {
                name: Some("Nope".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Forbidden { .. }), "{status}: {e:?}");
        assert!(!e.is_retryable(), "{status}");
    }
    env.shutdown().await;
}
