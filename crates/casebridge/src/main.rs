//! The `casebridge` binary: one executable, several sub-commands.
//!
//! - `emulator`: run the local Creatio emulator (tests, demos, exploration).
//!
//! The service itself (`serve`), the end-to-end `demo` and the connection
//! diagnosis (`check`) arrive with their issues; this file only parses the
//! command line and hands over to the library code that does the work.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use creatio_emulator::identity::MAX_TOKEN_LIFETIME;
use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig};

#[derive(Parser)]
#[command(
    name = "casebridge",
    version,
    about = "Bridges AI/customer-support conversations and Creatio CRM cases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local Creatio emulator: Identity Service tokens, OData 4, $batch,
    /// business processes, and an operator API under /__emulator/.
    Emulator(EmulatorArgs),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CASEBRIDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Emulator(args) => run_emulator(args).await,
    }
}
