//! Message jobs in rounds: the claimed first attempts of `message` jobs,
//! across conversations, done together (DESIGN.md §8). A round reads what
//! it needs in a few statements, matches the customers of new conversations
//! with one Contact query per 15 e-mails, writes contacts in one `$batch`
//! and then every conversation's case and activities in shared `$batch`
//! requests, each conversation's part one `atomicityGroup` (all of it
//! lands, in order, or none of it does), and records everything in one
//! transaction.
//!
//! What a round does not cover goes the per-job way ([`super::worker`]):
//! retries (an earlier attempt may have written part of the work),
//! hand-offs, resolutions, reply checks, and conversations whose channel
//! appends to a contact's open case. A round's failure is settled per job
//! by the same delivery policy as a job run alone.

use std::collections::HashMap;

use creatio::models::Contact;
use creatio::{BatchOp, Error as CreatioError};
use serde_json::Map;
use tracing::Instrument;
use uuid::Uuid;

use super::context::{self, JobError, Services};
use super::events::JobPayload;
use super::limiter::{self, Permit, Signal};
use super::settle::{self, Policy};
use super::{contacts, records};
use crate::connection::Settings;
use crate::deliver;
use crate::domain::OrgId;
use crate::domain::{ConversationId, JobKind, MessageRole};
use crate::storage::conversations;
use crate::storage::conversations::Conversation;
use crate::storage::jobs::Job;
use crate::storage::messages::Message;
use crate::storage::rounds;
use crate::storage::rounds::BatchWrite;

/// Activities per conversation per round: its case and activities must fit
/// one `$batch` (100 operations); the rest go in the next round.
const MAX_MESSAGES: usize = creatio::batch::MAX_BATCH_OPERATIONS - 1;
/// Whether a claimed job may go in a round.
pub fn fits(job: &Job) -> bool {
    job.kind == JobKind::Message && job.attempts == 1
}

/// Runs `jobs` (all [`fits`], all `org_id`'s) as a round, with a permit
/// of the org's lane; returns those a round cannot do, for the per-job
/// path.
pub async fn run(
    services: &Services,
    policy: &Policy,
    org_id: &OrgId,
    jobs: Vec<Job>,
    lane: &Permit,
) -> Vec<Job> {
    let span = round_span(&jobs);
    run_org(services, policy, org_id, jobs, lane)
        .instrument(span)
        .await
}

/// A round's span: with traces on, a child of the first job's request
/// and linked to the others' (a round does several requests' work).
fn round_span(jobs: &[Job]) -> tracing::Span {
    let span = tracing::info_span!("round", jobs = jobs.len(), otel.name = "round");
    let mut traceparents = jobs.iter().filter_map(|j| j.traceparent.as_deref());
    crate::telemetry::set_parent(&span, traceparents.next());
    for other in traceparents {
        crate::telemetry::add_link(&span, Some(other));
    }
    span
}

/// What a job of the round comes to.
enum Plan<'a> {
    /// Nothing to write (its messages went with an earlier job), or a
    /// message kept until the case exists: finish, with this line if any.
    Finish(Option<String>),
    /// Write `messages` as activities, creating the case first when `new`.
    Write {
        new_case: bool,
        messages: &'a [Message],
    },
}

impl Plan<'_> {
    fn creates_case(&self) -> bool {
        matches!(self, Plan::Write { new_case: true, .. })
    }
}

/// A round of one org's jobs: read, plan, write to Creatio, record. Each
/// phase is a function below; a failure to read or to plan hands the jobs
/// to the per-job path, which says what went wrong.
async fn run_org(
    services: &Services,
    policy: &Policy,
    org_id: &OrgId,
    jobs: Vec<Job>,
    lane: &Permit,
) -> Vec<Job> {
    let org = match context::org_client(services, org_id).await {
        Ok(org) => org,
        // Not connected now, or the store failed: the per-job path says so.
        Err(_) => return jobs,
    };
    for job in &jobs {
        // A round does many requests' work at once: one line per job names
        // the request that queued it.
        tracing::debug!(
            job = %job.id,
            conversation = %job.conversation_id,
            request_id = job.request_id.as_deref().unwrap_or("none"),
            "Running the job in a round."
        );
    }
    let ids: Vec<&ConversationId> = jobs.iter().map(|j| &j.conversation_id).collect();
    let read = async {
        let conversations = conversations::conversations_among(&services.db, org_id, &ids).await?;
        let backlog = rounds::backlog(&services.db, org_id, &ids).await?;
        Ok::<_, crate::storage::StorageError>((conversations, backlog))
    };
    let (mut conversations, backlog) = match read.await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%org_id, error = %e, "Could not read a round's conversations; running its jobs one by one.");
            return jobs;
        }
    };
    let (plans, rest) = plan(&org.settings, &conversations, &backlog, jobs);

    // New cases are announced to the platform when the org has a delivery
    // URL; read before anything is written, so a failure here leaves the
    // jobs to the per-job path with nothing done twice.
    let announce = if plans.iter().any(|(_, p)| p.creates_case()) {
        match crate::storage::deliveries::endpoint(&services.db, org_id).await {
            Ok(e) => e.is_some(),
            Err(e) => {
                tracing::warn!(%org_id, error = %e, "Could not read the delivery URL; running the round's jobs one by one.");
                return plans.into_iter().map(|(j, _)| j).chain(rest).collect();
            }
        }
    } else {
        false
    };

    let (contacts, mut failed) = contacts_for_new_cases(&org, org_id, &plans, &conversations).await;
    for (conversation, (id, _)) in &contacts {
        if let Some(c) = conversations.get_mut(conversation) {
            c.creatio_contact_id = Some(id.to_string());
        }
    }
    let mut outcome = write_groups(&org, lane, &plans, &conversations, &backlog, &mut failed).await;
    let (writes, failures) = collect(&plans, &conversations, &contacts, &mut failed, &mut outcome);
    if let Err(e) = record(&services.db, org_id, &writes, announce).await {
        // The jobs stay running; their leases expire and they run again,
        // one by one, finding what this round wrote.
        tracing::warn!(%org_id, jobs = writes.len(), error = %e, "Could not record a round's writes.");
    } else {
        for w in &writes {
            settle::count_run(w.job, "done");
        }
    }
    for (job, e) in failures {
        // A failed group or a contact Creatio refused: the job's own
        // verdict, as if it had run alone. A duplicate means an earlier
        // run wrote part of this: the per-job path sorts that out.
        let e = match e {
            CreatioError::AlreadyExists { .. } => CreatioError::NotExecuted,
            e => e,
        };
        settle::settle(services, policy, job, Err(JobError::Creatio(e))).await;
    }
    rest
}

/// What each job of the round comes to; the jobs a round cannot do (an
/// unreadable payload, a channel that appends to an open case, a missing
/// conversation) are returned for the per-job path.
fn plan<'a>(
    settings: &Settings,
    conversations: &HashMap<ConversationId, Conversation>,
    backlog: &'a rounds::Backlog,
    jobs: Vec<Job>,
) -> (Vec<(Job, Plan<'a>)>, Vec<Job>) {
    let mut plans = Vec::new();
    let mut rest = Vec::new();
    for job in jobs {
        let Some(c) = conversations.get(&job.conversation_id) else {
            rest.push(job);
            continue;
        };
        let unwritten = backlog
            .unwritten
            .get(&c.id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let barrier = backlog.barrier.get(&c.id).copied().unwrap_or(i64::MAX);
        let open = unwritten.iter().take_while(|m| m.seq < barrier).count();
        let messages = &unwritten[..open.min(MAX_MESSAGES)];
        let plan = if c.case_created {
            if messages.is_empty() {
                Plan::Finish(None)
            } else {
                Plan::Write {
                    new_case: false,
                    messages,
                }
            }
        } else {
            let role = messages.iter().find(|m| m.seq == job.seq).map(|m| m.role);
            let message_id = match serde_json::from_str(&job.payload) {
                Ok(JobPayload::Message { message_id, .. }) => message_id,
                _ => {
                    rest.push(job);
                    continue;
                }
            };
            match records::stored_until_case(settings, role, &message_id) {
                Some(line) => Plan::Finish(Some(line)),
                None if settings.case_append_channels.contains(&c.channel) => {
                    rest.push(job);
                    continue;
                }
                None => Plan::Write {
                    new_case: true,
                    messages,
                },
            }
        };
        plans.push((job, plan));
    }
    (plans, rest)
}

/// The Contact of each conversation that gets a new case and has none yet:
/// matched (one query per 15 e-mails) or created (one `$batch`), with
/// whether casebridge created it; and the conversations whose contact
/// failed, with Creatio's error.
async fn contacts_for_new_cases(
    org: &context::OrgClient,
    org_id: &OrgId,
    plans: &[(Job, Plan<'_>)],
    conversations: &HashMap<ConversationId, Conversation>,
) -> (ContactsFound, HashMap<ConversationId, CreatioError>) {
    let needing: Vec<&Conversation> = plans
        .iter()
        .filter(|(_, p)| p.creates_case())
        .map(|(j, _)| &conversations[&j.conversation_id])
        .filter(|c| c.creatio_contact_id.is_none())
        .collect();
    let mut contacts: ContactsFound = HashMap::new();
    let mut failed: HashMap<ConversationId, CreatioError> = HashMap::new();
    let found = match contacts::match_contacts(&org.client, &needing).await {
        Ok(found) => found,
        Err(e) => {
            for c in &needing {
                failed.insert(c.id.clone(), e.clone());
            }
            return (contacts, failed);
        }
    };
    let mut creates: HashMap<Uuid, Contact> = HashMap::new();
    for c in &needing {
        if let Some(id) = found.get(&c.id) {
            contacts.insert(c.id.clone(), (*id, false));
        } else if let Some(contact) =
            records::new_contact(org_id, c).filter(|_| org.settings.create_missing_contacts)
        {
            let id = contact.id.expect("a new contact has its id");
            contacts.insert(c.id.clone(), (id, true));
            creates.insert(id, contact);
        }
    }
    let creates: Vec<(Uuid, Contact)> = creates.into_iter().collect();
    let ops: Vec<BatchOp> = creates
        .iter()
        .filter_map(|(_, c)| BatchOp::create(c).ok())
        .collect();
    count_request(ops.len());
    let results = org.client.batch(&ops).await;
    let mut refused: HashMap<Uuid, CreatioError> = HashMap::new();
    for ((id, _), r) in creates.iter().zip(results) {
        if let Err(JobError::Creatio(e)) = context::created_once(r) {
            refused.insert(*id, e);
        }
    }
    for (conversation, (id, _)) in &contacts {
        if let Some(e) = refused.get(id) {
            failed.insert(conversation.clone(), e.clone());
        }
    }
    (contacts, failed)
}

/// Each conversation's Contact id, and whether casebridge created it.
type ContactsFound = HashMap<ConversationId, (Uuid, bool)>;

/// Sends each writing conversation's case and activities as one atomic
/// group, all groups in shared `$batch` requests ([`send_requests`]).
/// Returns each plan's outcome by its index (the case number when it
/// created the case, or the error of its group). A conversation whose
/// operations cannot be built joins `failed`.
async fn write_groups(
    org: &context::OrgClient,
    lane: &Permit,
    plans: &[(Job, Plan<'_>)],
    conversations: &HashMap<ConversationId, Conversation>,
    backlog: &rounds::Backlog,
    failed: &mut HashMap<ConversationId, CreatioError>,
) -> HashMap<usize, Result<Option<String>, CreatioError>> {
    // Each writing plan and how many operations its group has; the
    // operations themselves are built as their request goes (a round's
    // whole backlog as JSON would hold megabytes per round in flight).
    let sizes: Vec<(usize, usize)> = plans
        .iter()
        .enumerate()
        .filter_map(|(i, (job, plan))| match plan {
            Plan::Write { new_case, messages } if !failed.contains_key(&job.conversation_id) => {
                Some((i, messages.len() + usize::from(*new_case)))
            }
            _ => None,
        })
        .collect();
    for (_, n) in &sizes {
        metrics::histogram!(crate::metrics::BATCH_SIZE).record(*n as f64);
    }
    count_request(sizes.iter().map(|(_, n)| n).sum());
    let build = |i: usize| {
        let (job, plan) = &plans[i];
        let Plan::Write { new_case, messages } = plan else {
            return Ok(Vec::new());
        };
        let c = &conversations[&job.conversation_id];
        let started = backlog.started.contains(&c.id);
        write_ops(c, &org.settings, *new_case, messages, started)
    };
    let mut outcome = HashMap::new();
    for (i, result) in send_requests(&org.client, lane, &sizes, build).await {
        match result {
            Ok(results) => {
                outcome.insert(i, group_outcome(results, plans[i].1.creates_case()));
            }
            Err(e) => {
                failed.insert(
                    plans[i].0.conversation_id.clone(),
                    CreatioError::InvalidRequest(e.to_string()),
                );
            }
        }
    }
    outcome
}

/// A group's answers, or why its operations could not be built.
type GroupResult = Result<Vec<creatio::batch::BatchResult>, JobError>;

/// Sends the groups (`(id, operations)`), packed whole into requests
/// ([`creatio::batch::pack`]), side by side as far as the org's lane has
/// room (the round's own permit, and another for each request more while
/// there is one). A request's operations are built (`build`) as it goes,
/// so what a round holds is what it has in flight. Each answer tells the
/// lane how long a request of its size took, or that Creatio is
/// overloaded. A group too big for any request is refused unsent. Returns
/// each group's results by its id.
async fn send_requests(
    client: &creatio::Client,
    lane: &Permit,
    sizes: &[(usize, usize)],
    build: impl Fn(usize) -> Result<Vec<BatchOp>, JobError>,
) -> Vec<(usize, GroupResult)> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut results: Vec<(usize, GroupResult)> = Vec::with_capacity(sizes.len());
    for &(id, n) in sizes {
        if let Some(e) = creatio::batch::too_big(n) {
            results.push((id, Ok(vec![Err(e); n])));
        }
    }
    let mut waiting = creatio::batch::pack(sizes.iter().map(|&(_, n)| n))
        .into_iter()
        .map(|request| request.into_iter().map(|i| sizes[i].0).collect::<Vec<_>>())
        .peekable();
    let mut in_flight = FuturesUnordered::new();
    // Whether the round's own permit is free for the next request.
    let mut own = true;
    loop {
        while waiting.peek().is_some() {
            let extra = if own {
                own = false;
                None
            } else {
                match lane.another() {
                    Some(permit) => Some(permit),
                    None => break,
                }
            };
            let mut members = Vec::new();
            let mut request = Vec::new();
            for id in waiting.next().unwrap_or_default() {
                match build(id) {
                    Ok(ops) => {
                        members.push(id);
                        request.push(ops);
                    }
                    Err(e) => results.push((id, Err(e))),
                }
            }
            in_flight.push(async move {
                let ops: usize = request.iter().map(Vec::len).sum();
                let sent = std::time::Instant::now();
                let answers = if ops > 0 {
                    client.batch_groups(&request).await
                } else {
                    Vec::new()
                };
                (members, answers, ops, sent.elapsed(), extra)
            });
        }
        let Some((members, answers, ops, latency, extra)) = in_flight.next().await else {
            break;
        };
        let overloaded = answers
            .iter()
            .flatten()
            .filter_map(|r| r.as_ref().err())
            .map(limiter::signal_of)
            .find(|s| *s == Signal::Overloaded);
        if ops > 0 {
            let timing = limiter::Timing { latency, ops };
            lane.observe(overloaded.unwrap_or(Signal::Answered(Some(timing))));
        }
        match extra {
            Some(permit) => drop(permit),
            None => own = true,
        }
        for (id, answer) in members.into_iter().zip(answers) {
            results.push((id, Ok(answer)));
        }
    }
    results
}

/// What the round wrote, per job, to record; and the jobs that failed,
/// with Creatio's error, to settle.
fn collect<'a>(
    plans: &'a [(Job, Plan<'a>)],
    conversations: &HashMap<ConversationId, Conversation>,
    contacts: &ContactsFound,
    failed: &mut HashMap<ConversationId, CreatioError>,
    outcome: &mut HashMap<usize, Result<Option<String>, CreatioError>>,
) -> (Vec<BatchWrite<'a>>, Vec<(&'a Job, CreatioError)>) {
    let mut writes: Vec<BatchWrite> = Vec::new();
    let mut failures: Vec<(&Job, CreatioError)> = Vec::new();
    for (i, (job, plan)) in plans.iter().enumerate() {
        let c = &conversations[&job.conversation_id];
        let mut w = BatchWrite {
            job,
            contact: None,
            case: None,
            messages: &[],
            timeline: Vec::new(),
        };
        match plan {
            Plan::Finish(line) => {
                w.timeline.extend(line.clone().map(|l| ("event", l)));
            }
            Plan::Write { new_case, messages } => {
                let number = match (failed.remove(&c.id), outcome.remove(&i)) {
                    (Some(e), _) | (None, Some(Err(e))) => {
                        failures.push((job, e));
                        continue;
                    }
                    (None, Some(Ok(number))) => number,
                    (None, None) => {
                        failures.push((job, CreatioError::NotExecuted));
                        continue;
                    }
                };
                if *new_case {
                    if let Some((id, created)) = contacts.get(&c.id) {
                        w.contact = Some((id.to_string(), *created));
                        w.timeline.push((
                            "creatio",
                            if *created {
                                records::created_contact(*id)
                            } else {
                                records::matched_contact(*id)
                            },
                        ));
                    }
                    let case_id = c.case_id.0;
                    w.timeline
                        .push(("creatio", records::created_case(number.as_deref(), case_id)));
                    w.case = Some((c.case_id.to_string(), number));
                }
                w.messages = messages;
                w.timeline
                    .push(("creatio", records::wrote_activities(messages)));
            }
        }
        writes.push(w);
    }
    (writes, failures)
}

/// Records what a round wrote and, when `announce`, queues `case.linked`
/// for each case it created, in one transaction.
async fn record(
    db: &crate::storage::Db,
    org_id: &OrgId,
    writes: &[BatchWrite<'_>],
    announce: bool,
) -> Result<(), crate::storage::StorageError> {
    let mut tx = db.write().await?;
    rounds::record_batch(&mut tx, org_id, writes).await?;
    if announce {
        for w in writes {
            if let Some((case_id, number)) = &w.case {
                // Queued as the work of the request that queued the job.
                let queue = deliver::queue_case_linked(
                    &mut tx,
                    org_id,
                    &w.job.conversation_id,
                    case_id,
                    number.as_deref(),
                );
                let cause = crate::domain::Cause {
                    request_id: w.job.request_id.clone(),
                    traceparent: crate::telemetry::traceparent_of(&tracing::Span::current()),
                };
                crate::domain::with_cause(cause, queue).await?;
            }
        }
    }
    tx.commit().await
}

fn count_request(ops: usize) {
    if ops > 0 {
        metrics::counter!(crate::metrics::CREATIO_REQUESTS, "kind" => "batch")
            .increment(ops.div_ceil(creatio::batch::MAX_BATCH_OPERATIONS) as u64);
    }
}

/// A group's result: the case number (when it created the case), or the
/// error of the operation that failed (the others were rolled back).
fn group_outcome(
    results: Vec<creatio::batch::BatchResult>,
    new_case: bool,
) -> Result<Option<String>, CreatioError> {
    let mut number = None;
    let mut error = None;
    for (k, r) in results.into_iter().enumerate() {
        match r {
            Ok(body) if k == 0 && new_case => {
                number = body.and_then(|b| b["Number"].as_str().map(str::to_string));
            }
            Ok(_) => {}
            Err(CreatioError::NotExecuted) => {
                error.get_or_insert(CreatioError::NotExecuted);
            }
            Err(e) => {
                if error
                    .as_ref()
                    .is_none_or(|e| matches!(e, CreatioError::NotExecuted))
                {
                    error = Some(e);
                }
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(number),
    }
}

/// A conversation's operations: its case (when new), then its messages'
/// activities in order.
fn write_ops(
    c: &Conversation,
    settings: &Settings,
    new_case: bool,
    messages: &[Message],
    started: bool,
) -> Result<Vec<BatchOp>, JobError> {
    let case_id = c.case_id.0;
    let contact_id = context::contact_uuid(c);
    let mut ops = Vec::with_capacity(messages.len() + 1);
    if new_case {
        let first = messages
            .iter()
            .find(|m| m.role == MessageRole::Customer)
            .map(|m| m.text.as_str());
        let case = records::new_case(c, settings, first, None)?;
        ops.push(BatchOp::create_json(
            "Case",
            records::case_body(&case, &Map::new())?,
        ));
    }
    for (k, m) in messages.iter().enumerate() {
        let activity = records::activity_for(c, m, contact_id, case_id, !started && k == 0);
        ops.push(BatchOp::create(&activity)?);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_reports_the_failure_not_the_rollback() {
        let rejected = CreatioError::Rejected {
            status: 400,
            message: "bad".into(),
        };
        let r = group_outcome(
            vec![
                Err(CreatioError::NotExecuted),
                Err(rejected.clone()),
                Err(CreatioError::NotExecuted),
            ],
            true,
        );
        assert!(matches!(r, Err(CreatioError::Rejected { status: 400, .. })));
        let ok = group_outcome(
            vec![Ok(Some(serde_json::json!({"Number": "SR00001"}))), Ok(None)],
            true,
        );
        assert_eq!(ok.unwrap().as_deref(), Some("SR00001"));
        assert_eq!(group_outcome(vec![Ok(None)], false).unwrap(), None);
    }
}
