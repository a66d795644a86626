//! Failover of the replicated ledger, end to end: a 3-node NATS JetStream cluster on 127.0.0.1
//! (a current nats-server, see `bus::testing`), two `gureum serve ledger` processes (leader and
//! standby) on an R3 journal, an edge in front, and concurrent clients that retry with the
//! same ids until acknowledged. SIGKILL the leader: the standby serves within 5 s, no
//! acknowledged transfer is lost, none is applied twice, the books balance. Then kill one NATS
//! node: the ledger goes on.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bus::testing::NatsCluster;
use ledger::replicated::{Follower, ReplicationConfig};
use serde_json::{Value, json};
use support::{Server, get_json, wait_ready};
use tokio::sync::Mutex;

const ACCOUNTS: u128 = 8;
const CLIENTS: u128 = 4;
const BATCH: u128 = 20;
const LEASE_TTL_MS: u64 = 1_500;
/// How long losing one NATS node of three may pause the ledger: the publish acknowledgement
/// times out (5 s), JetStream elects new stream leaders, the client reconnects, and the leader
/// reads the stream back to learn what was stored.
const NATS_NODE_LOSS_LIMIT: Duration = Duration::from_secs(20);
/// No client request may stay unacknowledged longer than this (it retries until then).
const RETRY_DEADLINE: Duration = Duration::from_secs(30);

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn ledger_config(dir: &Path, node: &str, nats: &str) -> std::path::PathBuf {
    write(
        dir,
        &format!("{node}.toml"),
        &format!(
            "listen = \"127.0.0.1:0\"\n[ledger]\njournal = \"jetstream\"\nnats_url = \"{nats}\"\n\
             replicas = 3\nlease_ttl_ms = {LEASE_TTL_MS}\nnode = \"{node}\"\n"
        ),
    )
}

async fn start(service: &'static str, config: std::path::PathBuf) -> Server {
    tokio::task::spawn_blocking(move || Server::serve(service, &config))
        .await
        .unwrap()
}

fn amount(id: u128) -> u128 {
    1 + id % 997
}

/// Submits batches of transfers until `stop`, each retried with the same ids until every event
/// is `ok` or `exists`; returns the acknowledged ids.
async fn client(
    http: reqwest::Client,
    edge: String,
    c: u128,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u128>>>,
) {
    let mut next = c * 1_000_000_000 + 1;
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<u128> = (next..next + BATCH).collect();
        next += BATCH;
        let body: Vec<Value> = ids
            .iter()
            .map(|id| {
                json!({
                    "id": id.to_string(),
                    "debit_account_id": (1 + id % ACCOUNTS).to_string(),
                    "credit_account_id": (1 + (id + 1) % ACCOUNTS).to_string(),
                    "amount": amount(*id).to_string(),
                    "ledger": 1, "code": 1,
                })
            })
            .collect();
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < RETRY_DEADLINE,
                "client {c}: a batch went unacknowledged for {RETRY_DEADLINE:?}"
            );
            let answer = http
                .post(format!("{edge}/v1/ledger/transfers"))
                .json(&body)
                .send()
                .await;
            if let Ok(answer) = answer
                && answer.status().is_success()
            {
                let results: Vec<Value> = answer.json().await.unwrap();
                let codes: Vec<&str> = results
                    .iter()
                    .map(|r| r["result"].as_str().unwrap())
                    .collect();
                assert!(
                    codes.iter().all(|c| *c == "ok" || *c == "exists"),
                    "client {c}: {codes:?}"
                );
                acked.lock().await.extend(&ids);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_standby_takes_over_within_5s_and_loses_nothing_then_a_nats_node_dies() {
    let mut nats = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let leader = start("ledger", ledger_config(dir.path(), "a", &nats.urls())).await;
    wait_ready(&http, &leader.url, Duration::from_secs(20)).await;
    let standby = start("ledger", ledger_config(dir.path(), "b", &nats.urls())).await;
    let answer = http
        .get(format!("{}/readyz", standby.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.json::<Value>().await.unwrap()["code"], "standby");
    let edge_config = format!(
        "listen = \"127.0.0.1:0\"\n[edge]\nledger = [\"{}\", \"{}\"]\ndata_dir = \"{}\"\n",
        leader.url,
        standby.url,
        dir.path().join("edge").display()
    );
    let edge = start("edge", write(dir.path(), "edge.toml", &edge_config)).await;
    // From here on every request goes through the edge, with its bootstrap admin key.
    let key = std::fs::read_to_string(dir.path().join("edge/admin.key")).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", key.trim()).parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let accounts: Vec<Value> = (1..=ACCOUNTS)
        .map(|id| json!({"id": id.to_string(), "ledger": 1, "code": 1}))
        .collect();
    let created = http
        .post(format!("{}/v1/ledger/accounts", edge.url))
        .json(&accounts)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(client(
                http.clone(),
                edge.url.clone(),
                c + 1,
                stop.clone(),
                acked.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before_kill = acked.lock().await.len();
    assert!(
        before_kill > 0,
        "the clients made progress before the failover"
    );
    leader.crash();
    let takeover = wait_ready(&http, &standby.url, Duration::from_secs(5)).await;
    println!("standby serving {takeover:?} after the leader was killed");

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before_nats_kill = acked.lock().await.len();
    assert!(
        before_nats_kill > before_kill,
        "the clients made progress after the failover"
    );
    nats.nodes[0].kill();
    // JetStream elects new leaders for the streams the node led (its Raft election timeout is
    // a few seconds); meanwhile the ledger holds requests and the clients retry.
    let killed = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if acked.lock().await.len() >= before_nats_kill + (BATCH * CLIENTS * 5) as usize {
            break;
        }
        assert!(
            killed.elapsed() < NATS_NODE_LOSS_LIMIT,
            "the ledger did not go on after losing a NATS node"
        );
    }
    println!(
        "ledger going on {:?} after a NATS node was killed",
        killed.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().await.clone();

    // Read the whole journal back from the surviving NATS nodes.
    let survivors =
        bus::nats::server_addrs(&format!("{},{}", nats.nodes[1].url(), nats.nodes[2].url()))
            .unwrap();
    let client = async_nats::connect(survivors).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let config = ReplicationConfig {
        shard: 0,
        replicas: 3,
        lease_ttl: Duration::from_millis(LEASE_TTL_MS),
        node: "check".into(),
    };
    let mut follower = Follower::new(&js, &config).await.unwrap();
    // Right after a node loss JetStream may answer "temporarily unavailable" (503) while it
    // elects; the standby waits that out, and so does this check — boundedly. What was read
    // stays applied; the next call resumes after it.
    let mut attempts = 0;
    while let Err(e) = follower.catch_up().await {
        attempts += 1;
        assert!(attempts < 40, "the journal stayed unreadable: {e}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let state = follower.ledger();
    assert_eq!(state.check_invariants(), Ok(()), "the books balance");
    for id in &acked {
        let transfer = state
            .transfer(*id)
            .unwrap_or_else(|| panic!("acknowledged transfer {id} was lost"));
        assert_eq!(transfer.transfer.amount, amount(*id));
    }
    // Each account's balances are exactly what its distinct transfers add up to: nothing was
    // applied twice, and nothing but what the clients sent was applied.
    let mut debits: BTreeMap<u128, u128> = BTreeMap::new();
    let mut credits: BTreeMap<u128, u128> = BTreeMap::new();
    let mut count = 0;
    for c in 1..=CLIENTS {
        for id in c * 1_000_000_000 + 1..c * 1_000_000_000 + 1_000_000 {
            if let Some(view) = state.transfer(id) {
                let t = view.transfer;
                *debits.entry(t.debit_account_id).or_default() += t.amount;
                *credits.entry(t.credit_account_id).or_default() += t.amount;
                count += 1;
            }
        }
    }
    assert_eq!(
        count,
        state.transfer_count(),
        "only the clients' transfers exist"
    );
    assert!(count >= acked.len());
    for id in 1..=ACCOUNTS {
        let (account, _) = state.account(id).unwrap();
        assert_eq!(
            account.debits_posted,
            debits.get(&id).copied().unwrap_or(0),
            "account {id}"
        );
        assert_eq!(
            account.credits_posted,
            credits.get(&id).copied().unwrap_or(0),
            "account {id}"
        );
    }
    // The serving node agrees with the journal. A group whose request timed out at the client
    // (and was retried) may still be finishing its append: the journal is read again until
    // both agree, boundedly; a transfer served but never journaled fails here.
    let mut rounds = 0;
    loop {
        let mut differ = Vec::new();
        for id in 1..=ACCOUNTS {
            let served = get_json(&http, &format!("{}/v1/ledger/accounts/{id}", edge.url)).await;
            let (account, _) = follower.ledger().account(id).unwrap();
            if served["debits_posted"] != account.debits_posted.to_string()
                || served["credits_posted"] != account.credits_posted.to_string()
            {
                differ.push((id, served, account.debits_posted, account.credits_posted));
            }
        }
        if differ.is_empty() {
            break;
        }
        rounds += 1;
        assert!(
            rounds < 20,
            "the serving node and the journal disagree: {differ:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = follower.catch_up().await;
    }
    println!("{} transfers acknowledged, {count} applied", acked.len());
    drop((standby, edge));
}
