//! Loan servicing, pure: a disbursed loan's state and every change to it — end of day (interest
//! accrual, late interest, instalments falling due, days past due and status), repayments in
//! the allocation order, prepayment with its fee, restructuring, write-off and recovery — each
//! returning the postings the ledger must carry, so that a loan's ledger balances always equal
//! its state. No I/O, no clock: dates come in.
//!
//! Conventions (all amounts whole won, all arithmetic in integers):
//! - A business day `D` is open between the end of day of `D - 1` and the end of day of `D`;
//!   repayments, prepayments and restructurings happen on the open day, and every day's end
//!   is applied once, in order ([`Loan::end_of_day`]).
//! - Interest accrues at each end of day on that day's closing balances (actual/365): normal
//!   interest on the principal not past due at the contract rate, late interest on what is past
//!   due (principal and interest) at the contract rate + 3 percentage points, capped by the
//!   legal maximum. What is below one won is carried to the next day, never rounded; an
//!   instalment bills the interest accrued over its period, and the carry below one won is
//!   dropped there, as the schedule truncates each instalment's interest. So with no
//!   prepayment an instalment bills exactly the schedule's interest.
//! - An instalment is billed at the end of the day before it falls due, so a payment on the
//!   due date meets it; unpaid at the end of its due date, it is past due. Days past due after
//!   the end of `D` = `D + 1 -` the oldest unpaid due date.
//! - A repayment pays what is due, in this order: fees, late interest, interest, principal
//!   (oldest instalment first within each). More than is due is refused: paying principal
//!   early is a prepayment.
//! - A partial prepayment re-amortises the instalments left over the same term (the due dates
//!   stay); its fee is `prepaid × fee rate × days left to maturity / days of the loan`,
//!   truncated, and none once the loan is older than the fee-free period.

use crate::schedule::{self, Installment, Terms, TermsError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::{Date, Duration};

/// A day's interest in won is `balance × rate in millionths / DAY_DIVISOR`.
const DAY_DIVISOR: u128 = 365 * 1_000_000;

/// The rules a loan is serviced under (the bank's, beside the product's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Added to the contract rate on what is past due (3 percentage points in Korea).
    pub late_spread: Decimal,
    /// The legal maximum rate, late interest included (20% in Korea).
    pub legal_max_rate: Decimal,
    /// Days past due from which a loan is in default.
    pub default_after_days: u32,
    /// Days after disbursement from which prepayment is free (three years, by regulation).
    pub prepayment_fee_free_after_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            late_spread: Decimal::new(3, 2),
            legal_max_rate: products::model::LEGAL_MAX_LOAN_RATE,
            default_after_days: 90,
            prepayment_fee_free_after_days: 3 * 365,
        }
    }
}

/// Where a loan stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing past due.
    Current,
    /// Something past due, for fewer days than the default threshold.
    Delinquent,
    /// Past due for the default threshold or longer.
    Default,
    /// Written off: nothing is receivable; payments are recoveries.
    WrittenOff,
    /// Repaid in full.
    Closed,
}

/// Days-past-due buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Bucket {
    /// Nothing past due.
    #[serde(rename = "current")]
    Current,
    /// 1 to 29 days.
    #[serde(rename = "1-29")]
    Dpd1To29,
    /// 30 to 59 days.
    #[serde(rename = "30-59")]
    Dpd30To59,
    /// 60 to 89 days.
    #[serde(rename = "60-89")]
    Dpd60To89,
    /// 90 days or more.
    #[serde(rename = "90+")]
    Dpd90Plus,
}

impl Bucket {
    /// The bucket of `days` past due.
    pub fn of(days: u32) -> Bucket {
        match days {
            0 => Bucket::Current,
            1..=29 => Bucket::Dpd1To29,
            30..=59 => Bucket::Dpd30To59,
            60..=89 => Bucket::Dpd60To89,
            _ => Bucket::Dpd90Plus,
        }
    }
}

/// The books a posting moves money between: a loan's own receivables, and the bank's
/// accounts. The shell maps each to a ledger account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Book {
    /// The loan's principal receivable (an asset).
    Principal,
    /// The loan's interest receivable, accrued or billed (an asset).
    Interest,
    /// The loan's late interest receivable (an asset).
    LateInterest,
    /// The loan's fees receivable (an asset).
    Fees,
    /// Where the money comes from and goes to: the customer's deposit account or the bank's
    /// cash.
    Funding,
    /// Interest income.
    InterestIncome,
    /// Late interest income.
    LateInterestIncome,
    /// Fee income.
    FeeIncome,
    /// Credit losses: what was written off.
    CreditLoss,
    /// Recoveries of written-off loans (income).
    Recovery,
}

/// Why money moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    /// The principal paid out.
    Disbursement,
    /// A day's interest.
    Accrual,
    /// A day's late interest.
    LateAccrual,
    /// A payment of what was due.
    Repayment,
    /// Principal paid early, with the interest accrued on a payoff.
    Prepayment,
    /// The prepayment fee, paid with the prepayment.
    PrepaymentFee,
    /// Arrears turned into principal by a restructuring.
    Capitalisation,
    /// Receivables written off.
    WriteOff,
    /// A payment on a written-off loan.
    Recovery,
}

/// One ledger transfer: `amount` from `credit` to `debit` (both books' balances are debits
/// minus credits, so an asset grows by a debit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// The book debited.
    pub debit: Book,
    /// The book credited.
    pub credit: Book,
    /// Whole won, at least 1.
    pub amount: u128,
    /// Why.
    pub movement: Movement,
}

/// An instalment billed and not yet paid in full: what is left of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    /// The instalment's number in the schedule.
    pub number: u32,
    /// When it fell due.
    #[serde(with = "crate::credit::date_string")]
    pub due_date: Date,
    /// Principal unpaid.
    pub principal: u128,
    /// Interest unpaid.
    pub interest: u128,
}

/// What a payment paid, by component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// Fees.
    pub fees: u128,
    /// Late interest.
    pub late_interest: u128,
    /// Interest.
    pub interest: u128,
    /// Principal.
    pub principal: u128,
    /// A prepayment's fee.
    pub prepayment_fee: u128,
    /// A recovery on a written-off loan.
    pub recovery: u128,
}

impl Allocation {
    /// The whole payment.
    pub fn total(&self) -> u128 {
        self.fees
            + self.late_interest
            + self.interest
            + self.principal
            + self.prepayment_fee
            + self.recovery
    }
}

/// Running totals over the loan's life: what reconciles it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Principal paid out.
    pub disbursed: u128,
    /// Arrears turned into principal by restructurings.
    pub capitalised: u128,
    /// Principal repaid (instalments and prepayments).
    pub principal_repaid: u128,
    /// Interest paid.
    pub interest_paid: u128,
    /// Late interest paid.
    pub late_interest_paid: u128,
    /// Fees paid (prepayment fees included).
    pub fees_paid: u128,
    /// Principal written off.
    pub principal_written_off: u128,
    /// Everything written off (principal, interest, late interest, fees).
    pub written_off: u128,
    /// Recovered after the write-off.
    pub recovered: u128,
}

/// A disbursed loan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loan {
    /// The terms in force (a restructuring replaces them).
    pub terms: Terms,
    /// Instalments billed so far.
    pub billed: u32,
    /// Where the instalments not yet billed come from: the schedule of `terms` continued
    /// from instalment `rest_from` with `rest_balance` left to repay
    /// ([`schedule::rest_of_schedule`]) — the whole schedule until a partial prepayment
    /// re-amortises it. Derived, not stored: a loan's state stays small however long its term.
    pub rest_from: u32,
    /// The principal the rest of the schedule starts from.
    pub rest_balance: u128,
    /// The day the money was paid out.
    #[serde(with = "crate::credit::date_string")]
    pub disbursed_on: Date,
    /// The last business day whose end of day was applied.
    #[serde(with = "crate::credit::date_string")]
    pub closed_through: Date,
    /// Principal outstanding, billed or not.
    pub principal: u128,
    /// Interest accrued and not yet billed.
    pub interest_accrued: u128,
    /// Normal interest below one won carried to the next day (in 1/(365·10⁶) won).
    pub accrual_carry: u128,
    /// Late interest below one won carried likewise.
    pub late_carry: u128,
    /// Billed instalments not yet paid in full, oldest first.
    pub due: Vec<Due>,
    /// Late interest receivable (due at once).
    pub late_interest: u128,
    /// Fees receivable (due at once).
    pub fees: u128,
    /// Where it stands.
    pub status: Status,
    /// The prepayment fee rate of the product version it was signed under.
    pub prepayment_fee_rate: Decimal,
    /// Restructurings so far.
    pub restructurings: u32,
    /// Running totals.
    pub totals: Totals,
}

/// New terms for a restructuring: the schedule starts again on the day it is agreed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restructuring {
    /// The new annual rate.
    pub annual_rate: Decimal,
    /// The new number of instalments.
    pub term_months: u32,
    /// The new method.
    pub method: products::model::RepaymentMethod,
    /// Interest-only months at the start.
    pub grace_months: u32,
}

/// Why a servicing step was refused: `code` is the stable problem code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ServicingError {
    /// The stable problem code.
    pub code: &'static str,
    /// What is wrong and what to do.
    pub detail: String,
}

fn refuse<T>(code: &'static str, detail: impl Into<String>) -> Result<T, ServicingError> {
    Err(ServicingError {
        code,
        detail: detail.into(),
    })
}

impl From<TermsError> for ServicingError {
    fn from(e: TermsError) -> ServicingError {
        ServicingError {
            code: e.code,
            detail: e.detail,
        }
    }
}

impl Loan {
    /// A loan paid out on `terms.start_date`: the schedule, and the disbursement's posting.
    pub fn disburse(
        terms: Terms,
        prepayment_fee_rate: Decimal,
    ) -> Result<(Loan, Vec<Posting>), ServicingError> {
        schedule::schedule(&terms)?;
        if prepayment_fee_rate.is_sign_negative() || prepayment_fee_rate > Decimal::ONE {
            return refuse(
                "invalid_fee",
                "a prepayment fee rate is a fraction from 0 to 1",
            );
        }
        let principal = terms.principal;
        let loan = Loan {
            disbursed_on: terms.start_date,
            closed_through: terms.start_date - Duration::days(1),
            terms,
            billed: 0,
            rest_from: 1,
            rest_balance: principal,
            principal,
            interest_accrued: 0,
            accrual_carry: 0,
            late_carry: 0,
            due: Vec::new(),
            late_interest: 0,
            fees: 0,
            status: Status::Current,
            prepayment_fee_rate,
            restructurings: 0,
            totals: Totals {
                disbursed: principal,
                ..Totals::default()
            },
        };
        let postings = vec![Posting {
            debit: Book::Principal,
            credit: Book::Funding,
            amount: principal,
            movement: Movement::Disbursement,
        }];
        Ok((loan, postings))
    }

    /// The business day open now: the one after the last end of day.
    pub fn open_day(&self) -> Date {
        self.closed_through + Duration::days(1)
    }

    /// The day the last instalment falls due.
    pub fn maturity(&self) -> Date {
        schedule::due_date(&self.terms, self.terms.term_months).unwrap_or(self.terms.start_date)
    }

    /// The instalments not yet billed, as the schedule stands.
    pub fn upcoming(&self) -> Result<Vec<Installment>, ServicingError> {
        let mut rest = schedule::rest_of_schedule(&self.terms, self.rest_from, self.rest_balance)?;
        rest.retain(|i| i.number > self.billed);
        Ok(rest)
    }

    /// Days past due after the last end of day.
    pub fn days_past_due(&self) -> u32 {
        self.due.first().map_or(0, |d| {
            u32::try_from((self.open_day() - d.due_date).whole_days()).unwrap_or(0)
        })
    }

    /// The days-past-due bucket after the last end of day.
    pub fn bucket(&self) -> Bucket {
        Bucket::of(self.days_past_due())
    }

    /// Everything due now: fees, late interest, billed interest and principal.
    pub fn due_total(&self) -> u128 {
        self.fees
            + self.late_interest
            + self
                .due
                .iter()
                .map(|d| d.interest + d.principal)
                .sum::<u128>()
    }

    /// Principal not billed yet.
    pub fn principal_not_billed(&self) -> u128 {
        self.principal - self.due.iter().map(|d| d.principal).sum::<u128>()
    }

    /// What the loan's own books must hold (debits minus credits), book by book.
    pub fn receivables(&self) -> [(Book, u128); 4] {
        [
            (Book::Principal, self.principal),
            (
                Book::Interest,
                self.interest_accrued + self.due.iter().map(|d| d.interest).sum::<u128>(),
            ),
            (Book::LateInterest, self.late_interest),
            (Book::Fees, self.fees),
        ]
    }

    /// Applies the end of business day `date`: accrual, late interest, days past due and
    /// status, then the instalments falling due the next day are billed. A day already applied
    /// changes nothing and posts nothing; a day may not be skipped.
    pub fn end_of_day(
        &mut self,
        date: Date,
        policy: &Policy,
    ) -> Result<Vec<Posting>, ServicingError> {
        if date <= self.closed_through {
            return Ok(Vec::new());
        }
        if date != self.open_day() {
            return refuse(
                "day_skipped",
                format!(
                    "the end of {} must be applied before that of {date}",
                    self.open_day()
                ),
            );
        }
        self.closed_through = date;
        if matches!(self.status, Status::WrittenOff | Status::Closed) {
            return Ok(Vec::new());
        }
        let mut postings = Vec::new();
        let overdue_principal: u128 = self.due.iter().map(|d| d.principal).sum();
        let overdue_interest: u128 = self.due.iter().map(|d| d.interest).sum();
        let rate = schedule::rate_micro(self.terms.annual_rate);
        let interest = accrue(
            self.principal - overdue_principal,
            rate,
            &mut self.accrual_carry,
        );
        self.interest_accrued += interest;
        post(
            &mut postings,
            Book::Interest,
            Book::InterestIncome,
            interest,
            Movement::Accrual,
        );
        let late_rate = (self.terms.annual_rate + policy.late_spread).min(policy.legal_max_rate);
        let late = accrue(
            overdue_principal + overdue_interest,
            schedule::rate_micro(late_rate),
            &mut self.late_carry,
        );
        self.late_interest += late;
        post(
            &mut postings,
            Book::LateInterest,
            Book::LateInterestIncome,
            late,
            Movement::LateAccrual,
        );
        let tomorrow = date + Duration::days(1);
        while self.billed < self.terms.term_months
            && schedule::due_date(&self.terms, self.billed + 1)? <= tomorrow
        {
            self.bill()?;
        }
        self.status = self.status_now(policy);
        Ok(postings)
    }

    /// Bills the next instalment: its share of principal (what is left, for the last) and the
    /// interest accrued over its period (the carry below one won is dropped).
    fn bill(&mut self) -> Result<(), ServicingError> {
        let number = self.billed + 1;
        let rest = schedule::rest_of_schedule(&self.terms, self.rest_from, self.rest_balance)?;
        let installment = rest[(number - self.rest_from) as usize];
        self.billed = number;
        let last = number == self.terms.term_months;
        let left = self.principal_not_billed();
        let principal = if last {
            left
        } else {
            installment.principal.min(left)
        };
        let interest = std::mem::take(&mut self.interest_accrued);
        self.accrual_carry = 0;
        if principal + interest > 0 {
            self.due.push(Due {
                number: installment.number,
                due_date: installment.due_date,
                principal,
                interest,
            });
        }
        Ok(())
    }

    /// The status the arrears call for (a written-off or closed loan stays so).
    fn status_now(&self, policy: &Policy) -> Status {
        match self.status {
            Status::WrittenOff | Status::Closed => self.status,
            _ if self.is_repaid() => Status::Closed,
            _ => match self.days_past_due() {
                0 => Status::Current,
                d if d >= policy.default_after_days => Status::Default,
                _ => Status::Delinquent,
            },
        }
    }

    fn is_repaid(&self) -> bool {
        self.principal == 0 && self.receivables().iter().all(|(_, v)| *v == 0)
    }

    fn check_open(&self, date: Date) -> Result<(), ServicingError> {
        if date != self.open_day() {
            return refuse(
                "business_day_not_open",
                format!(
                    "the loan's open business day is {}; apply the ends of day before {date} first",
                    self.open_day()
                ),
            );
        }
        match self.status {
            Status::Closed => refuse("loan_closed", "the loan is repaid and closed"),
            _ => Ok(()),
        }
    }

    /// A payment of `amount` on the open day `date`: what is due, in the allocation order; on
    /// a written-off loan, a recovery.
    pub fn repay(
        &mut self,
        date: Date,
        amount: u128,
        policy: &Policy,
    ) -> Result<(Allocation, Vec<Posting>), ServicingError> {
        self.check_open(date)?;
        if amount == 0 {
            return refuse("invalid_amount", "`amount` is at least 1 won");
        }
        let mut postings = Vec::new();
        if self.status == Status::WrittenOff {
            let left = self.totals.written_off - self.totals.recovered;
            if amount > left {
                return refuse(
                    "overpayment",
                    format!("{left} won of the written-off amount is left to recover"),
                );
            }
            self.totals.recovered += amount;
            post(
                &mut postings,
                Book::Funding,
                Book::Recovery,
                amount,
                Movement::Recovery,
            );
            let allocation = Allocation {
                recovery: amount,
                ..Allocation::default()
            };
            return Ok((allocation, postings));
        }
        let due = self.due_total();
        if amount > due {
            return refuse(
                "overpayment",
                format!("{due} won is due; paying principal early is a prepayment"),
            );
        }
        let allocation = self.pay_due(amount, Movement::Repayment, &mut postings);
        self.status = self.status_now(policy);
        Ok((allocation, postings))
    }

    /// Pays up to `amount` of what is due: fees, late interest, interest, principal.
    fn pay_due(
        &mut self,
        amount: u128,
        movement: Movement,
        postings: &mut Vec<Posting>,
    ) -> Allocation {
        let mut left = amount;
        let mut take = |from: &mut u128| {
            let paid = (*from).min(left);
            *from -= paid;
            left -= paid;
            paid
        };
        let mut allocation = Allocation {
            fees: take(&mut self.fees),
            late_interest: take(&mut self.late_interest),
            ..Allocation::default()
        };
        for d in self.due.iter_mut() {
            allocation.interest += take(&mut d.interest);
        }
        for d in self.due.iter_mut() {
            allocation.principal += take(&mut d.principal);
        }
        self.due.retain(|d| d.principal + d.interest > 0);
        if self.due.is_empty() {
            // Nothing past due any more: the late carry below one won is dropped.
            self.late_carry = 0;
        }
        self.principal -= allocation.principal;
        self.totals.fees_paid += allocation.fees;
        self.totals.late_interest_paid += allocation.late_interest;
        self.totals.interest_paid += allocation.interest;
        self.totals.principal_repaid += allocation.principal;
        for (book, paid) in [
            (Book::Fees, allocation.fees),
            (Book::LateInterest, allocation.late_interest),
            (Book::Interest, allocation.interest),
            (Book::Principal, allocation.principal),
        ] {
            post(postings, Book::Funding, book, paid, movement);
        }
        allocation
    }

    /// The fee for prepaying `principal` on `date`.
    pub fn prepayment_fee(&self, date: Date, principal: u128, policy: &Policy) -> u128 {
        let age = (date - self.disbursed_on).whole_days();
        let total = (self.maturity() - self.disbursed_on).whole_days();
        let left = (self.maturity() - date).whole_days();
        if age >= i64::from(policy.prepayment_fee_free_after_days) || total <= 0 || left <= 0 {
            return 0;
        }
        let rate = schedule::rate_micro(self.prepayment_fee_rate);
        principal * rate * left as u128 / (total as u128 * 1_000_000)
    }

    /// Prepays on the open day `date`: everything due first, then `principal` of the
    /// principal not billed (all of it, and the interest accrued so far, when `None`: a
    /// payoff), with the prepayment fee. A partial prepayment re-amortises what is left over
    /// the instalments left.
    pub fn prepay(
        &mut self,
        date: Date,
        principal: Option<u128>,
        policy: &Policy,
    ) -> Result<(Allocation, Vec<Posting>), ServicingError> {
        self.check_open(date)?;
        if self.status == Status::WrittenOff {
            return refuse(
                "loan_written_off",
                "a written-off loan takes recoveries, not prepayments",
            );
        }
        let not_billed = self.principal_not_billed();
        let prepaid = principal.unwrap_or(not_billed);
        if principal.is_some() && (prepaid == 0 || prepaid > not_billed) {
            return refuse(
                "invalid_amount",
                format!("`principal` is from 1 to the {not_billed} won not yet billed"),
            );
        }
        let mut postings = Vec::new();
        let mut allocation = self.pay_due(self.due_total(), Movement::Repayment, &mut postings);
        let fee = self.prepayment_fee(date, prepaid, policy);
        allocation.prepayment_fee = fee;
        self.totals.fees_paid += fee;
        post(
            &mut postings,
            Book::Funding,
            Book::FeeIncome,
            fee,
            Movement::PrepaymentFee,
        );
        allocation.principal += prepaid;
        self.principal -= prepaid;
        self.totals.principal_repaid += prepaid;
        post(
            &mut postings,
            Book::Funding,
            Book::Principal,
            prepaid,
            Movement::Prepayment,
        );
        if principal.is_none() {
            let interest = std::mem::take(&mut self.interest_accrued);
            self.accrual_carry = 0;
            allocation.interest += interest;
            self.totals.interest_paid += interest;
            post(
                &mut postings,
                Book::Funding,
                Book::Interest,
                interest,
                Movement::Prepayment,
            );
        } else if self.billed < self.terms.term_months {
            self.rest_from = self.billed + 1;
            self.rest_balance = self.principal;
        }
        self.status = self.status_now(policy);
        Ok((allocation, postings))
    }

    /// Restructures on the open day `date`: every arrear (interest billed or accrued, late
    /// interest, fees) becomes principal, and a new schedule under `new` starts that day.
    pub fn restructure(
        &mut self,
        date: Date,
        new: &Restructuring,
        policy: &Policy,
    ) -> Result<Vec<Posting>, ServicingError> {
        self.check_open(date)?;
        if self.status == Status::WrittenOff {
            return refuse(
                "loan_written_off",
                "a written-off loan cannot be restructured",
            );
        }
        let interest = self.interest_accrued + self.due.iter().map(|d| d.interest).sum::<u128>();
        let capitalised = interest + self.late_interest + self.fees;
        let terms = Terms {
            principal: self.principal + capitalised,
            annual_rate: new.annual_rate,
            term_months: new.term_months,
            method: new.method,
            grace_months: new.grace_months,
            start_date: date,
        };
        // Checked before anything changes: refused terms leave the loan as it was.
        schedule::schedule(&terms)?;
        let mut postings = Vec::new();
        for (book, amount) in [
            (Book::Interest, interest),
            (Book::LateInterest, self.late_interest),
            (Book::Fees, self.fees),
        ] {
            post(
                &mut postings,
                Book::Principal,
                book,
                amount,
                Movement::Capitalisation,
            );
        }
        self.principal = terms.principal;
        self.totals.capitalised += capitalised;
        self.clear_arrears();
        self.rest_balance = terms.principal;
        self.terms = terms;
        self.rest_from = 1;
        self.billed = 0;
        self.restructurings += 1;
        self.status = self.status_now(policy);
        Ok(postings)
    }

    /// Writes a defaulted loan off on the open day `date`: every receivable goes to credit
    /// losses; later payments are recoveries.
    pub fn write_off(&mut self, date: Date) -> Result<Vec<Posting>, ServicingError> {
        self.check_open(date)?;
        if self.status != Status::Default {
            return refuse(
                "not_in_default",
                "only a loan in default can be written off",
            );
        }
        let mut postings = Vec::new();
        let mut total = 0;
        for (book, amount) in self.receivables() {
            total += amount;
            post(
                &mut postings,
                Book::CreditLoss,
                book,
                amount,
                Movement::WriteOff,
            );
        }
        self.totals.principal_written_off += self.principal;
        self.totals.written_off += total;
        self.principal = 0;
        self.clear_arrears();
        self.status = Status::WrittenOff;
        Ok(postings)
    }

    /// Takes every receivable but principal off the loan (they were made principal or written
    /// off), with the carries below one won and what was billed.
    fn clear_arrears(&mut self) {
        self.interest_accrued = 0;
        self.accrual_carry = 0;
        self.late_carry = 0;
        self.late_interest = 0;
        self.fees = 0;
        self.due.clear();
    }
}

/// Adds a posting of `amount` from `credit` to `debit`, unless it moves nothing.
fn post(postings: &mut Vec<Posting>, debit: Book, credit: Book, amount: u128, movement: Movement) {
    if amount > 0 {
        postings.push(Posting {
            debit,
            credit,
            amount,
            movement,
        });
    }
}

/// A day's interest on `balance` at `rate_micro`, with the carry below one won.
fn accrue(balance: u128, rate_micro: u128, carry: &mut u128) -> u128 {
    let exact = balance * rate_micro + *carry;
    *carry = exact % DAY_DIVISOR;
    exact / DAY_DIVISOR
}

#[cfg(test)]
mod tests {
    use super::*;
    use products::model::RepaymentMethod;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use time::macros::date;

    fn terms(principal: u128, rate: &str, n: u32, method: RepaymentMethod, grace: u32) -> Terms {
        Terms {
            principal,
            annual_rate: rate.parse().unwrap(),
            term_months: n,
            method,
            grace_months: grace,
            start_date: date!(2026 - 01 - 31),
        }
    }

    /// A naive double-entry ledger: each book's debits minus credits.
    #[derive(Default)]
    struct Books(BTreeMap<Book, i128>);

    impl Books {
        fn post(&mut self, postings: &[Posting]) {
            for p in postings {
                assert!(p.amount > 0, "a posting moves something: {p:?}");
                *self.0.entry(p.debit).or_default() += p.amount as i128;
                *self.0.entry(p.credit).or_default() -= p.amount as i128;
            }
        }

        fn get(&self, book: Book) -> i128 {
            self.0.get(&book).copied().unwrap_or(0)
        }

        /// The loan's receivables on the books equal its state; the books balance.
        fn reconcile(&self, loan: &Loan) {
            for (book, amount) in loan.receivables() {
                assert_eq!(self.get(book), amount as i128, "{book:?}");
            }
            assert_eq!(self.0.values().sum::<i128>(), 0);
        }
    }

    fn open(t: Terms, fee: &str) -> (Loan, Books) {
        let (loan, postings) = Loan::disburse(t, fee.parse().unwrap()).unwrap();
        let mut books = Books::default();
        books.post(&postings);
        (loan, books)
    }

    fn close_day(loan: &mut Loan, books: &mut Books, policy: &Policy) {
        let day = loan.open_day();
        books.post(&loan.end_of_day(day, policy).unwrap());
    }

    #[test]
    fn paid_on_time_each_instalment_bills_exactly_the_schedules_interest_and_the_loan_closes() {
        let policy = Policy::default();
        for (method, grace) in [
            (RepaymentMethod::EqualPayment, 0),
            (RepaymentMethod::EqualPayment, 3),
            (RepaymentMethod::EqualPrincipal, 2),
            (RepaymentMethod::Bullet, 0),
        ] {
            let t = terms(12_345_678, "0.0725", 12, method, grace);
            let expected = schedule::schedule(&t).unwrap();
            let (mut loan, mut books) = open(t, "0.012");
            let mut paid = Vec::new();
            while loan.status != Status::Closed {
                let today = loan.open_day();
                if let Some(d) = loan.due.first().copied() {
                    assert_eq!(d.due_date, today, "billed the day before it falls due");
                    let (allocation, postings) =
                        loan.repay(today, loan.due_total(), &policy).unwrap();
                    books.post(&postings);
                    paid.push((d.number, allocation.principal, allocation.interest));
                }
                close_day(&mut loan, &mut books, &policy);
                books.reconcile(&loan);
                assert_eq!(loan.days_past_due(), 0);
                assert!(today <= loan.maturity());
            }
            let rows: Vec<_> = expected
                .iter()
                .map(|i| (i.number, i.principal, i.interest))
                .collect();
            assert_eq!(paid, rows, "{method:?} grace {grace}");
            assert_eq!(loan.totals.principal_repaid, 12_345_678);
            assert_eq!(books.get(Book::Principal), 0);
            assert_eq!(
                -books.get(Book::InterestIncome),
                expected.iter().map(|i| i.interest as i128).sum::<i128>()
            );
        }
    }

    #[test]
    fn a_missed_instalment_ages_through_the_buckets_into_default_with_late_interest() {
        let policy = Policy::default();
        // 0.0725 + 0.03 = 10.25% on what is past due.
        let t = terms(10_000_000, "0.0725", 12, RepaymentMethod::EqualPrincipal, 0);
        let first = schedule::schedule(&t).unwrap()[0];
        let (mut loan, mut books) = open(t, "0");
        while loan.open_day() <= first.due_date {
            close_day(&mut loan, &mut books, &policy);
        }
        assert_eq!(loan.days_past_due(), 1);
        assert_eq!(loan.status, Status::Delinquent);
        assert_eq!(loan.bucket(), Bucket::Dpd1To29);
        // 2026-02-28 was the due date (Jan 31 + 1 month); past due from its end.
        assert_eq!(first.due_date, date!(2026 - 02 - 28));
        let overdue = first.principal + first.interest;
        // 10,000,000 / 12 = 833,333; 10,000,000 × 7.25% × 28 days / 365 = 55,616.43… → 55,616.
        assert_eq!(overdue, 833_333 + 55_616);
        let mut statuses = Vec::new();
        for _ in 0..28 {
            close_day(&mut loan, &mut books, &policy);
        }
        statuses.push((loan.days_past_due(), loan.bucket(), loan.status));
        // The next instalments fall due on 2026-03-31 and 2026-04-30 and are missed too.
        for _ in 0..61 {
            close_day(&mut loan, &mut books, &policy);
        }
        statuses.push((loan.days_past_due(), loan.bucket(), loan.status));
        close_day(&mut loan, &mut books, &policy);
        statuses.push((loan.days_past_due(), loan.bucket(), loan.status));
        assert_eq!(
            statuses,
            vec![
                (29, Bucket::Dpd1To29, Status::Delinquent),
                (90, Bucket::Dpd90Plus, Status::Default),
                (91, Bucket::Dpd90Plus, Status::Default),
            ]
        );
        books.reconcile(&loan);
        // Late interest, computed independently: each day's past-due base (every instalment
        // billed so far, none paid: due 02-28, 03-31 and 04-30) × 10.25% / 365, summed
        // exactly and truncated once (the carry is never rounded).
        assert_eq!(
            loan.due.iter().map(|d| d.due_date).collect::<Vec<_>>(),
            vec![
                date!(2026 - 02 - 28),
                date!(2026 - 03 - 31),
                date!(2026 - 04 - 30)
            ]
        );
        let late_micro: u128 = 102_500;
        let mut exact: u128 = 0;
        let mut day = first.due_date;
        while day < loan.open_day() {
            let base: u128 = loan
                .due
                .iter()
                .filter(|d| d.due_date <= day)
                .map(|d| d.principal + d.interest)
                .sum();
            exact += base * late_micro;
            day += Duration::days(1);
        }
        assert_eq!(loan.late_interest, exact / DAY_DIVISOR);
        // A payment clears fees, then late interest, then interest, then principal.
        let today = loan.open_day();
        let interest_due: u128 = loan.due.iter().map(|d| d.interest).sum();
        let late = loan.late_interest;
        let (allocation, postings) = loan.repay(today, late + interest_due + 1, &policy).unwrap();
        books.post(&postings);
        assert_eq!(
            allocation,
            Allocation {
                late_interest: late,
                interest: interest_due,
                principal: 1,
                ..Allocation::default()
            }
        );
        assert_eq!(loan.due[0].principal, first.principal - 1);
        assert_eq!(loan.status, Status::Default);
        books.reconcile(&loan);
        // Paying the rest of what is due cures the loan at once.
        let (_, postings) = loan.repay(today, loan.due_total(), &policy).unwrap();
        books.post(&postings);
        assert_eq!((loan.days_past_due(), loan.status), (0, Status::Current));
        books.reconcile(&loan);
    }

    #[test]
    fn late_interest_is_capped_at_the_legal_maximum() {
        let policy = Policy::default();
        // 19% + 3 points would be 22%; the legal maximum is 20%.
        let t = terms(1_000_000, "0.19", 3, RepaymentMethod::Bullet, 0);
        let first = schedule::schedule(&t).unwrap()[0];
        let (mut loan, mut books) = open(t, "0");
        while loan.open_day() <= first.due_date + Duration::days(9) {
            close_day(&mut loan, &mut books, &policy);
        }
        // Ten days on the unpaid interest: 1,000,000 × 19% × 28 / 365 = 14,575 won, then
        // 14,575 × 20% × 10 / 365 = 79.86… → 79.
        assert_eq!(first.interest, 14_575);
        assert_eq!(loan.late_interest, 79);
        books.reconcile(&loan);
    }

    #[test]
    fn more_than_is_due_is_refused_and_a_day_may_not_be_skipped() {
        let policy = Policy::default();
        let (mut loan, mut books) = open(
            terms(1_000_000, "0.05", 6, RepaymentMethod::EqualPayment, 0),
            "0",
        );
        let today = loan.open_day();
        assert_eq!(
            loan.repay(today, 1, &policy).unwrap_err().code,
            "overpayment"
        );
        assert_eq!(
            loan.repay(today, 0, &policy).unwrap_err().code,
            "invalid_amount"
        );
        let tomorrow = today + Duration::days(1);
        assert_eq!(
            loan.repay(tomorrow, 1, &policy).unwrap_err().code,
            "business_day_not_open"
        );
        assert_eq!(
            loan.end_of_day(tomorrow, &policy).unwrap_err().code,
            "day_skipped"
        );
        close_day(&mut loan, &mut books, &policy);
        let again = loan.end_of_day(today, &policy).unwrap();
        assert!(again.is_empty(), "a day already applied posts nothing");
        assert_eq!(loan.write_off(tomorrow).unwrap_err().code, "not_in_default");
    }

    #[test]
    fn a_partial_prepayment_pays_the_fee_and_re_amortises_over_the_same_term() {
        let policy = Policy::default();
        let mut t = terms(10_000_000, "0.055", 12, RepaymentMethod::EqualPayment, 0);
        t.start_date = date!(2026 - 01 - 15);
        let (mut loan, mut books) = open(t, "0.012");
        while loan.open_day() < date!(2026 - 07 - 15) {
            let today = loan.open_day();
            if !loan.due.is_empty() {
                let (_, p) = loan.repay(today, loan.due_total(), &policy).unwrap();
                books.post(&p);
            }
            close_day(&mut loan, &mut books, &policy);
        }
        // The instalment due today (the sixth) is billed; the prepayment pays it first.
        assert_eq!(loan.due.len(), 1);
        let due = loan.due_total();
        let before = loan.principal_not_billed();
        let (allocation, postings) = loan
            .prepay(date!(2026 - 07 - 15), Some(5_000_000), &policy)
            .unwrap();
        books.post(&postings);
        // 5,000,000 × 1.2% × 184 days left / 365 days of the loan = 30,246.57… → 30,246.
        assert_eq!(allocation.prepayment_fee, 30_246);
        assert_eq!(allocation.total(), due + 5_000_000 + 30_246);
        assert_eq!(loan.principal, before - 5_000_000);
        let rest = loan.upcoming().unwrap();
        assert_eq!(rest.first().unwrap().number, 7);
        assert_eq!(rest.len(), 6);
        assert_eq!(
            rest.iter().map(|i| i.principal).sum::<u128>(),
            loan.principal
        );
        assert_eq!(rest.last().unwrap().due_date, date!(2027 - 01 - 15));
        books.reconcile(&loan);
        // The same fee-free three years later is nothing.
        assert_eq!(
            loan.prepayment_fee(date!(2029 - 01 - 16), 1_000_000, &policy),
            0
        );
    }

    #[test]
    fn a_payoff_pays_the_interest_accrued_and_closes_the_loan() {
        let policy = Policy::default();
        let (mut loan, mut books) =
            open(terms(3_000_000, "0.1", 24, RepaymentMethod::Bullet, 0), "0");
        for _ in 0..10 {
            close_day(&mut loan, &mut books, &policy);
        }
        // Ten days of 3,000,000 × 10% / 365 = 8,219.17… accrued, posted as whole won.
        assert_eq!(loan.interest_accrued, 8_219);
        let (allocation, postings) = loan.prepay(loan.open_day(), None, &policy).unwrap();
        books.post(&postings);
        assert_eq!(
            (allocation.principal, allocation.interest),
            (3_000_000, 8_219)
        );
        assert_eq!(loan.status, Status::Closed);
        books.reconcile(&loan);
        assert_eq!(
            loan.repay(loan.open_day(), 1, &policy).unwrap_err().code,
            "loan_closed"
        );
    }

    #[test]
    fn a_restructuring_turns_arrears_into_principal_and_starts_a_new_schedule() {
        let policy = Policy::default();
        let (mut loan, mut books) = open(
            terms(6_000_000, "0.08", 12, RepaymentMethod::EqualPayment, 0),
            "0",
        );
        for _ in 0..75 {
            close_day(&mut loan, &mut books, &policy);
        }
        assert_eq!(loan.status, Status::Delinquent);
        let arrears: u128 = loan.receivables()[1..].iter().map(|(_, v)| v).sum();
        let principal = loan.principal;
        let today = loan.open_day();
        let new = Restructuring {
            annual_rate: "0.06".parse().unwrap(),
            term_months: 24,
            method: RepaymentMethod::EqualPrincipal,
            grace_months: 6,
        };
        books.post(&loan.restructure(today, &new, &policy).unwrap());
        assert_eq!(loan.principal, principal + arrears);
        assert_eq!((loan.status, loan.days_past_due()), (Status::Current, 0));
        let upcoming = loan.upcoming().unwrap();
        assert_eq!(upcoming.len(), 24);
        assert_eq!(
            upcoming[0].due_date,
            kernel::dates::add_months(today, 1).unwrap()
        );
        assert_eq!(loan.totals.capitalised, arrears);
        books.reconcile(&loan);
        let bad = Restructuring {
            term_months: 0,
            ..new
        };
        let before = loan.clone();
        assert_eq!(
            loan.restructure(today, &bad, &policy).unwrap_err().code,
            "invalid_term"
        );
        assert_eq!(loan, before, "refused terms change nothing");
    }

    #[test]
    fn a_defaulted_loan_is_written_off_and_later_payments_are_recoveries() {
        let policy = Policy::default();
        let (mut loan, mut books) = open(
            terms(2_000_000, "0.12", 6, RepaymentMethod::EqualPayment, 0),
            "0",
        );
        while loan.status != Status::Default {
            close_day(&mut loan, &mut books, &policy);
        }
        let receivable: u128 = loan.receivables().iter().map(|(_, v)| v).sum();
        books.post(&loan.write_off(loan.open_day()).unwrap());
        assert_eq!(loan.status, Status::WrittenOff);
        assert_eq!(books.get(Book::CreditLoss), receivable as i128);
        books.reconcile(&loan);
        assert!(
            loan.end_of_day(loan.open_day(), &policy)
                .unwrap()
                .is_empty()
        );
        let (allocation, postings) = loan.repay(loan.open_day(), 500_000, &policy).unwrap();
        books.post(&postings);
        assert_eq!(allocation.recovery, 500_000);
        assert_eq!(books.get(Book::Recovery), -500_000);
        let left = receivable - 500_000;
        assert_eq!(
            loan.repay(loan.open_day(), left + 1, &policy)
                .unwrap_err()
                .code,
            "overpayment"
        );
        books.reconcile(&loan);
    }

    #[derive(Clone, Debug)]
    enum Step {
        Days(u8),
        PayDue,
        PayPart(u8),
        Prepay(u8),
        Payoff,
        Restructure(u8),
        WriteOff,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (1u8..40).prop_map(Step::Days),
            3 => Just(Step::PayDue),
            2 => (1u8..100).prop_map(Step::PayPart),
            1 => (1u8..100).prop_map(Step::Prepay),
            1 => Just(Step::Payoff),
            1 => (1u8..60).prop_map(Step::Restructure),
            1 => Just(Step::WriteOff),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// After any sequence of days, payments (in full, in part, missed), prepayments,
        /// restructurings and write-offs: the books equal the loan's state, principal is
        /// accounted for exactly, and a refused step changes nothing.
        #[test]
        fn the_books_always_equal_the_loans_state(
            principal in 100_000u128..1_000_000_000,
            rate in 0u32..200_000,
            n in 1u32..60,
            method in prop_oneof![
                Just(RepaymentMethod::EqualPayment),
                Just(RepaymentMethod::EqualPrincipal),
                Just(RepaymentMethod::Bullet),
            ],
            grace_pct in 0u32..100,
            steps in prop::collection::vec(step(), 1..60),
        ) {
            let policy = Policy::default();
            let grace = grace_pct * n / 100 % n.max(1);
            let t = Terms {
                principal,
                annual_rate: Decimal::new(rate.into(), 6),
                term_months: n,
                method,
                grace_months: if grace >= n { 0 } else { grace },
                start_date: date!(2026 - 03 - 31),
            };
            let (mut loan, mut books) = open(t, "0.015");
            for s in steps {
                let today = loan.open_day();
                let before = loan.clone();
                let result = match s {
                    Step::Days(d) => {
                        for _ in 0..d {
                            close_day(&mut loan, &mut books, &policy);
                        }
                        Ok(())
                    }
                    Step::PayDue => loan.repay(today, loan.due_total().max(1), &policy)
                        .map(|(_, p)| books.post(&p)),
                    Step::PayPart(pct) => {
                        let part = (loan.due_total() * u128::from(pct) / 100).max(1);
                        loan.repay(today, part, &policy).map(|(_, p)| books.post(&p))
                    }
                    Step::Prepay(pct) => {
                        let part = loan.principal_not_billed() * u128::from(pct) / 100;
                        loan.prepay(today, Some(part), &policy).map(|(_, p)| books.post(&p))
                    }
                    Step::Payoff => loan.prepay(today, None, &policy).map(|(_, p)| books.post(&p)),
                    Step::Restructure(months) => loan
                        .restructure(today, &Restructuring {
                            annual_rate: Decimal::new(rate.into(), 6),
                            term_months: months.into(),
                            method,
                            grace_months: 0,
                        }, &policy)
                        .map(|p| books.post(&p)),
                    Step::WriteOff => loan.write_off(today).map(|p| books.post(&p)),
                };
                if result.is_err() {
                    prop_assert_eq!(&loan, &before);
                }
                books.reconcile(&loan);
                let t = loan.totals;
                prop_assert_eq!(
                    t.disbursed + t.capitalised,
                    loan.principal + t.principal_repaid + t.principal_written_off
                );
                prop_assert_eq!(loan.principal_not_billed() + loan.due.iter().map(|d| d.principal).sum::<u128>(), loan.principal);
                prop_assert!(loan.recovered_within_written_off());
                prop_assert_eq!(loan.status == Status::Closed, loan.principal == 0 && loan.receivables().iter().all(|(_, v)| *v == 0) && loan.status != Status::WrittenOff);
            }
        }
    }

    impl Loan {
        fn recovered_within_written_off(&self) -> bool {
            self.totals.recovered <= self.totals.written_off
        }
    }
}
