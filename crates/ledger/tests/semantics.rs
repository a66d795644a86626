//! The ledger core's behaviour, one rule a test.

use ledger::*;

const NOW: u64 = 1_700_000_000_000_000_000;
const SECOND: u64 = 1_000_000_000;

fn setup(flags: &[(u128, AccountFlags)]) -> Ledger {
    let mut l = Ledger::new();
    let events: Vec<AccountEvent> = flags
        .iter()
        .map(|&(id, flags)| AccountEvent {
            account: Account {
                id,
                ledger: 1,
                code: 1,
                flags,
                ..Account::default()
            },
            metadata: None,
        })
        .collect();
    assert!(
        l.create_accounts(NOW, &events)
            .iter()
            .all(|r| *r == CreateAccountResult::Ok)
    );
    l
}

fn plain(n: u128) -> Ledger {
    setup(
        &(1..=n)
            .map(|id| (id, AccountFlags::HISTORY))
            .collect::<Vec<_>>(),
    )
}

fn t(id: u128, debit: u128, credit: u128, amount: u128, flags: TransferFlags) -> TransferEvent {
    TransferEvent {
        transfer: Transfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            ledger: 1,
            code: 1,
            flags,
            ..Transfer::default()
        },
        metadata: None,
    }
}

fn settle(id: u128, pending_id: u128, amount: u128, flags: TransferFlags) -> TransferEvent {
    TransferEvent {
        transfer: Transfer {
            id,
            pending_id,
            amount,
            flags,
            ..Transfer::default()
        },
        metadata: None,
    }
}

fn results(l: &mut Ledger, now: u64, events: &[TransferEvent]) -> Vec<&'static str> {
    l.create_transfers(now, events)
        .iter()
        .map(|r| r.name())
        .collect()
}

fn balances(l: &Ledger, id: u128) -> (u128, u128, u128, u128) {
    let a = l.account(id).unwrap().0;
    (
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
    )
}

const NONE: TransferFlags = TransferFlags(0);

#[test]
fn post_pending_transfer_moves_amount_from_pending_to_posted() {
    let mut l = plain(2);
    assert_eq!(
        results(&mut l, NOW, &[t(10, 1, 2, 100, TransferFlags::PENDING)]),
        ["ok"]
    );
    assert_eq!(balances(&l, 1), (100, 0, 0, 0));
    assert_eq!(balances(&l, 2), (0, 0, 100, 0));
    assert_eq!(
        results(
            &mut l,
            NOW,
            &[settle(11, 10, 0, TransferFlags::POST_PENDING_TRANSFER)]
        ),
        ["ok"]
    );
    assert_eq!(balances(&l, 1), (0, 100, 0, 0));
    assert_eq!(balances(&l, 2), (0, 0, 0, 100));
    let post = l.transfer(11).unwrap().transfer;
    assert_eq!(
        (
            post.debit_account_id,
            post.credit_account_id,
            post.amount,
            post.ledger,
            post.code
        ),
        (1, 2, 100, 1, 1)
    );
    assert_eq!(
        l.transfer(10).unwrap().pending_status,
        Some(PendingStatus::Posted)
    );
    l.check_invariants().unwrap();
}

#[test]
fn partial_post_posts_part_and_releases_the_rest() {
    let mut l = plain(2);
    results(&mut l, NOW, &[t(10, 1, 2, 100, TransferFlags::PENDING)]);
    assert_eq!(
        results(
            &mut l,
            NOW,
            &[settle(11, 10, 30, TransferFlags::POST_PENDING_TRANSFER)]
        ),
        ["ok"]
    );
    assert_eq!(balances(&l, 1), (0, 30, 0, 0));
    assert_eq!(balances(&l, 2), (0, 0, 0, 30));
    assert_eq!(
        results(
            &mut l,
            NOW,
            &[settle(12, 10, 0, TransferFlags::POST_PENDING_TRANSFER)]
        ),
        ["pending_transfer_already_posted"]
    );
}

#[test]
fn void_releases_the_reserved_amount() {
    let mut l = plain(2);
    results(&mut l, NOW, &[t(10, 1, 2, 100, TransferFlags::PENDING)]);
    assert_eq!(
        results(
            &mut l,
            NOW,
            &[settle(11, 10, 0, TransferFlags::VOID_PENDING_TRANSFER)]
        ),
        ["ok"]
    );
    assert_eq!(balances(&l, 1), (0, 0, 0, 0));
    assert_eq!(balances(&l, 2), (0, 0, 0, 0));
    assert_eq!(l.transfer(11).unwrap().transfer.amount, 100);
    assert_eq!(
        l.transfer(10).unwrap().pending_status,
        Some(PendingStatus::Voided)
    );
}

#[test]
fn pending_transfer_expires_after_its_timeout_and_history_records_the_release() {
    let mut l = plain(2);
    let mut pending = t(10, 1, 2, 100, TransferFlags::PENDING);
    pending.transfer.timeout = 2;
    results(&mut l, NOW, &[pending]);
    l.expire_pending(NOW + SECOND);
    assert_eq!(balances(&l, 1), (100, 0, 0, 0), "not yet due");
    assert_eq!(
        l.next_expiry(),
        Some(l.transfer(10).unwrap().transfer.timestamp + 2 * SECOND)
    );
    l.expire_pending(NOW + 3 * SECOND);
    assert_eq!(balances(&l, 1), (0, 0, 0, 0));
    assert_eq!(
        l.transfer(10).unwrap().pending_status,
        Some(PendingStatus::Expired)
    );
    assert_eq!(l.next_expiry(), None);
    let history = l.account_balances(1, PageQuery::default()).unwrap().items;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].transfer_id, 10);
    assert_eq!(history[1].balances, Balances::default());
    assert_eq!(
        results(
            &mut l,
            NOW + 3 * SECOND,
            &[settle(11, 10, 0, TransferFlags::POST_PENDING_TRANSFER)]
        ),
        ["pending_transfer_expired"]
    );
}

#[test]
fn linked_chain_commits_together_and_sees_its_own_effects() {
    let mut l = plain(3);
    let chain = [
        t(10, 1, 2, 50, TransferFlags::PENDING | TransferFlags::LINKED),
        settle(
            11,
            10,
            20,
            TransferFlags::POST_PENDING_TRANSFER | TransferFlags::LINKED,
        ),
        t(12, 2, 3, 20, NONE),
    ];
    assert_eq!(results(&mut l, NOW, &chain), ["ok", "ok", "ok"]);
    assert_eq!(balances(&l, 2), (0, 20, 0, 20));
    // Retrying the committed chain answers exists for each event.
    assert_eq!(results(&mut l, NOW, &chain), ["exists", "exists", "exists"]);
}

#[test]
fn failed_chain_rolls_back_everything_including_settled_pending_transfers() {
    let mut l = plain(3);
    let mut pending = t(10, 1, 2, 50, TransferFlags::PENDING);
    pending.transfer.timeout = 60;
    results(&mut l, NOW, &[pending]);
    let before: Vec<_> = (1..=3).map(|id| balances(&l, id)).collect();
    let chain = [
        settle(
            11,
            10,
            0,
            TransferFlags::POST_PENDING_TRANSFER | TransferFlags::LINKED,
        ),
        t(12, 2, 3, 20, TransferFlags::LINKED),
        t(13, 3, 3, 20, NONE),
        t(14, 1, 3, 1, NONE),
    ];
    assert_eq!(
        results(&mut l, NOW, &chain),
        [
            "linked_event_failed",
            "linked_event_failed",
            "accounts_must_be_different",
            "ok"
        ]
    );
    assert_eq!(
        l.transfer(10).unwrap().pending_status,
        Some(PendingStatus::Pending)
    );
    assert!(l.transfer(11).is_none() && l.transfer(12).is_none());
    assert_eq!(balances(&l, 2), before[1]);
    assert_eq!(
        l.account_transfers(2, PageQuery::default())
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        l.account_balances(2, PageQuery::default())
            .unwrap()
            .items
            .len(),
        1
    );
    // The rolled-back post did not cancel the pending transfer's expiry.
    assert!(l.next_expiry().is_some());
    l.check_invariants().unwrap();
}

#[test]
fn events_after_a_failed_link_in_the_same_chain_fail_without_being_applied() {
    let mut l = plain(2);
    let chain = [
        t(10, 1, 2, 0, TransferFlags::LINKED),
        t(11, 1, 2, 5, TransferFlags::LINKED),
        t(12, 1, 2, 5, NONE),
        t(13, 1, 2, 5, TransferFlags::LINKED),
    ];
    assert_eq!(
        results(&mut l, NOW, &chain),
        [
            "amount_must_not_be_zero",
            "linked_event_failed",
            "linked_event_failed",
            "linked_event_chain_open"
        ]
    );
    assert_eq!(l.transfer_count(), 0);
}

#[test]
fn balancing_debit_moves_at_most_what_the_debit_account_holds() {
    let mut l = setup(&[
        (1, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        (2, AccountFlags::default()),
    ]);
    results(&mut l, NOW, &[t(10, 2, 1, 70, NONE)]);
    assert_eq!(
        results(
            &mut l,
            NOW,
            &[t(11, 1, 2, 100, TransferFlags::BALANCING_DEBIT)]
        ),
        ["ok"]
    );
    assert_eq!(l.transfer(11).unwrap().transfer.amount, 70);
    assert_eq!(balances(&l, 1), (0, 70, 0, 70));
    // Nothing left: a balancing transfer of zero is recorded, a plain one is refused.
    assert_eq!(
        results(
            &mut l,
            NOW,
            &[t(12, 1, 2, 5, TransferFlags::BALANCING_DEBIT)]
        ),
        ["ok"]
    );
    assert_eq!(l.transfer(12).unwrap().transfer.amount, 0);
    assert_eq!(
        results(&mut l, NOW, &[t(13, 1, 2, 5, NONE)]),
        ["exceeds_credits"]
    );
    // A retry of the balancing transfer with the same requested amount is `exists`.
    assert_eq!(
        results(
            &mut l,
            NOW,
            &[t(11, 1, 2, 100, TransferFlags::BALANCING_DEBIT)]
        ),
        ["exists"]
    );
}

#[test]
fn balancing_credit_moves_at_most_what_the_credit_account_may_take() {
    let mut l = setup(&[
        (1, AccountFlags::default()),
        (2, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
    ]);
    results(&mut l, NOW, &[t(10, 2, 1, 40, NONE)]);
    assert_eq!(
        results(
            &mut l,
            NOW,
            &[t(11, 1, 2, 100, TransferFlags::BALANCING_CREDIT)]
        ),
        ["ok"]
    );
    assert_eq!(l.transfer(11).unwrap().transfer.amount, 40);
    assert_eq!(balances(&l, 2), (0, 40, 0, 40));
}

#[test]
fn pending_amounts_count_against_limits() {
    let mut l = setup(&[
        (1, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        (2, AccountFlags::default()),
    ]);
    results(&mut l, NOW, &[t(10, 2, 1, 100, NONE)]);
    assert_eq!(
        results(&mut l, NOW, &[t(11, 1, 2, 80, TransferFlags::PENDING)]),
        ["ok"]
    );
    assert_eq!(
        results(&mut l, NOW, &[t(12, 1, 2, 30, NONE)]),
        ["exceeds_credits"]
    );
    assert_eq!(results(&mut l, NOW, &[t(13, 1, 2, 20, NONE)]), ["ok"]);
}

#[test]
fn resubmitted_post_with_omitted_fields_is_exists() {
    let mut l = plain(2);
    results(&mut l, NOW, &[t(10, 1, 2, 100, TransferFlags::PENDING)]);
    let post = settle(11, 10, 0, TransferFlags::POST_PENDING_TRANSFER);
    assert_eq!(results(&mut l, NOW, std::slice::from_ref(&post)), ["ok"]);
    assert_eq!(results(&mut l, NOW, &[post]), ["exists"]);
    let mut explicit = settle(11, 10, 100, TransferFlags::POST_PENDING_TRANSFER);
    explicit.transfer.debit_account_id = 1;
    assert_eq!(results(&mut l, NOW, &[explicit]), ["exists"]);
    let other = settle(11, 10, 99, TransferFlags::POST_PENDING_TRANSFER);
    assert_eq!(
        results(&mut l, NOW, &[other]),
        ["exists_with_different_amount"]
    );
}

#[test]
fn timestamps_are_unique_and_increasing_even_when_the_clock_goes_back() {
    let mut l = plain(2);
    results(&mut l, NOW, &[t(10, 1, 2, 1, NONE), t(11, 1, 2, 1, NONE)]);
    results(&mut l, NOW - 5 * SECOND, &[t(12, 1, 2, 1, NONE)]);
    let stamps: Vec<u64> = l.transfers().map(|t| t.timestamp).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    assert!(l.account(2).unwrap().0.timestamp < stamps[0]);
    assert_eq!(l.last_timestamp(), stamps[2]);
}

#[test]
fn account_transfers_page_forwards_and_backwards_with_a_cursor() {
    let mut l = plain(3);
    let batch: Vec<TransferEvent> = (0..5).map(|i| t(10 + i, 1, 2 + (i % 2), 1, NONE)).collect();
    results(&mut l, NOW, &batch);
    let ids = |p: &Page<TransferView>| p.items.iter().map(|v| v.transfer.id).collect::<Vec<_>>();
    let q = PageQuery {
        limit: 2,
        ..PageQuery::default()
    };
    let first = l.account_transfers(1, q).unwrap();
    assert_eq!(ids(&first), [10, 11]);
    let second = l
        .account_transfers(
            1,
            PageQuery {
                after: first.next,
                ..q
            },
        )
        .unwrap();
    assert_eq!(ids(&second), [12, 13]);
    let third = l
        .account_transfers(
            1,
            PageQuery {
                after: second.next,
                ..q
            },
        )
        .unwrap();
    assert_eq!(ids(&third), [14]);
    assert_eq!(third.next, None);
    let back = l
        .account_transfers(1, PageQuery { reverse: true, ..q })
        .unwrap();
    assert_eq!(ids(&back), [14, 13]);
    let back2 = l
        .account_transfers(
            1,
            PageQuery {
                reverse: true,
                after: back.next,
                ..q
            },
        )
        .unwrap();
    assert_eq!(ids(&back2), [12, 11]);
    assert_eq!(
        ids(&l.account_transfers(3, PageQuery::default()).unwrap()),
        [11, 13]
    );
    assert!(l.account_transfers(99, q).is_none());
}

#[test]
fn balance_history_filters_by_time_range() {
    let mut l = plain(2);
    results(&mut l, NOW, &[t(10, 1, 2, 5, NONE)]);
    results(&mut l, NOW + SECOND, &[t(11, 1, 2, 7, NONE)]);
    results(&mut l, NOW + 2 * SECOND, &[t(12, 2, 1, 3, NONE)]);
    let q = PageQuery {
        timestamp_min: NOW + SECOND,
        timestamp_max: NOW + 2 * SECOND - 1,
        ..PageQuery::default()
    };
    let page = l.account_balances(1, q).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].transfer_id, 11);
    assert_eq!(page.items[0].balances.debits_posted, 12);
}

#[test]
fn ids_in_any_order_are_found_and_a_failed_chain_forgets_them() {
    let mut l = plain(2);
    // Increasing ids, then smaller ones, then a chain mixing both that fails.
    let first: Vec<TransferEvent> = [100, 200, 300, 150, 50]
        .iter()
        .map(|&id| t(id, 1, 2, 1, NONE))
        .collect();
    assert_eq!(results(&mut l, NOW, &first), ["ok"; 5]);
    let chain = [
        t(400, 1, 2, 1, TransferFlags::LINKED),
        t(120, 1, 2, 1, TransferFlags::LINKED),
        t(500, 1, 1, 1, NONE),
    ];
    assert_eq!(
        results(&mut l, NOW, &chain),
        [
            "linked_event_failed",
            "linked_event_failed",
            "accounts_must_be_different"
        ]
    );
    for id in [100, 200, 300, 150, 50] {
        assert_eq!(l.transfer(id).unwrap().transfer.id, id);
    }
    for id in [400, 120, 500, 250, 1] {
        assert!(l.transfer(id).is_none(), "{id}");
    }
    // The forgotten ids can be used again, in either order.
    let again = [t(120, 1, 2, 1, NONE), t(400, 1, 2, 1, NONE)];
    assert_eq!(results(&mut l, NOW, &again), ["ok", "ok"]);
    assert_eq!(results(&mut l, NOW, &again), ["exists", "exists"]);
    l.check_invariants().unwrap();
}

#[test]
fn closing_debit_closes_the_account_until_the_closing_transfer_is_voided() {
    let mut l = plain(3);
    let closing = TransferFlags::PENDING | TransferFlags::CLOSING_DEBIT;
    // Moving nothing is allowed for a closing transfer, and only for one.
    assert_eq!(results(&mut l, NOW, &[t(10, 1, 2, 0, closing)]), ["ok"]);
    assert!(l.account(1).unwrap().0.flags.contains(AccountFlags::CLOSED));
    assert!(!l.account(2).unwrap().0.flags.contains(AccountFlags::CLOSED));
    assert_eq!(
        results(&mut l, NOW, &[t(11, 3, 1, 5, NONE), t(12, 1, 3, 5, NONE)]),
        [
            "credit_account_already_closed",
            "debit_account_already_closed"
        ]
    );
    assert_eq!(
        results(&mut l, NOW, &[t(13, 1, 3, 0, closing)]),
        ["debit_account_already_closed"]
    );
    // Voiding the closing transfer opens the account again.
    let mut void = t(14, 0, 0, 0, TransferFlags::VOID_PENDING_TRANSFER);
    void.transfer.pending_id = 10;
    void.transfer.ledger = 0;
    void.transfer.code = 0;
    assert_eq!(results(&mut l, NOW, &[void]), ["ok"]);
    assert!(!l.account(1).unwrap().0.flags.contains(AccountFlags::CLOSED));
    assert_eq!(results(&mut l, NOW, &[t(15, 3, 1, 5, NONE)]), ["ok"]);
    l.check_invariants().unwrap();
}

#[test]
fn closing_credit_closes_the_credit_account_and_posting_keeps_it_closed() {
    let mut l = plain(3);
    let closing = TransferFlags::PENDING | TransferFlags::CLOSING_CREDIT;
    assert_eq!(results(&mut l, NOW, &[t(10, 1, 2, 7, closing)]), ["ok"]);
    assert!(l.account(2).unwrap().0.flags.contains(AccountFlags::CLOSED));
    assert!(!l.account(1).unwrap().0.flags.contains(AccountFlags::CLOSED));
    let mut post = t(11, 0, 0, 0, TransferFlags::POST_PENDING_TRANSFER);
    post.transfer.pending_id = 10;
    assert_eq!(results(&mut l, NOW, &[post]), ["ok"]);
    assert!(l.account(2).unwrap().0.flags.contains(AccountFlags::CLOSED));
    assert_eq!(balances(&l, 2), (0, 0, 0, 7));
    assert_eq!(
        results(&mut l, NOW, &[t(12, 1, 2, 1, NONE)]),
        ["credit_account_already_closed"]
    );
}

#[test]
fn an_expired_closing_transfer_opens_the_account_again() {
    let mut l = plain(3);
    let mut closing = t(
        10,
        1,
        2,
        0,
        TransferFlags::PENDING | TransferFlags::CLOSING_DEBIT,
    );
    closing.transfer.timeout = 1;
    assert_eq!(results(&mut l, NOW, &[closing]), ["ok"]);
    assert!(l.account(1).unwrap().0.flags.contains(AccountFlags::CLOSED));
    l.expire_pending(NOW + 2 * NANOS_PER_SECOND);
    assert!(!l.account(1).unwrap().0.flags.contains(AccountFlags::CLOSED));
    assert_eq!(
        l.transfer(10).unwrap().pending_status,
        Some(PendingStatus::Expired)
    );
}

#[test]
fn a_failed_chain_undoes_a_closing_and_a_reopening() {
    let mut l = plain(3);
    let closing = TransferFlags::PENDING | TransferFlags::CLOSING_DEBIT;
    let chain = [
        t(10, 1, 2, 0, closing | TransferFlags::LINKED),
        t(11, 2, 3, 0, NONE),
    ];
    assert_eq!(
        results(&mut l, NOW, &chain),
        ["linked_event_failed", "amount_must_not_be_zero"]
    );
    assert!(!l.account(1).unwrap().0.flags.contains(AccountFlags::CLOSED));
    assert_eq!(results(&mut l, NOW, &[t(12, 1, 2, 0, closing)]), ["ok"]);
    let mut void = t(
        13,
        0,
        0,
        0,
        TransferFlags::VOID_PENDING_TRANSFER | TransferFlags::LINKED,
    );
    void.transfer.pending_id = 12;
    let chain = [void, t(14, 2, 3, 0, NONE)];
    assert_eq!(
        results(&mut l, NOW, &chain),
        ["linked_event_failed", "amount_must_not_be_zero"]
    );
    assert!(
        l.account(1).unwrap().0.flags.contains(AccountFlags::CLOSED),
        "the undone void leaves the account closed"
    );
    assert_eq!(
        l.transfer(12).unwrap().pending_status,
        Some(PendingStatus::Pending)
    );
    l.check_invariants().unwrap();
}
