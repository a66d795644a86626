//! The SQL services (customers, products, deposits, contracts, lending) in either shape: where a service's data, keys and
//! events live, opening it, and relaying its outbox to the bus in the background.
//!
//! - one process (`gureum up`): `DATA_DIR/<service>.sqlite`, the customers keyring
//!   `DATA_DIR/keys/vault.toml` (made on first start), the embedded bus `DATA_DIR/bus.sqlite`;
//! - split (`gureum serve <service>`): a PostgreSQL schema each, the keyring file mounted from
//!   a secret, NATS JetStream.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bus::{Bus, StreamSpec};
use customers::Customers;
use customers::vault::{FileKeyring, Vault};
use store::{SqlConfig, Store};
use tokio::sync::watch;

use crate::Error;

/// The vault keyring in the data folder of `gureum up` (a folder of its own, mode 0700).
pub const KEYRING_FILE: &str = "keys/vault.toml";
/// Lending's keyring in the data folder of `gureum up`.
pub const LENDING_KEYRING_FILE: &str = "keys/lending.toml";
/// How long the relay waits before trying an unreachable bus again.
const BUS_RETRY: Duration = Duration::from_secs(1);

/// Where a service's events go.
#[derive(Clone, Debug)]
pub enum BusSetup {
    /// The embedded bus in this SQLite file.
    Embedded(PathBuf),
    /// NATS JetStream at these servers, with this many stream replicas.
    Nats {
        /// Comma-separated server URLs.
        url: String,
        /// Replicas of the service's stream.
        replicas: usize,
    },
}

impl BusSetup {
    /// Connects.
    pub async fn open(&self) -> Result<Bus, Error> {
        Ok(match self {
            BusSetup::Embedded(path) => {
                let store = Store::open(&SqlConfig::Sqlite { path: path.clone() }).await?;
                Bus::Embedded(bus::embedded::EmbeddedBus::open(store).await?)
            }
            BusSetup::Nats { url, replicas } => Bus::Nats(
                bus::nats::NatsBus::connect(url)
                    .await?
                    .with_replicas(*replicas),
            ),
        })
    }
}

/// Everything the customers service needs.
#[derive(Clone, Debug)]
pub struct CustomersSetup {
    /// Its database.
    pub sql: SqlConfig,
    /// The vault keyring file.
    pub keyring: PathBuf,
    /// Make the keyring with fresh keys if the file does not exist (the one-process shape
    /// only: a split deployment mounts the one keyring every replica shares).
    pub create_keyring: bool,
    /// Where its events go.
    pub bus: BusSetup,
}

impl CustomersSetup {
    /// The one-process shape's customers in `data_dir`.
    pub fn embedded(data_dir: &Path) -> CustomersSetup {
        CustomersSetup {
            sql: embedded_sql(data_dir, customers::SERVICE),
            keyring: data_dir.join(KEYRING_FILE),
            create_keyring: true,
            bus: BusSetup::Embedded(data_dir.join(crate::server::BUS_FILE)),
        }
    }

    /// Opens the keyring (making it if allowed and missing).
    pub fn vault(&self) -> Result<Vault, Error> {
        open_vault(&self.keyring, self.create_keyring)
    }

    /// Opens the service (migrations applied).
    pub async fn open(&self) -> Result<Customers, Error> {
        let vault = self.vault()?;
        let store = Store::open(&self.sql).await?;
        Ok(Customers::open(store, vault).await?)
    }

    /// Opens the service and relays its outbox to the bus until `stop` turns true. The relay
    /// keeps trying an unreachable bus; events wait in the outbox meanwhile, never lost.
    pub async fn start(
        &self,
        stop: watch::Receiver<bool>,
    ) -> Result<(Arc<Customers>, tokio::task::JoinHandle<()>), Error> {
        let customers = Arc::new(self.open().await?);
        let relaying = start_relay(customers.store(), &self.bus, customers::SERVICE, stop);
        Ok((customers, relaying))
    }
}

/// A vault over the keyring file at `path`, made with fresh keys if `create` and missing (the
/// one-process shape; a split deployment mounts the keyring every replica shares).
pub(crate) fn open_vault(path: &Path, create: bool) -> Result<Vault, Error> {
    let keyring = if create {
        FileKeyring::open_or_create(path, &now_rfc3339())?
    } else {
        FileKeyring::open(path)?
    };
    Ok(Vault::from_keyring(keyring))
}

/// A service's SQLite file in the data folder of `gureum up`: `<service>.sqlite`.
pub fn embedded_sql(data_dir: &Path, service: &str) -> SqlConfig {
    SqlConfig::Sqlite {
        path: data_dir.join(format!("{service}.sqlite")),
    }
}

/// Everything the products service needs.
#[derive(Clone, Debug)]
pub struct ProductsSetup {
    /// Its database.
    pub sql: SqlConfig,
    /// Where its events go.
    pub bus: BusSetup,
}

impl ProductsSetup {
    /// The one-process shape's products in `data_dir`.
    pub fn embedded(data_dir: &Path) -> ProductsSetup {
        ProductsSetup {
            sql: embedded_sql(data_dir, products::SERVICE),
            bus: BusSetup::Embedded(data_dir.join(crate::server::BUS_FILE)),
        }
    }

    /// Opens the service and relays its outbox until `stop` turns true.
    pub async fn start(
        &self,
        stop: watch::Receiver<bool>,
    ) -> Result<(Arc<products::Products>, tokio::task::JoinHandle<()>), Error> {
        let service = Arc::new(products::Products::open(Store::open(&self.sql).await?).await?);
        let relaying = start_relay(service.store(), &self.bus, products::SERVICE, stop);
        Ok((service, relaying))
    }
}

/// Everything the deposits service needs.
#[derive(Clone, Debug)]
pub struct DepositsSetup {
    /// Its database.
    pub sql: SqlConfig,
    /// Where its events go.
    pub bus: BusSetup,
    /// Where it reaches the ledger, customers and products over HTTP (the edge); none: in
    /// this process, next to them (`gureum up`).
    pub upstream: Option<kernel::http::Upstream>,
}

impl DepositsSetup {
    /// The one-process shape's deposits in `data_dir`.
    pub fn embedded(data_dir: &Path) -> DepositsSetup {
        DepositsSetup {
            sql: embedded_sql(data_dir, deposits::SERVICE),
            bus: BusSetup::Embedded(data_dir.join(crate::server::BUS_FILE)),
            upstream: None,
        }
    }

    /// Opens the service — on the ledger, customers and products of `local` in this process,
    /// or over HTTP at `upstream` — and relays its outbox until `stop` turns true.
    pub async fn start(
        &self,
        stop: watch::Receiver<bool>,
        local: &crate::server::Services,
    ) -> Result<(Arc<deposits::Deposits>, tokio::task::JoinHandle<()>), Error> {
        let (ledger, peers) = match (
            &self.upstream,
            &local.ledger,
            &local.customers,
            &local.products,
        ) {
            (Some(upstream), _, _, _) => (
                ledger::client::LedgerClient::Http(ledger::client::HttpLedger::new(upstream)?),
                deposits::Peers::http(upstream)?,
            ),
            (None, Some(engine), Some(customers), Some(products)) => (
                ledger::client::LedgerClient::Local(engine.clone()),
                deposits::Peers::Local {
                    customers: customers.clone(),
                    products: products.clone(),
                },
            ),
            _ => {
                return Err(
                    "deposits needs the ledger, customers and products in this process, or an \
                     [upstream] url to reach them"
                        .into(),
                );
            }
        };
        let store = Store::open(&self.sql).await?;
        let service = Arc::new(deposits::Deposits::open(store, ledger, peers).await?);
        let relaying = start_relay(service.store(), &self.bus, deposits::SERVICE, stop);
        Ok((service, relaying))
    }
}

/// Everything the contracts service needs.
#[derive(Clone)]
pub struct ContractsSetup {
    /// Its database.
    pub sql: SqlConfig,
    /// Where the documents go.
    pub objects: store::ObjectsConfig,
    /// Where its events go.
    pub bus: BusSetup,
    /// Where it reaches customers and products over HTTP (the edge); none: in this process.
    pub upstream: Option<kernel::http::Upstream>,
}

impl std::fmt::Debug for ContractsSetup {
    // The object storage configuration holds keys: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContractsSetup")
            .field("sql", &self.sql)
            .field("bus", &self.bus)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl ContractsSetup {
    /// The one-process shape's contracts in `data_dir` (documents in `objects/contracts`).
    pub fn embedded(data_dir: &Path) -> ContractsSetup {
        ContractsSetup {
            sql: embedded_sql(data_dir, contracts::SERVICE),
            objects: store::ObjectsConfig::Local {
                root: data_dir.join("objects").join(contracts::SERVICE),
            },
            bus: BusSetup::Embedded(data_dir.join(crate::server::BUS_FILE)),
            upstream: None,
        }
    }

    /// Opens the service and relays its outbox until `stop` turns true.
    pub async fn start(
        &self,
        stop: watch::Receiver<bool>,
        local: &crate::server::Services,
    ) -> Result<(Arc<contracts::Contracts>, tokio::task::JoinHandle<()>), Error> {
        let peers = peers_of(self.upstream.as_ref(), local, "contracts")?;
        let store = Store::open(&self.sql).await?;
        let objects = store::Objects::open(&self.objects)?;
        let service = Arc::new(contracts::Contracts::open(store, objects, peers).await?);
        let relaying = start_relay(service.store(), &self.bus, contracts::SERVICE, stop);
        Ok((service, relaying))
    }
}

/// Everything the lending service needs.
#[derive(Clone, Debug)]
pub struct LendingSetup {
    /// Its database.
    pub sql: SqlConfig,
    /// Its vault keyring (evaluations are sealed under keys of its own, not the customers').
    pub keyring: PathBuf,
    /// Make the keyring if it does not exist (the one-process shape).
    pub create_keyring: bool,
    /// Where its events go.
    pub bus: BusSetup,
    /// Where it reaches customers and products over HTTP; none: in this process.
    pub upstream: Option<kernel::http::Upstream>,
}

impl LendingSetup {
    /// The one-process shape's lending in `data_dir` (keyring `keys/lending.toml`).
    pub fn embedded(data_dir: &Path) -> LendingSetup {
        LendingSetup {
            sql: embedded_sql(data_dir, lending::SERVICE),
            keyring: data_dir.join(LENDING_KEYRING_FILE),
            create_keyring: true,
            bus: BusSetup::Embedded(data_dir.join(crate::server::BUS_FILE)),
            upstream: None,
        }
    }

    /// Opens the service (with the shipped credit model) and relays its outbox until `stop`
    /// turns true.
    pub async fn start(
        &self,
        stop: watch::Receiver<bool>,
        local: &crate::server::Services,
    ) -> Result<(Arc<lending::Lending>, tokio::task::JoinHandle<()>), Error> {
        let peers = peers_of(self.upstream.as_ref(), local, "lending")?;
        let vault = open_vault(&self.keyring, self.create_keyring)?;
        let model = lending::credit::Model::parse(lending::credit::DEFAULT_MODEL)?;
        let store = Store::open(&self.sql).await?;
        let service = lending::Lending::open(store, vault, peers, model).await?;
        // Loans need the ledger, contracts and deposits: beside it, or through the edge.
        let service = match (
            &self.upstream,
            &local.ledger,
            &local.contracts,
            &local.deposits,
        ) {
            (Some(upstream), _, _, _) => service.with_loans(
                ledger::client::LedgerClient::Http(ledger::client::HttpLedger::new(upstream)?),
                lending::links::Links::http(upstream)?,
            ),
            (None, Some(engine), Some(contracts), Some(deposits)) => service.with_loans(
                ledger::client::LedgerClient::Local(engine.clone()),
                lending::links::Links::Local {
                    contracts: contracts.clone(),
                    deposits: deposits.clone(),
                },
            ),
            _ => service,
        };
        let service = Arc::new(service);
        let relaying = start_relay(service.store(), &self.bus, lending::SERVICE, stop);
        Ok((service, relaying))
    }
}

/// The customers service and the catalogue as `service` reaches them: over HTTP at
/// `upstream`, or in this process.
fn peers_of(
    upstream: Option<&kernel::http::Upstream>,
    local: &crate::server::Services,
    service: &str,
) -> Result<peers::Peers, Error> {
    match (upstream, &local.customers, &local.products) {
        (Some(upstream), _, _) => Ok(peers::Peers::http(upstream)?),
        (None, Some(customers), Some(products)) => Ok(peers::Peers::Local {
            customers: customers.clone(),
            products: products.clone(),
        }),
        _ => Err(format!(
            "{service} needs customers and products in this process, or an [upstream] url to \
             reach them"
        )
        .into()),
    }
}

/// Starts relaying a service's outbox in the background (until `stop` turns true) and says the
/// service is serving.
fn start_relay(
    store: &Store,
    bus: &BusSetup,
    service: &'static str,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tracing::info!(service, "serving");
    tokio::spawn(relay(store.clone(), bus.clone(), service, stop))
}

/// Publishes `service`'s outbox until `stop` turns true, (re)connecting to the bus first.
async fn relay(
    store: Store,
    setup: BusSetup,
    service: &'static str,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let connected = async {
            let bus = setup.open().await?;
            bus.ensure_stream(&StreamSpec::for_service(service)).await?;
            Ok::<Bus, Error>(bus)
        };
        match connected.await {
            Ok(bus) => {
                if let Err(e) = bus::relay::Relay::new(store.clone(), bus)
                    .run(stop.clone())
                    .await
                {
                    tracing::warn!(service, error = %e, "outbox relay stopped; restarting");
                }
            }
            Err(e) => {
                tracing::warn!(service, error = %e, "outbox relay: cannot reach the bus; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(BUS_RETRY) => {}
            // A dropped sender can never say stop: whoever could is gone, so stop now
            // (waiting on it would return at once, forever, and spin).
            changed = stop.changed() => if changed.is_err() { break; }
        }
    }
}

/// Now as RFC 3339 (key ids carry their creation time).
pub fn now_rfc3339() -> String {
    kernel::event::format_time_us(store::sql::now_us()).unwrap_or_default()
}
