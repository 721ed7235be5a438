//! One Creatio client per org, so an org's workers share one access token
//! (one token request per token lifetime, DESIGN.md §8).
//!
//! A client is rebuilt only when what signs in changes (instance, token
//! URL, client id or secret: [`Settings::fingerprint`]); other changes
//! (owner, group, status) keep the client and its token. Requests in flight
//! keep the client they started with, and Creatio honours an issued token
//! until it expires, so swapping credentials never fails work under way.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use creatio::{Client, TokenSource};

use super::Settings;
use crate::domain::OrgId;

#[derive(Clone, Default)]
pub struct Clients {
    by_org: Arc<RwLock<HashMap<OrgId, (String, Client)>>>,
    /// Opened and validated settings by org, for the saved version
    /// (`updated_at`) they came from: workers need them for every job, and
    /// opening the secret and validating (DNS included) each time is waste.
    settings: Arc<RwLock<HashMap<OrgId, (i64, Settings)>>>,
}

impl Clients {
    /// The org's client for `s`, reused while the sign-in is unchanged.
    pub fn get(&self, http: &reqwest::Client, org_id: &OrgId, s: &Settings) -> Client {
        let fingerprint = s.fingerprint();
        if let Some((f, c)) = self
            .by_org
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(org_id)
        {
            if *f == fingerprint {
                return c.clone();
            }
        }
        let client = Client::new(
            http.clone(),
            s.instance.clone(),
            TokenSource::new(http.clone(), s.credentials()),
        );
        self.by_org
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(org_id.clone(), (fingerprint, client.clone()));
        client
    }

    /// The org's settings saved at `version`, from the cache or `load`.
    pub async fn settings<E, F>(&self, org_id: &OrgId, version: i64, load: F) -> Result<Settings, E>
    where
        F: std::future::Future<Output = Result<Settings, E>>,
    {
        if let Some((v, s)) = self
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(org_id)
        {
            if *v == version {
                return Ok(s.clone());
            }
        }
        let s = load.await?;
        self.settings
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(org_id.clone(), (version, s.clone()));
        Ok(s)
    }

    /// Forgets the org's client (disconnect).
    pub fn forget(&self, org_id: &OrgId) {
        self.settings
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(org_id);
        self.by_org
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(org_id);
    }
}
