//! `gureum bench ledger`: the ledger's throughput and latency, durable (fsync on).
//!
//! In-process, it drives the real engine with the real journal on disk. With `--http`, this
//! process is the client and drives a server through the API (it starts one on a temporary
//! data folder unless `--server` names one). Request bodies are generated before the clock
//! starts, so the figures measure the ledger, not the generator.

use crate::Error;
use http_body_util::{BodyExt, Full};
use ledger::engine::{Engine, EngineConfig};
use ledger::{Account, AccountEvent, Transfer, TransferEvent};
use serde::Serialize;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `gureum bench ledger`.
#[derive(clap::Args, Clone)]
pub struct LedgerBenchArgs {
    /// Transfers to submit.
    #[arg(long, default_value_t = 1_000_000)]
    transfers: u64,
    /// Accounts to spread them over.
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    /// Transfers per request (1 to 8190).
    #[arg(long, default_value_t = 8190)]
    batch: usize,
    /// Every transfer debits the same account.
    #[arg(long)]
    hot_account: bool,
    /// Random transfer ids instead of increasing ones (increasing, time-based ids are what
    /// clients are advised to use; random ids take the ledger's hash-index path).
    #[arg(long)]
    random_ids: bool,
    /// Drive a server through the HTTP API from this process.
    #[arg(long)]
    http: bool,
    /// The server to drive with --http (default: start one on a temporary data folder).
    #[arg(long)]
    server: Option<String>,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Request encoding with --http.
    #[arg(long, value_enum, default_value_t = Encoding::Json)]
    encoding: Encoding,
    /// Offered load in transfers per second (default: as fast as the ledger answers).
    #[arg(long)]
    rate: Option<u64>,
    /// Data folder for the in-process engine (default: a temporary one, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// After the run, stop the engine (writing a snapshot) and time a restart (with
    /// `--journal jetstream`: time a new node reading the whole journal back).
    #[arg(long)]
    recovery: bool,
    /// Where the in-process engine's journal goes: a local file, or a NATS JetStream stream.
    #[arg(long, value_enum, default_value_t = Journal::File)]
    journal: Journal,
    /// NATS servers for `--journal jetstream` (comma-separated).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// JetStream replicas of the journal for `--journal jetstream` (3 needs a 3-node cluster).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// How to authenticate to --server.
    #[command(flatten)]
    credentials: crate::credentials::Credentials,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Journal {
    File,
    Jetstream,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Encoding {
    Json,
    Binary,
}

/// What a run measured.
#[derive(Serialize, Default)]
struct Report {
    mode: &'static str,
    journal: Option<Journal>,
    replicas: Option<usize>,
    encoding: Option<Encoding>,
    transfers: u64,
    accounts: u64,
    batch: usize,
    clients: usize,
    hot_account: bool,
    random_ids: bool,
    offered_rate: Option<u64>,
    seconds: f64,
    transfers_per_second: f64,
    batch_latency_p50_ms: f64,
    batch_latency_p99_ms: f64,
    batch_latency_max_ms: f64,
    results_not_ok: u64,
    /// Every answer waited for its journal write to be durable.
    durable: bool,
    /// What "durable" meant: `fdatasync` of the local journal, or JetStream's acknowledgement
    /// (stored on a majority of replicas; each server fsyncs as its `sync_interval` says).
    durability: &'static str,
    snapshot_seconds: Option<f64>,
    recovery_seconds: Option<f64>,
}

/// Runs the ledger benchmark.
pub fn ledger(args: LedgerBenchArgs) -> Result<ExitCode, Error> {
    if args.batch == 0 || args.batch > ledger::BATCH_EVENTS_MAX {
        return Err(format!("--batch must be between 1 and {}", ledger::BATCH_EVENTS_MAX).into());
    }
    if args.accounts < 2 || args.clients == 0 || args.transfers == 0 {
        return Err("--accounts must be at least 2, --clients and --transfers at least 1".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = if args.http {
        runtime.block_on(http(&args))?
    } else if args.journal == Journal::Jetstream {
        replicated(&args, &runtime)?
    } else {
        in_process(&args, &runtime)?
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.results_not_ok == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(r: &Report) {
    println!(
        "mode                  {}{}",
        r.mode,
        r.encoding.map(|e| format!(" ({e:?})")).unwrap_or_default()
    );
    println!("transfers             {}", r.transfers);
    println!(
        "accounts              {}{}",
        r.accounts,
        if r.hot_account {
            " (hot account: every transfer debits one)"
        } else {
            ""
        }
    );
    println!("batch                 {}", r.batch);
    if r.random_ids {
        println!("ids                   random");
    }
    println!("clients               {}", r.clients);
    if let Some(rate) = r.offered_rate {
        println!("offered rate          {rate}/s");
    }
    println!("seconds               {:.3}", r.seconds);
    println!("transfers/s           {:.0}", r.transfers_per_second);
    println!(
        "batch latency ms      p50 {:.3}  p99 {:.3}  max {:.3}",
        r.batch_latency_p50_ms, r.batch_latency_p99_ms, r.batch_latency_max_ms
    );
    println!("results not ok        {}", r.results_not_ok);
    println!("durable               {} ({})", r.durable, r.durability);
    if let Some(s) = r.snapshot_seconds {
        println!("snapshot seconds      {s:.3}");
    }
    if let Some(s) = r.recovery_seconds {
        println!("recovery seconds      {s:.3}");
    }
}

/// A small deterministic generator (SplitMix64): benchmark inputs, not security.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Ids that do not collide with earlier runs against the same server.
fn id_base() -> u128 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(1);
    nanos << 40
}

fn account_events(args: &LedgerBenchArgs, base: u128) -> Vec<Vec<AccountEvent>> {
    let all: Vec<AccountEvent> = (0..args.accounts)
        .map(|i| AccountEvent {
            account: Account {
                id: base + u128::from(i) + 1,
                ledger: 1,
                code: 1,
                ..Account::default()
            },
            metadata: None,
        })
        .collect();
    all.chunks(ledger::BATCH_EVENTS_MAX)
        .map(<[_]>::to_vec)
        .collect()
}

fn transfer_batches(args: &LedgerBenchArgs, base: u128) -> Vec<Vec<TransferEvent>> {
    let mut rng = SplitMix(42);
    let accounts = args.accounts;
    let mut batches = Vec::with_capacity((args.transfers as usize).div_ceil(args.batch));
    let mut next_id = base + (1 << 36);
    let mut left = args.transfers;
    while left > 0 {
        let n = left.min(args.batch as u64);
        left -= n;
        let batch = (0..n)
            .map(|_| {
                let debit = if args.hot_account {
                    0
                } else {
                    rng.next() % accounts
                };
                let mut credit = rng.next() % accounts;
                if credit == debit {
                    credit = (credit + 1) % accounts;
                }
                next_id = if args.random_ids {
                    base + (u128::from(rng.next()) << 32 | u128::from(rng.next() as u32))
                } else {
                    next_id + 1
                };
                TransferEvent {
                    transfer: Transfer {
                        id: next_id,
                        debit_account_id: base + u128::from(debit) + 1,
                        credit_account_id: base + u128::from(credit) + 1,
                        amount: u128::from(rng.next() % 100 + 1),
                        ledger: 1,
                        code: 1,
                        ..Transfer::default()
                    },
                    metadata: None,
                }
            })
            .collect();
        batches.push(batch);
    }
    batches
}

/// Runs `clients` workers that each take the next item and send it, pacing to `rate` if set;
/// returns the elapsed time, per-request latencies and the number of results not ok.
async fn drive<T, F, Fut>(
    items: Vec<T>,
    clients: usize,
    interval: Option<Duration>,
    send: F,
) -> Result<(Duration, Vec<Duration>, u64), Error>
where
    T: Send + 'static,
    F: Fn(usize, T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u64, Error>> + Send,
{
    let count = items.len();
    let queue = Arc::new(Mutex::new(items.into_iter().rev().collect::<Vec<T>>()));
    let send = Arc::new(send);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let queue = queue.clone();
        let send = send.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut not_ok = 0u64;
            // Open-loop pacing: request k of this client is due at start + k * interval.
            let offset = interval.map(|i| i.mul_f64(client as f64 / clients as f64));
            let mut due = Instant::now() + offset.unwrap_or_default();
            loop {
                let Some(item) = queue.lock().map_err(|_| "queue poisoned")?.pop() else {
                    break;
                };
                if let Some(i) = interval {
                    tokio::time::sleep_until(due.into()).await;
                    due += i;
                }
                let sent = Instant::now();
                not_ok += send(client, item).await?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, Error>((latencies, not_ok))
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut not_ok = 0;
    for t in tasks {
        let (l, n) = t.await??;
        latencies.extend(l);
        not_ok += n;
    }
    Ok((started.elapsed(), latencies, not_ok))
}

fn pacing(args: &LedgerBenchArgs) -> Option<Duration> {
    args.rate.map(|rate| {
        Duration::from_secs_f64(args.batch as f64 * args.clients as f64 / rate.max(1) as f64)
    })
}

fn fill(
    report: &mut Report,
    args: &LedgerBenchArgs,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
    not_ok: u64,
) {
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    report.transfers = args.transfers;
    report.accounts = args.accounts;
    report.batch = args.batch;
    report.clients = args.clients;
    report.hot_account = args.hot_account;
    report.random_ids = args.random_ids;
    report.offered_rate = args.rate;
    report.seconds = elapsed.as_secs_f64();
    report.transfers_per_second = args.transfers as f64 / elapsed.as_secs_f64();
    report.batch_latency_p50_ms = pct(0.50);
    report.batch_latency_p99_ms = pct(0.99);
    report.batch_latency_max_ms = pct(1.0);
    report.results_not_ok = not_ok;
    report.durable = true;
}

fn in_process(args: &LedgerBenchArgs, runtime: &tokio::runtime::Runtime) -> Result<Report, Error> {
    let temp;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("gureum-bench-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let (engine, _) = Engine::open(EngineConfig::new(&dir))?;
    let engine = Arc::new(engine);
    let (elapsed, latencies, not_ok) = load(args, runtime, &engine)?;
    let mut report = Report {
        mode: "in_process",
        journal: Some(Journal::File),
        durability: "fdatasync",
        ..Report::default()
    };
    fill(&mut report, args, elapsed, latencies, not_ok);
    if args.recovery {
        let started = Instant::now();
        engine.shutdown()?;
        report.snapshot_seconds = Some(started.elapsed().as_secs_f64());
        drop(engine);
        let started = Instant::now();
        let (engine, recovered) = Engine::open(EngineConfig::new(&dir))?;
        report.recovery_seconds = Some(started.elapsed().as_secs_f64());
        if recovered.transfers < args.transfers as usize {
            return Err(format!(
                "recovery found {} transfers, expected at least {}",
                recovered.transfers, args.transfers
            )
            .into());
        }
        engine.shutdown()?;
    } else {
        engine.shutdown()?;
    }
    Ok(report)
}

/// Creates the accounts, then drives the transfers through the engine.
fn load(
    args: &LedgerBenchArgs,
    runtime: &tokio::runtime::Runtime,
    engine: &Arc<Engine>,
) -> Result<(Duration, Vec<Duration>, u64), Error> {
    let base = id_base();
    let accounts = account_events(args, base);
    let batches = transfer_batches(args, base);
    runtime.block_on(async {
        for batch in accounts {
            let results = engine.create_accounts(batch).await?;
            if results
                .iter()
                .any(|r| *r != ledger::CreateAccountResult::Ok)
            {
                return Err::<_, Error>("creating the benchmark's accounts failed".into());
            }
        }
        let e = engine.clone();
        drive(batches, args.clients, pacing(args), move |_, batch| {
            let e = e.clone();
            async move {
                let results = e.create_transfers(batch).await?;
                Ok(results
                    .iter()
                    .filter(|r| **r != ledger::CreateTransferResult::Ok)
                    .count() as u64)
            }
        })
        .await
    })
}

/// The in-process engine on a replicated journal (a JetStream stream on its own shard number,
/// deleted afterwards).
fn replicated(args: &LedgerBenchArgs, runtime: &tokio::runtime::Runtime) -> Result<Report, Error> {
    use ledger::replicated::{self, Follower, ReplicationConfig};
    let config = ReplicationConfig {
        shard: 1_000_000 + std::process::id(),
        replicas: args.replicas,
        lease_ttl: Duration::from_secs(2),
        node: "bench".into(),
    };
    let js = runtime.block_on(async {
        let servers = bus::nats::server_addrs(&args.nats_url)?;
        let client = async_nats::connect(servers)
            .await
            .map_err(|e| format!("connecting to {}: {e}", args.nats_url))?;
        let js = async_nats::jetstream::new(client);
        replicated::ensure_stream(&js, &config).await?;
        Ok::<_, Error>(js)
    })?;
    let outcome = (|| {
        let engine = runtime.block_on(async {
            let follower = Follower::new(&js, &config).await?;
            let (state, position, sink) = replicated::take_over(follower, &js, &config).await?;
            let dir = std::env::temp_dir();
            Ok::<_, Error>(Engine::open_replicated(
                EngineConfig::new(dir),
                state,
                position,
                Box::new(sink),
            )?)
        })?;
        let engine = Arc::new(engine);
        let (elapsed, latencies, not_ok) = load(args, runtime, &engine)?;
        let mut report = Report {
            mode: "in_process",
            journal: Some(Journal::Jetstream),
            replicas: Some(args.replicas),
            durability: "jetstream_ack",
            ..Report::default()
        };
        fill(&mut report, args, elapsed, latencies, not_ok);
        engine.shutdown()?;
        if args.recovery {
            let started = Instant::now();
            let transfers = runtime.block_on(async {
                let mut follower = Follower::new(&js, &config).await?;
                follower.catch_up().await?;
                Ok::<_, Error>(follower.ledger().transfer_count())
            })?;
            report.recovery_seconds = Some(started.elapsed().as_secs_f64());
            if transfers < args.transfers as usize {
                return Err(format!(
                    "replay found {transfers} transfers, expected {}",
                    args.transfers
                )
                .into());
            }
        }
        Ok(report)
    })();
    runtime.block_on(async {
        let _ = js.delete_stream(config.stream_name()).await;
        let _ = js
            .delete_stream(format!("KV_{}", config.lease_bucket()))
            .await;
    });
    outcome
}

/// A `gureum up` child on a temporary data folder, stopped on drop.
struct ChildServer {
    child: std::process::Child,
    url: String,
    /// Its bootstrap admin key.
    key: String,
    _dir: tempfile::TempDir,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Result<ChildServer, Error> {
    let dir = tempfile::Builder::new().prefix("gureum-bench-").tempdir()?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("GUREUM_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout from the server")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let Some(url) = line.trim().strip_prefix("gureum listening on ") else {
        let _ = child.kill();
        return Err(format!("the server did not start: {line:?}").into());
    };
    // The server wrote its bootstrap admin key before it began to listen.
    let key = std::fs::read_to_string(dir.path().join(crate::server::ADMIN_KEY_FILE))?;
    Ok(ChildServer {
        url: url.to_owned(),
        key: key.trim().to_owned(),
        child,
        _dir: dir,
    })
}

fn json_body(batch: &[TransferEvent]) -> Vec<u8> {
    let items: Vec<serde_json::Value> = batch
        .iter()
        .map(|e| {
            let t = &e.transfer;
            serde_json::json!({
                "id": t.id.to_string(),
                "debit_account_id": t.debit_account_id.to_string(),
                "credit_account_id": t.credit_account_id.to_string(),
                "amount": t.amount.to_string(),
                "ledger": t.ledger,
                "code": t.code,
            })
        })
        .collect();
    serde_json::to_vec(&items).unwrap_or_default()
}

async fn http(args: &LedgerBenchArgs) -> Result<Report, Error> {
    let child = match &args.server {
        Some(_) => None,
        None => Some(tokio::task::spawn_blocking(start_server).await??),
    };
    let url = args
        .server
        .clone()
        .or_else(|| child.as_ref().map(|c| c.url.clone()))
        .ok_or("no server")?;
    let key = match &child {
        Some(child) => Some(child.key.clone()),
        None => args.credentials.resolve(),
    };
    let client = reqwest::Client::builder()
        .default_headers(crate::credentials::headers(key.as_deref())?)
        .pool_max_idle_per_host(args.clients.max(1))
        .build()?;
    let base = id_base();
    for batch in account_events(args, base) {
        let items: Vec<serde_json::Value> = batch
            .iter()
            .map(|e| serde_json::json!({"id": e.account.id.to_string(), "ledger": 1, "code": 1}))
            .collect();
        let response = client
            .post(format!("{url}/v1/ledger/accounts"))
            .json(&items)
            .send()
            .await?
            .error_for_status()?;
        let results: Vec<ledger::api::EventResult> = response.json().await?;
        if results.iter().any(|r| r.result != "ok") {
            return Err("creating the benchmark's accounts failed".into());
        }
    }
    let encoding = args.encoding;
    let bodies: Vec<(usize, bytes::Bytes)> = transfer_batches(args, base)
        .iter()
        .map(|batch| {
            let body = match encoding {
                Encoding::Json => json_body(batch),
                Encoding::Binary => {
                    let mut out = Vec::new();
                    ledger::codec::encode_transfer_batch(batch, &mut out);
                    out
                }
            };
            (batch.len(), bytes::Bytes::from(body))
        })
        .collect();
    let endpoint = format!("{url}{TRANSFERS_PATH}");
    let content_type = match encoding {
        Encoding::Json => "application/json",
        Encoding::Binary => ledger::api::BINARY_CONTENT_TYPE,
    };
    let count_ok = move |bytes: &[u8]| match encoding {
        Encoding::Json => bytes
            .windows(13)
            .filter(|w| w == b"\"result\":\"ok\"")
            .count(),
        Encoding::Binary => bytes.chunks_exact(2).filter(|c| c == &[0, 0]).count(),
    };
    let (elapsed, latencies, not_ok) =
        match Connections::open(&url, args.clients, key.as_deref()).await? {
            // Plain HTTP: each client its own HTTP/1.1 connection, nothing between it and the
            // socket (a pooling client's bookkeeping on every request would take the cores the
            // server shares with it).
            Some(connections) => {
                let connections = Arc::new(connections);
                drive(
                    bodies,
                    args.clients,
                    pacing(args),
                    move |client, (len, body)| {
                        let connections = connections.clone();
                        async move {
                            let bytes = connections
                                .post(client, TRANSFERS_PATH, content_type, body)
                                .await?;
                            Ok(len.saturating_sub(count_ok(&bytes)) as u64)
                        }
                    },
                )
                .await?
            }
            None => {
                drive(bodies, args.clients, pacing(args), move |_, (len, body)| {
                    let request = client
                        .post(&endpoint)
                        .header("content-type", content_type)
                        .body(body);
                    async move {
                        let response = request.send().await?.error_for_status()?;
                        let bytes = response.bytes().await?;
                        Ok(len.saturating_sub(count_ok(&bytes)) as u64)
                    }
                })
                .await?
            }
        };
    let mut report = Report {
        mode: "http",
        encoding: Some(encoding),
        // A server the benchmark starts itself is `gureum up`: a local, fsynced journal.
        durability: if args.server.is_none() {
            "fdatasync"
        } else {
            "as_the_server_is_configured"
        },
        ..Report::default()
    };
    fill(&mut report, args, elapsed, latencies, not_ok);
    drop(child);
    Ok(report)
}

/// Where the benchmark sends its transfers.
const TRANSFERS_PATH: &str = "/v1/ledger/transfers";

/// One HTTP/1.1 connection per benchmark client to a plain-HTTP server.
struct Connections {
    /// What every request carries: `Host`, and the credential (`credentials::headers`).
    headers: hyper::HeaderMap,
    senders: Vec<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>>>,
}

impl Connections {
    /// `clients` connections to `url`, or `None` when it is not plain `http://` (the
    /// benchmark then goes through `reqwest`, which speaks TLS).
    async fn open(
        url: &str,
        clients: usize,
        key: Option<&str>,
    ) -> Result<Option<Connections>, Error> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Ok(None);
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let mut senders = Vec::with_capacity(clients);
        for _ in 0..clients.max(1) {
            let stream = tokio::net::TcpStream::connect(authority).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "bench: a connection failed");
                }
            });
            senders.push(tokio::sync::Mutex::new(sender));
        }
        let mut headers = crate::credentials::headers(key)?;
        headers.insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_str(authority)
                .map_err(|_| "the server's address is not a valid Host header")?,
        );
        Ok(Some(Connections { headers, senders }))
    }

    /// POSTs `body` to `path` on client `client`'s connection; the response body if the
    /// status is a success.
    async fn post(
        &self,
        client: usize,
        path: &str,
        content_type: &'static str,
        body: bytes::Bytes,
    ) -> Result<bytes::Bytes, Error> {
        let mut request = hyper::Request::post(path).body(Full::new(body))?;
        *request.headers_mut() = self.headers.clone();
        request.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        let mut sender = self.senders[client % self.senders.len()].lock().await;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(format!("the server answered {status}").into());
        }
        Ok(bytes)
    }
}
