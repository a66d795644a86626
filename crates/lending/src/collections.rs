//! Collections, pure: which delinquent loans a collector works first, what the bank's
//! playbook asks for at each stage, and whether a promise to pay was kept.
//!
//! The queue holds every loan with something past due, most urgent first: the later bucket,
//! then a broken promise, then the larger amount past due, then the older arrears. A promise to
//! pay names an amount and a day; it is kept once the payments made since it was given reach the
//! amount by the end of that day, broken if they have not, and while it is pending the loan is
//! left out of the queue (the bank's policy here). How often and at what hours a borrower may be
//! contacted at all (Korea's Fair Debt Collection Act) is for the shell that records contacts.

use crate::servicing::Bucket;
use serde::{Deserialize, Serialize};
use time::Date;

/// What a collector did or should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A text message reminder.
    Sms,
    /// A phone call.
    Call,
    /// A formal letter (notice of delinquency).
    Letter,
    /// A visit.
    Visit,
    /// Referral for legal action or write-off review.
    LegalReview,
}

impl Action {
    /// The actions the playbook allows at a bucket, the first being the default one.
    pub fn playbook(bucket: Bucket) -> &'static [Action] {
        match bucket {
            Bucket::Current => &[],
            Bucket::Dpd1To29 => &[Action::Sms, Action::Call],
            Bucket::Dpd30To59 => &[Action::Call, Action::Sms, Action::Letter],
            Bucket::Dpd60To89 => &[Action::Letter, Action::Call, Action::Visit],
            Bucket::Dpd90Plus => &[Action::LegalReview, Action::Letter, Action::Visit],
        }
    }
}

/// A borrower's promise to pay `amount` by the end of `due_by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    /// The day it was given.
    #[serde(with = "crate::credit::date_string")]
    pub given_on: Date,
    /// The last day to pay.
    #[serde(with = "crate::credit::date_string")]
    pub due_by: Date,
    /// Whole won.
    pub amount: u128,
}

/// Where a promise stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromiseState {
    /// Its day has not ended and it is not met yet.
    Pending,
    /// Met by the payments since it was given.
    Kept,
    /// Its day ended without it being met.
    Broken,
}

/// Why a promise was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct PromiseError {
    /// The stable problem code.
    pub code: &'static str,
    /// What is wrong.
    pub detail: String,
}

/// The longest a promise may run: a collector may not park a loan for months.
pub const PROMISE_DAYS_MAX: i64 = 30;

impl Promise {
    /// A promise given on `today` to pay `amount` (at most `past_due`) by `due_by`.
    pub fn new(
        today: Date,
        due_by: Date,
        amount: u128,
        past_due: u128,
    ) -> Result<Promise, PromiseError> {
        let days = (due_by - today).whole_days();
        if !(0..=PROMISE_DAYS_MAX).contains(&days) {
            return Err(PromiseError {
                code: "invalid_promise_date",
                detail: format!(
                    "a promise falls due from today to {PROMISE_DAYS_MAX} days from today"
                ),
            });
        }
        if amount == 0 || amount > past_due {
            return Err(PromiseError {
                code: "invalid_promise_amount",
                detail: format!("a promise is from 1 won to the {past_due} won past due"),
            });
        }
        Ok(Promise {
            given_on: today,
            due_by,
            amount,
        })
    }

    /// Where it stands after the end of `date`, given what was paid since it was given.
    pub fn state(&self, date: Date, paid_since: u128) -> PromiseState {
        if paid_since >= self.amount {
            PromiseState::Kept
        } else if date >= self.due_by {
            PromiseState::Broken
        } else {
            PromiseState::Pending
        }
    }
}

/// A loan as the collections queue sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The loan.
    pub loan_id: String,
    /// Days past due.
    pub days_past_due: u32,
    /// Everything due now, in won.
    pub past_due: u128,
    /// The latest promise's state, if one was given.
    pub promise: Option<PromiseState>,
}

impl Case {
    /// Whether a collector should contact the borrower now (not while a promise is pending).
    pub fn workable(&self) -> bool {
        self.days_past_due > 0 && self.promise != Some(PromiseState::Pending)
    }

    /// What the playbook asks for next: its default action, or the one after the last taken.
    pub fn next_action(&self, last: Option<Action>) -> Option<Action> {
        let playbook = Action::playbook(Bucket::of(self.days_past_due));
        match last.and_then(|a| playbook.iter().position(|p| *p == a)) {
            Some(i) if i + 1 < playbook.len() => Some(playbook[i + 1]),
            _ => playbook.first().copied(),
        }
    }
}

/// The workable cases, most urgent first: later bucket, broken promise, more past due, older.
pub fn queue(mut cases: Vec<Case>) -> Vec<Case> {
    cases.retain(Case::workable);
    cases.sort_by(|a, b| {
        Bucket::of(b.days_past_due)
            .cmp(&Bucket::of(a.days_past_due))
            .then_with(|| {
                let broken = |c: &Case| c.promise == Some(PromiseState::Broken);
                broken(b).cmp(&broken(a))
            })
            .then_with(|| b.past_due.cmp(&a.past_due))
            .then_with(|| b.days_past_due.cmp(&a.days_past_due))
            .then_with(|| a.loan_id.cmp(&b.loan_id))
    });
    cases
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn case(id: &str, dpd: u32, past_due: u128, promise: Option<PromiseState>) -> Case {
        Case {
            loan_id: id.into(),
            days_past_due: dpd,
            past_due,
            promise,
        }
    }

    #[test]
    fn the_queue_puts_later_buckets_then_broken_promises_then_larger_arrears_first() {
        let q = queue(vec![
            case("a", 5, 900_000, None),
            case("b", 45, 100_000, None),
            case("c", 40, 50_000, Some(PromiseState::Broken)),
            case("d", 95, 10_000, None),
            case("e", 10, 900_000, Some(PromiseState::Pending)),
            case("f", 0, 0, None),
            case("g", 7, 900_000, None),
            case("h", 31, 100_000, Some(PromiseState::Kept)),
        ]);
        let order: Vec<&str> = q.iter().map(|c| c.loan_id.as_str()).collect();
        assert_eq!(order, ["d", "c", "b", "h", "g", "a"]);
    }

    #[test]
    fn a_promise_is_kept_by_payments_since_and_broken_when_its_day_ends() {
        let today = date!(2026 - 05 - 10);
        let p = Promise::new(today, date!(2026 - 05 - 15), 300_000, 500_000).unwrap();
        assert_eq!(
            p.state(date!(2026 - 05 - 12), 100_000),
            PromiseState::Pending
        );
        assert_eq!(p.state(date!(2026 - 05 - 14), 300_000), PromiseState::Kept);
        assert_eq!(
            p.state(date!(2026 - 05 - 15), 299_999),
            PromiseState::Broken
        );
        let refused = |due_by, amount| {
            Promise::new(today, due_by, amount, 500_000)
                .unwrap_err()
                .code
        };
        assert_eq!(refused(date!(2026 - 05 - 09), 1), "invalid_promise_date");
        assert_eq!(refused(date!(2026 - 06 - 10), 1), "invalid_promise_date");
        assert_eq!(refused(date!(2026 - 05 - 11), 0), "invalid_promise_amount");
        assert_eq!(
            refused(date!(2026 - 05 - 11), 500_001),
            "invalid_promise_amount"
        );
    }

    #[test]
    fn the_playbook_escalates_with_the_bucket_and_moves_on_after_each_action() {
        let early = case("a", 3, 1, None);
        assert_eq!(early.next_action(None), Some(Action::Sms));
        assert_eq!(early.next_action(Some(Action::Sms)), Some(Action::Call));
        assert_eq!(early.next_action(Some(Action::Call)), Some(Action::Sms));
        let late = case("b", 120, 1, None);
        assert_eq!(
            late.next_action(Some(Action::Sms)),
            Some(Action::LegalReview)
        );
        assert_eq!(case("c", 0, 0, None).next_action(None), None);
    }
}
