//! The idempotent consumer loop. For each delivery, in one transaction of the consuming
//! service's store: record the event id in `processed_events` (a repeat is acknowledged and
//! skipped), apply the handler, commit; then acknowledge. A failure rolls everything back and
//! the delivery is retried after the consumer's backoff; after `max_deliver` attempts (or at
//! once, for a permanent failure or a payload that is not a CloudEvent) it is published to
//! the dead-letter stream and acknowledged.
//!
//! Handler errors end up in logs and dead letters: they must name what failed, never the
//! regulated values involved.

use std::future::Future;
use std::time::Duration;

use kernel::event::CloudEvent;
use serde_json::json;
use sqlx::{Any, Transaction};
use store::Store;
use store::outbox::mark_processed;
use store::sql::now_us;
use tokio::sync::watch;

use crate::{Bus, BusError, ConsumerSpec, DEAD_LETTER_STREAM, Delivery, StreamSpec};

/// How long one fetch waits for messages before the loop checks for shutdown.
pub const FETCH_WAIT: Duration = Duration::from_millis(500);
/// Deliveries fetched at a time by the loop.
pub const FETCH_BATCH: usize = 64;

/// Applies events of one kind to a service's store.
pub trait Handler: Send + Sync {
    /// Applies `event` inside `tx` (which also records that it was processed). Returning an
    /// error rolls the transaction back.
    fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &CloudEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Why a handler did not apply an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct HandlerError {
    /// What failed, without regulated data.
    pub reason: String,
    /// Retrying cannot help (the event is invalid for this consumer): dead-letter it now.
    pub permanent: bool,
}

impl HandlerError {
    /// A failure that may pass (a dependency down, a conflict): retry with backoff.
    pub fn transient(reason: impl Into<String>) -> HandlerError {
        HandlerError {
            reason: reason.into(),
            permanent: false,
        }
    }

    /// A failure retrying cannot fix.
    pub fn permanent(reason: impl Into<String>) -> HandlerError {
        HandlerError {
            reason: reason.into(),
            permanent: true,
        }
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> HandlerError {
        HandlerError::transient(format!("database: {e}"))
    }
}

impl From<store::StoreError> for HandlerError {
    fn from(e: store::StoreError) -> HandlerError {
        HandlerError::transient(e.to_string())
    }
}

/// What became of one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied and committed, then acknowledged.
    Applied,
    /// Applied before (same event id): acknowledged without applying again.
    Duplicate,
    /// Failed; will be delivered again after `delay`.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        /// Until the next one.
        delay: Duration,
    },
    /// Published to the dead-letter stream and acknowledged.
    DeadLettered {
        /// Why.
        reason: String,
    },
}

/// Processes one delivery as described in the module documentation.
pub async fn process<H: Handler>(
    bus: &Bus,
    store: &Store,
    spec: &ConsumerSpec,
    handler: &H,
    delivery: Delivery,
) -> Result<Outcome, BusError> {
    let event = match delivery.event() {
        Ok(event) => event,
        Err(e) => {
            let reason = format!("not a CloudEvent: {e}");
            dead_letter(bus, spec, &delivery, None, &reason).await?;
            delivery.ack().await?;
            return Ok(Outcome::DeadLettered { reason });
        }
    };
    let failure = match apply(store, spec, handler, &event).await {
        Ok(true) => {
            delivery.ack().await?;
            return Ok(Outcome::Applied);
        }
        Ok(false) => {
            delivery.ack().await?;
            return Ok(Outcome::Duplicate);
        }
        Err(failure) => failure,
    };
    if failure.permanent || delivery.attempt >= spec.max_deliver {
        let reason = if failure.permanent {
            format!("permanent failure: {}", failure.reason)
        } else {
            format!(
                "failed {} attempts; last: {}",
                delivery.attempt, failure.reason
            )
        };
        tracing::warn!(consumer = %spec.durable, event_id = %event.id, %reason, "dead-lettering event");
        dead_letter(bus, spec, &delivery, Some(&event), &reason).await?;
        delivery.ack().await?;
        return Ok(Outcome::DeadLettered { reason });
    }
    let attempt = delivery.attempt;
    let delay = spec.backoff_after(attempt);
    tracing::info!(consumer = %spec.durable, event_id = %event.id, attempt, reason = %failure.reason, "event failed; will retry");
    delivery.nak(delay).await?;
    Ok(Outcome::Retrying { attempt, delay })
}

/// `Ok(true)`: applied now; `Ok(false)`: applied before.
async fn apply<H: Handler>(
    store: &Store,
    spec: &ConsumerSpec,
    handler: &H,
    event: &CloudEvent,
) -> Result<bool, HandlerError> {
    let mut tx = store.begin().await?;
    if !mark_processed(&mut tx, &spec.durable, &event.id, now_us()).await? {
        return Ok(false);
    }
    handler.handle(&mut tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

async fn dead_letter(
    bus: &Bus,
    spec: &ConsumerSpec,
    delivery: &Delivery,
    event: Option<&CloudEvent>,
    reason: &str,
) -> Result<(), BusError> {
    let subject = spec.dead_letter_subject();
    // One dead letter per event and consumer: a repeat (crash before the ack) is deduplicated.
    let id = match event {
        Some(e) => format!("{}:{}", spec.durable, e.id),
        None => uuid::Uuid::now_v7().to_string(),
    };
    let letter = CloudEvent::new(
        id,
        DEAD_LETTER_STREAM,
        subject.clone(),
        event.and_then(|e| e.subject.clone()),
        now_us(),
        json!({
            "stream": spec.stream,
            "consumer": spec.durable,
            "subject": delivery.subject,
            "attempts": delivery.attempt,
            "reason": reason,
            "payload": delivery.payload,
        }),
        event.and_then(CloudEvent::trace_parent),
    )
    .map_err(|e| BusError::Invalid {
        what: "dead letter",
        value: e.to_string(),
    })?;
    bus.publish_on(&subject, &letter).await?;
    Ok(())
}

/// Runs the consumer until `stop` turns true: ensures the dead-letter stream, opens the
/// durable consumer and processes deliveries in order of arrival.
pub async fn run_consumer<H: Handler>(
    bus: Bus,
    store: Store,
    spec: ConsumerSpec,
    handler: H,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BusError> {
    bus.ensure_stream(&StreamSpec::dead_letters()).await?;
    let mut consumer = bus.consumer(&spec).await?;
    while !*stop.borrow() {
        let deliveries = tokio::select! {
            fetched = consumer.fetch(FETCH_BATCH, FETCH_WAIT) => fetched,
            _ = stop.changed() => break,
        };
        let deliveries = match deliveries {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(consumer = %spec.durable, error = %e, "fetch failed; will retry");
                tokio::time::sleep(FETCH_WAIT).await;
                continue;
            }
        };
        for delivery in deliveries {
            if let Err(e) = process(&bus, &store, &spec, &handler, delivery).await {
                // Not acknowledged: the bus redelivers it after the ack wait.
                tracing::warn!(consumer = %spec.durable, error = %e, "delivery not settled; the bus will redeliver it");
            }
        }
    }
    Ok(())
}
