//! End-to-end: `gureum up`, the `gureum ledger` client, `verify` and the benchmarks.

mod support;

use serde_json::Value;
use support::reqwest;
use support::{Server, bus_messages, gureum, ledger_cli};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_newcomer_creates_accounts_moves_money_and_reads_history() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = server.url.clone();
    let health = reqwest::blocking_get(&format!("{url}/healthz"));
    assert_eq!(health, r#"{"status":"ok"}"#);
    assert_eq!(
        reqwest::blocking_get(&format!("{url}/readyz")),
        r#"{"status":"ready"}"#
    );

    for (id, flags) in [
        ("1", "history"),
        ("2", "debits_must_not_exceed_credits,history"),
    ] {
        let o = ledger_cli(
            &server,
            &[
                "create-account",
                "--id",
                id,
                "--ledger",
                "1",
                "--code",
                "10",
                "--flags",
                flags,
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(stdout(&o), "INDEX  RESULT\n0      ok\n1 of 1 accepted\n");
    }
    let o = ledger_cli(
        &server,
        &[
            "transfer", "--id", "100", "--debit", "1", "--credit", "2", "--amount", "2500",
            "--ledger", "1", "--code", "1",
        ],
    );
    assert!(o.status.success());
    // A refused transfer exits non-zero and says why.
    let o = ledger_cli(
        &server,
        &[
            "transfer", "--id", "101", "--debit", "2", "--credit", "1", "--amount", "9999",
            "--ledger", "1", "--code", "1",
        ],
    );
    assert!(!o.status.success());
    assert!(stdout(&o).contains("exceeds_credits"), "{}", stdout(&o));

    let jsonl = dir.path().join("transfers.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\":\"200\",\"debit_account_id\":\"2\",\"credit_account_id\":\"1\",\"amount\":\"500\",\"ledger\":1,\"code\":1}\n\n\
         {\"id\":\"201\",\"debit_account_id\":\"1\",\"credit_account_id\":\"2\",\"amount\":\"100\",\"ledger\":1,\"code\":1,\"flags\":[\"pending\"]}\n",
    )
    .unwrap();
    let o = ledger_cli(
        &server,
        &[
            "submit",
            "transfers",
            "--file",
            jsonl.to_str().unwrap(),
            "--batch",
            "1",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        results,
        serde_json::json!([{"index":0,"result":"ok"},{"index":1,"result":"ok"}])
    );

    let o = ledger_cli(&server, &["account", "2", "--json"]);
    let account: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(account["credits_posted"], "2500");
    assert_eq!(account["debits_posted"], "500");
    assert_eq!(account["credits_pending"], "100");
    let table = stdout(&ledger_cli(&server, &["account", "2"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID  LEDGER  CODE  FLAGS"), "{table}");
    assert!(lines[1].starts_with("2   1       10    debits_must_not_exceed_credits,history  0               500            100"), "{table}");

    let o = ledger_cli(&server, &["history", "1", "--limit", "2", "--json"]);
    let page: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<&str> = page["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["100", "200"]);
    let next = page["next"].as_str().unwrap().to_owned();
    let table = stdout(&ledger_cli(
        &server,
        &["history", "1", "--limit", "2", "--after", &next],
    ));
    assert!(
        table.contains("201")
            && table.contains("pending")
            && table.ends_with("(1 shown, no more)\n"),
        "{table}"
    );
    let table = stdout(&ledger_cli(&server, &["balances", "1"]));
    assert_eq!(table.lines().count(), 5, "{table}");
    let o = ledger_cli(&server, &["get-transfer", "201", "--json"]);
    let t: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(t["pending_status"], "pending");

    let o = ledger_cli(&server, &["account", "999"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("404")
            && err.contains("account_not_found")
            && err.contains("no account has id 999"),
        "{err}"
    );

    assert!(server.stop().success(), "SIGTERM ends with exit 0");
    let o = gureum()
        .args(["ledger", "verify", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["transfers"], 3);
    assert_eq!(report["accounts"], 2);
    assert_eq!(report["snapshot_seq"], report["records"]);
}

#[test]
fn verify_fails_on_a_corrupt_journal() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for id in ["1", "2", "3"] {
        ledger_cli(
            &server,
            &["create-account", "--id", id, "--ledger", "1", "--code", "1"],
        );
    }
    assert!(server.stop().success());
    let journal = dir.path().join("journal.gj");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[80] ^= 1;
    std::fs::write(&journal, bytes).unwrap();
    let o = gureum()
        .args(["ledger", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("journal.gj is corrupt at byte offset 0"),
        "{err}"
    );
    // Start-up reads only the journal after the snapshot; without one it reads it all and
    // refuses to start on the damage.
    std::fs::remove_file(dir.path().join("snapshot.gs")).unwrap();
    let mut child = gureum()
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("gureum up started on a corrupt journal");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("refuses to start on damaged data"), "{err}");
}

fn bench(args: &[&str]) -> Value {
    let o = gureum()
        .args(["bench", "ledger", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn bench_reports_durable_throughput_in_process_and_over_http() {
    let r = bench(&[
        "--transfers",
        "20000",
        "--accounts",
        "100",
        "--batch",
        "1000",
        "--recovery",
    ]);
    assert_eq!(r["transfers"], 20000);
    assert_eq!(r["results_not_ok"], 0);
    assert_eq!(r["durable"], true);
    assert_eq!(r["mode"], "in_process");
    for key in [
        "seconds",
        "transfers_per_second",
        "batch_latency_p50_ms",
        "batch_latency_p99_ms",
        "recovery_seconds",
    ] {
        assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {r}");
    }
    for encoding in ["json", "binary"] {
        let r = bench(&[
            "--http",
            "--encoding",
            encoding,
            "--transfers",
            "4000",
            "--accounts",
            "50",
            "--batch",
            "100",
            "--clients",
            "4",
        ]);
        assert_eq!(r["mode"], "http");
        assert_eq!(r["encoding"], encoding);
        assert_eq!(r["results_not_ok"], 0);
        assert!(r["transfers_per_second"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bench_eod_closes_days_over_a_portfolio_and_posts_them_durably() {
    let o = gureum()
        .args(["bench", "eod", "--json", "--loans", "600", "--days", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["loans"], 600);
    assert_eq!(r["durable"], true);
    assert_eq!(r["loan_storage"], "memory");
    let days = r["days"].as_array().unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(days[0]["date"], "2026-06-01");
    // One loan in twenty was disbursed a month earlier and never paid.
    assert_eq!(days[0]["loans_past_due"], 30);
    for day in days {
        // Every loan accrues a day's interest; the past-due ones late interest too.
        let transfers = day["transfers"].as_u64().unwrap();
        assert!((600..=1200).contains(&transfers), "{day}");
        assert!(day["seconds"].as_f64().unwrap() > 0.0);
    }
    assert!(r["loans_per_second"].as_f64().unwrap() > 0.0);

    // Through the lending service's own store: every loan closed each day, one in thirty
    // billed, and on the second day the loans whose instalment fell due unpaid go delinquent.
    // 2,400 loans are three pages of end of day, so pages commit while the next is planned.
    let o = gureum()
        .args([
            "bench", "eod", "--json", "--store", "--loans", "2400", "--days", "2",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["loan_storage"], "sqlite");
    let reports: Vec<&Value> = r["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["report"])
        .collect();
    assert_eq!(
        reports,
        [
            &serde_json::json!({"business_date": "2026-06-01", "loans": 2400, "days": 2400,
                                "billed": 80, "status_changes": 0, "failed": 0}),
            &serde_json::json!({"business_date": "2026-06-02", "loans": 2400, "days": 2400,
                                "billed": 80, "status_changes": 80, "failed": 0}),
        ]
    );
}

#[test]
fn a_pending_transfer_past_its_timeout_is_voided_by_the_running_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for id in ["1", "2"] {
        assert!(
            ledger_cli(
                &server,
                &["create-account", "--id", id, "--ledger", "1", "--code", "1"]
            )
            .status
            .success()
        );
    }
    let o = ledger_cli(
        &server,
        &[
            "transfer",
            "--id",
            "9",
            "--debit",
            "1",
            "--credit",
            "2",
            "--amount",
            "40",
            "--ledger",
            "1",
            "--code",
            "1",
            "--flags",
            "pending",
            "--timeout",
            "1",
        ],
    );
    assert!(o.status.success());
    let pending = |id: &str| -> Value {
        serde_json::from_str(&stdout(&ledger_cli(&server, &["account", id, "--json"]))).unwrap()
    };
    assert_eq!(pending("1")["debits_pending"], "40");
    // The server's pulse voids it within a moment of the deadline; poll, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pending("1")["debits_pending"] != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the pending transfer never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(pending("2")["credits_pending"], "0");
    let t: Value = serde_json::from_str(&stdout(&ledger_cli(
        &server,
        &["get-transfer", "9", "--json"],
    )))
    .unwrap();
    assert_eq!(t["pending_status"], "expired");
    let o = ledger_cli(
        &server,
        &[
            "transfer",
            "--id",
            "10",
            "--pending-id",
            "9",
            "--flags",
            "post_pending_transfer",
        ],
    );
    assert!(
        stdout(&o).contains("pending_transfer_expired"),
        "{}",
        stdout(&o)
    );
    assert!(server.stop().success());
}

#[test]
fn provision_gives_a_service_its_own_postgres_role_and_schema() {
    let admin = std::env::var("GUREUM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let service = format!("t_cli_{}", std::process::id());
    let secret = "cli-test-password-0123456789";
    let provision = || {
        let mut command = support::gureum();
        command.args([
            "provision",
            "postgres",
            "--admin-url",
            &admin,
            "--service",
            &service,
        ]);
        command
    };
    let run = provision()
        .env("GUREUM_SERVICE_PASSWORD", secret)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(&format!("role gureum_{service} owns schema {service}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("gureum_{service}:********@")),
        "{stdout}"
    );
    assert!(!stdout.contains(secret), "the password is never printed");
    // Without the password in the environment it refuses, naming what is missing.
    let refused = provision()
        .env_remove("GUREUM_SERVICE_PASSWORD")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("GUREUM_SERVICE_PASSWORD"));
    let cleanup = std::process::Command::new("psql")
        .args([
            &admin,
            "-qc",
            &format!("DROP SCHEMA {service} CASCADE; DROP ROLE gureum_{service}"),
        ])
        .status()
        .unwrap();
    assert!(cleanup.success());
}

#[test]
fn gureum_up_publishes_every_committed_transfer_on_its_embedded_bus() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for id in ["1", "2"] {
        let out = ledger_cli(
            &server,
            &["create-account", "--id", id, "--ledger", "1", "--code", "1"],
        );
        assert!(out.status.success(), "{}", stdout(&out));
    }
    for (id, amount) in [("10", "5"), ("11", "7")] {
        let args = [
            "transfer", "--id", id, "--debit", "1", "--credit", "2", "--amount", amount,
            "--ledger", "1", "--code", "1",
        ];
        assert!(ledger_cli(&server, &args).status.success());
    }
    // A refused transfer commits nothing, so it is never published.
    let refused = [
        "transfer", "--id", "12", "--debit", "1", "--credit", "99", "--amount", "1", "--ledger",
        "1", "--code", "1",
    ];
    assert!(!ledger_cli(&server, &refused).status.success());

    let events = bus_messages(dir.path(), 2);
    let ids: Vec<&str> = events.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids, ["transfer-10", "transfer-11"]);
    assert!(
        events
            .iter()
            .all(|(subject, _, _)| subject == "ledger.transfer.committed")
    );
    let first: Value = serde_json::from_str(&events[0].2).unwrap();
    assert_eq!(first["data"]["amount"], "5");
    assert_eq!(first["subject"], "transfer/10");
    assert_eq!(server.stop().code(), Some(0));
}
