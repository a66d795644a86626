//! The product catalogue's rules, pure: what valid terms are for each kind of product, how a
//! rate is found for a term and a grade, and how versions move through draft → published →
//! retired. No I/O, no clock (today comes in).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::Date;

/// Fractional digits a rate may carry at most (0.000001 = 0.0001%).
pub const RATE_SCALE_MAX: u32 = 6;
/// The highest annual rate a consumer loan may charge in Korea (대부업법/이자제한법: 20%).
pub const LEGAL_MAX_LOAN_RATE: Decimal = Decimal::from_parts(20, 0, 0, false, 2);
/// Terms in months at most (50 years).
pub const TERM_MONTHS_MAX: u32 = 600;
/// Fees and rate tiers per version at most.
pub const ITEMS_MAX: usize = 64;

/// What a product is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 입출금: money in and out any time; no term.
    DemandDeposit,
    /// 정기예금: a sum held for a term.
    TermDeposit,
    /// 적금: monthly instalments for a term.
    InstallmentSavings,
    /// 신용대출: an unsecured personal credit loan.
    PersonalCreditLoan,
}

impl Kind {
    /// Whether it lends (rates capped by law, repayment methods required).
    pub fn is_loan(self) -> bool {
        self == Kind::PersonalCreditLoan
    }
}

/// How a loan is repaid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RepaymentMethod {
    /// 원리금균등: equal payments of principal and interest.
    EqualPayment,
    /// 원금균등: equal principal, interest on the balance.
    EqualPrincipal,
    /// 만기일시: interest monthly, principal at maturity.
    Bullet,
}

/// A version's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Being written; editable; never sold.
    Draft,
    /// Immutable; in force from its effective date until a later version's.
    Published,
    /// Immutable; no longer sold (contracts signed under it keep pointing at it).
    Retired,
}

impl Status {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Published => "published",
            Status::Retired => "retired",
        }
    }

    /// The status a wire name stands for.
    pub fn from_name(name: &str) -> Option<Status> {
        [Status::Draft, Status::Published, Status::Retired]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// A version's terms: everything a contract signed under it relies on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// ISO 4217; `KRW` (amounts in whole won).
    pub currency: String,
    /// Annual interest rates.
    pub rates: Rates,
    /// Fees.
    #[serde(default)]
    pub fees: Vec<Fee>,
    /// Amounts allowed, in whole won.
    pub amount: Range<Money>,
    /// Terms allowed, in months (none for a demand deposit).
    pub term_months: Option<Range<u32>>,
    /// How a loan may be repaid (loans only).
    #[serde(default)]
    pub repayment_methods: Vec<RepaymentMethod>,
    /// Who may take it.
    pub eligibility: Eligibility,
}

/// Whole won as a decimal string.
pub type Money = String;

/// Annual rates as decimal fractions (`"0.0325"` is 3.25%): base + spread, a tier's spread
/// replacing the spread where it applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// The base rate.
    #[schema(value_type = String)]
    pub base: Decimal,
    /// The spread over the base.
    #[schema(value_type = String)]
    pub spread: Decimal,
    /// Spreads for terms and credit grades; the first that matches applies.
    #[serde(default)]
    pub tiers: Vec<Tier>,
}

/// A spread for a range of terms and, for loans, a credit grade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Shortest term it applies to (months).
    pub min_term_months: Option<u32>,
    /// Longest term it applies to (months).
    pub max_term_months: Option<u32>,
    /// The credit grade (1 best … 10) it applies to; none: every grade.
    pub grade: Option<u8>,
    /// The spread over the base.
    #[schema(value_type = String)]
    pub spread: Decimal,
}

/// A fee: a fixed amount or a rate of the amount.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fee {
    /// `[a-z_]+`, e.g. `early_termination`, `prepayment`.
    pub code: String,
    /// A fixed amount in whole won.
    pub amount: Option<Money>,
    /// A rate of the amount concerned.
    #[schema(value_type = Option<String>)]
    pub rate: Option<Decimal>,
}

/// An inclusive range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Range<T> {
    /// The least.
    pub min: T,
    /// The most.
    pub max: T,
}

/// Who may take the product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    /// Youngest age (years).
    pub min_age: u8,
    /// Oldest age.
    pub max_age: Option<u8>,
    /// Whether the customer's identity must be verified (KYC `verified`).
    pub kyc_verified: bool,
    /// Least annual income in whole won (loans).
    pub min_annual_income: Option<Money>,
    /// Credit grades accepted (loans; 1 best … 10).
    #[serde(default)]
    pub grades: Vec<u8>,
}

/// Why terms or a lifecycle step were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TermsError {
    /// Where (a dotted path).
    pub field: String,
    /// The rule.
    pub reason: String,
}

fn refuse<T>(field: &str, reason: impl Into<String>) -> Result<T, TermsError> {
    Err(TermsError {
        field: field.to_owned(),
        reason: reason.into(),
    })
}

fn money(field: &str, text: &str) -> Result<u64, TermsError> {
    kernel::decimal::parse_u64(text)
        .map_or_else(|| refuse(field, "a decimal string of whole won"), Ok)
}

fn rate_digits(field: &str, rate: Decimal) -> Result<(), TermsError> {
    if rate.scale() > RATE_SCALE_MAX && rate.normalize().scale() > RATE_SCALE_MAX {
        return refuse(field, format!("at most {RATE_SCALE_MAX} decimal places"));
    }
    Ok(())
}

/// Checks terms for a product of `kind`: bounds, the shapes each kind needs, and that every
/// rate the terms can produce is between 0 and 1 — and, for a loan, at most the legal maximum.
pub fn validate(kind: Kind, terms: &Terms) -> Result<(), TermsError> {
    if terms.currency != "KRW" {
        return refuse("currency", "only KRW is offered");
    }
    let min = money("amount.min", &terms.amount.min)?;
    let max = money("amount.max", &terms.amount.max)?;
    if min == 0 || min > max {
        return refuse("amount", "1 ≤ min ≤ max");
    }
    match (&terms.term_months, kind) {
        (Some(_), Kind::DemandDeposit) => {
            return refuse("term_months", "a demand deposit has no term");
        }
        (None, Kind::DemandDeposit) => {}
        (None, _) => return refuse("term_months", "required for this kind of product"),
        (Some(t), _) if t.min == 0 || t.min > t.max || t.max > TERM_MONTHS_MAX => {
            return refuse("term_months", format!("1 ≤ min ≤ max ≤ {TERM_MONTHS_MAX}"));
        }
        (Some(_), _) => {}
    }
    if kind.is_loan() == terms.repayment_methods.is_empty() {
        return refuse(
            "repayment_methods",
            if kind.is_loan() {
                "a loan needs at least one"
            } else {
                "only loans have them"
            },
        );
    }
    let mut methods = terms.repayment_methods.clone();
    methods.dedup();
    if methods.len() != terms.repayment_methods.len() {
        return refuse("repayment_methods", "each method at most once");
    }
    if terms.fees.len() > ITEMS_MAX || terms.rates.tiers.len() > ITEMS_MAX {
        return refuse(
            "fees",
            format!("at most {ITEMS_MAX} fees and {ITEMS_MAX} tiers"),
        );
    }
    for (i, fee) in terms.fees.iter().enumerate() {
        let field = format!("fees[{i}]");
        if fee.code.is_empty()
            || fee.code.len() > 40
            || !fee
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return refuse(&field, "code is [a-z_]{1,40}");
        }
        if terms.fees[..i].iter().any(|f| f.code == fee.code) {
            return refuse(&field, "codes are unique");
        }
        match (&fee.amount, fee.rate) {
            (Some(amount), None) => {
                money(&format!("{field}.amount"), amount)?;
            }
            (None, Some(rate)) => {
                rate_digits(&format!("{field}.rate"), rate)?;
                if rate.is_sign_negative() || rate >= Decimal::ONE {
                    return refuse(&format!("{field}.rate"), "0 ≤ rate < 1");
                }
            }
            _ => return refuse(&field, "exactly one of amount and rate"),
        }
    }
    let rates = &terms.rates;
    rate_digits("rates.base", rates.base)?;
    rate_digits("rates.spread", rates.spread)?;
    for (i, tier) in rates.tiers.iter().enumerate() {
        let field = format!("rates.tiers[{i}]");
        rate_digits(&format!("{field}.spread"), tier.spread)?;
        if tier.grade.is_some_and(|g| !(1..=10).contains(&g)) {
            return refuse(&field, "grade is 1 to 10");
        }
        if tier.grade.is_some() && !kind.is_loan() {
            return refuse(&field, "only loans price by grade");
        }
        if let (Some(lo), Some(hi)) = (tier.min_term_months, tier.max_term_months)
            && lo > hi
        {
            return refuse(&field, "min_term_months ≤ max_term_months");
        }
    }
    let cap = if kind.is_loan() {
        LEGAL_MAX_LOAN_RATE
    } else {
        Decimal::ONE
    };
    for (field, rate) in std::iter::once(("rates".to_owned(), rates.base + rates.spread)).chain(
        rates
            .tiers
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("rates.tiers[{i}]"), rates.base + t.spread)),
    ) {
        if rate.is_sign_negative() || rate > cap || (!kind.is_loan() && rate == Decimal::ONE) {
            return refuse(
                &field,
                if kind.is_loan() {
                    format!(
                        "base + spread must be between 0 and the legal maximum {LEGAL_MAX_LOAN_RATE}"
                    )
                } else {
                    "base + spread must be at least 0 and below 1".to_owned()
                },
            );
        }
    }
    let e = &terms.eligibility;
    if e.max_age.is_some_and(|max| max < e.min_age) {
        return refuse("eligibility.max_age", "at least min_age");
    }
    if let Some(income) = &e.min_annual_income {
        money("eligibility.min_annual_income", income)?;
    }
    if e.grades.iter().any(|g| !(1..=10).contains(g)) {
        return refuse("eligibility.grades", "grades are 1 to 10");
    }
    if !e.grades.is_empty() && !kind.is_loan() {
        return refuse("eligibility.grades", "only loans check grades");
    }
    Ok(())
}

/// The annual rate for a term and (for loans) a credit grade: base plus the spread of the
/// first tier that matches, or the default spread. Exact; no rounding.
pub fn rate_for(terms: &Terms, term_months: Option<u32>, grade: Option<u8>) -> Decimal {
    let matches = |t: &&Tier| {
        let term_ok = match term_months {
            Some(m) => {
                t.min_term_months.is_none_or(|lo| m >= lo)
                    && t.max_term_months.is_none_or(|hi| m <= hi)
            }
            None => t.min_term_months.is_none() && t.max_term_months.is_none(),
        };
        term_ok && t.grade.is_none_or(|g| Some(g) == grade)
    };
    let spread = terms
        .rates
        .tiers
        .iter()
        .find(matches)
        .map_or(terms.rates.spread, |t| t.spread);
    terms.rates.base + spread
}

/// A version as the rules see it.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionState {
    /// 1, 2, 3, …
    pub version: i64,
    /// Its status.
    pub status: Status,
    /// The first day it is in force.
    pub effective_from: Date,
}

/// Why a lifecycle step was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// Only a draft can be edited or published.
    #[error("version {0} is {1}; only a draft can be changed or published")]
    NotDraft(i64, &'static str),
    /// Only a published version can be retired.
    #[error("version {0} is {1}; only a published version can be retired")]
    NotPublished(i64, &'static str),
    /// A product has one draft at a time.
    #[error("version {0} is already a draft; edit or publish it")]
    DraftExists(i64),
    /// Terms cannot take effect in the past.
    #[error("effective_from is before today; terms never take effect retroactively")]
    Backdated,
    /// Versions take effect in order.
    #[error("effective_from must be after version {0}'s ({1})")]
    NotAfter(i64, Date),
}

/// Whether `version` (a draft) may be published now: not backdated, and taking effect after
/// every version published before it, so exactly one version is in force on any day.
pub fn check_publish(
    versions: &[VersionState],
    version: i64,
    today: Date,
) -> Result<(), LifecycleError> {
    let Some(draft) = versions.iter().find(|v| v.version == version) else {
        return Err(LifecycleError::NotDraft(version, "missing"));
    };
    if draft.status != Status::Draft {
        return Err(LifecycleError::NotDraft(version, draft.status.name()));
    }
    if draft.effective_from < today {
        return Err(LifecycleError::Backdated);
    }
    if let Some(last) = versions
        .iter()
        .filter(|v| v.status != Status::Draft)
        .max_by_key(|v| v.effective_from)
        && draft.effective_from <= last.effective_from
    {
        return Err(LifecycleError::NotAfter(last.version, last.effective_from));
    }
    Ok(())
}

/// The version in force on `date`: of the versions ever published, the one with the latest
/// effective date on or before `date` — unless it was retired (then the product is not sold).
pub fn in_force(versions: &[VersionState], date: Date) -> Option<i64> {
    versions
        .iter()
        .filter(|v| v.status != Status::Draft && v.effective_from <= date)
        .max_by_key(|v| v.effective_from)
        .filter(|v| v.status == Status::Published)
        .map(|v| v.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn loan_terms() -> Terms {
        serde_json::from_value(serde_json::json!({
            "currency": "KRW",
            "rates": {"base": "0.035", "spread": "0.04", "tiers": [
                {"grade": 1, "spread": "0.015"},
                {"grade": 2, "spread": "0.02"},
                {"min_term_months": 37, "spread": "0.05"}
            ]},
            "fees": [{"code": "prepayment", "rate": "0.012"}],
            "amount": {"min": "1000000", "max": "100000000"},
            "term_months": {"min": 6, "max": 60},
            "repayment_methods": ["equal_payment", "equal_principal", "bullet"],
            "eligibility": {"min_age": 19, "kyc_verified": true, "min_annual_income": "24000000", "grades": [1, 2, 3, 4, 5, 6]}
        }))
        .unwrap()
    }

    #[test]
    fn a_loans_rate_is_base_plus_the_first_matching_tier_or_the_default_spread() {
        let terms = loan_terms();
        validate(Kind::PersonalCreditLoan, &terms).unwrap();
        assert_eq!(rate_for(&terms, Some(12), Some(1)).to_string(), "0.050");
        assert_eq!(rate_for(&terms, Some(12), Some(2)).to_string(), "0.055");
        assert_eq!(rate_for(&terms, Some(12), Some(5)).to_string(), "0.075");
        assert_eq!(rate_for(&terms, Some(48), Some(5)).to_string(), "0.085");
        assert_eq!(
            rate_for(&terms, Some(48), Some(1)).to_string(),
            "0.050",
            "first match wins"
        );
    }

    #[test]
    fn terms_break_rules_with_a_named_field() {
        type Case = (Kind, fn(&mut Terms), &'static str);
        let cases: Vec<Case> = vec![
            (
                Kind::PersonalCreditLoan,
                |t| t.rates.tiers[2].spread = "0.17".parse().unwrap(),
                "rates.tiers[2]",
            ),
            (
                Kind::PersonalCreditLoan,
                |t| t.repayment_methods.clear(),
                "repayment_methods",
            ),
            (
                Kind::TermDeposit,
                |t| {
                    t.eligibility.grades.clear();
                    t.rates.tiers.clear()
                },
                "repayment_methods",
            ),
            (
                Kind::DemandDeposit,
                |t| {
                    t.repayment_methods.clear();
                    t.rates.tiers.clear();
                    t.eligibility.grades.clear()
                },
                "term_months",
            ),
            (
                Kind::PersonalCreditLoan,
                |t| t.amount.min = "0".into(),
                "amount",
            ),
            (
                Kind::PersonalCreditLoan,
                |t| t.amount.max = "1.5".into(),
                "amount.max",
            ),
            (
                Kind::PersonalCreditLoan,
                |t| t.currency = "USD".into(),
                "currency",
            ),
            (
                Kind::PersonalCreditLoan,
                |t| t.rates.base = "0.0350001".parse().unwrap(),
                "rates.base",
            ),
            (
                Kind::PersonalCreditLoan,
                |t| t.fees[0].amount = Some("1000".into()),
                "fees[0]",
            ),
            (
                Kind::PersonalCreditLoan,
                |t| t.term_months = Some(Range { min: 12, max: 6 }),
                "term_months",
            ),
            (
                Kind::PersonalCreditLoan,
                |t| t.eligibility.grades.push(11),
                "eligibility.grades",
            ),
            (
                Kind::PersonalCreditLoan,
                |t| t.rates.spread = "-0.04".parse().unwrap(),
                "rates",
            ),
        ];
        for (kind, change, field) in cases {
            let mut terms = loan_terms();
            change(&mut terms);
            assert_eq!(validate(kind, &terms).unwrap_err().field, field);
        }
        // A 20% loan is the legal maximum, allowed; a deposit's trailing zeros are fine.
        let mut terms = loan_terms();
        terms.rates.tiers[2].spread = "0.165".parse().unwrap();
        validate(Kind::PersonalCreditLoan, &terms).unwrap();
        terms.rates.base = "0.03500000".parse().unwrap();
        validate(Kind::PersonalCreditLoan, &terms).unwrap();
    }

    fn v(version: i64, status: Status, from: Date) -> VersionState {
        VersionState {
            version,
            status,
            effective_from: from,
        }
    }

    #[test]
    fn versions_take_effect_in_order_never_retroactively_and_retiring_withdraws() {
        let today = date!(2026 - 11 - 27);
        let mut versions = vec![v(1, Status::Draft, date!(2026 - 12 - 01))];
        check_publish(&versions, 1, today).unwrap();
        versions[0].status = Status::Published;
        assert_eq!(in_force(&versions, date!(2026 - 11 - 30)), None);
        assert_eq!(in_force(&versions, date!(2026 - 12 - 01)), Some(1));
        assert_eq!(
            check_publish(&versions, 1, today),
            Err(LifecycleError::NotDraft(1, "published"))
        );

        versions.push(v(2, Status::Draft, date!(2026 - 12 - 01)));
        assert_eq!(
            check_publish(&versions, 2, today),
            Err(LifecycleError::NotAfter(1, date!(2026 - 12 - 01)))
        );
        versions[1].effective_from = date!(2026 - 11 - 26);
        assert_eq!(
            check_publish(&versions, 2, today),
            Err(LifecycleError::Backdated)
        );
        versions[1].effective_from = date!(2027 - 01 - 01);
        check_publish(&versions, 2, today).unwrap();
        versions[1].status = Status::Published;
        assert_eq!(in_force(&versions, date!(2026 - 12 - 31)), Some(1));
        assert_eq!(in_force(&versions, date!(2027 - 06 - 01)), Some(2));
        versions[1].status = Status::Retired;
        assert_eq!(
            in_force(&versions, date!(2027 - 06 - 01)),
            None,
            "retired: not sold, v1 does not return"
        );
        assert_eq!(in_force(&versions, date!(2026 - 12 - 31)), Some(1));
    }
}
