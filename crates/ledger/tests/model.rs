//! Model-based property test: random batches against a deliberately naive reference ledger.
//!
//! The model keeps everything in plain vectors, searches them linearly, and makes linked chains
//! atomic by cloning itself at the start of a chain and restoring the clone if the chain fails.
//! It is written from the rules in docs/LEDGER.md, not from the engine's code (closing
//! transfers included: they close accounts, a void or an expiry reopens them). After every
//! batch the result codes and every balance must agree, and the books must balance; at the end a
//! replay of the same batches must rebuild byte-identical state, and a snapshot must round-trip.

use ledger::*;
use proptest::prelude::*;

const START: u64 = 1_700_000_000_000_000_000;
const TICK: u64 = 1_234_567_891;
const SECOND: u64 = 1_000_000_000;

#[derive(Clone, Debug)]
struct MAccount {
    id: u128,
    ledger: u32,
    flags: AccountFlags,
    dp: u128,
    dpo: u128,
    cp: u128,
    cpo: u128,
}

#[derive(Clone, Debug)]
struct MTransfer {
    t: Transfer,
    status: Option<PendingStatus>,
    deadline: Option<u64>,
}

#[derive(Clone, Debug, Default)]
struct Model {
    accounts: Vec<MAccount>,
    transfers: Vec<MTransfer>,
    last_ts: u64,
}

impl Model {
    fn account(&mut self, id: u128) -> Option<&mut MAccount> {
        self.accounts.iter_mut().find(|a| a.id == id)
    }

    fn find(&self, id: u128) -> Option<usize> {
        self.transfers.iter().position(|x| x.t.id == id)
    }

    fn release(&mut self, i: usize) {
        let p = self.transfers[i].t;
        self.account(p.debit_account_id).unwrap().dp -= p.amount;
        self.account(p.credit_account_id).unwrap().cp -= p.amount;
    }

    /// Closes (or reopens) the accounts a closing transfer names.
    fn set_closed(&mut self, t: &Transfer, closed: bool) {
        for (flag, id) in [
            (TransferFlags::CLOSING_DEBIT, t.debit_account_id),
            (TransferFlags::CLOSING_CREDIT, t.credit_account_id),
        ] {
            if t.flags.contains(flag) {
                let a = self.account(id).unwrap();
                a.flags = if closed {
                    a.flags | AccountFlags::CLOSED
                } else {
                    AccountFlags(a.flags.0 & !AccountFlags::CLOSED.0)
                };
            }
        }
    }

    /// The ledger's timeout pulse: expire what is due, as a batch would first.
    fn pulse(&mut self, now: u64) {
        let ts = self.expire(now.max(self.last_ts + 1));
        self.last_ts = self.last_ts.max(ts - 1);
    }

    /// Expires everything due at `base`, each expiry taking a timestamp from `base` on; returns
    /// the next free timestamp.
    fn expire(&mut self, base: u64) -> u64 {
        let mut ts = base;
        let mut due: Vec<(u64, u128, usize)> = self
            .transfers
            .iter()
            .enumerate()
            .filter(|(_, x)| {
                x.status == Some(PendingStatus::Pending) && x.deadline.is_some_and(|d| d <= base)
            })
            .map(|(i, x)| (x.deadline.unwrap(), x.t.id, i))
            .collect();
        due.sort();
        for (_, _, i) in due {
            self.release(i);
            let p = self.transfers[i].t;
            self.set_closed(&p, false);
            self.transfers[i].status = Some(PendingStatus::Expired);
            ts += 1;
        }
        ts
    }

    fn batch(&mut self, now: u64, events: &[Transfer]) -> Vec<CreateTransferResult> {
        use CreateTransferResult as R;
        let mut ts = self.expire(now.max(self.last_ts + 1));
        let mut results = Vec::new();
        let mut i = 0;
        while i < events.len() {
            // The chain: events up to and including the first without `linked`.
            let mut end = i;
            while end < events.len() && events[end].flags.contains(TransferFlags::LINKED) {
                end += 1;
            }
            let open = end == events.len();
            let end = end.min(events.len() - 1);
            let saved = self.clone();
            let mut chain = Vec::new();
            let mut failed = None;
            for (k, e) in events[i..=end].iter().enumerate() {
                let r = self.one(ts, e);
                ts += 1;
                chain.push(r);
                if r != R::Ok && r != R::Exists {
                    failed = Some(k);
                    break;
                }
            }
            let single = i == end && !open;
            if !single && (failed.is_some() || open) {
                *self = saved;
                let mut codes = vec![R::LinkedEventFailed; end - i + 1];
                if let Some(k) = failed {
                    codes[k] = chain[k];
                }
                if open {
                    codes[end - i] = R::LinkedEventChainOpen;
                }
                results.extend(codes);
            } else {
                results.extend(chain);
            }
            i = end + 1;
        }
        self.last_ts = self.last_ts.max(ts - 1);
        results
    }

    fn one(&mut self, ts: u64, t: &Transfer) -> CreateTransferResult {
        use CreateTransferResult as R;
        let f = t.flags;
        let post = f.contains(TransferFlags::POST_PENDING_TRANSFER);
        let void = f.contains(TransferFlags::VOID_PENDING_TRANSFER);
        let pending = f.contains(TransferFlags::PENDING);
        let balancing = f.contains(TransferFlags::BALANCING_DEBIT)
            || f.contains(TransferFlags::BALANCING_CREDIT);
        if t.id == 0 {
            return R::IdMustNotBeZero;
        }
        if let Some(i) = self.find(t.id) {
            let e = self.transfers[i].t;
            let settle = post || void;
            let same = |a: u128, b: u128| a == b || (settle && a == 0);
            let amount_same = if settle && t.amount == 0 {
                self.find(e.pending_id).map(|p| self.transfers[p].t.amount) == Some(e.amount)
            } else if balancing {
                t.amount >= e.amount
            } else {
                t.amount == e.amount
            };
            return if t.flags != e.flags {
                R::ExistsWithDifferentFlags
            } else if !same(t.debit_account_id, e.debit_account_id) {
                R::ExistsWithDifferentDebitAccountId
            } else if !same(t.credit_account_id, e.credit_account_id) {
                R::ExistsWithDifferentCreditAccountId
            } else if !amount_same {
                R::ExistsWithDifferentAmount
            } else if t.pending_id != e.pending_id {
                R::ExistsWithDifferentPendingId
            } else if t.timeout != e.timeout {
                R::ExistsWithDifferentTimeout
            } else if !same(u128::from(t.code), u128::from(e.code)) {
                R::ExistsWithDifferentCode
            } else if !same(u128::from(t.ledger), u128::from(e.ledger)) {
                R::ExistsWithDifferentLedger
            } else {
                R::Exists
            };
        }
        if [pending, post, void].iter().filter(|b| **b).count() > 1 || ((post || void) && balancing)
        {
            return R::FlagsAreMutuallyExclusive;
        }
        let closing =
            f.contains(TransferFlags::CLOSING_DEBIT) || f.contains(TransferFlags::CLOSING_CREDIT);
        if closing && !pending {
            return R::ClosingTransferMustBePending;
        }
        if post || void {
            if t.pending_id == 0 {
                return R::PendingIdMustNotBeZero;
            }
            if t.pending_id == t.id {
                return R::PendingIdMustBeDifferent;
            }
            if t.timeout != 0 {
                return R::TimeoutReservedForPendingTransfer;
            }
            let Some(pi) = self.find(t.pending_id) else {
                return R::PendingTransferNotFound;
            };
            let p = self.transfers[pi].clone();
            if !p.t.flags.contains(TransferFlags::PENDING) {
                return R::PendingTransferNotPending;
            }
            if t.debit_account_id != 0 && t.debit_account_id != p.t.debit_account_id {
                return R::PendingTransferHasDifferentDebitAccountId;
            }
            if t.credit_account_id != 0 && t.credit_account_id != p.t.credit_account_id {
                return R::PendingTransferHasDifferentCreditAccountId;
            }
            if t.ledger != 0 && t.ledger != p.t.ledger {
                return R::PendingTransferHasDifferentLedger;
            }
            if t.code != 0 && t.code != p.t.code {
                return R::PendingTransferHasDifferentCode;
            }
            if post && t.amount > p.t.amount {
                return R::ExceedsPendingTransferAmount;
            }
            if void && t.amount != 0 {
                return R::VoidAmountMustBeZero;
            }
            match p.status {
                Some(PendingStatus::Posted) => return R::PendingTransferAlreadyPosted,
                Some(PendingStatus::Voided) => return R::PendingTransferAlreadyVoided,
                Some(PendingStatus::Expired) => return R::PendingTransferExpired,
                _ => {}
            }
            if p.deadline.is_some_and(|d| d <= ts) {
                return R::PendingTransferExpired;
            }
            let amount = if void || t.amount == 0 {
                p.t.amount
            } else {
                t.amount
            };
            self.release(pi);
            if void {
                self.set_closed(&p.t, false);
            }
            if post {
                self.account(p.t.debit_account_id).unwrap().dpo += amount;
                self.account(p.t.credit_account_id).unwrap().cpo += amount;
            }
            self.transfers[pi].status = Some(if post {
                PendingStatus::Posted
            } else {
                PendingStatus::Voided
            });
            let stored = Transfer {
                debit_account_id: p.t.debit_account_id,
                credit_account_id: p.t.credit_account_id,
                ledger: p.t.ledger,
                code: p.t.code,
                amount,
                timestamp: ts,
                ..*t
            };
            self.transfers.push(MTransfer {
                t: stored,
                status: None,
                deadline: None,
            });
            return R::Ok;
        }
        if t.pending_id != 0 {
            return R::PendingIdMustBeZero;
        }
        if t.timeout != 0 && !pending {
            return R::TimeoutReservedForPendingTransfer;
        }
        if t.debit_account_id == 0 {
            return R::DebitAccountIdMustNotBeZero;
        }
        if t.credit_account_id == 0 {
            return R::CreditAccountIdMustNotBeZero;
        }
        if t.debit_account_id == t.credit_account_id {
            return R::AccountsMustBeDifferent;
        }
        if t.amount == 0 && !closing {
            return R::AmountMustNotBeZero;
        }
        let Some(dr) = self
            .accounts
            .iter()
            .find(|a| a.id == t.debit_account_id)
            .cloned()
        else {
            return R::DebitAccountNotFound;
        };
        let Some(cr) = self
            .accounts
            .iter()
            .find(|a| a.id == t.credit_account_id)
            .cloned()
        else {
            return R::CreditAccountNotFound;
        };
        if dr.ledger != cr.ledger {
            return R::AccountsMustHaveTheSameLedger;
        }
        if t.ledger != dr.ledger {
            return R::TransferMustHaveTheSameLedgerAsAccounts;
        }
        if dr.flags.contains(AccountFlags::CLOSED) {
            return R::DebitAccountAlreadyClosed;
        }
        if cr.flags.contains(AccountFlags::CLOSED) {
            return R::CreditAccountAlreadyClosed;
        }
        let mut amount = t.amount;
        if f.contains(TransferFlags::BALANCING_DEBIT) {
            amount = amount.min(dr.cpo.saturating_sub(dr.dp + dr.dpo));
        }
        if f.contains(TransferFlags::BALANCING_CREDIT) {
            amount = amount.min(cr.dpo.saturating_sub(cr.cp + cr.cpo));
        }
        if dr
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && dr.dp + dr.dpo + amount > dr.cpo
        {
            return R::ExceedsCredits;
        }
        if cr
            .flags
            .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
            && cr.cp + cr.cpo + amount > cr.dpo
        {
            return R::ExceedsDebits;
        }
        let d = self.account(dr.id).unwrap();
        if pending {
            d.dp += amount
        } else {
            d.dpo += amount
        }
        let c = self.account(cr.id).unwrap();
        if pending {
            c.cp += amount
        } else {
            c.cpo += amount
        }
        self.set_closed(t, true);
        self.transfers.push(MTransfer {
            t: Transfer {
                amount,
                timestamp: ts,
                ..*t
            },
            status: pending.then_some(PendingStatus::Pending),
            deadline: (pending && t.timeout != 0).then(|| ts + u64::from(t.timeout) * SECOND),
        });
        R::Ok
    }
}

fn account_flags() -> impl Strategy<Value = AccountFlags> {
    prop_oneof![
        4 => Just(AccountFlags::default()),
        2 => Just(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        2 => Just(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
        2 => Just(AccountFlags::HISTORY),
        1 => Just(AccountFlags::CLOSED),
    ]
}

fn transfer() -> impl Strategy<Value = Transfer> {
    (
        0u8..9,
        0u128..=30,
        0u128..=8,
        0u128..=8,
        0u128..=60,
        0u128..=30,
        0u32..=2,
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(kind, id, debit, credit, amount, pending_id, timeout, linked, name_accounts)| {
                let mut flags = match kind {
                    0 => TransferFlags::default(),
                    1 => TransferFlags::PENDING,
                    2 => TransferFlags::POST_PENDING_TRANSFER,
                    3 => TransferFlags::VOID_PENDING_TRANSFER,
                    4 => TransferFlags::BALANCING_DEBIT,
                    5 => TransferFlags::BALANCING_CREDIT,
                    6 => TransferFlags::PENDING | TransferFlags::CLOSING_DEBIT,
                    7 => TransferFlags::PENDING | TransferFlags::CLOSING_CREDIT,
                    // Not pending: refused.
                    _ => TransferFlags::CLOSING_DEBIT,
                };
                if linked {
                    flags = flags | TransferFlags::LINKED;
                }
                let settle = kind == 2 || kind == 3;
                Transfer {
                    id,
                    debit_account_id: if settle && !name_accounts { 0 } else { debit },
                    credit_account_id: if settle && !name_accounts { 0 } else { credit },
                    amount: if kind == 3 && !name_accounts {
                        0
                    } else {
                        amount
                    },
                    pending_id: if settle { pending_id } else { 0 },
                    timeout: if matches!(kind, 1 | 6 | 7) {
                        timeout
                    } else {
                        0
                    },
                    ledger: if settle { 0 } else { 1 },
                    code: if settle { 0 } else { 1 },
                    flags,
                    ..Transfer::default()
                }
            },
        )
}

/// Batches: ticks of the clock before it, whether the timeout pulse runs first, the events.
fn batches() -> impl Strategy<Value = Vec<(u64, bool, Vec<Transfer>)>> {
    prop::collection::vec(
        (
            0u64..=2,
            prop::bool::weighted(0.3),
            prop::collection::vec(transfer(), 1..12),
        ),
        1..30,
    )
}

fn encode(l: &Ledger) -> Vec<u8> {
    let mut out = Vec::new();
    ledger::snapshot::encode_body(l, &mut out).unwrap();
    out
}

fn run(
    flags: &[AccountFlags],
    batches: &[(u64, bool, Vec<Transfer>)],
) -> Result<Ledger, TestCaseError> {
    let mut real = Ledger::new();
    let mut model = Model::default();
    let mut events: Vec<AccountEvent> = flags
        .iter()
        .enumerate()
        .map(|(i, &flags)| AccountEvent {
            account: Account {
                id: i as u128 + 1,
                ledger: 1,
                code: 1,
                flags,
                ..Account::default()
            },
            metadata: None,
        })
        .collect();
    events[6].account.ledger = 2;
    let results = real.create_accounts(START, &events);
    prop_assert!(results.iter().all(|r| *r == CreateAccountResult::Ok));
    model.last_ts = real.last_timestamp();
    for e in &events {
        model.accounts.push(MAccount {
            id: e.account.id,
            ledger: e.account.ledger,
            flags: e.account.flags,
            dp: 0,
            dpo: 0,
            cp: 0,
            cpo: 0,
        });
    }
    let mut now = START;
    for (ticks, pulse, batch) in batches {
        now += ticks * TICK;
        if *pulse {
            real.expire_pending(now);
            model.pulse(now);
            prop_assert_eq!(real.last_timestamp(), model.last_ts);
        }
        let events: Vec<TransferEvent> = batch
            .iter()
            .map(|t| TransferEvent {
                transfer: *t,
                metadata: None,
            })
            .collect();
        let got = real.create_transfers(now, &events);
        let want = model.batch(now, batch);
        prop_assert_eq!(&got, &want, "batch {:?}", batch);
        for a in &model.accounts {
            let r = real.account(a.id).unwrap().0;
            prop_assert_eq!(
                (
                    r.debits_pending,
                    r.debits_posted,
                    r.credits_pending,
                    r.credits_posted
                ),
                (a.dp, a.dpo, a.cp, a.cpo),
                "account {}",
                a.id
            );
            prop_assert_eq!(r.flags, a.flags, "account {} flags (closed or open)", a.id);
        }
        prop_assert_eq!(real.transfer_count(), model.transfers.len());
        prop_assert_eq!(real.last_timestamp(), model.last_ts);
        if let Err(e) = real.check_invariants() {
            return Err(TestCaseError::fail(e));
        }
    }
    Ok(real)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ledger_agrees_with_the_naive_model(
        flags in prop::collection::vec(account_flags(), 7),
        batches in batches(),
    ) {
        let real = run(&flags, &batches)?;
        // Replaying the same batches with the same clock readings rebuilds identical state.
        let again = run(&flags, &batches)?;
        prop_assert_eq!(encode(&real), encode(&again));
        // A snapshot round-trips to identical state.
        let dir = tempfile::tempdir().unwrap();
        ledger::snapshot::write(dir.path(), &real, ledger::journal::Position::default()).unwrap();
        let (loaded, _, _) = ledger::snapshot::load(dir.path()).unwrap().unwrap();
        prop_assert_eq!(encode(&real), encode(&loaded));
    }
}
