//! The sync engine, chat → Creatio (DESIGN.md §2–3, §7):
//!
//! - [`events`]: the event shapes the platform sends, validated field by
//!   field, and their ingest: event, message and outbox job written in one
//!   transaction before `202`.
//! - [`worker`]: tasks that claim jobs (one conversation at a time, in
//!   order) and run each by its kind; [`settle`]: what becomes of a job
//!   after a run (retry, pause, dead-letter) by the delivery policy.
//! - [`round`]: message jobs of many conversations done together: shared
//!   Contact queries, `$batch` requests with one atomic group per
//!   conversation, one transaction to record them. It is the one path
//!   that batches; a job run alone (a retry, a hand-off, a case append)
//!   writes its own few records.
//! - [`context`]: what a job run needs (the workers' services, the org's
//!   client, the conversation) and the error it ends with.
//! - [`records`]: the Contact, Case and Activity records and the timeline
//!   lines, built from stored data alone (pure).
//! - [`contacts`], [`cases`], [`messages`], [`handoff`], [`resolve`]: each
//!   step a job takes in Creatio.
//! - [`replies`] and [`closure`]: the jobs Creatio's webhook calls queue:
//!   find agents' replies, or the case's closure, skip casebridge's own
//!   writes, queue deliveries to the platform.
//! - [`triage`]: at hand-off, AI field values and language/sentiment,
//!   decided once and stored so a retry writes the same.
//!
//! Exactly-once effects come from deterministic ids ([`ids`]): a
//! conversation's Case and each message's Activity have ids derived from
//! the org and the platform's ids, so a retried create finds its own record
//! ([`creatio::Error::AlreadyExists`]) instead of writing a second one.

pub mod cases;
pub mod closure;
pub mod contacts;
pub mod context;
pub mod events;
pub mod handoff;
pub mod ids;
pub mod limiter;
pub mod messages;
pub mod records;
pub mod replies;
pub mod resolve;
pub mod round;
pub mod settle;
pub mod triage;
pub mod worker;
