//! casebridge: conversations from an AI support platform become Creatio
//! Cases and Activities; agents' replies and resolutions flow back.
//!
//! The map (DESIGN.md has the why):
//!
//! - [`config`]: settings from a TOML file and `CASEBRIDGE_*` variables.
//! - [`storage`]: SQLite or PostgreSQL through one sqlx pool; a module per
//!   table group (orgs and keys, connections, webhook tokens).
//! - [`secrets`]: sealing secrets at rest, random tokens and their hashes.
//! - [`outbound`]: the guard that keeps tenant URLs off private networks.
//! - [`connection`]: Creatio connection settings, their checks (Test &
//!   Save, `casebridge check`) and one Creatio client per org.
//! - [`metrics`]: Prometheus metrics.
//! - [`api`]: the HTTP API, one module per resource, one error shape.
//! - [`sync`]: the sync engine: events in, outbox jobs, workers writing
//!   cases and activities to Creatio exactly once, in order.
//! - [`webhook`]: what Creatio's business processes send, parsed and
//!   checked; the per-org rate limit on those calls.
//! - [`deliver`]: Creatio → chat: deliveries queued once, signed per
//!   Standard Webhooks, retried on Svix's schedule, dead-lettered, replayed.
//! - [`ai`]: AI fields — Case columns filled from the transcript at
//!   hand-off (offline scoring or an OpenAI-compatible model), language
//!   and sentiment for the hand-off note.
//! - [`demo`]: `casebridge demo`, the whole story on loopback.
//! - [`listener`]: the HTTP listener: header, body and keep-alive
//!   timeouts, a connection cap that keeps `/healthz` answering.
//! - [`server`]: `casebridge serve`, start to graceful stop.
//! - [`retention`]: how long each kind of data is kept, and the purge.
//! - [`backup`]: `casebridge backup` and `restore` (SQLite).

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
pub mod backup;
pub mod config;
pub mod connection;
pub mod deliver;
pub mod demo;
pub mod listener;
pub mod metrics;
pub mod outbound;
pub mod retention;
pub mod secrets;
pub mod server;
pub mod storage;
pub mod sync;
pub mod webhook;
