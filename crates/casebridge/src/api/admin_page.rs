//! The admin page (Settings → Integrations → Creatio): static HTML, CSS
//! and JavaScript compiled into the binary, served at `/` and
//! `/admin/{asset}`.
//!
//! The page is a client of the documented API and nothing else: it signs
//! in with an org admin key and calls `/v1/…` from the browser. There is no
//! build step and nothing is fetched from anywhere but this server (no CDN,
//! no web fonts), which the Content-Security-Policy enforces: a CRM admin's
//! browser talks to casebridge only.

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::openapi::ErrorBody;

/// Scripts and styles from this server only, no inline script or style,
/// requests to this server only, and no framing (clickjacking of the
/// Disconnect button).
const CONTENT_SECURITY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../../assets/admin/", $name)),
        }
    };
}

static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

static ASSETS: [Asset; 3] = [
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// A strong validator from the content: the page revalidates on every load
/// (the binary may have been upgraded) and gets a 304 when nothing changed.
/// Hashing a few kilobytes per request costs microseconds.
fn etag(body: &str) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset.body);
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        ETAG,
        HeaderValue::from_str(&tag).expect("a hex ETag is a valid header"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The page's URL carries nothing secret, but nothing needs it either.
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    (headers, asset.body).into_response()
}

/// `GET /`: the admin page.
#[utoipa::path(get, path = "/", operation_id = "adminPage", tag = "admin", responses((status = 200, description = "The admin page: Settings → Integrations → Creatio (sign in with an org admin API key)", body = String, content_type = "text/html"), (status = 304, description = "Not modified (If-None-Match)")))]
pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// `GET /admin/{asset}`: the page's script, style sheet and icon.
#[utoipa::path(get, path = "/admin/{asset}", operation_id = "adminAsset", tag = "admin", params(("asset" = String, Path, description = "app.js, app.css or favicon.svg")), responses((status = 200, description = "The file, with its content type", content((String = "application/javascript"), (String = "text/css"), (String = "image/svg+xml"))), (status = 304, description = "Not modified (If-None-Match)"), (status = 404, description = "No such file", body = ErrorBody)))]
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a, &headers),
        None => ApiError::not_found(
            format!("The admin page has no file {name:?}"),
            "Open the admin page at / ; its files are app.js, app.css and favicon.svg.",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_runs_no_inline_script() {
        let html = INDEX.body;
        assert!(html.contains(r#"<script src="/admin/app.js""#), "{html}");
        assert!(
            !html.contains("<script>"),
            "inline script is blocked by the CSP"
        );
        assert!(
            !html.contains(" style="),
            "inline styles are blocked by the CSP"
        );
        // Placeholders may show an example address; what loads must not.
        for a in std::iter::once(&INDEX).chain(ASSETS.iter()) {
            for far in [
                "src=\"http",
                "src=\"//",
                "href=\"http",
                "href=\"//",
                "url(http",
                "url(//",
                "url(\"http",
                "@import",
                "fetch(\"http",
            ] {
                assert!(
                    !a.body.contains(far),
                    "{} loads from elsewhere: {far}",
                    a.name
                );
            }
        }
    }

    #[test]
    fn every_file_the_page_names_is_served() {
        for name in ["app.js", "app.css", "favicon.svg"] {
            assert!(INDEX.body.contains(&format!("/admin/{name}")), "{name}");
            assert!(ASSETS.iter().any(|a| a.name == name), "{name}");
        }
    }
}
