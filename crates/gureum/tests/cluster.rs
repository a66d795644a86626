//! `gureum cluster up` end to end: the split shape on one machine answers at one address as
//! `gureum up` does, survives its ledger leader being killed (the launcher restarts it as the
//! standby), and stopping the launcher's process group stops every process.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bus::testing::NatsCluster;
use serde_json::{Value, json};

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_up_serves_like_up_survives_its_leader_and_stops_as_a_group() {
    let nats = NatsCluster::single().await;
    let dir = tempfile::tempdir().unwrap();
    // A database of its own, dropped at the end (CI also drops leftovers named gureum_t_*).
    let database = store::testing::unique_name("gureum_t");
    let admin = store::testing::postgres_url();
    let postgres_url = format!("{}/{database}", admin.rsplit_once('/').unwrap().0);
    let mut launcher = support::gureum()
        .args([
            "cluster",
            "up",
            "--listen",
            "127.0.0.1:0",
            "--nats-url",
            &nats.urls(),
            "--postgres-url",
            &postgres_url,
            "--data-dir",
        ])
        .arg(dir.path())
        .env("GUREUM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(launcher.stdout.take().unwrap()).lines();
    let line = out.next().unwrap().unwrap();
    let url = line
        .strip_prefix("gureum listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    // The launcher lists its processes on stderr: name, pid, URL.
    let mut err = BufReader::new(launcher.stderr.take().unwrap()).lines();
    let mut pids = Vec::new();
    let mut urls = Vec::new();
    while pids.len() < 8 {
        let line = err.next().unwrap().unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [name, "pid", pid, url] = words[..] {
            pids.push((name.to_owned(), pid.parse::<i32>().unwrap()));
            urls.push((name.to_owned(), url.to_owned()));
        }
    }
    std::thread::spawn(move || err.for_each(drop));
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ledger-a",
            "ledger-b",
            "customers",
            "products",
            "edge",
            "deposits",
            "contracts",
            "lending"
        ]
    );

    // The edge wrote its bootstrap admin key before it began to listen.
    let admin_key = std::fs::read_to_string(dir.path().join("edge/admin.key")).unwrap();
    let http = support::client_with_key(admin_key.trim());
    support::wait_ready(&http, &url, Duration::from_secs(20)).await;
    // The edge is the door here too: no key, no entry; a client's own caller headers count
    // for nothing.
    let refused = reqwest::Client::new()
        .get(format!("{url}/v1/ledger/accounts/1"))
        .header("gureum-permissions", "ledger:read")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // The services listen on local ports anyone here can reach: a request the edge did not
    // sign is refused there, whatever it claims — or if it claims nothing.
    for service in ["customers", "ledger-a", "ledger-b"] {
        let (_, direct) = urls.iter().find(|(n, _)| n == service).unwrap();
        let forged = reqwest::Client::new()
            .get(format!("{direct}/v1/customers?limit=1"))
            .header("gureum-principal", "key:admin")
            .header("gureum-permissions", "customers:read,ledger:read")
            .header(
                "gureum-caller-signature",
                format!("{}.{}", 1, "0".repeat(64)),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 401, "{service}");
        let problem: Value = forged.json().await.unwrap();
        assert_eq!(problem["code"], "unsigned_caller", "{service}");
    }
    let (_, customers) = urls.iter().find(|(n, _)| n == "customers").unwrap();
    let anonymous = reqwest::Client::new()
        .get(format!("{customers}/v1/customers?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let health = reqwest::Client::new()
        .get(format!("{customers}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let accounts =
        json!([{"id": "1", "ledger": 1, "code": 1}, {"id": "2", "ledger": 1, "code": 1}]);
    let created: Vec<Value> = http
        .post(format!("{url}/v1/ledger/accounts"))
        .json(&accounts)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        created,
        vec![
            json!({"index": 0, "result": "ok"}),
            json!({"index": 1, "result": "ok"})
        ]
    );
    let transfer = json!([{"id": "7", "debit_account_id": "1", "credit_account_id": "2", "amount": "25", "ledger": 1, "code": 1}]);
    let sent = http
        .post(format!("{url}/v1/ledger/transfers"))
        .json(&transfer)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    // The customers service behind the same door, on PostgreSQL, its keyring private.
    let onboarded = http
        .post(format!("{url}/v1/customers"))
        .json(&json!({"name": "김하늘", "rrn": "900101-1234568", "phone": "010-9876-5432"}))
        .send()
        .await
        .unwrap();
    assert_eq!(onboarded.status(), 201);
    let customer: Value = onboarded.json().await.unwrap();
    let id = customer["id"].as_str().unwrap();
    let plain: Value = http
        .get(format!(
            "{url}/v1/customers/{id}?unmask=rrn&purpose=cluster%20check"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (customer["rrn"].as_str(), plain["rrn"].as_str()),
        (Some("900101-1******"), Some("900101-1234568"))
    );
    let raw_rrn: i64 = {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&postgres_url).await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM customers.customers WHERE rrn_sealed IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(raw_rrn, 1, "the customer is in the cluster's own database");
    let catalogue = http.get(format!("{url}/v1/products")).send().await.unwrap();
    assert_eq!(catalogue.status(), 200);
    assert_eq!(
        catalogue.json::<Value>().await.unwrap(),
        json!({"items": []})
    );
    // Deposits, in its own process, reaches customers, products and the ledger through the
    // edge: an account opened and funded, its balance the ledger's.
    let today = store::sql::today_kst().to_string();
    for (path, body) in [
        (
            "/v1/products".to_owned(),
            json!({"code": "DEP-FREE", "kind": "demand_deposit", "name": "구름 통장", "effective_from": today,
                   "terms": {"currency": "KRW", "rates": {"base": "0.015", "spread": "0.005"},
                             "amount": {"min": "1", "max": "1000000000"},
                             "eligibility": {"min_age": 19, "kyc_verified": true}}}),
        ),
        (
            "/v1/products/DEP-FREE/versions/1/publish".to_owned(),
            Value::Null,
        ),
        (
            format!("/v1/customers/{id}/kyc"),
            json!({"status": "verified", "reason": "cluster check"}),
        ),
    ] {
        let mut request = http.post(format!("{url}{path}"));
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }
    let opened = http
        .post(format!("{url}/v1/deposits"))
        .json(&json!({"customer_id": id, "product_code": "DEP-FREE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 201);
    let account: Value = opened.json().await.unwrap();
    let account_id = account["id"].as_str().unwrap();
    let paid = http
        .post(format!("{url}/v1/deposits/{account_id}/deposit"))
        .header("idempotency-key", "cluster-1")
        .json(&json!({"amount": "10000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    let view: Value = http
        .get(format!("{url}/v1/deposits/{account_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["balance"], "10000", "{view}");
    let ledger_id = u128::from_str_radix(&account_id.replace('-', ""), 16).unwrap();
    let ledger_view: Value = http
        .get(format!("{url}/v1/ledger/accounts/{ledger_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ledger_view["credits_posted"], "10000");
    // A contract for it, through the edge: issued, signed against its hash from our address,
    // and its document served intact.
    let issued: Value = http
        .post(format!("{url}/v1/contracts"))
        .json(&json!({"customer_id": id, "product_code": "DEP-FREE", "subject": account_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contract_id = issued["id"].as_str().unwrap();
    let sha256 = issued["document_sha256"].as_str().unwrap();
    let signed: Value = http
        .post(format!("{url}/v1/contracts/{contract_id}/signatures"))
        .json(
            &json!({"role": "customer", "signer": id, "method": "app", "document_sha256": sha256}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(signed["status"], "signed", "{signed}");
    assert_eq!(signed["signatures"][0]["client_address"], "127.0.0.1");
    let document = http
        .get(format!("{url}/v1/contracts/{contract_id}/document"))
        .send()
        .await
        .unwrap();
    assert_eq!(document.status(), 200);
    assert_eq!(document.headers()["content-type"], "application/pdf");
    let pdf = document.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    // Lending in its own process: a quote and a sealed credit evaluation through the edge.
    let quote: Value = http
        .post(format!("{url}/v1/loans/quote"))
        .json(
            &json!({"principal": "10000000", "annual_rate": "0.055", "term_months": 12,
                      "method": "equal_payment", "start_date": "2026-01-15"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(quote["installments"][0]["payment"], "858367", "{quote}");
    let evaluated = http
        .post(format!("{url}/v1/credit/evaluations"))
        .json(&json!({
            "customer_id": id,
            "inputs": {"annual_income": "60000000", "existing_debt": "20000000",
                       "existing_annual_debt_service": "12000000", "delinquencies_12m": 0,
                       "employment_months": 48, "internal_months": 30, "bureau_score": 920},
            "requested": {"principal": "10000000", "annual_rate": "0.055", "term_months": 12,
                          "method": "equal_payment", "grace_months": 0, "start_date": "2026-01-15"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(evaluated.status(), 201);
    let evaluated: Value = evaluated.json().await.unwrap();
    assert_eq!(evaluated["evaluation"]["score"], 950);
    // A loan through the edge: lending reaches contracts, deposits and the ledger over HTTP —
    // applied, accepted (its contract issued), signed, paid into the account, prepaid once.
    let call = |method: reqwest::Method, path: String, body: Option<Value>, key: Option<&str>| {
        let mut request = http.request(method, format!("{url}{path}"));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    use reqwest::Method;
    let (status, _) = call(Method::POST, "/v1/products".into(), Some(json!({
        "code": "LOAN-CREDIT", "kind": "personal_credit_loan", "name": "구름 신용대출", "effective_from": today,
        "terms": {"currency": "KRW", "rates": {"base": "0.035", "spread": "0.04", "tiers": [{"grade": 1, "spread": "0.015"}]},
                  "fees": [{"code": "prepayment", "rate": "0.012"}],
                  "amount": {"min": "1000000", "max": "50000000"}, "term_months": {"min": 6, "max": 60},
                  "repayment_methods": ["equal_payment"],
                  "eligibility": {"min_age": 19, "kyc_verified": true, "grades": [1, 2, 3, 4, 5, 6, 7]}}})), None).await;
    assert_eq!(status, 201);
    let (status, _) = call(
        Method::POST,
        "/v1/products/LOAN-CREDIT/versions/1/publish".into(),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, application) = call(
        Method::POST,
        "/v1/loans/applications".into(),
        Some(json!({
        "customer_id": id, "product_code": "LOAN-CREDIT",
        "inputs": {"annual_income": "60000000", "existing_debt": "20000000",
                   "existing_annual_debt_service": "6000000", "delinquencies_12m": 0,
                   "employment_months": 48, "internal_months": 30, "bureau_score": 920},
        "requested": {"principal": "10000000", "annual_rate": "0.055", "term_months": 12,
                      "method": "equal_payment", "grace_months": 0, "start_date": today}})),
        None,
    )
    .await;
    assert_eq!(
        (status, application["status"].as_str()),
        (201, Some("approved")),
        "{application}"
    );
    let (status, loan) = call(
        Method::POST,
        format!(
            "/v1/loans/applications/{}/accept",
            application["id"].as_str().unwrap()
        ),
        Some(json!({"principal": "10000000", "account_id": account_id})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{loan}");
    let loan_id = loan["id"].as_str().unwrap().to_owned();
    let contract = loan["contract_id"].as_str().unwrap().to_owned();
    let (_, issued) = call(Method::GET, format!("/v1/contracts/{contract}"), None, None).await;
    assert_eq!(issued["subject"].as_str(), Some(loan_id.as_str()));
    let (status, _) = call(
        Method::POST,
        format!("/v1/contracts/{contract}/signatures"),
        Some(json!({"role": "customer", "signer": id, "method": "app",
                    "document_sha256": issued["document_sha256"]})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, loan) = call(
        Method::POST,
        format!("/v1/loans/{loan_id}/disburse"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, loan["status"].as_str()),
        (200, Some("current")),
        "{loan}"
    );
    let (_, view) = call(
        Method::GET,
        format!("/v1/deposits/{account_id}"),
        None,
        None,
    )
    .await;
    assert_eq!(view["balance"], "10010000", "{view}");
    let prepay = || {
        call(
            Method::POST,
            format!("/v1/loans/{loan_id}/prepayments"),
            Some(json!({"principal": "1000000"})),
            Some("cluster-prepay"),
        )
    };
    let (status, receipt) = prepay().await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(prepay().await.1, receipt);
    let paid: u128 = receipt["amount"].as_str().unwrap().parse().unwrap();
    let (_, view) = call(
        Method::GET,
        format!("/v1/deposits/{account_id}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        view["balance"].as_str().unwrap().parse::<u128>().unwrap(),
        10_010_000 - paid
    );
    let document: Value = http
        .get(format!("{url}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["paths"]["/v1/customers/{id}"].is_object());
    assert!(document["paths"]["/v1/ledger/transfers"].is_object());
    assert!(document["paths"]["/v1/products/{code}/rate"].is_object());
    assert!(document["paths"]["/v1/deposits/{id}/statement"].is_object());
    let missing = http.get(format!("{url}/v1/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    // Kill the leader: the standby takes over behind the same address.
    let leader = pids[0].1;
    // SAFETY: a child of the launcher, found by its printed pid.
    unsafe { libc::kill(leader, libc::SIGKILL) };
    let started = Instant::now();
    let account: Value = loop {
        let answer = http.get(format!("{url}/v1/ledger/accounts/2")).send().await;
        if let Ok(answer) = answer
            && answer.status().is_success()
        {
            break answer.json().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no ledger node took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(account["credits_posted"], "25");
    let again = http
        .post(format!("{url}/v1/ledger/transfers"))
        .json(&transfer)
        .send()
        .await
        .unwrap();
    let results: Vec<Value> = again.json().await.unwrap();
    assert_eq!(results, vec![json!({"index": 0, "result": "exists"})]);

    // SIGTERM to the whole process group stops every process.
    // SAFETY: the launcher leads its own process group (process_group(0) above).
    unsafe { libc::kill(-(launcher.id() as i32), libc::SIGTERM) };
    let status = launcher.wait().unwrap();
    assert!(status.success(), "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    for (name, pid) in &pids[1..] {
        while alive(*pid) {
            assert!(Instant::now() < deadline, "{name} still running");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {database}")))
        .execute(&mut conn)
        .await
        .unwrap();
}
