//! Fixtures shared by the ledger's integration tests.

use ledger::*;

/// Transfers with the given ids between accounts 1, 2 and 3 (in a ring), each of `id` units.
pub fn transfers(ids: std::ops::Range<u128>) -> Vec<TransferEvent> {
    ids.map(|id| TransferEvent {
        transfer: Transfer {
            id,
            debit_account_id: 1 + id % 3,
            credit_account_id: 1 + (id + 1) % 3,
            amount: id,
            ledger: 1,
            code: 1,
            ..Transfer::default()
        },
        metadata: None,
    })
    .collect()
}

/// Accounts with the given ids on ledger 1, keeping history, each with metadata `{"n": id}`.
pub fn accounts(ids: std::ops::RangeInclusive<u128>) -> Vec<AccountEvent> {
    ids.map(|id| AccountEvent {
        account: Account {
            id,
            ledger: 1,
            code: 1,
            flags: AccountFlags::HISTORY,
            ..Account::default()
        },
        metadata: Some(format!("{{\"n\":{id}}}").into()),
    })
    .collect()
}
