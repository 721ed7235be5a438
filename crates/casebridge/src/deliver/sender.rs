//! Sender tasks: claim a due delivery, sign it, POST it, log the attempt and
//! decide: delivered, retry on the schedule, dead, or (410) dead with the
//! endpoint disabled. Every attempt is a row in `delivery_attempts`, a line
//! in the conversation's timeline and a log line.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use super::http::Services;
use super::http::{call, Answer};
use super::{secret_context, signature, Schedule, Verdict};
use crate::storage::deliveries::{self, Attempt, Delivery, Outcome};
use crate::storage::now_ms;

const IDLE_POLL: Duration = Duration::from_millis(250);

/// Starts `n` senders; they stop when `stop` turns true. Expired leases
/// are released by the sync workers' reaper, one per process.
pub fn spawn(
    services: Arc<Services>,
    n: usize,
    schedule: Schedule,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let schedule = Arc::new(schedule);
    (0..n)
        .map(|i| {
            let services = services.clone();
            let schedule = schedule.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    if *stop.borrow() {
                        break;
                    }
                    let lease = schedule.lease.as_millis() as i64;
                    match deliveries::claim_next(&services.db, lease).await {
                        Ok(Some(d)) => {
                            // Its log lines carry the request that caused it.
                            let span = tracing::info_span!(
                                "delivery",
                                id = %d.id,
                                request_id = tracing::field::Empty,
                                otel.name = %format!("deliver {}", d.event_type),
                                otel.kind = "client",
                                http.response.status_code = tracing::field::Empty,
                            );
                            if let Some(id) = &d.request_id {
                                span.record("request_id", id.as_str());
                            }
                            crate::telemetry::set_parent(&span, d.traceparent.as_deref());
                            attempt(&services, &schedule, d).instrument(span).await
                        }
                        Ok(None) => {
                            tokio::select! {
                                _ = services.db.deliveries_queued() => {}
                                _ = tokio::time::sleep(IDLE_POLL) => {}
                                _ = stop.changed() => {}
                            }
                        }
                        Err(e) => {
                            tracing::warn!(sender = i, error = %e, "Could not claim a delivery; retrying shortly.");
                            tokio::time::sleep(IDLE_POLL).await;
                        }
                    }
                }
            })
        })
        .collect()
}

async fn attempt(services: &Services, schedule: &Schedule, d: Delivery) {
    let started = Instant::now();
    let endpoint = match deliveries::endpoint(&services.db, &d.org_id).await {
        Ok(Some(e)) if e.state == "enabled" => e,
        _ => {
            // Deleted or disabled since the claim: put it back untouched.
            let _ = deliveries::release(&services.db, &d.id).await;
            return;
        }
    };
    let (url, answer) = if endpoint.platform == "chatwoot" {
        match refused_address(services, &endpoint.url) {
            Some(why) => (endpoint.url.clone(), Answer::unsendable(why)),
            None => super::chatwoot::send(services, schedule, &d).await,
        }
    } else {
        let answer = match signing_secrets(services, &endpoint) {
            Err(why) => Answer::unsendable(why),
            Ok(secrets) => match refused_address(services, &endpoint.url) {
                Some(why) => Answer::unsendable(why),
                None => post(services, schedule, &endpoint.url, &d, &secrets).await,
            },
        };
        (endpoint.url.clone(), answer)
    };
    let latency_ms = started.elapsed().as_millis() as i64;
    let verdict = match answer.status {
        Some(status) => Verdict::of_status(status),
        None if answer.nothing_to_send.is_some() => Verdict::Delivered,
        None if answer.unsendable => Verdict::Refused(describe(&answer)),
        // Timeouts and connection errors are retried.
        None => Verdict::Retry,
    };
    let (outcome, summary) = decide(&verdict, &answer, &d, schedule, latency_ms);
    let delivered = verdict == Verdict::Delivered;
    let label = match (&verdict, &outcome) {
        (Verdict::Delivered, _) => "delivered",
        (Verdict::Gone, _) => "gone",
        (_, Outcome::Retry { .. }) => "retry",
        _ => "dead",
    };
    metrics::counter!(crate::metrics::DELIVERY_ATTEMPTS, "type" => d.event_type.clone(), "outcome" => label)
        .increment(1);
    metrics::histogram!(crate::metrics::DELIVERY_SECONDS).record(latency_ms as f64 / 1000.0);
    let error = match &verdict {
        Verdict::Refused(why) => Some(why.clone()),
        Verdict::Delivered => None,
        _ => Some(describe(&answer)),
    };
    let recorded = deliveries::record_attempt(
        &services.db,
        &Attempt {
            delivery_id: &d.id,
            org_id: &d.org_id,
            conversation_id: &d.conversation_id,
            number: d.attempts,
            url: &url,
            status: answer.status,
            latency_ms,
            error: error.as_deref(),
            response: answer.response.as_deref().or(answer.nothing_to_send),
            timeline: (if delivered { "delivery" } else { "error" }, &summary),
        },
        outcome,
    )
    .await;
    if let Err(e) = recorded {
        // The delivery stays claimed; its lease expires and it goes again
        // (with the same webhook-id, which the receiver dedupes on).
        tracing::warn!(delivery_id = %d.id, error = %e, "Could not record a delivery attempt.");
    }
    if delivered {
        tracing::info!(org_id = %d.org_id, delivery_id = %d.id, event_type = %d.event_type, status = ?answer.status, latency_ms, "Delivered to the platform.");
    } else {
        tracing::warn!(org_id = %d.org_id, delivery_id = %d.id, event_type = %d.event_type, status = ?answer.status, latency_ms, "{summary}");
    }
}

/// What becomes of the delivery after an attempt, and its timeline line.
fn decide<'a>(
    verdict: &'a Verdict,
    answer: &Answer,
    d: &Delivery,
    schedule: &Schedule,
    latency_ms: i64,
) -> (Outcome<'a>, String) {
    match verdict {
        Verdict::Delivered => (
            Outcome::Delivered,
            match answer.nothing_to_send {
                Some(why) => format!("Delivery {} done: {why}", d.id),
                None => format!(
                    "Delivered {} {} to the platform ({}, {latency_ms} ms)",
                    d.event_type,
                    d.id,
                    answer.status.unwrap_or_default()
                ),
            },
        ),
        Verdict::Gone => (
            Outcome::Gone {
                reason: "the receiver answered 410 Gone; set the delivery URL again (PUT /v1/delivery) to re-enable it",
            },
            format!(
                "Delivery {} answered 410 Gone: the endpoint is disabled and the delivery dead-lettered",
                d.id
            ),
        ),
        Verdict::Refused(why) => (
            Outcome::Dead,
            format!("Delivery {} dead-lettered: {why}", d.id),
        ),
        Verdict::Retry => {
            let what = describe(answer);
            match schedule.next_delay(d.attempts - d.attempts_before, answer.retry_after) {
                Some(delay) => (
                    Outcome::Retry {
                        at: now_ms() + delay.as_millis() as i64,
                    },
                    format!(
                        "Delivery {} failed ({what}); attempt {} of {}, retrying in {:.1} s",
                        d.id,
                        d.attempts,
                        schedule.delays.len() + 1,
                        delay.as_secs_f64()
                    ),
                ),
                None => (
                    Outcome::Dead,
                    format!(
                        "Delivery {} dead-lettered after {} attempts ({what}); replay it with POST /v1/deliveries/{}/replay",
                        d.id, d.attempts, d.id
                    ),
                ),
            }
        }
    }
}

/// The secrets that sign: the current one, and the previous one while its
/// grace period lasts.
fn signing_secrets(
    services: &Services,
    endpoint: &deliveries::Endpoint,
) -> Result<Vec<SecretString>, String> {
    let context = secret_context(&endpoint.org_id);
    let unreadable = |_| {
        "the delivery signing secret cannot be decrypted with this server's secret key; \
         rotate it (POST /v1/delivery/secret/rotate)"
            .to_string()
    };
    let mut secrets = vec![services
        .secrets
        .open(&endpoint.secret_sealed, &context)
        .map_err(unreadable)?];
    if let (Some(sealed), Some(until)) = (&endpoint.previous_sealed, endpoint.previous_until) {
        if until > now_ms() {
            if let Ok(previous) = services.secrets.open(sealed, &context) {
                secrets.push(previous);
            }
        }
    }
    Ok(secrets)
}

/// The resolver guards names; a literal address in the URL is checked here.
fn refused_address(services: &Services, url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    (!services.policy.permits(ip)).then(|| {
        format!(
            "{ip} is a private, loopback or link-local address; the operator can allow \
             it with CASEBRIDGE_ALLOW_PRIVATE_TARGETS"
        )
    })
}

async fn post(
    services: &Services,
    schedule: &Schedule,
    url: &str,
    d: &Delivery,
    secrets: &[SecretString],
) -> Answer {
    let timestamp = chrono::Utc::now().timestamp();
    let signature = match signature(secrets, &d.id, timestamp, &d.payload) {
        Ok(s) => s,
        Err(e) => return Answer::unsendable(format!("could not sign the delivery: {e}")),
    };
    let mut request = services
        .http
        .post(url)
        .timeout(schedule.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, &d.id)
        .header(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        )
        .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature);
    // The request whose work this delivery reports, for the receiver's
    // logs to meet casebridge's.
    if let Some(id) = &d.request_id {
        request = request.header("x-request-id", id);
    }
    // With traces on, the receiver's work joins this delivery's trace.
    let span = tracing::Span::current();
    if let Some(traceparent) = crate::telemetry::traceparent_of(&span) {
        request = request.header("traceparent", traceparent);
    }
    call(request.body(d.payload.clone()), schedule).await.0
}

fn describe(a: &Answer) -> String {
    match (a.status, &a.error) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".into(),
    }
}
