//! SIGKILL `gureum up` under concurrent load: every acknowledged transfer must survive.

mod support;

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Server;

const ACCOUNTS: u64 = 100;
const CLIENTS: u64 = 8;
const BATCH: u64 = 50;
/// Each client stops after this many batches even if the server is never killed.
const BATCHES_PER_CLIENT_MAX: u64 = 2_000;

fn batch(client: u64, n: u64) -> Value {
    Value::Array(
        (0..BATCH)
            .map(|i| {
                let id = ((client + 1) << 40) | (n << 16) | i;
                json!({
                    "id": id.to_string(),
                    "debit_account_id": (1 + id % ACCOUNTS).to_string(),
                    "credit_account_id": (1 + (id / 7 + 1 + id) % ACCOUNTS).to_string(),
                    "amount": (1 + id % 1000).to_string(),
                    "ledger": 1, "code": 1,
                })
            })
            .filter(|t| t["debit_account_id"] != t["credit_account_id"])
            .collect(),
    )
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<Vec<String>, reqwest::Error> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await?
        .error_for_status()?;
    let results: Vec<Value> = response.json().await?;
    Ok(results
        .iter()
        .map(|r| r["result"].as_str().unwrap_or("").to_owned())
        .collect())
}

async fn create_accounts(http: &reqwest::Client, server: &str) {
    let accounts: Vec<Value> = (1..=ACCOUNTS)
        .map(|id| json!({"id": id.to_string(), "ledger": 1, "code": 1}))
        .collect();
    let url = format!("{server}/v1/ledger/accounts");
    let created = post(http, &url, &Value::Array(accounts)).await.unwrap();
    assert!(created.iter().all(|r| r == "ok"));
}

/// `gureum ledger verify` passes on the data folder.
fn assert_verifies(dir: &std::path::Path) {
    let verify = support::gureum()
        .args(["ledger", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_transfer_survives_sigkill_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = server.client();
    create_accounts(&http, &server.url).await;

    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (http, url, acked) = (
            http.clone(),
            format!("{}/v1/ledger/transfers", server.url),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for n in 0..BATCHES_PER_CLIENT_MAX {
                let body = batch(client, n);
                match post(&http, &url, &body).await {
                    Ok(results) => {
                        assert!(results.iter().all(|r| r == "ok"), "{results:?}");
                        acked.lock().unwrap().push(body);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Let load build up, then crash the server mid-stream.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 200 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.crash();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 200,
        "only {} batches were acknowledged before the crash",
        acked.len()
    );

    let server = Server::start(dir.path());
    let url = format!("{}/v1/ledger/transfers", server.url);
    for body in &acked {
        // A client retrying with the same ids learns each transfer committed exactly once.
        let results = post(&http, &url, body).await.unwrap();
        assert!(results.iter().all(|r| r == "exists"), "{results:?}");
    }
    let (mut debits, mut credits) = (0u128, 0u128);
    for id in 1..=ACCOUNTS {
        let a = support::get_json(&http, &format!("{}/v1/ledger/accounts/{id}", server.url)).await;
        debits += a["debits_posted"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap();
        credits += a["credits_posted"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap();
    }
    assert_eq!(debits, credits, "the books balance");
    let acked_amount: u128 = acked
        .iter()
        .flat_map(|b| b.as_array().unwrap().iter())
        .map(|t| t["amount"].as_str().unwrap().parse::<u128>().unwrap())
        .sum();
    assert!(
        debits >= acked_amount,
        "posted {debits} < acknowledged {acked_amount}"
    );
    assert!(server.stop().success());
    assert_verifies(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_journal_write_stops_the_ledger_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_file_size_limit(dir.path(), 256);
    let http = server.client();
    create_accounts(&http, &server.url).await;
    let url = format!("{}/v1/ledger/transfers", server.url);
    let mut acked = Vec::new();
    let mut refusal = None;
    for n in 0..200 {
        let body = batch(0, n);
        let response = http.post(&url).json(&body).send().await.unwrap();
        if response.status() == 200 {
            let results: Vec<Value> = response.json().await.unwrap();
            assert!(results.iter().all(|r| r["result"] == "ok"));
            acked.push(body);
        } else {
            refusal = Some((
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            ));
            break;
        }
    }
    let (status, problem) = refusal.expect("the journal never reached the file-size limit");
    assert_eq!(status, 503);
    assert_eq!(problem["code"], "unavailable");
    assert!(
        acked.len() >= 5,
        "only {} batches fit before the limit",
        acked.len()
    );
    // From now on the ledger refuses everything and says it is not ready.
    let ready = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let again = http.post(&url).json(&batch(0, 999)).send().await.unwrap();
    assert_eq!(again.status(), 503);
    let read = http
        .get(format!("{}/v1/ledger/accounts/1", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 503);
    assert!(
        !server.stop().success(),
        "a ledger that failed exits non-zero"
    );

    let server = Server::start(dir.path());
    let url = format!("{}/v1/ledger/transfers", server.url);
    for body in &acked {
        let results = post(&http, &url, body).await.unwrap();
        assert!(results.iter().all(|r| r == "exists"), "{results:?}");
    }
    assert!(server.stop().success());
    assert_verifies(dir.path());
}
