//! The detectors' findings kept in the edge's database: they outlive the process, and every
//! replica of the split shape lists the findings of all.
//!
//! The gate's detectors stay in memory (they run on every request); what they opened or
//! updated is written here every [`FLUSH_EVERY`] (an upsert per finding, by an id derived
//! from its kind, principal, address and first event), and before each listing, so a listing
//! shows what this edge found up to the moment it was asked. Replicas whose detectors read
//! the shared trail find the same findings under the same ids; an upsert never takes a
//! finding's count or last sighting back (a replica that started later counted less).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Row;
use store::Store;

use crate::Gate;

/// How often changed findings are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// A listing holds at most this many.
pub const LIST_MAX: i64 = 1000;

/// A finding as kept and listed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StoredFinding {
    /// Stable across updates: derived from kind, principal, address and first event.
    pub id: String,
    /// Which detector (`brute_force`, …).
    pub kind: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// The principal concerned, if one is.
    pub principal: Option<String>,
    /// The address concerned, if one is.
    pub address: Option<String>,
    /// What was seen (counts, never values).
    pub evidence: String,
    /// The first event counted (microseconds since the Unix epoch).
    pub first_seen_us: i64,
    /// The last.
    pub last_seen_us: i64,
    /// Events that counted towards it.
    pub count: i64,
}

impl StoredFinding {
    fn from(f: &guard::Finding) -> StoredFinding {
        let mut hash = Sha256::new();
        for part in [
            f.kind,
            f.principal.as_deref().unwrap_or(""),
            f.address.as_deref().unwrap_or(""),
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hash.update(f.first_seen_us.to_be_bytes());
        let digest = hash.finalize();
        StoredFinding {
            id: audit::hex(&digest[..16]),
            kind: f.kind.to_owned(),
            severity: f.severity.name().to_owned(),
            principal: f.principal.clone(),
            address: f.address.clone(),
            evidence: f.evidence.clone(),
            first_seen_us: f.first_seen_us,
            last_seen_us: f.last_seen_us,
            count: i64::try_from(f.count).unwrap_or(i64::MAX),
        }
    }
}

/// The findings table.
pub struct Findings {
    store: Store,
    /// One flush at a time (the periodic one and a listing's).
    flushing: tokio::sync::Mutex<()>,
}

impl Findings {
    /// Over the edge's store (its migrations applied by [`crate::Keys::open`]).
    pub fn new(store: Store) -> Findings {
        Findings {
            store,
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// Writes what `gate`'s detectors opened or updated since the last flush.
    pub async fn flush(&self, gate: &Gate) -> Result<(), sqlx::Error> {
        let _one = self.flushing.lock().await;
        let changed = gate.drain_changed_findings();
        if changed.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.writer().begin().await?;
        for finding in &changed {
            let f = StoredFinding::from(finding);
            sqlx::query(
                "INSERT INTO guard_findings (id, kind, severity, principal, address, evidence, \
                 first_seen_us, last_seen_us, count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET \
                 evidence = CASE WHEN excluded.count >= guard_findings.count \
                   THEN excluded.evidence ELSE guard_findings.evidence END, \
                 last_seen_us = CASE WHEN excluded.last_seen_us > guard_findings.last_seen_us \
                   THEN excluded.last_seen_us ELSE guard_findings.last_seen_us END, \
                 count = CASE WHEN excluded.count > guard_findings.count \
                   THEN excluded.count ELSE guard_findings.count END",
            )
            .bind(&f.id)
            .bind(&f.kind)
            .bind(&f.severity)
            .bind(&f.principal)
            .bind(&f.address)
            .bind(&f.evidence)
            .bind(f.first_seen_us)
            .bind(f.last_seen_us)
            .bind(f.count)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Findings in the order they began, after the one `after` names (`<first_seen_us>:<id>`,
    /// a page's `next`), at most `limit`; and the next page's cursor.
    pub async fn list(
        &self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<(Vec<StoredFinding>, Option<String>), sqlx::Error> {
        let limit = limit.clamp(1, LIST_MAX);
        let (at, id) = after.unwrap_or((i64::MIN, String::new()));
        let rows = sqlx::query(
            "SELECT id, kind, severity, principal, address, evidence, first_seen_us, \
             last_seen_us, count FROM guard_findings \
             WHERE first_seen_us > $1 OR (first_seen_us = $1 AND id > $2) \
             ORDER BY first_seen_us, id LIMIT $3",
        )
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(self.store.reader())
        .await?;
        let found = rows
            .iter()
            .map(|r| {
                Ok(StoredFinding {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    severity: r.try_get(2)?,
                    principal: r.try_get(3)?,
                    address: r.try_get(4)?,
                    evidence: r.try_get(5)?,
                    first_seen_us: r.try_get(6)?,
                    last_seen_us: r.try_get(7)?,
                    count: r.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let next = (found.len() as i64 == limit)
            .then(|| {
                found
                    .last()
                    .map(|f| format!("{}:{}", f.first_seen_us, f.id))
            })
            .flatten();
        Ok((found, next))
    }

    /// Flushes every [`FLUSH_EVERY`] until aborted, and shares the blocks with the other
    /// replicas ([`crate::blocks::Blocks::sync`]); errors are logged and retried.
    pub async fn keep(self: Arc<Self>, gate: Arc<Gate>) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tick.tick().await;
            if let Err(e) = self.flush(&gate).await {
                tracing::warn!(error = %e, "guard: cannot write the findings; trying again");
            }
            if let Err(e) = gate.blocks().sync(&self.store, store::sql::now_us()).await {
                tracing::warn!(error = %e, "guard: cannot share the blocks; trying again");
            }
        }
    }
}

/// Parses a page cursor (`<first_seen_us>:<id>`).
pub fn cursor(text: &str) -> Option<(i64, String)> {
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn severities_are_kept_as_they_are_listed_elsewhere() {
        use guard::Severity;
        for severity in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(serde_json::to_value(severity).unwrap(), severity.name());
        }
    }
}
