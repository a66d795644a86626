//! `gureum waf eval` (replay a corpus through the web application firewall and print its
//! detection and false-positive rates per family) and `gureum bench waf` (inspection time of a
//! typical JSON request).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use waf::corpus::{self, Evaluation};
use waf::{Config, Engine, Request};

use crate::Error;

/// `gureum waf …`.
#[derive(clap::Subcommand)]
pub enum WafCommand {
    /// Replay a corpus (CRS regression `.jsonl`, libinjection `.txt`) through the engine.
    Eval(EvalArgs),
}

/// `gureum waf eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The corpus file (repeat for several).
    #[arg(long, required = true)]
    corpus: Vec<PathBuf>,
    /// Paranoia level, 1 to 4.
    #[arg(long, default_value_t = 1)]
    paranoia: u8,
    /// Exit non-zero unless the attack families given (comma-separated, corpus labels) are
    /// detected at least this often, in percent.
    #[arg(long)]
    min_detection: Option<f64>,
    /// The families `--min-detection` applies to.
    #[arg(long, value_delimiter = ',', default_value = "sqli,xss,rce,lfi")]
    families: Vec<String>,
    /// Exit non-zero if a benign corpus is flagged more often than this, in percent.
    #[arg(long)]
    max_false_positives: Option<f64>,
    /// Print one JSON object per corpus instead of a table.
    #[arg(long)]
    json: bool,
    /// Also list every missed attack and every flagged clean request, with the rules that fired.
    #[arg(long)]
    explain: bool,
}

/// Runs a `gureum waf` command.
pub fn run(command: WafCommand) -> Result<ExitCode, Error> {
    match command {
        WafCommand::Eval(args) => eval(args),
    }
}

fn eval(args: EvalArgs) -> Result<ExitCode, Error> {
    let engine = Engine::new(Config {
        paranoia: args.paranoia,
        ..Config::default()
    })?;
    let mut failed = Vec::new();
    for path in &args.corpus {
        let cases = corpus::load(path)?;
        let evaluation = corpus::evaluate(&engine, &cases);
        if args.explain {
            explain(&engine, &cases);
        }
        if args.json {
            let mut object = serde_json::to_value(&evaluation)?;
            object["corpus"] = path.display().to_string().into();
            println!("{object}");
        } else {
            print_table(&path.display().to_string(), &evaluation);
        }
        for rates in &evaluation.families {
            if let Some(min) = args.min_detection
                && args.families.contains(&rates.family)
                && rates.attacks > 0
                && rates.detection_percent < min
            {
                failed.push(format!(
                    "{}: {} detected {:.2}% < {min}%",
                    path.display(),
                    rates.family,
                    rates.detection_percent
                ));
            }
            if let Some(max) = args.max_false_positives
                && rates.family == "benign"
                && rates.false_positive_percent > max
            {
                failed.push(format!(
                    "{}: benign flagged {:.2}% > {max}%",
                    path.display(),
                    rates.false_positive_percent
                ));
            }
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for f in failed {
            eprintln!("below the mark: {f}");
        }
        Ok(ExitCode::FAILURE)
    }
}

fn explain(engine: &Engine, cases: &[corpus::Case]) {
    for case in cases {
        if case.expect_attack && case.paranoia.is_some_and(|p| p > engine.config().paranoia) {
            continue;
        }
        let verdict = case.verdict(engine);
        if verdict.attack != case.expect_attack {
            let rules: Vec<String> = verdict
                .matches
                .iter()
                .map(|m| format!("{}@{}", m.rule, m.location))
                .collect();
            let what = if case.expect_attack {
                "missed"
            } else {
                "flagged"
            };
            println!("{what} {} [{}] {}", case.id, case.family, rules.join(" "));
        }
    }
}

fn print_table(corpus: &str, e: &Evaluation) {
    println!("{corpus} (paranoia {})", e.paranoia);
    println!("{}", corpus::FamilyRates::HEADER);
    for r in e.families.iter().chain(std::iter::once(&e.total)) {
        println!("{r}");
    }
    println!();
}

/// `gureum bench waf`.
#[derive(clap::Args)]
pub struct WafBenchArgs {
    /// Requests to inspect.
    #[arg(long, default_value_t = 200_000)]
    requests: usize,
    /// Paranoia level, 1 to 4.
    #[arg(long, default_value_t = 1)]
    paranoia: u8,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// A typical request to the API: a customer's transfer with a memo, about 2 KiB of JSON.
pub fn typical_request_body(n: u64) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            let i = n * 6 + i;
            serde_json::json!({
                "id": format!("{}", 1_000_000_000_000u64 + i),
                "debit_account_id": "100000000000000000001",
                "credit_account_id": "100000000000000000002",
                "amount": "1250000",
                "ledger": 410,
                "code": 1,
                "flags": ["linked"],
                "metadata": {
                    "memo": format!("O'Brien 님 11월 월세 (관리비 포함) - 감사합니다! #{i}"),
                    "reference": format!("INV-2026-11-{i:04}"),
                    "channel": "mobile"
                }
            })
        })
        .collect();
    serde_json::to_vec(&items).unwrap_or_default()
}

/// Distinct requests `gureum bench waf` cycles through.
const DISTINCT_REQUESTS: u64 = 10_000;

/// Runs `gureum bench waf`.
pub fn bench(args: WafBenchArgs) -> Result<ExitCode, Error> {
    let engine = Engine::new(Config {
        paranoia: args.paranoia,
        ..Config::default()
    })?;
    // Distinct requests, as a bank's clients send them: the same keys and headers, new
    // memos, references, ids and trace contexts every time (so the engine's memo of values
    // seen before helps only where real traffic repeats itself).
    let bodies: Vec<Vec<u8>> = (0..DISTINCT_REQUESTS).map(typical_request_body).collect();
    let traces: Vec<String> = (0..DISTINCT_REQUESTS)
        .map(|n| format!("00-4bf92f3577b34da6a3ce929d{n:06x}-00f067aa0ba902b7-01"))
        .collect();
    let request = |n: usize| {
        let n = n % DISTINCT_REQUESTS as usize;
        let headers = [
            ("host", "api.bank.example"),
            ("user-agent", "bank-app/4.2 (iOS 19.1)"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("authorization", "Bearer gk_live_0123456789abcdef"),
            (
                "cookie",
                "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
            ),
            ("traceparent", traces[n].as_str()),
        ];
        (headers, n)
    };
    let inspect = |n: usize| {
        let (headers, n) = request(n);
        engine.inspect(std::hint::black_box(&Request {
            method: "POST",
            target: "/v1/ledger/transfers?dry_run=false",
            headers: &headers,
            body: &bodies[n],
        }))
    };
    let verdict = inspect(0);
    if verdict.attack {
        return Err(format!("the typical request was flagged: {:?}", verdict.matches).into());
    }
    let mut latencies = Vec::with_capacity(args.requests);
    let started = Instant::now();
    for n in 0..args.requests {
        let at = Instant::now();
        let v = inspect(n + 1);
        latencies.push(at.elapsed());
        std::hint::black_box(v);
    }
    let body = &bodies[0];
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let quantile = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1e6
    };
    let report = serde_json::json!({
        "requests": args.requests,
        "body_bytes": body.len(),
        "paranoia": args.paranoia,
        "seconds": elapsed.as_secs_f64(),
        "requests_per_second": args.requests as f64 / elapsed.as_secs_f64(),
        "inspect_p50_us": quantile(0.50),
        "inspect_p99_us": quantile(0.99),
        "inspect_max_us": quantile(1.0),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("requests             {}", args.requests);
        println!("body bytes           {}", body.len());
        println!("paranoia             {}", args.paranoia);
        println!(
            "requests/s           {:.0}",
            args.requests as f64 / elapsed.as_secs_f64()
        );
        println!("inspect p50          {:.1} µs", quantile(0.50));
        println!("inspect p99          {:.1} µs", quantile(0.99));
        println!("inspect max          {:.1} µs", quantile(1.0));
    }
    Ok(ExitCode::SUCCESS)
}
