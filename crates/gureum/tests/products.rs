//! End to end on the real binary: `gureum up` serves the product catalogue — a loan product
//! drafted, published and priced by grade, its terms immutable once published, the change
//! permission enforced, and each step on the embedded bus.

mod support;

use serde_json::{Value, json};
use support::{Server, Staff, bus_messages};

#[test]
fn gureum_up_publishes_a_loan_product_and_prices_it_by_grade() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let staff = Staff::new(&server);
    let call = |method: reqwest::Method, path: &str, role: &str, body: Option<Value>| {
        staff.call(role, method, path, body)
    };
    use reqwest::Method;
    let today = store::sql::today_kst().to_string();
    let terms = json!({
        "currency": "KRW",
        "rates": {"base": "0.035", "spread": "0.04", "tiers": [{"grade": 1, "spread": "0.015"}]},
        "fees": [{"code": "prepayment", "rate": "0.012"}],
        "amount": {"min": "1000000", "max": "100000000"},
        "term_months": {"min": 6, "max": 60},
        "repayment_methods": ["equal_payment", "bullet"],
        "eligibility": {"min_age": 19, "kyc_verified": true, "min_annual_income": "24000000", "grades": [1, 2, 3, 4, 5]}
    });
    let product = json!({"code": "LOAN-CREDIT-01", "kind": "personal_credit_loan", "name": "구름 직장인 신용대출",
                         "effective_from": today, "terms": terms});

    let (status, problem) = call(
        Method::POST,
        "/v1/products",
        "teller",
        Some(product.clone()),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("permission_denied"))
    );
    let mut usurious = product.clone();
    usurious["terms"]["rates"]["spread"] = json!("0.19");
    let (status, problem) = call(Method::POST, "/v1/products", "admin", Some(usurious));
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("invalid_terms")),
        "{problem}"
    );
    let (status, draft) = call(Method::POST, "/v1/products", "admin", Some(product));
    assert_eq!(
        (status, draft["status"].as_str(), draft["version"].as_i64()),
        (201, Some("draft"), Some(1)),
        "{draft}"
    );
    let (status, problem) = call(
        Method::GET,
        "/v1/products/LOAN-CREDIT-01/rate?term_months=12&grade=1",
        "customer",
        None,
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("no_version_in_force"))
    );

    let (status, published) = call(
        Method::POST,
        "/v1/products/LOAN-CREDIT-01/versions/1/publish",
        "admin",
        None,
    );
    assert_eq!(
        (status, published["status"].as_str()),
        (200, Some("published"))
    );
    let (_, rate) = call(
        Method::GET,
        "/v1/products/LOAN-CREDIT-01/rate?term_months=12&grade=1",
        "customer",
        None,
    );
    assert_eq!(rate, json!({"version": 1, "annual_rate": "0.05"}));
    let (_, rate) = call(
        Method::GET,
        "/v1/products/LOAN-CREDIT-01/rate?term_months=12&grade=4",
        "customer",
        None,
    );
    assert_eq!(rate, json!({"version": 1, "annual_rate": "0.075"}));
    let (status, problem) = call(
        Method::GET,
        "/v1/products/LOAN-CREDIT-01/rate?term_months=12&grade=9",
        "customer",
        None,
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("grade_not_eligible"))
    );
    let (status, problem) = call(
        Method::GET,
        "/v1/products/LOAN-CREDIT-01/rate?term_months=72&grade=1",
        "customer",
        None,
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("term_not_offered"))
    );

    let (status, problem) = call(
        Method::PUT,
        "/v1/products/LOAN-CREDIT-01/versions/1",
        "admin",
        Some(json!({"effective_from": today, "terms": terms})),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("invalid_lifecycle_step"))
    );
    let (_, catalogue) = call(Method::GET, "/v1/products", "customer", None);
    assert_eq!(catalogue["items"][0]["in_force"]["version"], 1);
    assert_eq!(
        catalogue["items"][0]["in_force"]["terms"]["rates"]["base"],
        "0.035"
    );

    let messages = bus_messages(dir.path(), 2);
    let subjects: Vec<&str> = messages.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        ["products.product.created", "products.version.published"]
    );
    assert_eq!(server.stop().code(), Some(0));
}
