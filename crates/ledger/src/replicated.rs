//! The replicated journal: the ledger's journal on a NATS JetStream stream (R3 across zones in
//! production), so the ledger survives losing its node.
//!
//! - **The log.** The journal's bytes — the same checksummed, hash-chained records as the file
//!   journal — are appended as messages to the stream `ledger-journal-<shard>` (subject
//!   `journal.ledger.<shard>`). Each message carries the journal byte offset it starts at
//!   (header `Gureum-Offset`); a group commit larger than one message is split across several.
//!   A group is durable, and its answers released, when JetStream has acknowledged every one of
//!   its messages (stored on a majority of replicas).
//! - **One writer, fenced.** Every append says which stream sequence it expects to follow
//!   (`Nats-Expected-Last-Sequence`). A writer that is not the last to have appended — a stale
//!   leader, paused or cut off while another took over — is refused and stops serving.
//! - **Leadership** is a lease: the key `leader` in the KV bucket `ledger-lease-<shard>`, created by
//!   the leader and renewed well within the bucket's maximum age. When the leader dies the key
//!   ages out and a standby creates it.
//! - **A standby** tails the stream and applies every record to its own copy of the state, so
//!   when it wins the lease it only has to read what is left, then **seal** the log: append an
//!   empty message at the end of the last whole record, expecting the last sequence it read.
//!   Once that append is accepted, the old leader's next append is refused. A partial record a
//!   dead leader left behind is cut off by the seal (see [`RecordStream`]); it was never
//!   acknowledged.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv, message::PublishMessage, stream};

use crate::journal::{self, JournalError, JournalSink, Position, RecordStream};
use crate::state::Ledger;

/// The key of the lease in its bucket.
pub const LEASE_KEY: &str = "leader";
/// The header giving the journal byte offset a message starts at.
pub const OFFSET_HEADER: &str = "Gureum-Offset";
/// How long a leader keeps trying to append a group (NATS nodes failing over, the connection
/// moving to another node) before it gives up and stops serving. Well under the client's
/// patience, well over a JetStream leader election plus the client's reconnection.
pub const APPEND_RETRY_WINDOW: Duration = Duration::from_secs(25);
/// How long one read-back or publish may take while reconciling, so that one request stuck on
/// a dead node does not eat the whole window.
const RECONCILE_STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// Room left in a message for headers and protocol framing.
const MESSAGE_OVERHEAD: usize = 16 << 10;

/// How a replicated ledger node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// The ledger shard this node serves (one writer per shard).
    pub shard: u32,
    /// Copies JetStream keeps of the journal and the lease: 1 on a laptop, 3 across zones.
    pub replicas: usize,
    /// A lease not renewed for this long expires, and a standby takes over.
    pub lease_ttl: Duration,
    /// This node's name, written into the lease (for operators).
    pub node: String,
}

impl ReplicationConfig {
    /// The stream holding shard `shard`'s journal.
    pub fn stream_name(&self) -> String {
        format!("ledger-journal-{}", self.shard)
    }

    /// The subject the journal is appended on.
    pub fn subject(&self) -> String {
        format!("journal.ledger.{}", self.shard)
    }

    /// The KV bucket holding the shard's lease; its maximum age is the lease's time to live.
    pub fn lease_bucket(&self) -> String {
        format!("ledger-lease-{}", self.shard)
    }

    /// How often the leader renews its lease.
    pub fn renew_every(&self) -> Duration {
        self.lease_ttl / 4
    }
}

fn nats_error(what: &str) -> impl FnOnce(&dyn std::fmt::Display) -> JournalError + '_ {
    move |e| JournalError::Replication(format!("{what}: {e}"))
}

/// Creates the journal stream and the lease bucket if missing. The journal keeps everything:
/// no age or size limit, and deleting or purging messages is refused.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: &ReplicationConfig,
) -> Result<(), JournalError> {
    let stream_config = stream::Config {
        name: config.stream_name(),
        subjects: vec![config.subject()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: config.replicas,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    };
    js.get_or_create_stream(stream_config)
        .await
        .map_err(|e| nats_error("creating the journal stream")(&e))?;
    bus::nats::ensure_kv_bucket(
        js,
        &config.lease_bucket(),
        config.lease_ttl,
        config.replicas,
    )
    .await
    .map_err(|e| JournalError::Replication(format!("creating the lease bucket: {e}")))?;
    Ok(())
}

/// A copy of the ledger kept up to date from the journal stream.
pub struct Follower {
    ledger: Ledger,
    records: RecordStream,
    /// The last stream sequence applied.
    stream_seq: u64,
    stream: stream::Stream,
}

impl Follower {
    /// A follower starting from an empty ledger at the stream's beginning.
    pub async fn new(
        js: &jetstream::Context,
        config: &ReplicationConfig,
    ) -> Result<Follower, JournalError> {
        let name = config.stream_name();
        let stream = js
            .get_stream(&name)
            .await
            .map_err(|e| nats_error("opening the journal stream")(&e))?;
        Ok(Follower {
            ledger: Ledger::default(),
            records: RecordStream::new(format!("jetstream:{name}"), Position::default()),
            stream_seq: 0,
            stream,
        })
    }

    /// The state applied so far.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The last stream sequence applied.
    pub fn stream_seq(&self) -> u64 {
        self.stream_seq
    }

    /// After the last whole record.
    pub fn position(&self) -> Position {
        self.records.position()
    }

    /// Applies every message appended since the last call; returns how many.
    pub async fn catch_up(&mut self) -> Result<u64, JournalError> {
        let last = self
            .stream
            .get_info()
            .await
            .map_err(|e| nats_error("reading the journal stream's state")(&e))?
            .state
            .last_sequence;
        let from = self.stream_seq;
        while self.stream_seq < last {
            let seq = self.stream_seq + 1;
            let message = self
                .stream
                .get_raw_message(seq)
                .await
                .map_err(|e| nats_error(&format!("reading journal message {seq}"))(&e))?;
            self.apply(seq, &message.headers, &message.payload)?;
        }
        Ok(self.stream_seq - from)
    }

    fn apply(&mut self, seq: u64, headers: &HeaderMap, payload: &[u8]) -> Result<(), JournalError> {
        let offset = headers
            .get(OFFSET_HEADER)
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .ok_or_else(|| {
                JournalError::Replication(format!(
                    "journal message {seq} has no valid {OFFSET_HEADER} header"
                ))
            })?;
        let ledger = &mut self.ledger;
        self.records.push(offset, payload, |header, payload| {
            journal::replay(ledger, header, payload)
                .map_err(|e| format!("record {} does not decode: {e}", header.seq))
        })?;
        self.stream_seq = seq;
        Ok(())
    }

    /// Appends the seal: an empty message at the end of the last whole record, expecting the
    /// last sequence this follower applied. `Ok(false)`: someone appended meanwhile; catch up
    /// and try again. On success the follower's state is the whole journal, and a writer may
    /// continue from [`Follower::into_writer`].
    pub async fn seal(
        &mut self,
        js: &jetstream::Context,
        config: &ReplicationConfig,
    ) -> Result<bool, JournalError> {
        let message = PublishMessage::build()
            .header(
                OFFSET_HEADER,
                self.records.position().offset.to_string().as_str(),
            )
            .expected_last_sequence(self.stream_seq);
        let ack = match js.send_publish(config.subject(), message).await {
            Ok(pending) => pending.await,
            Err(e) => return Err(nats_error("sealing the journal")(&e)),
        };
        match ack {
            Ok(ack) => {
                let headers = seal_headers(self.records.position().offset);
                self.apply(ack.sequence, &headers, &[])?;
                Ok(true)
            }
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(false)
            }
            Err(e) => Err(nats_error("sealing the journal")(&e)),
        }
    }

    /// The state and a sink that appends after it, for the engine of a new leader.
    pub fn into_writer(
        self,
        js: jetstream::Context,
        config: &ReplicationConfig,
        runtime: tokio::runtime::Handle,
    ) -> (Ledger, Position, JetStreamSink) {
        let position = self.records.position();
        let message_bytes_max = js
            .client()
            .server_info()
            .max_payload
            .saturating_sub(MESSAGE_OVERHEAD)
            .max(64 << 10);
        let sink = JetStreamSink {
            js,
            stream: config.stream_name(),
            subject: config.subject(),
            last_seq: self.stream_seq,
            offset: position.offset,
            message_bytes_max,
            runtime,
        };
        (self.ledger, position, sink)
    }
}

/// Reads the whole journal and seals it (retrying while someone else still appends): the state
/// a new leader starts from and the sink it writes with. The caller should hold the lease.
pub async fn take_over(
    mut follower: Follower,
    js: &jetstream::Context,
    config: &ReplicationConfig,
) -> Result<(Ledger, Position, JetStreamSink), JournalError> {
    loop {
        follower.catch_up().await?;
        if follower.seal(js, config).await? {
            break;
        }
    }
    Ok(follower.into_writer(js.clone(), config, tokio::runtime::Handle::current()))
}

/// Snapshots of a replicated ledger in object storage, so a new node starts from the latest
/// one and reads only the journal after it.
///
/// Under `ledger/shard-<n>/`: `chunks/chunk-N.gt` (sealed transfer chunks, uploaded once
/// each), `snapshots/<journal seq>.gs` (the state file) and `latest.json`, which names the
/// newest state file, the stream sequence it covers and its chunk count. Uploads go chunks
/// first, state file next, `latest.json` last, so `latest.json` only ever names complete
/// snapshots. A standby writes them (it applies the journal anyway); files go through a local
/// cache folder first.
pub struct SnapshotStore {
    objects: store::Objects,
    prefix: String,
    cache: std::path::PathBuf,
    /// CRCs of the chunk files written to the cache folder.
    durable: crate::snapshot::ChunkCrcs,
    /// Chunks already in object storage.
    uploaded: usize,
    /// State files this store uploaded, oldest first.
    states: std::collections::VecDeque<String>,
}

/// What `latest.json` says.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotManifest {
    /// The last stream message the snapshot covers.
    pub stream_seq: u64,
    /// The last journal record it covers.
    pub journal_seq: u64,
    /// The state file's key (under the shard's prefix).
    pub state: String,
    /// How many chunk files it names.
    pub chunks: usize,
}

impl SnapshotStore {
    /// Snapshots of shard `shard` in `objects`, cached in `cache` (created if missing).
    pub fn new(
        objects: store::Objects,
        shard: u32,
        cache: impl Into<std::path::PathBuf>,
    ) -> SnapshotStore {
        SnapshotStore {
            objects,
            prefix: format!("ledger/shard-{shard}"),
            cache: cache.into(),
            durable: Vec::new(),
            uploaded: 0,
            states: Default::default(),
        }
    }

    fn storage_error(what: &str) -> impl FnOnce(store::StoreError) -> JournalError + '_ {
        move |e| JournalError::Replication(format!("{what}: {e}"))
    }

    /// Writes a snapshot of what `follower` has applied. Skipped (`Ok(None)`) while the
    /// follower holds part of a record; otherwise returns the manifest written.
    pub async fn save(
        &mut self,
        follower: &Follower,
    ) -> Result<Option<SnapshotManifest>, JournalError> {
        if follower.records.partial_bytes() > 0 {
            return Ok(None);
        }
        let (position, stream_seq) = (follower.position(), follower.stream_seq());
        let image = follower.ledger().image();
        let cache = self.cache.clone();
        let mut durable = std::mem::take(&mut self.durable);
        let written = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&cache)
                .map_err(JournalError::io(format!("creating {}", cache.display())))?;
            crate::snapshot::write_image(&cache, image, position, &mut durable).map(|()| durable)
        })
        .await
        .map_err(|e| JournalError::Replication(format!("snapshot task: {e}")))??;
        self.durable = written;
        self.uploaded = self.uploaded.min(self.durable.len());
        while self.uploaded < self.durable.len() {
            let name = crate::snapshot::chunk_name(self.uploaded);
            let bytes = read(&self.cache.join(&name)).await?;
            self.objects
                .put(&format!("{}/{name}", self.prefix), bytes.into())
                .await
                .map_err(Self::storage_error("uploading a snapshot chunk"))?;
            self.uploaded += 1;
        }
        let state = format!("snapshots/{:020}.gs", position.seq);
        let bytes = read(&self.cache.join(crate::snapshot::SNAPSHOT_FILE)).await?;
        self.objects
            .put(&format!("{}/{state}", self.prefix), bytes.into())
            .await
            .map_err(Self::storage_error("uploading a snapshot"))?;
        let manifest = SnapshotManifest {
            stream_seq,
            journal_seq: position.seq,
            state,
            chunks: self.durable.len(),
        };
        let json = serde_json::to_vec(&manifest).expect("a manifest serializes");
        self.objects
            .put(&format!("{}/latest.json", self.prefix), json.into())
            .await
            .map_err(Self::storage_error("uploading the snapshot manifest"))?;
        // Keep the state file before this one (a node may be downloading it); delete older.
        if self.states.back() != Some(&manifest.state) {
            self.states.push_back(manifest.state.clone());
        }
        while self.states.len() > 2 {
            let old = self.states.pop_front().expect("more than two");
            if let Err(e) = self.objects.delete(&format!("{}/{old}", self.prefix)).await {
                tracing::warn!(error = %e, "could not delete an old snapshot");
            }
        }
        Ok(Some(manifest))
    }

    /// A follower starting from the latest snapshot in object storage (downloaded into the
    /// cache folder and checked like a local one), or from the beginning if there is none.
    pub async fn follower(
        &mut self,
        js: &jetstream::Context,
        config: &ReplicationConfig,
    ) -> Result<Follower, JournalError> {
        let mut follower = Follower::new(js, config).await?;
        let latest = self
            .objects
            .get(&format!("{}/latest.json", self.prefix))
            .await
            .map_err(Self::storage_error("reading the snapshot manifest"))?;
        let Some(latest) = latest else {
            return Ok(follower);
        };
        let manifest: SnapshotManifest = serde_json::from_slice(&latest).map_err(|e| {
            JournalError::Replication(format!("the snapshot manifest does not parse: {e}"))
        })?;
        std::fs::create_dir_all(self.cache.join(crate::snapshot::CHUNKS_DIR)).map_err(
            JournalError::io(format!("creating {}", self.cache.display())),
        )?;
        for index in 0..manifest.chunks {
            let name = crate::snapshot::chunk_name(index);
            let bytes = self.download(&name).await?;
            write(&self.cache.join(&name), &bytes).await?;
        }
        let state = self.download(&manifest.state).await?;
        write(&self.cache.join(crate::snapshot::SNAPSHOT_FILE), &state).await?;
        let cache = self.cache.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::snapshot::load(&cache))
            .await
            .map_err(|e| JournalError::Replication(format!("snapshot task: {e}")))??;
        let Some((ledger, position, crcs)) = loaded else {
            return Ok(follower);
        };
        if position.seq != manifest.journal_seq {
            return Err(JournalError::Replication(format!(
                "the snapshot manifest names journal record {} but the state file covers {}",
                manifest.journal_seq, position.seq
            )));
        }
        self.uploaded = crcs.len();
        self.durable = crcs;
        follower.ledger = ledger;
        follower.records =
            RecordStream::new(format!("jetstream:{}", config.stream_name()), position);
        follower.stream_seq = manifest.stream_seq;
        Ok(follower)
    }

    async fn download(&self, name: &str) -> Result<Vec<u8>, JournalError> {
        self.objects
            .get(&format!("{}/{name}", self.prefix))
            .await
            .map_err(Self::storage_error("downloading a snapshot"))?
            .map(|b| b.to_vec())
            .ok_or_else(|| {
                JournalError::Replication(format!("the snapshot names {name}, which is missing"))
            })
    }
}

async fn read(path: &std::path::Path) -> Result<Vec<u8>, JournalError> {
    tokio::fs::read(path)
        .await
        .map_err(JournalError::io(format!("reading {}", path.display())))
}

async fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), JournalError> {
    tokio::fs::write(path, bytes)
        .await
        .map_err(JournalError::io(format!("writing {}", path.display())))
}

fn seal_headers(offset: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(OFFSET_HEADER, offset.to_string().as_str());
    headers
}

/// Appends the journal to the stream, fenced by the expected last sequence. Runs on the
/// engine's journal thread (it blocks on the async client through `runtime`).
pub struct JetStreamSink {
    js: jetstream::Context,
    stream: String,
    subject: String,
    last_seq: u64,
    offset: u64,
    message_bytes_max: usize,
    runtime: tokio::runtime::Handle,
}

impl JournalSink for JetStreamSink {
    fn write_durable(&mut self, bytes: &[&[u8]]) -> Result<(), JournalError> {
        let joined: Vec<u8>;
        let all: &[u8] = if bytes.len() == 1 {
            bytes[0]
        } else {
            joined = bytes.concat();
            &joined
        };
        let runtime = self.runtime.clone();
        runtime.block_on(self.append(all))
    }
}

impl JetStreamSink {
    /// Publishes `all` as one or more messages, each expecting the one before, all in flight at
    /// once; durable when every acknowledgement is in. If an acknowledgement does not come
    /// (a NATS node or the connection went away), what was stored is found out by reading the
    /// stream back, and the rest is published again, until [`APPEND_RETRY_WINDOW`] has passed.
    async fn append(&mut self, all: &[u8]) -> Result<(), JournalError> {
        let parts: Vec<&[u8]> = all.chunks(self.message_bytes_max).collect();
        let first_unacked = self.publish_pipelined(&parts).await;
        if let Err((index, e)) = first_unacked {
            if matches!(e, JournalError::Replication(ref m) if m.contains("fenced")) {
                return Err(e);
            }
            tracing::warn!(error = %e, "journal append unconfirmed; reconciling with the stream");
            self.reconcile(&parts[index..]).await?;
        }
        Ok(())
    }

    /// Publishes every part, then awaits the acknowledgements in order. On the first failure,
    /// returns its part's index (the parts before it are durable and accounted for).
    async fn publish_pipelined(&mut self, parts: &[&[u8]]) -> Result<(), (usize, JournalError)> {
        let mut pending = Vec::with_capacity(parts.len());
        let mut offset = self.offset;
        for (expected, part) in (self.last_seq..).zip(parts) {
            let sent = self
                .js
                .send_publish(self.subject.clone(), self.message(offset, part, expected))
                .await;
            pending.push(sent);
            offset += part.len() as u64;
        }
        for (index, (sent, part)) in pending.into_iter().zip(parts).enumerate() {
            let acked = match sent {
                Ok(ack) => ack.await,
                Err(e) => return Err((index, nats_error("appending to the journal")(&e))),
            };
            match acked {
                Ok(ack) if ack.sequence == self.last_seq + 1 => {
                    self.last_seq = ack.sequence;
                    self.offset += part.len() as u64;
                }
                Ok(ack) => {
                    return Err((
                        index,
                        JournalError::Replication(format!(
                            "fenced: the journal stored a message at sequence {} where {} was expected",
                            ack.sequence,
                            self.last_seq + 1
                        )),
                    ));
                }
                Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                    // Either another leader appended (fenced), or an earlier unconfirmed
                    // publish of ours was stored after all: reconciling tells which.
                    return Err((
                        index,
                        nats_error("appending to the journal (wrong last sequence)")(&e),
                    ));
                }
                Err(e) => return Err((index, nats_error("appending to the journal")(&e))),
            }
        }
        Ok(())
    }

    /// For each part in turn: if the stream already holds it at the next sequence (an
    /// unconfirmed publish that was stored), count it; if the stream ends there, publish it; if
    /// the stream holds something else there, another writer took over: fenced.
    async fn reconcile(&mut self, parts: &[&[u8]]) -> Result<(), JournalError> {
        let deadline = tokio::time::Instant::now() + APPEND_RETRY_WINDOW;
        let stream = self.js.get_stream_no_info(&self.stream).await;
        let stream = stream.map_err(|e| nats_error("opening the journal stream")(&e))?;
        let mut index = 0;
        while index < parts.len() {
            if tokio::time::Instant::now() > deadline {
                return Err(JournalError::Replication(format!(
                    "the journal could not be appended to for {APPEND_RETRY_WINDOW:?}"
                )));
            }
            let part = parts[index];
            let next = self.last_seq + 1;
            let lookup = tokio::time::timeout(RECONCILE_STEP_TIMEOUT, stream.get_raw_message(next));
            let outcome = match lookup.await {
                Ok(Ok(stored)) => {
                    let offset = stored
                        .headers
                        .get(OFFSET_HEADER)
                        .map(|v| v.as_str().to_owned());
                    if offset == Some(self.offset.to_string()) && stored.payload.as_ref() == part {
                        Ok(())
                    } else {
                        return Err(JournalError::Replication(
                            "fenced: another leader appended to the journal; this node stops serving".into(),
                        ));
                    }
                }
                // The stream ends before `next`: publish the part there (expecting the stream
                // to end exactly where it does, so a racing writer fences one of us).
                Ok(Err(e)) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                    let message = self.message(self.offset, part, self.last_seq);
                    let published = tokio::time::timeout(RECONCILE_STEP_TIMEOUT, async {
                        match self.js.send_publish(self.subject.clone(), message).await {
                            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    });
                    match published.await {
                        Ok(outcome) => outcome,
                        Err(_) => Err("the publish was not acknowledged in time".into()),
                    }
                }
                // The stream's leader is not known or not answering (an election, a reconnect):
                // nothing can be told yet.
                Ok(Err(e)) => Err(format!("reading the journal back: {e}")),
                Err(_) => Err("reading the journal back timed out".into()),
            };
            match outcome {
                Ok(()) => {
                    self.last_seq = next;
                    self.offset += part.len() as u64;
                    index += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "journal append failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Ok(())
    }

    fn message(&self, offset: u64, part: &[u8], expected_last: u64) -> PublishMessage {
        PublishMessage::build()
            .payload(bytes::Bytes::copy_from_slice(part))
            .header(OFFSET_HEADER, offset.to_string().as_str())
            .expected_last_sequence(expected_last)
    }
}

/// Why a lease was not renewed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenewError {
    /// Another node holds the lease.
    #[error("the lease was lost: {0}")]
    Lost(String),
    /// NATS did not answer.
    #[error("the lease could not be renewed: {0}")]
    Unreachable(String),
}

/// A held leadership lease.
pub struct Lease {
    kv: kv::Store,
    key: String,
    /// What this holder writes: its node name and acquisition.
    node: String,
    revision: u64,
}

impl Lease {
    /// Takes the lease if no one holds it (or the holder's lease aged out).
    pub async fn try_acquire(
        js: &jetstream::Context,
        config: &ReplicationConfig,
    ) -> Result<Option<Lease>, JournalError> {
        let kv = js
            .get_key_value(config.lease_bucket())
            .await
            .map_err(|e| nats_error("opening the lease bucket")(&e))?;
        let key = LEASE_KEY.to_owned();
        // The value names this node *and this acquisition*: a restarted process under the
        // same node name is another holder (see `renew`).
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let holder = format!("{}/{}-{since}", config.node, std::process::id());
        match kv.create(&key, holder.clone().into()).await {
            Ok(revision) => Ok(Some(Lease {
                kv,
                key,
                node: holder,
                revision,
            })),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(nats_error("taking the lease")(&e)),
        }
    }

    /// Renews the lease. [`RenewError::Lost`]: someone else holds it now; stop writing.
    /// [`RenewError::Unreachable`]: try again; the lease stays ours until its time to live runs
    /// out after the last renewal.
    pub async fn renew(&mut self) -> Result<(), RenewError> {
        match self
            .kv
            .update(&self.key, self.node.clone().into(), self.revision)
            .await
        {
            Ok(revision) => {
                self.revision = revision;
                Ok(())
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                // A renewal whose acknowledgement was lost (a NATS node dying mid-request)
                // may have landed all the same, moving the revision on. If the key still
                // names this acquisition, the last write to it was ours: the lease is still
                // held. (Only this holder writes its own value; a takeover writes another.)
                match self.kv.entry(&self.key).await {
                    Ok(Some(entry))
                        if entry.operation == kv::Operation::Put
                            && entry.value.as_ref() == self.node.as_bytes() =>
                    {
                        self.revision = entry.revision;
                        Ok(())
                    }
                    Ok(_) => Err(RenewError::Lost(e.to_string())),
                    Err(read) => Err(RenewError::Unreachable(read.to_string())),
                }
            }
            Err(e) => Err(RenewError::Unreachable(e.to_string())),
        }
    }

    /// Gives the lease up (graceful shutdown), so a standby takes over at once.
    pub async fn release(self) -> Result<(), JournalError> {
        self.kv
            .delete_expect_revision(&self.key, Some(self.revision))
            .await
            .map_err(|e| nats_error("releasing the lease")(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_shard() {
        let c = ReplicationConfig {
            shard: 2,
            replicas: 3,
            lease_ttl: Duration::from_secs(2),
            node: "a".into(),
        };
        assert_eq!(c.stream_name(), "ledger-journal-2");
        assert_eq!(c.subject(), "journal.ledger.2");
        assert_eq!(c.lease_bucket(), "ledger-lease-2");
        assert_eq!(c.renew_every(), Duration::from_millis(500));
    }
}
