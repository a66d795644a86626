//! One test per result code of the ledger core, and a check that every code has one.

use ledger::*;
use std::collections::BTreeSet;

const NOW: u64 = 1_000_000_000_000;

fn account(id: u128, flags: AccountFlags) -> AccountEvent {
    AccountEvent {
        account: Account {
            id,
            ledger: 1,
            code: 10,
            flags,
            ..Account::default()
        },
        metadata: None,
    }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger: 1,
        code: 1,
        ..Transfer::default()
    }
}

fn event(t: Transfer) -> TransferEvent {
    TransferEvent {
        transfer: t,
        metadata: None,
    }
}

/// A ledger with accounts 1..=4 (no flags), 5 (debits_must_not_exceed_credits),
/// 6 (credits_must_not_exceed_debits), 7 (closed), 8 (ledger 2).
fn ledger() -> Ledger {
    let mut l = Ledger::new();
    let mut events: Vec<AccountEvent> = (1..=4)
        .map(|id| account(id, AccountFlags::default()))
        .collect();
    events.push(account(5, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS));
    events.push(account(6, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS));
    events.push(account(7, AccountFlags::CLOSED));
    let mut other = account(8, AccountFlags::default());
    other.account.ledger = 2;
    events.push(other);
    let results = l.create_accounts(NOW, &events);
    assert!(
        results.iter().all(|r| *r == CreateAccountResult::Ok),
        "{results:?}"
    );
    l
}

fn names<R: Copy>(results: &[R], name: fn(R) -> &'static str) -> Vec<&'static str> {
    results.iter().map(|r| name(*r)).collect()
}

fn accounts(l: &mut Ledger, events: &[AccountEvent]) -> Vec<&'static str> {
    names(
        &l.create_accounts(NOW + 10, events),
        CreateAccountResult::name,
    )
}

fn transfers(l: &mut Ledger, now: u64, events: &[Transfer]) -> Vec<&'static str> {
    let events: Vec<TransferEvent> = events.iter().copied().map(event).collect();
    names(
        &l.create_transfers(now, &events),
        CreateTransferResult::name,
    )
}

/// Runs one scenario per account result code; returns the codes seen last in each.
fn account_scenarios() -> Vec<(&'static str, &'static str)> {
    let mut seen = Vec::new();
    let mut check = |expected: &'static str, events: Vec<AccountEvent>| {
        let mut l = ledger();
        let got = accounts(&mut l, &events);
        assert_eq!(
            got.last().copied(),
            Some(expected),
            "scenario {expected}: {got:?}"
        );
        seen.push((expected, *got.last().unwrap()));
    };
    let plain = |id| account(id, AccountFlags::default());
    check("ok", vec![plain(100)]);
    let mut linked = plain(100);
    linked.account.flags = AccountFlags::LINKED;
    check("linked_event_chain_open", vec![linked.clone()]);
    check("id_must_not_be_zero", vec![plain(0)]);
    check("id_must_not_be_int_max", vec![plain(u128::MAX)]);
    let with = |f: fn(&mut AccountEvent)| {
        let mut e = plain(1);
        f(&mut e);
        e
    };
    check(
        "exists_with_different_flags",
        vec![with(|e| e.account.flags = AccountFlags::HISTORY)],
    );
    check(
        "exists_with_different_user_data_128",
        vec![with(|e| e.account.user_data_128 = 1)],
    );
    check(
        "exists_with_different_user_data_64",
        vec![with(|e| e.account.user_data_64 = 1)],
    );
    check(
        "exists_with_different_user_data_32",
        vec![with(|e| e.account.user_data_32 = 1)],
    );
    check(
        "exists_with_different_ledger",
        vec![with(|e| e.account.ledger = 9)],
    );
    check(
        "exists_with_different_code",
        vec![with(|e| e.account.code = 9)],
    );
    check(
        "exists_with_different_metadata",
        vec![with(|e| e.metadata = Some("{}".into()))],
    );
    check("exists", vec![plain(1)]);
    let fresh = |f: fn(&mut AccountEvent)| {
        let mut e = plain(100);
        f(&mut e);
        e
    };
    check(
        "timestamp_must_be_zero",
        vec![fresh(|e| e.account.timestamp = 1)],
    );
    check(
        "flags_are_mutually_exclusive",
        vec![fresh(|e| {
            e.account.flags = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS
        })],
    );
    check(
        "debits_pending_must_be_zero",
        vec![fresh(|e| e.account.debits_pending = 1)],
    );
    check(
        "debits_posted_must_be_zero",
        vec![fresh(|e| e.account.debits_posted = 1)],
    );
    check(
        "credits_pending_must_be_zero",
        vec![fresh(|e| e.account.credits_pending = 1)],
    );
    check(
        "credits_posted_must_be_zero",
        vec![fresh(|e| e.account.credits_posted = 1)],
    );
    check(
        "ledger_must_not_be_zero",
        vec![fresh(|e| e.account.ledger = 0)],
    );
    check("code_must_not_be_zero", vec![fresh(|e| e.account.code = 0)]);
    check(
        "metadata_too_large",
        vec![fresh(|e| {
            e.metadata = Some(format!("{{\"a\":\"{}\"}}", "x".repeat(4096)).into())
        })],
    );
    // The first of a failed chain is reported linked_event_failed.
    let mut l = ledger();
    let got = accounts(&mut l, &[linked, plain(0)]);
    assert_eq!(got, ["linked_event_failed", "id_must_not_be_zero"]);
    assert!(
        l.account(100).is_none(),
        "a failed chain leaves nothing behind"
    );
    seen.push(("linked_event_failed", got[0]));
    seen
}

#[test]
fn every_account_result_code_has_a_scenario() {
    let seen: BTreeSet<&str> = account_scenarios()
        .into_iter()
        .map(|(_, got)| got)
        .collect();
    let all: BTreeSet<&str> = CreateAccountResult::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(seen, all);
}

/// Runs one scenario per transfer result code: `setup` transfers first (all must be ok), then
/// the checked batch, whose last result must be `expected`.
fn transfer_scenarios() -> Vec<&'static str> {
    let seen = std::cell::RefCell::new(Vec::new());
    let check = |expected: &'static str, setup: Vec<Transfer>, batch: Vec<Transfer>, now: u64| {
        let mut l = ledger();
        if !setup.is_empty() {
            let got = transfers(&mut l, NOW + 100, &setup);
            assert!(
                got.iter().all(|r| *r == "ok"),
                "setup of {expected}: {got:?}"
            );
        }
        let got = transfers(&mut l, now, &batch);
        assert_eq!(
            got.last().copied(),
            Some(expected),
            "scenario {expected}: {got:?}"
        );
        l.check_invariants().unwrap();
        seen.borrow_mut().push(*got.last().unwrap());
    };
    let at = NOW + 1000;
    let t = transfer;
    let with = |mut x: Transfer, f: fn(&mut Transfer)| {
        f(&mut x);
        x
    };
    let pending = |id, amount| with(t(id, 1, 2, amount), |x| x.flags = TransferFlags::PENDING);
    let post = |id, pending_id, amount| Transfer {
        id,
        pending_id,
        amount,
        flags: TransferFlags::POST_PENDING_TRANSFER,
        ..Transfer::default()
    };
    let void = |id, pending_id| Transfer {
        id,
        pending_id,
        flags: TransferFlags::VOID_PENDING_TRANSFER,
        ..Transfer::default()
    };
    let max = u128::MAX;

    check("ok", vec![], vec![t(10, 1, 2, 5)], at);
    check(
        "linked_event_chain_open",
        vec![],
        vec![with(t(10, 1, 2, 5), |x| x.flags = TransferFlags::LINKED)],
        at,
    );
    check("id_must_not_be_zero", vec![], vec![t(0, 1, 2, 5)], at);
    check("id_must_not_be_int_max", vec![], vec![t(max, 1, 2, 5)], at);
    let existing = vec![t(10, 1, 2, 5)];
    check(
        "exists_with_different_flags",
        existing.clone(),
        vec![with(t(10, 1, 2, 5), |x| x.flags = TransferFlags::PENDING)],
        at,
    );
    check(
        "exists_with_different_debit_account_id",
        existing.clone(),
        vec![t(10, 3, 2, 5)],
        at,
    );
    check(
        "exists_with_different_credit_account_id",
        existing.clone(),
        vec![t(10, 1, 3, 5)],
        at,
    );
    check(
        "exists_with_different_amount",
        existing.clone(),
        vec![t(10, 1, 2, 6)],
        at,
    );
    check(
        "exists_with_different_pending_id",
        existing.clone(),
        vec![with(t(10, 1, 2, 5), |x| x.pending_id = 3)],
        at,
    );
    check(
        "exists_with_different_user_data_128",
        existing.clone(),
        vec![with(t(10, 1, 2, 5), |x| x.user_data_128 = 3)],
        at,
    );
    check(
        "exists_with_different_user_data_64",
        existing.clone(),
        vec![with(t(10, 1, 2, 5), |x| x.user_data_64 = 3)],
        at,
    );
    check(
        "exists_with_different_user_data_32",
        existing.clone(),
        vec![with(t(10, 1, 2, 5), |x| x.user_data_32 = 3)],
        at,
    );
    check(
        "exists_with_different_timeout",
        existing.clone(),
        vec![with(t(10, 1, 2, 5), |x| x.timeout = 3)],
        at,
    );
    check(
        "exists_with_different_code",
        existing.clone(),
        vec![with(t(10, 1, 2, 5), |x| x.code = 3)],
        at,
    );
    check(
        "exists_with_different_ledger",
        existing.clone(),
        vec![with(t(10, 1, 2, 5), |x| x.ledger = 3)],
        at,
    );
    {
        let mut l = ledger();
        transfers(&mut l, at, &existing);
        let got = l.create_transfers(
            at,
            &[TransferEvent {
                transfer: t(10, 1, 2, 5),
                metadata: Some("{}".into()),
            }],
        );
        assert_eq!(got, [CreateTransferResult::ExistsWithDifferentMetadata]);
        seen.borrow_mut().push("exists_with_different_metadata");
    }
    check("exists", existing.clone(), vec![t(10, 1, 2, 5)], at);
    check(
        "timestamp_must_be_zero",
        vec![],
        vec![with(t(10, 1, 2, 5), |x| x.timestamp = 1)],
        at,
    );
    check(
        "flags_are_mutually_exclusive",
        vec![],
        vec![with(t(10, 1, 2, 5), |x| {
            x.flags = TransferFlags::PENDING | TransferFlags::VOID_PENDING_TRANSFER
        })],
        at,
    );
    {
        let mut l = ledger();
        let got = l.create_transfers(
            at,
            &[TransferEvent {
                transfer: t(10, 1, 2, 5),
                metadata: Some("x".repeat(4097).into()),
            }],
        );
        assert_eq!(got, [CreateTransferResult::MetadataTooLarge]);
        seen.borrow_mut().push("metadata_too_large");
    }
    check(
        "pending_id_must_be_zero",
        vec![],
        vec![with(t(10, 1, 2, 5), |x| x.pending_id = 3)],
        at,
    );
    check(
        "pending_id_must_not_be_zero",
        vec![],
        vec![post(10, 0, 0)],
        at,
    );
    check(
        "pending_id_must_not_be_int_max",
        vec![],
        vec![post(10, max, 0)],
        at,
    );
    check(
        "pending_id_must_be_different",
        vec![],
        vec![post(10, 10, 0)],
        at,
    );
    check(
        "timeout_reserved_for_pending_transfer",
        vec![],
        vec![with(t(10, 1, 2, 5), |x| x.timeout = 1)],
        at,
    );
    check(
        "debit_account_id_must_not_be_zero",
        vec![],
        vec![t(10, 0, 2, 5)],
        at,
    );
    check(
        "debit_account_id_must_not_be_int_max",
        vec![],
        vec![t(10, max, 2, 5)],
        at,
    );
    check(
        "credit_account_id_must_not_be_zero",
        vec![],
        vec![t(10, 1, 0, 5)],
        at,
    );
    check(
        "credit_account_id_must_not_be_int_max",
        vec![],
        vec![t(10, 1, max, 5)],
        at,
    );
    check(
        "accounts_must_be_different",
        vec![],
        vec![t(10, 1, 1, 5)],
        at,
    );
    check(
        "ledger_must_not_be_zero",
        vec![],
        vec![with(t(10, 1, 2, 5), |x| x.ledger = 0)],
        at,
    );
    check(
        "code_must_not_be_zero",
        vec![],
        vec![with(t(10, 1, 2, 5), |x| x.code = 0)],
        at,
    );
    check("amount_must_not_be_zero", vec![], vec![t(10, 1, 2, 0)], at);
    check("debit_account_not_found", vec![], vec![t(10, 99, 2, 5)], at);
    check(
        "credit_account_not_found",
        vec![],
        vec![t(10, 1, 99, 5)],
        at,
    );
    check(
        "accounts_must_have_the_same_ledger",
        vec![],
        vec![t(10, 1, 8, 5)],
        at,
    );
    check(
        "transfer_must_have_the_same_ledger_as_accounts",
        vec![],
        vec![with(t(10, 1, 2, 5), |x| x.ledger = 2)],
        at,
    );
    check(
        "debit_account_already_closed",
        vec![],
        vec![t(10, 7, 2, 5)],
        at,
    );
    check(
        "credit_account_already_closed",
        vec![],
        vec![t(10, 1, 7, 5)],
        at,
    );
    check(
        "pending_transfer_not_found",
        vec![],
        vec![post(10, 20, 0)],
        at,
    );
    check(
        "pending_transfer_not_pending",
        vec![t(20, 1, 2, 5)],
        vec![post(10, 20, 0)],
        at,
    );
    check(
        "pending_transfer_has_different_debit_account_id",
        vec![pending(20, 5)],
        vec![with(post(10, 20, 0), |x| x.debit_account_id = 3)],
        at,
    );
    check(
        "pending_transfer_has_different_credit_account_id",
        vec![pending(20, 5)],
        vec![with(post(10, 20, 0), |x| x.credit_account_id = 3)],
        at,
    );
    check(
        "pending_transfer_has_different_ledger",
        vec![pending(20, 5)],
        vec![with(post(10, 20, 0), |x| x.ledger = 2)],
        at,
    );
    check(
        "pending_transfer_has_different_code",
        vec![pending(20, 5)],
        vec![with(post(10, 20, 0), |x| x.code = 2)],
        at,
    );
    check(
        "exceeds_pending_transfer_amount",
        vec![pending(20, 5)],
        vec![post(10, 20, 6)],
        at,
    );
    check(
        "void_amount_must_be_zero",
        vec![pending(20, 5)],
        vec![with(void(10, 20), |x| x.amount = 5)],
        at,
    );
    check(
        "pending_transfer_already_posted",
        vec![pending(20, 5), post(21, 20, 0)],
        vec![post(10, 20, 0)],
        at,
    );
    check(
        "pending_transfer_already_voided",
        vec![pending(20, 5), void(21, 20)],
        vec![void(10, 20)],
        at,
    );
    check(
        "pending_transfer_expired",
        vec![with(pending(20, 5), |x| x.timeout = 1)],
        vec![post(10, 20, 0)],
        NOW + 100 + 2_000_000_000,
    );
    check(
        "overflows_debits_pending",
        vec![pending(20, max)],
        vec![with(t(10, 1, 3, 1), |x| x.flags = TransferFlags::PENDING)],
        at,
    );
    check(
        "overflows_credits_pending",
        vec![pending(20, max)],
        vec![with(t(10, 3, 2, 1), |x| x.flags = TransferFlags::PENDING)],
        at,
    );
    check(
        "overflows_debits_posted",
        vec![t(20, 1, 2, max)],
        vec![t(10, 1, 3, 1)],
        at,
    );
    check(
        "overflows_credits_posted",
        vec![t(20, 1, 2, max)],
        vec![t(10, 3, 2, 1)],
        at,
    );
    check(
        "overflows_debits",
        vec![pending(20, max)],
        vec![t(10, 1, 3, 1)],
        at,
    );
    check(
        "overflows_credits",
        vec![pending(20, max)],
        vec![t(10, 3, 2, 1)],
        at,
    );
    check(
        "overflows_timeout",
        vec![],
        vec![with(pending(10, 5), |x| x.timeout = u32::MAX)],
        u64::MAX - 1_000_000_000_000,
    );
    check("exceeds_credits", vec![], vec![t(10, 5, 2, 1)], at);
    check("exceeds_debits", vec![], vec![t(10, 1, 6, 1)], at);
    check(
        "closing_transfer_must_be_pending",
        vec![],
        vec![with(t(10, 1, 2, 0), |x| {
            x.flags = TransferFlags::CLOSING_DEBIT
        })],
        at,
    );
    {
        let mut l = ledger();
        let chain = [
            with(t(10, 1, 2, 5), |x| x.flags = TransferFlags::LINKED),
            t(11, 1, 2, 0),
            t(12, 1, 2, 7),
        ];
        let got = transfers(&mut l, at, &chain);
        assert_eq!(
            got,
            ["linked_event_failed", "amount_must_not_be_zero", "ok"]
        );
        assert!(
            l.transfer(10).is_none(),
            "a failed chain leaves nothing behind"
        );
        assert_eq!(l.account(1).unwrap().0.debits_posted, 7);
        seen.borrow_mut().push(got[0]);
    }
    seen.into_inner()
}

#[test]
fn every_transfer_result_code_has_a_scenario() {
    let seen: BTreeSet<&str> = transfer_scenarios().into_iter().collect();
    let all: BTreeSet<&str> = CreateTransferResult::ALL.iter().map(|r| r.name()).collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "result codes without a scenario: {missing:?}"
    );
    assert_eq!(seen, all);
}

#[test]
fn result_names_and_codes_are_unique_and_snake_case() {
    let names: BTreeSet<&str> = CreateTransferResult::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names.len(), CreateTransferResult::ALL.len());
    for (i, r) in CreateTransferResult::ALL.iter().enumerate() {
        assert_eq!(r.code() as usize, i);
        assert!(
            r.name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
    assert_eq!(CreateTransferResult::Ok.code(), 0);
    assert_eq!(CreateAccountResult::Ok.code(), 0);
}

#[test]
fn docs_list_every_result_code_with_its_number() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md")).unwrap();
    let section = |from: &str, to: &str| {
        let start = docs.find(from).unwrap();
        let end = docs[start..].find(to).map_or(docs.len(), |e| start + e);
        docs[start..end].to_owned()
    };
    let accounts = section("### Accounts", "### Transfers");
    for r in CreateAccountResult::ALL {
        let row = format!("| {} | `{}` |", r.code(), r.name());
        assert!(
            accounts.contains(&row),
            "docs/API.md lacks account row {row}"
        );
    }
    let transfers = section("### Transfers", "## Problems");
    for r in CreateTransferResult::ALL {
        let row = format!("| {} | `{}` |", r.code(), r.name());
        assert!(
            transfers.contains(&row),
            "docs/API.md lacks transfer row {row}"
        );
    }
}
