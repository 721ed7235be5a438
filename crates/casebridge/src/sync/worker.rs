//! Sync workers: claim jobs (a conversation's one at a time, in order),
//! run message jobs in rounds ([`super::round`]) and every other job on
//! its own, and settle each outcome ([`super::settle`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::context::{org_client, timeline, Context, JobError, Services};
use super::events::JobPayload;
use super::settle::{settle, Policy};
use super::{cases, closure, handoff, messages, records, replies, resolve, round, triage};
use crate::domain::ConversationState;
use crate::storage::conversations;
use crate::storage::jobs;
use crate::storage::jobs::Job;
use crate::storage::{self, now_ms};

/// How long an idle worker waits before looking again (other processes'
/// jobs, retries coming due); local ingests wake it at once.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Jobs claimed at once: a round's worth.
const CLAIM: usize = 500;
/// Claimers per process: while one round waits for Creatio, the next one
/// reads and records.
const CLAIMERS: usize = 2;

/// Starts the claimers, which run message jobs in rounds and every other
/// job on its own, at most `n` of those at a time; they stop when `stop`
/// turns true, after the jobs they started.
pub fn spawn(
    services: Arc<Services>,
    n: usize,
    policy: Policy,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let slots = Arc::new(Semaphore::new(n.max(1)));
    (0..CLAIMERS)
        .map(|i| {
            tokio::spawn(claim_loop(
                i,
                services.clone(),
                slots.clone(),
                policy,
                stop.clone(),
            ))
        })
        .collect()
}

async fn claim_loop(
    claimer: usize,
    services: Arc<Services>,
    slots: Arc<Semaphore>,
    policy: Policy,
    mut stop: watch::Receiver<bool>,
) {
    let mut alone: JoinSet<()> = JoinSet::new();
    while !*stop.borrow() {
        while alone.try_join_next().is_some() {}
        // With every slot busy, only what a round does is worth claiming.
        let busy = slots.available_permits() == 0;
        let jobs = match jobs::claim_batch(&services.db, policy.lease_ms, CLAIM, busy).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(claimer, error = %e, "Could not claim sync jobs; retrying shortly.");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = services.db.jobs_queued() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {}
                _ = slots.acquire(), if busy => {}
            }
            continue;
        }
        let now = now_ms();
        for job in &jobs {
            let lag = (now - job.created_at).max(0) as f64 / 1000.0;
            metrics::histogram!(crate::metrics::QUEUE_LAG_SECONDS).record(lag);
        }
        let (batched, mut single): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(round::fits);
        if !batched.is_empty() {
            single.extend(round::run(&services, &policy, batched).await);
        }
        // Start what can start now; give the rest back rather than hold
        // their leases while they wait (an AI-filled hand-off can take a
        // while), and look again when a slot frees or shortly.
        let free = slots.available_permits();
        if single.len() > free {
            let back: Vec<&str> = single[free..].iter().map(|j| j.id.as_str()).collect();
            if let Err(e) = jobs::unclaim(&services.db, &back).await {
                tracing::warn!(claimer, error = %e, "Could not give back claimed jobs; they run when their lease expires.");
            }
            single.truncate(free);
            tokio::select! {
                _ = slots.acquire() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
        for job in single {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let services = services.clone();
            alone.spawn(async move {
                run_one(&services, &policy, job).await;
                drop(permit);
            });
        }
    }
    while alone.join_next().await.is_some() {}
}

/// Runs a job as the work of the request that queued it: its log lines
/// carry the request's id (a `job` span, with traces on a child of the
/// request's), and what it queues records the same cause.
async fn run_one(services: &Services, policy: &Policy, job: Job) {
    let span = tracing::info_span!(
        "job",
        id = %job.id,
        kind = job.kind.as_str(),
        request_id = tracing::field::Empty,
        otel.name = %format!("job {}", job.kind.as_str()),
    );
    if let Some(id) = &job.request_id {
        span.record("request_id", id.as_str());
    }
    crate::telemetry::set_parent(&span, job.traceparent.as_deref());
    let cause = crate::domain::Cause {
        request_id: job.request_id.clone(),
        traceparent: crate::telemetry::traceparent_of(&span),
    };
    let run = async {
        tracing::debug!(conversation = %job.conversation_id, attempt = job.attempts, "Running the job.");
        let started = std::time::Instant::now();
        let outcome = prepare_and_run(services, &job).await;
        metrics::histogram!(crate::metrics::JOB_SECONDS).record(started.elapsed().as_secs_f64());
        settle(services, policy, &job, outcome).await;
    };
    crate::domain::with_cause(cause, run).instrument(span).await;
}

async fn prepare_and_run(services: &Services, job: &Job) -> Result<bool, JobError> {
    let org = org_client(services, &job.org_id).await?;
    let conversation =
        conversations::get_conversation(&services.db, &job.org_id, &job.conversation_id)
            .await?
            .ok_or_else(|| {
                JobError::Permanent(format!("conversation {} is missing", job.conversation_id))
            })?;
    let mut ctx = Context {
        services,
        settings: org.settings,
        client: org.client,
        conversation,
        technical_user: org.technical_user,
    };
    run_job(&mut ctx, job).await
}

/// Runs one claimed job. `Ok(true)` when the job's completion was already
/// recorded with its writes (one transaction), `Ok(false)` when the caller
/// records it.
async fn run_job(ctx: &mut Context<'_>, job: &Job) -> Result<bool, JobError> {
    let payload: JobPayload = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
    match payload {
        JobPayload::Message { message_id, .. } => {
            if !ctx.conversation.case_created {
                let role = storage::messages::unwritten_message_role(
                    &ctx.services.db,
                    &job.org_id,
                    &job.conversation_id,
                    job.seq,
                )
                .await?;
                if let Some(line) = records::stored_until_case(&ctx.settings, role, &message_id) {
                    timeline(ctx, "event", &line, job).await;
                    return Ok(false);
                }
                cases::ensure_case(ctx, job, None, &Default::default()).await?;
            }
            messages::write_messages(ctx, job).await
        }
        JobPayload::Handoff { event_id, handoff } => {
            // Decided (and stored) before any write, so a case created now
            // is created with its AI fields already set.
            let triage = triage::at_handoff(ctx, job, &event_id, &handoff).await?;
            let ai_columns = triage.case_columns();
            cases::ensure_case(ctx, job, Some(&handoff), &ai_columns).await?;
            messages::write_messages(ctx, job).await?;
            handoff::write_handoff(ctx, job, &event_id, &handoff, &triage).await?;
            conversations::set_conversation_state(
                &ctx.services.db,
                &job.org_id,
                &job.conversation_id,
                ConversationState::HandedOff,
            )
            .await?;
            Ok(false)
        }
        JobPayload::Resolve { .. } => resolve::resolve(ctx, job).await.map(|()| false),
        JobPayload::ReplyCheck { activity_id } => replies::check_replies(ctx, job, activity_id)
            .await
            .map(|()| false),
        JobPayload::ClosureCheck { status_id, .. } => closure::check_closure(ctx, job, status_id)
            .await
            .map(|()| false),
    }
}

/// Sets the gauges read from the database, `casebridge_jobs{state}` and
/// `casebridge_connections{status}` (for [`crate::metrics::render`], which
/// calls it at most every few seconds).
pub async fn report_stored_gauges(db: &crate::storage::Db) {
    if let Ok(counts) = jobs::job_counts_by_state(db).await {
        for state in ["pending", "running", "done", "dead", "cancelled"] {
            metrics::gauge!(crate::metrics::JOBS, "state" => state).set(count_of(&counts, state));
        }
    }
    if let Ok(counts) = crate::storage::connections::count_by_status(db).await {
        for status in ["active", "needs_attention", "disconnected"] {
            metrics::gauge!(crate::metrics::CONNECTIONS, "status" => status)
                .set(count_of(&counts, status));
        }
    }
}

fn count_of(counts: &[(String, i64)], key: &str) -> f64 {
    counts
        .iter()
        .find(|(k, _)| k == key)
        .map_or(0.0, |(_, n)| *n as f64)
}
