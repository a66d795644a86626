//! The ledger's imperative shell: one thread owns the state and the journal.
//!
//! Requests arrive on a bounded queue. The engine thread takes every request waiting (up to
//! [`GROUP_EVENTS_MAX`] events) and first hands the group's writes to the journal thread —
//! write-ahead: a journal record is the batch exactly as received with the group's clock
//! reading, so it can be encoded and written before it is applied — then applies them to the
//! state and runs the group's reads while the journal thread encodes (checksums, hash chain)
//! and writes every group waiting, made durable with one `fdatasync` (group commit). Answers
//! leave only once their group is both applied and durable, in order. So applying and writing
//! overlap, and no answer, not even a read's, leaves before the state it reflects is durable.
//!
//! If a write or fsync fails the in-memory state is ahead of the disk: the engine stops serving
//! (every later request gets [`EngineError::Failed`]) rather than guess. Restarting recovers
//! from the journal. A record that is durable is applied on every recovery: the pure core must
//! never panic on a batch (it answers every input with a result code), or the journal would
//! hold a record that stops every start.

use crate::codec;
use crate::journal::{
    self, JournalEncoder, JournalError, JournalFile, JournalSink, Position, RecordKind,
};
use crate::snapshot::{self, ChunkCrcs};
use crate::state::{AccountEvent, Chunk, Ledger, SnapshotImage, TransferEvent};
use crate::types::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// A write batch, shared by the engine thread (which applies it) and the journal thread (which
/// encodes it).
type Batch<T> = Arc<Vec<T>>;

enum Request {
    CreateAccounts(Batch<AccountEvent>, Reply<Vec<CreateAccountResult>>),
    CreateTransfers(Batch<TransferEvent>, Reply<Vec<CreateTransferResult>>),
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
/// torn tail off; refuses any other damage. A folder without a journal is an empty ledger. The
/// caller must hold the folder's lock ([`journal::lock_data_dir`]).
pub fn recover(data_dir: &Path) -> Result<Recovered, JournalError> {
    let started = Instant::now();
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
        std::fs::create_dir_all(&config.data_dir).map_err(JournalError::io(format!(
            "creating {}",
            config.data_dir.display()
        )))?;
        // Taken before recovery, which may cut a torn tail: one writer, always.
        let lock = journal::lock_data_dir(&config.data_dir)?;
        let recovered = recover(&config.data_dir)?;
        let report = recovered.report.clone();
        let journal_path = config.data_dir.join(journal::JOURNAL_FILE);
        let file = JournalFile::open(&journal_path, recovered.position.offset)?;
        let storage = Storage::Local {
            lock,
            chunks: recovered.chunks,
        };
        let engine = Engine::start(
            config,
            recovered.ledger,
            recovered.position,
            Box::new(file),
            storage,
        )?;
        Ok((engine, report))
    }

    /// Serves `ledger`, whose journal stands at `position`, appending to a replicated journal
    /// through `sink` (see [`crate::replicated`]). Nothing is written to a local folder: the
    /// replicated journal is the only copy, and no local snapshots are taken.
    pub fn open_replicated(
        config: EngineConfig,
        ledger: Ledger,
        position: Position,
        sink: Box<dyn JournalSink>,
    ) -> Result<Engine, JournalError> {
        Engine::start(config, ledger, position, sink, Storage::None)
    }

    fn start(
        config: EngineConfig,
        ledger: Ledger,
        position: Position,
        sink: Box<dyn JournalSink>,
        storage: Storage,
    ) -> Result<Engine, JournalError> {
        let (tx, rx) = mpsc::channel(QUEUE_REQUESTS_MAX);
        let failed = Arc::new(AtomicBool::new(false));
        let (commits, commits_rx) = std::sync::mpsc::sync_channel(COMMITS_IN_FLIGHT_MAX);
        let journal_offset = Arc::new(AtomicU64::new(position.offset));
        let (io_failed, io_offset) = (failed.clone(), journal_offset.clone());
        let encoder = JournalEncoder::new(position);
        let io_thread = std::thread::Builder::new()
            .name("ledger-journal".into())
            .spawn(move || journal_thread(sink, encoder, commits_rx, io_offset, io_failed))
            .map_err(JournalError::io("starting the ledger journal thread"))?;
        let snapshot_busy = Arc::new(AtomicBool::new(false));
        let (lock, chunks_sent, storage, storage_thread) = match storage {
            Storage::Local { lock, chunks } => {
                let chunks_sent = chunks.len();
                let (storage, jobs) = std::sync::mpsc::channel();
                let (dir, busy) = (config.data_dir.clone(), snapshot_busy.clone());
                let thread = std::thread::Builder::new()
                    .name("ledger-storage".into())
                    .spawn(move || storage_thread(dir, chunks, jobs, busy))
                    .map_err(JournalError::io("starting the ledger storage thread"))?;
                (Some(lock), chunks_sent, Some(storage), Some(thread))
            }
            Storage::None => (None, 0, None, None),
        };
        let mut worker = Worker {
            _lock: lock,
            ledger,
            journal_offset,
            commits,
            io_thread: Some(io_thread),
            storage,
            storage_thread,
            chunks_sent,
            snapshot_busy,
            snapshot_offset: position.offset,
            config,
            failed: failed.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("ledger-engine".into())
            .spawn(move || worker.run(rx))
            .map_err(JournalError::io("starting the ledger engine thread"))?;
        Ok(Engine {
            tx,
            thread: std::sync::Mutex::new(Some(thread)),
            failed,
        })
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
        self.call(|reply| Request::CreateAccounts(Arc::new(events), reply))
            .await
    }

    /// Creates transfers; answers once the batch is durable.
    pub async fn create_transfers(
        &self,
        events: Vec<TransferEvent>,
    ) -> Result<Vec<CreateTransferResult>, EngineError> {
        self.call(|reply| Request::CreateTransfers(Arc::new(events), reply))
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

/// A journal record to encode: one write of a group.
enum Entry {
    Accounts(Batch<AccountEvent>),
    Transfers(Batch<TransferEvent>),
    Expire,
}

/// Work for the journal thread.
enum Commit {
    /// A group's writes (possibly none), all stamped `now`, to encode and make durable; its
    /// answers arrive on `releases` once the engine has applied it, and leave once both hold.
    Group {
        now: u64,
        entries: Vec<Entry>,
        releases: std::sync::mpsc::Receiver<Vec<Release>>,
    },
    /// Answer, once everything before is applied and durable, where the journal stands (none
    /// if it failed).
    Barrier(std::sync::mpsc::Sender<Option<Position>>),
}

/// Where chunk files and snapshots go.
enum Storage {
    /// The data folder (held locked) and the chunk files its snapshot names.
    Local {
        lock: std::fs::File,
        chunks: ChunkCrcs,
    },
    /// Nowhere (the replicated journal is the copy).
    None,
}

struct Worker {
    /// The data folder's lock (file journal only), released when the engine thread ends.
    _lock: Option<std::fs::File>,
    ledger: Ledger,
    /// Where the journal thread's encoder stands (it may lag the engine by a group or two).
    journal_offset: Arc<AtomicU64>,
    commits: std::sync::mpsc::SyncSender<Commit>,
    io_thread: Option<JoinHandle<()>>,
    /// Jobs for the storage thread, which writes chunk files and snapshots.
    storage: Option<std::sync::mpsc::Sender<Store>>,
    storage_thread: Option<JoinHandle<()>>,
    /// Sealed transfer chunks handed to the storage thread so far.
    chunks_sent: usize,
    /// Whether the storage thread is writing a snapshot.
    snapshot_busy: Arc<AtomicBool>,
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
                    shutdown |= matches!(r, Request::Shutdown);
                    fail(r, &failure());
                }
                continue;
            }
            let now = (self.config.clock)();
            // Write-ahead: the journal thread encodes and writes the group while it is applied.
            // Expiry is decided once, on the state before the group, and applied at the group's
            // first expiry pulse, where its record stands, so replaying the journal repeats
            // what is done here.
            let expire_at = self
                .ledger
                .next_expiry()
                .is_some_and(|deadline| deadline <= now)
                .then(|| group.iter().position(|r| matches!(r, Request::Expire)))
                .flatten();
            let mut entries = Vec::new();
            for (i, request) in group.iter().enumerate() {
                match request {
                    Request::CreateAccounts(batch, _) => {
                        entries.push(Entry::Accounts(batch.clone()))
                    }
                    Request::CreateTransfers(batch, _) => {
                        entries.push(Entry::Transfers(batch.clone()))
                    }
                    Request::Expire if expire_at == Some(i) => entries.push(Entry::Expire),
                    Request::Expire | Request::Query(_) | Request::Shutdown => {}
                }
            }
            let (applied, releases_rx) = std::sync::mpsc::sync_channel(1);
            let commit = Commit::Group {
                now,
                entries,
                releases: releases_rx,
            };
            if self.commits.send(commit).is_err() {
                self.failed.store(true, Ordering::Relaxed);
            }
            let mut releases: Vec<Release> = Vec::with_capacity(group.len());
            for (i, request) in group.drain(..).enumerate() {
                match request {
                    Request::CreateAccounts(batch, reply) => {
                        let results = self.ledger.create_accounts(now, &batch);
                        releases.push(Box::new(move |outcome| {
                            drop(reply.send(outcome.map(|()| results)))
                        }));
                    }
                    Request::CreateTransfers(batch, reply) => {
                        let results = self.ledger.create_transfers(now, &batch);
                        releases.push(Box::new(move |outcome| {
                            drop(reply.send(outcome.map(|()| results)))
                        }));
                    }
                    Request::Expire => {
                        if expire_at == Some(i) {
                            self.ledger.expire_pending(now);
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
            // The journal thread holds the receiver until it has taken these.
            let _ = applied.send(releases);
            self.send_sealed_chunks();
            let offset = self.journal_offset.load(Ordering::Acquire);
            if offset - self.snapshot_offset >= self.config.snapshot_after_bytes {
                self.snapshot_in_background();
            }
        }
        let mut result = Ok(());
        if let Some(position) = self.barrier()
            && position.offset != self.snapshot_offset
        {
            result = self.snapshot(position);
        }
        // Closing the channel ends the storage thread once its queue is done.
        drop(self.storage.take());
        if let Some(storage) = self.storage_thread.take() {
            let _ = storage.join();
        }
        // Closing the channel ends the journal thread.
        let (closed, _) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.commits, closed));
        if let Some(io) = self.io_thread.take() {
            let _ = io.join();
        }
        result
    }

    /// Waits until everything applied so far is durable and says where the journal stands;
    /// none if the journal failed.
    fn barrier(&self) -> Option<Position> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.commits.send(Commit::Barrier(tx)).ok()?;
        rx.recv().ok().flatten()
    }

    /// Hands chunks sealed since the last call to the storage thread, which writes each one's
    /// file once, as it is sealed, so snapshots never write a backlog of history at once.
    fn send_sealed_chunks(&mut self) {
        let sealed = self.ledger.sealed_chunks();
        while self.chunks_sent < sealed.len() {
            let job = Store::Chunk(self.chunks_sent, sealed[self.chunks_sent].clone());
            if let Some(storage) = &self.storage {
                let _ = storage.send(job);
            }
            self.chunks_sent += 1;
        }
    }

    /// Starts a snapshot on the storage thread, unless one is still being written. The image
    /// shares the transfer history with the live state, so taking it costs little.
    fn snapshot_in_background(&mut self) {
        if self.storage.is_none() || self.snapshot_busy.load(Ordering::Acquire) {
            return;
        }
        let Some(position) = self.barrier() else {
            return;
        };
        let job = Store::Snapshot(self.ledger.image(), position, None);
        self.snapshot_busy.store(true, Ordering::Release);
        if let Some(storage) = &self.storage {
            let _ = storage.send(job);
        }
        self.snapshot_offset = position.offset;
    }

    /// Writes a snapshot of the state, durable at `position`, and waits for it; skipped if
    /// there is no local storage.
    fn snapshot(&mut self, position: Position) -> Result<(), JournalError> {
        if self.storage.is_none() {
            return Ok(());
        }
        let (done, outcome) = std::sync::mpsc::channel();
        let job = Store::Snapshot(self.ledger.image(), position, Some(done));
        if let Some(storage) = &self.storage {
            let _ = storage.send(job);
        }
        let result = outcome.recv().unwrap_or_else(|_| {
            Err(JournalError::Io {
                context: "the ledger storage thread stopped".into(),
                source: std::io::Error::other("storage thread gone"),
            })
        });
        if result.is_ok() {
            self.snapshot_offset = position.offset;
        }
        result
    }
}

/// Work for the storage thread.
enum Store {
    /// A chunk of transfers just sealed, by index: write its file.
    Chunk(usize, Chunk),
    /// Write a snapshot of this image, taken at this (durable) journal position; say how it
    /// went if asked.
    Snapshot(
        SnapshotImage,
        Position,
        Option<std::sync::mpsc::Sender<Result<(), JournalError>>>,
    ),
}

/// Writes chunk files as they are sealed, and snapshots when asked, in the order asked. A
/// failure loses nothing (the journal holds everything): it is reported, and the next snapshot
/// writes whatever chunk files are missing.
fn storage_thread(
    dir: PathBuf,
    mut chunks: ChunkCrcs,
    jobs: std::sync::mpsc::Receiver<Store>,
    busy: Arc<AtomicBool>,
) {
    // Chunk files are written without waiting for the disk, and synced only when a snapshot is
    // about to name them: by then the kernel has usually written them back already, so the
    // journal's fsyncs are not kept waiting behind a chunk's.
    let mut synced = chunks.len();
    for job in jobs {
        match job {
            Store::Chunk(index, chunk) => {
                if index != chunks.len() {
                    continue;
                }
                match snapshot::write_chunk(&dir, index, &chunk, false) {
                    Ok(crc) => chunks.push(crc),
                    Err(e) => tracing::error!(error = %e, index, "writing a transfer chunk failed"),
                }
            }
            Store::Snapshot(image, position, done) => {
                let started = Instant::now();
                let transfers = image.transfer_count();
                let result = (synced..chunks.len())
                    .try_for_each(|index| snapshot::sync_chunk(&dir, index))
                    .and_then(|()| snapshot::write_image(&dir, image, position, &mut chunks));
                match &result {
                    Ok(()) => synced = chunks.len(),
                    // What is not known to be synced is written again by the next snapshot.
                    Err(_) => chunks.truncate(synced),
                }
                match &result {
                    Ok(()) => tracing::info!(
                        seq = position.seq,
                        transfers,
                        millis = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "snapshot failed; the journal still holds everything")
                    }
                }
                busy.store(false, Ordering::Release);
                if let Some(done) = done {
                    let _ = done.send(result);
                }
            }
        }
    }
}

/// Encodes groups as they come and writes all waiting groups with one fsync; then releases each
/// group's answers once the engine has applied it.
fn journal_thread(
    mut sink: Box<dyn JournalSink>,
    mut encoder: JournalEncoder,
    commits: std::sync::mpsc::Receiver<Commit>,
    offset: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
) {
    let mut waiting: Vec<Commit> = Vec::new();
    let mut spare = Vec::new();
    while let Ok(first) = commits.recv() {
        waiting.push(first);
        while let Ok(more) = commits.try_recv() {
            waiting.push(more);
        }
        for commit in waiting.iter_mut() {
            if let Commit::Group { now, entries, .. } = commit {
                for entry in entries.drain(..) {
                    encode(&mut encoder, *now, &entry);
                }
            }
        }
        offset.store(encoder.position().offset, Ordering::Release);
        let bytes = encoder.take(std::mem::take(&mut spare));
        let mut ok = !failed.load(Ordering::Relaxed);
        if ok
            && !bytes.is_empty()
            && let Err(e) = sink.write_durable(&[bytes.as_slice()])
        {
            tracing::error!(error = %e, "journal write failed; the ledger stops serving");
            failed.store(true, Ordering::Relaxed);
            ok = false;
        }
        spare = bytes;
        for commit in waiting.drain(..) {
            match commit {
                Commit::Group { releases, .. } => {
                    // Empty if the engine thread is gone: its callers hear it from their replies.
                    for release in releases.recv().unwrap_or_default() {
                        release(if ok { Ok(()) } else { Err(failure()) });
                    }
                }
                Commit::Barrier(done) => drop(done.send(ok.then(|| encoder.position()))),
            }
        }
    }
}

/// Appends one entry's record, exactly what [`journal::replay`] applies again.
fn encode(encoder: &mut JournalEncoder, now: u64, entry: &Entry) {
    match entry {
        Entry::Accounts(batch) => {
            encoder.append(RecordKind::Accounts, now, |out| {
                codec::encode_account_batch(batch, out)
            });
        }
        Entry::Transfers(batch) => {
            encoder.append(RecordKind::Transfers, now, |out| {
                codec::encode_transfer_batch(batch, out)
            });
        }
        Entry::Expire => {
            encoder.append(RecordKind::Expire, now, |_| {});
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
