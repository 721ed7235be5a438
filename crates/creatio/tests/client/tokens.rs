//! Token caching, single flight, refresh, the 401 retry and each typed
//! token error.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use creatio::models::CaseStatus;
use creatio::query::Query;
use creatio::{http_client_builder, Credentials, Error, TokenError, TokenSource};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{client_for, Env, CLIENT_ID, CLIENT_SECRET};

#[tokio::test]
async fn one_token_serves_many_requests() {
    let env = Env::start().await;
    for _ in 0..25 {
        env.client
            .list::<CaseStatus>(Query::new().top(1))
            .await
            .unwrap();
    }
    let stats = env.stats();
    assert_eq!(stats.token_requests, 1);
    assert!(stats.odata_requests >= 25);
    env.shutdown().await;
}

#[tokio::test]
async fn a_hundred_concurrent_callers_cause_one_token_request() {
    let env = Env::with_lifetime(Duration::from_secs(2)).await;
    let burst = |env: &Env| {
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let client = env.client.clone();
                tokio::spawn(async move { client.count("CaseStatus", None).await })
            })
            .collect();
        async move {
            for t in tasks {
                assert!(t.await.unwrap().unwrap() > 0);
            }
        }
    };
    // Cold cache: no token yet.
    burst(&env).await;
    assert_eq!(env.stats().token_requests, 1);
    // Expired token: all hundred see it stale at once.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    burst(&env).await;
    let stats = env.stats();
    assert_eq!(stats.token_requests, 2);
    assert_eq!(
        stats.unauthorized, 0,
        "no request went out with the expired token"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn token_is_refreshed_before_it_expires() {
    // Two-second tokens: the margin is capped at a quarter of the lifetime,
    // so the source refreshes after 1.5 s instead of never using the token.
    let env = Env::with_lifetime(Duration::from_secs(2)).await;
    env.client.count("CaseStatus", None).await.unwrap();
    env.client.count("CaseStatus", None).await.unwrap();
    assert_eq!(env.stats().token_requests, 1);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    env.client.count("CaseStatus", None).await.unwrap();
    let stats = env.stats();
    assert_eq!(stats.token_requests, 2);
    assert_eq!(stats.unauthorized, 0);
    env.shutdown().await;
}

#[tokio::test]
async fn a_revoked_token_is_replaced_and_the_request_retried_once() {
    let env = Env::start().await;
    env.client.count("CaseStatus", None).await.unwrap();
    env.operator(Method::POST, "/tokens/revoke", json!({}))
        .await;
    let n = env.client.count("CaseStatus", None).await.unwrap();
    assert!(n > 0);
    let stats = env.stats();
    assert_eq!(stats.unauthorized, 1, "the stale token was refused once");
    assert_eq!(stats.token_requests, 2, "then one fresh token was fetched");
    env.shutdown().await;
}

async fn token_error(env: &Env, id: &str, secret: &str) -> TokenError {
    let client = client_for(&env.http, &env.emulator, id, secret);
    match client.count("CaseStatus", None).await {
        Err(Error::Token(t)) => t,
        other => panic!("expected a token error, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_secret_and_inactive_app_are_invalid_client() {
    let env = Env::start().await;
    let e = token_error(&env, CLIENT_ID, "not-the-secret").await;
    assert!(matches!(e, TokenError::InvalidClient), "{e:?}");
    assert!(!e.is_retryable());
    let wrapped = Error::Token(e.clone());
    assert!(wrapped.is_dead_credentials());
    assert!(e.diagnosis().contains("OAuth 2.0 integrated applications"));
    assert!(!format!("{e} {e:?} {}", e.diagnosis()).contains("not-the-secret"));

    let e = token_error(&env, "nobody", "x").await;
    assert!(matches!(e, TokenError::InvalidClient), "{e:?}");

    env.operator(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        json!({"active": false}),
    )
    .await;
    let e = token_error(&env, CLIENT_ID, CLIENT_SECRET).await;
    assert!(matches!(e, TokenError::InvalidClient), "{e:?}");
    env.shutdown().await;
}

#[tokio::test]
async fn app_without_client_credentials_grant_is_unauthorized_client() {
    let env = Env::start().await;
    env.operator(
        Method::PATCH,
        &format!("/clients/{CLIENT_ID}"),
        json!({"client_credentials_grant": false}),
    )
    .await;
    let e = token_error(&env, CLIENT_ID, CLIENT_SECRET).await;
    assert!(matches!(e, TokenError::UnauthorizedClient), "{e:?}");
    assert!(e.diagnosis().contains("client credentials"));
    env.shutdown().await;
}

#[tokio::test]
async fn a_foreign_scope_is_invalid_scope() {
    let env = Env::start().await;
    let credentials = Credentials::new(
        env.emulator.token_url(),
        CLIENT_ID,
        CLIENT_SECRET.to_string(),
    )
    .with_scope("ApplicationAccess_someone_else");
    let e = TokenSource::new(env.http.clone(), credentials)
        .token()
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::InvalidScope), "{e:?}");
    env.shutdown().await;
}

/// A stand-in server answering every POST with a fixed response.
async fn fixed_server(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/connect/token",
        post(move || async move { (status, [(header::CONTENT_TYPE, content_type)], body) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/connect/token")
}

async fn fetch(url: &str) -> TokenError {
    let http = http_client_builder().build().unwrap();
    TokenSource::new(http, Credentials::new(url, "id", "secret".to_string()))
        .token()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn an_oauth_server_without_the_grant_is_unsupported_grant_type() {
    // Not Creatio's Identity Service but some other OAuth server.
    let url = fixed_server(
        StatusCode::BAD_REQUEST,
        "application/json",
        r#"{"error":"unsupported_grant_type"}"#,
    )
    .await;
    let e = fetch(&url).await;
    assert!(matches!(e, TokenError::UnsupportedGrantType), "{e:?}");
    assert!(e.diagnosis().contains("OAuth20IdentityServerUrl"));
}

#[tokio::test]
async fn a_login_page_is_token_endpoint_not_json() {
    let url = fixed_server(
        StatusCode::OK,
        "text/html; charset=utf-8",
        "<!DOCTYPE html><html><body><form>Login</form></body></html>",
    )
    .await;
    let e = fetch(&url).await;
    match &e {
        TokenError::TokenEndpointNotJson {
            status,
            content_type,
            ..
        } => {
            assert_eq!(*status, 200);
            assert!(content_type.contains("text/html"), "{content_type}");
        }
        other => panic!("expected TokenEndpointNotJson, got {other:?}"),
    }
    assert!(!e.is_retryable());
    assert!(e.diagnosis().contains("-is.creatio.com/connect/token"));
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = fetch(&format!("http://{addr}/connect/token")).await;
    assert!(matches!(e, TokenError::Unreachable { .. }), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_token_outage_is_retryable() {
    let env = Env::start().await;
    env.operator(Method::POST, "/faults", json!({"kind": "token_outage"}))
        .await;
    let e = env.client.count("CaseStatus", None).await.unwrap_err();
    assert!(
        matches!(e, Error::Token(TokenError::Unavailable { status: 503, .. })),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert!(!e.is_dead_credentials());
    env.shutdown().await;
}

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let env = Env::start().await;
    let token = env.client.tokens().token().await.unwrap();
    let printed = format!(
        "{:?} {:?} {:?}",
        env.client,
        env.client.tokens().credentials(),
        token
    );
    assert!(!printed.contains(CLIENT_SECRET), "{printed}");
    assert!(!printed.contains(token.secret()), "{printed}");
    env.shutdown().await;
}
