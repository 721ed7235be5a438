//! What becomes of a job after a run, by the delivery policy toward
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

use std::time::Duration;

use super::context::{JobError, Services};
use crate::storage::connections::{self, Status};
use crate::storage::jobs;
use crate::storage::jobs::Job;
use crate::storage::now_ms;
use crate::storage::timeline;

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
    /// How many requests (rounds or jobs) each org's Creatio may have in
    /// flight: the adaptive limit's floor and ceiling.
    pub concurrency: super::limiter::Bounds,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            base_delay_ms: 1_000,
            max_delay_ms: 5 * 60_000,
            give_up_ms: 3 * 24 * 3_600_000,
            lease_ms: 120_000,
            concurrency: Default::default(),
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
                // From an admin's retry, if any: it starts the schedule over.
                let age = now_ms() - job.retried_at.unwrap_or(job.created_at);
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

pub(super) fn count_run(job: &Job, outcome: &'static str) {
    metrics::counter!(crate::metrics::JOB_RUNS, "kind" => job.kind.as_str(), "outcome" => outcome)
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
        let _ = timeline::add_timeline_alone(
            db,
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
        Verdict::Done { recorded: false } => jobs::finish_job(db, &job.id).await,
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
            jobs::retry_job(db, &job.id, now_ms(), &diagnosis, false).await
        }
        // Keep the job, look again shortly.
        Verdict::Raced(why) => jobs::retry_job(db, &job.id, now_ms() + 5_000, &why, false).await,
        Verdict::Retry(e) => retry(services, policy, job, e).await,
        Verdict::Dead(why) => {
            tracing::warn!(org_id = %job.org_id, conversation_id = %job.conversation_id, job_id = %job.id, error = %why,
                "Sync job failed for good; dead-lettered.");
            note("error", format!("Dead-lettered: {why}")).await;
            jobs::kill_job(db, &job.id, &why).await
        }
    };
    if let Err(e) = result {
        // The job stays running; its lease expires and it runs again.
        tracing::warn!(job_id = %job.id, error = %e, "Could not record a job's outcome.");
    }
}

/// A retryable failure: the job waits by the backoff (or `Retry-After`),
/// and an outage holds the org's other work for as long (the circuit
/// breaker).
async fn retry(
    services: &Services,
    policy: &Policy,
    job: &Job,
    e: creatio::Error,
) -> crate::storage::Result<()> {
    let db = &services.db;
    // An operation the server skipped because an earlier one in its $batch
    // failed has not failed itself: try again soon.
    let delay = if matches!(e, creatio::Error::NotExecuted) {
        policy.backoff_ms(1, None)
    } else {
        policy.backoff_ms(job.attempts - job.attempts_before, e.retry_after())
    };
    let until = now_ms() + delay;
    tracing::info!(org_id = %job.org_id, conversation_id = %job.conversation_id, attempts = job.attempts,
        delay_ms = delay, error = %e, "Creatio write failed; retrying later.");
    let _ = timeline::add_timeline_alone(
        db,
        &job.org_id,
        &job.conversation_id,
        "error",
        &format!(
            "Creatio write failed ({e}); retrying in {:.1} s",
            delay as f64 / 1000.0
        ),
        Some(job.attempts),
    )
    .await;
    let r = jobs::retry_job(db, &job.id, until, &e.to_string(), true).await;
    // Creatio as a whole is struggling: hold the org's other work too.
    if matches!(
        e,
        creatio::Error::Unavailable { .. }
            | creatio::Error::Unreachable { .. }
            | creatio::Error::Token(_)
    ) {
        let _ = jobs::hold_org(db, &job.org_id, until).await;
    }
    r
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
