//! One Creatio client per org, so an org's workers share one access token
//! (one token request per token lifetime, DESIGN.md §8).
//!
//! A client is rebuilt when the org's saved connection changes (its
//! `updated_at`); requests in flight keep the client they started with, and
//! Creatio honours an issued token until it expires, so swapping credentials
//! never fails work already under way.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use creatio::{Client, TokenSource};

use super::Settings;

#[derive(Clone, Default)]
pub struct Clients {
    by_org: Arc<RwLock<HashMap<String, (i64, Client)>>>,
}

impl Clients {
    /// The org's client for the connection saved at `version`, built from
    /// `settings` (called only when not cached) when needed.
    pub fn get(
        &self,
        http: &reqwest::Client,
        org_id: &str,
        version: i64,
        settings: impl FnOnce() -> Option<Settings>,
    ) -> Option<Client> {
        if let Some((v, c)) = self
            .by_org
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(org_id)
        {
            if *v == version {
                return Some(c.clone());
            }
        }
        let s = settings()?;
        let client = Client::new(
            http.clone(),
            s.instance.clone(),
            TokenSource::new(http.clone(), s.credentials()),
        );
        self.by_org
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(org_id.to_string(), (version, client.clone()));
        Some(client)
    }

    /// Forgets the org's client (disconnect).
    pub fn forget(&self, org_id: &str) {
        self.by_org
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(org_id);
    }
}
