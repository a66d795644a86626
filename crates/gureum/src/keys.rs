//! `gureum keys …`: the vault's master keys, managed while the service runs.
//!
//! - `status`: which master keys the keyring holds and how many data keys each wraps.
//! - `rotate`: adds a new master key to the keyring and makes it current, then re-wraps every
//!   data key under it (batches of 500, each its own transaction). Running services read the
//!   new keyring by themselves (see `customers::vault::FileKeyring`), so nothing restarts. The
//!   old key stays in the keyring until `retire`. With `--rewrap-only` it only re-wraps, for a
//!   keyring whose new current key an operator put in place (a mounted secret).
//! - `retire ID`: removes a master key from the keyring, refused while any data key is still
//!   wrapped under it. Retire a key once the backups taken before its rotation have expired:
//!   from then on those backups' data keys cannot be unwrapped, which completes the erasure of
//!   every customer erased since.
//!
//! Works on a `gureum up` data folder (`--data-dir`) or a `gureum serve` configuration
//! (`--config`, the service's `[database]` and `[vault]`), for the customers service's keyring
//! (default) or lending's (`--service lending`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use customers::vault::{KEYRING_RECHECK, read_keyring, write_keyring};
use serde_json::json;

use crate::Error;
use crate::services::{CustomersSetup, LendingSetup, now_rfc3339, open_vault};

/// `gureum keys …`.
#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Show the master keys and how many data keys each wraps.
    Status(Target),
    /// Make a new master key current and re-wrap every data key under it.
    Rotate {
        #[command(flatten)]
        target: Target,
        /// Only re-wrap under the keyring's current key; add no key.
        #[arg(long)]
        rewrap_only: bool,
    },
    /// Remove a master key that no data key is wrapped under any more.
    Retire {
        #[command(flatten)]
        target: Target,
        /// The master key's id.
        id: String,
    },
}

/// Which deployment's keys.
#[derive(clap::Args)]
pub struct Target {
    /// Whose keyring: `customers` (the regulated-data vault) or `lending` (credit evaluations
    /// and applications).
    #[arg(long, value_enum, default_value = "customers")]
    service: KeyedService,
    /// A `gureum up` data folder.
    #[arg(long, conflicts_with = "config", default_value = crate::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// A `gureum serve customers|lending` configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The services that seal with a keyring.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyedService {
    /// Customers.
    Customers,
    /// Lending.
    Lending,
}

/// A service's keyring and where its data keys are stored.
enum Managed {
    Customers(CustomersSetup),
    Lending(LendingSetup),
}

/// The opened store (and vault) whose data keys are managed.
enum Keyed {
    Customers(customers::Customers),
    Lending(store::Store, customers::vault::Vault),
}

impl Managed {
    fn keyring(&self) -> &std::path::Path {
        match self {
            Managed::Customers(s) => &s.keyring,
            Managed::Lending(s) => &s.keyring,
        }
    }

    async fn open(&self) -> Result<Keyed, Error> {
        Ok(match self {
            Managed::Customers(setup) => Keyed::Customers(setup.open().await?),
            Managed::Lending(setup) => {
                let store = store::Store::open(&setup.sql).await?;
                store.migrate(&lending::MIGRATIONS).await?;
                Keyed::Lending(store, open_vault(&setup.keyring, false)?)
            }
        })
    }
}

impl Keyed {
    async fn rewrap_batch(&self) -> Result<u64, Error> {
        Ok(match self {
            Keyed::Customers(c) => c.rewrap_batch().await?,
            Keyed::Lending(store, vault) => lending::service::rewrap_batch(store, vault).await?,
        })
    }

    async fn key_usage(&self) -> Result<Vec<customers::service::KeyUsage>, Error> {
        Ok(match self {
            Keyed::Customers(c) => c.key_usage().await?,
            Keyed::Lending(store, _) => lending::service::key_usage(store).await?,
        })
    }
}

impl Target {
    fn setup(&self) -> Result<Managed, Error> {
        let config = self
            .config
            .as_ref()
            .map(|path| crate::serve::Config::load(path))
            .transpose()?;
        let managed = match (self.service, &config) {
            (KeyedService::Customers, Some(c)) => Managed::Customers(c.customers_setup()?),
            (KeyedService::Customers, None) => {
                Managed::Customers(CustomersSetup::embedded(&self.data_dir))
            }
            (KeyedService::Lending, Some(c)) => Managed::Lending(c.lending_setup()?),
            (KeyedService::Lending, None) => {
                Managed::Lending(LendingSetup::embedded(&self.data_dir))
            }
        };
        if !managed.keyring().exists() {
            return Err(format!(
                "no keyring at {}: nothing to manage (a `gureum up` data folder gets one on first start)",
                managed.keyring().display()
            )
            .into());
        }
        Ok(managed)
    }
}

/// Runs a `gureum keys` command; prints its result as JSON.
pub fn run(command: KeysCommand) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        match command {
            KeysCommand::Status(target) => status(&target.setup()?).await,
            KeysCommand::Rotate {
                target,
                rewrap_only,
            } => rotate(&target.setup()?, rewrap_only).await,
            KeysCommand::Retire { target, id } => retire(&target.setup()?, &id).await,
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

async fn status(setup: &Managed) -> Result<serde_json::Value, Error> {
    let (keyring, _) = read_keyring(setup.keyring())?;
    let keyed = setup.open().await?;
    let usage = keyed.key_usage().await?;
    let keys: Vec<serde_json::Value> = keyring
        .master_keys
        .iter()
        .map(|k| {
            let wraps = usage
                .iter()
                .find(|u| u.master_key_id == k.id)
                .map_or(0, |u| u.data_keys);
            json!({"id": k.id, "created_at": k.created_at, "current": k.id == keyring.current, "data_keys": wraps})
        })
        .collect();
    let unknown: Vec<&str> = usage
        .iter()
        .filter(|u| !keyring.master_keys.iter().any(|k| k.id == u.master_key_id))
        .map(|u| u.master_key_id.as_str())
        .collect();
    Ok(json!({"current": keyring.current, "master_keys": keys, "missing_from_keyring": unknown}))
}

async fn rotate(setup: &Managed, rewrap_only: bool) -> Result<serde_json::Value, Error> {
    let (mut keyring, _) = read_keyring(setup.keyring())?;
    let previous = keyring.current.clone();
    if !rewrap_only {
        keyring.add_master_key(&now_rfc3339());
        write_keyring(setup.keyring(), &keyring)?;
    }
    let keyed = setup.open().await?;
    let mut rewrapped = 0u64;
    // Two sweeps: the second after every running replica has seen the new keyring, for data
    // keys a replica made under the old key in the meantime.
    for sweep in 0..2 {
        if sweep == 1 {
            tokio::time::sleep(KEYRING_RECHECK * 2 + Duration::from_millis(500)).await;
        }
        loop {
            let n = keyed.rewrap_batch().await?;
            rewrapped += n;
            if n == 0 {
                break;
            }
        }
    }
    let usage = keyed.key_usage().await?;
    let retirable: Vec<&str> = keyring
        .master_keys
        .iter()
        .map(|k| k.id.as_str())
        .filter(|id| *id != keyring.current && !usage.iter().any(|u| u.master_key_id == *id))
        .collect();
    tracing::info!(current = %keyring.current, rewrapped, "keys rotated");
    Ok(json!({
        "previous": previous,
        "current": keyring.current,
        "rewrapped": rewrapped,
        "data_keys": usage,
        "retire_when_older_backups_expire": retirable,
    }))
}

async fn retire(setup: &Managed, id: &str) -> Result<serde_json::Value, Error> {
    let (mut keyring, _) = read_keyring(setup.keyring())?;
    let keyed = setup.open().await?;
    let still = keyed
        .key_usage()
        .await?
        .into_iter()
        .find(|u| u.master_key_id == id)
        .map_or(0, |u| u.data_keys);
    if still > 0 {
        return Err(format!(
            "{still} data keys are still wrapped under `{id}`; run `gureum keys rotate --rewrap-only` first"
        )
        .into());
    }
    keyring.remove_master_key(id)?;
    write_keyring(setup.keyring(), &keyring)?;
    Ok(json!({"retired": id, "current": keyring.current}))
}
