//! Configuration: a TOML file overlaid by `CASEBRIDGE_*` environment
//! variables (DESIGN.md §5). Every setting has a default that works on one
//! machine with SQLite; every error names the setting and the accepted form.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;

pub mod effective;

/// The settings as a TOML file spells them (keys = env names without the
/// `CASEBRIDGE_` prefix, lower case).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    public_url: Option<String>,
    database_url: Option<String>,
    admin_token: Option<String>,
    secret_key: Option<String>,
    secret_key_file: Option<String>,
    allow_private_targets: Option<List>,
    workers: Option<u64>,
    role: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
    ai_provider: Option<String>,
    ai_base_url: Option<String>,
    ai_model: Option<String>,
    ai_api_key: Option<String>,
    ai_timeout_secs: Option<u64>,
    ai_attempts: Option<u64>,
    sync_give_up_secs: Option<u64>,
    job_lease_secs: Option<u64>,
    delivery_retry_schedule: Option<String>,
    delivery_timeout_secs: Option<u64>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    keepalive_timeout_secs: Option<u64>,
    max_connections: Option<u64>,
    metrics_listen: Option<String>,
    retain_messages: Option<String>,
    retain_events: Option<String>,
    retain_timeline: Option<String>,
    retain_deliveries: Option<String>,
    retain_jobs: Option<String>,
    retain_dead_jobs: Option<String>,
    purge_interval: Option<String>,
    purge_batch: Option<u64>,
    otlp_endpoint: Option<String>,
    creatio_min_concurrency: Option<u64>,
    creatio_max_concurrency: Option<u64>,
}

/// A list in the file: an array of strings, or one string whose items are
/// separated by commas or spaces, as its environment variable takes them
/// (`allow_private_targets = "127.0.0.0/8"` is a list of one).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a list: an array of strings, or one string of items separated by commas"
)]
enum List {
    One(String),
    Many(Vec<String>),
}

impl List {
    fn items(self) -> Vec<String> {
        match self {
            List::One(s) => split_list(&s),
            List::Many(v) => v.iter().flat_map(|s| split_list(s)).collect(),
        }
    }
}

/// `a, b c` → `[a, b, c]`.
fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Which parts of the service a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    All,
    Api,
    Worker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the key that seals secrets at rest comes from.
#[derive(Debug, Clone)]
pub enum SecretKeySource {
    Inline(SecretString),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Base of the URLs shown to admins (webhook URL), without a trailing
    /// slash. `None`: `http://<bound address>`.
    pub public_url: Option<String>,
    pub database_url: String,
    /// The operator token; generated at first start when not configured.
    pub admin_token: Option<SecretString>,
    pub secret_key: SecretKeySource,
    /// Networks tenant-supplied URLs may resolve to although private.
    pub allow_private_targets: Vec<IpNet>,
    pub workers: usize,
    pub role: Role,
    pub log: String,
    pub log_format: LogFormat,
    /// The AI fields provider.
    pub ai: AiSettings,
    /// Retry and give-up policy of sync jobs.
    pub sync_policy: crate::sync::settle::Policy,
    /// Retry schedule and timeout of deliveries to the platform.
    pub delivery: crate::deliver::Schedule,
    /// Server timeouts and the connection cap.
    pub http: crate::listener::Limits,
    /// Where `/metrics` is served instead of the API's address, if set.
    pub metrics_listen: Option<SocketAddr>,
    /// How long each kind of data is kept, and the purge's pace.
    pub retention: crate::retention::Settings,
    /// The OTLP/HTTP collector traces go to; `None`: traces off.
    pub otlp_endpoint: Option<String>,
}

/// Who fills AI fields (`CASEBRIDGE_AI_*`).
#[derive(Debug, Clone)]
pub struct AiSettings {
    /// `offline` or `openai` (any OpenAI-compatible server).
    pub provider: String,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<SecretString>,
    /// Per request to the provider.
    pub timeout: std::time::Duration,
    /// Requests per evaluation, the first included.
    pub attempts: u32,
}

impl Default for AiSettings {
    fn default() -> Self {
        AiSettings {
            provider: "offline".into(),
            base_url: None,
            model: None,
            api_key: None,
            timeout: std::time::Duration::from_secs(30),
            attempts: 3,
        }
    }
}

impl AiSettings {
    /// The provider these settings describe.
    pub fn provider(&self) -> Result<crate::ai::Provider, ConfigError> {
        if self.provider == "offline" {
            return Ok(crate::ai::Provider::Offline);
        }
        let base_url = self.base_url.as_deref().ok_or_else(|| {
            err(
                "CASEBRIDGE_AI_BASE_URL",
                "the openai provider needs the server's base URL (https://api.openai.com/v1, http://127.0.0.1:11434/v1 for Ollama, …)",
            )
        })?;
        let model = self.model.as_deref().ok_or_else(|| {
            err(
                "CASEBRIDGE_AI_MODEL",
                "the openai provider needs a model name (gpt-4o-mini, llama3.1, …)",
            )
        })?;
        crate::ai::openai::Client::new(crate::ai::openai::Settings {
            base_url,
            model,
            api_key: self.api_key.as_ref(),
            timeout: self.timeout,
            attempts: self.attempts,
        })
        .map(crate::ai::Provider::OpenAi)
        .map_err(|e| err("CASEBRIDGE_AI_BASE_URL", e))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

fn err(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.into(),
        message: message.into(),
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://casebridge.db";

impl Config {
    /// Everything on loopback (the demo, tests, benchmarks): any free port,
    /// loopback targets allowed, the other settings at their defaults.
    pub fn loopback(
        database_url: String,
        secret_key: SecretKeySource,
        admin_token: SecretString,
    ) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            database_url,
            admin_token: Some(admin_token),
            secret_key,
            allow_private_targets: vec!["127.0.0.0/8".parse().expect("a valid CIDR")],
            workers: 8,
            role: Role::All,
            log: "warn".into(),
            log_format: LogFormat::Text,
            ai: AiSettings::default(),
            sync_policy: Default::default(),
            delivery: Default::default(),
            http: Default::default(),
            metrics_listen: None,
            retention: Default::default(),
            otlp_endpoint: None,
        }
    }

    /// Reads `file` (when given, or `casebridge.toml` when present) and the
    /// environment through `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::explain(file, env).map(|e| e.config)
    }

    /// As [`Config::load`], and what each setting's effective value is and
    /// where it came from (`casebridge config`).
    pub fn explain(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<effective::Explained, ConfigError> {
        let file = match file {
            Some(path) => Some(path.to_path_buf()),
            None if Path::new("casebridge.toml").exists() => Some(PathBuf::from("casebridge.toml")),
            None => None,
        };
        let (file_settings, file_keys) = match &file {
            Some(path) => read_file(path)?,
            None => Default::default(),
        };
        let config = Config::from_parts(file_settings, &env)?;
        let settings = effective::settings(&config, &file_keys, &env);
        Ok(effective::Explained {
            config,
            file,
            settings,
        })
    }

    /// The settings from `f` and the environment, each checked; one
    /// function per group below, each taking its settings out of `f`.
    fn from_parts(
        mut f: FileSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let src = Source { env };
        let (listen, public_url, metrics_listen) = addresses(&src, &mut f)?;
        let (database_url, admin_token, secret_key) = storage(&src, &mut f)?;
        let allow_private_targets = private_targets(&src, &mut f)?;
        let (workers, role, log, log_format) = process(&src, &mut f)?;
        let ai = ai(&src, &mut f)?;
        let sync_policy = sync_policy(&src, &mut f, &ai)?;
        let delivery = delivery(&src, &mut f)?;
        let http = limits(&src, &mut f)?;
        let retention = retention(&src, &mut f)?;
        let otlp_endpoint = otlp_endpoint(&src, &mut f)?;
        Ok(Config {
            listen,
            public_url,
            database_url,
            admin_token,
            secret_key,
            allow_private_targets,
            workers,
            role,
            log,
            log_format,
            ai,
            sync_policy,
            delivery,
            http,
            metrics_listen,
            retention,
            otlp_endpoint,
        })
    }
}

/// Where a setting comes from: `CASEBRIDGE_<NAME>` in the environment
/// when set and not blank, else the file.
struct Source<E> {
    env: E,
}

impl<E: Fn(&str) -> Option<String>> Source<E> {
    fn pick(&self, name: &str, from_file: Option<String>) -> Option<String> {
        (self.env)(&format!("CASEBRIDGE_{name}"))
            .filter(|v| !v.trim().is_empty())
            .or(from_file)
            .map(|v| v.trim().to_string())
    }

    /// A whole-number setting within `range`, else `default`.
    fn number(
        &self,
        name: &str,
        from_file: Option<u64>,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
        what: &str,
    ) -> Result<u64, ConfigError> {
        match self.pick(name, from_file.map(|v| v.to_string())) {
            None => Ok(default),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|v| range.contains(v))
                .ok_or_else(|| {
                    err(
                        &format!("CASEBRIDGE_{name}"),
                        format!(
                            "{text:?} is not {what} from {} to {} (default {default})",
                            range.start(),
                            range.end()
                        ),
                    )
                }),
        }
    }

    /// A timeout of 1 to 3,600 seconds.
    fn seconds(
        &self,
        name: &str,
        from_file: Option<u64>,
        default: std::time::Duration,
    ) -> Result<std::time::Duration, ConfigError> {
        self.number(
            name,
            from_file,
            1..=3600,
            default.as_secs(),
            "a number of seconds",
        )
        .map(std::time::Duration::from_secs)
    }

    /// How long to keep a kind of data (`30d`; `0` or `forever`: `None`).
    fn keep(
        &self,
        name: &str,
        from_file: Option<String>,
        default: Option<std::time::Duration>,
    ) -> Result<Option<std::time::Duration>, ConfigError> {
        match self.pick(name, from_file) {
            None => Ok(default),
            Some(text) => crate::retention::parse_duration(&text)
                .map_err(|e| err(&format!("CASEBRIDGE_{name}"), e)),
        }
    }
}

type Addresses = (SocketAddr, Option<String>, Option<SocketAddr>);

/// Where the API and the metrics listen, and the URL admins are shown.
fn addresses<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
) -> Result<Addresses, ConfigError> {
    let listen_text = src
        .pick("LISTEN", f.listen.take())
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        err(
            "CASEBRIDGE_LISTEN",
            format!("{listen_text:?} is not an address; use host:port such as 127.0.0.1:8080 or 0.0.0.0:8080"),
        )
    })?;
    let public_url = match src.pick("PUBLIC_URL", f.public_url.take()) {
        None => None,
        Some(u) => {
            let parsed = reqwest::Url::parse(&u).map_err(|e| {
                err(
                    "CASEBRIDGE_PUBLIC_URL",
                    format!("{u:?} is not a URL ({e}); use e.g. https://casebridge.example.com"),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(err(
                    "CASEBRIDGE_PUBLIC_URL",
                    format!("{u:?} must be an http(s) URL such as https://casebridge.example.com"),
                ));
            }
            Some(u.trim_end_matches('/').to_string())
        }
    };
    let metrics_listen = match src.pick("METRICS_LISTEN", f.metrics_listen.take()) {
        None => None,
        Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
            err(
                "CASEBRIDGE_METRICS_LISTEN",
                format!("{text:?} is not an address; use host:port such as 127.0.0.1:9090"),
            )
        })?),
    };
    Ok((listen, public_url, metrics_listen))
}

/// The database, the operator token and the key that seals secrets.
fn storage<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
) -> Result<(String, Option<SecretString>, SecretKeySource), ConfigError> {
    let database_url = src
        .pick("DATABASE_URL", f.database_url.take())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        return Err(err(
            "CASEBRIDGE_DATABASE_URL",
            "use sqlite://<file> (the default is sqlite://casebridge.db) or postgres://<user>@<host>/<database>",
        ));
    }
    let admin_token = src
        .pick("ADMIN_TOKEN", f.admin_token.take())
        .map(SecretString::from);
    if admin_token
        .as_ref()
        .is_some_and(|t| secrecy::ExposeSecret::expose_secret(t).len() < 16)
    {
        return Err(err(
            "CASEBRIDGE_ADMIN_TOKEN",
            "must be at least 16 characters; leave it unset to have one generated",
        ));
    }
    let secret_key = match (
        src.pick("SECRET_KEY", f.secret_key.take()),
        src.pick("SECRET_KEY_FILE", f.secret_key_file.take()),
    ) {
        (Some(k), _) => SecretKeySource::Inline(SecretString::from(k)),
        (None, Some(path)) => SecretKeySource::File(PathBuf::from(path)),
        (None, None) => SecretKeySource::File(default_key_file(&database_url)),
    };
    Ok((database_url, admin_token, secret_key))
}

/// The private networks tenant URLs may point at.
fn private_targets<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
) -> Result<Vec<IpNet>, ConfigError> {
    match (src.env)("CASEBRIDGE_ALLOW_PRIVATE_TARGETS") {
        Some(v) => split_list(&v),
        None => f
            .allow_private_targets
            .take()
            .map(List::items)
            .unwrap_or_default(),
    }
    .iter()
    .map(|s| parse_net(s))
    .collect()
}

/// The process: how many workers, which role, how it logs.
fn process<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
) -> Result<(usize, Role, String, LogFormat), ConfigError> {
    let workers = src.number("WORKERS", f.workers.take(), 1..=256, 8, "a number")?;
    let role = match src.pick("ROLE", f.role.take()).as_deref() {
        None | Some("all") => Role::All,
        Some("api") => Role::Api,
        Some("worker") => Role::Worker,
        Some(other) => {
            return Err(err(
                "CASEBRIDGE_ROLE",
                format!("{other:?} is not a role; use all, api or worker"),
            ))
        }
    };
    let log = src
        .pick("LOG", f.log.take())
        .unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log).is_err() {
        return Err(err(
            "CASEBRIDGE_LOG",
            format!("{log:?} is not a log filter; use a level (info, debug) or directives like info,casebridge=debug"),
        ));
    }
    let log_format = match src.pick("LOG_FORMAT", f.log_format.take()).as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(err(
                "CASEBRIDGE_LOG_FORMAT",
                format!("{other:?} is not a format; use text or json"),
            ))
        }
    };
    Ok((workers as usize, role, log, log_format))
}

/// Who fills AI fields; a provider that cannot be built is a start-up
/// error, not a surprise at the first hand-off.
fn ai<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
) -> Result<AiSettings, ConfigError> {
    let provider = src
        .pick("AI_PROVIDER", f.ai_provider.take())
        .unwrap_or_else(|| "offline".into());
    if !matches!(provider.as_str(), "offline" | "openai") {
        return Err(err(
            "CASEBRIDGE_AI_PROVIDER",
            format!("{provider:?} is not a provider; use offline or openai (any OpenAI-compatible server)"),
        ));
    }
    let ai = AiSettings {
        provider,
        base_url: src.pick("AI_BASE_URL", f.ai_base_url.take()),
        model: src.pick("AI_MODEL", f.ai_model.take()),
        api_key: src
            .pick("AI_API_KEY", f.ai_api_key.take())
            .map(SecretString::from),
        timeout: std::time::Duration::from_secs(src.number(
            "AI_TIMEOUT_SECS",
            f.ai_timeout_secs.take(),
            1..=300,
            30,
            "a number of seconds",
        )?),
        attempts: src.number("AI_ATTEMPTS", f.ai_attempts.take(), 1..=10, 3, "a number")? as u32,
    };
    ai.provider()?;
    Ok(ai)
}

/// The delivery policy toward Creatio.
fn sync_policy<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
    ai: &AiSettings,
) -> Result<crate::sync::settle::Policy, ConfigError> {
    let give_up = src.number(
        "SYNC_GIVE_UP_SECS",
        f.sync_give_up_secs.take(),
        60..=90 * 24 * 3600,
        3 * 24 * 3600,
        "a number of seconds",
    )?;
    let lease = src.number(
        "JOB_LEASE_SECS",
        f.job_lease_secs.take(),
        2..=3600,
        120,
        "a number of seconds",
    )?;
    // A hand-off job waits for the AI provider; a job running past its
    // lease is taken over by another worker, so the provider's worst case
    // (every attempt timing out, plus backoff) must fit in it.
    let ai_worst = ai.timeout.as_secs_f64() * ai.attempts as f64
        + 0.5 * (2f64.powi(ai.attempts as i32 - 1) - 1.0);
    if ai.provider != "offline" && ai_worst >= lease as f64 {
        return Err(err(
            "CASEBRIDGE_AI_TIMEOUT_SECS",
            format!(
                "{} s × {} attempts (plus backoff, {ai_worst:.0} s in all) can outlast a sync job's lease of {lease} s; lower CASEBRIDGE_AI_TIMEOUT_SECS or CASEBRIDGE_AI_ATTEMPTS, or raise CASEBRIDGE_JOB_LEASE_SECS",
                ai.timeout.as_secs(),
                ai.attempts
            ),
        ));
    }
    let floor = src.number(
        "CREATIO_MIN_CONCURRENCY",
        f.creatio_min_concurrency.take(),
        1..=64,
        1,
        "a number of requests",
    )? as usize;
    let ceiling = src.number(
        "CREATIO_MAX_CONCURRENCY",
        f.creatio_max_concurrency.take(),
        1..=64,
        8,
        "a number of requests",
    )? as usize;
    if floor > ceiling {
        return Err(err(
            "CREATIO_MIN_CONCURRENCY",
            format!("{floor} is above CASEBRIDGE_CREATIO_MAX_CONCURRENCY ({ceiling}); the floor of the adaptive limit must not exceed its ceiling"),
        ));
    }
    Ok(crate::sync::settle::Policy {
        give_up_ms: give_up as i64 * 1000,
        lease_ms: lease as i64 * 1000,
        concurrency: crate::sync::limiter::Bounds { floor, ceiling },
        ..Default::default()
    })
}

/// The delivery schedule toward the platform.
fn delivery<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
) -> Result<crate::deliver::Schedule, ConfigError> {
    let mut delivery = crate::deliver::Schedule::default();
    if let Some(text) = src.pick("DELIVERY_RETRY_SCHEDULE", f.delivery_retry_schedule.take()) {
        delivery.delays = crate::deliver::Schedule::parse_delays(&text)
            .map_err(|e| err("CASEBRIDGE_DELIVERY_RETRY_SCHEDULE", e))?;
    }
    delivery.timeout = std::time::Duration::from_secs(src.number(
        "DELIVERY_TIMEOUT_SECS",
        f.delivery_timeout_secs.take(),
        1..=60,
        delivery.timeout.as_secs(),
        "a number of seconds",
    )?);
    Ok(delivery)
}

/// The HTTP listener's timeouts and connection cap.
fn limits<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
) -> Result<crate::listener::Limits, ConfigError> {
    let defaults = crate::listener::Limits::default();
    Ok(crate::listener::Limits {
        header_timeout: src.seconds(
            "HEADER_TIMEOUT_SECS",
            f.header_timeout_secs.take(),
            defaults.header_timeout,
        )?,
        body_timeout: src.seconds(
            "BODY_TIMEOUT_SECS",
            f.body_timeout_secs.take(),
            defaults.body_timeout,
        )?,
        keepalive_timeout: src.seconds(
            "KEEPALIVE_TIMEOUT_SECS",
            f.keepalive_timeout_secs.take(),
            defaults.keepalive_timeout,
        )?,
        max_connections: src.number(
            "MAX_CONNECTIONS",
            f.max_connections.take(),
            16..=1_000_000,
            defaults.max_connections as u64,
            "a number",
        )? as usize,
    })
}

/// How long each kind of data is kept, and the purge.
fn retention<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
) -> Result<crate::retention::Settings, ConfigError> {
    let defaults = crate::retention::Settings::default();
    Ok(crate::retention::Settings {
        messages: src.keep(
            "RETAIN_MESSAGES",
            f.retain_messages.take(),
            defaults.messages,
        )?,
        events: src.keep("RETAIN_EVENTS", f.retain_events.take(), defaults.events)?,
        timeline: src.keep(
            "RETAIN_TIMELINE",
            f.retain_timeline.take(),
            defaults.timeline,
        )?,
        deliveries: src.keep(
            "RETAIN_DELIVERIES",
            f.retain_deliveries.take(),
            defaults.deliveries,
        )?,
        jobs: src.keep("RETAIN_JOBS", f.retain_jobs.take(), defaults.jobs)?,
        dead_jobs: src.keep(
            "RETAIN_DEAD_JOBS",
            f.retain_dead_jobs.take(),
            defaults.dead_jobs,
        )?,
        // 0: no purge at all.
        interval: src.keep("PURGE_INTERVAL", f.purge_interval.take(), defaults.interval)?,
        batch: src.number(
            "PURGE_BATCH",
            f.purge_batch.take(),
            1..=10_000,
            defaults.batch as u64,
            "a number of rows",
        )? as usize,
    })
}

/// Where traces go, if anywhere: an http(s) URL, the collector's base
/// (`/v1/traces` is added) or its traces URL.
fn otlp_endpoint<E: Fn(&str) -> Option<String>>(
    src: &Source<E>,
    f: &mut FileSettings,
) -> Result<Option<String>, ConfigError> {
    let Some(url) = src.pick("OTLP_ENDPOINT", f.otlp_endpoint.take()) else {
        return Ok(None);
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        err(
            "CASEBRIDGE_OTLP_ENDPOINT",
            format!("{url:?} is not a URL ({e}); use the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(err(
            "CASEBRIDGE_OTLP_ENDPOINT",
            format!("{url:?} must be an http(s) URL such as http://127.0.0.1:4318 (OTLP over HTTP, not gRPC)"),
        ));
    }
    Ok(Some(url))
}

/// The example configuration: every setting, its variable, default and
/// meaning (a test keeps it complete and valid).
const EXAMPLE: &str = include_str!("../../../../casebridge.example.toml");

/// Every setting, for `serve --help`: its environment variable (or TOML
/// key, the variable's name without `CASEBRIDGE_`, lower case), what it
/// does, and its default or an example value, read from the example
/// configuration so the two cannot drift apart.
pub fn settings_help() -> String {
    let mut out = String::from(
        "Settings: each an environment variable, or the same name without CASEBRIDGE_, lower \
         case, as a key of the --config file (casebridge.example.toml has them all).\n",
    );
    // Inside a setting's description (after its CASEBRIDGE_ line, before
    // its example key), where comment lines continue the description.
    let mut describing = false;
    for line in EXAMPLE.lines() {
        let Some(text) = line.strip_prefix('#').map(str::trim) else {
            describing = false;
            continue;
        };
        if let Some(section) = text.strip_prefix("── ") {
            out.push_str(&format!("\n{}:\n", section.trim_end_matches(['─', ' '])));
            describing = false;
        } else if text.starts_with("CASEBRIDGE_") {
            out.push_str(&format!("  {text}\n"));
            describing = true;
        } else if let Some((key, value)) = text.split_once(" = ") {
            out.push_str(&format!("      e.g. {key} = {value}\n"));
            describing = false;
        } else if describing && !text.is_empty() {
            out.push_str(&format!("    {text}\n"));
        }
    }
    out
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The file's settings, and the keys it sets.
fn read_file(path: &Path) -> Result<(FileSettings, BTreeSet<String>), ConfigError> {
    let setting = format!("config file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| err(&setting, e.to_string()))?;
    let settings = toml::from_str(&text).map_err(|e| err(&setting, e.to_string()))?;
    let keys = text
        .parse::<toml::Table>()
        .map_err(|e| err(&setting, e.to_string()))?
        .keys()
        .cloned()
        .collect();
    Ok((settings, keys))
}

fn parse_net(s: &str) -> Result<IpNet, ConfigError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            err(
                "CASEBRIDGE_ALLOW_PRIVATE_TARGETS",
                format!("{s:?} is not a network; use CIDRs such as 10.0.0.0/8,127.0.0.1/32"),
            )
        })
}

/// `casebridge.key` beside a SQLite database file, else in the working
/// directory.
fn default_key_file(database_url: &str) -> PathBuf {
    let file = crate::storage::sqlite_file(database_url);
    match file.as_deref().and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("casebridge.key"),
        _ => PathBuf::from("casebridge.key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)], file: &str) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let f: FileSettings = toml::from_str(file).map_err(|e| err("file", e.to_string()))?;
        Config::from_parts(f, |k| env.get(k).cloned())
    }

    #[test]
    fn defaults_work_on_one_machine() {
        let c = load(&[], "").unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert!(
            matches!(c.secret_key, SecretKeySource::File(ref p) if p == Path::new("casebridge.key"))
        );
        assert_eq!(c.workers, 8);
        assert_eq!(c.role, Role::All);
        assert!(c.allow_private_targets.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            &[("CASEBRIDGE_LISTEN", "0.0.0.0:9000"), ("CASEBRIDGE_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8, 10.1.2.3")],
            "listen = \"127.0.0.1:1\"\nworkers = 3\ndatabase_url = \"sqlite:///var/lib/cb/cb.db\"\npublic_url = \"https://cb.example.com/\"",
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.workers, 3);
        assert_eq!(c.public_url.as_deref(), Some("https://cb.example.com"));
        assert_eq!(c.allow_private_targets.len(), 2);
        assert!(
            matches!(c.secret_key, SecretKeySource::File(ref p) if p == Path::new("/var/lib/cb/casebridge.key"))
        );
    }

    /// `casebridge.example.toml` documents every setting: with its lines
    /// uncommented each key and value is valid, together they set every
    /// key the file takes (the destructuring stops compiling when a
    /// setting is added), and each names its environment variable.
    #[test]
    fn the_example_file_documents_every_setting_validly() {
        let example = include_str!("../../../../casebridge.example.toml");
        let settings: Vec<&str> = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
            })
            .collect();
        let file = settings.join("\n");
        let FileSettings {
            listen,
            public_url,
            database_url,
            admin_token,
            secret_key,
            secret_key_file,
            allow_private_targets,
            workers,
            role,
            log,
            log_format,
            ai_provider,
            ai_base_url,
            ai_model,
            ai_api_key,
            ai_timeout_secs,
            ai_attempts,
            sync_give_up_secs,
            job_lease_secs,
            delivery_retry_schedule,
            delivery_timeout_secs,
            header_timeout_secs,
            body_timeout_secs,
            keepalive_timeout_secs,
            max_connections,
            metrics_listen,
            retain_messages,
            retain_events,
            retain_timeline,
            retain_deliveries,
            retain_jobs,
            retain_dead_jobs,
            purge_interval,
            purge_batch,
            otlp_endpoint,
            creatio_min_concurrency,
            creatio_max_concurrency,
        } = toml::from_str(&file).unwrap();
        for (key, set) in [
            ("listen", listen.is_some()),
            ("public_url", public_url.is_some()),
            ("database_url", database_url.is_some()),
            ("admin_token", admin_token.is_some()),
            ("secret_key", secret_key.is_some()),
            ("secret_key_file", secret_key_file.is_some()),
            ("allow_private_targets", allow_private_targets.is_some()),
            ("workers", workers.is_some()),
            ("role", role.is_some()),
            ("log", log.is_some()),
            ("log_format", log_format.is_some()),
            ("ai_provider", ai_provider.is_some()),
            ("ai_base_url", ai_base_url.is_some()),
            ("ai_model", ai_model.is_some()),
            ("ai_api_key", ai_api_key.is_some()),
            ("ai_timeout_secs", ai_timeout_secs.is_some()),
            ("ai_attempts", ai_attempts.is_some()),
            ("sync_give_up_secs", sync_give_up_secs.is_some()),
            ("job_lease_secs", job_lease_secs.is_some()),
            ("delivery_retry_schedule", delivery_retry_schedule.is_some()),
            ("delivery_timeout_secs", delivery_timeout_secs.is_some()),
            ("header_timeout_secs", header_timeout_secs.is_some()),
            ("body_timeout_secs", body_timeout_secs.is_some()),
            ("keepalive_timeout_secs", keepalive_timeout_secs.is_some()),
            ("max_connections", max_connections.is_some()),
            ("metrics_listen", metrics_listen.is_some()),
            ("retain_messages", retain_messages.is_some()),
            ("retain_events", retain_events.is_some()),
            ("retain_timeline", retain_timeline.is_some()),
            ("retain_deliveries", retain_deliveries.is_some()),
            ("retain_jobs", retain_jobs.is_some()),
            ("retain_dead_jobs", retain_dead_jobs.is_some()),
            ("purge_interval", purge_interval.is_some()),
            ("purge_batch", purge_batch.is_some()),
            ("otlp_endpoint", otlp_endpoint.is_some()),
            ("creatio_min_concurrency", creatio_min_concurrency.is_some()),
            ("creatio_max_concurrency", creatio_max_concurrency.is_some()),
        ] {
            assert!(set, "{key} is missing from casebridge.example.toml");
            let var = format!("CASEBRIDGE_{}", key.to_uppercase());
            assert!(
                example.contains(&var),
                "{var} is not named in casebridge.example.toml"
            );
        }
        load(&[], &file).unwrap();
    }

    #[test]
    fn a_list_in_the_file_is_an_array_or_one_string() {
        for file in [
            "allow_private_targets = \"127.0.0.0/8\"",
            "allow_private_targets = [\"127.0.0.0/8\"]",
        ] {
            let c = load(&[], file).unwrap();
            assert_eq!(c.allow_private_targets.len(), 1, "{file}");
        }
        let c = load(&[], "allow_private_targets = \"127.0.0.0/8, ::1/128\"").unwrap();
        assert_eq!(c.allow_private_targets.len(), 2);
        let e = load(&[], "allow_private_targets = \"localhost\"").unwrap_err();
        assert!(e.to_string().contains("localhost"), "{e}");
        let e = load(&[], "allow_private_targets = 8").unwrap_err();
        assert!(
            e.to_string().contains("an array of strings, or one string"),
            "{e}"
        );
    }

    #[test]
    fn retention_reads_durations_from_the_file_and_the_environment() {
        let c = load(
            &[
                ("CASEBRIDGE_RETAIN_MESSAGES", "14d"),
                ("CASEBRIDGE_PURGE_INTERVAL", "0"),
            ],
            "retain_timeline = \"forever\"\nretain_jobs = \"12h\"\npurge_batch = 50",
        )
        .unwrap();
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(c.retention.messages, Some(14 * day));
        assert_eq!(c.retention.timeline, None);
        assert_eq!(c.retention.jobs, Some(day / 2));
        assert_eq!(c.retention.events, Some(30 * day), "the default");
        assert_eq!(c.retention.interval, None, "0: no purge");
        assert_eq!(c.retention.batch, 50);
        let e = load(&[("CASEBRIDGE_RETAIN_EVENTS", "30 days")], "").unwrap_err();
        assert_eq!(e.setting, "CASEBRIDGE_RETAIN_EVENTS");
        assert!(e.message.contains("30d"), "{e}");
        let e = load(&[("CASEBRIDGE_PURGE_BATCH", "0")], "").unwrap_err();
        assert_eq!(e.setting, "CASEBRIDGE_PURGE_BATCH");
    }

    #[test]
    fn errors_name_the_setting_and_the_form() {
        for (env, setting) in [
            (("CASEBRIDGE_LISTEN", "8080"), "CASEBRIDGE_LISTEN"),
            (
                ("CASEBRIDGE_DATABASE_URL", "mysql://x"),
                "CASEBRIDGE_DATABASE_URL",
            ),
            (("CASEBRIDGE_WORKERS", "0"), "CASEBRIDGE_WORKERS"),
            (("CASEBRIDGE_ROLE", "boss"), "CASEBRIDGE_ROLE"),
            (
                ("CASEBRIDGE_ALLOW_PRIVATE_TARGETS", "intranet"),
                "CASEBRIDGE_ALLOW_PRIVATE_TARGETS",
            ),
            (
                ("CASEBRIDGE_ADMIN_TOKEN", "short"),
                "CASEBRIDGE_ADMIN_TOKEN",
            ),
            (
                ("CASEBRIDGE_AI_PROVIDER", "magic"),
                "CASEBRIDGE_AI_PROVIDER",
            ),
        ] {
            let e = load(&[env], "").unwrap_err();
            assert_eq!(e.setting, setting, "{e}");
        }
        let e = load(&[], "listn = \"x\"").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn the_ai_provider_is_checked_at_start() {
        let openai = ("CASEBRIDGE_AI_PROVIDER", "openai");
        let url = ("CASEBRIDGE_AI_BASE_URL", "http://127.0.0.1:11434/v1");
        let model = ("CASEBRIDGE_AI_MODEL", "llama3.1");
        for (env, setting, says) in [
            (
                vec![openai],
                "CASEBRIDGE_AI_BASE_URL",
                "needs the server's base URL",
            ),
            (
                vec![openai, url],
                "CASEBRIDGE_AI_MODEL",
                "needs a model name",
            ),
            (
                vec![openai, ("CASEBRIDGE_AI_BASE_URL", "ftp://x"), model],
                "CASEBRIDGE_AI_BASE_URL",
                "http(s)",
            ),
            (
                vec![("CASEBRIDGE_AI_TIMEOUT_SECS", "0")],
                "CASEBRIDGE_AI_TIMEOUT_SECS",
                "from 1 to 300",
            ),
            (
                vec![("CASEBRIDGE_AI_ATTEMPTS", "many")],
                "CASEBRIDGE_AI_ATTEMPTS",
                "from 1 to 10",
            ),
            (
                vec![
                    openai,
                    url,
                    model,
                    ("CASEBRIDGE_AI_TIMEOUT_SECS", "60"),
                    ("CASEBRIDGE_AI_ATTEMPTS", "2"),
                ],
                "CASEBRIDGE_AI_TIMEOUT_SECS",
                "can outlast a sync job's lease of 120 s",
            ),
        ] {
            let e = load(&env, "").unwrap_err();
            assert_eq!(e.setting, setting, "{e}");
            assert!(e.message.contains(says), "{says} in {e}");
        }
        let c = load(
            &[openai, url, model],
            "ai_timeout_secs = 20\nai_attempts = 2",
        )
        .unwrap();
        assert_eq!(c.ai.timeout, std::time::Duration::from_secs(20));
        assert_eq!(c.ai.attempts, 2);
        assert_eq!(c.ai.provider().unwrap().name(), "openai");
    }
}
