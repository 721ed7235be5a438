//! The services the HTTP API and the background workers share, built once
//! at start ([`crate::server`]): the database, the sealed-secret box, the
//! guarded HTTP clients, the per-org Creatio clients, the AI provider and
//! the retention settings.
//!
//! Each side takes what it uses: the API wraps an [`App`] in its own state
//! with what only HTTP needs (the rate limiter, the operator token's hash,
//! the public URL); the sync workers and the delivery senders build their
//! narrow contexts from it. Waking workers after a commit is the database's
//! business ([`crate::storage::WriteTx`]), not this struct's.

use std::sync::Arc;

use crate::connection::clients::Clients;
use crate::outbound::TargetPolicy;
use crate::retention::Retention;
use crate::secrets::SecretBox;
use crate::storage::Db;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct App {
    pub db: Db,
    pub secrets: Arc<SecretBox>,
    /// The one HTTP client for tenant-supplied Creatio URLs (pooled,
    /// SSRF-guarded).
    pub http: reqwest::Client,
    pub policy: TargetPolicy,
    /// One Creatio client per org, kept while its settings stay the same.
    pub clients: Clients,
    /// The HTTP client for delivery URLs: SSRF-guarded, no redirects.
    pub delivery_http: reqwest::Client,
    /// Who fills AI fields at hand-off.
    pub ai: Arc<crate::ai::Provider>,
    /// How long data is kept, the last purge, the stored sizes.
    pub retention: Arc<Retention>,
}
