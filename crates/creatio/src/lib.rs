//! Client for Creatio CRM: OAuth 2.0 client credentials, OData 4, JSON
//! `$batch`, and errors a person can act on.
//!
//! Everything casebridge sends to a customer's Creatio goes through this
//! crate, and the crate never knows casebridge exists. Its parts:
//!
//! - [`instance`]: the instance URL as an admin pastes it, normalised, and
//!   the token URL derived from it ([`InstanceUrl`]).
//! - [`token`]: [`Credentials`] and a [`TokenSource`] that caches one token
//!   per client, refreshes it before expiry and fetches it **single-flight**.
//! - [`query`]: a typed `$filter`/`$select`/… builder that writes literals
//!   and lookup paths the way Creatio accepts them.
//! - [`client`]: [`Client`] with `get`, `list` (paging past the page size),
//!   `create` (caller-chosen `Id`s, [`Error::AlreadyExists`]), `update`,
//!   `delete`, `count`, `$metadata`, and one retry with a fresh token on 401.
//! - [`batch`]: JSON `$batch` with per-operation results, split into
//!   requests of at most 100 operations.
//! - [`models`]: typed [`Case`](models::Case), [`Activity`](models::Activity),
//!   [`Contact`](models::Contact), [`CaseStatus`](models::CaseStatus),
//!   [`SysAdminUnit`](models::SysAdminUnit), with Creatio's empty values as
//!   `None`; [`ids`]: the well-known lookup GUIDs.
//! - [`error`]: [`Error`] classified as retryable or not, with
//!   `Retry-After`, and a [`diagnosis`](Error::diagnosis) in plain words.
//!
//! No secret (client secret, access token) appears in any `Debug` or
//! `Display` output or error message.
//!
//! ```no_run
//! use creatio::models::{Activity, Case};
//! use creatio::query::{lookup, Query};
//! use creatio::{http_client_builder, Client, Credentials, InstanceUrl, TokenSource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let http = http_client_builder().build()?; // one per process
//! let instance = InstanceUrl::parse("https://mycompany.creatio.com")?;
//! let credentials = Credentials::new(instance.token_url(None)?, "client-id", "client-secret".to_string());
//! let creatio = Client::new(http.clone(), instance, TokenSource::new(http, credentials));
//!
//! let case = creatio
//!     .create(&Case { subject: Some("Printer on fire".into()), ..Default::default() })
//!     .await?;
//! let activities: Vec<Activity> = creatio
//!     .list(Query::new().filter(lookup("Case").eq(case.id.unwrap())).order_by_asc("CreatedOn"))
//!     .await?;
//! println!("{} has {} activities", case.number.unwrap_or_default(), activities.len());
//! # Ok(()) }
//! ```

pub mod batch;
pub mod client;
pub mod error;
pub mod ids;
pub mod instance;
pub mod models;
pub mod query;
pub mod rights;
pub mod token;

pub use batch::{BatchOp, BatchResult};
pub use client::{http_client_builder, Client};
pub use error::{transport_reason, AddressRefused, Error, Result, TokenError};
pub use instance::{Adjustment, InstanceUrl, UrlError};
pub use rights::ObjectRights;
pub use token::{AccessToken, Credentials, TokenSource};
