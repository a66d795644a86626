//! The deposit rules, pure: the chart of accounts on the ledger, amounts, eligibility, interest
//! accrual (exact integer arithmetic, truncated to the won) and statements. No I/O, no clock:
//! dates and balances come in.

use ledger::{AccountFlags, Balances, TransferFlags, TransferView};
use products::model::{Eligibility, Kind};
use rust_decimal::Decimal;
use time::{Date, Duration, Month, OffsetDateTime};

pub use kernel::LEDGER_KRW;

/// The bank's accounts on the ledger (ids far below any time-based id).
pub mod bank {
    /// Cash and settlement: money enters and leaves the bank through it (an asset).
    pub const CASH_ID: u128 = 4_100_000_001;
    /// Interest paid on deposits (an expense).
    pub const INTEREST_EXPENSE_ID: u128 = 4_100_000_002;
}

/// Account codes (the chart of accounts).
pub mod account_code {
    /// Cash and settlement.
    pub const CASH: u16 = 1000;
    /// A customer's demand deposit (a liability).
    pub const DEMAND_DEPOSIT: u16 = 2001;
    /// A customer's term deposit.
    pub const TERM_DEPOSIT: u16 = 2002;
    /// A customer's installment savings.
    pub const INSTALLMENT_SAVINGS: u16 = 2003;
    /// Interest accrued on one deposit account and not yet paid (a liability).
    pub const INTEREST_ACCRUED: u16 = 2101;
    /// Interest expense.
    pub const INTEREST_EXPENSE: u16 = 5101;
}

/// Transfer codes: why money moved.
pub mod transfer_code {
    /// Money in from outside (cash, an incoming wire).
    pub const DEPOSIT: u16 = 1;
    /// Money out to outside.
    pub const WITHDRAWAL: u16 = 2;
    /// From one customer's account to another's.
    pub const TRANSFER: u16 = 3;
    /// A hold: money reserved (a pending transfer).
    pub const HOLD: u16 = 4;
    /// Interest accrued for a day (expense → accrued interest).
    pub const INTEREST_ACCRUAL: u16 = 7;
    /// Accrued interest paid into the account.
    pub const INTEREST_POSTING: u16 = 8;
    /// The closing transfer (moves nothing; closes the accounts).
    pub const CLOSING: u16 = 9;
    /// The balance swept to another account at closing.
    pub const CLOSING_SWEEP: u16 = 10;
}

/// Flags of a customer's deposit account: it never goes below zero, and keeps its balance
/// history (statements, balances on a past date).
pub const DEPOSIT_FLAGS: AccountFlags =
    AccountFlags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.0 | AccountFlags::HISTORY.0);

/// The largest single amount: 1,000,000,000,000,000 won.
pub const AMOUNT_MAX: u128 = 1_000_000_000_000_000;
/// The longest memo, in characters.
pub const MEMO_CHARS_MAX: usize = 140;
/// The longest hold, in seconds (30 days); without one a hold stays until released.
pub const HOLD_SECONDS_MAX: u32 = 30 * 24 * 3600;
/// Interest is computed on actual days over a 365-day year, leap years too.
pub const DAYS_PER_YEAR: u128 = 365;
/// Rates carry at most six decimal places (the catalogue's rule); they are scaled by this.
pub const RATE_SCALE: u128 = 1_000_000;

/// Why input was refused: `code` is the stable problem code, `detail` says what to do. Never
/// carries a value that was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct RuleError {
    /// The stable problem code.
    pub code: &'static str,
    /// What is wrong and how to fix it.
    pub detail: String,
}

fn rule(code: &'static str, detail: impl Into<String>) -> RuleError {
    RuleError {
        code,
        detail: detail.into(),
    }
}

/// An amount in whole won: a decimal string, 1 to [`AMOUNT_MAX`].
pub fn parse_amount(text: &str) -> Result<u128, RuleError> {
    // No leading zeros: one amount, one spelling.
    let canonical = !(text.len() > 1 && text.starts_with('0'));
    let parsed = kernel::decimal::parse_u128(text).filter(|_| canonical);
    check_amount(parsed.unwrap_or(0))
}

/// An amount in whole won from 1 to [`AMOUNT_MAX`].
pub fn check_amount(amount: u128) -> Result<u128, RuleError> {
    if amount == 0 || amount > AMOUNT_MAX {
        return Err(rule(
            "invalid_amount",
            format!("`amount` is whole won as a decimal string, from 1 to {AMOUNT_MAX}"),
        ));
    }
    Ok(amount)
}

/// A memo: at most [`MEMO_CHARS_MAX`] characters, no control characters.
pub fn check_memo(memo: &str) -> Result<(), RuleError> {
    if memo.chars().count() > MEMO_CHARS_MAX || memo.chars().any(char::is_control) {
        return Err(rule(
            "invalid_memo",
            format!("`memo` is at most {MEMO_CHARS_MAX} characters without control characters"),
        ));
    }
    Ok(())
}

/// An `Idempotency-Key`: 1 to 100 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<(), RuleError> {
    if key.is_empty() || key.len() > 100 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(rule(
            "invalid_idempotency_key",
            "`Idempotency-Key` is 1 to 100 visible ASCII characters",
        ));
    }
    Ok(())
}

/// The ledger account code of a deposit kind; `None` for a loan.
pub fn account_code_of(kind: Kind) -> Option<u16> {
    match kind {
        Kind::DemandDeposit => Some(account_code::DEMAND_DEPOSIT),
        Kind::TermDeposit => Some(account_code::TERM_DEPOSIT),
        Kind::InstallmentSavings => Some(account_code::INSTALLMENT_SAVINGS),
        Kind::PersonalCreditLoan => None,
    }
}

/// What the deposit rules need to know about a customer (from the customers service's masked
/// view: no regulated value in the clear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerFacts {
    /// `individual` or `business`.
    pub kind: String,
    /// The KYC status.
    pub kyc_status: String,
    /// An individual's birth date (from the masked registration number's visible digits).
    pub birth_date: Option<Date>,
}

/// Whether the customer may hold the product, on `today`.
pub fn check_eligibility(
    rules: &Eligibility,
    customer: &CustomerFacts,
    today: Date,
) -> Result<(), RuleError> {
    if rules.kyc_verified && customer.kyc_status != "verified" {
        return Err(rule(
            "not_eligible",
            "the product needs a verified identity (KYC status `verified`)",
        ));
    }
    if customer.kind == "individual" {
        let Some(birth) = customer.birth_date else {
            return Err(rule(
                "not_eligible",
                "the customer's age is unknown (no registration number on file)",
            ));
        };
        let age = age_on(birth, today);
        if age < i32::from(rules.min_age) || rules.max_age.is_some_and(|m| age > i32::from(m)) {
            return Err(rule(
                "not_eligible",
                "the customer's age is outside the product's range",
            ));
        }
    }
    Ok(())
}

/// Full years from `birth` to `today`.
pub fn age_on(birth: Date, today: Date) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

/// The birth date in a masked registration number (`YYMMDD-G******`): the six digits and the
/// century digit are the part masking leaves visible.
pub fn birth_date_from_masked(masked: &str) -> Option<Date> {
    let b = masked.as_bytes();
    if b.len() < 8 || b[6] != b'-' || !b[..6].iter().chain(&b[7..8]).all(u8::is_ascii_digit) {
        return None;
    }
    let two = |i: usize| i32::from(b[i] - b'0') * 10 + i32::from(b[i + 1] - b'0');
    let century = match b[7] {
        b'9' | b'0' => 1800,
        b'1' | b'2' | b'5' | b'6' => 1900,
        _ => 2000,
    };
    let month = Month::try_from(u8::try_from(two(2)).ok()?).ok()?;
    Date::from_calendar_date(century + two(0), month, u8::try_from(two(4)).ok()?).ok()
}

/// A rate as an integer count of millionths; `None` if it has more than six places or is
/// negative.
pub fn rate_micro(rate: Decimal) -> Option<u128> {
    if rate.is_sign_negative() || rate.scale() > 6 {
        return None;
    }
    let scaled = rate * Decimal::from(1_000_000u32);
    u128::try_from(scaled.mantissa() / 10i128.pow(scaled.scale())).ok()
}

/// Interest accrued in the current posting period (a calendar month), exactly: the sum of
/// `balance × rate_micro` over its days is kept whole, so no rounding happens before posting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accrual {
    /// Σ balance × rate (in millionths) over the period's days so far.
    pub numerator: u128,
    /// Whole won already moved to the accrued-interest account this period.
    pub accrued: u128,
}

impl Accrual {
    /// The period's interest so far in whole won, truncated.
    pub fn whole_won(&self) -> u128 {
        self.numerator / (DAYS_PER_YEAR * RATE_SCALE)
    }

    /// Accrues one day on the end-of-day `balance`; returns the new state and the whole won
    /// to move to the accrued-interest account today (what the truncated total grew by).
    pub fn day(self, balance: u128, rate_micro: u128) -> (Accrual, u128) {
        let numerator = self.numerator + balance * rate_micro;
        let next = Accrual {
            numerator,
            accrued: self.accrued,
        };
        let delta = next.whole_won() - self.accrued;
        (
            Accrual {
                numerator,
                accrued: self.accrued + delta,
            },
            delta,
        )
    }
}

/// Whether interest is paid into the account at the end of `date`: the last day of a month.
/// What the period accrued below one won is not carried over (KRW: whole won, truncated).
pub fn is_posting_day(date: Date) -> bool {
    date.next_day()
        .is_none_or(|next| next.month() != date.month())
}

/// The last nanosecond of a business date, as a ledger timestamp.
pub fn end_of_day_ns(date: Date) -> u64 {
    let next = date.next_day().unwrap_or(date);
    let midnight = next
        .midnight()
        .assume_offset(kernel::dates::KST)
        .unix_timestamp_nanos();
    u64::try_from(midnight - 1).unwrap_or(0)
}

/// The business date of a ledger timestamp.
pub fn business_date(timestamp_ns: u64) -> Date {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ns))
        .map(|t| t.to_offset(kernel::dates::KST).date())
        .unwrap_or(Date::MIN)
}

/// The maturity of a term: the same day `months` later, or that month's last day.
pub fn maturity(opened: Date, months: u32) -> Option<Date> {
    kernel::dates::add_months(opened, months)
}

/// The posted balance a customer holds (credits less debits; a deposit never goes below zero).
pub fn posted(b: &Balances) -> u128 {
    b.credits_posted.saturating_sub(b.debits_posted)
}

/// What can be spent: posted less holds.
pub fn available(b: &Balances) -> u128 {
    posted(b).saturating_sub(b.debits_pending)
}

/// One line of a statement: a change of the posted balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The ledger transfer.
    pub transfer_id: u128,
    /// When it was applied (ledger timestamp, ns).
    pub timestamp: u64,
    /// `deposit`, `withdrawal`, `transfer_in`, `transfer_out`, `interest`, `hold_capture`,
    /// `closing_sweep`, …
    pub kind: &'static str,
    /// Money in (true) or out.
    pub credit: bool,
    /// The amount.
    pub amount: u128,
    /// The posted balance after it.
    pub balance: u128,
    /// The memo it carried.
    pub memo: Option<String>,
}

/// The lines of a statement for `account` from its posted balance before the first
/// transfer: only transfers that change the posted balance (a hold shows when captured).
pub fn statement_lines(account: u128, opening: u128, transfers: &[TransferView]) -> Vec<Line> {
    let mut balance = opening;
    let mut lines = Vec::new();
    for v in transfers {
        let t = &v.transfer;
        if t.flags.contains(TransferFlags::PENDING)
            || t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER)
            || t.amount == 0
        {
            continue;
        }
        let credit = t.credit_account_id == account;
        balance = if credit {
            balance + t.amount
        } else {
            balance.saturating_sub(t.amount)
        };
        let kind = match (t.code, credit) {
            (transfer_code::DEPOSIT, _) => "deposit",
            (transfer_code::WITHDRAWAL, _) => "withdrawal",
            (transfer_code::TRANSFER, true) => "transfer_in",
            (transfer_code::TRANSFER, false) => "transfer_out",
            (transfer_code::HOLD, _) => "hold_capture",
            (transfer_code::INTEREST_POSTING, _) => "interest",
            (transfer_code::CLOSING_SWEEP, true) => "closing_sweep_in",
            (transfer_code::CLOSING_SWEEP, false) => "closing_sweep_out",
            (_, true) => "other_credit",
            (_, false) => "other_debit",
        };
        let memo = v
            .metadata
            .as_deref()
            .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
            .and_then(|m| m.get("memo").and_then(|s| s.as_str()).map(str::to_owned));
        lines.push(Line {
            transfer_id: t.id,
            timestamp: t.timestamp,
            kind,
            credit,
            amount: t.amount,
            balance,
            memo,
        });
    }
    lines
}

/// The days from `from` to `to`, both included.
pub fn days(from: Date, to: Date) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(from), |d| d.next_day()).take_while(move |d| *d <= to)
}

/// The day before.
pub fn previous(date: Date) -> Date {
    date - Duration::days(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn amounts_are_whole_won_decimal_strings_within_bounds() {
        assert_eq!(parse_amount("1"), Ok(1));
        assert_eq!(parse_amount("1000000000000000"), Ok(AMOUNT_MAX));
        for bad in [
            "",
            "0",
            "01",
            "-5",
            "1.5",
            "1e3",
            " 1",
            "1000000000000001",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_amount(bad).unwrap_err().code,
                "invalid_amount",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn accrual_keeps_fractions_of_a_won_until_they_add_up() {
        // 100,000 won at 1% earns 2.739… won a day: 2, then 3 (5.479…), then 3 (8.219…).
        let rate = rate_micro(Decimal::new(1, 2)).unwrap();
        assert_eq!(rate, 10_000);
        let (a, d1) = Accrual::default().day(100_000, rate);
        let (a, d2) = a.day(100_000, rate);
        let (a, d3) = a.day(100_000, rate);
        assert_eq!((d1, d2, d3), (2, 3, 3));
        assert_eq!(a.accrued, 8);
        assert_eq!(a.numerator, 3 * 100_000 * 10_000);
        // A small balance still earns: 1,000 won at 2% is 0.0547… a day, one won on day 19.
        let rate = rate_micro(Decimal::new(2, 2)).unwrap();
        let mut a = Accrual::default();
        let mut first_won_day = None;
        for day in 1..=31 {
            let (next, delta) = a.day(1_000, rate);
            if delta > 0 && first_won_day.is_none() {
                first_won_day = Some(day);
            }
            a = next;
        }
        assert_eq!(first_won_day, Some(19));
        assert_eq!(a.accrued, 1, "31 × 0.0547… = 1.698…, truncated");
    }

    #[test]
    fn rates_with_more_than_six_places_are_refused() {
        assert_eq!(rate_micro(Decimal::new(325, 4)), Some(32_500));
        assert_eq!(rate_micro(Decimal::new(1234567, 7)), None);
        assert_eq!(rate_micro(Decimal::new(-1, 2)), None);
    }

    #[test]
    fn posting_days_are_month_ends() {
        assert!(is_posting_day(date!(2026 - 11 - 30)));
        assert!(is_posting_day(date!(2028 - 02 - 29)));
        assert!(!is_posting_day(date!(2028 - 02 - 28)));
        assert!(!is_posting_day(date!(2026 - 12 - 01)));
    }

    #[test]
    fn a_business_date_ends_at_midnight_in_seoul() {
        let end = end_of_day_ns(date!(2026 - 11 - 27));
        // 2026-11-27T15:00:00Z is midnight in Seoul.
        assert_eq!(end, 1_795_791_600_000_000_000 - 1);
        assert_eq!(business_date(end), date!(2026 - 11 - 27));
        assert_eq!(business_date(end + 1), date!(2026 - 11 - 28));
    }

    #[test]
    fn birth_dates_come_from_the_visible_digits_of_a_masked_number() {
        assert_eq!(
            birth_date_from_masked("900101-1******"),
            Some(date!(1990 - 01 - 01))
        );
        assert_eq!(
            birth_date_from_masked("050315-4******"),
            Some(date!(2005 - 03 - 15))
        );
        assert_eq!(birth_date_from_masked("901301-1******"), None);
        assert_eq!(birth_date_from_masked("***"), None);
        assert_eq!(age_on(date!(2008 - 11 - 28), date!(2026 - 11 - 27)), 17);
        assert_eq!(age_on(date!(2008 - 11 - 27), date!(2026 - 11 - 27)), 18);
    }

    #[test]
    fn derived_ids_are_stable_and_distinct_per_purpose_account_and_date() {
        let d = date!(2026 - 11 - 27);
        let derived_id =
            |purpose, account, day| kernel::derived_id("deposits", purpose, account, day);
        // The ids stay what they were when deposits derived them itself.
        assert_eq!(
            derived_id("accrual", "a", d),
            0xfeab_84c4_54d0_477d_5f57_7f87_4b93_49cb
        );
        assert_eq!(derived_id("accrual", "a", d), derived_id("accrual", "a", d));
        assert_ne!(derived_id("accrual", "a", d), derived_id("posting", "a", d));
        assert_ne!(derived_id("accrual", "a", d), derived_id("accrual", "b", d));
        assert_ne!(
            derived_id("accrual", "a", d),
            derived_id("accrual", "a", d.next_day().unwrap())
        );
    }
}
