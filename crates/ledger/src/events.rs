//! The ledger's events: one `ledger.transfer.committed` CloudEvent per committed transfer.
//!
//! The ledger's outbox is its journal: a transfer exists if and only if its batch is durable,
//! and the transfer log is in timestamp order. [`EventRelay`] reads the durable transfers after
//! its cursor (the timestamp of the last transfer published, saved on the bus), publishes them
//! in order, then moves the cursor. A crash between the two publishes some again: their event
//! ids are derived from the transfer ids, so the bus's duplicate window and the consumers'
//! processed-event tables absorb the repeats. Nothing committed is ever skipped.

use std::sync::Arc;
use std::time::Duration;

use bus::{Bus, BusError, StreamSpec};
use kernel::event::EncodedEvent;
use tokio::sync::watch;

use crate::api::TransferResponse;
use crate::engine::{Engine, EngineError};
use crate::state::TransferView;

/// The event type (and subject) of a committed transfer.
pub const TRANSFER_COMMITTED: &str = "ledger.transfer.committed";
/// Transfers published per pass at most.
pub const EVENTS_PER_PASS_MAX: usize = 4_096;
/// How long an idle relay waits before looking again.
pub const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a relay waits after a failure before trying again.
pub const RETRY_DELAY: Duration = Duration::from_millis(500);

/// The event for a committed transfer, in its JSON form. Its id is `transfer-<id>`: the same
/// transfer always gives the same event, which is what makes republishing harmless. It is
/// serialized straight from the transfer (an [`EncodedEvent`]): the relay publishes thousands
/// a second, and building a `serde_json::Value` tree first was most of its cost.
pub fn transfer_committed(view: TransferView) -> EncodedEvent {
    let id = view.transfer.id;
    let timestamp_us = (view.transfer.timestamp / 1_000) as i64;
    let data = TransferResponse {
        pending_status: None,
        ..TransferResponse::from(view)
    };
    EncodedEvent::new(
        format!("transfer-{id}"),
        "ledger",
        TRANSFER_COMMITTED,
        Some(&format!("transfer/{id}")),
        timestamp_us,
        &data,
        None,
    )
    .expect("a transfer event is a valid CloudEvent")
}

/// Publishes the ledger's committed transfers to the bus.
pub struct EventRelay {
    engine: Arc<Engine>,
    bus: Bus,
    /// Names the cursor: one per ledger shard.
    cursor: String,
}

/// Why a relay pass failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The bus refused or failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The engine is not serving.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl EventRelay {
    /// A relay for shard `shard` of the ledger served by `engine`.
    pub fn new(engine: Arc<Engine>, bus: Bus, shard: u32) -> EventRelay {
        EventRelay {
            engine,
            bus,
            cursor: format!("ledger-events-{shard}"),
        }
    }

    /// Creates the ledger's stream (`ledger.>`) if missing.
    pub async fn ensure_stream(&self, replicas: usize) -> Result<(), BusError> {
        let spec = StreamSpec {
            replicas,
            ..StreamSpec::for_service("ledger")
        };
        self.bus.ensure_stream(&spec).await
    }

    /// One pass from `after` (a transfer timestamp): publishes up to
    /// [`EVENTS_PER_PASS_MAX`] transfers, saves the cursor, returns the new one and how many.
    pub async fn publish_after(&self, after: u64) -> Result<(u64, usize), RelayError> {
        let views = self
            .engine
            .query(move |l| l.transfers_after(after, EVENTS_PER_PASS_MAX))
            .await?;
        let Some(last) = views.last().map(|v| v.transfer.timestamp) else {
            return Ok((after, 0));
        };
        let count = views.len();
        let events: Vec<EncodedEvent> = views.into_iter().map(transfer_committed).collect();
        self.bus.publish_encoded(events).await?;
        self.bus.save_cursor(&self.cursor, last).await?;
        Ok((last, count))
    }

    /// Publishes until `stop` turns true, resuming from the saved cursor.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut cursor = None;
        while !*stop.borrow() {
            let pause = match cursor {
                None => match self.bus.load_cursor(&self.cursor).await {
                    Ok(saved) => {
                        cursor = Some(saved.unwrap_or(0));
                        Duration::ZERO
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ledger events: cannot read the cursor; retrying");
                        RETRY_DELAY
                    }
                },
                Some(after) => match self.publish_after(after).await {
                    Ok((next, n)) => {
                        cursor = Some(next);
                        if n == EVENTS_PER_PASS_MAX {
                            Duration::ZERO
                        } else {
                            IDLE_POLL
                        }
                    }
                    Err(RelayError::Engine(_)) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "ledger events: publishing failed; retrying");
                        RETRY_DELAY
                    }
                },
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    // A dropped sender can never say stop: whoever could is gone, so stop now
                    // (waiting on it would return at once, forever, and spin).
                    changed = stop.changed() => if changed.is_err() { break; }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kernel::event::CloudEvent;

    use super::*;
    use crate::types::{Transfer, TransferFlags};

    #[test]
    fn a_transfer_event_is_a_cloud_event_carrying_the_transfer() {
        let view = TransferView {
            transfer: Transfer {
                id: 7,
                debit_account_id: 1,
                credit_account_id: 2,
                amount: 340_282_366_920_938_463_463_374_607_431_768_211_455,
                ledger: 410,
                code: 3,
                flags: TransferFlags::PENDING,
                timeout: 60,
                timestamp: 1_700_000_000_123_456_789,
                ..Transfer::default()
            },
            metadata: Some(r#"{"memo":"월세"}"#.into()),
            pending_status: None,
        };
        let encoded = transfer_committed(view);
        assert_eq!(encoded.event_type, "ledger.transfer.committed");
        assert_eq!(encoded.id, "transfer-7");
        let event = CloudEvent::from_json(encoded.json.as_bytes()).unwrap();
        assert_eq!(event.id, "transfer-7");
        assert_eq!(event.source, "/gureum/ledger");
        assert_eq!(event.subject.as_deref(), Some("transfer/7"));
        assert_eq!(event.time, "2023-11-14T22:13:20.123456Z");
        assert_eq!(
            event.data,
            serde_json::json!({
                "id": "7", "debit_account_id": "1", "credit_account_id": "2",
                "amount": "340282366920938463463374607431768211455", "pending_id": "0",
                "user_data_128": "0", "user_data_64": "0", "user_data_32": 0, "timeout": 60,
                "ledger": 410, "code": 3, "flags": ["pending"], "metadata": {"memo": "월세"},
                "timestamp": "1700000000123456789"
            })
        );
    }
}
