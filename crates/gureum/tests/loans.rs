//! End to end on the real binary: `POST /v1/loans/quote` answers the contract exactly
//! and refuses bad terms with problem+json.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Http, Server};

#[test]
fn gureum_up_quotes_a_schedule_to_the_won() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = Http::new(&server.url);
    let request = json!({"principal": "10000000", "annual_rate": "0.055", "term_months": 12,
                         "method": "equal_payment", "grace_months": 0, "start_date": "2026-01-15"});
    let (status, quote) = http.call(Method::POST, "/v1/loans/quote", &[], Some(request.clone()));
    assert_eq!(status, 200, "{quote}");
    let rows = quote["installments"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    assert_eq!(
        rows[0],
        json!({"number": 1, "due_date": "2026-02-15", "principal": "811655", "interest": "46712",
               "payment": "858367", "balance": "9188345"})
    );
    assert_eq!(
        rows[11],
        json!({"number": 12, "due_date": "2027-01-15", "principal": "853127", "interest": "3985",
               "payment": "857112", "balance": "0"})
    );
    let principal: u128 = rows
        .iter()
        .map(|r| r["principal"].as_str().unwrap().parse::<u128>().unwrap())
        .sum();
    assert_eq!(principal, 10_000_000);

    for (change, status, code) in [
        (json!({"annual_rate": "0.25"}), 422, "invalid_annual_rate"),
        (json!({"grace_months": 12}), 422, "invalid_grace"),
        (json!({"principal": "-1"}), 422, "invalid_principal"),
        (json!({"method": "balloon"}), 400, "invalid_body"),
        (json!({"start_date": "2026-02-30"}), 400, "invalid_date"),
    ] {
        let mut bad: Value = request.clone();
        for (k, v) in change.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let (got, problem) = http.call(Method::POST, "/v1/loans/quote", &[], Some(bad));
        assert_eq!(
            (got, problem["code"].as_str().unwrap()),
            (status, code),
            "{change}"
        );
    }
    assert!(server.stop().success());
}
