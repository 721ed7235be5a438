//! The effective configuration, as `casebridge config` prints it: every
//! setting's value as the service will use it (after defaults and
//! checks), where that value came from, and secrets masked.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::{redact_url, Config, LogFormat, Role, SecretKeySource};
use crate::retention::format_duration;

/// A loaded configuration and how each setting got its value.
#[derive(Debug)]
pub struct Explained {
    pub config: Config,
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    /// Every setting, in the order of `casebridge.example.toml`.
    pub settings: Vec<Setting>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Its `CASEBRIDGE_*` environment variable.
    Env,
    /// The configuration file.
    File,
    /// Neither: the default.
    Default,
}

/// One setting's effective value.
#[derive(Debug)]
pub struct Setting {
    /// The environment variable, e.g. `CASEBRIDGE_LISTEN`.
    pub name: String,
    /// As the service uses it; a secret reads `(set, hidden)`.
    pub value: String,
    pub origin: Origin,
}

const HIDDEN: &str = "(set, hidden)";

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        format!("{s}")
    }
}

/// Every setting of `config` with its origin: the environment when its
/// variable is set and not blank (as [`super::Source`] reads it), else
/// the file when it has the key, else the default.
pub(super) fn settings(
    config: &Config,
    file_keys: &BTreeSet<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Vec<Setting> {
    values(config)
        .into_iter()
        .map(|(key, value)| {
            let name = format!("CASEBRIDGE_{}", key.to_ascii_uppercase());
            let origin = if env(&name).is_some_and(|v| !v.trim().is_empty()) {
                Origin::Env
            } else if file_keys.contains(key) {
                Origin::File
            } else {
                Origin::Default
            };
            Setting {
                name,
                value,
                origin,
            }
        })
        .collect()
}

/// Each setting's file key and effective value. One line per setting, so
/// this is long by nature; a unit test keeps it complete.
fn values(c: &Config) -> Vec<(&'static str, String)> {
    let optional = |v: Option<String>, none: &str| v.unwrap_or_else(|| none.to_string());
    let retention = &c.retention;
    vec![
        ("listen", c.listen.to_string()),
        (
            "public_url",
            optional(c.public_url.clone(), "none (http://<listen address>)"),
        ),
        (
            "metrics_listen",
            optional(
                c.metrics_listen.map(|a| a.to_string()),
                "none (/metrics on the API's address)",
            ),
        ),
        ("header_timeout_secs", secs(c.http.header_timeout)),
        ("body_timeout_secs", secs(c.http.body_timeout)),
        ("keepalive_timeout_secs", secs(c.http.keepalive_timeout)),
        ("max_connections", c.http.max_connections.to_string()),
        ("database_url", redact_url(&c.database_url)),
        (
            "secret_key_file",
            match &c.secret_key {
                SecretKeySource::File(path) => path.display().to_string(),
                SecretKeySource::Inline(_) => "not used (CASEBRIDGE_SECRET_KEY is set)".into(),
            },
        ),
        (
            "secret_key",
            match &c.secret_key {
                SecretKeySource::Inline(_) => HIDDEN.into(),
                SecretKeySource::File(_) => "not set (read from the key file)".into(),
            },
        ),
        (
            "admin_token",
            match &c.admin_token {
                Some(_) => HIDDEN.into(),
                None => "not set (generated at first start, stored hashed)".into(),
            },
        ),
        (
            "allow_private_targets",
            if c.allow_private_targets.is_empty() {
                "none".into()
            } else {
                let nets: Vec<String> = c
                    .allow_private_targets
                    .iter()
                    .map(|n| n.to_string())
                    .collect();
                nets.join(", ")
            },
        ),
        (
            "role",
            match c.role {
                Role::All => "all",
                Role::Api => "api",
                Role::Worker => "worker",
            }
            .into(),
        ),
        ("workers", c.workers.to_string()),
        (
            "sync_give_up_secs",
            (c.sync_policy.give_up_ms / 1000).to_string(),
        ),
        (
            "job_lease_secs",
            (c.sync_policy.lease_ms / 1000).to_string(),
        ),
        (
            "creatio_min_concurrency",
            c.sync_policy.concurrency.floor.to_string(),
        ),
        (
            "creatio_max_concurrency",
            c.sync_policy.concurrency.ceiling.to_string(),
        ),
        (
            "delivery_retry_schedule",
            c.delivery
                .delays
                .iter()
                .map(|d| secs(*d))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("delivery_timeout_secs", secs(c.delivery.timeout)),
        ("ai_provider", c.ai.provider.clone()),
        (
            "ai_base_url",
            optional(c.ai.base_url.as_deref().map(redact_url), "not set"),
        ),
        ("ai_model", optional(c.ai.model.clone(), "not set")),
        (
            "ai_api_key",
            optional(c.ai.api_key.as_ref().map(|_| HIDDEN.into()), "not set"),
        ),
        ("ai_timeout_secs", secs(c.ai.timeout)),
        ("ai_attempts", c.ai.attempts.to_string()),
        ("retain_messages", format_duration(retention.messages)),
        ("retain_events", format_duration(retention.events)),
        ("retain_timeline", format_duration(retention.timeline)),
        ("retain_deliveries", format_duration(retention.deliveries)),
        ("retain_jobs", format_duration(retention.jobs)),
        ("retain_dead_jobs", format_duration(retention.dead_jobs)),
        (
            "purge_interval",
            match retention.interval {
                Some(d) => format_duration(Some(d)),
                None => "0 (no purge)".into(),
            },
        ),
        ("purge_batch", retention.batch.to_string()),
        ("log", c.log.clone()),
        (
            "log_format",
            match c.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
            .into(),
        ),
        (
            "otlp_endpoint",
            optional(
                c.otlp_endpoint.as_deref().map(redact_url),
                "none (traces off)",
            ),
        ),
    ]
}

impl Explained {
    /// The table `casebridge config` prints: one setting a line, its
    /// value and where it came from.
    pub fn render(&self) -> String {
        let width = self
            .settings
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
        let file = self
            .file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut out = match &self.file {
            Some(_) => format!(
                "casebridge {} configuration (file {file}, then the environment):\n",
                crate::VERSION
            ),
            None => format!(
                "casebridge {} configuration (no file: defaults, then the environment):\n",
                crate::VERSION
            ),
        };
        for s in &self.settings {
            let from = match s.origin {
                Origin::Env => "env".to_string(),
                Origin::File => format!("file {file}"),
                Origin::Default => "default".to_string(),
            };
            out.push_str(&format!("{:width$}  {}  [{from}]\n", s.name, s.value));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(env: &[(&str, &str)], file: &str) -> Explained {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("casebridge.toml");
        std::fs::write(&path, file).unwrap();
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::explain(Some(&path), |k| env.get(k).cloned()).unwrap()
    }

    fn setting<'a>(e: &'a Explained, name: &str) -> &'a Setting {
        e.settings
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    /// Every setting the example configuration documents is shown, and
    /// nothing else.
    #[test]
    fn every_documented_setting_is_shown_once() {
        let example = include_str!("../../../../casebridge.example.toml");
        let documented: BTreeSet<String> = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(|k| format!("CASEBRIDGE_{}", k.to_ascii_uppercase()))
            .collect();
        let e = explain(&[], "");
        let shown: Vec<&str> = e.settings.iter().map(|s| s.name.as_str()).collect();
        let unique: BTreeSet<String> = shown.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            unique.len(),
            shown.len(),
            "a setting is shown twice: {shown:?}"
        );
        assert_eq!(unique, documented);
    }

    #[test]
    fn origins_are_env_then_file_then_default() {
        let e = explain(
            &[("CASEBRIDGE_WORKERS", "4"), ("CASEBRIDGE_ROLE", "  ")],
            "workers = 3\nrole = \"api\"\nlisten = \"127.0.0.1:9999\"",
        );
        let workers = setting(&e, "CASEBRIDGE_WORKERS");
        assert_eq!((workers.value.as_str(), workers.origin), ("4", Origin::Env));
        // A blank variable is as if unset, as when the service reads it.
        let role = setting(&e, "CASEBRIDGE_ROLE");
        assert_eq!((role.value.as_str(), role.origin), ("api", Origin::File));
        let listen = setting(&e, "CASEBRIDGE_LISTEN");
        assert_eq!(listen.value, "127.0.0.1:9999");
        let batch = setting(&e, "CASEBRIDGE_PURGE_BATCH");
        assert_eq!(batch.origin, Origin::Default);
        let rendered = e.render();
        assert!(rendered.contains("CASEBRIDGE_WORKERS"), "{rendered}");
        assert!(rendered.contains("[env]"), "{rendered}");
        assert!(rendered.contains("[default]"), "{rendered}");
    }

    #[test]
    fn secrets_are_masked() {
        let e = explain(
            &[
                ("CASEBRIDGE_ADMIN_TOKEN", "operator-token-0123456789"),
                (
                    "CASEBRIDGE_DATABASE_URL",
                    "postgres://cb:db-password-42@127.0.0.1/cb",
                ),
            ],
            "secret_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
             ai_provider = \"openai\"\nai_base_url = \"http://user:url-secret@127.0.0.1:1/v1\"\n\
             ai_model = \"m\"\nai_api_key = \"sk-api-key-secret\"",
        );
        let rendered = e.render();
        for secret in [
            "operator-token-0123456789",
            "db-password-42",
            "AAAAAAAAAAAAAAAA",
            "url-secret",
            "sk-api-key-secret",
        ] {
            assert!(!rendered.contains(secret), "{secret} shown:\n{rendered}");
        }
        assert_eq!(setting(&e, "CASEBRIDGE_ADMIN_TOKEN").value, HIDDEN);
        assert_eq!(setting(&e, "CASEBRIDGE_AI_API_KEY").value, HIDDEN);
        assert_eq!(setting(&e, "CASEBRIDGE_SECRET_KEY").value, HIDDEN);
        assert_eq!(setting(&e, "CASEBRIDGE_SECRET_KEY").origin, Origin::File);
        assert!(setting(&e, "CASEBRIDGE_DATABASE_URL")
            .value
            .contains("cb:***@127.0.0.1"));
    }
}
