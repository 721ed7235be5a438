//! The Identity Service: OAuth 2.0 client-credentials clients, the token
//! endpoint (`/connect/token` and `/0/connect/token`) and bearer validation.
//!
//! Token errors follow IdentityServer exactly (reference §1.6): every failure
//! is HTTP 400 with `{"error": "<code>"}` and no `error_description`; success
//! is `{"access_token","expires_in","token_type","scope"}` with no-cache
//! headers and `scope` = `ApplicationAccess_<id>`. Each client has a
//! technical user (a Contact and a SysAdminUnit) whose contact is stamped on
//! everything the client writes, and per-client permissions: the
//! `CanUseODataService` system operation and per-entity rights.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The longest token lifetime the emulator issues (a year); longer requests
/// are capped so that expiry times stay representable.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// One of the four record operations Creatio grants per object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Create,
    Update,
    Delete,
}

/// Object rights of a technical user on one entity; absent means allowed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntityRights {
    #[serde(default = "yes")]
    pub read: bool,
    #[serde(default = "yes")]
    pub create: bool,
    #[serde(default = "yes")]
    pub update: bool,
    #[serde(default = "yes")]
    pub delete: bool,
}

fn yes() -> bool {
    true
}

impl Default for EntityRights {
    fn default() -> Self {
        EntityRights {
            read: true,
            create: true,
            update: true,
            delete: true,
        }
    }
}

/// How an OAuth client is set up ("OAuth 2.0 integrated applications").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: String,
    #[serde(default = "default_name")]
    pub name: String,
    /// The "Active" checkbox; an inactive integration gets `invalid_client`.
    #[serde(default = "yes")]
    pub active: bool,
    /// Whether the client may use the client-credentials grant.
    #[serde(default = "yes")]
    pub client_credentials_grant: bool,
    /// The `CanUseODataService` system operation of its technical user.
    #[serde(default = "yes")]
    pub can_use_odata: bool,
    /// Object rights that differ from "allowed", by entity name.
    #[serde(default)]
    pub rights: HashMap<String, EntityRights>,
    /// Whether the technical user has a Contact. A technical user's page
    /// has Name, Language and Time zone only, so its records' `CreatedById`
    /// may be empty (reference/creatio-evidence.md §6, ACADEMY); without
    /// one, what it writes carries the empty GUID there.
    #[serde(default = "yes")]
    pub has_contact: bool,
    /// The technical user's system operations besides `CanUseODataService`
    /// (`can_use_odata`): `CanSelectEverything` ("View any data"),
    /// `CanInsertEverything`, `CanUpdateEverything`, `CanDeleteEverything`
    /// (ACADEMY system operation reference; they override object and record
    /// rights). Answered by `RightsService.GetCanExecuteOperation`.
    #[serde(default = "granted_operations")]
    pub system_operations: BTreeSet<String>,
}

/// The system operations the emulator knows, besides `CanUseODataService`.
pub const SYSTEM_OPERATIONS: [&str; 4] = [
    "CanSelectEverything",
    "CanInsertEverything",
    "CanUpdateEverything",
    "CanDeleteEverything",
];

/// What casebridge's README tells admins to grant the technical user:
/// "View any data", so agents' records can be read.
fn granted_operations() -> BTreeSet<String> {
    ["CanSelectEverything".to_string()].into()
}

fn default_name() -> String {
    "casebridge".to_string()
}

impl ClientConfig {
    /// A fully privileged, active client.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        ClientConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            name: default_name(),
            active: true,
            client_credentials_grant: true,
            can_use_odata: true,
            rights: HashMap::new(),
            has_contact: true,
            system_operations: granted_operations(),
        }
    }
}

/// A registered client and its technical user.
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    #[serde(flatten)]
    pub config: ClientConfig,
    /// The technical user's Contact Id (`CreatedById` of its records); the
    /// nil GUID for a technical user without a Contact.
    pub contact_id: Uuid,
    /// The technical user's SysAdminUnit Id.
    pub admin_unit_id: Uuid,
    /// Unique per client, as on a real instance: `ApplicationAccess_<id>`.
    pub scope: String,
}

/// What a request handler needs to know about the caller, copied out of the
/// lock so that handlers never hold it.
#[derive(Debug, Clone)]
pub struct ClientSnapshot {
    pub client_id: String,
    pub contact_id: Uuid,
    pub can_use_odata: bool,
    rights: HashMap<String, EntityRights>,
    pub system_operations: BTreeSet<String>,
}

impl ClientSnapshot {
    pub fn may(&self, entity: &str, op: Operation) -> bool {
        let r = self.rights.get(entity).copied().unwrap_or_default();
        match op {
            Operation::Read => r.read,
            Operation::Create => r.create,
            Operation::Update => r.update,
            Operation::Delete => r.delete,
        }
    }

    /// The caller for operator actions done "as an agent".
    pub fn human(contact_id: Uuid) -> Self {
        ClientSnapshot {
            client_id: String::new(),
            contact_id,
            can_use_odata: true,
            rights: HashMap::new(),
            system_operations: SYSTEM_OPERATIONS.iter().map(|o| o.to_string()).collect(),
        }
    }
}

impl Client {
    pub fn snapshot(&self) -> ClientSnapshot {
        ClientSnapshot {
            client_id: self.config.client_id.clone(),
            contact_id: self.contact_id,
            can_use_odata: self.config.can_use_odata,
            rights: self.config.rights.clone(),
            system_operations: self.config.system_operations.clone(),
        }
    }
}

struct IssuedToken {
    client_id: String,
    expires_at: Instant,
}

/// Registered clients and issued tokens.
#[derive(Default)]
pub struct Identity {
    pub clients: HashMap<String, Client>,
    tokens: HashMap<String, IssuedToken>,
}

/// A token-endpoint failure: the IdentityServer error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    InvalidRequest,
    InvalidClient,
    UnsupportedGrantType,
    UnauthorizedClient,
    InvalidScope,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            TokenError::InvalidRequest => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::UnauthorizedClient => "unauthorized_client",
            TokenError::InvalidScope => "invalid_scope",
        }
    }
}

/// A token the endpoint issued.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
    pub token_type: &'static str,
    pub scope: String,
}

/// A form-encoded token request, with client authentication from either the
/// body or an HTTP Basic header (both parsers exist in IdentityServer).
pub struct TokenRequest {
    pub form: HashMap<String, String>,
    pub basic: Option<(String, String)>,
}

/// Decodes `Authorization: Basic base64(id:secret)`; ids and secrets are
/// form-url-encoded inside, per RFC 6749 §2.3.1.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
            .unwrap_or_else(|| s.to_string())
    };
    Some((unescape(id), unescape(secret)))
}

fn random_token() -> String {
    // 256 random bits, base64url, opaque to clients as a JWT is meant to be.
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Identity {
    /// Registers a client, creating its technical user ids.
    pub fn register(&mut self, config: ClientConfig) -> &Client {
        let scope = format!("ApplicationAccess_{}", Uuid::new_v4().simple());
        let id = config.client_id.clone();
        let contact_id = if config.has_contact {
            Uuid::new_v4()
        } else {
            Uuid::nil()
        };
        let client = Client {
            config,
            contact_id,
            admin_unit_id: Uuid::new_v4(),
            scope,
        };
        self.clients.insert(id.clone(), client);
        &self.clients[&id]
    }

    /// Validates a token request the way IdentityServer's token endpoint does:
    /// client authentication first, then the grant type, then scopes.
    pub fn issue(
        &mut self,
        req: &TokenRequest,
        lifetime: Duration,
    ) -> Result<TokenResponse, TokenError> {
        let (id, secret) = match (&req.basic, req.form.get("client_id")) {
            (Some((id, secret)), _) => (id.clone(), Some(secret.clone())),
            (None, Some(id)) => (id.clone(), req.form.get("client_secret").cloned()),
            (None, None) => return Err(TokenError::InvalidClient),
        };
        let client = self.clients.get(&id).ok_or(TokenError::InvalidClient)?;
        if !client.config.active || secret.as_deref() != Some(client.config.client_secret.as_str())
        {
            return Err(TokenError::InvalidClient);
        }
        match req.form.get("grant_type").map(String::as_str) {
            None | Some("") => return Err(TokenError::UnsupportedGrantType),
            Some("client_credentials") => {}
            Some("authorization_code" | "refresh_token" | "password" | "implicit") => {
                return Err(TokenError::UnauthorizedClient)
            }
            Some(_) => return Err(TokenError::UnsupportedGrantType),
        }
        if !client.config.client_credentials_grant {
            return Err(TokenError::UnauthorizedClient);
        }
        if let Some(requested) = req.form.get("scope") {
            let ok = requested.split_whitespace().all(|s| s == client.scope);
            if !ok {
                return Err(TokenError::InvalidScope);
            }
        }
        let scope = client.scope.clone();
        let lifetime = lifetime.min(MAX_TOKEN_LIFETIME);
        let now = Instant::now();
        if self.tokens.len() > 10_000 {
            self.tokens.retain(|_, t| t.expires_at > now);
        }
        let token = random_token();
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                client_id: id,
                expires_at: now + lifetime,
            },
        );
        Ok(TokenResponse {
            access_token: token,
            expires_in: lifetime.as_secs(),
            token_type: "Bearer",
            scope,
        })
    }

    /// The client behind a bearer token, if the token is known and unexpired.
    pub fn authenticate(&self, token: &str) -> Option<ClientSnapshot> {
        let t = self.tokens.get(token)?;
        if t.expires_at <= Instant::now() {
            return None;
        }
        self.clients.get(&t.client_id).map(Client::snapshot)
    }

    /// Invalidates issued tokens (all, or one client's). Returns how many.
    pub fn revoke(&mut self, client_id: Option<&str>) -> usize {
        let before = self.tokens.len();
        self.tokens
            .retain(|_, t| client_id.is_some_and(|c| c != t.client_id));
        before - self.tokens.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_decodes_escaped_credentials() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20id:s%3Acret")
        );
        assert_eq!(
            parse_basic(&header),
            Some(("my id".into(), "s:cret".into()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
    }
}
