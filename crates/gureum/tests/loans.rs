//! End to end on the real binary: `POST /v1/loans/quote` answers the contract exactly
//! and refuses bad terms with problem+json.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::Server;

#[test]
fn gureum_up_quotes_a_schedule_to_the_won() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = server.http();
    let teller = server.http_as(&server.key_for(&["teller"]));
    let officer = server.http_as(&server.key_for(&["loan_officer"]));
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

    // A credit evaluation: stored sealed, read back with permission, replayed identically.
    let (_, customer) = http.call(
        Method::POST,
        "/v1/customers",
        &[],
        Some(json!({"name": "김하늘", "rrn": "900101-1234568"})),
    );
    let evaluation = json!({
        "customer_id": customer["id"],
        "inputs": {"annual_income": "60000000", "existing_debt": "20000000",
                   "existing_annual_debt_service": "12000000", "delinquencies_12m": 0,
                   "employment_months": 48, "internal_months": 30, "bureau_score": 920},
        "requested": {"principal": "10000000", "annual_rate": "0.055", "term_months": 12,
                      "method": "equal_payment", "grace_months": 0, "start_date": "2026-01-15"}
    });
    let (status, problem) = teller.call(
        Method::POST,
        "/v1/credit/evaluations",
        &[],
        Some(evaluation.clone()),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("permission_denied"))
    );
    let (status, evaluated) = officer.call(
        Method::POST,
        "/v1/credit/evaluations",
        &[],
        Some(evaluation),
    );
    assert_eq!(status, 201, "{evaluated}");
    let result = &evaluated["evaluation"];
    assert_eq!(
        (
            result["score"].as_u64(),
            result["grade"].as_u64(),
            result["dsr"].as_str(),
            result["reasons"].clone()
        ),
        (Some(950), Some(1), Some("0.3717"), json!(["R06"]))
    );
    let id = evaluated["id"].as_str().unwrap();
    let (status, read) = officer.call(
        Method::GET,
        &format!("/v1/credit/evaluations/{id}"),
        &[],
        None,
    );
    assert_eq!((status, &read["evaluation"]), (200, result));
    let (status, replay) = officer.call(
        Method::POST,
        &format!("/v1/credit/evaluations/{id}/replay"),
        &[],
        None,
    );
    assert_eq!((status, replay["identical"].as_bool()), (200, Some(true)));

    // An application under a published loan product: referred (DSR near the cap), then
    // approved by a loan officer from the queue.
    let today = store::sql::today_kst().to_string();
    http.call(Method::POST, "/v1/products", &[], Some(json!({
        "code": "LOAN-CREDIT", "kind": "personal_credit_loan", "name": "구름 신용대출", "effective_from": today,
        "terms": {"currency": "KRW", "rates": {"base": "0.035", "spread": "0.04", "tiers": [{"grade": 1, "spread": "0.015"}]},
                  "amount": {"min": "1000000", "max": "50000000"}, "term_months": {"min": 6, "max": 60},
                  "repayment_methods": ["equal_payment"],
                  "eligibility": {"min_age": 19, "kyc_verified": true, "grades": [1, 2, 3, 4, 5, 6, 7]}}})));
    http.call(
        Method::POST,
        "/v1/products/LOAN-CREDIT/versions/1/publish",
        &[],
        None,
    );
    let mut application = json!({"customer_id": customer["id"], "product_code": "LOAN-CREDIT"});
    application["inputs"] = read["inputs"].clone();
    application["requested"] = read["requested"].clone();
    let (status, applied) = officer.call(
        Method::POST,
        "/v1/loans/applications",
        &[],
        Some(application),
    );
    assert_eq!(
        (status, applied["status"].as_str()),
        (201, Some("referred")),
        "{applied}"
    );
    let (_, queue) = officer.call(
        Method::GET,
        "/v1/loans/applications?status=referred",
        &[],
        None,
    );
    assert_eq!(queue[0]["id"], applied["id"]);
    let (status, decided) = officer.call(
        Method::POST,
        &format!(
            "/v1/loans/applications/{}/decision",
            applied["id"].as_str().unwrap()
        ),
        &[],
        Some(json!({"outcome": "approve", "reason": "stable salary, verified"})),
    );
    assert_eq!(status, 200, "{decided}");
    // The decision names the officer as the edge authenticated them.
    let (_, me) = officer.call(Method::GET, "/v1/auth/whoami", &[], None);
    assert_eq!(me["roles"], json!(["loan_officer"]));
    assert_eq!(
        (
            decided["status"].as_str(),
            decided["decision"]["outcome"].as_str(),
            decided["decision"]["annual_rate"].as_str(),
            decided["decided_by"].as_str()
        ),
        (
            Some("approved"),
            Some("approve"),
            Some("0.050"),
            me["principal"].as_str()
        )
    );

    // Lending's keyring rotates while it runs: every data key (two evaluations, one
    // application) re-wrapped, and what was sealed still opens.
    let keys = |args: &[&str]| {
        let out = support::gureum()
            .args(["keys"])
            .args(args)
            .args(["--service", "lending", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let rotated = keys(&["rotate"]);
    assert_eq!(rotated["rewrapped"], 3, "{rotated}");
    assert_ne!(rotated["previous"], rotated["current"]);
    let status = keys(&["status"]);
    let current = status["master_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()
        .clone();
    assert_eq!(current["data_keys"], 3, "{status}");
    let (status_code, again) = officer.call(
        Method::GET,
        &format!("/v1/credit/evaluations/{id}"),
        &[],
        None,
    );
    assert_eq!((status_code, &again["evaluation"]), (200, result));
    assert!(server.stop().success());
}

/// The README's walk-through: a verified customer with a deposit account applies, is approved,
/// accepts the offer, signs the contract, is paid out, and repays early — exactly once per
/// Idempotency-Key — and the loan is there after a restart.
#[test]
fn gureum_up_takes_a_customer_from_application_to_a_disbursed_loan_and_its_first_repayment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = server.http();
    let today = store::sql::today_kst().to_string();
    for (code, product) in [
        (
            "DEP-FREE",
            json!({"code": "DEP-FREE", "kind": "demand_deposit", "name": "구름 통장", "effective_from": today,
                   "terms": {"currency": "KRW", "rates": {"base": "0.015", "spread": "0.005"},
                             "amount": {"min": "1", "max": "1000000000000"},
                             "eligibility": {"min_age": 19, "kyc_verified": true}}}),
        ),
        (
            "LOAN-CREDIT",
            json!({"code": "LOAN-CREDIT", "kind": "personal_credit_loan", "name": "구름 신용대출", "effective_from": today,
                   "terms": {"currency": "KRW", "rates": {"base": "0.035", "spread": "0.04", "tiers": [{"grade": 1, "spread": "0.015"}]},
                             "fees": [{"code": "prepayment", "rate": "0.012"}],
                             "amount": {"min": "1000000", "max": "50000000"}, "term_months": {"min": 6, "max": 60},
                             "repayment_methods": ["equal_payment", "equal_principal"],
                             "eligibility": {"min_age": 19, "kyc_verified": true, "grades": [1, 2, 3, 4, 5, 6, 7]}}}),
        ),
    ] {
        assert_eq!(
            http.call(Method::POST, "/v1/products", &[], Some(product))
                .0,
            201
        );
        let publish = format!("/v1/products/{code}/versions/1/publish");
        assert_eq!(http.call(Method::POST, &publish, &[], None).0, 200);
    }
    let (_, customer) = http.call(
        Method::POST,
        "/v1/customers",
        &[],
        Some(json!({"name": "김하늘", "rrn": "900101-1234568"})),
    );
    let customer = customer["id"].as_str().unwrap().to_owned();
    let (status, _) = http.call(
        Method::POST,
        &format!("/v1/customers/{customer}/kyc"),
        &[],
        Some(json!({"status": "verified", "reason": "mobile ID"})),
    );
    assert_eq!(status, 200);
    let (_, account) = http.call(
        Method::POST,
        "/v1/deposits",
        &[],
        Some(json!({"customer_id": customer, "product_code": "DEP-FREE"})),
    );
    let account = account["id"].as_str().unwrap().to_owned();

    let officer = server.http_as(&server.key_for(&["loan_officer", "teller"]));
    let auditor = server.http_as(&server.key_for(&["auditor"]));
    let (status, application) = officer.call(
        Method::POST,
        "/v1/loans/applications",
        &[],
        Some(json!({
            "customer_id": customer, "product_code": "LOAN-CREDIT",
            "inputs": {"annual_income": "60000000", "existing_debt": "20000000",
                       "existing_annual_debt_service": "6000000", "delinquencies_12m": 0,
                       "employment_months": 48, "internal_months": 30, "bureau_score": 920},
            "requested": {"principal": "10000000", "annual_rate": "0.055", "term_months": 12,
                          "method": "equal_payment", "grace_months": 0, "start_date": today}})),
    );
    assert_eq!(
        (status, application["status"].as_str()),
        (201, Some("approved")),
        "{application}"
    );
    let application = application["id"].as_str().unwrap().to_owned();
    let (status, offer) = officer.call(
        Method::GET,
        &format!("/v1/loans/applications/{application}/offer"),
        &[],
        None,
    );
    assert_eq!(status, 200, "{offer}");
    assert_eq!(
        (offer["limit"].as_str(), offer["annual_rate"].as_str()),
        (Some("10000000"), Some("0.050"))
    );
    let accept = json!({"principal": "10000000", "account_id": account});
    let path = format!("/v1/loans/applications/{application}/accept");
    // Bad input is refused with a stable problem code, and nothing is created.
    for (client, body, status, code) in [
        (
            &officer,
            json!({"principal": "ten", "account_id": account}),
            422,
            "invalid_amount",
        ),
        (
            &officer,
            json!({"principal": "10000000"}),
            400,
            "invalid_body",
        ),
        (
            &officer,
            json!({"principal": "60000000", "account_id": account}),
            422,
            "invalid_principal",
        ),
        (&auditor, accept.clone(), 403, "permission_denied"),
    ] {
        let (got, problem) = client.call(Method::POST, &path, &[], Some(body));
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "{problem}"
        );
    }
    let (status, page) = officer.call(Method::GET, "/v1/loans", &[], None);
    assert_eq!(
        (status, page["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, problem) = officer.call(
        Method::GET,
        "/v1/loans/0190f1c2-0000-7000-8000-000000000000",
        &[],
        None,
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("loan_not_found"))
    );
    let (status, loan) = officer.call(Method::POST, &path, &[], Some(accept.clone()));
    assert_eq!(
        (status, loan["status"].as_str()),
        (201, Some("contracted")),
        "{loan}"
    );
    let id = loan["id"].as_str().unwrap().to_owned();
    let contract = loan["contract_id"].as_str().unwrap().to_owned();
    let (status, refused) =
        officer.call(Method::POST, &format!("/v1/loans/{id}/disburse"), &[], None);
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("contract_not_signed"))
    );
    let (_, document) = http.call(Method::GET, &format!("/v1/contracts/{contract}"), &[], None);
    let (status, signed) = http.call(
        Method::POST,
        &format!("/v1/contracts/{contract}/signatures"),
        &[],
        Some(
            json!({"role": "customer", "signer": customer, "method": "app",
                    "document_sha256": document["document_sha256"]}),
        ),
    );
    assert_eq!((status, signed["status"].as_str()), (200, Some("signed")));
    let (status, loan) = officer.call(Method::POST, &format!("/v1/loans/{id}/disburse"), &[], None);
    assert_eq!(
        (
            status,
            loan["status"].as_str(),
            loan["balances"]["principal"].as_str()
        ),
        (200, Some("current"), Some("10000000")),
        "{loan}"
    );
    let (_, deposit) = http.call(Method::GET, &format!("/v1/deposits/{account}"), &[], None);
    assert_eq!(deposit["balance"].as_str(), Some("10000000"));

    // The first repayment: 1,000,000 won of principal early, with the prepayment fee.
    let (status, problem) = officer.call(
        Method::POST,
        &format!("/v1/loans/{id}/prepayments"),
        &[],
        Some(json!({"principal": "1000000"})),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("idempotency_key_required"))
    );
    let repay = |key: &str, body: Value| {
        let headers = [("idempotency-key", key)];
        officer.call(
            Method::POST,
            &format!("/v1/loans/{id}/prepayments"),
            &headers,
            Some(body),
        )
    };
    let (status, receipt) = repay("first-repayment", json!({"principal": "1000000"}));
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(
        (
            receipt["kind"].as_str(),
            receipt["allocation"]["principal"].as_str(),
            receipt["value_date"].as_str()
        ),
        (Some("prepayment"), Some("1000000"), Some(today.as_str()))
    );
    let paid: u128 = receipt["amount"].as_str().unwrap().parse().unwrap();
    let fee: u128 = receipt["allocation"]["prepayment_fee"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(paid, 1_000_000 + fee);
    assert!(fee > 0 && fee <= 12_000, "{fee}");
    let (_, again) = repay("first-repayment", json!({"principal": "1000000"}));
    assert_eq!(again, receipt);
    let (status, reused) = repay("first-repayment", json!({"principal": "2000000"}));
    assert_eq!(
        (status, reused["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    let (_, deposit) = http.call(Method::GET, &format!("/v1/deposits/{account}"), &[], None);
    assert_eq!(
        deposit["balance"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap(),
        10_000_000 - paid
    );
    let (_, schedule) = officer.call(Method::GET, &format!("/v1/loans/{id}/schedule"), &[], None);
    let upcoming = schedule["upcoming"].as_array().unwrap();
    assert_eq!(upcoming.len(), 12);
    let principal: u128 = upcoming
        .iter()
        .map(|r| r["principal"].as_str().unwrap().parse::<u128>().unwrap())
        .sum();
    assert_eq!(principal, 9_000_000, "re-amortised over the same dates");

    // After a restart the loan is as it was; its books on the ledger hold its principal.
    let before = http
        .call(Method::GET, &format!("/v1/loans/{id}"), &[], None)
        .1;
    assert_eq!(server.stop().code(), Some(0));
    let server = Server::start(dir.path());
    let http = server.http();
    let after = http
        .call(Method::GET, &format!("/v1/loans/{id}"), &[], None)
        .1;
    assert_eq!(after, before);
    let principal_account = lending::books::account_id(&id, lending::servicing::Book::Principal, 0);
    let (_, books) = http.call(
        Method::GET,
        &format!("/v1/ledger/accounts/{principal_account}"),
        &[],
        None,
    );
    let debits: u128 = books["debits_posted"].as_str().unwrap().parse().unwrap();
    let credits: u128 = books["credits_posted"].as_str().unwrap().parse().unwrap();
    assert_eq!(debits - credits, 9_000_000);
    // End of day for yesterday runs over deposits and loans (the loan opened today).
    let out = support::gureum()
        .args(["eod", "--json", "--server", &server.url])
        .env("GUREUM_API_KEY", &server.key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["loans"]["loans"], 0, "{report}");
}
