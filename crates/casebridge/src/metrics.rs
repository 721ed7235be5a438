//! Prometheus metrics at `GET /metrics`: events received, jobs by state,
//! sync job outcomes and durations, Creatio writes per request (batch
//! sizes), queue lag (from an event's arrival to its job starting), HTTP
//! requests, connections by status, and the process (CPU, memory, files).
//!
//! One recorder per process (the `metrics` facade is global); every service
//! started in the process reports into it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const EVENTS_RECEIVED: &str = "casebridge_events_received_total";
pub const JOBS: &str = "casebridge_jobs";
pub const CONNECTIONS: &str = "casebridge_connections";
pub const CREATIO_CONCURRENCY_LIMIT: &str = "casebridge_creatio_concurrency_limit";
pub const CREATIO_IN_FLIGHT: &str = "casebridge_creatio_in_flight";
pub const JOB_RUNS: &str = "casebridge_sync_job_runs_total";
pub const JOB_SECONDS: &str = "casebridge_sync_job_duration_seconds";
pub const QUEUE_LAG_SECONDS: &str = "casebridge_sync_queue_lag_seconds";
pub const CREATIO_REQUESTS: &str = "casebridge_creatio_write_requests_total";
pub const BATCH_SIZE: &str = "casebridge_creatio_batch_operations";
pub const WEBHOOK_CALLS: &str = "casebridge_creatio_webhook_calls_total";
pub const REPLY_CHECKS: &str = "casebridge_reply_checks_total";
pub const DELIVERY_ATTEMPTS: &str = "casebridge_delivery_attempts_total";
pub const DELIVERY_SECONDS: &str = "casebridge_delivery_attempt_duration_seconds";
pub const AI_REQUESTS: &str = "casebridge_ai_requests_total";
pub const AI_SECONDS: &str = "casebridge_ai_request_duration_seconds";
pub const HTTP_CONNECTIONS: &str = "casebridge_http_connections";
pub const HTTP_CONNECTIONS_EVICTED: &str = "casebridge_http_connections_evicted_total";
pub const HTTP_CONNECTIONS_REFUSED: &str = "casebridge_http_connections_refused_total";
pub const PURGED_ROWS: &str = "casebridge_purged_rows_total";
pub const PURGE_LAST_RUN: &str = "casebridge_purge_last_run_timestamp_seconds";
pub const STORED_ROWS: &str = "casebridge_stored_rows";
pub const DATABASE_BYTES: &str = "casebridge_database_bytes";
pub const BUILD_INFO: &str = "casebridge_build_info";
pub const HTTP_REQUESTS: &str = "casebridge_http_requests_total";
pub const HTTP_SECONDS: &str = "casebridge_http_request_duration_seconds";

/// How old the job gauges may get. Counting jobs by state scans the jobs
/// table (12.6 ms at 180k jobs), so a scrape must not do it every time:
/// anonymous scrapes at 89/s raised ingest p50 from 3 to 130 ms.
pub const JOB_GAUGES_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(BATCH_SIZE.into()),
                    SIZE_BUCKETS,
                )
            })
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed (an embedding
        // program's own): then ours renders what it has, nothing is lost.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        process().describe();
        // Counters without labels exist from the start, at 0, so that a
        // dashboard's rate() has a series before the first event.
        for counter in [HTTP_CONNECTIONS_EVICTED, HTTP_CONNECTIONS_REFUSED] {
            metrics::counter!(counter).increment(0);
        }
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => crate::COMMIT)
            .set(1.0);
        handle
    })
}

fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    metrics::describe_histogram!(
        HTTP_SECONDS,
        "Time to answer an HTTP request, by method and route template."
    );
    metrics::describe_counter!(
        EVENTS_RECEIVED,
        "Events received on POST /v1/events, by outcome (accepted, duplicate)."
    );
    metrics::describe_gauge!(JOBS, "Sync jobs in the database, by state.");
    metrics::describe_gauge!(
        CREATIO_CONCURRENCY_LIMIT,
        "Requests (rounds or jobs) that may be in flight to an org's Creatio at once: adaptive, lowered when Creatio is overloaded or slows down."
    );
    metrics::describe_gauge!(
        CREATIO_IN_FLIGHT,
        "Requests (rounds or jobs) in flight to an org's Creatio."
    );
    metrics::describe_gauge!(
        CONNECTIONS,
        "Orgs' Creatio connections, by status (active, needs_attention, disconnected)."
    );
    metrics::describe_counter!(
        JOB_RUNS,
        "Sync job runs, by kind and outcome (done, retry, paused, dead)."
    );
    metrics::describe_histogram!(
        JOB_SECONDS,
        "Time to run one sync job, Creatio calls included."
    );
    metrics::describe_histogram!(
        QUEUE_LAG_SECONDS,
        "Time from a job's creation (event accepted) to a worker starting it."
    );
    metrics::describe_counter!(
        CREATIO_REQUESTS,
        "Requests casebridge sent to write activities, by kind (single, batch)."
    );
    metrics::describe_histogram!(BATCH_SIZE, "Operations per $batch request.");
    metrics::describe_counter!(
        WEBHOOK_CALLS,
        "Calls from Creatio business processes, by event and outcome (queued, coalesced, ignored, invalid, limited)."
    );
    metrics::describe_counter!(
        REPLY_CHECKS,
        "Looks for agents' replies on a case after Creatio reported an activity, by outcome (replies: some queued for delivery; nothing_new: the activity was casebridge's own write, or delivered before). Most activities Creatio reports are casebridge's own writes, so nothing_new is the usual outcome and is not written on the timeline."
    );
    metrics::describe_counter!(
        DELIVERY_ATTEMPTS,
        "Delivery attempts to the platform, by type and outcome (delivered, retry, dead, gone)."
    );
    metrics::describe_histogram!(
        DELIVERY_SECONDS,
        "Time of one delivery attempt to the platform."
    );
    metrics::describe_counter!(
        AI_REQUESTS,
        "Requests to the AI fields provider, by outcome (ok, failed, refused, downgraded to JSON mode)."
    );
    metrics::describe_histogram!(AI_SECONDS, "Time of one request to the AI fields provider.");
    metrics::describe_gauge!(HTTP_CONNECTIONS, "Open HTTP connections to the API.");
    metrics::describe_counter!(
        HTTP_CONNECTIONS_EVICTED,
        "Idle HTTP connections closed to make room for a new one (CASEBRIDGE_MAX_CONNECTIONS)."
    );
    metrics::describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "New HTTP connections closed at once because every connection was busy."
    );
    metrics::describe_counter!(
        PURGED_ROWS,
        "Rows deleted by the retention purge, by kind (messages, events, timeline, jobs, deliveries, …)."
    );
    metrics::describe_gauge!(
        PURGE_LAST_RUN,
        "When the last retention purge pass started (Unix seconds)."
    );
    metrics::describe_gauge!(
        STORED_ROWS,
        "Rows stored, by table (counted at most every 5 minutes)."
    );
    metrics::describe_gauge!(DATABASE_BYTES, "The database's size on disk.");
    metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1: this build's version and git commit as labels."
    );
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every few seconds
/// until `stop`. The recorder keeps every sample until a render or an
/// upkeep drains it: unscraped, the durations and lags of a million jobs
/// were the service's memory growing ≈ 2.5 MB a minute in the soak
/// (`scripts/soak.py`).
pub fn spawn_upkeep(mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let h = handle();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => h.run_upkeep(),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

/// The exposition text. `refresh` (the gauges read from the database) runs
/// at most every [`JOB_GAUGES_MAX_AGE`], by one scrape at a time; the others
/// render the values they have, so a scrape costs the same whatever the
/// tables hold. It is a future so that this module names no table: it is
/// only awaited when due.
pub async fn render(refresh: impl std::future::Future<Output = ()>) -> String {
    static REFRESHED: tokio::sync::Mutex<Option<std::time::Instant>> =
        tokio::sync::Mutex::const_new(None);
    let h = handle();
    if let Ok(mut refreshed) = REFRESHED.try_lock() {
        if refreshed.is_none_or(|t| t.elapsed() >= JOB_GAUGES_MAX_AGE) {
            refresh.await;
            *refreshed = Some(std::time::Instant::now());
        }
    }
    process().collect();
    h.run_upkeep();
    h.render()
}

/// The process metrics (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_threads`, …), read from `/proc` at each scrape.
fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}
