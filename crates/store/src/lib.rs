//! Per-service storage, the same API in both of Gureum's shapes.
//!
//! - [`sql`]: a service's SQL database — one SQLite file (embedded, WAL) or one PostgreSQL
//!   schema (scale-out) — with migrations written once for both.
//! - [`outbox`]: the transactional outbox every service records its events in, and the
//!   processed-event table that makes consumers idempotent.
//! - [`objects`]: object storage — a local folder or an S3 bucket.
//!
//! This crate knows nothing of any one service's tables, and never publishes: publishing is
//! the relay's job (`bus` crate).

pub mod objects;
pub mod outbox;
pub mod sql;

pub use objects::{Objects, ObjectsConfig};
pub use sql::{Backend, Durability, Lease, Migration, MigrationSet, SqlConfig, Store};

/// What can go wrong in storage. Messages name what failed, never the values involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement, or could not be reached.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A migration failed, or an applied migration differs from the code's.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Object storage failed.
    #[error("object storage: {0}")]
    Objects(#[from] object_store::Error),
    /// A stored or new event is not a valid CloudEvent.
    #[error("event: {0}")]
    Event(#[from] kernel::event::EventError),
    /// A configuration value is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A stored value does not parse: damage, or a row written by something else.
    #[error("damaged data: {0}")]
    Corrupt(String),
}

#[cfg(feature = "testing")]
pub mod testing;
