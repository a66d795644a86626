//! `gureum serve <service> --config FILE`: one service in its own process, the scale-out shape.
//!
//! Today's services: `ledger` (journal in a local folder, or replicated on NATS JetStream with
//! a standby taking over), `customers` (PostgreSQL, a vault keyring file, NATS JetStream; any
//! number of replicas), `products` (PostgreSQL, NATS JetStream), `deposits` (PostgreSQL, NATS
//! JetStream, the other services through `[upstream]`), `contracts` (the same, documents in
//! `[objects]`), `lending` (the same, its keyring in `[vault]`) and `edge` (the one door: routes every
//! `/v1/…` request to the service that owns it). Settings come from a TOML file, and a few from the environment (which wins):
//! `GUREUM_LISTEN`, `GUREUM_DATA_DIR`, `GUREUM_NATS_URL`, `GUREUM_NODE`,
//! `GUREUM_DATABASE_URL` (so a password can come from a secret), `GUREUM_VAULT_KEYRING`,
//! `GUREUM_UPSTREAM_URL`.
//!
//! ```toml
//! listen = "127.0.0.1:8081"
//!
//! [ledger]
//! journal = "jetstream"        # or "file"
//! data_dir = "./gureum-data/ledger"
//! nats_url = "nats://127.0.0.1:4222"
//! shard = 0
//! replicas = 3
//! lease_ttl_ms = 2000
//! node = "ledger-a"
//!
//! snapshot_after_mib = 256     # a standby snapshots to [objects] this often
//!
//! [objects]                    # or kind = "s3", bucket, prefix, endpoint, region
//! kind = "local"               #    (keys: GUREUM_S3_ACCESS_KEY_ID, GUREUM_S3_SECRET_ACCESS_KEY)
//! root = "./gureum-data/objects"
//!
//! [database]                   # the SQL services (customers)
//! url = "postgres://gureum_customers@127.0.0.1:5432/gureum"
//! schema = "customers"         # default: the service's name
//!
//! [vault]                      # the customers service's keyring (a mounted secret)
//! keyring = "/etc/gureum-vault/vault.toml"
//!
//! [bus]                        # where the SQL services publish their events
//! nats_url = "nats://127.0.0.1:4222"
//! replicas = 3
//!
//! [upstream]                   # deposits: where the ledger, customers and products are
//! url = "http://127.0.0.1:8080" #   (the edge)
//!
//! [edge]
//! ledger = ["http://127.0.0.1:8081", "http://127.0.0.1:8082"]
//! customers = ["http://127.0.0.1:8083"]
//! products = ["http://127.0.0.1:8084"]
//! deposits = ["http://127.0.0.1:8085"]
//! contracts = ["http://127.0.0.1:8086"]
//! lending = ["http://127.0.0.1:8087"]
//! data_dir = "./gureum-data/edge"  # API keys and the bootstrap admin.key; or in [database]
//! plain_http = false           # true: TLS ends in front of the edge (needed off loopback
//!                              #   without [edge.tls])
//!
//! [edge.tls]                   # HTTPS (PEM files)
//! cert = "/etc/gureum-tls/tls.crt"
//! key = "/etc/gureum-tls/tls.key"
//!
//! [edge.oidc]                  # OpenID Connect tokens beside API keys
//! issuer = "https://id.example-bank.kr"
//! audience = "gureum"
//! jwks = "https://id.example-bank.kr/.well-known/jwks.json"   # or a file
//! roles_claim = "roles"        # default; a dotted path reaches into objects
//! leeway_seconds = 60          # default; at most 300
//! ```
//!
//! `[edge]` also takes `trusted_proxies = ["10.0.0.0/8"]` (the load balancers or ingresses in
//! front, whose `X-Forwarded-For` names the client), `block_on_findings = true` (block an
//! address or key for `block_minutes`, default 15, after a finding of a blocking kind; see
//! docs/SECURITY.md), and
//! `[edge.limits]`: `redis_url` (every replica's buckets in one Redis; `GUREUM_REDIS_URL`
//! wins), `principal_per_second`, `principal_burst`, `address_per_second`, `address_burst`,
//! `failures_per_second`, `failures_burst`.
//!
//! Secrets never go in these files: `GUREUM_ADMIN_KEY` and `GUREUM_SERVICE_KEY` (the edge),
//! `GUREUM_API_KEY` (a service's key for the edge: the service key), database passwords in
//! `GUREUM_DATABASE_URL`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kernel::Problem;
use ledger::engine::{Engine, EngineConfig};
use ledger::journal::JournalError;
use ledger::replicated::{self, Follower, Lease, RenewError, ReplicationConfig, SnapshotStore};
use serde::Deserialize;
use tower::ServiceExt;

use crate::Error;
use crate::server::{self, init_tracing};

/// How often a standby reads new journal messages and tries for the lease.
const STANDBY_POLL: Duration = Duration::from_millis(100);

/// The services `gureum serve` runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The account system.
    Ledger,
    /// Customers and the regulated-data vault.
    Customers,
    /// The product catalogue.
    Products,
    /// Deposit accounts (reaching the ledger, customers and products through `[upstream]`).
    Deposits,
    /// Contracts (documents in `[objects]`; customers and products through `[upstream]`).
    Contracts,
    /// Lending (its keyring in `[vault]`; customers and products through `[upstream]`).
    Lending,
    /// The one door: routes requests to the services.
    Edge,
}

/// Arguments of `gureum serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The service to run.
    #[arg(value_enum)]
    service: Service,
    /// The TOML configuration file.
    #[arg(long)]
    config: PathBuf,
}

/// A `gureum serve` configuration file.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to serve HTTP.
    pub listen: SocketAddr,
    /// The ledger's settings.
    pub ledger: Option<LedgerConfig>,
    /// The edge's settings.
    pub edge: Option<EdgeConfig>,
    /// Object storage.
    pub objects: Option<ObjectsSection>,
    /// The SQL services' database.
    pub database: Option<DatabaseSection>,
    /// The customers service's keyring.
    pub vault: Option<VaultSection>,
    /// The SQL services' event bus.
    pub bus: Option<BusSection>,
    /// Where a service reaches the others (deposits: the ledger, customers, products).
    pub upstream: Option<UpstreamSection>,
}

/// `[upstream]`: the address other services are reached at — the edge, which routes to them.
/// The key a service sends there is a secret, so never in this file: `GUREUM_API_KEY` (the
/// edge's `GUREUM_SERVICE_KEY`).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// e.g. `http://edge:8080`; `GUREUM_UPSTREAM_URL` wins.
    pub url: String,
}

impl UpstreamSection {
    /// The edge at `url`, with `GUREUM_API_KEY` if set.
    fn connection(&self) -> kernel::http::Upstream {
        let key = std::env::var("GUREUM_API_KEY")
            .ok()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty());
        kernel::http::Upstream::new(&self.url, key)
    }
}

/// `[database]`: PostgreSQL for the SQL services, one schema each.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `postgres://user[:password]@host[:port]/database`; `GUREUM_DATABASE_URL` wins.
    pub url: String,
    /// The service's schema (default: the service's name).
    pub schema: Option<String>,
}

/// `[vault]`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    /// The keyring file (every replica reads the same one); `GUREUM_VAULT_KEYRING` wins.
    pub keyring: PathBuf,
}

/// `[bus]`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct BusSection {
    /// NATS servers, comma-separated; `GUREUM_NATS_URL` wins.
    pub nats_url: String,
    /// Replicas of each service's stream.
    #[serde(default = "one")]
    pub replicas: usize,
}

/// Where the ledger keeps its journal.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JournalKind {
    /// A local folder (one node).
    File,
    /// A NATS JetStream stream (replicated; leader and standbys).
    Jetstream,
}

/// `[ledger]`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// `file` or `jetstream`.
    pub journal: JournalKind,
    /// The data folder (file journal).
    pub data_dir: Option<PathBuf>,
    /// NATS servers, comma-separated (JetStream journal).
    pub nats_url: Option<String>,
    /// The ledger shard this node serves.
    #[serde(default)]
    pub shard: u32,
    /// JetStream replicas of the journal.
    #[serde(default = "one")]
    pub replicas: usize,
    /// Milliseconds a leader's lease lives without renewal.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// This node's name.
    pub node: Option<String>,
    /// A standby writes a snapshot to object storage (`[objects]`) after this many MiB of
    /// journal since its last one.
    #[serde(default = "default_snapshot_after_mib")]
    pub snapshot_after_mib: u64,
}

/// `[objects]`: object storage (the replicated ledger's snapshots). The S3 keys come from
/// `GUREUM_S3_ACCESS_KEY_ID` and `GUREUM_S3_SECRET_ACCESS_KEY`, never from the file.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum ObjectsSection {
    /// A folder.
    Local {
        /// The folder.
        root: PathBuf,
    },
    /// An S3-compatible bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix inside the bucket.
        #[serde(default)]
        prefix: String,
        /// Endpoint URL (none: AWS).
        endpoint: Option<String>,
        /// Region.
        region: String,
    },
}

impl ObjectsSection {
    /// Opens the storage it names.
    pub fn open(&self) -> Result<store::Objects, Error> {
        Ok(store::Objects::open(&self.config()?)?)
    }

    /// The configuration it names, with the S3 keys from the environment.
    pub fn config(&self) -> Result<store::ObjectsConfig, Error> {
        Ok(match self {
            ObjectsSection::Local { root } => store::ObjectsConfig::Local { root: root.clone() },
            ObjectsSection::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                let key = |name: &str| {
                    std::env::var(name)
                        .map_err(|_| format!("{name} must be set for [objects] kind = \"s3\""))
                };
                store::ObjectsConfig::S3 {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    endpoint: endpoint.clone(),
                    region: region.clone(),
                    access_key_id: key("GUREUM_S3_ACCESS_KEY_ID")?,
                    secret_access_key: key("GUREUM_S3_SECRET_ACCESS_KEY")?,
                }
            }
        })
    }
}

/// `[edge]`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// The ledger's nodes, tried in order until one is serving (the leader).
    pub ledger: Vec<String>,
    /// The customers service's replicas, tried in order until one answers.
    #[serde(default)]
    pub customers: Vec<String>,
    /// The products service's replicas.
    #[serde(default)]
    pub products: Vec<String>,
    /// The deposits service's replicas.
    #[serde(default)]
    pub deposits: Vec<String>,
    /// The contracts service's replicas.
    #[serde(default)]
    pub contracts: Vec<String>,
    /// The lending service's replicas.
    #[serde(default)]
    pub lending: Vec<String>,
    /// Where the edge keeps its API keys (`edge.sqlite`) and writes the bootstrap
    /// `admin.key`; without it, in `[database]` (schema `edge`) — then the first admin key
    /// comes from `GUREUM_ADMIN_KEY`.
    pub data_dir: Option<PathBuf>,
    /// `[edge.tls]`: serve HTTPS with `cert` and `key` (PEM files).
    pub tls: Option<crate::tls::TlsFiles>,
    /// Serve plain HTTP on an address other than loopback: TLS ends in front of the edge
    /// (an ingress, a mesh).
    #[serde(default)]
    pub plain_http: bool,
    /// `[edge.oidc]`: OpenID Connect tokens accepted beside API keys.
    pub oidc: Option<OidcSection>,
    /// Block an address or key for a while after a finding of a blocking kind.
    #[serde(default)]
    pub block_on_findings: bool,
    /// How long such a block lasts after the finding's last event (default 15).
    pub block_minutes: Option<u64>,
    /// The load balancers' or ingresses' addresses or networks in front of the edge, whose
    /// `X-Forwarded-For` names the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// `[edge.limits]`: rate limits, shared by the replicas in Redis.
    #[serde(default)]
    pub limits: LimitsSection,
}

/// `[edge.limits]`.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Redis holding every replica's buckets (`redis://host:6379`); `GUREUM_REDIS_URL` wins
    /// (a URL with a password belongs in the environment). Without either, each replica keeps
    /// its own.
    pub redis_url: Option<String>,
    /// Requests a second per principal (default 20,000).
    pub principal_per_second: Option<f64>,
    /// Requests a principal may save up (default 40,000).
    pub principal_burst: Option<f64>,
    /// Requests a second per client address, authenticated or not (default 50,000).
    pub address_per_second: Option<f64>,
    /// Requests an address may save up (default 100,000).
    pub address_burst: Option<f64>,
    /// Failed authentications a second per address (default 5).
    pub failures_per_second: Option<f64>,
    /// Failed authentications an address may save up (default 20).
    pub failures_burst: Option<f64>,
}

/// `[edge.oidc]`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// The `iss` tokens carry.
    pub issuer: String,
    /// The audience `aud` must hold.
    pub audience: String,
    /// The issuer's keys: a JWKS file or an `https://` URL.
    pub jwks: String,
    /// The claim holding Gureum role names (default `roles`).
    pub roles_claim: Option<String>,
    /// The clock skew accepted, in seconds (default 60, at most 300).
    pub leeway_seconds: Option<u64>,
    /// The claim naming a `customer` token's customer (default `customer_id`).
    pub customer_claim: Option<String>,
}

impl OidcSection {
    /// The verifier's configuration.
    pub fn config(&self) -> edge::OidcConfig {
        let mut config = edge::OidcConfig::new(
            &self.issuer,
            &self.audience,
            edge::JwksSource::parse(&self.jwks),
        );
        if let Some(claim) = &self.roles_claim {
            config.roles_claim = claim.clone();
        }
        if let Some(seconds) = self.leeway_seconds {
            config.leeway_seconds = seconds;
        }
        if let Some(claim) = &self.customer_claim {
            config.customer_claim = claim.clone();
        }
        config
    }
}

fn one() -> usize {
    1
}

fn default_lease_ttl_ms() -> u64 {
    2_000
}

fn default_snapshot_after_mib() -> u64 {
    256
}

impl Config {
    /// Reads the file and applies the environment overrides.
    pub fn load(path: &std::path::Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Ok(listen) = std::env::var("GUREUM_LISTEN") {
            config.listen = listen
                .parse()
                .map_err(|e| format!("GUREUM_LISTEN={listen}: {e}"))?;
        }
        if let Ok(url) = std::env::var("GUREUM_DATABASE_URL") {
            let database = config.database.get_or_insert(DatabaseSection {
                url: String::new(),
                schema: None,
            });
            database.url = url;
        }
        if let Ok(keyring) = std::env::var("GUREUM_VAULT_KEYRING") {
            config.vault = Some(VaultSection {
                keyring: keyring.into(),
            });
        }
        if let Ok(url) = std::env::var("GUREUM_UPSTREAM_URL") {
            config.upstream = Some(UpstreamSection { url });
        }
        if let (Some(bus), Ok(url)) = (config.bus.as_mut(), std::env::var("GUREUM_NATS_URL")) {
            bus.nats_url = url;
        }
        if let Some(ledger) = config.ledger.as_mut() {
            if let Ok(dir) = std::env::var("GUREUM_DATA_DIR") {
                ledger.data_dir = Some(dir.into());
            }
            if let Ok(url) = std::env::var("GUREUM_NATS_URL") {
                ledger.nats_url = Some(url);
            }
            if let Ok(node) = std::env::var("GUREUM_NODE") {
                ledger.node = Some(node);
            }
        }
        Ok(config)
    }
}

impl Config {
    /// The customers service's setup from `[database]`, `[vault]` and `[bus]`.
    pub fn customers_setup(&self) -> Result<crate::services::CustomersSetup, Error> {
        let vault = self
            .vault
            .as_ref()
            .ok_or("the configuration has no [vault] section")?;
        Ok(crate::services::CustomersSetup {
            sql: self.sql(customers::SERVICE)?,
            keyring: vault.keyring.clone(),
            create_keyring: false,
            bus: self.bus_setup()?,
        })
    }

    /// The products service's setup from `[database]` and `[bus]`.
    pub fn products_setup(&self) -> Result<crate::services::ProductsSetup, Error> {
        Ok(crate::services::ProductsSetup {
            sql: self.sql(products::SERVICE)?,
            bus: self.bus_setup()?,
        })
    }

    /// The deposits service's setup from `[database]`, `[bus]` and `[upstream]`.
    pub fn deposits_setup(&self) -> Result<crate::services::DepositsSetup, Error> {
        let upstream = self
            .upstream
            .as_ref()
            .ok_or("the configuration has no [upstream] section (the edge's address)")?;
        Ok(crate::services::DepositsSetup {
            sql: self.sql(deposits::SERVICE)?,
            bus: self.bus_setup()?,
            upstream: Some(upstream.connection()),
        })
    }

    /// The contracts service's setup from `[database]`, `[objects]`, `[bus]` and `[upstream]`.
    pub fn contracts_setup(&self) -> Result<crate::services::ContractsSetup, Error> {
        let upstream = self
            .upstream
            .as_ref()
            .ok_or("the configuration has no [upstream] section (the edge's address)")?;
        let objects = self
            .objects
            .as_ref()
            .ok_or("the configuration has no [objects] section")?;
        Ok(crate::services::ContractsSetup {
            sql: self.sql(contracts::SERVICE)?,
            objects: objects.config()?,
            bus: self.bus_setup()?,
            upstream: Some(upstream.connection()),
        })
    }

    /// The lending service's setup from `[database]`, `[vault]`, `[bus]` and `[upstream]`.
    pub fn lending_setup(&self) -> Result<crate::services::LendingSetup, Error> {
        let upstream = self
            .upstream
            .as_ref()
            .ok_or("the configuration has no [upstream] section (the edge's address)")?;
        let vault = self
            .vault
            .as_ref()
            .ok_or("the configuration has no [vault] section")?;
        Ok(crate::services::LendingSetup {
            sql: self.sql(lending::SERVICE)?,
            keyring: vault.keyring.clone(),
            create_keyring: false,
            bus: self.bus_setup()?,
            upstream: Some(upstream.connection()),
        })
    }

    /// `[database]` for `service` (its schema defaults to the service's name).
    fn sql(&self, service: &str) -> Result<store::SqlConfig, Error> {
        let database = self
            .database
            .as_ref()
            .ok_or("the configuration has no [database] section")?;
        Ok(store::SqlConfig::Postgres {
            url: database.url.clone(),
            schema: database
                .schema
                .clone()
                .unwrap_or_else(|| service.to_owned()),
        })
    }

    fn bus_setup(&self) -> Result<crate::services::BusSetup, Error> {
        let bus = self
            .bus
            .as_ref()
            .ok_or("the configuration has no [bus] section")?;
        Ok(crate::services::BusSetup::Nats {
            url: bus.nats_url.clone(),
            replicas: bus.replicas,
        })
    }
}

/// Runs the service until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> Result<ExitCode, Error> {
    init_tracing();
    let config = Config::load(&args.config)?;
    // A caller key too short to use stops the start here, before anything runs.
    kernel::caller_key::CallerKey::from_env()?;
    match args.service {
        Service::Ledger => {
            let ledger = config
                .ledger
                .clone()
                .ok_or("the configuration has no [ledger] section")?;
            match ledger.journal {
                JournalKind::File => {
                    let data_dir = ledger
                        .data_dir
                        .ok_or("[ledger] data_dir is required with journal = \"file\"")?;
                    let events = match &ledger.nats_url {
                        Some(url) => server::Events::Nats(url.clone(), ledger.replicas),
                        None => server::Events::Embedded(data_dir.join(server::BUS_FILE)),
                    };
                    server::run_ledger_with_file_journal(
                        &data_dir,
                        config.listen,
                        events,
                        server::SqlServices::default(),
                        None,
                    )
                }
                JournalKind::Jetstream => serve_replicated_ledger(&config, &ledger),
            }
        }
        Service::Customers
        | Service::Products
        | Service::Deposits
        | Service::Contracts
        | Service::Lending => {
            let sql = match args.service {
                Service::Customers => server::SqlServices {
                    customers: Some(config.customers_setup()?),
                    ..server::SqlServices::default()
                },
                Service::Products => server::SqlServices {
                    products: Some(config.products_setup()?),
                    ..server::SqlServices::default()
                },
                Service::Deposits => server::SqlServices {
                    deposits: Some(config.deposits_setup()?),
                    ..server::SqlServices::default()
                },
                Service::Contracts => server::SqlServices {
                    contracts: Some(config.contracts_setup()?),
                    ..server::SqlServices::default()
                },
                _ => server::SqlServices {
                    lending: Some(config.lending_setup()?),
                    ..server::SqlServices::default()
                },
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let (services, relays) = sql.start(&stopped, None).await?;
                let served = server::serve_app(
                    server::caller_guard(server::app(services, None))?,
                    config.listen,
                )
                .await;
                let _ = stop.send(true);
                for relaying in relays {
                    let _ = relaying.await;
                }
                served
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Service::Edge => {
            let edge = config
                .edge
                .clone()
                .ok_or("the configuration has no [edge] section")?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let database = match config.database {
                Some(_) => Some(config.sql("edge")?),
                None => None,
            };
            let mut door = server::Door::edge(edge.data_dir.as_deref(), database)?;
            door.tls = edge.tls.clone();
            door.plain_http = edge.plain_http;
            door.oidc = edge.oidc.as_ref().map(OidcSection::config);
            door.gate.response.enabled = edge.block_on_findings;
            door.gate.trusted_proxies = edge::TrustedProxies::parse(&edge.trusted_proxies)?;
            let limits = &mut door.gate.limits;
            let set = |value: Option<f64>, slot: &mut f64| {
                if let Some(v) = value {
                    *slot = v;
                }
            };
            set(
                edge.limits.principal_per_second,
                &mut limits.principal.per_second,
            );
            set(edge.limits.principal_burst, &mut limits.principal.burst);
            set(
                edge.limits.address_per_second,
                &mut limits.address.per_second,
            );
            set(edge.limits.address_burst, &mut limits.address.burst);
            set(
                edge.limits.failures_per_second,
                &mut limits.failures.per_second,
            );
            set(edge.limits.failures_burst, &mut limits.failures.burst);
            door.shared_limits = std::env::var("GUREUM_REDIS_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
                .or_else(|| edge.limits.redis_url.clone());
            if let Some(minutes) = edge.block_minutes {
                door.gate.response.block_for = Duration::from_secs(minutes.saturating_mul(60));
            }
            crate::tls::check_plain(config.listen, door.tls.as_ref(), door.plain_http)?;
            runtime.block_on(crate::edge::serve(config.listen, edge, door))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The replicated ledger node: serves health at once, follows the journal as a standby, and
/// serves the ledger once it holds the lease and has sealed the journal. Exits non-zero if it
/// loses the lease or is fenced off while leading (a supervisor restarts it as a standby).
fn serve_replicated_ledger(config: &Config, ledger: &LedgerConfig) -> Result<ExitCode, Error> {
    let nats_url = ledger
        .nats_url
        .clone()
        .ok_or("[ledger] nats_url is required with journal = \"jetstream\"")?;
    let replication = ReplicationConfig {
        shard: ledger.shard,
        replicas: ledger.replicas,
        lease_ttl: Duration::from_millis(ledger.lease_ttl_ms),
        node: ledger
            .node
            .clone()
            .unwrap_or_else(|| format!("ledger-{}", std::process::id())),
    };
    let snapshots = match &config.objects {
        Some(objects) => {
            // Snapshot files pass through a local folder: the node's data folder, or one of
            // its own under the system's temporary folder.
            let cache = ledger.data_dir.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("gureum-{}", replication.node))
            });
            Some(Snapshots {
                store: SnapshotStore::new(objects.open()?, replication.shard, cache),
                after_bytes: ledger.snapshot_after_mib.saturating_mul(1 << 20),
            })
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let active: Arc<OnceLock<Arc<Engine>>> = Arc::default();
    let held: tokio::sync::Mutex<Option<Lease>> = tokio::sync::Mutex::new(None);
    let outcome = runtime.block_on(async {
        let servers = bus::nats::server_addrs(&nats_url)?;
        let client = async_nats::ConnectOptions::new()
            .name(&replication.node)
            .connect(servers)
            .await
            .map_err(|e| format!("connecting to NATS at {nats_url}: {e}"))?;
        let js = async_nats::jetstream::new(client);
        replicated::ensure_stream(&js, &replication).await?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local = listener.local_addr()?;
        println!("gureum listening on http://{local}");
        tracing::info!(%local, node = %replication.node, shard = replication.shard, "standby: following the journal");
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let app = server::caller_guard(standby_app(active.clone()))?;
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                })
                .await
        });
        let led = lead(&js, &nats_url, &replication, snapshots, &active, &held);
        let result = tokio::select! {
            result = led => result,
            () = server::shutdown_signal() => Ok(Stopped::Signal),
        };
        let _ = stop_tx.send(true);
        let _ = http.await;
        result
    });
    // Stop the engine outside the runtime's workers: it finishes queued work.
    if let Some(engine) = active.get() {
        let engine = engine.clone();
        let _ = std::thread::spawn(move || engine.shutdown()).join();
    }
    // Stopped on purpose, with nothing left to write: hand the lease over at once rather than
    // let a standby wait for it to age out.
    if let (Ok(Stopped::Signal), Some(lease)) = (&outcome, held.into_inner()) {
        match runtime.block_on(lease.release()) {
            Ok(()) => tracing::info!("gave up the lease"),
            Err(e) => tracing::warn!(error = %e, "could not give up the lease; it ages out"),
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    match outcome {
        Ok(Stopped::Signal) => {
            tracing::info!("stopped cleanly");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Stopped::Lost(reason)) => Err(format!("stopped leading: {reason}").into()),
        Err(e) => Err(e),
    }
}

/// Where a replicated node's snapshots go, and how often.
struct Snapshots {
    store: SnapshotStore,
    after_bytes: u64,
}

enum Stopped {
    Signal,
    Lost(String),
}

/// Follows the journal until the lease is won, takes over, serves, and keeps the lease. Returns
/// only when leadership is lost (or on an error); a signal cancels it.
async fn lead(
    js: &async_nats::jetstream::Context,
    nats_url: &str,
    config: &ReplicationConfig,
    mut snapshots: Option<Snapshots>,
    active: &OnceLock<Arc<Engine>>,
    held: &tokio::sync::Mutex<Option<Lease>>,
) -> Result<Stopped, Error> {
    let mut follower = match snapshots.as_mut() {
        Some(s) => s.store.follower(js, config).await?,
        None => Follower::new(js, config).await?,
    };
    if follower.stream_seq() > 0 {
        tracing::info!(
            stream_seq = follower.stream_seq(),
            "started from the latest snapshot"
        );
    }
    let mut snapshot_offset = follower.position().offset;
    let lease = loop {
        // NATS being unreachable for a while (a node failing over) is waited out; a journal
        // that does not check out is not.
        match follower.catch_up().await {
            Ok(_) => {}
            Err(e @ JournalError::Corrupt { .. }) => return Err(e.into()),
            Err(e) => tracing::warn!(error = %e, "standby: cannot read the journal; retrying"),
        }
        if let Some(s) = snapshots.as_mut()
            && follower.position().offset - snapshot_offset >= s.after_bytes
        {
            match s.store.save(&follower).await {
                Ok(Some(manifest)) => {
                    snapshot_offset = follower.position().offset;
                    tracing::info!(
                        stream_seq = manifest.stream_seq,
                        "snapshot written to object storage"
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "standby: snapshot failed; the journal still holds everything")
                }
            }
        }
        match Lease::try_acquire(js, config).await {
            Ok(Some(lease)) => break lease,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "standby: cannot reach the lease; retrying"),
        }
        tokio::time::sleep(STANDBY_POLL).await;
    };
    *held.lock().await = Some(lease);
    tracing::info!(node = %config.node, "won the lease; taking over the journal");
    let (state, position, sink) = replicated::take_over(follower, js, config).await?;
    let (accounts, transfers) = (state.account_count(), state.transfer_count());
    let engine = Arc::new(Engine::open_replicated(
        EngineConfig::new(std::env::temp_dir()),
        state,
        position,
        Box::new(sink),
    )?);
    let _ = active.set(engine.clone());
    // Only the leader publishes the ledger's events (from the journal it now owns).
    let (stop_events, events_stopped) = tokio::sync::watch::channel(false);
    let events = server::Events::Nats(nats_url.to_owned(), config.replicas);
    let relaying = events.spawn(engine.clone(), events_stopped);
    tracing::info!(
        accounts,
        transfers,
        journal_seq = position.seq,
        "leading: serving the ledger"
    );
    let pulse = server::expiry_pulse(engine.clone());
    // The lease says who should lead; the journal's fencing is what makes a second writer
    // harmless. So a lease that cannot be renewed for a while (NATS electing a new stream
    // leader after losing a node) does not stop this node: it keeps serving and renewing. Only
    // another node holding the lease, or the journal refusing a write, ends its leadership.
    let mut renew = tokio::time::interval(config.renew_every());
    let stopped = loop {
        renew.tick().await;
        if engine.is_failed() {
            break Stopped::Lost(
                "the journal refused a write (fenced off, or NATS failed for too long)".into(),
            );
        }
        let mut guard = held.lock().await;
        let Some(lease) = guard.as_mut() else {
            break Stopped::Lost("the lease was given up".into());
        };
        match tokio::time::timeout(config.renew_every(), lease.renew()).await {
            Ok(Ok(())) => {}
            Ok(Err(RenewError::Lost(reason))) => match Lease::try_acquire(js, config).await {
                // It aged out while NATS was unreachable and no one took it: take it back.
                Ok(Some(again)) => *guard = Some(again),
                Ok(None) => {
                    break Stopped::Lost(format!("another node holds the lease ({reason})"));
                }
                Err(e) => tracing::warn!(error = %e, "cannot retake the lease; retrying"),
            },
            Ok(Err(e @ RenewError::Unreachable(_))) => tracing::warn!(error = %e, "retrying"),
            Err(_) => tracing::warn!("renewing the lease timed out; retrying"),
        }
    };
    pulse.abort();
    let _ = stop_events.send(true);
    let _ = relaying.await;
    Ok(stopped)
}

/// Health and readiness at once; the ledger's routes once this node leads.
fn standby_app(active: Arc<OnceLock<Arc<Engine>>>) -> Router {
    let leading: OnceLock<Router> = OnceLock::new();
    let leading = Arc::new(leading);
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(ready))
        .fallback(dispatch)
        .with_state(Node { active, leading })
}

#[derive(Clone)]
struct Node {
    active: Arc<OnceLock<Arc<Engine>>>,
    leading: Arc<OnceLock<Router>>,
}

async fn ready(State(node): State<Node>) -> Response {
    match node.active.get() {
        Some(engine) if !engine.is_failed() => {
            axum::Json(serde_json::json!({"status": "ready", "role": "leader"})).into_response()
        }
        Some(_) => {
            Problem::unavailable("the ledger stopped after a journal failure").into_response()
        }
        None => standby_problem().into_response(),
    }
}

async fn dispatch(State(node): State<Node>, request: Request) -> Response {
    let Some(engine) = node.active.get() else {
        return standby_problem().into_response();
    };
    let router = node.leading.get_or_init(|| {
        server::app(
            server::Services {
                ledger: Some(engine.clone()),
                ..server::Services::default()
            },
            None,
        )
    });
    match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn standby_problem() -> Problem {
    Problem::new(503, "standby", "This ledger node is a standby").with_detail(
        "it follows the journal and takes over when the leader stops; send requests to the leader",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configurations shipped in deploy/ parse, so they cannot drift from this code.
    #[test]
    fn the_shipped_kubernetes_configurations_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
        let ledger = Config::load(&dir.join("ledger.toml")).unwrap();
        let section = ledger.ledger.unwrap();
        assert_eq!(section.journal, JournalKind::Jetstream);
        assert_eq!(section.replicas, 3);
        assert!(matches!(ledger.objects, Some(ObjectsSection::S3 { .. })));
        let edge = Config::load(&dir.join("edge.toml")).unwrap().edge.unwrap();
        assert_eq!(edge.ledger, vec!["http://ledger:8081".to_owned()]);
        assert_eq!(edge.customers, vec!["http://customers:8083".to_owned()]);
        assert_eq!(edge.products, vec!["http://products:8084".to_owned()]);
        assert_eq!(edge.deposits, vec!["http://deposits:8085".to_owned()]);
        assert_eq!(edge.contracts, vec!["http://contracts:8086".to_owned()]);
        assert_eq!(edge.lending, vec!["http://lending:8087".to_owned()]);
        // The edge's keys are shared by its replicas: in PostgreSQL, not a data folder.
        let edge_config = Config::load(&dir.join("edge.toml")).unwrap();
        assert_eq!(edge.data_dir, None);
        assert_eq!(
            edge_config.sql("edge").unwrap(),
            store::SqlConfig::Postgres {
                url: "postgres://gureum_edge@postgres:5432/gureum".to_owned(),
                schema: "edge".to_owned()
            }
        );
        let lending = Config::load(&dir.join("lending.toml"))
            .unwrap()
            .lending_setup()
            .unwrap();
        assert_eq!(
            lending.keyring,
            std::path::Path::new("/etc/gureum-lending-vault/vault.toml")
        );
        assert_eq!(
            lending.upstream.map(|u| u.url).as_deref(),
            Some("http://edge:8080")
        );
        let contracts = Config::load(&dir.join("contracts.toml")).unwrap();
        assert!(matches!(
            contracts.objects,
            Some(ObjectsSection::S3 { ref bucket, .. }) if bucket == "gureum-contracts"
        ));
        assert_eq!(
            contracts.upstream.map(|u| u.url).as_deref(),
            Some("http://edge:8080")
        );
        let deposits = Config::load(&dir.join("deposits.toml")).unwrap();
        let setup = deposits.deposits_setup().unwrap();
        assert_eq!(
            setup.upstream.map(|u| u.url).as_deref(),
            Some("http://edge:8080")
        );
        assert!(
            matches!(setup.sql, store::SqlConfig::Postgres { ref schema, .. } if schema == "deposits")
        );
        let products = Config::load(&dir.join("products.toml")).unwrap();
        assert!(
            matches!(products.products_setup().unwrap().sql, store::SqlConfig::Postgres { ref schema, .. } if schema == "products")
        );
        let customers = Config::load(&dir.join("customers.toml")).unwrap();
        let setup = customers.customers_setup().unwrap();
        assert_eq!(
            setup.keyring,
            std::path::Path::new("/etc/gureum-vault/vault.toml")
        );
        assert!(!setup.create_keyring);
        assert!(
            matches!(setup.sql, store::SqlConfig::Postgres { ref schema, .. } if schema == "customers")
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\n[ledger]\njournal = \"file\"\nreplica = 3\n",
        )
        .unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.contains("unknown field `replica`"), "{error}");
    }
}
