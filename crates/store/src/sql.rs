//! SQL storage for one service: SQLite (embedded: one file per service, WAL) or PostgreSQL
//! (scale-out: one schema per service), behind one handle, [`Store`].
//!
//! Services write their queries once, in the SQL both backends understand, with `$1`-style
//! parameters (SQLite binds `$N` by number too), and their schema once, as [`Migration`]s
//! whose few dialect differences are spelled as tokens:
//!
//! | token | SQLite | PostgreSQL |
//! |---|---|---|
//! | `{{id}}` | `INTEGER PRIMARY KEY AUTOINCREMENT` | `BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY` |
//! | `{{bytes}}` | `BLOB` | `BYTEA` |
//!
//! Values cross as `i64`, `String`, `Vec<u8>` (and `Option`s of them): the types both
//! backends and sqlx's `Any` driver agree on. Money stays integer minor units; time is
//! microseconds since the Unix epoch in a `BIGINT`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration as SqlxMigration, MigrationType, Migrator};
use sqlx::{
    Any, AnyConnection, AnyPool, AssertSqlSafe, Connection, Executor, SqlSafeStr, Transaction,
};

use crate::StoreError;

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file per service (embedded shape).
    Sqlite,
    /// A PostgreSQL schema per service (scale-out shape).
    Postgres,
}

/// Connections a PostgreSQL store opens at most.
pub const POSTGRES_CONNECTIONS_MAX: u32 = 16;
/// SQLite read connections at most; writes go through one connection of their own.
pub const SQLITE_READERS_MAX: u32 = 4;
/// How long a statement waits for a lock held by another connection.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);
/// Checkpoint attempts [`Store::purge_freed`] makes while readers hold the log.
pub const PURGE_ATTEMPTS_MAX: u32 = 50;
/// How long taking a connection from the pool may take before it is an error.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// One schema change: a version (ascending, never reused), a description and the SQL, written
/// once for both backends with the dialect tokens of this module.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Applied in ascending order; recorded in the set's migrations table.
    pub version: i64,
    /// A few words, recorded with the version.
    pub description: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// A named, ordered list of migrations with its own migrations table
/// (`_migrations_<name>`), so the platform's tables and a service's evolve independently.
#[derive(Clone, Copy, Debug)]
pub struct MigrationSet {
    /// `[a-z_]+`; names the migrations table.
    pub name: &'static str,
    /// In ascending version order.
    pub migrations: &'static [Migration],
}

/// The platform's own tables (outbox, aggregate sequences, processed events), present in every
/// service's database. [`Store::open`] applies them.
pub const PLATFORM_MIGRATIONS: MigrationSet = MigrationSet {
    name: "platform",
    migrations: &[Migration {
        version: 1,
        description: "outbox and processed events",
        sql: include_str!("../migrations/0001_outbox.sql"),
    }],
};

/// Where a service's SQL data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlConfig {
    /// A SQLite file (created if missing).
    Sqlite {
        /// The database file, e.g. `<data-dir>/customers.sqlite`.
        path: std::path::PathBuf,
    },
    /// A PostgreSQL database and the schema the service owns in it.
    Postgres {
        /// `postgres://user[:password]@host[:port]/database[?sslmode=…]`.
        url: String,
        /// `[a-z_][a-z0-9_]*`, at most 63 bytes; created if missing.
        schema: String,
    },
}

/// A service's SQL storage. Cheap to clone (the pools are shared).
///
/// Reads go through [`Store::reader`]; every write goes through a transaction from
/// [`Store::begin`]. On SQLite the writer is a single connection, so write transactions queue
/// instead of failing with `SQLITE_BUSY`; readers see the last committed state (WAL).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    reader: AnyPool,
    writer: AnyPool,
    /// The SQLite file (SQLite only): migrations lock `<file>.migrate-lock`.
    sqlite_path: Option<std::path::PathBuf>,
    /// Names of the in-process exclusive leases currently held (SQLite only: one process).
    leases: Arc<Mutex<HashSet<String>>>,
}

/// When a commit is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// When it returns: synced to disk (SQLite `synchronous = FULL`; PostgreSQL's default).
    /// Every service's data.
    Commit,
    /// Soon after it returns: a crash of this process loses nothing committed, but a crash
    /// of the machine (or of the PostgreSQL server) may lose the last commits (SQLite
    /// `synchronous = NORMAL` in WAL mode; PostgreSQL `synchronous_commit = off`). For
    /// records whose writer already answers before they are durable (the audit trail), so
    /// their syncs do not queue in front of the money's.
    Relaxed,
}

impl Store {
    /// Opens (creating if needed) the store and applies the platform's migrations.
    pub async fn open(config: &SqlConfig) -> Result<Store, StoreError> {
        Store::open_with(config, Durability::Commit).await
    }

    /// [`Store::open`] with commits durable as `durability` says.
    pub async fn open_with(
        config: &SqlConfig,
        durability: Durability,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let store = match config {
            SqlConfig::Sqlite { path } => Store::open_sqlite(path, durability).await?,
            SqlConfig::Postgres { url, schema } => {
                Store::connect_postgres(url, schema, durability).await?
            }
        };
        store.migrate(&PLATFORM_MIGRATIONS).await?;
        Ok(store)
    }

    async fn open_sqlite(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let path = path
            .to_str()
            .filter(|p| !p.contains(['?', '#', '%']))
            .ok_or_else(|| {
                StoreError::Config(format!(
                    "SQLite path {} must be UTF-8 without '?', '#' or '%'",
                    path.display()
                ))
            })?;
        let url = format!("sqlite://{path}?mode=rwc");
        // The writer first: it creates the file and switches it to WAL before readers open it.
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| configure_sqlite(conn, durability))
            .connect(&url)
            .await?;
        let reader = AnyPoolOptions::new()
            .max_connections(SQLITE_READERS_MAX)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| configure_sqlite(conn, durability))
            .connect(&url)
            .await?;
        Ok(Store {
            backend: Backend::Sqlite,
            reader,
            writer,
            sqlite_path: Some(std::path::PathBuf::from(path)),
            leases: Arc::default(),
        })
    }

    async fn connect_postgres(
        url: &str,
        schema: &str,
        durability: Durability,
    ) -> Result<Store, StoreError> {
        if !is_valid_schema_name(schema) {
            return Err(StoreError::Config(format!(
                "schema name {schema:?} must match [a-z_][a-z0-9_]* and be at most 63 bytes"
            )));
        }
        // Create the schema only if it is missing: a provisioned service role (see
        // `provision_postgres`) owns its schema but may not create schemas.
        let mut first = AnyConnection::connect(url).await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                .bind(schema)
                .fetch_optional(&mut first)
                .await?;
        if exists.is_none() {
            first
                .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}"
                ))))
                .await?;
        }
        first.close().await?;
        let set_path: Arc<str> = format!(
            "SET search_path TO {schema}; SET lock_timeout = '{}ms'; SET synchronous_commit = {}",
            LOCK_WAIT.as_millis(),
            match durability {
                Durability::Commit => "on",
                Durability::Relaxed => "off",
            }
        )
        .into();
        let pool = AnyPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS_MAX)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(sqlx::raw_sql(AssertSqlSafe(set_path)))
                        .await
                        .map(|_| ())
                })
            })
            .connect(url)
            .await?;
        Ok(Store {
            backend: Backend::Postgres,
            reader: pool.clone(),
            writer: pool,
            sqlite_path: None,
            leases: Arc::default(),
        })
    }

    /// Applies the set's migrations not applied yet, each in its own transaction. A migration
    /// that was applied with different SQL is an error: schemas are never edited in place.
    pub async fn migrate(&self, set: &MigrationSet) -> Result<(), StoreError> {
        if !set
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
            || set.name.is_empty()
        {
            return Err(StoreError::Config(format!(
                "migration set name {:?}",
                set.name
            )));
        }
        let migrations = set
            .migrations
            .iter()
            .map(|m| {
                let sql = render(m.sql, self.backend)?;
                Ok(SqlxMigration::new(
                    m.version,
                    m.description.into(),
                    MigrationType::Simple,
                    AssertSqlSafe(sql).into_sql_str(),
                    false,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut migrator = Migrator::with_migrations(migrations);
        migrator.dangerous_set_table_name(format!("_migrations_{}", set.name));
        // SQLite has no advisory lock for the migrator to take, so two openers of one file
        // (two services sharing the embedded bus, or two processes) would both apply a
        // migration; an exclusive lock on a file next to the database puts them in turn.
        let _turn = match &self.sqlite_path {
            Some(path) => Some(lock_file(path.with_extension("migrate-lock")).await?),
            None => None,
        };
        // On its own connection, closed afterwards whatever happened: on PostgreSQL the migrator
        // holds a session advisory lock that an error return leaves taken, and a pooled
        // connection would carry it on to block every later migration.
        let mut conn = self.writer.acquire().await?.detach();
        let result = migrator.run_direct(None, &mut conn, false).await;
        let closed = conn.close().await;
        result?;
        closed?;
        Ok(())
    }

    /// The backend behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for reads outside a transaction.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// The pool of the writing connection, for a single statement outside a transaction.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Starts a write transaction. Dropping it without `commit` rolls back.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.writer.begin().await?)
    }

    /// Takes the named exclusive lease if no one holds it, for work that must have one runner
    /// per service at a time (the outbox relay). PostgreSQL: a session advisory lock on a
    /// connection the lease owns, so it is released when the lease is dropped or the process
    /// dies. SQLite: held in this process (an embedded store has one process).
    pub async fn try_lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        match self.backend {
            Backend::Sqlite => {
                let mut held = self.leases.lock().expect("lease set poisoned");
                if !held.insert(name.to_owned()) {
                    return Ok(None);
                }
                Ok(Some(Lease {
                    inner: LeaseInner::Local {
                        name: name.to_owned(),
                        held: self.leases.clone(),
                    },
                }))
            }
            Backend::Postgres => {
                let mut conn = self.reader.acquire().await?.detach();
                let key = format!("gureum.lease.{name}");
                let taken: bool = sqlx::query_scalar(
                    "SELECT pg_try_advisory_lock(hashtext(current_schema() || $1)::bigint)",
                )
                .bind(key)
                .fetch_one(&mut conn)
                .await?;
                if !taken {
                    conn.close().await?;
                    return Ok(None);
                }
                Ok(Some(Lease {
                    inner: LeaseInner::Session { conn },
                }))
            }
        }
    }

    /// Makes deleted rows leave the files: on SQLite, checkpoints the write-ahead log into the
    /// database (where `secure_delete` zeroed them) and truncates the log, which still holds
    /// the old pages. On PostgreSQL it does nothing: dead row versions stay until autovacuum
    /// reclaims them (see docs/ARCHITECTURE.md, erasure).
    pub async fn purge_freed(&self) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        // A reader in the middle of a read holds the log back; try again briefly. If it never
        // completes, the next checkpoint finishes the job (SQLite checkpoints on its own).
        for attempt in 1..=PURGE_ATTEMPTS_MAX {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.writer)
                .await?;
            if busy == 0 {
                return Ok(());
            }
            if attempt < PURGE_ATTEMPTS_MAX {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tracing::warn!(
            "could not truncate the write-ahead log while readers held it; it will be on the next checkpoint"
        );
        Ok(())
    }

    /// Closes every connection (after the transactions in flight).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Gives a service its own PostgreSQL role and schema: creates the role `gureum_<service>`
/// (or resets its password), and the schema `<service>` owned by it, with no rights for anyone
/// else. Run with an administrator's URL (deployment time, not in the service); returns the
/// configuration the service connects with, as that role. So a service can read and write its
/// own tables and no other service's, which is what "each service owns its data" means on a
/// shared database.
pub async fn provision_postgres(
    admin_url: &str,
    service: &str,
    password: &str,
) -> Result<SqlConfig, StoreError> {
    if !is_valid_schema_name(service) || service.len() > 55 {
        return Err(StoreError::Config(format!(
            "service name {service:?} is not a plain identifier"
        )));
    }
    // The password goes into DDL, which takes no parameters: accept only characters that
    // need no quoting, and enough of them.
    if password.len() < 16
        || !password
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(StoreError::Config(
            "a service password must be at least 16 characters of [A-Za-z0-9_-]".into(),
        ));
    }
    let role = format!("gureum_{service}");
    sqlx::any::install_default_drivers();
    let mut admin = AnyConnection::connect(admin_url).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(&role)
        .fetch_optional(&mut admin)
        .await?;
    let role_sql = match exists {
        Some(_) => format!("ALTER ROLE {role} WITH LOGIN PASSWORD '{password}'"),
        None => format!("CREATE ROLE {role} WITH LOGIN PASSWORD '{password}'"),
    };
    admin
        .execute(sqlx::raw_sql(AssertSqlSafe(role_sql)))
        .await?;
    let schema_sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {role}; \
         ALTER SCHEMA {service} OWNER TO {role}; \
         REVOKE ALL ON SCHEMA {service} FROM PUBLIC"
    );
    admin
        .execute(sqlx::raw_sql(AssertSqlSafe(schema_sql)))
        .await?;
    admin.close().await?;
    let mut url =
        url::Url::parse(admin_url).map_err(|e| StoreError::Config(format!("admin URL: {e}")))?;
    url.set_username(&role)
        .map_err(|()| StoreError::Config("admin URL cannot take a user".into()))?;
    url.set_password(Some(password))
        .map_err(|()| StoreError::Config("admin URL cannot take a password".into()))?;
    Ok(SqlConfig::Postgres {
        url: url.to_string(),
        schema: service.to_owned(),
    })
}

/// An exclusive lease from [`Store::try_lease`]; released on drop.
#[derive(Debug)]
pub struct Lease {
    inner: LeaseInner,
}

impl Lease {
    /// Whether the lease is still held: on PostgreSQL, whether its session is alive (a lost
    /// connection has released the lock, and another process may hold it now).
    pub async fn is_held(&mut self) -> bool {
        match &mut self.inner {
            LeaseInner::Local { .. } => true,
            LeaseInner::Session { conn } => conn.ping().await.is_ok(),
        }
    }

    /// Gives the lease up now. Dropping it does too, but on PostgreSQL only once the server
    /// notices the closed connection, so whoever asks right after (the next end of day) could
    /// still find it held; this unlocks and closes the session before returning.
    pub async fn release(mut self) {
        if let LeaseInner::Session { conn } = &mut self.inner {
            let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut *conn)
                .await;
        }
    }
}

#[derive(Debug)]
enum LeaseInner {
    Local {
        name: String,
        held: Arc<Mutex<HashSet<String>>>,
    },
    /// Closing the connection (on drop) ends the session and its advisory lock.
    Session { conn: AnyConnection },
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let LeaseInner::Local { name, held } = &self.inner {
            held.lock().expect("lease set poisoned").remove(name);
        }
    }
}

/// The pragmas every SQLite connection runs with: wait for locks instead of failing, WAL (readers
/// never block the writer), a commit is durable when it returns, foreign keys enforced, and
/// deleted content overwritten with zeros (`secure_delete`), so an erased value does not
/// linger in free pages of the file; a page cache of up to 64 MiB a connection (SQLite's
/// default is 2 MiB: a batch that rewrites a few thousand rows would read its pages back from
/// the OS on every pass).
/// (`synchronous = NORMAL` instead of `FULL` for [`Durability::Relaxed`].)
fn configure_sqlite(
    conn: &mut AnyConnection,
    durability: Durability,
) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let pragmas = match durability {
            Durability::Commit => {
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; \
                 PRAGMA cache_size = -65536;"
            }
            Durability::Relaxed => {
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; \
                 PRAGMA cache_size = -65536;"
            }
        };
        conn.execute(sqlx::raw_sql(pragmas)).await.map(|_| ())
    })
}

/// Creates the database `admin_url` names if it does not exist (connecting to the same
/// server's `postgres` database to do so). Deployment-time, with an administrator's URL.
pub async fn ensure_postgres_database(admin_url: &str) -> Result<(), StoreError> {
    let mut url =
        url::Url::parse(admin_url).map_err(|e| StoreError::Config(format!("admin URL: {e}")))?;
    let name = url.path().trim_start_matches('/').to_owned();
    if !is_valid_schema_name(&name) {
        return Err(StoreError::Config(format!(
            "database name {name:?} must match [a-z_][a-z0-9_]* and be at most 63 bytes"
        )));
    }
    url.set_path("/postgres");
    sqlx::any::install_default_drivers();
    let mut admin = AnyConnection::connect(url.as_str()).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        let created = admin
            .execute(sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE DATABASE {name}"
            ))))
            .await;
        // Another launcher may have created it in between.
        if let Err(e) = created
            && !matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42P04"))
        {
            return Err(e.into());
        }
    }
    admin.close().await?;
    Ok(())
}

/// Opens (creating) `path` and waits for an exclusive lock on it, held until the file closes.
async fn lock_file(path: std::path::PathBuf) -> Result<std::fs::File, StoreError> {
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Config(format!("migration lock: {e}")))?;
    locked.map_err(|e| StoreError::Config(format!("migration lock: {e}")))
}

/// Whether `name` is a PostgreSQL identifier Gureum accepts unquoted for a schema.
pub fn is_valid_schema_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Replaces the dialect tokens with the backend's spelling. Any other `{{…}}` is an error, so
/// a typo never reaches the database as literal text.
pub fn render(sql: &str, backend: Backend) -> Result<String, StoreError> {
    let (id, bytes) = match backend {
        Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
        Backend::Postgres => ("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA"),
    };
    let rendered = sql.replace("{{id}}", id).replace("{{bytes}}", bytes);
    if let Some(at) = rendered.find("{{") {
        let token: String = rendered[at..].chars().take(24).collect();
        return Err(StoreError::Config(format!(
            "unknown dialect token in migration: {token}"
        )));
    }
    Ok(rendered)
}

/// Whether an error is a unique-constraint violation (the same on both backends).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Microseconds since the Unix epoch, from the system clock: the shell's clock for
/// `*_at_us` columns.
pub fn now_us() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is after 1970");
    i64::try_from(since.as_micros()).expect("time fits in i64 microseconds")
}

/// Today's date in Korea (UTC+9), from the system clock: the business calendar services date
/// terms, birth dates and end-of-day runs in.
pub fn today_kst() -> time::Date {
    time::OffsetDateTime::now_utc()
        .to_offset(kernel::dates::KST)
        .date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_spells_tokens_per_backend_and_refuses_unknown_ones() {
        let sql = "CREATE TABLE t (seq {{id}}, body {{bytes}} NOT NULL)";
        assert_eq!(
            render(sql, Backend::Sqlite).unwrap(),
            "CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)"
        );
        assert_eq!(
            render(sql, Backend::Postgres).unwrap(),
            "CREATE TABLE t (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body BYTEA NOT NULL)"
        );
        let err = render("CREATE TABLE t (x {{uuid}})", Backend::Sqlite).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration: unknown dialect token in migration: {{uuid}})"
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["ledger", "customers_2", "_x"] {
            assert!(is_valid_schema_name(good), "{good}");
        }
        for bad in ["", "2x", "Customers", "a-b", "a;drop", &"a".repeat(64)] {
            assert!(!is_valid_schema_name(bad), "{bad}");
        }
    }
}
