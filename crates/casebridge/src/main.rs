//! The `casebridge` binary: one executable, several sub-commands.
//!
//! - `serve`: the service (API, and later the sync workers).
//! - `check`: diagnose a Creatio connection from the terminal.
//! - `emulator`: run the local Creatio emulator (tests, demos, exploration).
//! - `demo`: the whole story on loopback, every step verified.
//! - `config`: the effective configuration, where each value came from.
//! - `ready`: ask a running service's /readyz (container health checks).
//! - `migrate`: bring the database's schema up to this version, no serving.
//! - `backup` / `restore`: SQLite's database and key, online.
//!
//! This file only parses the command line and hands over to the library
//! code that does the work.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use casebridge::config::{Config, LogFormat};
use clap::{Parser, Subcommand};
use creatio_emulator::identity::MAX_TOKEN_LIFETIME;
use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(
    name = "casebridge",
    version = casebridge::VERSION,
    about = "Bridges AI/customer-support conversations and Creatio CRM cases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: configuration from --config (default casebridge.toml
    /// when present) and CASEBRIDGE_* environment variables.
    #[command(after_long_help = casebridge::config::settings_help())]
    Serve(ServeArgs),
    /// Check a Creatio connection the way Test & Save does and print the
    /// report; exits 0 only when every required check passes.
    Check(CheckArgs),
    /// Run a local Creatio emulator: Identity Service tokens, OData 4, $batch,
    /// business processes, and an operator API under /__emulator/.
    Emulator(EmulatorArgs),
    /// Play the whole story on loopback (emulator, service, a receiver):
    /// every step verified; exits 0 only if all were.
    Demo(DemoArgs),
    /// Print the effective configuration: every setting's value as serve
    /// would use it, where it came from (file, env, default), secrets
    /// masked; exits 1 naming the setting when the configuration is invalid.
    Config(ServeArgs),
    /// Ask a running service's /readyz (a container's HEALTHCHECK); exits 0
    /// when it answers 200, 1 otherwise, saying why.
    Ready(ReadyArgs),
    /// Apply the database migrations this version brings, then exit
    /// (`serve` applies them too; this runs them as their own step).
    Migrate(ServeArgs),
    /// Copy the SQLite database, online, and its secret key to FILE and
    /// FILE.key (PostgreSQL: use pg_dump; this says how).
    Backup(BackupArgs),
    /// Put a backup in place as the configured database (which must not
    /// exist yet), with its key, checking both first.
    Restore(BackupArgs),
    /// Print the OpenAPI 3.1 document the service serves at /openapi.json,
    /// or write it to a file (the repository keeps it in docs/openapi.json).
    Openapi(OpenapiArgs),
}

#[derive(clap::Args)]
struct OpenapiArgs {
    /// Write the document to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct BackupArgs {
    /// The backup file (its key is FILE.key beside it).
    file: std::path::PathBuf,
    /// TOML configuration file, as for serve.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct ReadyArgs {
    /// The service's base URL. Default: http:// and the listen address of
    /// the configuration (--config, CASEBRIDGE_LISTEN), an unspecified
    /// address (0.0.0.0, [::]) as loopback.
    #[arg(long)]
    url: Option<String>,
    /// TOML configuration file, as for serve.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Leave everything running afterwards and print how to explore it.
    #[arg(long)]
    keep_running: bool,
    /// With --keep-running: write the addresses, keys and tokens to FILE as
    /// NAME=value lines (for scripts and the examples in examples/).
    #[arg(long, value_name = "FILE", requires = "keep_running")]
    write_env: Option<std::path::PathBuf>,
    /// The chat platform the story's conversation comes from.
    #[arg(
        long,
        value_enum,
        default_value = "webhooks",
        conflicts_with = "keep_running"
    )]
    platform: casebridge::demo::Platform,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (keys as the env names without CASEBRIDGE_, lower case).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The Creatio site, e.g. https://mycompany.creatio.com
    #[arg(long)]
    instance_url: String,
    /// Client ID of the OAuth 2.0 integrated application.
    #[arg(long)]
    client_id: String,
    /// Its Client Secret (or set CREATIO_CLIENT_SECRET, kept out of shell history).
    #[arg(long, env = "CREATIO_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// Identity Service URL, when not derivable from the instance URL.
    #[arg(long)]
    identity_service_url: Option<String>,
    /// Default case owner (Contact GUID) to verify.
    #[arg(long)]
    default_owner_id: Option<String>,
    /// Default case group (SysAdminUnit GUID) to verify.
    #[arg(long)]
    default_group_id: Option<String>,
    /// Resolved status (CaseStatus GUID) to verify.
    #[arg(long)]
    resolved_status_id: Option<String>,
    /// Networks that may be reached although private (CIDRs, comma separated),
    /// e.g. 127.0.0.0/8 for a local emulator.
    #[arg(long, env = "CASEBRIDGE_ALLOW_PRIVATE_TARGETS", value_delimiter = ',')]
    allow_private_targets: Vec<ipnet::IpNet>,
}

/// The port the emulator tries first when `--listen` is not given.
const DEFAULT_EMULATOR_PORT: u16 = 8088;

#[derive(clap::Args)]
struct EmulatorArgs {
    /// Address to listen on. Without it: 127.0.0.1:8088, or a free port if that is taken.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// OAuth client id of the integration the emulator accepts.
    #[arg(long, default_value = "casebridge")]
    client_id: String,
    /// OAuth client secret; generated and printed when not given.
    #[arg(long)]
    client_secret: Option<String>,
    /// Access-token lifetime in seconds (Creatio's default is 3600).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_LIFETIME.as_secs()))]
    token_lifetime_secs: u64,
}

async fn run_emulator(args: EmulatorArgs) -> anyhow::Result<()> {
    let secret = args
        .client_secret
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let config = EmulatorConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        token_lifetime: Duration::from_secs(args.token_lifetime_secs),
        clients: vec![ClientConfig::new(args.client_id.clone(), secret.clone())],
    };
    let emulator = match args.listen {
        Some(addr) => Emulator::start(EmulatorConfig {
            listen: addr,
            ..config
        })
        .await
        .with_context(|| {
            format!("could not listen on {addr}; pick another address with --listen")
        })?,
        None => {
            let preferred = SocketAddr::from(([127, 0, 0, 1], DEFAULT_EMULATOR_PORT));
            match Emulator::start(EmulatorConfig {
                listen: preferred,
                ..config.clone()
            })
            .await
            {
                Ok(e) => e,
                Err(_) => Emulator::start(config)
                    .await
                    .context("could not listen on any loopback port")?,
            }
        }
    };
    println!("Creatio emulator running.");
    println!("  Instance URL:   {}", emulator.url());
    println!("  Token URL:      {}", emulator.token_url());
    println!("  Client ID:      {}", args.client_id);
    println!("  Client secret:  {secret}");
    println!("  Token lifetime: {} s", args.token_lifetime_secs);
    println!("  Operator API:   {}/__emulator/", emulator.url());
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("could not wait for Ctrl-C")?;
    emulator.shutdown().await;
    Ok(())
}

/// How to choose the operator token or replace a lost one, printed with
/// a generated token.
const RESET_HINT: &str = "To choose your own, or to replace a lost one: set CASEBRIDGE_ADMIN_TOKEN (16 characters or more, e.g. `openssl rand -hex 24`) and restart; it takes the generated token's place.";

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok())?;
    // The exporter's blocking HTTP client is made and dropped off the
    // async runtime (reqwest's blocking client may not be dropped on it).
    let traces = match config.otlp_endpoint.clone() {
        Some(endpoint) => Some(
            tokio::task::spawn_blocking(move || casebridge::telemetry::Traces::start(&endpoint))
                .await?
                .map_err(|e| anyhow::anyhow!("CASEBRIDGE_OTLP_ENDPOINT: {e}"))?,
        ),
        None => None,
    };
    init_logging_and_traces(&config.log, config.log_format, traces.as_ref());
    let json = config.log_format == LogFormat::Json;
    let running = casebridge::server::start(config).await?;
    if let Some(token) = &running.generated_admin_token {
        let create_org = format!("curl -X POST {}/v1/orgs -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"name\": \"Acme\"}}'", running.public_url);
        if json {
            print_json_line(
                "WARN",
                serde_json::json!({
                    "message": "Generated the operator admin token (shown once; store it, or set CASEBRIDGE_ADMIN_TOKEN).",
                    "operator_token": token,
                    "reset": RESET_HINT,
                    "create_org": create_org,
                }),
            );
        } else {
            println!("Generated the operator admin token (shown once; store it, or set CASEBRIDGE_ADMIN_TOKEN):");
            println!("  {token}");
            println!("{RESET_HINT}");
            println!("Create an org with:");
            println!("  {create_org}");
        }
    }
    if json {
        print_json_line(
            "INFO",
            serde_json::json!({
                "message": "casebridge listening",
                "addr": running.addr.to_string(),
                "public_url": running.public_url,
                "version": casebridge::VERSION,
            }),
        );
    } else {
        println!(
            "casebridge listening on {} (public URL {})",
            running.addr, running.public_url
        );
    }
    shutdown_signal().await?;
    tracing::info!("Shutting down: finishing requests in flight.");
    let stopped = running.shutdown().await;
    if let Some(traces) = traces {
        tokio::task::spawn_blocking(move || traces.shutdown()).await?;
    }
    stopped
}

async fn run_ready(args: ReadyArgs) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    let base = match args.url {
        Some(url) => url,
        None => {
            let mut addr = Config::load(args.config.as_deref(), |k| std::env::var(k).ok())?.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{addr}")
        }
    };
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    match client.get(&url).send().await {
        Ok(answer) if answer.status().is_success() => {
            println!("ready: {url}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(answer) => {
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            eprintln!("not ready: {url} answered {status}: {body}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("not ready: {url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn run_migrate(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok())?;
    let url = casebridge::config::redact_url(&config.database_url);
    let before = casebridge::storage::Db::schema_version_of(&config.database_url)
        .await
        .with_context(|| format!("could not open the database ({url})"))?;
    let db = casebridge::storage::Db::connect(&config.database_url)
        .await
        .with_context(|| format!("could not migrate the database ({url})"))?;
    let after = db.schema_version().await?;
    db.close().await;
    let applied: Vec<String> = casebridge::storage::known_migrations()
        .into_iter()
        .filter(|(v, _)| *v > before && *v <= after)
        .map(|(v, d)| format!("{v:04} {d}"))
        .collect();
    if applied.is_empty() {
        println!("The database ({url}) is at schema version {after}, this version's newest: nothing to do.");
    } else {
        println!("Migrated the database ({url}) from schema version {before} to {after}:");
        for line in applied {
            println!("  applied {line}");
        }
    }
    Ok(())
}

async fn run_backup(args: BackupArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok())?;
    let started = std::time::Instant::now();
    let report = casebridge::backup::backup(&config, &args.file).await?;
    println!(
        "Backed up {} conversations (schema version {}) to {} ({:.1} MB) in {:.1} s.",
        report.conversations,
        report.schema_version,
        report.file.display(),
        report.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    match &report.key_file {
        Some(key) => println!(
            "The secret key is in {}: keep it with the backup, and as private (without it the secrets in the backup cannot be read).",
            key.display()
        ),
        None => println!(
            "The secret key is CASEBRIDGE_SECRET_KEY (not written to a file): keep its value with the backup; restore needs it."
        ),
    }
    Ok(())
}

async fn run_restore(args: BackupArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok())?;
    let report = casebridge::backup::restore(&config, &args.file).await?;
    println!(
        "Restored {} to {}: {} conversations, {} jobs still to run; schema version {} (the backup's was {}).",
        args.file.display(),
        report.database.display(),
        report.conversations,
        report.open_jobs,
        report.schema_version,
        report.schema_version_before
    );
    if let Some(key) = &report.key_file {
        println!("The backup's secret key is now {}.", key.display());
    }
    println!("Start casebridge serve: pending jobs run from where the backup left them.");
    Ok(())
}

async fn run_check(args: CheckArgs) -> anyhow::Result<std::process::ExitCode> {
    use casebridge::connection::{checks, RawSettings};
    let policy = casebridge::outbound::TargetPolicy::new(args.allow_private_targets);
    let raw = RawSettings {
        instance_url: Some(args.instance_url),
        identity_service_url: args.identity_service_url,
        client_id: Some(args.client_id),
        client_secret: Some(args.client_secret.into()),
        default_owner_id: args.default_owner_id,
        default_group_id: args.default_group_id,
        resolved_status_id: args.resolved_status_id,
        create_case_only_on_handoff: false,
        create_missing_contacts: true,
        case_append_channels: Vec::new(),
    };
    let settings = match raw.validate(&policy).await {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                println!("[FAIL] {:<22} {}", e.field, e.message);
                println!("       {:<22} → {}", "", e.hint);
            }
            return Ok(std::process::ExitCode::FAILURE);
        }
    };
    println!(
        "Checking {} (token URL {})",
        settings.instance, settings.token_url
    );
    let http = casebridge::server::outbound_http(&policy)?;
    let outcome = checks::run(&http, &settings, checks::Scope::Full).await;
    print!("{}", outcome.report);
    if outcome.report.ok {
        println!("All required checks passed.");
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        println!("Some required checks failed; fix what the hints say and run again.");
        Ok(std::process::ExitCode::FAILURE)
    }
}

/// Ctrl-C, or SIGTERM (what service managers and containers send).
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("could not listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("could not wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("could not wait for Ctrl-C")?;
    Ok(())
}

/// Logs to stdout: JSON lines, or text with colours only when stdout is a
/// terminal (a log file or journal gets no escape codes).
fn init_logging(filter: &str, format: LogFormat) {
    init_logging_and_traces(filter, format, None);
}

/// Logs to stdout through `filter`; with `traces`, casebridge's and the
/// Creatio client's spans (info and up) also go to the OTLP exporter,
/// whatever the log filter says.
fn init_logging_and_traces(
    filter: &str,
    format: LogFormat,
    traces: Option<&casebridge::telemetry::Traces>,
) {
    use std::io::IsTerminal;
    use tracing_subscriber::{filter::Targets, Layer, Registry};
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .boxed(),
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> =
        vec![log.with_filter(filter).boxed()];
    if let Some(traces) = traces {
        let ours = Targets::new()
            .with_target("casebridge", tracing::Level::INFO)
            .with_target("creatio", tracing::Level::INFO);
        layers.push(traces.layer().with_filter(ours).boxed());
    }
    let _ = tracing_subscriber::Registry::default()
        .with(layers)
        .try_init();
}

/// A line `serve` prints whatever the log level (its address, a generated
/// token), in JSON mode shaped as the log's JSON lines are, so stdout
/// stays pure JSON.
fn print_json_line(level: &str, fields: serde_json::Value) {
    let line = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": level,
        "fields": fields,
        "target": "casebridge::serve",
    });
    println!("{line}");
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    casebridge::allocator::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => run_serve(args)
            .await
            .map(|_| std::process::ExitCode::SUCCESS),
        Command::Check(args) => {
            init_logging(
                &std::env::var("CASEBRIDGE_LOG").unwrap_or_else(|_| "warn".into()),
                LogFormat::Text,
            );
            run_check(args).await
        }
        Command::Demo(args) => {
            init_logging(
                &std::env::var("CASEBRIDGE_LOG").unwrap_or_else(|_| "error".into()),
                LogFormat::Text,
            );
            let ok = casebridge::demo::run(casebridge::demo::Options {
                keep_running: args.keep_running,
                write_env: args.write_env,
                platform: args.platform,
            })
            .await?;
            Ok(if ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        Command::Config(args) => {
            let explained = Config::explain(args.config.as_deref(), |k| std::env::var(k).ok())?;
            print!("{}", explained.render());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Ready(args) => run_ready(args).await,
        Command::Openapi(args) => {
            let doc = casebridge::api::openapi_json();
            match args.out {
                None => print!("{doc}"),
                Some(path) => {
                    std::fs::write(&path, doc)
                        .with_context(|| format!("could not write {}", path.display()))?;
                    eprintln!("Wrote the OpenAPI document to {}.", path.display());
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            init_logging("warn", LogFormat::Text);
            run_migrate(args)
                .await
                .map(|_| std::process::ExitCode::SUCCESS)
        }
        Command::Backup(args) => {
            init_logging("warn", LogFormat::Text);
            run_backup(args)
                .await
                .map(|_| std::process::ExitCode::SUCCESS)
        }
        Command::Restore(args) => {
            init_logging("warn", LogFormat::Text);
            run_restore(args)
                .await
                .map(|_| std::process::ExitCode::SUCCESS)
        }
        Command::Emulator(args) => {
            init_logging(
                &std::env::var("CASEBRIDGE_LOG").unwrap_or_else(|_| "info".into()),
                LogFormat::Text,
            );
            run_emulator(args)
                .await
                .map(|_| std::process::ExitCode::SUCCESS)
        }
    }
}
