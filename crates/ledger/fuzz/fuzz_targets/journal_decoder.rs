//! The journal reader and batch decoders on arbitrary bytes: they report damage, never panic.
//!
//! Half the inputs are framed as a valid record (right checksums and chain) around arbitrary
//! payload bytes, so the payload decoders and the replay into the ledger are reached too.

#![no_main]

use ledger::journal::{self, JournalEncoder, RecordKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ledger::codec::decode_transfer_batch(data, 8190);
    let _ = ledger::codec::decode_account_batch(data, 8190);
    let bytes = match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => {
            let kind = match mode % 6 {
                0 => RecordKind::Accounts,
                2 => RecordKind::Transfers,
                _ => RecordKind::Expire,
            };
            let mut encoder = JournalEncoder::new(Default::default());
            encoder.append(kind, 1_000, |out| out.extend_from_slice(rest));
            encoder.take(Vec::new())
        }
        _ => data.to_vec(),
    };
    let dir = std::env::temp_dir().join(format!("gureum-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(journal::JOURNAL_FILE);
    std::fs::write(&path, &bytes).expect("temp file");
    let mut ledger = ledger::Ledger::new();
    let _ = journal::read_records(&path, Default::default(), |header, payload| {
        journal::replay(&mut ledger, header, payload).map_err(|e| e.to_string())
    });
    if let Err(e) = ledger.check_invariants() {
        panic!("replay broke an invariant: {e}");
    }
});
