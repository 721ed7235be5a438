//! Request ids and the access log.
//!
//! Every request gets an id: the caller's `x-request-id` when it is a
//! usable one (1 to 128 visible ASCII characters), else a new one. The id
//! goes back on the answer's `x-request-id`, and every log line written
//! while the request is served carries it (a `request` span), and so do the
//! jobs and deliveries it queues ([`crate::domain::Cause`]):
//! a job's log lines and a delivery's `x-request-id` header. When the
//! answer is sent, one access line records the method, the route template
//! (`/webhooks/creatio/{token}`, never the path itself, which holds the
//! webhook token and ids), the status, the time taken and the id; the same
//! labels count it in `casebridge_http_requests_total{method, route,
//! status}` and time it in `casebridge_http_request_duration_seconds`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header that carries the id, both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a caller.
const MAX_ID: usize = 128;

/// Where the route's template is left once routing found it.
#[derive(Clone, Default)]
struct Route(Arc<Mutex<Option<String>>>);

/// The id a caller sent, if usable.
fn given_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let ok =
        !value.is_empty() && value.len() <= MAX_ID && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| value.to_string())
}

/// Middleware around everything a listener serves: the id, the span, the
/// access line.
pub async fn request_id_and_access_log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = given_id(&request).unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let method = request.method().clone();
    let route = Route::default();
    request.extensions_mut().insert(route.clone());
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    // With traces on, the request's span: a child of the caller's
    // `traceparent` when it sent one; named by its route once routing
    // found it.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        otel.name = %method,
        otel.kind = "server",
        http.request.method = %method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    crate::telemetry::set_parent(&span, traceparent);
    // The trace context joins the cause once routing named the span
    // ([`note_route`]): a span's name is fixed once its context is read.
    let cause = crate::domain::Cause {
        request_id: Some(id.clone()),
        traceparent: None,
    };
    let mut response = crate::domain::with_cause(cause, next.run(request))
        .instrument(span.clone())
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    let route = route
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_else(|| "(no route)".into());
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("otel.name", format!("{method} {route}"));
    span.record("http.route", route.as_str());
    span.record("http.response.status_code", status);
    span.in_scope(|| {
        tracing::info!(target: "casebridge::access", %method, %route, status, latency_ms, "{method} {route} {status}");
    });
    let labels = [("method", method.as_str().to_string()), ("route", route)];
    metrics::histogram!(crate::metrics::HTTP_SECONDS, &labels).record(latency_ms / 1000.0);
    let [method, route] = labels;
    metrics::counter!(
        crate::metrics::HTTP_REQUESTS,
        &[method, route, ("status", status.to_string())]
    )
    .increment(1);
    response
}

/// Route middleware: leaves the matched route's template where the outer
/// middleware finds it (routing happens inside it, so it cannot see it),
/// names the request's span by it, and puts the span's trace context in
/// the request's cause, for the jobs and deliveries it queues.
pub async fn note_route(request: Request, next: Next) -> Response {
    let span = tracing::Span::current();
    if let (Some(path), Some(route)) = (
        request.extensions().get::<MatchedPath>(),
        request.extensions().get::<Route>(),
    ) {
        *route.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(path.as_str().to_string());
        span.record(
            "otel.name",
            format!("{} {}", request.method(), path.as_str()),
        );
        span.record("http.route", path.as_str());
    }
    let cause = crate::domain::Cause {
        traceparent: crate::telemetry::traceparent_of(&span),
        ..crate::domain::current_cause()
    };
    crate::domain::with_cause(cause, next.run(request)).await
}
