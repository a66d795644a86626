//! `gureum up`: every service in one process on embedded storage.

use crate::Error;
use crate::services::{ContractsSetup, CustomersSetup, DepositsSetup, LendingSetup, ProductsSetup};
use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bus::Bus;
use customers::Customers;
use kernel::Problem;
use ledger::engine::{Engine, EngineConfig};
use ledger::events::EventRelay;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How often the ledger is asked to void pending transfers whose timeout passed.
const EXPIRY_PULSE_MS: u64 = 100;

/// Arguments of `gureum up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// The data folder (created if missing).
    #[arg(long, default_value = crate::DEFAULT_DATA_DIR, env = "GUREUM_DATA_DIR")]
    data_dir: PathBuf,
    /// The address to serve HTTP on.
    #[arg(long, default_value_t = crate::default_listen(), env = "GUREUM_LISTEN")]
    listen: SocketAddr,
    #[command(flatten)]
    door: DoorArgs,
}

/// How clients reach the door: TLS, and which bearer tokens it accepts beside API keys.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DoorArgs {
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key).
    #[arg(long, env = "GUREUM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "GUREUM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (TLS ends in front of Gureum).
    #[arg(long, env = "GUREUM_PLAIN_HTTP")]
    plain_http: bool,
    /// Accept OpenID Connect tokens from this issuer (`iss`; with --oidc-audience and
    /// --oidc-jwks).
    #[arg(long, env = "GUREUM_OIDC_ISSUER", requires_all = ["oidc_audience", "oidc_jwks"])]
    oidc_issuer: Option<String>,
    /// The audience a token must name (`aud`).
    #[arg(long, env = "GUREUM_OIDC_AUDIENCE", requires = "oidc_issuer")]
    oidc_audience: Option<String>,
    /// The issuer's signing keys: a JWKS file or an https:// URL.
    #[arg(long, env = "GUREUM_OIDC_JWKS", requires = "oidc_issuer")]
    oidc_jwks: Option<String>,
    /// The claim holding Gureum role names (a dotted path reaches into objects).
    #[arg(long, env = "GUREUM_OIDC_ROLES_CLAIM", default_value = "roles")]
    oidc_roles_claim: String,
    /// The claim naming the customer a `customer` token belongs to.
    #[arg(
        long,
        env = "GUREUM_OIDC_CUSTOMER_CLAIM",
        default_value = "customer_id"
    )]
    oidc_customer_claim: String,
    /// Block an address or key for a while after a finding of a blocking kind (credential
    /// stuffing, firewall bursts, enumeration, one key from many addresses, bulk regulated
    /// reads); see docs/SECURITY.md before turning it on behind a shared address.
    #[arg(long, env = "GUREUM_BLOCK_ON_FINDINGS")]
    block_on_findings: bool,
    /// How long such a block lasts after the finding's last event, in minutes.
    #[arg(long, env = "GUREUM_BLOCK_MINUTES", default_value_t = 15)]
    block_minutes: u64,
    /// A load balancer's or ingress's address or network (repeatable; comma-separated in the
    /// environment): from such a peer the client's address is read from `X-Forwarded-For`.
    #[arg(
        long = "trusted-proxy",
        env = "GUREUM_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// Requests a second one key or token may send (default 20,000).
    #[arg(long, env = "GUREUM_PRINCIPAL_RATE")]
    principal_rate: Option<f64>,
    /// Requests one key or token may save up and send at once (default 40,000).
    #[arg(long, env = "GUREUM_PRINCIPAL_BURST")]
    principal_burst: Option<f64>,
    /// Requests a second one client address may send, with any key or none (default 50,000).
    #[arg(long, env = "GUREUM_ADDRESS_RATE")]
    address_rate: Option<f64>,
    /// Requests one client address may save up and send at once (default 100,000).
    #[arg(long, env = "GUREUM_ADDRESS_BURST")]
    address_burst: Option<f64>,
}

impl DoorArgs {
    /// Puts the options on `door`; fails on a trusted proxy that is no address or network,
    /// or a rate that is not a positive number.
    fn apply(self, door: &mut Door) -> Result<(), Error> {
        door.gate.trusted_proxies = edge::TrustedProxies::parse(&self.trusted_proxies)?;
        let limits = &mut door.gate.limits;
        for (name, value, slot) in [
            (
                "--principal-rate",
                self.principal_rate,
                &mut limits.principal.per_second,
            ),
            (
                "--principal-burst",
                self.principal_burst,
                &mut limits.principal.burst,
            ),
            (
                "--address-rate",
                self.address_rate,
                &mut limits.address.per_second,
            ),
            (
                "--address-burst",
                self.address_burst,
                &mut limits.address.burst,
            ),
        ] {
            if let Some(value) = value {
                if !(value.is_finite() && value > 0.0) {
                    return Err(format!("{name} must be a positive number, not {value}").into());
                }
                *slot = value;
            }
        }
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            door.tls = Some(crate::tls::TlsFiles { cert, key });
        }
        door.plain_http = self.plain_http;
        door.gate.response.enabled = self.block_on_findings;
        door.gate.response.block_for = Duration::from_secs(self.block_minutes.saturating_mul(60));
        if let (Some(issuer), Some(audience), Some(jwks)) =
            (self.oidc_issuer, self.oidc_audience, self.oidc_jwks)
        {
            let mut oidc =
                edge::OidcConfig::new(&issuer, &audience, edge::JwksSource::parse(&jwks));
            oidc.roles_claim = self.oidc_roles_claim;
            oidc.customer_claim = self.oidc_customer_claim;
            door.oidc = Some(oidc);
        }
        Ok(())
    }
}

/// Runs until SIGINT or SIGTERM, then finishes in-flight work, flushes and returns.
pub fn up(args: UpArgs) -> Result<ExitCode, Error> {
    init_tracing();
    let events = Events::Embedded(args.data_dir.join(BUS_FILE));
    let services = SqlServices {
        customers: Some(CustomersSetup::embedded(&args.data_dir)),
        products: Some(ProductsSetup::embedded(&args.data_dir)),
        deposits: Some(DepositsSetup::embedded(&args.data_dir)),
        contracts: Some(ContractsSetup::embedded(&args.data_dir)),
        lending: Some(LendingSetup::embedded(&args.data_dir)),
    };
    let mut door = Door::embedded(&args.data_dir);
    args.door.apply(&mut door)?;
    crate::tls::check_plain(args.listen, door.tls.as_ref(), door.plain_http)?;
    run_ledger_with_file_journal(&args.data_dir, args.listen, events, services, Some(door))
}

/// The edge's key file in the data folder of `gureum up`.
pub const EDGE_FILE: &str = "edge.sqlite";
/// The audit trail's file in the data folder of `gureum up`.
pub const AUDIT_FILE: &str = "audit.sqlite";
/// The bootstrap admin key's file in the data folder of `gureum up`.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// The one door of a process that faces clients: where its API keys live, the bootstrap
/// admin key, and how the gate behaves.
#[derive(Clone, Debug)]
pub struct Door {
    /// The edge's database (API keys).
    pub keys: store::SqlConfig,
    /// Where a new bootstrap admin key is written (none: an edge on PostgreSQL without a
    /// data folder, which needs `GUREUM_ADMIN_KEY` or an admin key made before).
    pub admin_key_file: Option<PathBuf>,
    /// `GUREUM_ADMIN_KEY`, if set: the admin key instead of a written one.
    pub admin_key_env: Option<String>,
    /// `GUREUM_SERVICE_KEY`, if set: the key the split shape's services send (role `service`).
    pub service_key_env: Option<String>,
    /// The gate's limits and firewall.
    pub gate: edge::GateConfig,
    /// Where the audit trail is appended.
    pub audit: store::SqlConfig,
    /// TLS, unless clients reach this over plain HTTP.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Plain HTTP on an address other than loopback is meant (TLS ends in front).
    pub plain_http: bool,
    /// OpenID Connect tokens accepted beside API keys.
    pub oidc: Option<edge::OidcConfig>,
    /// Redis holding the rate limits of every edge replica (the split shape).
    pub shared_limits: Option<String>,
}

/// The door, open: the gate, the audit trail it appends to, and the trail's writer.
pub struct Entrance {
    /// The gate.
    pub gate: Arc<edge::Gate>,
    /// The audit trail (for `GET /v1/audit/events`).
    pub audit: audit::log::AuditLog,
    /// The TLS configuration clients are served with, if any.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    writer: tokio::task::JoinHandle<()>,
    /// Re-reads the token issuer's keys.
    refreshing: Option<tokio::task::JoinHandle<()>>,
    /// Checks the audit trail's chain as it grows.
    watching: tokio::task::JoinHandle<()>,
    /// Where findings are kept, and the task that writes them there.
    findings: Arc<edge::findings::Findings>,
    keeping: tokio::task::JoinHandle<()>,
}

impl Entrance {
    /// The edge's own routes: `/v1/auth/…`, `/v1/audit/events`, `/v1/guard/findings`.
    pub fn routes(&self) -> Router {
        edge::api::router(self.gate.clone())
            .merge(edge::api::audit_router(self.audit.clone()))
            .merge(edge::api::guard_router(
                self.gate.clone(),
                self.findings.clone(),
            ))
    }

    /// Writes what the audit trail still has queued (once the server, which holds the gate's
    /// other handles, has stopped).
    pub async fn close(self) {
        if let Some(refreshing) = &self.refreshing {
            refreshing.abort();
        }
        // The watch and the findings' writer hold the gate (and so the trail's queue): end
        // them first, then write the findings once more.
        self.watching.abort();
        let _ = self.watching.await;
        self.keeping.abort();
        let _ = self.keeping.await;
        if let Err(e) = self.findings.flush(&self.gate).await {
            tracing::error!(error = %e, "guard: the last findings could not be written");
        }
        drop(self.gate);
        if tokio::time::timeout(AUDIT_FLUSH_TIMEOUT, self.writer)
            .await
            .is_err()
        {
            tracing::error!("audit: the trail's last records could not be written in time");
        }
    }
}

/// How often the audit trail's newest entries are checked against the chain.
const CHAIN_WATCH: Duration = Duration::from_secs(10);
/// How often the detectors read the shared trail (edges on PostgreSQL): how late a finding
/// may come, beyond the audit writer's own batching.
const TRAIL_WATCH: Duration = Duration::from_millis(500);

/// The start of every rate-limit key in Redis.
const SHARED_LIMITS_PREFIX: &str = "gureum:limits:";

/// How often the token issuer's keys are looked at (a file is re-read, a URL fetched when due).
const TOKEN_KEYS_REFRESH: Duration = Duration::from_secs(5);

/// How long a stopping server waits for the audit trail's queue to be written.
const AUDIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

impl Door {
    /// `gureum up`'s door: keys in `<data-dir>/edge.sqlite`, the admin key in
    /// `<data-dir>/admin.key` unless `GUREUM_ADMIN_KEY` is set.
    pub fn embedded(data_dir: &std::path::Path) -> Door {
        Door {
            keys: store::SqlConfig::Sqlite {
                path: data_dir.join(EDGE_FILE),
            },
            admin_key_file: Some(data_dir.join(ADMIN_KEY_FILE)),
            admin_key_env: env_secret("GUREUM_ADMIN_KEY"),
            service_key_env: None,
            gate: edge::GateConfig::default(),
            audit: store::SqlConfig::Sqlite {
                path: data_dir.join(AUDIT_FILE),
            },
            tls: None,
            plain_http: false,
            oidc: None,
            shared_limits: None,
        }
    }

    /// The split shape's edge: keys in `<data_dir>/edge.sqlite` (and a bootstrap key in
    /// `<data_dir>/admin.key`) and the audit trail in `<data_dir>/audit.sqlite` or, without a
    /// data folder, both in `database` (the edge's schema); the services' key from
    /// `GUREUM_SERVICE_KEY`.
    pub fn edge(
        data_dir: Option<&std::path::Path>,
        database: Option<store::SqlConfig>,
    ) -> Result<Door, Error> {
        let (keys, admin_key_file, audit) = match (data_dir, database) {
            (Some(dir), _) => (
                store::SqlConfig::Sqlite {
                    path: dir.join(EDGE_FILE),
                },
                Some(dir.join(ADMIN_KEY_FILE)),
                store::SqlConfig::Sqlite {
                    path: dir.join(AUDIT_FILE),
                },
            ),
            // The trail beside the keys, in the edge's own schema (its own tables).
            (None, Some(database)) => (database.clone(), None, database),
            (None, None) => {
                return Err(
                    "the edge keeps its API keys in [edge] data_dir or in [database]: give one"
                        .into(),
                );
            }
        };
        Ok(Door {
            keys,
            admin_key_file,
            admin_key_env: env_secret("GUREUM_ADMIN_KEY"),
            service_key_env: env_secret("GUREUM_SERVICE_KEY"),
            gate: edge::GateConfig::default(),
            audit,
            tls: None,
            plain_http: false,
            oidc: None,
            shared_limits: None,
        })
    }

    /// Opens the keys and the audit trail, makes sure an admin can get in, and builds the
    /// gate.
    pub async fn open(&self) -> Result<Entrance, Error> {
        // Unusable certificates or token keys stop the start, before anything else opens.
        let tls = self
            .tls
            .as_ref()
            .map(crate::tls::TlsFiles::server_config)
            .transpose()?;
        let tokens = match &self.oidc {
            Some(config) => Some(Arc::new(edge::Oidc::open(config.clone()).await?)),
            None => None,
        };
        if let Some(dir) = self.admin_key_file.as_ref().and_then(|f| f.parent()) {
            std::fs::create_dir_all(dir)?;
        }
        let store = store::Store::open(&self.keys).await?;
        let keys = Arc::new(edge::Keys::open(store).await?);
        if let Some(key) = &self.service_key_env {
            keys.accept_service_key(key)?;
        }
        match keys
            .bootstrap(
                self.admin_key_file.as_deref(),
                self.admin_key_env.as_deref(),
            )
            .await?
        {
            edge::Bootstrapped::Written(path) => tracing::info!(
                file = %path.display(),
                "a bootstrap admin key was written (mode 0600); send it as `Authorization: \
                 Bearer <key>`, create personal keys with it, then keep it offline"
            ),
            edge::Bootstrapped::Environment => {
                tracing::info!("the admin key is GUREUM_ADMIN_KEY's value")
            }
            edge::Bootstrapped::Existing => {}
        }
        // The trail's writer answers before its records are synced anyway (see
        // docs/SECURITY.md); relaxed commits keep its syncs out of the ledger journal's way.
        let trail = store::Store::open_with(&self.audit, store::Durability::Relaxed).await?;
        // Edges sharing a database append one trail: their detectors read it, so each counts
        // every replica's requests.
        let shared_trail = trail.backend() == store::Backend::Postgres;
        let audit = audit::log::AuditLog::open(trail).await?;
        let (auditor, writer) = audit::writer::Auditor::start(audit.clone());
        let mut config = self.gate.clone();
        config.tls = tls.is_some();
        if shared_trail {
            config.detectors = edge::Detectors::SharedTrail;
        }
        let mut gate = edge::Gate::new(keys, config, Some(auditor))?;
        if let Some(url) = &self.shared_limits {
            let shared = edge::limits::Shared::connect(url, SHARED_LIMITS_PREFIX)
                .await
                .map_err(|e| format!("rate limits: Redis cannot be reached: {e}"))?;
            tracing::info!("rate limits shared in Redis");
            gate = gate.with_shared_limits(shared);
        }
        let (gate, refreshing) = match tokens {
            None => (gate, None),
            Some(tokens) => {
                let gate = gate.with_tokens(tokens.clone());
                let refreshing = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(TOKEN_KEYS_REFRESH);
                    loop {
                        tick.tick().await;
                        if let Err(e) = tokens.refresh().await {
                            tracing::warn!(
                                error = %e,
                                "cannot re-read the token issuer's keys; keeping the last ones"
                            );
                        }
                    }
                });
                (gate, Some(refreshing))
            }
        };
        let gate = Arc::new(gate);
        let every = if shared_trail {
            TRAIL_WATCH
        } else {
            CHAIN_WATCH
        };
        let watching = tokio::spawn(gate.clone().watch_chain(audit.clone(), every));
        let findings = Arc::new(edge::findings::Findings::new(gate.keys().store().clone()));
        let keeping = tokio::spawn(findings.clone().keep(gate.clone()));
        Ok(Entrance {
            gate,
            audit,
            tls,
            writer,
            refreshing,
            watching,
            findings,
            keeping,
        })
    }
}

/// The embedded bus's file in the data folder of `gureum up`.
pub const BUS_FILE: &str = "bus.sqlite";

/// The nice value of the event relay's thread (0 is normal; higher yields the CPU).
const EVENTS_NICE: libc::c_int = 10;

/// Where the ledger's `ledger.transfer.committed` events go.
#[derive(Clone, Debug)]
pub enum Events {
    /// The embedded bus in this SQLite file.
    Embedded(std::path::PathBuf),
    /// NATS JetStream at these servers, with this many replicas of the ledger's stream.
    Nats(String, usize),
}

impl Events {
    /// Connects to the bus and makes sure the ledger's stream exists.
    pub async fn open(&self, engine: Arc<Engine>) -> Result<EventRelay, Error> {
        let (bus, replicas) = match self {
            Events::Embedded(path) => {
                let store =
                    store::Store::open(&store::SqlConfig::Sqlite { path: path.clone() }).await?;
                (
                    Bus::Embedded(bus::embedded::EmbeddedBus::open(store).await?),
                    1,
                )
            }
            Events::Nats(url, replicas) => {
                let nats = bus::nats::NatsBus::connect(url)
                    .await?
                    .with_replicas(*replicas);
                (Bus::Nats(nats), *replicas)
            }
        };
        let relay = EventRelay::new(engine, bus, 0);
        relay.ensure_stream(replicas).await?;
        Ok(relay)
    }

    /// Publishes the ledger's events in the background until `stop` turns true, connecting
    /// (again and again, if the bus is down) first. The relay runs on a thread of its own at
    /// a lower scheduling priority (nice 10): events are never lost, only late, so under a
    /// load that fills the cores the money path comes first and the relay catches up after.
    pub fn spawn(
        self,
        engine: Arc<Engine>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let thread = std::thread::Builder::new().name("ledger-events".into()).spawn(move || {
            // SAFETY: setpriority(2) on this thread's own id only changes its nice value.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, EVENTS_NICE) };
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => return tracing::error!(error = %e, "ledger events: cannot start; no events will be published"),
            };
            runtime.block_on(async move {
                while !*stop.borrow() {
                    match self.open(engine.clone()).await {
                        Ok(relay) => return relay.run(stop).await,
                        Err(e) => tracing::warn!(error = %e, "ledger events: cannot reach the bus; retrying"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        // A dropped sender can never say stop: whoever could is gone, so stop now
                        // (waiting on it would return at once, forever, and spin).
                        changed = stop.changed() => if changed.is_err() { break; }
                    }
                }
            });
        });
        tokio::task::spawn_blocking(move || {
            if let Ok(thread) = thread {
                let _ = thread.join();
            }
        })
    }
}

/// The SQL services a process runs next to the ledger (none in a ledger-only process).
#[derive(Clone, Debug, Default)]
pub struct SqlServices {
    /// Customers and the vault.
    pub customers: Option<CustomersSetup>,
    /// The product catalogue.
    pub products: Option<ProductsSetup>,
    /// Deposit accounts.
    pub deposits: Option<DepositsSetup>,
    /// Contracts.
    pub contracts: Option<ContractsSetup>,
    /// Lending (the one-process shape only, so far).
    pub lending: Option<LendingSetup>,
}

impl SqlServices {
    /// Opens each and starts its outbox relay; returns the running services and the relays
    /// (which stop when `stop` turns true).
    pub async fn start(
        &self,
        stop: &tokio::sync::watch::Receiver<bool>,
        engine: Option<Arc<Engine>>,
    ) -> Result<(Services, Vec<tokio::task::JoinHandle<()>>), Error> {
        let mut services = Services {
            ledger: engine,
            ..Services::default()
        };
        let mut relays = Vec::new();
        if let Some(setup) = &self.customers {
            let (service, relaying) = setup.start(stop.clone()).await?;
            services.customers = Some(service);
            relays.push(relaying);
        }
        if let Some(setup) = &self.products {
            let (service, relaying) = setup.start(stop.clone()).await?;
            services.products = Some(service);
            relays.push(relaying);
        }
        if let Some(setup) = &self.deposits {
            let (service, relaying) = setup.start(stop.clone(), &services).await?;
            services.deposits = Some(service);
            relays.push(relaying);
        }
        if let Some(setup) = &self.contracts {
            let (service, relaying) = setup.start(stop.clone(), &services).await?;
            services.contracts = Some(service);
            relays.push(relaying);
        }
        if let Some(setup) = &self.lending {
            let (service, relaying) = setup.start(stop.clone(), &services).await?;
            services.lending = Some(service);
            relays.push(relaying);
        }
        Ok((services, relays))
    }
}

/// The services one process serves over HTTP.
#[derive(Clone, Default)]
pub struct Services {
    /// The ledger.
    pub ledger: Option<Arc<Engine>>,
    /// Customers.
    pub customers: Option<Arc<Customers>>,
    /// Products.
    pub products: Option<Arc<products::Products>>,
    /// Deposit accounts.
    pub deposits: Option<Arc<deposits::Deposits>>,
    /// Contracts.
    pub contracts: Option<Arc<contracts::Contracts>>,
    /// Lending.
    pub lending: Option<Arc<lending::Lending>>,
}

/// The ledger on a local journal — and the SQL services `sql` names — served at `listen`
/// until SIGINT or SIGTERM.
pub fn run_ledger_with_file_journal(
    data_dir: &std::path::Path,
    listen: SocketAddr,
    events: Events,
    sql: SqlServices,
    door: Option<Door>,
) -> Result<ExitCode, Error> {
    let (engine, report) = Engine::open(EngineConfig::new(data_dir))?;
    tracing::info!(
        data_dir = %data_dir.display(),
        snapshot_seq = report.snapshot_seq,
        records_replayed = report.records_replayed,
        accounts = report.accounts,
        transfers = report.transfers,
        millis = report.millis as u64,
        "ledger recovered"
    );
    let engine = Arc::new(engine);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let entrance = match &door {
            Some(door) => Some(door.open().await?),
            None => None,
        };
        let (services, relays) = sql.start(&stopped, Some(engine.clone())).await?;
        let relaying = events.spawn(engine.clone(), stopped);
        let tls = entrance.as_ref().and_then(|e| e.tls.clone());
        let router = match &entrance {
            Some(entrance) => app(services, Some(entrance)),
            // A ledger node of the split shape: only the edge's signed callers.
            None => caller_guard(app(services, None))?,
        };
        let served = serve(router, engine.clone(), listen, tls).await;
        if let Some(entrance) = entrance {
            entrance.close().await;
        }
        let _ = stop.send(true);
        let _ = relaying.await;
        for relaying in relays {
            let _ = relaying.await;
        }
        served
    });
    // Stop the engine outside the runtime: it finishes queued work and writes a snapshot.
    let stopped = engine.shutdown();
    runtime.shutdown_timeout(Duration::from_secs(5));
    served?;
    stopped?;
    if engine.is_failed() {
        return Err(
            "the ledger stopped serving after a journal write failed; nothing unacknowledged \
                    was kept, and a restart recovers everything acknowledged from the journal"
                .into(),
        );
    }
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr, filtered by `GUREUM_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GUREUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The HTTP surface of the services this process runs: their routes, health, and the
/// OpenAPI document of what it serves — behind `gate`, with the edge's own routes
/// (`/v1/auth/…`), when the process faces clients (`gureum up`).
pub fn app(services: Services, entrance: Option<&Entrance>) -> Router {
    let Services {
        ledger: engine,
        customers,
        products,
        deposits,
        contracts,
        lending,
    } = services;
    let document = openapi_document(Served {
        ledger: engine.is_some(),
        customers: customers.is_some(),
        products: products.is_some(),
        deposits: deposits.is_some(),
        contracts: contracts.is_some(),
        lending: lending.is_some(),
        edge: entrance.is_some(),
    });
    let mut router = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz).with_state(engine.clone()))
        .route(
            "/v1/openapi.json",
            get(move || std::future::ready(axum::Json(document.clone()))),
        );
    if let Some(engine) = engine {
        router = router.merge(ledger::api::router(engine));
    }
    if let Some(customers) = customers {
        router = router.merge(customers::api::router(customers));
    }
    if let Some(products) = products {
        router = router.merge(products::api::router(products));
    }
    if let Some(deposits) = deposits {
        router = router.merge(deposits::api::router(deposits));
    }
    if let Some(contracts) = contracts {
        router = router.merge(contracts::api::router(contracts));
    }
    if lending.is_some() {
        router = router.merge(lending::api::router(lending));
    }
    if let Some(entrance) = entrance {
        router = router.merge(entrance.routes());
    }
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    match entrance {
        Some(entrance) => entrance.gate.protect(router),
        None => router,
    }
}

/// A secret from the environment, if set and not blank.
fn env_secret(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
}

/// Which services a document (or a process) covers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Served {
    /// The ledger.
    pub ledger: bool,
    /// Customers.
    pub customers: bool,
    /// Products.
    pub products: bool,
    /// Deposits.
    pub deposits: bool,
    /// Contracts.
    pub contracts: bool,
    /// Lending.
    pub lending: bool,
    /// The edge's own routes (`/v1/auth/…`).
    pub edge: bool,
}

/// One OpenAPI document for the services named: the ledger's (with the health routes), the
/// customers service's, the catalogue's and deposits'.
pub fn openapi_document(served: Served) -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut document = ledger::api::openapi();
    if !served.ledger {
        document
            .paths
            .paths
            .retain(|path, _| !path.starts_with("/v1/ledger/"));
        if let Some(components) = document.components.as_mut() {
            components.schemas.retain(|name, _| name == "Problem");
        }
    }
    if served.customers {
        document.merge(customers::api::ApiDoc::openapi());
    }
    if served.products {
        document.merge(products::api::ApiDoc::openapi());
    }
    if served.deposits {
        document.merge(deposits::api::ApiDoc::openapi());
    }
    if served.contracts {
        document.merge(contracts::api::ApiDoc::openapi());
    }
    if served.lending {
        document.merge(lending::api::ApiDoc::openapi());
    }
    if served.edge {
        document.merge(edge::api::ApiDoc::openapi());
    }
    document.info.description = Some(
        "Gureum core banking. Ids, amounts and timestamps are decimal strings; errors are \
         RFC 9457 problem+json; regulated values are masked unless unmasked with permission."
            .to_owned(),
    );
    document
}

async fn readyz(State(engine): State<Option<Arc<Engine>>>) -> Response {
    if engine.is_some_and(|e| e.is_failed()) {
        Problem::unavailable("the ledger stopped after a storage failure").into_response()
    } else {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    }
}

async fn not_found(uri: Uri) -> Problem {
    Problem::not_found("route_not_found", format!("no route serves {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> Problem {
    Problem::new(405, "method_not_allowed", "Method not allowed")
        .with_detail(format!("{} does not accept this method", uri.path()))
}

/// Serves `app` at `listen`, with the ledger's expiry pulse, until SIGINT or SIGTERM.
async fn serve(
    app: Router,
    engine: Arc<Engine>,
    listen: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), Error> {
    let pulse = expiry_pulse(engine);
    let served = serve_door(app, listen, tls).await;
    pulse.abort();
    served
}

/// Serves `app` at `listen` until SIGINT or SIGTERM, then lets in-flight requests finish.
/// `router` of a service process of the split shape, refusing caller headers the edge did not
/// sign when [`kernel::caller_key::CALLER_KEY_ENV`] holds the key it shares with the edge
/// (see `kernel::caller_key`); as it is otherwise.
pub fn caller_guard(router: Router) -> Result<Router, Error> {
    Ok(match kernel::caller_key::CallerKey::from_env()? {
        Some(key) => router.layer(axum::middleware::from_fn_with_state(
            key,
            kernel::caller_key::require_signed,
        )),
        None => router,
    })
}

pub async fn serve_app(app: Router, listen: SocketAddr) -> Result<(), Error> {
    serve_door(app, listen, None).await
}

/// Serves `app` at `listen` — over TLS with `tls` — until SIGINT or SIGTERM, then lets
/// in-flight requests finish.
pub async fn serve_door(
    app: Router,
    listen: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), Error> {
    use axum::serve::ListenerExt as _;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Scripts and tests wait for this line (also when --listen asks for port 0).
    println!("gureum listening on {scheme}://{local}");
    tracing::info!(%local, scheme, "serving");
    // The peer address reaches handlers (a contract signature records where it came from).
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?
        }
        Some(config) => {
            // `tap_io` gives the listener the peer-address plumbing axum has for TCP.
            let listener = crate::tls::TlsListener::new(listener, config)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?
        }
    }
    Ok(())
}

/// Asks the engine every [`EXPIRY_PULSE_MS`] to void pending transfers whose timeout passed.
pub fn expiry_pulse(engine: Arc<Engine>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(EXPIRY_PULSE_MS));
        loop {
            tick.tick().await;
            if engine.expire().await.is_err() {
                break;
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The edge's table and the services' routes cannot drift apart: every operation the
    /// OpenAPI document of the whole platform describes has a row, and every row an operation.
    #[test]
    fn the_permission_table_names_exactly_the_routes_served() {
        let document = openapi_document(Served {
            ledger: true,
            customers: true,
            products: true,
            deposits: true,
            contracts: true,
            lending: true,
            edge: true,
        });
        let mut described = BTreeSet::new();
        for (path, item) in &document.paths.paths {
            let operations = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
                ("HEAD", &item.head),
                ("OPTIONS", &item.options),
            ];
            for (method, operation) in operations {
                if operation.is_some() {
                    described.insert((method.to_owned(), path.clone()));
                }
            }
        }
        // The document describes itself nowhere; the table must still name it.
        described.insert(("GET".to_owned(), "/v1/openapi.json".to_owned()));
        let table: BTreeSet<(String, String)> = edge::access::ROUTES
            .iter()
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        let missing: Vec<_> = described.difference(&table).collect();
        let extra: Vec<_> = table.difference(&described).collect();
        assert!(
            missing.is_empty(),
            "served but not in the table: {missing:?}"
        );
        assert!(extra.is_empty(), "in the table but not served: {extra:?}");
    }
}
