//! OpenTelemetry traces over OTLP/HTTP, off unless `CASEBRIDGE_OTLP_ENDPOINT`
//! is set.
//!
//! casebridge's spans are `tracing` spans; [`Traces::layer`] turns them into
//! OpenTelemetry spans (through `tracing-opentelemetry`), and the SDK's
//! batch processor exports them on its own thread to
//! `<endpoint>/v1/traces` as protobuf. The tree of one event: the request's
//! span (`POST /v1/events`), the job or round that did its work (a child,
//! though it runs later: the job row keeps the request's `traceparent`),
//! the Creatio calls beneath it, and the delivery it queued (again through
//! the row), which sends its own `traceparent` on to the chat platform.
//!
//! Where the trace context rides on rows and headers it is a W3C
//! `traceparent` string; with traces off there is none, and the helpers
//! below return `None` or do nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The exporter of a process with traces on; [`Traces::shutdown`] sends
/// what is still buffered.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// An exporter to `endpoint` (the collector's base URL, such as
    /// `http://127.0.0.1:4318`, or its full `/v1/traces` URL).
    pub fn start(endpoint: &str) -> Result<Traces, String> {
        let endpoint = endpoint.trim_end_matches('/');
        let url = if endpoint.ends_with("/v1/traces") {
            endpoint.to_string()
        } else {
            format!("{endpoint}/v1/traces")
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url)
            .build()
            .map_err(|e| format!("could not build the OTLP exporter: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("casebridge")
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                crate::VERSION,
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Traces { provider })
    }

    /// The `tracing` layer that makes spans OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        // Entering a span does not start it: a request's span is named
        // by its route, which is known only once routing ran inside it.
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("casebridge"))
            .with_context_activation(false)
    }

    /// Exports what is buffered and stops (at the end of `serve`).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "Could not send the last traces to the OTLP endpoint.");
        }
    }
}

/// The W3C `traceparent` of `span`; `None` with traces off.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` (not yet entered) a child of the span `traceparent`
/// names: a caller's, or the one that queued the work. Nothing with traces
/// off or an unreadable value.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// Links `span` to the span `traceparent` names (work a round did for
/// several requests: one is its parent, the others links).
pub fn add_link(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let linked = context.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_traces_there_is_no_traceparent_and_nothing_fails() {
        let span = tracing::info_span!("job");
        assert_eq!(traceparent_of(&span), None);
        set_parent(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        set_parent(&span, Some("not a traceparent"));
        add_link(&span, Some("00-zz-00-01"));
    }
}
