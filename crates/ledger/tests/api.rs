//! The HTTP API contract, exercised through the router.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use ledger::engine::{Engine, EngineConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct Api {
    router: Router,
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        let engine = self.engine.clone();
        // Shutdown blocks; run it off the async runtime.
        std::thread::spawn(move || engine.shutdown().unwrap())
            .join()
            .unwrap();
    }
}

fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::open(EngineConfig::new(dir.path())).unwrap();
    let engine = Arc::new(engine);
    Api {
        router: ledger::api::router(engine.clone()),
        engine,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Api {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            content_type,
            body,
        }
    }

    async fn post(&self, path: &str, content_type: &str, body: impl Into<Body>) -> Reply {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.post(path, "application/json", body.to_string()).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn accounts(&self) {
        let reply = self
            .post_json(
                "/v1/ledger/accounts",
                json!([
                    {"id": "1", "ledger": 410, "code": 1, "flags": ["history"], "metadata": {"owner": "alice", "branch": 7}},
                    {"id": "2", "ledger": 410, "code": 1, "flags": ["debits_must_not_exceed_credits", "history"]},
                ]),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.json(),
            json!([{"index": 0, "result": "ok"}, {"index": 1, "result": "ok"}])
        );
    }
}

/// The ids of a page of transfers, in order.
fn transfer_ids(page: &Value) -> Vec<&str> {
    page["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.content_type, "application/problem+json");
    let body = reply.json();
    assert_eq!(body["type"], format!("https://gureum.dev/problems/{code}"));
    assert_eq!(body["code"], code);
    assert_eq!(body["status"], status);
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_transfers_round_trip_as_decimal_strings() {
    let api = api();
    api.accounts().await;
    let reply = api
        .post_json(
            "/v1/ledger/transfers",
            json!([
                {"id": "340282366920938463463374607431768211454", "debit_account_id": "1", "credit_account_id": "2",
                 "amount": "18446744073709551616", "ledger": 410, "code": 7, "user_data_64": "18446744073709551615",
                 "metadata": {"memo": "salary"}},
                {"id": "11", "debit_account_id": "2", "credit_account_id": "1", "amount": "1", "ledger": 410, "code": 7},
            ]),
        )
        .await;
    assert_eq!(
        reply.json(),
        json!([{"index": 0, "result": "ok"}, {"index": 1, "result": "ok"}])
    );
    let account = api.get("/v1/ledger/accounts/2").await;
    assert_eq!(account.status, StatusCode::OK);
    let a = account.json();
    assert_eq!(a["credits_posted"], "18446744073709551616");
    assert_eq!(a["debits_posted"], "1");
    assert_eq!(a["debits_pending"], "0");
    assert_eq!(
        a["flags"],
        json!(["debits_must_not_exceed_credits", "history"])
    );
    assert_eq!(a["ledger"], 410);
    assert!(a.get("metadata").is_none());
    let owner = api.get("/v1/ledger/accounts/1").await.json();
    assert_eq!(owner["metadata"], json!({"branch": 7, "owner": "alice"}));
    let t = api
        .get("/v1/ledger/transfers/340282366920938463463374607431768211454")
        .await
        .json();
    assert_eq!(t["amount"], "18446744073709551616");
    assert_eq!(t["user_data_64"], "18446744073709551615");
    assert_eq!(t["metadata"], json!({"memo": "salary"}));
    assert_eq!(t["flags"], json!([]));
    assert!(t["timestamp"].as_str().unwrap().parse::<u64>().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_gets_the_original_outcome_before_any_other_check() {
    let api = api();
    api.accounts().await;
    let batch = json!([{"id": "10", "debit_account_id": "1", "credit_account_id": "2", "amount": "5", "ledger": 410, "code": 1}]);
    assert_eq!(
        api.post_json("/v1/ledger/transfers", batch.clone())
            .await
            .json()[0]["result"],
        "ok"
    );
    assert_eq!(
        api.post_json("/v1/ledger/transfers", batch).await.json()[0]["result"],
        "exists"
    );
    let changed = json!([{"id": "10", "debit_account_id": "1", "credit_account_id": "2", "amount": "6", "ledger": 410, "code": 1, "timestamp": "5"}]);
    assert_eq!(
        api.post_json("/v1/ledger/transfers", changed).await.json()[0]["result"],
        "exists_with_different_amount"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_does_not_parse_is_refused_whole() {
    let api = api();
    api.accounts().await;
    let t = |id: &str| json!({"id": id, "debit_account_id": "1", "credit_account_id": "2", "amount": "5", "ledger": 410, "code": 1});
    let cases: Vec<(String, u16, &str)> = vec![
        ("[{\"id\": \"20\",".into(), 400, "malformed_json"),
        ("{}".into(), 400, "malformed_json"),
        (
            json!([t("20"), {"id": 21}]).to_string(),
            400,
            "malformed_json",
        ),
        (
            json!([t("20"), {"id": "-1"}]).to_string(),
            400,
            "malformed_json",
        ),
        (
            json!([t("20"), {"id": "1", "amount": "340282366920938463463374607431768211456"}])
                .to_string(),
            400,
            "malformed_json",
        ),
        (
            json!([t("20"), {"id": "21", "flags": ["pendng"]}]).to_string(),
            400,
            "malformed_json",
        ),
        (
            json!([t("20"), {"id": "21", "amont": "5"}]).to_string(),
            400,
            "malformed_json",
        ),
        (
            json!([t("20"), {"id": "21", "metadata": [1]}]).to_string(),
            400,
            "malformed_json",
        ),
        (
            json!([t("20"), {"id": "21", "ledger": 4294967296u64}]).to_string(),
            400,
            "malformed_json",
        ),
        ("".into(), 400, "empty_body"),
        ("  ".into(), 400, "empty_body"),
        ("[]".into(), 400, "batch_empty"),
    ];
    for (body, status, code) in cases {
        let reply = api
            .post("/v1/ledger/transfers", "application/json", body.clone())
            .await;
        assert_problem(&reply, status, code);
    }
    // Nothing of those requests was applied.
    assert_problem(
        &api.get("/v1/ledger/transfers/20").await,
        404,
        "transfer_not_found",
    );
    let account = api.get("/v1/ledger/accounts/1").await.json();
    assert_eq!(account["debits_posted"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_batch_is_refused_and_the_largest_is_accepted() {
    let api = api();
    let batch = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!({"id": (1000 + i).to_string(), "ledger": 1, "code": 1}))
                .collect(),
        )
    };
    assert_problem(
        &api.post_json("/v1/ledger/accounts", batch(8191)).await,
        413,
        "batch_too_large",
    );
    assert_problem(
        &api.get("/v1/ledger/accounts/1000").await,
        404,
        "account_not_found",
    );
    let reply = api.post_json("/v1/ledger/accounts", batch(8190)).await;
    let results = reply.json();
    assert_eq!(results.as_array().unwrap().len(), 8190);
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] == "ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_a_problem_too() {
    let api = api();
    let body = vec![b' '; ledger::api::BODY_BYTES_MAX + 1];
    assert_problem(
        &api.post("/v1/ledger/transfers", "application/json", body)
            .await,
        413,
        "body_too_large",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_media_type_bad_ids_and_unknown_things_get_problems() {
    let api = api();
    assert_problem(
        &api.post("/v1/ledger/transfers", "text/plain", "[]").await,
        415,
        "unsupported_media_type",
    );
    assert_problem(&api.get("/v1/ledger/accounts/abc").await, 400, "invalid_id");
    assert_problem(
        &api.get("/v1/ledger/accounts/340282366920938463463374607431768211456")
            .await,
        400,
        "invalid_id",
    );
    assert_problem(
        &api.get("/v1/ledger/accounts/5").await,
        404,
        "account_not_found",
    );
    assert_problem(
        &api.get("/v1/ledger/transfers/5").await,
        404,
        "transfer_not_found",
    );
    assert_problem(
        &api.get("/v1/ledger/accounts/5/transfers").await,
        404,
        "account_not_found",
    );
    api.accounts().await;
    assert_problem(
        &api.get("/v1/ledger/accounts/1/transfers?limit=0").await,
        400,
        "invalid_query",
    );
    assert_problem(
        &api.get("/v1/ledger/accounts/1/transfers?limit=8191").await,
        400,
        "invalid_query",
    );
    assert_problem(
        &api.get("/v1/ledger/accounts/1/transfers?reverse=yes").await,
        400,
        "invalid_query",
    );
    assert_problem(
        &api.get("/v1/ledger/accounts/1/transfers?sort=id").await,
        400,
        "invalid_query",
    );
    assert_problem(
        &api.get("/v1/ledger/accounts/1/transfers?timestamp_min=1")
            .await,
        400,
        "invalid_query",
    );
    assert_problem(
        &api.get("/v1/ledger/accounts/1/balances?timestamp_min=5&timestamp_max=4")
            .await,
        400,
        "invalid_query",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_balances_page_with_cursors() {
    let api = api();
    api.accounts().await;
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"id": (100 + i).to_string(), "debit_account_id": "1", "credit_account_id": "2", "amount": "10", "ledger": 410, "code": 1}))
        .collect();
    api.post_json("/v1/ledger/transfers", Value::Array(batch))
        .await;
    let page = api
        .get("/v1/ledger/accounts/2/transfers?limit=3")
        .await
        .json();
    let ids = transfer_ids(&page);
    assert_eq!(ids, ["100", "101", "102"]);
    let next = page["next"].as_str().unwrap().to_owned();
    let page = api
        .get(&format!(
            "/v1/ledger/accounts/2/transfers?limit=3&after={next}"
        ))
        .await
        .json();
    let ids = transfer_ids(&page);
    assert_eq!(ids, ["103", "104"]);
    assert_eq!(page["next"], Value::Null);
    let page = api
        .get("/v1/ledger/accounts/2/transfers?limit=2&reverse=true")
        .await
        .json();
    let ids = transfer_ids(&page);
    assert_eq!(ids, ["104", "103"]);
    let balances = api.get("/v1/ledger/accounts/2/balances").await.json();
    let posted: Vec<&str> = balances["balances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["credits_posted"].as_str().unwrap())
        .collect();
    assert_eq!(posted, ["10", "20", "30", "40", "50"]);
    assert_eq!(balances["balances"][4]["transfer_id"], "104");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_of_an_account_without_history_is_a_conflict() {
    let api = api();
    api.post_json(
        "/v1/ledger/accounts",
        json!([{"id": "9", "ledger": 1, "code": 1}]),
    )
    .await;
    assert_problem(
        &api.get("/v1/ledger/accounts/9/balances").await,
        409,
        "history_not_enabled",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_encoding_carries_the_same_batch() {
    let api = api();
    api.accounts().await;
    let events: Vec<ledger::TransferEvent> = (0..3)
        .map(|i| ledger::TransferEvent {
            transfer: ledger::Transfer {
                id: 500 + i,
                debit_account_id: 1,
                credit_account_id: 2,
                amount: if i == 2 { 0 } else { 7 },
                ledger: 410,
                code: 1,
                ..Default::default()
            },
            metadata: (i == 0).then(|| r#"{"z": 1, "a": 2}"#.into()),
        })
        .collect();
    let mut body = Vec::new();
    ledger::codec::encode_transfer_batch(&events, &mut body);
    let reply = api
        .post(
            "/v1/ledger/transfers",
            "application/octet-stream",
            body.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "application/octet-stream");
    let codes: Vec<u16> = reply
        .body
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let zero = ledger::CreateTransferResult::AmountMustNotBeZero.code();
    assert_eq!(codes, [0, 0, zero]);
    // Metadata is made canonical, exactly as through JSON.
    let t = api.get("/v1/ledger/transfers/500").await.json();
    assert_eq!(t["metadata"], json!({"a": 2, "z": 1}));
    assert_problem(
        &api.post(
            "/v1/ledger/transfers",
            "application/octet-stream",
            body[..body.len() - 1].to_vec(),
        )
        .await,
        400,
        "malformed_binary",
    );
    let mut too_many = Vec::new();
    too_many.extend_from_slice(&8191u32.to_le_bytes());
    assert_problem(
        &api.post("/v1/ledger/transfers", "application/octet-stream", too_many)
            .await,
        413,
        "batch_too_large",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route() {
    let doc = serde_json::to_value(ledger::api::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for route in [
        "/v1/ledger/accounts",
        "/v1/ledger/transfers",
        "/v1/ledger/accounts/{id}",
        "/v1/ledger/transfers/{id}",
        "/v1/ledger/accounts/{id}/transfers",
        "/v1/ledger/accounts/{id}/balances",
        "/v1/openapi.json",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            paths.iter().any(|p| *p == route),
            "{route} missing from {paths:?}"
        );
    }
    assert_eq!(paths.len(), 9);
    assert!(doc["components"]["schemas"]["TransferRequest"].is_object());
}
