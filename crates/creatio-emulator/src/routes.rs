//! HTTP routing: the Creatio-facing endpoints (token, OData, `$batch`,
//! `$metadata`, ping) and the operator API mounted under `/__emulator`.
//! Faults and statistics apply to the Creatio-facing endpoints only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Value};

use crate::faults::Endpoint;
use crate::identity::{parse_basic, ClientSnapshot, TokenError, TokenRequest};
use crate::odata::{self, batch, metadata, Body, OdataError, OdataRequest, OdataResponse};
use crate::{cost, operator, processes, Shared};

type AppState = State<Arc<Shared>>;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/connect/token", any(token))
        .route("/0/connect/token", any(token))
        .route("/0/ping", get(|| async { "OK" }))
        .route("/0/odata", any(odata_request))
        .route("/0/odata/", any(odata_request))
        .route("/0/odata/{*path}", any(odata_request))
        .route(
            "/0/rest/RightsService/{method}",
            axum::routing::post(rights_service),
        )
        .nest("/__emulator", operator::router())
        .fallback(|uri: Uri| async move {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                format!("<html><body><h1>404 - Not found</h1><p>{uri}</p></body></html>"),
            )
        })
        .with_state(shared)
}

/// The web server's own 503 page, as an unavailable site answers.
fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><body><h1>Service Unavailable</h1></body></html>",
    )
        .into_response()
}

/// A request the cost model refuses: 429 with `Retry-After`, as
/// [`injected_fault`]'s rate limit, or the web server's 503.
fn overloaded(how: cost::OverLimit, retry_after: u64) -> Response {
    match how {
        cost::OverLimit::Unavailable | cost::OverLimit::Queue => unavailable(),
        cost::OverLimit::TooManyRequests => {
            let e = OdataError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests. Retry later.",
            );
            let mut r = odata_response(OdataResponse::error(&e));
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
    }
}

/// Applies the faults in force; `Some` is the response to send instead.
async fn injected_fault(shared: &Shared, endpoint: Endpoint) -> Option<Response> {
    let verdict = shared.faults.lock().expect("fault lock").judge(endpoint);
    if let Some(delay) = verdict.delay {
        tokio::time::sleep(delay).await;
    }
    let response = if verdict.unavailable {
        unavailable()
    } else if let Some(secs) = verdict.rate_limited {
        let e = OdataError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests. Retry later.",
        );
        let mut r = odata_response(OdataResponse::error(&e));
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        r
    } else if verdict.server_error {
        let e = OdataError::internal(
            "An error has occurred.",
            "Injected fault: internal server error.",
        );
        odata_response(OdataResponse::error(&e))
    } else {
        return None;
    };
    shared.stats.record_fault();
    Some(response)
}

fn no_cache(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn token_error(e: TokenError) -> Response {
    no_cache(
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": e.code()})),
        )
            .into_response(),
    )
}

async fn token(
    State(shared): AppState,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = injected_fault(&shared, Endpoint::Token).await {
        shared.stats.record_token_request(false);
        return r;
    }
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if method != Method::POST || !form_encoded {
        shared.stats.record_token_request(false);
        return token_error(TokenError::InvalidRequest);
    }
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        shared.stats.record_token_request(false);
        return token_error(TokenError::InvalidRequest);
    };
    let request = TokenRequest {
        form: pairs.into_iter().collect::<HashMap<_, _>>(),
        basic: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_basic),
    };
    let lifetime = shared.token_lifetime();
    let result = shared
        .identity
        .write()
        .expect("identity lock")
        .issue(&request, lifetime);
    shared.stats.record_token_request(result.is_ok());
    match result {
        Ok(token) => no_cache(axum::Json(token).into_response()),
        Err(e) => token_error(e),
    }
}

/// Turns an [`OdataResponse`] into an HTTP response.
pub(crate) fn odata_response(r: OdataResponse) -> Response {
    let mut response = match r.body {
        Body::Json(v) => (
            r.status,
            [(
                header::CONTENT_TYPE,
                "application/json; odata.metadata=minimal",
            )],
            serde_json::to_vec(&v).unwrap_or_default(),
        )
            .into_response(),
        Body::Text(ct, text) => (r.status, [(header::CONTENT_TYPE, ct)], text).into_response(),
        Body::Empty => r.status.into_response(),
    };
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

fn odata_error(e: OdataError) -> Response {
    odata_response(OdataResponse::error(&e))
}

/// Why an OData request was not let in.
enum AuthFailure {
    /// No bearer, or an unknown, revoked or expired one.
    Unauthorized,
    /// The technical user lacks the `CanUseODataService` operation.
    NoOdataRight,
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        match self {
            AuthFailure::Unauthorized => odata_error(OdataError::denied()),
            AuthFailure::NoOdataRight => odata_error(OdataError::forbidden(
                "The current user does not have sufficient permissions to use OData. Grant the \
                 \"Access to OData\" (CanUseODataService) system operation to the integration's \
                 technical user.",
            )),
        }
    }
}

/// `POST /0/rest/RightsService/<method>` ([`crate::rights`]): any valid
/// bearer may ask about its own rights; OData's right is not needed.
async fn rights_service(
    State(shared): AppState,
    axum::extract::Path(method): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match authenticate(&shared, &headers) {
        Some(client) => {
            let store = shared.store.read().expect("store lock");
            crate::rights::answer(&client, &store, &method, &body)
        }
        None => AuthFailure::Unauthorized.into_response(),
    }
}

/// The caller of a valid bearer token.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Option<ClientSnapshot> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })?;
    shared
        .identity
        .read()
        .expect("identity lock")
        .authenticate(token.trim())
}

/// Checks the bearer token and the `CanUseODataService` operation.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<ClientSnapshot, AuthFailure> {
    let Some(client) = authenticate(shared, headers) else {
        shared.stats.record_unauthorized();
        return Err(AuthFailure::Unauthorized);
    };
    if !client.can_use_odata {
        return Err(AuthFailure::NoOdataRight);
    }
    Ok(client)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn prefers(headers: &HeaderMap, what: &str) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().trim_start_matches("odata.") == what)
        })
}

/// `POST $batch`: a JSON batch, each part run as if sent alone; the
/// processes its committed writes signal fire after it.
fn batch_request(
    shared: &Arc<Shared>,
    client: &ClientSnapshot,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if *method != Method::POST {
        return odata_error(OdataError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "$batch takes POST.",
        ));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json {
        return odata_error(OdataError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The emulator accepts JSON batches (Content-Type: application/json); multipart/mixed \
             batches are not emulated.",
        ));
    }
    match batch::execute_batch(shared, client, body, prefers(headers, "continue-on-error")) {
        Ok((value, events)) => {
            processes::fire(shared, events);
            (
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        "application/json; odata.metadata=minimal",
                    ),
                    (header::HeaderName::from_static("odata-version"), "4.0"),
                ],
                serde_json::to_vec(&value).unwrap_or_default(),
            )
                .into_response()
        }
        Err(e) => odata_error(e),
    }
}

async fn odata_request(
    State(shared): AppState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.stats.record_odata_request();
    if let Some(r) = injected_fault(&shared, Endpoint::Odata).await {
        return r;
    }
    let client = match authorize(&shared, &headers) {
        Ok(c) => c,
        Err(failure) => return failure.into_response(),
    };
    // Under the cost model the request waits for room, or is refused, and
    // takes its time once served.
    let ticket = match shared.cost.admit(&client.client_id).await {
        None => None,
        Some(cost::Admission::Go(ticket)) => Some(ticket),
        Some(cost::Admission::Refused(how, retry_after)) => {
            shared.stats.record_fault();
            return overloaded(how, retry_after);
        }
    };
    if let Some(ticket) = &ticket {
        let ops = if uri.path().ends_with("/$batch") {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|b| b["requests"].as_array().map(Vec::len))
                .unwrap_or(1)
        } else {
            1
        };
        ticket.serve(ops).await;
    }
    let path = percent_decode(
        uri.path()
            .trim_start_matches("/0/odata")
            .trim_start_matches('/'),
    );
    let query = uri.query().unwrap_or("");

    if path == "$metadata" {
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/xml"),
                (header::HeaderName::from_static("odata-version"), "4.0"),
            ],
            metadata::csdl(),
        )
            .into_response();
    }
    if path == "$batch" {
        return batch_request(&shared, &client, &method, &headers, &body);
    }

    let json_body = if body.is_empty() {
        None
    } else {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        if !is_json {
            return odata_error(OdataError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "The request entity's media type is not supported; send Content-Type: \
                 application/json; charset=utf-8.",
            ));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return odata_error(OdataError::bad_request(format!(
                    "The request body is not valid JSON: {e}."
                )))
            }
        }
    };
    let (response, events) = odata::execute(
        &shared,
        &client,
        OdataRequest {
            method,
            path: &path,
            query,
            body: json_body,
            return_minimal: prefers(&headers, "return=minimal"),
        },
    );
    processes::fire(&shared, events);
    odata_response(response)
}
