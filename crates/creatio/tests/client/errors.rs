//! Sites that are not Creatio, end to end: the error names the URL problem.

use axum::http::header;
use axum::routing::{any, post};
use axum::{Json, Router};
use creatio::{http_client_builder, Client, Credentials, Error, InstanceUrl, TokenSource};
use serde_json::json;

/// A site whose token endpoint works but whose `/0/odata` is a login page,
/// as when the instance URL points at the wrong application.
async fn login_page_site() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/0/connect/token",
            post(|| async {
                Json(json!({"access_token": "t", "expires_in": 3600, "token_type": "Bearer"}))
            }),
        )
        .route(
            "/0/odata/{*rest}",
            any(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html><body>Sign in</body></html>",
                )
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_html_answer_to_odata_is_an_unexpected_response() {
    let url = login_page_site().await;
    let http = http_client_builder().build().unwrap();
    let instance = InstanceUrl::parse(&format!("{url}/0/Shell/#Section/Case")).unwrap();
    assert_eq!(instance.as_str(), url, "the pasted page path is stripped");
    let credentials = Credentials::new(instance.token_url(None).unwrap(), "id", "s".to_string());
    let client = Client::new(http.clone(), instance, TokenSource::new(http, credentials));
    let e = client.count("Case", None).await.unwrap_err();
    assert!(
        matches!(e, Error::UnexpectedResponse { status: 200, .. }),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert!(e.diagnosis().contains("login page"), "{}", e.diagnosis());
}
