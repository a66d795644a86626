//! Repayment schedules, pure and exact: 원리금균등 (equal payment), 원금균등 (equal principal)
//! and 만기일시 (bullet), each with an optional grace period (거치기간) of interest-only months.
//!
//! Conventions (the quote contract of docs/API.md):
//! - instalment k falls due k months after the start date, on the start date's day or, in a
//!   shorter month, the month's last day;
//! - an instalment's interest = the balance × the annual rate × the actual days since the
//!   previous due date (or the start) / 365, truncated to the won — computed in integers
//!   (the rate in millionths), so nothing is rounded before the truncation;
//! - the equal payment is the annuity for r = annual rate / 12 over the amortising months,
//!   truncated to the won; its principal is the payment less that instalment's interest;
//! - equal principal repays the principal ÷ amortising months, truncated, each month;
//! - during grace (and for a bullet loan until the end) only interest is due;
//! - the last instalment repays whatever balance is left, so the balance ends at exactly 0.

use kernel::dates::add_months;
use products::model::RepaymentMethod;
use rust_decimal::Decimal;
use time::Date;

/// The largest principal: 1,000,000,000,000,000 won.
pub const PRINCIPAL_MAX: u128 = 1_000_000_000_000_000;
/// The longest term: 40 years.
pub const TERM_MONTHS_MAX: u32 = 480;
/// Interest is computed on actual days over a 365-day year.
const DAYS_PER_YEAR: u128 = 365;
/// Rates carry at most six decimal places; in integers they are millionths.
const RATE_SCALE: u128 = 1_000_000;

/// What a schedule is computed from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Terms {
    /// Whole won lent.
    pub principal: u128,
    /// Annual rate, e.g. `0.055`.
    pub annual_rate: Decimal,
    /// Instalments.
    pub term_months: u32,
    /// How it is repaid.
    pub method: RepaymentMethod,
    /// Leading interest-only months.
    pub grace_months: u32,
    /// The day the loan starts (disbursement).
    #[serde(with = "crate::credit::date_string")]
    pub start_date: Date,
}

/// One instalment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installment {
    /// 1, 2, 3, …
    pub number: u32,
    /// When it falls due.
    pub due_date: Date,
    /// Principal repaid.
    pub principal: u128,
    /// Interest due.
    pub interest: u128,
    /// Principal + interest.
    pub payment: u128,
    /// The balance after it.
    pub balance: u128,
}

/// Why terms cannot be scheduled: `code` is the stable problem code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct TermsError {
    /// The stable problem code.
    pub code: &'static str,
    /// What is wrong.
    pub detail: String,
}

fn refuse(code: &'static str, detail: impl Into<String>) -> TermsError {
    TermsError {
        code,
        detail: detail.into(),
    }
}

/// The schedule for `terms`.
pub fn schedule(terms: &Terms) -> Result<Vec<Installment>, TermsError> {
    check(terms)?;
    rest_of_schedule(terms, 1, terms.principal)
}

/// Instalments `first..=term_months` of `terms` when `balance` is the principal left to repay
/// after instalment `first - 1`: the due dates stay those of `terms`, and what is left is
/// amortised over the instalments left after grace, by the same method — a smaller annuity
/// (or share) for the same term, as after a partial prepayment. `rest_of_schedule(t, 1,
/// t.principal)` is the whole schedule.
pub fn rest_of_schedule(
    terms: &Terms,
    first: u32,
    balance: u128,
) -> Result<Vec<Installment>, TermsError> {
    let rate = check(terms)?;
    let n = terms.term_months;
    if first == 0 || first > n || balance > terms.principal {
        return Err(refuse(
            "invalid_schedule_position",
            "a schedule continues at one of its instalments, with at most its principal left",
        ));
    }
    let amortising = n - terms.grace_months.max(first - 1);
    let annuity = match terms.method {
        RepaymentMethod::EqualPayment => annuity(balance, terms.annual_rate, amortising)?,
        _ => 0,
    };
    let equal_share = balance / u128::from(amortising);
    let mut balance = balance;
    let mut previous = if first == 1 {
        terms.start_date
    } else {
        due_date(terms, first - 1)?
    };
    let mut out = Vec::with_capacity((n - first + 1) as usize);
    for number in first..=n {
        let due_date = due_date(terms, number)?;
        let days = u128::try_from((due_date - previous).whole_days()).unwrap_or(0);
        let interest = balance * rate * days / (DAYS_PER_YEAR * RATE_SCALE);
        let repaid = if number == n {
            balance
        } else if number <= terms.grace_months {
            0
        } else {
            match terms.method {
                RepaymentMethod::Bullet => 0,
                RepaymentMethod::EqualPrincipal => equal_share,
                // The annuity covers this instalment's interest for any sane rate; should the
                // interest ever exceed it, no principal is repaid that month (never negative).
                RepaymentMethod::EqualPayment => annuity.saturating_sub(interest),
            }
        }
        .min(balance);
        balance -= repaid;
        out.push(Installment {
            number,
            due_date,
            principal: repaid,
            interest,
            payment: repaid + interest,
            balance,
        });
        previous = due_date;
    }
    debug_assert_eq!(balance, 0);
    Ok(out)
}

/// When instalment `number` of `terms` falls due.
pub fn due_date(terms: &Terms, number: u32) -> Result<Date, TermsError> {
    add_months(terms.start_date, number)
        .ok_or_else(|| refuse("invalid_start_date", "the schedule runs past the calendar"))
}

/// An annual rate in millionths (rates carry at most six places).
pub fn rate_micro(rate: Decimal) -> u128 {
    let micro = rate * Decimal::from(RATE_SCALE as u64);
    u128::try_from(micro.mantissa() / 10i128.pow(micro.scale())).unwrap_or(0)
}

/// The rate in millionths, after checking every term.
fn check(terms: &Terms) -> Result<u128, TermsError> {
    if terms.principal == 0 || terms.principal > PRINCIPAL_MAX {
        return Err(refuse(
            "invalid_principal",
            format!("`principal` is whole won, from 1 to {PRINCIPAL_MAX}"),
        ));
    }
    let rate = terms.annual_rate;
    if rate.is_sign_negative() || rate.scale() > 6 || rate > products::model::LEGAL_MAX_LOAN_RATE {
        return Err(refuse(
            "invalid_annual_rate",
            format!(
                "`annual_rate` is a decimal fraction with at most six places, from 0 to the legal maximum {}",
                products::model::LEGAL_MAX_LOAN_RATE
            ),
        ));
    }
    if terms.term_months == 0 || terms.term_months > TERM_MONTHS_MAX {
        return Err(refuse(
            "invalid_term",
            format!("`term_months` is from 1 to {TERM_MONTHS_MAX}"),
        ));
    }
    if terms.grace_months >= terms.term_months {
        return Err(refuse(
            "invalid_grace",
            "`grace_months` must leave at least one month to repay in",
        ));
    }
    Ok(rate_micro(rate))
}

/// The annuity `P·r·(1+r)^m / ((1+r)^m − 1)` for `r` = annual rate / 12, truncated to the won
/// (`P / m` when the rate is 0). Decimal arithmetic carries 28 significant digits; the result
/// is at most a few hundred billion won, so the truncation is exact but for values within
/// 10⁻¹⁵ won of a whole number.
fn annuity(principal: u128, annual_rate: Decimal, months: u32) -> Result<u128, TermsError> {
    let overflow = || refuse("invalid_principal", "the schedule's amounts are too large");
    if annual_rate.is_zero() {
        return Ok(principal / u128::from(months));
    }
    let p = Decimal::from_i128_with_scale(i128::try_from(principal).map_err(|_| overflow())?, 0);
    let r = annual_rate / Decimal::from(12);
    let growth = power(Decimal::ONE + r, months).ok_or_else(overflow)?;
    let payment = p
        .checked_mul(r)
        .and_then(|x| x.checked_mul(growth))
        .and_then(|x| x.checked_div(growth - Decimal::ONE))
        .ok_or_else(overflow)?;
    u128::try_from(payment.trunc().mantissa()).map_err(|_| overflow())
}

/// `base^exponent` by repeated squaring.
fn power(base: Decimal, mut exponent: u32) -> Option<Decimal> {
    let mut result = Decimal::ONE;
    let mut square = base;
    while exponent > 0 {
        if exponent & 1 == 1 {
            result = result.checked_mul(square)?;
        }
        exponent >>= 1;
        if exponent > 0 {
            square = square.checked_mul(square)?;
        }
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Month;
    use time::macros::date;

    fn terms(
        principal: u128,
        rate: &str,
        n: u32,
        method: RepaymentMethod,
        grace: u32,
        start: Date,
    ) -> Terms {
        Terms {
            principal,
            annual_rate: rate.parse().unwrap(),
            term_months: n,
            method,
            grace_months: grace,
            start_date: start,
        }
    }

    fn rows(s: &[Installment]) -> Vec<(u32, String, u128, u128, u128, u128)> {
        s.iter()
            .map(|i| {
                (
                    i.number,
                    i.due_date.to_string(),
                    i.principal,
                    i.interest,
                    i.payment,
                    i.balance,
                )
            })
            .collect()
    }

    // The expected rows below were computed independently, with exact rational arithmetic
    // (Python's `fractions`) from the conventions in the module comment.

    #[test]
    fn equal_payment_matches_the_closed_form_annuity() {
        let s = schedule(&terms(
            10_000_000,
            "0.055",
            12,
            RepaymentMethod::EqualPayment,
            0,
            date!(2026 - 01 - 15),
        ))
        .unwrap();
        let r = rows(&s);
        assert_eq!(
            r[0],
            (1, "2026-02-15".into(), 811_655, 46_712, 858_367, 9_188_345)
        );
        assert_eq!(
            r[1],
            (2, "2026-03-15".into(), 819_600, 38_767, 858_367, 8_368_745)
        );
        assert_eq!(
            r[10],
            (11, "2026-12-15".into(), 850_665, 7_702, 858_367, 853_127)
        );
        assert_eq!(r[11], (12, "2027-01-15".into(), 853_127, 3_985, 857_112, 0));
        assert!(s[..11].iter().all(|i| i.payment == 858_367));
    }

    #[test]
    fn equal_principal_repays_the_same_principal_and_the_last_takes_the_residue() {
        let s = schedule(&terms(
            10_000_000,
            "0.055",
            12,
            RepaymentMethod::EqualPrincipal,
            0,
            date!(2026 - 01 - 15),
        ))
        .unwrap();
        let r = rows(&s);
        assert_eq!(
            r[0],
            (1, "2026-02-15".into(), 833_333, 46_712, 880_045, 9_166_667)
        );
        assert_eq!(
            r[1],
            (2, "2026-03-15".into(), 833_333, 38_675, 872_008, 8_333_334)
        );
        assert_eq!(r[11], (12, "2027-01-15".into(), 833_337, 3_892, 837_229, 0));
    }

    #[test]
    fn bullet_pays_interest_monthly_and_the_principal_at_the_end() {
        let s = schedule(&terms(
            10_000_000,
            "0.055",
            12,
            RepaymentMethod::Bullet,
            0,
            date!(2026 - 01 - 15),
        ))
        .unwrap();
        let interest: Vec<u128> = s.iter().map(|i| i.interest).collect();
        assert_eq!(
            interest,
            [
                46_712, 42_191, 46_712, 45_205, 46_712, 45_205, 46_712, 46_712, 45_205, 46_712,
                45_205, 46_712
            ]
        );
        assert!(
            s[..11]
                .iter()
                .all(|i| i.principal == 0 && i.balance == 10_000_000)
        );
        assert_eq!(
            (s[11].principal, s[11].payment, s[11].balance),
            (10_000_000, 10_046_712, 0)
        );
    }

    #[test]
    fn grace_months_are_interest_only_and_month_ends_stay_month_ends() {
        let s = schedule(&terms(
            30_000_000,
            "0.0475",
            24,
            RepaymentMethod::EqualPayment,
            6,
            date!(2026 - 01 - 31),
        ))
        .unwrap();
        let r = rows(&s);
        assert_eq!(
            r[0],
            (1, "2026-02-28".into(), 0, 109_315, 109_315, 30_000_000)
        );
        assert_eq!(
            r[1],
            (2, "2026-03-31".into(), 0, 121_027, 121_027, 30_000_000)
        );
        assert_eq!(
            r[6],
            (
                7,
                "2026-08-31".into(),
                1_609_014,
                121_027,
                1_730_041,
                28_390_986
            )
        );
        assert_eq!(
            r[12],
            (
                13,
                "2027-02-28".into(),
                1_656_287,
                73_754,
                1_730_041,
                18_584_681
            )
        );
        assert_eq!(
            r[23],
            (24, "2028-01-31".into(), 1_724_415, 6_956, 1_731_371, 0)
        );
    }

    #[test]
    fn a_zero_rate_divides_the_principal() {
        let s = schedule(&terms(
            1_000_000,
            "0",
            3,
            RepaymentMethod::EqualPayment,
            0,
            date!(2026 - 01 - 15),
        ))
        .unwrap();
        assert_eq!(
            s.iter()
                .map(|i| (i.principal, i.interest))
                .collect::<Vec<_>>(),
            [(333_333, 0), (333_333, 0), (333_334, 0)]
        );
    }

    #[test]
    fn bad_terms_are_refused_with_their_code() {
        let ok = terms(
            1_000_000,
            "0.05",
            12,
            RepaymentMethod::EqualPayment,
            0,
            date!(2026 - 01 - 15),
        );
        let code = |t: Terms| schedule(&t).unwrap_err().code;
        assert_eq!(
            code(Terms {
                principal: 0,
                ..ok.clone()
            }),
            "invalid_principal"
        );
        assert_eq!(
            code(Terms {
                annual_rate: "0.21".parse().unwrap(),
                ..ok.clone()
            }),
            "invalid_annual_rate"
        );
        assert_eq!(
            code(Terms {
                annual_rate: "0.0512345".parse().unwrap(),
                ..ok.clone()
            }),
            "invalid_annual_rate"
        );
        assert_eq!(
            code(Terms {
                term_months: 0,
                ..ok.clone()
            }),
            "invalid_term"
        );
        assert_eq!(
            code(Terms {
                grace_months: 12,
                ..ok.clone()
            }),
            "invalid_grace"
        );
    }

    proptest! {
        #[test]
        fn every_schedule_repays_exactly_the_principal(
            principal in 1u128..=PRINCIPAL_MAX,
            rate_micro in 0u64..=200_000,
            n in 1u32..=TERM_MONTHS_MAX,
            grace_share in 0u32..100,
            method in prop::sample::select(vec![RepaymentMethod::EqualPayment, RepaymentMethod::EqualPrincipal, RepaymentMethod::Bullet]),
            day in 1u8..=31,
        ) {
            let start = Date::from_calendar_date(2026, Month::January, day).unwrap();
            let grace = (n - 1) * grace_share / 100;
            let t = Terms {
                principal,
                annual_rate: Decimal::new(rate_micro as i64, 6),
                term_months: n,
                method,
                grace_months: grace,
                start_date: start,
            };
            let s = schedule(&t).unwrap();
            prop_assert_eq!(s.len() as u32, n);
            prop_assert_eq!(s.iter().map(|i| i.principal).sum::<u128>(), principal);
            prop_assert_eq!(s.last().unwrap().balance, 0);
            let mut balance = principal;
            for i in &s {
                prop_assert_eq!(i.payment, i.principal + i.interest);
                balance -= i.principal;
                prop_assert_eq!(i.balance, balance);
                if i.number <= grace {
                    prop_assert_eq!(i.principal, 0);
                }
            }
        }
    }
}
