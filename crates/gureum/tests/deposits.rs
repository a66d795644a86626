//! End to end on the real binary: with `gureum up`, a newcomer onboards two customers, opens
//! deposit accounts under a published product and moves money — exactly once per
//! Idempotency-Key, refused clearly when it breaks a rule, reconciled on the statement, kept
//! across a restart — runs `gureum eod`, and closes an account.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, bus_messages, gureum, publish_demand_deposit, verified_customer};

fn money(v: &Value, field: &str) -> u128 {
    v[field].as_str().unwrap().parse().unwrap()
}

#[test]
fn gureum_up_opens_deposit_accounts_and_moves_money_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = server.http();
    let today = store::sql::today_kst().to_string();
    publish_demand_deposit(&http);
    let alice = verified_customer(&http, "김하늘", "900101-1234568");
    let bob = verified_customer(&http, "이바다", "850505-2345674");

    let open = |customer: &str, key: &str| {
        http.call(
            Method::POST,
            "/v1/deposits",
            &[("idempotency-key", key)],
            Some(json!({"customer_id": customer, "product_code": "DEP-FREE"})),
        )
    };
    let (status, a) = open(&alice, "open-alice");
    assert_eq!(
        (status, a["status"].as_str(), a["rate"].as_str()),
        (201, Some("open"), Some("0.02")),
        "{a}"
    );
    let a_id = a["id"].as_str().unwrap().to_owned();
    let (_, again) = open(&alice, "open-alice");
    assert_eq!(again["id"], a["id"], "the same key opens one account");
    let (_, b) = open(&bob, "open-bob");
    let b_id = b["id"].as_str().unwrap().to_owned();

    let pay = |path: &str, key: Option<&str>, body: Value| {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        http.call(Method::POST, path, &headers, Some(body))
    };
    let salary = json!({"amount": "3000000", "memo": "11월 급여"});
    let (status, first) = pay(
        &format!("/v1/deposits/{a_id}/deposit"),
        Some("salary-11"),
        salary.clone(),
    );
    assert_eq!(status, 200, "{first}");
    let (_, repeat) = pay(
        &format!("/v1/deposits/{a_id}/deposit"),
        Some("salary-11"),
        salary,
    );
    assert_eq!(first, repeat);
    let (status, problem) = pay(
        &format!("/v1/deposits/{a_id}/deposit"),
        Some("salary-11"),
        json!({"amount": "3000001"}),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let (status, _) = pay(
        &format!("/v1/deposits/{a_id}/transfer"),
        None,
        json!({"to": b_id, "amount": "250000", "memo": "저녁값"}),
    );
    assert_eq!(status, 200);

    // Refusals are problem+json with a stable code; nothing moves.
    for (path, body, expected) in [
        (
            "withdraw",
            json!({"amount": "9000000"}),
            (409, "insufficient_funds"),
        ),
        (
            "withdraw",
            json!({"amount": "12.5"}),
            (422, "invalid_amount"),
        ),
        ("withdraw", json!({"amount": "-1"}), (422, "invalid_amount")),
        ("withdraw", json!({"amount": 5}), (400, "invalid_body")),
        (
            "deposit",
            json!({"amount": "1", "surprise": true}),
            (400, "invalid_body"),
        ),
        (
            "transfer",
            json!({"to": "nowhere", "amount": "1"}),
            (422, "unknown_target_account"),
        ),
    ] {
        let (status, problem) = pay(&format!("/v1/deposits/{a_id}/{path}"), None, body.clone());
        assert_eq!(
            (status, problem["code"].as_str().unwrap()),
            expected,
            "{path} {body}"
        );
    }
    let (status, problem) = pay(
        "/v1/deposits/no-such-account/deposit",
        None,
        json!({"amount": "1"}),
    );
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("deposit_account_not_found"))
    );

    // A hold, then part of it captured.
    let (_, hold) = pay(
        &format!("/v1/deposits/{a_id}/holds"),
        None,
        json!({"amount": "100000", "timeout_seconds": 600}),
    );
    let hold_id = hold["transaction_id"].as_str().unwrap();
    let (_, view) = http.call(Method::GET, &format!("/v1/deposits/{a_id}"), &[], None);
    assert_eq!(
        (
            money(&view, "balance"),
            money(&view, "available"),
            money(&view, "on_hold")
        ),
        (2_750_000, 2_650_000, 100_000)
    );
    let (status, captured) = pay(
        &format!("/v1/deposits/{a_id}/holds/{hold_id}/capture"),
        None,
        json!({"amount": "30000"}),
    );
    assert_eq!((status, money(&captured, "amount")), (200, 30_000));

    // The statement walks to the balance.
    let (status, s) = http.call(
        Method::GET,
        &format!("/v1/deposits/{a_id}/statement?from={today}&to={today}"),
        &[],
        None,
    );
    assert_eq!(status, 200, "{s}");
    let lines: Vec<(&str, &str, &str)> = s["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap(),
                l["amount"].as_str().unwrap(),
                l["balance"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("deposit", "3000000", "3000000"),
            ("transfer_out", "250000", "2750000"),
            ("hold_capture", "30000", "2720000")
        ]
    );
    assert_eq!(s["closing_balance"], "2720000");

    // Restarted, it keeps the money and still answers a repeated key with the first outcome.
    server.stop();
    let server = Server::start(dir.path());
    let http = server.http();
    let (_, view) = http.call(Method::GET, &format!("/v1/deposits/{a_id}"), &[], None);
    assert_eq!(money(&view, "balance"), 2_720_000);
    let (_, repeat) = http.call(
        Method::POST,
        &format!("/v1/deposits/{a_id}/deposit"),
        &[("idempotency-key", "salary-11")],
        Some(json!({"amount": "3000000", "memo": "11월 급여"})),
    );
    assert_eq!(repeat, first);

    // End of day: yesterday has nothing to accrue (the accounts opened today); today is not over.
    let eod = |args: &[&str]| {
        let out = gureum()
            .args(["eod", "--server", &server.url])
            .env("GUREUM_API_KEY", &server.key)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = eod(&["--json"]);
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            report["deposits"]["accounts"].as_u64(),
            report["deposits"]["accrued"].as_str(),
            report["loans"]["loans"].as_u64()
        ),
        (Some(0), Some("0"), Some(0))
    );
    let (ok, _, stderr) = eod(&["--date", &today]);
    assert!(!ok);
    assert!(stderr.contains("business_date_not_over"), "{stderr}");

    // Closing: everything swept to bob, the ledger account closed.
    let (status, closed) = http.call(
        Method::POST,
        &format!("/v1/deposits/{a_id}/close"),
        &[],
        Some(json!({"sweep_to": b_id})),
    );
    assert_eq!(
        (
            status,
            closed["status"].as_str(),
            closed["balance"].as_str()
        ),
        (200, Some("closed"), Some("0")),
        "{closed}"
    );
    let (_, b_view) = http.call(Method::GET, &format!("/v1/deposits/{b_id}"), &[], None);
    assert_eq!(money(&b_view, "balance"), 250_000 + 2_720_000);
    let ledger_id = u128::from_str_radix(&a_id.replace('-', ""), 16).unwrap();
    let (_, ledger_account) = http.call(
        Method::GET,
        &format!("/v1/ledger/accounts/{ledger_id}"),
        &[],
        None,
    );
    assert!(
        ledger_account["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("closed")),
        "{ledger_account}"
    );

    // The relay publishes in the background: wait (boundedly) for the last event.
    let mut subjects = Vec::new();
    for _ in 0..50 {
        subjects = bus_messages(dir.path(), 1)
            .into_iter()
            .map(|(subject, _, _)| subject)
            .filter(|s| s.starts_with("deposits."))
            .collect::<Vec<String>>();
        if subjects.iter().any(|s| s == "deposits.account.closed") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        subjects
            .iter()
            .filter(|s| *s == "deposits.account.opened")
            .count()
            == 2,
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s == "deposits.account.closed"),
        "{subjects:?}"
    );
    assert!(server.stop().success());
}
