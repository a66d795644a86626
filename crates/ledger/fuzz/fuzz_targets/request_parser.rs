//! The API's request parsers on arbitrary bodies, and whatever parses applied to a ledger: a
//! problem or result codes, never a panic, and the books always balance.

#![no_main]

use ledger::{Account, AccountEvent, Ledger};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut ledger = Ledger::new();
    let accounts: Vec<AccountEvent> = (1..=4)
        .map(|id| AccountEvent {
            account: Account {
                id,
                ledger: 1,
                code: 1,
                flags: ledger::AccountFlags(if id == 2 { 2 } else { 8 }),
                ..Account::default()
            },
            metadata: None,
        })
        .collect();
    ledger.create_accounts(1, &accounts);
    for content_type in ["application/json", "application/octet-stream"] {
        if let Ok((_, events)) = ledger::api::parse_accounts(content_type, data) {
            ledger.create_accounts(2, &events);
        }
        if let Ok((_, events)) = ledger::api::parse_transfers(content_type, data) {
            ledger.create_transfers(3, &events);
        }
    }
    if let Err(e) = ledger.check_invariants() {
        panic!("a parsed batch broke an invariant: {e}");
    }
});
