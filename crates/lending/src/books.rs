//! Lending's chart of accounts on the ledger, pure: which ledger account each of a loan's
//! [`Book`]s is, and the ledger transfers that carry a servicing step's [`Posting`]s.
//!
//! Every loan has four receivable accounts of its own (principal, interest, late interest,
//! fees), flagged so their credits can never exceed their debits: the ledger itself refuses
//! to collect more than is receivable. The bank's income, credit-loss and recovery accounts are
//! shared by every loan. `Funding` is the other side of money in and out — the customer's
//! deposit account for a disbursement or a repayment from it, the bank's cash otherwise — and
//! the caller names it per step.
//!
//! Ids are derived ([`kernel::derived_id`]): an account's from the loan and the book, a
//! transfer's from the loan, the step and the posting's place in it, so a step retried after
//! a crash asks for the same transfers and the ledger answers `exists`.

use crate::servicing::{Book, Movement, Posting};
use ledger::{Account, AccountEvent, AccountFlags, Transfer, TransferEvent, TransferFlags};

pub use kernel::LEDGER_KRW;

/// The bank's lending accounts (ids beside deposits' `4_100_000_00x`).
pub mod bank {
    /// Interest income.
    pub const INTEREST_INCOME_ID: u128 = 4_100_000_101;
    /// Late interest income.
    pub const LATE_INTEREST_INCOME_ID: u128 = 4_100_000_102;
    /// Fee income.
    pub const FEE_INCOME_ID: u128 = 4_100_000_103;
    /// Credit losses (written-off receivables; an expense).
    pub const CREDIT_LOSS_ID: u128 = 4_100_000_104;
    /// Recoveries of written-off loans (income).
    pub const RECOVERY_ID: u128 = 4_100_000_105;
}

/// Account codes (the chart of accounts).
pub mod account_code {
    /// A loan's principal receivable (an asset).
    pub const PRINCIPAL: u16 = 1201;
    /// A loan's interest receivable.
    pub const INTEREST: u16 = 1202;
    /// A loan's late interest receivable.
    pub const LATE_INTEREST: u16 = 1203;
    /// A loan's fees receivable.
    pub const FEES: u16 = 1204;
    /// Interest income.
    pub const INTEREST_INCOME: u16 = 4101;
    /// Late interest income.
    pub const LATE_INTEREST_INCOME: u16 = 4102;
    /// Fee income.
    pub const FEE_INCOME: u16 = 4103;
    /// Recoveries.
    pub const RECOVERY: u16 = 4104;
    /// Credit losses.
    pub const CREDIT_LOSS: u16 = 5201;
}

/// Transfer codes: why money moved (lending's range, beside deposits' single digits).
pub fn transfer_code(movement: Movement) -> u16 {
    match movement {
        Movement::Disbursement => 101,
        Movement::Accrual => 102,
        Movement::LateAccrual => 103,
        Movement::Repayment => 104,
        Movement::Prepayment => 105,
        Movement::PrepaymentFee => 106,
        Movement::Capitalisation => 107,
        Movement::WriteOff => 108,
        Movement::Recovery => 109,
    }
}

/// A loan's own books, in the order [`crate::servicing::Loan::receivables`] lists them.
pub const LOAN_BOOKS: [Book; 4] = [
    Book::Principal,
    Book::Interest,
    Book::LateInterest,
    Book::Fees,
];

/// The ledger account of `book` for the loan `loan_id`; `funding` for [`Book::Funding`].
pub fn account_id(loan_id: &str, book: Book, funding: u128) -> u128 {
    match book {
        Book::Principal => kernel::derived_id("lending", "account", loan_id, "principal"),
        Book::Interest => kernel::derived_id("lending", "account", loan_id, "interest"),
        Book::LateInterest => kernel::derived_id("lending", "account", loan_id, "late_interest"),
        Book::Fees => kernel::derived_id("lending", "account", loan_id, "fees"),
        Book::Funding => funding,
        Book::InterestIncome => bank::INTEREST_INCOME_ID,
        Book::LateInterestIncome => bank::LATE_INTEREST_INCOME_ID,
        Book::FeeIncome => bank::FEE_INCOME_ID,
        Book::CreditLoss => bank::CREDIT_LOSS_ID,
        Book::Recovery => bank::RECOVERY_ID,
    }
}

/// The bank's lending accounts, to create once (the ledger answers `exists` after that).
pub fn bank_accounts() -> Vec<AccountEvent> {
    [
        (bank::INTEREST_INCOME_ID, account_code::INTEREST_INCOME),
        (
            bank::LATE_INTEREST_INCOME_ID,
            account_code::LATE_INTEREST_INCOME,
        ),
        (bank::FEE_INCOME_ID, account_code::FEE_INCOME),
        (bank::CREDIT_LOSS_ID, account_code::CREDIT_LOSS),
        (bank::RECOVERY_ID, account_code::RECOVERY),
    ]
    .into_iter()
    .map(|(id, code)| account(id, code, AccountFlags::default(), 0))
    .collect()
}

/// The loan's four receivable accounts, created together (a linked chain); `customer` goes
/// in `user_data_128`.
pub fn loan_accounts(loan_id: &str, customer: u128) -> Vec<AccountEvent> {
    let codes = [
        account_code::PRINCIPAL,
        account_code::INTEREST,
        account_code::LATE_INTEREST,
        account_code::FEES,
    ];
    LOAN_BOOKS
        .iter()
        .zip(codes)
        .enumerate()
        .map(|(i, (&book, code))| {
            let mut flags = AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS | AccountFlags::HISTORY;
            if i + 1 < LOAN_BOOKS.len() {
                flags = flags | AccountFlags::LINKED;
            }
            account(account_id(loan_id, book, 0), code, flags, customer)
        })
        .collect()
}

fn account(id: u128, code: u16, flags: AccountFlags, user_data_128: u128) -> AccountEvent {
    AccountEvent {
        account: Account {
            id,
            ledger: LEDGER_KRW,
            code,
            flags,
            user_data_128,
            ..Account::default()
        },
        metadata: None,
    }
}

/// The transfers for the postings of one step of the loan `loan_id` (`step` names it: a
/// business date's end of day, a repayment's idempotency key), linked so they commit
/// together or not at all.
pub fn transfers(
    loan_id: &str,
    step: &str,
    postings: &[Posting],
    funding: u128,
) -> Vec<TransferEvent> {
    postings
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let flags = if i + 1 < postings.len() {
                TransferFlags::LINKED
            } else {
                TransferFlags::default()
            };
            TransferEvent {
                transfer: Transfer {
                    id: kernel::derived_id("lending", step, loan_id, i),
                    debit_account_id: account_id(loan_id, p.debit, funding),
                    credit_account_id: account_id(loan_id, p.credit, funding),
                    amount: p.amount,
                    ledger: LEDGER_KRW,
                    code: transfer_code(p.movement),
                    flags,
                    ..Transfer::default()
                },
                metadata: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loan_book_is_its_own_account_and_the_bank_books_are_shared() {
        let a: Vec<u128> = LOAN_BOOKS.iter().map(|&b| account_id("a", b, 7)).collect();
        let b: Vec<u128> = LOAN_BOOKS.iter().map(|&b| account_id("b", b, 7)).collect();
        let all: std::collections::BTreeSet<u128> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 8);
        assert_eq!(account_id("a", Book::Funding, 7), 7);
        assert_eq!(
            account_id("a", Book::InterestIncome, 7),
            account_id("b", Book::InterestIncome, 9)
        );
        let events = loan_accounts("a", 0);
        assert_eq!(events.iter().map(|e| e.account.id).collect::<Vec<_>>(), a);
        assert!(
            events[..3]
                .iter()
                .all(|e| e.account.flags.contains(AccountFlags::LINKED))
        );
        assert!(!events[3].account.flags.contains(AccountFlags::LINKED));
    }

    #[test]
    fn a_steps_transfers_are_linked_and_their_ids_repeat_for_the_same_step() {
        let p = |amount| Posting {
            debit: Book::Funding,
            credit: Book::Interest,
            amount,
            movement: Movement::Repayment,
        };
        let first = transfers("a", "repay/k1", &[p(1), p(2)], 5);
        assert_eq!(first, transfers("a", "repay/k1", &[p(1), p(2)], 5));
        assert_ne!(
            first[0].transfer.id,
            transfers("a", "repay/k2", &[p(1)], 5)[0].transfer.id
        );
        assert!(first[0].transfer.flags.contains(TransferFlags::LINKED));
        assert!(!first[1].transfer.flags.contains(TransferFlags::LINKED));
        assert_eq!(first[0].transfer.debit_account_id, 5);
        assert_eq!(first[1].transfer.code, 104);
    }
}
