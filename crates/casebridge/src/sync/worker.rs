//! Sync workers: claim a job, run it, and apply the delivery policy toward
//! Creatio (DESIGN.md §7):
//!
//! - retryable failures (408, 429, 5xx but 501, timeouts, connection
//!   errors) back off exponentially with ±20 % jitter, or as `Retry-After`
//!   says (clamped); an outage holds all of the org's jobs for the same
//!   delay (the circuit breaker), so workers do not hammer a Creatio that
//!   is down;
//! - dead credentials pause the org (*needs attention*); its jobs stay
//!   queued and run again after a successful Test & Save;
//! - other failures, and retryable ones older than the give-up time, are
//!   dead-lettered: kept, visible on the conversation, never deleted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::lifecycle::{self, Context, JobError};
use crate::api::Services;
use crate::storage::connections::{self, Status};
use crate::storage::now_ms;
use crate::storage::sync::{self, Job};

/// How often expired leases are looked for.
const REAP_EVERY: Duration = Duration::from_secs(5);
/// How long an idle worker waits before looking again (other processes'
/// jobs, retries coming due); local ingests wake it at once.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Knobs of the delivery policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// First retry delay; doubles per attempt.
    pub base_delay_ms: i64,
    pub max_delay_ms: i64,
    /// A retryable job older than this is dead-lettered.
    pub give_up_ms: i64,
    /// How long a claim lasts before another worker may take the job over
    /// (its worker died). Longer than any job takes; a job run twice is
    /// harmless (deterministic ids), only slower.
    pub lease_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            base_delay_ms: 1_000,
            max_delay_ms: 5 * 60_000,
            give_up_ms: 3 * 24 * 3_600_000,
            lease_ms: 120_000,
        }
    }
}

impl Policy {
    /// The delay before attempt `attempts + 1`.
    pub fn backoff_ms(&self, attempts: i64, retry_after: Option<Duration>) -> i64 {
        if let Some(ra) = retry_after {
            // Honour the server, within reason.
            return (ra.as_millis() as i64).clamp(self.base_delay_ms.min(1_000), 10 * 60_000);
        }
        let exp = self
            .base_delay_ms
            .saturating_mul(1i64 << (attempts.clamp(1, 20) - 1))
            .min(self.max_delay_ms);
        let jitter = (exp as f64 * (fastrand::f64() * 0.4 - 0.2)) as i64;
        (exp + jitter).max(1)
    }
}

/// Jobs claimed at once: a round's worth.
const CLAIM: usize = 500;
/// Claimers per process: while one round waits for Creatio, the next one
/// reads and records.
const CLAIMERS: usize = 2;

/// Starts the claimers, which run message jobs in rounds and every other
/// job on its own, at most `n` of those at a time, and the lease reaper
/// (for jobs and deliveries); they stop when `stop` turns true, after the
/// jobs they started.
pub fn spawn(
    services: Arc<Services>,
    n: usize,
    policy: Policy,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let slots = Arc::new(Semaphore::new(n.max(1)));
    let mut tasks: Vec<JoinHandle<()>> = (0..CLAIMERS)
        .map(|i| {
            tokio::spawn(claim_loop(
                i,
                services.clone(),
                slots.clone(),
                policy,
                stop.clone(),
            ))
        })
        .collect();
    tasks.push(tokio::spawn(release_expired_leases(services, stop)));
    tasks
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
        let jobs = match sync::claim_batch(&services.db, policy.lease_ms, CLAIM, busy).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(claimer, error = %e, "Could not claim sync jobs; retrying shortly.");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = services.work_ready.notified() => {}
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
        let (batched, mut single): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(super::round::fits);
        if !batched.is_empty() {
            single.extend(super::round::run(&services, &policy, batched).await);
        }
        // Start what can start now; give the rest back rather than hold
        // their leases while they wait (an AI-filled hand-off can take a
        // while), and look again when a slot frees or shortly.
        let free = slots.available_permits();
        if single.len() > free {
            let back: Vec<&str> = single[free..].iter().map(|j| j.id.as_str()).collect();
            if let Err(e) = sync::unclaim(&services.db, &back).await {
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

/// Returns jobs and deliveries whose worker died mid-run (their lease
/// expired) to their queues: one task per process, every few seconds.
async fn release_expired_leases(services: Arc<Services>, mut stop: watch::Receiver<bool>) {
    loop {
        match sync::release_expired_leases(&services.db).await {
            Ok(n) if n > 0 => {
                tracing::warn!(jobs = n, "Took over jobs whose worker stopped mid-run.")
            }
            Err(e) => tracing::warn!(error = %e, "Could not release expired job leases."),
            _ => {}
        }
        match crate::storage::deliveries::release_expired_leases(&services.db).await {
            Ok(n) if n > 0 => tracing::warn!(
                deliveries = n,
                "Took over deliveries whose sender stopped mid-attempt."
            ),
            Err(e) => tracing::warn!(error = %e, "Could not release expired delivery leases."),
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(REAP_EVERY) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
}

/// What becomes of a job after a run: decided once, then recorded (and
/// counted in the metrics) from this alone.
enum Verdict {
    /// Done; `recorded` when the run already marked it so with its writes.
    Done { recorded: bool },
    /// Creatio refused the credentials: the org is paused.
    Paused(creatio::Error),
    /// The org was paused or disconnected between the claim (which takes
    /// jobs of active orgs only) and the run.
    Raced(String),
    /// Worth another attempt later.
    Retry(creatio::Error),
    /// Failed for good, or retried past the give-up time.
    Dead(String),
}

impl Verdict {
    fn of(outcome: Result<bool, JobError>, job: &Job, policy: &Policy) -> Verdict {
        match outcome {
            Ok(recorded) => Verdict::Done { recorded },
            Err(JobError::Creatio(e)) if e.is_dead_credentials() => Verdict::Paused(e),
            Err(JobError::NotConnected(why)) => Verdict::Raced(why),
            Err(JobError::Creatio(e)) if e.is_retryable() => {
                let age = now_ms() - job.created_at;
                if age > policy.give_up_ms {
                    Verdict::Dead(format!(
                        "gave up after {} attempts over {} s: {}",
                        job.attempts,
                        age / 1000,
                        e.diagnosis()
                    ))
                } else {
                    Verdict::Retry(e)
                }
            }
            Err(JobError::Creatio(e)) => Verdict::Dead(e.diagnosis()),
            Err(other) => Verdict::Dead(other.to_string()),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Verdict::Done { .. } => "done",
            Verdict::Paused(_) | Verdict::Raced(_) => "paused",
            Verdict::Retry(_) => "retry",
            Verdict::Dead(_) => "dead",
        }
    }
}

async fn run_one(services: &Services, policy: &Policy, job: Job) {
    let started = std::time::Instant::now();
    let outcome = prepare_and_run(services, &job).await;
    metrics::histogram!(crate::metrics::JOB_SECONDS).record(started.elapsed().as_secs_f64());
    settle(services, policy, &job, outcome).await;
}

pub(super) fn count_run(job: &Job, outcome: &'static str) {
    metrics::counter!(crate::metrics::JOB_RUNS, "kind" => job.kind.clone(), "outcome" => outcome)
        .increment(1);
}

/// Records what a run of `job` came to, by the delivery policy.
pub(super) async fn settle(
    services: &Services,
    policy: &Policy,
    job: &Job,
    outcome: Result<bool, JobError>,
) {
    let verdict = Verdict::of(outcome, job, policy);
    count_run(job, verdict.label());
    let db = &services.db;
    let note = |kind: &'static str, summary: String| async move {
        let _ = sync::add_timeline(
            db.pool(),
            &job.org_id,
            &job.conversation_id,
            kind,
            &summary,
            Some(job.attempts),
        )
        .await;
    };
    let result = match verdict {
        Verdict::Done { recorded: true } => Ok(()),
        Verdict::Done { recorded: false } => sync::finish_job(db, &job.id).await,
        Verdict::Paused(e) => {
            let diagnosis = e.diagnosis();
            tracing::warn!(org_id = %job.org_id, conversation_id = %job.conversation_id, error = %e,
                "The org's credentials or addresses were refused; sync is paused until a successful Test & Save.");
            let _ = connections::record_status(
                db,
                &job.org_id,
                Status::NeedsAttention,
                &format!("Sync paused: {diagnosis}"),
            )
            .await;
            note(
                "error",
                format!("Sync paused: {e}; waiting for Test & Save"),
            )
            .await;
            sync::retry_job(db, &job.id, now_ms(), &diagnosis, false).await
        }
        // Keep the job, look again shortly.
        Verdict::Raced(why) => sync::retry_job(db, &job.id, now_ms() + 5_000, &why, false).await,
        Verdict::Retry(e) => {
            // An operation the server skipped because an earlier one in its
            // $batch failed has not failed itself: try again soon.
            let delay = if matches!(e, creatio::Error::NotExecuted) {
                policy.backoff_ms(1, None)
            } else {
                policy.backoff_ms(job.attempts, e.retry_after())
            };
            let until = now_ms() + delay;
            tracing::info!(org_id = %job.org_id, conversation_id = %job.conversation_id, attempts = job.attempts,
                delay_ms = delay, error = %e, "Creatio write failed; retrying later.");
            note(
                "error",
                format!(
                    "Creatio write failed ({e}); retrying in {:.1} s",
                    delay as f64 / 1000.0
                ),
            )
            .await;
            let r = sync::retry_job(db, &job.id, until, &e.to_string(), true).await;
            // Creatio as a whole is struggling: hold the org's other work too.
            if matches!(
                e,
                creatio::Error::Unavailable { .. }
                    | creatio::Error::Unreachable { .. }
                    | creatio::Error::Token(_)
            ) {
                let _ = sync::hold_org(db, &job.org_id, until).await;
            }
            r
        }
        Verdict::Dead(why) => {
            tracing::warn!(org_id = %job.org_id, conversation_id = %job.conversation_id, job_id = %job.id, error = %why,
                "Sync job failed for good; dead-lettered.");
            note("error", format!("Dead-lettered: {why}")).await;
            sync::kill_job(db, &job.id, &why).await
        }
    };
    if let Err(e) = result {
        // The job stays running; its lease expires and it runs again.
        tracing::warn!(job_id = %job.id, error = %e, "Could not record a job's outcome.");
    }
}

/// An org's active connection, ready to use.
pub(super) struct OrgClient {
    pub settings: crate::connection::Settings,
    pub client: creatio::Client,
    /// The integration's own user in Creatio, learned by Test & Save.
    pub technical_user: Option<uuid::Uuid>,
}

pub(super) async fn org_client(services: &Services, org_id: &str) -> Result<OrgClient, JobError> {
    let connection = connections::get(&services.db, org_id)
        .await?
        .filter(|c| c.status == Status::Active)
        .ok_or_else(|| {
            JobError::NotConnected("the org's Creatio connection is not active".into())
        })?;
    let settings = services
        .clients
        .settings(
            org_id,
            connection.updated_at,
            crate::connection::from_stored(&services.secrets, &services.policy, &connection),
        )
        .await;
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            // The saved settings no longer pass (the operator narrowed
            // CASEBRIDGE_ALLOW_PRIVATE_TARGETS, the name now resolves to an
            // internal address, the secret key changed): a person must act,
            // and the connection says so instead of reading "active".
            let why = format!("the saved connection cannot be used: {e}");
            tracing::warn!(%org_id, reason = %why, "Sync paused.");
            connections::record_status(
                &services.db,
                org_id,
                Status::NeedsAttention,
                &format!("Sync paused: {why}. Fix the settings and Test & Save."),
            )
            .await?;
            return Err(JobError::NotConnected(why));
        }
    };
    let client = services.clients.get(&services.http, org_id, &settings);
    let technical_user = connection
        .technical_user_id
        .as_deref()
        .and_then(|u| uuid::Uuid::parse_str(u).ok())
        // Saved before the nil GUID was known to mean "no Contact".
        .filter(|u| !u.is_nil());
    Ok(OrgClient {
        settings,
        client,
        technical_user,
    })
}

async fn prepare_and_run(services: &Services, job: &Job) -> Result<bool, JobError> {
    let org = org_client(services, &job.org_id).await?;
    let conversation = sync::get_conversation(&services.db, &job.org_id, &job.conversation_id)
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
    lifecycle::run(&mut ctx, job).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let p = Policy::default();
        for attempt in 1..10 {
            let d = p.backoff_ms(attempt, None);
            let exp = (1_000i64 << (attempt - 1)).min(p.max_delay_ms);
            assert!(
                d >= exp * 8 / 10 && d <= exp * 12 / 10,
                "attempt {attempt}: {d}"
            );
        }
        assert!(p.backoff_ms(60, None) <= p.max_delay_ms * 12 / 10);
        assert_eq!(p.backoff_ms(1, Some(Duration::from_secs(7))), 7_000);
        assert_eq!(
            p.backoff_ms(1, Some(Duration::from_secs(86_400))),
            600_000,
            "clamped"
        );
    }
}
