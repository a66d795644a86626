//! The writer: requests hand their records to an [`Auditor`] and go on; one task appends them
//! to the log in batches (everything that arrives within [`GATHER`] of the first, up to
//! [`BATCH_MAX`], in one transaction). When
//! the writer falls behind by [`QUEUE_MAX`] records, requests wait for room — the trail is
//! never thinned to keep up. A batch the database refuses is retried until it is written or
//! the process stops; on a clean stop everything queued is written before the writer ends.
//! What a crash can lose is what was queued and not yet written (the [`GATHER`] window and
//! the time one batch takes to commit): see docs/SECURITY.md.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::Record;
use crate::log::AuditLog;

/// Records queued at most before requests wait.
pub const QUEUE_MAX: usize = 65_536;
/// Records appended in one transaction at most.
pub const BATCH_MAX: usize = 4096;
/// How long the writer gathers records after the first of a batch arrives.
pub const GATHER: Duration = Duration::from_millis(10);
/// How long the writer waits before retrying a failed batch.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Where requests hand their records. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Auditor {
    tx: mpsc::Sender<Record>,
}

impl Auditor {
    /// Starts the writer over `log`. It ends once every `Auditor` is dropped and the queue is
    /// written.
    pub fn start(log: AuditLog) -> (Auditor, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_MAX);
        (Auditor { tx }, tokio::spawn(write(log, rx)))
    }

    /// Queues `record` (waiting for room if the writer is behind).
    pub async fn record(&self, record: Record) {
        if self.tx.send(record).await.is_err() {
            tracing::error!("audit: the writer has stopped; a record was not written");
        }
    }
}

async fn write(log: AuditLog, mut rx: mpsc::Receiver<Record>) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        // Gather for a moment: each commit is a sync to disk, so under load one commit
        // carries many requests' records instead of each request paying for its own.
        let deadline = tokio::time::Instant::now() + GATHER;
        while batch.len() < BATCH_MAX {
            let room = BATCH_MAX - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        loop {
            match log.append(&batch).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, records = batch.len(), "audit: appending failed; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
        batch.clear();
    }
}
