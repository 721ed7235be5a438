//! A faithful local Creatio for tests, demos and benchmarks.
//!
//! The emulator is casebridge's stand-in for a customer's Creatio tenant. It
//! serves, over real HTTP:
//!
//! - the **Identity Service** token endpoint (`/connect/token`, `/0/connect/token`)
//!   for OAuth 2.0 client credentials, with IdentityServer's error shapes
//!   ([`identity`]);
//! - **OData 4** under `/0/odata` for the Service-module entities, seeded with
//!   the out-of-the-box GUIDs, with Creatio's defaults, quirks and errors
//!   ([`odata`], [`schema`], [`store`], [`seed`]);
//! - **business processes** that call a web service when an activity is added
//!   or a case status changes ([`processes`]);
//! - an **operator API** under `/__emulator/` that is not part of Creatio:
//!   clients and permissions, processes, agent actions, fault injection
//!   ([`faults`]), request statistics ([`stats`]) and reset ([`operator`]).
//!
//! It never depends on casebridge code: it is the independent yardstick the
//! client is measured against. What Creatio does is taken from
//! `shared/reference/creatio-api.md`; where the reference leaves a behaviour
//! open, the choice made here is documented on the code that makes it.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use creatio_emulator::{ClientConfig, Emulator, EmulatorConfig};
//!
//! let emulator = Emulator::start(EmulatorConfig {
//!     clients: vec![ClientConfig::new("my-client", "my-secret")],
//!     ..EmulatorConfig::default()
//! })
//! .await?;
//! println!("Creatio at {}", emulator.url());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

pub mod cost;
pub mod error;
pub mod faults;
pub mod identity;
pub mod odata;
pub mod operator;
pub mod processes;
pub mod rights;
mod routes;
pub mod schema;
pub mod seed;
pub mod stats;
pub mod store;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use identity::{ClientConfig, EntityRights};
pub use processes::{ProcessCall, ProcessDef, Trigger};
pub use stats::StatsSnapshot;

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Lifetime of issued access tokens (Creatio's default is 3600 s).
    pub token_lifetime: Duration,
    /// OAuth clients registered at start.
    pub clients: Vec<ClientConfig>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_lifetime: Duration::from_secs(3600),
            clients: Vec::new(),
        }
    }
}

/// The default answer to an unknown entity set: a live tenant's 401.
pub const UNKNOWN_ENTITY_SET_STATUS: u16 = 401;

/// State shared by every request handler.
pub struct Shared {
    /// `http://127.0.0.1:<port>`: the instance URL.
    pub base_url: String,
    store: RwLock<store::Store>,
    identity: RwLock<identity::Identity>,
    token_lifetime_secs: AtomicU64,
    /// What a request for an entity set the tenant does not have gets: 401
    /// (a live tenant's answer, reference/creatio-evidence.md §6, PYCLIENT
    /// `test_get_collection_error_wrong_collection`) or 404 with ASP.NET's
    /// routing body (what CLIO saw for uncompiled entities). Evidence is
    /// split, so the operator chooses (`PUT /__emulator/settings`).
    unknown_entity_set_status: std::sync::atomic::AtomicU16,
    /// Whether `$batch` atomicity groups are all-or-nothing; by default they
    /// are ASP.NET's change sets, which commit partially ([`odata::batch`]).
    batch_groups_transactional: std::sync::atomic::AtomicBool,
    /// The status of a request the client has no object right for: 403
    /// (default) or 500 — which one Creatio sends is unknown
    /// (reference/creatio-evidence.md §7), and a 500 is what a naive client
    /// retries forever.
    missing_object_right_status: std::sync::atomic::AtomicU16,
    faults: Mutex<faults::Faults>,
    /// The cost model, off until the operator sets one ([`cost`]).
    cost: Arc<cost::Cost>,
    stats: stats::Stats,
    processes: Mutex<Vec<ProcessDef>>,
    process_calls: Mutex<Vec<ProcessCall>>,
    http: reqwest::Client,
    /// What `reset` goes back to.
    initial: EmulatorConfig,
}

impl Shared {
    fn new(base_url: String, config: EmulatorConfig) -> Self {
        let shared = Shared {
            base_url,
            store: RwLock::default(),
            identity: RwLock::default(),
            token_lifetime_secs: AtomicU64::new(config.token_lifetime.as_secs().max(1)),
            unknown_entity_set_status: std::sync::atomic::AtomicU16::new(UNKNOWN_ENTITY_SET_STATUS),
            batch_groups_transactional: std::sync::atomic::AtomicBool::new(false),
            missing_object_right_status: std::sync::atomic::AtomicU16::new(403),
            faults: Mutex::default(),
            cost: Arc::default(),
            stats: stats::Stats::default(),
            processes: Mutex::default(),
            process_calls: Mutex::default(),
            http: reqwest::Client::new(),
            initial: config,
        };
        shared.reset();
        shared
    }

    /// Back to a freshly seeded tenant with only the initial clients.
    pub fn reset(&self) {
        let mut store = store::Store::default();
        seed::seed(&mut store);
        *self.store.write().expect("store lock") = store;
        *self.identity.write().expect("identity lock") = identity::Identity::default();
        for client in self.initial.clients.clone() {
            self.register_client(client);
        }
        self.token_lifetime_secs.store(
            self.initial.token_lifetime.as_secs().max(1),
            Ordering::Relaxed,
        );
        self.unknown_entity_set_status
            .store(UNKNOWN_ENTITY_SET_STATUS, Ordering::Relaxed);
        self.batch_groups_transactional
            .store(false, Ordering::Relaxed);
        self.missing_object_right_status
            .store(403, Ordering::Relaxed);
        self.faults.lock().expect("fault lock").clear();
        self.cost.set(None);
        self.processes.lock().expect("process lock").clear();
        self.process_calls.lock().expect("call log lock").clear();
        self.stats.reset();
    }

    /// Registers (or replaces) a client and creates its technical user: a
    /// Contact and a SysAdminUnit of type User.
    pub fn register_client(&self, config: ClientConfig) -> identity::Client {
        let client = self
            .identity
            .write()
            .expect("identity lock")
            .register(config)
            .clone();
        let supervisor = store::Actor {
            contact_id: uuid::Uuid::parse_str(seed::demo::SUPERVISOR_CONTACT).expect("constant"),
        };
        let name = format!("{} (technical user)", client.config.name);
        let mut store = self.store.write().expect("store lock");
        let now = chrono::Utc::now();
        let contact = serde_json::json!({"Id": client.contact_id, "Name": name});
        let unit = serde_json::json!({"Id": client.admin_unit_id, "Name": name,
            "SysAdminUnitTypeValue": 4, "ContactId": client.contact_id});
        for (entity, body) in [("Contact", contact), ("SysAdminUnit", unit)] {
            if entity == "Contact" && client.contact_id.is_nil() {
                continue;
            }
            let schema = schema::find(entity).expect("emulated");
            store
                .insert(schema, &body, supervisor, now)
                .expect("fresh ids cannot collide");
        }
        client
    }

    /// The status an unknown entity set is answered with: 401 or 404.
    pub fn unknown_entity_set_status(&self) -> u16 {
        self.unknown_entity_set_status.load(Ordering::Relaxed)
    }

    pub fn set_unknown_entity_set_status(&self, status: u16) {
        self.unknown_entity_set_status
            .store(status, Ordering::Relaxed);
    }

    /// The status a missing object right gets: 403 or 500.
    pub fn missing_object_right_status(&self) -> u16 {
        self.missing_object_right_status.load(Ordering::Relaxed)
    }

    pub fn set_missing_object_right_status(&self, status: u16) {
        self.missing_object_right_status
            .store(status, Ordering::Relaxed);
    }

    /// Whether `$batch` atomicity groups roll back as a whole.
    pub fn batch_groups_transactional(&self) -> bool {
        self.batch_groups_transactional.load(Ordering::Relaxed)
    }

    pub fn set_batch_groups_transactional(&self, transactional: bool) {
        self.batch_groups_transactional
            .store(transactional, Ordering::Relaxed);
    }

    pub fn token_lifetime(&self) -> Duration {
        Duration::from_secs(self.token_lifetime_secs.load(Ordering::Relaxed))
    }
}

/// A running emulator. Dropping it leaves the server running until the
/// runtime ends; call [`Emulator::shutdown`] to stop it.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds the listener and starts serving.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(config.listen).await?;
        Self::serve(listener, config)
    }

    /// Serves on an already bound listener.
    pub fn serve(listener: TcpListener, config: EmulatorConfig) -> std::io::Result<Emulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(format!("http://{addr}"), config));
        let app = routes::router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "the Creatio emulator stopped with an error");
            }
        });
        Ok(Emulator {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The instance URL (`http://127.0.0.1:<port>`), as an admin would paste it.
    pub fn url(&self) -> &str {
        &self.shared.base_url
    }

    /// The Identity Service token URL served by this emulator.
    pub fn token_url(&self) -> String {
        format!("{}/connect/token", self.shared.base_url)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, for in-process operator actions.
    pub fn state(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Stops accepting connections and waits for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
