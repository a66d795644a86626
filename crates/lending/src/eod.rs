//! The end of a business day over a whole portfolio: each loan's [`Loan::end_of_day`] on every
//! core, and the ledger transfers that carry the postings, cut into batches that never split a
//! loan's linked chain. No I/O: the caller loads the loans, posts the transfers and stores the
//! loans.

use crate::books;
use crate::servicing::{Loan, Policy, ServicingError};
use ledger::{AccountEvent, AccountFlags, TransferEvent, TransferFlags};
use time::Date;

/// Applies the end of `date` to every loan, split over `threads` threads; returns the transfers
/// to post, loan by loan in order (each loan's step is one linked chain, with the step named
/// `eod/<date>`), with `funding` as the other side of money in and out. A loan that refuses
/// (a day skipped) fails the run with its id (the first in order); other loans may have been
/// applied by then, so on an error nothing may be posted or stored: reload the loans.
pub fn close_day(
    loans: &mut [(String, Loan)],
    date: Date,
    policy: &Policy,
    funding: u128,
    threads: usize,
) -> Result<Vec<TransferEvent>, (String, ServicingError)> {
    let step = format!("eod/{date}");
    let per_thread = loans.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<Result<Vec<TransferEvent>, (String, ServicingError)>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = loans
                .chunks_mut(per_thread)
                .map(|chunk| {
                    let step = &step;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for (id, loan) in chunk.iter_mut() {
                            let postings =
                                loan.end_of_day(date, policy).map_err(|e| (id.clone(), e))?;
                            out.extend(books::transfers(id, step, &postings, funding));
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an end-of-day thread does not panic"))
                .collect()
        });
    let mut transfers = Vec::new();
    for part in parts {
        transfers.extend(part?);
    }
    Ok(transfers)
}

/// Cuts `items` into batches of at most `max`, each ending where a linked chain ends, so a
/// chain is never split over two requests. A chain longer than `max` (none is: a step has a
/// few postings) would end a batch anyway.
pub fn batches<T>(items: &[T], linked: impl Fn(&T) -> bool, max: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = (start + max.max(1)).min(items.len());
        if end < items.len() {
            // Back off to just after the last item that closes a chain.
            if let Some(close) = (start..end).rev().find(|&i| !linked(&items[i])) {
                end = close + 1;
            }
        }
        out.push(&items[start..end]);
        start = end;
    }
    out
}

/// Whether a transfer continues a linked chain.
pub fn transfer_linked(t: &TransferEvent) -> bool {
    t.transfer.flags.contains(TransferFlags::LINKED)
}

/// Whether an account event continues a linked chain.
pub fn account_linked(a: &AccountEvent) -> bool {
    a.account.flags.contains(AccountFlags::LINKED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Terms;
    use products::model::RepaymentMethod;
    use time::macros::date;

    #[test]
    fn batches_end_where_chains_end() {
        // true = linked to the next.
        let items = [true, false, true, true, false, false, true, false];
        let cut = batches(&items, |l| *l, 3);
        let sizes: Vec<usize> = cut.iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 3, 3]);
        assert!(cut.iter().all(|b| !b.last().unwrap()));
        assert_eq!(batches(&items, |l| *l, 100).len(), 1);
        assert!(batches::<bool>(&[], |l| *l, 3).is_empty());
    }

    #[test]
    fn closing_days_on_many_threads_gives_what_one_thread_gives() {
        let policy = Policy::default();
        let loans: Vec<(String, Loan)> = (0..50u32)
            .map(|i| {
                let terms = Terms {
                    principal: 1_000_000 + u128::from(i) * 10_000,
                    annual_rate: "0.07".parse().unwrap(),
                    term_months: 12,
                    method: RepaymentMethod::EqualPayment,
                    grace_months: 0,
                    start_date: date!(2026 - 01 - 01) + time::Duration::days(i64::from(i % 30)),
                };
                let loan = Loan::disburse(terms, "0".parse().unwrap()).unwrap().0;
                (format!("l{i}"), loan)
            })
            .collect();
        let mut one = loans.clone();
        let mut four = loans;
        let mut day = date!(2026 - 01 - 01);
        let mut posted = 0;
        while day <= date!(2026 - 03 - 31) {
            let a = close_day(&mut one, day, &policy, 9, 1).unwrap();
            let b = close_day(&mut four, day, &policy, 9, 4).unwrap();
            assert_eq!(a, b, "{day}");
            posted += a.len();
            day = day.next_day().unwrap();
        }
        assert_eq!(one, four);
        // Nobody paid: every loan has billed instalments past due and accrues late interest.
        assert!(
            one.iter()
                .all(|(_, l)| l.days_past_due() > 0 && l.late_interest > 0)
        );
        assert!(posted > 50 * 60);
        let skipped = close_day(&mut one, date!(2026 - 04 - 02), &policy, 9, 4);
        assert_eq!(skipped.unwrap_err().0, "l0");
    }
}
