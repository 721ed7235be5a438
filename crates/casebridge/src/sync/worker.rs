//! Sync workers: claim jobs (a conversation's one at a time, in order),
//! run message jobs in rounds ([`super::round`]) and every other job on
//! its own, and settle each outcome ([`super::settle`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::context::{org_client, timeline, Context, JobError, Services};
use super::events::JobPayload;
use super::limiter::{signal_of, Lanes, Permit, Signal};
use super::settle::{settle, Policy};
use super::{cases, closure, handoff, messages, records, replies, resolve, round, triage};
use crate::domain::{ConversationState, OrgId};
use crate::storage::conversations;
use crate::storage::jobs;
use crate::storage::jobs::Job;
use crate::storage::{self, now_ms};

/// How long an idle worker waits before looking again (other processes'
/// jobs, retries coming due); local ingests wake it at once.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Jobs in one round: about one `$batch` request of a case and an activity
/// per conversation; an org claims at most this many per request its lane
/// has room for, so what is claimed and held is bounded by the lanes,
/// whatever the backlog.
pub const ROUND: usize = creatio::batch::MAX_BATCH_OPERATIONS / 2;
/// Claimers per process: while one round waits for Creatio, the next one
/// reads and records.
const CLAIMERS: usize = 2;

/// Starts the claimers, which run message jobs in rounds and every other
/// job on its own, at most `n` of those at a time, each request to Creatio
/// with a permit of its org's lane in `lanes` (shared with the API, which
/// shows them); they stop when `stop` turns true, after the jobs they
/// started.
pub fn spawn(
    services: Arc<Services>,
    lanes: Arc<Lanes>,
    n: usize,
    policy: Policy,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let slots = Arc::new(Semaphore::new(n.max(1)));
    // One claimer at a time claims and takes its lanes' permits, so that
    // two never both claim the same room.
    let turn = Arc::new(tokio::sync::Mutex::new(()));
    (0..CLAIMERS)
        .map(|i| {
            tokio::spawn(claim_loop(
                i,
                services.clone(),
                slots.clone(),
                lanes.clone(),
                turn.clone(),
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
    lanes: Arc<Lanes>,
    turn: Arc<tokio::sync::Mutex<()>>,
    policy: Policy,
    mut stop: watch::Receiver<bool>,
) {
    let mut alone: JoinSet<()> = JoinSet::new();
    // Rounds run side by side, one org's each, so that a slow Creatio
    // delays only its own org; each returns the jobs it could not do.
    let mut rounds: JoinSet<Vec<Job>> = JoinSet::new();
    let mut handed_back: Vec<Job> = Vec::new();
    while !*stop.borrow() {
        while alone.try_join_next().is_some() {}
        while let Some(done) = rounds.try_join_next() {
            handed_back.extend(done.unwrap_or_default());
        }
        // With every slot busy, only what a round does is worth claiming;
        // each org claims as much as its lane has room for, and an org
        // whose lane is full gets nothing more until it has room.
        let busy = slots.available_permits() == 0;
        let my_turn = turn.lock().await;
        let claimed = match claim_with_room(&services.db, &lanes, policy.lease_ms, busy).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(claimer, error = %e, "Could not claim sync jobs; retrying shortly.");
                Vec::new()
            }
        };
        if claimed.is_empty() && handed_back.is_empty() {
            drop(my_turn);
            tokio::select! {
                _ = services.db.jobs_queued() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {}
                _ = slots.acquire(), if busy => {}
                Some(done) = rounds.join_next(), if !rounds.is_empty() => {
                    handed_back.extend(done.unwrap_or_default());
                }
            }
            continue;
        }
        let now = now_ms();
        for job in &claimed {
            let lag = (now - job.created_at).max(0) as f64 / 1000.0;
            metrics::histogram!(crate::metrics::QUEUE_LAG_SECONDS).record(lag);
        }
        let (batched, mut single): (Vec<Job>, Vec<Job>) =
            claimed.into_iter().partition(round::fits);
        single.append(&mut handed_back);
        let mut back = start_rounds(&services, &lanes, &policy, &mut rounds, batched);
        // Start the jobs alone that have a slot and room in their org's
        // lane; give the rest back rather than hold their leases while
        // they wait (an AI-filled hand-off can take a while), and look
        // again when a slot frees or shortly.
        let mut start = Vec::new();
        for job in single {
            if start.len() < slots.available_permits() {
                if let Some(lane) = lanes.try_acquire(&job.org_id) {
                    start.push((job, lane));
                    continue;
                }
            }
            back.push(job);
        }
        drop(my_turn);
        if !back.is_empty() {
            give_back(&services.db, claimer, &back).await;
            if start.is_empty() {
                tokio::select! {
                    _ = slots.acquire() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
        for (job, lane) in start {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let services = services.clone();
            alone.spawn(async move {
                run_one(&services, &policy, job, lane).await;
                drop(permit);
            });
        }
    }
    while let Some(done) = rounds.join_next().await {
        give_back(&services.db, claimer, &done.unwrap_or_default()).await;
    }
    while alone.join_next().await.is_some() {}
}

/// Gives claimed jobs back untouched, for another claim.
async fn give_back(db: &storage::Db, claimer: usize, claimed: &[Job]) {
    if claimed.is_empty() {
        return;
    }
    let ids: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
    if let Err(e) = jobs::unclaim(db, &ids).await {
        tracing::warn!(claimer, error = %e, "Could not give back claimed jobs; they run when their lease expires.");
    }
}

/// Claims, for each org with jobs due, as many as its lane has room for:
/// [`ROUND`] per request it may still send. An org whose lane is full is
/// not read at all, and another org's backlog is never walked (a claim
/// per org). `first_messages` claims only what a round runs.
pub async fn claim_with_room(
    db: &storage::Db,
    lanes: &Lanes,
    lease_ms: i64,
    first_messages: bool,
) -> Result<Vec<Job>, storage::StorageError> {
    let mut claimed = Vec::new();
    for org in jobs::orgs_ready(db).await? {
        let room = lanes.room(&org);
        if room == 0 {
            continue;
        }
        match jobs::claim_for_org(db, lease_ms, &org, room * ROUND, first_messages).await {
            Ok(jobs) => claimed.extend(jobs),
            // What was claimed stays claimed, to run; the rest waits.
            Err(e) if !claimed.is_empty() => {
                tracing::warn!(org_id = %org, error = %e, "Could not claim an org's sync jobs; retrying shortly.");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(claimed)
}

/// Starts a round per org whose lane has room; returns the jobs of the
/// orgs whose lane is full, to give back.
fn start_rounds(
    services: &Arc<Services>,
    lanes: &Arc<Lanes>,
    policy: &Policy,
    rounds: &mut JoinSet<Vec<Job>>,
    batched: Vec<Job>,
) -> Vec<Job> {
    let mut by_org: HashMap<OrgId, Vec<Job>> = HashMap::new();
    for job in batched {
        by_org.entry(job.org_id.clone()).or_default().push(job);
    }
    let mut back = Vec::new();
    for (org_id, mut jobs) in by_org {
        // A round of one `$batch` request's worth: its answer comes in one
        // round trip however slow the org's Creatio, and what it records
        // holds the database briefly; more of the org's jobs go in more
        // rounds side by side, as far as its lane has room.
        while !jobs.is_empty() {
            let Some(lane) = lanes.try_acquire(&org_id) else {
                back.append(&mut jobs);
                break;
            };
            let round: Vec<Job> = jobs.drain(..jobs.len().min(ROUND)).collect();
            let services = services.clone();
            let policy = *policy;
            let org_id = org_id.clone();
            rounds
                .spawn(async move { round::run(&services, &policy, &org_id, round, &lane).await });
        }
    }
    back
}

/// Runs a job as the work of the request that queued it: its log lines
/// carry the request's id (a `job` span, with traces on a child of the
/// request's), and what it queues records the same cause.
async fn run_one(services: &Services, policy: &Policy, job: Job, lane: Permit) {
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
        // A job alone may make several calls: its time is no measure of
        // one request's, its errors are.
        lane.observe(match &outcome {
            Err(JobError::Creatio(e)) => signal_of(e),
            _ => Signal::Answered(None),
        });
        drop(lane);
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
