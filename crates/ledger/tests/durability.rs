//! Durability: recovery, torn tails, corruption, snapshots and verification.

use ledger::engine::{Engine, EngineConfig, RecoveryReport};
use ledger::journal::{HEADER_SIZE, JOURNAL_FILE, JournalError};
use ledger::snapshot::SNAPSHOT_FILE;
use ledger::*;
use std::path::Path;

mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::{accounts, transfers};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(dir: &Path) -> EngineConfig {
    let clock = Arc::new(AtomicU64::new(1_700_000_000_000_000_000));
    EngineConfig {
        clock: Arc::new(move || clock.fetch_add(1_000, Ordering::Relaxed)),
        ..EngineConfig::new(dir)
    }
}

fn open(dir: &Path) -> Result<(Engine, RecoveryReport), JournalError> {
    Engine::open(config(dir))
}

/// Creates 3 accounts and `batches` batches of 10 transfers; returns the engine still running.
fn populate(dir: &Path, batches: u128) -> Engine {
    let (engine, _) = open(dir).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let r = engine.create_accounts(accounts(1..=3)).await.unwrap();
        assert!(r.iter().all(|r| *r == CreateAccountResult::Ok));
        for b in 0..batches {
            let r = engine
                .create_transfers(transfers(100 + b * 10..110 + b * 10))
                .await
                .unwrap();
            assert!(r.iter().all(|r| *r == CreateTransferResult::Ok), "{r:?}");
        }
    });
    engine
}

fn transfer_count(engine: &Engine) -> usize {
    runtime()
        .block_on(engine.query(|l| l.transfer_count()))
        .unwrap()
}

/// Offsets where each journal record starts.
fn record_offsets(dir: &Path) -> Vec<u64> {
    let mut offsets = Vec::new();
    ledger::journal::read_records(&dir.join(JOURNAL_FILE), Default::default(), |h, _| {
        offsets.push(h.offset);
        Ok(())
    })
    .unwrap();
    offsets
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn acknowledged_batches_survive_a_restart_from_the_journal_alone() {
    let dir = tempfile::tempdir().unwrap();
    let engine = populate(dir.path(), 5);
    // A crash right now: the journal as it is on disk, no shutdown snapshot.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join(JOURNAL_FILE),
        copy.path().join(JOURNAL_FILE),
    )
    .unwrap();
    engine.shutdown().unwrap();
    let (recovered, report) = open(copy.path()).unwrap();
    assert_eq!(report.records_replayed, 6);
    assert_eq!(report.snapshot_seq, 0);
    assert_eq!((report.accounts, report.transfers), (3, 50));
    assert_eq!(report.torn_tail, None);
    let metadata = runtime()
        .block_on(recovered.query(|l| l.account(2).map(|(_, m)| m.map(str::to_owned))))
        .unwrap();
    assert_eq!(metadata, Some(Some("{\"n\":2}".to_owned())));
    recovered.shutdown().unwrap();
}

#[test]
fn restart_uses_the_snapshot_and_replays_only_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2).shutdown().unwrap();
    let (engine, report) = open(dir.path()).unwrap();
    assert_eq!(
        (
            report.snapshot_seq,
            report.records_replayed,
            report.transfers
        ),
        (3, 0, 20)
    );
    runtime().block_on(async {
        let r = engine.create_transfers(transfers(500..505)).await.unwrap();
        assert!(r.iter().all(|r| *r == CreateTransferResult::Ok));
    });
    let copy = tempfile::tempdir().unwrap();
    for file in [JOURNAL_FILE, SNAPSHOT_FILE] {
        std::fs::copy(dir.path().join(file), copy.path().join(file)).unwrap();
    }
    engine.shutdown().unwrap();
    let (recovered, report) = open(copy.path()).unwrap();
    assert_eq!(
        (
            report.snapshot_seq,
            report.records_replayed,
            report.transfers
        ),
        (3, 1, 25)
    );
    // Resubmitting after recovery answers exists: the ids are remembered.
    let r = runtime()
        .block_on(recovered.create_transfers(transfers(500..505)))
        .unwrap();
    assert!(r.iter().all(|r| *r == CreateTransferResult::Exists));
    recovered.shutdown().unwrap();
    let report = ledger::verify::verify(copy.path()).unwrap();
    assert_eq!(
        (report.records, report.transfers, report.snapshot_seq),
        (5, 25, Some(5))
    );
}

#[test]
fn torn_tail_is_cut_off_and_the_journal_goes_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3).shutdown().unwrap();
    std::fs::remove_file(dir.path().join(SNAPSHOT_FILE)).unwrap();
    let journal = dir.path().join(JOURNAL_FILE);
    let offsets = record_offsets(dir.path());
    let last = *offsets.last().unwrap();
    let len = std::fs::metadata(&journal).unwrap().len();
    // The last record's write was torn: only part of it reached the disk.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    file.set_len(last + (len - last) / 2).unwrap();
    drop(file);
    let (engine, report) = open(dir.path()).unwrap();
    let (offset, reason) = report.torn_tail.clone().unwrap();
    assert_eq!(offset, last);
    assert_eq!(reason, "record payload runs past the end of the file");
    assert_eq!(report.transfers, 20);
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), last);
    let r = runtime()
        .block_on(engine.create_transfers(transfers(120..130)))
        .unwrap();
    assert!(r.iter().all(|r| *r == CreateTransferResult::Ok));
    engine.shutdown().unwrap();
    let report = ledger::verify::verify(dir.path()).unwrap();
    assert_eq!((report.records, report.transfers), (4, 30));
}

#[test]
fn a_torn_header_at_the_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2).shutdown().unwrap();
    std::fs::remove_file(dir.path().join(SNAPSHOT_FILE)).unwrap();
    let journal = dir.path().join(JOURNAL_FILE);
    let len = std::fs::metadata(&journal).unwrap().len();
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(&[0x47, 0x52, 0x4a, 0x31, 0xff, 0x00, 0x13]);
    std::fs::write(&journal, bytes).unwrap();
    let (engine, report) = open(dir.path()).unwrap();
    assert_eq!(report.torn_tail.map(|t| t.0), Some(len));
    assert_eq!(transfer_count(&engine), 20);
    engine.shutdown().unwrap();
}

#[test]
fn a_flipped_bit_mid_journal_refuses_to_start_and_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3).shutdown().unwrap();
    std::fs::remove_file(dir.path().join(SNAPSHOT_FILE)).unwrap();
    let offsets = record_offsets(dir.path());
    let journal = dir.path().join(JOURNAL_FILE);
    flip_byte(&journal, offsets[1] + HEADER_SIZE as u64 + 40);
    let error = open(dir.path())
        .err()
        .expect("a corrupt journal must not open");
    match &error {
        JournalError::Corrupt {
            path,
            offset,
            reason,
        } => {
            assert_eq!(path, &journal);
            assert_eq!(*offset, offsets[1]);
            assert_eq!(
                reason,
                &format!(
                    "record payload fails its checksum, and a valid record follows at offset {}",
                    offsets[2]
                )
            );
        }
        other => panic!("expected corruption, got {other}"),
    }
    assert!(error.to_string().contains(&format!(
        "journal.gj is corrupt at byte offset {}",
        offsets[1]
    )));
    assert!(ledger::verify::verify(dir.path()).is_err());
    // Nothing was truncated: the evidence stays for the operator.
    assert!(std::fs::metadata(&journal).unwrap().len() > offsets[3]);
}

#[test]
fn a_flipped_bit_in_a_header_mid_journal_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3).shutdown().unwrap();
    std::fs::remove_file(dir.path().join(SNAPSHOT_FILE)).unwrap();
    let offsets = record_offsets(dir.path());
    flip_byte(&dir.path().join(JOURNAL_FILE), offsets[2] + 13);
    match open(dir.path()).err() {
        Some(JournalError::Corrupt { offset, .. }) => assert_eq!(offset, offsets[2]),
        other => panic!(
            "expected corruption, got {:?}",
            other.map(|e| e.to_string())
        ),
    }
}

#[test]
fn a_bad_snapshot_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2).shutdown().unwrap();
    let snapshot = dir.path().join(SNAPSHOT_FILE);
    flip_byte(&snapshot, 100);
    match open(dir.path()).err() {
        Some(JournalError::Corrupt { path, reason, .. }) => {
            assert_eq!(path, snapshot);
            assert_eq!(reason, "snapshot fails its checksum");
        }
        other => panic!(
            "expected corruption, got {:?}",
            other.map(|e| e.to_string())
        ),
    }
}

#[test]
fn a_snapshot_ahead_of_the_journal_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2).shutdown().unwrap();
    let journal = dir.path().join(JOURNAL_FILE);
    let offsets = record_offsets(dir.path());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    file.set_len(offsets[2]).unwrap();
    drop(file);
    assert!(matches!(
        open(dir.path()).err(),
        Some(JournalError::Corrupt { .. })
    ));
}

#[test]
fn verify_finds_a_snapshot_that_disagrees_with_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2).shutdown().unwrap();
    let (_, position, _) = ledger::snapshot::load(dir.path()).unwrap().unwrap();
    // A well-formed snapshot of the wrong state at the right position.
    ledger::snapshot::write(dir.path(), &Ledger::new(), position).unwrap();
    match ledger::verify::verify(dir.path()) {
        Err(ledger::verify::VerifyError::Mismatch(m)) => {
            assert_eq!(
                m,
                "the snapshot differs from the state a replay of the journal reaches at record 3"
            )
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn the_hash_chain_links_every_record_to_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3).shutdown().unwrap();
    let mut previous = [0u8; 32];
    ledger::journal::read_records(
        &dir.path().join(JOURNAL_FILE),
        Default::default(),
        |h, _| {
            assert_eq!(h.prev_hash, previous);
            previous = h.hash;
            Ok(())
        },
    )
    .unwrap();
    let report = ledger::verify::verify(dir.path()).unwrap();
    assert_eq!(report.head_hash, ledger::journal::hex(&previous));
}

#[test]
fn snapshots_are_taken_as_the_journal_grows() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::open(EngineConfig {
        snapshot_after_bytes: 1,
        ..config(dir.path())
    })
    .unwrap();
    runtime().block_on(async {
        engine.create_accounts(accounts(1..=3)).await.unwrap();
        engine.create_transfers(transfers(10..20)).await.unwrap();
        // Reads are answered after the group that carried the write is durable.
        assert_eq!(engine.query(|l| l.transfer_count()).await.unwrap(), 10);
    });
    // Snapshots are written in the background while the engine serves.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let seq = loop {
        if let Ok(Some((_, position, _))) = ledger::snapshot::load(dir.path()) {
            break position.seq;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot was written while serving"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(seq >= 1);
    engine.shutdown().unwrap();
    let (_, position, _) = ledger::snapshot::load(dir.path()).unwrap().unwrap();
    assert_eq!(position.seq, 2);
}

#[test]
fn a_snapshot_spanning_many_sealed_chunks_round_trips() {
    let mut l = Ledger::new();
    l.create_accounts(1, &accounts(1..=3));
    let total: u128 = 140_000;
    for start in (0..total).step_by(8190) {
        let end = (start + 8190).min(total);
        let results = l.create_transfers(2, &transfers(10 + start..10 + end));
        assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
    }
    let dir = tempfile::tempdir().unwrap();
    let crcs = ledger::snapshot::write(dir.path(), &l, Default::default()).unwrap();
    assert_eq!(crcs.len(), 2, "two full chunks of 65,536");
    let (loaded, _, loaded_crcs) = ledger::snapshot::load(dir.path()).unwrap().unwrap();
    assert_eq!(loaded_crcs, crcs);
    let encode = |l: &Ledger| {
        let mut out = Vec::new();
        ledger::snapshot::encode_body(l, &mut out).unwrap();
        out
    };
    assert_eq!(encode(&loaded), encode(&l));
    assert_eq!(loaded.transfer_count(), total as usize);
    for id in [10, 65_545, 65_546, 65_547, 131_081, 131_082, 140_009] {
        assert_eq!(
            loaded.transfer(id).unwrap().transfer,
            l.transfer(id).unwrap().transfer,
            "transfer {id}"
        );
    }
    let page = loaded
        .account_transfers(
            2,
            PageQuery {
                limit: 8190,
                ..PageQuery::default()
            },
        )
        .unwrap();
    assert_eq!(page.items.len(), 8190);
    loaded.check_invariants().unwrap();
}

#[test]
fn a_damaged_chunk_file_refuses_to_start_and_is_named() {
    let mut l = Ledger::new();
    l.create_accounts(1, &accounts(1..=3));
    for start in (0..70_000u128).step_by(8190) {
        l.create_transfers(2, &transfers(10 + start..10 + (start + 8190).min(70_000)));
    }
    let dir = tempfile::tempdir().unwrap();
    ledger::snapshot::write(dir.path(), &l, Default::default()).unwrap();
    let chunk = dir.path().join("chunks").join("chunk-0000000000.gt");
    flip_byte(&chunk, 5000);
    match ledger::snapshot::load(dir.path()).err() {
        Some(JournalError::Corrupt { path, reason, .. }) => {
            assert_eq!(path, chunk);
            assert_eq!(reason, "chunk 0 fails its checksum");
        }
        other => panic!(
            "expected corruption, got {:?}",
            other.map(|e| e.to_string())
        ),
    }
    std::fs::remove_file(&chunk).unwrap();
    assert!(matches!(
        ledger::snapshot::load(dir.path()),
        Err(JournalError::Corrupt { .. })
    ));
}

#[test]
fn a_second_engine_on_the_same_data_folder_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = open(dir.path()).unwrap();
    match open(dir.path()).err() {
        Some(error @ JournalError::InUse { .. }) => {
            assert!(
                error.to_string().contains("is in use by another process"),
                "{error}"
            );
        }
        other => panic!(
            "expected the folder to be in use, got {:?}",
            other.map(|e| e.to_string())
        ),
    }
    first.shutdown().unwrap();
    let (again, _) = open(dir.path()).unwrap();
    again.shutdown().unwrap();
}

mod record_stream {
    use ledger::journal::{JournalEncoder, Position, RecordKind, RecordStream};
    use proptest::prelude::*;

    /// Encodes `batches` record by record and returns the bytes and each record's end.
    fn journal(batches: &[Vec<u8>]) -> (Vec<u8>, Vec<u64>) {
        let mut encoder = JournalEncoder::new(Position::default());
        let mut ends = Vec::new();
        for (i, payload) in batches.iter().enumerate() {
            encoder.append(RecordKind::Expire, i as u64, |out| {
                out.extend_from_slice(payload)
            });
            ends.push(encoder.position().offset);
        }
        (encoder.take(Vec::new()), ends)
    }

    proptest! {
        /// However the journal is cut into pieces (the replicated journal's messages), the
        /// reader sees exactly the records a whole-file read sees, in order; a cut-off tail
        /// replaced from the last record boundary (a new leader's seal) loses only that tail.
        #[test]
        fn pieces_give_the_same_records_wherever_they_are_cut(
            sizes in proptest::collection::vec(0usize..600, 1..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
            torn in any::<prop::sample::Index>(),
        ) {
            let batches: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| vec![i as u8; *n]).collect();
            let (bytes, ends) = journal(&batches);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            points.extend([0, bytes.len()]);
            points.sort_unstable();
            points.dedup();
            let mut reader = RecordStream::new("test", Position::default());
            let mut seen = Vec::new();
            for w in points.windows(2) {
                reader.push(w[0] as u64, &bytes[w[0]..w[1]], |h, p| {
                    seen.push((h.seq, p.to_vec()));
                    Ok(())
                }).unwrap();
            }
            let expected: Vec<(u64, Vec<u8>)> = batches.iter().enumerate().map(|(i, b)| (i as u64 + 1, b.clone())).collect();
            prop_assert_eq!(&seen, &expected);
            prop_assert_eq!(reader.position().offset, *ends.last().unwrap());
            prop_assert_eq!(reader.partial_bytes(), 0);

            // A dead leader's partial record, then a seal at the last boundary: cut off.
            let cut = torn.index(bytes.len());
            let boundary = ends.iter().rev().find(|e| **e as usize <= cut).copied().unwrap_or(0);
            let mut reader = RecordStream::new("test", Position::default());
            let mut count = 0;
            reader.push(0, &bytes[..cut], |_, _| { count += 1; Ok(()) }).unwrap();
            reader.push(boundary, &[], |_, _| Ok(())).unwrap();
            prop_assert_eq!(reader.partial_bytes(), 0);
            prop_assert_eq!(reader.position().offset, boundary);
            prop_assert_eq!(count, ends.iter().filter(|e| **e <= boundary).count());
        }
    }
}
