//! The admin page's files as the service serves them: content types,
//! revalidation, and a Content-Security-Policy that keeps the page to this
//! server (the browser tests in `tests/browser.rs` check what it does).

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn the_page_is_served_with_its_content_types_and_a_strict_policy() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (path, content_type, marker) in [
        ("/", "text/html; charset=utf-8", "<title>"),
        (
            "/admin/app.js",
            "text/javascript; charset=utf-8",
            "\"use strict\"",
        ),
        (
            "/admin/app.css",
            "text/css; charset=utf-8",
            ":focus-visible",
        ),
        ("/admin/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let resp = app
            .http
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let headers = resp.headers().clone();
        assert_eq!(headers[CONTENT_TYPE], content_type, "{path}");
        assert_eq!(headers[CACHE_CONTROL], "no-cache", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        for rule in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(rule), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        let body = resp.text().await.unwrap();
        assert!(body.contains(marker), "{path}");

        // A reload with the validator costs a 304 and no body.
        let etag = headers[ETAG].to_str().unwrap();
        let again = app
            .http
            .get(format!("{}{path}", app.url))
            .header(IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.text().await.unwrap().is_empty());
    }
    let (status, body) = app
        .call(reqwest::Method::GET, "/admin/secrets.txt", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["hint"].as_str().unwrap().contains("app.js"),
        "{body}"
    );
    app.finish().await;
}
