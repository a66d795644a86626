//! Credit evaluation, pure and explainable: a points scorecard over binned characteristics,
//! scaled to 1–1000, a grade and its probability of default from the model's cut-offs, the
//! adverse reasons (where the applicant lost the most points), and the debt service ratio
//! (DSR) against its cap. The model is configuration with a version; the same inputs and model
//! always give the same evaluation, so a stored one can be replayed.

use crate::schedule::{self, Terms};
use products::model::RepaymentMethod;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The model shipped with Gureum (`credit-model.json`): a starting point to calibrate, not a
/// calibrated model.
pub const DEFAULT_MODEL: &str = include_str!("../credit-model.json");

/// A scorecard model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// e.g. `2026-11-v1`; stored with every evaluation.
    pub version: String,
    /// Points everyone starts with.
    pub base_points: i32,
    /// The characteristics, each with its bins.
    pub characteristics: Vec<Characteristic>,
    /// Grades, best first: the first whose `min_score` the score reaches applies.
    pub grades: Vec<Grade>,
    /// The largest debt service ratio allowed (0.40: 40% of income).
    pub dsr_cap: Decimal,
}

/// One characteristic of the applicant, binned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Characteristic {
    /// Which input: see [`Inputs::value`].
    pub input: String,
    /// Bins in increasing order of `below`; the first whose `below` exceeds the value applies,
    /// the last (without `below`) takes the rest. A missing input takes the `missing` bin.
    pub bins: Vec<Bin>,
    /// Points when the input was not supplied.
    pub missing: Option<Bin>,
}

/// A bin: values below `below` (after the previous bin's) score `points`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bin {
    /// Exclusive upper bound; none for the last bin.
    pub below: Option<i64>,
    /// Points.
    pub points: i32,
    /// The adverse reason code given when this bin costs points, e.g. `R03`.
    pub reason: Option<String>,
}

/// A grade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grade {
    /// 1 (best) … 10.
    pub grade: u8,
    /// The least score with this grade.
    pub min_score: u16,
    /// Probability of default within 12 months.
    pub pd: Decimal,
}

/// What the applicant brings (amounts in whole won).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Annual income.
    #[serde(with = "kernel::decimal::u128_string")]
    pub annual_income: u128,
    /// Balance of existing debt.
    #[serde(with = "kernel::decimal::u128_string")]
    pub existing_debt: u128,
    /// What existing debt costs a year (principal + interest).
    #[serde(with = "kernel::decimal::u128_string")]
    pub existing_annual_debt_service: u128,
    /// Payments 30+ days late in the last 12 months.
    pub delinquencies_12m: u32,
    /// Months with the current employer.
    pub employment_months: u32,
    /// Months as this bank's customer.
    pub internal_months: u32,
    /// An external bureau score (1–1000), if supplied.
    pub bureau_score: Option<u16>,
}

impl Inputs {
    /// The value of a named input, as the model bins it; `None` when it was not supplied.
    /// `debt_to_income_pct` is existing debt over income, in percent.
    pub fn value(&self, input: &str) -> Result<Option<i64>, EvaluationError> {
        let clamp = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
        Ok(match input {
            "annual_income" => Some(clamp(self.annual_income)),
            "debt_to_income_pct" => Some(
                (self.existing_debt * 100)
                    .checked_div(self.annual_income)
                    .map_or(i64::MAX, clamp),
            ),
            "delinquencies_12m" => Some(i64::from(self.delinquencies_12m)),
            "employment_months" => Some(i64::from(self.employment_months)),
            "internal_months" => Some(i64::from(self.internal_months)),
            "bureau_score" => self.bureau_score.map(i64::from),
            other => return Err(EvaluationError::UnknownInput(other.to_owned())),
        })
    }
}

/// The loan asked for (its debt service counts in the DSR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requested {
    /// Whole won.
    #[serde(with = "kernel::decimal::u128_string")]
    pub principal: u128,
    /// The rate it would carry.
    pub annual_rate: Decimal,
    /// Months.
    pub term_months: u32,
    /// How it would be repaid.
    pub method: RepaymentMethod,
    /// Interest-only months.
    pub grace_months: u32,
    /// When it would be disbursed (the schedule's start: interest runs on actual days).
    #[serde(with = "date_string")]
    pub start_date: time::Date,
}

/// `YYYY-MM-DD`.
pub(crate) mod date_string {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(d: &time::Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<time::Date, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        products::service::parse_date(&text)
            .ok_or_else(|| de::Error::custom("a date is YYYY-MM-DD"))
    }
}

/// An evaluation: the score and everything that explains it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The model's version.
    pub model_version: String,
    /// 1–1000.
    pub score: u16,
    /// 1 (best) … 10.
    pub grade: u8,
    /// Probability of default within 12 months.
    pub pd: Decimal,
    /// Points per characteristic.
    pub contributions: Vec<Contribution>,
    /// The top adverse reason codes, most points lost first (at most three).
    pub reasons: Vec<String>,
    /// (existing + requested annual debt service) / annual income, 4 places, rounded up.
    pub dsr: Decimal,
    /// Whether the DSR is within the model's cap.
    pub dsr_within_cap: bool,
}

/// One characteristic's part of the score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The input.
    pub input: String,
    /// Its value (`None`: not supplied).
    pub value: Option<i64>,
    /// Points earned.
    pub points: i32,
    /// The most this characteristic could have earned.
    pub max_points: i32,
}

/// Why an evaluation could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvaluationError {
    /// The model names an input that does not exist.
    #[error("the model names an unknown input `{0}`")]
    UnknownInput(String),
    /// The model is not usable.
    #[error("the model is not valid: {0}")]
    InvalidModel(String),
    /// The requested loan cannot be scheduled.
    #[error(transparent)]
    Terms(#[from] schedule::TermsError),
    /// No income to measure debt service against.
    #[error("`annual_income` must be more than 0")]
    NoIncome,
}

impl Model {
    /// Parses and checks a model.
    pub fn parse(json: &str) -> Result<Model, EvaluationError> {
        let model: Model =
            serde_json::from_str(json).map_err(|e| EvaluationError::InvalidModel(e.to_string()))?;
        model.check()?;
        Ok(model)
    }

    fn check(&self) -> Result<(), EvaluationError> {
        let bad = |why: String| Err(EvaluationError::InvalidModel(why));
        for c in &self.characteristics {
            Inputs::default().value(&c.input)?;
            if c.bins.is_empty() || c.bins.last().is_some_and(|b| b.below.is_some()) {
                return bad(format!("`{}` must end with a bin without `below`", c.input));
            }
            let bounds: Vec<i64> = c.bins.iter().filter_map(|b| b.below).collect();
            if bounds.windows(2).any(|w| w[0] >= w[1]) || bounds.len() != c.bins.len() - 1 {
                return bad(format!(
                    "`{}`: bins must increase, only the last open",
                    c.input
                ));
            }
        }
        if self.grades.is_empty()
            || self
                .grades
                .windows(2)
                .any(|w| w[0].min_score <= w[1].min_score)
            || self.grades.last().is_some_and(|g| g.min_score > 1)
        {
            return bad("grades go best first with decreasing `min_score`, the last from 1".into());
        }
        if self.dsr_cap <= Decimal::ZERO {
            return bad("`dsr_cap` must be positive".into());
        }
        Ok(())
    }

    /// Evaluates an applicant asking for `requested`.
    pub fn evaluate(
        &self,
        inputs: &Inputs,
        requested: &Requested,
    ) -> Result<Evaluation, EvaluationError> {
        if inputs.annual_income == 0 {
            return Err(EvaluationError::NoIncome);
        }
        let mut contributions = Vec::with_capacity(self.characteristics.len());
        let mut adverse: Vec<(i32, usize, String)> = Vec::new();
        for (order, c) in self.characteristics.iter().enumerate() {
            let value = inputs.value(&c.input)?;
            let bin = match value {
                None => c.missing.as_ref().unwrap_or(&c.bins[0]),
                Some(v) => c
                    .bins
                    .iter()
                    .find(|b| b.below.is_none_or(|below| v < below))
                    .unwrap_or(&c.bins[c.bins.len() - 1]),
            };
            let max_points = c.bins.iter().map(|b| b.points).max().unwrap_or(0);
            let lost = max_points - bin.points;
            if lost > 0
                && let Some(reason) = &bin.reason
            {
                adverse.push((lost, order, reason.clone()));
            }
            contributions.push(Contribution {
                input: c.input.clone(),
                value,
                points: bin.points,
                max_points,
            });
        }
        let total: i32 = self.base_points + contributions.iter().map(|c| c.points).sum::<i32>();
        let score = u16::try_from(total.clamp(1, 1000)).unwrap_or(1);
        let grade = self
            .grades
            .iter()
            .find(|g| score >= g.min_score)
            .unwrap_or(&self.grades[self.grades.len() - 1]);
        adverse.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut reasons: Vec<String> = Vec::new();
        for (_, _, reason) in adverse {
            if !reasons.contains(&reason) && reasons.len() < 3 {
                reasons.push(reason);
            }
        }
        let dsr = dsr(inputs, requested)?;
        Ok(Evaluation {
            model_version: self.version.clone(),
            score,
            grade: grade.grade,
            pd: grade.pd,
            contributions,
            reasons,
            dsr_within_cap: dsr <= self.dsr_cap,
            dsr,
        })
    }
}

/// The debt service ratio: what all debt, the requested loan included, costs in a year (its
/// first twelve instalments, or all of a shorter loan's) over annual income, rounded up to four
/// places (a ratio is never understated).
pub fn dsr(inputs: &Inputs, requested: &Requested) -> Result<Decimal, EvaluationError> {
    if inputs.annual_income == 0 {
        return Err(EvaluationError::NoIncome);
    }
    let instalments = schedule::schedule(&Terms {
        principal: requested.principal,
        annual_rate: requested.annual_rate,
        term_months: requested.term_months,
        method: requested.method,
        grace_months: requested.grace_months,
        start_date: requested.start_date,
    })?;
    let first_year: u128 = instalments.iter().take(12).map(|i| i.payment).sum();
    let service = inputs.existing_annual_debt_service + first_year;
    // Integer ratio in ten-thousandths, rounded up.
    let income = inputs.annual_income;
    let ratio = (service * 10_000).div_ceil(income);
    Ok(Decimal::from_i128_with_scale(
        i128::try_from(ratio).unwrap_or(i128::MAX),
        4,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model() -> Model {
        Model::parse(DEFAULT_MODEL).unwrap()
    }

    fn loan() -> Requested {
        Requested {
            principal: 10_000_000,
            annual_rate: "0.055".parse().unwrap(),
            term_months: 12,
            method: RepaymentMethod::EqualPayment,
            grace_months: 0,
            start_date: time::macros::date!(2026 - 01 - 15),
        }
    }

    fn strong() -> Inputs {
        Inputs {
            annual_income: 60_000_000,
            existing_debt: 20_000_000,
            existing_annual_debt_service: 12_000_000,
            delinquencies_12m: 0,
            employment_months: 48,
            internal_months: 30,
            bureau_score: Some(920),
        }
    }

    #[test]
    fn a_strong_applicant_scores_high_and_is_told_what_held_them_back() {
        let e = model().evaluate(&strong(), &loan()).unwrap();
        // 500 + 160 (bureau) + 90 (no delinquency) + 80 (debt 33% of income) + 60 (4 years
        // employed) + 30 (income 60M) + 30 (30 months a customer).
        assert_eq!(
            (e.score, e.grade, e.pd),
            (950, 1, "0.0020".parse().unwrap())
        );
        assert_eq!(e.reasons, ["R06"], "income bin 30 of 50 points");
        assert_eq!(e.model_version, "2026-11-v1");
        assert_eq!(e.contributions.iter().map(|c| c.points).sum::<i32>(), 450);
    }

    #[test]
    fn a_weak_applicant_gets_the_three_costliest_reasons() {
        let weak = Inputs {
            annual_income: 30_000_000,
            existing_debt: 90_000_000,
            existing_annual_debt_service: 12_000_000,
            delinquencies_12m: 2,
            employment_months: 3,
            internal_months: 1,
            bureau_score: Some(650),
        };
        let e = model().evaluate(&weak, &loan()).unwrap();
        // 500 − 40 − 120 − 150 − 60 + 0 − 10 = 120.
        assert_eq!((e.score, e.grade), (120, 10));
        // Points lost: debt 230, delinquency 210, bureau 200, employment 120, …
        assert_eq!(e.reasons, ["R04", "R03", "R01"]);
        assert!(!e.dsr_within_cap);
    }

    #[test]
    fn a_missing_bureau_score_takes_its_own_bin() {
        let e = model()
            .evaluate(
                &Inputs {
                    bureau_score: None,
                    ..strong()
                },
                &loan(),
            )
            .unwrap();
        assert_eq!(e.score, 950 - 160);
        assert_eq!(e.reasons[0], "R02");
    }

    #[test]
    fn dsr_counts_the_first_year_of_the_new_loan_and_rounds_up() {
        // First year of 10M at 5.5% over 12 months: 11 × 858,367 + 857,112 = 10,299,149;
        // with 12M of existing service over 60M income: 0.37165… → 0.3717.
        let e = model().evaluate(&strong(), &loan()).unwrap();
        assert_eq!(e.dsr, "0.3717".parse().unwrap());
        assert!(e.dsr_within_cap);
        let poorer = Inputs {
            annual_income: 30_000_000,
            ..strong()
        };
        assert_eq!(dsr(&poorer, &loan()).unwrap(), "0.7434".parse().unwrap());
        assert_eq!(
            dsr(
                &Inputs {
                    annual_income: 0,
                    ..strong()
                },
                &loan()
            ),
            Err(EvaluationError::NoIncome)
        );
    }

    #[test]
    fn models_that_cannot_be_applied_are_refused() {
        let unknown = DEFAULT_MODEL.replace("\"internal_months\"", "\"shoe_size\"");
        assert_eq!(
            Model::parse(&unknown),
            Err(EvaluationError::UnknownInput("shoe_size".into()))
        );
        let unordered = DEFAULT_MODEL.replace(
            "{\"below\": 700, \"points\": -40",
            "{\"below\": 500, \"points\": -40",
        );
        assert!(matches!(
            Model::parse(&unordered),
            Err(EvaluationError::InvalidModel(_))
        ));
    }

    proptest! {
        #[test]
        fn every_evaluation_is_within_scale_consistent_and_replayable(
            income in 1u128..1_000_000_000,
            debt in 0u128..2_000_000_000,
            service in 0u128..200_000_000,
            delinquencies in 0u32..10,
            employment in 0u32..600,
            internal in 0u32..600,
            bureau in prop::option::of(1u16..=1000),
        ) {
            let inputs = Inputs {
                annual_income: income,
                existing_debt: debt,
                existing_annual_debt_service: service,
                delinquencies_12m: delinquencies,
                employment_months: employment,
                internal_months: internal,
                bureau_score: bureau,
            };
            let m = model();
            let e = m.evaluate(&inputs, &loan()).unwrap();
            prop_assert!((1..=1000).contains(&e.score));
            let expected = m.grades.iter().find(|g| e.score >= g.min_score).unwrap();
            prop_assert_eq!(e.grade, expected.grade);
            prop_assert!(e.reasons.len() <= 3);
            prop_assert_eq!(m.evaluate(&inputs, &loan()).unwrap(), e);
        }
    }
}
