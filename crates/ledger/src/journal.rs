//! The journal: an append-only file of checksummed, hash-chained batch records.
//!
//! Every record holds one batch exactly as the core received it (the events and the clock
//! reading), so replaying the journal through [`crate::Ledger`] rebuilds the state bit for bit.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "GRJ1"
//!      4     4  header_crc   CRC-32C of bytes 8..72
//!      8     4  payload_crc  CRC-32C of the payload
//!     12     4  payload_len
//!     16     8  seq          1, 2, 3, … without gaps
//!     24     8  now          the clock reading the batch was applied with (ns since the epoch)
//!     32     1  kind         1 accounts, 2 transfers, 3 expiry pulse
//!     33     7  reserved     zero
//!     40    32  prev_hash    SHA-256 of the previous record (zeros for the first)
//!     72     …  payload      a batch in the [`crate::codec`] encoding
//! ```
//!
//! A record's hash is SHA-256 of bytes 8.. of its header followed by its payload; each record
//! names its predecessor's hash, so the journal is a hash chain and any transfer can be proven
//! part of the history.
//!
//! Reading distinguishes a torn tail from corruption: a record that fails its checks and is not
//! followed by any valid record header with a later sequence number is the torn remains of a
//! write that was never acknowledged (its fsync never returned), so it is cut off. A record that
//! fails its checks with valid records after it is corruption, and reading stops with an error
//! naming the file and offset.

use crate::codec::{self, DecodeError};
use crate::state::Ledger;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The journal's file name inside the data folder.
pub const JOURNAL_FILE: &str = "journal.gj";

/// The lock file that makes one process at a time the data folder's writer.
pub const LOCK_FILE: &str = "LOCK";

/// Takes the data folder's exclusive lock (created if missing), held as long as the returned
/// file is open. The operating system releases it if the process dies.
pub fn lock_data_dir(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(JournalError::io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::InUse {
            dir: dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(JournalError::io(format!("locking {}", path.display()))(e))
        }
    }
}

/// Size of a record header.
pub const HEADER_SIZE: usize = 72;

/// Largest payload a record may carry: a full batch of events with maximal metadata.
pub const PAYLOAD_BYTES_MAX: usize = 40 << 20;

const MAGIC: [u8; 4] = *b"GRJ1";

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A batch of account events.
    Accounts = 1,
    /// A batch of transfer events.
    Transfers = 2,
    /// An expiry pulse: void pending transfers due at `now`.
    Expire = 3,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<RecordKind> {
        Some(match v {
            1 => RecordKind::Accounts,
            2 => RecordKind::Transfers,
            3 => RecordKind::Expire,
            _ => return None,
        })
    }
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Position in the journal, from 1.
    pub seq: u64,
    /// The clock reading the batch was applied with.
    pub now: u64,
    /// What the payload holds.
    pub kind: RecordKind,
    /// The previous record's hash.
    pub prev_hash: Hash,
    /// Byte offset of the header in the file.
    pub offset: u64,
    /// This record's hash.
    pub hash: Hash,
}

/// Where the journal stands: the last record applied and the offset just past it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Sequence number of the last record (0 before the first).
    pub seq: u64,
    /// Byte offset just past the last record.
    pub offset: u64,
    /// Hash of the last record (zeros before the first).
    pub hash: Hash,
}

/// Why the journal or a snapshot cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Damage that is not a torn tail. Never repaired automatically.
    #[error(
        "{} is corrupt at byte offset {offset}: {reason}. Gureum refuses to start on damaged data; \
         restore the data folder from a backup or replica (run `gureum ledger verify --data-dir DIR` for a full report)",
        path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// Another process holds the data folder.
    #[error(
        "{} is in use by another process (it holds the lock on {}); stop that process first — two writers would corrupt the journal",
        dir.display(),
        dir.join(LOCK_FILE).display()
    )]
    InUse {
        /// The data folder.
        dir: PathBuf,
    },
    /// The replicated journal refused a write or could not be reached.
    #[error("replicated journal: {0}")]
    Replication(String),
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

impl JournalError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> JournalError {
        let context = context.into();
        move |source| JournalError::Io { context, source }
    }
}

/// Encodes records: assigns sequence numbers and chains hashes.
///
/// [`JournalEncoder::append`] only fills a buffer; [`JournalFile::write_durable`] writes it. The
/// two halves are separate so the journal thread can encode the records of every group waiting
/// and write them with one `fdatasync` (see [`crate::engine`]). Nothing appended may be
/// acknowledged until the bytes holding it are durable.
pub struct JournalEncoder {
    buf: Vec<u8>,
    /// Position after the last appended record.
    position: Position,
}

impl JournalEncoder {
    /// An encoder that continues after `position` (which recovery established).
    pub fn new(position: Position) -> JournalEncoder {
        JournalEncoder {
            buf: Vec::new(),
            position,
        }
    }

    /// Where the journal stands after the appended records.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Takes the encoded bytes, leaving `recycled` (cleared) as the new buffer.
    pub fn take(&mut self, mut recycled: Vec<u8>) -> Vec<u8> {
        recycled.clear();
        std::mem::replace(&mut self.buf, recycled)
    }

    /// Buffers one record whose payload `encode` writes; returns its header.
    pub fn append(
        &mut self,
        kind: RecordKind,
        now: u64,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> RecordHeader {
        let start = self.buf.len();
        self.buf.resize(start + HEADER_SIZE, 0);
        encode(&mut self.buf);
        let payload_len = self.buf.len() - start - HEADER_SIZE;
        assert!(
            payload_len <= PAYLOAD_BYTES_MAX,
            "a batch is bounded well below the payload limit"
        );
        let seq = self.position.seq + 1;
        let (header, payload) = self.buf[start..].split_at_mut(HEADER_SIZE);
        let payload_crc = crc32c::crc32c(payload);
        header[0..4].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&payload_crc.to_le_bytes());
        header[12..16].copy_from_slice(&(payload_len as u32).to_le_bytes());
        header[16..24].copy_from_slice(&seq.to_le_bytes());
        header[24..32].copy_from_slice(&now.to_le_bytes());
        header[32] = kind as u8;
        header[40..72].copy_from_slice(&self.position.hash);
        let header_crc = crc32c::crc32c(&header[8..]);
        header[4..8].copy_from_slice(&header_crc.to_le_bytes());
        let hash = record_hash(header, payload);
        let offset = self.position.offset;
        let prev_hash = self.position.hash;
        self.position = Position {
            seq,
            offset: offset + (HEADER_SIZE + payload_len) as u64,
            hash,
        };
        RecordHeader {
            seq,
            now,
            kind,
            prev_hash,
            offset,
            hash,
        }
    }
}

/// The journal file, open for appending.
pub struct JournalFile {
    file: File,
    path: PathBuf,
}

impl JournalFile {
    /// Opens (or creates) the journal for appending at `offset`, where recovery left it.
    pub fn open(path: &Path, offset: u64) -> Result<JournalFile, JournalError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(JournalError::io(format!("opening {}", path.display())))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(JournalError::io(format!("seeking in {}", path.display())))?;
        if offset == 0 {
            // A new journal: make its directory entry durable too.
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(JournalError::io(format!("syncing {}", dir.display())))?;
            }
        }
        Ok(JournalFile {
            file,
            path: path.to_owned(),
        })
    }

    /// Writes encoded records and waits for the disk (one `fdatasync` for all of them).
    ///
    /// On error the file's state is unknown: the caller must stop accepting work.
    pub fn write_durable(&mut self, bytes: &[&[u8]]) -> Result<(), JournalError> {
        let context = || format!("writing {}", self.path.display());
        for b in bytes {
            self.file
                .write_all(b)
                .map_err(JournalError::io(context()))?;
        }
        self.file.sync_data().map_err(JournalError::io(context()))
    }
}

/// Where the journal thread makes encoded records durable: the local file, or a replicated
/// stream (`crate::replicated`). A call returns only when every byte given is durable; an error
/// means the state of the sink is unknown and the engine stops.
pub trait JournalSink: Send + 'static {
    /// Appends `bytes` (whole records, in order) and waits until they are durable.
    fn write_durable(&mut self, bytes: &[&[u8]]) -> Result<(), JournalError>;
}

impl JournalSink for JournalFile {
    fn write_durable(&mut self, bytes: &[&[u8]]) -> Result<(), JournalError> {
        JournalFile::write_durable(self, bytes)
    }
}

/// Reads records from a journal that arrives in pieces (the replicated journal's messages),
/// each piece tagged with the byte offset it starts at.
///
/// A piece that starts before the end of the bytes received so far replaces them from there:
/// that is how a new leader cuts off the partial record a dead leader left (it writes from the
/// end of the last whole record). It may never start before that end, nor after the end of
/// what was received (a gap). Every record is checked as in the file journal: header and
/// payload checksums, sequence, hash chain.
pub struct RecordStream {
    source: PathBuf,
    /// After the last whole record.
    position: Position,
    /// Bytes after `position.offset` that do not make a whole record yet.
    pending: Vec<u8>,
}

impl RecordStream {
    /// A reader continuing after `position`; `source` names the journal in errors.
    pub fn new(source: impl Into<PathBuf>, position: Position) -> RecordStream {
        RecordStream {
            source: source.into(),
            position,
            pending: Vec::new(),
        }
    }

    /// After the last whole record: where a new writer continues.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Bytes received past the last whole record (a partial record).
    pub fn partial_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Takes `bytes` starting at journal offset `offset` and visits every record completed.
    pub fn push(
        &mut self,
        offset: u64,
        bytes: &[u8],
        mut visit: impl FnMut(&RecordHeader, &[u8]) -> Result<(), String>,
    ) -> Result<(), JournalError> {
        let corrupt = |offset: u64, reason: String| JournalError::Corrupt {
            path: self.source.clone(),
            offset,
            reason,
        };
        let end = self.position.offset + self.pending.len() as u64;
        if offset > end {
            return Err(corrupt(
                end,
                format!("a piece starts at {offset}, after the end of what came before"),
            ));
        }
        if offset < self.position.offset {
            return Err(corrupt(
                offset,
                format!(
                    "a piece starts at {offset}, inside record {} which was already complete",
                    self.position.seq
                ),
            ));
        }
        self.pending
            .truncate((offset - self.position.offset) as usize);
        self.pending.extend_from_slice(bytes);
        let mut used = 0;
        while self.pending.len() - used >= HEADER_SIZE {
            let at = self.position.offset;
            let rest = &self.pending[used..];
            let header: &[u8; HEADER_SIZE] = rest[..HEADER_SIZE].try_into().expect("header size");
            let Some(h) = parse_header(header, at) else {
                return Err(corrupt(at, "record header fails its checksum".into()));
            };
            if h.seq != self.position.seq + 1 {
                return Err(corrupt(
                    at,
                    format!(
                        "expected record {} but found {}",
                        self.position.seq + 1,
                        h.seq
                    ),
                ));
            }
            let payload_len =
                u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) as usize;
            if rest.len() < HEADER_SIZE + payload_len {
                break;
            }
            let payload = &rest[HEADER_SIZE..HEADER_SIZE + payload_len];
            let payload_crc = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
            if crc32c::crc32c(payload) != payload_crc {
                return Err(corrupt(at, "record payload fails its checksum".into()));
            }
            if h.prev_hash != self.position.hash {
                return Err(corrupt(
                    at,
                    "record does not chain to the previous record's hash".into(),
                ));
            }
            let hash = record_hash(header, payload);
            let h = RecordHeader { hash, ..h };
            visit(&h, payload).map_err(|reason| corrupt(at, reason))?;
            self.position = Position {
                seq: h.seq,
                offset: at + (HEADER_SIZE + payload_len) as u64,
                hash,
            };
            used += HEADER_SIZE + payload_len;
        }
        self.pending.drain(..used);
        Ok(())
    }
}

fn record_hash(header: &[u8], payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(&header[8..HEADER_SIZE]);
    h.update(payload);
    h.finalize().into()
}

/// How reading the journal ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadEnd {
    /// Where the last valid record leaves the journal.
    pub position: Position,
    /// A torn tail found after it: its offset and what was wrong. Nothing after `position` was
    /// ever acknowledged.
    pub torn: Option<(u64, String)>,
}

/// Reads records from `from` (which must be where a record starts) to the end, checking every
/// checksum, the sequence and the hash chain, and hands each to `visit`.
pub fn read_records(
    path: &Path,
    from: Position,
    mut visit: impl FnMut(&RecordHeader, &[u8]) -> Result<(), String>,
) -> Result<ReadEnd, JournalError> {
    let corrupt = |offset: u64, reason: String| JournalError::Corrupt {
        path: path.to_owned(),
        offset,
        reason,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound && from.offset == 0 => {
            return Ok(ReadEnd {
                position: from,
                torn: None,
            });
        }
        Err(e) => return Err(JournalError::io(format!("opening {}", path.display()))(e)),
    };
    let file_len = file
        .metadata()
        .map_err(JournalError::io(format!("reading {}", path.display())))?
        .len();
    if file_len < from.offset {
        return Err(corrupt(
            file_len,
            format!(
                "the snapshot covers the journal up to offset {} but the file ends first",
                from.offset
            ),
        ));
    }
    file.seek(SeekFrom::Start(from.offset))
        .map_err(JournalError::io(format!("seeking in {}", path.display())))?;
    let mut reader = io::BufReader::with_capacity(8 << 20, file);
    let mut position = from;
    let mut header = [0u8; HEADER_SIZE];
    let mut payload = Vec::new();
    loop {
        let offset = position.offset;
        let remaining = file_len - offset;
        if remaining == 0 {
            return Ok(ReadEnd {
                position,
                torn: None,
            });
        }
        // Decide whether a failed check is a torn tail or corruption.
        let damaged = |reader_path: &Path, reason: String| -> Result<ReadEnd, JournalError> {
            match later_valid_header(reader_path, offset + 1, position.seq) {
                Ok(Some(at)) => Err(corrupt(
                    offset,
                    format!("{reason}, and a valid record follows at offset {at}"),
                )),
                Ok(None) => Ok(ReadEnd {
                    position,
                    torn: Some((offset, reason)),
                }),
                Err(e) => Err(JournalError::io(format!(
                    "scanning {}",
                    reader_path.display()
                ))(e)),
            }
        };
        if remaining < HEADER_SIZE as u64 {
            return damaged(
                path,
                format!("{remaining} bytes remain, less than a record header"),
            );
        }
        reader
            .read_exact(&mut header)
            .map_err(JournalError::io(format!("reading {}", path.display())))?;
        let Some(h) = parse_header(&header, offset) else {
            return damaged(path, "record header fails its checksum".into());
        };
        let payload_len = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) as u64;
        if h.seq != position.seq + 1 {
            return Err(corrupt(
                offset,
                format!("expected record {} but found {}", position.seq + 1, h.seq),
            ));
        }
        if offset + HEADER_SIZE as u64 + payload_len > file_len {
            return damaged(path, "record payload runs past the end of the file".into());
        }
        payload.resize(payload_len as usize, 0);
        reader
            .read_exact(&mut payload)
            .map_err(JournalError::io(format!("reading {}", path.display())))?;
        let payload_crc = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if crc32c::crc32c(&payload) != payload_crc {
            return damaged(path, "record payload fails its checksum".into());
        }
        if h.prev_hash != position.hash {
            return Err(corrupt(
                offset,
                "record does not chain to the previous record's hash".into(),
            ));
        }
        let hash = record_hash(&header, &payload);
        let h = RecordHeader { hash, ..h };
        visit(&h, &payload).map_err(|reason| corrupt(offset, reason))?;
        position = Position {
            seq: h.seq,
            offset: offset + HEADER_SIZE as u64 + payload_len,
            hash,
        };
    }
}

/// Decodes a header whose magic, checksum, kind and length are valid.
fn parse_header(header: &[u8; HEADER_SIZE], offset: u64) -> Option<RecordHeader> {
    if header[0..4] != MAGIC {
        return None;
    }
    let header_crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if crc32c::crc32c(&header[8..]) != header_crc {
        return None;
    }
    let payload_len = u32::from_le_bytes(header[12..16].try_into().ok()?) as usize;
    if payload_len > PAYLOAD_BYTES_MAX || header[33..40] != [0; 7] {
        return None;
    }
    Some(RecordHeader {
        seq: u64::from_le_bytes(header[16..24].try_into().ok()?),
        now: u64::from_le_bytes(header[24..32].try_into().ok()?),
        kind: RecordKind::from_u8(header[32])?,
        prev_hash: header[40..72].try_into().ok()?,
        offset,
        hash: [0; 32],
    })
}

/// Finds a valid record header after `from` whose sequence number is past `seq`.
fn later_valid_header(path: &Path, from: u64, seq: u64) -> io::Result<Option<u64>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest)?;
    let mut at = 0;
    while at + HEADER_SIZE <= rest.len() {
        match rest[at..].windows(4).position(|w| w == MAGIC) {
            None => break,
            Some(i) => at += i,
        }
        if at + HEADER_SIZE > rest.len() {
            break;
        }
        let header: &[u8; HEADER_SIZE] = rest[at..at + HEADER_SIZE].try_into().expect("sized");
        if parse_header(header, 0).is_some_and(|h| h.seq > seq) {
            return Ok(Some(from + at as u64));
        }
        at += 1;
    }
    Ok(None)
}

/// Applies one record to the ledger, exactly as the engine applied it.
pub fn replay(
    ledger: &mut Ledger,
    header: &RecordHeader,
    payload: &[u8],
) -> Result<(), DecodeError> {
    match header.kind {
        RecordKind::Accounts => {
            let events = codec::decode_account_batch(payload, usize::MAX)?;
            ledger.create_accounts(header.now, &events);
        }
        RecordKind::Transfers => {
            let events = codec::decode_transfer_batch(payload, usize::MAX)?;
            ledger.create_transfers(header.now, &events);
        }
        RecordKind::Expire => {
            codec::Reader::new(payload).finish()?;
            ledger.expire_pending(header.now);
        }
    }
    Ok(())
}

/// Cuts a torn tail off the journal so new records follow the last valid one.
pub fn truncate(path: &Path, offset: u64) -> Result<(), JournalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(JournalError::io(format!("opening {}", path.display())))?;
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(JournalError::io(format!("truncating {}", path.display())))
}

/// Hex of a hash, for people.
pub fn hex(hash: &Hash) -> String {
    kernel::hex(hash)
}
