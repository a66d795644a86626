//! The ledger's imperative shell: one thread owns the state and the journal.
//!
//! Requests arrive on a bounded queue. The engine thread takes every request waiting (up to
//! [`GROUP_EVENTS_MAX`] events), applies each write batch to the state and encodes it as a
//! journal record, runs the group's reads, and hands the encoded group with its answers to the
//! journal thread. The journal thread writes every group waiting and makes them durable with one
//! `fdatasync` (group commit), and only then releases their answers, in order. So the engine
//! applies group N+1 while group N is on its way to disk, and no answer, not even a read's,
//! leaves before the state it reflects is durable.
//!
//! If a write or fsync fails the in-memory state is ahead of the disk: the engine stops serving
//! (every later request gets [`EngineError::Failed`]) rather than guess. Restarting recovers
//! from the journal.

use crate::codec;
use crate::journal::{self, JournalEncoder, JournalError, JournalFile, Position, RecordKind};
use crate::snapshot::{self, ChunkCrcs};
use crate::state::{AccountEvent, Ledger, TransferEvent};
use crate::types::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Most events gathered into one group commit.
pub const GROUP_EVENTS_MAX: usize = 8 * BATCH_EVENTS_MAX;

/// Most requests waiting in the engine's queue; senders wait when it is full.
pub const QUEUE_REQUESTS_MAX: usize = 4096;

/// A clock reading in nanoseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    })
}

/// How to run the engine.
#[derive(Clone)]
pub struct EngineConfig {
    /// The data folder (created if missing).
    pub data_dir: PathBuf,
    /// Write a snapshot once this many journal bytes follow the last one.
    pub snapshot_after_bytes: u64,
    /// Where timestamps come from.
    pub clock: Clock,
}

impl EngineConfig {
    /// Defaults for a data folder: snapshot every 256 MiB of journal, the wall clock.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            snapshot_after_bytes: 256 << 20,
            clock: system_clock(),
        }
    }
}

/// Why a request was not served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The journal could not be made durable; the engine stopped serving.
    #[error("the ledger stopped after a storage failure: {0}")]
    Failed(String),
    /// The engine is shutting down.
    #[error("the ledger is shutting down")]
    ShuttingDown,
}

/// What recovery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The journal position the snapshot covered (seq 0 without one).
    pub snapshot_seq: u64,
    /// Journal records replayed after the snapshot.
    pub records_replayed: u64,
    /// A torn tail that was cut off: its offset and what was wrong.
    pub torn_tail: Option<(u64, String)>,
    /// Accounts after recovery.
    pub accounts: usize,
    /// Transfers after recovery.
    pub transfers: usize,
    /// Milliseconds recovery took.
    pub millis: u128,
}

type Reply<T> = oneshot::Sender<Result<T, EngineError>>;
/// A read: runs on the engine thread and returns the answer to send once durable.
type Query = Box<dyn FnOnce(&Ledger) -> Box<dyn FnOnce() + Send> + Send>;

enum Request {
    CreateAccounts(Vec<AccountEvent>, Reply<Vec<CreateAccountResult>>),
    CreateTransfers(Vec<TransferEvent>, Reply<Vec<CreateTransferResult>>),
    Expire,
    Query(Query),
    Shutdown,
}

impl Request {
    fn events(&self) -> usize {
        match self {
            Request::CreateAccounts(e, _) => e.len(),
            Request::CreateTransfers(e, _) => e.len(),
            _ => 1,
        }
    }
}

/// A running ledger engine. Cheap to share behind an `Arc`.
pub struct Engine {
    tx: mpsc::Sender<Request>,
    thread: std::sync::Mutex<Option<JoinHandle<Result<(), JournalError>>>>,
    failed: Arc<AtomicBool>,
}

/// What recovery rebuilt: the state, where the journal stands, and the snapshot's durable
/// chunks.
pub struct Recovered {
    /// The ledger state.
    pub ledger: Ledger,
    /// The journal position after the last valid record.
    pub position: Position,
    /// CRCs of the transfer chunk files the snapshot names.
    pub chunks: ChunkCrcs,
    /// What recovery found.
    pub report: RecoveryReport,
}

/// Rebuilds the ledger from the data folder: the snapshot, then the journal after it. Cuts a
/// torn tail off; refuses any other damage.
pub fn recover(data_dir: &Path) -> Result<Recovered, JournalError> {
    let started = Instant::now();
    std::fs::create_dir_all(data_dir)
        .map_err(JournalError::io(format!("creating {}", data_dir.display())))?;
    let (mut ledger, from, chunks) = snapshot::load(data_dir)?.unwrap_or_default();
    let path = data_dir.join(journal::JOURNAL_FILE);
    let mut replayed = 0;
    let end = journal::read_records(&path, from, |header, payload| {
        replayed += 1;
        journal::replay(&mut ledger, header, payload)
            .map_err(|e| format!("record {} does not decode: {e}", header.seq))
    })?;
    if let Some((offset, reason)) = &end.torn {
        tracing::warn!(
            journal = %path.display(),
            offset,
            reason = reason.as_str(),
            "cutting off a torn journal tail (a write that was never acknowledged)"
        );
        journal::truncate(&path, *offset)?;
    }
    let report = RecoveryReport {
        snapshot_seq: from.seq,
        records_replayed: replayed,
        torn_tail: end.torn.clone(),
        accounts: ledger.account_count(),
        transfers: ledger.transfer_count(),
        millis: started.elapsed().as_millis(),
    };
    Ok(Recovered {
        ledger,
        position: end.position,
        chunks,
        report,
    })
}

impl Engine {
    /// Recovers the ledger in `config.data_dir` and starts serving it.
    pub fn open(config: EngineConfig) -> Result<(Engine, RecoveryReport), JournalError> {
        let Recovered {
            ledger,
            position,
            chunks,
            report,
        } = recover(&config.data_dir)?;
        let journal_path = config.data_dir.join(journal::JOURNAL_FILE);
        let file = JournalFile::open(&journal_path, position.offset)?;
        let (tx, rx) = mpsc::channel(QUEUE_REQUESTS_MAX);
        let failed = Arc::new(AtomicBool::new(false));
        let (commits, commits_rx) = std::sync::mpsc::sync_channel(COMMITS_IN_FLIGHT_MAX);
        let (recycle_tx, recycled) = std::sync::mpsc::channel();
        let io_failed = failed.clone();
        let io_thread = std::thread::Builder::new()
            .name("ledger-journal".into())
            .spawn(move || journal_thread(file, commits_rx, recycle_tx, io_failed))
            .map_err(JournalError::io("starting the ledger journal thread"))?;
        let mut worker = Worker {
            ledger,
            encoder: JournalEncoder::new(position),
            commits,
            recycled,
            io_thread: Some(io_thread),
            snapshot_thread: None,
            chunks,
            snapshot_offset: position.offset,
            config,
            failed: failed.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("ledger-engine".into())
            .spawn(move || worker.run(rx))
            .map_err(JournalError::io("starting the ledger engine thread"))?;
        Ok((
            Engine {
                tx,
                thread: std::sync::Mutex::new(Some(thread)),
                failed,
            },
            report,
        ))
    }

    /// Whether the engine stopped after a storage failure.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    /// Creates accounts; answers once the batch is durable.
    pub async fn create_accounts(
        &self,
        events: Vec<AccountEvent>,
    ) -> Result<Vec<CreateAccountResult>, EngineError> {
        self.call(|reply| Request::CreateAccounts(events, reply))
            .await
    }

    /// Creates transfers; answers once the batch is durable.
    pub async fn create_transfers(
        &self,
        events: Vec<TransferEvent>,
    ) -> Result<Vec<CreateTransferResult>, EngineError> {
        self.call(|reply| Request::CreateTransfers(events, reply))
            .await
    }

    /// Runs a read on the engine thread against durable state.
    pub async fn query<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Ledger) -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        let query: Query = Box::new(move |ledger| {
            let answer = read(ledger);
            Box::new(move || drop(reply.send(answer)))
        });
        self.tx
            .send(Request::Query(query))
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)
    }

    /// Asks the engine to void pending transfers whose timeout has passed.
    pub async fn expire(&self) -> Result<(), EngineError> {
        self.tx
            .send(Request::Expire)
            .await
            .map_err(|_| EngineError::ShuttingDown)
    }

    /// Finishes queued work, writes a snapshot and stops the engine thread.
    pub fn shutdown(&self) -> Result<(), JournalError> {
        let Some(thread) = self.thread.lock().map(|mut t| t.take()).unwrap_or(None) else {
            return Ok(());
        };
        // The queue may be full; the blocking send waits for room.
        let _ = self.tx.blocking_send(Request::Shutdown);
        match thread.join() {
            Ok(result) => result,
            Err(_) => Err(JournalError::Io {
                context: "the ledger engine thread panicked".into(),
                source: std::io::Error::other("panic"),
            }),
        }
    }
}

/// Most encoded groups waiting for the journal thread; the engine waits when it is full.
const COMMITS_IN_FLIGHT_MAX: usize = 4;

/// An answer released once its group is durable (or failed).
type Release = Box<dyn FnOnce(Result<(), EngineError>) + Send>;

/// Work for the journal thread.
enum Commit {
    /// Encoded records (possibly none) and the answers to release once they are durable.
    Group(Vec<u8>, Vec<Release>),
    /// Answer once everything before is durable.
    Barrier(std::sync::mpsc::Sender<bool>),
}

struct Worker {
    ledger: Ledger,
    encoder: JournalEncoder,
    commits: std::sync::mpsc::SyncSender<Commit>,
    recycled: std::sync::mpsc::Receiver<Vec<u8>>,
    io_thread: Option<JoinHandle<()>>,
    /// A snapshot being written in the background, if any.
    snapshot_thread: Option<JoinHandle<Result<ChunkCrcs, JournalError>>>,
    /// The transfer chunk files already durable.
    chunks: ChunkCrcs,
    snapshot_offset: u64,
    config: EngineConfig,
    failed: Arc<AtomicBool>,
}

impl Worker {
    fn run(&mut self, mut rx: mpsc::Receiver<Request>) -> Result<(), JournalError> {
        let mut group: Vec<Request> = Vec::new();
        let mut shutdown = false;
        while !shutdown {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut events = first.events();
            group.push(first);
            while events < GROUP_EVENTS_MAX {
                match rx.try_recv() {
                    Ok(r) => {
                        events += r.events();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            if self.failed.load(Ordering::Relaxed) {
                for r in group.drain(..) {
                    fail(r, &failure());
                }
                continue;
            }
            let now = (self.config.clock)();
            let mut releases: Vec<Release> = Vec::with_capacity(group.len());
            for request in group.drain(..) {
                match request {
                    Request::CreateAccounts(batch, reply) => {
                        let results = self.ledger.create_accounts(now, &batch);
                        self.encoder.append(RecordKind::Accounts, now, |out| {
                            codec::encode_account_batch(&batch, out)
                        });
                        releases.push(Box::new(move |outcome| {
                            drop(reply.send(outcome.map(|()| results)))
                        }));
                    }
                    Request::CreateTransfers(batch, reply) => {
                        let results = self.ledger.create_transfers(now, &batch);
                        self.encoder.append(RecordKind::Transfers, now, |out| {
                            codec::encode_transfer_batch(&batch, out)
                        });
                        releases.push(Box::new(move |outcome| {
                            drop(reply.send(outcome.map(|()| results)))
                        }));
                    }
                    Request::Expire => {
                        if self
                            .ledger
                            .next_expiry()
                            .is_some_and(|deadline| deadline <= now)
                        {
                            self.ledger.expire_pending(now);
                            self.encoder.append(RecordKind::Expire, now, |_| {});
                        }
                    }
                    Request::Query(q) => {
                        let answer = q(&self.ledger);
                        releases.push(Box::new(move |outcome| {
                            if outcome.is_ok() {
                                answer();
                            }
                        }));
                    }
                    Request::Shutdown => shutdown = true,
                }
            }
            let recycled = self.recycled.try_recv().unwrap_or_default();
            let bytes = self.encoder.take(recycled);
            if self.commits.send(Commit::Group(bytes, releases)).is_err() {
                self.failed.store(true, Ordering::Relaxed);
            }
            let position = self.encoder.position();
            if position.offset - self.snapshot_offset >= self.config.snapshot_after_bytes {
                self.snapshot_in_background();
            }
        }
        self.finish_snapshot();
        let durable = self.barrier();
        if durable && self.encoder.position().offset != self.snapshot_offset {
            self.snapshot()?;
        }
        // Closing the channel ends the journal thread.
        let (closed, _) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.commits, closed));
        if let Some(io) = self.io_thread.take() {
            let _ = io.join();
        }
        Ok(())
    }

    /// Waits until everything encoded so far is durable; false if the journal failed.
    fn barrier(&self) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        self.commits.send(Commit::Barrier(tx)).is_ok() && rx.recv().unwrap_or(false)
    }

    /// Starts writing a snapshot on its own thread, unless one is still being written. The
    /// image shares the transfer history with the live state, so taking it costs little.
    fn snapshot_in_background(&mut self) {
        if self
            .snapshot_thread
            .as_ref()
            .is_some_and(|t| !t.is_finished())
        {
            return;
        }
        self.finish_snapshot();
        if !self.barrier() {
            return;
        }
        let position = self.encoder.position();
        let image = self.ledger.image();
        let dir = self.config.data_dir.clone();
        let transfers = self.ledger.transfer_count();
        let chunks = self.chunks.clone();
        let spawned = std::thread::Builder::new()
            .name("ledger-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                let chunks = snapshot::write_image(&dir, image, position, chunks)?;
                tracing::info!(
                    seq = position.seq,
                    transfers,
                    millis = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
                Ok(chunks)
            });
        match spawned {
            Ok(thread) => {
                self.snapshot_thread = Some(thread);
                self.snapshot_offset = position.offset;
            }
            Err(e) => tracing::error!(error = %e, "cannot start the snapshot thread"),
        }
    }

    /// Waits for a background snapshot. A failed snapshot loses nothing (the journal holds
    /// everything); it is reported and the next one is tried later.
    fn finish_snapshot(&mut self) {
        if let Some(thread) = self.snapshot_thread.take() {
            match thread.join() {
                Ok(Ok(chunks)) => self.chunks = chunks,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "snapshot failed; the journal still holds everything");
                    self.snapshot_offset = 0;
                }
                Err(_) => tracing::error!("the snapshot thread panicked"),
            }
        }
    }

    /// Writes a snapshot of durable state now; skipped if the journal failed.
    fn snapshot(&mut self) -> Result<(), JournalError> {
        if !self.barrier() {
            return Ok(());
        }
        let started = Instant::now();
        let position = self.encoder.position();
        self.chunks = snapshot::write_image(
            &self.config.data_dir,
            self.ledger.image(),
            position,
            std::mem::take(&mut self.chunks),
        )?;
        self.snapshot_offset = position.offset;
        tracing::info!(
            seq = position.seq,
            transfers = self.ledger.transfer_count(),
            millis = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        Ok(())
    }
}

/// Writes groups as they come, all waiting groups with one fsync, then releases their answers.
fn journal_thread(
    mut file: JournalFile,
    commits: std::sync::mpsc::Receiver<Commit>,
    recycle: std::sync::mpsc::Sender<Vec<u8>>,
    failed: Arc<AtomicBool>,
) {
    let mut waiting: Vec<Commit> = Vec::new();
    while let Ok(first) = commits.recv() {
        waiting.push(first);
        while let Ok(more) = commits.try_recv() {
            waiting.push(more);
        }
        let bytes: Vec<&[u8]> = waiting
            .iter()
            .filter_map(|c| match c {
                Commit::Group(b, _) if !b.is_empty() => Some(b.as_slice()),
                _ => None,
            })
            .collect();
        let mut ok = !failed.load(Ordering::Relaxed);
        if ok
            && !bytes.is_empty()
            && let Err(e) = file.write_durable(&bytes)
        {
            tracing::error!(error = %e, "journal write failed; the ledger stops serving");
            failed.store(true, Ordering::Relaxed);
            ok = false;
        }
        for commit in waiting.drain(..) {
            match commit {
                Commit::Group(buffer, releases) => {
                    for release in releases {
                        release(if ok { Ok(()) } else { Err(failure()) });
                    }
                    let _ = recycle.send(buffer);
                }
                Commit::Barrier(done) => drop(done.send(ok)),
            }
        }
    }
}

fn failure() -> EngineError {
    EngineError::Failed(
        "a journal write or fsync failed; restart to recover from the journal".into(),
    )
}

fn fail(request: Request, error: &EngineError) {
    match request {
        Request::CreateAccounts(_, reply) => drop(reply.send(Err(error.clone()))),
        Request::CreateTransfers(_, reply) => drop(reply.send(Err(error.clone()))),
        Request::Query(_) | Request::Expire | Request::Shutdown => {}
    }
}
