//! Credit decisions, pure: an evaluation and a loan product's terms give approve (with the
//! limit and the rate from the product's pricing grid for the grade), refer to a loan officer,
//! or decline — each with the reasons, so a decision can be explained and replayed.

use crate::credit::{Evaluation, Inputs, Requested};
use products::model::{RepaymentMethod, Terms, rate_for};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The bank's referral policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Grades from this one down (numerically up) that are eligible go to a loan officer.
    pub refer_from_grade: u8,
    /// A DSR within this margin under the cap goes to a loan officer.
    pub dsr_refer_margin: Decimal,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            refer_from_grade: 6,
            dsr_refer_margin: Decimal::new(5, 2),
        }
    }
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Decision {
    /// Lend: up to `limit` won at `annual_rate`.
    Approve {
        /// The most that may be lent.
        #[serde(with = "kernel::decimal::u128_string")]
        limit: u128,
        /// The product's rate for the term and the grade.
        annual_rate: Decimal,
    },
    /// A loan officer decides.
    Refer {
        /// Why (`F01` grade in the referral band, `F02` DSR near the cap).
        reasons: Vec<String>,
    },
    /// Do not lend.
    Decline {
        /// Why (codes below).
        reasons: Vec<String>,
    },
}

/// Decides. Decline reasons: `D01` DSR above the cap, `D02` grade not accepted by the
/// product, `D03` income below the product's minimum, `D04` amount outside the product's
/// range, `D05` term outside its range, `D06` repayment method not offered.
/// `dsr_cap` is the cap of the model that made `evaluation`.
pub fn decide(
    product: &Terms,
    inputs: &Inputs,
    requested: &Requested,
    evaluation: &Evaluation,
    dsr_cap: Decimal,
    policy: &Policy,
) -> Decision {
    let mut decline = Vec::new();
    if !evaluation.dsr_within_cap {
        decline.push("D01");
    }
    let grades = &product.eligibility.grades;
    if !grades.is_empty() && !grades.contains(&evaluation.grade) {
        decline.push("D02");
    }
    let whole = |text: &str| text.parse::<u128>().ok();
    if let Some(min) = product
        .eligibility
        .min_annual_income
        .as_deref()
        .and_then(whole)
        && inputs.annual_income < min
    {
        decline.push("D03");
    }
    let (min_amount, max_amount) = (
        whole(&product.amount.min).unwrap_or(0),
        whole(&product.amount.max).unwrap_or(u128::MAX),
    );
    if requested.principal < min_amount || requested.principal > max_amount {
        decline.push("D04");
    }
    if let Some(range) = &product.term_months
        && !(range.min..=range.max).contains(&requested.term_months)
    {
        decline.push("D05");
    }
    if !offers(product, requested.method) {
        decline.push("D06");
    }
    if !decline.is_empty() {
        return Decision::Decline {
            reasons: decline.into_iter().map(String::from).collect(),
        };
    }
    let mut refer = Vec::new();
    if evaluation.grade >= policy.refer_from_grade {
        refer.push("F01");
    }
    if evaluation.dsr + policy.dsr_refer_margin > dsr_cap {
        refer.push("F02");
    }
    if !refer.is_empty() {
        return Decision::Refer {
            reasons: refer.into_iter().map(String::from).collect(),
        };
    }
    Decision::Approve {
        limit: requested.principal.min(max_amount),
        annual_rate: rate_for(product, Some(requested.term_months), Some(evaluation.grade)),
    }
}

fn offers(product: &Terms, method: RepaymentMethod) -> bool {
    product.repayment_methods.is_empty() || product.repayment_methods.contains(&method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credit::{DEFAULT_MODEL, Model};

    fn product() -> Terms {
        serde_json::from_value(serde_json::json!({
            "currency": "KRW",
            "rates": {"base": "0.035", "spread": "0.04", "tiers": [
                {"grade": 1, "spread": "0.015"}, {"grade": 2, "spread": "0.02"}]},
            "amount": {"min": "1000000", "max": "50000000"},
            "term_months": {"min": 6, "max": 60},
            "repayment_methods": ["equal_payment", "equal_principal"],
            "eligibility": {"min_age": 19, "kyc_verified": true, "min_annual_income": "24000000",
                            "grades": [1, 2, 3, 4, 5, 6, 7]}
        }))
        .unwrap()
    }

    fn inputs() -> Inputs {
        Inputs {
            annual_income: 60_000_000,
            existing_debt: 20_000_000,
            existing_annual_debt_service: 6_000_000,
            delinquencies_12m: 0,
            employment_months: 48,
            internal_months: 30,
            bureau_score: Some(920),
        }
    }

    fn loan(principal: u128) -> Requested {
        Requested {
            principal,
            annual_rate: "0.05".parse().unwrap(),
            term_months: 12,
            method: RepaymentMethod::EqualPayment,
            grace_months: 0,
            start_date: time::macros::date!(2026 - 01 - 15),
        }
    }

    fn decide_for(inputs: &Inputs, requested: &Requested) -> Decision {
        let model = Model::parse(DEFAULT_MODEL).unwrap();
        let evaluation = model.evaluate(inputs, requested).unwrap();
        decide(
            &product(),
            inputs,
            requested,
            &evaluation,
            model.dsr_cap,
            &Policy::default(),
        )
    }

    #[test]
    fn a_strong_applicant_is_approved_at_the_grade_rate() {
        assert_eq!(
            decide_for(&inputs(), &loan(10_000_000)),
            Decision::Approve {
                limit: 10_000_000,
                annual_rate: "0.050".parse().unwrap()
            },
            "grade 1: 0.035 + 0.015"
        );
    }

    #[test]
    fn breaking_the_product_or_the_dsr_declines_with_every_reason() {
        let poor = Inputs {
            annual_income: 20_000_000,
            ..inputs()
        };
        let mut far = loan(60_000_000);
        far.term_months = 72;
        far.method = RepaymentMethod::Bullet;
        assert_eq!(
            decide_for(&poor, &far),
            Decision::Decline {
                reasons: ["D01", "D03", "D04", "D05", "D06"]
                    .map(String::from)
                    .to_vec()
            }
        );
    }

    #[test]
    fn the_referral_band_and_a_dsr_near_the_cap_go_to_a_loan_officer() {
        // Grade 6 or worse (but accepted by the product) is referred.
        let middling = Inputs {
            bureau_score: Some(650),
            delinquencies_12m: 1,
            ..inputs()
        };
        let model = Model::parse(DEFAULT_MODEL).unwrap();
        let e = model.evaluate(&middling, &loan(10_000_000)).unwrap();
        assert!(e.grade >= 6 && e.grade <= 7, "grade {}", e.grade);
        assert!(matches!(
            decide_for(&middling, &loan(10_000_000)),
            Decision::Refer { ref reasons } if reasons.contains(&"F01".to_owned())
        ));
        // 12M of existing service: DSR 0.37, within 5 points of the 0.40 cap.
        let tighter = Inputs {
            existing_annual_debt_service: 12_000_000,
            ..inputs()
        };
        assert!(matches!(
            decide_for(&tighter, &loan(10_000_000)),
            Decision::Refer { ref reasons } if reasons == &["F02".to_owned()]
        ));
    }
}
