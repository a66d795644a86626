//! The transactional outbox: a service records the events a change causes in the same
//! transaction as the change, so an event exists if and only if its change committed. A relay
//! (`bus::Relay`) publishes them later, at least once.
//!
//! Ordering. Each event belongs to an aggregate (its CloudEvents `subject`) and gets the next
//! number of that aggregate's sequence (`outbox_aggregates`). Taking that number locks the
//! aggregate's counter row until commit, so of two transactions recording events for one
//! aggregate the second waits for the first; its outbox row therefore gets a higher `seq` and
//! commits later. Sequence gaps are harmless: a row with a lower `seq` of *another* aggregate
//! may become visible after a higher one was published, and is picked up on the next pass,
//! because published rows are marked one by one (`published_at_us`), never by a high-water mark.

use kernel::event::{CloudEvent, TraceParent};
use sqlx::{Any, Row, Transaction};

use crate::StoreError;
use crate::sql::Store;

/// An event to record: what happened, to which aggregate, with what payload.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// `<service>.<aggregate>.<what happened>`, e.g. `customers.customer.created`.
    pub event_type: String,
    /// The aggregate, e.g. `customer/0190f1c2-…`; becomes the CloudEvents `subject`.
    pub aggregate: String,
    /// The payload. Never regulated data in the clear: events travel and are retained.
    pub data: serde_json::Value,
    /// The trace context of the request that caused the change.
    pub traceparent: Option<TraceParent>,
}

/// An event in the outbox that is not published yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Unpublished {
    /// The outbox row's position: publish in ascending order.
    pub seq: i64,
    /// The aggregate's own sequence number (1, 2, 3, … per aggregate).
    pub aggregate_seq: i64,
    /// The event as it will be published.
    pub event: CloudEvent,
}

/// Records `event` in the transaction's outbox (it commits or rolls back with `tx`) and returns
/// the CloudEvent as it will be published. `service` names the source; `now_us` is the
/// recording time.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    service: &str,
    event: NewEvent,
    now_us: i64,
) -> Result<CloudEvent, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    let cloud_event = CloudEvent::new(
        id,
        service,
        event.event_type,
        Some(event.aggregate.clone()),
        now_us,
        event.data,
        event.traceparent,
    )?;
    let aggregate_seq: i64 = sqlx::query_scalar(
        "INSERT INTO outbox_aggregates (aggregate, last_seq) VALUES ($1, 1) \
         ON CONFLICT (aggregate) DO UPDATE SET last_seq = outbox_aggregates.last_seq + 1 \
         RETURNING last_seq",
    )
    .bind(&event.aggregate)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO outbox (event_id, aggregate, aggregate_seq, event_type, envelope, recorded_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&cloud_event.id)
    .bind(&event.aggregate)
    .bind(aggregate_seq)
    .bind(&cloud_event.event_type)
    .bind(cloud_event.to_json())
    .bind(now_us)
    .execute(&mut **tx)
    .await?;
    Ok(cloud_event)
}

/// Records many events in the transaction's outbox at once, in multi-row statements (an end of
/// day's notices): the same outcome as [`record`] called for each in turn, in order — each
/// aggregate's events get consecutive numbers in the order given. Aggregates' counters are
/// taken in ascending order, so two such calls never wait on each other in a cycle.
pub async fn record_many(
    tx: &mut Transaction<'static, Any>,
    service: &str,
    events: Vec<NewEvent>,
    now_us: i64,
) -> Result<Vec<CloudEvent>, StoreError> {
    /// Rows per statement: six parameters a row stays well under every backend's limit, and
    /// sqlx binds SQLite's parameters by name (a search over all of them), so smaller is faster.
    const ROWS: usize = 100;
    let mut counts: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for event in &events {
        *counts.entry(event.aggregate.as_str()).or_default() += 1;
    }
    // The last number each aggregate gets; its events count down from there.
    let mut last: std::collections::HashMap<String, i64> =
        std::collections::HashMap::with_capacity(counts.len());
    let counted: Vec<(&str, i64)> = counts.into_iter().collect();
    for chunk in counted.chunks(ROWS) {
        let values = placeholders(chunk.len(), 2);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO outbox_aggregates (aggregate, last_seq) VALUES {values} \
             ON CONFLICT (aggregate) DO UPDATE SET last_seq = outbox_aggregates.last_seq + excluded.last_seq \
             RETURNING aggregate, last_seq"
        )));
        for (aggregate, n) in chunk {
            query = query.bind(*aggregate).bind(*n);
        }
        for row in query.fetch_all(&mut **tx).await? {
            last.insert(row.try_get("aggregate")?, row.try_get("last_seq")?);
        }
    }
    // Each aggregate's events count up from just after the number it had before this call.
    let mut next: std::collections::HashMap<&str, i64> = counted
        .iter()
        .map(|(aggregate, n)| (*aggregate, last.get(*aggregate).copied().unwrap_or(*n) - n))
        .collect();
    let mut numbered = Vec::with_capacity(events.len());
    for event in &events {
        let n = next.entry(event.aggregate.as_str()).or_default();
        *n += 1;
        numbered.push(*n);
    }
    let mut recorded = Vec::with_capacity(events.len());
    for event in events {
        let cloud_event = CloudEvent::new(
            uuid::Uuid::now_v7().to_string(),
            service,
            event.event_type,
            Some(event.aggregate),
            now_us,
            event.data,
            event.traceparent,
        )?;
        recorded.push(cloud_event);
    }
    for (chunk, seqs) in recorded.chunks(ROWS).zip(numbered.chunks(ROWS)) {
        let values = placeholders(chunk.len(), 6);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO outbox (event_id, aggregate, aggregate_seq, event_type, envelope, recorded_at_us) \
             VALUES {values}"
        )));
        for (event, seq) in chunk.iter().zip(seqs) {
            query = query
                .bind(&event.id)
                .bind(event.subject.clone())
                .bind(*seq)
                .bind(&event.event_type)
                .bind(event.to_json())
                .bind(now_us);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(recorded)
}

/// `($1, $2), ($3, $4), …`: `rows` rows of `columns` parameters.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Up to `limit` unpublished events, oldest first.
pub async fn unpublished(store: &Store, limit: u32) -> Result<Vec<Unpublished>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, aggregate_seq, envelope FROM outbox WHERE published_at_us IS NULL \
         ORDER BY seq LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(store.reader())
    .await?;
    rows.iter()
        .map(|row| {
            let envelope: String = row.try_get("envelope")?;
            Ok(Unpublished {
                seq: row.try_get("seq")?,
                aggregate_seq: row.try_get("aggregate_seq")?,
                event: CloudEvent::from_json(envelope.as_bytes())?,
            })
        })
        .collect()
}

/// Marks the outbox rows `seqs` published at `now_us`.
pub async fn mark_published(store: &Store, seqs: &[i64], now_us: i64) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    for &seq in seqs {
        sqlx::query(
            "UPDATE outbox SET published_at_us = $1 WHERE seq = $2 AND published_at_us IS NULL",
        )
        .bind(now_us)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes rows published before `before_us`; returns how many. The aggregate counters stay,
/// so numbering never restarts.
pub async fn prune_published(store: &Store, before_us: i64) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "DELETE FROM outbox WHERE published_at_us IS NOT NULL AND published_at_us < $1",
    )
    .bind(before_us)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Records that `consumer` applied `event_id`, in the transaction that applies it. `false`
/// means it was applied before: the caller rolls back and acknowledges the duplicate.
pub async fn mark_processed(
    tx: &mut Transaction<'static, Any>,
    consumer: &str,
    event_id: &str,
    now_us: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO processed_events (consumer, event_id, processed_at_us) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(now_us)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
