//! casebridge: conversations from an AI support platform become Creatio
//! Cases and Activities; agents' replies and resolutions flow back.
//!
//! The crate is built in layers; each imports only from the layers below
//! it, never upward, and no two modules import each other (DESIGN.md has
//! the why of each decision).
//!
//! **Foundations**, which know nothing of casebridge's other modules:
//! [`secrets`] (sealing secrets at rest, tokens and their hashes),
//! [`outbound`] (the guard that keeps tenant URLs off private networks),
//! [`metrics`] (the Prometheus names and their rendering), [`domain`] (the
//! ids of orgs, conversations, cases, events and messages as types of their
//! own; the closed sets: message roles, conversation states, job kinds),
//! [`ai`] (AI
//! fields and their mappings checked against Creatio, the offline scorer or
//! an OpenAI-compatible model, language and sentiment), [`chatwoot`]
//! (Chatwoot's webhook payloads as casebridge events, its signature) and
//! [`allocator`].
//!
//! **Storage** ([`storage`]): SQLite or PostgreSQL behind one sqlx pool, a
//! module per table or concern. Every write goes through
//! [`storage::WriteTx`], which holds SQLite's write turn, commits, and then
//! wakes the workers whose queues it added to. Storage calls no business
//! code. The two queues, jobs toward Creatio and deliveries toward the
//! platform, share one set of outbox rules ([`storage::outbox`]: claim,
//! lease, settle, reap).
//!
//! **Domain services** over storage: [`connection`] (an org's Creatio
//! connection settings, their checks for Test & Save and `casebridge
//! check`, one Creatio client per org) and [`retention`] (how long each
//! kind of data is kept, and the purge).
//!
//! **Shared services** ([`app`]): what the API and the workers both use,
//! built once at start. Each side takes a narrow part of it.
//!
//! **Engines**, the background work: [`sync`] (chat → Creatio: events in,
//! the job outbox, rounds and per-job steps writing cases and activities
//! exactly once, in order; Creatio's webhook jobs finding replies and
//! closures) and [`deliver`] (Creatio → chat: deliveries queued once,
//! signed per Standard Webhooks or, for a Chatwoot org, made as Chatwoot
//! API calls, retried on Svix's schedule, dead-lettered, replayed), and [`webhook`] (what Creatio's business processes send:
//! parsed, rate-limited per org, accepted as a queued look at the case).
//!
//! **HTTP** ([`api`]): one module per resource, one error shape, its own
//! state (the shared services plus the rate limiter, the operator token's
//! hash and the public URL); [`listener`] serves it with header, body and
//! keep-alive timeouts and a connection cap that keeps `/healthz` answering.
//!
//! **Commands**, the top: [`config`] (settings from a TOML file and
//! `CASEBRIDGE_*` variables, gathering each layer's own settings types),
//! [`server`] (`casebridge serve`, start to graceful stop), [`backup`]
//! (`casebridge backup` and `restore`), [`demo`] (the whole story on
//! loopback) and [`client`] (the API as its callers use it: the demo and
//! the integration tests send their requests through it).

/// This build: the package version and the git commit it was built from
/// (see `build.rs`), as `casebridge --version` prints it.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CASEBRIDGE_GIT_COMMIT"),
    ")"
);
/// The git commit alone (`unknown` when built without git).
pub const COMMIT: &str = env!("CASEBRIDGE_GIT_COMMIT");

pub mod ai;
pub mod allocator;
pub mod api;
pub mod app;
pub mod backup;
pub mod chatwoot;
pub mod client;
pub mod config;
pub mod connection;
pub mod deliver;
pub mod demo;
pub mod domain;
pub mod listener;
pub mod metrics;
pub mod outbound;
pub mod retention;
pub mod secrets;
pub mod server;
pub mod storage;
pub mod sync;
pub mod telemetry;
pub mod webhook;
