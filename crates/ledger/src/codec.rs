//! The binary encoding of accounts and transfers: fixed 128-byte little-endian records, the
//! layout TigerBeetle uses, followed by a metadata section.
//!
//! One encoding serves the journal, snapshots and the binary HTTP API, so a batch is parsed the
//! same way wherever it comes from. A batch is:
//!
//! ```text
//! u32 count | count × 128-byte record | u32 metadata_count | metadata_count × (u32 index, u32 len, len bytes of UTF-8 JSON)
//! ```
//!
//! Metadata entries name the record they belong to and come in increasing index order.

use crate::state::{AccountEvent, TransferEvent};
use crate::types::*;

/// Size of one encoded account or transfer.
pub const RECORD_SIZE: usize = 128;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before the structure did.
    #[error("truncated: expected {expected} more bytes at offset {offset}")]
    Truncated {
        /// Where the missing bytes start.
        offset: usize,
        /// How many were missing.
        expected: usize,
    },
    /// The input continues after the structure ended.
    #[error("{0} trailing bytes after the batch")]
    Trailing(usize),
    /// A record sets flag bits that no flag uses.
    #[error("record {index} sets unknown flag bits {bits:#06x}")]
    UnknownFlags {
        /// Which record.
        index: usize,
        /// The offending bits.
        bits: u16,
    },
    /// The batch holds more events than allowed.
    #[error("a batch holds at most {max} events, not {count}")]
    TooManyEvents {
        /// The count the input claims.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A metadata entry is malformed.
    #[error("metadata entry {entry}: {reason}")]
    Metadata {
        /// Which entry.
        entry: usize,
        /// What is wrong.
        reason: String,
    },
    /// A reserved field is not zero.
    #[error("record {0} has non-zero reserved bytes")]
    Reserved(usize),
}

/// A cursor over bytes being decoded.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .offset
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(DecodeError::Truncated {
                offset: self.offset,
                expected: n,
            })?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.len() - self.offset {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

fn le<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].try_into().expect("in bounds")
}

/// Appends the 128-byte encoding of a transfer.
pub fn encode_transfer(t: &Transfer, out: &mut Vec<u8>) {
    out.extend_from_slice(&t.id.to_le_bytes());
    out.extend_from_slice(&t.debit_account_id.to_le_bytes());
    out.extend_from_slice(&t.credit_account_id.to_le_bytes());
    out.extend_from_slice(&t.amount.to_le_bytes());
    out.extend_from_slice(&t.pending_id.to_le_bytes());
    out.extend_from_slice(&t.user_data_128.to_le_bytes());
    out.extend_from_slice(&t.user_data_64.to_le_bytes());
    out.extend_from_slice(&t.user_data_32.to_le_bytes());
    out.extend_from_slice(&t.timeout.to_le_bytes());
    out.extend_from_slice(&t.ledger.to_le_bytes());
    out.extend_from_slice(&t.code.to_le_bytes());
    out.extend_from_slice(&t.flags.0.to_le_bytes());
    out.extend_from_slice(&t.timestamp.to_le_bytes());
}

/// Decodes one 128-byte transfer.
pub fn decode_transfer(b: &[u8], index: usize) -> Result<Transfer, DecodeError> {
    debug_assert_eq!(b.len(), RECORD_SIZE);
    let flags = u16::from_le_bytes(le(b, 118));
    if flags & TransferFlags::UNKNOWN_BITS != 0 {
        return Err(DecodeError::UnknownFlags {
            index,
            bits: flags & TransferFlags::UNKNOWN_BITS,
        });
    }
    Ok(Transfer {
        id: u128::from_le_bytes(le(b, 0)),
        debit_account_id: u128::from_le_bytes(le(b, 16)),
        credit_account_id: u128::from_le_bytes(le(b, 32)),
        amount: u128::from_le_bytes(le(b, 48)),
        pending_id: u128::from_le_bytes(le(b, 64)),
        user_data_128: u128::from_le_bytes(le(b, 80)),
        user_data_64: u64::from_le_bytes(le(b, 96)),
        user_data_32: u32::from_le_bytes(le(b, 104)),
        timeout: u32::from_le_bytes(le(b, 108)),
        ledger: u32::from_le_bytes(le(b, 112)),
        code: u16::from_le_bytes(le(b, 116)),
        flags: TransferFlags(flags),
        timestamp: u64::from_le_bytes(le(b, 120)),
    })
}

/// Appends the 128-byte encoding of an account.
pub fn encode_account(a: &Account, out: &mut Vec<u8>) {
    out.extend_from_slice(&a.id.to_le_bytes());
    out.extend_from_slice(&a.debits_pending.to_le_bytes());
    out.extend_from_slice(&a.debits_posted.to_le_bytes());
    out.extend_from_slice(&a.credits_pending.to_le_bytes());
    out.extend_from_slice(&a.credits_posted.to_le_bytes());
    out.extend_from_slice(&a.user_data_128.to_le_bytes());
    out.extend_from_slice(&a.user_data_64.to_le_bytes());
    out.extend_from_slice(&a.user_data_32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&a.ledger.to_le_bytes());
    out.extend_from_slice(&a.code.to_le_bytes());
    out.extend_from_slice(&a.flags.0.to_le_bytes());
    out.extend_from_slice(&a.timestamp.to_le_bytes());
}

/// Decodes one 128-byte account.
pub fn decode_account(b: &[u8], index: usize) -> Result<Account, DecodeError> {
    debug_assert_eq!(b.len(), RECORD_SIZE);
    let flags = u16::from_le_bytes(le(b, 118));
    if flags & AccountFlags::UNKNOWN_BITS != 0 {
        return Err(DecodeError::UnknownFlags {
            index,
            bits: flags & AccountFlags::UNKNOWN_BITS,
        });
    }
    if b[108..112] != [0; 4] {
        return Err(DecodeError::Reserved(index));
    }
    Ok(Account {
        id: u128::from_le_bytes(le(b, 0)),
        debits_pending: u128::from_le_bytes(le(b, 16)),
        debits_posted: u128::from_le_bytes(le(b, 32)),
        credits_pending: u128::from_le_bytes(le(b, 48)),
        credits_posted: u128::from_le_bytes(le(b, 64)),
        user_data_128: u128::from_le_bytes(le(b, 80)),
        user_data_64: u64::from_le_bytes(le(b, 96)),
        user_data_32: u32::from_le_bytes(le(b, 104)),
        ledger: u32::from_le_bytes(le(b, 112)),
        code: u16::from_le_bytes(le(b, 116)),
        flags: AccountFlags(flags),
        timestamp: u64::from_le_bytes(le(b, 120)),
    })
}

fn encode_batch<'e, E: 'e>(
    events: &'e [E],
    out: &mut Vec<u8>,
    record: impl Fn(&E, &mut Vec<u8>),
    metadata: impl Fn(&'e E) -> Option<&'e str>,
) {
    out.reserve(8 + events.len() * RECORD_SIZE);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        record(e, out);
    }
    let with_metadata = events.iter().filter(|e| metadata(e).is_some()).count();
    out.extend_from_slice(&(with_metadata as u32).to_le_bytes());
    for (i, e) in events.iter().enumerate() {
        if let Some(m) = metadata(e) {
            out.extend_from_slice(&(i as u32).to_le_bytes());
            out.extend_from_slice(&(m.len() as u32).to_le_bytes());
            out.extend_from_slice(m.as_bytes());
        }
    }
}

fn decode_batch<E>(
    bytes: &[u8],
    count_max: usize,
    record: impl Fn(&[u8], usize) -> Result<E, DecodeError>,
    set_metadata: impl Fn(&mut E, Box<str>),
) -> Result<Vec<E>, DecodeError> {
    let mut r = Reader::new(bytes);
    let count = r.u32()? as usize;
    if count > count_max {
        return Err(DecodeError::TooManyEvents {
            count,
            max: count_max,
        });
    }
    let records = r.take(count * RECORD_SIZE)?;
    let mut events = records
        .chunks_exact(RECORD_SIZE)
        .enumerate()
        .map(|(i, b)| record(b, i))
        .collect::<Result<Vec<E>, _>>()?;
    let metadata_count = r.u32()? as usize;
    if metadata_count > count {
        return Err(DecodeError::Metadata {
            entry: 0,
            reason: format!("{metadata_count} entries for {count} events"),
        });
    }
    let mut previous: Option<usize> = None;
    for entry in 0..metadata_count {
        let index = r.u32()? as usize;
        let len = r.u32()? as usize;
        if index >= count || previous.is_some_and(|p| p >= index) {
            return Err(DecodeError::Metadata {
                entry,
                reason: format!("index {index} out of order or out of range"),
            });
        }
        previous = Some(index);
        let text = std::str::from_utf8(r.take(len)?).map_err(|_| DecodeError::Metadata {
            entry,
            reason: "not UTF-8".into(),
        })?;
        set_metadata(&mut events[index], text.into());
    }
    r.finish()?;
    Ok(events)
}

/// Appends the encoding of a batch of transfer events.
pub fn encode_transfer_batch(events: &[TransferEvent], out: &mut Vec<u8>) {
    encode_batch(
        events,
        out,
        |e, o| encode_transfer(&e.transfer, o),
        |e| e.metadata.as_deref(),
    );
}

/// Decodes a batch of transfer events holding at most `count_max` events.
pub fn decode_transfer_batch(
    bytes: &[u8],
    count_max: usize,
) -> Result<Vec<TransferEvent>, DecodeError> {
    decode_batch(
        bytes,
        count_max,
        |b, i| {
            Ok(TransferEvent {
                transfer: decode_transfer(b, i)?,
                metadata: None,
            })
        },
        |e, m| e.metadata = Some(m),
    )
}

/// Appends the encoding of a batch of account events.
pub fn encode_account_batch(events: &[AccountEvent], out: &mut Vec<u8>) {
    encode_batch(
        events,
        out,
        |e, o| encode_account(&e.account, o),
        |e| e.metadata.as_deref(),
    );
}

/// Decodes a batch of account events holding at most `count_max` events.
pub fn decode_account_batch(
    bytes: &[u8],
    count_max: usize,
) -> Result<Vec<AccountEvent>, DecodeError> {
    decode_batch(
        bytes,
        count_max,
        |b, i| {
            Ok(AccountEvent {
                account: decode_account(b, i)?,
                metadata: None,
            })
        },
        |e, m| e.metadata = Some(m),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_transfer(seed: u128) -> Transfer {
        Transfer {
            id: seed,
            debit_account_id: seed + 1,
            credit_account_id: seed + 2,
            amount: u128::MAX - seed,
            pending_id: seed + 3,
            user_data_128: seed + 4,
            user_data_64: 5,
            user_data_32: 6,
            timeout: 7,
            ledger: 8,
            code: 9,
            flags: TransferFlags::PENDING | TransferFlags::LINKED,
            timestamp: 10,
        }
    }

    #[test]
    fn transfer_batch_round_trips_with_metadata() {
        let events = vec![
            TransferEvent {
                transfer: sample_transfer(1),
                metadata: None,
            },
            TransferEvent {
                transfer: sample_transfer(100),
                metadata: Some(r#"{"memo":"rent"}"#.into()),
            },
        ];
        let mut bytes = Vec::new();
        encode_transfer_batch(&events, &mut bytes);
        assert_eq!(bytes.len(), 4 + 2 * RECORD_SIZE + 4 + 8 + 15);
        assert_eq!(decode_transfer_batch(&bytes, 8190).unwrap(), events);
    }

    #[test]
    fn account_batch_round_trips() {
        let events = vec![AccountEvent {
            account: Account {
                id: 7,
                debits_pending: 1,
                debits_posted: 2,
                credits_pending: 3,
                credits_posted: 4,
                user_data_128: 5,
                user_data_64: 6,
                user_data_32: 7,
                ledger: 8,
                code: 9,
                flags: AccountFlags::HISTORY,
                timestamp: 11,
            },
            metadata: Some("{}".into()),
        }];
        let mut bytes = Vec::new();
        encode_account_batch(&events, &mut bytes);
        assert_eq!(decode_account_batch(&bytes, 8190).unwrap(), events);
    }

    #[test]
    fn decoding_refuses_truncation_trailing_bytes_unknown_flags_and_oversize() {
        let events = vec![TransferEvent {
            transfer: sample_transfer(1),
            metadata: None,
        }];
        let mut bytes = Vec::new();
        encode_transfer_batch(&events, &mut bytes);
        assert!(matches!(
            decode_transfer_batch(&bytes[..bytes.len() - 1], 8190),
            Err(DecodeError::Truncated { .. })
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode_transfer_batch(&longer, 8190),
            Err(DecodeError::Trailing(1))
        );
        let mut flagged = bytes.clone();
        flagged[4 + 119] = 0x80;
        assert!(matches!(
            decode_transfer_batch(&flagged, 8190),
            Err(DecodeError::UnknownFlags { index: 0, .. })
        ));
        assert_eq!(
            decode_transfer_batch(&bytes, 0),
            Err(DecodeError::TooManyEvents { count: 1, max: 0 })
        );
        let huge = u32::MAX.to_le_bytes();
        assert!(decode_transfer_batch(&huge, usize::MAX).is_err());
    }
}
