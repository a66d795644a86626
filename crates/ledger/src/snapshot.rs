//! Snapshots: the whole ledger state at one journal position, so recovery replays only the
//! journal written after it.
//!
//! ```text
//! magic "GRS1" | u32 version | u64 seq | u64 offset | 32-byte hash | u64 body_len | body | u32 CRC-32C of everything before it
//! ```
//!
//! The body encodes accounts (with metadata and balance history) in creation order, transfers in
//! timestamp order, transfer metadata and pending statuses sorted by id: the same state always
//! encodes to the same bytes, which `gureum ledger verify` relies on to compare a snapshot with
//! the state a full replay rebuilds. A snapshot is written to a temporary file, synced, then
//! renamed over the old one, so a crash leaves either the old snapshot or the new one.

use crate::codec::{self, DecodeError, Reader};
use crate::journal::{JournalError, Position};
use crate::state::{Ledger, SnapshotImage, TransferLog};
use crate::types::*;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The snapshot's file name inside the data folder.
pub const SNAPSHOT_FILE: &str = "snapshot.gs";

const MAGIC: [u8; 4] = *b"GRS1";
const VERSION: u32 = 1;

/// Writes a snapshot of `ledger` at journal `position` into `dir`, atomically.
pub fn write(dir: &Path, ledger: &Ledger, position: Position) -> Result<(), JournalError> {
    write_image(dir, ledger.image(), position)
}

/// Writes a snapshot of an image taken at journal `position` into `dir`, atomically. The
/// journal up to `position` must already be durable.
pub fn write_image(
    dir: &Path,
    mut image: SnapshotImage,
    position: Position,
) -> Result<(), JournalError> {
    image.normalize();
    let path = dir.join(SNAPSHOT_FILE);
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let io_err = JournalError::io(format!("writing snapshot {}", tmp.display()));
    let result = (|| -> io::Result<()> {
        let file = File::create(&tmp)?;
        let mut out = CrcWriter {
            inner: BufWriter::with_capacity(8 << 20, file),
            crc: 0,
        };
        out.write_all(&MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&position.seq.to_le_bytes())?;
        out.write_all(&position.offset.to_le_bytes())?;
        out.write_all(&position.hash)?;
        out.write_all(&body_len(&image).to_le_bytes())?;
        encode_image(&image, &mut out)?;
        let crc = out.crc;
        let mut inner = out.inner;
        inner.write_all(&crc.to_le_bytes())?;
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(io_err)
}

/// Loads the snapshot in `dir`, if there is one.
///
/// The file is read once, front to back, decoding as it goes and checking the checksum at the
/// end: the transfer history lands directly in its final chunks, never in an intermediate copy.
pub fn load(dir: &Path) -> Result<Option<(Ledger, Position)>, JournalError> {
    let path = dir.join(SNAPSHOT_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(JournalError::io(format!(
                "reading snapshot {}",
                path.display()
            ))(e));
        }
    };
    let len = file
        .metadata()
        .map_err(JournalError::io(format!(
            "reading snapshot {}",
            path.display()
        )))?
        .len();
    let mut d = Stream {
        inner: io::BufReader::with_capacity(8 << 20, file),
        crc: 0,
        remaining: len.saturating_sub(4),
    };
    let loaded = (|| -> Result<(Ledger, Position), String> {
        if d.take(4)? != MAGIC || d.u32()? != VERSION {
            return Err("not a Gureum snapshot of a known version".into());
        }
        let position = Position {
            seq: d.u64()?,
            offset: d.u64()?,
            hash: d.take(32)?.try_into().expect("32 bytes"),
        };
        let body_len = d.u64()?;
        if body_len != d.remaining {
            return Err(format!(
                "the body claims {body_len} bytes but {} follow",
                d.remaining
            ));
        }
        let ledger = decode_body(&mut d)?;
        let want = d.crc;
        let mut crc = [0u8; 4];
        d.inner
            .read_exact(&mut crc)
            .map_err(|e| format!("reading the checksum: {e}"))?;
        if u32::from_le_bytes(crc) != want {
            return Err("snapshot fails its checksum".into());
        }
        Ok((ledger, position))
    })();
    loaded.map(Some).map_err(|reason| corrupt(&path, 0, reason))
}

/// A reader that checksums what it reads and refuses to read past the body.
struct Stream<R> {
    inner: R,
    crc: u32,
    remaining: u64,
}

impl<R: Read> Stream<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), String> {
        if (buf.len() as u64) > self.remaining {
            return Err(format!(
                "truncated: {} bytes wanted, {} left",
                buf.len(),
                self.remaining
            ));
        }
        self.inner
            .read_exact(buf)
            .map_err(|e| format!("reading: {e}"))?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.remaining -= buf.len() as u64;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0; n];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut buf = [0; N];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn u128(&mut self) -> Result<u128, String> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    /// A count of items of at least `item_size` bytes each, refused if they cannot fit.
    fn count(&mut self, item_size: u64) -> Result<usize, String> {
        let n = self.u64()?;
        if n.saturating_mul(item_size) > self.remaining {
            return Err(format!(
                "{n} items cannot fit in the {} bytes left",
                self.remaining
            ));
        }
        Ok(n as usize)
    }

    fn text(&mut self, len: usize) -> Result<Box<str>, String> {
        String::from_utf8(self.take(len)?)
            .map(String::into_boxed_str)
            .map_err(|_| "metadata is not UTF-8".to_string())
    }
}

/// Checks a snapshot's framing and checksum; returns its position and body.
pub fn check<'a>(path: &Path, bytes: &'a [u8]) -> Result<(Position, &'a [u8]), JournalError> {
    const HEAD: usize = 4 + 4 + 8 + 8 + 32 + 8;
    if bytes.len() < HEAD + 4 {
        return Err(corrupt(
            path,
            0,
            format!("{} bytes is too short for a snapshot", bytes.len()),
        ));
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(content) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt(path, 0, "snapshot fails its checksum".into()));
    }
    let mut r = Reader::new(content);
    let parse = |r: &mut Reader<'a>| -> Result<(Position, &'a [u8]), DecodeError> {
        let magic = r.take(4)?;
        let version = r.u32()?;
        if magic != MAGIC || version != VERSION {
            return Err(DecodeError::Reserved(0));
        }
        let seq = r.u64()?;
        let offset = r.u64()?;
        let hash = r.take(32)?.try_into().expect("32 bytes");
        let len = r.u64()? as usize;
        let body = r.take(len)?;
        Ok((Position { seq, offset, hash }, body))
    };
    let parsed = parse(&mut r).map_err(|e| corrupt(path, 0, format!("snapshot header: {e}")))?;
    r.finish()
        .map_err(|e| corrupt(path, 0, format!("snapshot: {e}")))?;
    Ok(parsed)
}

fn corrupt(path: &Path, offset: u64, reason: String) -> JournalError {
    JournalError::Corrupt {
        path: PathBuf::from(path),
        offset,
        reason,
    }
}

struct CrcWriter<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

const BALANCE_ENTRY_SIZE: u64 = 8 + 16 + 64;

fn body_len(image: &SnapshotImage) -> u64 {
    let mut len = 8 + 8;
    for (_, metadata, history) in &image.accounts {
        len += codec::RECORD_SIZE as u64 + 4 + metadata.as_ref().map_or(0, |m| m.len() as u64);
        len += 8 + history.len() as u64 * BALANCE_ENTRY_SIZE;
    }
    len += 8 + image.transfer_count() as u64 * codec::RECORD_SIZE as u64;
    len += 8 + image
        .metadata
        .iter()
        .map(|(_, m)| 16 + 4 + m.len() as u64)
        .sum::<u64>();
    len += 8 + image.pending.len() as u64 * 17;
    len
}

/// Writes the deterministic encoding of the ledger's state.
pub fn encode_body(ledger: &Ledger, out: &mut impl Write) -> io::Result<()> {
    let mut image = ledger.image();
    image.normalize();
    encode_image(&image, out)
}

fn encode_image(image: &SnapshotImage, out: &mut impl Write) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    let flush = |buf: &mut Vec<u8>, out: &mut dyn Write, force: bool| -> io::Result<()> {
        if force || buf.len() >= 1 << 16 {
            out.write_all(buf)?;
            buf.clear();
        }
        Ok(())
    };
    buf.extend_from_slice(&image.last_timestamp.to_le_bytes());
    buf.extend_from_slice(&(image.accounts.len() as u64).to_le_bytes());
    for (account, metadata, history) in &image.accounts {
        codec::encode_account(account, &mut buf);
        let m = metadata.as_deref().unwrap_or("");
        buf.extend_from_slice(&(m.len() as u32).to_le_bytes());
        buf.extend_from_slice(m.as_bytes());
        buf.extend_from_slice(&(history.len() as u64).to_le_bytes());
        for h in history {
            buf.extend_from_slice(&h.timestamp.to_le_bytes());
            buf.extend_from_slice(&h.transfer_id.to_le_bytes());
            let b = h.balances;
            for v in [
                b.debits_pending,
                b.debits_posted,
                b.credits_pending,
                b.credits_posted,
            ] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            flush(&mut buf, out, false)?;
        }
        flush(&mut buf, out, false)?;
    }
    buf.extend_from_slice(&(image.transfer_count() as u64).to_le_bytes());
    for t in image.transfers() {
        codec::encode_transfer(t, &mut buf);
        flush(&mut buf, out, false)?;
    }
    buf.extend_from_slice(&(image.metadata.len() as u64).to_le_bytes());
    for (id, m) in &image.metadata {
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&(m.len() as u32).to_le_bytes());
        buf.extend_from_slice(m.as_bytes());
        flush(&mut buf, out, false)?;
    }
    buf.extend_from_slice(&(image.pending.len() as u64).to_le_bytes());
    for (id, status) in &image.pending {
        buf.extend_from_slice(&id.to_le_bytes());
        buf.push(status.to_u8());
        flush(&mut buf, out, false)?;
    }
    flush(&mut buf, out, true)
}

fn decode_body<R: Read>(d: &mut Stream<R>) -> Result<Ledger, String> {
    let record = codec::RECORD_SIZE as u64;
    let last_timestamp = d.u64()?;
    let account_count = d.count(record + 12)?;
    let mut accounts = Vec::with_capacity(account_count);
    for i in 0..account_count {
        let account = codec::decode_account(&d.array::<{ codec::RECORD_SIZE }>()?, i)
            .map_err(|e| e.to_string())?;
        let metadata = match d.u32()? as usize {
            0 => None,
            len => Some(d.text(len)?),
        };
        let history_len = d.count(BALANCE_ENTRY_SIZE)?;
        let mut history = Vec::with_capacity(history_len);
        for _ in 0..history_len {
            history.push(BalanceEntry {
                timestamp: d.u64()?,
                transfer_id: d.u128()?,
                balances: Balances {
                    debits_pending: d.u128()?,
                    debits_posted: d.u128()?,
                    credits_pending: d.u128()?,
                    credits_posted: d.u128()?,
                },
            });
        }
        accounts.push((account, metadata, history));
    }
    let transfer_count = d.count(record)?;
    let mut transfers = TransferLog::with_capacity(transfer_count);
    let mut buf = vec![0u8; crate::state::CHUNK * codec::RECORD_SIZE];
    let mut left = transfer_count;
    while left > 0 {
        let n = left.min(crate::state::CHUNK);
        let bytes = &mut buf[..n * codec::RECORD_SIZE];
        d.fill(bytes)?;
        let first = transfer_count - left;
        let chunk = bytes
            .chunks_exact(codec::RECORD_SIZE)
            .enumerate()
            .map(|(i, b)| codec::decode_transfer(b, first + i))
            .collect::<Result<Vec<Transfer>, _>>()
            .map_err(|e| e.to_string())?;
        transfers.extend(chunk);
        left -= n;
    }
    let metadata_count = d.count(20)?;
    let mut metadata = Vec::with_capacity(metadata_count);
    for _ in 0..metadata_count {
        let id = d.u128()?;
        let len = d.u32()? as usize;
        metadata.push((id, d.text(len)?));
    }
    let pending_count = d.count(17)?;
    let mut pending = Vec::with_capacity(pending_count);
    for _ in 0..pending_count {
        let id = d.u128()?;
        let status = PendingStatus::from_u8(d.u8()?).ok_or("unknown pending status")?;
        pending.push((id, status));
    }
    if d.remaining != 0 {
        return Err(format!("{} bytes follow the body", d.remaining));
    }
    Ledger::from_parts(accounts, transfers, metadata, pending, last_timestamp)
}
