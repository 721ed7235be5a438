//! `casebridge serve`: open and migrate the database, load the secret key,
//! settle the operator token, and serve the API until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api;
use crate::app::App;
use crate::config::{Config, Role, SecretKeySource};
use crate::connection::clients::Clients;
use crate::listener;
use crate::outbound::{GuardedResolver, TargetPolicy};
use crate::secrets::{random_token, token_hash, SecretBox};
use crate::storage::{orgs, Db};
use crate::sync::limiter::Lanes;

/// A running service.
pub struct Running {
    pub addr: SocketAddr,
    pub public_url: String,
    /// Set when this start generated the operator token (first start without
    /// `CASEBRIDGE_ADMIN_TOKEN`): the caller shows it once.
    pub generated_admin_token: Option<String>,
    pub db: Db,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    stop_workers: tokio::sync::watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish, closes the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the server task panicked")??;
        // Workers finish the job in hand; an unfinished one is taken over
        // when its lease expires.
        let _ = self.stop_workers.send(true);
        for w in self.workers {
            let _ = w.await;
        }
        self.db.close().await;
        Ok(())
    }

    /// Serves until the task ends on its own (it does not, short of an error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the server task panicked")??;
        Ok(())
    }
}

/// The one HTTP client for tenant-supplied URLs.
pub fn outbound_http(policy: &TargetPolicy) -> anyhow::Result<reqwest::Client> {
    creatio::http_client_builder()
        .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
        .build()
        .context("could not build the HTTP client")
}

/// The HTTP client for delivery URLs: the same guard, and no redirects
/// (a signed payload is not re-sent to wherever a receiver points).
pub fn delivery_http(policy: &TargetPolicy) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("casebridge/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(10))
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
        .build()
        .context("could not build the delivery HTTP client")
}

pub fn secret_box(config: &Config) -> anyhow::Result<SecretBox> {
    Ok(match &config.secret_key {
        SecretKeySource::Inline(k) => SecretBox::from_base64(k).context("CASEBRIDGE_SECRET_KEY")?,
        SecretKeySource::File(path) => {
            SecretBox::from_file(path).context("CASEBRIDGE_SECRET_KEY_FILE")?
        }
    })
}

/// Starts the service on `config.listen` (port 0: any free port).
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let db = Db::connect(&config.database_url).await.with_context(|| {
        format!(
            "could not open the database (CASEBRIDGE_DATABASE_URL={})",
            crate::config::redact_url(&config.database_url)
        )
    })?;
    let secrets = secret_box(&config)?;
    crate::metrics::handle();
    let (admin_token_hash, generated_admin_token) = operator_token(&config, &db).await?;
    let policy = TargetPolicy::new(config.allow_private_targets.clone());
    let http = outbound_http(&policy)?;
    let delivery_client = delivery_http(&policy)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {} (CASEBRIDGE_LISTEN)", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let app = App {
        db: db.clone(),
        secrets: Arc::new(secrets),
        http,
        policy,
        clients: Clients::default(),
        delivery_http: delivery_client,
        ai: Arc::new(config.ai.provider()?),
        retention: Arc::new(crate::retention::Retention::new(config.retention.clone())),
    };
    let runs_workers = config.role != Role::Api;
    let lanes = Lanes::new(config.sync_policy.concurrency);
    let state = Arc::new(api::ApiState {
        app: app.clone(),
        public_url: public_url.clone(),
        admin_token_hash,
        webhook_limiter: Default::default(),
        lanes: runs_workers.then(|| lanes.clone()),
    });
    let (stop_workers, workers_stop) = tokio::sync::watch::channel(false);
    let upkeep = crate::metrics::spawn_upkeep(workers_stop.clone());
    let mut workers = if runs_workers {
        spawn_workers(&config, &app, lanes, workers_stop)
    } else {
        Vec::new()
    };
    workers.push(upkeep);
    let mut router = if config.role == Role::Worker {
        api::ops_router(state.clone())
    } else {
        api::router(state.clone())
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_metrics, metrics_stopped) = watch_stop();
    if let Some(metrics_addr) = config.metrics_listen {
        serve_metrics(&config, metrics_addr, state, metrics_stopped).await?;
        router = router.layer(axum::middleware::from_fn(api::health::metrics_elsewhere));
    }
    let limits = config.http.clone();
    let task = tokio::spawn(async move {
        let result = listener::serve(listener, router, limits, async move {
            let _ = stopped.await;
        })
        .await;
        let _ = stop_metrics.send(true);
        result
    });
    tracing::info!(%addr, %public_url, "casebridge is listening.");
    Ok(Running {
        addr,
        public_url,
        generated_admin_token,
        db,
        stop,
        task,
        stop_workers,
        workers,
    })
}

/// The operator token's hash: the configured token's, else the stored
/// one, else a new token's (returned, to be shown once).
async fn operator_token(config: &Config, db: &Db) -> anyhow::Result<(String, Option<String>)> {
    Ok(match &config.admin_token {
        Some(t) => (token_hash(t.expose_secret()), None),
        None => match orgs::admin_token_hash(db).await? {
            Some(h) => {
                tracing::info!("The operator token is the one generated at first start (printed then); to replace it, lost or not, set CASEBRIDGE_ADMIN_TOKEN and restart.");
                (h, None)
            }
            None => {
                let token = random_token("cba_");
                let hash = orgs::init_admin_token_hash(db, &token_hash(&token)).await?;
                // Another instance may have stored its own first.
                let ours = hash == token_hash(&token);
                (hash, ours.then_some(token))
            }
        },
    })
}

/// The background work of a process with workers: sync workers, delivery
/// senders, the outbox's reaper and the purge; they stop when `stop` turns
/// true.
fn spawn_workers(
    config: &Config,
    app: &App,
    lanes: Arc<Lanes>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = crate::sync::worker::spawn(
        Arc::new(crate::sync::context::Services::of(app)),
        lanes,
        config.workers,
        config.sync_policy,
        stop.clone(),
    );
    tasks.extend(crate::deliver::sender::spawn(
        Arc::new(crate::deliver::sender::Services::of(app)),
        config.workers.div_ceil(2),
        config.delivery.clone(),
        stop.clone(),
    ));
    tasks.push(tokio::spawn(reap_expired_leases(
        app.db.clone(),
        stop.clone(),
    )));
    tasks.extend(crate::retention::spawn(
        app.db.clone(),
        app.retention.clone(),
        stop,
    ));
    tasks
}

/// `/metrics` on its own address (`CASEBRIDGE_METRICS_LISTEN`), until
/// `stopped` turns true.
async fn serve_metrics(
    config: &Config,
    addr: SocketAddr,
    state: api::AppState,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let metrics_listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr} (CASEBRIDGE_METRICS_LISTEN)"))?;
    tracing::info!(addr = %metrics_listener.local_addr()?, "Metrics are served on their own address.");
    let metrics_app = api::metrics_router(state);
    let limits = config.http.clone();
    tokio::spawn(async move {
        let stopped = wait_stop(stopped);
        if let Err(e) = listener::serve(metrics_listener, metrics_app, limits, stopped).await {
            tracing::error!(error = %e, "The metrics listener stopped.");
        }
    });
    Ok(())
}

fn watch_stop() -> (
    tokio::sync::watch::Sender<bool>,
    tokio::sync::watch::Receiver<bool>,
) {
    tokio::sync::watch::channel(false)
}

async fn wait_stop(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// How often expired leases are looked for.
const REAP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The outbox's reaper, one per process with workers: returns jobs and
/// deliveries whose claimant died mid-run (their lease ran out) to their
/// queues, every few seconds, until `stop` turns true.
async fn reap_expired_leases(db: crate::storage::Db, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match crate::storage::outbox::reap(&db).await {
            Ok(reaped) => {
                if reaped.jobs > 0 {
                    tracing::warn!(
                        jobs = reaped.jobs,
                        "Took over jobs whose worker stopped mid-run."
                    );
                }
                if reaped.deliveries > 0 {
                    tracing::warn!(
                        deliveries = reaped.deliveries,
                        "Took over deliveries whose sender stopped mid-attempt."
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "Could not release expired leases."),
        }
        tokio::select! {
            _ = tokio::time::sleep(REAP_EVERY) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
}
