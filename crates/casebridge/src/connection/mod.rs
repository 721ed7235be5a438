//! The Creatio connection of an org: what an admin types (validated and
//! normalised into [`Settings`]), the checks that prove it works
//! ([`checks`]), and the per-org Creatio clients built from it ([`clients`]).

pub mod checks;
pub mod clients;

use creatio::{Credentials, InstanceUrl};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::domain::OrgId;
use crate::outbound::TargetPolicy;

/// A setting the admin must fix: which field, what is wrong, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
    pub hint: String,
}

/// Connection settings that passed validation.
#[derive(Clone)]
pub struct Settings {
    pub instance: InstanceUrl,
    pub identity_service_url: Option<String>,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub default_owner_id: Option<Uuid>,
    pub default_group_id: Option<Uuid>,
    pub resolved_status_id: Option<Uuid>,
    pub create_case_only_on_handoff: bool,
    pub create_missing_contacts: bool,
    pub case_append_channels: Vec<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("instance", &self.instance.as_str())
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            self.token_url.clone(),
            self.client_id.clone(),
            self.client_secret.clone(),
        )
    }

    /// A digest of everything that signs in (never the secret itself).
    pub fn fingerprint(&self) -> String {
        crate::secrets::token_hash(&format!(
            "{}\n{}\n{}\n{}",
            self.instance,
            self.token_url,
            self.client_id,
            self.client_secret.expose_secret()
        ))
    }

    /// The last four characters of the secret, to show it masked.
    pub fn secret_last4(&self) -> String {
        crate::secrets::last_four(self.client_secret.expose_secret())
    }
}

/// The settings as typed, before validation.
#[derive(Debug, Default, Clone)]
pub struct RawSettings {
    pub instance_url: Option<String>,
    pub identity_service_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub default_owner_id: Option<String>,
    pub default_group_id: Option<String>,
    pub resolved_status_id: Option<String>,
    pub create_case_only_on_handoff: bool,
    pub create_missing_contacts: bool,
    pub case_append_channels: Vec<String>,
}

const INSTANCE_HINT: &str = "Use the address of your Creatio site as it appears in the browser, \
    e.g. https://mycompany.creatio.com.";

impl RawSettings {
    /// A saved connection's settings, with its secret (opened) or none.
    pub fn of_connection(
        c: &crate::storage::connections::Connection,
        secret: Option<SecretString>,
    ) -> RawSettings {
        RawSettings {
            instance_url: Some(c.instance_url.clone()),
            identity_service_url: c.identity_service_url.clone(),
            client_id: c.client_id.clone(),
            client_secret: secret,
            default_owner_id: c.default_owner_id.clone(),
            default_group_id: c.default_group_id.clone(),
            resolved_status_id: c.resolved_status_id.clone(),
            create_case_only_on_handoff: c.create_case_only_on_handoff,
            create_missing_contacts: c.create_missing_contacts,
            case_append_channels: c.case_append_channels.clone(),
        }
    }

    /// Validates and normalises every field, reporting all problems at once.
    pub async fn validate(&self, policy: &TargetPolicy) -> Result<Settings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let instance = self.instance(&mut errors);
        let (client_id, client_secret) = self.credentials(&mut errors);
        let identity_service_url = self
            .identity_service_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let token_url = instance.as_ref().and_then(|i| {
            match i.token_url(identity_service_url.as_deref()) {
                Ok(u) => Some(u),
                Err(e) => {
                    errors.push(FieldError {
                        field: "identity_service_url",
                        message: e.to_string(),
                        hint: "Leave it empty for Creatio cloud sites; otherwise use the value of the system setting OAuth20IdentityServerUrl.".into(),
                    });
                    None
                }
            }
        });
        let default_owner_id = guid(
            "default_owner_id",
            &self.default_owner_id,
            "a Contact",
            "contacts?search=<name>",
            &mut errors,
        );
        let default_group_id = guid(
            "default_group_id",
            &self.default_group_id,
            "a SysAdminUnit role",
            "groups",
            &mut errors,
        );
        let resolved_status_id = guid(
            "resolved_status_id",
            &self.resolved_status_id,
            "a CaseStatus",
            "case-statuses",
            &mut errors,
        );
        let channels = self.channels(&mut errors);
        let identity = token_url
            .as_deref()
            .filter(|_| identity_service_url.is_some());
        check_addresses(policy, instance.as_ref(), identity, &mut errors).await;
        match (instance, token_url, client_id, client_secret) {
            (Some(instance), Some(token_url), Some(client_id), Some(client_secret))
                if errors.is_empty() =>
            {
                Ok(Settings {
                    instance,
                    identity_service_url,
                    token_url,
                    client_id,
                    client_secret,
                    default_owner_id: default_owner_id.flatten(),
                    default_group_id: default_group_id.flatten(),
                    resolved_status_id: resolved_status_id.flatten(),
                    create_case_only_on_handoff: self.create_case_only_on_handoff,
                    create_missing_contacts: self.create_missing_contacts,
                    case_append_channels: channels.unwrap_or_default(),
                })
            }
            _ => Err(errors),
        }
    }

    /// The Instance URL, required and parsed.
    fn instance(&self, errors: &mut Vec<FieldError>) -> Option<InstanceUrl> {
        required("instance_url", &self.instance_url, INSTANCE_HINT, errors).and_then(|url| {
            match InstanceUrl::parse(&url) {
                Ok(i) => Some(i),
                Err(e) => {
                    errors.push(FieldError {
                        field: "instance_url",
                        message: e.to_string(),
                        hint: INSTANCE_HINT.into(),
                    });
                    None
                }
            }
        })
    }

    /// The OAuth app's Client ID and Secret, both required.
    fn credentials(&self, errors: &mut Vec<FieldError>) -> (Option<String>, Option<SecretString>) {
        let client_id = required(
            "client_id",
            &self.client_id,
            "Copy the Client ID of the OAuth app from System Designer → OAuth 2.0 integrated applications.",
            errors,
        );
        let client_secret = match &self.client_secret {
            Some(s) if !s.expose_secret().trim().is_empty() => {
                Some(SecretString::from(s.expose_secret().trim().to_string()))
            }
            _ => {
                errors.push(FieldError {
                    field: "client_secret",
                    message: "client_secret is required".into(),
                    hint: "Copy the Client Secret shown when the OAuth app was created (or generate a new one) in System Designer → OAuth 2.0 integrated applications.".into(),
                });
                None
            }
        };
        (client_id, client_secret)
    }

    /// The channels whose conversations append to a contact's open case,
    /// as the events name them.
    fn channels(&self, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
        let channels = self
            .case_append_channels
            .iter()
            .map(|c| {
                let c = c.trim().to_ascii_lowercase();
                if crate::domain::KNOWN_CHANNELS.contains(&c.as_str()) {
                    Ok(c)
                } else {
                    Err(c)
                }
            })
            .collect::<Result<Vec<_>, _>>();
        match channels {
            Ok(c) => Some(c),
            Err(bad) => {
                errors.push(FieldError {
                    field: "case_append_channels",
                    message: format!("{bad:?} is not a channel casebridge knows"),
                    hint: format!(
                        "List channels as the events name them, among {}; e.g. [\"email\"] or [\"email\", \"whatsapp\"]; [] turns case-append off.",
                        crate::domain::KNOWN_CHANNELS.join(", ")
                    ),
                });
                None
            }
        }
    }
}

/// A required text field, trimmed; `None` (with the error) when empty.
fn required(
    field: &'static str,
    value: &Option<String>,
    hint: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Some(v.to_string()),
        None => {
            errors.push(FieldError {
                field,
                message: format!("{field} is required"),
                hint: hint.into(),
            });
            None
        }
    }
}

/// The outbound guard on the addresses that parsed (only those are worth
/// resolving): the instance, and the Identity Service when one is given.
async fn check_addresses(
    policy: &TargetPolicy,
    instance: Option<&InstanceUrl>,
    identity_token_url: Option<&str>,
    errors: &mut Vec<FieldError>,
) {
    if let Some(i) = instance {
        if let Err(message) = policy.check_url(i.as_str()).await {
            errors.push(FieldError {
                field: "instance_url",
                message,
                hint: INSTANCE_HINT.into(),
            });
        }
    }
    if let Some(t) = identity_token_url {
        if let Err(message) = policy.check_url(t).await {
            errors.push(FieldError {
                field: "identity_service_url",
                message,
                hint: "Use the public address of your Creatio Identity Service.".into(),
            });
        }
    }
}

/// The saved settings of a connection, secret opened and validated as when
/// they were typed. `Err` says why they cannot be used.
pub async fn from_stored(
    secrets: &crate::secrets::SecretBox,
    policy: &TargetPolicy,
    c: &crate::storage::connections::Connection,
) -> Result<Settings, StoredError> {
    let secret = match &c.client_secret_sealed {
        Some(sealed) => Some(
            secrets
                .open(sealed, &secret_context(&c.org_id))
                .map_err(StoredError::Unseal)?,
        ),
        None => None,
    };
    RawSettings::of_connection(c, secret)
        .validate(policy)
        .await
        .map_err(StoredError::Invalid)
}

/// Why saved settings cannot be used.
#[derive(Debug)]
pub enum StoredError {
    Unseal(crate::secrets::SecretError),
    Invalid(Vec<FieldError>),
}

impl std::fmt::Display for StoredError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredError::Unseal(e) => write!(
                f,
                "the saved client secret cannot be decrypted ({e}); the secret key \
                 (CASEBRIDGE_SECRET_KEY or CASEBRIDGE_SECRET_KEY_FILE) is not the one it was saved with"
            ),
            StoredError::Invalid(errors) => {
                let all: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
                write!(f, "{}", all.join("; "))
            }
        }
    }
}

/// The AEAD context of an org's sealed client secret.
pub fn secret_context(org_id: &OrgId) -> String {
    format!("client_secret:{org_id}")
}

/// An optional GUID field: `Some(None)` when empty, `None` when invalid.
fn guid(
    field: &'static str,
    value: &Option<String>,
    kind: &str,
    lookup: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Option<Uuid>> {
    let Some(text) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
        return Some(None);
    };
    // Creatio shows GUIDs bare; people also paste them in braces or quotes.
    let bare = text.trim_matches(|c| matches!(c, '{' | '}' | '"' | '\''));
    match Uuid::parse_str(bare) {
        Ok(id) => Some(Some(id)),
        Err(_) => {
            errors.push(FieldError {
                field,
                message: format!("{field} must be the GUID of {kind}, like 410006e1-ca4e-4502-a9ec-e54d922d2c00; got {text:?}"),
                hint: format!("Pick it by name with GET /v1/creatio/lookups/{lookup}, or leave it empty."),
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RawSettings {
        RawSettings {
            instance_url: Some(url.into()),
            client_id: Some(" id ".into()),
            client_secret: Some(SecretString::from("secret".to_string())),
            ..Default::default()
        }
    }

    fn loopback() -> TargetPolicy {
        TargetPolicy::new(vec!["127.0.0.0/8".parse().unwrap()])
    }

    #[tokio::test]
    async fn normalises_and_keeps_what_was_adjusted() {
        let s = raw("http://127.0.0.1:9/0/")
            .validate(&loopback())
            .await
            .unwrap();
        assert_eq!(s.instance.as_str(), "http://127.0.0.1:9");
        assert_eq!(s.token_url, "http://127.0.0.1:9/0/connect/token");
        assert_eq!(s.client_id, "id");
        assert!(!s.instance.adjustments().is_empty());
    }

    #[tokio::test]
    async fn reports_every_bad_field_at_once() {
        let mut r = raw("http://crm.example.com");
        r.client_id = None;
        r.default_owner_id = Some("Sarah Lee".into());
        r.default_group_id = Some("{8b8d8b4c-3d8b-4c8e-9b5a-6d5e4f3a2b1c}".into());
        let errors = r.validate(&loopback()).await.unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert!(fields.contains(&"instance_url"), "{errors:?}");
        assert!(fields.contains(&"client_id"));
        assert!(fields.contains(&"default_owner_id"));
        assert!(
            !fields.contains(&"default_group_id"),
            "braces are tolerated"
        );
    }

    #[tokio::test]
    async fn private_targets_need_the_operator() {
        let errors = raw("http://127.0.0.1:9")
            .validate(&TargetPolicy::default())
            .await
            .unwrap_err();
        assert!(
            errors[0]
                .message
                .contains("CASEBRIDGE_ALLOW_PRIVATE_TARGETS"),
            "{errors:?}"
        );
    }
}
