//! What running a job needs: the services the sync workers use, the org's
//! active Creatio connection, the conversation; the error a job ends
//! with; the timeline lines every step writes.

use std::sync::Arc;

use creatio::{Client, Error as CreatioError};
use uuid::Uuid;

use crate::app::App;
use crate::connection::clients::Clients;
use crate::connection::Settings;
use crate::domain::OrgId;
use crate::outbound::TargetPolicy;
use crate::retention::Retention;
use crate::secrets::SecretBox;
use crate::storage::connections::{self, Status};
use crate::storage::conversations::Conversation;
use crate::storage::jobs::Job;
use crate::storage::timeline;
use crate::storage::{Db, StorageError};

/// What the sync workers use of the app's services ([`crate::app::App`]):
/// no HTTP state, no delivery client.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    pub secrets: Arc<SecretBox>,
    /// The HTTP client for tenant-supplied Creatio URLs.
    pub http: reqwest::Client,
    pub policy: TargetPolicy,
    pub clients: Clients,
    /// Who fills AI fields at hand-off.
    pub ai: Arc<crate::ai::Provider>,
    /// How far back a reply check looks (the echo guard's window).
    pub retention: Arc<Retention>,
}

impl Services {
    pub fn of(app: &App) -> Services {
        Services {
            db: app.db.clone(),
            secrets: app.secrets.clone(),
            http: app.http.clone(),
            policy: app.policy.clone(),
            clients: app.clients.clone(),
            ai: app.ai.clone(),
            retention: app.retention.clone(),
        }
    }
}

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Creatio(#[from] CreatioError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// The job cannot run and never will as it is (corrupt payload, …).
    #[error("{0}")]
    Permanent(String),
    /// The org has no usable connection right now.
    #[error("{0}")]
    NotConnected(String),
}

/// What running a job needs.
pub struct Context<'a> {
    pub services: &'a Services,
    pub settings: Settings,
    pub client: Client,
    pub conversation: Conversation,
    /// The integration's own user in Creatio (`CreatedById` of what it
    /// writes), learned by Test & Save: the echo guard's second test.
    pub technical_user: Option<Uuid>,
}

pub(super) async fn timeline(ctx: &Context<'_>, kind: &str, summary: &str, job: &Job) {
    if let Err(e) = timeline::add_timeline_alone(
        &ctx.services.db,
        &job.org_id,
        &job.conversation_id,
        kind,
        summary,
        Some(job.attempts),
    )
    .await
    {
        tracing::warn!(org_id = %job.org_id, conversation_id = %job.conversation_id, error = %e, "Could not write the timeline.");
    }
}

/// The Creatio Contact linked to the conversation, if any.
pub(super) fn contact_uuid(c: &Conversation) -> Option<Uuid> {
    c.creatio_contact_id
        .as_deref()
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// A create with a deterministic Id succeeded, now or on an earlier run.
pub(super) fn created_once<T>(result: creatio::Result<T>) -> Result<(), JobError> {
    match result {
        Ok(_) | Err(CreatioError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// An org's active connection, ready to use.
pub(super) struct OrgClient {
    pub settings: crate::connection::Settings,
    pub client: creatio::Client,
    /// The integration's own user in Creatio, learned by Test & Save.
    pub technical_user: Option<uuid::Uuid>,
}

pub(super) async fn org_client(services: &Services, org_id: &OrgId) -> Result<OrgClient, JobError> {
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
