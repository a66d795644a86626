//! `gureum ledger verify`: an offline check of a data folder.
//!
//! Reads the whole journal from its first record, checking every checksum, the sequence and the
//! hash chain; replays it into a fresh ledger, recomputing every balance; checks the books
//! balance and every limit holds; and checks the snapshot equals, byte for byte, the state the
//! replay reached at the snapshot's record.

use crate::journal::{self, JournalError, Position};
use crate::snapshot;
use crate::state::Ledger;
use serde::Serialize;
use std::path::Path;

/// What verification found in a sound data folder.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    /// Journal records read.
    pub records: u64,
    /// Accounts after the replay.
    pub accounts: usize,
    /// Transfers after the replay.
    pub transfers: usize,
    /// Hex SHA-256 of the last record: the head of the hash chain.
    pub head_hash: String,
    /// The record the snapshot covers, when there is a snapshot.
    pub snapshot_seq: Option<u64>,
    /// A torn tail after the last record (a write never acknowledged), described.
    pub torn_tail: Option<String>,
}

/// Why a data folder failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The journal or snapshot is damaged.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The files are intact but disagree with each other or with the ledger's rules.
    #[error("{0}")]
    Mismatch(String),
}

/// Verifies the data folder `dir`.
pub fn verify(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let snapshot = snapshot::load(dir)?;
    let expected = match &snapshot {
        Some((ledger, position, _)) => {
            let mut body = Vec::new();
            snapshot::encode_body(ledger, &mut body)
                .map_err(|e| JournalError::io("encoding the snapshot")(e))?;
            Some((*position, body))
        }
        None => None,
    };
    drop(snapshot);
    let compare = |ledger: &Ledger,
                   at: Position,
                   (want, body): &(Position, Vec<u8>)|
     -> Option<String> {
        if at != *want {
            return Some(format!(
                "the snapshot claims record {} at offset {} but the journal has offset {} there",
                want.seq, want.offset, at.offset
            ));
        }
        let mut replayed = Vec::with_capacity(body.len());
        if let Err(e) = snapshot::encode_body(ledger, &mut replayed) {
            return Some(e.to_string());
        }
        (replayed != *body).then(|| {
            format!(
                "the snapshot differs from the state a replay of the journal reaches at record {}",
                want.seq
            )
        })
    };
    let mut ledger = Ledger::new();
    let mut checked_snapshot = false;
    let mut mismatch = None;
    if let Some(s) = &expected
        && s.0.seq == 0
    {
        mismatch = compare(&ledger, Position::default(), s);
        checked_snapshot = true;
    }
    let path = dir.join(journal::JOURNAL_FILE);
    let mut records = 0;
    let end = journal::read_records(&path, Position::default(), |header, payload| {
        records += 1;
        journal::replay(&mut ledger, header, payload)
            .map_err(|e| format!("record {} does not decode: {e}", header.seq))?;
        if let Some(s) = &expected
            && s.0.seq == header.seq
        {
            let at = Position {
                seq: header.seq,
                offset: header.offset + (journal::HEADER_SIZE + payload.len()) as u64,
                hash: header.hash,
            };
            // The journal itself is sound here; a disagreement is reported as such below.
            mismatch = compare(&ledger, at, s);
            checked_snapshot = true;
        }
        Ok(())
    })?;
    if let Some(m) = mismatch {
        return Err(VerifyError::Mismatch(m));
    }
    if let Some((position, _)) = &expected
        && !checked_snapshot
    {
        return Err(VerifyError::Mismatch(format!(
            "the snapshot covers record {} but the journal ends at record {}",
            position.seq, end.position.seq
        )));
    }
    ledger.check_invariants().map_err(VerifyError::Mismatch)?;
    Ok(VerifyReport {
        records,
        accounts: ledger.account_count(),
        transfers: ledger.transfer_count(),
        head_hash: journal::hex(&end.position.hash),
        snapshot_seq: expected.map(|(p, _)| p.seq),
        torn_tail: end
            .torn
            .map(|(offset, reason)| format!("at offset {offset}: {reason}")),
    })
}
