//! The outbox relay: publishes a service's outbox to the bus, oldest first, and marks each
//! event published once the bus has stored it.
//!
//! - **Never loses one.** An event is marked only after the bus acknowledged it; a crash in
//!   between publishes it again, and the bus's duplicate window (keyed by the event id) or, past
//!   it, the consumers' processed-event tables absorb the repeat.
//! - **In order per aggregate.** Events are published one at a time in `seq` order, and a pass
//!   stops at the first failure, so no event is published before an earlier one of its
//!   aggregate (the outbox's numbering guarantees the earlier one has the lower `seq`).
//! - **One relay per service.** A relay publishes only while it holds the service's
//!   `outbox-relay` lease (a PostgreSQL advisory lock in the scale-out shape), so two replicas
//!   of a service never interleave their publishes.

use std::sync::Arc;
use std::time::Duration;

use store::outbox;
use store::sql::now_us;
use store::{Lease, Store};
use tokio::sync::{Notify, watch};

use crate::{Bus, BusError};

/// Events published per pass at most.
pub const RELAY_BATCH_MAX: u32 = 256;
/// How long an idle relay waits before looking again (unless woken).
pub const RELAY_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a relay waits after a failure (bus down) before trying again.
pub const RELAY_RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long published events stay in the outbox (for inspection) before they are pruned.
pub const OUTBOX_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Publishes one service's outbox.
#[derive(Clone, Debug)]
pub struct Relay {
    store: Store,
    bus: Bus,
    wake: Arc<Notify>,
}

impl Relay {
    /// A relay for the service whose store this is.
    pub fn new(store: Store, bus: Bus) -> Relay {
        Relay {
            store,
            bus,
            wake: Arc::new(Notify::new()),
        }
    }

    /// A handle to wake the relay right after a commit that recorded events (it also polls).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// One pass: publishes up to [`RELAY_BATCH_MAX`] events in order, marks the ones the bus
    /// stored, and returns how many. Call it only while holding the lease (see [`Relay::run`]).
    pub async fn publish_pending(&self) -> Result<usize, BusError> {
        let pending = outbox::unpublished(&self.store, RELAY_BATCH_MAX).await?;
        let mut done = Vec::with_capacity(pending.len());
        let mut failure = None;
        for p in &pending {
            match self.bus.publish(&p.event).await {
                Ok(_) => done.push(p.seq),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !done.is_empty() {
            outbox::mark_published(&self.store, &done, now_us()).await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(done.len()),
        }
    }

    /// Runs until `stop` turns true: takes the lease (waiting while another relay holds it),
    /// then publishes whatever is pending, again and again; prunes old published events.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), BusError> {
        let mut lease: Option<Lease> = None;
        let mut last_prune_us = 0;
        while !*stop.borrow() {
            if let Some(held) = lease.as_mut()
                && !held.is_held().await
            {
                tracing::warn!("outbox relay: lost its lease; taking it again before publishing");
                lease = None;
            }
            let pause = if lease.is_none() {
                lease = self.store.try_lease("outbox-relay").await?;
                if lease.is_some() {
                    Duration::ZERO
                } else {
                    RELAY_RETRY_DELAY
                }
            } else {
                match self.publish_pending().await {
                    Ok(n) if n == RELAY_BATCH_MAX as usize => Duration::ZERO,
                    Ok(_) => RELAY_POLL_INTERVAL,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay: publish failed; will retry");
                        RELAY_RETRY_DELAY
                    }
                }
            };
            let now = now_us();
            if lease.is_some() && now - last_prune_us > 60_000_000 {
                let retention_us = i64::try_from(OUTBOX_RETENTION.as_micros()).unwrap_or(i64::MAX);
                outbox::prune_published(&self.store, now - retention_us).await?;
                last_prune_us = now;
            }
            if !pause.is_zero() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                    // A dropped sender can never say stop: whoever could is gone, so stop now
                    // (waiting on it would return at once, forever, and spin).
                    changed = stop.changed() => if changed.is_err() { break; }
                }
            }
        }
        Ok(())
    }
}
