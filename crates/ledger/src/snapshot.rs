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
use crate::state::{Ledger, SnapshotImage};
use crate::types::*;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
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
pub fn load(dir: &Path) -> Result<Option<(Ledger, Position)>, JournalError> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(JournalError::io(format!(
                "reading snapshot {}",
                path.display()
            ))(e));
        }
    };
    let (position, body) = check(&path, &bytes)?;
    let ledger = decode_body(body).map_err(|reason| corrupt(&path, 0, reason))?;
    Ok(Some((ledger, position)))
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

fn decode_body(body: &[u8]) -> Result<Ledger, String> {
    let mut r = Reader::new(body);
    let fail = |e: DecodeError| format!("snapshot body: {e}");
    let last_timestamp = r.u64().map_err(fail)?;
    let account_count = r.u64().map_err(fail)? as usize;
    let mut accounts = Vec::with_capacity(account_count.min(body.len() / codec::RECORD_SIZE));
    for i in 0..account_count {
        let account =
            codec::decode_account(r.take(codec::RECORD_SIZE).map_err(fail)?, i).map_err(fail)?;
        let len = r.u32().map_err(fail)? as usize;
        let metadata = match len {
            0 => None,
            _ => Some(
                std::str::from_utf8(r.take(len).map_err(fail)?)
                    .map_err(|_| "snapshot body: metadata is not UTF-8".to_string())?
                    .into(),
            ),
        };
        let history_len = r.u64().map_err(fail)? as usize;
        let mut history =
            Vec::with_capacity(history_len.min(body.len() / BALANCE_ENTRY_SIZE as usize));
        for _ in 0..history_len {
            history.push(BalanceEntry {
                timestamp: r.u64().map_err(fail)?,
                transfer_id: r.u128().map_err(fail)?,
                balances: Balances {
                    debits_pending: r.u128().map_err(fail)?,
                    debits_posted: r.u128().map_err(fail)?,
                    credits_pending: r.u128().map_err(fail)?,
                    credits_posted: r.u128().map_err(fail)?,
                },
            });
        }
        accounts.push((account, metadata, history));
    }
    let transfer_count = r.u64().map_err(fail)? as usize;
    let records = r
        .take(
            transfer_count
                .checked_mul(codec::RECORD_SIZE)
                .ok_or("snapshot body: transfer count overflows")?,
        )
        .map_err(fail)?;
    let transfers = records
        .chunks_exact(codec::RECORD_SIZE)
        .enumerate()
        .map(|(i, b)| codec::decode_transfer(b, i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let metadata_count = r.u64().map_err(fail)? as usize;
    let mut metadata = Vec::with_capacity(metadata_count.min(body.len() / 20));
    for _ in 0..metadata_count {
        let id = r.u128().map_err(fail)?;
        let len = r.u32().map_err(fail)? as usize;
        let text = std::str::from_utf8(r.take(len).map_err(fail)?)
            .map_err(|_| "snapshot body: metadata is not UTF-8".to_string())?;
        metadata.push((id, text.into()));
    }
    let pending_count = r.u64().map_err(fail)? as usize;
    let mut pending = Vec::with_capacity(pending_count.min(body.len() / 17));
    for _ in 0..pending_count {
        let id = r.u128().map_err(fail)?;
        let status = PendingStatus::from_u8(r.u8().map_err(fail)?)
            .ok_or("snapshot body: unknown pending status")?;
        pending.push((id, status));
    }
    r.finish().map_err(fail)?;
    Ledger::from_parts(accounts, transfers, metadata, pending, last_timestamp)
}
