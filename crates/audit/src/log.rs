//! The audit entries in SQL: appended in batches (one transaction each, the chain continued
//! from the newest stored entry — under an advisory lock on PostgreSQL, so edges sharing one
//! database append one chain in turn), read by filter a page at a time, scanned whole for
//! verification and export.

use sqlx::Row;
use store::sql::{Migration, MigrationSet};
use store::{Backend, Store, StoreError};

use crate::{Broken, Entry, GENESIS, Record, Stored, Verified, Verifier, body, hex, link};

/// The audit trail's tables.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    name: "audit",
    migrations: &[Migration {
        version: 1,
        description: "audit events",
        sql: include_str!("../migrations/0001_audit_events.sql"),
    }],
};

/// The PostgreSQL advisory lock every appender takes for its transaction.
const APPEND_LOCK: i64 = 0x6775_7265_756d_4155; // "gureumAU"
/// Rows per INSERT statement. On SQLite its parameters are anonymous (`?`): sqlx-sqlite asks
/// SQLite for each parameter's name, a search of the statement's named parameters, so with
/// `$n` a statement of n parameters cost n² (64 rows of 9 was a sixth of the server's time
/// under load).
const ROWS_PER_STATEMENT: usize = 32;
/// A page holds at most this many entries.
pub const PAGE_MAX: i64 = 1000;
/// Entries read per query while scanning.
const SCAN_CHUNK: i64 = 5000;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A stored body does not parse (verification says where).
    #[error("damaged audit entry {0}")]
    Corrupt(i64),
}

/// Which entries a page holds.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this principal's.
    pub principal: Option<String>,
    /// Only this action (`GET /v1/customers/{id}`).
    pub action: Option<String>,
    /// Only this outcome (HTTP status).
    pub outcome: Option<u16>,
    /// Only this kind (`request`, `regulated_read`).
    pub kind: Option<String>,
    /// At or after (microseconds since the Unix epoch).
    pub from_us: Option<i64>,
    /// Before.
    pub to_us: Option<i64>,
    /// After this entry (the previous page's `next`).
    pub after: Option<i64>,
    /// At most this many (1–1000).
    pub limit: i64,
}

/// The audit log.
#[derive(Clone, Debug)]
pub struct AuditLog {
    store: Store,
}

/// The newest entry's number and hash.
const HEAD: &str = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1";

/// [`HEAD`]'s row as the entry's number and hash.
fn head_of(row: Option<sqlx::any::AnyRow>) -> Result<Option<(i64, [u8; 32])>, AuditError> {
    let Some(row) = row else {
        return Ok(None);
    };
    let seq: i64 = row.try_get(0)?;
    let hash: Vec<u8> = row.try_get(1)?;
    Ok(Some((
        seq,
        hash.try_into().map_err(|_| AuditError::Corrupt(seq))?,
    )))
}

/// The INSERT of `rows` entries: `$n` parameters on PostgreSQL, anonymous `?` on SQLite (see
/// [`ROWS_PER_STATEMENT`]).
fn insert_sql(backend: Backend, rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_events (seq, at_us, principal, action, outcome, kind, body, \
         prev_hash, hash) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        match backend {
            Backend::Sqlite => sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            Backend::Postgres => {
                let n = i * 9;
                sql.push('(');
                for p in 1..=9 {
                    if p > 1 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("${}", n + p));
                }
                sql.push(')');
            }
        }
    }
    sql
}

impl AuditLog {
    /// Opens the log in `store`, applying its migrations.
    pub async fn open(store: Store) -> Result<AuditLog, AuditError> {
        store.migrate(&MIGRATIONS).await?;
        Ok(AuditLog { store })
    }

    /// Appends `records` in order, continuing the chain; returns the last entry's number.
    pub async fn append(&self, records: &[Record]) -> Result<i64, AuditError> {
        let mut tx = self.store.begin().await?;
        match self.store.backend() {
            Backend::Postgres => {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(APPEND_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            // Take SQLite's write lock before reading the head: a transaction that reads first
            // and writes second fails (SQLITE_BUSY_SNAPSHOT) when another connection wrote in
            // between, instead of waiting its turn.
            Backend::Sqlite => {
                sqlx::query("DELETE FROM audit_events WHERE seq < 0")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let head = sqlx::query(HEAD).fetch_optional(&mut *tx).await?;
        let (mut seq, mut prev) = head_of(head)?.unwrap_or((0, GENESIS));
        let backend = self.store.backend();
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_sql(backend, chunk.len())));
            for record in chunk {
                seq += 1;
                let body = body(record);
                let hash = link(&prev, &body);
                query = query
                    .bind(seq)
                    .bind(record.at_us)
                    .bind(record.principal.as_str())
                    .bind(record.action.as_str())
                    .bind(i64::from(record.outcome))
                    .bind(record.kind.name())
                    .bind(body)
                    .bind(prev.to_vec())
                    .bind(hash.to_vec());
                prev = hash;
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(seq)
    }

    /// The entries `filter` selects, oldest first, and the cursor of the next page (if this
    /// one is full).
    pub async fn page(&self, filter: &Filter) -> Result<(Vec<Entry>, Option<i64>), AuditError> {
        let mut sql = String::from(
            "SELECT seq, at_us, principal, action, outcome, kind, body, prev_hash, hash \
             FROM audit_events WHERE 1 = 1",
        );
        let mut n = 0;
        let mut next = |column: &str, op: &str| {
            n += 1;
            format!(" AND {column} {op} ${n}")
        };
        if filter.principal.is_some() {
            sql.push_str(&next("principal", "="));
        }
        if filter.action.is_some() {
            sql.push_str(&next("action", "="));
        }
        if filter.outcome.is_some() {
            sql.push_str(&next("outcome", "="));
        }
        if filter.kind.is_some() {
            sql.push_str(&next("kind", "="));
        }
        if filter.from_us.is_some() {
            sql.push_str(&next("at_us", ">="));
        }
        if filter.to_us.is_some() {
            sql.push_str(&next("at_us", "<"));
        }
        if filter.after.is_some() {
            sql.push_str(&next("seq", ">"));
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY seq LIMIT ${n}"));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(v) = &filter.principal {
            query = query.bind(v.clone());
        }
        if let Some(v) = &filter.action {
            query = query.bind(v.clone());
        }
        if let Some(v) = filter.outcome {
            query = query.bind(i64::from(v));
        }
        if let Some(v) = &filter.kind {
            query = query.bind(v.clone());
        }
        if let Some(v) = filter.from_us {
            query = query.bind(v);
        }
        if let Some(v) = filter.to_us {
            query = query.bind(v);
        }
        if let Some(v) = filter.after {
            query = query.bind(v);
        }
        let limit = filter.limit.clamp(1, PAGE_MAX);
        let rows = query.bind(limit).fetch_all(self.store.reader()).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let stored = stored(&row)?;
            entries.push(entry(&stored)?);
        }
        let next = (entries.len() as i64 == limit)
            .then(|| entries.last().map(|e| e.seq))
            .flatten();
        Ok((entries, next))
    }

    /// Reads every entry in order, handing each to `each`; stops at the first error it
    /// returns.
    pub async fn scan<E: From<AuditError>>(
        &self,
        each: impl FnMut(&Stored) -> Result<(), E>,
    ) -> Result<(), E> {
        self.scan_after(0, each).await
    }

    /// [`AuditLog::scan`] from the entry after `after`.
    pub async fn scan_after<E: From<AuditError>>(
        &self,
        mut after: i64,
        mut each: impl FnMut(&Stored) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            let rows = sqlx::query(
                "SELECT seq, at_us, principal, action, outcome, kind, body, prev_hash, hash \
                 FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(SCAN_CHUNK)
            .fetch_all(self.store.reader())
            .await
            .map_err(AuditError::from)?;
            if rows.is_empty() {
                return Ok(());
            }
            for row in &rows {
                let stored = stored(row)?;
                after = stored.seq;
                each(&stored)?;
            }
        }
    }

    /// Checks the whole chain.
    pub async fn verify(&self) -> Result<Result<Verified, Broken>, AuditError> {
        let mut verifier = Verifier::default();
        Ok(self
            .verify_more(&mut verifier)
            .await?
            .map(|()| verifier.verified()))
    }

    /// The newest entry's number and hash (`None` while the log is empty).
    pub async fn head(&self) -> Result<Option<(i64, [u8; 32])>, AuditError> {
        head_of(
            sqlx::query(HEAD)
                .fetch_optional(self.store.reader())
                .await?,
        )
    }

    /// Checks the entries appended after what `verifier` checked last, and that none it
    /// checked went missing from the end (the chain cut short).
    pub async fn verify_more(
        &self,
        verifier: &mut Verifier,
    ) -> Result<Result<(), Broken>, AuditError> {
        self.verify_more_each(verifier, |_| {}).await
    }

    /// [`AuditLog::verify_more`], handing each entry that checks out to `each`, in order
    /// (the guard's detectors read the trail so in the split shape).
    pub async fn verify_more_each(
        &self,
        verifier: &mut Verifier,
        mut each: impl FnMut(&Stored),
    ) -> Result<Result<(), Broken>, AuditError> {
        enum Stop {
            Broken(Broken),
            Failed(AuditError),
        }
        impl From<AuditError> for Stop {
            fn from(e: AuditError) -> Stop {
                Stop::Failed(e)
            }
        }
        let from = verifier.last_seq();
        match self
            .scan_after(from, |e| {
                verifier.check(e).map_err(Stop::Broken)?;
                each(e);
                Ok(())
            })
            .await
        {
            Ok(()) => {}
            Err(Stop::Broken(b)) => return Ok(Err(b)),
            Err(Stop::Failed(e)) => return Err(e),
        }
        let last = verifier.last_seq();
        let head = self.head().await?.map_or(0, |(seq, _)| seq);
        if head < last {
            return Ok(Err(Broken {
                seq: head + 1,
                problem: format!(
                    "missing: the chain ends at {head}, but entries up to {last} were seen \
                     (its end was cut off)"
                ),
            }));
        }
        Ok(Ok(()))
    }
}

fn stored(row: &sqlx::any::AnyRow) -> Result<Stored, AuditError> {
    Ok(Stored {
        seq: row.try_get(0)?,
        at_us: row.try_get(1)?,
        principal: row.try_get(2)?,
        action: row.try_get(3)?,
        outcome: row.try_get(4)?,
        kind: row.try_get(5)?,
        body: row.try_get(6)?,
        prev_hash: row.try_get(7)?,
        hash: row.try_get(8)?,
    })
}

/// An entry as the API shows it.
pub fn entry(stored: &Stored) -> Result<Entry, AuditError> {
    let record: Record =
        serde_json::from_str(&stored.body).map_err(|_| AuditError::Corrupt(stored.seq))?;
    Ok(Entry {
        seq: stored.seq,
        prev_hash: hex(&stored.prev_hash),
        hash: hex(&stored.hash),
        record,
    })
}
